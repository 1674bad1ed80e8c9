"""``l4sim bench net``: frames per second through the switch, in simulated and in host time.

Two stations on the switch (:mod:`l4sim.drivers.switch`), the source
sending ``frames`` 60-byte frames to the sink (the devices scenario's
programs), and the same through a NIC: frames the switch sends out through
the ``nic`` server, the Linux driver under DDE, the NIC, the cable to a
second NIC, its server and an echo program (pings, answered).

Simulated: the sink's own count over the span of simulated time between its
first and last frame.  Host: the wall-clock time the run took, measured
twice -- with ``frames`` and with :data:`BASE` frames -- so that booting the
system does not count: (frames - BASE) / (the difference in seconds).  The
host clock is read here, outside the model, never inside it.

With ``tcp_mib`` (and busybox installed), TCP between two Linux instances on
the switch: busybox httpd in one serves a file of ``tcp_mib`` MiB, wget in the
other fetches it (a fixed half second after boot, so that both runs wait the
same).  Measured the same way, twice -- with the file and with
:data:`TCP_BASE_KIB` -- the difference in bytes over the difference in
simulated time (the runs end when wget has the file) and in wall time.  And
the VPN gateway: ``l4sim boot vpn``'s mean time a packet spends in the gateway
(simulated: from its arrival to the end of its forwarding, sealing or opening
included), beside the intranet's ping round trip through the tunnel and to
the gateway itself.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from l4sim.tools.boot import boot

#: frames of the baseline run whose wall time is subtracted
BASE = 20
#: the file of the TCP baseline run (KiB)
TCP_BASE_KIB = 512
_TCP = '''
BUSYBOX = {busybox!r}
sw = channel("sw")
start("switch", "l4sim.drivers.switch:main", caps={{"svc": sw.server(), "factory": factory()}}, prio=50, daemon=True)
linux("server", argv=[BUSYBOX, "sh", "-c", "mkdir /www; dd if=/dev/zero of=/www/f bs=1k count={n} 2>/dev/null; "
      "exec httpd -f -p 80 -h /www"], memory="{mem}M", daemon=True, net={{"eth0": {{"port": sw, "addr": "10.0.0.1/24"}}}})
linux("client", argv=[BUSYBOX, "sh", "-c", "sleep 0.5; wget -q -O /dev/null http://10.0.0.1/f && echo fetched"],
      memory="16M", net={{"eth0": {{"port": sw, "addr": "10.0.0.2/24"}}}}, cpus=[1] if CORES > 1 else [0])
'''
_PING = re.compile(r"intranet: ping (through the tunnel|to the gateway): round-trip min/avg/max = [\d.]+/([\d.]+)/")
_SWITCH = '''
P = "l4sim.scenarios.programs.netdemo"
sw = channel("sw")
start("switch", "l4sim.drivers.switch:main", caps={{"svc": sw.server(), "factory": factory()}}, prio=50, daemon=True)
start("sink", f"{{P}}:sink", caps={{"net": sw}}, prio=30, args=({n},))
start("source", f"{{P}}:source", caps={{"net": sw}}, prio=20, args=({n},))
'''
_CABLE = '''
P = "l4sim.scenarios.programs.netdemo"
nic("nic0", wire="nic1")
nic("nic1")
eth0, eth1, sw = channel("eth0"), channel("eth1"), channel("sw")
start("nic", "l4sim.drivers.nic:main", caps={{"bus": io.bus("a", devices=["nic0"]), "svc": eth0.server(),
      "factory": factory()}}, prio=60, daemon=True)
start("switch", "l4sim.drivers.switch:main", caps={{"svc": sw.server(), "uplink": eth0, "factory": factory()}},
      prio=50, daemon=True)
start("nic-far", "l4sim.drivers.nic:main", caps={{"bus": io.bus("b", devices=["nic1"]), "svc": eth1.server(),
      "factory": factory()}}, prio=60, daemon=True)
start("echo", f"{{P}}:echo", caps={{"net": eth1}}, prio=40, daemon=True)
start("pinger", f"{{P}}:pinger", caps={{"net": sw}}, prio=20, args=({n},))
'''


def _run(text: str, n: int, folder: Path, cores: int = 1, **more: Any) -> tuple[float, str, int]:
    """Boot the script ``text`` (formatted with ``n`` and ``more``) to its end: wall seconds,
    the console, the simulated nanoseconds."""
    path = folder / f"bench_{n}.py"
    path.write_text(text.format(n=n, **more))
    t0 = time.perf_counter()
    res = boot(str(path), cores=cores)
    wall = time.perf_counter() - t0
    if res.reason != "stop":
        raise RuntimeError(f"the benchmark system did not end ({res.reason})")
    return wall, res.kernel.machine.uart.text(), res.kernel.machine.now


def busybox() -> str | None:
    """The host's static busybox, which the Linux instances run (None: not installed)."""
    found = shutil.which("busybox")
    return found if found is not None else "/bin/busybox" if Path("/bin/busybox").is_file() else None


