"""sigma0, the root pager: 1:1 page faults of the root task, the sigma0 protocol
(REQ_FPAGE_RAM / _ANY / _IOMEM / _IO / REQ_INFO), frames handed out at most once,
device memory only where allowed, and the bookkeeping behind it.

Each system boots sigma0 with :meth:`Kernel.create_sigma0` and a root task whose
pager (slot 4) it is; the root program talks to sigma0 with
:func:`l4sim.runtime.sigma0.request`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from l4sim.kernel import invariants
from l4sim.kernel.abi import CALL, SLOT_PAGER, Err, Fpage, IpcErr, MapItem, MemRights, Proto
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.kernel.trace import Tracer
from l4sim.kernel.traps import Ipc
from l4sim.kernel.vspace import TRAP_PAGE_FAULT
from l4sim.machine.board import Machine
from l4sim.machine.memory import DEVICE_BASE
from l4sim.runtime.sigma0 import (
    REQ_FPAGE_ANY,
    REQ_FPAGE_IOMEM,
    REQ_FPAGE_RAM,
    REQ_INFO,
    S0_PROTO,
    Sigma0,
    request,
    sigma0,
)
from l4sim.user.env import INITIAL, SIGMA0_CAPS, Env, TaskLocal

RootFn = Callable[[Env], Coroutine[Any, Any, Any]]

PAGE = 4096
#: RAM of the test machines: 1 MiB = 256 frames
RAM = 1 << 20
NFRAMES = RAM // PAGE
#: the first device frame (regions are allocated from here in order)
DEV0 = DEVICE_BASE >> 12
WIN = 0x4000000  # where the root receives what it asks for (beyond RAM, so never 1:1)


def boot(root_fn: RootFn, devices: dict[str, tuple[int, int]] | None = None,
         setup: Callable[[Machine], Any] | None = None) -> tuple[Kernel, Tracer, Machine]:
    """sigma0 and a root task paged by it on a 1 MiB machine, run until idle."""
    m = Machine(ram=RAM)
    if setup is not None:
        setup(m)
    tr = Tracer()
    k = Kernel(m, tracer=tr)
    s0 = k.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), m.mem.nframes, devices))
    k.create_root("root", lambda sp: root_fn(Env(TaskLocal(INITIAL))), pager=s0)
    assert k.run(max_events=1_000_000) == "idle"
    return k, tr, m


def root_task(k: Kernel) -> Any:
    return next(t for t in k.tasks if t.name == "root")


def root_thread(k: Kernel) -> Any:
    return next(t for t in k.threads if t.name == "root")


async def ask(env: Env, req: int, fp: Fpage, window: Fpage | None = None) -> tuple[int, tuple[int, ...]]:
    """(label, words) of sigma0's answer to ``req`` for ``fp`` (received at ``WIN``)."""
    r = await request(env, SLOT_PAGER, req, fp, window or Fpage.mem(WIN, max(fp.order, 12)))
    assert r.error == 0
    return r.proto, r.words


# ------------------------------------------------------------ page faults of the root
def test_root_task_faults_are_mapped_one_to_one() -> None:
    """A page the root touches is mapped to the frame at the same physical address."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        await env.mem.write(0x23010, b"1:1")
        out.append(await env.mem.read(0x23010, 3))
        return 0

    k, _, m = boot(root)
    assert out == [b"1:1"]
    p = root_task(k).vspace.pages[0x23]
    assert p.pfn == 0x23 and p.rights == MemRights.RWX
    assert bytes(m.mem.frame(0x23)[0x10:0x13]) == b"1:1"
    assert root_thread(k).pfaults == 1


def test_root_fault_beyond_ram_is_refused() -> None:
    """A fault at an address with no RAM behind it is refused: the root gets a page-fault exception."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        await env.mem.read(RAM + 0x5000, 1)
        out.append("read")
        return 0

    k, tr, _ = boot(root)
    assert out == []
    th = root_thread(k)
    assert th.faulted and th.state is TS.INACTIVE
    assert [r[4]["trapno"] for r in tr.by_kind("exception") if r[3] == th.kid] == [TRAP_PAGE_FAULT]
    assert (RAM + 0x5000) >> 12 not in root_task(k).vspace.pages


