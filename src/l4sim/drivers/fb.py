"""The framebuffer driver: the display's pixels and its flush register, served to one client.

A native program holding an io session of the framebuffer
(``io.session(device("framebuffer"))`` in the startup script, as ``dev``).
It maps the device's ports and attaches its pixel memory (the session is a
dataspace of it), reads the mode from the registers, and serves ``fb``
(a channel: its client, the GUI server, is the only one given it):

- ``FB`` ``INFO`` -> width, height, stride, bits per pixel;
- ``FB`` ``REFRESH`` x, y, w, h: writes the damage rectangle to the
  device's registers and flushes it, so the screen shows those pixels;
- ``DATASPACE`` ``MAP`` / ``INFO``: the pixel memory, page by page, mapped
  from the driver's own mapping -- so the client's pixels are the device's
  (no copy), and the driver could take them back.

Bad requests are answered (``-EINVAL``, ``-ERANGE``, ``-ENOSYS``); one that
raises is ``-EIO`` with a log line.
"""

from __future__ import annotations

from l4sim.kernel.abi import Err, Fpage, MapItem, MemRights
from l4sim.kernel.traps import Msg
from l4sim.machine.display import FB_BPP, FB_CTRL, FB_DAMAGE, FB_FLUSH, FB_HEIGHT, FB_WIDTH
from l4sim.machine.memory import PAGE_MASK, PAGE_SHIFT
from l4sim.runtime.protocols import DATASPACE, IO, DsFlag, DsOp, IoOp
from l4sim.runtime.rm import attach
from l4sim.security.gui_protocol import FB, FbOp
from l4sim.user.env import Env, Gate, L4Error
from l4sim.user.server import request_failed

#: the label the driver binds its channel with
FB_LABEL = 0x10


async def device_ports(env: Env, dev: Gate) -> tuple[int, int, int, int]:
    """Map an io session's ports to us; returns (memory bytes, first port, ports, lines)."""
    info = await dev.call(IO, IoOp.INFO)
    if info.error or info.proto < 0 or len(info.words) < 4:
        raise L4Error(-info.proto if info.proto < 0 else 0, "io info", info.error)
    mem, port, nports, lines = info.words[:4]
    if nports:
        r = await dev.call(IO, IoOp.PORTS, rcv=(Fpage.io(0, 16),))
        if r.error or r.proto < 0:
            raise L4Error(-r.proto if r.proto < 0 else 0, "io ports", r.error)
    return mem, port, nports, lines


async def _in16(env: Env, port: int) -> int:
    return await env.io.inb(port) | await env.io.inb(port + 1) << 8


async def _out16(env: Env, port: int, value: int) -> None:
    await env.io.outb(port, value & 0xFF)
    await env.io.outb(port + 1, (value >> 8) & 0xFF)


class FbDriver:
    """The driver's state: where the pixels are, the mode, the registers."""

    def __init__(self, env: Env, base: int, size: int, port: int, width: int, height: int) -> None:
        self.env = env
        self.base = base
        self.size = size
        self.port = port
        self.width = width
        self.height = height
        self.refreshes = 0

    async def refresh(self, x: int, y: int, w: int, h: int) -> None:
        env = self.env
        for i, v in enumerate((x, y, w, h)):
            await _out16(env, self.port + FB_DAMAGE + 2 * i, v)
        await env.io.outb(self.port + FB_CTRL, FB_FLUSH)
        self.refreshes += 1

    async def handle(self, msg: Msg) -> tuple[tuple[int, ...], tuple[MapItem, ...]]:
        w = msg.words
        if not w:
            return (-Err.EINVAL,), ()
        op = w[0]
        if msg.proto == FB:
            if op == FbOp.INFO:
                return (0, self.width, self.height, self.width * 4, 32), ()
            if op == FbOp.REFRESH:
                if len(w) < 5 or any(v > 0xFFFF for v in w[1:5]):
                    return (-Err.EINVAL,), ()
                await self.refresh(*w[1:5])
                return (0,), ()
        elif msg.proto == DATASPACE:
            if op == DsOp.INFO:
                return (0, self.size, DsFlag.RW, self.size >> PAGE_SHIFT), ()
            if op == DsOp.MAP:
                if len(w) < 3:
                    return (-Err.EINVAL,), ()
                off = w[1]
                if off >= self.size:
                    return (-Err.ERANGE,), ()
                page = self.base + (off & ~PAGE_MASK)
                rights = MemRights.RW if w[2] & DsFlag.RW else MemRights.R
                return (0,), (MapItem(Fpage.mem(page, PAGE_SHIFT, rights), snd_base=off & ~PAGE_MASK),)
        return (-Err.ENOSYS,), ()


async def fb_driver(env: Env) -> int:
    """Start the framebuffer and serve it (a daemon)."""
    dev = env.cap("dev", Gate)
    size, port, nports, _ = await device_ports(env, dev)
    if not size or nports < 32:
        await env.print("fb-drv: the device is no framebuffer (no memory or registers)")
        return 1
    base = await attach(env, dev.slot, size, eager=True)  # every pixel page ours, writable, before we map it on
    width, height = await _in16(env, port + FB_WIDTH), await _in16(env, port + FB_HEIGHT)
    bpp = await env.io.inb(port + FB_BPP)
    drv = FbDriver(env, base, size, port, width, height)
    await env.print(f"fb-drv: {width}x{height}, {bpp} bits per pixel, {size >> 10} KiB of pixels")
    await env.cap("fb", Gate).bind(env.thread, FB_LABEL)
    msg = await env.wait()
    while True:
        if msg.error:
            msg = await env.wait()
            continue
        try:
            words, items = await drv.handle(msg)
        except Exception as exc:  # answer it, keep serving
            words, items = (await request_failed(env, "fb-drv", msg, exc),), ()
        msg = await env.reply_and_wait(words[0], *words[1:], items=items)
