"""The lifetime scenario (``scripts/lifetime.py``): a secret key and its copies.

See :mod:`l4sim.scenarios.programs.lifetime`; ``l4sim lifetime lifetime`` reports where the
key's copies lived and which outlived its use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.system import System, setup_script

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def setup(kernel: Kernel, args: Any = None) -> System:
    return setup_script(kernel, SCRIPTS / "lifetime.py")
