"""A display and its input devices: a linear framebuffer, a keyboard and a pointer.

The hardware a secure GUI runs on (Nizza's Nitpicker, Genode's framebuffer
and input sessions).  They are devices of the board (``Machine.add_display``;
``display()`` in a startup script): each has a page of MMIO registers above
RAM, the keyboard and the pointer an interrupt line each, and the
framebuffer its pixel memory in device frames of its own.  io hands them to
their drivers like the NIC and the disk (docs/drivers.md): registers with
``IOMEM``, the line with ``IRQ``, the pixel memory with ``MEMORY`` (a
dataspace the driver attaches).  None of them does DMA.  Registers are 32 bits
wide (a narrower load reads the low bytes); ``CTRL`` is at offset 0 in each,
and writing its bit 31 resets the device -- what io does when a driver's
claim ends.

Framebuffer -- pixels are 32-bit ``0x00RRGGBB``, little-endian in memory
(bytes B, G, R, 0), ``stride = width * 4``:

============  ======  =======================================================
register      offset  meaning
============  ======  =======================================================
``CTRL``      0x00    write bit 0: flush the damage rectangle to the screen;
                      bit 31: reset (the rectangle becomes empty).  Reads
                      the number of flushes so far
``WIDTH``     0x04    pixels per row (read only)
``HEIGHT``    0x08    rows (read only)
``BPP``       0x0C    bits per pixel: 32 (read only)
``STRIDE``    0x10    bytes per row (read only)
``DAMAGE_X``  0x20    the damage rectangle, in pixels; clipped to the screen
``DAMAGE_Y``  0x24    at the flush
``DAMAGE_W``  0x28
``DAMAGE_H``  0x2C
``MEMLO``     0x30    physical address of the pixel memory, low and high half
``MEMHI``     0x34    (read only)
``MEMSIZE``   0x38    bytes of pixel memory (read only)
============  ======  =======================================================

The monitor shows ``screen``, which changes only when the driver flushes a
damage rectangle: the device copies that part of its pixel memory to the
screen (the "resource flush" of a virtual GPU).  So the picture on the
screen is exactly what the driver told the device to show, and a
screenshot is the screen at an instant.  A reset leaves the screen as it
was (the monitor keeps its last picture).

Keyboard -- a FIFO of key events with Linux input key codes (``KEY_*``):

=========  ======  ==========================================================
``CTRL``   0x00    write bit 0: drop the oldest event; bit 31: reset (drop all)
``COUNT``  0x04    events queued, at most :data:`FIFO_DEPTH` (read only)
``CODE``   0x08    key code of the oldest event (read only)
``FLAGS``  0x0C    bit 0 release, bit 1 an event is there (read only)
=========  ======  ==========================================================

Pointer -- a FIFO of absolute positions with the button state (a tablet,
as virtual machines offer):

===========  ======  ========================================================
``CTRL``     0x00    as the keyboard's
``COUNT``    0x04    events queued (read only)
``X``        0x08    the oldest event's position (read only)
``Y``        0x0C
``BUTTONS``  0x10    bit 0 left, bit 1 right, bit 2 middle (read only)
===========  ======  ========================================================

Both input devices raise their line for every event they queue; a full FIFO
drops the new event and counts it in ``overflows``.  Events come from the
outside world: :meth:`Keyboard.inject` and :meth:`Pointer.inject`, called
at simulated instants by an input script (``l4sim boot --input``).  A reset
drops what a dead driver left unread, so its successor never sees it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from l4sim.machine.devices import InterruptController
from l4sim.machine.memory import PAGE_SHIFT, DeviceRegion

#: events an input device queues before it drops new ones
FIFO_DEPTH = 64
#: the largest screen a framebuffer can have (memory stays reasonable)
MAX_WIDTH = 4096
MAX_HEIGHT = 4096

#: every device's control register and its bits
REG_CTRL = 0x00
CTRL_RESET = 1 << 31
# framebuffer registers
FB_WIDTH = 0x04
FB_HEIGHT = 0x08
FB_BPP = 0x0C
FB_STRIDE = 0x10
FB_DAMAGE = 0x20  # X, Y, W, H: 4 registers
FB_MEMLO = 0x30
FB_MEMHI = 0x34
FB_MEMSIZE = 0x38
FB_FLUSH = 1
# input registers (keyboard and pointer)
IN_COUNT = 0x04
KBD_CODE = 0x08
KBD_FLAGS = 0x0C
KBD_RELEASE = 1
KBD_VALID = 2
PTR_X = 0x08
PTR_Y = 0x0C
PTR_BUTTONS = 0x10
#: the pop command of an input device's CTRL register
INPUT_POP = 1
#: pointer button bits
BUTTON_LEFT = 1
BUTTON_RIGHT = 2
BUTTON_MIDDLE = 4


def _fit(value: int, size: int) -> int:
    """A register's value as a load of ``size`` bytes sees it (its low bytes)."""
    return value & ((1 << (8 * size)) - 1)


