"""Tiny static x86-64 programs for the guest executor tests, built at test time.

Each ``NAME.s`` here is GNU assembler source with a ``_start`` symbol and
everything (code and read-only data) in ``.text``.  :func:`build` assembles
and links it at a fixed address with ``as``/``ld`` into a temporary
directory and returns the flat image; a test loads it into frames itself.
Tests skip cleanly when the binutils are missing.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).parent
#: where every program's text is linked
TEXT = 0x401000


@dataclass(frozen=True)
class Program:
    """A linked program: its flat text image, load address, and symbol addresses."""

    image: bytes
    base: int
    symbols: dict[str, int]

    @property
    def entry(self) -> int:
        return self.symbols["_start"]


def build(name: str, tmp: Path, base: int = TEXT) -> Program:
    """Assemble and link ``NAME.s`` at ``base``; skip the test without binutils."""
    tools = {t: shutil.which(t) for t in ("as", "ld", "objcopy", "nm")}
    missing = [t for t, p in tools.items() if p is None]
    if missing:
        pytest.skip(f"binutils missing: {', '.join(missing)}")
    src = HERE / f"{name}.s"
    obj, exe, flat = tmp / f"{name}.o", tmp / name, tmp / f"{name}.bin"
    subprocess.run([tools["as"], "--64", "-o", str(obj), str(src)], check=True, capture_output=True)
    subprocess.run([tools["ld"], "-static", "-nostdlib", f"-Ttext={base:#x}", "-e", "_start", "-o", str(exe),
                    str(obj)], check=True, capture_output=True)
    subprocess.run([tools["objcopy"], "-O", "binary", "-j", ".text", str(exe), str(flat)], check=True,
                   capture_output=True)
    out = subprocess.run([tools["nm"], str(exe)], check=True, capture_output=True, text=True).stdout
    symbols = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = int(parts[0], 16)
    return Program(flat.read_bytes(), base, symbols)
