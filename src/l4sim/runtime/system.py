"""Booting the runtime: sigma0, moe (the root task), ned running a startup script.

``setup_script(kernel, path)`` is what ``l4sim boot PATH.py`` and the
built-in runtime scenarios use: the script is read and checked before
anything boots (a :class:`~l4sim.runtime.ned.ScriptError` names file and
line), then sigma0 and moe come up, moe starts ned with a session, and ned
starts the script's programs.  The run ends when ned has seen every
non-daemon program end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.runtime.loader import Child
from l4sim.runtime.moe import Moe, boot_moe
from l4sim.runtime.ned import Plan, load_script, ned


@dataclass
class System:
    """What the boot driver observes of a runtime system."""

    kernel: Kernel
    plan: Plan
    moe: Moe
    programs: list[Child] = field(default_factory=list)

    def done(self) -> bool:
        """ned has finished: every non-daemon program has ended."""
        return any(th.name == "ned" and th.state is TS.DEAD for th in self.kernel.threads)


def setup_script(kernel: Kernel, path: str | Path) -> System:
    plan = load_script(path, kernel.machine.ncores)
    report: list[Child] = []
    m = boot_moe(kernel, ned, name="ned", args=(plan, report))
    return System(kernel, plan, m, report)

