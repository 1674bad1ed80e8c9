"""The ``linux-pair`` scenario: two Linux instances and a native server between them.

sigma0, moe and ned boot; ned starts, from ``scripts/linux_pair.py``, each in a task of its
own with exactly the capabilities the script names:

- ``store`` -- a native record store (:mod:`l4sim.scenarios.programs.store`);
- ``alice`` and ``bob`` -- Linux instances (the personality, :mod:`l4sim.linux.instance`),
  each running busybox's shell with its own processes, pids and files, and the store's
  channel as ``/dev/l4/store``.  alice writes a record through her stub; bob reads it back
  through his; bob sees neither alice's files nor her processes, and has no device for a
  capability he was not given.

The instances need the host's busybox (Debian: ``busybox-static``), loaded into them as the
file-system server would.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.ned import ScriptError
from l4sim.runtime.system import System, setup_script

SCRIPT = Path(__file__).resolve().parent / "scripts" / "linux_pair.py"


def setup(kernel: Kernel, args: Any = None) -> System:
    if shutil.which("busybox") is None and not Path("/bin/busybox").is_file():
        raise ScriptError("the linux-pair scenario runs busybox in its Linux instances: install a static "
                          "busybox (Debian: apt-get install busybox-static)")
    return setup_script(kernel, SCRIPT)