class Framebuffer:
    """A linear framebuffer: pixel memory in device frames, a page of registers, a screen."""

    def __init__(self, width: int, height: int, memory: DeviceRegion) -> None:
        assert len(memory.buf) >= width * height * 4, "the board gives the pixel memory its size"
        self.width = width
        self.height = height
        self.stride = width * 4
        self.size = self.stride * height
        #: the pixel memory: device frames, which io hands to the driver as a dataspace
        self.region = memory
        #: what the monitor shows (same layout as the pixel memory)
        self.screen = bytearray(self.size)
        self.damage = [0, 0, 0, 0]
        #: flushes so far, and the pixels they copied to the screen
        self.flushes = 0
        self.flushed_pixels = 0
        #: called after every flush with the rectangle that reached the screen (observers)
        self.on_flush: list[Callable[[int, int, int, int], None]] = []

    @property
    def base(self) -> int:
        """Physical address of the pixel memory."""
        return self.region.base_pfn << PAGE_SHIFT

    def mmio_read(self, off: int, size: int, now: int) -> int:
        match off:
            case 0x00:
                v = self.flushes
            case 0x04:
                v = self.width
            case 0x08:
                v = self.height
            case 0x0C:
                v = 32
            case 0x10:
                v = self.stride
            case 0x20 | 0x24 | 0x28 | 0x2C:
                v = self.damage[(off - FB_DAMAGE) >> 2]
            case 0x30:
                v = self.base & 0xFFFFFFFF
            case 0x34:
                v = self.base >> 32
            case 0x38:
                v = self.size
            case _:
                v = 0
        return _fit(v, size)

    def mmio_write(self, off: int, size: int, value: int, now: int) -> None:
        value &= 0xFFFFFFFF
        if off == REG_CTRL:
            if value & CTRL_RESET:
                self.damage = [0, 0, 0, 0]
            elif value & FB_FLUSH:
                self.flush(*self.damage)
        elif off in (0x20, 0x24, 0x28, 0x2C):
            self.damage[(off - FB_DAMAGE) >> 2] = value & 0xFFFF

    def flush(self, x: int, y: int, w: int, h: int) -> None:
        """Copy the rectangle (clipped to the screen) from pixel memory to the screen."""
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + w), min(self.height, y + h)
        self.flushes += 1
        if x0 >= x1 or y0 >= y1:
            return
        buf, stride = self.region.buf, self.stride
        a, b = x0 * 4, x1 * 4
        for row in range(y0, y1):
            off = row * stride
            self.screen[off + a : off + b] = buf[off + a : off + b]
        self.flushed_pixels += (x1 - x0) * (y1 - y0)
        for fn in self.on_flush:
            fn(x0, y0, x1 - x0, y1 - y0)

    def pixel(self, x: int, y: int) -> int:
        """The screen's pixel at (x, y) as ``0xRRGGBB``."""
        off = y * self.stride + x * 4
        return int.from_bytes(self.screen[off : off + 3], "little")

    def rgb(self) -> bytes:
        """The screen as rows of R, G, B bytes (what an image file holds)."""
        out = bytearray(self.width * self.height * 3)
        src = self.screen
        out[0::3] = src[2::4]
        out[1::3] = src[1::4]
        out[2::3] = src[0::4]
        return bytes(out)


@dataclass(slots=True)
class KeyEvent:
    code: int
    release: bool


@dataclass(slots=True)
class PointerEvent:
    x: int
    y: int
    buttons: int


class _InputDevice:
    """A FIFO of events, a page of registers and an interrupt line."""

    def __init__(self, ic: InterruptController, line: int) -> None:
        self.ic = ic
        self.line = line
        self.fifo: deque[KeyEvent | PointerEvent] = deque()
        #: events queued, and dropped because the FIFO was full
        self.events = 0
        self.overflows = 0

    def _queue(self, ev: KeyEvent | PointerEvent) -> None:
        if len(self.fifo) >= FIFO_DEPTH:
            self.overflows += 1
            return
        self.fifo.append(ev)
        self.events += 1
        self.ic.raise_line(self.line)

    def _head(self, off: int) -> int:
        raise NotImplementedError

    def mmio_read(self, off: int, size: int, now: int) -> int:
        if off == IN_COUNT:
            return _fit(len(self.fifo), size)
        return _fit(self._head(off), size) if self.fifo else 0

    def mmio_write(self, off: int, size: int, value: int, now: int) -> None:
        if off != REG_CTRL:
            return
        if value & CTRL_RESET:
            self.fifo.clear()
        elif value & INPUT_POP and self.fifo:
            self.fifo.popleft()

    def stats(self) -> dict[str, int]:
        """The device's counters (the boot summary's device lines)."""
        return {"events": self.events, "overflows": self.overflows}


