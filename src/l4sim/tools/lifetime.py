"""``l4sim lifetime``: where a run's secrets were copied, and which copies outlived their use.

Boots a scenario and reads the kernel's data-lifetime record (kernel/lifetime.py):
for each secret a program marked, every place a copy of its bytes lived, from
when to when in simulated time, why it ended (overwritten, replaced by the next
message) or that it was still there when the run ended -- and where then (which
tasks map that frame; only moe: in moe's pool, the dataspace freed).  Chow et
al. compare a system with and without clearing memory when it is freed;
``--zero-on-free`` has moe clear a freed dataspace's frames at once, and a
Linux personality the frames of a process that ended.

A scenario that boots the machine several times (``secure-storage``) says
which boots it follows with a ``run_lifetime(zero_on_free, seed, cores)`` of
its own; each secret then names its boot.
"""

from __future__ import annotations

from typing import Any

from l4sim.tools.boot import boot, load_scenario


def lifetime(scenario: str, zero_on_free: bool = False, cores: int = 2, seed: int = 0) -> dict[str, Any]:
    """Run ``scenario`` and report its secrets' copies."""
    if not scenario.endswith(".py") and "/" not in scenario:
        several = getattr(load_scenario(scenario), "run_lifetime", None)
        if callable(several):
            return several(zero_on_free=zero_on_free, seed=seed, cores=cores)  # type: ignore[no-any-return]
    res = boot(scenario, cores=cores, seed=seed, zero_on_free=zero_on_free)
    k = res.kernel
    secrets = k.lifetime.report(k) if k.lifetime is not None else []
    return {"scenario": scenario, "zero_on_free": zero_on_free, "end_ns": k.now(), "secrets": secrets}


def compare(scenario: str, cores: int = 2, seed: int = 0) -> dict[str, Any]:
    """The same run without and with zero-on-free."""
    return {"before": lifetime(scenario, False, cores, seed), "after": lifetime(scenario, True, cores, seed)}


def format_report(r: dict[str, Any]) -> str:
    lines = []
    policy = ("zero-on-free" if r["zero_on_free"] else "frames cleared only when handed out again")
    boots = f" in its boots {', '.join(r['boots'])} (each on its own)" if r.get("boots") else ""
    lines.append(f"{r['scenario']}: {len(r['secrets'])} secret(s){boots}; policy: {policy}")
    for s in r["secrets"]:
        lines.append("")
        also = f" (also marked {', '.join(s['also'])})" if s.get("also") else ""
        boot_name = f"boot {s['boot']}: " if "boot" in s else ""
        lines.append(f"{boot_name}secret {s['secret']!r} ({s['bytes']} bytes) marked by {s['owner']}{also} at "
                     f"{s['marked_ns'] / 1000:.1f} us, last used at {s['last_use_ns'] / 1000:.1f} us: "
                     f"{len(s['copies'])} copies, {s['outliving']} outlived its use, "
                     f"{s['at_end']} still there at the end")
        for c in s["copies"]:
            to = f"{c['to_ns'] / 1000:9.1f} us" if c["to_ns"] is not None else "      end   "
            mark = "!" if c["outlived_use"] else " "
            lines.append(f"  {mark} {c['from_ns'] / 1000:9.1f} us .. {to}  {c['where']}  ({c['ended']})")
    return "\n".join(lines)
