"""The kernel's tracing hook and the in-memory collector behind it.

There is exactly one tracing hook.  The kernel holds an attribute
``tracer: Tracer | None`` (``None`` by default) and every trace point is
written as::

    tr = self.tracer
    if tr is not None:
        tr.emit((now, cpu, "ipc", sender, {"to": receiver, ...}))

With tracing off a trace point therefore costs one attribute test: the
record tuple and its argument dict are only built when a tracer is attached.
With tracing on, :meth:`Tracer.emit` is a single ``list.append``; all
interpretation (slices, flows, file formats) happens afterwards, in
:mod:`l4sim.tools.trace_export`.  Nothing here reads a host clock or draws
random numbers, so a deterministic simulation yields an identical record
list, and the exporters turn identical record lists into identical bytes.

Record shape
------------
A record is a plain tuple ``(t, cpu, kind, tid, args)``:

========  ===========================  ======================================
field     type                         meaning
========  ===========================  ======================================
``t``     ``int``                      simulated time in nanoseconds
``cpu``   ``int``                      core number, or ``-1`` when the event
                                       is not on a core (e.g. a device
                                       raising an interrupt)
``kind``  ``str``                      one of the kinds below; consumers
                                       must accept unknown kinds
``tid``   ``int``                      id (kernel object id) of the thread
                                       the event concerns, or ``-1``
``args``  ``dict[str, int|str|None]``  kind-specific fields (below)
========  ===========================  ======================================

The emitter hands over ownership of ``args``: it must pass a fresh dict and
not mutate it afterwards (the collector does not copy it).

Kinds
-----
=============  ======================================  ================================
kind           meaning                                 args
=============  ======================================  ================================
``thread``     a thread was created                    ``name`` str, ``task`` str,
                                                       ``space`` the task's id or -1
``bind``       thread ``tid`` was bound to a task      ``task`` str, ``space`` its id
``new``        a kernel object was created             ``obj`` its id, ``type`` str,
                                                       ``name`` str (tasks, threads)
``destroy``    a kernel object was destroyed           ``obj`` its id, ``type`` str
``switch``     core ``cpu`` now runs ``tid``           ``from`` previous tid or -1
               (``tid == -1``: the core goes idle)
``ipc``        thread ``tid`` sent a message           ``to`` receiver tid, ``proto``,
                                                       ``label``, ``words`` count,
                                                       ``items`` count, ``flow`` unique
                                                       id, ``op`` str ("call", "send",
                                                       "reply", ...)
``recv``       thread ``tid`` received a message       ``from`` sender tid, ``flow``
                                                       (the matching ``ipc``'s id)
``ipc_err``    an IPC of ``tid`` failed                ``code`` int, ``phase`` "send" |
                                                       "recv"
``block``      thread ``tid`` blocked                  ``state`` "send" | "recv",
                                                       ``on`` tid, object id or -1
``wake``       thread ``tid`` became ready             (none)
``irq``        an interrupt was raised                 ``irq`` object id, ``line`` int
                                                       or -1, ``delivered`` 0 | 1
``exception``  thread ``tid`` raised an exception      ``trapno``, ``code``, ``handler``
                                                       tid or -1, ``why`` str
``pagefault``  thread ``tid`` faulted on memory        ``addr``, ``write`` 0 | 1,
                                                       ``present`` 0 | 1, ``pager`` tid
                                                       or -1
``exit``       thread ``tid`` ended or was stopped     ``code`` int or None, ``reason``
``map``        a capability, page or port was mapped   ``task`` str, ``space`` the
                                                       task's id, ``slot`` int (slot,
                                                       page number or port), ``obj``
                                                       str, ``rights`` int
``unmap``      ... unmapped                            as ``map``
``rights``     a mapping got other rights in place     as ``map`` (``rights``: the new)
``sched``      scheduling parameters were set          ``prio``, ``cpus`` mask,
                                                       ``to_cpu`` the chosen core
``log``        a line of log output                    ``text`` str
``kinv``       a kernel-object invocation              ``obj`` str, ``op`` int, ``err``
``reservation`` a reservation was set                  ``budget``, ``period``,
                                                       ``deadline``, ``flags``
``release``    a periodic job was released             ``job``, ``deadline`` (absolute)
``job_end``    a periodic job ended                    ``job``, ``response`` ns
``deadline_miss`` a job ended after its deadline       ``job``, ``lateness`` ns
``depleted``   a reservation's budget ran out          ``budget``
``replenish``  a budget came back                      ``budget``
``mmio``       thread ``tid`` loaded or stored a       ``dev`` the device's name, ``off``
               device register (memory-mapped I/O)     offset in its region, ``size``,
                                                       ``value`` (None above 8 bytes),
                                                       ``write`` 0 | 1
=============  ======================================  ================================

:data:`KINDS` holds the same table as data (kind -> argument names).
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["KINDS", "ArgValue", "Args", "Record", "Tracer"]

#: the value types a record argument may have
ArgValue = int | str | None
#: the kind-specific argument dict of a record
Args = dict[str, ArgValue]
#: one trace record: ``(t_ns, cpu, kind, tid, args)``
Record = tuple[int, int, str, int, Args]

#: every kind the kernel emits, with the names of its arguments
KINDS: dict[str, tuple[str, ...]] = {
    "thread": ("name", "task", "space"),
    "bind": ("task", "space"),
    "new": ("obj", "type", "name"),
    "destroy": ("obj", "type"),
    "switch": ("from",),
    "ipc": ("to", "proto", "label", "words", "items", "flow", "op"),
    "recv": ("from", "flow"),
    "ipc_err": ("code", "phase"),
    "block": ("state", "on"),
    "wake": (),
    "irq": ("irq", "line", "delivered"),
    "exception": ("trapno", "code", "handler", "why"),
    "pagefault": ("addr", "write", "present", "pager"),
    "exit": ("code", "reason"),
    "map": ("task", "space", "slot", "obj", "rights"),
    "unmap": ("task", "space", "slot", "obj", "rights"),
    "rights": ("task", "space", "slot", "obj", "rights"),
    "sched": ("prio", "cpus", "to_cpu"),
    "log": ("text",),
    "kinv": ("obj", "op", "err"),
    "reservation": ("budget", "period", "deadline", "flags"),
    "release": ("job", "deadline"),
    "job_end": ("job", "response"),
    "deadline_miss": ("job", "lateness"),
    "depleted": ("budget",),
    "replenish": ("budget",),
    "commctl": ("op", "model"),
    "kmem_fault": ("giver", "model"),
    "kmem_lend": ("lender", "pfn"),
    "kmem_revoke": ("frames",),
    "secret": ("name", "bytes", "id"),
    "mmio": ("dev", "off", "size", "value", "write"),
}


class Tracer:
    """Collects records in memory (the kernel calls ``tracer.emit(rec)``)."""

    __slots__ = ("records",)

    def __init__(self) -> None:
        #: every record emitted so far, in emission order
        self.records: list[Record] = []

    def emit(self, rec: Record) -> None:
        """Append one record; the record is stored as given, not copied."""
        self.records.append(rec)

    def by_kind(self, kind: str) -> list[Record]:
        """Return the records of one kind, in emission order."""
        return [rec for rec in self.records if rec[2] == kind]

    def clear(self) -> None:
        """Forget every record collected so far."""
        self.records.clear()

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"Tracer({len(self.records)} records)"
