"""Packet sessions (the ``NET`` protocol) on the server side, and a client for them.

Both the ``nic`` server and the switch serve the same protocol
(:mod:`l4sim.drivers.protocols`), with the same session machinery:
:class:`PortServer`.  A session is an IPC gate of the server, granted to the
client at ``OPEN`` (the client holds its only capability: when the client
dies the gate goes, and the server's delete Irq says which session ended).
Frames for a session wait in a bounded queue (:data:`QUEUE_LEN`; a frame
that finds it full is dropped and counted) until the client's ``RECV``;
a ``RECV`` that finds none waits: the server keeps its reply capability and
answers when a frame comes -- from whichever thread of the server brings it.

Frames arrive in a receive buffer of the server's own memory (a string
buffer of each wait), are read out of it, and leave from a per-thread send
buffer.  Each of the server's threads runs between two traps undisturbed,
so the Python bookkeeping shared by them needs no locks.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from l4sim.drivers.dde.ddekit import Kit, current
from l4sim.drivers.protocols import MAX_FRAME, MIN_FRAME, NET, NET_NONBLOCK, NET_PROMISC, NetOp
from l4sim.kernel.abi import Err, Fpage, MapItem, Proto, Rights, StrBuf, StrItem
from l4sim.kernel.traps import Msg
from l4sim.user.env import Env, Gate, L4Error, ReplyCap
from l4sim.user.server import request_failed

#: frames a session may have waiting
QUEUE_LEN = 64
#: labels: the service gate, the delete Irq, then sessions
SVC_LABEL = 0x10
DEL_LABEL = 0x20
SESSION0 = 0x1000
MTU = 1500
BROADCAST = b"\xff" * 6


@dataclass(eq=False)
class Session:
    """One client's port."""

    label: int
    slot: int
    mac: bytes
    promisc: bool
    queue: deque[bytes] = field(default_factory=deque)
    #: the slot of a waiting RECV's reply capability
    waiting: int | None = None
    sent: int = 0
    received: int = 0
    dropped: int = 0
    alive: bool = True


