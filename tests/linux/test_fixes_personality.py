"""Linux semantics the personality got wrong, each checked against the same program run
natively: paths ending in "/", "." or "..", SIGPIPE with a handler, the cwd held as a
directory, tmpfs's stat fields, FIFOs, /proc's state of the serving thread's process, a
killed job's report, comm after execve, SA_RESTART, and stopping and continuing."""

from __future__ import annotations

import difflib
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.linux.procfs import _state
from l4sim.linux.run import run
from l4sim.linux.state import DEFAULT_ENV

from .conftest import host_tmpfs

Build = Callable[..., Path]
BUSYBOX = Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox is not installed (busybox-static)")
#: where the guest programs work (the guest's /tmp is tmpfs, empty at the start)
GUEST_DIR = "/tmp"


def _guest(exe: Path | str, *args: str, strace: list[str] | None = None) -> tuple[bytes, int, bytes]:
    """stdout, status and stderr under l4sim."""
    out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    res = run(exe, list(args), out=lambda fd, b: out[fd].extend(b),
              strace=strace.append if strace is not None else None)
    return bytes(out[1]), res.status, bytes(out[2])


def _native(exe: Path | str, *args: str, cwd: Path | None = None) -> tuple[bytes, int, bytes]:
    """stdout, status (128+N when killed by N) and stderr on the host, in the guest's
    environment."""
    env = dict(e.split("=", 1) for e in DEFAULT_ENV)
    r = subprocess.run([str(exe), *args], capture_output=True, timeout=60, env=env, cwd=cwd,
                       stdin=subprocess.DEVNULL)
    return r.stdout, r.returncode if r.returncode >= 0 else 128 - r.returncode, r.stderr


def _same(build: Build, name: str, workdir: Path | None = None) -> bytes:
    """Run guest program ``name`` natively (in ``workdir``, when given) and under l4sim (in
    the guest's /tmp); both must print the same and exit the same; the output."""
    exe = build(name)
    args = (str(workdir),) if workdir is not None else ()
    want = _native(exe, *args)
    got = _guest(exe, *((GUEST_DIR,) if workdir is not None else ()))
    if got[:2] != want[:2]:  # say exactly which lines differ (the outputs are long)
        diff = "\n".join(difflib.unified_diff(want[0].decode(errors="replace").splitlines(),
                                               got[0].decode(errors="replace").splitlines(),
                                               "native", "l4sim", lineterm=""))
        pytest.fail(f"{name}: status native {want[1]}, l4sim {got[1]}\n{diff}\n"
                    f"guest stderr: {got[2].decode(errors='replace')}")
    return got[0]


# --------------------------------------------------------------------------- 1. "/", ".", ".."
def test_paths_without_a_last_name(build: Build, native_dir: Path) -> None:
    """mkdir of "/", ".", "..", "d/.." is EEXIST (busybox's mkdir -p /abs/path relies on it);
    rmdir's are EBUSY, EINVAL, ENOTEMPTY; unlink's EISDIR; rename's EBUSY; a missing
    directory before ".." is ENOENT."""
    out = _same(build, "dots", native_dir)
    assert b"mkdir /                EEXIST" in out and b"rmdir ..               ENOTEMPTY" in out


# --------------------------------------------------------------------------- 2. SIGPIPE
def test_sigpipe_with_a_handler_blocked_or_ignored(build: Build) -> None:
    """A write to a pipe without readers raises SIGPIPE in the writer: the handler runs and
    the write fails with EPIPE; blocked, it stays pending (and kills when unblocked with the
    default action); ignored, only EPIPE."""
    out = _same(build, "sigpipe_caught")
    assert b"handler: r=-1 errno=EPIPE caught=13\n" in out and b"pending=1" in out


