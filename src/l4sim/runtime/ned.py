"""ned: startup scripts that describe a system, checked before boot, run by the init task.

A startup script is a Python file that *describes* a system; it does not run
inside it.  Its calls build a plan:

.. code-block:: python

    svc = channel("svc")                     # an IPC gate, bound later by its server
    ring = dataspace("ring", 16 * 1024)      # shared memory from moe
    start("counter", "l4sim.scenarios.programs.demo:counter_server",
          caps={"svc": svc.server(), "factory": factory(64 * 1024)}, prio=30, daemon=True)
    start("client", "l4sim.scenarios.programs.demo:counter_client", caps={"svc": svc},
          prio=20, cpus=[1], args=("client", 5))

``start(name, program, caps={...}, prio=1, cpus=None, args=(), quota=4 MiB,
daemon=False, kmem=256 KiB)`` starts ``program`` (``package.module:function``)
with exactly the named capabilities (``CORES`` tells the script how many
cores the machine has): channels, shared dataspaces,
``factory(quota)`` -- a kernel factory of its own (given as ``factory`` it is
the program's ``env.factory``), ``scheduler(max_prio=, cpus=)`` -- a
scheduler proxy with those limits (every program gets one limited to its
own priority and cores unless the script names another ``scheduler``),
``icu()`` -- the interrupt controller, ``ioports(NAME)`` -- the I/O ports
of a port device of the board (``machine.board.PORT_DEVICES``: ``tpm``,
``nvram``, ``serial1``), granted to that one program, ``eventlog()`` -- the event log of
measured boot as a read-only dataspace, and ``program("other").thread`` or
``.task`` -- another program's main thread or task.  ``.m("r")`` chooses the
rights of an ``icu()``, thread or task (letters of ``rwsd``).  A channel
passed as ``svc`` gives the right to call it; ``svc.server()`` gives the
server's right to bind it too.  ``kmem`` is the program's kernel memory: its
task, threads and page tables come out of a factory of that size, so no
program can spend another's.  ned waits for every program that is not a
daemon to end, and reports each exit status, fault, or end without a word
(its task or main thread deleted, its parent capability given up).

A script also describes the board's devices and who may drive them (io,
:mod:`l4sim.runtime.io`; docs/runtime.md § 4.7):

.. code-block:: python

    nic("nic0", wire="nic1")                 # an Ethernet NIC, cabled to nic1
    nic("nic1")
    disk("blk0", sectors=2048)               # 1 MiB on a host image file (--disk) or in memory
    net = io.bus("net", devices=["nic0"])    # a virtual bus: the devices one client sees
    start("nic", "l4sim.drivers.nic:main", caps={"bus": net, "factory": factory()})

With a bus in the script ned starts io first (task ``io``, a daemon); a
program given the bus gets one capability, to io, through which it claims its
devices, their interrupts, registers and DMA memory.  A device may be on one
bus only; ``wire=`` names another NIC of the board, or ``"host"``: a cable
to the host, where ``--pcap FILE`` records what crosses (it records every
cable of the board).  ``display(width=640, height=480)`` puts a display on
the board: the devices ``framebuffer`` (registers and pixel memory),
``keyboard`` and ``pointer``, for buses like any other.

For servers that hand out sessions (the GUI): ``channel.session(*args)`` is
a session of the channel's server that ned opens for the program (``SESSION``
``CREATE``), labelled with the program's name in the script and the text
arguments, the numbers after it: the program holds the session gate, never
the channel, so it cannot open a session under another name
(docs/security.md).  ``memory(quota)`` is a memory allocator session of
moe's with that quota, for a server that makes dataspaces for its clients.

Measured boot (:mod:`l4sim.runtime.measure`).  A script that gives some
program the TPM or the event log is booted measured: before ned starts any
program it extends the TPM's PCRs with the script, then with each program's
image and script entry in start order, through the TPM's registers, and
keeps the event log; only then does it hand the TPM's ports to the program
that drives it (granted: ned keeps no access) and start the programs.

The plan is checked before boot: a capability that names nothing, an
unknown program, a bad priority or CPU set, a duplicate name, a name of the
runtime's own tasks, a quota or kmem too small for stack and heap, another
program's thread or task that is not started before, an unknown port
device or one given twice, an argument a script function does not take -- each ends
in one error naming the script file and line.  What the check cannot foresee (memory running out) ned reports at
run time, one line per program that cannot start, and goes on.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l4sim.kernel.abi import CALL, Err, Fpage, IpcErr, MemRights, Rights, pack_bytes
from l4sim.kernel.comm import COMM_MODELS
from l4sim.kernel.kmem import KMEM_MODELS
from l4sim.kernel.traps import Ipc
from l4sim.kernel.vspace import MAPPING_SIZE, PT_SHIFT, PT_SIZE
from l4sim.machine import tpm2
from l4sim.machine.board import FIRST_DEVICE_LINE, LAST_DEVICE_LINE, PORT_DEVICES
from l4sim.machine.memory import PAGE_SHIFT, PAGE_SIZE
from l4sim.machine.nic import parse_mac
from l4sim.runtime import measure
from l4sim.runtime.console import CONSOLE_TASK
from l4sim.runtime.io import IO_TASK, DeviceInfo, io_server
from l4sim.runtime.loader import (
    KMEM,
    MIN_KMEM,
    Child,
    Loader,
    ProgramError,
    SchedLimits,
    min_quota,
    resolve,
)
from l4sim.runtime.protocols import DATASPACE, MEM_ALLOC, SESSION, DsFlag, DsOp, MemOp, SessionOp
from l4sim.runtime.sigma0 import REQ_FPAGE_IO, request
from l4sim.user.env import Cap, Env, Gate, L4Error


class ScriptError(Exception):
    """A startup script is wrong: ``file:line: what, and the fix``."""


@dataclass
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Channel:
    """An IPC gate created by ned; its server binds it to a thread."""

    name: str
    where: Where
    server_side: bool = False

    def server(self) -> Channel:
        """The same channel with the server's rights (it may bind the gate)."""
        return Channel(self.name, self.where, True)

    def session(self, *args: Any) -> SessionSpec:
        """A session of this channel's server, opened by ned for the program given it.

        ned calls the server (``SESSION`` ``CREATE``) with the program's name in the
        script as the label, the text arguments appended to it and the numeric ones
        after it; the program gets the session gate and nothing else of the channel,
        so it cannot open a session under another name.
        """
        w = _where_of(self.where.file)
        for a in args:
            if not isinstance(a, str | int) or isinstance(a, bool):
                raise ScriptError(f"{w}: session argument {a!r} of channel {self.name!r}: pass strings "
                                  f"or numbers")
            if isinstance(a, int) and not 0 <= a < 1 << 64:
                raise ScriptError(f"{w}: session argument {a} of channel {self.name!r} is not a machine word")
            if isinstance(a, str) and (not a or len(a) > 64 or not a.isprintable()):
                raise ScriptError(f"{w}: session argument {a!r} of channel {self.name!r}: give printable "
                                  f"text of 1 .. 64 characters")
        return SessionSpec(self.name, tuple(args), w)


@dataclass
class SessionSpec:
    """A session of a channel's server that ned opens for a program (``channel.session()``)."""

    channel: str
    args: tuple[str | int, ...]
    where: Where


@dataclass
class MemorySpec:
    """A memory allocator session of moe's with a quota (``memory(quota)``): the program makes
    dataspaces of its own with it (``MEM_ALLOC`` ``CREATE_DS``), charged to that quota."""

    quota: int
    where: Where


@dataclass
class Shared:
    """A dataspace created by ned and shared by every program given it."""

    name: str
    size: int
    where: Where


