"""The library's server loop survives its clients: a handler that raises is an error reply and a log
line, a reply that cannot be sent is refused, a caller that vanishes is forgotten.

The server is the squaring service of docs/kernel.md § 6.5 in a task of its own; its clients are
native programs that send what a careless or hostile client sends.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from l4sim.kernel.abi import SEND, Err, IpcErr, Rights
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.kernel.traps import Ipc, Msg
from l4sim.machine.board import Machine
from l4sim.user.env import INITIAL, Env, FactoryCap, L4Error, TaskLocal, start_task
from l4sim.user.server import Server, ServerObject, checked_reply, describe_request, failure_code

SQUARE, LABEL, GATE, SLOW = 1, 2, 3, 4


async def square_server(env: Env) -> int:
    """SQUARE(n) -> n*n (no bounds check: a big n makes a reply word that does not fit);
    LABEL(n) replies with label n; GATE makes a gate from the server's factory each time;
    SLOW(n) computes n ns before it answers."""
    obj = ServerObject()

    async def square(msg: Msg) -> tuple[int, ...]:
        return (0, msg.words[0] ** 2)

    async def label(msg: Msg) -> tuple[int, ...]:
        return (msg.words[0],)

    async def gate(msg: Msg) -> tuple[int, ...]:
        g = await env.cap("factory", FactoryCap).create_gate(None)
        return (0, g.slot)

    async def slow(msg: Msg) -> tuple[int, ...]:
        await env.compute(msg.words[0])
        return (0,)

    for proto, fn in ((SQUARE, square), (LABEL, label), (GATE, gate), (SLOW, slow)):
        obj.on(proto, fn)
    srv = Server(env)
    srv.register(0x10, obj)
    return await srv.run()


def boot(client: Any, server_factory: int = 0, cores: int = 1, log: bool = True) -> Kernel:
    """The square server (prio 20, with a factory of ``server_factory`` bytes if any, with or
    without the kernel log) and ``client(env, root_env)`` run by the root task."""
    m = Machine(cores=cores, seed=0)
    k = Kernel(m)

    async def root(env: Env) -> None:
        caps: dict[str, Any] = {}
        if server_factory:
            caps["factory"] = await env.factory.create_factory(server_factory)
        _, th = await start_task(env, "square", square_server, caps, prio=20, log=log)
        gate = await env.factory.create_gate(th, 0x10)
        await client(env, gate)

    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), prio=100)
    assert k.run(until=10**9) == "idle"
    return k


def server_thread(k: Kernel) -> Any:
    return next(th for th in k.threads if th.name == "square")


def test_a_handler_that_raises_is_answered_eio_with_one_log_line() -> None:
    """SQUARE without its number raises IndexError in the handler: the caller gets -EIO, the log
    names server, request and exception, and the next call is served (the loop used to die)."""
    got: list[Msg] = []

    async def client(env: Env, sq: Any) -> None:
        got.extend([await sq.call(SQUARE), await sq.call(SQUARE, 5)])

    k = boot(client)
    assert [(m.error, m.proto, m.words) for m in got] == [(0, -Err.EIO, ()), (0, 0, (25,))]
    lines = k.machine.uart.text().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"square: request proto 0x1 on label 0x13 \(0 words, 0 items\) failed: IndexError: "
                        r"tuple index out of range \(test_server\.py:\d+\); answered -EIO", lines[0])
    assert server_thread(k).state is TS.RECV


def test_a_reply_that_cannot_be_sent_is_answered_eio() -> None:
    """A result past 2**64 - 1 and a reply label outside the tag's 48 bits would make the reply
    trap fail (or, before, raise in the server): each is -EIO, then the server goes on."""
    got: list[Msg] = []

    async def client(env: Env, sq: Any) -> None:
        got.extend([await sq.call(SQUARE, 2**32), await sq.call(LABEL, 2**50), await sq.call(SQUARE, 3)])

    k = boot(client)
    assert [(m.error, m.proto) for m in got] == [(0, -Err.EIO), (0, -Err.EIO), (0, 0)]
    assert got[2].words == (9,)
    text = k.machine.uart.text()
    assert "op 0x100000000 on label 0x13 (1 word, 0 items) failed: TypeError: reply words must be" in text
    assert "failed: ValueError: reply label 1125899906842624 is not an int" in text


def test_a_handler_whose_factory_is_full_answers_enomem() -> None:
    """GATE from a 1 KiB factory (eight gates' worth): the ninth call is -ENOMEM, the errno of the
    L4Error the handler raised, and the server goes on."""
    got: list[tuple[int, int]] = []

    async def client(env: Env, sq: Any) -> None:
        for _ in range(9):
            r = await sq.call(GATE)
            got.append((r.error, r.proto))
        r = await sq.call(SQUARE, 4)
        got.append((r.error, r.words[0]))

    k = boot(client, server_factory=1024)
    assert got == [(0, 0)] * 8 + [(0, -Err.ENOMEM), (0, 16)]
    assert "failed: L4Error: create Gate failed: ENOMEM" in k.machine.uart.text()


def test_a_client_that_vanishes_during_its_call_does_not_stop_the_server() -> None:
    """A client whose task is deleted while the server computes its answer: the reply finds nobody,
    the server waits for the next call and answers it."""
    got: list[Msg] = []

    async def victim(env: Env) -> None:
        await env.cap("square").call(SLOW, 2_000_000)

    async def client(env: Env, sq: Any) -> None:
        task, _ = await start_task(env, "victim", victim, {"square": (sq, Rights.W)}, prio=10, cpu=1)
        await env.receive(env.thread, timeout=500_000)  # the victim's call is being served now
        await env.task.delete(task.slot)
        got.append(await sq.call(SQUARE, 6))

    k = boot(client, cores=2)
    assert [(m.error, m.proto, m.words) for m in got] == [(0, 0, (36,))]
    assert k.machine.uart.text() == ""


def test_a_request_sent_without_waiting_and_one_with_items_are_dropped() -> None:
    """A SEND (nobody waits for the answer) and a call carrying an item the server has no buffer
    for: neither leaves the server stuck; the next call is answered."""
    got: list[Msg] = []

    async def client(env: Env, sq: Any) -> None:
        got.append(await env.ipc(Ipc(sq.slot, SEND, SQUARE, (2,))))
        got.append(await sq.call(SQUARE, 2, items=(env.thread.fpage(),)))  # type: ignore[arg-type]
        got.append(await sq.call(SQUARE, 7))

    boot(client)
    assert [(m.error, m.proto, m.words) for m in got] == [(0, 0, ()), (IpcErr.SEMSGCUT, 0, ()),
                                                         (0, 0, (49,))]


def test_a_server_without_a_log_still_answers() -> None:
    """The failure line is best effort: a server with no log capability answers -EIO all the same."""
    got: list[Msg] = []

    async def client(env: Env, sq: Any) -> None:
        got.extend([await sq.call(SQUARE), await sq.call(SQUARE, 2)])

    boot(client, log=False)
    assert [(m.error, m.proto, m.words) for m in got] == [(0, -Err.EIO, ()), (0, 0, (4,))]


def test_failure_codes_request_descriptions_and_reply_checks() -> None:
    """An L4Error with an errno answers that errno, one of a failed IPC or anything else -EIO;
    a request is named by protocol, operation, label and sizes; a reply is (label, words) with
    enum members as their values, and anything else is refused before it becomes a trap."""
    assert failure_code(L4Error(Err.ENOMEM, "create gate")) == -Err.ENOMEM
    assert failure_code(L4Error(0, "call", IpcErr.ENOT_EXISTENT)) == -Err.EIO
    assert failure_code(KeyError(3)) == -Err.EIO
    assert describe_request(Msg(0, -6, (0x90, 1), 0x20)) == "proto -0x6 op 0x90 on label 0x20 (2 words, 0 items)"
    assert checked_reply((Err.OK, Err.EINVAL)) == (0, (22,))
    for bad in ((), [0], ("0",), (True,), (1 << 47,), (0, -1), (0, 1.0), (0, *range(64))):
        with pytest.raises((TypeError, ValueError)):
            checked_reply(bad)  # type: ignore[arg-type]
