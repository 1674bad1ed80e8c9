"""The display devices: framebuffer registers and flush, keyboard and pointer FIFOs and lines."""

from __future__ import annotations

import pytest

from l4sim.machine.board import Machine
from l4sim.machine.display import (
    FB_DAMAGE,
    FB_FLUSH,
    FIFO_DEPTH,
    KBD_CODE,
    KBD_COUNT,
    KBD_CTRL,
    KBD_FLAGS,
    KEY_SAK,
    PTR_BUTTONS,
    PTR_COUNT,
    PTR_X,
    attach_display,
)


def _out16(m: Machine, port: int, value: int) -> None:
    m.ports[port][1](port, value & 0xFF)
    m.ports[port + 1][1](port + 1, value >> 8)


def _in(m: Machine, port: int) -> int:
    return m.ports[port][0](port)


def test_framebuffer_registers_tell_the_mode_and_the_pixel_memory() -> None:
    """WIDTH, HEIGHT, BPP and BASE read back the mode and where the device frames are."""
    m = Machine()
    fb = attach_display(m, 320, 200).fb
    p = fb.port
    assert _in(m, p) | _in(m, p + 1) << 8 == 320
    assert _in(m, p + 2) | _in(m, p + 3) << 8 == 200
    assert _in(m, p + 4) == 32
    base = sum(_in(m, p + 16 + i) << (8 * i) for i in range(8))
    assert base == fb.base and m.mem.device_of(base >> 12) is fb.region


def test_the_screen_changes_only_where_the_driver_flushes() -> None:
    """Pixels written to device memory reach the screen when a damage rectangle covering them
    is flushed, and only those inside it."""
    m = Machine()
    fb = attach_display(m, 64, 32).fb
    fb.region.buf[:] = b"\x10\x20\x30\x00" * (64 * 32)
    p = fb.port
    for i, v in enumerate((4, 2, 8, 3)):
        _out16(m, p + FB_DAMAGE + 2 * i, v)
    assert fb.pixel(5, 3) == 0
    m.ports[p + 5][1](p + 5, FB_FLUSH)
    assert fb.pixel(5, 3) == 0x302010 and fb.pixel(3, 3) == 0 and fb.pixel(5, 5) == 0
    assert fb.flushes == 1 and fb.flushed_pixels == 24


def test_a_key_is_queued_raises_its_line_and_is_read_through_the_registers() -> None:
    """inject queues the event and raises the keyboard's line; CODE and FLAGS show the oldest,
    CTRL pops it."""
    m = Machine()
    kbd = attach_display(m).keyboard
    kbd.inject(KEY_SAK)
    kbd.inject(30, release=True)
    p = kbd.port
    assert m.ic.counts[kbd.line] == 2 and _in(m, p + KBD_COUNT) == 2
    assert _in(m, p + KBD_CODE) == KEY_SAK and _in(m, p + KBD_FLAGS) == 2
    m.ports[p + KBD_CTRL][1](p + KBD_CTRL, 1)
    assert _in(m, p + KBD_CODE) == 30 and _in(m, p + KBD_FLAGS) == 3


def test_a_full_fifo_drops_new_events_and_counts_them() -> None:
    m = Machine()
    kbd = attach_display(m).keyboard
    for _ in range(FIFO_DEPTH + 3):
        kbd.inject(2)
    assert len(kbd.fifo) == FIFO_DEPTH and kbd.overflows == 3 and kbd.events == FIFO_DEPTH


def test_the_pointer_stays_on_the_screen() -> None:
    """A position past the edge is clipped to the screen; buttons are read back as given."""
    m = Machine()
    ptr = attach_display(m, 100, 50).pointer
    ptr.inject(500, -3, 5)
    p = ptr.port
    assert _in(m, p + PTR_COUNT) == 1
    assert _in(m, p + PTR_X) | _in(m, p + PTR_X + 1) << 8 == 99 and (ptr.x, ptr.y) == (99, 0)
    assert _in(m, p + PTR_BUTTONS) == 5


def test_a_machine_has_one_display_of_a_sane_size() -> None:
    m = Machine()
    attach_display(m)
    with pytest.raises(ValueError, match="display already"):
        attach_display(m)
    with pytest.raises(ValueError, match="framebuffer is"):
        attach_display(Machine(), 0, 10)
