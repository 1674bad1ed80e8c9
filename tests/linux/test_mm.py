"""Memory calls of the personality: file-backed mmap, shared anonymous memory, mremap,
madvise, the address hint; natively and under l4sim the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.cli import main
from l4sim.linux.run import Result, run

from .conftest import native

Build = Callable[..., Path]


def _run(exe: Path, *args: str, strace: bool = False) -> tuple[Result, bytes, list[str]]:
    out = bytearray()
    lines: list[str] = []
    res = run(exe, list(args), out=lambda fd, b: out.extend(b) if fd == 1 else None,
              strace=lines.append if strace else None)
    return res, bytes(out), lines


FILEMAP = (b"offset ok=1 tail zero=1 first=o\n"
           b"private: mapping=# file=o other=o\n"
           b"fork: child saw copy=1 parent second=p\n"
           b"last page=p past end: signal 7\n"
           b"read-only store: signal 11\n"
           b"after mprotect: *\n"
           b"errors: 22 13 9 19\n"
           b"shared: 42 43\n"
           b"dev/zero: 0 5\n"
           b"hint taken=1\n"
           b"after unlink: b\n")


def test_private_file_mapping(build: Build) -> None:
    """A private file mapping reads the file from its offset, zeros after the file's end in the
    last page, SIGBUS past it; writes stay private (file and other mappings unchanged, the
    forked child has its own copy); errors as Linux's; the mapping outlives unlink."""
    res, out, _ = _run(build("filemap"))
    assert (res.status, out) == (0, FILEMAP)


def test_mremap_and_madvise(build: Build) -> None:
    """mremap grows in place when it can, moves with MREMAP_MAYMOVE (keeping the data), shrinks,
    goes to MREMAP_FIXED's address, grows a file mapping from the file; MADV_DONTNEED zeroes
    private anonymous pages, refills file pages, keeps shared ones; realloc of a big block."""
    res, out, lines = _run(build("mremap"), strace=True)
    assert res.status == 0
    assert out.splitlines() == [
        b"grow in place: same=1 kept=57344 new=0", b"blocked: ENOMEM", b"moved: away=1 kept=57353 last=9 new=0",
        b"old range free=1", b"shrink same=1 fixed at=1 kept=57344 tail=0", b"fixed without maymove: EINVAL",
        b"unmapped: EFAULT", b"file grown: first=100 p1=2 p2=3", b"dontneed rc=0: 12288 0 0 12288",
        b"file dontneed: first=1 p1=2", b"shared dontneed: 77", b"advice ok=0 unaligned=22 unknown=22 hole=12",
        b"realloc bad=0"]
    assert "mremap(0x400000000, 8192, 16384, 0x0, NULL) = 0x400000000" in lines
    assert any(ln.startswith("madvise(") and ln.endswith(", 4) = 0") for ln in lines)


@pytest.mark.parametrize("name", ["filemap", "mremap"])
def test_same_as_native(build: Build, name: str) -> None:
    """The memory programs print the same and exit the same natively and under l4sim."""
    exe = build(name)
    res = CliRunner().invoke(main, ["linux", "run", "--", str(exe)])
    assert (res.stdout_bytes, res.exit_code) == native(exe)


def test_page_beyond_the_file_is_sigbus_in_strace(build: Build) -> None:
    """The child touching a page past the file's end dies of SIGBUS, reported like strace."""
    _, _, lines = _run(build("filemap"), strace=True)
    assert any(ln.startswith("[pid ") and "--- SIGBUS {si_signo=SIGBUS, si_addr=0x" in ln for ln in lines)
    assert any(ln.endswith("+++ killed by SIGBUS +++") for ln in lines)


FILEMAP_SHARED = (b"mapped: [hello world] tail=. beyond=0\n"
                  b"after a store: [Hello world]\n"
                  b"after pwrite: [Hello World]\n"
                  b"second mapping: [HeLlo World]\n"
                  b"after the child's store: [HELlo World]\n"
                  b"msync: 0\n"
                  b"reopened: [HELlo World]\n"
                  b"rw shared of a read-only fd: EACCES\n"
                  b"after ftruncate: [HEL] then 0 0\n"
                  b"after append: [HELABC]\n")


def test_shared_file_mapping_is_the_files(build: Build, tmp_path: Path) -> None:
    """MAP_SHARED of a file: stores through it are the file's bytes (pread, a second mapping, a
    forked child's store, after munmap and reopening); pwrite, ftruncate and an append show in
    a mapping; msync; EACCES for a writable mapping of a read-only fd -- as natively."""
    exe = build("filemap_shared")
    assert native(exe, str(tmp_path)) == (FILEMAP_SHARED, 0)
    res, out, lines = _run(exe, "/tmp", strace=True)
    assert (res.status, out) == (0, FILEMAP_SHARED)
    assert any(ln.startswith("msync(") and ln.endswith(" = 0") for ln in lines)


def test_unmapping_gives_frames_back(build: Build) -> None:
    """munmap, madvise(MADV_DONTNEED) and a shrinking mremap free frames: a program that touches
    and drops 4 MiB twelve times runs in a 16 MiB machine."""
    out = bytearray()
    res = run(build("mapchurn"), [], out=lambda fd, b: out.extend(b), ram=16 << 20)
    assert (res.status, bytes(out)) == (0, b"rounds=12\n")
