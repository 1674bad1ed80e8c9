"""Secure storage: the honest case and every attack on the untrusted store, one boot each.

The system is ``scripts/secure_storage.py``: the TPM driver, the untrusted
store, the storage server with its master key sealed to the configuration's
PCRs, three clients (alice, bob, carol) and an intruder without a channel to
the storage.  The store is a Linux instance whose busybox shell keeps each
blob as a file ``/store/KEY`` (the value in hex), reached through the stub
``/dev/l4/store``; without a busybox on the host it is the native store,
which keeps a log in the NVRAM.  The machine is booted several times; what
survives a reboot is what survives on real hardware: the TPM's non-volatile
state and the store's medium (:class:`Nvram`, :class:`LinuxDisk`).

The Linux store's medium is its disk, kept by the scenario between boots
(the personality has no block device yet): at boot its files are put into
the instance's root at ``/store``, as ``root=`` imports a host directory;
when the machine goes down, the files the instance's ``/store`` holds then
are the disk's (a disk written back at power-off).

1. *setup*: the first boot makes and seals the master key; the clients
   write their files (alice two versions).
2. *reboot*: the same configuration again: the key unseals, every file
   reads back, carol adds a diary entry (the TPM's counter moves on).
3. one boot per attack, each on a copy of the medium as the reboot left it,
   changed by the attacker -- the store itself, or whoever holds its
   medium: a bit flipped in a blob, an older version of a blob put back
   (the NVRAM's log keeps every version; the Linux disk's attacker kept what
   it saw at an earlier power-off), two files' blobs swapped, a blob
   deleted, the whole medium rolled back to what the setup boot left, and
   a boot of the modified script ``scripts/secure_storage_mallory.py`` (one
   more client); the intruder's attempt is part of every boot (the
   reboot's is reported).

An attack is *detected* when the storage server reports it (an ``ATTACK``
line: what it saw) and no client was served forged bytes (no ``WRONG
DATA`` line); *others ok* when every client whose file was not attacked
read its file -- for the attacks that make the server refuse everything
(a rollback, a key that does not unseal), when every program still ended
normally.  ``l4sim boot secure-storage`` prints each boot's console, then
the table and the lines of code of the trusted components against the
untrusted store (:func:`lines_of_code`); with ``--json`` the last line is
``{"attacks": [{"name", "detected", "how", "others_ok"}], "honest_ok":
bool, "store": "linux" | "native", "trusted_loc": N, "untrusted_loc": N,
"loc": {...}}``.

``l4sim lifetime secure-storage`` (:func:`run_lifetime`) follows the
secrets of the two honest boots: the master key, marked where it enters --
the TPM driver's response buffer when it is unsealed, the storage server's
memory where it keeps it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from l4sim.kernel.kernel import Kernel
from l4sim.linux.vfs import Dir, File, Vfs
from l4sim.machine.board import NVRAM_SIZE, Machine
from l4sim.machine.tpm import TpmNv
from l4sim.runtime import measure
from l4sim.runtime.system import System, setup_script
from l4sim.security import store
from l4sim.tools.loc import elf_code_bytes, modules_loc, package_loc, shell_lines

SCRIPTS = Path(__file__).resolve().parent / "scripts"
SCRIPT = SCRIPTS / "secure_storage.py"
MALLORY = SCRIPTS / "secure_storage_mallory.py"
#: the clients of the honest configuration and the file each keeps
CLIENTS = {"alice": "notes", "bob": "key", "carol": "diary"}
#: a boot's limit of simulated time (the system ends long before)
LIMIT_NS = 5_000_000_000
#: the Linux store: its instance's name in the script, and where it keeps the blobs
STORE, STORE_DIR = "store", "/store"


def linux_store() -> bool:
    """The store is a Linux instance: a busybox is on the host (the script asks the same)."""
    return shutil.which("busybox") is not None


def setup(kernel: Kernel, args: Any = None) -> System:
    """One boot of the system on a fresh machine (what ``l4sim boot secure-storage`` repeats)."""
    return setup_script(kernel, SCRIPT)


# --------------------------------------------------------------------------- the store's medium
@dataclass
class Nvram:
    """The native store's medium: the NVRAM with its log (:mod:`l4sim.security.store`)."""

    data: bytearray = field(default_factory=lambda: bytearray(NVRAM_SIZE))

    def copy(self) -> Nvram:
        return Nvram(bytearray(self.data))

    def names(self) -> list[str]:
        return sorted(k.decode() for k in store.current(store.records(self.data)))

    def get(self, key: str) -> bytes | None:
        return store.current(store.records(self.data)).get(key.encode())

    def put(self, key: str, value: bytes) -> None:
        store.append(self.data, store.Record(store.PUT_RECORD, key.encode(), value))

    def delete(self, key: str) -> None:
        store.append(self.data, store.Record(store.DELETE_RECORD, key.encode(), b""))

    def older(self, key: str) -> list[bytes]:
        """The values the log still holds from before the current one, oldest first."""
        puts = [r.value for r in store.records(self.data) if r.key == key.encode() and r.kind == store.PUT_RECORD]
        return puts[:-1]

    def nvram(self) -> bytearray | None:
        return self.data

    def load(self, system: System) -> None:
        """Nothing to do: the machine's NVRAM is this medium."""

    def save(self, system: System) -> None:
        """Nothing to do: the store wrote the NVRAM itself."""


