"""Devices of the simulated board: interrupt controller, timers, UART console.

The kernel sees hardware only through these objects, the way Fiasco sees a
PIC/APIC, a timer and a serial line.  Devices never call into the kernel
directly: they raise a numbered interrupt line, and whoever registered as the
line's handler (the kernel's ICU) is called from the event loop.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from l4sim.machine.events import PRIO_IRQ, Event, EventQueue


class InterruptController:
    """Numbered interrupt lines, each with one handler (the kernel's ICU).

    ``raise_line`` is what a device does when it asserts its line.  The
    controller counts raised interrupts per line, so tests and traces can see
    what the hardware did independently of what the kernel made of it.
    """

    __slots__ = ("counts", "handler", "nlines")

    def __init__(self, nlines: int) -> None:
        self.nlines = nlines
        self.handler: Callable[[int], None] | None = None
        self.counts = [0] * nlines

    def raise_line(self, line: int) -> None:
        if not 0 <= line < self.nlines:
            raise ValueError(f"interrupt line {line} does not exist (0..{self.nlines - 1})")
        self.counts[line] += 1
        if self.handler is not None:
            self.handler(line)


class PeriodicTimer:
    """A programmable timer (PIT/HPET-like) that raises its line periodically.

    ``program(period_ns)`` starts it, ``program(0)`` stops it.  Ticks are
    events on the machine queue, so they are as deterministic as everything
    else.
    """

    __slots__ = ("_event", "events", "ic", "line", "period")

    def __init__(self, events: EventQueue, ic: InterruptController, line: int) -> None:
        self.events = events
        self.ic = ic
        self.line = line
        self.period = 0
        self._event: Event | None = None

    def program(self, period_ns: int) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None
        self.period = period_ns
        if period_ns > 0:
            self._event = self.events.after(period_ns, self._tick, prio=PRIO_IRQ)

    def _tick(self) -> None:
        self._event = self.events.after(self.period, self._tick, prio=PRIO_IRQ)
        self.ic.raise_line(self.line)


class Uart:
    """The console: bytes written reach the host stdout and a buffer.

    Tests read ``output``; the command line sets ``echo`` to a text stream
    (normally ``sys.stdout``) or None to stay silent.
    """

    __slots__ = ("echo", "output")

    def __init__(self, echo: TextIO | None = None) -> None:
        self.output = bytearray()
        self.echo = echo

    def write(self, data: bytes) -> None:
        self.output += data
        if self.echo is not None:
            self.echo.write(data.decode("utf-8", "replace"))
            self.echo.flush()

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


def host_stdout() -> TextIO:
    """The host's standard output (kept here so the kernel never imports sys)."""
    return sys.stdout


class SerialLink:
    """A second serial line (a PC's COM2), wired to a peer on the host side.

    The peer is whoever holds the other end of the cable -- the remote
    verifier of ``l4sim attest``: it puts bytes into ``rx`` before or while
    the system runs, and reads what the system sent from ``tx``.  The
    registers are a 16550's two that matter: the data register (base + 0;
    reading takes the next received byte, 0 when none is there) and the
    line status (base + 5; bit 0 data ready, bits 5-6 transmitter empty).
    """

    __slots__ = ("rx", "rx_pos", "tx")

    def __init__(self) -> None:
        self.rx = bytearray()
        self.rx_pos = 0
        self.tx = bytearray()

    def read(self, port: int) -> int:
        if port & 7 == 5:
            return 0x60 | (1 if self.rx_pos < len(self.rx) else 0)
        if port & 7 == 0 and self.rx_pos < len(self.rx):
            self.rx_pos += 1
            return self.rx[self.rx_pos - 1]
        return 0

    def write(self, port: int, value: int) -> None:
        if port & 7 == 0:
            self.tx.append(value & 0xFF)


class Nvram:
    """Battery-backed RAM behind an address and a data port, like a PC's CMOS RAM, but larger.

    Its contents (``data``) survive a reboot: pass the same bytearray to the
    next :class:`~l4sim.machine.board.Machine`.  Registers (offsets from the
    base port): 0..2 the byte address (little-endian, 24 bits), 3 the data
    port (reads and writes the addressed byte, then moves the address on by
    one), 4 the size in KiB.  An address beyond the end reads 0xFF and drops
    writes.
    """

    __slots__ = ("addr", "data")

    def __init__(self, data: bytearray) -> None:
        self.data = data
        self.addr = 0

    def read(self, port: int) -> int:
        reg = port & 7
        if reg < 3:
            return (self.addr >> (8 * reg)) & 0xFF
        if reg == 3:
            value = self.data[self.addr] if self.addr < len(self.data) else 0xFF
            self.addr += 1
            return value
        if reg == 4:
            return min(len(self.data) >> 10, 0xFF)
        return 0xFF

    def write(self, port: int, value: int) -> None:
        reg = port & 7
        if reg < 3:
            shift = 8 * reg
            self.addr = (self.addr & ~(0xFF << shift)) | ((value & 0xFF) << shift)
        elif reg == 3:
            if self.addr < len(self.data):
                self.data[self.addr] = value & 0xFF
            self.addr += 1
