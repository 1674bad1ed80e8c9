"""Traps: the only things a native program may hand to the kernel.

A native program is a coroutine; ``await trap`` suspends it and gives the
trap object to the kernel, which answers with the trap's result when the
thread next runs.  As in trio and curio, there is one entry point and the
kernel rejects anything that is not one of these types.

- :class:`Ipc` is the system call of L4: invoke a capability with a message
  (an IPC to a gate or thread, or an operation on a kernel object), then
  optionally receive.  It returns a :class:`Msg`.
- :class:`Compute` spends CPU time (preemptible).
- :class:`Clock` reads the kernel clock (Fiasco's KIP clock).
- :class:`NextPeriod` ends a periodic thread's job (docs/kernel.md § Scheduler).
- :class:`SaveReply` moves the implicit reply capability into a slot.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, NamedTuple

from l4sim.kernel.abi import TAG_ERROR, Fpage, MapItem, StrBuf, StrItem, msgtag


class Trap:
    """Base of all traps.  ``await trap`` yields it to the kernel."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)


@dataclass(slots=True)
class Ipc(Trap):
    """``l4_ipc``: invoke ``cap`` with ``flags`` (SEND/RECV/OPEN_WAIT/REPLY).

    ``timeout``/``rcv_timeout`` are in ns: None waits forever, 0 never waits.
    ``rcv`` are the receive buffers (object flexpages) for items that arrive.
    """

    cap: int
    flags: int
    proto: int = 0
    words: tuple[int, ...] = ()
    items: tuple[MapItem | StrItem, ...] = ()
    timeout: int | None = None
    rcv_timeout: int | None = None
    rcv: tuple[Fpage | StrBuf, ...] = ()
    #: the identity a forwarding intermediary presents (a thread id; 0: its own); only the
    #: thread-id communication models accept another (kernel/comm.py)
    sender: int = 0


@dataclass(slots=True)
class Compute(Trap):
    """Spend ``ns`` nanoseconds of CPU time; preemptible, resumed where left."""

    ns: int


@dataclass(slots=True)
class Clock(Trap):
    """Read the simulated clock (ns since boot)."""


@dataclass(slots=True)
class NextPeriod(Trap):
    """End the current job of a periodic (reserved) thread and sleep until its next release.

    Fiasco's old periodic API (``l4_rt_next_period``), which Fiasco compiles
    out today.  The release is delayed by a random 0..``jitter`` ns drawn from
    the machine's generator.  Returns the new job's number (1, 2, ...), 0 when
    the reservation was removed while it slept, or ``-EINVAL``.
    """

    jitter: int = 0


@dataclass(slots=True)
class SaveReply(Trap):
    """Move the implicit reply capability into ``slot`` (for a deferred reply)."""

    slot: int


@dataclass(slots=True)
class Fault(Trap):
    """Raise an explicit exception (``trapno``, ``code``, extra ``words``).

    The exception handler's reply is returned as the trap's result: a handler
    can resume the thread with changed state.
    """

    trapno: int
    code: int = 0
    words: tuple[int, ...] = ()


class Msg(NamedTuple):
    """What an IPC returns: an error code, the received tag and payload.

    ``proto`` is the tag label chosen by the sender (a protocol or, for
    kernel-object replies, 0 or ``-errno``); ``label`` is what identifies the
    sender to the receiver: the IPC gate's label with the two low bits set to
    the W and S rights of the sender's capability, or the Irq's label (under a
    thread-id communication model, the sender's thread id).
    ``items`` lists the receive-buffer flexpages that were filled.
    (A named tuple: the IPC path creates one per message, and tuples are
    the cheapest immutable record Python has.)
    """

    error: int = 0
    proto: int = 0
    words: tuple[int, ...] = ()
    label: int = 0
    items: tuple[Fpage | StrBuf, ...] = ()
    #: the original destination's thread id when the kernel redirected the message to an
    #: intermediary (a thread-id communication model), else 0
    dest: int = 0

    @property
    def ok(self) -> bool:
        return self.error == 0

    @property
    def tag(self) -> int:
        """The message tag as Fiasco encodes it (error flag set on failure)."""
        return msgtag(self.proto, len(self.words), len(self.items), TAG_ERROR if self.error else 0)


#: The one object of the fast, common answers (frozen, so safe to share).
MSG_OK = Msg()


@dataclass(slots=True)
class MarkSecret(Trap):
    """Mark ``n`` bytes at ``addr`` of the program's own memory as a secret called ``name``.

    From then on the kernel follows copies of those bytes through the copies the
    system makes (kernel/lifetime.py).  Returns the secret's number, or
    ``-errno``: EINVAL for a bad address, length (8 .. 4096 bytes) or name,
    EFAULT when the bytes are not mapped.
    """

    addr: int
    n: int
    name: str = ""


#: a native thread's code: ``entry(sp)`` returns the coroutine it runs
Entry = Callable[[int], Coroutine[Any, Any, Any]]


class LoadCode(Trap):
    """Load native code into a task (the analog of mapping a text segment).

    ``entry(sp)`` must return the coroutine the new thread runs.  Python code
    cannot travel in a message, so this is a trap of its own; it needs the W
    right on the task capability ``task``.  Returns the new ip, or ``-errno``.
    """

    __slots__ = ("entry", "task")

    def __init__(self, task: int, entry: Entry) -> None:
        self.task = task
        self.entry = entry


