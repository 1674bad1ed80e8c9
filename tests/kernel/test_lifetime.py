"""Data lifetime: the kernel follows a marked secret's copies through the system's copies."""

from __future__ import annotations

import json

from click.testing import CliRunner

from l4sim.cli import main
from l4sim.kernel.abi import CALL, Err, MemRights, StrBuf, StrItem, pack_bytes
from l4sim.kernel.objects import Task
from l4sim.kernel.traps import Ipc, MarkSecret
from l4sim.tools.lifetime import compare, lifetime
from l4sim.user.env import Env

from .conftest import make_system, run_system

KEY = bytes(range(100, 132))


def test_marking_checks_its_arguments() -> None:
    """Too short, too long, a bad name or unmapped bytes: EINVAL or EFAULT, and no secret."""
    got: list[int] = []

    async def root(env: Env) -> int:
        got.append(await MarkSecret(0x5000, 4, "short"))
        got.append(await MarkSecret(0x5000, 1 << 20, "long"))
        got.append(await MarkSecret(0x5000, 16, 7))  # type: ignore[arg-type]
        got.append(await MarkSecret(0x7000_0000, 16, "nowhere"))
        return 0

    k, _ = run_system(root)
    assert got == [-Err.EINVAL, -Err.EINVAL, -Err.EINVAL, -Err.EFAULT]
    assert k.lifetime is None, "no secret: the copy paths never looked"


def test_copies_through_memory_words_and_strings_are_followed() -> None:
    """A store, a message's words and a string item each make a copy; overwriting ends one."""
    async def server(env: Env) -> None:
        msg = await env.wait(rcv=(StrBuf(0x30000, 64),))
        await env.reply(0)
        msg = await env.wait()
        await env.reply(0)
        del msg

    async def root(env: Env) -> int:
        await env.mem.write(0x20000, KEY)
        sid = await env.mark_secret(0x20000, len(KEY), "k")
        assert sid == 0
        await env.mem.write(0x20100, await env.mem.read(0x20000, len(KEY)))  # a copy
        srv = await env.spawn(server, name="server", prio=50)
        gate = await env.factory.create_gate(srv, 0x40)
        await Ipc(gate.slot, CALL, 1, (), (StrItem(0x20000, len(KEY)),))  # a string item
        await gate.call(2, *pack_bytes(KEY))  # words
        await env.mem.write(0x20100, bytes(len(KEY)))  # the copy cleared
        return 0

    k, _ = make_system(root)
    mine = k.tasks[0]
    s0 = k.create_task("sigma0")  # the test's kernel has no pager: frames mapped host-side
    s0.vspace.sigma0 = True
    for vpn in (0x20, 0x30):
        frame = k.sigma0_root(s0, 0x100 + vpn)
        assert frame is not None and isinstance(mine, Task)
        k.mem_map(frame, mine, vpn, int(MemRights.RW), False)
    k.run()
    assert k.lifetime is not None
    (s,) = k.lifetime.report(k)
    places = [(c["place"], c["ended"]) for c in s["copies"]]
    assert places.count(("frame", "still there at the end")) == 2  # the original and the string's
    assert ("frame", "overwritten") in places  # the cleared copy
    assert any(p == "registers" for p, _ in places)
    assert s["last_use_ns"] >= s["marked_ns"]


def test_the_scenario_and_the_policy() -> None:
    """moe's zero-on-free ends the copies left in freed heaps; deterministic; the CLI speaks JSON."""
    before, after = lifetime("lifetime"), lifetime("lifetime", zero_on_free=True)
    (b,), (a,) = before["secrets"], after["secrets"]
    assert b["at_end"] == 2 and a["at_end"] == 1
    freed = [c for c in b["copies"] if c["to_ns"] is None and "mapped by moe" in c["where"]]
    assert len(freed) == 2, "the keeper's heap and the shared dataspace, both only moe's"
    assert lifetime("lifetime") == before
    assert compare("lifetime") == {"before": before, "after": after}
    res = CliRunner().invoke(main, ["lifetime", "lifetime", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout.strip().splitlines()[-1]) == before
    assert "still there at the end" in CliRunner().invoke(main, ["lifetime"]).stdout
    bad = CliRunner().invoke(main, ["lifetime", "nosuch"])
    assert bad.exit_code == 2 and len(bad.stderr.splitlines()) == 1


def test_marking_costs_nothing_before_the_first_secret() -> None:
    """The kernel makes no lifetime record until a program marks a secret."""
    async def root(env: Env) -> int:
        return 0

    k, _ = run_system(root)
    assert k.lifetime is None
