"""The second slice of the personality: files, pipes, processes (fork, execve, wait4), SIGPIPE,
blocking calls answered later, and busybox when it is installed."""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.cli import main
from l4sim.linux.run import Result as RunResult
from l4sim.linux.run import run

from .conftest import native

Build = Callable[..., Path]
BUSYBOX = shutil.which("busybox")


def _run(exe: Path, *args: str, strace: bool = False, root: Path | None = None,
         stdin: bytes = b"") -> tuple[RunResult, bytes, list[str]]:
    out = bytearray()
    lines: list[str] = []
    chunks = [stdin] if stdin else []
    res = run(exe, list(args), out=lambda fd, b: out.extend(b) if fd == 1 else None,
              strace=lines.append if strace else None, root=root,
              stdin=lambda: chunks.pop(0) if chunks else b"")
    return res, bytes(out), lines


def l4sim(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def test_file_io_in_tmp(build: Build) -> None:
    """Files in /tmp: create, write, seek, read, fstat, rename, mkdir/chdir/getcwd, getdents,
    /dev/null through dup2, unlink and rmdir (ENOTEMPTY first)."""
    res, out, _ = _run(build("fileio"))
    assert res.status == 0
    assert out == (b"read=5 [file\n] size=11 reg=1\nrename=0\nold=-1 new=0\nmkdir=0 chdir=0\ncwd=/tmp/d\n"
                   b"entry x\n")


def test_pipe_between_parent_and_child(build: Build) -> None:
    """fork + pipe + wait4: the child's lines reach the parent through the pipe, getppid is the
    parent's pid, and wait4 reports exit status 7."""
    res, out, _ = _run(build("pipefork"))
    assert res.status == 0
    assert out == (b"line 0 ppid_ok=1\nline 1 ppid_ok=1\nline 2 ppid_ok=1\n"
                   b"child_ok=1 exited=1 code=7\n")


def test_read_of_empty_pipe_waits_for_the_writer(build: Build) -> None:
    """The parent's read of the empty pipe is answered later (through the saved reply), after
    the child has run: strace shows the read's result after the child's writes."""
    _, _, lines = _run(build("pipefork"), strace=True)
    first_read = next(i for i, ln in enumerate(lines) if ln.startswith("read(3,"))
    first_write = next(i for i, ln in enumerate(lines) if ln.startswith("[pid 3] write(4,"))
    assert first_write < first_read


def test_fork_is_copy_on_write(build: Build) -> None:
    """The child's writes to data, stack and heap do not show in the parent, and pages are
    copied on write faults, not at fork."""
    res, out, _ = _run(build("cow"))
    assert res.status == 0
    assert out == (b"child global=100 local=200 heap=-1\n"
                   b"parent global=1 local=2 heap=5 sum=134209536 child=0\n")
    assert res.stats["forks"] == 1
    assert 16 <= res.stats["cow_copies"] < 200


def test_sigpipe_ends_a_writer_without_readers(build: Build) -> None:
    """A write to a pipe with no readers kills the writer with SIGPIPE (WIFSIGNALED, 13);
    ignored, the write returns EPIPE; back to the default, the process dies: 141."""
    res, out, _ = _run(build("sigpipe"))
    assert out == b"signaled=1 sig=13\nignored: r=-1\n" and res.status == 141


def _tar_with(tmp_path: Path, *files: Path) -> Path:
    tar = tmp_path / "root.tar"
    with tarfile.open(tar, "w") as tf:
        for f in files:
            tf.add(f, arcname=str(f).lstrip("/"))
    return tar


def test_execve_runs_another_program_from_the_root(build: Build, tmp_path: Path) -> None:
    """execve loads an ELF from the VFS (a tar root holding both programs) with its new argv."""
    execer, argv = build("execer"), build("argv")
    res, out, _ = _run(execer, str(argv), root=_tar_with(tmp_path, execer, argv))
    assert res.status == 0
    assert out == b"argc=3\n[from]\n[exec]\nchild status=2\n"


def test_execve_of_a_missing_file_is_enoent(build: Build) -> None:
    """execve of a path not in the VFS fails with ENOENT and the child carries on (exit 127)."""
    res, out, _ = _run(build("execer"), "/no/such/program")
    assert (res.status, out) == (0, b"child status=127\n")


def test_root_from_a_host_directory_is_read_only(build: Build, tmp_path: Path) -> None:
    """--root DIR: the guest sees the directory's files; what it changes stays in memory."""
    exe = build("fileio")
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    (root / "tmp" / "keep").write_text("host")
    res, _, _ = _run(exe, root=root)
    assert res.status == 0 and not (root / "tmp" / "a.txt").exists() and not (root / "tmp" / "d").exists()


def test_multi_process_runs_are_deterministic(build: Build) -> None:
    """Two runs of fork/pipe/wait4 make the same calls in the same order (strace, with the
    other processes' lines marked [pid N]) and end at the same simulated time."""
    exe = build("pipefork")
    a, b = _run(exe, strace=True), _run(exe, strace=True)
    assert a[2] == b[2] and a[0].sim_ns == b[0].sim_ns
    assert "[pid 3] exit_group(7) = ?" in a[2]  # pid 1 is init, 2 the program


def test_signal_handlers_sigsuspend_and_sigchld(build: Build) -> None:
    """A handler runs for raise() and returns to the interrupted code; sigsuspend waits until
    the child's kill arrives; SIGCHLD reaches its handler; the child's nanosleep passes."""
    res, out, lines = _run(build("sighandler"), strace=True)
    assert (res.status, out) == (0, b"after raise usr1=10 before=7\nusr1=20 chld=1 status=4\n")
    assert any(ln.startswith("rt_sigsuspend(") and "EINTR" in ln for ln in lines)
    assert sum(ln.startswith("rt_sigreturn(") for ln in lines) >= 3


@pytest.mark.parametrize(("name", "args"), [
    ("fileio", ()), ("pipefork", ()), ("cow", ()), ("sigpipe", ()), ("execer", ("/nonexistent",)),
    ("sighandler", ())])
def test_same_as_native(build: Build, name: str, args: tuple[str, ...]) -> None:
    """The same binary gives the same stdout and status natively and under `l4sim linux run`."""
    exe = build(name)
    want = native(exe, *args)
    res = l4sim("linux", "run", "--", str(exe), *args)
    assert (res.stdout_bytes, res.exit_code) == want


def test_stdin_comes_from_the_host(build: Build) -> None:
    """`linux run` feeds the host's stdin to the program; a read at its end returns 0."""
    if BUSYBOX is None:
        pytest.skip("busybox is not installed (apt-get install busybox-static)")
    res = l4sim("linux", "run", "--", BUSYBOX, "cat", input=b"line one\nline two\n")
    assert (res.stdout_bytes, res.exit_code) == (b"line one\nline two\n", 0)


def test_bad_root_is_one_line(build: Build, tmp_path: Path) -> None:
    """--root naming nothing: one line, status 2."""
    res = l4sim("linux", "run", "--root", str(tmp_path / "none"), "--", str(build("hello")))
    assert res.exit_code == 2 and res.stderr == f"l4sim: {tmp_path / 'none'}: no such directory or tar file\n"


# --------------------------------------------------------------------------- busybox
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed (busybox-static)")


@needs_busybox
@pytest.mark.parametrize("script", [
    "echo a; echo b",
    "for i in 1 2 3; do echo $i; done | sort -r | head -n 2",
    "seq 1 100000 | head -n 2",
    "x=$(echo hi | tr a-z A-Z); echo \"[$x]\"; f=$(mktemp); echo data > $f; cat $f; wc -c < $f; rm $f",
    "f() { echo fn $1; }; f 9; case ab in a*) echo case;; esac; (echo sub; exit 3); echo st=$?; echo $((6*7))",
    "d=$(mktemp -d) && cd $d && mkdir q && cd q && echo z > a && cp a b && mv b c && ls && rm a c && cd / "
    "&& rm -r $d && echo abc | md5sum && echo abc | sha256sum",
    "printf 'a\\nb\\na\\n' | sort | uniq -c; echo 'x y z' | awk '{print $2}'; echo hello | sed s/l/L/g",
    "echo 1 2 | xargs echo got; echo abc | od -c | head -n 1; echo hi | base64; exit 5",
    "sleep 0 & wait; echo bg; echo x | tee /dev/null | cut -c1; echo a:b | cut -d: -f2; set -e; false; echo no",
    "printf 'a b\\nc d\\n' | while read x y; do echo \"$y-$x\"; done; echo q | (read -t 1 v; echo got $v); "
    "sleep 1 | (read -t 0.1 v; echo rc=$?)",
    "exec 3>/tmp/l4sim-$$; echo hi >&3; exec 3>&-; cat /tmp/l4sim-$$; rm /tmp/l4sim-$$; ls /nothere 2>&1 | wc -l; "
    "echo $(echo $(echo deep)); sleep 5 & kill $!; wait $!; echo st=$?",
    "printf '3\\n1\\n2\\n' | sort -n | tail -n 1; echo abc | grep -c b; ls /proc/self/fd > /dev/null; echo $?",
])
def test_busybox_sh_same_as_native(script: str) -> None:
    """busybox sh -c SCRIPT prints the same and exits the same under l4sim as natively."""
    assert BUSYBOX is not None
    want = native(BUSYBOX, "sh", "-c", script)
    res = l4sim("linux", "run", "--", BUSYBOX, "sh", "-c", script)
    assert (res.stdout_bytes, res.exit_code) == want


@needs_busybox
def test_busybox_echo() -> None:
    """`busybox echo hi` prints hi."""
    assert BUSYBOX is not None
    res = l4sim("linux", "run", "--", BUSYBOX, "echo", "hi")
    assert (res.stdout_bytes, res.exit_code) == (b"hi\n", 0)


@needs_busybox
def test_busybox_sleep_takes_simulated_time() -> None:
    """`sleep 1` waits one second of simulated time (nanosleep answered later), not of wall time."""
    assert BUSYBOX is not None
    res, out, _ = _run(Path(BUSYBOX), "sh", "-c", "sleep 1; echo done")
    assert (res.status, out) == (0, b"done\n") and 1_000_000_000 <= res.sim_ns < 2_000_000_000


@needs_busybox
def test_proc_self_exe_names_the_program() -> None:
    """/proc/self/exe is a link to the program (busybox re-executes it)."""
    assert BUSYBOX is not None
    res, out, _ = _run(Path(BUSYBOX), "readlink", "/proc/self/exe")
    assert (res.status, out) == (0, str(Path(BUSYBOX).absolute()).encode() + b"\n")
