"""The admission server: a user-level program that grants reservations only to sets that stay schedulable.

DROPS gives a real-time component its guarantee in two steps: a resource
manager checks that the new reservation still leaves every admitted one
schedulable, and only then asks the kernel for it.  Here that manager is an
ordinary native program.  It alone holds the scheduler capability; clients
hold an IPC gate to it and pass the thread to be reserved as a capability.

Protocol (tag label :data:`ADM_PROTO`; word 0 is the operation)
-------------------------------------------------------------

=============  ==========================================================  =============================
operation      words after the op (items)                                 reply (proto 0) words (items)
=============  ==========================================================  =============================
``RESERVE`` 1  budget, period, deadline (0: the period), priority          ``(id,)``: the reservation id
               (1..254), cpu, flags (``RESV_*``), first release (ns since
               boot; 0: now), release jitter, blocking (ns), then
               optionally a name as :func:`~l4sim.kernel.abi.pack_bytes`
               words; one map item: the thread's capability
``RELEASE`` 2  id                                                          ``()``
``INFO`` 3     cpu                                                         ``(reservations on cpu, utilisation in ppm)``
``OPEN`` 4     --                                                          ``(label,)``; one item: a session gate
=============  ==========================================================  =============================

A refusal has proto ``-errno`` and the reason as ``pack_bytes`` words (at
most :data:`REASON_MAX` bytes, cut with "..."):

* ``-EBUSY``: not admitted -- the reason is :func:`l4sim.realtime.analysis.admit`'s
  (which task misses its deadline and by how much, which interval is
  over-demanded, ...);
* ``-EINVAL``: a malformed request (too few words, budget 0 or over the
  period, a period under ``RESV_MIN_PERIOD``, a priority outside 1..254, a
  cpu the machine does not have, no thread capability, the scheduler
  refused the thread);
* ``-EPERM``: ``RELEASE`` of an id another client (another gate label) holds;
* ``-ENOENT``: ``RELEASE`` of an unknown id;
* ``-ENOMEM``: ``OPEN`` when the server's factory has no room for another
  gate (a session that ends makes room again);
* ``-ENOSYS``: another operation or tag label, or ``OPEN`` on a server
  without a factory;
* ``-EIO`` (no reason words): the request raised something none of the
  checks above foresaw; the server logs one line naming the request and the
  exception, and serves on (``l4sim.user.server.request_failed``).

What the server does for ``RESERVE``: it builds the task set of the
reservations already admitted on that cpu plus the new one (wcet = budget,
the reservation's period, relative deadline, priority, release jitter and
blocking), runs ``admit(set, policy)`` with the cpu's policy (``"fp"``:
exact response-time analysis with jitter and blocking; ``"edf"``:
processor-demand analysis), and only when that admits it invokes
``Scheduler.run_thread`` (priority, cpu) and ``Scheduler.set_reservation``.
It keeps the thread capability (to remove the reservation on ``RELEASE``) in
a slot of its own.  Jitter and blocking are the client's declaration: the
kernel enforces the budget, not them (a thread that calls ``next_period``
with a larger jitter, or blocks longer, than it declared voids its own
guarantee and may make lower-priority reservations late).

**Sessions and dead clients.**  A reservation belongs to the gate label it
was asked through.  ``OPEN`` gives the client a gate of its own (a fresh
label), *granted*, so the client holds its only capability -- the pattern of
the runtime's servers (docs/runtime.md, "The deletion notification"): when
the client's task dies, or it deletes the gate, the kernel destroys the gate
and, because the server registered a delete Irq on its thread, tells it the
label.  The server then removes every reservation of that session from its
set (and from the kernel, if the thread still lives), so a dead client's
capacity is free again.  Reservations asked through a gate someone else
keeps (a channel from the root) have no such notification; use a session.
Sessions need a ``"factory"`` capability (for the gates and the Irq).

The policy per cpu is the kernel's (``Scheduler.resv_info`` reads it back),
unless the server was started with one.

The analysis uses the budgets; the kernel enforces them, so a client whose
jobs overrun is held back and cannot endanger the others.  Context-switch
costs are not charged to budgets (kernel.md § 1.5), so a set loaded to the
last nanosecond may still miss by a few hundred ns per preemption: leave
some headroom, as a real admission would with its overhead terms.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from l4sim.kernel.abi import (
    MSG_WORDS,
    RESV_FLAGS,
    RESV_MIN_PERIOD,
    RESV_PERIODIC,
    Err,
    Fpage,
    MapItem,
    Proto,
    Rights,
    pack_bytes,
    unpack_bytes,
)
from l4sim.realtime.analysis import admit
from l4sim.realtime.taskset import TaskSetError, build
from l4sim.user.env import Env, Gate, L4Error, ThreadCap
from l4sim.user.server import request_failed

#: the tag label of the admission protocol
ADM_PROTO = 0x41D
OP_RESERVE = 1
OP_RELEASE = 2
OP_INFO = 3
OP_OPEN = 4
#: words of a RESERVE request before the optional name (the op included)
RESERVE_WORDS = 10
#: the longest reason sent back (bytes); pack_bytes needs one word for the length
REASON_MAX = 8 * (MSG_WORDS - 1)
#: labels of session gates (steps of 4: the low bits carry rights); keep other client gates below
SESSION_LABEL0 = 0x10000
#: the label the server's delete Irq is attached with (its messages have proto Proto.IRQ)
DELETE_IRQ_LABEL = 0x4


class AdmissionError(Exception):
    """The admission server refused: ``err`` is the errno, ``reason`` its explanation."""

    def __init__(self, err: int, reason: str) -> None:
        self.err = err
        self.reason = reason
        name = Err(err).name if err in Err._value2member_map_ else str(err)
        super().__init__(f"admission refused ({name}): {reason}")


@dataclass
class Admitted:
    rid: int
    name: str
    cpu: int
    budget: int
    period: int
    deadline: int
    prio: int
    slot: int  # the server's slot holding the thread capability
    owner: int  # the gate label (without the rights bits) of the client that asked
    jitter: int = 0  # the release jitter the client declared (ns)
    blocking: int = 0  # the longest blocking by lower-priority work the client declared (ns)


def _reason_words(reason: str) -> tuple[int, ...]:
    data = reason.encode()
    if len(data) > REASON_MAX:
        data = data[: REASON_MAX - 3] + b"..."
    return pack_bytes(data)


class AdmissionServer:
    """The server's state; :meth:`serve` is its loop (see the module docstring).

    ``policy`` is "fp" or "edf" for every cpu, a dict per cpu, or None to use
    the kernel's (read with ``Scheduler.resv_info`` at each request).
    """

    def __init__(self, env: Env, policy: str | dict[int, str] | None = None) -> None:
        self.env = env
        self.policy = policy
        self.admitted: dict[int, Admitted] = {}
        self.next_id = 1
        self.refusals = 0
        #: open sessions: gate label -> reservation ids asked through it
        self.sessions: dict[int, set[int]] = {}
        self.next_label = SESSION_LABEL0
        #: reservations removed because their session's gate was deleted (the client died)
        self.reclaimed = 0
        #: cpus of the machine (a RESERVE for another is refused); read from the scheduler
        self.ncpus = 1

    async def policy_of(self, cpu: int) -> str:
        if isinstance(self.policy, str):
            return self.policy
        if isinstance(self.policy, dict) and cpu in self.policy:
            return self.policy[cpu]
        return (await self.env.scheduler.resv_info(cpu)).policy

    async def check(self, cand: Admitted) -> tuple[bool, str]:
        """Whether the set on ``cand.cpu`` plus ``cand`` is schedulable, and why (not)."""
        rows = [{"name": a.name, "wcet": a.budget, "period": a.period, "deadline": a.deadline,
                 "priority": a.prio, "jitter": a.jitter, "blocking": a.blocking}
                for a in self.admitted.values() if a.cpu == cand.cpu]
        rows.append({"name": cand.name, "wcet": cand.budget, "period": cand.period,
                     "deadline": cand.deadline, "priority": cand.prio, "jitter": cand.jitter,
                     "blocking": cand.blocking})
        try:
            ts = build(rows, "ns")
        except TaskSetError as e:
            return False, str(e)
        return admit(ts, await self.policy_of(cand.cpu))  # type: ignore[arg-type]

    def utilisation(self, cpu: int) -> Fraction:
        return sum((Fraction(a.budget, a.period) for a in self.admitted.values() if a.cpu == cpu), Fraction(0))

    async def _drop_slot(self, slot: int) -> None:
        """Forget the capability in ``slot`` (our own copy only) and reuse the slot."""
        await self.env.task.unmap(Fpage.obj(slot), include_self=True)
        self.env.free_slot(slot)

    async def reserve(self, words: tuple[int, ...], label: int, got_cap: bool, slot: int) -> tuple[int, tuple[int, ...]]:
        if len(words) < RESERVE_WORDS:
            return -Err.EINVAL, _reason_words("RESERVE needs budget, period, deadline, priority, cpu, "
                                              "flags, first release, jitter and blocking")
        budget, period, deadline, prio, cpu, flags, start, jitter, blocking = words[1:RESERVE_WORDS]
        extra = words[RESERVE_WORDS:]
        name = unpack_bytes(extra).decode("utf-8", "replace") if extra else ""
        rid = self.next_id
        name = name or f"resv{rid}"
        if any(a.name == name for a in self.admitted.values()):
            name = f"{name}#{rid}"
        problem = None
        if not got_cap:
            problem = "no thread capability: send the thread as a map item"
        elif cpu >= self.ncpus:
            problem = f"cpu {cpu} does not exist: the machine has cpus 0 .. {self.ncpus - 1}"
        elif not 0 < budget <= period:
            problem = f"budget {budget} ns must be > 0 and <= the period {period} ns"
        elif period < RESV_MIN_PERIOD:
            problem = f"period {period} ns is under the minimum {RESV_MIN_PERIOD} ns"
        elif not 1 <= prio <= 254:
            problem = f"priority {prio} must be in 1..254"
        elif flags & ~RESV_FLAGS:
            problem = f"unknown flags {flags:#x}"
        if problem is not None:
            return -Err.EINVAL, _reason_words(problem)
        cand = Admitted(rid, name, cpu, budget, period, deadline or period, prio, slot, label & ~3,
                        jitter, blocking)
        ok, reason = await self.check(cand)
        if not ok:
            self.refusals += 1
            return -Err.EBUSY, _reason_words(f"{name}: {reason}")
        th = ThreadCap(self.env, slot)
        try:
            await self.env.scheduler.run_thread(th, prio, 10_000_000, 1 << cpu)
            await self.env.scheduler.set_reservation(th, budget, period, deadline, flags, start)
        except L4Error as e:
            return -Err.EINVAL, _reason_words(f"{name}: the scheduler refused: {e}")
        self.admitted[rid] = cand
        if cand.owner in self.sessions:
            self.sessions[cand.owner].add(rid)
        self.next_id += 1
        return 0, (rid,)

    async def _remove(self, a: Admitted) -> None:
        """Take ``a`` out of the set and out of the kernel (its thread is best effort again)."""
        del self.admitted[a.rid]
        s = self.sessions.get(a.owner)
        if s is not None:
            s.discard(a.rid)
        with contextlib.suppress(L4Error):  # the thread is gone: nothing left to remove
            await self.env.scheduler.set_reservation(ThreadCap(self.env, a.slot), 0)
        await self._drop_slot(a.slot)

    async def release(self, words: tuple[int, ...], label: int) -> tuple[int, tuple[int, ...]]:
        if len(words) < 2:
            return -Err.EINVAL, _reason_words("RELEASE needs the reservation id")
        a = self.admitted.get(words[1])
        if a is None:
            return -Err.ENOENT, _reason_words(f"no reservation {words[1]}")
        if a.owner != label & ~3:
            return -Err.EPERM, _reason_words(f"reservation {words[1]} belongs to another client")
        await self._remove(a)
        return 0, ()

    async def closed(self, labels: tuple[int, ...]) -> None:
        """Session gates were deleted (their clients died or let go): remove their reservations."""
        for label in labels:
            rids = self.sessions.pop(label & ~3, set())
            for rid in sorted(rids):
                await self._remove(self.admitted[rid])
                self.reclaimed += 1

    async def open(self) -> tuple[int, tuple[int, ...], tuple[MapItem, ...], int]:
        """OPEN: (proto, words, items, slot of the granted gate or 0)."""
        label = self.next_label
        try:
            gate = await self.env.factory.create_gate(self.env.thread, label)
        except L4Error as e:  # the factory is out of quota: refuse, serve the sessions there are
            return -(e.err or Err.ENOMEM), _reason_words(
                "no room for another session: the server's factory is out of quota"), (), 0
        self.next_label += 4
        self.sessions[label] = set()
        return 0, (label,), (MapItem(gate.fpage(Rights.R | Rights.W), grant=True),), gate.slot

    async def serve(self) -> int:
        env = self.env
        sessions = env.has("factory")
        self.ncpus = (await env.scheduler.info())[0]
        if sessions:
            irq = await env.factory.create_irq()
            await irq.attach(env.thread, DELETE_IRQ_LABEL)
            await env.thread.register_delete_irq(irq)
        slot = env.alloc_slot()
        msg = await env.wait(rcv=(Fpage.obj(slot),))
        while True:
            proto: int
            words: tuple[int, ...]
            items: tuple[MapItem, ...] = ()
            granted = 0
            if msg.error:
                msg = await env.wait(rcv=(Fpage.obj(slot),))
                continue
            if msg.proto == Proto.IRQ and msg.label == DELETE_IRQ_LABEL and sessions:
                await self.closed(msg.words)
                msg = await env.wait(rcv=(Fpage.obj(slot),))
                continue
            got_cap = bool(msg.items)
            op = msg.words[0] if msg.words else -1
            try:
                if msg.proto != ADM_PROTO:
                    proto, words = -Err.ENOSYS, _reason_words(f"unknown protocol {msg.proto}")
                elif op == OP_RESERVE:
                    proto, words = await self.reserve(msg.words, msg.label, got_cap, slot)
                    if proto == 0:
                        got_cap = False  # the slot now belongs to the reservation
                        slot = env.alloc_slot()
                elif op == OP_RELEASE:
                    proto, words = await self.release(msg.words, msg.label)
                elif op == OP_INFO:
                    cpu = msg.words[1] if len(msg.words) > 1 else 0
                    n = sum(1 for a in self.admitted.values() if a.cpu == cpu)
                    proto, words = 0, (n, int(self.utilisation(cpu) * 1_000_000))
                elif op == OP_OPEN and sessions:
                    proto, words, items, granted = await self.open()
                elif op == OP_OPEN:
                    proto, words = -Err.ENOSYS, _reason_words("no sessions: the server has no factory")
                else:
                    proto, words = -Err.ENOSYS, _reason_words(f"unknown operation {op}")
            except Exception as exc:  # a request nothing above foresaw: answer it, keep the others
                proto, words, items = await request_failed(env, "admission", msg, exc), (), ()
            if got_cap:  # a capability we keep no use for: empty the receive slot again
                await env.task.unmap(Fpage.obj(slot), include_self=True)
            msg = await env.reply_and_wait(proto, *words, items=items, rcv=(Fpage.obj(slot),))
            if granted:
                # normally the grant moved the gate to the client; if it could not take it, deleting our
                # capability destroys the gate, and the delete Irq closes the session like any other
                if (await env.task.cap_info(granted))[0]:
                    await env.task.unmap(Fpage.obj(granted), include_self=True)
                env.free_slot(granted)


async def admission_server(env: Env, policy: str | dict[int, str] | None = None) -> int:
    """The admission server's program (``start_task(..., {"scheduler": ..., "factory": ...}, args=(policy,))``;
    without a factory it offers no sessions; without a policy it uses the kernel's per cpu)."""
    return await AdmissionServer(env, policy).serve()


