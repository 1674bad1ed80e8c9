"""The TPM: a TPM 2.0 chip behind a TIS-style FIFO interface on I/O ports.

A PC's discrete TPM sits on the LPC or SPI bus behind the TCG's "TPM
Interface Specification" (TIS, PC Client Platform TPM Profile section 6):
a locality's ACCESS register, a status register (``TPM_STS``) with its
burst count, and a data FIFO through which a driver writes a marshalled
TPM 2.0 command byte by byte, sets ``tpmGo``, waits for ``dataAvail`` and
reads the response.  The simulated TPM keeps exactly that protocol, with
the registers on eight I/O ports (:data:`TPM_PORT` ..; the same registers
can move into an MMIO page once the machine has one):

=======  =================  ==========================================================
port     register           meaning
=======  =================  ==========================================================
+0       ``ACCESS``         read: 0x80 valid, 0x20 this locality is active; write 0x02
                            requestUse (granted when no locality is active), 0x20
                            relinquish
+1       ``STS``            read: 0x80 stsValid, 0x40 commandReady, 0x10 dataAvail,
                            0x08 expect (more command bytes wanted), 0x04 selfTestDone;
                            write: 0x40 commandReady (abort, empty the FIFO), 0x20
                            tpmGo (execute the command written), 0x02 responseRetry
+2       ``BURST``          bytes the FIFO takes or has now (at most :data:`BURST`)
+3       ``DATA_FIFO``      command bytes in, response bytes out
+4..+7   ``DID_VID``        vendor 0x344C ("L4"), device 0x0001, little-endian
=======  =================  ==========================================================

Without the active locality, ``STS``, ``BURST`` and the FIFO read 0xFF and
ignore writes.  A command executes for the time :data:`LATENCY_NS` gives
its command code (the simulated TPM is as slow as a discrete one), then
``dataAvail`` rises; a driver polls ``STS``.

Behind the interface is a TPM 2.0 with one SHA-256 bank of 24 PCRs and the
commands :data:`COMMANDS` lists, in their real marshalled form (TPM 2.0
Library, Part 3): ``PCR_Extend``, ``PCR_Read``, ``PCR_Reset`` (PCRs 16-23
only), ``Quote`` (ECDSA P-256, a TPMS_ATTEST that ``tpm2_checkquote``
verifies), ``Create``/``Load``/``Unseal`` of sealed data objects with a
``PolicyPCR`` policy session (``StartAuthSession``, ``PolicyPCR``,
``PolicyGetDigest``, ``FlushContext``), NV counters (``NV_DefineSpace``,
``NV_Increment``, ``NV_Read``, ``NV_ReadPublic``), ``GetRandom`` and
``ReadPublic``.  Authorization is by password sessions (``TPM_RS_PW``,
every password empty but an NV index's own) and policy sessions; HMAC
sessions, salted sessions and parameter encryption are not modelled.

Keys and randomness.  :class:`TpmNv` is what the chip keeps across power
cycles: its primary seeds, the state of its random bit generator, NV
indices, its reset count and clock.  It is "manufactured" from the run's
seed (never from the host's entropy), so the same seed gives the same
attestation key, the same random bytes, the same sealed blobs.  The
storage root key (:data:`~l4sim.machine.tpm2.SRK_HANDLE`) and the
attestation key (:data:`~l4sim.machine.tpm2.AK_HANDLE`) are persistent
primary keys derived from the storage and endorsement seeds, as TPM 2.0
derives primaries (``KDFa`` of the seed and the template).  A machine that
reboots keeps its :class:`TpmNv` (pass it to the next :class:`Machine`);
the PCRs, loaded objects and sessions start over.

The device never raises: a malformed command gets the TPM's error response,
and a failure inside the model becomes ``TPM_RC_FAILURE``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from l4sim.machine import tpm2 as t
from l4sim.machine.events import EventQueue
from l4sim.machine.tpm2 import Reader, Unmarshal, Writer

if TYPE_CHECKING:  # cryptography is imported where a key is used: a machine that never
    # asks its TPM for one (``l4sim linux run``) starts without it
    from cryptography.hazmat.primitives.asymmetric import ec

#: first I/O port of the TPM's registers, and log2 of their number
TPM_PORT = 0x0F40
TPM_PORT_ORDER = 3
REG_ACCESS, REG_STS, REG_BURST, REG_FIFO, REG_DID_VID = 0, 1, 2, 3, 4
ACCESS_VALID, ACCESS_ACTIVE, ACCESS_REQUEST = 0x80, 0x20, 0x02
STS_VALID, STS_READY, STS_GO, STS_AVAIL, STS_EXPECT, STS_SELFTEST, STS_RETRY = (
    0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02)
#: the most bytes the FIFO moves between two reads of BURST
BURST = 64
DID_VID = 0x0001_344C
#: TPMS_CLOCK_INFO.firmwareVersion of the simulated chip
FIRMWARE_VERSION = 0x0001_0002_0000_0000
#: transient objects and sessions the chip holds at once (a real TPM holds about three of each)
MAX_OBJECTS = 3
MAX_SESSIONS = 3
MAX_NV_INDICES = 8

_MS = 1_000_000
#: simulated execution time per command code (ns): estimates in the range published for discrete
#: TPM 2.0 chips (PCR operations well under a millisecond, NV writes milliseconds, an ECC
#: signature tens of milliseconds); commands not listed take :data:`DEFAULT_LATENCY_NS`
LATENCY_NS = {
    t.CC_PCR_EXTEND: 300_000, t.CC_PCR_READ: 200_000, t.CC_PCR_RESET: 300_000,
    t.CC_QUOTE: 40 * _MS, t.CC_CREATE: 5 * _MS, t.CC_LOAD: 4 * _MS, t.CC_UNSEAL: 2 * _MS,
    t.CC_START_AUTH_SESSION: 2 * _MS, t.CC_POLICY_PCR: 500_000, t.CC_POLICY_GET_DIGEST: 100_000,
    t.CC_FLUSH_CONTEXT: 100_000, t.CC_GET_RANDOM: 200_000, t.CC_READ_PUBLIC: 200_000,
    t.CC_NV_DEFINE_SPACE: 10 * _MS, t.CC_NV_INCREMENT: 10 * _MS, t.CC_NV_READ: 300_000,
    t.CC_NV_READ_PUBLIC: 200_000,
}
DEFAULT_LATENCY_NS = 100_000

RC_LOCALITY = 0x107
RC_AUTH_UNAVAILABLE = 0x12F
RC_BAD_AUTH = 0x0A2
RC_BINDING = 0x0A5


@dataclass
class NvIndex:
    """An NV index: only counters (TPM_NT_COUNTER) are modelled."""

    attributes: int
    auth: bytes
    auth_policy: bytes
    #: the counter's value once written (None: never incremented)
    value: int | None = None

    def public(self, index: int) -> bytes:
        attrs = self.attributes | (t.NV_WRITTEN if self.value is not None else 0)
        return Writer().u32(index).u16(t.ALG_SHA256).u32(attrs).tpm2b(self.auth_policy).u16(8).bytes()


class TpmNv:
    """The chip's non-volatile state: what survives a power cycle.

    Made ("manufactured") from the run's seed: the random generator, and from
    it the endorsement, storage and proof seeds.
    """

    def __init__(self, seed: int) -> None:
        self.drbg = t.Drbg(t.sha256(b"l4sim TPM manufacture", str(seed).encode()))
        #: primary seeds: endorsement (the attestation key), storage (the SRK); proof (tickets)
        self.eps = self.drbg.generate(32)
        self.sps = self.drbg.generate(32)
        self.proof = self.drbg.generate(32)
        self.indices: dict[int, NvIndex] = {}
        #: the largest value any counter ever had: a new counter starts above it (Part 1 37.2.3)
        self.counter_high = 0
        #: power-ons after the first (TPMS_CLOCK_INFO.resetCount)
        self.reset_count = -1
        #: the chip's clock (ms) when it was last read: where the next power cycle's clock starts
        self.clock_ms = 0


@dataclass
class TpmObject:
    """A key or sealed data object the chip holds (persistent or loaded)."""

    public: bytes
    name: bytes
    qualified_name: bytes
    attributes: int
    auth_policy: bytes = b""
    #: a P-256 key's private part (the AK signs, the SRK only parents)
    key: ec.EllipticCurvePrivateKey | None = None
    #: a storage parent's seed (protects its children); a sealed object's data
    seed: bytes = b""
    data: bytes = b""
    sealed: bool = False


@dataclass
class PolicySession:
    """A policy (or trial) session: its running policy digest."""

    trial: bool
    nonce_tpm: bytes
    digest: bytes = b"\0" * 32
    #: the PCR update counter when a PolicyPCR was satisfied (None: no PolicyPCR yet)
    pcr_counter: int | None = None


@dataclass
class Auth:
    """One TPMS_AUTH_COMMAND of a command's authorization area."""

    handle: int
    nonce: bytes
    attributes: int
    hmac: bytes


