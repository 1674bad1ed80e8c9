"""String items (long IPC): bytes copied between address spaces, and their fault codes."""

from __future__ import annotations

from typing import Any

from l4sim.kernel.abi import Fpage, IpcErr, MapItem, StrBuf, StrItem
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.trace import Tracer
from l4sim.kernel.traps import Msg
from l4sim.machine.board import Machine
from l4sim.runtime.sigma0 import sigma0
from l4sim.user.env import INITIAL, SIGMA0_CAPS, Env, TaskLocal

BUF = 0x200000
SRC = 0x100000


def run(server: Any, client: Any) -> Kernel:
    """sigma0 pages both threads (1:1); the client calls the server's thread directly."""

    async def root(env: Env) -> int:
        srv = await env.spawn(server, name="server", prio=50)
        env.name("srv", srv)
        await env.spawn(client, name="client", prio=10)
        return 0

    m = Machine()
    k = Kernel(m, tracer=Tracer())
    s0 = k.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), m.mem.nframes))
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), pager=s0)
    k.run()
    return k


def test_a_string_is_copied_into_the_receivers_buffer() -> None:
    """The receiver finds the bytes in its buffer and the item names where they landed."""
    got: list[Any] = []

    async def server(env: Env) -> int:
        await env.mem.write(BUF, bytes(64))  # the buffer page is mapped before the receive
        msg = await env.wait(rcv=(StrBuf(BUF, 64),))
        got.append(msg)
        got.append(await env.mem.read(BUF, 11))
        await env.reply(0)
        return 0

    async def client(env: Env) -> int:
        await env.mem.write(SRC, b"hello world")
        got.append(await env.cap("srv").call(1, 5, items=(StrItem(SRC, 11),)))
        return 0

    run(server, client)
    msg, data, answer = got
    assert msg.error == 0 and msg.words == (5,) and msg.items == (StrBuf(BUF, 11),)
    assert data == b"hello world"
    assert answer.error == 0


def test_a_string_longer_than_the_buffer_is_cut_on_both_sides() -> None:
    """More bytes than the buffer holds: message cut for both, nothing copied."""
    got: list[Any] = []

    async def server(env: Env) -> int:
        await env.mem.write(BUF, b"\xff" * 16)
        got.append(await env.wait(rcv=(StrBuf(BUF, 4),)))
        got.append(await env.mem.read(BUF, 4))
        return 0

    async def client(env: Env) -> int:
        await env.mem.write(SRC, b"too long")
        got.append(await env.cap("srv").send(1, items=(StrItem(SRC, 8),)))
        return 0

    run(server, client)
    rcv, untouched, snd = got
    assert rcv.error == IpcErr.REMSGCUT and snd.error == IpcErr.SEMSGCUT
    assert untouched == b"\xff" * 4


def test_a_hole_in_the_senders_string_is_a_send_page_fault_timeout_for_the_receiver() -> None:
    """The sender's string is not mapped: the receiver sees RESNDPFTO, the sender SEMSGCUT."""
    got: list[Msg] = []

    async def server(env: Env) -> int:
        await env.mem.write(BUF, bytes(16))
        got.append(await env.wait(rcv=(StrBuf(BUF, 16),)))
        return 0

    async def client(env: Env) -> int:
        got.append(await env.cap("srv").send(1, items=(StrItem(0x700000, 8),)))  # never touched
        return 0

    run(server, client)
    assert {m.error for m in got} == {IpcErr.RESNDPFTO, IpcErr.SEMSGCUT}


def test_a_hole_in_the_receivers_buffer_is_a_receive_page_fault_timeout_for_the_sender() -> None:
    """The receiver's buffer is not mapped: the sender sees SERCVPFTO, the receiver REMSGCUT."""
    got: list[Msg] = []

    async def server(env: Env) -> int:
        got.append(await env.wait(rcv=(StrBuf(0x300000, 16),)))  # never touched
        return 0

    async def client(env: Env) -> int:
        await env.mem.write(SRC, b"data")
        got.append(await env.cap("srv").send(1, items=(StrItem(SRC, 4),)))
        return 0

    run(server, client)
    assert {m.error for m in got} == {IpcErr.SERCVPFTO, IpcErr.REMSGCUT}


def test_a_string_item_needs_a_string_buffer() -> None:
    """A string item meeting an object receive window fails to map on both sides."""
    got: list[Msg] = []

    async def server(env: Env) -> int:
        got.append(await env.wait(rcv=(Fpage.obj(20),)))
        return 0

    async def client(env: Env) -> int:
        await env.mem.write(SRC, b"x")
        got.append(await env.cap("srv").send(1, items=(StrItem(SRC, 1),)))
        return 0

    run(server, client)
    assert {m.error for m in got} == {IpcErr.SEMAPFAILED, IpcErr.REMAPFAILED}


def test_strings_and_map_items_travel_together_in_order() -> None:
    """A message may carry a capability and a string; each meets its own buffer."""
    got: list[Any] = []

    async def server(env: Env) -> int:
        await env.mem.write(BUF, bytes(8))
        msg = await env.wait(rcv=(Fpage.obj(30), StrBuf(BUF, 8)))
        got.append(msg)
        got.append((await env.task.cap_info(30))[0])
        got.append(await env.mem.read(BUF, 3))
        return 0

    async def client(env: Env) -> int:
        irq = await env.factory.create_irq()
        await env.mem.write(SRC, b"abc")
        got.append(await env.cap("srv").send(1, items=(MapItem(irq.fpage()), StrItem(SRC, 3))))
        return 0

    run(server, client)
    msg, has_cap, data, answer = got
    assert msg.error == 0 and answer.error == 0
    assert msg.items == (Fpage.obj(30, 0, 0xF), StrBuf(BUF, 3))
    assert has_cap == 1 and data == b"abc"


def test_a_malformed_string_item_is_refused_in_decode() -> None:
    """A negative length or a non-int address is a malformed message (SEMSGCUT)."""
    got: list[Msg] = []

    async def server(env: Env) -> int:
        await env.wait(timeout=1_000_000)
        return 0

    async def client(env: Env) -> int:
        got.append(await env.cap("srv").send(1, items=(StrItem(SRC, -1),)))
        got.append(await env.cap("srv").send(1, items=(StrItem("x", 1),)))  # type: ignore[arg-type]
        return 0

    run(server, client)
    assert [m.error for m in got] == [IpcErr.SEMSGCUT, IpcErr.SEMSGCUT]
