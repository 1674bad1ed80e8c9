"""``l4sim attest``: the quote and event log verify here and with tpm2-tools."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.machine import tpm2 as t
from l4sim.runtime.measure import EventLog
from l4sim.tools import attest as at

NONCE = "5eed1e55c0ffee"
SCRIPTS = Path(at.__file__).resolve().parent.parent / "scenarios" / "scripts"
needs_tools = pytest.mark.skipif(shutil.which("tpm2_checkquote") is None or shutil.which("tpm2_eventlog") is None,
                                 reason="tpm2-tools is not installed (apt-get install tpm2-tools)")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    d = tmp_path_factory.mktemp("attest")
    res = CliRunner().invoke(main, ["attest", "--nonce", NONCE, "--out", str(d), "--json"])
    assert res.exit_code == 0, res.output
    return d, json.loads(res.output.strip().splitlines()[-1])


def checkquote(d: Path, nonce: str = NONCE, pcrs: str = "pcrs.bin") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tpm2_checkquote", "-u", str(d / "ak.pub.pem"), "-m", str(d / "quote.msg"), "-s",
                           str(d / "quote.sig"), "-f", str(d / pcrs), "-g", "sha256", "-q", nonce, "-e",
                           str(d / "eventlog.bin")], capture_output=True, text=True)


def test_attest_json_reports_the_pcrs_the_replay_and_the_quote(out: tuple[Path, dict[str, object]]) -> None:
    """The last line: the PCRs, replay_ok, quote_verified, the nonce and the files written."""
    d, r = out
    assert r["replay_ok"] is True and r["quote_verified"] is True and r["nonce"] == NONCE
    pcrs = r["pcrs"]
    assert isinstance(pcrs, dict) and sorted(pcrs) == ["8", "9"]
    log = EventLog.from_bytes((d / "eventlog.bin").read_bytes())
    assert {str(n): v.hex() for n, v in log.replay().items()} == pcrs
    assert sorted(Path(str(p)).name for p in r["files"].values()) == [  # type: ignore[union-attr]
        "ak.pub.pem", "eventlog.bin", "pcrs.bin", "quote.msg", "quote.sig"]


@needs_tools
def test_tpm2_checkquote_verifies_the_quote_with_the_event_log(out: tuple[Path, dict[str, object]]) -> None:
    """tpm2-tools checks the signature, the nonce, the PCR digest and the log's replay."""
    d, _ = out
    ok = checkquote(d)
    assert ok.returncode == 0, ok.stderr
    assert "sha256" in ok.stdout


@needs_tools
def test_tpm2_checkquote_refuses_another_nonce_or_other_pcrs(out: tuple[Path, dict[str, object]],
                                                             tmp_path: Path) -> None:
    """A replayed quote (another nonce) and PCR values that are not the quoted ones fail."""
    d, _ = out
    assert checkquote(d, nonce="00112233").returncode != 0
    bad = bytearray((d / "pcrs.bin").read_bytes())
    bad[132 + 4 + 4 + 2] ^= 1  # the first digest's first byte
    for name in ("ak.pub.pem", "quote.msg", "quote.sig", "eventlog.bin"):
        shutil.copy(d / name, tmp_path / name)
    (tmp_path / "pcrs.bin").write_bytes(bytes(bad))
    assert checkquote(tmp_path).returncode != 0


