"""DDEKit: the driver environment's kit of basic services, on l4sim's native API.

The Device Driver Environment (DDE, TU Dresden) runs drivers written for
Linux in user-level L4 servers.  Its lower half, DDEKit, offers what any
driver needs -- threads, locks and semaphores, timers, interrupts, I/O
memory and ports, DMA-able memory, a log -- built from the microkernel's
primitives; the upper half (:mod:`l4sim.drivers.dde.linux`) implements the
Linux driver API on it.  This module is the kit for one driver *task*:

- **threads** are kernel threads of the task (``env.spawn``); each runs
  inside :func:`_thread_entry`, which holds the thread's :class:`DdeThread`
  (its own ``Env`` and a wake-up Irq).  :func:`current` finds it by walking
  the running coroutine's frames to that entry -- as Linux 2.6 finds
  ``current`` from the kernel stack pointer;
- **semaphores and locks** keep their waiters in Python lists (the task's
  memory) and block a waiter in a closed wait on its own wake-up Irq; ``up``
  hands the count to the first waiter and triggers its Irq.  A thread runs
  between two traps without interruption, so the bookkeeping needs no more;
- **interrupts**: :meth:`Kit.irq_attach` asks io for the device's Irq and
  starts an interrupt thread that waits for it, runs the handler and
  unmasks the line;
- **timers**: one timer thread sleeps until the earliest deadline (a closed
  wait with a timeout) and runs the expired handlers;
- **I/O memory, ports, DMA**: from io through the device's claim; DMA buffers
  are attached through the region manager, their device addresses noted
  (:meth:`Kit.virt_to_bus`);
- **memory**: a first-fit allocator over the task's heap (``kmalloc``);
- **printk**: the program's log.

Nothing here reads the host clock or draws random numbers.
"""

from __future__ import annotations

import heapq
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from l4sim.kernel.abi import Fpage, MapItem, unpack_bytes
from l4sim.kernel.traps import Msg
from l4sim.runtime.protocols import IO_BUS, IO_DEVICE, RM, BusOp, DevKind, DevOp, RmFlag, RmOp
from l4sim.user.env import Env, Gate, IrqCap, L4Error

#: kinds of device by the bus protocol's number
KIND_NAMES = {int(DevKind.NIC): "nic", int(DevKind.BLK): "blk"}


class DdeError(Exception):
    """A DDEKit service failed: what, and io's or the kernel's error."""


def _check(msg: Msg, what: str) -> Msg:
    if msg.error or msg.proto < 0:
        raise DdeError(f"{what} failed (ipc error {msg.error}, errno {-msg.proto if msg.proto < 0 else 0})")
    return msg


# --------------------------------------------------------------------------- threads
@dataclass(eq=False)
class DdeThread:
    """A thread of the driver task, as DDEKit knows it."""

    kit: Kit
    env: Env
    name: str
    wake: IrqCap | None = None
    #: set by whoever wakes this thread for a semaphore (the hand-over of its count)
    granted: bool = False


async def _thread_entry(env: Env, kit: Kit, name: str, fn: Callable[..., Awaitable[Any]],
                        args: tuple[Any, ...]) -> Any:
    """Every DDE thread runs in here: ``me`` is what :func:`current` finds."""
    me = DdeThread(kit, env, name)
    me.wake = await env.factory.create_irq()
    await me.wake.attach(env.thread)
    kit.threads.append(me)
    return await fn(*args)


_ENTRY = _thread_entry.__code__


def current() -> DdeThread:
    """The DDE thread running this code (found from the coroutine's frames, like Linux's
    ``current`` from the stack)."""
    f: Any = sys._getframe(1)
    while f is not None:
        if f.f_code is _ENTRY:
            me = f.f_locals.get("me")
            if me is not None:
                return me  # type: ignore[no-any-return]
        f = f.f_back
    raise DdeError("not inside a DDE thread: start threads with ddekit's thread_create")


async def sleep_on(me: DdeThread, timeout: int | None = None) -> bool:
    """Block ``me`` on its wake-up Irq; False when ``timeout`` ns passed first."""
    assert me.wake is not None
    r = await me.env.receive(me.wake, timeout=timeout)
    return not r.error


# --------------------------------------------------------------------------- semaphores, locks
class Semaphore:
    """A counting semaphore (``ddekit_sem``): ``down`` blocks while the count is 0."""

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.waiters: deque[DdeThread] = deque()

    async def down(self) -> None:
        if self.count > 0:
            self.count -= 1
            return
        me = current()
        me.granted = False
        self.waiters.append(me)
        while not me.granted:  # a stale wake-up (a wait queue's) is no hand-over
            await sleep_on(me)
        me.granted = False

    async def down_timeout(self, ns: int) -> bool:
        """``down`` for at most ``ns``; False when it timed out (the count untouched)."""
        if self.count > 0:
            self.count -= 1
            return True
        me = current()
        me.granted = False
        self.waiters.append(me)
        while not me.granted:
            if not await sleep_on(me, ns) and not me.granted:
                self.waiters.remove(me)
                return False
        me.granted = False
        return True

    async def up(self) -> None:
        if self.waiters:
            t = self.waiters.popleft()
            t.granted = True
            assert t.wake is not None
            await t.wake.trigger()
        else:
            self.count += 1


