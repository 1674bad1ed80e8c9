"""The attestation agent: answers a remote verifier's challenge with a quote and the event log.

Remote attestation as TPM 2.0 does it: the verifier sends a fresh nonce;
the agent asks the TPM driver for a quote of the measured PCRs (8 and 9)
over that nonce, signed by the TPM's attestation key, and sends back the
quote, the PCR values, the key's public area and the event log (which it
holds as ``eventlog()``: a read-only dataspace ned filled).  It trusts
nothing of it -- the verifier checks the signature, that the log replays to
the PCRs and that the PCRs are what it expects; the agent is only the
messenger, and so is not part of anyone's TCB.

The verifier is on the other end of the second serial line
(``ioports("serial1")``; ``l4sim attest`` plays it on the host).  Frames:

- request: ``L4AQ``, one byte n, then n bytes of nonce (1..64);
- answer: ``L4AR``, then six fields, each a 32-bit little-endian length and
  its bytes: the TPMS_ATTEST, the TPMT_SIGNATURE, the attestation key's
  TPMT_PUBLIC, the PCR values (PCR 8's then PCR 9's), the event log, and an
  error text (empty when all went well; then the other fields are empty).
"""

from __future__ import annotations

import struct

from l4sim.kernel.abi import CALL, MapItem
from l4sim.kernel.traps import Ipc
from l4sim.machine.board import COM2
from l4sim.runtime.measure import MEASURED_PCRS
from l4sim.runtime.protocols import DATASPACE, RM, DsOp, RmFlag, RmOp
from l4sim.security.tpm import TpmClient, TpmRefused
from l4sim.user.env import Env, Gate

REQUEST = b"L4AQ"
ANSWER = b"L4AR"
#: how long the agent waits for the verifier's challenge (simulated ns)
WAIT_NS = 1_000_000_000
#: the line's two registers: data, line status (bit 0: a byte is there)
DATA, LSR = COM2, COM2 + 5


class LinkError(Exception):
    """The serial line did not carry a request."""


async def _read(env: Env, n: int, waited: list[int]) -> bytes:
    out = bytearray()
    while len(out) < n:
        if await env.io.inb(LSR) & 1:
            out.append(await env.io.inb(DATA))
            continue
        if waited[0] >= WAIT_NS:
            raise LinkError(f"the verifier sent {len(out)} of {n} bytes")
        await env.receive(env.thread, timeout=100_000)
        waited[0] += 100_000
    return bytes(out)


async def read_request(env: Env) -> bytes:
    """The verifier's nonce, from the serial line."""
    waited = [0]
    if await _read(env, 4, waited) != REQUEST:
        raise LinkError("the line does not start with a request")
    n = (await _read(env, 1, waited))[0]
    if not 1 <= n <= 64:
        raise LinkError(f"a nonce of {n} bytes (1..64 are allowed)")
    return await _read(env, n, waited)


async def send_answer(env: Env, *parts: bytes) -> None:
    data = ANSWER + b"".join(struct.pack("<I", len(p)) + p for p in parts)
    for b in data:
        await env.io.outb(DATA, b)


async def read_eventlog(env: Env, ds: Gate) -> bytes:
    """The event log from its dataspace: attached read-only, its length, then its bytes."""
    info = await env.ipc(Ipc(ds.slot, CALL, DATASPACE, (DsOp.INFO,)))
    if info.error or info.proto < 0:
        raise LinkError("the event log's dataspace does not answer")
    size = info.words[0]
    msg = await env.cap("rm", Gate).call(RM, RmOp.ATTACH, 0, size, RmFlag.SEARCH_ADDR | RmFlag.READ_ONLY, 0,
                                         items=(MapItem(ds.fpage()),))
    if msg.error or msg.proto < 0:
        raise LinkError("the event log's dataspace cannot be attached")
    base = msg.words[0]
    n = int.from_bytes(await env.mem.read(base, 8), "little")
    if n > size - 8:
        raise LinkError(f"the event log says {n} bytes in a dataspace of {size}")
    return await env.mem.read(base + 8, n)


async def agent(env: Env) -> int:
    """The agent's program: ``tpm`` (a channel to the TPM driver), ``eventlog``, ``link`` (serial1)."""
    try:
        nonce = await read_request(env)
    except LinkError as e:
        await env.print(f"no challenge: {e}")
        await send_answer(env, b"", b"", b"", b"", b"", str(e).encode())
        return 1
    tpm = TpmClient(env.cap("tpm"))
    try:
        log = await read_eventlog(env, env.cap("eventlog", Gate))
        ak = await tpm.ak_public()
        attest, sig = await tpm.quote(nonce, list(MEASURED_PCRS))
        pcrs = b"".join([await tpm.pcr(n) for n in MEASURED_PCRS])
    except (LinkError, TpmRefused) as e:
        await env.print(f"cannot attest: {e}")
        await send_answer(env, b"", b"", b"", b"", b"", str(e).encode())
        return 1
    await send_answer(env, attest, sig, ak, pcrs, log, b"")
    await env.print(f"quoted PCRs {', '.join(map(str, MEASURED_PCRS))} for a nonce of {len(nonce)} bytes")
    return 0
