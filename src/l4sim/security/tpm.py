"""The TPM driver: a user-level server that alone talks to the TPM, and its clients' side.

The kernel never touches the TPM.  This native program holds the chip's
I/O ports (``ioports("tpm")`` in its startup script: ned grants them after
the measured boot) and speaks TPM 2.0 to it through the TIS FIFO
(:class:`~l4sim.runtime.measure.TisClient`), one marshalled command at a
time.  It serves each client on a channel of its own (``svc.NAME``, see
:mod:`l4sim.security.clients`), and the client's name decides what it may
have: the PCRs and quotes are everybody's, but sealed data and counters are
per client.  The data it unseals enters the system here: the driver marks
it a secret where it lies in its response buffer (``l4sim lifetime``).

Protocol (tag label :data:`TPM_PROTO`; word 0 the operation; byte fields
are ``pack_bytes`` words)
--------------------------------------------------------------------------

==================  =================================  ===================================
operation           words after the op                 reply words (label 0)
==================  =================================  ===================================
``PCR_READ`` 0      pcr                                the PCR's value (32 bytes)
``EXTEND`` 1        pcr (16..23), digest (32 bytes)    --
``RESET`` 2         pcr (16..23)                       --
``QUOTE`` 3         PCR mask, nonce (up to 64 bytes)   TPMS_ATTEST, TPMT_SIGNATURE
``AK_PUBLIC`` 4     --                                 the attestation key's TPMT_PUBLIC
``SEAL`` 5          PCR mask, data (up to 64 bytes)    the sealed blob
``UNSEAL`` 6        the sealed blob                    the data
``COUNTER_READ`` 7  --                                 the client's counter (0: never moved)
``COUNTER_INC`` 8   --                                 the counter's new value
``RANDOM`` 9        n (1..256)                         n random bytes from the TPM
==================  =================================  ===================================

Refusals (the label): ``-EPERM`` extending or resetting a PCR below 16 (the
boot's measurements are not the clients' to change); ``-EACCES`` unsealing
while the PCRs are not what the blob was sealed to (the TPM's policy check
failed), or a blob another client sealed; ``-EBADMSG`` a blob that is not
one the TPM made (its integrity check failed); ``-EINVAL`` a malformed
request; ``-EIO`` the TPM failed (the line on the log says how).

Sealing is TPM 2.0's: ``TPM2_Create`` of a sealed data object under the
storage root key with a ``PolicyPCR`` policy over the chosen PCRs' current
values (read first), and for unsealing ``Load``, a policy session,
``PolicyPCR`` and ``Unseal``; the blob is the PCR mask and the object's
TPM2B_PRIVATE and TPM2B_PUBLIC.  The driver seals the client's name with the
data and hands the data only back to that client.  Each client's counter is
an NV counter of its own, defined on first use at an index made from the
client's name (:func:`counter_index`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from l4sim.kernel.abi import Err, pack_bytes, unpack_bytes
from l4sim.kernel.traps import Msg
from l4sim.machine import tpm2 as t
from l4sim.runtime.measure import TisClient, TisError
from l4sim.security.clients import bind_clients, call_checked, fields, take_bytes
from l4sim.user.env import Env, IpcCap, L4Error
from l4sim.user.server import request_failed

#: the protocol label of the TPM driver
TPM_PROTO = 0x4101
PCR_READ, EXTEND, RESET, QUOTE, AK_PUBLIC, SEAL, UNSEAL, COUNTER_READ, COUNTER_INC, RANDOM = range(10)
EBADMSG = 74
#: the shortest data whose unsealing is marked a secret (the kernel follows no shorter)
MIN_SECRET = 8
#: the most bytes a client may seal (its name goes with them into the TPM's 128)
SEAL_MAX = 64
RANDOM_MAX = 256
#: NV counters live at this index plus 16 bits of the client's name's hash
COUNTER_BASE = 0x01500000
_PW = ((t.RS_PW, b""),)
#: the response buffer's offset from the command buffer (a TPM's commands fit in 4 KiB)
RSP_OFF = 4096


def counter_index(client: str) -> int:
    """The NV index of a client's counter (the same for the same name on every boot)."""
    return COUNTER_BASE | int.from_bytes(t.sha256(client.encode())[:2], "big")


