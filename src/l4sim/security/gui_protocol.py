"""The secure GUI's session protocol, and the input events it and the input driver speak.

Shared by the GUI server (:mod:`l4sim.security.gui`), its client library
(:mod:`l4sim.security.gui_client`) and, later, a Linux framebuffer stub:
labels, operation numbers, the event word.  docs/security.md describes the
protocol; in short, every request is a call on the client's session gate
(opened by ned: ``gui.session()`` in the startup script), the tag label
``GUI``, word 0 the operation:

==================  ============================  ====================================
operation           words                         reply
==================  ============================  ====================================
``INFO``                                          screen width, height, 1 if the
                                                  session has the keyboard focus,
                                                  1 in X-ray mode
``BUFFER``          width, height                 size; the backing store (a dataspace,
                                                  R and W) as an item: pixels
                                                  ``0x00RRGGBB``, ``stride = width*4``
``VIEW_CREATE``                                   view id
``VIEW_DESTROY``    view
``VIEW_GEOMETRY``   view, x, y, w, h, bx, by      shows the buffer's rectangle
                                                  (bx, by, w, h) at screen (x, y);
                                                  x and y are signed (two's complement)
``VIEW_TOFRONT``    view                          on top of every other view
``VIEW_TOBACK``     view                          behind every other view
``VIEW_TITLE``      view, text (packed bytes)     shown after the label, as the
                                                  client's own words
``REFRESH``         x, y, w, h (buffer pixels)    the screen shows the new pixels
``INPUT_READ``      max                           n, then n event words (at most 60)
``INPUT_WAIT``                                    as ``INPUT_READ``, but answered only
                                                  when an event is there
==================  ============================  ====================================

Errors are negative labels: ``-EINVAL`` (malformed), ``-ENOENT`` (no such
view of *this* session: view ids are per session), ``-ENOMEM`` (too many
views, a buffer too large), ``-EBUSY`` (a second ``INPUT_WAIT``).

An event is one word: bits 0-7 its kind (``EV_*``), 8-23 a key or button
code (Linux input codes: ``KEY_*``, ``BTN_LEFT``), 24-39 and 40-55 the
pointer's x and y -- in the buffer's coordinates for a GUI client, on the
screen for the input driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

#: protocol labels: the GUI's among the security components' (0x41xx), the drivers' beside
#: the nic and blk servers' (``drivers/protocols.py``: 0x4010, 0x4011)
GUI = 0x4104
FB = 0x4012
INPUT = 0x4013

#: event kinds
EV_PRESS = 1
EV_RELEASE = 2
EV_MOTION = 3

#: the most events one reply carries
EVENTS_MAX = 60


class GuiOp(IntEnum):
    INFO = 0
    BUFFER = 1
    VIEW_CREATE = 2
    VIEW_DESTROY = 3
    VIEW_GEOMETRY = 4
    VIEW_TOFRONT = 5
    VIEW_TOBACK = 6
    VIEW_TITLE = 7
    REFRESH = 8
    INPUT_READ = 9
    INPUT_WAIT = 10


class InputOp(IntEnum):
    """The input driver's protocol (one client: the GUI server)."""

    #: max -> n, then n event words (screen coordinates)
    READ = 0
    #: an Irq (item, W) the driver triggers whenever it has queued events
    SET_NOTIFY = 1


class FbOp(IntEnum):
    """The framebuffer driver's protocol; its gate is also a dataspace of the pixels."""

    #: -> width, height, stride in bytes, bits per pixel
    INFO = 0
    #: x, y, w, h -> () the rectangle reaches the screen
    REFRESH = 1


@dataclass(frozen=True, slots=True)
class Event:
    kind: int
    code: int
    x: int
    y: int

    def word(self) -> int:
        return encode(self.kind, self.code, self.x, self.y)


def encode(kind: int, code: int, x: int = 0, y: int = 0) -> int:
    """One event word; coordinates are clamped to 0 .. 65535."""
    x = min(max(x, 0), 0xFFFF)
    y = min(max(y, 0), 0xFFFF)
    return (kind & 0xFF) | (code & 0xFFFF) << 8 | x << 24 | y << 40


def decode(word: int) -> Event:
    return Event(word & 0xFF, (word >> 8) & 0xFFFF, (word >> 24) & 0xFFFF, (word >> 40) & 0xFFFF)


def signed(word: int) -> int:
    """A machine word read as a two's-complement number."""
    return word - (1 << 64) if word >> 63 else word


def unsigned(value: int) -> int:
    """A (possibly negative) number as a machine word."""
    return value & ((1 << 64) - 1)
