"""The TPM driver: what its clients may do with the TPM, and what they may not.

The programs are defined here and named ``{__name__}:function``.
"""

from __future__ import annotations

import io
from pathlib import Path

from l4sim.kernel.abi import Err
from l4sim.kernel.kernel import Kernel
from l4sim.machine import tpm2 as t
from l4sim.machine.board import Machine
from l4sim.runtime.system import setup_script
from l4sim.security.tpm import EBADMSG, TPM_PROTO, UNSEAL, TpmClient, TpmRefused, counter_index
from l4sim.user.env import Env

ME = __name__


async def _try(env: Env, what: str, coro: object) -> object:
    try:
        got = await coro  # type: ignore[misc]
    except TpmRefused as e:
        await env.print(f"{what}: refused -{e.err}")
        return None
    await env.print(f"{what}: ok")
    return got


async def probe(env: Env) -> int:
    """Everything one client may and may not do."""
    c = TpmClient(env.cap("alice"))
    await _try(env, "extend 8", c.extend(8, bytes(32)))
    await _try(env, "reset 0", c.reset(0))
    await _try(env, "extend 16", c.extend(16, t.sha256(b"app")))
    await env.print(f"pcr 16 {(await c.pcr(16)).hex()}")
    blob = await c.seal(b"for alice", [8, 9])
    await env.print(f"unsealed {(await c.unseal(blob)).decode()}")
    await _try(env, "bob unseals alice's blob", TpmClient(env.cap("bob")).unseal(blob))
    bound = await c.seal(b"bound to 16", [16])
    await c.extend(16, t.sha256(b"something else"))
    await _try(env, "unseal after PCR 16 moved", c.unseal(bound))
    await c.reset(16)
    await _try(env, "garbage blob", c.unseal(b"\0" * 40))
    await env.print(f"random {len(await c.random(100))}")
    await env.print(f"counters {await c.counter(True)} {await c.counter(True)} {await TpmClient(env.cap('bob')).counter()}")
    msg = await env.cap("alice").call(TPM_PROTO, 99)
    await env.print(f"op 99: {msg.proto}")
    msg = await env.cap("alice").call(TPM_PROTO, UNSEAL, 100, 0)  # a field of 100 bytes in one word
    await env.print(f"cut field: {msg.proto}")
    return 0


SCRIPT = f'''
alice, bob = channel("alice"), channel("bob")
start("tpm", "l4sim.security.tpm:driver", caps={{"tpm": ioports("tpm"), "svc.alice": alice.server(),
      "svc.bob": bob.server()}}, prio=40, daemon=True)
start("probe", "{ME}:probe", caps={{"alice": alice, "bob": bob}}, prio=10)
'''


def boot(tmp_path: Path) -> tuple[Machine, str]:
    p = tmp_path / "tpm.py"
    p.write_text(SCRIPT)
    out = io.StringIO()
    m = Machine(cores=2, seed=0, console=out)
    k = Kernel(m)
    system = setup_script(k, p)
    k.run(until=10_000_000_000, stop=system.done)
    k.shutdown()
    return m, out.getvalue()


def test_the_driver_serves_the_pcrs_sealing_counters_and_randomness(tmp_path: Path) -> None:
    """Clients extend and reset only 16..23; sealed data opens for its owner while the PCRs hold."""
    m, out = boot(tmp_path)
    assert "extend 8: refused -1" in out and "reset 0: refused -1" in out  # -EPERM
    assert "extend 16: ok" in out
    assert f"pcr 16 {t.sha256(bytes(32), t.sha256(b'app')).hex()}" in out
    assert "unsealed for alice" in out
    assert f"bob unseals alice's blob: refused -{int(Err.EACCES)}" in out
    assert f"unseal after PCR 16 moved: refused -{int(Err.EACCES)}" in out
    assert f"garbage blob: refused -{EBADMSG}" in out
    assert "random 100" in out
    assert "counters 1 2 0" in out  # per client
    assert f"op 99: {-int(Err.ENOSYS)}" in out and f"cut field: {-int(Err.EINVAL)}" in out
    assert "ned: probe: exit 0" in out
    assert m.tpm.nv.indices[counter_index("alice")].value == 2
    assert counter_index("bob") in m.tpm.nv.indices and m.tpm.nv.indices[counter_index("bob")].value is None


def test_the_driver_is_deterministic(tmp_path: Path) -> None:
    """Two runs: the same console, the same PCRs, the same TPM state."""
    (m1, o1), (m2, o2) = boot(tmp_path), boot(tmp_path)
    assert o1 == o2 and m1.tpm.pcrs == m2.tpm.pcrs and m1.now == m2.now
