"""Reservations and periodic threads: the kernel side of DROPS real time.

A reservation gives a thread ``budget`` ns of CPU time per ``period``,
replenished at each period boundary; a reserved thread runs above every
best-effort priority, ordered by priority ("fp") or by absolute deadline
("edf") per core.  A spent budget leaves the thread DEPLETED until its
replenishment, or raises a timeout fault to its exception handler (seL4
MCS).  ``sys_next_period`` ends a periodic thread's job -- response time
and deadline checked -- and sleeps until the next release (Fiasco's old
``l4_rt_next_period``).  See docs/realtime.md.

These are methods of :class:`~l4sim.kernel.kernel.Kernel`: each function
takes the kernel as ``self`` and the class binds it under its old name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from l4sim.kernel.abi import RESV_PERIODIC, RESV_TIMEOUT_FAULT, TRAP_BUDGET_TIMEOUT, Err
from l4sim.kernel.common import _DEAD, _DEPLETED, _READY, _WAIT_RELEASE
from l4sim.kernel.objects import Thread
from l4sim.kernel.sched import EDF_LEVEL, POLICIES, Reservation
from l4sim.kernel.traps import NextPeriod, Trap
from l4sim.machine.events import PRIO_CORE, PRIO_IRQ

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Core, Kernel


class Restore(Trap):
    """Kernel-internal: hands a thread its last trap's result back after a timeout fault."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def resv_info(self: Kernel, cpu: int) -> tuple[int, int, int, int]:
    """What the kernel knows of ``cpu``'s reservations: (policy code, live reserved threads,
    their utilisation in ppm rounded up, their deadline misses so far)."""
    import math  # local: this report is the only user here
    from fractions import Fraction

    from l4sim.kernel.abi import SCHED_EDF, SCHED_FP

    util = Fraction(0)
    count = misses = 0
    for th in self.threads:
        r = th.resv
        if r is not None and th.cpu == cpu and th.state is not _DEAD:
            count += 1
            util += Fraction(r.budget, r.period)
            misses += r.misses
    policy = SCHED_EDF if self.cores[cpu].policy == "edf" else SCHED_FP
    return policy, count, math.ceil(util * 1_000_000), misses


def set_policy(self: Kernel, cpu: int, policy: str) -> None:
    """Host side: order the reserved threads of core ``cpu`` by priority ("fp") or deadline ("edf").

    Best-effort threads are unaffected; reserved ones already there move to the new order.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; use 'fp' or 'edf'")
    self.cores[cpu].policy = policy
    for th in self.threads:
        if th.resv is not None and th.cpu == cpu and th.state is not _DEAD:
            self._set_sched(th, th.resv.prio, th.quantum, th.cpus, th.cpu)


def set_reservation(self: Kernel, th: Thread, budget: int, period: int = 0, deadline: int = 0, flags: int = 0,
                    start: int | None = None) -> None:
    """Give ``th`` a reservation (host side; the Scheduler invocation decodes, then calls this).

    ``budget`` ns of CPU time per ``period`` ns, replenished in full at each
    period boundary ``start + k * period`` (``start``: the first release,
    default now); ``deadline`` is relative (0: the period).  ``budget`` 0
    removes the reservation: the thread is best effort again at its priority.
    A new reservation replaces the old one (statistics start afresh).
    """
    now = self.now()
    old = th.resv
    if old is not None:
        self._resv_cancel(old)
    waiting = th.state is _DEPLETED or th.state is _WAIT_RELEASE
    if budget == 0:
        if old is None:
            return
        th.resv = None
        self._set_sched(th, old.prio, th.quantum, th.cpus, th.cpu)
    else:
        if not 0 < budget <= period or deadline < 0 or (start is not None and start < now):
            raise ValueError("a reservation needs 0 < budget <= period, deadline >= 0 "
                             "and a first release not in the past")
        origin = now if start is None else start
        r = Reservation(budget, period, deadline or period, flags, origin,
                        old.prio if old is not None else th.prio)
        self.releases += 1
        r.key = (r.abs_dl, self.releases, th.kid)
        r.arrived = 1 if origin <= now else 0
        r.periodic = bool(flags & RESV_PERIODIC)
        th.resv = r
        th.quantum_left = budget
        r.repl_ev = self.events.at(origin if origin > now else origin + period, self._replenish,
                                   th, r, prio=PRIO_IRQ)
        self._set_sched(th, r.prio, th.quantum, th.cpus, th.cpu)
    if self.tracer is not None:
        self._trace(th.cpu, "reservation", th.kid, budget=budget, period=period,
                    deadline=deadline or period, flags=flags)
    if waiting:  # a sleeping periodic thread's next_period returns 0
        if th.state is _WAIT_RELEASE:
            th.resume = 0
        self._make_ready(th)


def resv_cancel(r: Reservation) -> None:
    for ev in (r.repl_ev, r.release_ev):
        if ev is not None:
            ev.cancel()
    r.repl_ev = r.release_ev = None


def replenish(self: Kernel, th: Thread, r: Reservation) -> None:
    """A period boundary: the budget is full again (less any computation already charged past now)."""
    now = self.events.now
    r.repl_ev = self.events.at(now + r.period, self._replenish, th, r, prio=PRIO_IRQ)
    on = self._current_on(th)
    r.arrived += 1
    # a computation is charged up front: the part still ahead of now belongs to the new period
    ahead = on.time - now if on is not None and on.computing and on.time > now else 0
    if r.periodic:  # one more job's budget, capped (see sched.Reservation)
        cap = r.budget * (r.arrived - r.jobs)
        th.quantum_left = min(th.quantum_left + ahead + r.budget, cap) - ahead
    else:  # full again
        th.quantum_left = r.budget - ahead
    self.releases += 1
    if not r.periodic:  # a plain reservation: each period is a job with its own deadline
        r.arrival = now
        r.abs_dl = now + r.deadline
        key = (r.abs_dl, self.releases, th.kid)
        if th.prio == EDF_LEVEL and th.state is _READY and on is None:
            q = self.cores[th.cpu].queues[EDF_LEVEL]
            q.remove(th)
            r.key = key
            q.append(th)
        else:
            r.key = key
            if on is not None and th.prio == EDF_LEVEL:
                self._kick(on, now)  # a later deadline: the core re-decides
    if self.tracer is not None:
        self._trace(th.cpu, "replenish", th.kid, budget=th.quantum_left)
    if th.state is _DEPLETED:
        self._make_ready(th)


def budget_check(self: Kernel, core: Core, th: Thread) -> None:
    """In the step loop: ``th``, current here, has no budget left; it stops if it wants more."""
    if th.state is _READY and th.cpu == core.id and (th.quantum_left < 0 or th.compute_left):
        self._deplete(core, th)


def deplete(self: Kernel, core: Core, th: Thread) -> None:
    """``th``'s budget is spent: it waits for its replenishment, or raises a timeout fault."""
    r = th.resv
    r.depletions += 1
    if r.flags & RESV_TIMEOUT_FAULT and self._exc_dest(th) is not None:
        # the fault IPC's reply must not replace the result of the thread's last trap
        th.redo = Restore(th.resume)
        th.resume = None
        self._exception(core, th, TRAP_BUDGET_TIMEOUT, 0, (r.budget, r.period), "budget spent")
        return
    th.state = _DEPLETED
    if self.tracer is not None:
        self._trace(core.id, "depleted", th.kid, budget=r.budget)


