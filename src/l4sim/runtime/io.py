"""io: the device manager -- hands each driver exactly the device its startup script names.

L4Re's ``io`` owns the platform's devices (it gets sigma0 from ned's
script) and gives each driver a virtual bus with only the devices its
configuration lists.  Here the configuration is the startup script itself:

.. code-block:: python

    io = channel("io")
    start("io", "l4sim.runtime.io:io_server", daemon=True, prio=120,
          caps={"io": io.server(), "sigma0": sigma0(), "icu": icu(), "factory": factory(16 * 1024)})
    start("fb-drv", "l4sim.drivers.fb:fb_driver", caps={"dev": io.session(device("framebuffer"))})

ned opens the session for the driver (``SESSION`` ``CREATE``; see
:mod:`l4sim.runtime.protocols`) with the device's resources as the
arguments: its memory (physical base, bytes), its ports (first, count) and
its interrupt lines.  io takes them from sigma0 on first use -- device
frames with ``REQ_FPAGE_IOMEM`` at the same address in its own space (an
area its region manager reserves), ports with ``REQ_FPAGE_IO`` -- binds an
Irq of its own to each line through the ICU, and answers with a session
gate, granted to the driver.  The session is

- a **dataspace** of the device memory (``DATASPACE`` ``MAP``/``INFO``): the
  driver attaches it with its region manager and touches pixels or
  registers with ``env.mem``, like any memory;
- the device's **ports** (``IO`` ``PORTS``: an I/O map item);
- its **interrupts** (``IO`` ``IRQ`` index: the Irq, which the driver
  attaches to its thread and unmasks).

A resource belongs to one live session at a time: a second session asking
for any of it is refused (``-EBUSY``), resources sigma0 will not give are
``-EPERM``.  When a driver's session gate dies (its task ended) io revokes
every mapping it derived from its own -- memory, ports, the Irq capability
-- and the device can be handed out again.  Every bad request gets an
answer (``-EINVAL``, ``-ENOSYS``), one that raises ``-EIO`` with a log line.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from l4sim.kernel.abi import (
    CALL,
    WORD_MASK,
    Err,
    Fpage,
    MapItem,
    MemRights,
    Proto,
    Rights,
    unpack_bytes,
)
from l4sim.kernel.traps import Ipc, Msg
from l4sim.machine.memory import PAGE_MASK, PAGE_SHIFT
from l4sim.runtime.protocols import (
    DATASPACE,
    IO,
    RM,
    SESSION,
    DsFlag,
    DsOp,
    IoOp,
    RmOp,
    SessionOp,
)
from l4sim.runtime.sigma0 import REQ_FPAGE_IO, REQ_FPAGE_IOMEM, request
from l4sim.user.env import Env, Gate, IrqCap, L4Error
from l4sim.user.server import request_failed

#: the label io binds its session factory (the script's channel) with
FACTORY_LABEL = 0x10
#: io's delete Irq (session gates that died)
DEL_LABEL = 0x20
#: first session label; labels grow by 4 and are never reused
FIRST_SESSION = 0x100
#: "no line" in a session's list of interrupt lines
NO_LINE = WORD_MASK
#: largest device memory one session may name (bytes)
MAX_MEM = 1 << 30


def chunks(base: int, size: int) -> list[tuple[int, int]]:
    """Naturally aligned power-of-two (address, log2 size) pieces exactly covering a range."""
    out = []
    while size > 0:
        order = PAGE_SHIFT
        while base % (1 << (order + 1)) == 0 and (1 << (order + 1)) <= size:
            order += 1
        out.append((base, order))
        base += 1 << order
        size -= 1 << order
    return out


def device_args(mem_base: int, mem_size: int, port_base: int, ports: int, lines: tuple[int, ...]) -> tuple[int, ...]:
    """The numeric arguments of a device session's ``CREATE``, in io's order."""
    return (mem_base, mem_size, port_base, ports, *lines)


@dataclass(eq=False)
class Device:
    """One session's resources, as io holds them."""

    label: int
    name: str
    mem_base: int
    mem_size: int
    port_base: int
    ports: int
    lines: tuple[int, ...]
    #: io's Irq per line (slots in io's space)
    irqs: list[IrqCap] = field(default_factory=list)
    gate_slot: int = 0


@dataclass
class IoState:
    """What io owns: frames and ports taken from sigma0, Irqs bound, sessions alive."""

    #: device frames io holds (physical page numbers), at the same address in its space
    frames: set[int] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    #: line -> io's Irq bound to it
    irqs: dict[int, IrqCap] = field(default_factory=dict)
    sessions: dict[int, Device] = field(default_factory=dict)
    next_label: int = FIRST_SESSION


