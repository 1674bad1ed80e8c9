"""The switch, the nic and blk servers, and the devices scenario end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from l4sim.drivers.netport import NetClient
from l4sim.runtime.ned import load_script
from l4sim.scenarios.programs.netdemo import DATA, frame, kind_of
from l4sim.tools.boot import boot
from l4sim.user.env import Env, Gate

from .helpers import run_plan, script, statuses

ME = __name__
GOT: dict[str, list[bytes]] = {}
ROOT = Path(__file__).resolve().parents[2]


async def station(env: Env, name: str, script_: str) -> int:
    """A port of the switch doing what ``script_`` says: ``s<to>`` send to a station's MAC
    (or ``*`` broadcast, ``?`` an unknown one), ``r`` receive what is there, ``w`` wait."""
    port = await NetClient.open(env, env.cap("net", Gate), env.heap[0])  # type: ignore[attr-defined]
    GOT.setdefault(name, [])
    macs = {"a": bytes([2, 0, 0, 0, 0, 0]), "b": bytes([2, 0, 0, 0, 0, 1]), "c": bytes([2, 0, 0, 0, 0, 2]),
            "*": b"\xff" * 6, "?": bytes([2, 9, 9, 9, 9, 9])}
    for op in script_.split():
        if op[0] == "s":
            await port.send(frame(macs[op[1]], port.mac, DATA, ord(name)))
        elif op == "r":
            while (f := await port.recv(wait=False)) is not None:
                GOT[name].append(f)
        else:
            await env.receive(env.thread, timeout=200_000)
    return 0


def test_the_switch_learns_addresses_and_floods_only_the_unknown(tmp_path: Path) -> None:
    """a broadcasts (b and c get it, and a's address is learned); b answers a (only a gets it);
    c sends to an address nobody has (a and b get it, flooded)."""
    GOT.clear()
    p = script(tmp_path, f'''
sw = channel("sw")
start("switch", "l4sim.drivers.switch:main", caps={{"svc": sw.server(), "factory": factory()}}, prio=50, daemon=True)
start("a", "{ME}:station", caps={{"net": sw}}, prio=30, args=("a", "w w s* w w w r"))
start("b", "{ME}:station", caps={{"net": sw}}, prio=30, args=("b", "w w w sa w w r"))
start("c", "{ME}:station", caps={{"net": sw}}, prio=30, args=("c", "w w w w s? w r"))
''')
    _, s, reason = run_plan(load_script(p, 2))
    assert reason == "stop", statuses(s)
    src = {n: [f[6:12].hex() for f in fs] for n, fs in GOT.items()}
    assert src == {"a": ["020000000001", "020000000002"],  # b's answer, c's flood
                   "b": ["020000000000", "020000000002"],  # a's broadcast, c's flood
                   "c": ["020000000000"]}                  # a's broadcast only
    assert all(kind_of(f) == DATA for fs in GOT.values() for f in fs)


def _devices(tmp_path: Path, **kw: Any) -> Any:
    return boot("devices", cores=2, seed=kw.pop("seed", 0), **kw)


def test_the_devices_scenario_end_to_end(tmp_path: Path) -> None:
    """Frames cross the switch, pings cross the cable and come back, blocks are stored, every
    rogue DMA is refused; the cable's capture holds the pings; the same seed, the same run."""
    pcap = tmp_path / "cable.pcap"
    res = _devices(tmp_path, pcap=str(pcap))
    s = res.summary()
    text = res.kernel.machine.uart.text()
    assert res.reason == "stop"
    st = {c["name"]: c["status"] for c in s["components"]}
    assert all(st[n] == "exited" for n in ("sink", "source", "pinger", "store", "rogue")), st
    assert "pinger: 10 pings to 52:54:00:12:34:58 across the cable" in text
    assert "frames/s simulated" in text
    assert "rogue: 254 DMA transfers aimed at memory not its own, 254 refused" in text
    assert s["devices"]["iommu"]["refused"] == 254
    assert s["devices"]["nic0"]["tx_frames"] == 11 and s["devices"]["nic1"]["rx_frames"] == 11
    data = pcap.read_bytes()
    assert data.count(b"\x88\xb5\x04") == 10 and data.count(b"\x88\xb5\x05") == 10  # pings, pongs
    again = _devices(tmp_path, pcap=str(tmp_path / "again.pcap"))
    assert again.summary() == s and (tmp_path / "again.pcap").read_bytes() == data
    assert again.kernel.machine.uart.text() == text


def test_a_crash_leaves_the_flushed_blocks_on_the_image(tmp_path: Path) -> None:
    """--crash-at after the store's flush: the image holds the eight flushed blocks; the block
    written after the flush is there only if the disk's log says it wrote it back."""
    img = tmp_path / "disk.img"
    res = _devices(tmp_path, disk=str(img), crash_at=13_000_000)
    assert res.reason == "crash"
    data = img.read_bytes()
    assert len(data) == 2048 * 512
    for blk in range(8):
        assert data[blk * 4096 : (blk + 1) * 4096] == bytes([0x40 + blk]) * 4096
    disk = res.kernel.machine.board["blk0"].dev
    written_back = any(s == 64 for _t, s, _how in disk.log)
    assert data[64 * 512 : 64 * 512 + 15] == (b"after the flush" if written_back else bytes(15))


def test_boot_devices_with_a_pcap_from_the_command_line(tmp_path: Path) -> None:
    """``l4sim boot devices --pcap FILE --json``: the summary's device counters, a capture tcpdump
    reads (when it is installed)."""
    pcap = tmp_path / "c.pcap"
    out = subprocess.run([sys.executable, "-m", "l4sim", "boot", "devices", "--pcap", str(pcap), "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert s["devices"]["iommu"]["refused"] == 254
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    dump = subprocess.run(["tcpdump", "-r", str(pcap), "-n", "-e"], capture_output=True, text=True, check=True)
    assert dump.stdout.count("52:54:00:12:34:58 > ") == 10  # the pongs from beyond the cable


def test_a_bad_pcap_path_is_one_line() -> None:
    out = subprocess.run([sys.executable, "-m", "l4sim", "boot", "devices", "--pcap", "/nonexistent/x.pcap"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    assert out.stderr.startswith("l4sim: cannot write the capture") and out.stderr.count("\n") == 1


def test_bench_net_reports_both_clocks() -> None:
    """``bench net``: the switch's simulated rate is the sink's own; wall-clock rates are positive."""
    from l4sim.tools.bench_net import bench_net

    r = bench_net(frames=220)
    assert r["switch_frames_per_s_simulated"] > 10_000
    assert r["switch_frames_per_s_wall"] > 0 and r["cable_round_trips_per_s_wall"] > 0
    assert 1 < r["cable_round_trip_us_simulated"] < 1000
