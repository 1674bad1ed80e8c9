"""linux-pair's record store survives its clients: every request is answered with what its
protocol says, never -EIO, and the store serves on."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from l4sim.kernel.abi import CALL, SEND, Err, IpcErr, StrBuf, StrItem
from l4sim.kernel.traps import Ipc
from l4sim.scenarios.programs.store import STAT, answer
from l4sim.tools.boot import boot
from l4sim.user.env import Env

ME = __name__
OUT: dict[str, Any] = {}


async def hostile(env: Env) -> int:
    """Junk: words of every label, strings of random bytes (not UTF-8 too), a string longer than
    the store's buffer, a send nobody waits for the answer of, no receive buffer; then a put and
    a get that must still work."""
    svc = env.cap("store")
    base, _ = env.heap  # type: ignore[attr-defined]
    await env.mem.write(base, bytes(3 * 4096))
    rng = random.Random(5)
    got = []
    for _ in range(40):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
        await env.mem.write(base, data or b"\0")
        items = (StrItem(base, len(data)),) if rng.random() < 0.7 else ()
        flags = SEND if rng.random() < 0.1 else CALL
        rcv = (StrBuf(base + 4096, 4096),) if rng.random() < 0.8 else ()
        r = await env.ipc(Ipc(svc.slot, flags, rng.randrange(-5, 5), (rng.getrandbits(64),), items, rcv=rcv))
        got.append((r.error, r.proto))
    r = await env.ipc(Ipc(svc.slot, CALL, 0, (5000,), (StrItem(base, 5000),), rcv=(StrBuf(base + 4096, 4096),)))
    got.append((r.error, r.proto))
    for line in (b"put k v w", b"get k"):
        await env.mem.write(base, line)
        r = await env.ipc(Ipc(svc.slot, CALL, 0, (len(line),), (StrItem(base, len(line)),),
                              rcv=(StrBuf(base + 4096, 4096),)))
        got.append((r.error, r.proto, await env.mem.read(base + 4096, r.words[0]) if r.words else b""))
    r = await svc.call(STAT)
    OUT["got"], OUT["stat"] = got, (r.error, r.proto, r.words)
    return 0


def test_the_store_answers_junk_and_serves_on(tmp_path: Path) -> None:
    p = tmp_path / "system.py"
    p.write_text(f'''
store = channel("store")
start("store", "l4sim.scenarios.programs.store:store_server", caps={{"store": store.server()}}, prio=30,
      daemon=True)
start("hostile", "{ME}:hostile", caps={{"store": store}}, prio=20)
''')
    res = boot(str(p))
    assert "hostile: exit 0" in res.kernel.machine.uart.text()
    got = OUT["got"]
    assert all(g[1] != -Err.EIO for g in got)
    assert all(g[1] in (0, -Err.EINVAL, -Err.ENOENT) or g[0] for g in got)
    assert got[-3][0] == IpcErr.SEMSGCUT  # longer than the store's buffer: cut, not served
    assert got[-2] == (0, 0, b"ok\n") and got[-1] == (0, 0, b"v w\n")
    assert OUT["stat"] == (0, 0, (1, 3))


def test_the_protocol() -> None:
    records: dict[str, str] = {}
    assert answer(records, "put a b c\n") == (0, b"ok\n") and records == {"a": "b c"}
    assert answer(records, "get a") == (0, b"b c\n")
    assert answer(records, "get z") == (-Err.ENOENT, b"")
    assert answer(records, "put a") == (-Err.EINVAL, b"") and answer(records, "") == (-Err.EINVAL, b"")