@dataclass
class KernelFactory:
    """A kernel factory with its own quota, carved out of ned's."""

    quota: int
    where: Where


#: the rights a script may give, by letter (``.m("rw")``)
_RIGHTS = {"r": Rights.R, "w": Rights.W, "s": Rights.S, "d": Rights.D}


def _rights(text: object, what: str, w: Where) -> int:
    """``"rw"`` -> ``Rights.R | Rights.W``; anything else is one ScriptError."""
    if not isinstance(text, str) or not text or any(c not in _RIGHTS for c in text.lower()):
        raise ScriptError(f"{w}: rights {text!r} of {what}: give letters of 'rwsd' "
                          f"(read, write, special, delete), e.g. .m('r')")
    mask = 0
    for c in text.lower():
        mask |= _RIGHTS[c]
    return mask


def _where_of(file: str) -> Where:
    """The script line of a method call made by the script (one frame less than :func:`_where`)."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename != file:
        f = f.f_back  # type: ignore[assignment]
    return Where(file, f.f_lineno if f is not None else 0)


@dataclass
class IcuSpec:
    """The kernel's interrupt controller, as ned holds it (``icu()``): binds hardware lines to Irqs."""

    where: Where
    rights: int = Rights.R | Rights.W

    def m(self, rights: str) -> IcuSpec:
        """The ICU with these rights (``"r"``: only ``info``; ``"rw"``: bind and unbind too)."""
        return IcuSpec(self.where, _rights(rights, "icu()", _where_of(self.where.file)))


@dataclass
class SchedulerSpec:
    """A scheduler proxy (``scheduler(max_prio=, cpus=)``); None: the program's own prio / cores."""

    max_prio: int | None
    cpus: int | None
    where: Where


@dataclass
class PortsSpec:
    """A port device of the board (``ioports("tpm")``): its I/O ports, granted to the one program
    given it."""

    name: str
    where: Where


@dataclass
class EventLogSpec:
    """The event log of measured boot (``eventlog()``): a read-only dataspace of its bytes."""

    where: Where


@dataclass
class ProgramObject:
    """Another program's main thread or task (``program("b").thread``, ``.task``) with rights."""

    program: str
    kind: str  # "thread" or "task"
    where: Where
    rights: int = Rights.R | Rights.W

    def m(self, rights: str) -> ProgramObject:
        """The same object with these rights, e.g. ``.m("r")``: read-only."""
        what = f"program({self.program!r}).{self.kind}"
        return ProgramObject(self.program, self.kind, self.where,
                             _rights(rights, what, _where_of(self.where.file)))


@dataclass
class ProgramRef:
    """``program("b")``: names a program of the script; give its ``.thread`` or ``.task``."""

    name: str
    where: Where

    @property
    def thread(self) -> ProgramObject:
        return ProgramObject(self.name, "thread", _where_of(self.where.file))

    @property
    def task(self) -> ProgramObject:
        return ProgramObject(self.name, "task", _where_of(self.where.file))


@dataclass
class DeviceSpec:
    """A device of the board (``nic(...)``, ``disk(...)``, the three of ``display()``); where it
    landed once the board is built (register page, line, requester id: what io is told)."""

    name: str
    kind: str  # "nic", "blk", or "fb", "kbd", "ptr" (of display())
    where: Where
    mac: bytes | None = None
    wire: str | None = None
    sectors: int = 0
    image: str | None = None


@dataclass
class BusSpec:
    """A virtual bus of io (``io.bus(name, devices=[...])``): the devices one client may drive."""

    name: str
    devices: list[str]
    where: Where


class IoScript:
    """The script's ``io``: the device manager, which the script gives buses of (``io.bus``)."""

    def __init__(self, file: str, plan: Plan) -> None:
        self._file = file
        self._plan = plan

    def bus(self, name: str, devices: list[str] | tuple[str, ...] | None = None) -> BusSpec:
        """A virtual bus called ``name`` holding ``devices`` (names of ``nic``/``disk`` before)."""
        w = _where_of(self._file)
        _check_name(name, "bus", w)
        plan = self._plan
        first = next((b.where for b in plan.buses if b.name == name), None)
        if first is not None:
            raise ScriptError(f"{w}: bus {name!r} is defined twice (first at {first}); give each bus its own name")
        if not isinstance(devices, list | tuple) or not devices or not all(isinstance(d, str) for d in devices):
            raise ScriptError(f"{w}: bus {name!r}: give its devices by name, e.g. devices=['nic0']")
        known = {d.name for d in plan.devices}
        for d in devices:
            if d not in known:
                raise ScriptError(f"{w}: bus {name!r}: the board has no device {d!r} "
                                  f"(it has: {', '.join(sorted(known)) or 'none'}); declare it with "
                                  f"nic(...), disk(...) or display() first")
            other = next((b for b in plan.buses if d in b.devices), None)
            if other is not None:
                raise ScriptError(f"{w}: device {d!r} is on bus {other.name!r} already ({other.where}): a device "
                                  f"has one driver, so it may be on one bus only")
        if len(set(devices)) != len(devices):
            raise ScriptError(f"{w}: bus {name!r} names a device twice")
        bus = BusSpec(name, list(devices), w)
        plan.buses.append(bus)
        return bus


@dataclass
class RamSpec:
    """The memory of a Linux instance: a dataspace of ``size`` bytes ned creates from its own
    session and grants to the instance (which holds its only capability)."""

    size: int


@dataclass(frozen=True)
class LinuxSpec:
    """What ``linux(...)`` says of a Linux instance beyond what every program has."""

    root: str | None
    argv: tuple[str, ...]
    #: the script's capabilities, which become its /dev/l4 devices, in order
    devices: tuple[str, ...]
    #: processes that may bind them and make L4 calls: executable paths and uids
    allow: tuple[str | int, ...]
    memory: int
    #: its display's view (x, y, width, height) when ``caps`` has a GUI session as ``gui``
    fb: tuple[int, int, int, int] | None = None
    #: the network interfaces (``net=``, ``hosts=``), as the Linux subsystem parsed them
    #: (``linux_hook("network")``; its ports are capabilities ``net_IFNAME``); None: ``lo`` only
    net: Any = None


@dataclass
class ProgramSpec:
    name: str
    program: str
    caps: dict[str, Any]
    prio: int
    cpus: int
    args: tuple[Any, ...]
    quota: int
    daemon: bool
    where: Where
    fn: Callable[..., Any] | None = None
    kmem: int = KMEM
    #: the program's image, loaded by the boot loader for a measured boot (None: not loaded)
    image: bytes | None = None
    #: a Linux instance (``linux(...)``): the personality is its program
    linux: LinuxSpec | None = None


@dataclass
class Plan:
    """What a startup script asks for, in order."""

    file: str
    channels: list[Channel] = field(default_factory=list)
    shared: list[Shared] = field(default_factory=list)
    programs: list[ProgramSpec] = field(default_factory=list)
    #: the kernel's models the script chose (None: the default, or what ``l4sim boot`` says)
    comm_model: str | None = None
    kmem_model: str | None = None
    #: the board's devices and io's buses
    devices: list[DeviceSpec] = field(default_factory=list)
    #: the display's size, when the script puts one on the board (``display(width, height)``)
    display: tuple[int, int] | None = None
    buses: list[BusSpec] = field(default_factory=list)
    #: where the devices landed when the board was built (``system.build_board``): what io is told
    board: list[DeviceInfo] = field(default_factory=list)
    #: the script's bytes (measured into PCR 9 on a measured boot)
    source: bytes = b""

    @property
    def measured(self) -> bool:
        """A program is given the TPM or the event log: the boot is measured.

        Unmeasured configurations give nobody the TPM, so nothing in them can
        quote or unseal: a missing measurement cannot be used to pass as
        another configuration.
        """
        return any((isinstance(c, PortsSpec) and c.name == "tpm") or isinstance(c, EventLogSpec)
                   for p in self.programs for c in p.caps.values())

    @property
    def port_devices(self) -> bool:
        """Some program is given a port device: ned then takes ports from sigma0."""
        return self.measured or any(isinstance(c, PortsSpec) for p in self.programs for c in p.caps.values())

    def load_images(self) -> None:
        """Load every program's image that is not loaded yet, as a boot loader loads boot modules:
        a native program's module with its package's modules (``measure.native_image``)."""
        for spec in self.programs:
            if spec.image is None and spec.fn is not None:
                spec.image = measure.native_image(spec.fn.__module__)[0]


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


