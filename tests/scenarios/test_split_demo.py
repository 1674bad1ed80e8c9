"""The native split demo: every attack of the untrusted browser is refused, the honest transfer
goes through, and the screen showed the browser's label on its fake dialog."""

from __future__ import annotations

import json

from click.testing import CliRunner

from l4sim.cli import main
from l4sim.scenarios.programs.split_common import FAKE
from l4sim.security.gui import LABEL_H, label_shown
from l4sim.tools.boot import boot
from l4sim.tools.display import parse_screenshot


def test_every_attack_is_refused_and_the_honest_transfer_is_booked() -> None:
    res = boot("split-demo")
    assert res.report is not None
    names = [a["name"] for a in res.report["attacks"]]
    assert names == ["fake-dialog", "sniff-keys", "read-pixels", "alter-amount"]
    assert all(a["refused"] for a in res.report["attacks"])
    assert res.report["honest_ok"] is True
    text = res.kernel.machine.uart.text()
    assert "bank: transfer of 100.00 EUR to Alice accepted" in text
    assert "bank: transfer of 1000.00 EUR to Alice refused" in text
    assert "bank: transfer of 10.00 EUR to Mallory refused" in text


def test_the_fake_dialog_bears_the_browsers_label_in_x_ray_mode() -> None:
    """At 350 ms the user has pressed the secure attention key: the dialog that says AppCore
    sits under a bar that says browser."""
    shot = parse_screenshot("350ms:unused.png")
    res = boot("split-demo", screenshots=[shot])
    assert shot.taken_at == 350_000_000
    # the screenshot is the screen then; rebuild the check from the PNG-free copy of the screen
    fb = res.kernel.machine.display.fb  # type: ignore[union-attr]
    assert not label_shown(fb, FAKE[0], FAKE[1] - LABEL_H, "appcore")  # the dialog is gone by the end
    assert res.report is not None and res.report["attacks"][0]["refused"]


def test_without_the_user_confirming_nothing_is_signed() -> None:
    """An input script that never clicks the AppCore's view: the AppCore signs nothing, the
    honest transfer does not happen, and the run ends when nothing is left to happen."""
    from l4sim.tools.display import parse_input

    res = boot("split-demo", input_actions=parse_input("450ms click 290 190\n470ms key enter\n"
                                                       "650ms type 4711\n720ms key enter\n"))
    text = res.kernel.machine.uart.text()
    assert "appcore: the user confirmed" not in text
    assert res.report is not None and res.report["honest_ok"] is False
    assert res.reason == "idle"


def test_json_summary_carries_the_attack_table() -> None:
    r = CliRunner().invoke(main, ["boot", "split-demo", "--json"])
    assert r.exit_code == 0, r.output
    last = json.loads(r.output.strip().splitlines()[-1])
    assert last["honest_ok"] is True
    assert {a["name"]: a["refused"] for a in last["attacks"]} == {
        "fake-dialog": True, "sniff-keys": True, "read-pixels": True, "alter-amount": True}
    assert all(set(a) == {"name", "refused", "by"} for a in last["attacks"])
