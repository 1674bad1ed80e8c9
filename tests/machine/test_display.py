"""The display devices on the board: framebuffer registers and flush, keyboard and pointer FIFOs,
their lines among the board's, resets."""

from __future__ import annotations

import pytest

from l4sim.machine.board import FIRST_DEVICE_LINE, LAST_DEVICE_LINE, Machine
from l4sim.machine.display import (
    CTRL_RESET,
    FB_BPP,
    FB_DAMAGE,
    FB_FLUSH,
    FB_HEIGHT,
    FB_MEMHI,
    FB_MEMLO,
    FB_MEMSIZE,
    FB_STRIDE,
    FB_WIDTH,
    FIFO_DEPTH,
    IN_COUNT,
    INPUT_POP,
    KBD_CODE,
    KBD_FLAGS,
    KEY_SAK,
    PTR_BUTTONS,
    PTR_X,
    PTR_Y,
    REG_CTRL,
)
from l4sim.machine.memory import PAGE_SHIFT


def _rd(m: Machine, name: str, off: int, size: int = 4) -> int:
    """A load from device ``name``'s register page, as the kernel's access path makes it."""
    pfn = m.board[name].region.base_pfn
    return int.from_bytes(m.mem.io_read(pfn, off, size, 0)[2], "little")


def _wr(m: Machine, name: str, off: int, value: int) -> None:
    m.mem.io_write(m.board[name].region.base_pfn, off, value.to_bytes(4, "little"), 0)


def test_framebuffer_registers_tell_the_mode_and_the_pixel_memory() -> None:
    """WIDTH, HEIGHT, BPP, STRIDE, MEMLO/MEMHI and MEMSIZE read back the mode and where the
    pixel memory is: device frames of the framebuffer's own, beside its registers."""
    m = Machine()
    fb = m.add_display(320, 200).fb
    assert (_rd(m, "framebuffer", FB_WIDTH), _rd(m, "framebuffer", FB_HEIGHT)) == (320, 200)
    assert _rd(m, "framebuffer", FB_BPP) == 32 and _rd(m, "framebuffer", FB_STRIDE) == 320 * 4
    base = _rd(m, "framebuffer", FB_MEMLO) | _rd(m, "framebuffer", FB_MEMHI) << 32
    assert base == fb.base and m.mem.device_of(base >> PAGE_SHIFT) is fb.region
    assert m.board["framebuffer"].memory is fb.region and fb.region.regs is None
    assert _rd(m, "framebuffer", FB_MEMSIZE) == 320 * 200 * 4
    assert _rd(m, "framebuffer", FB_WIDTH, 1) == 320 & 0xFF  # a narrower load: the low byte


def test_the_screen_changes_only_where_the_driver_flushes() -> None:
    """Pixels written to device memory reach the screen when a damage rectangle covering them
    is flushed, and only those inside it."""
    m = Machine()
    fb = m.add_display(64, 32).fb
    fb.region.buf[: fb.size] = b"\x10\x20\x30\x00" * (64 * 32)
    for i, v in enumerate((4, 2, 8, 3)):
        _wr(m, "framebuffer", FB_DAMAGE + 4 * i, v)
    assert fb.pixel(5, 3) == 0
    _wr(m, "framebuffer", REG_CTRL, FB_FLUSH)
    assert fb.pixel(5, 3) == 0x302010 and fb.pixel(3, 3) == 0 and fb.pixel(5, 5) == 0
    assert fb.flushes == 1 and fb.flushed_pixels == 24 and _rd(m, "framebuffer", REG_CTRL) == 1


def test_a_reset_empties_the_damage_rectangle_but_keeps_the_picture() -> None:
    m = Machine()
    fb = m.add_display(16, 16).fb
    fb.region.buf[: fb.size] = b"\xff" * fb.size
    for i, v in enumerate((0, 0, 16, 16)):
        _wr(m, "framebuffer", FB_DAMAGE + 4 * i, v)
    _wr(m, "framebuffer", REG_CTRL, FB_FLUSH)
    _wr(m, "framebuffer", REG_CTRL, CTRL_RESET)
    assert fb.damage == [0, 0, 0, 0] and fb.pixel(3, 3) == 0xFFFFFF


