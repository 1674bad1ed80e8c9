"""The bank of the split demo: transaction pages MACed for the AppCore; transfers only with its signature."""

from __future__ import annotations

from l4sim.kernel.abi import Err, unpack_bytes
from l4sim.scenarios.programs.split_common import (
    BANK,
    GET_TX,
    SUBMIT,
    mac,
    same,
    tx_text,
    unpack_tx,
)
from l4sim.user.env import Env, Gate


async def bank(env: Env, channel_key: bytes, sign_key: bytes) -> int:
    """The bank: hands out transaction pages MACed for the AppCore, accepts signed ones only."""
    await env.cap("net", Gate).bind(env.thread, 0x10)
    nonce = 1000
    msg = await env.wait()
    while True:
        reply: tuple[int, ...] = (-Err.ENOSYS,)
        w = msg.words
        if msg.error:
            msg = await env.wait()
            continue
        if msg.proto == BANK and w and w[0] == GET_TX and len(w) > 2:
            payee = unpack_bytes(w[2:]).decode("utf-8", "replace")
            nonce += 1
            reply = (0, w[1], nonce, *mac(channel_key, tx_text(payee, w[1], nonce)))
        elif msg.proto == BANK and w and w[0] == SUBMIT:
            tx = unpack_tx(w[1:])
            if tx is None:
                reply = (-Err.EINVAL,)
            else:
                payee, cents, n, sig = tx
                good = same(sig, mac(sign_key, b"confirmed|" + tx_text(payee, cents, n)))
                verdict = "accepted" if good else "refused (no valid AppCore signature)"
                await env.print(f"bank: transfer of {cents / 100:.2f} EUR to {payee} {verdict}")
                reply = (0,) if good else (-Err.EACCES,)
        msg = await env.reply_and_wait(reply[0], *reply[1:])
