"""Threads of the Linux personality: clone/clone3 threads, futexes, thread and group exit,
signals to threads, execve and fork from a thread, vfork, waitid -- on one core and on four."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.linux.run import Result, run

Build = Callable[..., Path]
CORES = (1, 4)


def _run(exe: Path, *args: str, cores: int = 1, strace: bool = False) -> tuple[Result, bytes, list[str]]:
    out = bytearray()
    lines: list[str] = []
    res = run(exe, list(args), out=lambda fd, b: out.extend(b) if fd == 1 else None,
              strace=lines.append if strace else None, cores=cores)
    return res, bytes(out), lines


def _native(exe: Path, *args: str) -> tuple[bytes, int]:
    r = subprocess.run([str(exe), *args], capture_output=True, timeout=60)
    return r.stdout, r.returncode if r.returncode >= 0 else 128 - r.returncode


@pytest.mark.parametrize("cores", CORES)
def test_threads_add_into_a_mutex_protected_counter(build: Build, cores: int) -> None:
    """Eight pthreads add into one counter under a mutex; pthread_join hands back each thread's
    return value; the threads have distinct tids and the process's pid."""
    res, out, _ = _run(build("threads_sum", "-pthread"), "8", "500", cores=cores)
    assert res.status == 0
    assert out == (b"threads=8 counter=18000 expected=18000 rets=140\n"
                   b"distinct_tids=1 same_pid=1 main_tid_is_pid=1\n")


@pytest.mark.parametrize("cores", CORES)
def test_condition_variable_ping_pong(build: Build, cores: int) -> None:
    """Two threads take strict turns through a condition variable; a broadcast releases three."""
    res, out, _ = _run(build("condvar", "-pthread"), "40", cores=cores)
    assert res.status == 0
    assert out == b"80 turns: ioioioioioioioioioio...\nalternating=1\nbroadcast released=3\n"


def test_exit_from_a_thread_ends_the_process(build: Build) -> None:
    """exit() in a thread is exit_group: the main thread, waiting in pthread_join, ends too."""
    res, out, lines = _run(build("thread_exit", "-pthread"), "group", strace=True)
    assert res.status == 3
    assert out == b"thread calls exit(3)\n"
    assert "[pid 3] exit_group(3) = ?" in lines  # pid 1 is init, 2 the program


def test_main_thread_exit_leaves_the_others_running(build: Build) -> None:
    """pthread_exit in main ends only the main thread: a detached thread and a later one run,
    and the process ends when the last thread does (status 0)."""
    res, out, lines = _run(build("thread_exit", "-pthread"), strace=True)
    assert res.status == 0
    assert out == b"detached ran=1\nlate thread after main's pthread_exit: ok\n"
    assert "exit(0) = ?" in lines  # the main thread's own exit, not exit_group


def test_futex_operations(build: Build) -> None:
    """EAGAIN, relative and absolute timeouts, wakes across threads, CMP_REQUEUE, WAKE_OP,
    pthread_cond_timedwait and EINTR from a handler."""
    res, out, _ = _run(build("futex", "-pthread"))
    assert res.status == 0
    assert out.decode().splitlines() == [
        "wait on changed word: EAGAIN", "wake without waiters: 0",
        "relative timeout: ETIMEDOUT waited>=30ms=1", "absolute timeout: ETIMEDOUT waited>=20ms=1",
        "deadline in the past: ETIMEDOUT", "bitset 0: EINVAL", "woken by another thread: 1",
        "cmp_requeue with a changed word: EAGAIN", "still waiting after requeue: 0",
        "requeued=2 woken on f2=2 returned=2", "wake_op=0 f2=5", "cond_timedwait: ETIMEDOUT",
        "signal during a wait: EINTR"]


def test_futex_timeouts_run_on_simulated_time(build: Build) -> None:
    """A 30 ms futex timeout takes 30 ms of simulated time (and a little more for the calls),
    the same in every run."""
    exe = build("futex", "-pthread")
    _, a, _ = _run(exe, "-v")
    _, b, _ = _run(exe, "-v")
    assert a == b
    waited = {ln.split()[0]: int(ln.split()[2]) for ln in a.decode().splitlines() if " waited " in ln}
    assert 30_000 <= waited["relative"] < 30_200
    assert 19_000 <= waited["absolute"] < 20_200


