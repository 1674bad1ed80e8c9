"""What the ring devices (the NIC, the disk) share: interrupt causes, and 64-bit registers
written as two 32-bit halves.

Both devices latch causes in ``ICR`` (cleared by reading it), enable them in
``IMS`` and disable them through ``IMC``; the line is raised, as an event at
:data:`~l4sim.machine.events.PRIO_IRQ`, whenever an enabled cause is pending.
One implementation keeps the two devices' interrupt behaviour the same.
"""

from __future__ import annotations

from l4sim.machine.devices import InterruptController
from l4sim.machine.events import PRIO_IRQ, EventQueue

LOW32 = 0xFFFFFFFF


def set_low(reg: int, value: int) -> int:
    """``reg`` (64 bits) with its low half replaced by ``value``."""
    return (reg & ~LOW32) | value


def set_high(reg: int, value: int) -> int:
    """``reg`` (64 bits) with its high half replaced by ``value``."""
    return (reg & LOW32) | (value << 32)


class CauseRegister:
    """A device's interrupt causes (``ICR``), their mask (``IMS``/``IMC``) and its line."""

    events: EventQueue
    ic: InterruptController
    line: int
    icr: int
    ims: int
    #: the device has power; one that can lose it (the disk) clears this, and its line stays low
    powered: bool = True

    def _read_icr(self) -> int:
        """Reading ``ICR`` returns the pending causes and clears them."""
        v, self.icr = self.icr, 0
        return v

    def _enable(self, bits: int, now: int) -> None:
        """A write to ``IMS``: enable ``bits`` (a pending one raises the line)."""
        self.ims |= bits
        self._assert(now)

    def _disable(self, bits: int) -> None:
        """A write to ``IMC``: disable ``bits``."""
        self.ims &= ~bits

    def _cause(self, bits: int, now: int) -> None:
        self.icr |= bits
        self._assert(now)

    def _assert(self, now: int) -> None:
        """Raise the line at ``now`` if an enabled cause is pending."""
        if self.icr & self.ims:
            self.events.at(max(now, self.events.now), self._raise, prio=PRIO_IRQ)

    def _raise(self) -> None:
        if self.icr & self.ims and self.powered:
            self.ic.raise_line(self.line)
