"""The console server: the host's streams reached only by IPC (CONSOLE protocol)."""

from __future__ import annotations

from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.trace import Tracer
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
