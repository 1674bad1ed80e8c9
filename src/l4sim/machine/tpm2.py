"""TPM 2.0 formats and functions: what the TPM device and its drivers share.

The TPM 2.0 Library specification (TCG, rev. 1.59; Part 2 "Structures" for
the wire formats, Part 1 for the functions) defines every byte a TPM reads
and writes.  This module has the part of it the simulated TPM
(:mod:`l4sim.machine.tpm`) and the software that talks to it (the loader's
measurements, the TPM driver, the attestation verifier) have in common:

- the numbers: command codes (``CC_*``), response codes (``RC_*``),
  structure tags (``ST_*``), algorithms (``ALG_*``), handles, attributes;
- big-endian marshalling (:class:`Writer`, :class:`Reader`) and the
  structures built from it: ``TPML_PCR_SELECTION``, ``TPMT_PUBLIC`` of an
  ECC key and of a sealed data object, ``TPMS_ATTEST`` of a quote,
  ``TPMT_SIGNATURE`` of an ECDSA signature, names and qualified names;
- the functions the specification defines: ``KDFa`` (SP 800-108 counter
  mode with HMAC-SHA256), the policy digest of ``TPM2_PolicyPCR``, and a
  deterministic random bit generator (HMAC_DRBG of SP 800-90A), which is
  where every "random" byte of the model comes from.

Only SHA-256 and NIST P-256 are implemented: the one PCR bank, the one
signing scheme (ECDSA), AES-128-CFB for protecting sealed objects.  Every
structure here is byte for byte what a real TPM produces, so that
``tpm2_checkquote`` and ``tpm2_eventlog`` of tpm2-tools read them.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography is imported where a key is used (a machine starts without it)
    from cryptography.hazmat.primitives.asymmetric import ec

# --------------------------------------------------------------------------- numbers
#: structure tags (TPM_ST)
ST_NO_SESSIONS = 0x8001
ST_SESSIONS = 0x8002
ST_ATTEST_QUOTE = 0x8018
ST_CREATION = 0x8021
#: TPM_GENERATED_VALUE: the magic that starts every structure the TPM signs
GENERATED_VALUE = 0xFF544347

#: command codes (TPM_CC) of the commands the simulated TPM implements
CC_NV_DEFINE_SPACE = 0x12A
CC_NV_INCREMENT = 0x134
CC_PCR_RESET = 0x13D
CC_STARTUP = 0x144
CC_NV_READ = 0x14E
CC_CREATE = 0x153
CC_LOAD = 0x157
CC_QUOTE = 0x158
CC_UNSEAL = 0x15E
CC_FLUSH_CONTEXT = 0x165
CC_NV_READ_PUBLIC = 0x169
CC_READ_PUBLIC = 0x173
CC_START_AUTH_SESSION = 0x176
CC_GET_RANDOM = 0x17B
CC_PCR_READ = 0x17E
CC_POLICY_PCR = 0x17F
CC_PCR_EXTEND = 0x182
CC_POLICY_GET_DIGEST = 0x189

#: response codes (TPM_RC).  Format-one codes (bit 7) name the parameter, handle or session
#: they concern with :func:`rc_p`, :func:`rc_h`, :func:`rc_s`.
RC_SUCCESS = 0x000
RC_INITIALIZE = 0x100
RC_FAILURE = 0x101
RC_AUTH_TYPE = 0x124
RC_AUTH_MISSING = 0x125
RC_PCR_CHANGED = 0x128
RC_COMMAND_SIZE = 0x142
RC_COMMAND_CODE = 0x143
RC_AUTHSIZE = 0x144
RC_NV_RANGE = 0x146
RC_NV_SIZE = 0x147
RC_NV_AUTHORIZATION = 0x149
RC_NV_UNINITIALIZED = 0x14A
RC_NV_SPACE = 0x14B
RC_NV_DEFINED = 0x14C
RC_HASH = 0x083
RC_VALUE = 0x084
RC_HANDLE = 0x08B
RC_ATTRIBUTES = 0x082
RC_SCHEME = 0x092
RC_SIZE = 0x095
RC_TAG = 0x097
RC_INSUFFICIENT = 0x09A
RC_POLICY_FAIL = 0x09D
RC_INTEGRITY = 0x09F
RC_TYPE = 0x08A
RC_KEY = 0x09C
RC_OBJECT_MEMORY = 0x902
RC_SESSION_MEMORY = 0x903

#: algorithms (TPM_ALG)
ALG_RSA = 0x0001
ALG_SHA1 = 0x0004
ALG_HMAC = 0x0005
ALG_AES = 0x0006
ALG_KEYEDHASH = 0x0008
ALG_SHA256 = 0x000B
ALG_NULL = 0x0010
ALG_ECDSA = 0x0018
ALG_ECC = 0x0023
ALG_CFB = 0x0043
#: TPM_ECC_NIST_P256
ECC_NIST_P256 = 0x0003

#: handles
RH_OWNER = 0x40000001
RH_NULL = 0x40000007
RS_PW = 0x40000009
RH_ENDORSEMENT = 0x4000000B
HR_TRANSIENT = 0x80000000
HR_POLICY_SESSION = 0x03000000
HR_NV_INDEX = 0x01000000
#: the storage root key and the attestation key: persistent, made from the TPM's primary seeds
#: when it is manufactured (the owner's SRK sits where TCG's provisioning guidance puts it)
SRK_HANDLE = 0x81000001
AK_HANDLE = 0x81010010

#: session types (TPM_SE) and the session attribute continueSession
SE_POLICY = 0x01
SE_TRIAL = 0x03
SESSION_CONTINUE = 0x01

#: object attributes (TPMA_OBJECT)
OA_FIXED_TPM = 0x2
OA_FIXED_PARENT = 0x10
OA_SENSITIVE_DATA_ORIGIN = 0x20
OA_USER_WITH_AUTH = 0x40
OA_NO_DA = 0x400
OA_RESTRICTED = 0x10000
OA_DECRYPT = 0x20000
OA_SIGN = 0x40000
#: a restricted signing key: what an attestation key is
AK_ATTRIBUTES = (OA_FIXED_TPM | OA_FIXED_PARENT | OA_SENSITIVE_DATA_ORIGIN | OA_USER_WITH_AUTH
                 | OA_RESTRICTED | OA_SIGN)
#: a restricted decryption key: a storage parent
SRK_ATTRIBUTES = (OA_FIXED_TPM | OA_FIXED_PARENT | OA_SENSITIVE_DATA_ORIGIN | OA_USER_WITH_AUTH
                  | OA_NO_DA | OA_RESTRICTED | OA_DECRYPT)
#: a sealed data object usable only through its policy (no userWithAuth)
SEAL_ATTRIBUTES = OA_FIXED_TPM | OA_FIXED_PARENT

#: NV index attributes (TPMA_NV): a counter the owner or its own (empty) auth may read and write
NV_OWNERWRITE = 0x2
NV_AUTHWRITE = 0x4
NV_COUNTER = 0x10  # TPM_NT_COUNTER in the index-type field (bits 4..7)
NV_TYPE_MASK = 0xF0
NV_OWNERREAD = 0x20000
NV_AUTHREAD = 0x40000
NV_NO_DA = 0x2000000
NV_WRITTEN = 0x20000000
COUNTER_ATTRIBUTES = NV_COUNTER | NV_OWNERWRITE | NV_AUTHWRITE | NV_OWNERREAD | NV_AUTHREAD | NV_NO_DA

#: PCRs of the one bank, and the ones any locality may reset (PC Client: 16 debug .. 23 application)
NUM_PCRS = 24
RESETTABLE_PCRS = range(16, 24)
DIGEST_SIZE = 32
#: sizeofSelect of a PCR selection: 3 bytes for 24 PCRs
PCR_SELECT_SIZE = 3

#: the largest command or response the TPM takes (bytes)
MAX_COMMAND_SIZE = 4096


def rc_p(rc: int, n: int) -> int:
    """A format-one response code about parameter ``n`` (1..15)."""
    return rc | 0x040 | (n << 8)


def rc_h(rc: int, n: int) -> int:
    """A format-one response code about handle ``n`` (1..7)."""
    return rc | (n << 8)


def rc_s(rc: int, n: int) -> int:
    """A format-one response code about session ``n`` (1..7)."""
    return rc | 0x800 | (n << 8)


def rc_base(rc: int) -> int:
    """The code without the parameter, handle or session it names (format one only)."""
    return rc & 0x0BF if rc & 0x080 else rc


# --------------------------------------------------------------------------- marshalling
class Unmarshal(ValueError):
    """Bytes that are not the structure being read (too short, a size beyond its maximum)."""


class Writer:
    """Big-endian marshalling into a growing buffer."""

    __slots__ = ("b",)

    def __init__(self) -> None:
        self.b = bytearray()

    def u8(self, v: int) -> Writer:
        self.b.append(v & 0xFF)
        return self

    def u16(self, v: int) -> Writer:
        self.b += struct.pack(">H", v & 0xFFFF)
        return self

    def u32(self, v: int) -> Writer:
        self.b += struct.pack(">I", v & 0xFFFFFFFF)
        return self

    def u64(self, v: int) -> Writer:
        self.b += struct.pack(">Q", v & 0xFFFFFFFFFFFFFFFF)
        return self

    def raw(self, data: bytes) -> Writer:
        self.b += data
        return self

    def tpm2b(self, data: bytes) -> Writer:
        """A TPM2B: a 16-bit size, then the bytes."""
        return self.u16(len(data)).raw(data)

    def bytes(self) -> bytes:
        return bytes(self.b)


class Reader:
    """Big-endian unmarshalling; every read past the end raises :class:`Unmarshal`."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise Unmarshal(f"{n} bytes wanted at offset {self.pos}, {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def u8(self) -> int:
        return self.raw(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.raw(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.raw(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.raw(8))[0])

    def tpm2b(self, limit: int = MAX_COMMAND_SIZE) -> bytes:
        n = self.u16()
        if n > limit:
            raise Unmarshal(f"a TPM2B of {n} bytes where at most {limit} fit")
        return self.raw(n)

    def left(self) -> int:
        return len(self.data) - self.pos


# --------------------------------------------------------------------------- PCR selections
def pcr_select_bytes(pcrs: Iterable[int]) -> bytes:
    """The ``pcrSelect`` bitmap of a TPMS_PCR_SELECTION: bit ``n % 8`` of byte ``n // 8``."""
    out = bytearray(PCR_SELECT_SIZE)
    for n in pcrs:
        if not 0 <= n < NUM_PCRS:
            raise ValueError(f"PCR {n} does not exist (0..{NUM_PCRS - 1})")
        out[n // 8] |= 1 << (n % 8)
    return bytes(out)


def pcrs_of(select: bytes) -> list[int]:
    """The PCR numbers a ``pcrSelect`` bitmap names, in increasing order."""
    return [i * 8 + b for i, byte in enumerate(select) for b in range(8) if byte >> b & 1]


def pcr_selection(pcrs: Iterable[int], alg: int = ALG_SHA256) -> bytes:
    """A TPML_PCR_SELECTION of one bank (empty when ``pcrs`` is)."""
    sel = sorted(set(pcrs))
    w = Writer()
    if not sel:
        return w.u32(0).bytes()
    return w.u32(1).u16(alg).u8(PCR_SELECT_SIZE).raw(pcr_select_bytes(sel)).bytes()


def read_pcr_selection(r: Reader) -> list[tuple[int, bytes]]:
    """A TPML_PCR_SELECTION as (hash algorithm, pcrSelect bytes) per bank."""
    count = r.u32()
    if count > 16:
        raise Unmarshal(f"a PCR selection of {count} banks")
    out = []
    for _ in range(count):
        alg = r.u16()
        size = r.u8()
        if size > 4:
            raise Unmarshal(f"a pcrSelect of {size} bytes")
        out.append((alg, r.raw(size)))
    return out


# --------------------------------------------------------------------------- hashes and KDFs
def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def extend(old: bytes, digest: bytes) -> bytes:
    """What ``TPM2_PCR_Extend`` does to a PCR: new = H(old || digest)."""
    return sha256(old, digest)


def kdfa(key: bytes, label: str, context_u: bytes, context_v: bytes, bits: int) -> bytes:
    """KDFa of TPM 2.0 Part 1 section 11.4.10.2 (SP 800-108 counter mode, HMAC-SHA256).

    Each block is HMAC(key, counter || label || 0 || contextU || contextV || bits), the
    counter and ``bits`` as 32-bit big-endian numbers.
    """
    out = b""
    counter = 0
    tail = label.encode() + b"\0" + context_u + context_v + struct.pack(">I", bits)
    while len(out) * 8 < bits:
        counter += 1
        out += hmac.new(key, struct.pack(">I", counter) + tail, hashlib.sha256).digest()
    return out[: (bits + 7) // 8]


class Drbg:
    """HMAC_DRBG with SHA-256 (NIST SP 800-90A section 10.1.2), without reseeding.

    A real TPM feeds its DRBG from a hardware entropy source; here the seed is
    derived from the run's seed, so every "random" byte is the same on every
    run.  The state (``key``, ``v``) is what a TPM keeps across power cycles,
    so a rebooted machine goes on with the sequence instead of repeating it.
    """

    __slots__ = ("key", "v")

    def __init__(self, seed: bytes) -> None:
        self.key = b"\0" * 32
        self.v = b"\1" * 32
        self._update(seed)

    def _update(self, data: bytes) -> None:
        self.key = hmac.new(self.key, self.v + b"\0" + data, hashlib.sha256).digest()
        self.v = hmac.new(self.key, self.v, hashlib.sha256).digest()
        if data:
            self.key = hmac.new(self.key, self.v + b"\1" + data, hashlib.sha256).digest()
            self.v = hmac.new(self.key, self.v, hashlib.sha256).digest()

    def generate(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.v = hmac.new(self.key, self.v, hashlib.sha256).digest()
            out += self.v
        self._update(b"")
        return out[:n]


# --------------------------------------------------------------------------- keys and names
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def derive_p256(seed: bytes, template: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key made from a primary seed and the key's template, as TPM 2.0 makes
    primary keys: KDFa(seed, "ECC", H(template)) reduced into 1..n-1 (Part 1 section 28.4)."""
    raw = kdfa(seed, "ECC", sha256(template), b"", 512)
    d = int.from_bytes(raw, "big") % (P256_ORDER - 1) + 1
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.derive_private_key(d, ec.SECP256R1())


def ecc_public(x: bytes, y: bytes, attributes: int, *, signing: bool) -> bytes:
    """A TPMT_PUBLIC of a P-256 key: ECDSA/SHA-256 for a signing key; a storage key carries
    AES-128-CFB as the symmetric algorithm for its children."""
    w = Writer().u16(ALG_ECC).u16(ALG_SHA256).u32(attributes).tpm2b(b"")
    if signing:
        w.u16(ALG_NULL).u16(ALG_ECDSA).u16(ALG_SHA256)  # symmetric NULL, scheme ECDSA(SHA256)
    else:
        w.u16(ALG_AES).u16(128).u16(ALG_CFB).u16(ALG_NULL)  # symmetric AES-128-CFB, scheme NULL
    w.u16(ECC_NIST_P256).u16(ALG_NULL)  # curve, kdf
    return w.tpm2b(x).tpm2b(y).bytes()


def ecc_template(attributes: int, *, signing: bool) -> bytes:
    """The template of a primary P-256 key: its public area with an empty unique field."""
    return ecc_public(b"", b"", attributes, signing=signing)


def public_from_key(key: ec.EllipticCurvePrivateKey, attributes: int, *, signing: bool) -> bytes:
    nums = key.public_key().public_numbers()
    return ecc_public(nums.x.to_bytes(32, "big"), nums.y.to_bytes(32, "big"), attributes, signing=signing)


def keyedhash_public(auth_policy: bytes, attributes: int, unique: bytes) -> bytes:
    """A TPMT_PUBLIC of a sealed data object (KEYEDHASH, scheme NULL)."""
    return (Writer().u16(ALG_KEYEDHASH).u16(ALG_SHA256).u32(attributes).tpm2b(auth_policy)
            .u16(ALG_NULL).tpm2b(unique).bytes())


def name_of(public: bytes) -> bytes:
    """An object's Name: nameAlg || H(TPMT_PUBLIC)."""
    return struct.pack(">H", ALG_SHA256) + sha256(public)


def qualified_name(parent_qn: bytes, name: bytes) -> bytes:
    """An object's Qualified Name: nameAlg || H(parent's QN || Name); a hierarchy's QN is its handle."""
    return struct.pack(">H", ALG_SHA256) + sha256(parent_qn, name)


@dataclass(frozen=True)
class EccPublic:
    """The parts of a TPMT_PUBLIC of an ECC key a verifier needs."""

    attributes: int
    curve: int
    scheme: int
    x: bytes
    y: bytes

    def key(self) -> ec.EllipticCurvePublicKey:
        from cryptography.hazmat.primitives.asymmetric import ec

        return ec.EllipticCurvePublicNumbers(int.from_bytes(self.x, "big"), int.from_bytes(self.y, "big"),
                                             ec.SECP256R1()).public_key()

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def read_ecc_public(public: bytes) -> EccPublic:
    """Parse a TPMT_PUBLIC of a P-256 key (raises :class:`Unmarshal` for anything else)."""
    r = Reader(public)
    if r.u16() != ALG_ECC or r.u16() != ALG_SHA256:
        raise Unmarshal("not an ECC key with nameAlg SHA-256")
    attributes = r.u32()
    r.tpm2b(64)
    sym = r.u16()
    if sym != ALG_NULL:
        r.u16()
        r.u16()
    scheme = r.u16()
    if scheme != ALG_NULL:
        r.u16()
    curve = r.u16()
    if r.u16() != ALG_NULL:
        r.u16()
    x, y = r.tpm2b(32), r.tpm2b(32)
    if curve != ECC_NIST_P256 or len(x) != 32 or len(y) != 32:
        raise Unmarshal("not a NIST P-256 point")
    return EccPublic(attributes, curve, scheme, x, y)


# --------------------------------------------------------------------------- policies
def policy_pcr(old: bytes, selection: bytes, pcr_digest: bytes) -> bytes:
    """``TPM2_PolicyPCR``'s update: H(old || TPM_CC_PolicyPCR || pcrs || pcrDigest), where
    ``selection`` is the marshalled TPML_PCR_SELECTION and ``pcr_digest`` the hash of the
    selected PCRs' values in order (Part 3 section 23.7)."""
    return sha256(old, struct.pack(">I", CC_POLICY_PCR), selection, pcr_digest)


def pcr_policy(values: dict[int, bytes]) -> bytes:
    """The policy digest of a sealed object that opens only while PCR ``n`` holds ``values[n]``
    (a fresh policy, then one PolicyPCR): what :func:`policy_pcr` gives from 32 zero bytes."""
    sel = sorted(values)
    return policy_pcr(b"\0" * 32, pcr_selection(sel), sha256(*(values[n] for n in sel)))


# --------------------------------------------------------------------------- quotes
def quote_attest(signer_qn: bytes, extra: bytes, clock: int, reset_count: int, restart_count: int,
                 safe: bool, firmware: int, selection: bytes, pcr_digest: bytes) -> bytes:
    """A TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (Part 2 section 10.12.12)."""
    return (Writer().u32(GENERATED_VALUE).u16(ST_ATTEST_QUOTE).tpm2b(signer_qn).tpm2b(extra)
            .u64(clock).u32(reset_count).u32(restart_count).u8(int(safe)).u64(firmware)
            .raw(selection).tpm2b(pcr_digest).bytes())


@dataclass(frozen=True)
class Attest:
    """A parsed TPMS_ATTEST of a quote."""

    magic: int
    type: int
    signer: bytes
    extra: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware: int
    selection: list[tuple[int, bytes]]
    pcr_digest: bytes


def read_attest(data: bytes) -> Attest:
    r = Reader(data)
    magic, typ = r.u32(), r.u16()
    signer, extra = r.tpm2b(), r.tpm2b()
    clock, reset, restart, safe, fw = r.u64(), r.u32(), r.u32(), r.u8(), r.u64()
    if typ != ST_ATTEST_QUOTE:
        raise Unmarshal(f"attestation type {typ:#x} is not a quote")
    sel = read_pcr_selection(r)
    digest = r.tpm2b(64)
    if r.left():
        raise Unmarshal(f"{r.left()} bytes after the TPMS_ATTEST")
    return Attest(magic, typ, signer, extra, clock, reset, restart, bool(safe), fw, sel, digest)


def ecdsa_signature(der: bytes) -> bytes:
    """A TPMT_SIGNATURE (ECDSA, SHA-256) from a DER-encoded signature: r and s as TPM2Bs."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    return (Writer().u16(ALG_ECDSA).u16(ALG_SHA256).tpm2b(r.to_bytes(32, "big"))
            .tpm2b(s.to_bytes(32, "big")).bytes())


def read_ecdsa_signature(data: bytes) -> tuple[int, int]:
    """(r, s) of a TPMT_SIGNATURE with ECDSA and SHA-256."""
    rd = Reader(data)
    if rd.u16() != ALG_ECDSA or rd.u16() != ALG_SHA256:
        raise Unmarshal("not an ECDSA/SHA-256 signature")
    r, s = rd.tpm2b(66), rd.tpm2b(66)
    if rd.left():
        raise Unmarshal(f"{rd.left()} bytes after the TPMT_SIGNATURE")
    return int.from_bytes(r, "big"), int.from_bytes(s, "big")


# --------------------------------------------------------------------------- commands
def command(cc: int, handles: tuple[int, ...] = (), params: bytes = b"", *,
            auths: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """Marshal a command: ``auths`` are (session handle, password or empty) per authorized handle.

    Every session is sent with continueSession set, a policy session with an
    empty nonce of 16 bytes and an empty HMAC, as a policy without
    PolicyAuthValue needs.
    """
    w = Writer()
    for hh in handles:
        w.u32(hh)
    if auths:
        area = Writer()
        for sh, pw in auths:
            area.u32(sh).tpm2b(b"" if sh == RS_PW else bytes(16)).u8(SESSION_CONTINUE)
            area.tpm2b(pw if sh == RS_PW else b"")
        w.u32(len(area.b)).raw(area.bytes())
    body = w.raw(params).bytes()
    tag = ST_SESSIONS if auths else ST_NO_SESSIONS
    return Writer().u16(tag).u32(10 + len(body)).u32(cc).raw(body).bytes()


@dataclass
class Response:
    """A parsed response: its code, the handles it returned, and a reader on its parameters."""

    rc: int
    handles: list[int] = field(default_factory=list)
    params: Reader = field(default_factory=lambda: Reader(b""))


def response(data: bytes, nhandles: int = 0) -> Response:
    """Parse a response (raises :class:`~l4sim.machine.tpm2.Unmarshal` when it is malformed)."""
    r = Reader(data)
    tag, size, rc = r.u16(), r.u32(), r.u32()
    if size != len(data):
        raise Unmarshal(f"response size {size} but {len(data)} bytes")
    if rc != RC_SUCCESS:
        return Response(rc)
    handles = [r.u32() for _ in range(nhandles)]
    if tag == ST_SESSIONS:
        n = r.u32()
        return Response(rc, handles, Reader(r.raw(n)))
    return Response(rc, handles, Reader(r.raw(r.left())))
