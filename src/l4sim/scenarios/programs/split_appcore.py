"""The AppCore of the split demo: checks the bank's MAC, shows the transfer in its own view, takes the
PIN and Enter from its own GUI session only, and signs exactly what the user saw."""

from __future__ import annotations

from l4sim.kernel.abi import Err
from l4sim.scenarios.programs.appcore_pin import ask_pin
from l4sim.scenarios.programs.split_common import (
    APPCORE,
    CONFIRM,
    CORE,
    mac,
    same,
    tx_text,
    unpack_tx,
)
from l4sim.security.gui_client import GuiClient
from l4sim.user.env import Env, Gate


async def appcore(env: Env, channel_key: bytes, sign_key: bytes, pin: str) -> int:
    """The AppCore: verify, show, take the PIN and Enter from its own view, sign."""
    g = GuiClient(env)
    x, y, w, h = CORE
    await g.buffer(w, h)
    await g.fill(0, 0, w, h, 0xE8F0E8)
    await g.text(8, 8, "AppCore: waiting for a transaction", 0x103010, 0xE8F0E8)
    await g.view(x, y, w, h, title="secure confirmation")
    await env.cap("core", Gate).bind(env.thread, 0x10)
    msg = await env.wait()
    while True:
        reply: tuple[int, ...] = (-Err.ENOSYS,)
        if msg.error:
            msg = await env.wait()
            continue
        tx = unpack_tx(msg.words[1:]) if msg.proto == APPCORE and msg.words and msg.words[0] == CONFIRM else None
        if tx is not None:
            payee, cents, n, tag = tx
            if not same(tag, mac(channel_key, tx_text(payee, cents, n))):
                await env.print("appcore: a transaction without the bank's MAC: refused")
                reply = (-Err.EACCES,)
            else:
                ok = await ask_pin(g, f"Transfer {cents / 100:.2f} EUR to {payee}?", pin, "confirmed and signed",
                                   0x103010, 0xE8F0E8)
                if ok:
                    await env.print(f"appcore: the user confirmed {cents / 100:.2f} EUR to {payee}: signed")
                    reply = (0, *mac(sign_key, b"confirmed|" + tx_text(payee, cents, n)))
                else:
                    await env.print("appcore: the user did not confirm")
                    reply = (-Err.EACCES,)
        msg = await env.reply_and_wait(reply[0], *reply[1:])
