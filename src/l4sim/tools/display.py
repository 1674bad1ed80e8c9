"""The display seen from outside: scripted input at simulated instants, and screenshots.

An input script is a text file (``l4sim boot SCENARIO --input FILE``), one
action per line, ``#`` starts a comment; times are simulated times since
boot with a unit (``250ms``), and a line may not come before the line above
it in time:

====================================  ===========================================
line                                  what the user does
====================================  ===========================================
``TIME key NAME``                     presses and releases a key: a character
                                      (``a``, ``A``, ``%``) or a name (``enter``,
                                      ``tab``, ``esc``, ``backspace``, ``space``,
                                      ``up`` ..., ``f1`` .. ``f12``, ``sak`` --
                                      the secure attention key, Scroll Lock)
``TIME press NAME`` / ``release NAME``  only one half of it (to hold Shift, say)
``TIME type TEXT``                    types the rest of the line, one character
                                      every :data:`TYPE_GAP_NS` (Shift as needed)
``TIME move X Y``                     moves the pointer to screen pixel (X, Y)
``TIME click X Y [BUTTON]``           moves there and clicks (``left`` default,
                                      ``right``, ``middle``)
``TIME down X Y [BUTTON]`` / ``up``   presses or releases the button there
====================================  ===========================================

A key is held :data:`KEY_HOLD_NS`.  Each action becomes events on the
machine's event queue at its instant, which inject into the keyboard and
pointer devices (:mod:`l4sim.machine.display`): the run sees them as
hardware interrupts, deterministically.

Screenshots are PNG files written here with ``zlib`` (no imaging library):
``--screenshot FILE.png`` takes the screen at the end of the run,
``--screenshot 40ms:FILE.png`` at that instant (the run goes on at least
that long).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from l4sim.machine.board import Machine
from l4sim.machine.display import BUTTON_NAMES, CHARS, KEY_LEFTSHIFT, KEY_NAMES
from l4sim.machine.events import PRIO_IRQ

#: how long a key is held, and the time between two typed characters
KEY_HOLD_NS = 2_000_000
TYPE_GAP_NS = 10_000_000
#: a click's button is held this long
CLICK_HOLD_NS = 3_000_000


class InputError(Exception):
    """An input script or screenshot request is wrong: one line naming it and the fix."""


@dataclass(frozen=True)
class Action:
    """One low-level happening: at ``time``, a key (``code``, ``release``) or a pointer state."""

    time: int
    kind: str  # "key" or "pointer"
    code: int = 0
    release: bool = False
    x: int = 0
    y: int = 0
    buttons: int = 0


def _key(name: str, where: str) -> tuple[int, bool]:
    """(key code, needs shift) of a key name or character."""
    if len(name) == 1 and name in CHARS:
        return CHARS[name]
    code = KEY_NAMES.get(name.lower())
    if code is None:
        raise InputError(f"{where}: unknown key {name!r}: give a character or one of "
                         f"{', '.join(sorted(KEY_NAMES))}")
    return code, False


def parse_input(text: str, source: str = "input") -> list[Action]:
    """The actions of an input script, in time order; :class:`InputError` names a bad line."""
    from l4sim.tools.timeparse import BootError, parse_time

    out: list[Action] = []
    last = 0
    buttons = 0
    px = py = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not re.match(r"^\s*\S+\s+type\s", raw) else raw.strip()
        if not line:
            continue
        where = f"{source}:{n}"
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise InputError(f"{where}: {line!r} is not an action; write 'TIME ACTION ...', e.g. '10ms key a'")
        try:
            t = parse_time(parts[0], "the time")
        except BootError as e:
            raise InputError(f"{where}: {e}") from None
        if t < last:
            raise InputError(f"{where}: {parts[0]} comes before the line above it; keep the lines in time order")
        last = t
        verb, rest = parts[1].lower(), parts[2] if len(parts) > 2 else ""
        args = rest.split()
        if verb in ("key", "press", "release"):
            if len(args) != 1:
                raise InputError(f"{where}: '{verb}' takes one key, e.g. '{parts[0]} {verb} enter'")
            code, shift = _key(args[0], where)
            if verb == "key":
                seq = [(0, code, False), (KEY_HOLD_NS, code, True)]
                if shift:
                    seq = [(0, KEY_LEFTSHIFT, False), *seq, (KEY_HOLD_NS, KEY_LEFTSHIFT, True)]
            else:
                seq = [(0, code, verb == "release")]
            out += [Action(t + dt, "key", c, r) for dt, c, r in seq]
        elif verb == "type":
            if not rest:
                raise InputError(f"{where}: 'type' needs text, e.g. '{parts[0]} type hello'")
            for i, ch in enumerate(rest):
                if ch not in CHARS:
                    raise InputError(f"{where}: cannot type {ch!r}: the keyboard has printable ASCII only")
                code, shift = CHARS[ch]
                at = t + i * TYPE_GAP_NS
                if shift:
                    out.append(Action(at, "key", KEY_LEFTSHIFT, False))
                out += [Action(at, "key", code, False), Action(at + KEY_HOLD_NS, "key", code, True)]
                if shift:
                    out.append(Action(at + KEY_HOLD_NS, "key", KEY_LEFTSHIFT, True))
            last = t + (len(rest) - 1) * TYPE_GAP_NS + KEY_HOLD_NS
        elif verb in ("move", "click", "down", "up"):
            if not 2 <= len(args) <= 3 or not all(a.isdigit() for a in args[:2]):
                raise InputError(f"{where}: '{verb}' takes X Y (pixels) and, but for move, a button: "
                                 f"e.g. '{parts[0]} {verb} 120 80'")
            if len(args) == 3 and (verb == "move" or args[2].lower() not in BUTTON_NAMES):
                raise InputError(f"{where}: {args[2]!r} is no button here: give left, right or middle "
                                 f"(and none for move)")
            px, py = int(args[0]), int(args[1])
            bit = BUTTON_NAMES[args[2].lower()] if len(args) == 3 else BUTTON_NAMES["left"]
            if verb == "move":
                out.append(Action(t, "pointer", x=px, y=py, buttons=buttons))
            elif verb == "click":
                out.append(Action(t, "pointer", x=px, y=py, buttons=buttons))
                out.append(Action(t, "pointer", x=px, y=py, buttons=buttons | bit))
                out.append(Action(t + CLICK_HOLD_NS, "pointer", x=px, y=py, buttons=buttons))
                last = t + CLICK_HOLD_NS
            else:
                buttons = buttons | bit if verb == "down" else buttons & ~bit
                out.append(Action(t, "pointer", x=px, y=py, buttons=buttons))
        else:
            raise InputError(f"{where}: unknown action {parts[1]!r}: use key, press, release, type, move, "
                             f"click, down or up")
    return sorted(out, key=lambda a: a.time)  # stable: equal times keep their order


def read_input_text(path: str) -> str:
    """The text of the input script at ``path`` (what a run's header keeps, for a replay)."""
    try:
        return Path(path).read_text()
    except OSError as e:
        raise InputError(f"cannot read the input script {path}: {e.strerror}; give a file of input "
                         "lines (docs/security.md, 7.6)") from None
    except UnicodeDecodeError:
        raise InputError(f"the input script {path} is not text: give a file of lines such as "
                         f"'10ms key a'") from None


def read_input(path: str) -> list[Action]:
    """Parse the input script at ``path``."""
    return parse_input(read_input_text(path), path)


def schedule_input(machine: Machine, actions: list[Action]) -> None:
    """Put the actions on the machine's event queue; the machine needs a display."""
    d = machine.display
    if d is None:
        raise InputError("this scenario's machine has no keyboard or pointer: --input needs a scenario "
                         "with a display (e.g. l4sim boot gui)")
    for a in actions:
        if a.kind == "key":
            machine.events.at(a.time, d.keyboard.inject, a.code, a.release, prio=PRIO_IRQ)
        else:
            machine.events.at(a.time, d.pointer.inject, a.x, a.y, a.buttons, prio=PRIO_IRQ)


def png(width: int, height: int, rgb: bytes) -> bytes:
    """A PNG image (8-bit RGB, no interlace) of ``rgb`` rows; the same pixels give the same bytes."""
    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


@dataclass
class Screenshot:
    """A screenshot asked for: at ``time`` (None: the end of the run) into ``path``."""

    path: str
    time: int | None = None
    #: the picture, once taken
    data: bytes | None = None
    taken_at: int | None = None


def parse_screenshot(text: str) -> Screenshot:
    """``FILE.png`` or ``TIME:FILE.png``."""
    from l4sim.tools.timeparse import BootError, parse_time

    m = re.fullmatch(r"(\d[^:]*):(.+)", text)
    path, when = (m.group(2), m.group(1)) if m else (text, None)
    if not path.lower().endswith(".png"):
        raise InputError(f"--screenshot {text!r}: give FILE.png or TIME:FILE.png (e.g. 40ms:shot.png)")
    try:
        t = parse_time(when, "--screenshot") if when is not None else None
    except BootError as e:
        raise InputError(str(e)) from None
    return Screenshot(path, t)


def take(machine: Machine, shot: Screenshot) -> None:
    """Take the screen as it is now."""
    d = machine.display
    assert d is not None, "checked when the screenshot was scheduled"
    shot.data = png(d.fb.width, d.fb.height, d.fb.rgb())
    shot.taken_at = machine.now


def schedule_screenshots(machine: Machine, shots: list[Screenshot]) -> Callable[[], None]:
    """Schedule the timed screenshots; returns what takes the rest at the end of the run."""
    if shots and machine.display is None:
        raise InputError("this scenario's machine has no display to take a screenshot of: "
                         "boot a scenario with one (e.g. l4sim boot gui)")
    for s in shots:
        if s.time is not None:
            machine.events.at(s.time, take, machine, s)

    def at_end() -> None:
        for s in shots:
            if s.data is None:
                take(machine, s)

    return at_end


def write_screenshots(shots: list[Screenshot]) -> None:
    """Write each screenshot's file (each whole or not at all); OSError names the file."""
    for s in shots:
        assert s.data is not None, "taken by the end of the run"
        tmp = Path(s.path + ".tmp")
        tmp.write_bytes(s.data)
        tmp.replace(s.path)