def bench_tcp(mib: int, folder: Path) -> dict[str, Any]:
    """TCP through the switch between two Linux instances (see the module)."""
    bb = busybox()
    assert bb is not None, "bench_tcp needs busybox"
    runs = []
    for kib in (TCP_BASE_KIB, mib * 1024):
        wall, console, ns = _run(_TCP, kib, folder, cores=2, busybox=bb, mem=max(32, 2 * mib + 16))
        if "client  | fetched" not in console:
            raise RuntimeError("the TCP benchmark's wget did not get the file")
        runs.append((kib * 1024, wall, ns))
    (b0, w0, n0), (b1, w1, n1) = runs
    return {"tcp_mib": mib,
            "tcp_mbytes_per_s_simulated": round((b1 - b0) / max(n1 - n0, 1) * 1e3, 2),
            "tcp_mbytes_per_s_wall": round((b1 - b0) / max(w1 - w0, 1e-9) / 1e6, 2)}


def bench_vpn() -> dict[str, Any]:
    """The VPN gateway's added latency (simulated), from ``l4sim boot vpn``."""
    res = boot("vpn")
    if res.report is None or not res.report["transfer_ok"]:
        raise RuntimeError("the vpn scenario's transfer failed")
    pings = {m.group(1): float(m.group(2)) for m in _PING.finditer(res.kernel.machine.uart.text())}
    return {"vpn_gateway_latency_us_simulated": round(res.report["vpn"]["added_latency_ns"] / 1000, 2),
            "vpn_ping_rtt_us_through_tunnel": round(pings.get("through the tunnel", 0.0) * 1000, 1),
            "vpn_ping_rtt_us_to_gateway": round(pings.get("to the gateway", 0.0) * 1000, 1)}


def bench_net(frames: int = 2000, progress: Callable[[int, int, str], None] | None = None,
              tcp_mib: int = 0) -> dict[str, Any]:
    """The figures: ``switch_frames_per_s_simulated`` and ``_wall``, ``cable_round_trips_per_s_*``;
    with ``tcp_mib`` (and busybox) ``tcp_mbytes_per_s_*`` and the ``vpn_*`` figures."""
    step = progress or (lambda done, total, what: None)
    out: dict[str, Any] = {"frames": frames}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        total = 6 if tcp_mib and busybox() is not None else 4
        step(0, total, "switch, baseline")
        w0, _, _ = _run(_SWITCH, BASE, folder)
        step(1, total, "switch")
        w1, text, _ = _run(_SWITCH, frames, folder)
        m = re.search(r"sink: \d+ frames through the switch in [\d.]+ us: (\d+) frames/s", text)
        assert m is not None, "the sink reports its rate"
        out["switch_frames_per_s_simulated"] = int(m.group(1))
        out["switch_frames_per_s_wall"] = round((frames - BASE) / max(w1 - w0, 1e-9))
        pings = max(frames // 10, BASE + 1)
        step(2, total, "cable, baseline")
        c0, _, _ = _run(_CABLE, BASE, folder)
        step(3, total, "cable")
        c1, text, _ = _run(_CABLE, pings, folder)
        m = re.search(r"round trip ([\d.]+) us on average", text)
        assert m is not None, "the pinger reports its round trips"
        out["cable_pings"] = pings
        out["cable_round_trip_us_simulated"] = float(m.group(1))
        out["cable_round_trips_per_s_wall"] = round((pings - BASE) / max(c1 - c0, 1e-9))
        if total == 6:
            step(4, total, "tcp between two Linux instances")
            out.update(bench_tcp(tcp_mib, folder))
            step(5, total, "vpn gateway")
            out.update(bench_vpn())
        elif tcp_mib:
            out["tcp_skipped"] = "busybox is not installed"
        step(total, total, "done")
    return out