@dataclass
class LinuxDisk:
    """The Linux store's disk: the files of its ``/store`` (name -> the file's bytes: the value
    in hex and a newline) as the instance left them when the machine last went down, and
    every value a file held at an earlier power-off (what its attacker may have kept)."""

    files: dict[str, bytes] = field(default_factory=dict)
    seen: dict[str, list[bytes]] = field(default_factory=dict)

    def copy(self) -> LinuxDisk:
        return LinuxDisk(dict(self.files), {k: list(v) for k, v in self.seen.items()})

    def names(self) -> list[str]:
        return sorted(self.files)

    def get(self, key: str) -> bytes | None:
        raw = self.files.get(key)
        return bytes.fromhex(raw.decode().strip()) if raw is not None else None

    def put(self, key: str, value: bytes) -> None:
        self.files[key] = value.hex().encode() + b"\n"

    def delete(self, key: str) -> None:
        del self.files[key]

    def older(self, key: str) -> list[bytes]:
        return [bytes.fromhex(raw.decode().strip()) for raw in self.seen.get(key, [])]

    def nvram(self) -> bytearray | None:
        return None  # a blank one: the Linux store does not use it

    def load(self, system: System) -> None:
        """Put the disk's files into the instance's root, at ``/store``."""
        cfg = system.linux.get(STORE)
        if cfg is None:
            return
        Vfs.dirs(cfg.root, [STORE_DIR.strip("/")])
        for name, data in sorted(self.files.items()):
            Vfs.put(cfg.root, f"{STORE_DIR}/{name}", File(data))

    def save(self, system: System) -> None:
        """The files of the instance's ``/store`` as the machine goes down become the disk's."""
        cfg = system.linux.get(STORE)
        k = cfg.observed if cfg is not None else None
        if k is None:
            return
        node = k.vfs.walk(k.vfs.root, STORE_DIR, None)[0]
        now = {name: bytes(n.data) for name, n in sorted(node.names(None)) if isinstance(n, File)} \
            if isinstance(node, Dir) else {}
        for name, old in sorted(self.files.items()):
            if now.get(name) != old:
                self.seen.setdefault(name, []).append(old)
        self.files = now


Medium = Nvram | LinuxDisk


def new_medium() -> Medium:
    """A blank medium for the store the script starts on this host."""
    return LinuxDisk() if linux_store() else Nvram()


