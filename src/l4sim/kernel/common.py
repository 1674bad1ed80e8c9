"""Constants and small checks that the kernel's modules share.

The kernel is one class, :class:`~l4sim.kernel.kernel.Kernel`, whose
operations live in one module per concern (``ipc.py``, ``mapdb.py``, ...).
What they all read on their hot paths is here, as plain module globals:
a global lookup is cheaper than an enum attribute or an ``IntFlag``
operation, and these are read on every IPC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from typing import Any

from l4sim.kernel.abi import RECV, SEND, WORD_MASK, Fpage, MemRights, Proto, Rights
from l4sim.kernel.objects import TS
from l4sim.kernel.vspace import MAX_ACCESS

#: the flags of a call: send, then receive the reply
CALL_FLAGS = SEND | RECV


def _close(coro: Coroutine[Any, Any, Any]) -> None:
    """End a program's coroutine; whatever its ``finally`` blocks do, the kernel goes on."""
    with contextlib.suppress(BaseException):  # a program's clean-up must never stop the kernel
        coro.close()


def enter(entry: Any, sp: int) -> Any:
    """Start native code: ``entry(sp)`` is the program's own code and may raise.

    What it raises becomes the thread's exception when it first runs (exception
    IPC to its handler), never an exception out of the kernel.
    """
    try:
        return entry(sp)
    except BaseException as exc:
        return _raising(exc)


async def _raising(exc: BaseException) -> None:
    raise exc


def _range_ok(addr: object, n: object) -> bool:
    """A string's address and length are machine words within one access."""
    return type(addr) is int and type(n) is int and 0 <= n <= MAX_ACCESS and 0 <= addr <= WORD_MASK - n


FPAGE_ALL_MEMORY = Fpage.all_memory()
_PROTO_KOBJECT = int(Proto.KOBJECT)
# rights as plain ints on hot paths (IntFlag arithmetic costs ~40x an int's)
_R = int(Rights.R)
_MEM_R, _MEM_W = int(MemRights.R), int(MemRights.W)

# Thread states as module constants: an enum attribute lookup costs ~10x a
# global one, and these are read on every IPC (hot path).
_INACTIVE, _READY, _SEND, _RECV, _DEAD = TS.INACTIVE, TS.READY, TS.SEND, TS.RECV, TS.DEAD
_DEPLETED, _WAIT_RELEASE = TS.DEPLETED, TS.WAIT_RELEASE

#: Default kernel-memory quota of the root factory (bytes).
ROOT_QUOTA = 64 << 20

#: builds a Msg from a tuple without the named tuple's Python-level ``__new__`` (hot path)
_new_msg = tuple.__new__
