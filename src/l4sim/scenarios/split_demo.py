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

import re
from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.system import System, setup_script
from l4sim.scenarios.programs.split_common import CORE, FAKE, FAKE_OK
from l4sim.security.gui import LABEL_H, label_shown

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
_ATTACK = re.compile(r"^(\S+)\s*\| attack (\S+): (refused by|SUCCEEDED)\s*(.*)$")
_HONEST = re.compile(r"^browser\s*\| honest: (ok|failed)")


class _Watch:
    """Watches the screen: which label the fake dialog's bar showed."""

    def __init__(self) -> None:
        self.labels: set[str] = set()


WATCH: dict[int, _Watch] = {}


def setup(kernel: Kernel, args: object = None) -> System:
    system = setup_script(kernel, SCRIPTS / "split_demo.py")
    d = kernel.machine.display
    assert d is not None, "the script asks for a display"
    watch = _Watch()
    WATCH[id(kernel.machine)] = watch

    def flushed(x: int, y: int, w: int, h: int) -> None:
        for who in ("browser", "appcore"):
            if label_shown(d.fb, FAKE_BAR[0], FAKE_BAR[1], who):
                watch.labels.add(who)

    d.fb.on_flush.append(flushed)
    return system


def report(res: Any) -> dict[str, Any]:
    """The attack table from what the programs printed and what the screen showed."""
    text = res.kernel.machine.uart.text()
    attacks = []
    for line in text.splitlines():
        m = _ATTACK.match(line)
        if m is not None:
            refused = m.group(3) == "refused by"
            by = m.group(4).strip() if refused else "(nothing: the attack worked)"
            attacks.append({"name": m.group(2), "refused": refused, "by": by})
    watch = WATCH.pop(id(res.kernel.machine), _Watch())
    for a in attacks:
        if a["name"] == "fake-dialog":  # the screen itself must have shown the browser's label
            a["refused"] = a["refused"] and watch.labels == {"browser"}
    honest = any((m := _HONEST.match(line)) is not None and m.group(1) == "ok" for line in text.splitlines())
    return {"attacks": attacks, "honest_ok": honest}