# ------------------------------------------------------------ the sigma0 protocol
def test_any_gives_distinct_frames() -> None:
    """Repeated REQ_FPAGE_ANY requests give distinct frames, each mapped at the receive window."""
    got: list[int] = []

    async def root(env: Env) -> int:
        for i in range(5):
            label, words = await ask(env, REQ_FPAGE_ANY, Fpage.mem(0, 12), Fpage.mem(WIN + i * PAGE, 12))
            assert label == 0
            got.append(words[0])
        return 0

    k, _, _ = boot(root)
    assert len(set(got)) == 5
    pages = root_task(k).vspace.pages
    assert [pages[(WIN >> 12) + i].pfn for i in range(5)] == [a >> 12 for a in got]
    assert all(0 < a < RAM for a in got), "RAM frames, frame 0 kept back"


def test_any_block_is_aligned_to_its_size() -> None:
    """REQ_FPAGE_ANY of 16 KiB gives four contiguous frames starting at a 16 KiB boundary."""
    got: list[Any] = []

    async def root(env: Env) -> int:
        await ask(env, REQ_FPAGE_ANY, Fpage.mem(0, 12))
        got.append(await ask(env, REQ_FPAGE_ANY, Fpage.mem(0, 14), Fpage.mem(WIN + 0x10000, 14)))
        return 0

    k, _, _ = boot(root)
    (label, (addr,)), = got
    assert label == 0 and addr % 0x4000 == 0
    pages = root_task(k).vspace.pages
    assert [pages[((WIN + 0x10000) >> 12) + i].pfn for i in range(4)] == [(addr >> 12) + i for i in range(4)]


def test_ram_frame_is_given_once() -> None:
    """REQ_FPAGE_RAM of a frame already given out -- by RAM, ANY or a 1:1 fault -- is -EBUSY."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        out.append(await ask(env, REQ_FPAGE_RAM, Fpage.mem(0x40000, 12)))
        out.append(await ask(env, REQ_FPAGE_RAM, Fpage.mem(0x40000, 12)))
        _, (anyaddr,) = await ask(env, REQ_FPAGE_ANY, Fpage.mem(0, 12), Fpage.mem(WIN + PAGE, 12))
        out.append(await ask(env, REQ_FPAGE_RAM, Fpage.mem(anyaddr, 12)))
        await env.mem.write(0x50000, b"x")  # faulted in 1:1
        out.append(await ask(env, REQ_FPAGE_RAM, Fpage.mem(0x50000, 12)))
        out.append(await ask(env, REQ_FPAGE_RAM, Fpage.mem(0, 12)))  # frame 0 is reserved
        return 0

    boot(root)
    assert out == [(0, (0x40000,)), (-Err.EBUSY, ()), (-Err.EBUSY, ()), (-Err.EBUSY, ()), (-Err.EBUSY, ())]


def test_any_never_returns_a_frame_already_given() -> None:
    """Frames given by REQ_FPAGE_RAM or faulted in 1:1 are skipped by REQ_FPAGE_ANY."""
    got: list[int] = []

    async def root(env: Env) -> int:
        await ask(env, REQ_FPAGE_RAM, Fpage.mem(0x1000, 12))
        await env.mem.write(0x2000, b"x")
        for i in range(3):
            got.append((await ask(env, REQ_FPAGE_ANY, Fpage.mem(0, 12), Fpage.mem(WIN + i * PAGE, 12)))[1][0])
        return 0

    boot(root)
    assert got == [0x3000, 0x4000, 0x5000]


def test_ram_request_beyond_ram_is_invalid() -> None:
    """REQ_FPAGE_RAM for a frame past the end of RAM is -EINVAL and maps nothing."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        out.append(await ask(env, REQ_FPAGE_RAM, Fpage.mem(RAM, 12)))
        out.append(await ask(env, REQ_FPAGE_RAM, Fpage.mem(0, 21)))  # all of RAM and as much beyond
        return 0

    k, _, _ = boot(root)
    assert out == [(-Err.EINVAL, ()), (-Err.EINVAL, ())]
    assert root_task(k).vspace.pages == {}


