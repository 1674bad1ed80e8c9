"""``l4sim linux run`` and ``l4sim linux syscalls``: output byte for byte, statuses, errors,
and the same results as running the binary natively."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.cli import main
from l4sim.linux.syscalls import TABLE, sys_enosys

from .conftest import native

Build = Callable[..., Path]


def l4sim(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_run_prints_stdout_and_exits_with_the_status(build: Build) -> None:
    """`linux run -- PROGRAM ARGS` prints the program's stdout and exits with its status."""
    res = l4sim("linux", "run", "--", str(build("argv")), "x", "--strace")
    assert res.exit_code == 2 and res.stdout_bytes == b"argc=3\n[x]\n[--strace]\n"
    assert res.stderr == ""


def test_run_strace_goes_to_stderr(build: Build) -> None:
    """--strace prints the calls on stderr and leaves stdout as the program wrote it."""
    res = l4sim("linux", "run", "--strace", "--", str(build("hello")))
    assert res.exit_code == 0 and res.stdout_bytes == b"hello, world\n"
    assert ('write(1, "hello, world\\n", 13) = 13' in res.stderr.splitlines()
            or 'writev(1, [{iov_base="hello, world", iov_len=12}, {iov_base="\\n", iov_len=1}], 2) = 13'
            in res.stderr.splitlines())
    assert res.stderr.splitlines()[-1] == "+++ exited with 0 +++"


def test_run_killed_by_sigsegv_exits_139(build: Build) -> None:
    """A program killed by SIGSEGV makes `linux run` exit with 139."""
    res = l4sim("linux", "run", "--", str(build("segv")))
    assert res.exit_code == 139 and res.stdout_bytes == b"before\n"


def test_run_with_several_cores(build: Build) -> None:
    """--cores 4 runs the same program to the same result."""
    res = l4sim("linux", "run", "--cores", "4", "--", str(build("malloc")))
    assert res.exit_code == 0 and res.stdout_bytes == b"sum=124716 big=-128 heap_grew=1\n"


@pytest.mark.parametrize(("name", "args"), [
    ("hello", ()), ("exit42", ()), ("argv", ("one", "two words", "3")), ("malloc", ()), ("mmap", ()),
    ("segv", ()), ("ud2", ()), ("abort", ()), ("divzero", ())])
def test_same_as_native(build: Build, name: str, args: tuple[str, ...]) -> None:
    """The same binary and arguments give the same stdout and status natively and under l4sim."""
    exe = build(name)
    want = native(exe, *args)
    res = l4sim("linux", "run", "--", str(exe), *args)
    assert (res.stdout_bytes, res.exit_code) == want


def _one_line_error(res: Result) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("l4sim: ") and "Traceback" not in res.output
    return lines[0]


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    """A program that does not exist: one line, status 2."""
    line = _one_line_error(l4sim("linux", "run", "--", str(tmp_path / "nope")))
    assert line == f"l4sim: {tmp_path / 'nope'}: no such file"


def test_non_elf_is_one_line(tmp_path: Path) -> None:
    """A shell script is not an ELF file: one line, status 2."""
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    assert _one_line_error(l4sim("linux", "run", str(script))) == f"l4sim: {script}: not an ELF file"


def test_dynamic_elf_is_one_line() -> None:
    """A dynamically linked host binary is refused in one line naming its interpreter."""
    exe = Path("/bin/true")
    if not exe.exists():
        pytest.skip("no /bin/true")
    line = _one_line_error(l4sim("linux", "run", str(exe)))
    assert "dynamically linked (interpreter" in line


def test_syscalls_lists_the_table_with_a_count() -> None:
    """`linux syscalls` prints one line per implemented call and the count."""
    res = l4sim("linux", "syscalls")
    lines = res.stdout.splitlines()
    assert res.exit_code == 0
    real = [nr for nr, sc in TABLE.items() if sc.fn is not sys_enosys]
    assert lines[-1] == f"{len(real)} system calls" and len(lines) == len(real) + 1
    assert "   1  write" in lines and " 231  exit_group" in lines
    assert " 334  rseq" not in lines  # answered with ENOSYS: not an implementation
