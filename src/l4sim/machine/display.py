"""A display and its input devices: a linear framebuffer, a keyboard and a pointer.

The hardware a secure GUI runs on (Nizza's Nitpicker, Genode's framebuffer
and input sessions).  Each device has a few byte-wide registers on I/O
ports (``machine.ports``; a driver reaches them with ``env.io`` once its
ports are mapped to it), and the framebuffer has its pixel memory in device
frames (``PhysMem.add_device``), which a driver maps like any page.  The
register windows are small and start at offset 0 of their port range, so
they can move to an MMIO page with the same offsets.

Framebuffer (``FB_PORT``, 32 ports) -- pixels are 32-bit ``0x00RRGGBB``,
little-endian in memory (bytes B, G, R, 0), ``stride = width * 4``:

======  =====  =========================================================
offset  width  register
======  =====  =========================================================
0       2      WIDTH (read)
2       2      HEIGHT (read)
4       1      BPP (read: 32)
5       1      CTRL (write 1: flush the damage rectangle to the screen);
               reads the number of flushes so far, modulo 256
8       2      DAMAGE_X   \\
10      2      DAMAGE_Y    | the damage rectangle (read/write), in pixels;
12      2      DAMAGE_W    | clipped to the screen at the flush
14      2      DAMAGE_H   /
16      8      BASE (read): physical address of the pixel memory
======  =====  =========================================================

The monitor shows ``screen``, which changes only when the driver flushes a
damage rectangle: the device copies that part of its pixel memory to the
screen (the "resource flush" of a virtual GPU).  So the picture on the
screen is exactly what the driver told the device to show, and a
screenshot is the screen at an instant.

Keyboard (``KBD_PORT``, 8 ports, line ``LINE_KEYBOARD``) -- a FIFO of key
events with Linux input key codes (``KEY_*``):

======  =====  =========================================================
0       1      COUNT (read): events queued (at most ``FIFO_DEPTH``)
1       2      CODE (read): key code of the oldest event
3       1      FLAGS (read): bit 0 release, bit 1 an event is there
4       1      CTRL (write 1: drop the oldest event)
======  =====  =========================================================

Pointer (``PTR_PORT``, 8 ports, line ``LINE_POINTER``) -- a FIFO of absolute
positions with the button state (a tablet, as virtual machines offer):

======  =====  =========================================================
0       1      COUNT (read)
1       2      X (read)
3       2      Y (read)
5       1      BUTTONS (read): bit 0 left, bit 1 right, bit 2 middle
6       1      CTRL (write 1: drop the oldest event)
======  =====  =========================================================

Both input devices raise their line for every event they queue; a full FIFO
drops the new event and counts it in ``overflows``.  Events come from the
outside world: :meth:`Keyboard.inject` and :meth:`Pointer.inject`, called
at simulated instants by an input script (``l4sim boot --input``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from l4sim.machine.memory import PAGE_SHIFT, PAGE_SIZE, DeviceRegion

if TYPE_CHECKING:
    from l4sim.machine.board import Machine

#: first I/O port of each device (port ranges are naturally aligned)
FB_PORT = 0x500
FB_PORTS = 32
KBD_PORT = 0x520
KBD_PORTS = 8
PTR_PORT = 0x528
PTR_PORTS = 8
#: interrupt lines of the input devices (the board's free lines start at 2)
LINE_KEYBOARD = 2
LINE_POINTER = 3
#: events an input device queues before it drops new ones
FIFO_DEPTH = 64
#: the largest screen a framebuffer can have (16-bit registers; memory stays reasonable)
MAX_WIDTH = 4096
MAX_HEIGHT = 4096

# framebuffer register offsets
FB_WIDTH = 0
FB_HEIGHT = 2
FB_BPP = 4
FB_CTRL = 5
FB_DAMAGE = 8
FB_BASE = 16
FB_FLUSH = 1
# keyboard register offsets
KBD_COUNT = 0
KBD_CODE = 1
KBD_FLAGS = 3
KBD_CTRL = 4
KBD_RELEASE = 1
KBD_VALID = 2
# pointer register offsets
PTR_COUNT = 0
PTR_X = 1
PTR_Y = 3
PTR_BUTTONS = 5
PTR_CTRL = 6
#: pointer button bits
BUTTON_LEFT = 1
BUTTON_RIGHT = 2
BUTTON_MIDDLE = 4
#: the pop command of an input device's CTRL register
INPUT_POP = 1


def _get(value: int, offset: int, first: int, width: int) -> int:
    """Byte ``offset - first`` of a little-endian register of ``width`` bytes at ``first``."""
    return (value >> (8 * (offset - first))) & 0xFF if first <= offset < first + width else -1


class Framebuffer:
    """A linear framebuffer: pixel memory in device frames, registers on ports, a screen."""

    def __init__(self, machine: Machine, width: int, height: int, port: int = FB_PORT) -> None:
        if not (1 <= width <= MAX_WIDTH and 1 <= height <= MAX_HEIGHT):
            raise ValueError(f"a framebuffer is 1..{MAX_WIDTH} x 1..{MAX_HEIGHT} pixels, not {width}x{height}")
        self.width = width
        self.height = height
        self.stride = width * 4
        size = self.stride * height
        #: the pixel memory: device frames, mapped by the driver
        self.region: DeviceRegion = machine.mem.add_device("framebuffer", (size + PAGE_SIZE - 1) // PAGE_SIZE)
        #: what the monitor shows (same layout as the pixel memory)
        self.screen = bytearray(size)
        self.damage = [0, 0, 0, 0]
        #: flushes so far, and the pixels they copied to the screen
        self.flushes = 0
        self.flushed_pixels = 0
        #: called after every flush with the rectangle that reached the screen (observers)
        self.on_flush: list[Callable[[int, int, int, int], None]] = []
        self.port = port
        for p in range(port, port + FB_PORTS):
            machine.ports[p] = (self._read, self._write)

    @property
    def base(self) -> int:
        """Physical address of the pixel memory."""
        return self.region.base_pfn << PAGE_SHIFT

    def _read(self, port: int) -> int:
        off = port - self.port
        for first, width, value in ((FB_WIDTH, 2, self.width), (FB_HEIGHT, 2, self.height), (FB_BPP, 1, 32),
                                    (FB_CTRL, 1, self.flushes & 0xFF), (FB_BASE, 8, self.base)):
            b = _get(value, off, first, width)
            if b >= 0:
                return b
        if FB_DAMAGE <= off < FB_DAMAGE + 8:
            i, hi = divmod(off - FB_DAMAGE, 2)
            return (self.damage[i] >> (8 * hi)) & 0xFF
        return 0

    def _write(self, port: int, value: int) -> None:
        off = port - self.port
        if FB_DAMAGE <= off < FB_DAMAGE + 8:
            i, hi = divmod(off - FB_DAMAGE, 2)
            shift = 8 * hi
            self.damage[i] = (self.damage[i] & ~(0xFF << shift)) | ((value & 0xFF) << shift)
        elif off == FB_CTRL and value == FB_FLUSH:
            self.flush(*self.damage)

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
    """A FIFO of events, a register window and an interrupt line."""

    def __init__(self, machine: Machine, port: int, nports: int, line: int) -> None:
        self.machine = machine
        self.port = port
        self.line = line
        self.fifo: deque[KeyEvent | PointerEvent] = deque()
        #: events queued, and dropped because the FIFO was full
        self.events = 0
        self.overflows = 0
        for p in range(port, port + nports):
            machine.ports[p] = (self._read, self._write)

    def _queue(self, ev: KeyEvent | PointerEvent) -> None:
        if len(self.fifo) >= FIFO_DEPTH:
            self.overflows += 1
            return
        self.fifo.append(ev)
        self.events += 1
        self.machine.ic.raise_line(self.line)

    def _read(self, port: int) -> int:
        raise NotImplementedError

    def _write(self, port: int, value: int) -> None:
        raise NotImplementedError


class Keyboard(_InputDevice):
    """Key presses and releases, by Linux key code."""

    def __init__(self, machine: Machine, port: int = KBD_PORT, line: int = LINE_KEYBOARD) -> None:
        super().__init__(machine, port, KBD_PORTS, line)

    def inject(self, code: int, release: bool = False) -> None:
        """The user pressed (or released) the key ``code``."""
        self._queue(KeyEvent(code & 0xFFFF, release))

    def _read(self, port: int) -> int:
        off = port - self.port
        head = self.fifo[0] if self.fifo else None
        if off == KBD_COUNT:
            return min(len(self.fifo), 255)
        if head is None or not isinstance(head, KeyEvent):
            return 0
        if off in (KBD_CODE, KBD_CODE + 1):
            return (head.code >> (8 * (off - KBD_CODE))) & 0xFF
        if off == KBD_FLAGS:
            return KBD_VALID | (KBD_RELEASE if head.release else 0)
        return 0

    def _write(self, port: int, value: int) -> None:
        if port - self.port == KBD_CTRL and value == INPUT_POP and self.fifo:
            self.fifo.popleft()


class Pointer(_InputDevice):
    """An absolute pointer: position and buttons, clipped to the screen it points at."""

    def __init__(self, machine: Machine, width: int, height: int, port: int = PTR_PORT,
                 line: int = LINE_POINTER) -> None:
        super().__init__(machine, port, PTR_PORTS, line)
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

    def _read(self, port: int) -> int:
        off = port - self.port
        head = self.fifo[0] if self.fifo else None
        if off == PTR_COUNT:
            return min(len(self.fifo), 255)
        if head is None or not isinstance(head, PointerEvent):
            return 0
        for first, value in ((PTR_X, head.x), (PTR_Y, head.y)):
            if first <= off < first + 2:
                return (value >> (8 * (off - first))) & 0xFF
        return head.buttons if off == PTR_BUTTONS else 0

    def _write(self, port: int, value: int) -> None:
        if port - self.port == PTR_CTRL and value == INPUT_POP and self.fifo:
            self.fifo.popleft()


@dataclass
class Display:
    """The three devices of a machine's display, as :func:`attach_display` made them."""

    fb: Framebuffer
    keyboard: Keyboard
    pointer: Pointer


def attach_display(machine: Machine, width: int = 640, height: int = 480) -> Display:
    """Give ``machine`` a framebuffer of ``width`` x ``height``, a keyboard and a pointer.

    The display is ``machine.display`` afterwards; a machine has at most one.
    """
    if machine.display is not None:
        raise ValueError("this machine has a display already")
    fb = Framebuffer(machine, width, height)
    d = Display(fb, Keyboard(machine), Pointer(machine, width, height))
    machine.display = d
    return d


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
