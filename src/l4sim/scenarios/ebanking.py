"""E-banking split: the untrusted browser in L4Linux, the trusted AppCore native (Nizza II).

``scripts/ebanking.py`` boots the secure GUI, a bank, the AppCore and the browser -- busybox in
a Linux instance whose display is its own GUI session (``/dev/fb0``, ``/dev/input/event0``:
:mod:`l4sim.linux.fb`), with channels to the bank and the AppCore as ``/dev/l4/net`` and
``/dev/l4/core``.  The programs are :mod:`l4sim.scenarios.programs.ebanking_browser`,
``ebanking_bank`` and ``ebanking_appcore``.

The user (:data:`DEFAULT_INPUT`) looks at X-ray mode (the dialog asking to confirm a transfer to
Mallory is inside the browser's view), is fooled all the same for a moment (clicks its OK,
presses Enter), then clicks the AppCore's view, types the PIN and presses Enter.  The browser
attacks on the side; the summary ends with the table of attacks -- each refused or not, and by
which mechanism -- and whether the honest transfer was booked; ``--json`` adds ``attacks`` and
``honest_ok``.  ``l4sim tcb compare ebanking`` sets the AppCore's TCB beside the same
application run monolithically (``ebanking-mono``: everything in one Linux instance).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.ned import ScriptError
from l4sim.runtime.system import System, setup_script
from l4sim.scenarios.programs.ebanking_common import BROWSER, CORE, FAKE_OK, PIN
from l4sim.security.gui import LABEL_H, label_shown

SCRIPT = Path(__file__).resolve().parent / "scripts" / "ebanking.py"

DEFAULT_INPUT = f"""\
# X-ray mode: who draws what (the dialog asking for Mallory's transfer is the browser's)
300ms key sak
400ms key sak
# fooled all the same: the user clicks the dialog's OK and presses Enter
450ms click {BROWSER[0] + FAKE_OK[0] + 20} {BROWSER[1] + FAKE_OK[1] + 10}
470ms key enter
# the real AppCore: click its view, type the PIN, confirm
600ms click {CORE[0] + 200} {CORE[1] + 60}
650ms type {PIN}
720ms key enter
"""

#: ``l4sim tcb compare ebanking``: the same application in one Linux instance, against the AppCore
TCB_COMPARE = {
    "monolithic": ("ebanking-mono", ["browser"]),
    "split": ("ebanking", "appcore"),
    "paper": "e-commerce",
    "note": "Monolithic: the browser, the keys, the PIN and the confirmation in one Linux instance "
            "(ebanking-mono), whose TCB counts the personality and the guest programs it ran "
            "(their code at 8 bytes a line). Split: the AppCore's TCB (the browser is not in it).",
}

_ATTACK = re.compile(r"^(\S+)\s*\| attack (\S+): (refused by|SUCCEEDED)\s*(.*)$")
_HONEST = re.compile(r"^browser\s*\| honest: (ok|failed)")


def needs_busybox() -> None:
    if shutil.which("busybox") is None and not Path("/bin/busybox").is_file():
        raise ScriptError("the e-banking browser is busybox in a Linux instance: install a static busybox "
                          "(Debian: apt-get install busybox-static)")


class Watch:
    """What the screen showed on the browser's label bar (the fake dialog sits in that view)."""

    def __init__(self) -> None:
        self.labels: set[str] = set()


WATCH: dict[int, Watch] = {}


def watch_labels(kernel: Kernel, who: tuple[str, ...], bar: tuple[int, int]) -> Watch:
    """Watch the label bar at ``bar`` (its top left corner on the screen) for the labels of ``who``.

    The split demo watches its fake dialog's bar the same way, so both scenarios' reports read
    :data:`WATCH`.
    """
    d = kernel.machine.display
    assert d is not None, "the script asks for a display"
    w = WATCH[id(kernel.machine)] = Watch()

    def flushed(_x: int, _y: int, _w: int, _h: int) -> None:
        for name in who:
            if label_shown(d.fb, bar[0], bar[1], name):
                w.labels.add(name)

    d.fb.on_flush.append(flushed)
    return w


def setup(kernel: Kernel, args: object = None) -> System:
    needs_busybox()
    system = setup_script(kernel, SCRIPT)
    watch_labels(kernel, ("browser", "appcore"), (BROWSER[0], BROWSER[1] - LABEL_H))
    return system


def attacks(text: str) -> list[dict[str, Any]]:
    """The ``attack NAME: ...`` lines of a run's console."""
    out = []
    for line in text.splitlines():
        m = _ATTACK.match(line)
        if m is not None:
            refused = m.group(3) == "refused by"
            by = m.group(4).strip() if refused else "(nothing: the attack worked)"
            out.append({"name": m.group(2), "refused": refused, "by": by})
    return out


def report(res: Any) -> dict[str, Any]:
    """The attack table from what the programs printed and what the screen showed."""
    text = res.kernel.machine.uart.text()
    found = attacks(text)
    watch = WATCH.pop(id(res.kernel.machine), Watch())
    for a in found:
        if a["name"] == "fake-dialog":  # the screen must have named the browser above the dialog
            a["refused"] = a["refused"] and watch.labels == {"browser"}
    return {"attacks": found, "honest_ok": honest_ok(text)}


def honest_ok(text: str) -> bool:
    """Whether the browser's line ``honest: ok`` is on a run's console (the transfer was booked)."""
    return any((m := _HONEST.match(line)) is not None and m.group(1) == "ok" for line in text.splitlines())
