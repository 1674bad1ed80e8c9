"""``l4sim boot secure-storage``: the honest boots and every attack, each detected -- on the
Linux store (busybox in an instance) and on the native store that stands in without busybox;
``l4sim lifetime secure-storage``."""

from __future__ import annotations

import difflib
import json
import shutil
from typing import Any

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.scenarios import secure_storage as ss

needs_busybox = pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return ss.run_boots()


@pytest.fixture(scope="module")
def native() -> dict[str, Any]:
    """The scenario on a host without busybox: the script starts the native store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shutil, "which", lambda name, *a, **kw: None)
        return ss.run_boots()


def _check(r: dict[str, Any]) -> dict[str, str]:
    """Every attack detected, the others served; the table's 'how' by attack."""
    assert r["honest_ok"] is True
    names = [a["name"] for a in r["attacks"]]
    assert names == [a.name for a in ss.ATTACKS] + [ss.INTRUDER]
    for a in r["attacks"]:
        assert a["detected"] is True, a
        assert a["others_ok"] is True, a
    how = {a["name"]: a["how"] for a in r["attacks"]}
    assert how["the store flips a bit in a blob"].startswith("modified: file ")
    assert how["the store swaps two files' blobs"].startswith("swapped: ")
    assert how["the store drops a file"].startswith("dropped: file ")
    assert how["the store rolls back to an old state"].startswith("rollback: ")
    assert how["a modified startup script unseals"].startswith("unseal refused: ")
    assert "24 refused by the kernel" in how[ss.INTRUDER]
    loc = r["loc"]
    assert r["trusted_loc"] == loc["tpm_driver"] + loc["storage_server"] + loc["libraries"] > 0
    assert loc["platform"] > r["trusted_loc"]
    return how


@needs_busybox
def test_the_linux_store_every_attack_is_detected_and_the_others_keep_working(result: dict[str, Any]) -> None:
    """The honest setup and reboot succeed on the Linux store; each attack on its files is
    reported and serves no forged byte; the old version it replays is the one its attacker
    saw at the setup's power-off (carol's first diary); the untrusted side is the personality,
    the shell program and busybox's machine code."""
    assert result["store"] == "linux"
    how = _check(result)
    assert how["the store replays an old version"] == "replayed: file carol/diary: the store served version 1 of 2"
    loc = result["loc"]
    assert result["untrusted_loc"] == loc["personality"] + loc["store_sh"]
    assert loc["personality"] > 5 * result["trusted_loc"] and 10 < loc["store_sh"] < 40
    assert list(loc["binaries"]) == ["busybox"] and loc["binaries"]["busybox"] > 1 << 20


def test_without_busybox_the_native_store_stands_in(native: dict[str, Any]) -> None:
    """The same boots and attacks on the NVRAM's log, which keeps alice's first version."""
    assert native["store"] == "native"
    how = _check(native)
    assert how["the store replays an old version"] == "replayed: file alice/notes: the store served version 1 of 2"
    assert native["untrusted_loc"] == native["loc"]["store"] > 0
    assert "the untrusted store: the native store" in ss.format_result(native)


@needs_busybox
def test_the_linux_store_keeps_hex_files_that_survive_the_reboot() -> None:
    """After the setup boot the disk holds the sealed key, the metadata and one blob per file,
    each a hex line; the reboot finds them (the key unseals, nothing is reported)."""
    from l4sim.machine.tpm import TpmNv

    nv, disk = TpmNv(0), ss.LinuxDisk()
    first = ss.boot_once(ss.SCRIPT, nv, disk, 0, 2, None)
    assert sorted(disk.files)[-2:] == ["key", "meta"] and len(ss._blobs(disk)) == 3
    for raw in disk.files.values():
        assert raw.endswith(b"\n") and bytes.fromhex(raw.decode().strip())
    assert b"alice" not in b"".join(disk.get(k) or b"" for k in disk.names())
    second = ss.boot_once(ss.SCRIPT, nv, disk, 0, 2, None)
    assert not first.attacks() and not second.attacks()
    assert second.client("alice").startswith("notes: ok (version 2")
    assert disk.seen and all(len(v) == 1 for v in disk.seen.values())  # carol's diary and the metadata


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


@needs_busybox
def test_l4sim_boot_secure_storage_prints_json_and_the_table(result: dict[str, Any]) -> None:
    """The command: each boot's console, with --json the last line (the same as another run's:
    deterministic); the table; --trace refused."""
    res = CliRunner().invoke(main, ["boot", "secure-storage", "--json"])
    assert res.exit_code == 0, res.output
    last = json.loads(res.output.strip().splitlines()[-1])
    assert last == result
    assert "--- boot 8: a modified startup script unseals" in res.output
    table = ss.format_result(result)
    assert "the store replays an old version      yes       yes        replayed: " in table
    assert "untrusted Linux store " in table and "busybox " in table
    res = CliRunner().invoke(main, ["boot", "secure-storage", "--trace", "x.json"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == ("l4sim: secure-storage boots the machine several times: "
                                                   "--trace cannot apply; leave it out")


@needs_busybox
def test_the_lifetime_of_the_master_key_before_and_after_zero_on_free() -> None:
    """Both honest boots, each with its key: made by the storage server (setup), unsealed by
    the TPM driver and named by the server (reboot).  Without zero-on-free copies stay in freed
    frames to the end; with it none does; no copy is ever in the Linux store."""
    res = CliRunner().invoke(main, ["lifetime", "secure-storage", "--compare", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    before, after = r["before"], r["after"]
    assert [(s["boot"], s["secret"], s["owner"]) for s in before["secrets"]] == [
        ("setup", "master key", "storage"), ("reboot", "unsealed for storage", "tpm")]
    assert before["secrets"][1]["also"] == ["'master key' by storage"]
    places = [c["where"] for s in before["secrets"] for c in s["copies"]]
    assert any("written in tpm" in w for w in places) and any("registers of thread storage" in w for w in places)
    assert not any("store" in w.replace("storage", "") for w in places), "the Linux store sees ciphertext only"
    assert [s["at_end"] for s in before["secrets"]] == [2, 1]
    assert [s["at_end"] for s in after["secrets"]] == [0, 0]
    assert [len(s["copies"]) for s in before["secrets"]] == [len(s["copies"]) for s in after["secrets"]]
    text = CliRunner().invoke(main, ["lifetime", "secure-storage"]).output
    assert "boot reboot: secret 'unsealed for storage' (32 bytes) marked by tpm (also marked 'master key' " \
           "by storage)" in text