class TpmError(Exception):
    """A command fails with response code ``rc`` (raised inside the chip, never out of it)."""

    def __init__(self, rc: int) -> None:
        super().__init__(f"TPM_RC {rc:#x}")
        self.rc = rc


class Tis(Enum):
    """The TIS state machine (PC Client TPM Profile, figure "TPM state")."""

    IDLE = 0
    READY = 1
    RECEPTION = 2
    EXECUTION = 3
    COMPLETION = 4


@dataclass
class Command:
    """How to read one command: its handles, how many of them need authorization, its code."""

    handles: int
    auths: int
    run: Callable[[Tpm, list[int], list[Auth], Reader], tuple[list[int], bytes]]


class Tpm:
    """The chip: PCRs, objects, sessions, and the TIS registers in front of them."""

    def __init__(self, events: EventQueue, nv: TpmNv) -> None:
        self.events = events
        self.nv = nv
        nv.reset_count += 1
        #: the chip's clock at power-on: it goes on from where the last power cycle left it
        self.clock_base = nv.clock_ms
        self.pcrs = [bytes(t.DIGEST_SIZE)] * t.NUM_PCRS
        #: counts PCR changes (TPM2_PCR_Read's pcrUpdateCounter)
        self.update_counter = 0
        self.objects: dict[int, TpmObject] = {}
        self.sessions: dict[int, PolicySession] = {}
        self._persistent: dict[int, TpmObject] | None = None
        # the TIS side
        self.active = False
        self.state = Tis.IDLE
        self.cmd = bytearray()
        self.rsp = b""
        self.rsp_pos = 0
        #: commands executed, by command code (for tests and tools)
        self.executed: dict[int, int] = {}

    # ------------------------------------------------------------------ observation (host side)
    def pcr(self, n: int) -> bytes:
        return self.pcrs[n]

    def clock_ms(self) -> int:
        """TPMS_CLOCK_INFO.clock: milliseconds the chip has been powered, over all power cycles."""
        now = self.clock_base + self.events.now // _MS
        self.nv.clock_ms = max(self.nv.clock_ms, now)
        return now

    def ak_public(self) -> bytes:
        """The attestation key's TPMT_PUBLIC: what its manufacturer certifies."""
        return self._keys()[t.AK_HANDLE].public

    # ------------------------------------------------------------------ the registers
    def ports(self) -> dict[int, tuple[Callable[[int], int], Callable[[int, int], None]]]:
        """The I/O port handlers of the registers, for ``machine.ports``."""
        return {TPM_PORT + i: (self.read_reg, self.write_reg) for i in range(1 << TPM_PORT_ORDER)}

    def read_reg(self, port: int) -> int:
        off = port - TPM_PORT
        if off == REG_ACCESS:
            return ACCESS_VALID | (ACCESS_ACTIVE if self.active else 0)
        if off >= REG_DID_VID:
            return (DID_VID >> (8 * (off - REG_DID_VID))) & 0xFF
        if not self.active:
            return 0xFF
        if off == REG_STS:
            sts = STS_VALID | STS_SELFTEST
            if self.state is Tis.READY:
                sts |= STS_READY
            elif self.state is Tis.RECEPTION and self._expecting():
                sts |= STS_EXPECT
            elif self.state is Tis.COMPLETION and self.rsp_pos < len(self.rsp):
                sts |= STS_AVAIL
            return sts
        if off == REG_BURST:
            if self.state in (Tis.READY, Tis.RECEPTION):
                return min(BURST, t.MAX_COMMAND_SIZE - len(self.cmd))
            if self.state is Tis.COMPLETION:
                return min(BURST, len(self.rsp) - self.rsp_pos)
            return 0
        if off == REG_FIFO and self.state is Tis.COMPLETION and self.rsp_pos < len(self.rsp):
            self.rsp_pos += 1
            return self.rsp[self.rsp_pos - 1]
        return 0xFF

    def write_reg(self, port: int, value: int) -> None:
        off = port - TPM_PORT
        if off == REG_ACCESS:
            if value & ACCESS_REQUEST:
                self.active = True
            elif value & ACCESS_ACTIVE and self.active:
                self.active = False
                if self.state is not Tis.EXECUTION:
                    self.state = Tis.IDLE
            return
        if not self.active:
            return
        if off == REG_STS:
            if value & STS_READY and self.state is not Tis.EXECUTION:
                self.state, self.cmd, self.rsp, self.rsp_pos = Tis.READY, bytearray(), b"", 0
            elif value & STS_GO and self.state is Tis.RECEPTION and not self._expecting():
                self.state = Tis.EXECUTION
                cc = int.from_bytes(self.cmd[6:10], "big") if len(self.cmd) >= 10 else 0
                self.events.after(LATENCY_NS.get(cc, DEFAULT_LATENCY_NS), self._complete)
            elif value & STS_RETRY and self.state is Tis.COMPLETION:
                self.rsp_pos = 0
        elif off == REG_FIFO and self.state in (Tis.READY, Tis.RECEPTION):
            self.state = Tis.RECEPTION
            if len(self.cmd) < t.MAX_COMMAND_SIZE:  # a real FIFO drops what overflows
                self.cmd.append(value & 0xFF)

    def _expecting(self) -> bool:
        """More command bytes are wanted: the header's commandSize is not reached yet."""
        if len(self.cmd) < 10:
            return True
        return len(self.cmd) < min(int.from_bytes(self.cmd[2:6], "big"), t.MAX_COMMAND_SIZE)

    def _complete(self) -> None:
        if self.state is not Tis.EXECUTION:
            return
        self.rsp, self.rsp_pos = self.execute(bytes(self.cmd)), 0
        self.state = Tis.COMPLETION

    # ------------------------------------------------------------------ commands
    def execute(self, command: bytes) -> bytes:
        """Execute one marshalled command and return the marshalled response.

        The firmware's path (the boot loader measures with it before the
        kernel runs) and the FIFO's.  Never raises.
        """
        try:
            return self._execute(command)
        except TpmError as e:
            return _error(e.rc)
        except Unmarshal:
            return _error(t.RC_INSUFFICIENT)
        except Exception:  # a fault of the model itself: the chip's failure mode
            return _error(t.RC_FAILURE)

    def _execute(self, command: bytes) -> bytes:
        r = Reader(command)
        tag, size, cc = r.u16(), r.u32(), r.u32()
        if tag not in (t.ST_NO_SESSIONS, t.ST_SESSIONS):
            raise TpmError(t.RC_TAG)
        if size != len(command) or size > t.MAX_COMMAND_SIZE:
            raise TpmError(t.RC_COMMAND_SIZE)
        spec = COMMANDS.get(cc)
        if spec is None:
            raise TpmError(t.RC_COMMAND_CODE)
        self.executed[cc] = self.executed.get(cc, 0) + 1
        handles = [r.u32() for _ in range(spec.handles)]
        auths: list[Auth] = []
        if tag == t.ST_SESSIONS:
            asize = r.u32()
            end = r.pos + asize
            if asize < 9 or end > len(command):
                raise TpmError(t.RC_AUTHSIZE)
            while r.pos < end:
                auths.append(Auth(r.u32(), r.tpm2b(64), r.u8(), r.tpm2b(64)))
            if r.pos != end or len(auths) > 3:
                raise TpmError(t.RC_AUTHSIZE)
        if len(auths) < spec.auths:
            raise TpmError(t.RC_AUTH_MISSING)
        for i, a in enumerate(auths[: spec.auths]):
            self._check_auth(cc, handles[i], a, i + 1)
        out_handles, params = spec.run(self, handles, auths, r)
        w = Writer()
        body = Writer()
        for h in out_handles:
            body.u32(h)
        if tag == t.ST_SESSIONS:
            body.u32(len(params)).raw(params)
            for a in auths:
                nonce = b"" if a.handle == t.RS_PW else self._session_nonce(a.handle)
                body.tpm2b(nonce).u8(a.attributes & t.SESSION_CONTINUE).tpm2b(b"")
                if a.handle != t.RS_PW and not a.attributes & t.SESSION_CONTINUE:
                    self.sessions.pop(a.handle, None)
        else:
            body.raw(params)
        out = body.bytes()
        return w.u16(tag).u32(10 + len(out)).u32(t.RC_SUCCESS).raw(out).bytes()

    def _session_nonce(self, handle: int) -> bytes:
        s = self.sessions.get(handle)
        if s is None:
            return b""
        s.nonce_tpm = self.nv.drbg.generate(32)
        return s.nonce_tpm

    def _check_auth(self, cc: int, handle: int, a: Auth, n: int) -> None:
        """A password session must carry the entity's password; a policy session is for Unseal."""
        if a.handle == t.RS_PW:
            if a.nonce:
                raise TpmError(t.rc_s(t.RC_SIZE, n))
            if not hmac.compare_digest(a.hmac, self._auth_value(handle)):
                raise TpmError(t.rc_s(RC_BAD_AUTH, n))
            return
        if a.handle not in self.sessions:
            raise TpmError(t.rc_s(t.RC_HANDLE, n))
        if cc != t.CC_UNSEAL:
            raise TpmError(t.RC_AUTH_TYPE)

    def _auth_value(self, handle: int) -> bytes:
        idx = self.nv.indices.get(handle)
        return idx.auth if idx is not None else b""

    # ------------------------------------------------------------------ keys
    def _keys(self) -> dict[int, TpmObject]:
        """The persistent primaries, made from the seeds on first use."""
        if self._persistent is None:
            nv = self.nv
            ak = t.derive_p256(nv.eps, t.ecc_template(t.AK_ATTRIBUTES, signing=True))
            ak_pub = t.public_from_key(ak, t.AK_ATTRIBUTES, signing=True)
            ak_name = t.name_of(ak_pub)
            srk_template = t.ecc_template(t.SRK_ATTRIBUTES, signing=False)
            srk = t.derive_p256(nv.sps, srk_template)
            srk_pub = t.public_from_key(srk, t.SRK_ATTRIBUTES, signing=False)
            srk_name = t.name_of(srk_pub)
            self._persistent = {
                t.AK_HANDLE: TpmObject(ak_pub, ak_name,
                                       t.qualified_name(t.RH_ENDORSEMENT.to_bytes(4, "big"), ak_name),
                                       t.AK_ATTRIBUTES, key=ak),
                t.SRK_HANDLE: TpmObject(srk_pub, srk_name,
                                        t.qualified_name(t.RH_OWNER.to_bytes(4, "big"), srk_name),
                                        t.SRK_ATTRIBUTES, key=srk,
                                        seed=t.kdfa(nv.sps, "SEED", t.sha256(srk_template), b"", 256)),
            }
        return self._persistent

    def _object(self, handle: int, n: int) -> TpmObject:
        obj = self.objects.get(handle) or self._keys().get(handle)
        if obj is None:
            raise TpmError(t.rc_h(t.RC_HANDLE, n))
        return obj

    # ------------------------------------------------------------------ PCRs
    def _pcr_handle(self, handle: int) -> int:
        if not 0 <= handle < t.NUM_PCRS:
            raise TpmError(t.rc_h(t.RC_VALUE, 1))
        return handle

    def _selected(self, sel: list[tuple[int, bytes]], n: int) -> list[int]:
        """The SHA-256 PCRs a selection names (another bank is not allocated: an error)."""
        pcrs: list[int] = []
        for alg, bits in sel:
            chosen = t.pcrs_of(bits)
            if not chosen:
                continue
            if alg != t.ALG_SHA256:
                raise TpmError(t.rc_p(t.RC_HASH, n))
            if any(p >= t.NUM_PCRS for p in chosen):
                raise TpmError(t.rc_p(t.RC_VALUE, n))
            pcrs += chosen
        return sorted(set(pcrs))

    def _digest(self, pcrs: list[int]) -> bytes:
        return t.sha256(*(self.pcrs[p] for p in pcrs))

    def cmd_pcr_extend(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        pcr = self._pcr_handle(h[0])
        count = r.u32()
        if count > 8:
            raise TpmError(t.rc_p(t.RC_SIZE, 1))
        digests = []
        for _ in range(count):
            alg = r.u16()
            if alg == t.ALG_SHA256:
                digests.append(r.raw(32))
            elif alg == t.ALG_SHA1:
                r.raw(20)  # a bank this chip has not allocated: ignored, as a real TPM does
            else:
                raise TpmError(t.rc_p(t.RC_HASH, 1))
        for d in digests:
            self.pcrs[pcr] = t.extend(self.pcrs[pcr], d)
        self.update_counter += 1
        return [], b""

    def cmd_pcr_reset(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        pcr = self._pcr_handle(h[0])
        if pcr not in t.RESETTABLE_PCRS:
            raise TpmError(RC_LOCALITY)
        self.pcrs[pcr] = bytes(t.DIGEST_SIZE)
        self.update_counter += 1
        return [], b""

    def cmd_pcr_read(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        pcrs = self._selected(t.read_pcr_selection(r), 1)[:8]  # at most 8 digests per response
        w = Writer().u32(self.update_counter).raw(t.pcr_selection(pcrs)).u32(len(pcrs))
        for p in pcrs:
            w.tpm2b(self.pcrs[p])
        return [], w.bytes()

    # ------------------------------------------------------------------ quote
    def cmd_quote(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        key = self._object(h[0], 1)
        if key.key is None or not key.attributes & t.OA_SIGN or not key.attributes & t.OA_RESTRICTED:
            raise TpmError(t.rc_h(t.RC_KEY, 1))
        extra = r.tpm2b(64)
        scheme = r.u16()
        if scheme != t.ALG_NULL and (scheme != t.ALG_ECDSA or r.u16() != t.ALG_SHA256):
            raise TpmError(t.rc_p(t.RC_SCHEME, 2))
        pcrs = self._selected(t.read_pcr_selection(r), 3)
        attest = t.quote_attest(key.qualified_name, extra, self.clock_ms(), self.nv.reset_count, 0, True,
                                FIRMWARE_VERSION, t.pcr_selection(pcrs), self._digest(pcrs))
        # RFC 6979: the signature's nonce comes from the key and the message, not from entropy
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        der = key.key.sign(attest, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        return [], Writer().tpm2b(attest).raw(t.ecdsa_signature(der)).bytes()

    def cmd_read_public(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        obj = self._object(h[0], 1)
        return [], Writer().tpm2b(obj.public).tpm2b(obj.name).tpm2b(obj.qualified_name).bytes()

    def cmd_get_random(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        n = min(r.u16(), t.DIGEST_SIZE)
        return [], Writer().tpm2b(self.nv.drbg.generate(n)).bytes()

    # ------------------------------------------------------------------ sealing
    def _protect_keys(self, parent: TpmObject, name: bytes) -> tuple[bytes, bytes]:
        """(AES-128 key, HMAC key) that protect a child of ``parent`` (Part 1 sections 23.5-23.6)."""
        return (t.kdfa(parent.seed, "STORAGE", name, b"", 128), t.kdfa(parent.seed, "INTEGRITY", b"", b"", 256))

    def _parent(self, handle: int) -> TpmObject:
        parent = self._object(handle, 1)
        if not parent.seed or not parent.attributes & t.OA_DECRYPT:
            raise TpmError(t.rc_h(t.RC_TYPE, 1))
        return parent

    def cmd_create(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        parent = self._parent(h[0])
        sens = Reader(r.tpm2b())
        user_auth, data = sens.tpm2b(32), sens.tpm2b(128)
        pub = Reader(r.tpm2b())
        typ, name_alg, attrs = pub.u16(), pub.u16(), pub.u32()
        policy = pub.tpm2b(32)
        if typ != t.ALG_KEYEDHASH:
            raise TpmError(t.rc_p(t.RC_TYPE, 2))
        if name_alg != t.ALG_SHA256 or pub.u16() != t.ALG_NULL:
            raise TpmError(t.rc_p(t.RC_SCHEME, 2))
        pub.tpm2b(32)  # unique: the TPM fills it in
        if attrs & (t.OA_SIGN | t.OA_DECRYPT | t.OA_SENSITIVE_DATA_ORIGIN) or not data:
            raise TpmError(t.rc_p(t.RC_ATTRIBUTES, 2))
        outside = r.tpm2b(64)
        creation_pcrs = self._selected(t.read_pcr_selection(r), 4)
        obfuscate = self.nv.drbg.generate(32)
        public = t.keyedhash_public(policy, attrs, t.sha256(obfuscate, data))
        name = t.name_of(public)
        sensitive = Writer().u16(t.ALG_KEYEDHASH).tpm2b(user_auth).tpm2b(obfuscate).tpm2b(data).bytes()
        sym, mac = self._protect_keys(parent, name)
        enc = _cfb(sym, Writer().tpm2b(sensitive).bytes(), encrypt=True)
        private = Writer().tpm2b(hmac.new(mac, enc + name, hashlib.sha256).digest()).raw(enc).bytes()
        creation = (Writer().raw(t.pcr_selection(creation_pcrs)).tpm2b(self._digest(creation_pcrs)).u8(1)
                    .u16(t.ALG_SHA256).tpm2b(parent.name).tpm2b(parent.qualified_name).tpm2b(outside).bytes())
        chash = t.sha256(creation)
        ticket = hmac.new(self.nv.proof, t.ST_CREATION.to_bytes(2, "big") + name + chash, hashlib.sha256).digest()
        out = (Writer().tpm2b(private).tpm2b(public).tpm2b(creation).tpm2b(chash).u16(t.ST_CREATION)
               .u32(t.RH_OWNER).tpm2b(ticket).bytes())
        return [], out

    def cmd_load(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        parent = self._parent(h[0])
        private, public = r.tpm2b(), r.tpm2b()
        pub = Reader(public)
        typ, name_alg, attrs = pub.u16(), pub.u16(), pub.u32()
        policy = pub.tpm2b(32)
        if typ != t.ALG_KEYEDHASH or name_alg != t.ALG_SHA256 or pub.u16() != t.ALG_NULL:
            raise TpmError(t.rc_p(t.RC_TYPE, 2))
        unique = pub.tpm2b(32)
        name = t.name_of(public)
        pr = Reader(private)
        outer, enc = pr.tpm2b(32), pr.raw(pr.left())
        sym, mac = self._protect_keys(parent, name)
        if not hmac.compare_digest(outer, hmac.new(mac, enc + name, hashlib.sha256).digest()):
            raise TpmError(t.rc_p(t.RC_INTEGRITY, 1))
        sr = Reader(_cfb(sym, enc, encrypt=False))
        sr = Reader(sr.tpm2b())
        if sr.u16() != t.ALG_KEYEDHASH:
            raise TpmError(t.rc_p(t.RC_TYPE, 1))
        sr.tpm2b(32)
        obfuscate, data = sr.tpm2b(32), sr.tpm2b(128)
        if not hmac.compare_digest(unique, t.sha256(obfuscate, data)):
            raise TpmError(RC_BINDING)
        if len(self.objects) >= MAX_OBJECTS:
            raise TpmError(t.RC_OBJECT_MEMORY)
        handle = next(hh for hh in range(t.HR_TRANSIENT, t.HR_TRANSIENT + MAX_OBJECTS + 1)
                      if hh not in self.objects)
        self.objects[handle] = TpmObject(public, name, t.qualified_name(parent.qualified_name, name), attrs,
                                         auth_policy=policy, data=data, sealed=True)
        return [handle], Writer().tpm2b(name).bytes()

    def cmd_unseal(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        obj = self._object(h[0], 1)
        if not obj.sealed:
            raise TpmError(t.rc_h(t.RC_TYPE, 1))
        auth = a[0]
        if auth.handle == t.RS_PW:
            if not obj.attributes & t.OA_USER_WITH_AUTH:
                raise TpmError(RC_AUTH_UNAVAILABLE)
        else:
            s = self.sessions[auth.handle]
            if s.trial:
                raise TpmError(t.RC_AUTH_TYPE)
            if not hmac.compare_digest(s.digest, obj.auth_policy):
                raise TpmError(t.rc_s(t.RC_POLICY_FAIL, 1))
            if s.pcr_counter is not None and s.pcr_counter != self.update_counter:
                raise TpmError(t.RC_PCR_CHANGED)
        return [], Writer().tpm2b(obj.data).bytes()

    def cmd_start_auth_session(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        if h[0] != t.RH_NULL or h[1] != t.RH_NULL:
            raise TpmError(t.rc_h(t.RC_VALUE, 1 if h[0] != t.RH_NULL else 2))  # no salted/bound sessions
        nonce = r.tpm2b(32)
        if len(nonce) < 16:
            raise TpmError(t.rc_p(t.RC_SIZE, 1))
        if r.tpm2b(256):
            raise TpmError(t.rc_p(t.RC_VALUE, 2))
        typ = r.u8()
        if typ not in (t.SE_POLICY, t.SE_TRIAL):
            raise TpmError(t.rc_p(t.RC_VALUE, 3))
        if r.u16() != t.ALG_NULL:
            raise TpmError(t.rc_p(t.RC_VALUE, 4))
        if r.u16() != t.ALG_SHA256:
            raise TpmError(t.rc_p(t.RC_HASH, 5))
        if len(self.sessions) >= MAX_SESSIONS:
            raise TpmError(t.RC_SESSION_MEMORY)
        handle = next(hh for hh in range(t.HR_POLICY_SESSION, t.HR_POLICY_SESSION + MAX_SESSIONS + 1)
                      if hh not in self.sessions)
        s = PolicySession(typ == t.SE_TRIAL, self.nv.drbg.generate(32))
        self.sessions[handle] = s
        return [handle], Writer().tpm2b(s.nonce_tpm).bytes()

    def _session(self, handle: int) -> PolicySession:
        s = self.sessions.get(handle)
        if s is None:
            raise TpmError(t.rc_h(t.RC_HANDLE, 1))
        return s

    def cmd_policy_pcr(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        s = self._session(h[0])
        want = r.tpm2b(32)
        pcrs = self._selected(t.read_pcr_selection(r), 2)
        now = self._digest(pcrs)
        if want and not s.trial and not hmac.compare_digest(want, now):
            raise TpmError(t.rc_p(t.RC_VALUE, 1))
        s.digest = t.policy_pcr(s.digest, t.pcr_selection(pcrs), want if s.trial and want else now)
        s.pcr_counter = None if s.trial else self.update_counter
        return [], b""

    def cmd_policy_get_digest(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        return [], Writer().tpm2b(self._session(h[0]).digest).bytes()

    def cmd_flush_context(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        handle = r.u32()
        if self.objects.pop(handle, None) is None and self.sessions.pop(handle, None) is None:
            raise TpmError(t.rc_p(t.RC_HANDLE, 1))
        return [], b""

    # ------------------------------------------------------------------ NV counters
    def _index(self, handle: int, n: int) -> NvIndex:
        idx = self.nv.indices.get(handle)
        if idx is None:
            raise TpmError(t.rc_h(t.RC_HANDLE, n))
        return idx

    def _nv_auth(self, auth_handle: int, index: int) -> None:
        if auth_handle not in (t.RH_OWNER, index):
            raise TpmError(t.RC_NV_AUTHORIZATION)

    def cmd_nv_define_space(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        if h[0] != t.RH_OWNER:
            raise TpmError(t.rc_h(t.RC_HANDLE, 1))
        auth = r.tpm2b(32)
        pub = Reader(r.tpm2b())
        index, name_alg, attrs = pub.u32(), pub.u16(), pub.u32()
        policy, size = pub.tpm2b(32), pub.u16()
        if index >> 24 != t.HR_NV_INDEX >> 24:
            raise TpmError(t.RC_NV_RANGE)
        if name_alg != t.ALG_SHA256 or attrs & t.NV_TYPE_MASK != t.NV_COUNTER or size != 8:
            raise TpmError(t.rc_p(t.RC_ATTRIBUTES, 2))
        if index in self.nv.indices:
            raise TpmError(t.RC_NV_DEFINED)
        if len(self.nv.indices) >= MAX_NV_INDICES:
            raise TpmError(t.RC_NV_SPACE)
        self.nv.indices[index] = NvIndex(attrs & ~t.NV_WRITTEN, auth, policy)
        return [], b""

    def cmd_nv_increment(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        idx = self._index(h[1], 2)
        self._nv_auth(h[0], h[1])
        nv = self.nv
        idx.value = (nv.counter_high if idx.value is None else idx.value) + 1
        nv.counter_high = max(nv.counter_high, idx.value)
        return [], b""

    def cmd_nv_read(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        idx = self._index(h[1], 2)
        self._nv_auth(h[0], h[1])
        size, offset = r.u16(), r.u16()
        if idx.value is None:
            raise TpmError(t.RC_NV_UNINITIALIZED)
        if offset + size > 8:
            raise TpmError(t.RC_NV_RANGE)
        return [], Writer().tpm2b(idx.value.to_bytes(8, "big")[offset : offset + size]).bytes()

    def cmd_nv_read_public(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        idx = self._index(h[0], 1)
        public = idx.public(h[0])
        return [], Writer().tpm2b(public).tpm2b(t.name_of(public)).bytes()

    def cmd_startup(self, h: list[int], a: list[Auth], r: Reader) -> tuple[list[int], bytes]:
        raise TpmError(t.RC_INITIALIZE)  # the platform started the chip at power-on


def _error(rc: int) -> bytes:
    return Writer().u16(t.ST_NO_SESSIONS).u32(10).u32(rc).bytes()


def _cfb(key: bytes, data: bytes, *, encrypt: bool) -> bytes:
    """AES-128-CFB with a zero IV: how TPM 2.0 encrypts a sensitive area (Part 1 section 23.5)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    try:  # where cryptography keeps the modes modern protocols no longer use
        from cryptography.hazmat.decrepit.ciphers.modes import CFB
    except ImportError:  # an older cryptography
        from cryptography.hazmat.primitives.ciphers.modes import CFB  # type: ignore[no-redef,unused-ignore]

    c = Cipher(algorithms.AES(key), CFB(bytes(16)))
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(data) + op.finalize()


#: every command the chip knows: handles in the handle area, how many need authorization
COMMANDS: dict[int, Command] = {
    t.CC_PCR_EXTEND: Command(1, 1, Tpm.cmd_pcr_extend),
    t.CC_PCR_RESET: Command(1, 1, Tpm.cmd_pcr_reset),
    t.CC_PCR_READ: Command(0, 0, Tpm.cmd_pcr_read),
    t.CC_QUOTE: Command(1, 1, Tpm.cmd_quote),
    t.CC_READ_PUBLIC: Command(1, 0, Tpm.cmd_read_public),
    t.CC_GET_RANDOM: Command(0, 0, Tpm.cmd_get_random),
    t.CC_CREATE: Command(1, 1, Tpm.cmd_create),
    t.CC_LOAD: Command(1, 1, Tpm.cmd_load),
    t.CC_UNSEAL: Command(1, 1, Tpm.cmd_unseal),
    t.CC_START_AUTH_SESSION: Command(2, 0, Tpm.cmd_start_auth_session),
    t.CC_POLICY_PCR: Command(1, 0, Tpm.cmd_policy_pcr),
    t.CC_POLICY_GET_DIGEST: Command(1, 0, Tpm.cmd_policy_get_digest),
    t.CC_FLUSH_CONTEXT: Command(0, 0, Tpm.cmd_flush_context),
    t.CC_NV_DEFINE_SPACE: Command(1, 1, Tpm.cmd_nv_define_space),
    t.CC_NV_INCREMENT: Command(2, 1, Tpm.cmd_nv_increment),
    t.CC_NV_READ: Command(2, 1, Tpm.cmd_nv_read),
    t.CC_NV_READ_PUBLIC: Command(1, 0, Tpm.cmd_nv_read_public),
    t.CC_STARTUP: Command(0, 0, Tpm.cmd_startup),
}