def _in_use(st: IoState, d: Device) -> str | None:
    """What of ``d``'s resources a live session holds already (None: nothing)."""
    for other in st.sessions.values():
        if other.mem_size and d.mem_size and other.mem_base < d.mem_base + d.mem_size \
                and d.mem_base < other.mem_base + other.mem_size:
            return f"memory of {other.name}"
        if other.ports and d.ports and other.port_base < d.port_base + d.ports \
                and d.port_base < other.port_base + other.ports:
            return f"ports of {other.name}"
        if set(other.lines) & set(d.lines):
            return f"interrupt line of {other.name}"
    return None


async def _acquire(env: Env, st: IoState, s0: Gate, d: Device) -> int:
    """Take ``d``'s memory and ports from sigma0 and bind its lines: 0 or -errno."""
    for base, order in chunks(d.mem_base, d.mem_size):
        if base >> PAGE_SHIFT in st.frames:
            continue
        # keep the region manager from ever attaching anything over the device window
        await env.ipc(_rm_reserve(env, base, 1 << order))
        r = await request(env, s0.slot, REQ_FPAGE_IOMEM, Fpage.mem(base, order), Fpage.mem(base, order))
        if r.error or r.proto < 0 or not r.items:
            return r.proto if r.proto < 0 else -Err.EPERM
        st.frames.update(range(base >> PAGE_SHIFT, (base + (1 << order)) >> PAGE_SHIFT))
    if d.ports and d.port_base not in st.ports:
        order = d.ports.bit_length() - 1
        r = await request(env, s0.slot, REQ_FPAGE_IO, Fpage.io(d.port_base, order), Fpage.io(0, 16))
        if r.error or r.proto < 0 or not r.items:
            return r.proto if r.proto < 0 else -Err.EPERM
        st.ports.update(range(d.port_base, d.port_base + d.ports))
    for line in d.lines:
        irq = st.irqs.get(line)
        if irq is None:
            irq = await env.factory.create_irq()
            try:
                await env.icu.bind(line, irq)
            except L4Error as e:
                await env.task.delete(irq.slot)
                env.free_slot(irq.slot)
                return -(e.err or Err.EINVAL)
            st.irqs[line] = irq
        d.irqs.append(irq)
    return 0


def _rm_reserve(env: Env, addr: int, size: int) -> Ipc:
    """Ask the region manager to keep [addr, addr+size) free of attachments."""
    return Ipc(env.cap("rm", Gate).slot, CALL, RM, (RmOp.RESERVE, addr, size, 0))


def _parse_create(w: tuple[int, ...]) -> tuple[str, tuple[int, ...]] | None:
    """(label text, numeric arguments) of a ``CREATE`` message, or None when malformed."""
    if len(w) < 2 or w[1] > 8 * (len(w) - 2):
        return None
    nwords = (w[1] + 7) // 8
    return unpack_bytes(w[1 : 2 + nwords]).decode("utf-8", "replace"), w[2 + nwords :]


