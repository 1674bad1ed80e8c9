"""The player AppCore of ``l4sim boot drm``: decryption and display split out of Linux.

Nizza's DRM case: the film stays encrypted in Linux's file system (Linux fetches it and sends
it here frame by frame); the content key and the licence's terms live in this player's secure
storage (Nizza I: the storage server's master key is sealed to the measured configuration, so
a player started by a changed script finds nothing); the decoded frames are drawn only into
the player's own labelled GUI view (no other client sees a session's pixels).

On its first start the player makes a device key from the TPM's random bytes, keeps it in
secure storage and registers it with the shop over its own channel (``register``).  It serves
``play`` (Linux's ``/dev/l4/player``); each request is a string item, its first line the
operation (:mod:`l4sim.scenarios.programs.drm_common` has the formats):

=========================  ===================================================  ===========
request                    what happens                                         refusal
=========================  ===================================================  ===========
``LICENCE`` + licence      opened under the device key; its id must be above    ``-EBADMSG``
                           every id taken before, its time not over; the        (forged),
                           content key and terms go to secure storage; ``ok``   ``-EACCES``
``PLAY TITLE``             a play of the licence's begins (one of its plays     ``-EACCES``
                           is spent, in secure storage); ``ok``
``FRAME I`` + frame        decrypted and shown in the view; ``shown I``         ``-EBADMSG``
``STOP``                   the play ends; ``ok``
=========================  ===================================================  ===========

Nothing answers with a key or pixels; anything else is ``-EINVAL``.
"""

from __future__ import annotations

import struct

from l4sim.kernel.abi import OPEN_WAIT, RECV, REPLY, Err, IpcErr, StrBuf, StrItem
from l4sim.kernel.traps import Ipc
from l4sim.scenarios.programs.drm_common import (
    FRAME_H,
    FRAME_W,
    PLAYER,
    SCALE,
    STATUS_H,
    TITLE,
    open_frame,
    open_licence,
    shown,
)
from l4sim.security.gui_client import GuiClient
from l4sim.security.storage import AES_NS_PER_KIB, LIST, STORAGE_PROTO, StorageClient, StorageError
from l4sim.security.tpm import EBADMSG, TpmClient
from l4sim.user.env import Env, Gate

PLAY_LABEL = 0x10
MAX_BYTES = 4096
BG, FG = 0x101010, 0xE0E0E0
#: the names in the player's secure storage: its device key, the film's licence (terms and
#: content key), the highest licence id taken
DEVICE_KEY, LICENCE_FILE, LAST_ID = "device-key", f"licence.{TITLE}", "last-licence"
#: a licence in storage: id, not after (ms), plays left, content key
TERMS = struct.Struct("<IQI16s")
#: how long the player waits for the storage to start (ms)
STARTUP_TRIES = 2000


class Refused(Exception):
    """A request the player refuses: ``err`` is the errno it answers, the text why."""

    def __init__(self, err: int, why: str) -> None:
        super().__init__(why)
        self.err = err


async def bound(env: Env, gate: Gate) -> None:
    """Wait until the storage has bound its channel (it unseals its master key first)."""
    for _ in range(STARTUP_TRIES):
        if (await gate.call(STORAGE_PROTO, LIST, 1 << 20)).error != IpcErr.ENOT_EXISTENT:
            return
        await env.receive(env.thread, timeout=1_000_000)  # nothing sends us anything: 1 ms


async def load(st: StorageClient, name: str) -> bytes | None:
    """A file of the player's secure storage; None when there is none."""
    if name not in await st.names():
        return None
    fd = await st.open(name)
    data = await st.read(fd)
    await st.close(fd)
    return data


async def keep(st: StorageClient, name: str, data: bytes) -> None:
    fd = await st.open(name, create=True)
    await st.write(fd, data)
    await st.close(fd)