def _where(file: str) -> Where:
    """The script line of the DSL call being made."""
    f = sys._getframe(2)
    while f is not None and f.f_code.co_filename != file:
        f = f.f_back  # type: ignore[assignment]
    return Where(file, f.f_lineno if f is not None else 0)


def load_script(path: str | Path, ncores: int) -> Plan:
    """Run a startup script in plan mode and check it; raises :class:`ScriptError`."""
    p = Path(path)
    try:
        source = p.read_text()
    except OSError as e:
        raise ScriptError(f"{path}: cannot read the startup script ({e.strerror})") from None
    file = str(p)
    plan = Plan(file, source=source.encode())

    def factory(quota: int = 1 << 20) -> KernelFactory:
        w = _where(file)
        if type(quota) is not int or not 4096 <= quota <= 64 << 20:
            raise ScriptError(f"{w}: factory quota {quota!r}: give bytes of kernel memory, 4096 .. 64 MiB")
        return KernelFactory(quota, w)

    def channel(name: str) -> Channel:
        w = _where(file)
        _check_name(name, "channel", w)
        first = next((c.where for c in plan.channels if c.name == name), None)
        if first is not None:
            raise ScriptError(f"{w}: channel {name!r} is defined twice (first at {first}); "
                              f"give each channel its own name")
        ch = Channel(name, w)
        plan.channels.append(ch)
        return ch

    def dataspace(name: str, size: int) -> Shared:
        w = _where(file)
        _check_name(name, "dataspace", w)
        if type(size) is not int or not 0 < size <= 64 << 20:
            raise ScriptError(f"{w}: dataspace {name!r} size {size!r}: give a size in bytes, 1 .. 64 MiB")
        first = next((d.where for d in plan.shared if d.name == name), None)
        if first is not None:
            raise ScriptError(f"{w}: dataspace {name!r} is defined twice (first at {first}); "
                              f"give each dataspace its own name")
        ds = Shared(name, size, w)
        plan.shared.append(ds)
        return ds

    def icu() -> IcuSpec:
        return IcuSpec(_where(file))

    def ioports(name: str) -> PortsSpec:
        w = _where(file)
        if name not in PORT_DEVICES:
            raise ScriptError(f"{w}: the board has no port device {name!r}: choose one of "
                              f"{', '.join(sorted(PORT_DEVICES))}")
        return PortsSpec(name, w)

    def eventlog() -> EventLogSpec:
        return EventLogSpec(_where(file))

    def scheduler(max_prio: int | None = None, cpus: int | list[int] | None = None) -> SchedulerSpec:
        w = _where(file)
        if max_prio is not None and (type(max_prio) is not int or not 1 <= max_prio <= 254):
            raise ScriptError(f"{w}: scheduler max_prio {max_prio!r} is out of range: use 1 .. 254")
        return SchedulerSpec(max_prio, None if cpus is None else _cpus(cpus, ncores, "scheduler()", w), w)

    def program(name: str) -> ProgramRef:
        w = _where(file)
        _check_name(name, "program", w)
        return ProgramRef(name, w)

    def new_program(name: str, w: Where) -> None:
        """``name`` may name a program the script starts (``start`` or ``linux``): a valid
        name, not one started before, not one of the system's own tasks."""
        _check_name(name, "program", w)
        first = next((s.where for s in plan.programs if s.name == name), None)
        if first is not None:
            raise ScriptError(f"{w}: program {name!r} is started twice (first at {first}); "
                              f"give each program its own name")
        if name in SYSTEM_NAMES:
            raise ScriptError(f"{w}: the name {name!r} is reserved for the system's own tasks "
                              f"({', '.join(SYSTEM_NAMES)}): choose another program name")

    def start(name: str, program: str, caps: dict[str, Any] | None = None, prio: int = 1,
              cpus: int | list[int] | None = None, args: tuple[Any, ...] | list[Any] = (),
              quota: int = 4 << 20, daemon: bool = False, kmem: int = KMEM) -> ProgramSpec:
        w = _where(file)
        new_program(name, w)
        if type(program) is not str:
            raise ScriptError(f"{w}: program must be a string 'package.module:function'")
        try:
            fn = resolve(program)
        except ProgramError as e:
            raise ScriptError(f"{w}: {e}") from None
        if type(prio) is not int or not 1 <= prio <= 254:
            raise ScriptError(f"{w}: priority {prio!r} of {name!r} is out of range: use 1 .. 254")
        mask = _cpus(cpus, ncores, name, w)
        if type(quota) is not int:
            raise ScriptError(f"{w}: quota {quota!r} of {name!r} must be a number of bytes (an int)")
        if type(kmem) is not int:
            raise ScriptError(f"{w}: kmem {kmem!r} of {name!r} must be a number of bytes (an int)")
        if not MIN_KMEM <= kmem <= 64 << 20:
            raise ScriptError(f"{w}: kmem {kmem} of {name!r} is out of range: its task, threads and the page "
                              f"tables of its stack and heap need at least {MIN_KMEM} bytes, and at most "
                              f"64 MiB ({64 << 20}) can be given")
        if caps is not None and not isinstance(caps, dict):
            raise ScriptError(f"{w}: caps of {name!r} must be a dict {{name: channel/dataspace/factory}}, "
                              f"not {type(caps).__name__}")
        if not isinstance(args, tuple | list):
            raise ScriptError(f"{w}: args of {name!r} must be a tuple or list of arguments, "
                              f"not {type(args).__name__}: write args=({args!r},)")
        if type(daemon) is not bool:
            raise ScriptError(f"{w}: daemon of {name!r} must be True or False, not {daemon!r}")
        capmap: dict[str, Any] = {}
        for cname, value in (caps or {}).items():
            if not isinstance(cname, str) or not _NAME.fullmatch(cname) or cname in _RESERVED:
                raise ScriptError(f"{w}: capability name {cname!r} of {name!r} is not allowed: use a plain "
                                  f"identifier other than {', '.join(sorted(_RESERVED))}")
            if isinstance(value, ProgramRef):
                raise ScriptError(f"{w}: capability {cname!r} of {name!r}: program({value.name!r}) names a "
                                  f"program, not an object: pass program({value.name!r}).thread or .task")
            if isinstance(value, DeviceSpec):
                raise ScriptError(f"{w}: capability {cname!r} of {name!r} is the device {value.name!r}: a program "
                                  f"gets devices through a bus: io.bus('...', devices=[{value.name!r}])")
            if not isinstance(value, Channel | Shared | KernelFactory | SchedulerSpec | IcuSpec | ProgramObject
                              | BusSpec | PortsSpec | EventLogSpec | SessionSpec | MemorySpec):
                raise ScriptError(f"{w}: capability {cname!r} of {name!r} names nothing ned knows "
                                  f"({type(value).__name__}): pass a channel(...), channel.session(), "
                                  f"dataspace(...), factory(), memory(...), scheduler(...), icu(), "
                                  f"io.bus(...), ioports(...), eventlog() or program(...).thread / .task")
            if isinstance(value, ProgramObject) and value.program == name:
                raise ScriptError(f"{w}: capability {cname!r} of {name!r} is its own {value.kind}: a program "
                                  f"holds its own task and main thread already (task, thread)")
            if isinstance(value, SchedulerSpec):  # the program's own limits where the script gave none
                value = SchedulerSpec(prio if value.max_prio is None else value.max_prio,
                                      mask if value.cpus is None else value.cpus, value.where)
            capmap[cname] = value
        extra = sum(1 for c, v in capmap.items() if isinstance(v, SchedulerSpec) and c != "scheduler")
        least = min_quota(schedulers=1 + extra)
        if quota < least:
            raise ScriptError(f"{w}: quota {quota} of {name!r} is too small for its log, scheduler, stack and "
                              f"heap: give at least {least} bytes")
        for a in args:
            if not isinstance(a, int | str | bytes | float | bool | type(None)):
                raise ScriptError(f"{w}: argument {a!r} of {name!r}: pass numbers, strings or bytes")
        spec = ProgramSpec(name, program, capmap, prio, mask, tuple(args), quota, daemon, w, fn, kmem)
        plan.programs.append(spec)
        return spec

    def _device(name: str, what: str) -> Where:
        w = _where(file)
        _check_name(name, what, w)
        first = next((d.where for d in plan.devices if d.name == name), None)
        if first is not None:
            raise ScriptError(f"{w}: device {name!r} is declared twice (first at {first}); "
                              f"give each device its own name")
        if name == "iommu":
            raise ScriptError(f"{w}: the name 'iommu' is the board's own IOMMU: choose another device name")
        if _lines_used(plan) >= MAX_DEVICES:
            raise ScriptError(f"{w}: a board has interrupt lines for {MAX_DEVICES} devices: leave {name!r} out")
        return w

    def display(width: int = 640, height: int = 480) -> None:
        w = _where(file)
        if plan.display is not None:
            raise ScriptError(f"{w}: display(...) is called twice: a machine has one display")
        for what, v in (("width", width), ("height", height)):
            if type(v) is not int or not 16 <= v <= 2048:
                raise ScriptError(f"{w}: display {what} {v!r}: give pixels, 16 .. 2048")
        if _lines_used(plan) + 2 > MAX_DEVICES:
            raise ScriptError(f"{w}: a board has interrupt lines for {MAX_DEVICES} devices: the display's "
                              f"keyboard and pointer need two of them; leave other devices out")
        for name, kind in DISPLAY_DEVICES:
            _device(name, "device")
            plan.devices.append(DeviceSpec(name, kind, w))
        plan.display = (width, height)

    def memory(quota: int) -> MemorySpec:
        w = _where(file)
        if type(quota) is not int or not 4096 <= quota <= 256 << 20:
            raise ScriptError(f"{w}: memory quota {quota!r}: give bytes, 4096 .. 256 MiB")
        return MemorySpec(quota, w)

    def nic(name: str, mac: str | None = None, wire: str | None = None) -> DeviceSpec:
        w = _device(name, "device")
        raw: bytes | None = None
        if mac is not None:
            try:
                raw = parse_mac(mac if isinstance(mac, str) else repr(mac))
            except ValueError as e:
                raise ScriptError(f"{w}: nic {name!r}: {e}") from None
        if wire is not None and not isinstance(wire, str):
            raise ScriptError(f"{w}: nic {name!r}: wire= names another NIC or 'host', not {wire!r}")
        spec = DeviceSpec(name, "nic", w, mac=raw, wire=wire)
        plan.devices.append(spec)
        return spec

    def disk(name: str, sectors: int = 2048, image: str | None = None) -> DeviceSpec:
        w = _device(name, "device")
        if type(sectors) is not int or not 1 <= sectors <= 1 << 24:
            raise ScriptError(f"{w}: disk {name!r}: sectors {sectors!r}: give 1 .. {1 << 24} sectors of 512 bytes")
        if image is not None and not isinstance(image, str):
            raise ScriptError(f"{w}: disk {name!r}: image= is a path (a string), not {image!r}")
        spec = DeviceSpec(name, "blk", w, sectors=sectors, image=image)
        plan.devices.append(spec)
        return spec

    def kernel(comm_model: str | None = None, kmem_model: str | None = None) -> None:
        w = _where(file)
        if plan.programs or plan.channels or plan.shared:
            raise ScriptError(f"{w}: kernel(...) chooses the kernel's models: call it first, before start()")
        if comm_model is not None and comm_model not in COMM_MODELS:
            raise ScriptError(f"{w}: unknown communication model {comm_model!r}: "
                              f"choose one of {', '.join(COMM_MODELS)}")
        if kmem_model is not None and kmem_model not in KMEM_MODELS:
            raise ScriptError(f"{w}: unknown kernel-memory model {kmem_model!r}: "
                              f"choose one of {', '.join(KMEM_MODELS)}")
        plan.comm_model, plan.kmem_model = comm_model, kmem_model

    def linux(name: str, argv: list[str] | tuple[str, ...], root: str | None = None,
              caps: dict[str, Any] | None = None, prio: int = 10, cpus: int | list[int] | None = None,
              memory: int | str = "64M", kmem: int = LINUX_KMEM, l4_allow: list[Any] | tuple[Any, ...] = (),
              daemon: bool = False, fb: tuple[int, int, int, int] | list[int] | None = None,
              net: dict[str, Any] | None = None, hosts: dict[str, Any] | None = None) -> ProgramSpec:
        w = _where(file)
        new_program(name, w)
        what = f"linux {name!r}"
        if not isinstance(argv, list | tuple) or not argv or not all(type(a) is str for a in argv):
            raise ScriptError(f"{w}: argv of {what} must be a list of strings, the program first: "
                              f"argv=['/bin/sh', '-c', 'echo hello']")
        if root is not None and type(root) is not str:
            raise ScriptError(f"{w}: root of {what} must be a path (a directory or a tar file), not "
                              f"{type(root).__name__}")
        if type(prio) is not int or not 2 <= prio <= 254:
            raise ScriptError(f"{w}: priority {prio!r} of {what} is out of range: its processes run one "
                              f"below the instance: use 2 .. 254")
        mask = _cpus(cpus, ncores, name, w)
        size = _size(memory)
        if size is None or not LINUX_MEMORY[0] <= size <= LINUX_MEMORY[1]:
            raise ScriptError(f"{w}: memory {memory!r} of {what}: give bytes or a size like '64M', "
                              f"4M .. 4G")
        if type(kmem) is not int or not 64 << 10 <= kmem <= 64 << 20:
            raise ScriptError(f"{w}: kmem {kmem!r} of {what} is out of range: its processes' tasks, threads "
                              f"and page tables need bytes of kernel memory, 65536 .. 64 MiB")
        if caps is not None and not isinstance(caps, dict):
            raise ScriptError(f"{w}: caps of {what} must be a dict {{name: channel}}, not {type(caps).__name__}")
        if not isinstance(l4_allow, list | tuple) or not all(
                (type(a) is str and a.startswith("/")) or (type(a) is int and a >= 0) for a in l4_allow):
            raise ScriptError(f"{w}: l4_allow of {what} must list executable paths and uids, "
                              f"e.g. l4_allow=['/bin/l4call', 0]")
        if type(daemon) is not bool:
            raise ScriptError(f"{w}: daemon of {what} must be True or False, not {daemon!r}")
        capmap: dict[str, Any] = {}
        for cname, value in (caps or {}).items():
            if not isinstance(cname, str) or not _NAME.fullmatch(cname) or cname in _LINUX_RESERVED \
                    or "/" in cname:
                raise ScriptError(f"{w}: capability name {cname!r} of {what} is not allowed: use a plain "
                                  f"identifier other than {', '.join(sorted(_LINUX_RESERVED))}")
            if cname == LINUX_DISPLAY:
                if not isinstance(value, SessionSpec):
                    raise ScriptError(f"{w}: capability {cname!r} of {what} is its display (/dev/fb0, "
                                      f"/dev/input/event0): give a session of the GUI, e.g. gui.session()")
            elif not isinstance(value, Channel):
                raise ScriptError(f"{w}: capability {cname!r} of {what} must be a channel(...) or its "
                                  f".server() (it becomes /dev/l4/{cname}), not {type(value).__name__}")
            capmap[cname] = value
        view: tuple[int, int, int, int] | None = None
        if fb is not None:
            if LINUX_DISPLAY not in capmap:
                raise ScriptError(f"{w}: fb of {what} places its display, which it has not: give it a session "
                                  f"of the GUI as caps={{{LINUX_DISPLAY!r}: gui.session()}}")
            if not isinstance(fb, list | tuple) or len(fb) != 4 or not all(type(v) is int for v in fb) \
                    or not (1 <= fb[2] <= 4096 and 1 <= fb[3] <= 4096 and abs(fb[0]) <= 1 << 16
                            and abs(fb[1]) <= 1 << 16):
                raise ScriptError(f"{w}: fb of {what} must be (x, y, width, height) on the screen, width and "
                                  f"height 1 .. 4096, e.g. fb=(20, 40, 600, 260)")
            view = (fb[0], fb[1], fb[2], fb[3])
        ports, netcfg = _linux_net(what, w, net, hosts, capmap)
        where_root = root if root is None or Path(root).is_absolute() else str(Path(file).parent / root)
        problem = linux_hook("check")(where_root, tuple(argv))
        if problem is not None:
            raise ScriptError(f"{w}: {what}: {problem}")
        spec = ProgramSpec(name, LINUX_PROGRAM, {**capmap, **ports, "factory": KernelFactory(kmem, w),
                                                 RAM_CAP: RamSpec(size)},
                           prio, mask, (), min_quota(), daemon, w, resolve(LINUX_PROGRAM), linux_kmem(size),
                           linux=LinuxSpec(where_root, tuple(argv), tuple(capmap), tuple(l4_allow), size, view,
                                           netcfg))
        plan.programs.append(spec)
        return spec

    env: dict[str, Any] = {fn.__name__: _checked_call(file, fn)
                           for fn in (channel, dataspace, start, factory, scheduler, icu, program, kernel,
                                      nic, disk, ioports, eventlog, linux, display, memory)}
    env.update({"CORES": ncores, "__file__": file, "__name__": "__ned_script__", "io": IoScript(file, plan)})
    try:
        code = compile(source, file, "exec")
    except SyntaxError as e:
        raise ScriptError(f"{file}:{e.lineno}: syntax error: {e.msg}") from None
    try:
        exec(code, env)
    except ScriptError:
        raise
    except Exception as e:  # an error of the script itself: name the line
        tb = e.__traceback__
        line = 0
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == file:
                line = tb.tb_lineno
            tb = tb.tb_next
        raise ScriptError(f"{file}:{line}: {type(e).__name__}: {e}") from None
    if not plan.programs:
        raise ScriptError(f"{file}:1: the script starts no program: add start('name', 'pkg.mod:main')")
    order = {p.name: i for i, p in enumerate(plan.programs)}
    for i, ps in enumerate(plan.programs):  # another program's objects exist only once it has started
        for cname, c in ps.caps.items():
            if not isinstance(c, ProgramObject):
                continue
            at = order.get(c.program)
            if at is None:
                raise ScriptError(f"{ps.where}: capability {cname!r} of {ps.name!r} is the {c.kind} of program "
                                  f"{c.program!r}, which the script does not start: start it, or fix the name")
            if at > i:
                raise ScriptError(f"{ps.where}: capability {cname!r} of {ps.name!r} is the {c.kind} of program "
                                  f"{c.program!r}, which starts later: start {c.program!r} before {ps.name!r}")
    names = {d.name: d for d in plan.devices}
    for d in plan.devices:  # cables: to another NIC (one cable each) or to the host
        if d.wire is None or d.wire == "host":
            continue
        peer = names.get(d.wire)
        if peer is None or peer.kind != "nic" or peer is d:
            raise ScriptError(f"{d.where}: nic {d.name!r}: wire={d.wire!r} names no other NIC of the board: "
                              f"give another nic(...)'s name, or 'host'")
        if peer.wire is not None and peer.wire != d.name:
            raise ScriptError(f"{d.where}: nic {d.name!r}: {peer.name!r} is cabled to {peer.wire!r} already: "
                              f"a NIC has one cable")
    holders: dict[str, ProgramSpec] = {}
    for ps in plan.programs:  # a port device has one driver: its ports are granted, not shared
        for c in ps.caps.values():
            if not isinstance(c, PortsSpec):
                continue
            first = holders.get(c.name)
            if first is not None:
                raise ScriptError(f"{ps.where}: ioports({c.name!r}) is given to {ps.name!r} and to "
                                  f"{first.name!r} ({first.where}): a device has one driver; give it to one")
            holders[c.name] = ps
    for ch in plan.channels:
        servers = [p for p in plan.programs for c in p.caps.values() if isinstance(c, Channel)
                   and c.name == ch.name and c.server_side]
        if not servers:
            raise ScriptError(f"{ch.where}: channel {ch.name!r} has no server: give it to one program "
                              f"as {ch.name}.server()")
    if plan.measured:
        plan.load_images()
    return plan


