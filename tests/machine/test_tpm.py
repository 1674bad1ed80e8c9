"""The TPM device: its TPM 2.0 commands in their marshalled form, its keys and its FIFO registers."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from l4sim.machine import tpm as dev
from l4sim.machine import tpm2 as t
from l4sim.machine.board import Machine
from l4sim.machine.events import EventQueue
from l4sim.machine.tpm import Tpm, TpmNv

PW = ((t.RS_PW, b""),)


def chip(seed: int = 0, nv: TpmNv | None = None) -> Tpm:
    return Tpm(EventQueue(), nv if nv is not None else TpmNv(seed))


def run(tpm: Tpm, cc: int, handles: tuple[int, ...] = (), params: bytes = b"",
        auths: tuple[tuple[int, bytes], ...] = (), nhandles: int = 0) -> t.Response:
    return t.response(tpm.execute(t.command(cc, handles, params, auths=auths)), nhandles)


def extend(tpm: Tpm, pcr: int, digest: bytes) -> int:
    return run(tpm, t.CC_PCR_EXTEND, (pcr,), t.Writer().u32(1).u16(t.ALG_SHA256).raw(digest).bytes(), PW).rc


def quote(tpm: Tpm, nonce: bytes, pcrs: list[int]) -> tuple[bytes, bytes]:
    r = run(tpm, t.CC_QUOTE, (t.AK_HANDLE,), t.Writer().tpm2b(nonce).u16(t.ALG_NULL).raw(t.pcr_selection(pcrs)).bytes(),
            PW)
    assert r.rc == 0, hex(r.rc)
    attest = r.params.tpm2b()
    return attest, r.params.raw(r.params.left())


def seal(tpm: Tpm, data: bytes, policy: bytes) -> tuple[bytes, bytes]:
    template = t.keyedhash_public(policy, t.SEAL_ATTRIBUTES, b"")
    params = t.Writer().tpm2b(t.Writer().tpm2b(b"").tpm2b(data).bytes()).tpm2b(template).tpm2b(b"")
    r = run(tpm, t.CC_CREATE, (t.SRK_HANDLE,), params.raw(t.pcr_selection([])).bytes(), PW)
    assert r.rc == 0, hex(r.rc)
    return r.params.tpm2b(), r.params.tpm2b()


def unseal(tpm: Tpm, private: bytes, public: bytes, pcrs: list[int]) -> tuple[int, bytes]:
    r = run(tpm, t.CC_LOAD, (t.SRK_HANDLE,), t.Writer().tpm2b(private).tpm2b(public).bytes(), PW, 1)
    if r.rc:
        return r.rc, b""
    item = r.handles[0]
    start = t.Writer().tpm2b(bytes(16)).tpm2b(b"").u8(t.SE_POLICY).u16(t.ALG_NULL).u16(t.ALG_SHA256).bytes()
    s = run(tpm, t.CC_START_AUTH_SESSION, (t.RH_NULL, t.RH_NULL), start, nhandles=1).handles[0]
    assert run(tpm, t.CC_POLICY_PCR, (s,), t.Writer().tpm2b(b"").raw(t.pcr_selection(pcrs)).bytes()).rc == 0
    u = run(tpm, t.CC_UNSEAL, (item,), auths=((s, b""),))
    for h in (s, item):
        assert run(tpm, t.CC_FLUSH_CONTEXT, params=t.Writer().u32(h).bytes()).rc == 0
    return u.rc, u.params.tpm2b() if u.rc == 0 else b""


def test_extend_is_sha256_of_the_old_value_and_the_digest() -> None:
    """PCR_Extend sets a PCR to H(old || digest); PCR_Read returns it."""
    tpm = chip()
    d = t.sha256(b"measured")
    assert extend(tpm, 9, d) == 0
    assert tpm.pcr(9) == t.sha256(bytes(32), d)
    r = run(tpm, t.CC_PCR_READ, params=t.pcr_selection([9]))
    assert r.rc == 0
    r.params.u32()
    assert t.read_pcr_selection(r.params) == [(t.ALG_SHA256, t.pcr_select_bytes([9]))]
    assert r.params.u32() == 1 and r.params.tpm2b() == tpm.pcr(9)


def test_a_pcr_that_does_not_exist_or_an_unknown_bank_is_refused() -> None:
    """PCR 24 is no PCR (TPM_RC_VALUE on handle 1); an unknown hash algorithm is TPM_RC_HASH."""
    tpm = chip()
    assert t.rc_base(extend(tpm, 24, bytes(32))) == t.RC_VALUE
    bad = run(tpm, t.CC_PCR_EXTEND, (8,), t.Writer().u32(1).u16(0x0012).raw(bytes(32)).bytes(), PW)
    assert t.rc_base(bad.rc) == t.RC_HASH
    assert tpm.pcr(8) == bytes(32)


def test_only_pcrs_16_to_23_can_be_reset() -> None:
    """PCR_Reset zeroes 16..23 and refuses the boot PCRs."""
    tpm = chip()
    for n in (0, 8, 16, 23):
        extend(tpm, n, t.sha256(b"x"))
    assert run(tpm, t.CC_PCR_RESET, (16,), auths=PW).rc == 0
    assert run(tpm, t.CC_PCR_RESET, (23,), auths=PW).rc == 0
    assert tpm.pcr(16) == tpm.pcr(23) == bytes(32)
    assert run(tpm, t.CC_PCR_RESET, (8,), auths=PW).rc == dev.RC_LOCALITY
    assert tpm.pcr(8) != bytes(32)


def test_the_attestation_key_comes_from_the_seed_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same seed makes the same AK (without host entropy), another seed another one."""

    def no_entropy(n: int) -> bytes:
        raise AssertionError("the TPM must not use host entropy")

    monkeypatch.setattr(os, "urandom", no_entropy)
    a, b, c = chip(7), chip(7), chip(8)
    assert a.ak_public() == b.ak_public() != c.ak_public()
    assert quote(a, b"n", [8]) == quote(b, b"n", [8])  # the signature too: RFC 6979


