"""Facilities real programs use, each checked against the same program run natively (same
stdout, same status): file timestamps, /dev/full, /dev/shm and named semaphores, file
locks, futexes with priority inheritance and robust lists, the scheduling calls, local
sockets, epoll and the other event files, System V IPC."""

from __future__ import annotations

import difflib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.linux.run import run
from l4sim.linux.state import DEFAULT_ENV
from l4sim.linux.syscalls import TABLE, implemented, sys_enosys

Build = Callable[..., Path]
#: where the guest programs work (the guest's /tmp is tmpfs, empty at the start)
GUEST_DIR = "/tmp"
ROOT = os.geteuid() == 0


def guest(exe: Path | str, *args: str, cores: int = 1,
          strace: list[str] | None = None) -> tuple[bytes, int, bytes]:
    """stdout, status and stderr under l4sim."""
    out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    res = run(exe, list(args), out=lambda fd, b: out[fd].extend(b), cores=cores,
              strace=strace.append if strace is not None else None)
    return bytes(out[1]), res.status, bytes(out[2])


def native(exe: Path | str, *args: str) -> tuple[bytes, int, bytes]:
    """stdout, status (128+N when killed by N) and stderr on the host, in the guest's
    environment."""
    env = dict(e.split("=", 1) for e in DEFAULT_ENV)
    r = subprocess.run([str(exe), *args], capture_output=True, timeout=120, env=env,
                       stdin=subprocess.DEVNULL)
    return r.stdout, r.returncode if r.returncode >= 0 else 128 - r.returncode, r.stderr


def same(build: Build, name: str, workdir: Path | None = None, cores: int = 1, *flags: str) -> bytes:
    """Run guest program ``name`` natively (in ``workdir``, when given) and under l4sim (in
    the guest's /tmp): both must print the same and exit the same; the output."""
    exe = build(name, *flags)
    want = native(exe, *((str(workdir),) if workdir is not None else ()))
    got = guest(exe, *((GUEST_DIR,) if workdir is not None else ()), cores=cores)
    if got[:2] != want[:2]:
        diff = "\n".join(difflib.unified_diff(want[0].decode(errors="replace").splitlines(),
                                               got[0].decode(errors="replace").splitlines(),
                                               "native", "l4sim", lineterm=""))
        pytest.fail(f"{name}: status native {want[1]}, l4sim {got[1]}\n{diff}\n"
                    f"native stderr: {want[2].decode(errors='replace')}\n"
                    f"guest stderr: {got[2].decode(errors='replace')}")
    return got[0]


# --------------------------------------------------------------------------- timestamps, devices
def test_file_times_follow_tmpfs(build: Build, native_dir: Path) -> None:
    """atime, mtime and ctime change as tmpfs changes them: writes set mtime and ctime,
    reads atime by the relatime rule, chmod/chown/link/rename ctime, a directory's mtime and
    ctime with its entries; utimensat with values, UTIME_NOW and UTIME_OMIT, utimes, utime,
    futimens, AT_SYMLINK_NOFOLLOW."""
    out = same(build, "ftimes", native_dir)
    assert b"read again (relatime)        ---" in out
    assert b"utimensat OMIT, OMIT         ---" in out
    assert b"  atime 1000.000000005 mtime 2000.000000006" in out


def test_dev_full_random_and_shm(build: Build) -> None:
    """/dev/full fails writes with ENOSPC and reads zeros; /dev/random reads; /dev/shm is a
    tmpfs where shm_open's memory and sem_open's named semaphores are shared with a child."""
    out = same(build, "devices")
    assert b"write /dev/full: -1 No space left on device" in out
    assert b"parent sees: from the child" in out and b"/dev/shm lists both: 1" in out


# --------------------------------------------------------------------------- locks
def test_file_locks(build: Build, native_dir: Path) -> None:
    """POSIX record locks (split and merged ranges, F_GETLK, released by any close and at
    exit, F_SETLKW waiting, EDEADLK), OFD locks (per open file, conflicting with POSIX
    ones), flock (shared and exclusive, inherited, waiting), EINTR and errors."""
    out = same(build, "locks", native_dir)
    assert b"deadlock: one got EDEADLK, the other its lock" in out
    assert b"child ofd setlkw W [0,+1): ok" in out and b"setlkw interrupted: EINTR" in out