class Player:
    def __init__(self, env: Env, g: GuiClient, st: StorageClient, device_key: bytes) -> None:
        self.env, self.g, self.st, self.device_key = env, g, st, device_key
        self.key: bytes | None = None  # the content key, while a play lasts
        self.shown = 0

    async def status(self, text: str) -> None:
        g = self.g
        await g.fill(0, g.h - STATUS_H, g.w, STATUS_H, BG)
        await g.text(4, g.h - STATUS_H + 4, text, FG, BG)
        await g.refresh(0, g.h - STATUS_H, g.w, STATUS_H)

    async def licence(self, blob: bytes) -> bytes:
        terms = open_licence(self.device_key, TITLE, blob)
        if terms is None:
            raise Refused(EBADMSG, "the licence fails authentication under the device key")
        lid, not_after, plays, key = terms
        last = await load(self.st, LAST_ID)
        if last is not None and lid <= int.from_bytes(last, "little"):
            raise Refused(Err.EACCES, f"licence {lid} was taken before (the highest taken is "
                                      f"{int.from_bytes(last, 'little')})")
        now = await self.env.clock() // 1_000_000
        if now > not_after:
            raise Refused(Err.EACCES, f"licence {lid} expired at {not_after} ms (now {now} ms)")
        await keep(self.st, LAST_ID, lid.to_bytes(4, "little"))
        await keep(self.st, LICENCE_FILE, TERMS.pack(lid, not_after, plays, key))
        await self.env.print(f"player: took licence {lid} for {TITLE}: {plays} play(s) until {not_after} ms")
        return b"ok\n"

    async def play(self, title: str) -> bytes:
        stored = await load(self.st, LICENCE_FILE) if title == TITLE else None
        if stored is None:
            raise Refused(Err.EACCES, f"no licence for {title}")
        lid, not_after, plays, key = TERMS.unpack(stored)
        now = await self.env.clock() // 1_000_000
        if plays == 0 or now > not_after:
            raise Refused(Err.EACCES, f"licence {lid} for {title} has no play left" if plays == 0
                          else f"licence {lid} for {title} expired")
        await keep(self.st, LICENCE_FILE, TERMS.pack(lid, not_after, plays - 1, key))
        self.key, self.shown = key, 0
        await self.status(f"playing {title}")
        await self.env.print(f"player: playing {title} (licence {lid}, {plays - 1} play(s) left)")
        return b"ok\n"

    async def frame(self, i: int, blob: bytes) -> bytes:
        if self.key is None:
            raise Refused(Err.EACCES, "no play has begun")
        await self.env.compute(max(1, len(blob) * AES_NS_PER_KIB >> 10))
        pixels = open_frame(self.key, TITLE, i, blob)
        if pixels is None:
            raise Refused(EBADMSG, f"frame {i} fails its AES-GCM tag")
        await self.env.mem.write(self.g.addr, shown(pixels))  # the frame's rows span the buffer
        await self.g.refresh(0, 0, FRAME_W * SCALE, FRAME_H * SCALE)
        self.shown += 1
        await self.status(f"{TITLE}  frame {i}")
        await self.env.print(f"player: showed frame {i}")
        return f"shown {i}\n".encode()

    async def stop(self) -> bytes:
        if self.key is not None:
            await self.env.print(f"player: stopped after {self.shown} frame(s)")
        self.key = None  # the content key is dropped with the play
        await self.status("stopped")
        return b"ok\n"

    async def answer(self, req: bytes) -> bytes:
        op, _, body = req.partition(b"\n")
        w = op.decode("ascii", "replace").split()
        if w == ["LICENCE"]:
            return await self.licence(body)
        if len(w) == 2 and w[0] == "PLAY":
            return await self.play(w[1])
        if len(w) == 2 and w[0] == "FRAME" and w[1].isdigit():
            return await self.frame(int(w[1]), body)
        if w == ["STOP"]:
            return await self.stop()
        raise Refused(Err.EINVAL, f"no such request: {op[:20].decode('ascii', 'replace')!r}")


async def device_key(env: Env, st: StorageClient) -> bytes:
    """The device key from secure storage; made from the TPM's random bytes (and registered
    with the shop) when not there yet."""
    key = await load(st, DEVICE_KEY)
    if key is None:
        key = await TpmClient(env.cap("tpm")).random(32)
        await keep(st, DEVICE_KEY, key)
        await env.print("player: made a device key in secure storage")
    base, _size = env.heap  # type: ignore[attr-defined]
    text = f"REGISTER {key.hex()}".encode()
    await env.mem.write(base, text)
    r = await env.cap("register", Gate).call(0, len(text), items=(StrItem(base, len(text)),),
                                             rcv=(StrBuf(base + 256, 64),))
    if r.error or r.proto:
        await env.print("player: the shop did not take the device key")
    return key


async def player(env: Env) -> int:
    """Serve ``play`` (see the module)."""
    g = GuiClient(env)
    x, y, w, h = PLAYER
    await g.buffer(w, h)
    await g.fill(0, 0, w, h, BG)
    await g.text(8, 8, "Player: no film", FG, BG)
    await g.view(x, y, w, h, title="media player")
    await bound(env, env.cap("storage", Gate))
    st = StorageClient(env.cap("storage"))
    try:
        dkey = await device_key(env, st)
    except StorageError as e:
        await env.print(f"player: no device key: the storage refused ({e})")
        return 1
    p = Player(env, g, st, dkey)
    await env.cap("play", Gate).bind(env.thread, PLAY_LABEL)
    base, _size = env.heap  # type: ignore[attr-defined]
    inbox, outbox = base, base + MAX_BYTES
    await env.mem.write(base, bytes(2 * MAX_BYTES))  # touched: a string copy resolves no fault
    rcv = (StrBuf(inbox, MAX_BYTES),)
    wait = Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv)
    msg = await env.ipc(wait)
    while True:
        if msg.error or msg.label & ~3 != PLAY_LABEL:
            msg = await env.ipc(wait)
            continue
        got = [s for s in msg.items if isinstance(s, StrBuf)]
        req = await env.mem.read(inbox, got[0].length) if got and got[0].length else b""
        try:
            label, data = 0, await p.answer(req)
        except Refused as e:
            label, data = -int(e.err), b""
            await env.print(f"player: refused: {e}")
        except StorageError as e:
            label, data = -int(Err.EACCES), b""
            await env.print(f"player: refused: the storage refused ({e})")
        if data:
            await env.mem.write(outbox, data)
        items = (StrItem(outbox, len(data)),) if data else ()
        msg = await env.ipc(Ipc(0, REPLY | RECV | OPEN_WAIT, label, (), items, None, None, rcv))