_RESERVED = {"task", "thread", "rm", "log", "parent"}
#: capability names a Linux instance holds already (its memory, its factory) or cannot take
_LINUX_RESERVED = _RESERVED | {"ram", "factory", "scheduler", "icu"}
#: the capability of an instance's memory
RAM_CAP = "ram"
#: the capability of an instance's display: a session of the GUI (linux/fb.py)
LINUX_DISPLAY = "gui"
#: the program of a Linux instance and the module of its host-side helpers, named (not imported:
#: the runtime sits below the subsystems, and ned resolves every program by name)
LINUX_MODULE = "l4sim.linux.instance"
LINUX_PROGRAM = f"{LINUX_MODULE}:instance"
#: the kernel memory of an instance's processes by default (its factory), and the range of its memory
LINUX_KMEM = 8 << 20
LINUX_MEMORY = (4 << 20, 4 << 30)
_SIZE = re.compile(r"(\d+)([KMG]?)", re.IGNORECASE)


def _linux_net(what: str, w: Where, net: Any, hosts: Any, capmap: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The ports of a Linux instance's ``net=`` (capabilities ``net_IFNAME``: each a channel's
    client end) and the configuration the Linux subsystem makes of the rest."""
    if net is None:
        if hosts is not None:
            raise ScriptError(f"{w}: hosts of {what} name machines on a network: give the instance net=... too")
        return {}, None
    if not isinstance(net, dict) or not net:
        raise ScriptError(f"{w}: net of {what} must be a dict {{'eth0': {{'port': channel, 'addr': '10.0.0.2/24'}}}}")
    ports: dict[str, Any] = {}
    plain: dict[Any, Any] = {}
    for ifname, spec in net.items():
        if not isinstance(spec, dict) or "port" not in spec:
            raise ScriptError(f"{w}: net of {what}, interface {ifname!r}: give a dict with the port, e.g. "
                              f"{{'port': sw, 'addr': '10.0.0.2/24'}}")
        port = spec["port"]
        if not isinstance(port, Channel) or port.server_side:
            raise ScriptError(f"{w}: net of {what}, interface {ifname!r}: port must be a channel(...) of a switch "
                              f"or nic server (its client end), not {type(port).__name__}")
        cname = f"net_{ifname}" if isinstance(ifname, str) else "net_?"
        if cname in capmap:
            raise ScriptError(f"{w}: capability name {cname!r} of {what} is taken by interface {ifname!r}'s port: "
                              f"rename the capability")
        ports[cname] = port
        plain[ifname] = {("cap" if k == "port" else k): (cname if k == "port" else v) for k, v in spec.items()}
    try:
        return ports, linux_hook("network")(what, plain, hosts)
    except ValueError as e:
        raise ScriptError(f"{w}: {e}") from None


def linux_hook(attr: str) -> Callable[..., Any]:
    """A host-side helper of Linux instances (``check``, ``config``, ``figures``), by name."""
    return getattr(importlib.import_module(LINUX_MODULE), attr)  # type: ignore[no-any-return]


def _size(text: object) -> int | None:
    """Bytes of ``64M``, ``512K``, ``1G`` or an int; None for anything else."""
    if type(text) is int:
        return text
    m = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        return None
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


def linux_kmem(memory: int) -> int:
    """The kernel memory of an instance's own task: a program's, and the mappings and page
    tables of its frame pool (every page of its memory, mapped into its own space)."""
    pages = memory >> 12
    return KMEM + pages * MAPPING_SIZE + (pages // (1 << PT_SHIFT) + 2) * PT_SIZE
#: the name of ned's task (and its console tag)
NED_TASK = "ned"
#: names of the tasks the runtime starts itself (sigma0 and moe at boot, ned, the console server);
#: a program may not take one: the console tags and the boot summary would mix the two up
SYSTEM_NAMES = tuple(sorted({"sigma0", "moe", NED_TASK, CONSOLE_TASK, IO_TASK}))
#: devices with an interrupt line a script may put on the board (one line each)
MAX_DEVICES = LAST_DEVICE_LINE - FIRST_DEVICE_LINE + 1
#: the board devices ``display()`` declares: name and kind (the framebuffer has no line)
DISPLAY_DEVICES = (("framebuffer", "fb"), ("keyboard", "kbd"), ("pointer", "ptr"))
#: how often, and how long apart, ned asks a server for a session before it gives up: the
#: server may not have bound its channel yet when its client starts
SESSION_TRIES = 100
SESSION_RETRY_NS = 1_000_000

#: io's priority, kernel memory (its DMA pool's page tables) and its factory (Irqs, gates)
IO_PRIO = 120
IO_KMEM = 1 << 20
IO_FACTORY = 256 << 10


def _lines_used(plan: Plan) -> int:
    """Interrupt lines the script's devices take (all but a framebuffer have one)."""
    return sum(1 for d in plan.devices if d.kind != "fb")


