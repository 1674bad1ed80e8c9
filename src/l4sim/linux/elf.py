"""Reading static x86-64 ELF executables (with pyelftools).

:func:`parse` turns the bytes of a file into an :class:`Image`: the loadable
segments (already relocated by the load bias of a static-PIE), the entry
point and what the auxiliary vector needs (program-header address, count and
entry size).  Anything the personality cannot run -- not an ELF, not
x86-64, not an executable, dynamically linked (``PT_INTERP``), segments that
do not fit the file -- raises :class:`ElfError` with one line saying why.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.elffile import ELFFile

PAGE = 4096
#: where a static-PIE (ET_DYN without an interpreter) is loaded, as Linux does
PIE_BASE = 0x5555_5555_4000
#: segment flags
PF_X, PF_W, PF_R = 1, 2, 4


class ElfError(Exception):
    """The file cannot be run; ``str()`` is one line."""


@dataclass(frozen=True)
class Segment:
    vaddr: int  # relocated
    memsz: int
    data: bytes  # filesz bytes from the file
    flags: int  # PF_R | PF_W | PF_X


@dataclass(frozen=True)
class Image:
    entry: int
    segments: tuple[Segment, ...]
    phdr: int  # address of the program headers in the loaded image (0: not loaded)
    phnum: int
    phent: int
    pie: bool
    bias: int

    @property
    def end(self) -> int:
        """The first address after the highest segment (where brk starts, page-rounded)."""
        top = max(s.vaddr + s.memsz for s in self.segments)
        return (top + PAGE - 1) & ~(PAGE - 1)


def parse(data: bytes, name: str = "program") -> Image:
    """The loadable image of a static x86-64 executable; :class:`ElfError` otherwise."""
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{name}: not an ELF file")
    try:
        f = ELFFile(io.BytesIO(data))
        hdr = f.header
        if f.elfclass != 64 or not f.little_endian or hdr["e_machine"] != "EM_X86_64":
            raise ElfError(f"{name}: not an x86-64 ELF (class {f.elfclass}, machine {hdr['e_machine']})")
        etype = hdr["e_type"]
        if etype not in ("ET_EXEC", "ET_DYN"):
            raise ElfError(f"{name}: not an executable (ELF type {etype})")
        segs = list(f.iter_segments())
        for s in segs:
            if s["p_type"] == "PT_INTERP":
                interp = s.get_interp_name() if hasattr(s, "get_interp_name") else "?"
                raise ElfError(f"{name}: dynamically linked (interpreter {interp}); only static executables run")
        loads = [s for s in segs if s["p_type"] == "PT_LOAD"]
        if not loads:
            raise ElfError(f"{name}: no loadable segments")
        pie = etype == "ET_DYN"
        bias = PIE_BASE if pie else 0
        out = []
        for s in loads:
            off, filesz, memsz, vaddr = s["p_offset"], s["p_filesz"], s["p_memsz"], s["p_vaddr"]
            if off + filesz > len(data) or filesz > memsz or vaddr + memsz >= 1 << 47:
                raise ElfError(f"{name}: malformed segment at {vaddr:#x} (offset {off:#x}, size {filesz:#x})")
            flags = s["p_flags"] & 7
            out.append(Segment(vaddr + bias, memsz, data[off : off + filesz], flags))
        phoff, phnum, phent = hdr["e_phoff"], hdr["e_phnum"], hdr["e_phentsize"]
        phdr = 0
        for s in segs:
            if s["p_type"] == "PT_PHDR":
                phdr = s["p_vaddr"] + bias
        if not phdr:
            for s in loads:
                if s["p_offset"] <= phoff < s["p_offset"] + s["p_filesz"]:
                    phdr = s["p_vaddr"] + (phoff - s["p_offset"]) + bias
        entry = hdr["e_entry"] + bias
        if not any(s.vaddr <= entry < s.vaddr + s.memsz and s.flags & PF_X for s in out):
            raise ElfError(f"{name}: entry point {entry:#x} is not in an executable segment")
        return Image(entry, tuple(out), phdr, phnum, phent, pie, bias)
    except ElfError:
        raise
    except (_PyElfError, ValueError, KeyError, IndexError, OSError) as e:
        raise ElfError(f"{name}: malformed ELF ({e})") from None
    except Exception as e:  # pyelftools raises construct errors on truncated files
        raise ElfError(f"{name}: malformed ELF ({type(e).__name__})") from None
