"""Resource limits (getrlimit, setrlimit, prlimit64), renameat2 and sigaltstack, against native Linux."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from l4sim.linux.run import run

Build = Callable[..., Path]


def test_limits_and_renameat2(build: Build) -> None:
    """RLIMIT_NOFILE bounds new descriptors (EMFILE at the soft limit), a soft limit above the
    hard one is EINVAL, prlimit64 reads what setrlimit set; renameat2's NOREPLACE and EXCHANGE
    behave as Linux's."""
    exe = build("limits")
    out = bytearray()
    res = run(exe, [], out=lambda fd, b: out.extend(b))
    text = out.decode()
    assert res.status == 0
    assert "nofile 1024 4096\nset=0\nopen: EMFILE after 5\nlast=7\n" in text
    assert "bad=-1 EINVAL\nprlimit 8\nunknown=-1 EINVAL\n" in text
    assert ("noreplace=-1 EEXIST\nexchange=0\na: B\nb: A\nexchange-missing=-1 ENOENT\n"
            "noreplace-new=0\na: missing\nc: B\nboth=-1 EINVAL\n") in text


def test_limits_same_as_native(build: Build) -> None:
    """The same program natively prints the same lines (from its own limits on, which depend on
    the host: compared after setrlimit)."""
    exe = build("limits")
    if not Path("/tmp").is_dir() or not os.access("/tmp", os.W_OK):
        pytest.skip("no writable /tmp")
    shutil.rmtree("/tmp/rn", ignore_errors=True)  # the program works in /tmp/rn
    try:
        native = subprocess.run([str(exe)], capture_output=True, timeout=60).stdout.decode()
    finally:
        shutil.rmtree("/tmp/rn", ignore_errors=True)
    out = bytearray()
    run(exe, [], out=lambda fd, b: out.extend(b))
    ours = out.decode()
    assert ours.split("set=0\n", 1)[1] == native.split("set=0\n", 1)[1]


def test_sigaltstack_same_as_native(build: Build) -> None:
    """An SA_ONSTACK handler runs on the alternate stack (old_ss says SS_ONSTACK, changing it
    there is EPERM); without SA_ONSTACK or once disabled, on the thread's stack."""
    exe = build("altstack")
    native = subprocess.run([str(exe)], capture_output=True, timeout=60)
    out = bytearray()
    res = run(exe, [], out=lambda fd, b: out.extend(b))
    assert (res.status, bytes(out)) == (native.returncode, native.stdout)
    assert b"onstack: on_alt=1 flags=1 eperm=1\nplain: on_alt=0 flags=0\ndisabled: on_alt=0\n" in out


def test_fault_signals_reach_their_handlers(build: Build) -> None:
    """SIGSEGV (unmapped: SEGV_MAPERR; read-only: SEGV_ACCERR, with si_addr), SIGFPE, SIGILL
    and SIGTRAP enter handlers that leave by siglongjmp, and a stack overflow is caught on
    the alternate stack -- the same output as natively."""
    exe = build("faultsig")
    native = subprocess.run([str(exe)], capture_output=True, timeout=60)
    out = bytearray()
    res = run(exe, [], out=lambda fd, b: out.extend(b))
    assert (res.status, bytes(out)) == (native.returncode, native.stdout)
    assert b"unmapped: sig=11 code=1 addr_page=0x50000000\nreadonly: sig=11 code=2 same_page=1\n" in out
    assert b"divide: sig=8 code=1\nud2: sig=4 code=2\nint3: sig=5\noverflow: sig=11\n" in out


@pytest.mark.parametrize("cores", [1, 2])
def test_signals_interrupt_code_that_makes_no_system_call(build: Build, cores: int) -> None:
    """A process or thread spinning in user mode still gets its signals (the personality makes
    it raise a triggered exception with ex_regs): a handler runs, a default action kills."""
    exe = build("spinsig")
    native = subprocess.run([str(exe)], capture_output=True, timeout=60)
    out = bytearray()
    res = run(exe, [], out=lambda fd, b: out.extend(b), cores=cores)
    assert (res.status, bytes(out)) == (native.returncode, native.stdout)
    assert bytes(out) == b"child caught\nchild: signaled=1 sig=15\nthread: 7\n"


def test_sched_yield_lets_the_other_thread_run(build: Build) -> None:
    """Two threads yielding in a loop on one core alternate once both run (sched_yield's
    answer, through the saved reply capability, queues the caller behind the ready threads of
    its priority)."""
    out = bytearray()
    res = run(build("yield"), [], out=lambda fd, b: out.extend(b))
    seen = bytes(out).strip()
    assert res.status == 0 and sorted(seen) == sorted(b"0" * 20 + b"1" * 20)
    assert b"0101010101010101" in seen


def test_another_system_call_does_not_yield(build: Build) -> None:
    """The same threads calling getppid instead: a system call's answer resumes the caller ahead
    of the other ready thread of its priority (docs/kernel.md, "Scheduling"), so each runs its
    20 rounds in one go, as on Linux -- a call is no yield."""
    out = bytearray()
    res = run(build("yield", "-DCALL=getppid"), [], out=lambda fd, b: out.extend(b))
    assert res.status == 0 and bytes(out).strip() in (b"0" * 20 + b"1" * 20, b"1" * 20 + b"0" * 20)


def test_ctrl_c_reaches_a_spinning_program(build: Build) -> None:
    """A key typed at the host's terminal is the UART's interrupt: the personality takes it
    even while the guest spins without system calls, runs the SIGINT handler, and the next
    Ctrl-C (default action) ends the program with 130."""
    typed: list[int] = []
    out = bytearray()

    def show(fd: int, data: bytes) -> None:
        out.extend(data)
        if data in (b"ready\n", b"again\n"):
            typed.append(2)  # Ctrl-C, as the CLI's SIGINT handler does

    res = run(build("spinint"), [], out=show, interrupts=typed)
    assert (res.status, bytes(out)) == (130, b"ready\ngot 2\nagain\n")