@dataclass
class Boot:
    """What one boot printed, read back from its console; what it left of its secrets."""

    lines: list[tuple[str, str]]
    #: the kernel's data-lifetime report and the boot's end (when asked for)
    lifetime: list[dict[str, Any]] = field(default_factory=list)
    end_ns: int = 0
    #: the guest binaries the Linux store ran: path -> bytes of machine code
    binaries: dict[str, int] = field(default_factory=dict)

    def of(self, tag: str) -> list[str]:
        return [text for t, text in self.lines if t == tag]

    def attacks(self) -> list[str]:
        return [text[len("ATTACK "):] for text in self.of("storage") if text.startswith("ATTACK ")]

    def client(self, name: str) -> str:
        file = CLIENTS.get(name, "")
        return next((text for text in self.of(name) if text.startswith(file + ":")), "(nothing)")

    def all_ended(self) -> bool:
        """Every program ned started ended with exit 0 (daemons aside)."""
        ends = [text for text in self.of("ned") if re.match(r"ned: \S+: ", text)]
        return bool(ends) and all(text.endswith(": exit 0") for text in ends)


_LINE = re.compile(r"^\s*([^|]+?)\s*\| (.*)$")


def boot_once(script: Path, nv: TpmNv, medium: Medium, seed: int, cores: int, console: TextIO | None,
              zero_on_free: bool = False, lifetime: bool = False) -> Boot:
    """Boot ``script`` on a machine with this TPM state and the store's medium; what its
    console showed (and, with ``lifetime``, its secrets' copies)."""
    machine = Machine(cores=cores, seed=seed, tpm_nv=nv, nvram=medium.nvram())
    if zero_on_free:
        machine.options["zero_on_free"] = True
    if console is not None:
        machine.uart.echo = console
    kernel = Kernel(machine)
    system = setup_script(kernel, script)
    medium.load(system)
    kernel.run(until=LIMIT_NS, stop=system.done)
    medium.save(system)
    report = kernel.lifetime.report(kernel) if lifetime and kernel.lifetime is not None else []
    end = kernel.now()
    kernel.shutdown()
    lines = []
    for raw in machine.uart.text().splitlines():
        m = _LINE.match(raw)
        if m is not None:
            lines.append((m.group(1), m.group(2)))
    return Boot(lines, report, end, _binaries(system))


def _binaries(system: System) -> dict[str, int]:
    """The executables the Linux store ran (the personality's program cache): bytes of code."""
    cfg = system.linux.get(STORE)
    k = cfg.observed if cfg is not None else None
    if cfg is None or k is None:
        return {}
    names = {cfg.exe_bytes: Path(cfg.exe).name}
    return {names.get(data, f"program {i}"): elf_code_bytes(data) for i, data in enumerate(k.elf_cache)}


# --------------------------------------------------------------------------- the attacker's moves
def _blobs(m: Medium) -> list[str]:
    """The store's file blobs (keys ``f...``), in key order."""
    return [k for k in m.names() if k.startswith("f")]