# --------------------------------------------------------------------------- futexes
def _needs_fifo(build: Build) -> None:
    """Skip unless this host lets the program run SCHED_FIFO natively (root, and the
    capability: a container may refuse it)."""
    if not ROOT:
        pytest.skip("SCHED_FIFO natively needs root")
    if b"no SCHED_FIFO" in native(build("futex_pi"))[0]:
        pytest.skip("this host refuses SCHED_FIFO")


def test_futex_pi_robust_and_scheduling(build: Build) -> None:
    """PI futexes (ownership in the word, FUTEX_WAITERS, EDEADLK, EPERM, ESRCH, OWNER_DIED),
    a PTHREAD_PRIO_INHERIT mutex that stops a priority inversion under SCHED_FIFO where a
    plain one does not, robust mutexes whose owner thread or process died (EOWNERDEAD,
    ENOTRECOVERABLE), get_robust_list, WAIT_BITSET/WAKE_BITSET, REQUEUE, and the
    scheduling calls; natively this needs root (SCHED_FIFO)."""
    _needs_fifo(build)
    out = same(build, "futex_pi")
    pi = out[out.index(b"-- priority inversion, PI mutex"):]
    assert pi.index(b"H: got the lock") < pi.index(b"M: runs")  # the owner ran above M
    plain = out[out.index(b"-- priority inversion, plain"):out.index(b"-- priority inversion, PI")]
    assert plain.index(b"M: runs") < plain.index(b"H: got the lock")
    assert b"robust process: EOWNERDEAD" in out


def test_futex_pi_on_two_cores_with_affinity(build: Build) -> None:
    """With two cores the program pins itself to core 0 (sched_setaffinity moves its threads
    there), so the inversion plays out as on one core."""
    _needs_fifo(build)
    same(build, "futex_pi", None, 2)


def test_pi_owner_runs_at_the_waiters_priority(build: Build) -> None:
    """While a SCHED_FIFO 30 thread waits for a PI mutex, its SCHED_FIFO 10 owner runs at the
    kernel priority of priority 30 (raised with run_thread on the kernel's scheduler), and
    falls back to its own when it unlocks (the trace's sched records)."""
    from l4sim.kernel.trace import Tracer
    from l4sim.linux.sched import kernel_prio

    exe = build("futex_pi")
    tracer = Tracer()
    out: list[bytes] = []
    run(exe, [], out=lambda fd, b: out.append(b), tracer=tracer)
    recs = [(r[3], r[4]["prio"]) for r in tracer.records if r[2] == "sched"]
    low, high, top = kernel_prio(1, 10), kernel_prio(1, 30), kernel_prio(1, 50)
    assert low < kernel_prio(1, 20) < high < top

    def raised(kid: object) -> bool:  # its priorities go low, high, low
        seq = [pr for k, pr in recs if k == kid]
        i = seq.index(low)
        return high in seq[i:] and low in seq[seq.index(high, i):]

    # L, H and M of each run, in order (H and M start as their creator L, at priority 10)
    lows = list(dict.fromkeys(kid for kid, pr in recs if pr == low))
    assert [raised(kid) for kid in lows] == [False, False, False, True, False, False]  # PI's L


# --------------------------------------------------------------------------- event files, timers
@pytest.mark.parametrize("cores", [1, 2])
def test_event_files_and_timers(build: Build, cores: int) -> None:
    """eventfd, epoll (level- and edge-triggered, one-shot, nested, ready-list order,
    errors, items living with their open file, epoll_pwait's mask), signalfd (kill and
    SIGCHLD with the child's status), timerfd, alarm, setitimer, POSIX timers (overruns, a
    pending signal dropped by re-arming), pidfds (poll, send_signal, getfd, waitid)."""
    out = same(build, "events", None, cores)
    assert b"all ready: 4 [4:OUT] [1:IN] [2:IN] [3:IN]" in out
    assert b"SIGCHLD: signo 17 code 1 pid child status 7" in out
    assert b"periodic after 500 ms: 2" in out and b"waitid P_PIDFD: ok code KILLED status 15" in out


