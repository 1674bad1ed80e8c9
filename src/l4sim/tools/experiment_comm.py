"""``l4sim experiment comm-control``: one workload under every communication-control model.

The workload (after Elphinstone, "Future Directions in the Evolution of the
L4 Microkernel", section 4): a client in domain A calls a server in domain
B, through whatever the model puts between them, and calls a peer in its
own domain.  Every model runs the same programs; what differs is how the
destination is named (a capability, or a thread id), what the kernel puts
on the way (chiefs, a monitor), and what the receiver learns of the sender.

The system, built host-side as a boot loader would (``setup``), the same
under every model::

    chief-a (creates)  client, peer, intruder        domain A
    chief-b (creates)  server                        domain B
    monitor            the policy monitor: forwards what the model sends it

Under ``clans-chiefs`` chief-a and chief-b are the chiefs (the kernel's
rule); under ``redirection`` and ``pclans`` the table sends A -> B through
the monitor; under ``redirectors`` the monitor is A's redirector.  The
intermediaries all run the same loop: receive, forward to ``msg.dest``
presenting ``msg.label`` as the sender, pass the answer back.

Measured per model, each a fact of the run, not a constant of the table:

- ``ipcs_per_request``: messages the kernel delivered for one cross-domain
  request (calls along the path; the replies go back the same way);
- ``kernel_entries``: traps every thread made for it;
- ``latency_ns``: the client's simulated time from call to answer;
- ``intra_ipcs``: the same for the call to the peer in its own domain;
- ``policy_change``: revoking A's right to reach B with the model's own
  means, its kernel operations and simulated cost -- and whether the
  client's next request is then refused;
- ``sender_authenticated``: whether the server can tell the client from
  the intruder, a second program of domain A that calls it too and tries
  to pass as the client (claiming its id);
- ``scannable``: whether a program of domain A can tell which thread ids
  outside its domain exist by sending to them;
- ``delivery_on_completion``: whether a completed send means the
  destination got the message (not when an intermediary received it).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from l4sim.kernel import comm as cm
from l4sim.kernel.abi import (
    CALL,
    SLOT_COMMCTL,
    SLOT_TASK,
    SLOT_THREAD,
    UNMAP_ALL_SPACES,
    Fpage,
    IpcErr,
    Proto,
    Rights,
    TaskOp,
    tid,
)
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import IpcGate, Task, Thread
from l4sim.kernel.trace import Tracer
from l4sim.kernel.traps import Ipc, Msg
from l4sim.machine.board import Machine
from l4sim.tools.trace_export import write_chrome
from l4sim.user.env import Env, TaskLocal

#: requests the client makes (the figures are the last one's: the first may find a path cold)
REQUESTS = 4
#: the gate label the server's manager gives domain A's channel (capability model)
GATE_LABEL = 0xA0
#: the client's index in the server's thread space (virtual threads)
VT_CLIENT = 40
#: where the client holds its way to the server and to the peer
S_SERVER, S_PEER = 20, 21
#: an intermediary's answer to what its policy does not forward
REFUSED = -int(IpcErr.ENOT_EXISTENT)
#: the words of the intruder's two calls: as itself, and passing as the client
OWN, FORGED = 1001, 1002
#: where the client holds its way to the root (the cue)
S_ROOT = 22
#: the root task's slots for the objects it wires and manages
R_GATE, R_CLIENT_TASK, R_SERVER_TASK = 40, 31, 32


@dataclass
class Outcome:
    """What the programs observed (filled during the run)."""

    latency: list[int] = field(default_factory=list)
    answers: list[Msg] = field(default_factory=list)
    intra: list[Msg] = field(default_factory=list)
    labels: list[tuple[int, int]] = field(default_factory=list)  # (first word, label the server saw)
    forged: Msg | None = None
    after_change: Msg | None = None
    scan: dict[int, tuple[int, int]] = field(default_factory=dict)  # thread id -> (error, label)
    sent_to_monitor: int = 0
    #: (messages, traps) before and after the last request, and around the call to the peer
    cost: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    intra_cost: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))


async def server(env: Env, out: Outcome) -> None:
    """Answer every call with its word + 1; remember who the kernel said called."""
    msg = await env.wait()
    while True:
        if msg.error:
            msg = await env.wait()
            continue
        out.labels.append((msg.words[0] if msg.words else -1, msg.label))
        msg = await env.reply_and_wait(0, (msg.words[0] + 1) if msg.words else 0)


async def intermediary(env: Env, out: Outcome, allowed: frozenset[int]) -> None:
    """A chief, monitor or redirector: forward each message to where it was going if the
    policy allows that destination, presenting the original sender, and pass the answer
    back; refuse anything else the same way, so nobody learns whether it exists."""
    msg = await env.wait()
    while True:
        if msg.error:
            msg = await env.wait()
            continue
        out.sent_to_monitor += 1
        if msg.dest in allowed:
            r = await Ipc(msg.dest, CALL, msg.proto, msg.words, sender=msg.label)
            msg = await env.reply_and_wait(r.proto if not r.error else REFUSED, *r.words)
        else:
            msg = await env.reply_and_wait(REFUSED)


async def peer(env: Env) -> None:
    msg = await env.wait()
    while True:
        msg = await env.reply_and_wait(0, msg.words[0] * 2 if msg.words else 0)


async def client(env: Env, out: Outcome, to_server: int, to_peer: int, to_root: int,
                 sender: int, probe: Callable[[], tuple[int, int]]) -> None:
    """The workload: requests to the server, one call to the peer, then the cue and one more.

    ``probe`` reads the kernel's message and trap counters: the experiment's
    instrument (like a performance counter), not something a program could use.
    """
    for i in range(REQUESTS):
        t0 = await env.clock()
        before = probe()
        r = await Ipc(to_server, CALL, 1, (i,), sender=sender)
        out.cost = (before, probe())
        out.latency.append(await env.clock() - t0)
        out.answers.append(r)
    before = probe()
    out.intra.append(await Ipc(to_peer, CALL, 1, (7,)))
    out.intra_cost = (before, probe())
    await Ipc(to_root, CALL, 2, ())  # the cue: the root now revokes A's way to B
    out.after_change = await Ipc(to_server, CALL, 1, (99,), sender=sender, timeout=0,
                                 rcv_timeout=1_000_000)


async def root(env: Env, model: str, change: list[tuple[int, int]]) -> None:
    """The system's manager: at the client's cue, revoke A's way to B with the model's own
    means (real kernel operations, timed), then let the client go on."""
    await env.wait()
    t0 = await env.clock()
    ops = 0
    if model in ("capabilities", "virtual-threads"):
        # Task.unmap in the client's task: its capability to the server goes
        await Ipc(R_CLIENT_TASK, CALL, int(Proto.TASK),
                  (int(TaskOp.UNMAP), Fpage.obj(S_SERVER).word(), UNMAP_ALL_SPACES))
        ops = 1
    elif model in ("redirection", "pclans"):
        # one table update: client (its group) -> server (its group) blocked
        await Ipc(SLOT_COMMCTL, CALL, int(Proto.COMMCTL), (0, R_CLIENT_TASK, R_SERVER_TASK, cm.BLOCK, 0))
        ops = 1
    change.append((ops, await env.clock() - t0))
    await env.reply_and_wait(0)
    while True:  # the root stays (a chief at the top of the clan tree must be there)
        await env.reply_and_wait(-int(IpcErr.ENOT_EXISTENT))


async def intruder(env: Env, out: Outcome, to_server: int, claim: int) -> None:
    """A second program of domain A: calls the server as itself, then tries to pass as the client."""
    await env.compute(2_000_000)  # after the client's requests
    await Ipc(to_server, CALL, 1, (OWN,))
    out.forged = await Ipc(to_server, CALL, 1, (FORGED,), sender=claim, timeout=0, rcv_timeout=1_000_000)


async def scanner(env: Env, out: Outcome, ids: list[int]) -> None:
    """Probe thread ids with calls that do not wait to be received, and record each answer."""
    await env.compute(4_000_000)
    for kid in ids:
        r = await Ipc(tid(kid), CALL, 3, (0,), timeout=0, rcv_timeout=1_000_000)
        out.scan[kid] = (r.error, r.proto)


@dataclass
class System:
    """The built system: its kernel, threads and what the programs saw."""

    kernel: Kernel
    out: Outcome
    threads: dict[str, Thread]
    tasks: dict[str, Task]
    change: list[tuple[int, int]] = field(default_factory=list)  # (kernel operations, ns)


def _task(k: Kernel, name: str, creator: Task | None) -> Task:
    return k.create_task(name, None, creator=creator)


def _thread(k: Kernel, task: Task, name: str) -> Thread:
    th = k.create_thread(name, task)
    k.cap_insert(task, SLOT_TASK, task, Rights.RWSD, None)
    k.cap_insert(task, SLOT_THREAD, th, Rights.RWSD, None)
    return th


def _run(k: Kernel, th: Thread, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, prio: int,
         names: dict[str, int] | None = None) -> None:
    assert th.task is not None
    local = TaskLocal({"task": SLOT_TASK, "thread": SLOT_THREAD, **(names or {})})
    th.task.code.append(lambda sp: fn(Env(local), *args))
    k.start(th, len(th.task.code) - 1, 0, prio=prio)


def setup(model: str) -> System:
    """The workload's system under ``model``, ready to run."""
    k = Kernel(Machine(cores=1), comm_model=model)
    out = Outcome()
    root_task = _task(k, "root", None)
    rth = _thread(k, root_task, "root")
    if k.commctl is not None:
        k.cap_insert(root_task, SLOT_COMMCTL, k.commctl, Rights.RWSD, None)
    chief_a, chief_b = _task(k, "chief-a", root_task), _task(k, "chief-b", root_task)
    monitor = _task(k, "monitor", root_task)
    tasks = {"root": root_task, "chief-a": chief_a, "chief-b": chief_b, "monitor": monitor}
    tasks["client"] = _task(k, "client", chief_a)
    tasks["peer"] = _task(k, "peer", chief_a)
    tasks["intruder"] = _task(k, "intruder", chief_a)
    tasks["scanner"] = _task(k, "scanner", chief_a)
    tasks["server"] = _task(k, "server", chief_b)
    ths = {"root": rth, **{name: _thread(k, t, name) for name, t in tasks.items() if name != "root"}}
    s = System(k, out, ths, tasks)
    srv, cli, pr = ths["server"], ths["client"], ths["peer"]
    ids = model not in ("capabilities", "virtual-threads")
    # how the client names the server and its peer, and what it presents as itself
    if ids:
        to_server, to_peer, sender = tid(srv.kid), tid(pr.kid), 0
    else:
        to_server, to_peer = S_SERVER, S_PEER
        if model == "capabilities":
            for i, name in enumerate(("client", "intruder")):  # a session gate each, as L4Re opens
                gate = k._new(IpcGate, srv, GATE_LABEL + 4 * i)
                k.cap_insert(root_task, R_GATE + i, gate, Rights.RWSD, None)
                k.cap_map(root_task.caps.slots[R_GATE + i], tasks[name], S_SERVER, Rights.W, False)
            sender = 0
        else:  # virtual threads: thread capabilities in both directions
            k.cap_insert(tasks["client"], S_SERVER, srv, Rights.W, None)
            k.cap_insert(tasks["intruder"], S_SERVER, srv, Rights.W, None)
            k.cap_insert(tasks["server"], VT_CLIENT, cli, Rights.W, None)
            sender = VT_CLIENT
        k.cap_insert(tasks["client"], S_PEER, pr, Rights.W, None)
    mon = ths["monitor"]
    comm = k.comm
    if isinstance(comm, cm.PClans):
        for name, g in (("chief-a", 1), ("client", 1), ("peer", 1), ("intruder", 1), ("scanner", 1),
                        ("chief-b", 2), ("server", 2)):
            comm.group[tasks[name].kid] = g
        comm.rules[(1, 2)] = (cm.REDIRECT, mon)
        comm.default = cm.BLOCK
        comm.rules[(comm.key(monitor), 2)] = (cm.ALLOW, None)
    elif isinstance(comm, cm.Redirection):
        comm.default = cm.BLOCK
        for name in ("client", "intruder", "scanner"):
            comm.rules[(tasks[name].kid, tasks["server"].kid)] = (cm.REDIRECT, mon)
        comm.rules[(monitor.kid, tasks["server"].kid)] = (cm.ALLOW, None)
        comm.rules[(tasks["client"].kid, tasks["peer"].kid)] = (cm.ALLOW, None)
    elif isinstance(comm, cm.Redirectors):
        for name in ("client", "intruder", "scanner"):
            comm.redirector[tasks[name].kid] = mon

    k.cap_insert(root_task, R_CLIENT_TASK, tasks["client"], Rights.RWSD, None)
    k.cap_insert(root_task, R_SERVER_TASK, tasks["server"], Rights.RWSD, None)
    if ids:
        to_root = tid(rth.kid)
    else:
        k.cap_insert(tasks["client"], S_ROOT, rth, Rights.W, None)
        to_root = S_ROOT
    if isinstance(comm, cm.Redirection):  # (pclans too) the cue may reach the root
        comm.rules[(comm.key(tasks["client"]), comm.key(root_task))] = (cm.ALLOW, None)
    _run(k, rth, root, model, s.change, prio=60)
    _run(k, ths["server"], server, out, prio=50)
    _run(k, ths["peer"], peer, prio=50)
    # the policy the intermediaries enforce: domain A may reach the server and the root
    allowed = frozenset({tid(srv.kid), tid(rth.kid), tid(cli.kid), tid(pr.kid)})
    for name in ("chief-a", "chief-b", "monitor"):
        _run(k, ths[name], intermediary, out, allowed, prio=40)
    def probe() -> tuple[int, int]:
        return k.ipc_count, sum(th.traps for th in k.threads)

    _run(k, cli, client, out, to_server, to_peer, to_root, sender, probe, prio=20)
    claim = tid(cli.kid) if ids else VT_CLIENT
    _run(k, ths["intruder"], intruder, out, to_server, claim, prio=20)
    scan_ids = [*sorted(th.kid for th in k.threads), max(th.kid for th in k.threads) + 50]
    _run(k, ths["scanner"], scanner, out, scan_ids, prio=10)
    return s


