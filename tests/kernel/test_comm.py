"""Communication-control models: routing, sender identity, impersonation, the comm-control object."""

from __future__ import annotations

import pytest

from l4sim.kernel import comm as cm
from l4sim.kernel.abi import CALL, SLOT_COMMCTL, TID_FLAG, Err, Fpage, IpcErr, Proto, Rights, tid
from l4sim.kernel.comm import Route
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import Task, Thread
from l4sim.kernel.traps import Ipc, Msg
from l4sim.machine.board import Machine
from l4sim.user.env import Env

from .conftest import run_system, thread_named


def _kernel(model: str) -> Kernel:
    return Kernel(Machine(cores=1), comm_model=model)


def _task(k: Kernel, name: str, creator: Task | None = None) -> tuple[Task, Thread]:
    t = k.create_task(name, creator=creator)
    return t, k.create_thread(name, t)


def test_the_capability_model_has_no_thread_ids() -> None:
    """Under the default model an IPC to a thread id names no capability: ENOT_EXISTENT."""
    got: list[Msg] = []

    async def root(env: Env) -> int:
        me = await env.thread.tid()
        got.append(await Ipc(me, CALL, 1, (1,), timeout=0))
        return 0

    k, _ = run_system(root)
    assert k.comm is None and k.commctl is None
    assert got[0].error == IpcErr.ENOT_EXISTENT


def test_global_ids_deliver_to_any_id_and_name_the_sender() -> None:
    """Any thread reaches any id; the receiver's label is the sender's id; ids can be probed."""
    got: list[object] = []

    async def server(env: Env) -> None:
        msg = await env.wait()
        got.append(msg.label)
        await env.reply(0, msg.words[0] + 1)

    async def root(env: Env) -> int:
        srv = await env.spawn(server, name="server", prio=50)
        srv_id = await srv.tid()
        r = await Ipc(srv_id, CALL, 1, (41,))
        got.append(r.words)
        got.append((await Ipc(srv_id + 1000, CALL, 1, (0,), timeout=0)).error)
        got.append((await Ipc(srv_id, CALL, 1, (0,), timeout=0, sender=srv_id)).error)
        got.append(await env.thread.tid())
        return 0

    run_system(root, comm_model="global-ids")
    label, words, missing, forged, me = got
    assert label == me and words == (42,)
    assert missing == IpcErr.ENOT_EXISTENT
    assert forged == IpcErr.ENOT_EXISTENT, "no impersonation without an intermediary"


def test_clans_route_within_a_clan_directly_and_across_it_through_the_chiefs() -> None:
    """Siblings and a task and its chief talk directly; across clans the next chief gets it."""
    k = _kernel("clans-chiefs")
    _, root = _task(k, "root")
    ca_t, ca = _task(k, "chief-a", root.task)
    cb_t, cb = _task(k, "chief-b", root.task)
    _, a1 = _task(k, "a1", ca_t)
    _, a2 = _task(k, "a2", ca_t)
    _, b1 = _task(k, "b1", cb_t)
    model = k.comm
    assert isinstance(model, cm.ClansChiefs)

    def route(src: Thread, dst: Thread | None, claimed: int = 0) -> Route | int:
        return model.route(k, src, dst.kid if dst else 999, dst, claimed)

    assert route(a1, a2) == Route(a2, tid(a1.kid))  # siblings
    assert route(a1, ca) == Route(ca, tid(a1.kid))  # to its own chief
    assert route(ca, a1) == Route(a1, tid(ca.kid))  # a chief into its clan
    assert route(ca, cb) == Route(cb, tid(ca.kid))  # chiefs are siblings under root
    assert route(a1, b1) == Route(ca, tid(a1.kid), tid(b1.kid))  # out of the clan: own chief
    assert route(ca, b1) == Route(cb, tid(ca.kid), tid(b1.kid))  # into b1's clan: its chief
    assert route(a1, None) == Route(ca, tid(a1.kid), tid(999)), "the chief, not the sender, learns"
    assert model.path(k, a1, b1.task) == [ca, cb]
    # impersonation: the chiefs on a1's path to b1 may present a1; nobody else may
    assert route(ca, b1, tid(a1.kid)) == Route(cb, tid(a1.kid), tid(b1.kid))
    assert route(cb, b1, tid(a1.kid)) == Route(b1, tid(a1.kid))
    assert route(a2, b1, tid(a1.kid)) == IpcErr.ENOT_EXISTENT
    assert route(root, b1, tid(a1.kid)) == IpcErr.ENOT_EXISTENT