def test_a_quote_is_a_signed_tpms_attest_over_the_nonce_and_the_pcrs() -> None:
    """The quote's signature verifies under the AK; it carries the nonce and H(selected PCRs)."""
    tpm = chip()
    extend(tpm, 8, t.sha256(b"a"))
    attest, sig = quote(tpm, b"fresh nonce", [8, 9])
    a = t.read_attest(attest)
    assert a.magic == t.GENERATED_VALUE and a.type == t.ST_ATTEST_QUOTE
    assert a.extra == b"fresh nonce"
    assert a.pcr_digest == t.sha256(tpm.pcr(8), tpm.pcr(9))
    assert a.signer == t.qualified_name(t.RH_ENDORSEMENT.to_bytes(4, "big"), t.name_of(tpm.ak_public()))
    r, s = t.read_ecdsa_signature(sig)
    t.read_ecc_public(tpm.ak_public()).key().verify(encode_dss_signature(r, s), attest, ec.ECDSA(hashes.SHA256()))


def test_sealed_data_opens_only_while_the_pcrs_hold_the_sealed_values() -> None:
    """Unseal works under the PCRs the policy names; after an extend the policy check fails."""
    tpm = chip()
    extend(tpm, 8, t.sha256(b"config"))
    policy = t.pcr_policy({8: tpm.pcr(8), 9: tpm.pcr(9)})
    private, public = seal(tpm, b"master key", policy)
    assert unseal(tpm, private, public, [8, 9]) == (0, b"master key")
    extend(tpm, 9, t.sha256(b"another program"))
    rc, data = unseal(tpm, private, public, [8, 9])
    assert t.rc_base(rc) == t.RC_POLICY_FAIL and data == b""


def test_a_sealed_blob_survives_a_power_cycle_but_not_a_changed_byte() -> None:
    """The same chip (its NV state) after a reboot unseals; a flipped bit fails its integrity check."""
    nv = TpmNv(3)
    tpm = chip(nv=nv)
    private, public = seal(tpm, b"k", t.pcr_policy({16: bytes(32)}))
    again = chip(nv=nv)
    assert unseal(again, private, public, [16]) == (0, b"k")
    broken = bytearray(private)
    broken[-1] ^= 1
    rc, _ = unseal(again, bytes(broken), public, [16])
    assert t.rc_base(rc) == t.RC_INTEGRITY
    other = chip(4)  # another chip's storage key
    assert t.rc_base(unseal(other, private, public, [16])[0]) == t.RC_INTEGRITY


def test_nv_counters_count_up_and_survive_a_power_cycle() -> None:
    """NV_Increment moves a counter on; NV_Read reads it; a reboot keeps it."""
    nv = TpmNv(0)
    tpm = chip(nv=nv)
    idx = 0x01500001
    pub = t.Writer().u32(idx).u16(t.ALG_SHA256).u32(t.COUNTER_ATTRIBUTES).tpm2b(b"").u16(8).bytes()
    assert run(tpm, t.CC_NV_DEFINE_SPACE, (t.RH_OWNER,), t.Writer().tpm2b(b"").tpm2b(pub).bytes(), PW).rc == 0
    assert run(tpm, t.CC_NV_DEFINE_SPACE, (t.RH_OWNER,), t.Writer().tpm2b(b"").tpm2b(pub).bytes(), PW).rc == \
        t.RC_NV_DEFINED
    read = t.Writer().u16(8).u16(0).bytes()
    assert run(tpm, t.CC_NV_READ, (idx, idx), read, PW).rc == t.RC_NV_UNINITIALIZED
    for _ in range(3):
        assert run(tpm, t.CC_NV_INCREMENT, (idx, idx), auths=PW).rc == 0
    again = chip(nv=nv)
    assert int.from_bytes(run(again, t.CC_NV_READ, (idx, idx), read, PW).params.tpm2b(), "big") == 3


