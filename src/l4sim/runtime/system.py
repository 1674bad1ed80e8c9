"""Booting the runtime: sigma0, moe (the root task), ned running a startup script.

``setup_script(kernel, path)`` is what ``l4sim boot PATH.py`` and the
built-in runtime scenarios use: the script is read and checked before
anything boots (a :class:`~l4sim.runtime.ned.ScriptError` names file and
line), then sigma0 and moe come up, moe starts ned with a session, and ned
starts the script's programs.  A script that gives a program the TPM is
booted measured: the boot loader (this module, on the host, before the
kernel runs) extends the TPM with the kernel's and the runtime's images and
starts the event log, which ned continues (:mod:`l4sim.runtime.measure`).  The run ends when ned has seen every
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
from l4sim.machine.nic import Nic, PcapWriter
from l4sim.runtime.io import DeviceInfo
from l4sim.runtime.loader import Child
from l4sim.runtime.measure import EventLog, measure_platform
from l4sim.runtime.moe import Moe, boot_moe
from l4sim.runtime.ned import NED_TASK, Plan, ScriptError, linux_hook, load_script, ned
from l4sim.user.env import Env


@dataclass
class System:
    """What the boot driver observes of a runtime system."""

    kernel: Kernel
    plan: Plan
    moe: Moe = field(init=False)
    #: the record of every program ned started, in start order
    programs: list[Child] = field(default_factory=list)
    #: the event log of a measured boot: the boot loader's events, then ned's (ned holds it and
    #: adds to it; the host reads it as a debugger would)
    event_log: EventLog = field(default_factory=EventLog)
    #: the configuration of each Linux instance of the script, by name (made at boot: the
    #: host reads its figures for the summary, :meth:`linux_rows`)
    linux: dict[str, Any] = field(default_factory=dict)
    #: ned's coroutine (made by :meth:`_run_ned` when moe starts ned), and ned's thread once seen
    _ned: Coroutine[Any, Any, int] | None = field(default=None, repr=False)
    _ned_thread: Thread | None = field(default=None, repr=False)
    #: kernel task -> the record of the program in it (keys compare by identity)
    _tasks: dict[Task, Child] = field(default_factory=dict, repr=False)

    def _run_ned(self, env: Env, plan: Plan, log: EventLog) -> Coroutine[Any, Any, int]:
        """ned's entry, as moe starts it: the host keeps the coroutine to know ned by it."""
        self._ned = ned(env, plan, self._started, log, self.linux)
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

    def linux_rows(self) -> list[dict[str, Any]]:
        """One row per Linux instance, in script order: name, processes run, system calls
        served, the exit status of its first program (None while it runs)."""
        if not self.linux:
            return []
        figures = linux_hook("figures")
        return [{"name": name, **figures(cfg)} for name, cfg in self.linux.items()]

    def done(self) -> bool:
        """ned has finished: every non-daemon program has ended."""
        return self._ned is not None and inspect.getcoroutinestate(self._ned) == inspect.CORO_CLOSED


def setup_script(kernel: Kernel, path: str | Path) -> System:
    """Check the startup script at ``path``, then boot the runtime on ``kernel`` to run it."""
    return boot_plan(kernel, load_script(path, kernel.machine.ncores))


def build_board(machine: Machine, plan: Plan) -> None:
    """Put the script's devices on the machine: NICs and their cables, disks, the display
    (framebuffer, keyboard, pointer); ``--pcap``'s
    capture on every cable (``machine.options``).  Where each landed goes into ``plan.board``.

    ``machine.options["disk"]`` is the image of the script's first disk that names none (the
    others without one keep their sectors in memory).
    """
    nics: dict[str, Nic] = {}
    first = next((d for d in plan.devices if d.kind == "blk" and d.image is None), None)
    for d in plan.devices:
        if d.kind == "nic":
            nics[d.name] = machine.add_nic(d.name, d.mac)
        elif d.kind in ("kbd", "ptr"):
            continue  # placed with their framebuffer: display() declares the three together
        elif d.kind == "fb":
            assert plan.display is not None, "display() declares the framebuffer"
            kbd, ptr = (next(e.name for e in plan.devices if e.kind == k) for k in ("kbd", "ptr"))
            machine.add_display(*plan.display, names=(d.name, kbd, ptr))
        else:
            image = d.image if d.image is not None else machine.options.get("disk") if d is first else None
            machine.add_disk(d.name, d.sectors, image)
    for d in plan.devices:
        if d.kind != "nic" or d.wire is None:
            continue
        nic = nics[d.name]
        if d.wire == "host":
            machine.connect(nic, None)
        elif nic.wire is None:
            machine.connect(nic, nics[d.wire])
    pcap = machine.options.get("pcap")
    if pcap is not None and machine.wires:
        writer = PcapWriter(pcap)
        machine.captures.append(writer)
        for w in machine.wires:
            w.taps.append(writer)
    plan.board = [DeviceInfo(bd.name, bd.kind, bd.region.base_pfn, bd.region.npages, bd.line, bd.rid,
                             *((bd.memory.base_pfn, bd.memory.npages) if bd.memory is not None else ()))
                  for bd in machine.board.values()]


def boot_plan(kernel: Kernel, plan: Plan) -> System:
    """Boot sigma0, moe and ned on ``kernel`` to run a plan (one :func:`load_script` checked).

    The script's ``kernel(comm_model=..., kmem_model=...)`` choice applies where the kernel
    still has the default (``l4sim boot --comm-model`` / ``--kmem-model`` win over the script).
    """
    kernel.select_models(plan.comm_model if kernel.comm_model == "capabilities" else None,
                         plan.kmem_model if kernel.kmem_model == "quotas" else None)
    if plan.devices:
        build_board(kernel.machine, plan)
    system = System(kernel, plan)
    for spec in plan.programs:  # each Linux instance's configuration, on the host, in script order
        li = spec.linux
        if li is None:
            continue
        try:
            cfg = system.linux[spec.name] = linux_hook("config")(
                li.root, li.argv, li.devices, li.allow, li.memory, spec.prio, kernel.machine.rng.getrandbits(64),
                **({"fb": li.fb} if li.fb is not None else {}), net=li.net, name=spec.name)
        except Exception as e:  # its files changed since the check: one line, as the check says it
            raise ScriptError(f"{spec.where}: linux {spec.name!r}: {e}") from None
        cfg.watch = kernel  # data lifetime: what the personality's own buffers hold (observation)
        cfg.zero_on_free = bool(kernel.machine.options.get("zero_on_free"))
    if plan.measured:
        plan.load_images()
        measure_platform(kernel.machine.tpm, system.event_log)
    system.moe = boot_moe(kernel, system._run_ned, name=NED_TASK, args=(plan, system.event_log),
                          sigma0_cap=plan.port_devices)
    return system