# --------------------------------------------------------------------------- sockets
@pytest.mark.parametrize("cores", [1, 2])
def test_unix_sockets(build: Build, native_dir: Path, cores: int) -> None:
    """AF_UNIX stream, datagram and seqpacket sockets: socketpair, shutdown and EPIPE,
    path and abstract names (bind, listen, accept4, connect, names and their lengths,
    autobind), backlogs, SCM_RIGHTS (the same open files, MSG_CTRUNC, MSG_CMSG_CLOEXEC,
    a read stopping after them), SCM_CREDENTIALS, SO_PEERCRED, truncation, MSG_PEEK,
    MSG_WAITALL, SO_RCVTIMEO, ECONNRESET, sendmmsg/recvmmsg, poll, select and epoll."""
    out = same(build, "sockets", native_dir, cores)
    assert b"child got 2 fds with \"abcd\", cloexec 1" in out
    assert b"queued 278 then EAGAIN" in out and b"unaccepted, listener closed: ECONNRESET, then 0" in out


# --------------------------------------------------------------------------- System V IPC
@pytest.mark.parametrize("cores", [1, 2])
def test_sysv_ipc(build: Build, cores: int) -> None:
    """Shared memory (the same frames in every attachment and across fork, SHM_RDONLY,
    nattch, IPC_RMID while attached, shmat's placement), semaphores (all or nothing, waiters
    woken oldest first, GETNCNT/GETZCNT, SEM_UNDO at exit, semtimedop's timeout, EINTR,
    EIDRM) and message queues (types, MSG_EXCEPT, negative types, MSG_NOERROR, MSG_COPY,
    a waiting receiver, a full queue, EIDRM)."""
    out = same(build, "sysv", None, cores)
    assert b"b sees: written through a, third page" in out
    assert b"after the child's SEM_UNDO: 2" in out and b"child received 7: for it" in out


# --------------------------------------------------------------------------- more file calls
def test_xattrs_vector_io_memfd_sigwait(build: Build, native_dir: Path) -> None:
    """Extended attributes as tmpfs keeps them (namespaces, flags, sizes, symlinks, FIFOs,
    pipes, ctime), preadv/pwritev and their -2 forms, fallocate, copy_file_range,
    memfd_create shared across fork, close_range, the old getdents, rt_sigtimedwait
    (sigwait, sigtimedwait's timeout, sigwaitinfo with SIGCHLD's status), and
    process_vm_readv/writev."""
    out = same(build, "fileext", native_dir)
    assert b"list: 35 security.s trusted.t user.a user.b" in out
    assert b"memfd shared: from the child / from the child" in out
    assert b"child now holds: overwritten by the parent" in out


def test_busybox_touch_stat_renice(tmp_path: Path) -> None:
    """busybox touch -d/-a/-m (utimensat), stat's times and file types, renice
    (setpriority) and ls of /dev/full and /dev/shm print what they print natively."""
    bb = Path("/bin/busybox")
    if not bb.is_file():
        pytest.skip("busybox is not installed (busybox-static)")
    script = ('cd /tmp; touch -d @1000 f; stat -c "%X %Y" f; touch -a -d @2000 f; stat -c "%X %Y" f; '
              'touch -m -d @3000 f; stat -c "%X %Y %F" f; renice -n 3 -p $$; echo rc=$?; mkfifo p; '
              'stat -c %F p; ls -ld /dev/full /dev/shm | cut -c1-10')
    want = native(bb, "sh", "-c", script.replace("cd /tmp", f"cd {tmp_path}"))
    got = guest(bb, "sh", "-c", script)
    assert got[:2] == want[:2]
    assert got[0].startswith(b"1000 1000\n2000 1000\n2000 3000 regular empty file\n")


def test_facilities_are_deterministic(build: Build) -> None:
    """Two runs of the socket and event programs on two cores are the same to the nanosecond:
    output, status, simulated time, calls and copies."""
    for name in ("sockets", "events"):
        exe = build(name)
        runs = []
        for _ in range(2):
            out: list[bytes] = []
            res = run(exe, [GUEST_DIR], out=lambda fd, b, out=out: out.append(b), cores=2)
            runs.append((b"".join(out), res.status, res.sim_ns, res.stats["calls"], res.stats["cow_copies"]))
        assert runs[0] == runs[1]


def test_syscall_count() -> None:
    """The table implements at least 220 calls (entries that only return ENOSYS do not count)."""
    assert len(implemented()) >= 220
    assert all(TABLE[nr].fn is not sys_enosys for nr, _ in implemented())
