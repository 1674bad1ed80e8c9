"""The DROPS scenario: a real-time media pipeline beside Linux and a hog, on one core.

Everything runs on core 0 for :data:`DURATION` of simulated time:

- ``decoder`` and ``display``: a media pipeline.  Every period the decoder
  "decodes" a frame (:data:`DECODE_NS` of computation) and puts it into a
  DSI ring (:mod:`l4sim.realtime.dsi`: shared pages plus two software Irqs);
  the display, released half a period later, takes the frame and "shows" it
  (:data:`SHOW_NS`).  Both are periodic threads (``env.next_period``) under
  reservations that they ask the ``admission`` server for
  (:mod:`l4sim.realtime.admission`, each through a session of its own; fixed
  priorities, response-time analysis); only the admission server holds the
  scheduler capability.
- ``linux``: the Linux personality running busybox's shell on a CPU-bound
  loop (:data:`LOOP` rounds of ``i=$((i+1))``, about 110 ms of CPU) at its
  usual best-effort priority 50 (skipped with a console line when there is
  no busybox).
- ``hog``: a best-effort native program computing in 1 ms slices for ever,
  at priority 40 (:data:`BE_PRIO`; below Linux, see there why).
- ``drops``: the root task that sets it up (sigma0 is its pager).

Reserved threads come before every best-effort thread, so the pipeline meets
every deadline while Linux and the hog share the rest of the core.  The
scenario ``drops-noreserve`` (:mod:`l4sim.scenarios.drops_noreserve`) runs
the same without admission or reservations: decoder and display are
best-effort threads at the hog's priority 40 that time their own periods (a
sleep until each release, statistics kept by the program), and round robin
with the hog and the busybox loop above them make them miss.

The summary's components carry ``jobs`` and ``deadline_misses`` for decoder
and display (``"realtime": true`` with a reservation; from the kernel's
per-reservation statistics, or from the programs' own count without one).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from l4sim.kernel.abi import RESV_PERIODIC, Fpage
from l4sim.kernel.kernel import Kernel
from l4sim.realtime.admission import AdmissionError, admission_server, open_session, reserve
from l4sim.realtime.dsi import Consumer, Producer, init_ring, ring_size
from l4sim.runtime.sigma0 import sigma0
from l4sim.user.env import INITIAL, SIGMA0_CAPS, Env, Gate, IrqCap, TaskLocal, start_task

MS = 1_000_000
#: how long the scenario runs (simulated ns)
DURATION = 200 * MS
#: the pipeline's period, the first release, and the display's offset into the period
PERIOD = 10 * MS
START = 5 * MS
DISPLAY_OFFSET = 5 * MS
#: per-frame work of the two components, and their reserved budgets (work plus ring and kernel costs)
DECODE_NS = 2 * MS
SHOW_NS = 1 * MS
DECODE_BUDGET = 3 * MS
SHOW_BUDGET = 2 * MS
#: fixed priorities of the reservations (the decoder is the more urgent)
DECODE_PRIO = 20
SHOW_PRIO = 10
#: best-effort priority of the hog and of the components without reservations.  Linux guests run
#: at 50: a guest thread that makes system calls goes to the tail of its queue at every reply, so
#: against a hog at its own priority it would get one system call per 10 ms quantum of the hog.
BE_PRIO = 40
#: best-effort priority of decoder and display until their reservations are admitted
SETUP_PRIO = 60
#: the DSI ring: address in both tasks, slots, slot size
RING = 0x400000
NSLOTS = 4
SLOT = 256
#: rounds of the busybox loop
LOOP = 3000
HOG_SLICE = 1 * MS


def busybox() -> str | None:
    """The host's static busybox, if there is one."""
    for p in (shutil.which("busybox"), "/bin/busybox"):
        if p and Path(p).is_file():
            return p
    return None


class Drops:
    """What ``setup`` returns: ``done()`` ends the run after :data:`DURATION`; ``realtime_stats``
    gives the jobs and misses that programs without a reservation counted themselves."""

    def __init__(self, kernel: Kernel, reserved: bool) -> None:
        self.kernel = kernel
        self.reserved = reserved
        self.programs: list[Any] = []
        #: component name -> counters kept by its program (without reservations)
        self.counted: dict[str, dict[str, int]] = {}
        #: hog rounds and the Linux program's exit status (progress of the best-effort side)
        self.progress: dict[str, Any] = {"hog_rounds": 0, "linux_status": None}

    def done(self) -> bool:
        return self.kernel.machine.now >= DURATION

    def realtime_stats(self, end: int) -> dict[str, dict[str, int]]:
        """Jobs and deadline misses per component counted by the programs; jobs whose deadline
        passed before ``end`` without completing count as misses."""
        out = {}
        for name, c in self.counted.items():
            due = 0 if end <= c["origin"] + c["deadline"] else (end - 1 - c["origin"] - c["deadline"]) // c["period"] + 1
            out[name] = {"jobs": c["jobs"], "deadline_misses": c["misses"] + max(0, due - c["jobs"]),
                         "max_response": c["max_response"]}
        return out


def _frame(n: int) -> bytes:
    return f"frame {n}".encode().ljust(SLOT - 8, b".")


