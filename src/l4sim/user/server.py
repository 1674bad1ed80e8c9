"""The server loop: wait, dispatch by protocol label, reply and wait again.

This is L4Re's server-object pattern (``L4::Server`` with a registry): a
server thread owns one or more IPC gates, each bound to it with a label; an
incoming message is routed first by the gate label (which object) and then
by its protocol label (which interface), and the handler's return value is
the reply.  A handler that returns ``None`` sends no reply now -- it has
saved the reply capability (``env.save_reply``) to answer later.

A server survives its clients.  A handler should refuse a malformed request
itself, with the error its protocol documents; when one raises all the same
(an index a short message does not have, a result that does not fit a
machine word, a factory that ran out of quota), the loop answers an error
-- the errno of an :class:`~l4sim.user.env.L4Error`, else ``-EIO`` --
writes one log line naming the server, the request and the exception
(:func:`request_failed`, which the runtime's own servers use too), and
serves the next request.  A reply that cannot be delivered (the caller is
gone, or cannot take its items) is dropped the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from l4sim.kernel.abi import LABEL_MAX, LABEL_MIN, Err
from l4sim.kernel.fault import describe_exception
from l4sim.kernel.traps import Msg
from l4sim.user.env import Env, L4Error, _words

#: a handler gets the message and returns (proto, words...) or None (deferred)
Handler = Callable[[Msg], Awaitable[tuple[int, ...] | None]]

#: the longest exception text a failure line carries (the rest is cut with "...")
FAILURE_TEXT_MAX = 240


def failure_code(exc: BaseException) -> int:
    """The error a server answers for a request whose handling raised ``exc``: the errno of an
    :class:`L4Error` that carries one (``-ENOMEM`` from a factory out of quota), else ``-EIO``."""
    if isinstance(exc, L4Error) and exc.err and not exc.ipc_err and exc.err in Err._value2member_map_:
        return -exc.err
    return -Err.EIO


def describe_request(msg: Msg) -> str:
    """``proto 0x4004 op 0x3 on label 0x1005 (4 words, 1 item)``: what a failure line names."""
    op = f" op {msg.words[0]:#x}" if msg.words else ""
    nw, ni = len(msg.words), len(msg.items)
    return (f"proto {msg.proto:#x}{op} on label {msg.label:#x} "
            f"({nw} word{'s' * (nw != 1)}, {ni} item{'s' * (ni != 1)})")


def failure_line(server: str, msg: Msg, exc: BaseException, code: int) -> str:
    """The one line a server logs for a request whose handler raised: server, request, exception
    (read without running any of its methods) and the error answered."""
    _, text = describe_exception(exc)
    text = " ".join(text.split())
    if len(text) > FAILURE_TEXT_MAX:
        text = text[: FAILURE_TEXT_MAX - 3] + "..."
    name = Err(-code).name if -code in Err._value2member_map_ else str(code)
    return f"{server}: request {describe_request(msg)} failed: {text}; answered -{name}"


async def request_failed(env: Env, server: str, msg: Msg, exc: BaseException) -> int:
    """Log that ``server`` could not handle ``msg`` because of ``exc``; the error to answer.

    The last line of every server's defence: the line goes to the server's
    log (a server without one, or whose log refuses, stays silent -- the
    answer matters more than the line), and the caller gets
    :func:`failure_code`, so it neither hangs nor takes the server down.
    """
    code = failure_code(exc)
    with contextlib.suppress(L4Error):
        await env.log.write(failure_line(server, msg, exc, code).encode() + b"\n")
    return code


def checked_reply(reply: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """(label, words) of a handler's reply; raises TypeError/ValueError when it cannot be sent
    (no label, a label outside the tag's 48 bits, a word that is no machine word, too many)."""
    if not isinstance(reply, tuple) or not reply:
        raise TypeError(f"a handler replies (proto, *words) or None, not {type(reply).__name__}")
    proto = reply[0]
    if not isinstance(proto, int) or isinstance(proto, bool) or not LABEL_MIN <= proto <= LABEL_MAX:
        raise ValueError(f"reply label {proto!r} is not an int in {LABEL_MIN} .. {LABEL_MAX}")
    return int(proto), _words(reply[1:], "reply")


class ServerObject:
    """An object served over a gate: ``handlers`` maps protocol label to handler."""

    def __init__(self) -> None:
        self.handlers: dict[int, Handler] = {}

    def on(self, proto: int, handler: Handler) -> None:
        self.handlers[proto] = handler

    async def dispatch(self, msg: Msg) -> tuple[int, ...] | None:
        h = self.handlers.get(msg.proto)
        if h is None:
            return (-Err.ENOSYS,)
        return await h(msg)


class Server:
    """Runs the loop for the objects registered under their gate labels.

    ``name`` names the server in its failure lines (default: its task's name).
    ``failed`` counts the requests answered with an error because their
    handler raised.
    """

    def __init__(self, env: Env, name: str = "") -> None:
        self.env = env
        self.name = name or env.local.owner or "server"
        self.objects: dict[int, ServerObject] = {}
        self.served = 0
        self.failed = 0
        #: called with messages that match no object (IRQs, unknown labels)
        self.fallback: Callable[[Msg], Awaitable[tuple[int, ...] | None]] | None = None

    def register(self, label: int, obj: ServerObject) -> None:
        """Serve ``obj`` for messages whose gate label (low two bits cleared) is ``label``."""
        self.objects[label & ~3] = obj

    async def handle(self, msg: Msg) -> tuple[int, tuple[int, ...]] | None:
        """The reply (label, words) to ``msg``, or None (deferred); never raises an exception
        of the handler's: that becomes an error reply and a log line."""
        try:
            obj = self.objects.get(msg.label & ~3)
            reply: Any
            if obj is not None:
                reply = await obj.dispatch(msg)
            elif self.fallback is not None:
                reply = await self.fallback(msg)
            else:
                reply = (-Err.ENOENT,)
            return None if reply is None else checked_reply(reply)
        except Exception as exc:  # the handler's bug or a request it did not foresee: answer, go on
            self.failed += 1
            return await request_failed(self.env, self.name, msg, exc), ()

    async def run(self, limit: int | None = None) -> int:
        """Serve until ``limit`` requests were handled (forever when None)."""
        env = self.env
        msg = await env.wait()
        while limit is None or self.served < limit:
            if msg.error:  # a receive that failed, or a reply nobody could take: nobody waits
                msg = await env.wait()
                continue
            reply = await self.handle(msg)
            self.served += 1
            if limit is not None and self.served >= limit:
                if reply is not None:
                    await env.reply(reply[0], *reply[1])
                break
            if reply is None:
                msg = await env.wait()
            else:
                msg = await env.answer(reply[0], reply[1])
        return self.served
