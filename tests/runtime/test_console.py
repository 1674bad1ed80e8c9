"""The console server: the host's streams reached only by IPC (CONSOLE protocol)."""

from __future__ import annotations

from typing import Any

from l4sim.kernel.abi import SEND, Err, IpcErr, MapItem, pack_bytes
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.kernel.trace import Tracer
from l4sim.kernel.traps import Ipc, Msg
from l4sim.machine.board import Machine
from l4sim.runtime.console import CHUNK, STDERR, STDOUT, start_console
from l4sim.runtime.protocols import CONSOLE, ConsoleOp
from l4sim.user.env import INITIAL, Env, TaskLocal


def _boot(root: Any) -> Tracer:
    tr = Tracer()
    k = Kernel(Machine(cores=1, seed=0), tracer=tr)
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), prio=100)
    k.run()
    return tr


def test_writes_reads_and_the_end_of_input() -> None:
    """Writes reach the host callable byte for byte (split into messages of CHUNK bytes);
    reads return what the host gives, a little at a time, then b"" at the end."""
    written: list[tuple[int, bytes]] = []
    chunks = [b"first line\nsecond", b""]
    got: list[bytes] = []
    big = bytes(range(256)) * 9  # 2304 bytes: five messages

    async def root(env: Env) -> None:
        con = await start_console(env, lambda s, b: written.append((s, b)), lambda: chunks.pop(0))
        await con.write(STDOUT, b"hello\n")
        await con.write(STDERR, big)
        got.extend([await con.read(5), await con.read(100), await con.read(100), await con.read(100)])

    tr = _boot(root)
    assert written[0] == (STDOUT, b"hello\n")
    assert all(s == STDERR and len(b) <= CHUNK for s, b in written[1:]) and len(written) == 1 + 5
    assert b"".join(b for _, b in written[1:]) == big
    assert got == [b"first", b" line\nsecond", b"", b""]
    calls = [r for r in tr.by_kind("ipc") if r[4].get("proto") == CONSOLE]
    assert len(calls) == 1 + 5 + 4


def test_bad_requests_are_refused() -> None:
    """An unknown operation, a bad stream or a wrong protocol gets -EINVAL; the server goes on."""
    answers: list[tuple[int, int]] = []
    written: list[Any] = []

    async def root(env: Env) -> None:
        con = await start_console(env, lambda s, b: written.append((s, b)), lambda: b"")
        for proto, words in ((CONSOLE, (7,)), (CONSOLE, (ConsoleOp.WRITE, 9, 1, 65)), (1234, (0,)),
                             (CONSOLE, ())):
            r = await con.gate.call(proto, *words)
            answers.append((r.error, r.proto))
        await con.write(STDOUT, b"still here")

    _boot(root)
    assert answers == [(0, -22)] * 4 and written == [(STDOUT, b"still here")]


def test_a_request_nobody_waits_for_does_not_make_the_console_spin() -> None:
    """A call carrying an item (the console has no receive buffer: the message arrives with an IPC
    error) and a plain SEND (no reply capability): the console used to answer each with a reply that
    failed, take that failure for a new message and answer again, for ever.  Now it waits, and
    serves the next call."""
    got: list[Msg] = []
    written: list[tuple[int, bytes]] = []

    async def root(env: Env) -> None:
        con = await start_console(env, lambda s, b: written.append((s, b)), lambda: b"")
        got.append(await con.gate.call(CONSOLE, ConsoleOp.WRITE, STDOUT, 1, 65, items=(MapItem(env.thread.fpage()),)))
        got.append(await env.ipc(Ipc(con.gate.slot, SEND, CONSOLE, (ConsoleOp.WRITE, STDOUT, 1, 66))))
        got.append(await con.gate.call(CONSOLE, ConsoleOp.WRITE, STDOUT, 1, 67))

    k = Kernel(Machine(cores=1, seed=0))
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), prio=100)
    assert k.run(until=100_000_000, max_events=100_000) == "idle"
    assert [(m.error, m.proto, m.words) for m in got] == [(IpcErr.SEMSGCUT, 0, ()), (0, 0, ()), (0, 0, (1,))]
    assert written == [(STDOUT, b"B"), (STDOUT, b"C")]
    console = next(th for th in k.threads if th.name == "console")
    assert console.state is TS.RECV and console.traps < 10


def test_a_host_stream_that_fails_is_answered_eio_and_logged() -> None:
    """The host's stdout raises (a closed pipe): that write is -EIO, the kernel log has one line
    naming the console, the request and the exception, and the next write goes through."""
    answers: list[tuple[int, int]] = []
    written: list[bytes] = []

    def out(stream: int, data: bytes) -> None:
        if data == b"boom":
            raise BrokenPipeError(32, "Broken pipe")
        written.append(data)

    async def root(env: Env) -> None:
        con = await start_console(env, out, lambda: b"")
        for data in (b"boom", b"fine"):
            r = await con.gate.call(CONSOLE, ConsoleOp.WRITE, STDOUT, *pack_bytes(data))
            answers.append((r.error, r.proto))

    k = Kernel(Machine(cores=1, seed=0))
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), prio=100)
    k.run()
    assert answers == [(0, -Err.EIO), (0, 0)] and written == [b"fine"]
    assert k.machine.uart.text() == ("console: request proto 0x4006 op 0x0 on label 0x3 (4 words, 0 items) "
                                     "failed: BrokenPipeError: 32, 'Broken pipe' (test_console.py:"
                                     f"{out.__code__.co_firstlineno + 2}); answered -EIO\n")
