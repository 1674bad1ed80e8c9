"""The IOMMU: which RAM frames each DMA-capable device may read or write.

Every device that does DMA has a *requester id* (its index on the board) and
reaches RAM only through a :class:`DmaPort`, which asks the IOMMU for every
page an access touches.  A page not allowed for that device (or not RAM)
makes the whole access fail: nothing is read or written, the IOMMU counts a
fault for the device, and the device reports an error to its driver (a
status bit in the descriptor, an interrupt cause) -- Intel VT-d's DMA
remapping reduced to an allow list per device, with device addresses equal
to physical addresses.

Nobody but the device manager programs it (io holds its register page, no
one else gets it).  Its registers, one page of MMIO, 8 bytes each:

==========  ======  ===========================================================
register    offset  meaning
==========  ======  ===========================================================
``DEV``     0x00    the requester id the next command applies to (write)
``ADDR``    0x08    a physical page address (write)
``CMD``     0x10    write 1: allow reads of the page at ``ADDR`` for ``DEV``;
                    2: allow reads and writes; 3: revoke that page;
                    4: revoke every page of ``DEV``
``STATUS``  0x18    result of the last command: 0 done, 1 no such device,
                    2 not a RAM page, 3 unknown command
``FAULTS``  0x20    DMA accesses of ``DEV`` refused so far (read)
``PAGES``   0x28    pages ``DEV`` may reach (read)
==========  ======  ===========================================================
"""

from __future__ import annotations

from l4sim.machine.memory import PAGE_MASK, PAGE_SHIFT, PhysMem

REG_DEV = 0x00
REG_ADDR = 0x08
REG_CMD = 0x10
REG_STATUS = 0x18
REG_FAULTS = 0x20
REG_PAGES = 0x28
CMD_ALLOW_R = 1
CMD_ALLOW_RW = 2
CMD_REVOKE = 3
CMD_REVOKE_ALL = 4
ST_OK, ST_NODEV, ST_NOTRAM, ST_BADCMD = 0, 1, 2, 3
#: rights of an allowed page
DMA_R = 1
DMA_W = 2


class Iommu:
    """Allow lists per requester id, their registers, and the faults they refused."""

    def __init__(self, mem: PhysMem) -> None:
        self.mem = mem
        #: requester id -> device name (ids are given out by :meth:`add_requester`)
        self.names: list[str] = []
        #: requester id -> {pfn: DMA_R | DMA_W}
        self.allowed: list[dict[int, int]] = []
        #: requester id -> refused accesses
        self.faults: list[int] = []
        self._dev = 0
        self._addr = 0
        self._status = ST_OK

    def add_requester(self, name: str) -> int:
        """A new DMA-capable device: its requester id (no page allowed yet)."""
        self.names.append(name)
        self.allowed.append({})
        self.faults.append(0)
        return len(self.names) - 1

    def check(self, rid: int, paddr: int, n: int, write: bool) -> bool:
        """May device ``rid`` access ``n`` bytes at ``paddr``?  A refusal is counted."""
        need = DMA_W if write else DMA_R
        table = self.allowed[rid]
        ok = n > 0 and paddr >= 0
        if ok:
            for pfn in range(paddr >> PAGE_SHIFT, ((paddr + n - 1) >> PAGE_SHIFT) + 1):
                if not table.get(pfn, 0) & need:
                    ok = False
                    break
        if not ok:
            self.faults[rid] += 1
        return ok

    # --- registers
    def mmio_read(self, off: int, size: int, now: int) -> int:
        if off == REG_STATUS:
            return self._status
        if off == REG_DEV:
            return self._dev
        if off == REG_ADDR:
            return self._addr
        if off == REG_FAULTS:
            return self.faults[self._dev] if self._dev < len(self.faults) else 0
        if off == REG_PAGES:
            return len(self.allowed[self._dev]) if self._dev < len(self.allowed) else 0
        return 0

    def mmio_write(self, off: int, size: int, value: int, now: int) -> None:
        if off == REG_DEV:
            self._dev = value
        elif off == REG_ADDR:
            self._addr = value & ~PAGE_MASK
        elif off == REG_CMD:
            self._status = self._command(value)

    def _command(self, cmd: int) -> int:
        if self._dev >= len(self.allowed):
            return ST_NODEV
        table = self.allowed[self._dev]
        pfn = self._addr >> PAGE_SHIFT
        if cmd == CMD_REVOKE_ALL:
            table.clear()
            return ST_OK
        if cmd not in (CMD_ALLOW_R, CMD_ALLOW_RW, CMD_REVOKE):
            return ST_BADCMD
        if not self.mem.is_ram(pfn):
            return ST_NOTRAM
        if cmd == CMD_REVOKE:
            table.pop(pfn, None)
        else:
            table[pfn] = DMA_R | (DMA_W if cmd == CMD_ALLOW_RW else 0)
        return ST_OK


class DmaPort:
    """One device's way to RAM: every access checked by the IOMMU first."""

    __slots__ = ("iommu", "mem", "rid")

    def __init__(self, mem: PhysMem, iommu: Iommu, rid: int) -> None:
        self.mem = mem
        self.iommu = iommu
        self.rid = rid

    def read(self, paddr: int, n: int) -> bytes | None:
        """``n`` bytes at device address ``paddr``, or None when the IOMMU refuses."""
        if not self.iommu.check(self.rid, paddr, n, False):
            return None
        return self.mem.dma_read(paddr, n)

    def write(self, paddr: int, data: bytes) -> bool:
        """Store ``data`` at device address ``paddr``; False (nothing written) when refused."""
        if not self.iommu.check(self.rid, paddr, len(data), True):
            return False
        self.mem.dma_write(paddr, data)
        return True

    @property
    def faults(self) -> int:
        return self.iommu.faults[self.rid]