class Lock(Semaphore):
    """A mutex (``ddekit_lock``): a semaphore of one that remembers its owner."""

    def __init__(self) -> None:
        super().__init__(1)
        self.owner: DdeThread | None = None

    async def lock(self) -> None:
        await self.down()
        self.owner = current()

    async def unlock(self) -> None:
        assert self.owner is not None, "unlock of a lock nobody holds"
        self.owner = None
        await self.up()


# --------------------------------------------------------------------------- timers
@dataclass(order=True)
class _Timer:
    expires: int
    seq: int
    fn: Callable[..., Awaitable[Any]] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


# --------------------------------------------------------------------------- devices
@dataclass(eq=False)
class Device:
    """A device of the driver's bus: claimed through io, with what io handed out."""

    index: int
    name: str
    kind: str
    npages: int
    gate: Gate | None = None
    regs: int = 0
    irq: IrqCap | None = None


class Kit:
    """DDEKit of one driver task (its threads, memory, devices, timers)."""

    def __init__(self, env: Env, prio: int) -> None:
        self.env = env
        self.prio = prio
        self.threads: list[DdeThread] = []
        self.devices: list[Device] = []
        self._timers: list[_Timer] = []
        self._tseq = 0
        self._timer_thread: DdeThread | None = None
        #: the heap allocator: free (address, size) runs, sorted; allocated sizes
        heap: tuple[int, int] = getattr(env, "heap", (0, 0))
        self._free: list[tuple[int, int]] = [heap] if heap[1] else []
        self._sizes: dict[int, int] = {}
        #: DMA buffers: (virtual address, size, device address)
        self.dma: list[tuple[int, int, int]] = []
        #: what upper layers register here (the Linux layer's net devices and disks)
        self.registry: dict[str, list[Any]] = {}

    # --- threads
    async def thread_create(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str = "",
                            prio: int | None = None) -> None:
        """Start ``fn(*args)`` as a new thread of the driver task."""
        kit = self

        async def body(env: Env) -> Any:
            return await _thread_entry(env, kit, name, fn, args)

        parent = self.env.local.names.get("parent")  # a thread that raises ends the program, reported
        await self.env.spawn(body, name=name, prio=prio or self.prio, exc_handler=parent)

    # --- memory (kmalloc)
    def malloc(self, size: int) -> int:
        """``size`` bytes of the task's heap (first fit, 16-byte aligned); 0 when none is left."""
        size = (max(size, 1) + 15) & ~15
        for i, (addr, n) in enumerate(self._free):
            if n >= size:
                if n == size:
                    del self._free[i]
                else:
                    self._free[i] = (addr + size, n - size)
                self._sizes[addr] = size
                return addr
        return 0

    def free(self, addr: int) -> None:
        size = self._sizes.pop(addr, None)
        if size is None:
            return
        self._free.append((addr, size))
        self._free.sort()
        merged: list[tuple[int, int]] = []
        for a, n in self._free:
            if merged and merged[-1][0] + merged[-1][1] == a:
                merged[-1] = (merged[-1][0], merged[-1][1] + n)
            else:
                merged.append((a, n))
        self._free = merged

    # --- the bus
    async def scan(self) -> list[Device]:
        """The devices of the driver's bus (``bus``), as io lists them."""
        bus = self.env.cap("bus", Gate)
        n = _check(await bus.call(IO_BUS, BusOp.LIST), "bus list").words[0]
        self.devices = []
        for i in range(n):
            w = _check(await bus.call(IO_BUS, BusOp.DEVICE, i), f"bus device {i}").words
            self.devices.append(Device(i, unpack_bytes(w[3:]).decode(), KIND_NAMES.get(w[0], "?"), w[1]))
        return self.devices

    async def claim(self, dev: Device) -> None:
        """Claim ``dev`` at io (its gate is ours alone; another claim is refused)."""
        slot = self.env.alloc_slot()
        _check(await self.env.cap("bus", Gate).call(IO_BUS, BusOp.CLAIM, dev.index, rcv=(Fpage.obj(slot),)),
               f"claim of {dev.name}")
        dev.gate = Gate(self.env, slot)

    async def request_mem(self, dev: Device) -> int:
        """Map the device's registers into an area the region manager keeps free; their address."""
        assert dev.gate is not None, "claim the device first"
        if dev.regs:
            return dev.regs
        size = dev.npages << 12
        rm = self.env.cap("rm", Gate)
        area = _check(await rm.call(RM, RmOp.RESERVE, 0, size, RmFlag.SEARCH_ADDR), "reserve an I/O area").words[0]
        order = 12 + (dev.npages - 1).bit_length()
        _check(await dev.gate.call(IO_DEVICE, DevOp.IOMEM, rcv=(Fpage.mem(area, order),)), f"registers of {dev.name}")
        dev.regs = area
        return area

    async def dma_alloc(self, dev: Device, size: int) -> tuple[int, int]:
        """DMA-able memory for ``dev``: (virtual address, device address), attached and mapped."""
        assert dev.gate is not None, "claim the device first"
        slot = self.env.alloc_slot()
        r = _check(await dev.gate.call(IO_DEVICE, DevOp.DMA_ALLOC, size, rcv=(Fpage.obj(slot),)),
                   f"DMA memory of {size} bytes for {dev.name}")
        bus_addr, real = r.words[0], r.words[1]
        rm = self.env.cap("rm", Gate)
        va = _check(await rm.call(RM, RmOp.ATTACH, 0, real, RmFlag.SEARCH_ADDR | RmFlag.EAGER_MAP, 0,
                                  items=(MapItem(Gate(self.env, slot).fpage()),)), "attach DMA memory").words[0]
        self.dma.append((va, real, bus_addr))
        return va, bus_addr

    def virt_to_bus(self, va: int) -> int:
        """The device address of a virtual address inside a DMA buffer (0: none)."""
        for start, size, bus_addr in self.dma:
            if start <= va < start + size:
                return bus_addr + (va - start)
        return 0

    async def irq_attach(self, dev: Device, handler: Callable[[], Awaitable[Any]], name: str = "") -> None:
        """Start an interrupt thread for ``dev``: each interrupt runs ``handler()``, then the line
        is unmasked."""
        assert dev.gate is not None, "claim the device first"
        slot = self.env.alloc_slot()
        _check(await dev.gate.call(IO_DEVICE, DevOp.IRQ, rcv=(Fpage.obj(slot),)), f"interrupt of {dev.name}")
        irq = IrqCap(self.env, slot)
        dev.irq = irq
        ready = Semaphore(0)

        async def irq_thread() -> int:
            me = current()
            await irq.attach(me.env.thread)
            await ready.up()
            while True:
                r = await me.env.receive(irq)
                if r.error:
                    continue
                await handler()
                await irq.unmask()

        await self.thread_create(irq_thread, name=name or f"irq.{dev.name}")
        await ready.down()

    # --- timers
    async def add_timer(self, expires: int, fn: Callable[..., Awaitable[Any]], *args: Any) -> _Timer:
        """Run ``fn(*args)`` in the timer thread at simulated time ``expires`` (ns)."""
        if self._timer_thread is None:
            started = Semaphore(0)

            async def timer_thread() -> int:
                self._timer_thread = current()
                await started.up()
                return await self._timer_loop()

            await self.thread_create(timer_thread, name="ddekit.timer")
            await started.down()
        self._tseq += 1
        t = _Timer(expires, self._tseq, fn, args)
        heapq.heappush(self._timers, t)
        if self._timers[0] is t and self._timer_thread is not None and current() is not self._timer_thread:
            assert self._timer_thread.wake is not None
            await self._timer_thread.wake.trigger()  # an earlier deadline: the thread re-sleeps
        return t

    @staticmethod
    def del_timer(t: _Timer) -> bool:
        was = not t.cancelled
        t.cancelled = True
        return was

    async def _timer_loop(self) -> int:
        me = current()
        while True:
            now = await me.env.clock()
            while self._timers and (self._timers[0].cancelled or self._timers[0].expires <= now):
                t = heapq.heappop(self._timers)
                if not t.cancelled:
                    t.cancelled = True
                    await t.fn(*t.args)
            timeout = self._timers[0].expires - now if self._timers else None
            await sleep_on(me, timeout)

    # --- log
    async def printk(self, text: str) -> None:
        await self.env.print(text.rstrip("\n"))


async def run(env: Env, main: Callable[[Kit], Coroutine[Any, Any, int]]) -> int:
    """Run ``main(kit)`` as the driver task's first DDE thread (a program's entry calls this).

    The kit's threads run at the highest priority the program's scheduler proxy allows.
    """
    kit = Kit(env, (await env.scheduler.info())[1])

    async def body() -> int:
        return await main(kit)

    try:
        status: int = await _thread_entry(env, kit, "main", body, ())
        return status
    except (DdeError, L4Error) as e:
        await env.print(f"ddekit: {e}")
        return 1
