"""DRM split (Nizza's third case): the encrypted film in a busybox Linux, the content key in the
player AppCore's secure storage, the decoded frames only in its own view -- every attack of the
untrusted side refused, by the mechanism named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.scenarios.programs.drm_common import (
    FRAMES,
    SEALED,
    TITLE,
    frame,
    make_licence,
    open_frame,
    open_licence,
    seal_frame,
)
from l4sim.tools.boot import BootResult, boot

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
pytestmark = pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed")

ATTACKS = ["capture-frames", "tampered-media", "reordered-media", "read-key", "forged-licence",
           "replayed-licence", "expired-licence", "modified-player"]


@pytest.fixture(scope="module")
def run() -> BootResult:
    return boot("drm", trace=True)


def test_the_honest_run_plays_every_frame(run: BootResult) -> None:
    """The screen showed each of the film's frames, decoded, in the player's view; the key was
    made and kept in secure storage; the film in Linux is ciphertext."""
    assert run.report is not None
    assert run.report["honest_ok"] is True and run.report["frames_shown"] == FRAMES
    text = run.kernel.machine.uart.text()
    assert "player: made a device key in secure storage" in text
    assert f"linux: fetched {FRAMES} frames into /media/{TITLE}.drm ({FRAMES * SEALED} bytes, encrypted)" in text
    assert "player: took licence 1 for sintel: 1 play(s)" in text
    assert all(f"player: showed frame {i}" in text for i in range(FRAMES))


def test_every_attack_is_refused_by_its_mechanism(run: BootResult) -> None:
    """Each attack was performed and refused, and the player (or the storage) said why."""
    assert run.report is not None
    by = {a["name"]: a for a in run.report["attacks"]}
    assert list(by) == ATTACKS and all(a["refused"] for a in by.values())
    assert "own backing store" in by["capture-frames"]["by"]
    assert by["tampered-media"]["by"].endswith("answered: Bad message") and "AES-GCM" in by["tampered-media"]["by"]
    assert "over its index" in by["reordered-media"]["by"]
    assert "capabilities" in by["read-key"]["by"] and "Invalid argument" in by["read-key"]["by"]
    assert "device key" in by["forged-licence"]["by"]
    assert "secure storage" in by["replayed-licence"]["by"] and "Permission denied" in by["replayed-licence"]["by"]
    assert "rental ran out" in by["expired-licence"]["by"]
    assert "TPM sealing" in by["modified-player"]["by"]
    text = run.kernel.machine.uart.text()
    assert "player: refused: frame 3 fails its AES-GCM tag" in text
    assert "player: refused: licence 1 was taken before" in text
    assert "player: refused: licence 2 expired at" in text
    assert any("ATTACK unseal refused" in line for line in run.report["modified_boot"])


def test_the_seals() -> None:
    """A frame opens only under its key, title and index, and not once a byte changed; a
    licence only under the device key it was made for."""
    key = bytes(range(16))
    blob = seal_frame(key, TITLE, 2, frame(2))
    assert len(blob) == SEALED and open_frame(key, TITLE, 2, blob) == frame(2)
    assert open_frame(key, TITLE, 3, blob) is None and open_frame(bytes(16), TITLE, 2, blob) is None
    assert open_frame(key, TITLE, 2, blob[:50] + bytes([blob[50] ^ 1]) + blob[51:]) is None
    dev = bytes(32)
    lic = make_licence(dev, TITLE, 7, 100, 1, key)
    assert open_licence(dev, TITLE, lic) == (7, 100, 1, key)
    assert open_licence(b"\1" * 32, TITLE, lic) is None and open_licence(dev, "other", lic) is None


def test_json_form() -> None:
    """``--json``'s last line carries the attack table as ebanking and esign print it."""
    r = CliRunner().invoke(main, ["boot", "drm", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output.strip().splitlines()[-1])
    assert [a["name"] for a in s["attacks"]] == ATTACKS
    assert all(set(a) == {"name", "refused", "by"} and a["refused"] is True for a in s["attacks"])
    assert s["honest_ok"] is True and s["frames_shown"] == FRAMES


def test_same_seed_same_trace(run: BootResult) -> None:
    """A second boot with the same seed gives the same trace, console and report."""
    again = boot("drm", trace=True)
    assert run.tracer is not None and again.tracer is not None
    assert len(run.tracer.records) > 1000 and again.tracer.records == run.tracer.records
    assert again.kernel.machine.uart.text() == run.kernel.machine.uart.text()
    assert again.report == run.report
