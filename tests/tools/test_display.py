"""Input scripts, screenshots and the PNG writer."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from l4sim.machine.display import KEY_ENTER, KEY_LEFTSHIFT, KEY_SAK
from l4sim.tools.display import (
    CLICK_HOLD_NS,
    KEY_HOLD_NS,
    TYPE_GAP_NS,
    InputError,
    parse_input,
    parse_screenshot,
    png,
)


def test_key_type_and_click_become_device_events_at_their_instants() -> None:
    """A key is pressed and held KEY_HOLD_NS; typed capitals come with Shift; a click presses
    and releases the button where it moves the pointer."""
    acts = parse_input("1ms key enter\n2ms key sak\n10ms type aB\n50ms click 10 20 right\n")
    keys = [(a.time, a.code, a.release) for a in acts if a.kind == "key"]
    assert keys[:4] == [(1_000_000, KEY_ENTER, False), (2_000_000, KEY_SAK, False),
                        (1_000_000 + KEY_HOLD_NS, KEY_ENTER, True), (2_000_000 + KEY_HOLD_NS, KEY_SAK, True)]
    assert keys == sorted(keys, key=lambda k: k[0])  # in time order
    b_at = 10_000_000 + TYPE_GAP_NS
    assert (b_at, KEY_LEFTSHIFT, False) in keys and (b_at, 48, False) in keys
    ptr = [(a.time, a.x, a.y, a.buttons) for a in acts if a.kind == "pointer"]
    assert ptr == [(50_000_000, 10, 20, 0), (50_000_000, 10, 20, 2), (50_000_000 + CLICK_HOLD_NS, 10, 20, 0)]


def test_a_typed_hash_is_text_and_comments_go_elsewhere() -> None:
    acts = parse_input("# a comment\n5ms type #1  # not a comment\n")
    assert len([a for a in acts if not a.release and a.code != KEY_LEFTSHIFT]) == len("#1  # not a comment")


@pytest.mark.parametrize(("text", "message"), [
    ("5ms key nosuchkey", "input:1: unknown key 'nosuchkey'"),
    ("5 key a", "input:1: the time '5' has no unit"),
    ("5ms jump", "input:1: unknown action 'jump'"),
    ("9ms key a\n5ms key b", "input:2: 5ms comes before the line above it"),
    ("5ms click 10", "input:1: 'click' takes X Y"),
    ("5ms move 1 2 left", "is no button here"),
    ("5ms type ü", "cannot type 'ü'"),
])
def test_a_bad_line_is_one_error_naming_it(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_input(text)


def test_png_is_a_valid_rgb_image_of_the_pixels() -> None:
    """Signature, IHDR of 2x1 8-bit RGB, and IDAT inflating to filter byte + pixels."""
    data = png(2, 1, bytes([255, 0, 0, 0, 0, 255]))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (w, h, depth, colour) == (2, 1, 8, 2)
    n = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    assert zlib.decompress(data[41 : 41 + n]) == b"\x00" + bytes([255, 0, 0, 0, 0, 255])
    assert data[-8:-4] == b"IEND"


def test_screenshot_requests() -> None:
    assert parse_screenshot("a.png").time is None
    s = parse_screenshot("40ms:dir/b.png")
    assert (s.time, s.path) == (40_000_000, "dir/b.png")
    with pytest.raises(InputError, match=r"give FILE\.png"):
        parse_screenshot("shot.jpg")


def test_boot_refuses_input_and_screenshots_without_a_display_in_one_line(tmp_path: Path) -> None:
    """--input or --screenshot on a machine without a display, or an input file that cannot be
    read, is one line and exit status 2, with no warning about programs that never ran."""
    from click.testing import CliRunner

    from l4sim.cli import main

    inp = tmp_path / "in.txt"
    inp.write_text("10ms key a\n")
    for args, msg in ((["default", "--input", str(inp)], "has no keyboard or pointer"),
                      (["default", "--screenshot", str(tmp_path / "x.png")], "has no display"),
                      (["gui", "--input", str(tmp_path / "none.txt")], "cannot read the input script"),
                      (["secure-storage", "--input", str(inp)], "--input cannot apply"),
                      (["secure-storage", "--screenshot", str(tmp_path / "x.png")], "--screenshot cannot apply")):
        r = CliRunner().invoke(main, ["boot", *args])
        assert r.exit_code == 2 and msg in r.output and "never awaited" not in r.output, r.output


def test_boot_writes_the_screenshots_asked_for(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from l4sim.cli import main

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    r = CliRunner().invoke(main, ["boot", "gui", "--screenshot", f"300ms:{a}", "--screenshot", str(b)])
    assert r.exit_code == 0, r.output
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b.read_bytes() != a.read_bytes()
