"""A Linux instance's display (linux/fb.py): /dev/fb0 and /dev/input/event0 over its GUI session,
its pixels the GUI's pages, damage by deferred I/O, input of its view only."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from l4sim.kernel.objects import Task
from l4sim.linux.fb import EVENT_SIZE, FIX_SIZE, VAR_SIZE, fix_screeninfo, records, var_screeninfo
from l4sim.machine.display import BTN_LEFT, KEY_ENTER
from l4sim.security.gui import LABEL_H, label_shown
from l4sim.security.gui_protocol import EV_MOTION, EV_PRESS, encode
from l4sim.tools.boot import BootError, BootResult, boot
from l4sim.tools.display import parse_input

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
MS = 1_000_000
STACK = '''
display(320, 240)
fb, inp, gui = channel("fb"), channel("input"), channel("gui")
start("fb-drv", "l4sim.drivers.fb:fb_driver", prio=110, daemon=True,
      caps={"bus": io.bus("fb", devices=["framebuffer"]), "fb": fb.server()})
start("input-drv", "l4sim.drivers.input:input_driver", prio=110, daemon=True,
      caps={"bus": io.bus("input", devices=["keyboard", "pointer"]), "input": inp.server()})
start("gui", "l4sim.security.gui:gui_server", prio=100, daemon=True,
      caps={"gui": gui.server(), "fb": fb, "input": inp, "mem": memory(2 << 20), "factory": factory(32 * 1024)})
'''
VIEW = (40, 40, 200, 120)
#: the user clicks into the view, types two letters, presses Enter (the program then ends)
INPUT = """
200ms click 100 100
230ms type ab
300ms key enter
"""


def _boot(tmp_path: Path, line: str, **kw: Any) -> BootResult:
    p = tmp_path / "system.py"
    p.write_text(STACK + line)
    return boot(str(p), **kw)


def _px(res: BootResult, x: int, y: int) -> int:
    d = res.kernel.machine.display
    assert d is not None
    b = d.fb.screen[(y * d.fb.width + x) * 4 : (y * d.fb.width + x) * 4 + 4]
    return b[0] | b[1] << 8 | b[2] << 16


@pytest.fixture(scope="module")
def painter(tmp_path_factory: pytest.TempPathFactory, build: Callable[..., Path]) -> Path:
    return build("fbdraw")


def test_a_c_program_draws_into_its_labelled_view_and_reads_its_input(tmp_path: Path, painter: Path) -> None:
    """fbdraw.c learns the script's mode from the ioctls, draws through mmap and write, reads a
    pixel back with read; the screen shows it inside the view labelled with the instance's
    name, and the click it marks lands where the user clicked (event0's coordinates are the
    buffer's); the keys typed reach it, Enter ends it."""
    line = f'linux("painter", argv=["{painter}"], caps={{"gui": gui.session()}}, fb={VIEW}, prio=20, memory="8M")\n'
    res = _boot(tmp_path, line, input_actions=parse_input(INPUT), until=280 * MS)
    x, y, _w, _h = VIEW
    out = res.kernel.machine.uart.text()
    assert "fb0: 200x120 32bpp line 800 len 96000 red 16/8 green 8 blue 0 visual 2 id l4sim gui" in out
    assert "read back ff0000" in out and "input: l4sim gui input, x 0..199" in out
    assert "click at 60 60" in out
    d = res.kernel.machine.display
    assert d is not None and label_shown(d.fb, x, y - LABEL_H, "painter")
    assert _px(res, x + 5, y + 5) == 0x203080  # the page
    assert _px(res, x + 10, y + 10) == _px(res, x + 59, y + 39) == 0xFF0000  # the box, mapped
    assert _px(res, x + 150, y + 60) == 0x00FF00  # the line, written
    # the click at screen (100, 100) was marked after the first flush: its page faulted again
    assert _px(res, 100, 100 - 2) == 0xFFFF00 and _px(res, x + 150, y + 61) == 0x203080
    full = _boot(tmp_path, line, input_actions=parse_input(INPUT))
    assert "enter after 3 keys" in full.kernel.machine.uart.text()
    assert "ned: painter: exit 0" in full.kernel.machine.uart.text()


def test_the_guest_maps_the_gui_sessions_pages(tmp_path: Path, painter: Path) -> None:
    """Mid-run, every page of the program's mapping of /dev/fb0 derives from the instance's
    mapping, which derives from moe's frames of the GUI's dataspace -- the same frames the GUI
    maps read-only: mapped, never copied."""
    line = f'linux("painter", argv=["{painter}"], caps={{"gui": gui.session()}}, fb={VIEW}, prio=20, memory="8M")\n'
    res = _boot(tmp_path, line, until=100 * MS)
    tasks: dict[str, Task] = {t.name: t for t in res.kernel.tasks if t.alive}
    prog, inst, gui = tasks["fbdraw"], tasks["painter"], tasks["gui"]
    gui_frames = {m.pfn for m in gui.vspace.pages.values() if m.parent is not None and m.parent.space.name == "moe"}
    fb_pages = [m for m in prog.vspace.pages.values() if m.parent is not None and m.parent.space is inst
                and m.pfn in gui_frames]
    assert len(fb_pages) == 96000 // 4096 + 1
    assert all(m.parent is not None and m.parent.parent is not None and m.parent.parent.space.name == "moe"
               for m in fb_pages)


@pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed")
def test_busybox_writes_reads_and_seeks_the_framebuffer(tmp_path: Path) -> None:
    """Plain busybox: dd writes a row of pixels at an offset, od reads them back, stat shows the
    character devices; a write past the end is ENOSPC; event0 is there for a reader."""
    script = ('exec 3<>/dev/fb0; printf "\\\\001\\\\002\\\\003\\\\000%.0s" $(seq 8) | dd of=/dev/fb0 bs=32 '
              'seek=25 conv=notrunc 2>/dev/null; '
              'dd if=/dev/fb0 bs=32 skip=25 count=1 2>/dev/null | od -An -tx1 | head -1; '
              'stat -c "%n %t:%T" /dev/fb0 /dev/input/event0; '
              'dd if=/dev/zero of=/dev/fb0 bs=4 seek=5000 count=1 2>&1 | grep -o "No space left on device"')
    line = (f'linux("shell", argv=["{BUSYBOX}", "sh", "-c", {script!r}], caps={{"gui": gui.session()}}, '
            f'fb=(10, 30, 100, 50), prio=20, memory="8M")\n')
    res = _boot(tmp_path, line)
    out = res.kernel.machine.uart.text()
    assert "shell   |  01 02 03 00 01 02 03 00" in out, out
    assert "/dev/fb0 1d:0" in out and "/dev/input/event0 d:40" in out
    assert "No space left on device" in out
    assert "ned: shell: exit 0" in out


@pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed")
def test_events_written_to_event0_stay_inside_the_instance(tmp_path: Path) -> None:
    """A process that writes a key press to event0 reaches the instance's own readers (as
    Linux's evdev_write does); the GUI and every other session never see it."""
    script = ('cat /dev/input/event0 > /tmp/ev & sleep 0.01; '
              'printf "%016d\\\\001\\\\000\\\\036\\\\000\\\\001\\\\000\\\\000\\\\000" 0 > /dev/input/event0; '
              'sleep 0.01; kill $!; od -An -tu2 -w24 /tmp/ev | awk "{print \\$9, \\$10, \\$11}"')
    line = (f'linux("shell", argv=["{BUSYBOX}", "sh", "-c", {script!r}], caps={{"gui": gui.session()}}, '
            f'prio=20, memory="8M")\n'
            'start("other", "tests.security.test_gui:recorder", caps={"gui": gui.session()}, prio=20, daemon=True,\n'
            '      args=(200, 150))\n')
    res = _boot(tmp_path, line)
    out = res.kernel.machine.uart.text()
    assert "shell   | 1 30 1" in out, out
    assert "got " not in out


def test_script_errors_name_the_display(tmp_path: Path) -> None:
    """A display that is no GUI session, a view without a display, a malformed view: one line each."""
    cases = {
        'linux("x", argv=["BB", "true"], caps={"gui": gui})': "is its display (/dev/fb0, /dev/input/event0): "
                                                               "give a session of the GUI",
        'linux("x", argv=["BB", "true"], fb=(0, 0, 10, 10))': "fb of linux 'x' places its display, which it has not",
        'linux("x", argv=["BB", "true"], caps={"gui": gui.session()}, fb=(0, 0, 0, 10))': "must be (x, y, width, "
                                                                                          "height)",
    }
    for text, want in cases.items():
        with pytest.raises(BootError, match=want.replace("(", r"\(").replace(")", r"\)")):
            _boot(tmp_path, text.replace("BB", BUSYBOX) + "\n")


def test_screeninfo_layouts_and_event_records() -> None:
    """The structs have Linux's x86-64 sizes and fields; a click is ABS_X, ABS_Y, the button,
    SYN_REPORT; a key is the key and SYN_REPORT; motion is ABS_X, ABS_Y, SYN_REPORT."""
    var = var_screeninfo(200, 120)
    assert len(var) == VAR_SIZE and struct.unpack_from("<7I", var) == (200, 120, 200, 120, 0, 0, 32)
    fix = fix_screeninfo(800, 96000)
    assert len(fix) == FIX_SIZE and struct.unpack_from("<I", fix, 24) == (96000,)
    assert struct.unpack_from("<I", fix, 48) == (800,)

    def kinds(word: int) -> list[tuple[int, int, int]]:
        recs = records(word, 1_500_000_000)
        assert all(len(r) == EVENT_SIZE and struct.unpack_from("<q", r, 8) == (500_000,) for r in recs)
        return [struct.unpack_from("<HHi", r, 16) for r in recs]

    assert kinds(encode(EV_PRESS, BTN_LEFT, 7, 9)) == [(3, 0, 7), (3, 1, 9), (1, BTN_LEFT, 1), (0, 0, 0)]
    assert kinds(encode(EV_PRESS, KEY_ENTER)) == [(1, KEY_ENTER, 1), (0, 0, 0)]
    assert kinds(encode(EV_MOTION, 0, 3, 4)) == [(3, 0, 3), (3, 1, 4), (0, 0, 0)]
