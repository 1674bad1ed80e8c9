"""The ``vpn`` scenario: a µSINA-style gateway seals the intranet's traffic into ESP."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.scenarios.vpn import MARKER
from l4sim.tools.boot import boot, scenario_names

pytestmark = pytest.mark.skipif(shutil.which("busybox") is None and not Path("/bin/busybox").is_file(),
                                reason="busybox is not installed")


def _frames(pcap: bytes) -> list[bytes]:
    """The frames of a classic pcap file (little-endian, microseconds, Ethernet)."""
    magic, _vmaj, _vmin, _tz, _sig, _snap, link = struct.unpack_from("<IHHiIII", pcap)
    assert magic == 0xA1B2C3D4 and link == 1
    out, at = [], 24
    while at < len(pcap):
        _s, _us, incl, _orig = struct.unpack_from("<IIII", pcap, at)
        out.append(pcap[at + 16 : at + 16 + incl])
        at += 16 + incl
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], bytes, str]:
    """``l4sim boot vpn --pcap FILE --json`` once: the JSON line, the capture, the output."""
    pcap = tmp_path_factory.mktemp("vpn") / "outer.pcap"
    r = CliRunner().invoke(main, ["boot", "vpn", "--pcap", str(pcap), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output.strip().splitlines()[-1]), pcap.read_bytes(), r.output


def test_wget_through_the_tunnel_gets_the_file_byte_for_byte(run: tuple[dict[str, object], bytes, str]) -> None:
    """The intranet's wget fetches the internet host's file through the gateway: the same
    bytes (both marker lines and 32 KiB of random bytes between them)."""
    summary, _pcap, out = run
    assert "vpn" in scenario_names()
    assert summary["transfer_ok"] is True
    assert summary["bytes"] == 2 * (len(MARKER) + 1) + 32768
    assert "intranet: fetched 32822 bytes" in out


def test_the_outer_wire_carries_only_esp(run: tuple[dict[str, object], bytes, str]) -> None:
    """Every IPv4 packet on the cable is ESP between the gateway and the web host, and the
    marker of the file is nowhere in the capture (the whole file went over it)."""
    _summary, pcap, _out = run
    frames = _frames(pcap)
    ip = [f for f in frames if f[12:14] == b"\x08\x00"]
    assert len(ip) > 40
    assert all(f[14 + 9] == 50 for f in ip)
    assert {(f[26:30], f[30:34]) for f in ip} == {(bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2])),
                                                  (bytes([198, 51, 100, 2]), bytes([198, 51, 100, 1]))}
    assert MARKER not in pcap
    assert sum(len(f) for f in ip) > 32768  # the file did cross it, sealed


def test_tcpdump_reads_the_capture(run: tuple[dict[str, object], bytes, str], tmp_path: Path) -> None:
    """The capture is a pcap file tcpdump reads: ESP with the two SPIs."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    f = tmp_path / "outer.pcap"
    f.write_bytes(run[1])
    r = subprocess.run(["tcpdump", "-nn", "-r", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "ESP(spi=0x00001001" in r.stdout and "ESP(spi=0x00002002" in r.stdout


def test_replayed_and_altered_packets_are_dropped_and_counted(run: tuple[dict[str, object], bytes, str]) -> None:
    """mallory replays two ESP packets (at once, and four packets late), flips a bit of one
    and forges a sequence number: the gateway refuses each, says so on its log, and counts
    them; the transfer still completes (TCP sends what mallory dropped again)."""
    summary, _pcap, out = run
    assert summary["dropped_replayed"] == 2 and summary["dropped_corrupt"] == 2
    assert "vpn: dropped replayed: ESP seq 5 from 198.51.100.2" in out
    assert "vpn: dropped corrupt: ESP seq 1010 from 198.51.100.2" in out
    vpn = summary["vpn"]
    assert isinstance(vpn, dict)
    assert vpn["sealed"] > 20 and vpn["opened"] > 20 and vpn["other_drops"] == {}
    assert vpn["added_latency_ns"] > 0


def test_lines_of_code_set_the_gateway_beside_linux(run: tuple[dict[str, object], bytes, str]) -> None:
    """trusted_loc (the gateway and what it runs of the drivers' library) is a small fraction
    of untrusted_loc (the Linux personality): the tunnel's TCB shrinks as in the paper."""
    summary = run[0]
    trusted, untrusted = summary["trusted_loc"], summary["untrusted_loc"]
    assert isinstance(trusted, int) and isinstance(untrusted, int)
    assert 200 < trusted < untrusted // 10
    vpn = summary["vpn"]
    assert isinstance(vpn, dict) and vpn["tcb_ratio"] > 1.5


def test_the_same_seed_gives_the_same_trace_twice() -> None:
    """Deterministic: two runs of the scenario with the same seed trace the same records."""
    a, b = boot("vpn", trace=True, seed=3), boot("vpn", trace=True, seed=3)
    assert a.tracer is not None and b.tracer is not None
    assert len(a.tracer.records) > 10_000 and a.tracer.records == b.tracer.records
    assert a.report is not None and a.report["transfer_ok"]


def test_the_text_summary_reports_the_tunnel() -> None:
    """Without --json the summary ends with the transfer, the refusals and the lines of code."""
    r = CliRunner().invoke(main, ["boot", "vpn"])
    assert r.exit_code == 0, r.output
    assert "transfer through the tunnel: byte for byte (32822 bytes)" in r.output
    assert "refused 2 replayed and 2 altered or forged packets" in r.output