async def _periodic(env: Env, scn: Drops, name: str, origin: int, deadline: int, job: Any,
                    resv: tuple[int, int] | None) -> None:
    """Run ``job()`` every :data:`PERIOD` from ``origin``: under a reservation with ``next_period``,
    or without one timed by the program itself (sleeping until each release)."""
    if resv is not None:
        budget, prio = resv
        try:
            # a session of our own: if this component dies, the server frees its reservation
            session = await open_session(env, env.cap("admission", Gate))
            await reserve(session, env.thread, budget, PERIOD, deadline, prio, 0, RESV_PERIODIC, origin,
                          name=name)
        except AdmissionError as e:
            await env.print(f"{name}: {e}")
            return
        await env.next_period()
        while True:
            await job()
            await env.next_period()
    c = scn.counted[name] = {"jobs": 0, "misses": 0, "max_response": 0, "origin": origin,
                             "period": PERIOD, "deadline": deadline}
    release = origin
    while True:
        now = await env.clock()
        if now < release:
            await env.receive(env.thread, timeout=release - now)  # sleep: nobody sends to ourselves
        await job()
        end = await env.clock()
        c["jobs"] += 1
        c["max_response"] = max(c["max_response"], end - release)
        if end > release + deadline:
            c["misses"] += 1
        release += PERIOD  # a late job's successor starts at once


async def decoder(env: Env, scn: Drops) -> None:
    ring = Producer(env, RING, env.cap("space", IrqCap), env.cap("data", IrqCap))
    await ring.attach()
    n = 0

    async def job() -> None:
        nonlocal n
        await env.compute(DECODE_NS)
        await ring.put(_frame(n))
        n += 1

    await _periodic(env, scn, "decoder", START, PERIOD,
                    job, (DECODE_BUDGET, DECODE_PRIO) if scn.reserved else None)


async def display(env: Env, scn: Drops) -> None:
    ring = Consumer(env, RING, env.cap("data", IrqCap), env.cap("space", IrqCap))
    await ring.attach()
    expect = 0

    async def job() -> None:
        nonlocal expect
        frame = await ring.get()
        if frame != _frame(expect):
            await env.print(f"display: frame {expect} garbled: {(frame or b'')[:16]!r}")
        expect += 1
        await env.compute(SHOW_NS)

    await _periodic(env, scn, "display", START + DISPLAY_OFFSET, PERIOD,
                    job, (SHOW_BUDGET, SHOW_PRIO) if scn.reserved else None)


async def hog(env: Env, scn: Drops) -> None:
    while True:
        await env.compute(HOG_SLICE)
        scn.progress["hog_rounds"] += 1


async def root(env: Env, scn: Drops, linux_cfg: Any) -> None:
    mode = "reservations, admitted" if scn.reserved else "no reservations: all best effort"
    await env.print(f"drops: media pipeline decoder -> display every {PERIOD // MS} ms ({mode})")
    assert ring_size(NSLOTS, SLOT) <= 0x1000
    await init_ring(env, RING, NSLOTS, SLOT)  # the first touch: sigma0 maps the page
    data = await env.factory.create_irq()
    space = await env.factory.create_irq()
    caps: dict[str, Any] = {"data": data, "space": space}
    if scn.reserved:
        # the server reads the core's policy from the kernel; its factory makes the session gates
        adm_caps: dict[str, Any] = {"scheduler": env.scheduler,
                                    "factory": await env.factory.create_factory(1 << 16)}
        _, adm = await start_task(env, "admission", admission_server, adm_caps, prio=90)
        caps["admission"] = await env.factory.create_gate(adm, 0x10)
    for name, fn in (("decoder", decoder), ("display", display)):
        # with reservations they start above Linux, to ask for them before the first release
        task, _ = await start_task(env, name, fn, caps, prio=SETUP_PRIO if scn.reserved else BE_PRIO,
                                   args=(scn,))
        await task.map(env.task, Fpage.mem(RING, 12), RING)  # the shared ring
    await start_task(env, "hog", hog, prio=BE_PRIO, args=(scn,))
    if linux_cfg is None:
        await env.print("drops: no busybox on this host: the Linux component is skipped")
    else:
        from l4sim.linux.personality import personality

        await start_task(env, "linux", personality, {"factory": env.factory, "scheduler": env.scheduler},
                         pager=env.pager, prio=100, args=(linux_cfg,))
    await env.wait()  # the root's work is done; it stays to keep what it created


def _linux_config(kernel: Kernel, scn: Drops) -> Any:
    path = busybox()
    if path is None:
        return None
    from l4sim.linux.run import load, make_root
    from l4sim.linux.state import Config

    script = f"i=0; while [ $i -lt {LOOP} ]; do i=$((i+1)); done; echo busybox loop: $i rounds"
    uart = kernel.machine.uart

    def out(fd: int, data: bytes) -> None:
        uart.write(b"linux: " + data if data else data)

    cfg = Config(load(path), [path, "sh", "-c", script], seed=kernel.machine.rng.getrandbits(64), out=out,
                 root=make_root(None), exe=path, exe_bytes=Path(path).read_bytes())
    scn.progress["linux_result"] = cfg.result
    return cfg


def build(kernel: Kernel, reserved: bool) -> Drops:
    scn = Drops(kernel, reserved)
    cfg = _linux_config(kernel, scn)
    nframes = kernel.machine.mem.nframes
    s0 = kernel.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), nframes))
    kernel.create_root("drops", lambda sp: root(Env(TaskLocal(INITIAL)), scn, cfg), prio=100, pager=s0)
    return scn


def setup(kernel: Kernel, args: Any = None) -> Drops:
    """sigma0 and the root task; the root starts the admission server, the pipeline, the hog and Linux."""
    return build(kernel, reserved=True)
