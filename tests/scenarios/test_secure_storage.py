"""``l4sim boot secure-storage``: the honest boots and every attack, each detected."""

from __future__ import annotations

import difflib
import json
from typing import Any

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.scenarios import secure_storage as ss


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return ss.run_boots()


def test_every_attack_is_detected_and_the_others_keep_working(result: dict[str, Any]) -> None:
    """The honest setup and reboot succeed; each attack is reported and serves no forged byte."""
    r = result
    assert r["honest_ok"] is True
    names = [a["name"] for a in r["attacks"]]
    assert names == [a.name for a in ss.ATTACKS] + [ss.INTRUDER]
    for a in r["attacks"]:
        assert a["detected"] is True, a
        assert a["others_ok"] is True, a
    how = {a["name"]: a["how"] for a in r["attacks"]}
    assert how["the store flips a bit in a blob"].startswith("modified: file ")
    assert how["the store replays an old version"] == "replayed: file alice/notes: the store served version 1 of 2"
    assert how["the store swaps two files' blobs"].startswith("swapped: ")
    assert how["the store drops a file"].startswith("dropped: file ")
    assert how["the store rolls back to an old state"].startswith("rollback: ")
    assert how["a modified startup script unseals"].startswith("unseal refused: ")
    assert "24 refused by the kernel" in how[ss.INTRUDER]
    loc = r["loc"]
    assert r["trusted_loc"] == loc["tpm_driver"] + loc["storage_server"] + loc["libraries"] > 0
    assert r["untrusted_loc"] == loc["store"] > 0 and loc["platform"] > r["trusted_loc"]


def test_a_verdict_without_a_report_or_with_forged_data_is_not_detected() -> None:
    """The table's judgement: no ATTACK line, or a WRONG DATA line, is a failure to detect."""
    quiet = ss.Boot([("alice", "notes: ok (version 2, 28 bytes)")])
    assert ss._verdict(quiet)[0] is False
    forged = ss.Boot([("storage", "ATTACK modified: file bob/key: x"), ("bob", "key: WRONG DATA")])
    assert ss._verdict(forged)[0] is False


def test_the_modified_script_only_adds_mallory() -> None:
    """The attacker's script is the honest one plus mallory's channel and program."""
    honest = ss.SCRIPT.read_text().splitlines()
    changed = ss.MALLORY.read_text().splitlines()
    added = [d[2:] for d in difflib.ndiff(honest, changed) if d.startswith("+ ")]
    removed = [d[2:] for d in difflib.ndiff(honest, changed) if d.startswith("- ")]
    assert removed == ['            "svc.carol": carol.server()},']
    code = [line for line in added if not line.startswith("#")]
    assert all("mallory" in line for line in code) and len(code) == 3


def test_l4sim_boot_secure_storage_prints_the_table_and_json(result: dict[str, Any]) -> None:
    """The command: each boot's console, the table; with --json the last line (the same as another
    run's: deterministic); --trace refused."""
    res = CliRunner().invoke(main, ["boot", "secure-storage", "--json"])
    assert res.exit_code == 0, res.output
    last = json.loads(res.output.strip().splitlines()[-1])
    assert last == result
    assert last["honest_ok"] is True and all(a["detected"] for a in last["attacks"])
    assert set(last["attacks"][0]) >= {"name", "detected"}
    assert "--- boot 8: a modified startup script unseals" in res.output
    table = CliRunner().invoke(main, ["boot", "secure-storage"])
    assert "the store replays an old version      yes       yes        replayed: " in table.output
    assert "lines of code: trusted " in table.output
    res = CliRunner().invoke(main, ["boot", "secure-storage", "--trace", "x.json"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == ("l4sim: secure-storage boots the machine several times: "
                                                   "--trace cannot apply; leave it out")
