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
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from l4sim.tools.boot import boot

#: frames of the baseline run whose wall time is subtracted
BASE = 20
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


def _run(text: str, n: int, folder: Path) -> tuple[float, str]:
    path = folder / f"bench_{n}.py"
    path.write_text(text.format(n=n))
    t0 = time.perf_counter()
    res = boot(str(path), cores=1)
    wall = time.perf_counter() - t0
    if res.reason != "stop":
        raise RuntimeError(f"the benchmark system did not end ({res.reason})")
    return wall, res.kernel.machine.uart.text()


def bench_net(frames: int = 2000, progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """The figures: ``switch_frames_per_s_simulated`` and ``_wall``, ``cable_round_trips_per_s_*``."""
    step = progress or (lambda done, total, what: None)
    out: dict[str, Any] = {"frames": frames}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        step(0, 4, "switch, baseline")
        w0, _ = _run(_SWITCH, BASE, folder)
        step(1, 4, "switch")
        w1, text = _run(_SWITCH, frames, folder)
        m = re.search(r"sink: \d+ frames through the switch in [\d.]+ us: (\d+) frames/s", text)
        assert m is not None, "the sink reports its rate"
        out["switch_frames_per_s_simulated"] = int(m.group(1))
        out["switch_frames_per_s_wall"] = round((frames - BASE) / max(w1 - w0, 1e-9))
        pings = max(frames // 10, BASE + 1)
        step(2, 4, "cable, baseline")
        c0, _ = _run(_CABLE, BASE, folder)
        step(3, 4, "cable")
        c1, text = _run(_CABLE, pings, folder)
        m = re.search(r"round trip ([\d.]+) us on average", text)
        assert m is not None, "the pinger reports its round trips"
        out["cable_pings"] = pings
        out["cable_round_trip_us_simulated"] = float(m.group(1))
        out["cable_round_trips_per_s_wall"] = round((pings - BASE) / max(c1 - c0, 1e-9))
        step(4, 4, "done")
    return out
