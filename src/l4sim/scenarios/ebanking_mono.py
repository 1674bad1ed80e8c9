"""E-banking monolithic: the same application as ``ebanking``, everything in one Linux instance.

The comparison run of ``l4sim tcb compare ebanking``: the browser holds the keys and the PIN as
files, opens the bank's seal and makes the confirmation itself with busybox (``sha256sum``,
:func:`l4sim.scenarios.programs.ebanking_browser.monolithic`), and the user types the PIN into
the browser's page.  The transfer is booked as in the split application; what changed is what
the confirmation's security rests on -- the whole Linux instance and everything it ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.system import System, setup_script
from l4sim.scenarios.ebanking import honest_ok, needs_busybox
from l4sim.scenarios.programs.ebanking_common import BROWSER, PIN

SCRIPT = Path(__file__).resolve().parent / "scripts" / "ebanking_mono.py"

DEFAULT_INPUT = f"""\
# the user clicks into the bank's page, types the PIN, confirms
600ms click {BROWSER[0] + 300} {BROWSER[1] + 150}
650ms type {PIN}
720ms key enter
"""


def setup(kernel: Kernel, args: object = None) -> System:
    needs_busybox()
    return setup_script(kernel, SCRIPT)


def report(res: Any) -> dict[str, Any]:
    """No attacks here (the browser is the application): whether the transfer was booked."""
    text = res.kernel.machine.uart.text()
    return {"attacks": [], "honest_ok": honest_ok(text)}
