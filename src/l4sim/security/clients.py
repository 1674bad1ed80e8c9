"""What the security servers share: one gate per client, and bytes in message words.

A security server must know *who* asks: the TPM driver keeps each client's
sealed data and counter apart, the storage server each client's files.  L4
names a client by the gate it calls through, so a server is given one
channel per client, each under a capability named ``svc.NAME`` in its
startup script; :func:`bind_clients` binds each to the server's thread with
a label of its own and returns label -> NAME.  A client holds only its own
channel, so a message's label says which client sent it, and a program
given no channel cannot send the server anything at all.

Byte strings travel as :func:`~l4sim.kernel.abi.pack_bytes` words (a length
word, then eight bytes a word); several in one message follow each other,
and :func:`take_bytes` reads them back in order.  A client's side calls its
channel through :func:`call_checked`, which turns an IPC error or a refusal
into the server's own exception.
"""

from __future__ import annotations

from collections.abc import Callable

from l4sim.kernel.abi import MSG_WORDS, Err, pack_bytes
from l4sim.user.env import Env, Gate, IpcCap

#: the capability names of a server's client channels start with this
PREFIX = "svc."
#: bytes one message carries at most in a single byte field (a word for the op, one for the length)
MAX_FIELD = 8 * (MSG_WORDS - 2)


async def bind_clients(env: Env, prefix: str = PREFIX) -> dict[int, str]:
    """Bind every ``svc.NAME`` gate of this program to its thread; returns label -> NAME.

    Labels are 0x10, 0x20, ... in the order of the names, so the same script
    gives the same labels.
    """
    labels: dict[int, str] = {}
    for i, cname in enumerate(sorted(n for n in env.local.names if n.startswith(prefix))):
        label = (i + 1) << 4
        await env.cap(cname, Gate).bind(env.thread, label)
        labels[label] = cname[len(prefix):]
    return labels


def take_bytes(words: tuple[int, ...], i: int) -> tuple[bytes, int]:
    """The byte field starting at word ``i`` and the index after it; ValueError when it is cut."""
    if i >= len(words):
        raise ValueError(f"a byte field expected at word {i} of {len(words)}")
    n = words[i]
    end = i + 1 + (n + 7) // 8
    if n > MAX_FIELD or end > len(words):
        raise ValueError(f"a byte field of {n} bytes does not fit the message")
    raw = b"".join(w.to_bytes(8, "little") for w in words[i + 1 : end])
    return raw[:n], end


def fields(*parts: bytes) -> tuple[int, ...]:
    """Byte fields as message words (each :func:`~l4sim.kernel.abi.pack_bytes`)."""
    out: list[int] = []
    for p in parts:
        out += pack_bytes(p)
    return tuple(out)


async def call_checked(gate: IpcCap, proto: int, what: str, words: tuple[int, ...],
                       refused: Callable[[str, int], Exception]) -> tuple[int, ...]:
    """Call a server on ``gate``; the answer's words.  An IPC error raises ``refused(what
    (IPC error ...), EIO)``, an answer below zero ``refused(what, errno)``."""
    msg = await gate.call(proto, *words)
    if msg.error:
        raise refused(f"{what} (IPC error {msg.error:#x})", Err.EIO)
    if msg.proto < 0:
        raise refused(what, -msg.proto)
    return msg.words