def mask_pcrs(mask: int) -> list[int]:
    if not 0 < mask < 1 << t.NUM_PCRS:
        raise ValueError(f"PCR mask {mask:#x}: name PCRs 0..{t.NUM_PCRS - 1}")
    return [n for n in range(t.NUM_PCRS) if mask >> n & 1]


class TpmFailed(Exception):
    """A TPM command answered a response code: ``rc`` (and what was tried)."""

    def __init__(self, what: str, rc: int) -> None:
        super().__init__(f"{what}: TPM_RC {rc:#x}")
        self.rc = rc


@dataclass
class Chip:
    """TPM 2.0 commands, marshalled and sent through the FIFO.

    As a real driver does, it assembles each command in a buffer of its memory
    (``buf``) and reads each response into another (``buf + RSP_OFF``), each
    overwriting the last: what a command or response carried -- the data a
    client seals, the data it unseals -- stays there until a longer one
    covers it (``l4sim lifetime`` shows how long).
    """

    tis: TisClient
    #: the command buffer's address in the driver's memory (the response buffer follows)
    buf: int
    #: the last response, as it lies in the response buffer
    raw: bytes = b""
    #: where the data of the last Unseal lies in memory (in the response buffer)
    unsealed_at: int = 0

    async def run(self, what: str, cc: int, handles: tuple[int, ...] = (), params: bytes = b"",
                  auths: tuple[tuple[int, bytes], ...] = (), nhandles: int = 0) -> t.Response:
        mem = self.tis.env.mem
        cmd = t.command(cc, handles, params, auths=auths)
        await mem.write(self.buf, cmd)
        raw = await self.tis.transact(cmd)
        await mem.write(self.buf + RSP_OFF, raw)
        self.raw = raw
        rsp = t.response(raw, nhandles)
        if rsp.rc != t.RC_SUCCESS:
            raise TpmFailed(what, rsp.rc)
        return rsp

    async def pcr_read(self, pcrs: list[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for i in range(0, len(pcrs), 8):  # eight digests a response
            part = pcrs[i : i + 8]
            p = (await self.run("PCR_Read", t.CC_PCR_READ, params=t.pcr_selection(part))).params
            p.u32()
            got = [n for _alg, bits in t.read_pcr_selection(p) for n in t.pcrs_of(bits)]
            if got != part or p.u32() != len(part):
                raise TpmFailed("PCR_Read returned other PCRs", t.RC_FAILURE)
            out.update({n: p.tpm2b(32) for n in part})
        return out

    async def extend(self, pcr: int, digest: bytes) -> None:
        await self.run("PCR_Extend", t.CC_PCR_EXTEND, (pcr,),
                       t.Writer().u32(1).u16(t.ALG_SHA256).raw(digest).bytes(), _PW)

    async def reset(self, pcr: int) -> None:
        await self.run("PCR_Reset", t.CC_PCR_RESET, (pcr,), auths=_PW)

    async def quote(self, nonce: bytes, pcrs: list[int]) -> tuple[bytes, bytes]:
        p = (await self.run("Quote", t.CC_QUOTE, (t.AK_HANDLE,),
                            t.Writer().tpm2b(nonce).u16(t.ALG_NULL).raw(t.pcr_selection(pcrs)).bytes(),
                            _PW)).params
        attest = p.tpm2b()
        return attest, p.raw(p.left())

    async def ak_public(self) -> bytes:
        return (await self.run("ReadPublic", t.CC_READ_PUBLIC, (t.AK_HANDLE,))).params.tpm2b()

    async def seal(self, data: bytes, pcrs: list[int]) -> bytes:
        policy = t.pcr_policy(await self.pcr_read(pcrs))
        sens = t.Writer().tpm2b(b"").tpm2b(data).bytes()
        template = t.keyedhash_public(policy, t.SEAL_ATTRIBUTES, b"")
        params = (t.Writer().tpm2b(sens).tpm2b(template).tpm2b(b"").raw(t.pcr_selection([])).bytes())
        p = (await self.run("Create", t.CC_CREATE, (t.SRK_HANDLE,), params, _PW)).params
        private, public = p.tpm2b(), p.tpm2b()
        mask = sum(1 << n for n in pcrs)
        return t.Writer().u32(mask).tpm2b(private).tpm2b(public).bytes()

    async def unseal(self, blob: bytes) -> bytes:
        r = t.Reader(blob)
        pcrs = mask_pcrs(r.u32())
        private, public = r.tpm2b(), r.tpm2b()
        if r.left():
            raise t.Unmarshal("bytes after the sealed blob")
        item = (await self.run("Load", t.CC_LOAD, (t.SRK_HANDLE,), t.Writer().tpm2b(private).tpm2b(public).bytes(),
                               _PW, nhandles=1)).handles[0]
        session = at = 0
        try:
            start = t.Writer().tpm2b(bytes(16)).tpm2b(b"").u8(t.SE_POLICY).u16(t.ALG_NULL).u16(t.ALG_SHA256)
            session = (await self.run("StartAuthSession", t.CC_START_AUTH_SESSION, (t.RH_NULL, t.RH_NULL),
                                      start.bytes(), nhandles=1)).handles[0]
            await self.run("PolicyPCR", t.CC_POLICY_PCR, (session,),
                           t.Writer().tpm2b(b"").raw(t.pcr_selection(pcrs)).bytes())
            data = (await self.run("Unseal", t.CC_UNSEAL, (item,), auths=((session, b""),))).params.tpm2b()
            at = self.buf + RSP_OFF + self.raw.find(data)  # after the header: FlushContext's answers leave it
        finally:
            for h in (session, item):
                if h:
                    await self.run("FlushContext", t.CC_FLUSH_CONTEXT, params=t.Writer().u32(h).bytes())
        self.unsealed_at = at
        return data

    async def counter(self, index: int, increment: bool) -> int:
        """The counter at ``index`` (defined on first use), incremented first if asked."""
        try:
            await self.run("NV_ReadPublic", t.CC_NV_READ_PUBLIC, (index,))
        except TpmFailed:
            pub = t.Writer().u32(index).u16(t.ALG_SHA256).u32(t.COUNTER_ATTRIBUTES).tpm2b(b"").u16(8).bytes()
            await self.run("NV_DefineSpace", t.CC_NV_DEFINE_SPACE, (t.RH_OWNER,),
                           t.Writer().tpm2b(b"").tpm2b(pub).bytes(), _PW)
        if increment:
            await self.run("NV_Increment", t.CC_NV_INCREMENT, (index, index), auths=_PW)
        try:
            raw = (await self.run("NV_Read", t.CC_NV_READ, (index, index), t.Writer().u16(8).u16(0).bytes(),
                                  _PW)).params.tpm2b()
        except TpmFailed as e:
            if e.rc == t.RC_NV_UNINITIALIZED:
                return 0  # never incremented
            raise
        return int.from_bytes(raw, "big")

    async def random(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            p = (await self.run("GetRandom", t.CC_GET_RANDOM, params=t.Writer().u16(n - len(out)).bytes())).params
            chunk = p.tpm2b()
            if not chunk:
                raise TpmFailed("GetRandom gave nothing", t.RC_FAILURE)
            out += chunk
        return out


async def driver(env: Env) -> int:
    """The driver's program: bind the client channels, then serve forever.  Its command and
    response buffers are the first two pages of its heap."""
    heap, _ = env.heap  # type: ignore[attr-defined]
    chip = Chip(TisClient(env), heap)
    clients = await bind_clients(env)
    msg = await env.wait()
    while True:
        if msg.error:
            msg = await env.wait()
            continue
        client = clients.get(msg.label & ~3)
        try:
            if client is None or msg.proto != TPM_PROTO or not msg.words:
                reply: tuple[int, ...] = (-Err.ENOSYS,)
            else:
                reply = await _serve(env, chip, client, msg)
        except (ValueError, IndexError, t.Unmarshal):
            reply = (-Err.EINVAL,)
        except (TpmFailed, TisError) as exc:
            reply = (await request_failed(env, "tpm", msg, exc),)
        msg = await env.answer(reply[0], reply[1:])


async def _serve(env: Env, chip: Chip, client: str, msg: Msg) -> tuple[int, ...]:
    w = msg.words
    op = w[0]
    if op == PCR_READ:
        n = w[1]
        if not 0 <= n < t.NUM_PCRS:
            return (-Err.EINVAL,)
        return (0, *pack_bytes((await chip.pcr_read([n]))[n]))
    if op in (EXTEND, RESET):
        if w[1] not in t.RESETTABLE_PCRS:
            return (-Err.EPERM,)
        if op == RESET:
            await chip.reset(w[1])
        else:
            digest, _ = take_bytes(w, 2)
            if len(digest) != t.DIGEST_SIZE:
                return (-Err.EINVAL,)
            await chip.extend(w[1], digest)
        return (0,)
    if op == QUOTE:
        nonce, _ = take_bytes(w, 2)
        if len(nonce) > 64:
            return (-Err.EINVAL,)
        attest, sig = await chip.quote(nonce, mask_pcrs(w[1]))
        return (0, *fields(attest, sig))
    if op == AK_PUBLIC:
        return (0, *pack_bytes(await chip.ak_public()))
    if op == SEAL:
        data, _ = take_bytes(w, 2)
        if len(data) > SEAL_MAX:
            return (-Err.EINVAL,)
        name = client.encode()
        return (0, *pack_bytes(await chip.seal(bytes([len(name)]) + name + data, mask_pcrs(w[1]))))
    if op == UNSEAL:
        blob, _ = take_bytes(w, 1)
        try:
            inner = await chip.unseal(blob)
        except TpmFailed as e:
            base = t.rc_base(e.rc)
            if base in (t.RC_POLICY_FAIL, t.RC_VALUE) or e.rc == t.RC_PCR_CHANGED:
                return (-Err.EACCES,)
            if base in (t.RC_INTEGRITY, t.RC_INSUFFICIENT, t.RC_SIZE, t.RC_TYPE) or e.rc == 0x0A5:
                return (-EBADMSG,)
            raise
        except (t.Unmarshal, ValueError):  # not even the shape of a blob
            return (-EBADMSG,)
        name = client.encode()
        if inner[: 1 + len(name)] != bytes([len(name)]) + name:
            return (-Err.EACCES,)  # another client's secret: the TPM opened it, the driver does not hand it out
        data = inner[1 + len(name):]
        if len(data) >= MIN_SECRET:  # the secret entered here: in the response buffer
            with contextlib.suppress(L4Error):  # a mark the kernel cannot follow changes nothing
                await env.mark_secret(chip.unsealed_at + 1 + len(name), len(data), f"unsealed for {client}"[:64])
        return (0, *pack_bytes(data))
    if op in (COUNTER_READ, COUNTER_INC):
        return (0, await chip.counter(counter_index(client), op == COUNTER_INC))
    if op == RANDOM:
        n = w[1]
        if not 1 <= n <= RANDOM_MAX:
            return (-Err.EINVAL,)
        return (0, *pack_bytes(await chip.random(n)))
    return (-Err.ENOSYS,)


class TpmRefused(Exception):
    """The driver refused a request: ``err`` is the errno it answered."""

    def __init__(self, what: str, err: int) -> None:
        super().__init__(f"{what}: refused (-{err})")
        self.err = err


class TpmClient:
    """A client's side of the driver's protocol, on the channel ``gate``."""

    def __init__(self, gate: IpcCap) -> None:
        self.gate = gate

    async def _call(self, what: str, *words: int) -> tuple[int, ...]:
        return await call_checked(self.gate, TPM_PROTO, what, words, TpmRefused)

    async def pcr(self, n: int) -> bytes:
        return unpack_bytes(await self._call("PCR_READ", PCR_READ, n))

    async def extend(self, n: int, digest: bytes) -> None:
        await self._call("EXTEND", EXTEND, n, *pack_bytes(digest))

    async def reset(self, n: int) -> None:
        await self._call("RESET", RESET, n)

    async def quote(self, nonce: bytes, pcrs: list[int]) -> tuple[bytes, bytes]:
        w = await self._call("QUOTE", QUOTE, sum(1 << n for n in pcrs), *pack_bytes(nonce))
        attest, i = take_bytes(w, 0)
        return attest, take_bytes(w, i)[0]

    async def ak_public(self) -> bytes:
        return unpack_bytes(await self._call("AK_PUBLIC", AK_PUBLIC))

    async def seal(self, data: bytes, pcrs: list[int]) -> bytes:
        return unpack_bytes(await self._call("SEAL", SEAL, sum(1 << n for n in pcrs), *pack_bytes(data)))

    async def unseal(self, blob: bytes) -> bytes:
        return unpack_bytes(await self._call("UNSEAL", UNSEAL, *pack_bytes(blob)))

    async def counter(self, increment: bool = False) -> int:
        return (await self._call("COUNTER", COUNTER_INC if increment else COUNTER_READ))[0]

    async def random(self, n: int) -> bytes:
        return unpack_bytes(await self._call("RANDOM", RANDOM, n))
