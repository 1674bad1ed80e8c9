"""A split application, all native: an untrusted browser, a trusted AppCore, a bank.

``scripts/split_demo.py`` adds to the secure GUI of the ``gui`` scenario a
bank, an AppCore with a GUI session of its own, and a hostile browser
(:mod:`l4sim.scenarios.programs.split_common`).  The user (:data:`DEFAULT_INPUT`)
looks at the labels in X-ray mode (the "AppCore" dialog on top is labelled
browser), is fooled all the same for a moment (clicks the fake OK, presses
Enter), then clicks the AppCore's view and types the PIN.  The summary ends with the table of attacks and whether
the honest transfer went through; ``--json`` adds ``attacks`` and
``honest_ok`` to the summary object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.system import System, setup_script
from l4sim.scenarios import ebanking
from l4sim.scenarios.ebanking import watch_labels
from l4sim.scenarios.programs.split_common import CORE, FAKE, FAKE_OK
from l4sim.security.gui import LABEL_H

SCRIPTS = Path(__file__).resolve().parent / "scripts"

DEFAULT_INPUT = f"""\
# the secure attention key: X-ray mode shows who draws what (the "AppCore" dialog is the browser's)
300ms key sak
400ms key sak
# fooled all the same: the user clicks the browser's fake dialog and presses Enter
450ms click {FAKE_OK[0]} {FAKE_OK[1]}
470ms key enter
# the real AppCore: click its view, type the PIN, confirm
600ms click {CORE[0] + 200} {CORE[1] + 60}
650ms type 4711
720ms key enter
"""

#: ``l4sim tcb compare split-demo``: the application monolithic (the browser and the AppCore as
#: one program: the union of their TCBs) against split (the AppCore's TCB alone)
TCB_COMPARE = {
    "monolithic": ("split-demo", ["browser", "appcore"]),
    "split": ("split-demo", "appcore"),
    "paper": "e-commerce",
    "note": "Native demo: the monolithic application is the browser and the AppCore in one program. "
            "With L4Linux the browser runs in a Linux instance and the monolithic run puts all of it there.",
}

#: where the fake dialog's label bar is on the screen, and whose label it must show
FAKE_BAR = (FAKE[0], FAKE[1] - LABEL_H)


def setup(kernel: Kernel, args: object = None) -> System:
    system = setup_script(kernel, SCRIPTS / "split_demo.py")
    watch_labels(kernel, ("browser", "appcore"), FAKE_BAR)
    return system


def report(res: Any) -> dict[str, Any]:
    """The attack table from what the programs printed and what the screen showed.

    The console's lines and the screen's test are those of the e-banking split, whose
    :func:`~l4sim.scenarios.ebanking.report` reads them.
    """
    return ebanking.report(res)