class IoServer:
    """io's one thread: the session factory, the sessions, and the delete Irq."""

    def __init__(self, env: Env, s0: Gate) -> None:
        self.env = env
        self.s0 = s0
        self.st = IoState()

    async def create(self, w: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[MapItem, ...], Device | None]:
        parsed = _parse_create(w)
        if parsed is None or len(parsed[1]) < 4:
            return (-Err.EINVAL,), (), None
        label_text, args = parsed
        mem_base, mem_size, port_base, ports = args[:4]
        lines = tuple(x for x in args[4:] if x != NO_LINE)
        if (mem_base & PAGE_MASK or mem_size & PAGE_MASK or mem_size > MAX_MEM
                or (ports and (ports & (ports - 1) or port_base % ports or port_base + ports > 1 << 16))
                or any(x > 255 for x in lines) or len(set(lines)) != len(lines)):
            return (-Err.EINVAL,), (), None
        st = self.st
        d = Device(st.next_label, label_text, mem_base, mem_size, port_base, ports, lines)
        busy = _in_use(st, d)
        if busy is not None:
            await self.env.print(f"io: {label_text}: refused, the {busy} is given already")
            return (-Err.EBUSY,), (), None
        err = await _acquire(self.env, st, self.s0, d)
        if err:
            await self.env.print(f"io: {label_text}: refused, its resources cannot be had ({err})")
            return (err,), (), None
        gate = await self.env.factory.create_gate(self.env.thread, d.label)
        st.next_label += 4
        d.gate_slot = gate.slot
        st.sessions[d.label] = d
        desc = []
        if mem_size:
            desc.append(f"memory {mem_base:#x}+{mem_size:#x}")
        if ports:
            desc.append(f"ports {port_base:#x}+{ports}")
        if lines:
            desc.append("line" + "s" * (len(lines) > 1) + " " + ",".join(map(str, lines)))
        await self.env.print(f"io: {label_text}: {', '.join(desc) or 'nothing'}")
        return (0,), (MapItem(gate.fpage(Rights.R | Rights.W), grant=True),), d

    async def session(self, d: Device, msg: Msg) -> tuple[tuple[int, ...], tuple[MapItem, ...]]:
        w = msg.words
        if not w:
            return (-Err.EINVAL,), ()
        op = w[0]
        if msg.proto == IO:
            if op == IoOp.INFO:
                return (0, d.mem_size, d.port_base, d.ports, len(d.lines)), ()
            if op == IoOp.PORTS:
                if not d.ports:
                    return (-Err.ENOENT,), ()
                order = d.ports.bit_length() - 1
                return (0,), (MapItem(Fpage.io(d.port_base, order, MemRights.RW), snd_base=d.port_base),)
            if op == IoOp.IRQ:
                if len(w) < 2 or w[1] >= len(d.irqs):
                    return (-Err.ENOENT,), ()
                return (0,), (MapItem(d.irqs[w[1]].fpage(Rights.R | Rights.W)),)
            return (-Err.ENOSYS,), ()
        if msg.proto == DATASPACE:
            if op == DsOp.INFO:
                return (0, d.mem_size, DsFlag.RW, d.mem_size >> PAGE_SHIFT), ()
            if op == DsOp.MAP:
                if len(w) < 3:
                    return (-Err.EINVAL,), ()
                off = w[1]
                if off >= d.mem_size:
                    return (-Err.ERANGE,), ()
                rights = MemRights.RW if w[2] & DsFlag.RW else MemRights.R
                page = d.mem_base + (off & ~PAGE_MASK)
                return (0,), (MapItem(Fpage.mem(page, PAGE_SHIFT, rights), snd_base=off & ~PAGE_MASK),)
            return (-Err.ENOSYS,), ()
        return (-Err.ENOSYS,), ()

    async def closed(self, label: int) -> None:
        """A session gate died: take back everything derived from io's own mappings."""
        d = self.st.sessions.pop(label, None)
        if d is None:
            return
        env = self.env
        for base, order in chunks(d.mem_base, d.mem_size):
            await env.task.unmap(Fpage.mem(base, order, MemRights.RWX), include_self=False)
        if d.ports:
            await env.task.unmap(Fpage.io(d.port_base, d.ports.bit_length() - 1, MemRights.RW),
                                 include_self=False)
        for irq in d.irqs:
            await env.task.unmap(irq.fpage(Rights.RWSD), include_self=False)
            with contextlib.suppress(L4Error):
                await irq.detach()
        env.free_slot(d.gate_slot)
        await env.print(f"io: {d.name}: session closed, its resources are free again")


async def io_server(env: Env) -> int:
    """The io server loop (a daemon: it never returns)."""
    srv = IoServer(env, env.cap("sigma0", Gate))
    await env.cap("io", Gate).bind(env.thread, FACTORY_LABEL)
    dirq = await env.factory.create_irq()
    await dirq.attach(env.thread, DEL_LABEL)
    await env.thread.register_delete_irq(dirq)
    msg = await env.wait()
    while True:
        words: tuple[int, ...] | None = None
        items: tuple[MapItem, ...] = ()
        made: Device | None = None
        try:
            if msg.error:
                pass
            elif msg.proto == Proto.IRQ and msg.label == DEL_LABEL:
                for label in msg.words:
                    await srv.closed(label)
            elif msg.label & ~3 == FACTORY_LABEL:
                if msg.proto != SESSION or not msg.words or msg.words[0] != SessionOp.CREATE:
                    words = (-Err.ENOSYS,)
                else:
                    words, items, made = await srv.create(msg.words)
            elif msg.label & ~3 in srv.st.sessions:
                words, items = await srv.session(srv.st.sessions[msg.label & ~3], msg)
            else:
                words = (-Err.ENOENT,)
        except Exception as exc:  # a request nothing above foresaw: answer it, keep serving
            words, items, made = (await request_failed(env, "io", msg, exc),), (), None
        if words is None:
            msg = await env.wait()
            continue
        msg = await env.reply_and_wait(words[0], *words[1:], items=items)
        if made is not None and msg.error and not msg.error & 1:
            # the client never got its session: delete the gate, the device is free again
            with contextlib.suppress(L4Error):
                await env.task.delete(made.gate_slot)
            await srv.closed(made.label)
