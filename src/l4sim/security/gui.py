"""The secure GUI multiplexer: Nitpicker's role in Nizza, a native server over two drivers.

Feske and Helmuth, "A Nitpicker's guide to a minimal-complexity secure GUI"
(ACSAC 2005): many untrusted clients share one screen, and the user can
always tell who draws what and who gets the keys.  This server keeps those
promises with a few hundred lines:

- **Sessions named by the startup script.**  ned opens each client's session
  (``gui.session()``) and the label is the client's name in the script; no
  request carries a name, so a client cannot choose what it is called.
- **Views on the client's backing store, mapped, not copied.**  ``BUFFER``
  makes a dataspace from the GUI's own memory allocator (the script's
  ``memory(...)``), maps it to the client read-write and attaches it here
  read-only: the client draws into it, the GUI reads the same frames when it
  composes.  The GUI never takes memory from a client, so a client cannot
  hand it a dataspace it could revoke or one that never answers a page fault.
- **A label bar on every view** with the session's label, drawn by the GUI
  from its own font (:mod:`l4sim.security.font`), and a trusted status bar at
  the top of the screen naming the session that has the keyboard; views can
  never cover it.  A client's own title for a view is shown after the label,
  as its words.
- **The secure attention key** (``KEY_SAK``, Scroll Lock; no client ever sees
  it) toggles X-ray mode: every view dimmed and labelled in its middle, the
  focused one highlighted, no input to any client; ``Tab`` then moves the
  focus from session to session.
- **Input only to the focused session.**  Keys go to the session that has
  the focus, which changes only by the user's click (a press of a pointer
  button on a view) or by ``Tab`` in X-ray mode; pointer motion goes to the
  session under the pointer (or to the one a button press grabbed it for).
  Nothing a client sends changes the focus.

Beneath it: the framebuffer driver (``fb``: a dataspace of the pixels and
``REFRESH``, :mod:`l4sim.drivers.fb`) and the input driver (``input``: events
and a notification Irq, :mod:`l4sim.drivers.input`).  The protocol is in
:mod:`l4sim.security.gui_protocol` and docs/security.md.  Every bad request
is answered with an error; one that raises is ``-EIO`` and a log line.
"""

from __future__ import annotations

import contextlib
import zlib
from collections import deque
from dataclasses import dataclass, field

from l4sim.kernel.abi import Err, Fpage, MapItem, Proto, Rights, unpack_bytes
from l4sim.kernel.traps import Msg
from l4sim.machine.display import BTN_LEFT, BTN_MIDDLE, BTN_RIGHT, KEY_SAK, KEY_TAB, Framebuffer
from l4sim.runtime.protocols import MEM_ALLOC, RM, SESSION, DsFlag, MemOp, RmOp, SessionOp
from l4sim.runtime.rm import attach
from l4sim.security import font
from l4sim.security.gui_protocol import (
    EV_MOTION,
    EV_PRESS,
    EV_RELEASE,
    EVENTS_MAX,
    FB,
    GUI,
    INPUT,
    FbOp,
    GuiOp,
    InputOp,
    decode,
    encode,
    signed,
)
from l4sim.user.env import Env, Gate, IrqCap, L4Error, ReplyCap
from l4sim.user.server import request_failed

FACTORY_LABEL = 0x10
DEL_LABEL = 0x20
INPUT_IRQ = 0x24
FIRST_SESSION = 0x100
#: views one session may have, events it may have waiting, the largest backing store (bytes)
MAX_VIEWS = 8
QUEUE_MAX = 128
BUFFER_MAX = 2 << 20
TITLE_MAX = 40
#: the trusted status bar at the top, and a view's label bar (pixels)
STATUS_H = font.CELL_H + 4
LABEL_H = font.CELL_H + 2
#: the pointer sprite: '#' outline, '+' fill
_ARROW = ("#.........", "##........", "#+#.......", "#++#......", "#+++#.....", "#++++#....", "#+++++#...",
          "#++++++#..", "#+++++++#.", "#++++####.", "#+#+#.....", "##.#+#....", "#..#+#....", "....##....")
