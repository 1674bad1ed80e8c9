"""The console server: the one program that holds the host's terminal.

L4Re's ``cons`` multiplexes the consoles of a system's programs; here the
console server serves the ``CONSOLE`` protocol (see
:mod:`l4sim.runtime.protocols`) for a terminal whose device is the host's
standard streams.  It is started with two host callables -- ``out(stream,
bytes)`` and ``read() -> bytes`` (b"" at the end of input) -- and no other
program touches the host's streams: clients (the Linux personality) reach
them only by IPC, so every byte in and out costs its messages and shows in
the trace.

A message carries at most :data:`CHUNK` bytes; :class:`Console` (the
client side) splits and joins.  A read returns at most what one host read
gave (the rest is kept for the next), so a terminal's line discipline is the
host's.
"""

from __future__ import annotations

from collections.abc import Callable

from l4sim.kernel.abi import MSG_WORDS, pack_bytes, unpack_bytes
from l4sim.runtime.protocols import CONSOLE, ConsoleOp
from l4sim.user.env import Env, Gate, L4Error, ThreadCap, start_task

#: bytes of data one message carries (op, stream or size, length word, data words)
CHUNK = 8 * (MSG_WORDS - 3)
#: streams a WRITE may name
STDOUT, STDERR = 1, 2
#: the name of the console server's task (a program of a startup script may not take it)
CONSOLE_TASK = "console"
EINVAL = 22


async def console_server(env: Env, out: Callable[[int, bytes], None], read: Callable[[], bytes]) -> int:
    """The server's program (``start_task(env, CONSOLE_TASK, console_server, args=(out, read))``)."""
    pending = b""
    eof = False
    msg = await env.wait()
    while True:
        w = msg.words
        reply: tuple[int, ...] = ()
        proto = 0
        if msg.error or msg.proto != CONSOLE or not w:
            proto = -EINVAL
        elif w[0] == ConsoleOp.WRITE and len(w) >= 3 and w[1] in (STDOUT, STDERR):
            data = unpack_bytes(w[2:])
            out(w[1], data)
            reply = (len(data),)
        elif w[0] == ConsoleOp.READ and len(w) >= 2:
            if not pending and not eof:
                pending = bytes(read())
                eof = not pending
            n = min(w[1], CHUNK)
            reply = pack_bytes(pending[:n])
            pending = pending[n:]
        else:
            proto = -EINVAL
        msg = await env.reply_and_wait(proto, *reply)


class Console:
    """A client's handle on the console server."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def write(self, stream: int, data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            r = await self.gate.call(CONSOLE, ConsoleOp.WRITE, stream, *pack_bytes(data[i : i + CHUNK]))
            if r.error or r.proto:
                raise L4Error(-r.proto, "console write", r.error)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of input (b"": the end of input)."""
        r = await self.gate.call(CONSOLE, ConsoleOp.READ, min(n, CHUNK))
        if r.error or r.proto:
            raise L4Error(-r.proto, "console read", r.error)
        return unpack_bytes(r.words)


async def start_console(env: Env, out: Callable[[int, bytes], None], read: Callable[[], bytes],
                        prio: int = 100, cpu: int = 0) -> Console:
    """Start the console server in a task of its own; its gate, wrapped."""
    _task, th = await start_task(env, CONSOLE_TASK, console_server, prio=prio, cpu=cpu, args=(out, read),
                                 log=False)
    assert isinstance(th, ThreadCap)
    gate = await env.factory.create_gate(th)
    return Console(gate)
