"""The personality running static glibc programs: loading, system calls, paging, signals."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.linux.run import Result, run
from l4sim.linux.syscalls import TABLE

Build = Callable[..., Path]


def _run(exe: Path, *args: str, seed: int = 0, strace: bool = False,
         ram: int = 256 << 20) -> tuple[Result, bytes, bytes, list[str]]:
    out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    lines: list[str] = []
    res = run(exe, list(args), out=lambda fd, b: out[fd].extend(b), seed=seed,
              strace=lines.append if strace else None, ram=ram)
    return res, bytes(out[1]), bytes(out[2]), lines


def test_hello_world(build: Build) -> None:
    """printf's text arrives on stdout and the status is 0."""
    res, out, err, _ = _run(build("hello"))
    assert (res.status, out, err) == (0, b"hello, world\n", b"")


def test_exit_status(build: Build) -> None:
    """exit(42) ends the run with status 42."""
    assert _run(build("exit42"))[0].status == 42


def test_argv_reaches_main(build: Build) -> None:
    """argc and argv (with spaces kept) are on the initial stack."""
    res, out, _, _ = _run(build("argv"), "a", "b c", "")
    assert res.status == 3 and out == b"argc=4\n[a]\n[b c]\n[]\n"


def test_auxv_and_environment(build: Build) -> None:
    """The auxiliary vector has the page size, the entry, the program headers, uid 0 and
    the platform, and the environment is set."""
    res, out, _, _ = _run(build("auxv"))
    lines = out.decode().splitlines()
    assert res.status == 0
    assert lines[0].startswith("pagesz=4096 entry_ok=1 phnum=") and lines[0].endswith(" uid=0")
    assert lines[2] == "platform=x86_64 path=set"


def test_at_random_comes_from_the_seed(build: Build) -> None:
    """AT_RANDOM's bytes are the same for the same machine seed and differ for another."""
    exe = build("auxv")
    a, b, c = (_run(exe, seed=s)[1].splitlines()[1] for s in (0, 0, 1))
    assert a == b and a != c and len(a) == len(b"random=") + 32


def test_malloc_uses_brk_and_mmap(build: Build) -> None:
    """sbrk grows the heap through brk, a 1 MiB malloc is an anonymous mmap (munmapped by
    free); the data written reads back."""
    res, out, _, lines = _run(build("malloc"), strace=True)
    assert res.status == 0 and out == b"sum=124716 big=-128 heap_grew=1\n"
    assert sum(ln.startswith("brk(") for ln in lines) >= 2
    assert any(ln.startswith("mmap(") and int(ln.split(", ")[1]) >= 1 << 20 for ln in lines)
    assert any(ln.startswith("munmap(") and ln.endswith("= 0") for ln in lines)


def test_anonymous_and_fixed_mmap(build: Build) -> None:
    """Anonymous pages start zeroed, keep what is written, and MAP_FIXED lands where asked."""
    res, out, _, _ = _run(build("mmap"))
    assert res.status == 0 and out == b"zero=1 sum=2016 fixed=7 at=0x200000000\n"


def test_store_to_unmapped_address_is_sigsegv(build: Build) -> None:
    """A store nobody can resolve kills the process with SIGSEGV: status 128 + 11; what it
    wrote before is kept."""
    res, out, _, lines = _run(build("segv"), strace=True)
    assert res.status == 139 and out == b"before\n"
    assert lines[-1] == "+++ killed by SIGSEGV +++"


def test_misc_calls(build: Build) -> None:
    """uname, getpid/gettid, the simulated monotonic clock, getrandom; syscall 500 is ENOSYS."""
    res, out, _, _ = _run(build("misc"))
    assert res.status == 0
    assert out == b"Linux x86_64 pid=2 tid=2 later=1 random=32 enosys=1\n"


def test_unimplemented_calls_are_counted(build: Build) -> None:
    """A number outside the table returns -ENOSYS, is counted by number, and strace names it."""
    res, _, _, lines = _run(build("misc"), strace=True)
    assert 500 not in TABLE
    assert res.stats["unimplemented"].get(500) == 1
    assert "syscall_0x1f4() = -1 ENOSYS (Function not implemented)" in lines


def test_strace_lines(build: Build) -> None:
    """--strace shows calls with decoded arguments and results, like strace."""
    _, _, _, lines = _run(build("hello"), strace=True)
    assert ('write(1, "hello, world\\n", 13) = 13' in lines
            or 'writev(1, [{iov_base="hello, world", iov_len=12}, {iov_base="\\n", iov_len=1}], 2) = 13' in lines)
    assert any(ln.startswith("arch_prctl(0x1002, 0x") and ln.endswith(") = 0") for ln in lines)
    assert lines[-2:] == ["exit_group(0) = ?", "+++ exited with 0 +++"]
    _, _, _, lines = _run(build("fileio"), strace=True)
    assert any(ln.startswith('open') and '"/tmp/a.txt", ' in ln for ln in lines)


def test_static_pie_runs(build: Build) -> None:
    """A static-PIE relocates itself at PIE_BASE and runs."""
    res, out, _, _ = _run(build("hello", "-static-pie"))
    assert (res.status, out) == (0, b"hello, world\n")


def test_runs_are_deterministic(build: Build) -> None:
    """Two runs of the same program and seed make the same calls and end at the same simulated time."""
    exe = build("misc")
    a, b = _run(exe, strace=True), _run(exe, strace=True)
    assert a[3] == b[3] and a[0].sim_ns == b[0].sim_ns > 0


def test_invalid_instruction_is_sigill(build: Build) -> None:
    """ud2 (__builtin_trap) kills the process with SIGILL (status 132), reported at its RIP."""
    res, _, _, lines = _run(build("ud2"), strace=True)
    assert res.status == 132
    assert re.fullmatch(r"--- SIGILL \{si_signo=SIGILL, si_addr=0x[0-9a-f]+\} ---", lines[-2]) and lines[-1] == "+++ killed by SIGILL +++"


def test_running_out_of_memory_is_sigkill(build: Build) -> None:
    """Touching more memory than the machine has (16 MiB) kills the process with SIGKILL
    (137), as the OOM killer would; the mmap itself succeeded (pages come on demand)."""
    res, out, _, lines = _run(build("hog"), strace=True, ram=16 << 20)
    assert res.status == 137 and out == b"mapped\n"
    assert lines[-1] == "+++ killed by SIGKILL +++"
