"""Measured boot: the boot loader and ned extend the TPM in a fixed order and keep the event log.

The programs are defined here and named ``{__name__}:function``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from l4sim.kernel.kernel import Kernel
from l4sim.machine import tpm2 as t
from l4sim.machine.board import NVRAM_PORT, Machine
from l4sim.machine.tpm import TPM_PORT
from l4sim.runtime import measure
from l4sim.runtime.measure import EventLog, EventLogError, TisClient, TisError
from l4sim.runtime.ned import ScriptError, load_script
from l4sim.runtime.system import System, setup_script
from l4sim.security.attest import read_eventlog
from l4sim.user.env import Env, Gate

ME = __name__


async def idle(env: Env) -> int:
    return 0


async def forever(env: Env) -> int:
    await env.receive(env.thread, timeout=10**15)  # nobody sends to ourselves: a long sleep
    return 0


async def log_reader(env: Env) -> int:
    """Print the length of the event log in its dataspace and the log's hash."""
    log = await read_eventlog(env, env.cap("log0", Gate))
    await env.print(f"eventlog {len(log)} {t.sha256(log).hex()}")
    return 0


async def wrong_port(env: Env) -> int:
    """Talk TPM to the NVRAM's ports: the transport sees no TPM there."""
    try:
        await TisClient(env, NVRAM_PORT).transact(b"\0" * 10)
    except TisError as e:
        await env.print(f"tis: {e}")
    return 0


def script(tmp_path: Path, text: str, name: str = "system.py") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def boot(path: Path) -> tuple[System, Machine, str]:
    out = io.StringIO()
    m = Machine(cores=2, seed=0, console=out)
    k = Kernel(m)
    system = setup_script(k, path)
    k.run(until=2_000_000_000, stop=system.done)
    k.shutdown()
    return system, m, out.getvalue()


MEASURED = f'start("a", "{ME}:idle", caps={{"tpm": ioports("tpm")}}, prio=10)\nstart("b", "{ME}:idle", prio=9)\n'


def test_two_boots_of_one_configuration_give_the_same_pcrs(tmp_path: Path) -> None:
    """Same script, same programs: the same PCRs 8 and 9, and the log replays to them."""
    p = script(tmp_path, MEASURED)
    (s1, m1, _), (s2, m2, _) = boot(p), boot(p)
    assert m1.tpm.pcr(8) == m2.tpm.pcr(8) != bytes(32)
    assert m1.tpm.pcr(9) == m2.tpm.pcr(9) != bytes(32)
    replay = s1.event_log.replay()
    assert replay == {8: m1.tpm.pcr(8), 9: m1.tpm.pcr(9)}
    assert s1.event_log.to_bytes() == s2.event_log.to_bytes()


def test_the_measurements_come_in_a_fixed_order(tmp_path: Path) -> None:
    """Kernel, runtime, script (PCR 9), then per program its image (9) and its entry (8)."""
    system, _, _ = boot(script(tmp_path, MEASURED))
    got = [(e.pcr, e.text().split(" ")[0] if e.pcr == 9 else "entry") for e in system.event_log.events]
    assert got == [(9, "l4sim"), (9, "l4sim"), (9, "script"), (9, "image"), (8, "entry"), (9, "image"), (8, "entry")]
    texts = [e.text() for e in system.event_log.events]
    assert texts[:3] == ["l4sim kernel", "l4sim runtime", "script system.py"]
    assert texts[3] == f"image a {ME}:idle"
    entry = system.event_log.events[4]
    assert entry.data.startswith(measure.ENTRY_PREFIX) and entry.data.endswith(b"\0")
    assert entry.digest == t.sha256(entry.data[len(measure.ENTRY_PREFIX):-1])  # GRUB's form: H(text)
    assert '"caps":[["tpm","ioports tpm"]]' in texts[4]