def sys_restore(self: Kernel, core: Core, th: Thread, t: Restore) -> None:
    th.resume = t.value


def sys_next_period(self: Kernel, core: Core, th: Thread, t: NextPeriod) -> None:
    """End the current job (response time, deadline check) and wait for the next release."""
    self._charge(core, th, self.costs.syscall)
    r = th.resv
    jitter = t.jitter
    if r is None or type(jitter) is not int or jitter < 0:
        th.resume = -int(Err.EINVAL)
        return
    now = core.time
    tr = self.tracer
    if r.job:
        resp = now - r.arrival
        r.jobs += 1
        if resp > r.max_response:
            r.max_response = resp
        if now > r.abs_dl:
            r.misses += 1
            if tr is not None:
                self._trace(core.id, "deadline_miss", th.kid, job=r.job, lateness=now - r.abs_dl)
        if tr is not None:
            self._trace(core.id, "job_end", th.kid, job=r.job, response=resp)
        arrival = r.arrival + r.period
    else:
        arrival = r.origin
    # the budget of the jobs arrived and not completed (before the first job: exactly that)
    cap = r.budget * (r.arrived - r.jobs)
    if th.quantum_left > cap or not r.job:
        th.quantum_left = cap
    r.job += 1
    r.periodic = True
    r.arrival = arrival
    r.abs_dl = arrival + r.deadline
    release = arrival + (self.machine.rng.randint(0, jitter) if jitter else 0)
    if release > now:
        th.state = _WAIT_RELEASE
        # after the cores' steps at that instant: a job ending just then is not preempted first
        r.release_ev = self.events.at(release, self._release, th, r, prio=PRIO_CORE + 1)
        if tr is not None:
            self._trace(core.id, "block", th.kid, state="release", on=-1)
        return
    self.releases += 1
    r.key = (r.abs_dl, self.releases, th.kid)  # current, so not queued
    th.resume = r.job
    if tr is not None:
        self._trace(core.id, "release", th.kid, job=r.job, deadline=r.abs_dl)


def release(self: Kernel, th: Thread, r: Reservation) -> None:
    r.release_ev = None
    if th.resv is not r or th.state is not _WAIT_RELEASE:
        return
    self.releases += 1
    r.key = (r.abs_dl, self.releases, th.kid)
    th.resume = r.job
    if self.tracer is not None:
        self._trace(th.cpu, "release", th.kid, job=r.job, deadline=r.abs_dl)
    self._make_ready(th)
