"""The AppCore of the e-banking scenario: the small trusted part of the application.

It alone holds the channel key it shares with the bank and the key of its confirmations.  The
browser (untrusted: busybox in a Linux instance) hands it the bank's sealed transaction
through ``core`` (a write to ``/dev/l4/core``: the seal as a string item); the AppCore opens
the seal (a changed or forged one fails its tag), shows the transaction in its own view --
labelled ``appcore`` by the GUI, whatever anybody draws elsewhere -- takes the PIN and Enter
from its own session's input only, and answers with its confirmation of exactly what the
user saw (``txid payee cents MAC``); without the PIN it answers ``-EACCES``.
"""

from __future__ import annotations

from l4sim.kernel.abi import OPEN_WAIT, RECV, REPLY, Err, StrBuf, StrItem
from l4sim.kernel.traps import Ipc
from l4sim.scenarios.programs.appcore_pin import ask_pin
from l4sim.scenarios.programs.ebanking_common import (
    CORE,
    CORE_BG,
    CORE_FG,
    MAX_BYTES,
    amount,
    confirmation,
    open_seal,
)
from l4sim.security.gui_client import GuiClient
from l4sim.user.env import Env, Gate

CORE_LABEL = 0x10
#: Linux's errno for a message that fails its check (what the write to /dev/l4/core returns)
EBADMSG = 74


async def appcore(env: Env, channel_key: bytes, sign_key: bytes, pin: str) -> int:
    """Serve ``core``: open each seal, ask the user in the AppCore's own view, confirm."""
    g = GuiClient(env)
    x, y, w, h = CORE
    await g.buffer(w, h)
    await g.fill(0, 0, w, h, CORE_BG)
    await g.text(8, 8, "AppCore: waiting for a transaction", CORE_FG, CORE_BG)
    await g.view(x, y, w, h, title="secure confirmation")
    await env.cap("core", Gate).bind(env.thread, CORE_LABEL)
    base, _size = env.heap  # type: ignore[attr-defined]
    inbox, outbox = base, base + MAX_BYTES
    await env.mem.write(base, bytes(2 * MAX_BYTES))  # touched: a string copy resolves no fault
    rcv = (StrBuf(inbox, MAX_BYTES),)
    wait = Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv)
    msg = await env.ipc(wait)
    while True:
        if msg.error or msg.label & ~3 != CORE_LABEL:
            msg = await env.ipc(wait)
            continue
        got = [s for s in msg.items if isinstance(s, StrBuf)]
        blob = await env.mem.read(inbox, got[0].length) if got and got[0].length else b""
        label, data = await _confirm(env, g, blob, channel_key, sign_key, pin)
        if data:
            await env.mem.write(outbox, data)
        items = (StrItem(outbox, len(data)),) if data else ()
        msg = await env.ipc(Ipc(0, REPLY | RECV | OPEN_WAIT, label, (), items, None, None, rcv))


async def _confirm(env: Env, g: GuiClient, blob: bytes, channel_key: bytes, sign_key: bytes,
                   pin: str) -> tuple[int, bytes]:
    plain = open_seal(channel_key, blob)
    parts = plain.decode("utf-8", "replace").split("|") if plain is not None else []
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        await env.print("appcore: a transaction the bank did not seal: refused")
        return -EBADMSG, b""
    txid, payee, cents = int(parts[0]), parts[1], int(parts[2])
    if not await ask_pin(g, f"Transfer {amount(cents)} to {payee}?", pin, "confirmed", CORE_FG, CORE_BG):
        await env.print("appcore: the user did not confirm")
        return -int(Err.EACCES), b""
    await env.print(f"appcore: the user confirmed {amount(cents)} to {payee} (transfer {txid})")
    return 0, f"{txid} {payee} {cents} {confirmation(sign_key, txid, payee, cents)}\n".encode()
