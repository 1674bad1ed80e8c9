"""The simulated machine: cores, the event queue, interrupt lines, devices, seed.

A :class:`Machine` is plain hardware.  It has no notion of threads; the
kernel owns one :class:`Core` record per CPU and drives it.  Line numbers of
the interrupt controller are fixed per board:

====================  =========================================
line                  device
====================  =========================================
0                     platform periodic timer (``machine.pit``)
1                     UART receive (reserved)
2 .. 15               free for devices added by scenarios
16 + n                local timer of core n (the kernel's tick)
====================  =========================================

and its I/O ports (:data:`PORT_DEVICES` names the port devices a startup
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
from typing import TextIO

from l4sim.machine.devices import InterruptController, Nvram, PeriodicTimer, SerialLink, Uart
from l4sim.machine.events import EventQueue
from l4sim.machine.memory import DEFAULT_RAM, PhysMem
from l4sim.machine.tpm import TPM_PORT, TPM_PORT_ORDER, Tpm, TpmNv

#: I/O port of the UART's data register (a PC's COM1); COM1+5 is its line status
COM1 = 0x3F8
#: the second serial line (COM2), and the NVRAM's registers
COM2 = 0x2F8
NVRAM_PORT = 0x0F48
#: bytes of NVRAM a machine has unless it is given its own
NVRAM_SIZE = 64 << 10
#: port devices a startup script may hand to one program: name -> (first port, log2 of the port count)
PORT_DEVICES = {"serial1": (COM2, 3), "tpm": (TPM_PORT, TPM_PORT_ORDER), "nvram": (NVRAM_PORT, 3)}
LINE_PIT = 0
LINE_UART = 1
LINE_LOCAL_TIMER_BASE = 16
MAX_CORES = 64


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
                 ram: int = DEFAULT_RAM, tpm_nv: TpmNv | None = None,
                 nvram: bytearray | None = None) -> None:
        if not 1 <= cores <= MAX_CORES:
            raise ValueError(f"a machine has 1..{MAX_CORES} cores, not {cores}")
        self.ncores = cores
        self.seed = seed
        self.rng = random.Random(seed)
        self.events = EventQueue()
        self.ic = InterruptController(LINE_LOCAL_TIMER_BASE + cores)
        self.uart = Uart(console)
        self.mem = PhysMem(ram)
        #: I/O port space: port -> (read(port) -> int, write(port, value)) handlers
        self.ports: dict[int, tuple[Callable[[int], int], Callable[[int, int], None]]] = {}
        self.ports[COM1] = (lambda port: 0x60 if port == COM1 + 5 else 0,  # LSR: transmitter empty
                            lambda port, value: self.uart.write(bytes([value & 0xFF])))
        self.ports[COM1 + 5] = self.ports[COM1]
        self.tpm = Tpm(self.events, tpm_nv if tpm_nv is not None else TpmNv(seed))
        self.ports.update(self.tpm.ports())
        self.serial1 = SerialLink()
        self.nvram = Nvram(nvram if nvram is not None else bytearray(NVRAM_SIZE))
        for i in range(8):
            self.ports[COM2 + i] = (self.serial1.read, self.serial1.write)
            self.ports[NVRAM_PORT + i] = (self.nvram.read, self.nvram.write)
        self.pit = PeriodicTimer(self.events, self.ic, LINE_PIT)
        self.local_timers = [
            PeriodicTimer(self.events, self.ic, LINE_LOCAL_TIMER_BASE + n) for n in range(cores)
        ]

    @property
    def now(self) -> int:
        return self.events.now
