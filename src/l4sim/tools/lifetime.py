"""``l4sim lifetime``: where a run's secrets were copied, and which copies outlived their use.

Boots a scenario and reads the kernel's data-lifetime record (kernel/lifetime.py):
for each secret a program marked, every place a copy of its bytes lived, from
when to when in simulated time, why it ended (overwritten, replaced by the next
message) or that it was still there when the run ended -- and where then (which
tasks map that frame; only moe: in moe's pool, the dataspace freed).  Chow et
al. compare a system with and without clearing memory when it is freed;
``--zero-on-free`` has moe clear a freed dataspace's frames at once.
"""

from __future__ import annotations

from typing import Any

from l4sim.tools.boot import boot


def lifetime(scenario: str, zero_on_free: bool = False, cores: int = 2, seed: int = 0) -> dict[str, Any]:
    """Run ``scenario`` and report its secrets' copies."""
    res = boot(scenario, cores=cores, seed=seed, zero_on_free=zero_on_free)
    k = res.kernel
    secrets = k.lifetime.report(k) if k.lifetime is not None else []
    return {"scenario": scenario, "zero_on_free": zero_on_free, "end_ns": k.now(), "secrets": secrets}


def compare(scenario: str, cores: int = 2, seed: int = 0) -> dict[str, Any]:
    """The same run without and with zero-on-free."""
    return {"before": lifetime(scenario, False, cores, seed), "after": lifetime(scenario, True, cores, seed)}


def format_report(r: dict[str, Any]) -> str:
    lines = []
    policy = "zero-on-free" if r["zero_on_free"] else "frames cleared only when handed out again"
    lines.append(f"{r['scenario']}: {len(r['secrets'])} secret(s); moe's policy: {policy}")
    for s in r["secrets"]:
        lines.append("")
        lines.append(f"secret {s['secret']!r} ({s['bytes']} bytes) marked by {s['owner']} at "
                     f"{s['marked_ns'] / 1000:.1f} us, last used at {s['last_use_ns'] / 1000:.1f} us: "
                     f"{len(s['copies'])} copies, {s['outliving']} outlived its use, "
                     f"{s['at_end']} still there at the end")
        for c in s["copies"]:
            to = f"{c['to_ns'] / 1000:9.1f} us" if c["to_ns"] is not None else "      end   "
            mark = "!" if c["outlived_use"] else " "
            lines.append(f"  {mark} {c['from_ns'] / 1000:9.1f} us .. {to}  {c['where']}  ({c['ended']})")
    return "\n".join(lines)