def test_futex_wait_is_answered_later(build: Build) -> None:
    """A futex wait blocks through a saved reply: the waker's call is traced before the
    waiter's result, and the waiter's line names its thread."""
    _, _, lines = _run(build("futex", "-pthread"), strace=True)
    wake = next(i for i, ln in enumerate(lines) if "FUTEX_WAKE_PRIVATE, 2147483647) = 1" in ln)
    waited = next(i for i, ln in enumerate(lines) if ln.startswith("[pid 3] futex(") and "FUTEX_WAIT_PRIVATE" in ln
                  and ln.endswith("= 0"))
    assert wake < waited


def test_strace_shows_clone_flags(build: Build) -> None:
    """pthread_create's clone carries the thread flags; the new thread's calls say [pid N]."""
    _, _, lines = _run(build("threads_sum", "-pthread"), "2", "10", strace=True)
    clone = next(ln for ln in lines if ln.startswith("clone("))
    assert ("flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS"
            "|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID") in clone
    assert clone.endswith(") = 3")  # pid 1 is init, 2 the program
    assert any(ln.startswith("[pid 3] gettid() = 3") for ln in lines)
    assert any(ln.startswith("[pid 4] exit(0) = ?") for ln in lines)


def test_waitid(build: Build) -> None:
    """waitid with P_PID, P_ALL and P_PGID; WNOHANG, WNOWAIT; exits and kills in the siginfo."""
    res, out, _ = _run(build("waitid"))
    assert res.status == 0
    assert out.decode().splitlines() == [
        "no children: r=-1 errno=ECHILD", "no options: EINVAL",
        "P_PID WNOWAIT: r=0 signo=17 code=CLD_EXITED status=5 pid_ok=1",
        "P_PID: r=0 signo=17 code=CLD_EXITED status=5 pid_ok=1",
        "WNOHANG while running: r=0 si_pid=0",
        "P_ALL after SIGKILL: r=0 signo=17 code=CLD_KILLED status=9 pid_ok=1",
        "P_PGID: r=0 signo=17 code=CLD_EXITED status=7 pid_ok=1",
        "SIGTERM: r=0 signo=17 code=CLD_KILLED status=15 pid_ok=1",
        "all reaped: r=-1 errno=ECHILD"]


@pytest.mark.parametrize("cores", CORES)
def test_signals_and_threads(build: Build, cores: int) -> None:
    """kill() reaches the thread that does not block the signal, pthread_kill the named thread;
    a blocked signal waits for its unblocking; SIGTERM and a thread's segfault end every thread;
    a fatal signal that was blocked ends the process once unblocked."""
    res, out, _ = _run(build("thread_signals", "-pthread"), cores=cores)
    assert res.status == 0
    assert out.decode().splitlines() == [
        "kill to the process: sig=10 handled by the unblocking thread=1",
        "child survives a blocked SIGTERM",
        "pthread_kill: sig=12 handled by the target=1", "pending while blocked=1",
        "delivered on unblock: sig=12 in main=1", "SIGTERM to a threaded process: signaled=1 sig=15",
        "a thread's segfault: signaled=1 sig=11", "fatal once unblocked: signaled=1 sig=15"]


def test_execve_from_a_thread(build: Build) -> None:
    """execve in a thread ends the other threads (one spins) and keeps the pid."""
    res, out, _ = _run(build("thread_exec", "-pthread"))
    assert res.status == 4
    assert out == b"before exec\nafter exec: same pid=1\n"


def test_fork_from_a_thread(build: Build) -> None:
    """A thread's fork makes a one-thread child (tid = pid) that can make threads; the main
    thread waits for it."""
    res, out, _ = _run(build("thread_fork", "-pthread"))
    assert res.status == 0
    assert out == b"waited for another thread's child: ok=1 code=5\n"