def test_redirection_table_allows_blocks_and_redirects_at_once() -> None:
    """A table entry takes effect at the next IPC; only the intermediary on the path may impersonate."""
    k = _kernel("redirection")
    st, s = _task(k, "s")
    dt, d = _task(k, "d")
    _, mon = _task(k, "mon")
    _, other = _task(k, "other")
    model = k.comm
    assert isinstance(model, cm.Redirection)
    assert model.route(k, s, d.kid, d, 0) == Route(d, tid(s.kid))  # default: allow
    assert model.control(k, 0, [st, dt, cm.REDIRECT, mon]) == 0
    assert model.route(k, s, d.kid, d, 0) == Route(mon, tid(s.kid), tid(d.kid))
    assert model.route(k, mon, d.kid, d, tid(s.kid)) == Route(d, tid(s.kid))
    assert model.route(k, other, d.kid, d, tid(s.kid)) == IpcErr.ENOT_EXISTENT
    assert model.control(k, 0, [st, dt, cm.BLOCK, 0]) == 0
    assert model.route(k, s, d.kid, d, 0) == IpcErr.ENOT_EXISTENT
    assert model.control(k, 1, [cm.BLOCK]) == 0
    assert model.route(k, other, d.kid, d, 0) == IpcErr.ENOT_EXISTENT
    assert model.control(k, 0, [st, dt, cm.REDIRECT, 0]) == -Err.EINVAL


def test_redirectors_take_a_spaces_outgoing_ipc_and_pclans_group_tasks() -> None:
    """A space's redirector receives its IPC to other spaces; a pclan's members reach each other."""
    k = _kernel("redirectors")
    st, s = _task(k, "s")
    _, d = _task(k, "d")
    _, red = _task(k, "red")
    model = k.comm
    assert model is not None and model.control(k, 3, [st, red]) == 0
    assert model.route(k, s, d.kid, d, 0) == Route(red, tid(s.kid), tid(d.kid))
    assert model.route(k, red, d.kid, d, tid(s.kid)) == Route(d, tid(s.kid))
    assert model.control(k, 3, [st, 0]) == 0
    assert model.route(k, s, d.kid, d, 0) == Route(d, tid(s.kid))

    k = _kernel("pclans")
    at, a = _task(k, "a")
    bt, b = _task(k, "b")
    ct, c = _task(k, "c")
    pm = k.comm
    assert pm is not None
    assert pm.control(k, 2, [at, 1]) == 0 and pm.control(k, 2, [bt, 1]) == 0
    assert pm.control(k, 2, [ct, 2]) == 0
    assert pm.control(k, 1, [cm.BLOCK]) == 0
    assert pm.route(k, a, b.kid, b, 0) == Route(b, tid(a.kid)), "inside a group: uncontrolled"
    assert pm.route(k, a, c.kid, c, 0) == IpcErr.ENOT_EXISTENT, "between groups: the table"


def test_virtual_threads_check_the_senders_name_in_the_receivers_space() -> None:
    """The receiver sees the sender's index in its own thread space, checked; a lie fails."""
    got: list[object] = []

    async def server(env: Env) -> None:
        while True:
            msg = await env.wait()
            got.append(msg.label)
            await env.reply(0)

    async def root(env: Env) -> int:
        srv = await env.spawn(server, name="server", prio=50)
        # the server's space (the same task here) names the root thread at index 60
        await env.task.map(env.task, env.thread.fpage(Rights.W), 60)
        got.append((await Ipc(srv.slot, CALL, 1, (), sender=60)).error)
        got.append((await Ipc(srv.slot, CALL, 1, (), sender=61, timeout=0)).error)
        got.append((await Ipc(tid(1), CALL, 1, (), timeout=0)).error)
        return 0

    run_system(root, comm_model="virtual-threads")
    assert got == [60, 0, IpcErr.ENOT_EXISTENT, IpcErr.ENOT_EXISTENT]


def test_the_comm_control_object_is_the_roots_and_needs_w() -> None:
    """Only the root holds it; a read-only copy is refused; bad arguments are EINVAL."""
    got: list[int] = []

    async def root(env: Env) -> int:
        got.append((await Ipc(SLOT_COMMCTL, CALL, int(Proto.COMMCTL), (1, cm.BLOCK))).proto)
        got.append((await Ipc(SLOT_COMMCTL, CALL, int(Proto.COMMCTL), (0, 1, 3, 0, 0))).proto)
        got.append((await Ipc(SLOT_COMMCTL, CALL, int(Proto.COMMCTL), (9,))).proto)
        await env.task.map(env.task, Fpage.obj(SLOT_COMMCTL, 0, Rights.R), 50)
        got.append((await Ipc(50, CALL, int(Proto.COMMCTL), (1, cm.ALLOW))).proto)
        return 0

    k, _ = run_system(root, comm_model="redirection")
    assert got == [0, -Err.EINVAL, -Err.ENOSYS, -Err.EPERM]
    assert isinstance(k.comm, cm.Redirection) and k.comm.default == cm.BLOCK
    assert thread_named(k, "root").task is not None


def test_models_are_chosen_before_the_first_task() -> None:
    """select_models works on an empty kernel and refuses afterwards; names are checked."""
    k = _kernel("capabilities")
    k.select_models("global-ids")
    assert isinstance(k.comm, cm.GlobalIds) and k.commctl is not None
    k.create_task("t")
    with pytest.raises(ValueError, match="before the first task"):
        k.select_models("redirection")
    with pytest.raises(ValueError, match="unknown communication model"):
        Kernel(Machine(cores=1), comm_model="telepathy")
    assert TID_FLAG > (1 << 20), "thread ids never collide with capability slots"
