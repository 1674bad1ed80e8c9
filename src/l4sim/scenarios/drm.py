"""DRM split: encrypted media in L4Linux, the content key and the decoding in a native player
(Nizza's third case, with Nizza I's secure storage).

``scripts/drm.py`` boots the secure GUI, the secure storage of Nizza I (TPM driver, store,
storage server; measured boot), a shop (:mod:`l4sim.scenarios.programs.drm_shop`: a native
stand-in for the remote distributor), the player AppCore
(:mod:`l4sim.scenarios.programs.drm_player`: its device key and the licence's content key in
secure storage, the decoded frames drawn only into its own labelled view) and a Linux instance
whose busybox shell fetches the encrypted film and the licence into ``/media`` and has the
player play it (:mod:`l4sim.scenarios.programs.drm_linux`) -- attacking on the side.

The report watches the screen: the honest run worked when every frame of the film appeared,
decoded, in the player's view and Linux saw all of them shown.  Then the owner of the machine
boots a modified configuration on it (``scripts/drm_ripper.py``: the player's place taken by a
ripper with the player's channels; the TPM's state and the NVRAM as the honest boot left them):
its attack line joins the table.  ``--json`` adds ``attacks``, ``honest_ok``, ``frames_shown``
and ``modified_boot`` (that boot's console lines).

``l4sim tcb drm player`` is the player's TCB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.system import System, setup_script
from l4sim.scenarios.ebanking import attacks, needs_busybox
from l4sim.scenarios.programs.drm_common import FRAME_H, FRAMES, PLAYER, SCALE, frame, shown
from l4sim.scenarios.secure_storage import Nvram, boot_once

SCRIPTS = Path(__file__).resolve().parent / "scripts"
SCRIPT = SCRIPTS / "drm.py"
RIPPER = SCRIPTS / "drm_ripper.py"


class Watch:
    """Which frames of the film the screen showed, decoded, in the player's view."""

    def __init__(self) -> None:
        self.seen: list[int] = []


WATCH: dict[int, Watch] = {}


def watch_frames(kernel: Kernel) -> Watch:
    d = kernel.machine.display
    assert d is not None, "the script asks for a display"
    w = WATCH[id(kernel.machine)] = Watch()
    x, y, width, _h = PLAYER
    expected = [shown(frame(i)) for i in range(FRAMES)]
    row = width * 4

    def flushed(_x: int, _y: int, _w: int, _h: int) -> None:
        fb = d.fb
        got = b"".join(fb.screen[((y + r) * fb.width + x) * 4 : ((y + r) * fb.width + x) * 4 + row]
                       for r in range(FRAME_H * SCALE))
        for i, e in enumerate(expected):
            if got == e and i not in w.seen:
                w.seen.append(i)

    d.fb.on_flush.append(flushed)
    return w


def setup(kernel: Kernel, args: object = None) -> System:
    needs_busybox()
    system = setup_script(kernel, SCRIPT)
    watch_frames(kernel)
    return system


def modified_boot(res: Any) -> list[tuple[str, str]]:
    """Boot ``scripts/drm_ripper.py`` on the machine the honest run left (its TPM state and
    NVRAM): the console's lines, as (program, text)."""
    m = res.kernel.machine
    return boot_once(RIPPER, m.tpm.nv, Nvram(bytearray(m.nvram.data)), m.seed, m.ncores, None).lines


def report(res: Any) -> dict[str, Any]:
    """The attack table from what Linux and the ripper printed; the honest run worked when the
    screen showed every frame in the player's view."""
    text = res.kernel.machine.uart.text()
    watch = WATCH.pop(id(res.kernel.machine), Watch())
    found = attacks(text)
    lines = modified_boot(res)
    sealed = any(p == "storage" and "unseal refused" in t for p, t in lines)
    for a in attacks("\n".join(f"{p} | {t}" for p, t in lines)):
        a["refused"] = a["refused"] and sealed  # the storage must have said why
        found.append(a)
    honest = sorted(watch.seen) == list(range(FRAMES)) and f"the player showed {FRAMES} of {FRAMES} frames" in text
    return {"attacks": found, "honest_ok": honest, "frames_shown": len(watch.seen),
            "modified_boot": [f"{p} | {t}" for p, t in lines]}
