"""The board's devices: register accesses through the kernel's memory path (traced), the IOMMU,
the NIC on a wire and in a pcap file, two machines on one clock, the disk's write cache."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.trace import Tracer
from l4sim.machine.block import (
    OP_FLUSH,
    OP_READ,
    OP_WRITE,
    SECTOR,
    ST_DMA,
    ST_DONE,
    BlockDevice,
    Medium,
)
from l4sim.machine.board import Machine
from l4sim.machine.events import EventQueue
from l4sim.machine.iommu import CMD_ALLOW_RW, REG_ADDR, REG_CMD, REG_DEV
from l4sim.machine.nic import CTRL_RXEN, CTRL_TXEN, DESC_SIZE, ST_DD, ST_ERR, Nic
from l4sim.runtime.sigma0 import sigma0
from l4sim.user.env import INITIAL, SIGMA0_CAPS, Env, TaskLocal

RAM = 4 << 20
Root = Callable[[Env], Coroutine[Any, Any, Any]]


def boot_with(m: Machine, root: Root) -> tuple[Kernel, Tracer]:
    """sigma0 (knowing the board's devices) and a root task it pages 1:1; run until idle."""
    tr = Tracer()
    k = Kernel(m, tracer=tr)
    devs = {bd.name: (bd.region.base_pfn, bd.region.npages) for bd in m.board.values()}
    s0 = k.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), m.mem.nframes, devs))
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), pager=s0)
    assert k.run(max_events=1_000_000) == "idle"
    return k, tr


def test_a_load_on_a_register_page_is_a_register_read_and_a_trace_record() -> None:
    """A native program's loads and stores on a NIC's register page reach the NIC (its MAC, its
    control register) and each is one ``mmio`` record; RAM accesses make none."""
    m = Machine(ram=RAM)
    nic = m.add_nic("nic0", bytes.fromhex("020000abcdef"))
    base = m.board["nic0"].region.base_pfn << 12
    out: list[Any] = []

    async def root(env: Env) -> int:
        out.append(await env.mem.read(base + 0x10, 4) + await env.mem.read(base + 0x14, 2))
        await env.mem.write(base + 0x000, (CTRL_TXEN | CTRL_RXEN).to_bytes(4, "little"))
        await env.mem.write(0x10000, b"ram")  # RAM: no register, no record
        out.append(await env.mem.read(base + 0x13, 2))  # misaligned: a bus error, all ones
        return 0

    _, tr = boot_with(m, root)
    assert out == [bytes.fromhex("020000abcdef"), b"\xff\xff"]
    assert nic.ctrl == CTRL_TXEN | CTRL_RXEN
    mmio = [r[4] for r in tr.by_kind("mmio")]
    assert [(a["dev"], a["off"], a["size"], a["write"]) for a in mmio] == [
        ("nic0", 0x10, 4, 0), ("nic0", 0x14, 2, 0), ("nic0", 0x0, 4, 1), ("nic0", 0x13, 2, 0)]
    assert mmio[2]["value"] == CTRL_TXEN | CTRL_RXEN


def _tx_ring(m: Machine, nic: Nic, frame_addr: int, frame: bytes, ring: int = 0x8000) -> None:
    """Host-side driver: one transmit descriptor at ``ring`` for the frame at ``frame_addr``."""
    m.mem.dma_write(frame_addr, frame)
    m.mem.dma_write(ring, struct.pack("<QHBBI", frame_addr, len(frame), 1, 0, 0))
    nic.mmio_write(0x100, 4, ring, 0)
    nic.mmio_write(0x108, 4, 4, 0)
    nic.mmio_write(0x000, 4, CTRL_TXEN | CTRL_RXEN, 0)
    nic.mmio_write(0x118, 4, 1, 0)


def _allow(m: Machine, name: str, *addrs: int) -> None:
    assert m.iommu is not None
    for a in addrs:
        m.iommu.mmio_write(REG_DEV, 8, m.board[name].rid, 0)
        m.iommu.mmio_write(REG_ADDR, 8, a, 0)
        m.iommu.mmio_write(REG_CMD, 8, CMD_ALLOW_RW, 0)