def test_any_with_no_free_block_is_enomem() -> None:
    """REQ_FPAGE_ANY of all of RAM cannot be met (frame 0 is kept back): -ENOMEM."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        out.append(await ask(env, REQ_FPAGE_ANY, Fpage.mem(0, 20), Fpage.mem(0, 20)))
        return 0

    k, _, _ = boot(root)
    assert out == [(-Err.ENOMEM, ())]
    assert root_task(k).vspace.pages == {}


def _device_setup(m: Machine) -> None:
    m.mem.add_device("fb", 4)
    m.mem.add_device("secret", 2)


def test_iomem_of_an_allowed_device_is_mapped() -> None:
    """REQ_FPAGE_IOMEM of a device region sigma0 was told about maps its frames; writes reach the device."""
    out: list[Any] = []
    regions: dict[str, Any] = {}

    def setup(m: Machine) -> None:
        _device_setup(m)
        regions.update({d.name: d for d in m.mem.devices})

    async def root(env: Env) -> int:
        fb = regions["fb"]
        out.append(await ask(env, REQ_FPAGE_IOMEM, Fpage.mem(fb.base_pfn << 12, 14)))
        await env.mem.write(WIN + PAGE + 8, b"pixel")
        return 0

    fb_base = DEV0
    k, _, _ = boot(root, devices={"fb": (fb_base, 4)}, setup=setup)
    fb = regions["fb"]
    assert fb.base_pfn == fb_base
    assert out == [(0, (fb_base << 12,))]
    pages = root_task(k).vspace.pages
    assert [pages[(WIN >> 12) + i].pfn for i in range(4)] == [fb_base + i for i in range(4)]
    assert bytes(fb.buf[PAGE + 8 : PAGE + 13]) == b"pixel"


def test_iomem_of_a_region_not_allowed_is_refused() -> None:
    """REQ_FPAGE_IOMEM of a device region sigma0 was not given is -EPERM; RAM through IOMEM is -EINVAL."""
    out: list[Any] = []
    regions: dict[str, Any] = {}

    def setup(m: Machine) -> None:
        _device_setup(m)
        regions.update({d.name: d for d in m.mem.devices})

    async def root(env: Env) -> int:
        secret = regions["secret"]
        out.append(await ask(env, REQ_FPAGE_IOMEM, Fpage.mem(secret.base_pfn << 12, 12)))
        out.append(await ask(env, REQ_FPAGE_IOMEM, Fpage.mem(0x10000, 12)))
        return 0

    k, _, _ = boot(root, devices={"fb": (DEV0, 4)}, setup=setup)
    assert out == [(-Err.EPERM, ()), (-Err.EINVAL, ())]
    assert root_task(k).vspace.pages == {}


def test_iomem_is_given_once() -> None:
    """A device frame is handed out once: a second REQ_FPAGE_IOMEM for it is -EBUSY."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        for i in range(2):
            out.append((await ask(env, REQ_FPAGE_IOMEM, Fpage.mem(DEV0 << 12, 12),
                                  Fpage.mem(WIN + i * PAGE, 12)))[0])
        return 0

    boot(root, devices={"fb": (DEV0, 4)}, setup=_device_setup)
    assert out == [0, -Err.EBUSY]


def test_info_reports_frames_and_free_count_consistently() -> None:
    """REQ_INFO gives (RAM frames, free frames); the free count drops by exactly what was handed out."""
    infos: list[tuple[int, ...]] = []

    async def root(env: Env) -> int:
        infos.append((await ask(env, REQ_INFO, Fpage.mem(0, 12)))[1])
        await ask(env, REQ_FPAGE_ANY, Fpage.mem(0, 14))  # 4 frames
        await ask(env, REQ_FPAGE_RAM, Fpage.mem(0x80000, 12), Fpage.mem(WIN + 0x10000, 12))  # 1
        await env.mem.write(0x90000, b"x")  # 1, faulted in
        await ask(env, REQ_FPAGE_RAM, Fpage.mem(0x80000, 12), Fpage.mem(WIN + 0x20000, 12))  # refused
        infos.append((await ask(env, REQ_INFO, Fpage.mem(0, 12)))[1])
        return 0

    boot(root)
    assert infos == [(NFRAMES, NFRAMES - 1), (NFRAMES, NFRAMES - 1 - 6)]


def test_unknown_request_and_protocol_are_refused() -> None:
    """An unknown sigma0 request is -ENOSYS, so is a message with another protocol."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        r = await env.ipc(Ipc(SLOT_PAGER, 3, S0_PROTO, (0x30, Fpage.mem(0, 12).word()), rcv=(Fpage.mem(WIN, 12),)))
        out.append(r.proto)
        r = await env.ipc(Ipc(SLOT_PAGER, 3, int(Proto.LOG), (0,)))
        out.append(r.proto)
        return 0

    boot(root)
    assert out == [-Err.ENOSYS, -Err.ENOSYS]


def test_malformed_flexpage_is_invalid() -> None:
    """A request with a misaligned flexpage, or an I/O flexpage for memory, is -EINVAL."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        out.append(await ask(env, REQ_FPAGE_RAM, Fpage.mem(0x1000, 13)))  # misaligned
        out.append(await ask(env, REQ_FPAGE_ANY, Fpage.io(0, 3)))
        return 0

    boot(root)
    assert out == [(-Err.EINVAL, ()), (-Err.EINVAL, ())]


