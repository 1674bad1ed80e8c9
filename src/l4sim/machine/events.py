"""Simulated time and the one event queue of the machine.

Time is an integer number of nanoseconds since power-on; nothing in the model
reads the host clock.  Every future happening -- a timer interrupt, an IPC
timeout, a core finishing a computation -- is an entry in one heap keyed
``(time, priority, sequence)``, as in SimPy: ties never compare callbacks and
two runs of the same scenario pop events in exactly the same order.

Cancellation is lazy: an :class:`Event` carries a ``cancelled`` flag and the
loop skips it when it surfaces (cheaper than deleting from a heap).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Event priorities at equal time: lower runs first.  Interrupts and timeouts
#: are delivered before a core continues its work at the same instant, so a
#: wake-up at time t can preempt the computation that would resume at t.
PRIO_IRQ = 0
PRIO_TIMEOUT = 1
PRIO_CORE = 2


@dataclass(slots=True, eq=False)
class Event:
    """A callback due at ``time``; ``cancelled`` events are skipped."""

    time: int
    fn: Callable[..., Any]
    args: tuple[Any, ...] = field(default=())
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class EventQueue:
    """The heap of pending events and the current simulated time."""

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Event]] = []
        self._seq = 0
        #: current simulated time in nanoseconds
        self.now = 0

    def at(self, time: int, fn: Callable[..., Any], *args: Any, prio: int = PRIO_TIMEOUT) -> Event:
        """Schedule ``fn(*args)`` at absolute ``time`` (never in the past)."""
        assert time >= self.now, "events cannot be scheduled in the past"
        ev = Event(time, fn, args)
        self._seq += 1
        heapq.heappush(self._heap, (time, prio, self._seq, ev))
        return ev

    def after(self, delay: int, fn: Callable[..., Any], *args: Any, prio: int = PRIO_TIMEOUT) -> Event:
        """Schedule ``fn(*args)`` ``delay`` nanoseconds from now."""
        return self.at(self.now + delay, fn, *args, prio=prio)

    def next_time(self) -> int | None:
        """Time of the earliest live event, or None when nothing is pending."""
        heap = self._heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def peek_time(self) -> int:
        """Earliest pending time (possibly of a cancelled event), or a huge value.

        A cheap bound for a core running ahead: it may run until this time
        without missing anything.  Cancelled entries only make the bound
        conservative, never wrong.
        """
        heap = self._heap
        return heap[0][0] if heap else 1 << 62

    def pop(self) -> Event | None:
        """Remove the earliest live event, advance time to it and return it."""
        heap = self._heap
        while heap:
            time, _prio, _seq, ev = heapq.heappop(heap)
            if ev.cancelled:
                continue
            self.now = time
            return ev
        return None

    def __len__(self) -> int:
        return sum(1 for e in self._heap if not e[3].cancelled)
