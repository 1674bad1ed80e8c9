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
