"""The ``vpn`` scenario: a µSINA-style VPN gateway between two Linux instances.

ned starts, from ``scripts/vpn.py``:

- ``intranet`` -- a Linux instance on the intranet's switch (10.1.0.2, its gateway 10.1.0.1);
- ``vpn`` -- the trusted gateway (:mod:`l4sim.drivers.vpn`): red side on the switch, black
  side on the NIC server of nic0, whose cable to nic1 is the outer wire;
- ``mallory`` -- the internet beyond the cable (:mod:`l4sim.scenarios.programs.vpn`): it
  forwards, drops one packet to the web host, and replays, alters and forges ESP packets
  on their way to the gateway;
- ``internet`` -- a Linux instance, the web host 198.51.100.2: busybox httpd serves a file
  of random bytes between two marker lines; its stack is the tunnel's far end (ESP with
  the gateway's keys, :mod:`l4sim.linux.net.stack`).

The intranet fetches the file with wget (through the gateway, ciphertext on the cable), pings
the web host and the gateway, and asks the gateway for its counters (``/dev/l4/vpn``).
:func:`report` checks the transfer byte for byte (the two instances' files, read on the host
as a debugger would) and counts what the gateway refused; with ``--pcap FILE`` the cable's
frames are in FILE, and the marker is nowhere in them (``tests/scenarios/test_vpn.py``).
``l4sim boot vpn --json`` ends with ``{"transfer_ok", "bytes", "dropped_replayed",
"dropped_corrupt", "trusted_loc", "untrusted_loc", "vpn": {...}}``: the lines of code of the
trusted gateway against those of the Linux instances (:func:`lines_of_code`).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.ned import ScriptError
from l4sim.runtime.system import System, setup_script
from l4sim.tools.loc import module_loc, package_loc

SCRIPT = Path(__file__).resolve().parent / "scripts" / "vpn.py"
MARKER = b"L4SIM-VPN-PLAINTEXT-MARKER"
SERVED, FETCHED = "/www/secret.bin", "/tmp/secret.bin"
#: the gateway's own modules, and what it runs of the drivers' library (ESP, the packet
#: sessions' client and their protocol numbers)
TRUSTED = ("l4sim.drivers.vpn", "l4sim.drivers.esp", "l4sim.drivers.netport", "l4sim.drivers.protocols")
#: Singaravelu et al.'s VPN gateway: the TCB with the tunnel in Linux and with it split off
PAPER = {"monolithic_kloc": 155, "split_kloc": 74}
_DROP = re.compile(r"vpn: dropped (\w+):")
_STATS = re.compile(r"intranet: the gateway counts (.*)")
_ATTACK = re.compile(r"mallory: (replayed|sent a copy|sent ESP|dropped)")


def setup(kernel: Kernel, args: Any = None) -> System:
    if shutil.which("busybox") is None and not Path("/bin/busybox").is_file():
        raise ScriptError("the vpn scenario runs busybox in its Linux instances: install a static busybox "
                          "(Debian: apt-get install busybox-static)")
    return setup_script(kernel, SCRIPT)


def lines_of_code() -> dict[str, int]:
    """Lines of code (:mod:`l4sim.tools.loc`): the trusted gateway, the Linux personality its
    two neighbours run (the untrusted part), and the kernel and runtime under all of them."""
    trusted = sum(module_loc(m) for m in TRUSTED)
    return {"trusted": trusted, "untrusted": package_loc("linux"), "platform": package_loc("kernel", "user", "runtime")}


def _file(system: System, instance: str, path: str) -> bytes | None:
    cfg = system.linux.get(instance)
    k = getattr(cfg, "observed", None)
    if k is None:
        return None
    node, _err, _ = k.vfs.walk(k.vfs.root, path, None)
    data = getattr(node, "data", None)
    return bytes(data) if data is not None else None


def report(res: Any) -> dict[str, Any]:
    """What the run shows: the transfer, the gateway's refusals, the lines of code."""
    text = res.kernel.machine.uart.text()
    system = res.scenario
    got = _file(system, "intranet", FETCHED) if isinstance(system, System) else None
    served = _file(system, "internet", SERVED) if isinstance(system, System) else None
    drops: dict[str, int] = {}
    stats: dict[str, int] = {}
    attacks = 0
    for line in text.splitlines():
        m = _DROP.search(line)
        if m is not None:
            drops[m.group(1)] = drops.get(m.group(1), 0) + 1
        m = _STATS.search(line)
        if m is not None:
            stats = {k: int(v) for k, v in (w.split("=", 1) for w in m.group(1).split() if "=" in w)}
        if _ATTACK.search(line):
            attacks += 1
    loc = lines_of_code()
    ok = got is not None and got == served and MARKER in got
    mono, split = loc["platform"] + loc["trusted"] + loc["untrusted"], loc["platform"] + loc["trusted"]
    return {"transfer_ok": ok, "bytes": len(got) if got is not None else 0,
            "dropped_replayed": drops.get("replayed", 0), "dropped_corrupt": drops.get("corrupt", 0),
            "trusted_loc": loc["trusted"], "untrusted_loc": loc["untrusted"],
            "vpn": {"sealed": stats.get("sealed", 0), "opened": stats.get("opened", 0),
                    "added_latency_ns": stats.get("latency_ns", 0), "attacks": attacks,
                    "other_drops": {k: v for k, v in sorted(drops.items()) if k not in ("replayed", "corrupt")},
                    "platform_loc": loc["platform"], "tcb_with_linux_loc": mono, "tcb_split_loc": split,
                    "tcb_ratio": round(mono / split, 2), "paper": PAPER}}


def format_report(r: dict[str, Any]) -> str:
    """The report as the text summary shows it."""
    v = r["vpn"]
    paper = v["paper"]
    return "\n".join([
        f"transfer through the tunnel: {'byte for byte' if r['transfer_ok'] else 'FAILED'} ({r['bytes']} bytes)",
        f"the gateway sealed {v['sealed']} and opened {v['opened']} packets, {v['added_latency_ns'] / 1000:.1f} us "
        f"each (simulated); it refused {r['dropped_replayed']} replayed and {r['dropped_corrupt']} altered or forged "
        f"packets ({v['attacks']} attacks by mallory)",
        f"lines of code: trusted gateway {r['trusted_loc']}, Linux instances {r['untrusted_loc']}, kernel and "
        f"runtime {v['platform_loc']}: the tunnel's TCB {v['tcb_split_loc']} instead of {v['tcb_with_linux_loc']} "
        f"({v['tcb_ratio']}x; Singaravelu et al.: {paper['monolithic_kloc']} -> {paper['split_kloc']} kLoC, "
        f"{paper['monolithic_kloc'] / paper['split_kloc']:.1f}x)",
    ])
