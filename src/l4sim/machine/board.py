"""The simulated machine: cores, the event queue, interrupt lines, devices, seed.

A :class:`Machine` is plain hardware.  It has no notion of threads; the
kernel owns one :class:`Core` record per CPU and drives it.  Line numbers of
the interrupt controller are fixed per board:

====================  =========================================
line                  device
====================  =========================================
0                     platform periodic timer (``machine.pit``)
1                     UART receive (reserved)
2 .. 15               devices added to the board (:meth:`Machine.add_nic`,
                      :meth:`Machine.add_disk`, the keyboard and the pointer of
                      :meth:`Machine.add_display`), in the order they are added
16 + n                local timer of core n (the kernel's tick)
====================  =========================================

The board's devices (``machine.board``, by name) each have a page of
registers above RAM, an interrupt line (the framebuffer has none) and, for
DMA, a requester id at the IOMMU, which comes with the first such device.
The framebuffer also has memory of its own: its pixels, device frames
beside its registers.  Several machines may share
one event queue (``Machine(events=...)``): their NICs can then be wired to
each other, and one run drives them all.
Its I/O ports (:data:`PORT_DEVICES` names the port devices a startup
script can give a program, ``ioports(NAME)``):

===============  ===========  ==================================================
ports            device       what
===============  ===========  ==================================================
0x2f8 .. 0x2ff   ``serial1``  a second serial line to a host-side peer (COM2,
                              :class:`~l4sim.machine.devices.SerialLink`)
0x3f8, 0x3fd     (console)    the UART (COM1): data, line status
0xf40 .. 0xf47   ``tpm``      the TPM's TIS registers (:mod:`l4sim.machine.tpm`)
0xf48 .. 0xf4f   ``nvram``    battery-backed RAM (:class:`~l4sim.machine.devices.Nvram`)
===============  ===========  ==================================================

What survives a reboot is what the caller hands the next machine: the TPM's
non-volatile state (``tpm_nv``) and the NVRAM's bytes (``nvram``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from l4sim.machine.block import BlockDevice, Medium
from l4sim.machine.devices import InterruptController, Nvram, PeriodicTimer, SerialLink, Uart
from l4sim.machine.display import MAX_HEIGHT, MAX_WIDTH, Display, Framebuffer, Keyboard, Pointer
from l4sim.machine.events import EventQueue
from l4sim.machine.iommu import DmaPort, Iommu
from l4sim.machine.memory import DEFAULT_RAM, PAGE_SIZE, DeviceRegion, PhysMem
from l4sim.machine.nic import Nic, PcapWriter, Port, Wire

#: I/O port of the UART's data register (a PC's COM1); COM1+5 is its line status
COM1 = 0x3F8
#: the second serial line (COM2), and the NVRAM's registers
COM2 = 0x2F8
NVRAM_PORT = 0x0F48
#: bytes of NVRAM a machine has unless it is given its own
NVRAM_SIZE = 64 << 10
#: port devices a startup script may hand to one program: name -> (first port, log2 of the port count)
if TYPE_CHECKING:
    from l4sim.machine.tpm import Tpm, TpmNv

#: the TPM's TIS registers (:mod:`l4sim.machine.tpm` has the same numbers; the chip's module is
#: imported when the chip is first used, see Machine.tpm)
TPM_PORT = 0x0F40
TPM_PORT_ORDER = 3
PORT_DEVICES = {"serial1": (COM2, 3), "tpm": (TPM_PORT, TPM_PORT_ORDER), "nvram": (NVRAM_PORT, 3)}
LINE_PIT = 0
LINE_UART = 1
LINE_LOCAL_TIMER_BASE = 16
MAX_CORES = 64
#: interrupt lines for the board's devices
FIRST_DEVICE_LINE = 2
LAST_DEVICE_LINE = 15


@dataclass
class BoardDevice:
    """One device of the board as the device manager learns of it: what it is, its
    register region, its interrupt line (-1: none), its requester id at the IOMMU (-1: none)
    and the memory of its own it has beside its registers (a framebuffer's pixels)."""

    name: str
    kind: str  # "nic", "blk", "fb", "kbd", "ptr" or "iommu"
    region: DeviceRegion
    line: int
    rid: int
    dev: Any
    memory: DeviceRegion | None = None


class Machine:
    """Hardware of one simulation run.

    ``seed`` feeds the one random generator of the run (``machine.rng``);
    nothing else in the model may draw random numbers -- but the TPM, whose
    generator is made from the same seed when the chip is "manufactured"
    (:class:`~l4sim.machine.tpm.TpmNv`) and lives in its non-volatile state.
    ``tpm_nv`` and ``nvram`` are the state a rebooted machine keeps (None:
    a new chip, zeroed NVRAM).
    """

    def __init__(self, cores: int = 1, seed: int = 0, console: TextIO | None = None,
                 ram: int = DEFAULT_RAM, events: EventQueue | None = None, tpm_nv: TpmNv | None = None,
                 nvram: bytearray | None = None) -> None:
        if not 1 <= cores <= MAX_CORES:
            raise ValueError(f"a machine has 1..{MAX_CORES} cores, not {cores}")
        self.ncores = cores
        self.seed = seed
        self.rng = random.Random(seed)
        self.events = events if events is not None else EventQueue()
        self.ic = InterruptController(LINE_LOCAL_TIMER_BASE + cores)
        self.uart = Uart(console)
        self.mem = PhysMem(ram)
        #: I/O port space: port -> (read(port) -> int, write(port, value)) handlers
        self.ports: dict[int, tuple[Callable[[int], int], Callable[[int, int], None]]] = {}
        self.ports[COM1] = (lambda port: 0x60 if port == COM1 + 5 else 0,  # LSR: transmitter empty
                            lambda port, value: self.uart.write(bytes([value & 0xFF])))
        self.ports[COM1 + 5] = self.ports[COM1]
        # the TPM is made when it is first used (a port access, ``machine.tpm``): its module
        # and its cryptography cost start-up time a machine without a TPM user need not pay.
        # A chip whose state a reboot carries (``tpm_nv``) powers on with the machine.
        self._tpm: Tpm | None = None
        self._tpm_nv = tpm_nv
        if tpm_nv is not None:
            self.tpm  # noqa: B018  (power-on: its reset count goes up now)
        for i in range(1 << TPM_PORT_ORDER):
            self.ports[TPM_PORT + i] = (self._tpm_read, self._tpm_write)
        self.serial1 = SerialLink()
        self.nvram = Nvram(nvram if nvram is not None else bytearray(NVRAM_SIZE))
        for i in range(8):
            self.ports[COM2 + i] = (self.serial1.read, self.serial1.write)
            self.ports[NVRAM_PORT + i] = (self.nvram.read, self.nvram.write)
        self.pit = PeriodicTimer(self.events, self.ic, LINE_PIT)
        self.local_timers = [
            PeriodicTimer(self.events, self.ic, LINE_LOCAL_TIMER_BASE + n) for n in range(cores)
        ]
        #: the board's devices by name, in the order they were added
        self.board: dict[str, BoardDevice] = {}
        self.iommu: Iommu | None = None
        self.wires: list[Wire] = []
        self.captures: list[PcapWriter] = []
        self._next_line = FIRST_DEVICE_LINE
        #: framebuffer, keyboard and pointer, when the board has them (:meth:`add_display`)
        self.display: Display | None = None
        #: where host options put device files: ``pcap`` (a path), ``disk`` (a path)
        self.options: dict[str, Any] = {}

    # --- the board's devices
    @property
    def tpm(self) -> Tpm:
        """The TPM chip (made on first use, from the run's seed or the ``tpm_nv`` given)."""
        if self._tpm is None:
            from l4sim.machine.tpm import Tpm, TpmNv

            self._tpm = Tpm(self.events, self._tpm_nv if self._tpm_nv is not None else TpmNv(self.seed))
        return self._tpm

    def _tpm_read(self, port: int) -> int:
        return self.tpm.read_reg(port)

    def _tpm_write(self, port: int, value: int) -> None:
        self.tpm.write_reg(port, value)

    def _place(self, name: str, kind: str, dev: Any, dma: bool, line: bool = True) -> BoardDevice:
        self._check_place(name, 1 if line else 0)
        region = self.mem.add_device(name, 1, dev)
        has_line = line and kind != "iommu"
        line_no = self._next_line if has_line else -1
        if has_line:
            self._next_line += 1
        rid = -1
        if dma:
            assert self.iommu is not None
            rid = self.iommu.add_requester(name)
        bd = BoardDevice(name, kind, region, line_no, rid, dev)
        self.board[name] = bd
        return bd

    def _check_place(self, name: str, lines: int) -> None:
        """``name`` is free and ``lines`` interrupt lines are left, or ValueError."""
        if name in self.board:
            raise ValueError(f"device {name!r} is on the board already: give each device its own name")
        if self._next_line + lines - 1 > LAST_DEVICE_LINE:
            raise ValueError(f"no interrupt line left for {name!r}: a board has lines "
                             f"{FIRST_DEVICE_LINE}..{LAST_DEVICE_LINE} for devices")

    def _dma_port(self) -> DmaPort:
        """The next device's way to RAM (the IOMMU comes with the first DMA device)."""
        if self.iommu is None:
            self.iommu = Iommu(self.mem)
            self._place("iommu", "iommu", self.iommu, False)
        return DmaPort(self.mem, self.iommu, len(self.iommu.names))

    def add_nic(self, name: str, mac: bytes | None = None) -> Nic:
        """An Ethernet NIC (``machine/nic.py``); its wire is connected by :meth:`connect`."""
        dma = self._dma_port()
        if mac is None:  # a locally administered address from the device's position
            mac = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56 + len(self.board)])
        nic = Nic(name, mac, self.events, self.ic, self._next_line, dma)
        self._place(name, "nic", nic, True)
        return nic

    def add_disk(self, name: str, sectors: int, image: str | Path | None = None) -> BlockDevice:
        """A block device of ``sectors`` 512-byte sectors on a host image file (``image``; created
        when missing) or in memory (None)."""
        dma = self._dma_port()
        disk = BlockDevice(name, Medium(sectors, image), self.events, self.ic, self._next_line, dma, self.seed)
        self._place(name, "blk", disk, True)
        return disk

    def add_display(self, width: int = 640, height: int = 480,
                    names: tuple[str, str, str] = ("framebuffer", "keyboard", "pointer")) -> Display:
        """A framebuffer of ``width`` x ``height`` pixels (registers, no line, its pixel memory
        beside them), a keyboard and a pointer (registers and a line each), named ``names``;
        ``machine.display`` afterwards.  A board has at most one display."""
        if self.display is not None:
            raise ValueError("this machine has a display already")
        if not (1 <= width <= MAX_WIDTH and 1 <= height <= MAX_HEIGHT):
            raise ValueError(f"a framebuffer is 1..{MAX_WIDTH} x 1..{MAX_HEIGHT} pixels, not {width}x{height}")
        fb_name, kbd_name, ptr_name = names
        if len(set(names)) != 3:
            raise ValueError(f"the display's devices need three names, not {names}")
        for name, lines in ((fb_name, 0), (kbd_name, 1), (ptr_name, 2)):
            self._check_place(name, lines)  # all or nothing: nothing is placed when one cannot be
        size = width * height * 4
        pixels = self.mem.add_device(f"{fb_name}.pixels", (size + PAGE_SIZE - 1) // PAGE_SIZE)
        fb = Framebuffer(width, height, pixels)
        self._place(fb_name, "fb", fb, False, line=False).memory = pixels
        kbd = Keyboard(self.ic, self._next_line)
        self._place(kbd_name, "kbd", kbd, False)
        ptr = Pointer(self.ic, self._next_line, width, height)
        self._place(ptr_name, "ptr", ptr, False)
        self.display = Display(fb, kbd, ptr)
        return self.display

    def connect(self, a: Nic, b: Port | None = None) -> Wire:
        """Plug a cable into NIC ``a``; its other end goes to ``b`` (another NIC, of this machine or
        of one sharing its event queue, or a host endpoint), or nowhere."""
        if isinstance(b, Nic) and b.events is not a.events:
            raise ValueError(f"{a.name} and {b.name} are on machines with different clocks: "
                             "give both machines the same event queue")
        w = Wire(self.events, a, b)
        a.wire = w
        if isinstance(b, Nic):
            b.wire = w
        self.wires.append(w)
        return w

    def capture(self, wire: Wire, path: str | Path) -> PcapWriter:
        """Record every frame that crosses ``wire`` into the pcap file ``path``."""
        pw = PcapWriter(path)
        wire.taps.append(pw)
        self.captures.append(pw)
        return pw

    def power_off(self) -> None:
        """The end of the run: capture files are closed, disks lose their caches."""
        for pw in self.captures:
            pw.close()
        for bd in self.board.values():
            if isinstance(bd.dev, BlockDevice) and bd.dev.powered:
                bd.dev.power_off()

    def device_stats(self) -> dict[str, dict[str, int]]:
        """The hardware's own counters, per device (what the boot summary shows)."""
        out: dict[str, dict[str, int]] = {}
        for name, bd in self.board.items():
            if isinstance(bd.dev, Nic | BlockDevice):
                out[name] = bd.dev.stats()
            elif isinstance(bd.dev, Iommu):
                out[name] = {"refused": sum(bd.dev.faults)}
            elif isinstance(bd.dev, Keyboard | Pointer):
                out[name] = bd.dev.stats()
            elif isinstance(bd.dev, Framebuffer):
                out[name] = {"flushes": bd.dev.flushes, "pixels": bd.dev.flushed_pixels}
        return out

    @property
    def now(self) -> int:
        return self.events.now