def flip_bit(m: Medium) -> None:
    """Flip one bit in the middle of the first file blob."""
    key = _blobs(m)[0]
    value = bytearray(m.get(key) or b"")
    value[len(value) // 2] ^= 0x10
    m.put(key, bytes(value))


def replay_old(m: Medium) -> None:
    """Put back an older value of a blob (the newest older one the medium kept)."""
    for key in _blobs(m):
        olds = [v for v in m.older(key) if v != m.get(key)]
        if olds:
            m.put(key, olds[-1])
            return
    raise AssertionError("the medium holds no older version of any file")


def swap_two(m: Medium) -> None:
    """Exchange the blobs of the first two files."""
    a, b = _blobs(m)[:2]
    va, vb = m.get(a), m.get(b)
    assert va is not None and vb is not None
    m.put(a, vb)
    m.put(b, va)


def drop_one(m: Medium) -> None:
    """Delete the last file blob."""
    m.delete(_blobs(m)[-1])


@dataclass
class Attack:
    name: str
    #: changes the store's medium before the boot (None: the store is left alone)
    tamper: Callable[[Medium], None] | None = None
    #: boot this script (None: the honest one)
    script: Path | None = None
    #: start from the medium as the setup boot left it instead of the reboot's
    old_store: bool = False


ATTACKS = [
    Attack("the store flips a bit in a blob", flip_bit),
    Attack("the store replays an old version", replay_old),
    Attack("the store swaps two files' blobs", swap_two),
    Attack("the store drops a file", drop_one),
    Attack("the store rolls back to an old state", old_store=True),
    Attack("a modified startup script unseals", script=MALLORY),
]
INTRUDER = "a client without the capability"

#: the code each side of the wrapper is, by module: the trusted components (the TPM driver, the
#: storage server, and the libraries they run: the TPM 2.0 formats, the per-client channels, the
#: store protocol's client side) and the native store; the platform (kernel, user library,
#: runtime -- with the FIFO transport the driver shares with ned) is under both and counted apart
TRUSTED = {"tpm_driver": ("l4sim.security.tpm",), "storage_server": ("l4sim.security.storage",),
           "libraries": ("l4sim.security.clients", "l4sim.security.store_protocol", "l4sim.machine.tpm2")}
NATIVE_STORE = ("l4sim.security.store",)
#: the Linux instance's program: the personality (its measured image's modules)
PERSONALITY = "l4sim.linux.instance"


def store_program() -> str:
    """The Linux store's shell program, as the startup script gives it."""
    text = SCRIPT.read_text()
    m = re.search(r'STORE_SH = r"""(.*?)"""', text, re.S)
    assert m is not None, "the script gives the store's program as STORE_SH"
    return m.group(1)


def lines_of_code(binaries: dict[str, int] | None = None) -> dict[str, Any]:
    """Lines of code (:mod:`l4sim.tools.loc`) of the trusted components and of the untrusted
    store: the native store's module, or -- with ``binaries``, the machine code of the guest
    programs a Linux store ran -- the personality, the store's shell program and those."""
    loc: dict[str, Any] = {k: modules_loc(mods) for k, mods in TRUSTED.items()}
    loc["trusted"] = sum(loc[k] for k in TRUSTED)
    if binaries is None:
        loc["store"] = modules_loc(NATIVE_STORE)
        loc["untrusted"] = loc["store"]
    else:
        loc["personality"] = modules_loc(measure.native_image(PERSONALITY)[1])
        loc["store_sh"] = shell_lines(store_program())
        loc["untrusted"] = loc["personality"] + loc["store_sh"]
        loc["binaries"] = dict(sorted(binaries.items()))
    loc["platform"] = package_loc("kernel", "user", "runtime")
    return loc


def _verdict(boot: Boot) -> tuple[bool, str, bool]:
    """(detected, how, others ok) of one attack boot."""
    seen = boot.attacks()
    forged = any("WRONG DATA" in text for _t, text in boot.lines)
    hit = {c for c, file in CLIENTS.items() for a in seen if f"file {c}/{file}" in a}
    if seen and not hit:  # the server refuses everything: the rest of the system must run on
        others = boot.all_ended()
    else:
        others = all(boot.client(c).startswith(f"{CLIENTS[c]}: ok") for c in CLIENTS if c not in hit)
    return bool(seen) and not forged, "; ".join(seen) or "not detected", others


def run_boots(seed: int = 0, cores: int = 2, console: TextIO | None = None,
              banner: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every boot of the scenario; the result :func:`format_result` prints (and ``--json`` is).

    ``console`` gets each boot's console as it runs, ``banner`` a line naming
    each boot before it starts.
    """
    say = banner or (lambda text: None)
    nv = TpmNv(seed)
    medium = new_medium()
    say("boot 1: setup (the master key is made and sealed, the clients write their files)")
    first = boot_once(SCRIPT, nv, medium, seed, cores, console)
    after_setup = medium.copy()
    say("boot 2: reboot of the same configuration")
    second = boot_once(SCRIPT, nv, medium, seed, cores, console)
    honest = [first, second]
    honest_ok = all(not b.attacks() and all(b.client(c).startswith(f"{f}: ok") for c, f in CLIENTS.items())
                    for b in honest) and all(b.all_ended() for b in honest)
    rows = []
    for i, attack in enumerate(ATTACKS, 3):
        changed = (after_setup if attack.old_store else medium).copy()
        if attack.tamper is not None:
            attack.tamper(changed)
        say(f"boot {i}: {attack.name}")
        boot = boot_once(attack.script or SCRIPT, nv, changed, seed, cores, console)
        detected, how, others = _verdict(boot)
        rows.append({"name": attack.name, "detected": detected, "how": how, "others_ok": others})
    probe = next((t for t in second.of("intruder") if t.startswith("reached")), "(nothing)")
    unknown = [t for t in second.of("storage") if "does not know" in t]
    rows.append({"name": INTRUDER, "detected": probe.startswith("reached the storage server: no") and not unknown,
                 "how": probe.replace("reached the storage server: no", "it holds no capability to the server"),
                 "others_ok": honest_ok})
    linux = isinstance(medium, LinuxDisk)
    loc = lines_of_code(second.binaries if linux else None)
    return {"attacks": rows, "honest_ok": honest_ok, "store": "linux" if linux else "native",
            "trusted_loc": loc["trusted"], "untrusted_loc": loc["untrusted"], "loc": loc}


def format_result(result: dict[str, Any]) -> str:
    """The summary table: one row per attack (detected, others ok, how)."""
    rows = [("attack", "detected", "others ok", "how")]
    for a in result["attacks"]:
        rows.append((a["name"], "yes" if a["detected"] else "NO", "yes" if a["others_ok"] else "NO", a["how"]))
    w0, w1, w2 = (max(len(r[i]) for r in rows) for i in range(3))
    store_kind = "a Linux instance" if result.get("store") == "linux" else "the native store"
    lines = [f"the untrusted store: {store_kind}",
             f"honest boots (setup, reboot): {'ok' if result['honest_ok'] else 'FAILED'}", ""]
    lines += [f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]:<{w2}}  {r[3]}" for r in rows]
    loc = result.get("loc")
    if loc:
        trusted = (f"trusted {loc['trusted']} (TPM driver {loc['tpm_driver']}, storage server "
                   f"{loc['storage_server']}, their libraries {loc['libraries']})")
        if "personality" in loc:
            code = ", ".join(f"{name} {size / 1024:,.0f} KiB" for name, size in loc["binaries"].items())
            untrusted = (f"untrusted Linux store {loc['untrusted']} (personality {loc['personality']}, the "
                         f"store's shell program {loc['store_sh']}) and the guest binaries it ran, in machine "
                         f"code: {code or 'none'}")
        else:
            untrusted = f"untrusted native store {loc['untrusted']}"
        lines += ["", f"lines of code: {trusted}; {untrusted}; under both: kernel and runtime {loc['platform']}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- data lifetime
#: the boots whose secrets ``l4sim lifetime secure-storage`` follows
LIFETIME_BOOTS = ("setup", "reboot")


def run_lifetime(zero_on_free: bool = False, seed: int = 0, cores: int = 2) -> dict[str, Any]:
    """The secrets of the two honest boots (kernel/lifetime.py), each boot on its own: a boot's
    memory does not survive it.  The setup boot makes the master key (random bytes from the
    TPM, marked where the storage server keeps them) and seals it; the reboot unseals it (the
    TPM driver marks it in its response buffer) and uses it.  The attack boots repeat these
    paths or refuse before the key is used, and are left out."""
    nv = TpmNv(seed)
    medium = new_medium()
    secrets: list[dict[str, Any]] = []
    end = 0
    for name in LIFETIME_BOOTS:
        boot = boot_once(SCRIPT, nv, medium, seed, cores, None, zero_on_free=zero_on_free, lifetime=True)
        secrets += [{"boot": name, **s} for s in boot.lifetime]
        end = boot.end_ns
    return {"scenario": "secure-storage", "zero_on_free": zero_on_free, "end_ns": end, "boots": list(LIFETIME_BOOTS),
            "store": "linux" if isinstance(medium, LinuxDisk) else "native", "secrets": secrets}
