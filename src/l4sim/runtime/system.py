"""Booting the runtime: sigma0, moe (the root task), ned running a startup script.

``setup_script(kernel, path)`` is what ``l4sim boot PATH.py`` and the
built-in runtime scenarios use: the script is read and checked before
anything boots (a :class:`~l4sim.runtime.ned.ScriptError` names file and
line), then sigma0 and moe come up, moe starts ned with a session, and ned
starts the script's programs.  The run ends when ned has seen every
non-daemon program end.

The host observes the system the way a debugger would, and it tells ned and
the programs apart by object identity, never by name: ned is the program
running the coroutine the host made for it, and each program's record is
tied to the kernel task ned created for it.  A script cannot pose as part
of the runtime by choosing a name.
"""

from __future__ import annotations

import inspect
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import Task, Thread
from l4sim.machine.board import Machine
from l4sim.machine.display import FB_PORTS, KBD_PORTS, PTR_PORTS, attach_display
from l4sim.machine.memory import PAGE_SHIFT
from l4sim.runtime.loader import Child
from l4sim.runtime.moe import Moe, boot_moe
from l4sim.runtime.ned import NED_TASK, Plan, load_script, ned
from l4sim.user.env import Env


@dataclass
class System:
    """What the boot driver observes of a runtime system."""

    kernel: Kernel
    plan: Plan
    moe: Moe = field(init=False)
    #: the record of every program ned started, in start order
    programs: list[Child] = field(default_factory=list)
    #: ned's coroutine (made by :meth:`_run_ned` when moe starts ned), and ned's thread once seen
    _ned: Coroutine[Any, Any, int] | None = field(default=None, repr=False)
    _ned_thread: Thread | None = field(default=None, repr=False)
    #: kernel task -> the record of the program in it (keys compare by identity)
    _tasks: dict[Task, Child] = field(default_factory=dict, repr=False)

    def _run_ned(self, env: Env, plan: Plan) -> Coroutine[Any, Any, int]:
        """ned's entry, as moe starts it: the host keeps the coroutine to know ned by it."""
        self._ned = ned(env, plan, self._started)
        return self._ned

    def _started(self, child: Child) -> None:
        """ned started ``child`` (called from ned, which still holds the child's task capability)."""
        self.programs.append(child)
        th = self.ned_thread()
        entry = th.task.caps.lookup(child.task.slot) if th is not None and th.task is not None else None
        if entry is not None and isinstance(entry.obj, Task):
            self._tasks[entry.obj] = child

    def ned_thread(self) -> Thread | None:
        """ned's thread: the one running ned's coroutine (None before ned runs)."""
        if self._ned_thread is None and self._ned is not None:
            self._ned_thread = next((th for th in self.kernel.threads if th.coro is self._ned), None)
        return self._ned_thread

    def program_of(self, task: Task) -> Child | None:
        """The record of the program ned started in ``task`` (None for the runtime's own tasks)."""
        return self._tasks.get(task)

    def done(self) -> bool:
        """ned has finished: every non-daemon program has ended."""
        return self._ned is not None and inspect.getcoroutinestate(self._ned) == inspect.CORO_CLOSED


def setup_script(kernel: Kernel, path: str | Path) -> System:
    """Check the startup script at ``path``, then boot the runtime on ``kernel`` to run it."""
    return boot_plan(kernel, load_script(path, kernel.machine.ncores, list(device_table(kernel.machine))))


def device_table(machine: Machine) -> dict[str, tuple[int, int, int, int, tuple[int, ...]]]:
    """The machine's devices a script may name (``device(name)``): their resources as io hands
    them out -- (memory base, memory bytes, first port, ports, interrupt lines)."""
    d = machine.display
    if d is None:
        return {}
    fb = d.fb
    return {
        "framebuffer": (fb.base, fb.region.npages << PAGE_SHIFT, fb.port, FB_PORTS, ()),
        "keyboard": (0, 0, d.keyboard.port, KBD_PORTS, (d.keyboard.line,)),
        "pointer": (0, 0, d.pointer.port, PTR_PORTS, (d.pointer.line,)),
    }


def boot_plan(kernel: Kernel, plan: Plan) -> System:
    """Boot sigma0, moe and ned on ``kernel`` to run a plan (one :func:`load_script` checked).

    The script's ``kernel(comm_model=..., kmem_model=...)`` choice applies where the kernel
    still has the default (``l4sim boot --comm-model`` / ``--kmem-model`` win over the script).
    """
    kernel.select_models(plan.comm_model if kernel.comm_model == "capabilities" else None,
                         plan.kmem_model if kernel.kmem_model == "quotas" else None)
    if plan.display is not None and kernel.machine.display is None:
        attach_display(kernel.machine, *plan.display)
    table = device_table(kernel.machine)
    for dev in plan.devices:
        dev.resources = table[dev.name]  # the check made sure the machine has it
    system = System(kernel, plan)
    system.moe = boot_moe(kernel, system._run_ned, name=NED_TASK, args=(plan,),
                          sigma0_to_main=plan.wants_sigma0())
    return system
