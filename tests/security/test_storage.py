"""The storage server and the untrusted store: the protocol, name spaces, what the store sees.

The programs are defined here and named ``{__name__}:function``.
"""

from __future__ import annotations

import io
from pathlib import Path

from l4sim.kernel.abi import Err
from l4sim.kernel.kernel import Kernel
from l4sim.machine.board import NVRAM_SIZE, Machine
from l4sim.machine.tpm import TpmNv
from l4sim.runtime.system import setup_script
from l4sim.security import store as st
from l4sim.security.storage import EBADF, FILE_MAX, NONCE_SIZE, StorageClient, StorageError
from l4sim.security.store import StoreClient
from l4sim.user.env import Env

ME = __name__
BIG = bytes(range(256)) * 4 + b"the end"


async def _err(env: Env, what: str, coro: object) -> None:
    try:
        await coro  # type: ignore[misc]
        await env.print(f"{what}: ok")
    except StorageError as e:
        await env.print(f"{what}: -{e.err}")


async def alice(env: Env) -> int:
    s = StorageClient(env.cap("storage"))
    await _err(env, "slash", s.open("a/b", create=True))
    await _err(env, "empty", s.open("", create=True))
    await _err(env, "missing", s.open("nothing"))
    await _err(env, "bad fd", s.read(7))
    if "big" not in await s.names():
        fd = await s.open("big", create=True)
        await s.write(fd, BIG)
        await env.print(f"closed at version {await s.close(fd)}")
        fd = await s.open("empty-one", create=True)
        await s.close(fd)
        fd = await s.open("huge", create=True)
        await _err(env, "too big", s.write(fd, b"x" * (FILE_MAX + 1)))  # what fit is written
        await s.close(fd)
    fd = await s.open("big")
    got = await s.read(fd)
    await s.close(fd)
    await env.print(f"big reads back: {got == BIG}; names: {await s.names()}")
    return 0


async def bob(env: Env) -> int:
    s = StorageClient(env.cap("storage"))
    await env.print(f"bob's names: {await s.names()}")
    await _err(env, "bob opens big", s.open("big"))
    return 0


async def store_user(env: Env) -> int:
    """Many versions of one key in a small NVRAM: the store compacts and keeps the last."""
    c = StoreClient(env.cap("store"))
    for i in range(40):
        await c.put(b"k", bytes([i]) * 300)
    await c.put(b"other", b"o")
    last = await c.get(b"k")
    await c.delete(b"other")
    await env.print(f"last {last == bytes([39]) * 300} other {await c.get(b'other')} missing {await c.get(b'zz')}")
    return 0


SCRIPT = f'''
S = "l4sim.security"
tpm_s, store, a, b = channel("tpm-storage"), channel("store"), channel("a"), channel("b")
start("tpm", f"{{S}}.tpm:driver", caps={{"tpm": ioports("tpm"), "svc.storage": tpm_s.server()}}, prio=40, daemon=True)
start("store", f"{{S}}.store:store", caps={{"nvram": ioports("nvram"), "svc.storage": store.server()}}, prio=30,
      daemon=True)
start("storage", f"{{S}}.storage:server", caps={{"tpm": tpm_s, "store": store, "svc.alice": a.server(),
      "svc.bob": b.server()}}, prio=35, daemon=True)
start("alice", "{ME}:alice", caps={{"storage": a}}, prio=20)
start("bob", "{ME}:bob", caps={{"storage": b}}, prio=10)
'''


def boot(path: Path, nv: TpmNv, disk: bytearray) -> str:
    out = io.StringIO()
    m = Machine(cores=2, seed=0, console=out, tpm_nv=nv, nvram=disk)
    k = Kernel(m)
    system = setup_script(k, path)
    k.run(until=10_000_000_000, stop=system.done)
    k.shutdown()
    return out.getvalue()


def test_files_by_name_per_client_and_the_protocol_errors(tmp_path: Path) -> None:
    """Open/read/write/list with their refusals; each client sees its own files only."""
    p = tmp_path / "s.py"
    p.write_text(SCRIPT)
    nv, disk = TpmNv(0), bytearray(NVRAM_SIZE)
    out = boot(p, nv, disk)
    for line in (f"slash: -{int(Err.EINVAL)}", f"empty: -{int(Err.EINVAL)}", f"missing: -{int(Err.ENOENT)}",
                 f"bad fd: -{EBADF}", f"too big: -{int(Err.ERANGE)}", "closed at version 1",
                 "big reads back: True; names: ['big', 'huge']", "bob's names: []", f"bob opens big: -{int(Err.ENOENT)}"):
        assert line in out, (line, out)
    again = boot(p, nv, disk)  # a reboot: the files are there, nothing is written twice
    assert "big reads back: True; names: ['big', 'huge']" in again and "closed at version" not in again


def test_the_store_sees_only_ciphertext_and_fresh_nonces(tmp_path: Path) -> None:
    """No file byte, file name or client name in the store's medium; every blob has its own nonce."""
    p = tmp_path / "s.py"
    p.write_text(SCRIPT)
    nv, disk = TpmNv(0), bytearray(NVRAM_SIZE)
    boot(p, nv, disk)
    boot(p, nv, disk)
    assert BIG[:64] not in disk and b"the end" not in disk and b"alice" not in disk and b"big" not in disk
    recs = st.records(disk)
    keys = sorted(st.current(recs))
    assert keys[:1] == [b"f" + keys[0][1:]] and b"key" in keys and b"meta" in keys
    nonces = [r.value[:NONCE_SIZE] for r in recs if r.kind == st.PUT_RECORD and r.key != b"key"]
    assert len(nonces) == len(set(nonces)) >= 4


def test_the_store_compacts_a_full_medium_and_keeps_the_last_values(tmp_path: Path) -> None:
    """40 versions of 300 bytes in 8 KiB: old versions go, the last one stays; delete works."""
    p = tmp_path / "st.py"
    p.write_text(f'''
s = channel("store")
start("store", "l4sim.security.store:store", caps={{"nvram": ioports("nvram"), "svc.u": s.server()}}, daemon=True,
      prio=30)
start("u", "{ME}:store_user", caps={{"store": s}}, prio=10)
''')
    disk = bytearray(8 << 10)
    out = boot(p, TpmNv(0), disk)
    assert "last True other None missing None" in out
    assert st.current(st.records(disk)) == {b"k": bytes([39]) * 300}
    assert len(st.records(disk)) < 40


def test_the_medium_format_round_trips_and_ends_at_a_torn_record() -> None:
    """records/append/current on bytes; a record cut short ends the log there."""
    disk = bytearray(1024)
    assert st.records(disk) == []
    st.append(disk, st.Record(st.PUT_RECORD, b"a", b"1"))
    st.append(disk, st.Record(st.PUT_RECORD, b"a", b"2"))
    st.append(disk, st.Record(st.DELETE_RECORD, b"a", b""))
    st.append(disk, st.Record(st.PUT_RECORD, b"b", b"3"))
    assert [r.value for r in st.records(disk)] == [b"1", b"2", b"", b"3"]
    assert st.current(st.records(disk)) == {b"b": b"3"}
    torn = bytearray(disk)
    torn[st.HEADER + 4 * 7] = 0xFF  # a record's length beyond the log
    assert len(st.records(bytes(torn))) < 4
