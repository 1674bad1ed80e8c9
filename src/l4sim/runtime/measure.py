"""Measured boot: what is measured, the event log, and the TPM's FIFO as a program reaches it.

A configuration that gives some program the TPM (``ioports("tpm")`` in its
startup script) or the event log (``eventlog()``) is booted *measured*:
before anything of it runs, every piece of software that makes it up is
hashed and extended into a PCR of the machine's TPM, and each extension is
recorded in an event log.  Two boots of the same configuration give the
same PCRs; a changed byte of any program, of its script entry or of the
script changes them, and a sealed secret or a quote shows it.  The PCRs are
used as GRUB uses them, so outside tools read the log as they read a Linux
boot's:

=====  ==========================================================================
PCR    what is extended into it, in this order
=====  ==========================================================================
9      by the boot loader, before the kernel runs: the kernel's image
       (``l4sim/kernel``) and the runtime's (``l4sim/user`` and ``l4sim/runtime``:
       sigma0, moe, ned, the loader, the region manager); then by ned: the
       startup script, and each program's image in start order
8      by ned: each program's startup-script entry (its name, program, every
       capability, priority, CPUs, arguments, quotas), right after its image
=====  ==========================================================================

An image is what is loaded: for a native program the Python source of its
module and of the modules of its own package that it imports (directly or
not; see :func:`native_image`), for a guest program the ELF file
(:func:`elf_image`).  An entry is a canonical text (ned's ``entry_text``).

The event log is the TCG PC Client crypto-agile format (TCG PC Client
Platform Firmware Profile, section 10): a ``TCG_PCR_EVENT`` with the "Spec ID
Event03" (one algorithm, SHA-256), then one ``TCG_PCR_EVENT2`` per
extension.  Images are ``EV_IPL`` events on PCR 9 whose data names the
image; entries are ``EV_IPL`` events on PCR 8 whose data is
``"l4sim_entry: TEXT\\0"`` and whose digest is SHA-256 of TEXT, the form of
GRUB's command lines, so ``tpm2_eventlog`` checks those digests against the
text.  :meth:`EventLog.replay` computes the PCRs the log promises.

ned reaches the TPM like any driver, through its registers:
:class:`TisClient` speaks the FIFO protocol over I/O ports (``env.io``),
polling the status register with sleeps that double up to
:data:`POLL_MAX_NS`.  The TPM driver (:mod:`l4sim.security.tpm`) uses the
same transport.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from l4sim.machine import tpm as dev
from l4sim.machine import tpm2 as t

if TYPE_CHECKING:
    from l4sim.user.env import Env

#: TCG event types used here
EV_NO_ACTION = 0x3
EV_IPL = 0xD
#: the PCRs of measured boot (GRUB's use: 8 commands, 9 files)
PCR_ENTRIES = 8
PCR_IMAGES = 9
MEASURED_PCRS = (PCR_ENTRIES, PCR_IMAGES)
#: the prefix of an entry's event data (GRUB's "name: text" form)
ENTRY_PREFIX = b"l4sim_entry: "
#: what hashing costs a program (SHA-256 at ~500 MB/s on one core), in simulated ns per KiB
HASH_NS_PER_KIB = 2_000
#: TIS polling: the first sleep, the longest, and when to give up (simulated ns)
POLL_START_NS = 20_000
POLL_MAX_NS = 2_000_000
TIS_TIMEOUT_NS = 2_000_000_000
#: the boot loader's platform images: name -> the l4sim packages that make it up
PLATFORM = {"kernel": ("kernel",), "runtime": ("user", "runtime")}

_L4SIM = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the event log
class EventLogError(ValueError):
    """Bytes that are not a crypto-agile TCG event log (what is wrong, and where)."""


@dataclass(frozen=True)
class Event:
    """One TCG_PCR_EVENT2 with its SHA-256 digest."""

    pcr: int
    type: int
    digest: bytes
    data: bytes

    def text(self) -> str:
        """The event data as text (without the trailing NUL), for a person to read."""
        return self.data.rstrip(b"\0").decode("utf-8", "replace")


def _spec_id() -> bytes:
    """The TCG_PCR_EVENT carrying TCG_EfiSpecIdEvent "Spec ID Event03" for SHA-256 alone."""
    body = (b"Spec ID Event03\0" + struct.pack("<IBBBB", 0, 0, 2, 0, 2) + struct.pack("<I", 1)
            + struct.pack("<HH", t.ALG_SHA256, t.DIGEST_SIZE) + b"\0")
    return struct.pack("<II", 0, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(body)) + body


class EventLog:
    """The measurements of one boot, in the order they were extended."""

    def __init__(self, events: list[Event] | None = None) -> None:
        self.events: list[Event] = list(events or [])

    def add(self, pcr: int, digest: bytes, data: bytes, type: int = EV_IPL) -> Event:
        ev = Event(pcr, type, digest, data)
        self.events.append(ev)
        return ev

    def to_bytes(self) -> bytes:
        out = bytearray(_spec_id())
        for ev in self.events:
            out += struct.pack("<III", ev.pcr, ev.type, 1) + struct.pack("<H", t.ALG_SHA256) + ev.digest
            out += struct.pack("<I", len(ev.data)) + ev.data
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> EventLog:
        """Parse a log this module wrote (SHA-256 only); raises :class:`EventLogError`."""
        head = _spec_id()
        if data[: len(head)] != head:
            raise EventLogError("the log does not start with a Spec ID Event03 for SHA-256 alone")
        pos = len(head)
        events: list[Event] = []
        while pos < len(data):
            if pos + 12 > len(data):
                raise EventLogError(f"event {len(events) + 1}: header cut at byte {pos}")
            pcr, typ, count = struct.unpack_from("<III", data, pos)
            pos += 12
            if count != 1 or pos + 2 + t.DIGEST_SIZE + 4 > len(data):
                raise EventLogError(f"event {len(events) + 1}: not one SHA-256 digest")
            (alg,) = struct.unpack_from("<H", data, pos)
            if alg != t.ALG_SHA256 or pcr >= t.NUM_PCRS:
                raise EventLogError(f"event {len(events) + 1}: algorithm {alg:#x} or PCR {pcr}")
            digest = data[pos + 2 : pos + 2 + t.DIGEST_SIZE]
            pos += 2 + t.DIGEST_SIZE
            (size,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if pos + size > len(data):
                raise EventLogError(f"event {len(events) + 1}: {size} bytes of data, {len(data) - pos} left")
            events.append(Event(pcr, typ, bytes(digest), bytes(data[pos : pos + size])))
            pos += size
        return cls(events)

    def replay(self) -> dict[int, bytes]:
        """The PCR values the log promises: every PCR it names, extended from zero in order."""
        pcrs: dict[int, bytes] = {}
        for ev in self.events:
            if ev.type != EV_NO_ACTION:
                pcrs[ev.pcr] = t.extend(pcrs.get(ev.pcr, bytes(t.DIGEST_SIZE)), ev.digest)
        return pcrs


# --------------------------------------------------------------------------- what is measured
def entry_event(text: str) -> tuple[bytes, bytes]:
    """(digest, event data) of a startup-script entry: H(text) and ``l4sim_entry: text\\0``."""
    raw = text.encode()
    return t.sha256(raw), ENTRY_PREFIX + raw + b"\0"


def _find(name: str) -> importlib.machinery.ModuleSpec | None:
    """The module ``name``'s spec; None when it is no module (``from mod import a_function``)."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _module_source(name: str) -> bytes | None:
    spec = _find(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin).read_bytes()