class Keyboard(_InputDevice):
    """Key presses and releases, by Linux key code."""

    def inject(self, code: int, release: bool = False) -> None:
        """The user pressed (or released) the key ``code``."""
        self._queue(KeyEvent(code & 0xFFFF, release))

    def _head(self, off: int) -> int:
        head = self.fifo[0]
        if not isinstance(head, KeyEvent):
            return 0
        if off == KBD_CODE:
            return head.code
        if off == KBD_FLAGS:
            return KBD_VALID | (KBD_RELEASE if head.release else 0)
        return 0


class Pointer(_InputDevice):
    """An absolute pointer: position and buttons, clipped to the screen it points at."""

    def __init__(self, ic: InterruptController, line: int, width: int, height: int) -> None:
        super().__init__(ic, line)
        self.width = width
        self.height = height
        #: where the pointer is and which buttons are down (the device's own state)
        self.x = self.y = self.buttons = 0

    def inject(self, x: int, y: int, buttons: int) -> None:
        """The user moved the pointer to (x, y) with ``buttons`` held."""
        self.x = min(max(x, 0), self.width - 1)
        self.y = min(max(y, 0), self.height - 1)
        self.buttons = buttons & 7
        self._queue(PointerEvent(self.x, self.y, self.buttons))

    def _head(self, off: int) -> int:
        head = self.fifo[0]
        if not isinstance(head, PointerEvent):
            return 0
        return {PTR_X: head.x, PTR_Y: head.y, PTR_BUTTONS: head.buttons}.get(off, 0)


@dataclass
class Display:
    """The three devices of a machine's display, as ``Machine.add_display`` put them on the board."""

    fb: Framebuffer
    keyboard: Keyboard
    pointer: Pointer


# --- key codes: Linux's input event codes (linux/input-event-codes.h), so that a Linux
# personality's /dev/input can pass them on unchanged
KEY_ESC, KEY_BACKSPACE, KEY_TAB, KEY_ENTER = 1, 14, 15, 28
KEY_LEFTCTRL, KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_LEFTALT = 29, 42, 54, 56
KEY_SPACE, KEY_CAPSLOCK, KEY_SCROLLLOCK = 57, 58, 70
KEY_F1, KEY_F12 = 59, 88
KEY_UP, KEY_LEFT, KEY_RIGHT, KEY_DOWN = 103, 105, 106, 108
#: the secure attention key: Nitpicker's X-ray key (Scroll Lock); no client ever sees it
KEY_SAK = KEY_SCROLLLOCK
#: pointer buttons as key codes (what a GUI server reports a click as)
BTN_LEFT, BTN_RIGHT, BTN_MIDDLE = 0x110, 0x111, 0x112

#: characters of the US layout: key code -> (unshifted, shifted)
_ROWS = (
    (2, "1234567890-=", "!@#$%^&*()_+"),
    (16, "qwertyuiop[]", "QWERTYUIOP{}"),
    (30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    (43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
)
KEYMAP: dict[int, tuple[str, str]] = {KEY_SPACE: (" ", " ")}
for _first, _plain, _shifted in _ROWS:
    for _i, (_a, _b) in enumerate(zip(_plain, _shifted, strict=True)):
        KEYMAP[_first + _i] = (_a, _b)
#: character -> (key code, needs shift)
CHARS: dict[str, tuple[int, bool]] = {}
for _code, (_a, _b) in sorted(KEYMAP.items()):
    CHARS.setdefault(_a, (_code, False))
    CHARS.setdefault(_b, (_code, True))
#: key names an input script may use, beside single characters
KEY_NAMES: dict[str, int] = {
    "esc": KEY_ESC, "backspace": KEY_BACKSPACE, "tab": KEY_TAB, "enter": KEY_ENTER,
    "ctrl": KEY_LEFTCTRL, "shift": KEY_LEFTSHIFT, "alt": KEY_LEFTALT, "space": KEY_SPACE,
    "capslock": KEY_CAPSLOCK, "scrolllock": KEY_SCROLLLOCK, "sak": KEY_SAK,
    "up": KEY_UP, "down": KEY_DOWN, "left": KEY_LEFT, "right": KEY_RIGHT,
    **{f"f{n}": KEY_F1 + n - 1 for n in range(1, 11)}, "f11": 87, "f12": KEY_F12,
}
BUTTON_NAMES = {"left": BUTTON_LEFT, "right": BUTTON_RIGHT, "middle": BUTTON_MIDDLE}
