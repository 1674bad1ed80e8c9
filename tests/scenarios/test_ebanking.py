"""The Linux split applications (Nizza II): e-banking with a busybox browser and a native AppCore,
its monolithic variant, the document signer with its key in secure storage, and the TCB
comparison of monolithic against split."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from l4sim.scenarios.esign import verified
from l4sim.scenarios.programs.ebanking_common import (
    BROWSER,
    CORE,
    FAKE,
    confirmation,
    open_seal,
    pads,
    seal,
)
from l4sim.security.gui import LABEL_H, label_shown
from l4sim.tools.boot import boot
from l4sim.tools.display import Screenshot, parse_screenshot
from l4sim.tools.tcb import compare, format_compare

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
pytestmark = pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed")


def screen_of(shot: Screenshot) -> SimpleNamespace:
    """The screen a screenshot holds, as the framebuffer keeps it (B, G, R, 0 per pixel)."""
    assert shot.data is not None
    data, at, idat = shot.data, 8, b""
    width = height = 0
    while at < len(data):
        (n,) = struct.unpack_from(">I", data, at)
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + n]
        if kind == b"IHDR":
            width, height = struct.unpack_from(">II", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + n
    raw = zlib.decompress(idat)
    rgb = b"".join(raw[y * (1 + 3 * width) + 1 : (y + 1) * (1 + 3 * width)] for y in range(height))
    px = bytearray(width * height * 4)
    px[0::4], px[1::4], px[2::4] = rgb[2::3], rgb[1::3], rgb[0::3]
    return SimpleNamespace(width=width, height=height, screen=bytes(px))


def pixel(fb: SimpleNamespace, x: int, y: int) -> int:
    b = fb.screen[(y * fb.width + x) * 4 : (y * fb.width + x) * 4 + 3]
    return b[2] << 16 | b[1] << 8 | b[0]


def test_ebanking_refuses_every_attack_and_books_the_honest_transfer() -> None:
    """The browser's four attacks are refused, each by its mechanism; the transfer the user
    confirmed in the AppCore is booked once, the changed one and Mallory's are not.  In X-ray
    mode the dialog that says AppCore sits in the view labelled browser; at the confirmation
    the AppCore's own view, labelled appcore, asks about the real transfer."""
    xray, confirm = parse_screenshot("350ms:xray.png"), parse_screenshot("710ms:confirm.png")
    res = boot("ebanking", screenshots=[xray, confirm])
    assert res.report is not None
    by = {a["name"]: a for a in res.report["attacks"]}
    assert list(by) == ["fake-dialog", "sniff-keys", "read-pixels", "alter-amount"]
    assert all(a["refused"] for a in by.values()) and res.report["honest_ok"] is True
    summary = json.loads(json.dumps({**res.summary(), **res.report}))  # what --json prints last (cli.py)
    assert [set(a) for a in summary["attacks"]] == [{"name", "refused", "by"}] * 4 and summary["honest_ok"]
    assert "label bar" in by["fake-dialog"]["by"] and "GUI focus (0 key presses" in by["sniff-keys"]["by"]
    assert "own backing store" in by["read-pixels"]["by"] and "confirmation" in by["alter-amount"]["by"]
    text = res.kernel.machine.uart.text()
    assert "bank: transfer 1001 of 100.00 EUR to Alice booked" in text
    assert "bank: transfer 1001 of 1000.00 EUR to Alice refused" in text
    assert "of 10.00 EUR to Mallory refused" in text
    bar = (BROWSER[0], BROWSER[1] - LABEL_H)
    shot = screen_of(xray)
    assert label_shown(shot, *bar, "browser") and not label_shown(shot, *bar, "appcore")
    fx, fy = BROWSER[0] + FAKE[0] + 10, BROWSER[1] + FAKE[1] + 10
    assert pixel(shot, fx, fy) != pixel(screen_of(confirm), fx, fy)  # dimmed in X-ray mode
    shot = screen_of(confirm)
    assert label_shown(shot, CORE[0], CORE[1] - LABEL_H, "appcore")
    assert pixel(shot, CORE[0] + 5, CORE[1] + 5) == 0xE8F0E8  # the AppCore's own pixels
    assert pixel(shot, fx, fy) == 0xFFFFFF  # the browser shows the bank's form again


def test_the_seal_and_the_confirmation() -> None:
    """A seal opens with the channel key only, and not once a byte changed; the pads are
    HMAC's; the confirmation names exactly one transfer."""
    key = b"k" * 20
    blob = seal(key, bytes(16), b"1001|Alice|10000")
    assert open_seal(key, blob) == b"1001|Alice|10000"
    assert open_seal(b"other key", blob) is None
    assert open_seal(key, blob[:20] + bytes([blob[20] ^ 1]) + blob[21:]) is None
    assert b"1001|Alice|10000" not in blob
    ipad, opad = pads(key)
    assert len(ipad) == 64 and ipad[0] == ord("k") ^ 0x36 and opad[-1] == 0x5C
    assert confirmation(key, 1001, "Alice", 10000) != confirmation(key, 1001, "Alice", 100000)


def test_ebanking_mono_does_it_all_in_linux() -> None:
    """The monolithic variant opens the seal and makes the confirmation with busybox: the bank
    books the transfer as it does for the AppCore's."""
    res = boot("ebanking-mono")
    assert res.report is not None and res.report["honest_ok"] is True
    text = res.kernel.machine.uart.text()
    assert "browser: transaction 1001: Alice, 10000 cents" in text
    assert "bank: transfer 1001 of 100.00 EUR to Alice booked" in text


def test_tcb_compare_ebanking_monolithic_against_split() -> None:
    """The monolithic TCB holds the Linux instance -- the personality and busybox, counted from
    what it ran -- and the split one does not; the ratio is set beside the EuroSys table."""
    r = compare("ebanking")
    assert "browser" in r["monolithic"] and "browser" not in r["split"] and "appcore" in r["split"]
    assert r["monolithic_loc"] > 150_000 > 20_000 > r["split_loc"] > 5_000
    assert r["ratio"] == round(r["monolithic_loc"] / r["split_loc"], 2) > 10
    text = format_compare(r)
    assert "e-commerce            978     10   97.8x  <- this scenario's counterpart" in text
    assert "Compare the ratios, not the sizes" in text


def test_esign_signs_only_what_the_user_confirmed() -> None:
    """The signer makes its key in secure storage, signs the contract the user confirmed (the
    signature verifies with cryptography), refuses the changed contract and the paper the user
    refused while Linux injected Enter presses; Linux has no way to the key."""
    res = boot("esign")
    assert res.report is not None
    assert [(a["name"], a["refused"]) for a in res.report["attacks"]] == [
        ("changed-document", True), ("inject-keys", True), ("steal-key", True)]
    assert res.report["honest_ok"] is True and res.report["signature_verified"] is True
    text = res.kernel.machine.uart.text()
    assert "signer: made a signing key in secure storage" in text
    assert "signer: refused to sign: not the document the user confirmed" in text
    assert "signer: the user refused the document" in text
    doc = next(line for line in text.splitlines() if "esign: document " in line)
    assert not verified(text.replace(doc, doc[:-2] + ("00" if not doc.endswith("00") else "01")))