def test_clone3_and_vfork(build: Build) -> None:
    """clone3 makes a process and a thread (CLONE_CHILD_CLEARTID wakes the waiter); vfork's
    parent waits until the child has ended."""
    res, out, lines = _run(build("clone3"), strace=True)
    assert res.status == 0
    assert out.decode().splitlines() == [
        "clone3 process: exited=1 code=9", "vfork child runs first", "vfork parent goes on",
        "clone3 with a short struct: EINVAL", "clone3 thread: ran=1 parent_settid=1 cleared=1",
        "vfork child: code=6"]
    child_write = next(i for i, ln in enumerate(lines) if "vfork child runs first" in ln)
    vfork = next(i for i, ln in enumerate(lines) if ln.startswith("vfork() = "))
    assert child_write < vfork


def test_futex_in_shared_memory_between_processes(build: Build) -> None:
    """Without FUTEX_PRIVATE_FLAG a futex word in MAP_SHARED memory is one queue for parent and
    child: the parent's wake reaches the child's wait and the child's wake the parent's."""
    res, out, lines = _run(build("shared_futex"), strace=True)
    assert (res.status, out) == (0, b"child woke: code=7 wrote=42\n")
    assert any(ln.startswith("[pid 3] futex(") and "FUTEX_WAIT, 0, NULL) = 0" in ln for ln in lines)


def test_threads_run_side_by_side_on_several_cores(build: Build) -> None:
    """Four computing threads spread over four cores: the same result in about a quarter of the
    simulated time."""
    exe = build("parallel", "-pthread")
    one, out1, _ = _run(exe, "4", "200000", cores=1)
    four, out4, _ = _run(exe, "4", "200000", cores=4)
    assert out1 == out4 and one.status == four.status == 0
    assert four.sim_ns < 0.4 * one.sim_ns


@pytest.mark.parametrize("cores", CORES)
def test_threaded_runs_are_deterministic(build: Build, cores: int) -> None:
    """The same threaded program twice: the same output, strace and simulated time."""
    exe = build("threads_sum", "-pthread")
    a = _run(exe, "4", "200", cores=cores, strace=True)
    b = _run(exe, "4", "200", cores=cores, strace=True)
    assert a[1] == b[1] and a[2] == b[2] and a[0].sim_ns == b[0].sim_ns


def test_glibc_pthreads_use_clone3(tmp_path: Path) -> None:
    """glibc's pthread_create goes through clone3 (a 88-byte clone_args) and registers robust
    lists and rseq (ENOSYS): the same output as natively."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc")
    exe = tmp_path / "threads_sum_glibc"
    src = Path(__file__).parent / "guest" / "threads_sum.c"
    r = subprocess.run([gcc, "-static", "-O1", "-pthread", "-o", str(exe), str(src)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("no static glibc")
    res, out, lines = _run(exe, "3", "100", strace=True)
    assert (out, res.status) == _native(exe, "3", "100")
    assert any(ln.startswith("clone3({flags=CLONE_VM|") and ln.endswith(", 88) = 3") for ln in lines)


DIFFERENTIAL = [("threads_sum", ("6", "300")), ("condvar", ("30",)), ("thread_exit", ()),
                ("thread_exit", ("group",)), ("futex", ()), ("waitid", ()), ("thread_signals", ()),
                ("thread_exec", ()), ("thread_fork", ()), ("clone3", ()), ("shared_futex", ()),
                ("parallel", ("3", "20000"))]


@pytest.mark.parametrize("cores", CORES)
@pytest.mark.parametrize(("name", "args"), DIFFERENTIAL, ids=lambda v: v if isinstance(v, str) else None)
def test_same_as_native(build: Build, name: str, args: tuple[str, ...], cores: int) -> None:
    """The program natively and under the personality: the same stdout and exit status."""
    exe = build(name, "-pthread")
    want = _native(exe, *args)
    res, out, _ = _run(exe, *args, cores=cores)
    assert (out, res.status) == want
