"""Reading executables: what is accepted and the one-line refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("elftools")

from l4sim.linux.elf import PF_W, PF_X, PIE_BASE, ElfError, parse


def test_static_executable_is_parsed(build: Callable[..., Path]) -> None:
    """A static ET_EXEC has its entry in an executable segment, a writable segment, and
    its program headers inside the loaded image."""
    img = parse(build("hello").read_bytes())
    assert not img.pie and img.bias == 0
    assert any(s.flags & PF_X and s.vaddr <= img.entry < s.vaddr + s.memsz for s in img.segments)
    assert any(s.flags & PF_W for s in img.segments)
    assert img.phent == 56 and img.phnum >= 4
    assert any(s.vaddr <= img.phdr < s.vaddr + len(s.data) for s in img.segments)
    assert img.end % 4096 == 0 and img.end >= max(s.vaddr + s.memsz for s in img.segments)


def test_static_pie_is_loaded_at_the_pie_base(build: Callable[..., Path]) -> None:
    """A static-PIE (ET_DYN, no interpreter) is relocated to PIE_BASE."""
    img = parse(build("hello", "-static-pie").read_bytes())
    assert img.pie and img.bias == PIE_BASE
    assert min(s.vaddr for s in img.segments) >= PIE_BASE and img.entry > PIE_BASE


def test_dynamic_executable_is_refused(build: Callable[..., Path], tmp_path: Path) -> None:
    """An executable with an interpreter is refused, naming it."""
    import shutil
    import subprocess

    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("gcc is not installed")
    exe = tmp_path / "dyn"
    subprocess.run([cc, "-O1", "-o", str(exe), str(Path(__file__).parent / "guest" / "hello.c")], check=True)
    with pytest.raises(ElfError, match=r"dyn: dynamically linked \(interpreter .*ld-linux"):
        parse(exe.read_bytes(), "dyn")


def test_non_elf_is_refused() -> None:
    """Bytes without the ELF magic are 'not an ELF file'."""
    with pytest.raises(ElfError, match=r"^x: not an ELF file$"):
        parse(b"#!/bin/sh\necho hi\n", "x")


def test_truncated_elf_is_refused(build: Callable[..., Path]) -> None:
    """An ELF cut short is refused as malformed, in one line."""
    with pytest.raises(ElfError, match="malformed") as e:
        parse(build("hello").read_bytes()[:3000], "cut")
    assert "\n" not in str(e.value)


def test_object_file_is_refused(tmp_path: Path) -> None:
    """A relocatable object (ET_REL) is not an executable."""
    import shutil
    import subprocess

    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("gcc is not installed")
    obj = tmp_path / "h.o"
    subprocess.run([cc, "-c", "-o", str(obj), str(Path(__file__).parent / "guest" / "hello.c")], check=True)
    with pytest.raises(ElfError, match="not an executable"):
        parse(obj.read_bytes(), "h.o")


def test_the_reader_agrees_with_pyelftools(build: Callable[..., Path]) -> None:
    """The segments, entry and program-header facts are pyelftools' (a static and a
    static-PIE executable, and busybox when it is there)."""
    import io
    import shutil

    from elftools.elf.elffile import ELFFile

    paths = [build("hello"), build("hello", "-static-pie")]
    if shutil.which("busybox"):
        paths.append(Path(shutil.which("busybox") or ""))
    for path in paths:
        data = path.read_bytes()
        img = parse(data)
        f = ELFFile(io.BytesIO(data))
        loads = [s for s in f.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert [(s.vaddr - img.bias, s.memsz, len(s.data), s.flags) for s in img.segments] == [
            (s["p_vaddr"], s["p_memsz"], s["p_filesz"], s["p_flags"] & 7) for s in loads]
        assert img.entry - img.bias == f.header["e_entry"]
        assert (img.phnum, img.phent) == (f.header["e_phnum"], f.header["e_phentsize"])


@pytest.mark.parametrize(("cut", "what"), [(40, "header"), (100, "program headers")])
def test_an_elf_cut_in_its_headers_is_malformed(build: Callable[..., Path], cut: int, what: str) -> None:
    """An ELF cut inside its header or program headers: one line, malformed."""
    with pytest.raises(ElfError, match="malformed") as e:
        parse(build("hello").read_bytes()[:cut], "cut")
    assert "\n" not in str(e.value)


def test_another_machine_is_refused() -> None:
    """A 64-bit ELF for AArch64 is named as such."""
    import struct

    hdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, 0, 64, 0, 0, 64,
                                                                    56, 0, 0, 0, 0)
    with pytest.raises(ElfError, match=r"^arm: not an x86-64 ELF \(class 64, machine EM_AARCH64\)$"):
        parse(hdr, "arm")