# --------------------------------------------------------------------------- 3. the cwd
def test_cwd_is_the_directory_not_its_path(build: Build, native_dir: Path) -> None:
    """After the cwd (and a dirfd's directory) is renamed, relative paths still work and
    getcwd and /proc/self/cwd show the new name; after it is removed getcwd is ENOENT,
    /proc/self/cwd says "(deleted)", it lists nothing and nothing can be made in it."""
    out = _same(build, "cwd", native_dir)
    assert b"renamed: getcwd /b\n" in out and b"removed: getcwd ENOENT\n" in out


# --------------------------------------------------------------------------- 4. stat on tmpfs
def test_stat_fields_as_tmpfs_reports_them(build: Build, native_dir: Path) -> None:
    """st_blocks counts 4 KiB pages (8 per page, 0 for directories and short symbolic
    links), a directory's st_nlink is 2 + its subdirectories and its size 40 + 20 per entry."""
    if host_tmpfs() is None:
        pytest.skip("no tmpfs at /dev/shm for the native reference")
    out = _same(build, "statfields", native_dir)
    assert b"d        size=100 nlink=4 blocks=0\n" in out and b"f4097    size=4097 nlink=1 blocks=16\n" in out


# --------------------------------------------------------------------------- 5. FIFOs
def test_fifos(build: Build, native_dir: Path) -> None:
    """mkfifo and mknod(S_IFIFO) make FIFOs; an open for reading waits for a writer and one
    for writing waits for a reader, whichever comes first; O_NONBLOCK and O_RDWR opens; what
    is left in a FIFO goes with its last end."""
    out = _same(build, "fifo", native_dir)
    assert b"reader got 6: first\n" in out and b"reader got 7: second\n" in out


@needs_busybox
def test_busybox_mkfifo(native_dir: Path) -> None:
    """`mkfifo f; (echo hi > f &); cat f` prints hi, as on Linux."""
    script = "cd @D && mkfifo f && (echo hi > f &); cat f; ls -l f | cut -c1-10; cat f > out & echo two > f; " \
             "wait; cat out"
    want = _native(BUSYBOX, "sh", "-c", script.replace("@D", str(native_dir)))
    got = _guest(BUSYBOX, "sh", "-c", script.replace("@D", GUEST_DIR))
    assert got[:2] == want[:2] == (b"hi\nprw-r--r--\ntwo\n", 0)


# --------------------------------------------------------------------------- 6. /proc state
def test_proc_state_of_the_serving_threads_process() -> None:
    """``k.cur`` is the tid of the thread being served: its process is running ("R") even
    when that thread is not its main thread and every thread has a waiting call recorded."""
    k: Any = SimpleNamespace(cur=5, threads={})
    p: Any = SimpleNamespace(pid=3, status=None, stopped=False, threads={})
    main = SimpleNamespace(proc=p, blocked=object(), l4call=False)
    other = SimpleNamespace(proc=p, blocked=object(), l4call=False)
    p.threads = {3: main, 5: other}
    k.threads = {3: main, 5: other}
    assert _state(k, p) == "R"
    k.cur = 9  # another process's thread is being served: this one sleeps
    k.threads[9] = SimpleNamespace(proc=SimpleNamespace(), blocked=None, l4call=False)
    assert _state(k, p) == "S"
    other.blocked, other.l4call = None, True  # in an L4 call: waits uninterruptibly
    assert _state(k, p) == "D"
    p.stopped = True
    assert _state(k, p) == "T"


# --------------------------------------------------------------------------- 7. a killed job's report
@needs_busybox
def test_kill_then_wait_reports_like_native() -> None:
    """`kill $!; wait $!`: the job dies when it next runs, after kill has returned (as on
    Linux); stdout and status are native's.  Natively the shell almost always reaches `wait`
    first and says "Terminated"/"Killed" on stderr.  Here the shell goes on after `kill`
    returns (a system call's answer resumes it ahead of the job) and reaches `wait` before
    the SIGTERMed job runs: "Terminated", as natively; `kill -9` ends the job within the call,
    and the shell's SIGCHLD handler -- entered on its return to user mode, as Linux delivers
    signals -- reaps it before `wait`: no "Killed" (the other order of that race)."""
    script = "sleep 5 & k=$!; kill $k; wait $k; echo killed=$?; sleep 5 & kill -9 $!; wait $!; echo nine=$?"
    want = _native(BUSYBOX, "sh", "-c", script)
    got = _guest(BUSYBOX, "sh", "-c", script)
    assert got[:2] == want[:2] == (b"killed=143\nnine=137\n", 0)
    assert got[2] in (b"Terminated\n", b"Terminated\nKilled\n")


