"""The server loop: wait, dispatch by protocol label, reply and wait again.

This is L4Re's server-object pattern (``L4::Server`` with a registry): a
server thread owns one or more IPC gates, each bound to it with a label; an
incoming message is routed first by the gate label (which object) and then
by its protocol label (which interface), and the handler's return value is
the reply.  A handler that returns ``None`` sends no reply now -- it has
saved the reply capability (``env.save_reply``) to answer later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from l4sim.kernel.abi import Err, IpcErr
from l4sim.kernel.traps import Msg
from l4sim.user.env import Env

#: a handler gets the message and returns (proto, words...) or None (deferred)
Handler = Callable[[Msg], Awaitable[tuple[int, ...] | None]]


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
    """Runs the loop for the objects registered under their gate labels."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.objects: dict[int, ServerObject] = {}
        self.served = 0
        #: called with messages that match no object (IRQs, unknown labels)
        self.fallback: Callable[[Msg], Awaitable[tuple[int, ...] | None]] | None = None

    def register(self, label: int, obj: ServerObject) -> None:
        """Serve ``obj`` for messages whose gate label (low two bits cleared) is ``label``."""
        self.objects[label & ~3] = obj

    async def run(self, limit: int | None = None) -> int:
        """Serve until ``limit`` requests were handled (forever when None)."""
        env = self.env
        msg = await env.wait()
        while limit is None or self.served < limit:
            if msg.error:
                msg = await env.wait()
                continue
            obj = self.objects.get(msg.label & ~3)
            reply: Any
            if obj is not None:
                reply = await obj.dispatch(msg)
            elif self.fallback is not None:
                reply = await self.fallback(msg)
            else:
                reply = (-Err.ENOENT,)
            self.served += 1
            if limit is not None and self.served >= limit:
                if reply is not None:
                    await env.reply(reply[0], *reply[1:])
                break
            if reply is None:
                msg = await env.wait()
            else:
                msg = await env.reply_and_wait(reply[0], *reply[1:])
                if msg.error == IpcErr.ENOT_EXISTENT:  # the caller went away; keep serving
                    msg = await env.wait()
        return self.served
