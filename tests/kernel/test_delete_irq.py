"""Deletion notification: a server learns that an IPC gate bound to it is gone."""

from __future__ import annotations

from l4sim.kernel.abi import Proto
from l4sim.kernel.traps import Msg
from l4sim.user.env import Env

from .conftest import run_system


def test_deleting_a_gate_fires_the_delete_irq_with_its_label() -> None:
    """The delete Irq's message carries the label of the deleted gate."""
    seen: list[Msg] = []

    async def server(env: Env) -> int:
        seen.append(await env.wait())
        return 0

    async def root(env: Env) -> int:
        srv = await env.spawn(server, name="server", prio=50)
        irq = await env.factory.create_irq()
        await irq.attach(srv, 0x700)
        await srv.register_delete_irq(irq)
        gate = await env.factory.create_gate(srv, 0x40)
        await env.task.delete(gate.slot)
        return 0

    run_system(root)
    assert len(seen) == 1
    assert seen[0].proto == Proto.IRQ and seen[0].label == 0x700
    assert seen[0].words == (0x40,)


def test_gates_deleted_while_busy_are_all_reported() -> None:
    """Several gates deleted before the server waits arrive together, none lost."""
    seen: list[Msg] = []

    async def server(env: Env) -> int:
        await env.compute(50_000)  # busy while the gates die
        seen.append(await env.wait())
        return 0

    async def root(env: Env) -> int:
        srv = await env.spawn(server, name="server", prio=50)
        irq = await env.factory.create_irq()
        await irq.attach(srv, 0x700)
        await srv.register_delete_irq(irq)
        gates = [await env.factory.create_gate(srv, 0x40 + 4 * i) for i in range(3)]
        for g in gates:
            await env.task.delete(g.slot)
        return 0

    run_system(root, prio=100)
    assert len(seen) == 1
    assert seen[0].words == (0x40, 0x44, 0x48)


def test_a_client_task_dying_destroys_its_granted_session_gate() -> None:
    """A gate granted to a client dies with the client's task, and the server is told."""
    seen: list[Msg] = []

    async def server(env: Env) -> int:
        seen.append(await env.wait())
        return 0

    async def root(env: Env) -> int:
        srv = await env.spawn(server, name="server", prio=50)
        irq = await env.factory.create_irq()
        await irq.attach(srv, 0x700)
        await srv.register_delete_irq(irq)
        gate = await env.factory.create_gate(srv, 0x80)
        client = await env.factory.create_task("client")
        await client.map(env.task, gate.fpage(), 9, grant=True)  # the client holds the only one
        assert (await env.task.cap_info(gate.slot))[0] == 0
        await env.task.delete(client.slot)
        return 0

    run_system(root, prio=100)
    assert [m.words for m in seen] == [(0x80,)]


def test_an_unbound_gate_is_bound_by_its_server_with_the_s_right() -> None:
    """A server binds an unbound gate (S right); a client without S cannot rebind it."""
    got: list[Msg] = []
    errors: list[str] = []

    async def server(env: Env) -> int:
        await env.cap("svc").bind(env.thread, 0x20)
        got.append(await env.wait())
        await env.reply(0, 42)
        return 0

    async def client(env: Env) -> int:
        try:
            await env.cap("svc").bind(env.thread, 0x30)
        except Exception as e:  # the wrapper raises L4Error(EPERM)
            errors.append(str(e))
        await env.compute(10_000)
        r = await env.cap("svc").call(1, 7)
        got.append(r)
        return 0

    async def root(env: Env) -> int:
        from l4sim.kernel.abi import Rights
        from l4sim.user.env import start_task

        gate = await env.factory.create_gate(None)
        await start_task(env, "server", server, {"svc": gate}, prio=20)
        await start_task(env, "client", client, {"svc": (gate, Rights.R | Rights.W)}, prio=10)
        return 0

    run_system(root, prio=100)
    assert errors and "EPERM" in errors[0]
    assert got[0].words == (7,) and got[0].label == 0x21  # W without S seen in the low bits
    assert got[1].words == (42,)