@needs_tools
def test_tpm2_eventlog_parses_the_log_and_replays_the_same_pcrs(out: tuple[Path, dict[str, object]]) -> None:
    """tpm2_eventlog reads every event (no warning) and computes PCRs 8 and 9 as the quote has them."""
    d, r = out
    res = subprocess.run(["tpm2_eventlog", str(d / "eventlog.bin")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "WARN" not in res.stderr and "ERROR" not in res.stderr
    assert res.stdout.count("EventType: EV_IPL") == len(EventLog.from_bytes((d / "eventlog.bin").read_bytes()).events)
    pcrs = r["pcrs"]
    assert isinstance(pcrs, dict)
    for n in ("8", "9"):
        assert f"0x{pcrs[n]}" in res.stdout.lower()


def test_attest_prints_the_log_the_replay_and_the_verdict() -> None:
    """Without --json: the event log table, each PCR's replay, the verdict."""
    res = CliRunner().invoke(main, ["attest", "--nonce", "ab"])
    assert res.exit_code == 0, res.output
    assert "event log (TCG PC Client crypto-agile, SHA-256):" in res.output
    assert "l4sim_entry: " in res.output and "image attest l4sim.security.attest:agent" in res.output
    assert "replay: ok" in res.output and "quote over nonce ab: verified" in res.output


def test_a_script_with_its_own_tpm_driver_is_attested_through_it(tmp_path: Path) -> None:
    """secure_storage.py starts the driver: the agent gets a channel to it; the quote verifies."""
    r = at.attest(SCRIPTS / "secure_storage.py", b"\x01\x02")
    assert r.replay_ok and r.quote_verified
    assert [e.text() for e in r.log.events].count("image tpm l4sim.security.tpm:driver") == 1


def test_the_same_run_gives_the_same_quote_and_another_nonce_another(tmp_path: Path) -> None:
    """Deterministic: the same seed and nonce give byte-identical files; the nonce is in the quote."""
    a = at.attest(SCRIPTS / "default.py", b"n1", tmp_path / "a")
    b = at.attest(SCRIPTS / "default.py", b"n1", tmp_path / "b")
    c = at.attest(SCRIPTS / "default.py", b"n2", tmp_path / "c")
    for name in ("quote.msg", "quote.sig", "pcrs.bin", "eventlog.bin"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a.pcrs == b.pcrs == c.pcrs
    assert (tmp_path / "a" / "quote.msg").read_bytes() != (tmp_path / "c" / "quote.msg").read_bytes()


def test_the_verifier_rejects_a_forged_answer() -> None:
    """A changed quote byte, another key, another nonce: each named, none verified."""
    from l4sim.machine.events import EventQueue
    from l4sim.machine.tpm import Tpm, TpmNv

    tpm = Tpm(EventQueue(), TpmNv(0))
    cmd = t.command(t.CC_QUOTE, (t.AK_HANDLE,), t.Writer().tpm2b(b"n").u16(t.ALG_NULL)
                    .raw(t.pcr_selection([8, 9])).bytes(), auths=((t.RS_PW, b""),))
    r = t.response(tpm.execute(cmd))
    attest, sig = r.params.tpm2b(), r.params.raw(r.params.left())
    good = at.Answer(attest, sig, tpm.ak_public(), {8: tpm.pcr(8), 9: tpm.pcr(9)}, b"")
    assert at.verify(good, b"n", tpm.ak_public()) == (True, [])
    flipped = at.Answer(attest[:-1] + bytes([attest[-1] ^ 1]), sig, good.ak_public, good.pcrs, b"")
    ok, why = at.verify(flipped, b"n", tpm.ak_public())
    assert not ok and any("signature" in w for w in why)
    other = Tpm(EventQueue(), TpmNv(1)).ak_public()
    assert "manufacturer" in at.verify(good, b"n", other)[1][0]
    assert any("nonce" in w for w in at.verify(good, b"m", tpm.ak_public())[1])


@pytest.mark.parametrize("args, words", [
    (["--nonce", "xyz"], "--nonce 'xyz' is not hex"),
    (["--nonce", "00" * 65], "a nonce of 65 bytes: give 1 to 64 bytes"),
    (["nosuch.py", "--nonce", "00"], "startup script nosuch.py not found"),
    (["--nonce", "00", "--out", "/proc/no/such"], "cannot write /proc/no/such"),
])
def test_attest_mistakes_are_one_line_and_status_2(args: list[str], words: str) -> None:
    res = CliRunner().invoke(main, ["attest", *args])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], res.output


def test_a_script_that_takes_the_line_or_the_names_is_refused(tmp_path: Path) -> None:
    """serial1 given to a program, or a program named attest: one line naming the script."""
    p = tmp_path / "s.py"
    p.write_text('start("x", "l4sim.scenarios.programs.demo:hello", caps={"l": ioports("serial1")})\n')
    with pytest.raises(at.AttestError, match=r"holds ioports\('serial1'\)"):
        at.attest(p, b"n")
    p.write_text('start("attest", "l4sim.scenarios.programs.demo:hello")\n')
    with pytest.raises(at.AttestError, match="starts a program named 'attest'"):
        at.attest(p, b"n")
    p.write_text('start("x", "l4sim.scenarios.programs.demo:hello", caps={"t": ioports("tpm")})\n')
    with pytest.raises(at.AttestError, match="not to the TPM driver"):
        at.attest(p, b"n")
