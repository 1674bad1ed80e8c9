"""Secure storage: the honest case and every attack on the untrusted store, one boot each.

The system is ``scripts/secure_storage.py``: the TPM driver, the untrusted
store (keeping its blobs in the machine's NVRAM), the storage server with
its master key sealed to the configuration's PCRs, three clients (alice,
bob, carol) and an intruder without a channel to the storage.  The machine
is booted several times; what survives a reboot is what survives on real
hardware: the TPM's non-volatile state and the NVRAM.

1. *setup*: the first boot makes and seals the master key; the clients
   write their files (alice two versions, so the store holds an old one).
2. *reboot*: the same configuration again: the key unseals, every file
   reads back, carol adds a diary entry (the TPM's counter moves on).
3. one boot per attack, each on a copy of the store as the reboot left it,
   changed by the attacker -- the store itself, or whoever holds its
   medium (:mod:`l4sim.security.store`'s :func:`~l4sim.security.store.append`
   on the NVRAM's bytes): a bit flipped in a blob, an old version of a file
   put back, two files' blobs swapped, a blob deleted, the whole store
   rolled back to what the setup boot left, and a boot of the modified
   script ``scripts/secure_storage_mallory.py`` (one more client);
   the intruder's attempt is part of every boot (the reboot's is reported).

An attack is *detected* when the storage server reports it (an ``ATTACK``
line: what it saw) and no client was served forged bytes (no ``WRONG
DATA`` line); *others ok* when every client whose file was not attacked
read its file -- for the attacks that make the server refuse everything
(a rollback, a key that does not unseal), when every program still ended
normally.  ``l4sim boot secure-storage`` prints each boot's console, then
the table and the lines of code of the trusted components against the
untrusted store (:func:`lines_of_code`); with ``--json`` the last line is
``{"attacks": [{"name", "detected", "how", "others_ok"}], "honest_ok":
bool, "trusted_loc": N, "untrusted_loc": N, "loc": {...}}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from l4sim.kernel.kernel import Kernel
from l4sim.machine.board import NVRAM_SIZE, Machine
from l4sim.machine.tpm import TpmNv
from l4sim.runtime.system import System, setup_script
from l4sim.security import store
from l4sim.tools.loc import module_loc, package_loc

SCRIPTS = Path(__file__).resolve().parent / "scripts"
SCRIPT = SCRIPTS / "secure_storage.py"
MALLORY = SCRIPTS / "secure_storage_mallory.py"
#: the clients of the honest configuration and the file each keeps
CLIENTS = {"alice": "notes", "bob": "key", "carol": "diary"}
#: a boot's limit of simulated time (the system ends long before)
LIMIT_NS = 5_000_000_000


def setup(kernel: Kernel, args: Any = None) -> System:
    """One boot of the system on a fresh machine (what ``l4sim boot secure-storage`` repeats)."""
    return setup_script(kernel, SCRIPT)


@dataclass
class Boot:
    """What one boot printed, read back from its console."""

    lines: list[tuple[str, str]]

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


def boot_once(script: Path, nv: TpmNv, disk: bytearray, seed: int, cores: int,
              console: TextIO | None) -> Boot:
    """Boot ``script`` on a machine with this TPM state and NVRAM; what its console showed."""
    machine = Machine(cores=cores, seed=seed, tpm_nv=nv, nvram=disk)
    if console is not None:
        machine.uart.echo = console
    kernel = Kernel(machine)
    system = setup_script(kernel, script)
    kernel.run(until=LIMIT_NS, stop=system.done)
    kernel.shutdown()
    lines = []
    for raw in machine.uart.text().splitlines():
        m = _LINE.match(raw)
        if m is not None:
            lines.append((m.group(1), m.group(2)))
    return Boot(lines)


# --------------------------------------------------------------------------- the attacker's moves
def _blobs(disk: bytearray) -> list[bytes]:
    """The store's file blobs (keys ``f...``), in key order."""
    return sorted(k for k in store.current(store.records(disk)) if k.startswith(b"f"))