POLICY_CHANGE = {
    "capabilities": "unmap the client's capability",
    "global-ids": "impossible: no control",
    "clans-chiefs": "impossible without recreating the task (its chief is fixed)",
    "redirection": "one table update",
    "redirectors": "none in the kernel: the redirector must refuse",
    "pclans": "one table update (between groups)",
    "virtual-threads": "unmap the client's thread capability",
}


def measure(model: str, trace: str | None = None) -> dict[str, Any]:
    """Run the workload under ``model`` and read the facts off the run (with ``trace``, a
    Perfetto trace of it is written there)."""
    s = setup(model)
    k, out, ths = s.kernel, s.out, s.threads
    if trace is not None:
        k.tracer = Tracer()

    k.run(until=50_000_000)
    if trace is not None:
        write_chrome(k.tracer.records, trace)
    ok = len(out.answers) == REQUESTS and all(
        a.error == 0 and a.words == (i + 1,) for i, a in enumerate(out.answers))
    seen = dict(out.labels)  # first word -> the label the server saw
    client_label = seen.get(0)
    # the server tells the client apart: the intruder's own call came with another label, and
    # its attempt to pass as the client never reached the server with the client's label
    authenticated = (client_label is not None and seen.get(OWN, client_label) != client_label
                     and seen.get(FORGED) != client_label)
    # scanning: does any id outside domain A (but the server and root it may reach) answer
    # otherwise than an id that is nobody's?
    reach = {ths[n].kid for n in ("chief-a", "client", "peer", "intruder", "scanner", "server", "root")}
    nobody = max(out.scan) if out.scan else 0
    scannable = any(ans != out.scan.get(nobody) for kid, ans in out.scan.items()
                    if kid not in reach and kid != nobody)
    after = out.after_change
    ops, change_ns = s.change[0] if s.change else (0, 0)
    (ipc0, traps0), (ipc1, traps1) = out.cost
    (iipc0, _), (iipc1, _) = out.intra_cost
    ipcs = (ipc1 - ipc0) // 2  # each hop is a call and its reply
    return {
        "model": model,
        "ok": ok,
        "ipcs_per_request": ipcs,
        "kernel_entries": traps1 - traps0,
        "latency_ns": out.latency[-1] if out.latency else 0,
        "intra_ipcs": (iipc1 - iipc0) // 2,
        "intra_ok": bool(out.intra) and out.intra[0].error == 0 and out.intra[0].words == (14,),
        "policy_change": POLICY_CHANGE[model],
        "policy_change_ops": ops,
        "policy_change_ns": change_ns if ops else 0,
        "policy_enforced": after is not None and (after.error != 0 or after.proto < 0),
        "sender_authenticated": authenticated,
        "scannable": scannable,
        "delivery_on_completion": ipcs == 1,
    }


def comm_control(trace_dir: str | None = None) -> list[dict[str, Any]]:
    """The experiment: the workload under every model, in the table's order."""
    return [measure(m, None if trace_dir is None else f"{trace_dir}/comm-{m}.json")
            for m in cm.COMM_MODELS]
