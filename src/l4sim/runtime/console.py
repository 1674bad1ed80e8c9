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

from l4sim.kernel.abi import MSG_WORDS, Err, pack_bytes, unpack_bytes
from l4sim.kernel.traps import Msg
from l4sim.runtime.protocols import CONSOLE, ConsoleOp
from l4sim.user.env import Env, Gate, L4Error, ThreadCap, start_task
from l4sim.user.server import request_failed

#: bytes of data one message carries (op, stream or size, length word, data words)
CHUNK = 8 * (MSG_WORDS - 3)
#: streams a WRITE may name
STDOUT, STDERR = 1, 2
#: the name of the console server's task (a program of a startup script may not take it)
CONSOLE_TASK = "console"
EINVAL = int(Err.EINVAL)


async def console_server(env: Env, out: Callable[[int, bytes], None], read: Callable[[], bytes]) -> int:
    """The server's program (``start_task(env, CONSOLE_TASK, console_server, args=(out, read))``).

    A request it cannot serve is answered ``-EINVAL``; one whose host call
    raises (a closed pipe) ``-EIO``, with a line on its log.  A message that
    arrived with an IPC error (items it has no buffer for) or whose reply
    could not be delivered (it was sent, not called; its caller is gone) has
    nobody waiting for an answer: the server waits for the next one.
    """
    term = _Terminal(out, read)
    msg = await env.wait()
    while True:
        if msg.error:
            msg = await env.wait()
            continue
        try:
            proto, reply = term.serve(msg)
        except Exception as exc:  # the host's stream failed: answer, keep serving
            proto, reply = await request_failed(env, CONSOLE_TASK, msg, exc), ()
        msg = await env.reply_and_wait(proto, *reply)


class _Terminal:
    """The console server's state: the host's streams and input read but not yet asked for."""

    def __init__(self, out: Callable[[int, bytes], None], read: Callable[[], bytes]) -> None:
        self.out = out
        self.read = read
        self.pending = b""
        self.eof = False

    def serve(self, msg: Msg) -> tuple[int, tuple[int, ...]]:
        """(reply label, reply words) of one request."""
        w = msg.words
        if msg.proto != CONSOLE or not w:
            return -EINVAL, ()
        if w[0] == ConsoleOp.WRITE and len(w) >= 3 and w[1] in (STDOUT, STDERR):
            data = unpack_bytes(w[2:])
            self.out(w[1], data)
            return 0, (len(data),)
        if w[0] == ConsoleOp.READ and len(w) >= 2:
            if not self.pending and not self.eof:
                self.pending = bytes(self.read())
                self.eof = not self.pending
            n = min(w[1], CHUNK)
            reply = pack_bytes(self.pending[:n])
            self.pending = self.pending[n:]
            return 0, reply
        return -EINVAL, ()


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
    # the kernel log (write only): where the server reports a request it could not serve
    _task, th = await start_task(env, CONSOLE_TASK, console_server, prio=prio, cpu=cpu, args=(out, read))
    assert isinstance(th, ThreadCap)
    gate = await env.factory.create_gate(th)
    return Console(gate)