def _checked_call(file: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as the script sees it: arguments that do not fit its signature are one ScriptError.

    Python would raise a ``TypeError`` naming ``load_script.<locals>.start()``;
    the script's author needs the line, the argument and what is accepted.
    """
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    usage = f"{fn.__name__}(" + ", ".join(
        p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params) + ")"

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            sig.bind(*args, **kwargs)
        except TypeError:
            raise ScriptError(f"{_where(file)}: {_misfit(fn.__name__, params, args, kwargs)}; "
                              f"use {usage}") from None
        return fn(*args, **kwargs)

    call.__name__ = fn.__name__
    return call


def _misfit(name: str, params: list[inspect.Parameter], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What is wrong with a call whose arguments do not bind to ``params``."""
    names = [p.name for p in params]
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        return f"{name}() has no argument {unknown[0]!r}"
    if len(args) > len(params):
        return f"{name}() takes at most {len(params)} argument{'s' * (len(params) != 1)}, {len(args)} given"
    twice = [k for k in kwargs if k in names[:len(args)]]
    if twice:
        return f"{name}() got {twice[0]!r} twice, by position and by name"
    missing = [p.name for p in params[len(args):] if p.default is p.empty and p.name not in kwargs]
    return f"{name}() needs the argument {missing[0]!r}" if missing else f"{name}(): bad arguments"


def _check_name(name: object, what: str, w: Where) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ScriptError(f"{w}: {what} name {name!r} is not allowed: use letters, digits, '_', '.', '-'")


def _cpus(cpus: int | list[int] | None, ncores: int, name: str, w: Where) -> int:
    if cpus is None:
        return 1
    if isinstance(cpus, int) and not isinstance(cpus, bool):
        cpus = [cpus]
    if not isinstance(cpus, list | tuple) or not cpus:
        raise ScriptError(f"{w}: cpus of {name!r} must be a core number or a list of them")
    mask = 0
    for c in cpus:
        if type(c) is not int or not 0 <= c < ncores:
            raise ScriptError(f"{w}: cpu {c!r} of {name!r} does not exist: this machine has cores 0 .. {ncores - 1}")
        mask |= 1 << c
    return mask


class StartError(Exception):
    """A program cannot start because something the script gave it could not be made."""


async def ned(env: Env, plan: Plan, report: Callable[[Child], None] | None = None,
              log: measure.EventLog | None = None, linux: dict[str, Any] | None = None) -> int:
    """The init task: measure, create the plan's channels and dataspaces, start its programs, wait.

    ``env`` holds the kernel factory, the scheduler, a moe session (``mem``)
    and sigma0 (``sigma0``, for the devices' ports).  ``report``, when given
    by the host, is called with the record of every program right after it
    started, while ned still holds its task (an observation channel like the
    console, read by the boot summary).  ``log`` is the boot loader's event
    log, which a measured boot continues.  A program that cannot start
    (memory or kernel memory ran out) is reported on the console and the
    others start all the same; every program's end is reported, daemons'
    included.  Returns the number of programs that could not start, faulted
    or exited non-zero.  ``linux`` holds the configuration of each Linux
    instance by name (made on the host at boot,
    :func:`l4sim.runtime.system.boot_plan`): the argument of its program.
    """
    mem = env.cap("mem", Gate) if env.has("mem") else None
    loader = Loader(env, mem)
    await loader.listen()  # a program's parent gate that dies: it ended without a word
    held: dict[str, tuple[int, int]] = {}  # devices whose ports ned holds: name -> (first port, order)
    logds: Gate | None = None
    if plan.measured:
        log = log if log is not None else measure.EventLog()
        try:
            await _measure(env, plan, log, held)
        except (L4Error, StartError, measure.TisError) as e:  # the PCRs then match no configuration
            await env.print(f"ned: measured boot failed: {e}")
        if any(isinstance(c, EventLogSpec) for p in plan.programs for c in p.caps.values()):
            try:
                logds = await _log_dataspace(env, mem, log.to_bytes())
            except L4Error as e:
                await env.print(f"ned: the event log: could not make its dataspace: {e}")
    gates: dict[str, Gate] = {}
    shared: dict[str, Gate] = {}
    for ch in plan.channels:
        try:
            gates[ch.name] = await env.factory.create_gate(None)
        except L4Error as e:
            await env.print(f"ned: channel {ch.name}: could not create it: {e}")
    for sh in plan.shared:
        try:
            shared[sh.name] = await _dataspace(env, mem, sh)
        except L4Error as e:
            await env.print(f"ned: dataspace {sh.name}: could not create it: {e}")
    running: list[Child] = []
    started: dict[str, Child] = {}
    daemons: set[int] = set()  # labels of the daemons' parent gates
    bad = 0
    buses: dict[str, Gate] = {}
    if plan.buses:  # the device manager first: the drivers' buses are its gates
        try:
            io, buses = await _start_io(env, loader, plan)
        except (L4Error, StartError) as e:
            await env.print(f"ned: io: could not start: {e}")
            bad += 1
        else:
            running.append(io)
            daemons.add(io.label)
            if report is not None:
                report(io)
    for spec in plan.programs:
        try:
            child = await _start(env, loader, spec, gates, shared, started, linux or {}, buses, held, logds)
        except (L4Error, StartError) as e:  # this program cannot start; the rest can
            await env.print(f"ned: {spec.name}: could not start: {e}")
            bad += 1
            continue
        running.append(child)
        started[spec.name] = child
        if spec.daemon:
            daemons.add(child.label)
        if report is not None:
            report(child)
    while any(c.label not in daemons for c in running):
        msg = await env.wait()
        if await loader.notice(msg) or await loader.handle(msg):
            bad += await _ended(env, running)
    # the daemons end with the system; one that has ended on its own meanwhile is reported as such
    while not (msg := await env.wait(timeout=0)).error:
        if await loader.notice(msg) or await loader.handle(msg):
            bad += await _ended(env, running)
    for child in running:
        await loader.kill(child)
    return bad


async def _ended(env: Env, running: list[Child]) -> int:
    """Report the programs that have ended and forget them; how many of them failed."""
    bad = 0
    for child in [c for c in running if c.done]:
        running.remove(child)
        await env.print(f"ned: {child.name}: {child.status}")
        bad += int(child.fault is not None or child.exit != 0)
    return bad


async def _dataspace(env: Env, mem: Gate | None, sh: Shared) -> Gate:
    """A shared dataspace of the script, from ned's own session."""
    if mem is None:
        raise L4Error(Err.ENODEV, f"dataspace {sh.name}: no memory allocator")
    slot = env.alloc_slot()
    ans = await env.ipc(Ipc(mem.slot, CALL, MEM_ALLOC, (MemOp.CREATE_DS, sh.size, DsFlag.RW, 0),
                            rcv=(Fpage.obj(slot),)))
    if ans.error or ans.proto < 0:
        env.free_slot(slot)
        raise L4Error(-ans.proto if ans.proto < 0 else 0, "create dataspace", ans.error)
    return Gate(env, slot)


async def _start_io(env: Env, loader: Loader, plan: Plan) -> tuple[Child, dict[str, Gate]]:
    """Start io with sigma0, the ICU, a factory, the board and one gate per bus (its server side);
    the bus gates, to hand to the script's programs."""
    buses: dict[str, Gate] = {}
    caps: dict[str, Cap | tuple[Cap, int] | SchedLimits] = {}
    if not env.has("sigma0"):
        raise StartError("ned holds no sigma0 capability (the board has no devices)")
    caps["sigma0"] = (env.cap("sigma0", Gate), Rights.R | Rights.W)
    caps["icu"] = (env.icu, Rights.R | Rights.W)
    for b in plan.buses:
        buses[b.name] = await env.factory.create_gate(None)
        caps[f"bus.{b.name}"] = (buses[b.name], Rights.RWSD)
    try:
        caps["factory"] = await env.factory.create_factory(IO_FACTORY)
    except L4Error as e:
        raise StartError(f"its factory of {IO_FACTORY} bytes: {e}") from None
    child = await loader.start(IO_TASK, io_server, caps, grants=["factory"], prio=IO_PRIO,
                               args=(plan.board, [(b.name, b.devices) for b in plan.buses]), kmem=IO_KMEM)
    return child, buses


async def _start(env: Env, loader: Loader, spec: ProgramSpec, gates: dict[str, Gate],
                 shared: dict[str, Gate], started: dict[str, Child], linux: dict[str, Any],
                 buses: dict[str, Gate] | None = None, held: dict[str, tuple[int, int]] | None = None,
                 logds: Gate | None = None) -> Child:
    """Make what ``spec`` is given and start it; on failure nothing made for it is left.

    A device's ports come from ``held`` (ned took the TPM's to measure) or
    from sigma0, and are granted to the program at their own numbers.
    """
    held = {} if held is None else held
    mem = env.cap("mem", Gate) if env.has("mem") else None
    caps: dict[str, Cap | tuple[Cap, int] | SchedLimits] = {}
    io: list[tuple[int, int]] = []
    made: list[str] = []  # its own factories, memory and sessions: granted to it, so ned keeps none
    args = spec.args
    if spec.linux is not None:
        if spec.name not in linux:
            raise StartError("its configuration was not made at boot")
        args = (linux[spec.name],)
    try:
        for cname, what in spec.caps.items():
            if isinstance(what, Channel):
                if what.name not in gates:
                    raise StartError(f"channel {what.name} could not be created")
                caps[cname] = (gates[what.name], Rights.RWSD if what.server_side else Rights.R | Rights.W)
            elif isinstance(what, SchedulerSpec):
                assert what.max_prio is not None and what.cpus is not None, "resolved by the check"
                caps[cname] = SchedLimits(what.max_prio, what.cpus)
            elif isinstance(what, IcuSpec):
                caps[cname] = (env.icu, what.rights)
            elif isinstance(what, BusSpec):
                if buses is None or what.name not in buses:
                    raise StartError(f"bus {what.name}: io is not running")
                caps[cname] = (buses[what.name], Rights.R | Rights.W)
            elif isinstance(what, PortsSpec):
                if what.name not in held:
                    await _claim(env, what.name, held)
                io.append(held[what.name])
            elif isinstance(what, EventLogSpec):
                if logds is None:
                    raise StartError("the event log is not there (the boot's measurements failed)")
                caps[cname] = (logds, Rights.R)
            elif isinstance(what, ProgramObject):
                other = started.get(what.program)
                obj: Cap | None = None
                if other is not None and not other.done:
                    obj = other.thread if what.kind == "thread" else other.task
                if obj is None or not (await env.task.cap_info(obj.slot))[0]:
                    raise StartError(f"its capability {cname!r}: program {what.program} is not running")
                caps[cname] = (obj, what.rights)
            elif isinstance(what, RamSpec):  # a Linux instance's memory: from ned's own session
                try:
                    caps[cname] = await _dataspace(env, env.cap("mem", Gate) if env.has("mem") else None,
                                                   Shared(cname, what.size, spec.where))
                except L4Error as e:
                    raise StartError(f"its memory of {what.size} bytes: {e}") from None
            elif isinstance(what, SessionSpec):
                if what.channel not in gates:
                    raise StartError(f"channel {what.channel} could not be created")
                caps[cname] = await _open_session(env, gates[what.channel], spec.name, what)
                made.append(cname)
            elif isinstance(what, MemorySpec):
                if mem is None:
                    raise StartError(f"its memory {cname!r}: ned has no memory allocator")
                slot = env.alloc_slot()
                ans = await env.ipc(Ipc(mem.slot, CALL, MEM_ALLOC, (MemOp.CREATE_SESSION, what.quota),
                                        rcv=(Fpage.obj(slot),)))
                if ans.error or ans.proto < 0:
                    env.free_slot(slot)
                    raise StartError(f"its memory {cname!r} of {what.quota} bytes: moe refused it")
                caps[cname] = Gate(env, slot)
                made.append(cname)
            elif isinstance(what, KernelFactory):
                try:
                    caps[cname] = await env.factory.create_factory(what.quota)
                except L4Error as e:
                    raise StartError(f"its factory {cname!r} of {what.quota} bytes: {e}") from None
                made.append(cname)
            else:
                if what.name not in shared:
                    raise StartError(f"dataspace {what.name} could not be created")
                caps[cname] = (shared[what.name], Rights.RW)
    except (L4Error, StartError):
        for cname in made:
            cap = caps[cname]
            assert isinstance(cap, Cap)
            await env.task.delete(cap.slot)
            env.free_slot(cap.slot)
        raise
    assert spec.fn is not None
    for name in [d.name for d in spec.caps.values() if isinstance(d, PortsSpec)]:
        del held[name]  # granted with the program's start, whether or not that succeeds
    return await loader.start(spec.name, spec.fn, caps, grants=made, prio=spec.prio, cpus=spec.cpus,
                              args=args, quota=spec.quota, kmem=spec.kmem, io=tuple(io))


def session_request(client: str, args: tuple[str | int, ...]) -> tuple[int, ...]:
    """The words of a ``SESSION`` ``CREATE`` for ``client``: the label (the client's name and
    the text arguments, space-separated) packed, then the numeric arguments."""
    text = " ".join([client, *(a for a in args if isinstance(a, str))])
    nums = [a for a in args if isinstance(a, int)]
    return (int(SessionOp.CREATE), *pack_bytes(text.encode()), *nums)


async def _open_session(env: Env, gate: Gate, client: str, what: SessionSpec) -> Gate:
    """Ask the server behind ``gate`` for a session labelled with ``client``'s script name.

    A server that has not bound its channel yet (the call fails with ``ENOT_EXISTENT``)
    is asked again, :data:`SESSION_TRIES` times :data:`SESSION_RETRY_NS` apart.
    """
    words = session_request(client, what.args)
    slot = env.alloc_slot()
    for _ in range(SESSION_TRIES):
        ans = await env.ipc(Ipc(gate.slot, CALL, SESSION, words, rcv=(Fpage.obj(slot),)))
        if ans.error != IpcErr.ENOT_EXISTENT:
            break
        await env.receive(env.thread, timeout=SESSION_RETRY_NS)  # not bound yet: wait a little
    if ans.error or ans.proto < 0 or not (await env.task.cap_info(slot))[0]:
        env.free_slot(slot)
        why = (IpcErr(ans.error).name if ans.error in IpcErr._value2member_map_ else str(ans.error)) \
            if ans.error else (Err(-ans.proto).name if -ans.proto in Err._value2member_map_ else str(ans.proto))
        raise StartError(f"its session of {what.channel!r}: the server refused it ({why})")
    return Gate(env, slot)


async def _claim(env: Env, name: str, held: dict[str, tuple[int, int]]) -> None:
    """Take port device ``name``'s ports from sigma0 into ned's I/O space."""
    if not env.has("sigma0"):
        raise StartError(f"ioports({name!r}): ned holds no sigma0 capability to take them from")
    first, order = PORT_DEVICES[name]
    msg = await request(env, env.cap("sigma0").slot, REQ_FPAGE_IO, Fpage.io(first, order),
                        Fpage.io(0, 16))
    if msg.error or msg.proto < 0:
        raise L4Error(-msg.proto if msg.proto < 0 else 0, f"ioports({name!r}) from sigma0", msg.error)
    held[name] = (first, order)


def _cap_text(c: Any) -> str:
    """One capability of a script entry, as the entry's measurement names it."""
    if isinstance(c, Channel):
        return f"channel {c.name}{' server' if c.server_side else ''}"
    if isinstance(c, Shared):
        return f"dataspace {c.name} {c.size}"
    if isinstance(c, KernelFactory):
        return f"factory {c.quota}"
    if isinstance(c, SchedulerSpec):
        return f"scheduler {c.max_prio} {c.cpus}"
    if isinstance(c, IcuSpec):
        return f"icu {c.rights}"
    if isinstance(c, ProgramObject):
        return f"program {c.program} {c.kind} {c.rights}"
    if isinstance(c, PortsSpec):
        return f"ioports {c.name}"
    if isinstance(c, SessionSpec):
        return " ".join(["session", c.channel, *map(str, c.args)])
    if isinstance(c, MemorySpec):
        return f"memory {c.quota}"
    if isinstance(c, BusSpec):
        return " ".join(["bus", c.name, *c.devices])
    if isinstance(c, RamSpec):
        return f"ram {c.size}"
    assert isinstance(c, EventLogSpec), f"every kind of capability has its text ({type(c).__name__})"
    return "eventlog"


def entry_text(spec: ProgramSpec) -> str:
    """A program's startup-script entry as one canonical line of JSON (what PCR 8 measures).

    Everything that decides what the program is given and how it runs, in the
    script's order of capabilities (which decides their slots); not where in
    the file it stands.
    """
    args = [{"bytes": a.hex()} if isinstance(a, bytes) else a for a in spec.args]
    entry = {"name": spec.name, "program": spec.program, "caps": [[n, _cap_text(c)] for n, c in spec.caps.items()],
             "prio": spec.prio, "cpus": spec.cpus, "args": args, "quota": spec.quota, "kmem": spec.kmem,
             "daemon": spec.daemon}
    li = spec.linux
    if li is not None:  # what a Linux instance runs, and how
        entry["linux"] = {"root": li.root, "argv": list(li.argv), "allow": list(li.allow), "memory": li.memory,
                          "fb": list(li.fb) if li.fb is not None else None}
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


async def _measure(env: Env, plan: Plan, log: measure.EventLog, held: dict[str, tuple[int, int]]) -> None:
    """Extend the script, then each program's image and entry, into the TPM; record each in ``log``.

    ned hashes what the boot loader loaded (the script's bytes, each
    program's image) and pays for the hashing in simulated time.
    """
    await _claim(env, "tpm", held)
    tis = measure.TisClient(env)

    async def ext(pcr: int, data: bytes, what: str) -> None:
        await env.compute(max(1, len(data) * measure.HASH_NS_PER_KIB >> 10))
        digest = tpm2.sha256(data)
        await measure.extend(tis, pcr, digest)
        log.add(pcr, digest, what.encode() + b"\0")

    await ext(measure.PCR_IMAGES, plan.source, f"script {Path(plan.file).name}")
    for spec in plan.programs:
        if spec.image is None:
            raise StartError(f"no image of {spec.name} was loaded: the plan's images are loaded by "
                             "Plan.load_images()")
        await ext(measure.PCR_IMAGES, spec.image, f"image {spec.name} {spec.program}")
        digest, data = measure.entry_event(entry_text(spec))
        await env.compute(max(1, len(data) * measure.HASH_NS_PER_KIB >> 10))
        await measure.extend(tis, measure.PCR_ENTRIES, digest)
        log.add(measure.PCR_ENTRIES, digest, data)


#: where ned maps a page of the event log's dataspace while it fills it
LOG_WINDOW = 0x1000_0000


async def _log_dataspace(env: Env, mem: Gate | None, data: bytes) -> Gate:
    """A dataspace holding the event log: its length as a little-endian 64-bit word, then the log."""
    if mem is None:
        raise L4Error(Err.ENODEV, "the event log: no memory allocator")
    blob = len(data).to_bytes(8, "little") + data
    ds = await _dataspace(env, mem, Shared("eventlog", len(blob), Where("", 0)))
    window = Fpage.mem(LOG_WINDOW, PAGE_SHIFT, MemRights.RW)
    for off in range(0, len(blob), PAGE_SIZE):
        ans = await env.ipc(Ipc(ds.slot, CALL, DATASPACE, (DsOp.MAP, off, DsFlag.RW), rcv=(window,)))
        if ans.error or ans.proto < 0:
            raise L4Error(-ans.proto if ans.proto < 0 else 0, "the event log: map its page", ans.error)
        await env.mem.write(LOG_WINDOW, blob[off : off + PAGE_SIZE])
        await env.task.unmap(window, include_self=True)
    return ds
