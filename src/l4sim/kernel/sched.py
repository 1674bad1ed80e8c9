"""Reservations (scheduling contexts), per-core policies and periodic jobs: the data.

The logic lives in ``kernel.py`` (``set_reservation``, ``_replenish``,
``_deplete``, ``_sys_next_period``); this module holds the plain state and
the ready-queue layout.  See docs/kernel.md § Scheduler.

Ready-queue levels
------------------
A core has :data:`LEVELS` FIFO queues, and ``thread.prio`` is the level a
thread is queued at:

* ``0 .. 255``: best-effort threads, at their L4 priority (unchanged);
* ``RESV_BASE + p`` (256 .. 511): reserved threads of priority ``p`` on a
  fixed-priority core -- above every best-effort thread;
* :data:`EDF_LEVEL` (512): every reserved thread on an EDF core, in one queue
  kept sorted by :attr:`Reservation.key` (absolute deadline, release order,
  thread id).

So the best-effort scheduler is untouched: the highest non-empty level still
runs, and only equal levels at or above ``RESV_BASE`` need a second look.
A reserved thread's own priority is :attr:`Reservation.prio`.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterator
from typing import Any

RESV_BASE = 256
EDF_LEVEL = 512
LEVELS = EDF_LEVEL + 1
POLICIES = ("fp", "edf")


def _key(th: Any) -> tuple[int, int, int]:
    return th.resv.key  # type: ignore[no-any-return]


class EdfQueue:
    """The EDF level's ready queue: a deque look-alike sorted by ``resv.key``.

    ``append`` and ``appendleft`` both insert in key order (under EDF a
    preempted thread has no "place" of its own to keep); ``popleft`` takes
    the earliest deadline.  A queued thread's key must not change.
    """

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Any] = []

    def append(self, th: Any) -> None:
        insort(self.items, th, key=_key)

    appendleft = append

    def popleft(self) -> Any:
        return self.items.pop(0)

    def remove(self, th: Any) -> None:
        self.items.remove(th)  # ValueError when absent, as deque.remove

    def first_key(self) -> tuple[int, int, int]:
        return self.items[0].resv.key  # type: ignore[no-any-return]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)


class Reservation:
    """A thread's scheduling context: budget per period, relative deadline, job state and statistics.

    Times are ns.  ``origin`` is the first release (period boundary 0);
    replenishments happen at ``origin + k * period``.  The budget left is the
    thread's ``quantum_left`` (every charge of CPU time already lowers it).

    Replenishment: a plain reservation gets its full budget back at each
    boundary (a deferrable server).  A periodic thread (one that uses
    ``next_period``) gets one budget per job: each boundary adds ``budget``,
    up to ``budget`` times the jobs arrived but not completed, and a
    completed job's unused budget is dropped.  So a job late into the next
    period keeps what it still needs, a periodic thread whose jobs stay within
    their wcet is never held back by its budget, no job gets more than its own
    budget plus what earlier pending jobs left, and an overrun is paid back.
    (A thread that suspends itself inside a job for several periods can then
    run its pending jobs back to back, as a periodic task with a backlog does.)
    """

    __slots__ = (
        "abs_dl",
        "arrival",
        "arrived",
        "budget",
        "deadline",
        "depletions",
        "flags",
        "job",
        "jobs",
        "key",
        "max_response",
        "misses",
        "origin",
        "period",
        "periodic",
        "prio",
        "release_ev",
        "repl_ev",
        "restore",
    )

    def __init__(self, budget: int, period: int, deadline: int, flags: int, origin: int, prio: int) -> None:
        self.budget = budget
        self.period = period
        self.deadline = deadline
        self.flags = flags
        self.origin = origin
        #: the thread's own priority (its queue level is RESV_BASE + prio under FP)
        self.prio = prio
        #: period boundaries passed so far (the boundary at ``origin`` included)
        self.arrived = 0
        self.repl_ev: Any = None
        self.release_ev: Any = None
        #: True once the thread called next_period: its deadline is then its job's
        self.periodic = False
        #: number of the current job (0: none released yet)
        self.job = 0
        #: the current job's nominal release (arrival) and absolute deadline
        self.arrival = origin
        self.abs_dl = origin + deadline
        #: EDF order: (absolute deadline, release sequence number, thread id)
        self.key = (self.abs_dl, 0, 0)
        # statistics
        #: jobs completed, of them finished after their deadline, largest response time (ns)
        self.jobs = 0
        self.misses = 0
        self.max_response = 0
        #: times the budget ran out
        self.depletions = 0
        #: the trap result to hand back after a timeout fault (see ``Kernel._deplete``)
        self.restore: Any = None

    def stats(self) -> dict[str, int]:
        """Jobs completed, deadline misses, largest response time (ns), budget depletions."""
        return {"jobs": self.jobs, "deadline_misses": self.misses,
                "max_response": self.max_response, "depletions": self.depletions}
