"""The client side of the secure GUI: a session, a backing store, views, drawing, input.

What a native GUI program links (Genode's ``Gui::Connection`` and a little
painting): :class:`GuiClient` wraps the session gate that ned opened for
the program (``gui.session()`` in its startup script, under ``gui``).  The
backing store the GUI hands out is attached read-write through the
program's region manager; drawing is ``env.mem.write`` into it, and
:meth:`GuiClient.refresh` tells the GUI which pixels changed.
"""

from __future__ import annotations

from l4sim.kernel.abi import Fpage, pack_bytes
from l4sim.kernel.traps import Msg
from l4sim.machine.display import KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEYMAP
from l4sim.runtime.rm import attach
from l4sim.security import font
from l4sim.security.gui_protocol import EV_PRESS, EV_RELEASE, GUI, Event, GuiOp, decode, unsigned
from l4sim.user.env import Env, Gate, L4Error


def pix(rgb: int) -> bytes:
    """A 32-bit pixel (B, G, R, 0) of ``0xRRGGBB``."""
    return bytes((rgb & 0xFF, (rgb >> 8) & 0xFF, (rgb >> 16) & 0xFF, 0))


def _ok(r: Msg, what: str) -> Msg:
    if r.error or r.proto < 0:
        raise L4Error(-r.proto if r.proto < 0 else 0, what, r.error)
    return r


class GuiClient:
    """One session of the GUI server, its backing store and its views."""

    def __init__(self, env: Env, gate: Gate | None = None) -> None:
        self.env = env
        self.gate = gate if gate is not None else env.cap("gui", Gate)
        self.addr = 0
        self.w = self.h = 0
        self.shift = False

    async def call(self, op: int, *words: int, rcv: tuple[Fpage, ...] = ()) -> Msg:
        return await self.gate.call(GUI, op, *words, rcv=rcv)

    async def info(self) -> tuple[int, int, bool]:
        """(screen width, height, whether this session has the keyboard focus)."""
        w = _ok(await self.call(GuiOp.INFO), "gui info").words
        return w[0], w[1], bool(w[2])

    async def buffer(self, w: int, h: int) -> int:
        """A backing store of ``w`` x ``h`` pixels, attached here; returns its address."""
        slot = self.env.alloc_slot()
        r = await self.call(GuiOp.BUFFER, w, h, rcv=(Fpage.obj(slot),))
        if r.error or r.proto < 0:
            self.env.free_slot(slot)
            _ok(r, "gui buffer")
        self.addr = await attach(self.env, slot, r.words[0])
        self.w, self.h = w, h
        return self.addr

    async def view(self, x: int, y: int, w: int, h: int, bx: int = 0, by: int = 0, title: str = "") -> int:
        """A new view showing the buffer's (bx, by, w, h) at screen (x, y), on top."""
        vid = _ok(await self.call(GuiOp.VIEW_CREATE), "gui view").words[0]
        if title:
            await self.title(vid, title)
        await self.geometry(vid, x, y, w, h, bx, by)
        return int(vid)

    async def geometry(self, vid: int, x: int, y: int, w: int, h: int, bx: int = 0, by: int = 0) -> None:
        _ok(await self.call(GuiOp.VIEW_GEOMETRY, vid, unsigned(x), unsigned(y), w, h, bx, by), "gui geometry")

    async def to_front(self, vid: int) -> None:
        _ok(await self.call(GuiOp.VIEW_TOFRONT, vid), "gui to front")

    async def title(self, vid: int, text: str) -> None:
        _ok(await self.call(GuiOp.VIEW_TITLE, vid, *pack_bytes(text.encode()[:40])), "gui title")

    async def refresh(self, x: int = 0, y: int = 0, w: int | None = None, h: int | None = None) -> None:
        _ok(await self.call(GuiOp.REFRESH, x, y, self.w if w is None else w, self.h if h is None else h),
            "gui refresh")

    async def events(self, wait: bool = True) -> list[Event]:
        """The input events the GUI has for this session (with ``wait``: at least one)."""
        r = _ok(await self.call(GuiOp.INPUT_WAIT if wait else GuiOp.INPUT_READ, 60), "gui input")
        return [decode(x) for x in r.words[1 : 1 + r.words[0]]]

    def char(self, ev: Event) -> str | None:
        """The character a key event types (US layout), tracking Shift; None for others."""
        if ev.code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            self.shift = ev.kind == EV_PRESS
            return None
        if ev.kind != EV_PRESS or ev.code not in KEYMAP:
            return None
        return KEYMAP[ev.code][1 if self.shift else 0]

    # --- drawing into the backing store
    async def fill(self, x: int, y: int, w: int, h: int, rgb: int) -> None:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.w, x + w), min(self.h, y + h)
        if x0 >= x1 or y0 >= y1:
            return
        p = pix(rgb)
        if x0 == 0 and x1 == self.w:
            await self.env.mem.write(self.addr + y0 * self.w * 4, p * (self.w * (y1 - y0)))
            return
        line = p * (x1 - x0)
        for row in range(y0, y1):
            await self.env.mem.write(self.addr + (row * self.w + x0) * 4, line)

    async def text(self, x: int, y: int, s: str, fg: int, bg: int, scale: int = 1) -> int:
        """Draw ``s`` with the built-in font; returns its width in pixels."""
        rows = font.render(s, pix(fg), pix(bg), scale)
        if not rows:
            return 0
        w = len(rows[0]) // 4
        for i, line in enumerate(rows):
            yy = y + i
            if not 0 <= yy < self.h:
                continue
            x0, x1 = max(0, x), min(self.w, x + w)
            if x0 < x1:
                await self.env.mem.write(self.addr + (yy * self.w + x0) * 4, line[(x0 - x) * 4 : (x1 - x) * 4])
        return w

    async def read_pixel(self, x: int, y: int) -> int:
        """The buffer's pixel at (x, y) as ``0xRRGGBB``."""
        b = await self.env.mem.read(self.addr + (y * self.w + x) * 4, 4)
        return b[0] | b[1] << 8 | b[2] << 16


__all__ = ["EV_PRESS", "EV_RELEASE", "GuiClient", "pix"]
