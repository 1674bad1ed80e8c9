"""The PIN dialog of an AppCore: the question, the PIN and Enter (Esc: no), read from the AppCore's
own GUI session only.

The AppCores of the native split demo (``split_appcore``) and of the e-banking split with L4Linux
(``ebanking_appcore``) ask the user the same way; they differ only in what they call a yes.
"""

from __future__ import annotations

import hmac

from l4sim.machine.display import KEY_BACKSPACE, KEY_ENTER, KEY_ESC
from l4sim.security.gui_client import GuiClient
from l4sim.security.gui_protocol import EV_PRESS


async def ask_pin(g: GuiClient, question: str, pin: str, yes: str, fg: int, bg: int) -> bool:
    """Show ``question``; read the PIN and Enter (Esc: no) from this session's input only.

    The dialog fills the session's whole buffer; after Enter it shows ``yes`` (the right PIN)
    or "wrong PIN" and answers whether the PIN was right.
    """
    w, h = g.w, g.h
    await g.fill(0, 0, w, h, bg)
    await g.text(8, 8, question, fg, bg, scale=2)
    await g.text(8, 40, "Type your PIN and press Enter (Esc: cancel)", fg, bg)
    await g.refresh()
    typed = ""
    while True:
        for ev in await g.events():
            c = g.char(ev)
            if c is not None and c.isdigit():
                typed += c
            elif ev.kind == EV_PRESS and ev.code == KEY_BACKSPACE:
                typed = typed[:-1]
            elif ev.kind == EV_PRESS and ev.code == KEY_ESC:
                return False
            elif ev.kind == EV_PRESS and ev.code == KEY_ENTER:
                done = hmac.compare_digest(typed, pin)
                await g.fill(0, 72, w, 30, bg)
                await g.text(8, 78, yes if done else "wrong PIN", fg, bg, scale=2)
                await g.refresh()
                return done
            else:
                continue
            await g.fill(0, 56, w, 12, bg)
            await g.text(8, 58, "PIN: " + "*" * len(typed), fg, bg)
            await g.refresh(0, 56, w, 12)