# --------------------------------------------------------------------------- 8. comm
def test_comm_is_the_executed_files_name(build: Build, native_dir: Path) -> None:
    """After execve the process is named after the file's path (its last component, 15
    characters), not argv[0]: /proc/self/comm, /proc/self/stat and PR_GET_NAME agree."""
    out = _same(build, "comm", native_dir)
    assert b"via /proc/self/exe: comm=exe stat=exe prctl=exe\n" in out
    assert b"comm=a-very-long-pro " in out


# --------------------------------------------------------------------------- 9. SA_RESTART
def test_sa_restart(build: Build) -> None:
    """A handled signal interrupts a waiting read, wait4 and futex wait: restarted after the
    handler with SA_RESTART, EINTR without; poll and nanosleep give EINTR either way."""
    out = _same(build, "restart")
    assert b"read plain: r=-1 EINTR caught=1\n" in out and b"read SA_RESTART: r=1 ok caught=1\n" in out


def test_sa_restart_in_strace(build: Build) -> None:
    """strace shows a call to be restarted as Linux's strace does, and the handler after it."""
    lines: list[str] = []
    _guest(build("restart"), strace=lines)
    i = next(i for i, ln in enumerate(lines) if ln.startswith("read(3, ") and "ERESTARTSYS" in ln)
    assert lines[i].endswith("= ? ERESTARTSYS (To be restarted if SA_RESTART is set)")
    assert lines[i + 1].startswith("--- signal 10 delivered to handler")


# --------------------------------------------------------------------------- 10. stop and continue
def test_stop_and_continue(build: Build) -> None:
    """SIGSTOP and SIGTSTP stop a child even in a loop without system calls (state T, its
    counter does not move), SIGCONT continues it; waitpid WUNTRACED/WCONTINUED and waitid
    WSTOPPED/WCONTINUED report it, SIGCHLD comes unless SA_NOCLDSTOP; SIGTERM waits for
    SIGCONT, SIGKILL does not; raise(SIGSTOP) stops the caller."""
    out = _same(build, "stopcont")
    assert b"after SIGSTOP: stopped=1 sig=19" in out and b"counter still while stopped: 1\n" in out
    assert b"SIGTERM waits while stopped: state T" in out and b"child: resumed\n" in out


@needs_busybox
def test_busybox_stop_and_continue() -> None:
    """busybox sh: `kill -STOP`, `kill -CONT`, `wait` on a background job and a shell that
    stops itself, as natively."""
    script = ("sleep 0.3 & p=$!; kill -STOP $p; echo stop=$?; sleep 0.1; cut -d' ' -f3 /proc/$p/stat\n"
              "kill -CONT $p; echo cont=$?; sleep 0.05; cut -d' ' -f3 /proc/$p/stat; wait $p; echo st=$?\n"
              "sh -c 'kill -STOP $$; echo resumed' & p=$!; sleep 0.1; cut -d' ' -f3 /proc/$p/stat\n"
              "kill -CONT $p; wait $p; echo self=$?\n"
              "sleep 5 & p=$!; kill -TSTP $p; sleep 0.1; kill $p; kill -CONT $p; wait $p; echo term=$?\n")
    want = _native(BUSYBOX, "sh", "-c", script)
    got = _guest(BUSYBOX, "sh", "-c", script)
    assert got[:2] == want[:2] == (b"stop=0\nT\ncont=0\nS\nst=0\nT\nresumed\nself=0\nterm=143\n", 0)
