"""Guest programs for the Linux personality tests: C sources in ``guest/``, built at test time.

``build(name)`` compiles ``guest/NAME.c`` with ``gcc -static -O1`` (or ``-static-pie``) once per
test session into a temporary directory; tests skip cleanly when gcc or the
static C library is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

GUEST = Path(__file__).parent / "guest"


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    cc = shutil.which("gcc")
    out = tmp_path_factory.mktemp("linux-guest")
    done: dict[tuple[str, tuple[str, ...]], Path] = {}

    def _build(name: str, *flags: str) -> Path:
        if cc is None:
            pytest.skip("gcc is not installed")
        key = (name, flags)
        if key not in done:
            exe = out / (name + "".join(f.replace("-", "_") for f in flags))
            static = [] if "-static-pie" in flags else ["-static"]
            r = subprocess.run([cc, *static, "-O1", *flags, "-o", str(exe), str(GUEST / f"{name}.c")],
                               capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"cannot build a static guest program: {r.stderr.strip().splitlines()[-1:]}")
            done[key] = exe
        return done[key]

    return _build