def test_boot_with_sigma0_keeps_the_derivation_tree_well_formed() -> None:
    """Booting sigma0 and the root task leaves a consistent kernel (one root capability per object)."""

    async def root(env: Env) -> int:
        return 0

    k, _, _ = boot(root)
    assert invariants.check(k) == []


# ------------------------------------------------------------ bookkeeping
def test_take_any_finds_the_lowest_free_aligned_block() -> None:
    """Sigma0.take_any returns the lowest aligned block with no frame given, and marks it given."""
    s = Sigma0(64, {}, reserved=1)
    assert s.take_any(1) == 1
    assert s.take(5, 1) == 0
    assert s.take_any(4) == 8, "4..7 holds frame 5, and 0..3 holds given frames"
    assert s.take_any(1) == 2
    assert s.free() == 64 - 1 - 1 - 1 - 4 - 1
    assert s.take_any(64) == -Err.ENOMEM


# --- bad requests ---------------------------------------------------------------------------------


def test_random_junk_is_answered_request_by_request() -> None:
    """Three hundred calls with random request numbers, flexpage words (memory and I/O, misaligned,
    huge), junk words, items and receive windows: each is answered, none with -EIO, and a proper
    request is served afterwards."""
    rng = random.Random(5)
    out: list[Any] = []

    async def root(env: Env) -> None:
        for _ in range(300):
            fp = rng.choice([Fpage.mem(rng.choice([0, PAGE, 1 << 20, 1 << 30, 1 << 63]), rng.choice([12, 13, 20, 30, 64])),
                             Fpage.io(rng.randrange(1 << 16), rng.choice([0, 1, 4, 16])),
                             Fpage.obj(rng.randrange(1 << 20))])
            words = (rng.choice([0x10, 0x60, 0x70, 0x90, 0xA0, 0, 0xFF]),
                     *(rng.choice([fp.word(), 0, (1 << 64) - 1, rng.randrange(1 << 64)]) for _ in range(rng.choice([0, 1, 2, 3]))))
            c = rng.random()
            rcv = ((Fpage.mem(rng.choice([WIN, 1 << 30, 1 << 41]), rng.choice([12, 20, 30, 64])),) if c < 0.6
                   else (Fpage.io(0, 16),) if c < 0.7 else ())
            items = (MapItem(env.task.fpage()),) if rng.random() < 0.1 else ()
            r = await env.ipc(Ipc(SLOT_PAGER, CALL, rng.choice([S0_PROTO, S0_PROTO, 0, -5]), words, items, rcv=rcv))
            out.append((r.error, r.proto))
        info = await env.ipc(Ipc(SLOT_PAGER, CALL, S0_PROTO, (REQ_INFO,)))
        out.append(info.words[0])

    k, _, _ = boot(root)
    answers = out[:-1]
    assert {e for e, _ in answers} <= {0, IpcErr.SEMSGCUT, IpcErr.REMAPFAILED, IpcErr.REMSGCUT}
    assert -Err.EIO not in {p for _, p in answers}
    assert {p for _, p in answers} >= {0, -Err.EINVAL, -Err.ENOSYS}
    assert out[-1] == NFRAMES
    assert next(t for t in k.threads if t.name == "sigma0").state is TS.RECV


def test_a_request_that_raises_in_sigma0_is_answered_eio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence, with a fault injected into the frame bookkeeping: the REQ_FPAGE_ANY
    that raised is -EIO, the kernel log has one line naming sigma0, the request and the exception,
    and REQ_INFO is answered next."""

    def broken(self: Sigma0, count: int) -> int:
        raise RuntimeError("injected")

    monkeypatch.setattr(Sigma0, "take_any", broken)
    out: list[Any] = []

    async def root(env: Env) -> None:
        r = await request(env, SLOT_PAGER, REQ_FPAGE_ANY, Fpage.mem(0, 12), Fpage.mem(WIN, 12))
        out.append(r.proto)
        out.append((await env.ipc(Ipc(SLOT_PAGER, CALL, S0_PROTO, (REQ_INFO,)))).words[0])

    _, _, m = boot(root)
    assert out == [-Err.EIO, NFRAMES]
    assert re.fullmatch(r"sigma0: request proto -0x6 op 0x90 on label 0x0 \(2 words, 0 items\) failed: "
                        r"RuntimeError: injected \(test_sigma0\.py:\d+\); answered -EIO\n", m.uart.text())