def test_a_key_is_queued_raises_its_line_and_is_read_through_the_registers() -> None:
    """inject queues the event and raises the keyboard's line; CODE and FLAGS show the oldest,
    CTRL pops it."""
    m = Machine()
    kbd = m.add_display().keyboard
    kbd.inject(KEY_SAK)
    kbd.inject(30, release=True)
    assert m.ic.counts[kbd.line] == 2 and _rd(m, "keyboard", IN_COUNT) == 2
    assert _rd(m, "keyboard", KBD_CODE) == KEY_SAK and _rd(m, "keyboard", KBD_FLAGS) == 2
    _wr(m, "keyboard", REG_CTRL, INPUT_POP)
    assert _rd(m, "keyboard", KBD_CODE) == 30 and _rd(m, "keyboard", KBD_FLAGS) == 3


def test_a_reset_drops_what_a_dead_driver_left_unread() -> None:
    """io resets a device whose claim ended: queued input is gone, not handed to the next driver."""
    m = Machine()
    kbd = m.add_display().keyboard
    kbd.inject(30)
    kbd.inject(31)
    _wr(m, "keyboard", REG_CTRL, CTRL_RESET)
    assert _rd(m, "keyboard", IN_COUNT) == 0 and _rd(m, "keyboard", KBD_FLAGS) == 0


def test_a_full_fifo_drops_new_events_and_counts_them() -> None:
    m = Machine()
    kbd = m.add_display().keyboard
    for _ in range(FIFO_DEPTH + 3):
        kbd.inject(2)
    assert len(kbd.fifo) == FIFO_DEPTH and kbd.overflows == 3 and kbd.events == FIFO_DEPTH
    assert m.device_stats()["keyboard"] == {"events": FIFO_DEPTH, "overflows": 3}


def test_the_pointer_stays_on_the_screen() -> None:
    """A position past the edge is clipped to the screen; buttons are read back as given."""
    m = Machine()
    ptr = m.add_display(100, 50).pointer
    ptr.inject(500, -3, 5)
    assert _rd(m, "pointer", IN_COUNT) == 1
    assert (_rd(m, "pointer", PTR_X), _rd(m, "pointer", PTR_Y)) == (99, 0) and (ptr.x, ptr.y) == (99, 0)
    assert _rd(m, "pointer", PTR_BUTTONS) == 5


def test_the_input_devices_take_the_boards_next_lines_and_the_framebuffer_none() -> None:
    """Lines go to the board's devices in the order they are added: a NIC added first keeps
    line 2, the keyboard and the pointer get the next two; the framebuffer has none and does
    no DMA."""
    m = Machine()
    m.add_nic("nic0")
    d = m.add_display()
    assert m.board["nic0"].line == FIRST_DEVICE_LINE
    assert (d.keyboard.line, d.pointer.line) == (FIRST_DEVICE_LINE + 1, FIRST_DEVICE_LINE + 2)
    assert m.board["keyboard"].line == d.keyboard.line and m.board["pointer"].line == d.pointer.line
    assert m.board["framebuffer"].line == -1 and m.board["framebuffer"].rid == -1
    assert m.board["keyboard"].rid == -1


def test_a_display_needs_two_free_lines_and_places_nothing_without_them() -> None:
    m = Machine()
    for i in range(LAST_DEVICE_LINE - FIRST_DEVICE_LINE):  # one line left
        m.add_disk(f"d{i}", 8)
    before = dict(m.board)
    with pytest.raises(ValueError, match="no interrupt line left for 'pointer'"):
        m.add_display()
    assert m.board == before and m.display is None


def test_a_machine_has_one_display_of_a_sane_size() -> None:
    m = Machine()
    m.add_display()
    with pytest.raises(ValueError, match="display already"):
        m.add_display()
    with pytest.raises(ValueError, match="framebuffer is"):
        Machine().add_display(0, 10)