def test_a_changed_program_changes_its_image_measurement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One changed byte of a program's module changes its image event and PCR 9, not its entry."""
    pkg = tmp_path / "mprog"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    mod = pkg / "prog.py"
    mod.write_text("async def main(env):\n    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p = script(tmp_path, 'start("a", "mprog.prog:main", caps={"tpm": ioports("tpm")})\n')
    s1, m1, _ = boot(p)
    mod.write_text("async def main(env):\n    return 0  # changed\n")
    s2, m2, _ = boot(p)
    assert m1.tpm.pcr(9) != m2.tpm.pcr(9)
    assert m1.tpm.pcr(8) == m2.tpm.pcr(8)
    assert s1.event_log.events[3].digest != s2.event_log.events[3].digest


def test_a_changed_entry_changes_pcr_8(tmp_path: Path) -> None:
    """Another priority is another entry (PCR 8), and another script (PCR 9); images are the same."""
    s1, m1, _ = boot(script(tmp_path, MEASURED, "one.py"))
    s2, m2, _ = boot(script(tmp_path, MEASURED.replace("prio=10", "prio=11"), "one.py"))
    assert m1.tpm.pcr(8) != m2.tpm.pcr(8)
    e1, e2 = s1.event_log.events, s2.event_log.events
    assert [e.digest for e in e1 if e.text().startswith("image")] == \
        [e.digest for e in e2 if e.text().startswith("image")]


def test_every_kind_of_capability_is_named_in_its_entry(tmp_path: Path) -> None:
    """A bus, a session and a memory allocator each measure as what they are (with their
    devices, arguments, quota), never as another kind: two scripts that differ only there
    measure differently."""
    from l4sim.runtime.ned import entry_text

    p = script(tmp_path, f'''
disk("blk0")
g = channel("g")
start("s", "{ME}:forever", caps={{"g": g.server()}}, daemon=True)
start("a", "{ME}:idle", caps={{"bus": io.bus("b", devices=["blk0"]), "gs": g.session("x", 3),
                               "m": memory(8192), "ev": eventlog()}})
''')
    entry = entry_text(load_script(p, 2).programs[1])
    assert '["bus","bus b blk0"]' in entry and '["gs","session g x 3"]' in entry
    assert '["m","memory 8192"]' in entry and '["ev","eventlog"]' in entry


def test_an_unmeasured_configuration_leaves_the_tpm_alone(tmp_path: Path) -> None:
    """A script that gives nobody the TPM or the log is not measured: no command reaches the chip."""
    system, m, out = boot(script(tmp_path, f'start("a", "{ME}:idle")\n'))
    assert m.tpm.executed == {} and m.tpm.pcr(9) == bytes(32)
    assert system.event_log.events == [] and "ned: a: exit 0" in out


def test_ned_grants_the_tpm_to_its_driver_and_keeps_no_access(tmp_path: Path) -> None:
    """After the measurements the TPM's ports are the program's alone (sigma0 keeps its root)."""
    m = Machine(cores=2, seed=0, console=io.StringIO())
    k = Kernel(m)
    setup_script(k, script(tmp_path, f'start("a", "{ME}:forever", caps={{"tpm": ioports("tpm")}}, daemon=True)\n'
                                     f'start("b", "{ME}:forever")\n'))
    k.run(until=100_000_000)  # both started and sleeping
    holders = sorted(task.name for task in k.tasks if TPM_PORT in task.vspace.io)
    k.shutdown()
    assert holders == ["a", "sigma0"]


def test_a_program_reads_the_event_log_ned_made(tmp_path: Path) -> None:
    """``eventlog()``: a read-only dataspace with the log's length, then the log (the measured boot's)."""
    system, _, out = boot(script(tmp_path, f'start("r", "{ME}:log_reader", caps={{"log0": eventlog()}})\n'))
    data = system.event_log.to_bytes()
    assert f"eventlog {len(data)} {t.sha256(data).hex()}" in out
    assert len(system.event_log.events) == 5  # eventlog() alone makes the boot measured


def test_the_fifo_transport_finds_no_tpm_at_another_device(tmp_path: Path) -> None:
    """TisClient checks the vendor id before it writes a byte."""
    _, _, out = boot(script(tmp_path, f'start("w", "{ME}:wrong_port", caps={{"nv": ioports("nvram")}})\n'))
    assert f"tis: no TPM at port {NVRAM_PORT:#x}" in out


@pytest.mark.parametrize("body, words", [
    ('start("a", "{P}:idle", caps={{"d": ioports("disk")}})', "the board has no port device 'disk': choose one of"),
    ('start("a", "{P}:idle", caps={{"d": ioports("tpm")}})\nstart("b", "{P}:idle", caps={{"d": ioports("tpm")}})',
     "ioports('tpm') is given to 'b' and to 'a'"),
])
def test_port_device_mistakes_are_one_line(tmp_path: Path, body: str, words: str) -> None:
    """An unknown device, or a device given twice: the script's file and line, and the fix."""
    p = script(tmp_path, body.format(P=ME) + "\n")
    with pytest.raises(ScriptError) as e:
        load_script(p, 2)
    assert str(e.value).startswith(f"{p}:") and words in str(e.value)


def test_the_event_log_round_trips_and_rejects_garbage() -> None:
    """to_bytes / from_bytes are inverse; a log without the Spec ID event or cut short is refused."""
    log = EventLog()
    log.add(9, t.sha256(b"x"), b"image x\0")
    log.add(8, *measure.entry_event("{}"))
    data = log.to_bytes()
    assert EventLog.from_bytes(data).events == log.events
    assert data[32:47] == b"Spec ID Event03"
    with pytest.raises(EventLogError):
        EventLog.from_bytes(b"not a log")
    with pytest.raises(EventLogError):
        EventLog.from_bytes(data[:-3])


def test_a_native_image_holds_the_modules_of_its_package_it_imports() -> None:
    """The storage server's image: its module and the security modules it uses, no platform or library."""
    image, names = measure.native_image("l4sim.security.storage")
    assert names == ["l4sim.security.clients", "l4sim.security.storage", "l4sim.security.store",
                     "l4sim.security.tpm"]
    assert image.startswith(b"module l4sim.security.clients\n")
    assert (Path(measure.__file__).parent.parent / "security" / "tpm.py").read_bytes() in image
