"""Booting a startup script for the driver tests (as tests/runtime/test_system.py does)."""

from __future__ import annotations

from pathlib import Path

from l4sim.kernel.kernel import Kernel
from l4sim.machine.board import Machine
from l4sim.runtime.ned import Plan
from l4sim.runtime.system import System, boot_plan


def script(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "system.py"
    p.write_text(text)
    return p


def run_plan(plan: Plan, cores: int = 2) -> tuple[Kernel, System, str]:
    k = Kernel(Machine(cores=cores))
    s = boot_plan(k, plan)
    reason = k.run(until=10_000_000_000, stop=s.done)
    k.machine.power_off()
    return k, s, reason


def statuses(s: System) -> dict[str, str]:
    return {c.name: c.status for c in s.programs}
