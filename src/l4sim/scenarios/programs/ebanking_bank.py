"""The bank of the e-banking scenarios: its pages, sealed transactions for the AppCore, transfers
booked only with the AppCore's confirmation (:mod:`l4sim.scenarios.programs.ebanking_common`).

It serves ``net`` with text requests, each a string item (what a write to ``/dev/l4/net``
sends), and answers with bytes (what a read then returns):

=================================  ==========================================  ===========
request                            answer                                      refusal
=================================  ==========================================  ===========
``PAGE NAME I``                    the I-th 4 KiB of page NAME (gzip); nothing
                                   past its end.  NAME: ``form``, ``done``,
                                   ``confirm-TXID``
``TX PAYEE CENTS``                 a new transaction, sealed for the AppCore
``SUBMIT TXID PAYEE CENTS MAC``    ``booked``                                  ``-EACCES``
=================================  ==========================================  ===========

anything else ``-EINVAL``.  A submission is booked when its MAC is the AppCore's confirmation of
exactly that transaction (:func:`~l4sim.scenarios.programs.ebanking_common.confirmation`),
and only once.
"""

from __future__ import annotations

import hashlib

from l4sim.kernel.abi import OPEN_WAIT, RECV, REPLY, Err, StrBuf, StrItem
from l4sim.kernel.traps import Ipc
from l4sim.scenarios.programs.ebanking_common import MAX_BYTES, amount, confirmation, page, seal
from l4sim.user.env import Env, Gate
from l4sim.user.server import request_failed

NET_LABEL = 0x10


class Bank:
    def __init__(self, channel_key: bytes, sign_key: bytes) -> None:
        self.channel_key, self.sign_key = channel_key, sign_key
        self.txs: dict[int, tuple[str, int]] = {}
        self.booked: set[int] = set()
        self.pages: dict[str, bytes] = {}
        self.verdicts: list[str] = []

    def _page(self, name: str) -> bytes | None:
        if name not in self.pages:
            if name in ("form", "done"):
                self.pages[name] = page(name).gz()
            elif name.startswith("confirm-") and name[8:].isdigit() and int(name[8:]) in self.txs:
                payee, cents = self.txs[int(name[8:])]
                self.pages[name] = page("confirm", payee, cents).gz()
            else:
                return None
        return self.pages[name]

    def answer(self, text: str) -> tuple[int, bytes]:
        """(label, answer bytes) of one request."""
        w = text.split()
        if len(w) == 3 and w[0] == "PAGE" and w[2].isdigit():
            data = self._page(w[1])
            if data is None:
                return -int(Err.ENOENT), b""
            i = int(w[2])
            return 0, data[i * MAX_BYTES : (i + 1) * MAX_BYTES]
        if len(w) == 3 and w[0] == "TX" and w[2].isdigit():
            txid = 1001 + len(self.txs)
            self.txs[txid] = (w[1], int(w[2]))
            nonce = hashlib.sha256(self.channel_key + txid.to_bytes(8, "little")).digest()[:16]
            return 0, seal(self.channel_key, nonce, f"{txid}|{w[1]}|{w[2]}".encode())
        if len(w) == 5 and w[0] == "SUBMIT" and w[1].isdigit() and w[3].isdigit():
            txid, payee, cents = int(w[1]), w[2], int(w[3])
            good = self.txs.get(txid) == (payee, cents) and txid not in self.booked and \
                w[4] == confirmation(self.sign_key, txid, payee, cents)
            verdict = "booked" if good else "refused (no AppCore confirmation of this transfer)"
            self.verdicts.append(f"bank: transfer {txid} of {amount(cents)} to {payee} {verdict}")
            if good:
                self.booked.add(txid)
                return 0, b"booked\n"
            return -int(Err.EACCES), b""
        return -int(Err.EINVAL), b""


async def bank(env: Env, channel_key: bytes, sign_key: bytes) -> int:
    """Serve ``net``: requests arrive in the first heap page, answers leave from the second."""
    await env.cap("net", Gate).bind(env.thread, NET_LABEL)
    base, _size = env.heap  # type: ignore[attr-defined]
    inbox, outbox = base, base + MAX_BYTES
    await env.mem.write(base, bytes(2 * MAX_BYTES))  # touched: a string copy resolves no fault
    b = Bank(channel_key, sign_key)
    rcv = (StrBuf(inbox, MAX_BYTES),)
    msg = await env.ipc(Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv))
    while True:
        if msg.error:  # nobody to answer
            msg = await env.ipc(Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv))
            continue
        label, data = -int(Err.EINVAL), b""
        if msg.label & ~3 == NET_LABEL:
            try:
                got = [s for s in msg.items if isinstance(s, StrBuf)]
                if got:
                    text = (await env.mem.read(inbox, got[0].length)).decode("utf-8", "replace")
                    label, data = b.answer(text)
                while b.verdicts:
                    await env.print(b.verdicts.pop(0))
            except Exception as exc:  # the last line: answer, keep serving
                label, data = await request_failed(env, "bank", msg, exc), b""
        if data:
            await env.mem.write(outbox, data)
        items = (StrItem(outbox, len(data)),) if data else ()
        msg = await env.ipc(Ipc(0, REPLY | RECV | OPEN_WAIT, label, (), items, None, None, rcv))