def test_the_iommu_refuses_a_buffer_not_allowed_and_nothing_is_read() -> None:
    """A descriptor pointing at a page the IOMMU does not allow for the device: the frame is not
    sent, the descriptor says DD|ERR, the IOMMU counts the fault."""
    m = Machine(ram=RAM)
    nic = m.add_nic("nic0")
    sent: list[bytes] = []
    nic.on_frame = lambda d, f: sent.append(f)
    m.connect(nic)
    _allow(m, "nic0", 0x8000)  # the ring only, not the frame's page
    _tx_ring(m, nic, 0x20000, b"\x01" * 60)
    while (ev := m.events.pop()) is not None:
        ev.fn(*ev.args)
    assert sent == []
    assert m.mem.dma_read(0x8000 + 11, 1)[0] == ST_DD | ST_ERR
    assert m.iommu is not None and m.iommu.faults[m.board["nic0"].rid] == 1
    assert nic.dma_errors == 1


def _frame(i: int) -> bytes:
    return b"\xff" * 6 + bytes.fromhex("020000000001") + b"\x88\xb5" + f"frame {i}".encode().ljust(46, b".")


def test_a_nic_on_a_host_cable_writes_a_pcap_that_tcpdump_reads(tmp_path: Path) -> None:
    """A frame sent on a cable captured to a pcap file: the real format (tcpdump -r)."""
    m = Machine(ram=RAM)
    nic = m.add_nic("nic0")
    w = m.connect(nic)
    path = tmp_path / "out.pcap"
    m.capture(w, path)
    _allow(m, "nic0", 0x8000, 0x20000)
    _tx_ring(m, nic, 0x20000, _frame(7))
    while (ev := m.events.pop()) is not None:
        ev.fn(*ev.args)
    m.power_off()
    data = path.read_bytes()
    assert struct.unpack_from("<IHH", data) == (0xA1B2C3D4, 2, 4)
    assert data.endswith(_frame(7))
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed: the pcap was checked byte by byte only")
    out = subprocess.run(["tcpdump", "-r", str(path), "-e", "-n"], capture_output=True, text=True, check=True)
    assert "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype Unknown (0x88b5), length 60" in out.stdout


def test_scapy_reads_the_capture(tmp_path: Path) -> None:
    """scapy's rdpcap finds the frame and its simulated timestamp."""
    scapy_all = pytest.importorskip("scapy.all", reason="scapy is not installed")
    m = Machine(ram=RAM)
    nic = m.add_nic("nic0")
    m.capture(m.connect(nic), tmp_path / "s.pcap")
    _allow(m, "nic0", 0x8000, 0x20000)
    _tx_ring(m, nic, 0x20000, _frame(3))
    while (ev := m.events.pop()) is not None:
        ev.fn(*ev.args)
    m.power_off()
    pkts = scapy_all.rdpcap(str(tmp_path / "s.pcap"))
    assert len(pkts) == 1 and bytes(pkts[0]) == _frame(3)
    assert pkts[0].src == "02:00:00:00:00:01"


def test_two_machines_on_one_clock_exchange_a_frame() -> None:
    """NICs of two machines sharing an event queue, cabled together: a frame one sends lands in
    the other's receive ring by DMA, with an interrupt."""
    q = EventQueue()
    a, b = Machine(ram=RAM, events=q), Machine(ram=RAM, events=q, seed=1)
    na, nb = a.add_nic("nic0"), b.add_nic("nic0")
    a.connect(na, nb)
    _allow(b, "nic0", 0x9000, 0x30000)
    b.mem.dma_write(0x9000, struct.pack("<QHBBI", 0x30000, 2048, 0, 0, 0))
    nb.mmio_write(0x200, 4, 0x9000, 0)
    nb.mmio_write(0x208, 4, 4, 0)
    nb.mmio_write(0x218, 4, 3, 0)
    nb.mmio_write(0x028, 4, 2, 0)  # RXT
    nb.mmio_write(0x000, 4, CTRL_RXEN, 0)
    _allow(a, "nic0", 0x8000, 0x20000)
    _tx_ring(a, na, 0x20000, _frame(1))
    while (ev := q.pop()) is not None:
        ev.fn(*ev.args)
    assert b.mem.dma_read(0x30000, 60) == _frame(1)
    length, _cmd, status = struct.unpack_from("<HBB", b.mem.dma_read(0x9000 + 8, 4))
    assert (length, status) == (60, ST_DD)
    assert b.ic.counts[b.board["nic0"].line] == 1
    assert nb.rx_frames == 1 and DESC_SIZE == 16


