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
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from l4sim.machine.devices import InterruptController, PeriodicTimer, Uart
from l4sim.machine.events import EventQueue
from l4sim.machine.memory import DEFAULT_RAM, PhysMem

if TYPE_CHECKING:
    from l4sim.machine.display import Display

#: I/O port of the UART's data register (a PC's COM1); COM1+5 is its line status
COM1 = 0x3F8
LINE_PIT = 0
LINE_UART = 1
LINE_LOCAL_TIMER_BASE = 16
MAX_CORES = 64


class Machine:
    """Hardware of one simulation run.

    ``seed`` feeds the one random generator of the run (``machine.rng``);
    nothing else in the model may draw random numbers.
    """

    def __init__(self, cores: int = 1, seed: int = 0, console: TextIO | None = None,
                 ram: int = DEFAULT_RAM) -> None:
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
        self.pit = PeriodicTimer(self.events, self.ic, LINE_PIT)
        self.local_timers = [
            PeriodicTimer(self.events, self.ic, LINE_LOCAL_TIMER_BASE + n) for n in range(cores)
        ]
        #: framebuffer, keyboard and pointer, when the machine has them (``display.attach_display``)
        self.display: Display | None = None

    @property
    def now(self) -> int:
        return self.events.now