class PortServer:
    """The session side of ``NET``; ``transmit(session, frame)`` is what SEND does (the server's)."""

    def __init__(self, kit: Kit, name: str, transmit: Callable[[Session, bytes], Awaitable[int]],
                 mac_for: Callable[[int], bytes]) -> None:
        self.kit = kit
        self.env = kit.env
        self.name = name
        self.transmit = transmit
        self.mac_for = mac_for
        self.sessions: dict[int, Session] = {}
        self.next_label = SESSION0
        self.rx_buf = 0
        self._tx_bufs: dict[int, int] = {}

    async def buffer(self) -> int:
        """This thread's send buffer (mapped before use: a string copy resolves no fault)."""
        me = id(current())
        addr = self._tx_bufs.get(me)
        if addr is None:
            addr = self.kit.malloc(MAX_FRAME)
            if not addr:
                raise L4Error(Err.ENOMEM, f"{self.name}: a send buffer")
            await self.env.mem.write(addr, bytes(MAX_FRAME))
            self._tx_bufs[me] = addr
        return addr

    async def deliver(self, s: Session, frame: bytes) -> None:
        """Give ``frame`` to session ``s``: to its waiting RECV, else into its queue (or drop)."""
        if not s.alive:
            return
        if s.waiting is not None:
            slot, s.waiting = s.waiting, None
            buf = await self.buffer()
            await self.env.mem.write(buf, frame)
            r = await ReplyCap(self.env, slot).send(0, len(frame), items=(StrItem(buf, len(frame)),))
            self.env.free_slot(slot)
            if not r.error:
                s.received += 1
                return
            s.dropped += 1  # its RECV is gone (the client died, or it cannot take the frame)
            return
        if len(s.queue) >= QUEUE_LEN:
            s.dropped += 1
            return
        s.queue.append(frame)

    async def serve(self, svc: Gate) -> int:
        """Bind the service gate and serve sessions for ever."""
        env = self.env
        await svc.bind(env.thread, SVC_LABEL)
        irq = await env.factory.create_irq()
        await irq.attach(env.thread, DEL_LABEL)
        await env.thread.register_delete_irq(irq)
        self.rx_buf = self.kit.malloc(MAX_FRAME)
        await env.mem.write(self.rx_buf, bytes(MAX_FRAME))
        rcv = (StrBuf(self.rx_buf, MAX_FRAME),)
        msg = await env.wait(rcv=rcv)
        while True:
            opened: int | None = None
            items: tuple[MapItem | StrItem, ...] = ()
            try:
                reply, items, opened = await self.handle(msg)
            except Exception as exc:  # a request nothing below foresaw: answer it, keep serving
                reply = (await request_failed(env, self.name, msg, exc),)
            if reply is None:
                msg = await env.wait(rcv=rcv)
                continue
            msg = await env.reply_and_wait(reply[0], *reply[1:], items=items, rcv=rcv)
            if msg.error and not msg.error & 1:
                if opened is not None:  # the client never got its session gate: delete it
                    s = self.sessions.pop(opened, None)
                    if s is not None:
                        with contextlib.suppress(L4Error):
                            await env.task.delete(s.slot)
                        env.free_slot(s.slot)
                msg = await env.wait(rcv=rcv)

    async def handle(self, msg: Msg) -> tuple[tuple[int, ...] | None, tuple[MapItem | StrItem, ...], int | None]:
        env = self.env
        if msg.error:
            return None, (), None
        if msg.proto == Proto.IRQ and msg.label == DEL_LABEL:
            for label in msg.words:
                s = self.sessions.pop(label, None)
                if s is not None:
                    s.alive = False
                    env.free_slot(s.slot)
                    if s.waiting is not None:
                        env.free_slot(s.waiting)
            return None, (), None
        if msg.proto != NET or not msg.words:
            return (-Err.ENOSYS,), (), None
        op = msg.words[0]
        label = msg.label & ~3
        if label == SVC_LABEL:
            if op != NetOp.OPEN:
                return (-Err.ENOSYS,), (), None
            try:
                gate = await env.factory.create_gate(env.thread, self.next_label)
            except L4Error as e:
                return (-(e.err or Err.ENOMEM),), (), None
            lb = self.next_label
            self.next_label += 4
            flags = msg.words[1] if len(msg.words) > 1 else 0
            s = Session(lb, gate.slot, self.mac_for(lb), bool(flags & NET_PROMISC))
            self.sessions[lb] = s
            return (0, int.from_bytes(s.mac, "big")), (MapItem(gate.fpage(Rights.R | Rights.W), grant=True),), lb
        s = self.sessions.get(label)
        if s is None:
            return (-Err.ENOENT,), (), None
        if op == NetOp.SEND:
            got = next((b for b in msg.items if type(b) is StrBuf), None)
            if got is None or not MIN_FRAME <= got.length <= MAX_FRAME:
                return (-Err.EINVAL,), (), None
            frame = await env.mem.read(self.rx_buf, got.length)
            s.sent += 1
            return (await self.transmit(s, frame),), (), None
        if op == NetOp.RECV:
            if s.queue:
                frame = s.queue.popleft()
                buf = await self.buffer()
                await env.mem.write(buf, frame)
                s.received += 1
                return (0, len(frame)), (StrItem(buf, len(frame)),), None
            if len(msg.words) > 1 and msg.words[1] & NET_NONBLOCK:
                return (-Err.EAGAIN,), (), None
            if s.waiting is not None:  # an earlier RECV that stopped waiting (a timeout): forget it
                with contextlib.suppress(L4Error):
                    await env.task.delete(s.waiting)
                env.free_slot(s.waiting)
                s.waiting = None
            s.waiting = (await env.save_reply()).slot
            return None, (), None
        if op == NetOp.INFO:
            return (0, int.from_bytes(s.mac, "big"), MTU, s.sent, s.received, s.dropped), (), None
        return (-Err.ENOSYS,), (), None


class NetClient:
    """A client's packet session (``NET``), with its send and receive buffers in its heap."""

    def __init__(self, env: Env, session: Gate, mac: bytes, buf: int) -> None:
        self.env = env
        self.session = session
        self.mac = mac
        self.tx = buf
        self.rx = buf + 2048

    @classmethod
    async def open(cls, env: Env, svc: Gate, buf: int, promisc: bool = False) -> NetClient:
        """Open a session on ``svc``; ``buf`` is 4 KiB of the client's memory for frames."""
        await env.mem.write(buf, bytes(4096))  # mapped now: string copies resolve no faults
        slot = env.alloc_slot()
        r = await svc.call(NET, NetOp.OPEN, NET_PROMISC if promisc else 0, rcv=(Fpage.obj(slot),))
        if r.error or r.proto < 0:
            raise L4Error(-r.proto if r.proto < 0 else 0, "open a packet session", r.error)
        return cls(env, Gate(env, slot), r.words[0].to_bytes(6, "big"), buf)

    async def send(self, frame: bytes) -> int:
        """Send one frame: 0 or -errno."""
        await self.env.mem.write(self.tx, frame)
        r = await self.session.call(NET, NetOp.SEND, len(frame), items=(StrItem(self.tx, len(frame)),))
        return -Err.EIO if r.error else r.proto

    async def recv(self, wait: bool = True, timeout: int | None = None) -> bytes | None:
        """The next frame, or None (none without waiting, a timeout, an error)."""
        r = await self.session.call(NET, NetOp.RECV, 0 if wait else NET_NONBLOCK,
                                    rcv=(StrBuf(self.rx, MAX_FRAME),), rcv_timeout=timeout)
        if r.error or r.proto < 0 or not r.words:
            return None
        return await self.env.mem.read(self.rx, r.words[0])

    async def info(self) -> tuple[int, ...]:
        return (await self.session.call(NET, NetOp.INFO)).words