def _disk_run(tmp_path: Path, seed: int, crash_at: int) -> tuple[bytes, BlockDevice]:
    """Write sectors 0..3, flush, write sectors 4..7, then cut the power at ``crash_at``."""
    m = Machine(ram=RAM, seed=seed)
    img = tmp_path / f"disk{seed}-{crash_at}.img"
    disk = m.add_disk("blk0", 16, img)
    _allow(m, "blk0", 0x8000, *range(0x20000, 0x28000, 0x1000))
    for s in range(8):
        m.mem.dma_write(0x20000 + s * SECTOR, bytes([0x10 + s]) * SECTOR)
    reqs = [(OP_WRITE, 1, s, 0x20000 + s * SECTOR) for s in range(4)] + [(OP_FLUSH, 0, 0, 0)]
    reqs += [(OP_WRITE, 1, s, 0x20000 + s * SECTOR) for s in range(4, 8)] + [(OP_READ, 1, 5, 0x10000)]
    for i, (op, n, sector, addr) in enumerate(reqs):
        m.mem.dma_write(0x8000 + i * 32, struct.pack("<BBHIQQQ", op, 0, 0, n, sector, addr, i))
    disk.mmio_write(0x100, 4, 0x8000, 0)
    disk.mmio_write(0x108, 4, 16, 0)
    disk.mmio_write(0x000, 4, 1, 0)
    disk.mmio_write(0x118, 4, len(reqs), 0)
    while (t := m.events.next_time()) is not None and t <= crash_at:
        ev = m.events.pop()
        assert ev is not None
        ev.fn(*ev.args)
    statuses = [m.mem.dma_read(0x8000 + i * 32 + 1, 1)[0] for i in range(len(reqs))]
    assert statuses[-1] & ST_DMA  # the read into a page not allowed: refused
    assert all(s == ST_DONE for s in statuses[:-1])
    m.power_off()
    return img.read_bytes(), disk


def test_a_crash_keeps_what_a_flush_covered_and_what_the_disk_wrote_back(tmp_path: Path) -> None:
    """After the power is cut, the image holds exactly the flushed sectors plus those the disk's
    log says it wrote back on its own; the same seed gives the same image."""
    img, disk = _disk_run(tmp_path, seed=1, crash_at=8_000_000)
    on_medium = {s for _t, s, _how in disk.log}
    assert {s for _t, s, how in disk.log if how == "flush"} == {0, 1, 2, 3}
    for s in range(16):
        want = bytes([0x10 + s]) * SECTOR if s in on_medium else bytes(SECTOR)
        assert img[s * SECTOR : (s + 1) * SECTOR] == want, s
    again, _ = _disk_run(tmp_path, seed=1, crash_at=8_000_000)
    assert again == img
    late, d2 = _disk_run(tmp_path, seed=1, crash_at=100_000_000)  # long after: everything written back
    assert {s for _t, s, _h in d2.log} == set(range(8))
    assert late[: 8 * SECTOR] == b"".join(bytes([0x10 + s]) * SECTOR for s in range(8))
    early, d3 = _disk_run(tmp_path, seed=1, crash_at=400_000)  # before the write-backs: flushed only
    assert {s for _t, s, _h in d3.log} == {0, 1, 2, 3}
    assert early[4 * SECTOR : 8 * SECTOR] == bytes(4 * SECTOR)  # written, answered, never durable


def test_a_medium_in_memory_reads_back_what_reached_it() -> None:
    med = Medium(4)
    med.write(2, b"x" * SECTOR)
    assert med.read(2) == b"x" * SECTOR and med.read(1) == bytes(SECTOR)
