"""The default scenario: the runtime and the demo system of ``scripts/default.py``.

sigma0 and moe boot; moe starts ned; ned starts, each in a task of its own
with exactly the capabilities the script names:

- ``hello`` -- prints a line and exits;
- ``counter`` with ``client-a`` and ``client-b`` -- a server with one session
  per client; ``client-b`` crashes after using its session, and the server
  learns from the kernel's deletion notification that the session is gone;
- ``producer`` and ``consumer`` -- a ring buffer in a dataspace both attach;
- ``crasher`` -- touches memory it never attached: its region manager
  reports a segmentation fault to ned, and the rest keeps running.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.system import System, setup_script

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def setup(kernel: Kernel, args: Any = None) -> System:
    return setup_script(kernel, SCRIPTS / "default.py")