POINTER_W, POINTER_H = len(_ARROW[0]), len(_ARROW)


def pix(rgb: int) -> bytes:
    """A 32-bit pixel (B, G, R, 0) of ``0xRRGGBB``."""
    return bytes((rgb & 0xFF, (rgb >> 8) & 0xFF, (rgb >> 16) & 0xFF, 0))


BACKGROUND = pix(0x2B3440)
BLACK, WHITE = pix(0x000000), pix(0xFFFFFF)
STATUS_BG, STATUS_XRAY_BG = pix(0x11161C), pix(0x8A1010)
FOCUS_FRAME, FRAME = pix(0xFFD400), pix(0x101010)
TITLE_FG = pix(0xC8C8C8)
XRAY_BAR, XRAY_FOCUS_BAR = pix(0x505050), pix(0xFFD400)
#: X-ray dims every channel of every pixel to 30 %: one bytes.translate per row
DIM = bytes(v * 30 // 100 for v in range(256))
#: label colours a session can get (dark enough for white text), chosen by a CRC of its label
PALETTE = (0x1F5FA8, 0x2E7D32, 0x8E3B9E, 0xA8431F, 0x00796B, 0x5D4037, 0x3949AB, 0x7B6A00)


def colour_of(label: str) -> int:
    return PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]


@dataclass(eq=False)
class View:
    session: Session
    vid: int
    x: int = 0
    y: int = 0
    w: int = 0
    h: int = 0
    bx: int = 0
    by: int = 0
    title: str = ""
    #: shown once the client gave it a geometry
    placed: bool = False

    def outer(self) -> tuple[int, int, int, int]:
        """The view with its frame and label bar, on the screen."""
        return self.x - 1, self.y - LABEL_H - 1, self.w + 2, self.h + LABEL_H + 2


@dataclass(eq=False)
class Session:
    label: int
    name: str
    colour: int
    views: dict[int, View] = field(default_factory=dict)
    next_view: int = 1
    #: the backing store: address in the GUI's space, size in pixels, the GUI's dataspace slot
    buf_addr: int = 0
    buf_w: int = 0
    buf_h: int = 0
    ds_slot: int = 0
    events: deque[int] = field(default_factory=deque)
    dropped: int = 0
    waiter: ReplyCap | None = None


Rect = tuple[int, int, int, int]


def clip(a: Rect, b: Rect) -> Rect | None:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0) if x0 < x1 and y0 < y1 else None


class Canvas:
    """A rectangle of the screen being composed, in the GUI's private memory."""

    def __init__(self, r: Rect) -> None:
        self.r = r
        self.px = bytearray(BACKGROUND * (r[2] * r[3]))

    def fill(self, rect: Rect, p: bytes) -> None:
        c = clip(rect, self.r)
        if c is None:
            return
        x, y, w, h = c
        rx, ry, rw, _ = self.r
        line = p * w
        for row in range(y, y + h):
            off = ((row - ry) * rw + x - rx) * 4
            self.px[off : off + w * 4] = line

    def blit(self, rows: list[bytes], ix: int, iy: int, keep: bytes | None = None) -> None:
        """Copy an image (rows of pixels) to screen (ix, iy); ``keep`` pixels are transparent."""
        if not rows:
            return
        iw = len(rows[0]) // 4
        c = clip((ix, iy, iw, len(rows)), self.r)
        if c is None:
            return
        x, y, w, h = c
        rx, ry, rw, _ = self.r
        for row in range(y, y + h):
            src = rows[row - iy][(x - ix) * 4 : (x - ix + w) * 4]
            off = ((row - ry) * rw + x - rx) * 4
            if keep is None:
                self.px[off : off + w * 4] = src
            else:
                for i in range(0, len(src), 4):
                    if src[i : i + 4] != keep:
                        self.px[off + i : off + i + 4] = src[i : i + 4]

    def put_row(self, x: int, y: int, data: bytes) -> None:
        rx, ry, rw, _ = self.r
        off = ((y - ry) * rw + x - rx) * 4
        self.px[off : off + len(data)] = data


