"""The framebuffer driver: the display's pixels and its flush register, served to one client.

A native program holding a bus of io's with the framebuffer on it
(``io.bus("fb", devices=["framebuffer"])`` in the startup script, as
``bus``).  It claims the device (:mod:`.iodev`), maps its register page,
attaches its pixel memory (io's dataspace of it), reads the mode from the
registers, and serves ``fb`` (a channel: its client, the GUI server, is the
only one given it):

- ``FB`` ``INFO`` -> width, height, stride, bits per pixel;
- ``FB`` ``REFRESH`` x, y, w, h: writes the damage rectangle to the
  device's registers and flushes it, so the screen shows those pixels;
- ``DATASPACE`` ``MAP`` / ``INFO``: the pixel memory, page by page, mapped
  from the driver's own mapping -- so the client's pixels are the device's
  (no copy), and the driver (or io, when the claim ends) could take them back.

Bad requests are answered (``-EINVAL``, ``-ERANGE``, ``-ENOSYS``); one that
raises is ``-EIO`` with a log line.
"""

from __future__ import annotations

from l4sim.kernel.abi import Err, MapItem
from l4sim.kernel.traps import Msg
from l4sim.machine.display import (
    FB_BPP,
    FB_DAMAGE,
    FB_FLUSH,
    FB_HEIGHT,
    FB_MEMSIZE,
    FB_STRIDE,
    FB_WIDTH,
    REG_CTRL,
)
from l4sim.machine.memory import PAGE_SHIFT
from l4sim.runtime.io import dataspace_reply
from l4sim.runtime.protocols import DATASPACE, DevKind
from l4sim.security.gui_protocol import FB, FbOp
from l4sim.user.env import Env, Gate, L4Error
from l4sim.user.server import request_failed

from .iodev import Device, claim

#: the label the driver binds its channel with
FB_LABEL = 0x10


class FbDriver:
    """The driver's state: where the pixels are, the mode, the device."""

    def __init__(self, env: Env, base: int, size: int, dev: Device, width: int, height: int,
                 stride: int) -> None:
        self.env = env
        self.base = base
        self.size = size
        self.dev = dev
        self.width = width
        self.height = height
        self.stride = stride
        self.refreshes = 0

    async def refresh(self, x: int, y: int, w: int, h: int) -> None:
        for i, v in enumerate((x, y, w, h)):
            await self.dev.writel(FB_DAMAGE + 4 * i, v)
        await self.dev.writel(REG_CTRL, FB_FLUSH)
        self.refreshes += 1

    async def handle(self, msg: Msg) -> tuple[tuple[int, ...], tuple[MapItem, ...]]:
        w = msg.words
        if not w:
            return (-Err.EINVAL,), ()
        op = w[0]
        if msg.proto == FB:
            if op == FbOp.INFO:
                return (0, self.width, self.height, self.stride, 32), ()
            if op == FbOp.REFRESH:
                if len(w) < 5 or any(v > 0xFFFF for v in w[1:5]):
                    return (-Err.EINVAL,), ()
                await self.refresh(*w[1:5])
                return (0,), ()
        elif msg.proto == DATASPACE:  # the pixels, every page writable: as io serves device memory
            return dataspace_reply(w, self.size >> PAGE_SHIFT, self.base, True)
        return (-Err.ENOSYS,), ()


async def fb_driver(env: Env) -> int:
    """Start the framebuffer and serve it (a daemon)."""
    try:
        dev = await claim(env, env.cap("bus", Gate), DevKind.FB)
        if dev is None:
            await env.print("fb-drv: its bus has no framebuffer: give it io.bus(..., devices=['framebuffer'])")
            return 1
        await dev.map_registers()
        base, size = await dev.memory()  # every pixel page ours, writable, before we map it on
    except L4Error as e:
        await env.print(f"fb-drv: {e}")
        return 1
    width, height = await dev.readl(FB_WIDTH), await dev.readl(FB_HEIGHT)
    bpp, stride = await dev.readl(FB_BPP), await dev.readl(FB_STRIDE)
    if bpp != 32 or stride * height > min(size, await dev.readl(FB_MEMSIZE)):
        await env.print(f"fb-drv: {dev.name} has a mode this driver does not know ({bpp} bits per pixel)")
        return 1
    drv = FbDriver(env, base, size, dev, width, height, stride)
    await env.print(f"fb-drv: {width}x{height}, {bpp} bits per pixel, {(stride * height) >> 10} KiB of pixels")
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
