"""Guest programs for the Linux personality tests: C sources in ``guest/``, built at test time.

``build(name, *flags)`` compiles ``guest/NAME.c`` once per test session into a
temporary directory with the Zig C compiler of the pip package ``ziglang``
(``python -m ziglang cc -target x86_64-linux-musl -static``), so the tests need
nothing but pip; without ziglang the host's ``gcc -static`` (glibc) is used.
Tests skip cleanly when neither can build a static program.  ``LIBC`` says
which C library the programs were linked with ("musl" or "glibc").
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

GUEST = Path(__file__).parent / "guest"


def compiler() -> tuple[list[str], str] | None:
    """The C compiler command for static x86-64 Linux programs and its C library."""
    if importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-musl"], "musl"
    gcc = shutil.which("gcc")
    if gcc is not None:
        return [gcc], "glibc"
    return None


def host_tmpfs() -> Path | None:
    """/dev/shm when it is a writable tmpfs (the native reference for the guest's tmpfs /tmp)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    shm = Path("/dev/shm")
    ok = any(ln.split()[1:3] == ["/dev/shm", "tmpfs"] for ln in mounts if len(ln.split()) > 2)
    return shm if ok and shm.is_dir() and shutil.disk_usage(shm).free > 1 << 24 else None


CC = compiler()
LIBC = CC[1] if CC else ""


def native(exe: Path | str, *args: str, input: bytes | None = None) -> tuple[bytes, int]:
    """stdout and status of ``exe`` run on the host (128+N when killed by signal N), with a
    minimal environment and ``input`` (default: none) as stdin -- the guest's defaults."""
    stdin: dict[str, Any] = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    r = subprocess.run([str(exe), *args], capture_output=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
                       **stdin)
    return r.stdout, r.returncode if r.returncode >= 0 else 128 - r.returncode


@pytest.fixture
def native_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh host directory for a native run, on tmpfs when there is one (the guest's /tmp
    is tmpfs: directory sizes and link counts then agree)."""
    shm = host_tmpfs()
    if shm is None:
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="l4sim-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    out = tmp_path_factory.mktemp("linux-guest")
    done: dict[tuple[str, tuple[str, ...]], Path] = {}

    def _build(name: str, *flags: str) -> Path:
        if CC is None:
            pytest.skip("no C compiler: pip install ziglang (or install gcc)")
        key = (name, flags)
        if key not in done:
            exe = out / (name + "".join(re.sub(r"\W", "_", f) for f in flags))  # -I/path too
            if "-static-pie" in flags:  # zig cc spells it -fPIE -pie -static
                opts = [f for f in flags if f != "-static-pie"] + (
                    ["-fPIE", "-pie", "-static"] if LIBC == "musl" else ["-static-pie"])
            else:
                opts = ["-static", *flags]
            r = subprocess.run([*CC[0], *opts, "-O1", "-o", str(exe), str(GUEST / f"{name}.c")],
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                pytest.skip(f"cannot build a static guest program: {r.stderr.strip().splitlines()[-1:]}")
            done[key] = exe
        return done[key]

    return _build