def _pointer_rows() -> list[bytes]:
    clear = pix(0xFF00FF)  # the transparent colour: never drawn
    table = {"#": BLACK, "+": WHITE, ".": clear}
    return [b"".join(table[c] for c in line) for line in _ARROW]


POINTER_ROWS = _pointer_rows()
POINTER_CLEAR = pix(0xFF00FF)


class Gui:
    """The server's state and its composition of the screen."""

    def __init__(self, env: Env, width: int, height: int, fb: Gate, fb_addr: int, mem: Gate,
                 input_drv: Gate | None) -> None:
        self.env = env
        self.width = width
        self.height = height
        self.fb = fb
        self.fb_addr = fb_addr
        self.mem = mem
        self.input = input_drv
        self.sessions: dict[int, Session] = {}
        self.next_label = FIRST_SESSION
        #: views, frontmost first
        self.stack: list[View] = []
        self.focus: Session | None = None
        self.xray = False
        self.px = width // 2
        self.py = height // 2
        #: the session a held pointer button delivers to
        self.grab: Session | None = None
        self.buttons = 0
        self._bars: dict[tuple[object, ...], list[bytes]] = {}

    # --- composition
    async def redraw(self, r: Rect | None = None) -> None:
        """Compose ``r`` (default: the whole screen), write it to the framebuffer, refresh it."""
        c = clip(r or (0, 0, self.width, self.height), (0, 0, self.width, self.height))
        if c is None:
            return
        cv = Canvas(c)
        for v in reversed(self.stack):
            if v.placed:
                await self._draw_view(cv, v)
        cv.blit(POINTER_ROWS, self.px, self.py, keep=POINTER_CLEAR)
        if c[1] < STATUS_H:
            self._draw_status(cv)
        x, y, w, h = c
        env = self.env
        if w == self.width:  # whole rows: one write per megabyte
            step = max(1, (1 << 20) // (w * 4))
            for row in range(0, h, step):
                n = min(step, h - row)
                await env.mem.write(self.fb_addr + (y + row) * w * 4, bytes(cv.px[row * w * 4 : (row + n) * w * 4]))
        else:
            for row in range(h):
                await env.mem.write(self.fb_addr + ((y + row) * self.width + x) * 4,
                                    bytes(cv.px[row * w * 4 : (row + 1) * w * 4]))
        await self.fb.call(FB, FbOp.REFRESH, x, y, w, h)

    def _bar(self, v: View, focused: bool) -> list[bytes]:
        """The label bar of ``v`` (cached): the session's label, then the client's title."""
        key = (v.session.name, v.title, v.w, focused, self.xray)
        rows = self._bars.get(key)
        if rows is not None:
            return rows
        s = v.session
        if self.xray:
            bg = XRAY_FOCUS_BAR if focused else XRAY_BAR
            fg = BLACK if focused else WHITE
            parts = [(s.name, fg)]
        else:
            bg = pix(colour_of(s.name))
            parts = [(s.name, WHITE)] + ([(" | " + v.title, TITLE_FG)] if v.title else [])
        img = [bytearray(bg * v.w) for _ in range(LABEL_H)]
        x = 3
        for text, fg_ in parts:
            for i, line in enumerate(font.render(text, fg_, bg)):
                n = min(len(line), max(0, (v.w - x) * 4))
                if 1 + i < LABEL_H and n > 0:
                    img[1 + i][x * 4 : x * 4 + n] = line[:n]
            x += font.text_width(text) + 1
        rows = [bytes(r) for r in img]
        if len(self._bars) > 256:
            self._bars.clear()
        self._bars[key] = rows
        return rows

    async def _draw_view(self, cv: Canvas, v: View) -> None:
        outer = v.outer()
        if clip(outer, cv.r) is None:
            return
        s = v.session
        focused = s is self.focus
        cv.fill(outer, FOCUS_FRAME if focused and self.xray else (WHITE if focused else FRAME))
        cv.blit(self._bar(v, focused), v.x, v.y - LABEL_H)
        content = clip((v.x, v.y, v.w, v.h), cv.r)
        if content is None:
            return
        cx, cy, cw, ch = content
        cv.fill(content, BLACK)
        bw, bh = s.buf_w, s.buf_h
        sx0 = v.bx + cx - v.x  # the buffer column of the first pixel shown
        lo, hi = max(sx0, 0), min(sx0 + cw, bw)
        if s.buf_addr and lo < hi:
            env = self.env
            rows = [(row, v.by + row - v.y) for row in range(cy, cy + ch) if 0 <= v.by + row - v.y < bh]
            if rows and lo == 0 and hi == bw:  # whole buffer rows, consecutive: one read
                first = rows[0][1]
                data = await env.mem.read(s.buf_addr + first * bw * 4, len(rows) * bw * 4)
                lines = [data[i * bw * 4 : (i + 1) * bw * 4] for i in range(len(rows))]
            else:
                lines = [await env.mem.read(s.buf_addr + (sy * bw + lo) * 4, (hi - lo) * 4) for _, sy in rows]
            for (row, _), line in zip(rows, lines, strict=True):
                cv.put_row(cx + lo - sx0, row, line.translate(DIM) if self.xray else line)
        if self.xray:  # the label in the middle of the content, where no client can hide it
            big = font.render(f" {s.name} ", BLACK if focused else WHITE,
                              XRAY_FOCUS_BAR if focused else XRAY_BAR, scale=2)
            bwid = len(big[0]) // 4
            cv.blit(big, v.x + (v.w - bwid) // 2, v.y + (v.h - len(big)) // 2)

    def _draw_status(self, cv: Canvas) -> None:
        bg = STATUS_XRAY_BG if self.xray else STATUS_BG
        cv.fill((0, 0, self.width, STATUS_H), bg)
        who = self.focus.name if self.focus is not None else "nobody"
        left = f"secure GUI   keyboard: {who}"
        cv.blit(font.render(left, WHITE, bg), 4, 2)
        if self.xray:
            right = "X-RAY (Scroll Lock: leave, Tab: next)"
            cv.blit(font.render(right, WHITE, bg), self.width - font.text_width(right) - 4, 2)

    async def redraw_view(self, v: View) -> None:
        await self.redraw(v.outer())

    # --- input
    def view_at(self, x: int, y: int) -> View | None:
        """The frontmost view (with its label bar) under the screen point (x, y)."""
        if y < STATUS_H:
            return None
        for v in self.stack:
            if v.placed and clip(v.outer(), (x, y, 1, 1)) is not None:
                return v
        return None

    async def deliver(self, s: Session, word: int) -> None:
        if len(s.events) >= QUEUE_MAX:
            s.events.popleft()
            s.dropped += 1
        s.events.append(word)
        if s.waiter is not None:
            waiter, s.waiter = s.waiter, None
            n = min(EVENTS_MAX, len(s.events))
            with contextlib.suppress(L4Error):
                await waiter.send(0, n, *(s.events.popleft() for _ in range(n)))
            self.env.free_slot(waiter.slot)

    def local(self, v: View, kind: int, code: int) -> int:
        """An event at the pointer, in the buffer coordinates of view ``v``."""
        return encode(kind, code, self.px - v.x + v.bx, self.py - v.y + v.by)

    async def set_focus(self, s: Session | None) -> None:
        if s is not self.focus:
            self.focus = s
            await self.env.print(f"gui: keyboard focus -> {s.name if s is not None else 'nobody'}")
            await self.redraw()

    async def event(self, word: int) -> None:
        ev = decode(word)
        if ev.code in (BTN_LEFT, BTN_RIGHT, BTN_MIDDLE) or ev.kind == EV_MOTION:
            await self.pointer(ev.kind, ev.code, ev.x, ev.y)
            return
        if ev.code == KEY_SAK:  # the secure attention key: never a client's
            if ev.kind == EV_PRESS:
                self.xray = not self.xray
                await self.env.print(f"gui: X-ray mode {'on' if self.xray else 'off'}")
                await self.redraw()
            return
        if self.xray:  # the user is looking at the truth: no client gets a key
            if ev.kind == EV_PRESS and ev.code == KEY_TAB:
                order = [s for s in self.sessions.values() if any(v.placed for v in s.views.values())]
                if order:
                    i = order.index(self.focus) + 1 if self.focus in order else 0
                    await self.set_focus(order[i % len(order)])
            return
        if self.focus is not None:
            await self.deliver(self.focus, encode(ev.kind, ev.code))

    async def pointer(self, kind: int, code: int, x: int, y: int) -> None:
        old = (self.px, self.py, POINTER_W, POINTER_H)
        self.px, self.py = min(max(x, 0), self.width - 1), min(max(y, 0), self.height - 1)
        if (self.px, self.py) != old[:2]:
            await self.redraw(old)
            await self.redraw((self.px, self.py, POINTER_W, POINTER_H))
        v = self.view_at(self.px, self.py)
        if kind == EV_PRESS:
            if self.buttons == 0 and v is not None:
                await self.set_focus(v.session)  # a click is the user's choice of focus
                self.grab = v.session
            self.buttons += 1
        target = self.grab if self.grab is not None else (v.session if v is not None else None)
        if target is not None and not self.xray:
            tv = v if v is not None and v.session is target else next(
                (w for w in self.stack if w.session is target and w.placed), None)
            if tv is not None:
                await self.deliver(target, self.local(tv, kind, code))
        if kind == EV_RELEASE:
            self.buttons = max(0, self.buttons - 1)
            if self.buttons == 0:
                self.grab = None

    async def read_input(self) -> None:
        assert self.input is not None
        while True:
            r = await self.input.call(INPUT, InputOp.READ, EVENTS_MAX)
            if r.error or r.proto < 0 or not r.words or not r.words[0]:
                return
            for w in r.words[1 : 1 + r.words[0]]:
                await self.event(w)

    # --- sessions
    async def create(self, w: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[MapItem, ...], int]:
        if len(w) < 2 or w[1] > 8 * (len(w) - 2) or w[1] == 0:
            return (-Err.EINVAL,), (), 0
        name = unpack_bytes(w[1 : 2 + (w[1] + 7) // 8]).decode("utf-8", "replace")
        name = "".join(c if c.isprintable() else "?" for c in name)[:32]
        label = self.next_label
        gate = await self.env.factory.create_gate(self.env.thread, label)
        self.next_label += 4
        self.sessions[label] = Session(label, name, colour_of(name))
        await self.env.print(f"gui: session for {name}")
        return (0,), (MapItem(gate.fpage(Rights.R | Rights.W), grant=True),), gate.slot

    async def closed(self, label: int) -> None:
        s = self.sessions.pop(label, None)
        if s is None:
            return
        gone = [v for v in s.views.values() if v.placed]
        self.stack = [v for v in self.stack if v.session is not s]
        await self._drop_buffer(s)
        if s.waiter is not None:
            self.env.free_slot(s.waiter.slot)
        await self.env.print(f"gui: {s.name} is gone")
        if self.focus is s:
            await self.set_focus(None)
        if self.grab is s:
            self.grab = None
        for v in gone:
            await self.redraw_view(v)

    async def _drop_buffer(self, s: Session) -> None:
        if not s.buf_addr:
            return
        env = self.env
        await env.cap("rm", Gate).call(RM, RmOp.DETACH, s.buf_addr)
        with contextlib.suppress(L4Error):
            await env.task.delete(s.ds_slot)  # the object: the client's mapping goes with it
        env.free_slot(s.ds_slot)
        s.buf_addr = s.buf_w = s.buf_h = s.ds_slot = 0

    async def buffer(self, s: Session, w: int, h: int) -> tuple[tuple[int, ...], tuple[MapItem, ...]]:
        if not (1 <= w <= 4096 and 1 <= h <= 4096):
            return (-Err.EINVAL,), ()
        size = (w * h * 4 + 4095) & ~4095
        if size > BUFFER_MAX:
            return (-Err.ENOMEM,), ()
        env = self.env
        slot = env.alloc_slot()
        r = await self.mem.call(MEM_ALLOC, MemOp.CREATE_DS, size, DsFlag.RW, 0, rcv=(Fpage.obj(slot),))
        if r.error or r.proto < 0:
            env.free_slot(slot)
            return (-Err.ENOMEM,), ()
        await self._drop_buffer(s)
        ds = Gate(env, slot)
        s.buf_addr = await attach(env, ds.slot, size, read_only=True)
        s.buf_w, s.buf_h, s.ds_slot = w, h, slot
        for v in s.views.values():
            if v.placed:
                await self.redraw_view(v)
        return (0, size), (MapItem(ds.fpage(Rights.R | Rights.W)),)

    def _view(self, s: Session, w: tuple[int, ...]) -> View | None:
        return s.views.get(w[1]) if len(w) > 1 else None

    async def request(self, s: Session, msg: Msg) -> tuple[tuple[int, ...] | None, tuple[MapItem, ...]]:
        w = msg.words
        if msg.proto != GUI or not w:
            return (-Err.ENOSYS,), ()
        op = w[0]
        if op not in GuiOp._value2member_map_:
            return (-Err.ENOSYS,), ()
        if op == GuiOp.INFO:
            return (0, self.width, self.height, int(self.focus is s)), ()
        if op == GuiOp.BUFFER:
            if len(w) < 3:
                return (-Err.EINVAL,), ()
            return await self.buffer(s, w[1], w[2])
        if op == GuiOp.VIEW_CREATE:
            if len(s.views) >= MAX_VIEWS:
                return (-Err.ENOMEM,), ()
            nv = View(s, s.next_view)
            s.next_view += 1
            s.views[nv.vid] = nv
            self.stack.insert(0, nv)
            return (0, nv.vid), ()
        if op == GuiOp.INPUT_READ or op == GuiOp.INPUT_WAIT:
            if op == GuiOp.INPUT_WAIT and not s.events:
                if s.waiter is not None:
                    return (-Err.EBUSY,), ()
                s.waiter = await self.env.save_reply()
                return None, ()
            n = min(w[1] if op == GuiOp.INPUT_READ and len(w) > 1 else EVENTS_MAX, EVENTS_MAX, len(s.events))
            return (0, n, *(s.events.popleft() for _ in range(n))), ()
        if op == GuiOp.REFRESH:
            if len(w) < 5:
                return (-Err.EINVAL,), ()
            x, y, rw, rh = (min(v, 1 << 20) for v in w[1:5])
            for sv in list(s.views.values()):
                if not sv.placed:
                    continue
                c = clip((x, y, rw, rh), (sv.bx, sv.by, sv.w, sv.h))
                if c is not None:
                    await self.redraw((sv.x + c[0] - sv.bx, sv.y + c[1] - sv.by, c[2], c[3]))
            return (0,), ()
        v = self._view(s, w)
        if v is None:
            return (-Err.ENOENT,), ()  # view ids are per session: another's view is no view
        if op == GuiOp.VIEW_DESTROY:
            del s.views[v.vid]
            self.stack.remove(v)
            if v.placed:
                await self.redraw_view(v)
            return (0,), ()
        if op == GuiOp.VIEW_GEOMETRY:
            if len(w) < 8:
                return (-Err.EINVAL,), ()
            x, y = signed(w[2]), signed(w[3])
            gw, gh, bx, by = w[4], w[5], w[6], w[7]
            if not (1 <= gw <= 4096 and 1 <= gh <= 4096 and bx <= 4096 and by <= 4096
                    and abs(x) <= 1 << 16 and abs(y) <= 1 << 16):
                return (-Err.EINVAL,), ()
            old = v.outer() if v.placed else None
            v.x, v.y, v.w, v.h, v.bx, v.by, v.placed = x, y, gw, gh, bx, by, True
            if old is not None:
                await self.redraw(old)
            await self.redraw_view(v)
            return (0,), ()
        if op == GuiOp.VIEW_TOFRONT or op == GuiOp.VIEW_TOBACK:
            self.stack.remove(v)
            if op == GuiOp.VIEW_TOFRONT:
                self.stack.insert(0, v)
            else:
                self.stack.append(v)
            if v.placed:
                await self.redraw_view(v)
            return (0,), ()
        if op == GuiOp.VIEW_TITLE:
            text = unpack_bytes(w[2:]).decode("utf-8", "replace") if len(w) > 2 else ""
            v.title = "".join(c if c.isprintable() else "?" for c in text)[:TITLE_MAX]
            if v.placed:
                await self.redraw((v.x - 1, v.y - LABEL_H - 1, v.w + 2, LABEL_H + 1))
            return (0,), ()
        return (-Err.ENOSYS,), ()


async def gui_server(env: Env) -> int:
    """The GUI server (a daemon): set up the framebuffer and input, then serve sessions."""
    fb = env.cap("fb", Gate)
    info = await fb.call(FB, FbOp.INFO)
    if info.error or info.proto < 0 or len(info.words) < 4:
        await env.print("gui: the framebuffer driver does not answer INFO")
        return 1
    width, height, stride = info.words[0], info.words[1], info.words[2]
    fb_addr = await attach(env, fb.slot, stride * height)
    input_drv = env.cap("input", Gate) if env.has("input") else None
    gui = Gui(env, width, height, fb, fb_addr, env.cap("mem", Gate), input_drv)
    dirq = await env.factory.create_irq()
    await dirq.attach(env.thread, DEL_LABEL)
    await env.thread.register_delete_irq(dirq)
    if input_drv is not None:
        note: IrqCap = await env.factory.create_irq()
        await note.attach(env.thread, INPUT_IRQ)
        await input_drv.call(INPUT, InputOp.SET_NOTIFY, items=(MapItem(note.fpage(Rights.R | Rights.W)),))
    # bound before the first picture: ned's session requests wait in the gate's queue meanwhile
    await env.cap("gui", Gate).bind(env.thread, FACTORY_LABEL)
    await gui.redraw()
    await env.print(f"gui: {width}x{height}, secure attention key: Scroll Lock")
    msg = await env.wait()
    while True:
        words: tuple[int, ...] | None = None
        items: tuple[MapItem, ...] = ()
        made = 0
        try:
            if msg.error:
                pass
            elif msg.proto == Proto.IRQ and msg.label == INPUT_IRQ:
                await gui.read_input()
            elif msg.proto == Proto.IRQ and msg.label == DEL_LABEL:
                for label in msg.words:
                    await gui.closed(label)
            elif msg.label & ~3 == FACTORY_LABEL:
                if msg.proto != SESSION or not msg.words or msg.words[0] != SessionOp.CREATE:
                    words = (-Err.ENOSYS,)
                else:
                    words, items, made = await gui.create(msg.words)
            elif msg.label & ~3 in gui.sessions:
                words, items = await gui.request(gui.sessions[msg.label & ~3], msg)
            else:
                words = (-Err.ENOENT,)
        except Exception as exc:  # a request nothing above foresaw: answer it, keep serving
            words, items, made = (await request_failed(env, "gui", msg, exc),), (), 0
        if words is None:
            msg = await env.wait()
            continue
        msg = await env.reply_and_wait(words[0], *words[1:], items=items)
        if made:
            if msg.error and not msg.error & 1:  # the client never got its session: the gate dies,
                with contextlib.suppress(L4Error):  # and the delete Irq ends the session
                    await env.task.delete(made)
            env.free_slot(made)  # granted or deleted: the slot is empty


def label_shown(fb: Framebuffer, x: int, y: int, text: str) -> bool:
    """Whether the screen shows ``text`` as a label drawn by the GUI in the label bar whose top
    left corner is (x, y) -- in any of its looks (flat, X-ray, X-ray focused).  A host-side
    check of what the user sees (tests, scenario reports), read from the monitor's pixels."""
    looks = ((WHITE, pix(colour_of(text))), (WHITE, XRAY_BAR), (BLACK, XRAY_FOCUS_BAR))
    x0 = x + 3
    width = font.text_width(text)
    if x0 < 0 or x0 + width > fb.width or y + 1 + font.GLYPH_H > fb.height or y < 0:
        return False
    for fg, bg in looks:
        rows = font.render(text, fg, bg)
        if all(fb.screen[((y + 1 + i) * fb.width + x0) * 4 : ((y + 1 + i) * fb.width + x0 + width) * 4]
               == rows[i][: width * 4] for i in range(font.GLYPH_H)):
            return True
    return False
