"""Reading static x86-64 ELF executables.

:func:`parse` turns the bytes of a file into an :class:`Image`: the loadable
segments (already relocated by the load bias of a static-PIE), the entry
point and what the auxiliary vector needs (program-header address, count and
entry size).  Anything the personality cannot run -- not an ELF, not
x86-64, not an executable, dynamically linked (``PT_INTERP``), segments that
do not fit the file -- raises :class:`ElfError` with one line saying why.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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


#: e_machine names for the refusal of another machine (the ELF specification's)
_MACHINES = {3: "EM_386", 40: "EM_ARM", 62: "EM_X86_64", 183: "EM_AARCH64", 243: "EM_RISCV", 8: "EM_MIPS",
             20: "EM_PPC", 21: "EM_PPC64", 22: "EM_S390"}
_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
PT_LOAD, PT_INTERP, PT_PHDR = 1, 3, 6


def parse(data: bytes, name: str = "program") -> Image:
    """The loadable image of a static x86-64 executable; :class:`ElfError` otherwise.

    The ELF header and the program headers are all a loader reads (System V ABI, "Program
    Loading"), so that is all this reads: with :mod:`struct`, in microseconds."""
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{name}: not an ELF file")
    if len(data) < _EHDR.size:
        raise ElfError(f"{name}: malformed ELF (the header is cut short)")
    ident, etype, machine, _, e_entry, phoff, _, _, _, phent, phnum, _, _, _ = _EHDR.unpack_from(data)
    elfclass = {1: 32, 2: 64}.get(ident[4], 0)
    if elfclass != 64 or ident[5] != 1 or machine != 62:
        raise ElfError(f"{name}: not an x86-64 ELF (class {elfclass}, machine {_MACHINES.get(machine, machine)})")
    if etype not in (2, 3):
        raise ElfError(f"{name}: not an executable (ELF type {_TYPES.get(etype, etype)})")
    if phnum == 0 or phent < _PHDR.size or phoff + phnum * phent > len(data):
        raise ElfError(f"{name}: malformed ELF (program headers at {phoff:#x} outside the file)")
    segs = [_PHDR.unpack_from(data, phoff + i * phent) for i in range(phnum)]
    for p_type, _, off, _, _, filesz, _, _ in segs:
        if p_type == PT_INTERP:
            interp = data[off : off + filesz].split(b"\0", 1)[0].decode("utf-8", "backslashreplace") or "?"
            raise ElfError(f"{name}: dynamically linked (interpreter {interp}); only static executables run")
    loads = [sg for sg in segs if sg[0] == PT_LOAD]
    if not loads:
        raise ElfError(f"{name}: no loadable segments")
    pie = etype == 3
    bias = PIE_BASE if pie else 0
    out = []
    for _, flags, off, vaddr, _, filesz, memsz, _ in loads:
        if off + filesz > len(data) or filesz > memsz or vaddr + memsz >= 1 << 47:
            raise ElfError(f"{name}: malformed segment at {vaddr:#x} (offset {off:#x}, size {filesz:#x})")
        out.append(Segment(vaddr + bias, memsz, data[off : off + filesz], flags & 7))
    phdr = 0
    for p_type, _, _, vaddr, _, _, _, _ in segs:
        if p_type == PT_PHDR:
            phdr = vaddr + bias
    if not phdr:
        for _, _, off, vaddr, _, filesz, _, _ in loads:
            if off <= phoff < off + filesz:
                phdr = vaddr + (phoff - off) + bias
    entry = e_entry + bias
    if not any(sg.vaddr <= entry < sg.vaddr + sg.memsz and sg.flags & PF_X for sg in out):
        raise ElfError(f"{name}: entry point {entry:#x} is not in an executable segment")
    return Image(entry, tuple(out), phdr, phnum, phent, pie, bias)
