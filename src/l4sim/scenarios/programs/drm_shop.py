"""The shop of ``l4sim boot drm``: a native stand-in for the remote distributor.

It holds the film's content key, sells the film as sealed frames
(:mod:`l4sim.scenarios.programs.drm_common`) and issues licences for the player whose device key
was registered with it.  Two channels, each request a string item and each answer bytes:

==================================  ===========================================  ===========
request                             answer                                       refusal
==================================  ===========================================  ===========
``net``: ``MEDIA TITLE I``          sealed frame I; nothing past the last        ``-ENOENT``
``net``: ``LICENCE TITLE``          a licence (``PLAYS`` plays, ``VALID_MS``)    ``-EAGAIN``
``net``: ``RENTAL TITLE``           a licence valid ``RENTAL_MS`` from now       ``-EAGAIN``
``register``: ``REGISTER HEX``      ``ok``: the device key licences are made for
==================================  ===========================================  ===========

``-EAGAIN``: no player registered yet; anything else ``-EINVAL``.  Linux holds ``net`` (its
``/dev/l4/net``), only the player holds ``register``.
"""

from __future__ import annotations

from l4sim.kernel.abi import OPEN_WAIT, RECV, REPLY, Err, StrBuf, StrItem
from l4sim.kernel.traps import Ipc
from l4sim.scenarios.programs.drm_common import (
    FRAMES,
    PLAYS,
    RENTAL_MS,
    TITLE,
    VALID_MS,
    frame,
    make_licence,
    seal_frame,
)
from l4sim.user.env import Env, Gate
from l4sim.user.server import request_failed

NET_LABEL, REGISTER_LABEL = 0x10, 0x20
MAX_BYTES = 4096


class Shop:
    def __init__(self, content_key: bytes) -> None:
        self.content_key = content_key
        self.device_key: bytes | None = None
        self.next_id = 1
        self.frames = [seal_frame(content_key, TITLE, i, frame(i)) for i in range(FRAMES)]

    def net(self, text: str, now_ms: int) -> tuple[int, bytes]:
        w = text.split()
        if len(w) == 3 and w[0] == "MEDIA" and w[2].isdigit():
            if w[1] != TITLE:
                return -int(Err.ENOENT), b""
            i = int(w[2])
            return 0, self.frames[i] if i < FRAMES else b""
        if len(w) == 2 and w[0] in ("LICENCE", "RENTAL"):
            if w[1] != TITLE:
                return -int(Err.ENOENT), b""
            if self.device_key is None:
                return -int(Err.EAGAIN), b""
            lid, self.next_id = self.next_id, self.next_id + 1
            valid = VALID_MS if w[0] == "LICENCE" else RENTAL_MS
            return 0, make_licence(self.device_key, TITLE, lid, now_ms + valid, PLAYS, self.content_key)
        return -int(Err.EINVAL), b""

    def register(self, text: str) -> tuple[int, bytes]:
        w = text.split()
        if len(w) == 2 and w[0] == "REGISTER" and len(w[1]) == 64:
            try:
                self.device_key = bytes.fromhex(w[1])
            except ValueError:
                return -int(Err.EINVAL), b""
            return 0, b"ok\n"
        return -int(Err.EINVAL), b""


async def shop(env: Env, content_key: bytes) -> int:
    """Serve ``net`` and ``register`` (see the module)."""
    await env.cap("net", Gate).bind(env.thread, NET_LABEL)
    await env.cap("register", Gate).bind(env.thread, REGISTER_LABEL)
    base, _size = env.heap  # type: ignore[attr-defined]
    inbox, outbox = base, base + MAX_BYTES
    await env.mem.write(base, bytes(2 * MAX_BYTES))  # touched: a string copy resolves no fault
    s = Shop(content_key)
    rcv = (StrBuf(inbox, MAX_BYTES),)
    msg = await env.ipc(Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv))
    while True:
        if msg.error:  # nobody to answer
            msg = await env.ipc(Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv))
            continue
        label, data = -int(Err.EINVAL), b""
        try:
            got = [x for x in msg.items if isinstance(x, StrBuf)]
            text = (await env.mem.read(inbox, got[0].length)).decode("utf-8", "replace") if got else ""
            if msg.label & ~3 == NET_LABEL:
                label, data = s.net(text, await env.clock() // 1_000_000)
            elif msg.label & ~3 == REGISTER_LABEL:
                label, data = s.register(text)
                if label == 0:
                    await env.print("shop: a player registered its device key")
        except Exception as exc:  # the last line: answer, keep serving
            label, data = await request_failed(env, "shop", msg, exc), b""
        if data:
            await env.mem.write(outbox, data)
        items = (StrItem(outbox, len(data)),) if data else ()
        msg = await env.ipc(Ipc(0, REPLY | RECV | OPEN_WAIT, label, (), items, None, None, rcv))