def test_random_bytes_are_the_seeds_and_go_on_after_a_reboot() -> None:
    """GetRandom is deterministic per seed, and a rebooted chip does not repeat what it gave."""

    def rand(tpm: Tpm) -> bytes:
        return run(tpm, t.CC_GET_RANDOM, params=t.Writer().u16(32).bytes()).params.tpm2b()

    nv = TpmNv(5)
    first = rand(chip(nv=nv))
    assert first == rand(chip(5)) and len(first) == 32
    assert rand(chip(nv=nv)) != first
    assert rand(chip(6)) != first


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_is_answered_with_an_error_never_an_exception(data: bytes) -> None:
    """Whatever bytes arrive, the chip answers a well-formed response (an error for garbage)."""
    rsp = chip().execute(data)
    r = t.Reader(rsp)
    r.u16()
    assert r.u32() == len(rsp) >= 10


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(dev.COMMANDS)), st.binary(max_size=120))
def test_every_command_with_bad_parameters_answers_an_error(cc: int, params: bytes) -> None:
    """Each command code with random parameters (and a password session) gives a response."""
    handles = tuple([8, 0x01500001][: dev.COMMANDS[cc].handles])
    rsp = chip().execute(t.command(cc, handles, params, auths=PW[: dev.COMMANDS[cc].auths]))
    assert int.from_bytes(rsp[2:6], "big") == len(rsp)


def test_the_fifo_registers_carry_a_command_and_its_response() -> None:
    """Through the ports: locality, commandReady, bytes, tpmGo, dataAvail after the latency."""
    m = Machine()
    rd, wr = m.ports[dev.TPM_PORT][0], m.ports[dev.TPM_PORT][1]
    base = dev.TPM_PORT
    assert rd(base + dev.REG_STS) == 0xFF  # no locality yet
    wr(base + dev.REG_ACCESS, dev.ACCESS_REQUEST)
    assert rd(base + dev.REG_ACCESS) & dev.ACCESS_ACTIVE
    wr(base + dev.REG_STS, dev.STS_READY)
    cmd = t.command(t.CC_GET_RANDOM, params=t.Writer().u16(8).bytes())
    for b in cmd:
        assert rd(base + dev.REG_STS) & dev.STS_READY or rd(base + dev.REG_STS) & dev.STS_EXPECT
        wr(base + dev.REG_FIFO, b)
    assert not rd(base + dev.REG_STS) & dev.STS_EXPECT
    wr(base + dev.REG_STS, dev.STS_GO)
    assert not rd(base + dev.REG_STS) & dev.STS_AVAIL  # executing
    ev = m.events.pop()
    assert ev is not None and m.now == dev.LATENCY_NS[t.CC_GET_RANDOM]
    ev.fn(*ev.args)
    assert rd(base + dev.REG_STS) & dev.STS_AVAIL
    n = rd(base + dev.REG_BURST)
    rsp = bytes(rd(base + dev.REG_FIFO) for _ in range(n))
    assert len(rsp) == 20 and t.response(rsp).rc == 0
    assert not rd(base + dev.REG_STS) & dev.STS_AVAIL
    assert rd(base + dev.REG_DID_VID) | rd(base + dev.REG_DID_VID + 1) << 8 == dev.DID_VID & 0xFFFF


def test_a_machine_keeps_its_tpm_and_nvram_only_when_given_them() -> None:
    """A new machine has a new chip and a zeroed NVRAM; handing them over is a reboot."""
    a = Machine(seed=1)
    extend(a.tpm, 9, bytes(32))
    a.nvram.data[0] = 7
    b = Machine(seed=1, tpm_nv=a.tpm.nv, nvram=a.nvram.data)
    assert b.tpm.pcr(9) == bytes(32)  # PCRs start over
    assert b.nvram.data[0] == 7 and b.tpm.nv.reset_count == 1
    assert Machine(seed=1).nvram.data[0] == 0


def test_the_board_names_the_chips_ports_and_makes_the_chip_on_first_use() -> None:
    """The board keeps the TIS port numbers itself (the chip's module is imported only when the
    chip is first used); they are the chip's, and a machine nobody asks for its TPM has none yet,
    while one made from a chip's saved state powers it on at once (its reset count goes up)."""
    from l4sim.machine import board

    assert (board.TPM_PORT, board.TPM_PORT_ORDER) == (dev.TPM_PORT, dev.TPM_PORT_ORDER)
    m = Machine()
    assert m._tpm is None
    assert m.ports[dev.TPM_PORT][0](dev.TPM_PORT + dev.REG_DID_VID) == dev.DID_VID & 0xFF
    assert m._tpm is not None and m.tpm is m._tpm
    nv = dev.TpmNv(7)
    Machine(tpm_nv=nv)
    assert nv.reset_count == 0
