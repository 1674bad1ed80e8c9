"""``l4sim attest``: boot a system measured, challenge it, and verify its answer as a remote verifier.

The verifier is the host, at the far end of the machine's second serial
line.  It boots the startup script with two programs added (both measured
like the rest: the attested configuration includes them): the TPM driver,
unless the script starts it already (then it gets one more client channel,
``svc.attest``), and the attestation agent (:mod:`l4sim.security.attest`)
with a channel to the driver, the event log and the line.  Before the boot
it puts its challenge -- the nonce -- on the line; the agent answers with a
quote of PCRs 8 and 9, their values, the attestation key and the event log.

The verifier then checks, trusting nothing the system sent:

- the attestation key is the one the TPM's manufacturer recorded for this
  chip (the host made the chip: ``machine.tpm.ak_public()``);
- the quote's signature verifies under that key; it is a TPMS_ATTEST of a
  quote whose nonce is the challenge and whose PCR digest is that of the
  PCR values sent (``quote_verified``);
- the event log, replayed, gives those PCR values (``replay_ok``).

With ``--out DIR`` it writes ``quote.msg`` (the TPMS_ATTEST),
``quote.sig`` (the TPMT_SIGNATURE), ``pcrs.bin`` (the PCR selection and
values as ``tpm2_quote -o`` writes them: the TPML_PCR_SELECTION, the number
of TPML_DIGESTs and the TPML_DIGESTs, each a C structure in the host's
little-endian order), ``ak.pub.pem`` and ``eventlog.bin``, so tpm2-tools
can check the same: ``tpm2_checkquote -u ak.pub.pem -m quote.msg -s
quote.sig -f pcrs.bin -g sha256 -q NONCE -e eventlog.bin``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from l4sim.kernel.kernel import Kernel
from l4sim.machine import tpm2 as t
from l4sim.machine.board import Machine
from l4sim.runtime.loader import KMEM, resolve
from l4sim.runtime.measure import MEASURED_PCRS, EventLog, EventLogError
from l4sim.runtime.ned import (
    Channel,
    EventLogSpec,
    Plan,
    PortsSpec,
    ProgramSpec,
    Where,
    load_script,
)
from l4sim.runtime.system import boot_plan
from l4sim.security.attest import ANSWER, REQUEST

DRIVER = "l4sim.security.tpm:driver"
AGENT = "l4sim.security.attest:agent"
#: how long a system may run before it must have answered (simulated ns)
LIMIT_NS = 20_000_000_000
_HERE = Where("(added by l4sim attest)", 0)


class AttestError(Exception):
    """A problem the user can fix (the script, the nonce, the output directory): one line."""


def add_attestation(plan: Plan) -> None:
    """Add the TPM driver (if missing) and the agent to ``plan``; raises :class:`AttestError`."""
    names = {p.name for p in plan.programs}
    chans = {c.name for c in plan.channels}
    holders = {d.name: p for p in plan.programs for d in p.caps.values() if isinstance(d, PortsSpec)}
    if "serial1" in holders:
        raise AttestError(f"{plan.file}: program {holders['serial1'].name!r} holds ioports('serial1'), the line "
                          "l4sim attest talks to the agent on: give it another device")
    for name in ("attest",) + (() if "tpm" in holders else ("tpm",)):
        if name in names:
            raise AttestError(f"{plan.file}: the script starts a program named {name!r}, which l4sim attest "
                              "adds: rename it")
    if "tpm-attest" in chans:
        raise AttestError(f"{plan.file}: the script has a channel 'tpm-attest', which l4sim attest adds: rename it")
    link = Channel("tpm-attest", _HERE)
    plan.channels.append(link)
    driver = holders.get("tpm")
    if driver is None:
        plan.programs.append(ProgramSpec("tpm", DRIVER, {"tpm": PortsSpec("tpm", _HERE), "svc.attest": link.server()},
                                         40, 1, (), 4 << 20, True, _HERE, resolve(DRIVER), KMEM))
    elif driver.program != DRIVER:
        raise AttestError(f"{plan.file}: the TPM is given to {driver.name!r} ({driver.program}), not to the TPM "
                          f"driver {DRIVER}: l4sim attest asks that driver for the quote")
    else:
        driver.caps["svc.attest"] = link.server()
    plan.programs.append(ProgramSpec("attest", AGENT, {"tpm": link, "eventlog": EventLogSpec(_HERE),
                                                       "link": PortsSpec("serial1", _HERE)},
                                     10, 1, (), 4 << 20, False, _HERE, resolve(AGENT), KMEM))
    plan.load_images()


@dataclass
class Answer:
    attest: bytes
    signature: bytes
    ak_public: bytes
    pcrs: dict[int, bytes]
    eventlog: bytes


def read_answer(tx: bytes) -> Answer:
    """The agent's answer from the bytes it sent on the line; raises :class:`AttestError`."""
    if not tx.startswith(ANSWER):
        raise AttestError("the system sent no answer on the serial line (did the agent start? see its output)")
    pos, parts = len(ANSWER), []
    for _ in range(6):
        if pos + 4 > len(tx):
            raise AttestError("the system's answer is cut short")
        (n,) = struct.unpack_from("<I", tx, pos)
        parts.append(bytes(tx[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    if parts[5]:
        raise AttestError(f"the system could not attest: {parts[5].decode('utf-8', 'replace')}")
    raw = parts[3]
    if len(raw) != t.DIGEST_SIZE * len(MEASURED_PCRS):
        raise AttestError(f"the system sent {len(raw)} bytes of PCR values")
    pcrs = {n: raw[i * t.DIGEST_SIZE : (i + 1) * t.DIGEST_SIZE] for i, n in enumerate(MEASURED_PCRS)}
    return Answer(parts[0], parts[1], parts[2], pcrs, parts[4])


def pcrs_file(pcrs: dict[int, bytes]) -> bytes:
    """PCR values as ``tpm2_quote -o`` writes them (tpm2-tools' ``pcr_fwrite_serialized``): a
    TPML_PCR_SELECTION, the number of TPML_DIGESTs, then the TPML_DIGESTs (eight digests each), all
    as tss2's C structures in little-endian order."""
    sel = bytearray(4 + 16 * 8)  # count, then TPMS_PCR_SELECTION[16] of 8 bytes (hash, size, select[4], pad)
    struct.pack_into("<I", sel, 0, 1)
    struct.pack_into("<HB", sel, 4, t.ALG_SHA256, t.PCR_SELECT_SIZE)
    sel[7 : 7 + t.PCR_SELECT_SIZE] = t.pcr_select_bytes(pcrs)
    values = [pcrs[n] for n in sorted(pcrs)]
    lists = [values[i : i + 8] for i in range(0, len(values), 8)]
    out = bytes(sel) + struct.pack("<I", len(lists))
    for group in lists:
        dig = bytearray(4 + 8 * (2 + 64))  # count, then TPM2B_DIGEST[8] of (size, buffer[64])
        struct.pack_into("<I", dig, 0, len(group))
        for i, v in enumerate(group):
            struct.pack_into("<H", dig, 4 + i * 66, len(v))
            dig[4 + i * 66 + 2 : 4 + i * 66 + 2 + len(v)] = v
        out += bytes(dig)
    return out


@dataclass
class Result:
    nonce: bytes
    pcrs: dict[int, bytes]
    log: EventLog
    replay: dict[int, bytes]
    replay_ok: bool
    quote_verified: bool
    #: why the quote does not verify (empty when it does)
    problems: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, object]:
        return {"pcrs": {str(n): v.hex() for n, v in sorted(self.pcrs.items())}, "replay_ok": self.replay_ok,
                "quote_verified": self.quote_verified, "nonce": self.nonce.hex(), "files": self.files}


def verify(ans: Answer, nonce: bytes, endorsed: bytes) -> tuple[bool, list[str]]:
    """Check the quote: (verified, what is wrong)."""
    problems = []
    if ans.ak_public != endorsed:
        problems.append("the attestation key is not the one the TPM's manufacturer recorded")
    try:
        ak = t.read_ecc_public(ans.ak_public)
        r, s = t.read_ecdsa_signature(ans.signature)
        ak.key().verify(encode_dss_signature(r, s), ans.attest, ec.ECDSA(hashes.SHA256()))
    except (t.Unmarshal, InvalidSignature, ValueError) as e:
        problems.append(f"the signature does not verify ({type(e).__name__})")
    try:
        a = t.read_attest(ans.attest)
    except t.Unmarshal as e:
        problems.append(f"the quote is no TPMS_ATTEST of a quote: {e}")
        return False, problems
    if a.magic != t.GENERATED_VALUE:
        problems.append("the quote lacks TPM_GENERATED_VALUE")
    if a.extra != nonce:
        problems.append("the quote is over another nonce")
    chosen = [n for alg, bits in a.selection if alg == t.ALG_SHA256 for n in t.pcrs_of(bits)]
    if chosen != sorted(ans.pcrs):
        problems.append(f"the quote covers PCRs {chosen}, not {sorted(ans.pcrs)}")
    if a.pcr_digest != t.sha256(*(ans.pcrs[n] for n in sorted(ans.pcrs))):
        problems.append("the quote's PCR digest is not that of the PCR values sent")
    return not problems, problems


def attest(script: str | Path, nonce: bytes, out: Path | None = None, seed: int = 0, cores: int = 2,
           console: TextIO | None = None) -> Result:
    """Boot ``script`` with the agent, challenge it with ``nonce``, verify; raises :class:`AttestError`."""
    if not 1 <= len(nonce) <= 64:
        raise AttestError(f"a nonce of {len(nonce)} bytes: give 1 to 64 bytes (2 to 128 hex digits)")
    from l4sim.runtime.ned import ScriptError

    if out is not None:  # a bad directory must not cost the run
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AttestError(f"cannot write {out}: {e.strerror}; choose a writable directory") from None
        if not os.access(out, os.W_OK):
            raise AttestError(f"cannot write {out}: permission denied; choose a writable directory")
    machine = Machine(cores=cores, seed=seed, console=console)
    try:
        plan = load_script(script, machine.ncores)
    except ScriptError as e:
        raise AttestError(str(e)) from None
    add_attestation(plan)
    machine.serial1.rx += REQUEST + bytes([len(nonce)]) + nonce
    kernel = Kernel(machine)
    system = boot_plan(kernel, plan)

    def answered() -> bool:
        agent = next((c for c in system.programs if c.name == "attest"), None)
        return system.done() or (agent is not None and agent.done)

    kernel.run(until=LIMIT_NS, stop=answered)
    kernel.shutdown()
    ans = read_answer(bytes(machine.serial1.tx))
    try:
        log = EventLog.from_bytes(ans.eventlog)
    except EventLogError as e:
        raise AttestError(f"the system's event log is malformed: {e}") from None
    replay = log.replay()
    replay_ok = all(replay.get(n, bytes(t.DIGEST_SIZE)) == v for n, v in ans.pcrs.items())
    ok, problems = verify(ans, nonce, machine.tpm.ak_public())
    result = Result(nonce, ans.pcrs, log, replay, replay_ok, ok, problems)
    if out is not None:
        files = {"quote.msg": ans.attest, "quote.sig": ans.signature, "pcrs.bin": pcrs_file(ans.pcrs),
                 "ak.pub.pem": t.read_ecc_public(ans.ak_public).pem(), "eventlog.bin": ans.eventlog}
        try:
            for name, data in files.items():
                (out / name).write_bytes(data)
        except OSError as e:
            raise AttestError(f"cannot write {out}: {e.strerror}; choose a writable directory") from None
        result.files = {name: str(out / name) for name in files}
    return result


def format_result(res: Result) -> str:
    """The event log, the replay against the PCRs, and the verdict, for a person."""
    lines = ["event log (TCG PC Client crypto-agile, SHA-256):",
             f"  {'#':>2}  {'PCR':>3}  {'type':<6}  {'digest':<16}  event"]
    for i, ev in enumerate(res.log.events, 1):
        kind = "EV_IPL" if ev.type == 0xD else f"{ev.type:#x}"
        lines.append(f"  {i:>2}  {ev.pcr:>3}  {kind:<6}  {ev.digest.hex()[:16]}  {ev.text()[:90]}")
    lines.append("")
    for n, v in sorted(res.pcrs.items()):
        got = res.replay.get(n, bytes(t.DIGEST_SIZE))
        lines.append(f"PCR {n}: {v.hex()}  replay {'matches' if got == v else 'DIFFERS: ' + got.hex()}")
    lines.append(f"replay: {'ok' if res.replay_ok else 'FAILED'}")
    lines.append(f"quote over nonce {res.nonce.hex()}: "
                 f"{'verified' if res.quote_verified else 'NOT verified: ' + '; '.join(res.problems)}")
    if res.files:
        lines.append("")
        lines.append(f"written: {', '.join(sorted(Path(p).name for p in res.files.values()))} "
                     f"in {Path(next(iter(res.files.values()))).parent}")
    return "\n".join(lines)