def _imports(name: str, source: bytes) -> set[str]:
    """Every module ``source`` (of module ``name``) imports, as absolute dotted names (a
    ``from pkg import x`` counts as ``pkg`` and, when it is a module, ``pkg.x``)."""
    tree = ast.parse(source)
    spec = _find(name)
    package = name if spec is not None and spec.submodule_search_locations else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def native_image(module: str) -> tuple[bytes, list[str]]:
    """The image of a native program whose function lives in ``module``, and the modules in it.

    The image is the source of ``module`` and of every module of its own
    package that it imports, directly or through each other -- the package
    being ``l4sim.<subsystem>`` for l4sim's programs (``l4sim.security``,
    ``l4sim.scenarios``) and the top-level package otherwise.  l4sim's kernel,
    user library and runtime are the boot loader's platform images; other
    libraries (the standard library, ``cryptography``) are not measured.
    Modules are concatenated in name order, each after a ``module NAME`` line.
    """
    parts = module.split(".")
    home = ".".join(parts[:2]) if parts[0] == "l4sim" and len(parts) > 2 else parts[0]
    todo, seen, sources = [module], set(), {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        src = _module_source(name)
        if src is None:
            continue
        sources[name] = src
        for imp in sorted(_imports(name, src)):
            if (imp == home or imp.startswith(home + ".")) and imp not in seen:
                todo.append(imp)
    names = sorted(sources)
    return b"".join(f"module {n}\n".encode() + sources[n] for n in names), names


def elf_image(path: str | Path) -> bytes:
    """The image of a guest program: its ELF file, byte for byte."""
    return Path(path).read_bytes()


def platform_image(packages: tuple[str, ...]) -> bytes:
    """The sources of l4sim's ``packages`` (each ``.py`` by its path, in path order)."""
    out = bytearray()
    for pkg in packages:
        for path in sorted((_L4SIM / pkg).rglob("*.py")):
            out += f"file {path.relative_to(_L4SIM).as_posix()}\n".encode() + path.read_bytes()
    return bytes(out)


def extend_command(pcr: int, digest: bytes) -> bytes:
    """TPM2_PCR_Extend of ``pcr`` with one SHA-256 digest, under an empty password."""
    return t.command(t.CC_PCR_EXTEND, (pcr,), t.Writer().u32(1).u16(t.ALG_SHA256).raw(digest).bytes(),
                     auths=((t.RS_PW, b""),))


def measure_platform(tpm: dev.Tpm, log: EventLog) -> None:
    """The boot loader's measurements: the kernel and the runtime, into PCR 9.

    This runs on the host before the kernel exists -- the firmware's path to
    the chip, ``Tpm.execute``, as a boot loader uses the TPM before any
    driver does.
    """
    for name, packages in PLATFORM.items():
        digest = t.sha256(platform_image(packages))
        rsp = t.response(tpm.execute(extend_command(PCR_IMAGES, digest)))
        if rsp.rc != t.RC_SUCCESS:
            raise RuntimeError(f"the TPM refused the boot loader's PCR_Extend: TPM_RC {rsp.rc:#x}")
        log.add(PCR_IMAGES, digest, f"l4sim {name}\0".encode())


# --------------------------------------------------------------------------- the FIFO protocol
class TisError(Exception):
    """The TPM did not follow the FIFO protocol (absent, never done, a short response)."""


class TisClient:
    """Commands to the TPM and responses back, through the TIS registers at ``base``.

    One :meth:`transact` is the whole protocol: take locality 0, make the
    chip ready, write the command in bursts, set ``tpmGo``, poll until
    ``dataAvail`` (sleeping between polls), read the response, make the
    chip ready again and give the locality back.  The program must hold the
    TPM's ports (an access to a port it does not hold faults).
    """

    def __init__(self, env: Env, base: int = dev.TPM_PORT) -> None:
        self.env = env
        self.base = base
        #: commands sent and status polls made (for tests and tools)
        self.commands = 0
        self.polls = 0

    async def _sleep(self, ns: int) -> None:
        env = self.env
        await env.receive(env.thread, timeout=ns)  # nobody sends to ourselves: a sleep

    async def transact(self, command: bytes) -> bytes:
        io, b = self.env.io, self.base
        vid = await io.inb(b + dev.REG_DID_VID) | await io.inb(b + dev.REG_DID_VID + 1) << 8
        if vid != dev.DID_VID & 0xFFFF:
            raise TisError(f"no TPM at port {b:#x} (vendor id {vid:#06x})")
        await io.outb(b + dev.REG_ACCESS, dev.ACCESS_REQUEST)
        if not (await io.inb(b + dev.REG_ACCESS)) & dev.ACCESS_ACTIVE:
            raise TisError("the TPM did not grant locality 0")
        try:
            return await self._command(command)
        finally:
            await io.outb(b + dev.REG_STS, dev.STS_READY)
            await io.outb(b + dev.REG_ACCESS, dev.ACCESS_ACTIVE)

    async def _command(self, command: bytes) -> bytes:
        io, b = self.env.io, self.base
        await io.outb(b + dev.REG_STS, dev.STS_READY)
        if not (await io.inb(b + dev.REG_STS)) & dev.STS_READY:
            raise TisError("the TPM did not become ready")
        i = 0
        while i < len(command):
            burst = await io.inb(b + dev.REG_BURST)
            if burst == 0:
                raise TisError(f"the TPM takes no more bytes after {i} of {len(command)}")
            for byte in command[i : i + burst]:
                await io.outb(b + dev.REG_FIFO, byte)
            i += burst
        if (await io.inb(b + dev.REG_STS)) & dev.STS_EXPECT:
            raise TisError("the TPM expects more bytes than the command has")
        await io.outb(b + dev.REG_STS, dev.STS_GO)
        self.commands += 1
        wait, waited = POLL_START_NS, 0
        while True:
            sts = await io.inb(b + dev.REG_STS)
            self.polls += 1
            if sts & (dev.STS_VALID | dev.STS_AVAIL) == dev.STS_VALID | dev.STS_AVAIL:
                break
            if waited >= TIS_TIMEOUT_NS:
                raise TisError("the TPM did not finish the command")
            await self._sleep(wait)
            waited += wait
            wait = min(2 * wait, POLL_MAX_NS)
        out = bytearray()
        while sts & dev.STS_AVAIL:
            for _ in range(await io.inb(b + dev.REG_BURST)):
                out.append(await io.inb(b + dev.REG_FIFO))
            sts = await io.inb(b + dev.REG_STS)
        if len(out) < 10 or int.from_bytes(out[2:6], "big") != len(out):
            raise TisError(f"a response of {len(out)} bytes that says it has "
                           f"{int.from_bytes(out[2:6], 'big') if len(out) >= 6 else '?'}")
        return bytes(out)


async def extend(tis: TisClient, pcr: int, digest: bytes) -> None:
    """Extend ``pcr`` with ``digest`` through the FIFO; raises :class:`TisError` when refused."""
    rsp = t.response(await tis.transact(extend_command(pcr, digest)))
    if rsp.rc != t.RC_SUCCESS:
        raise TisError(f"PCR_Extend of PCR {pcr} failed: TPM_RC {rsp.rc:#x}")