# -- the client side -------------------------------------------------------------------------


async def open_session(env: Env, gate: Gate) -> Gate:
    """A session with the admission server behind ``gate``: a gate only this client holds, so that the
    server frees the session's reservations when the client dies (or deletes the gate)."""
    slot = env.alloc_slot()
    msg = await gate.call(ADM_PROTO, OP_OPEN, rcv=(Fpage.obj(slot),))
    try:
        _raise(msg)
    except AdmissionError:
        env.free_slot(slot)
        raise
    return Gate(env, slot)


async def reserve(gate: Gate, thread: ThreadCap, budget: int, period: int, deadline: int = 0, prio: int = 1,
                  cpu: int = 0, flags: int = RESV_PERIODIC, start: int = 0, name: str = "", *,
                  jitter: int = 0, blocking: int = 0) -> int:
    """Ask the admission server behind ``gate`` for a reservation of ``thread``; returns its id.

    ``jitter`` is the largest release jitter the thread will use, ``blocking`` the longest time
    lower-priority work can block it (both ns, both in the analysis).  Raises
    :class:`AdmissionError` with the server's reason when it refuses.
    """
    extra = pack_bytes(name.encode()[:256]) if name else ()
    msg = await gate.call(ADM_PROTO, OP_RESERVE, budget, period, deadline, prio, cpu, flags, start, jitter,
                          blocking, *extra, items=(MapItem(thread.fpage(Rights.RWSD)),))
    _raise(msg)
    return int(msg.words[0])


async def release(gate: Gate, rid: int) -> None:
    """Give reservation ``rid`` back: the thread is best effort again."""
    _raise(await gate.call(ADM_PROTO, OP_RELEASE, rid))


async def info(gate: Gate, cpu: int = 0) -> tuple[int, float]:
    """(reservations admitted on ``cpu``, their utilisation)."""
    msg = await gate.call(ADM_PROTO, OP_INFO, cpu)
    _raise(msg)
    return msg.words[0], msg.words[1] / 1_000_000


def _raise(msg: Any) -> None:
    if msg.error:
        raise AdmissionError(0, f"IPC error {msg.error}")
    if msg.proto < 0:
        raise AdmissionError(-msg.proto, unpack_bytes(msg.words).decode("utf-8", "replace"))