def flip_bit(disk: bytearray) -> None:
    """Flip one bit in the middle of the first file blob."""
    key = _blobs(disk)[0]
    value = bytearray(store.current(store.records(disk))[key])
    value[len(value) // 2] ^= 0x10
    store.append(disk, store.Record(store.PUT_RECORD, key, bytes(value)))


def replay_old(disk: bytearray) -> None:
    """Put back the older value of a blob the log still holds an older version of."""
    recs = store.records(disk)
    for key in _blobs(disk):
        puts = [r for r in recs if r.key == key and r.kind == store.PUT_RECORD]
        if len(puts) > 1:
            store.append(disk, puts[-2])
            return
    raise AssertionError("the store holds no older version of any file")


def swap_two(disk: bytearray) -> None:
    """Exchange the blobs of the first two files."""
    a, b = _blobs(disk)[:2]
    cur = store.current(store.records(disk))
    store.append(disk, store.Record(store.PUT_RECORD, a, cur[b]))
    store.append(disk, store.Record(store.PUT_RECORD, b, cur[a]))


def drop_one(disk: bytearray) -> None:
    """Delete the last file blob."""
    store.append(disk, store.Record(store.DELETE_RECORD, _blobs(disk)[-1], b""))


@dataclass
class Attack:
    name: str
    #: changes the store's medium before the boot (None: the store is left alone)
    tamper: Callable[[bytearray], None] | None = None
    #: boot this script (None: the honest one)
    script: Path | None = None
    #: start from the store as the setup boot left it instead of the reboot's
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
#: storage server, and the libraries they run: the TPM 2.0 formats, the per-client channels) and
#: the untrusted store; the platform (kernel, user library, runtime -- with the FIFO transport
#: the driver shares with ned) is under both and counted apart
TRUSTED = {"tpm_driver": ("l4sim.security.tpm",), "storage_server": ("l4sim.security.storage",),
           "libraries": ("l4sim.security.clients", "l4sim.machine.tpm2")}
UNTRUSTED = {"store": ("l4sim.security.store",)}


def lines_of_code() -> dict[str, int]:
    """Lines of code (:mod:`l4sim.tools.loc`) of the trusted and the untrusted components."""
    loc = {k: sum(module_loc(m) for m in mods) for k, mods in {**TRUSTED, **UNTRUSTED}.items()}
    loc["trusted"] = sum(loc[k] for k in TRUSTED)
    loc["untrusted"] = sum(loc[k] for k in UNTRUSTED)
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
    disk = bytearray(NVRAM_SIZE)
    say("boot 1: setup (the master key is made and sealed, the clients write their files)")
    first = boot_once(SCRIPT, nv, disk, seed, cores, console)
    after_setup = bytearray(disk)
    say("boot 2: reboot of the same configuration")
    second = boot_once(SCRIPT, nv, disk, seed, cores, console)
    honest = [first, second]
    honest_ok = all(not b.attacks() and all(b.client(c).startswith(f"{f}: ok") for c, f in CLIENTS.items())
                    for b in honest) and all(b.all_ended() for b in honest)
    rows = []
    for i, attack in enumerate(ATTACKS, 3):
        medium = bytearray(after_setup if attack.old_store else disk)
        if attack.tamper is not None:
            attack.tamper(medium)
        say(f"boot {i}: {attack.name}")
        boot = boot_once(attack.script or SCRIPT, nv, medium, seed, cores, console)
        detected, how, others = _verdict(boot)
        rows.append({"name": attack.name, "detected": detected, "how": how, "others_ok": others})
    probe = next((t for t in second.of("intruder") if t.startswith("reached")), "(nothing)")
    unknown = [t for t in second.of("storage") if "does not know" in t]
    rows.append({"name": INTRUDER, "detected": probe.startswith("reached the storage server: no") and not unknown,
                 "how": probe.replace("reached the storage server: no", "it holds no capability to the server"),
                 "others_ok": honest_ok})
    loc = lines_of_code()
    return {"attacks": rows, "honest_ok": honest_ok, "trusted_loc": loc["trusted"],
            "untrusted_loc": loc["untrusted"], "loc": loc}


def format_result(result: dict[str, Any]) -> str:
    """The summary table: one row per attack (detected, others ok, how)."""
    rows = [("attack", "detected", "others ok", "how")]
    for a in result["attacks"]:
        rows.append((a["name"], "yes" if a["detected"] else "NO", "yes" if a["others_ok"] else "NO", a["how"]))
    w0, w1, w2 = (max(len(r[i]) for r in rows) for i in range(3))
    lines = [f"honest boots (setup, reboot): {'ok' if result['honest_ok'] else 'FAILED'}", ""]
    lines += [f"{r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]:<{w2}}  {r[3]}" for r in rows]
    loc = result.get("loc")
    if loc:
        lines += ["", f"lines of code: trusted {loc['trusted']} (TPM driver {loc['tpm_driver']}, storage server "
                      f"{loc['storage_server']}, their libraries {loc['libraries']}); untrusted store "
                      f"{loc['untrusted']}; under both: kernel and runtime {loc['platform']}"]
    return "\n".join(lines)
