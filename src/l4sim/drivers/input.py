"""The input driver: keyboard and pointer interrupts turned into events for one client.

A native program holding a bus of io's with the keyboard and the pointer
on it (``io.bus("input", devices=["keyboard", "pointer"])``, as ``bus``).
It claims each (:mod:`.iodev`), maps its register page, takes its Irq from
io, attaches it to its thread and unmasks it.  On an interrupt it drains
the device's FIFO through the registers, turns what it read into event
words (:mod:`l4sim.security.gui_protocol`: key press and release by Linux
key code; pointer motion; button press and release as ``BTN_*`` codes,
found by comparing the button state with the last one), unmasks the line,
and triggers its client's notification Irq.  It serves ``input`` (a
channel; the GUI server is its one client):

- ``INPUT`` ``SET_NOTIFY``: the Irq to trigger (an item, W);
- ``INPUT`` ``READ`` max: up to ``max`` queued events (at most 60).

The queue holds :data:`QUEUE_MAX` events; when the client does not read,
the oldest are dropped (and counted).
"""

from __future__ import annotations

import contextlib
from collections import deque

from l4sim.kernel.abi import Err, Fpage, Proto
from l4sim.kernel.traps import Msg
from l4sim.machine.display import (
    BTN_LEFT,
    BTN_MIDDLE,
    BTN_RIGHT,
    IN_COUNT,
    INPUT_POP,
    KBD_CODE,
    KBD_FLAGS,
    KBD_RELEASE,
    PTR_BUTTONS,
    PTR_X,
    PTR_Y,
    REG_CTRL,
)
from l4sim.runtime.protocols import DevKind
from l4sim.security.gui_protocol import (
    EV_MOTION,
    EV_PRESS,
    EV_RELEASE,
    EVENTS_MAX,
    INPUT,
    InputOp,
    encode,
)
from l4sim.user.env import Env, Gate, IrqCap, L4Error
from l4sim.user.server import request_failed

from .iodev import Device, claim

INPUT_LABEL = 0x10
KBD_IRQ = 0x20
PTR_IRQ = 0x24
#: events queued for the client at most
QUEUE_MAX = 256
_BUTTONS = ((1, BTN_LEFT), (2, BTN_RIGHT), (4, BTN_MIDDLE))


class InputDriver:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.queue: deque[int] = deque()
        self.dropped = 0
        self.notify: IrqCap | None = None
        self.kbd: Device | None = None
        self.ptr: Device | None = None
        self.x = self.y = self.buttons = 0

    def put(self, word: int) -> None:
        if len(self.queue) >= QUEUE_MAX:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(word)

    async def drain_keyboard(self) -> None:
        dev = self.kbd
        assert dev is not None, "an interrupt of a claimed keyboard"
        while await dev.readl(IN_COUNT):
            code = await dev.readl(KBD_CODE)
            flags = await dev.readl(KBD_FLAGS)
            await dev.writel(REG_CTRL, INPUT_POP)
            self.put(encode(EV_RELEASE if flags & KBD_RELEASE else EV_PRESS, code, self.x, self.y))

    async def drain_pointer(self) -> None:
        dev = self.ptr
        assert dev is not None, "an interrupt of a claimed pointer"
        while await dev.readl(IN_COUNT):
            x, y = await dev.readl(PTR_X), await dev.readl(PTR_Y)
            buttons = await dev.readl(PTR_BUTTONS)
            await dev.writel(REG_CTRL, INPUT_POP)
            if (x, y) != (self.x, self.y):
                self.x, self.y = x, y
                self.put(encode(EV_MOTION, 0, x, y))
            for bit, code in _BUTTONS:
                if (buttons ^ self.buttons) & bit:
                    self.put(encode(EV_PRESS if buttons & bit else EV_RELEASE, code, x, y))
            self.buttons = buttons

    async def handle(self, msg: Msg, scratch: int) -> tuple[int, ...]:
        w = msg.words
        if msg.proto != INPUT or not w:
            return (-Err.ENOSYS,)
        if w[0] == InputOp.READ:
            n = min(w[1] if len(w) > 1 else EVENTS_MAX, EVENTS_MAX, len(self.queue))
            return (0, n, *(self.queue.popleft() for _ in range(n)))
        if w[0] == InputOp.SET_NOTIFY:
            if not msg.items:
                return (-Err.EINVAL,)
            self.notify = IrqCap(self.env, scratch)
            return (0,)
        return (-Err.ENOSYS,)


async def input_driver(env: Env) -> int:
    """Start the keyboard and the pointer and serve their events (a daemon)."""
    drv = InputDriver(env)
    irqs: dict[int, IrqCap] = {}
    bus = env.cap("bus", Gate)
    try:
        for kind, label in ((DevKind.KBD, KBD_IRQ), (DevKind.PTR, PTR_IRQ)):
            dev = await claim(env, bus, kind)
            if dev is None:
                continue
            await dev.map_registers()
            if kind == DevKind.KBD:
                drv.kbd = dev
            else:
                drv.ptr = dev
            irqs[label] = await dev.irq(label)
    except L4Error as e:
        await env.print(f"input-drv: {e}")
        return 1
    if not irqs:
        await env.print("input-drv: its bus has no keyboard or pointer: give it "
                        "io.bus(..., devices=['keyboard', 'pointer'])")
        return 1
    await env.cap("input", Gate).bind(env.thread, INPUT_LABEL)
    scratch = env.alloc_slot()
    msg = await env.wait(rcv=(Fpage.obj(scratch),))
    while True:
        reply: tuple[int, ...] | None = None
        try:
            if msg.error:
                pass
            elif msg.proto == Proto.IRQ and msg.label in irqs:
                await (drv.drain_keyboard() if msg.label == KBD_IRQ else drv.drain_pointer())
                await irqs[msg.label].unmask()
                if drv.queue and drv.notify is not None:
                    with contextlib.suppress(L4Error):  # a client gone: its Irq with it
                        await drv.notify.trigger()
            else:
                reply = await drv.handle(msg, scratch)
                if drv.notify is not None and drv.notify.slot == scratch:
                    scratch = env.alloc_slot()  # the Irq stays: receive into a fresh slot
        except Exception as exc:  # answer it, keep serving
            reply = (await request_failed(env, "input-drv", msg, exc),)
        if reply is None:
            msg = await env.wait(rcv=(Fpage.obj(scratch),))
        else:
            msg = await env.reply_and_wait(reply[0], *reply[1:], rcv=(Fpage.obj(scratch),))
