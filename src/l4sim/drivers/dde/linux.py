"""The Linux 2.6 driver API on DDEKit: what a driver module imports, and all it imports.

DDE/Linux lets drivers written for Linux run unchanged in an L4 server: it
implements the kernel functions a driver calls on DDEKit.  Here a "Linux
driver" is a Python module in the style of one (``l4sim.drivers.linux``)
that imports nothing of l4sim but this module.  Everything that can block
or touches hardware is a coroutine (``await readl(addr)``): in l4sim every
system call and every load or store is an ``await``.

What is here, by Linux header:

- ``linux/kernel.h``, ``slab.h``: :func:`printk`, :func:`kmalloc`,
  :func:`kzalloc`, :func:`kfree` (the driver task's heap; addresses);
- ``asm/io.h``: :func:`ioremap` / :func:`iounmap`, :func:`readl`,
  :func:`writel`, :func:`readb`, :func:`writeb`, :func:`memcpy_toio`,
  :func:`memcpy_fromio` (loads and stores: on register pages they are MMIO,
  which the kernel traces); :func:`inb` / :func:`outb` for ports;
- ``linux/dma-mapping.h``: :func:`dma_alloc_coherent`,
  :func:`dma_free_coherent` (io's DMA memory: the device reaches it, and
  nothing else);
- ``linux/interrupt.h``: :func:`request_irq`, :func:`free_irq`;
- ``linux/spinlock.h``, ``mutex.h``, ``semaphore.h``: :class:`spinlock_t`,
  :class:`mutex`, :class:`semaphore` (DDEKit locks: a thread runs between two
  traps undisturbed, and a lock held across traps is a real lock);
- ``linux/wait.h``: :class:`wait_queue_head_t`, :func:`wait_event`,
  :func:`wait_event_timeout`, :func:`wake_up`;
- ``linux/workqueue.h``: :class:`work_struct`, :func:`INIT_WORK`,
  :func:`schedule_work` (one worker thread);
- ``linux/timer.h``, ``jiffies.h``, ``delay.h``: :class:`timer_list`,
  :func:`setup_timer`, :func:`mod_timer`, :func:`del_timer`,
  :func:`get_jiffies`, :data:`HZ`, :func:`msleep`, :func:`udelay`;
- ``linux/platform_device.h``: :class:`platform_driver`,
  :func:`platform_driver_register`, :class:`platform_device` with its
  resources (the devices of the driver's io bus);
- ``linux/netdevice.h``, ``etherdevice.h``, ``skbuff.h``:
  :class:`net_device`, :class:`net_device_ops`, :func:`alloc_etherdev`,
  :func:`netdev_priv`, :func:`register_netdev`, :func:`unregister_netdev`,
  :func:`netif_rx`, :func:`netif_start_queue`, :func:`netif_stop_queue`,
  :func:`netif_wake_queue`, :func:`netif_queue_stopped`,
  :func:`netif_carrier_on`, :func:`netif_carrier_off`, :class:`sk_buff`,
  :func:`alloc_skb`, :func:`dev_alloc_skb`, :func:`skb_put`,
  :func:`dev_kfree_skb`, :func:`eth_type_trans`;
- ``linux/blkdev.h``, ``genhd.h``: :class:`request_queue`,
  :func:`blk_init_queue`, :func:`blk_fetch_request`,
  :func:`blk_end_request_all`, :class:`request`, :class:`gendisk`,
  :func:`alloc_disk`, :func:`add_disk`, :func:`set_capacity`.

The server around a driver (``drivers/nic.py``, ``drivers/blk.py``) finds the
devices the driver registered in the kit's registry and talks to them as the
Linux network and block layers do: ``ndo_start_xmit`` with an skb,
``request_fn`` with a queue of requests; it receives frames from
``netif_rx``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from l4sim.drivers.dde import ddekit
from l4sim.drivers.dde.ddekit import Lock, Semaphore, current, sleep_on
from l4sim.kernel.traps import Clock, Compute
from l4sim.kernel.vspace import IoAccess, MemAccess

# --------------------------------------------------------------------------- constants
HZ = 1000
NS_PER_JIFFY = 1_000_000_000 // HZ
GFP_KERNEL = 0
GFP_ATOMIC = 1
IRQF_SHARED = 0x80
IRQ_NONE = 0
IRQ_HANDLED = 1
NETDEV_TX_OK = 0
NETDEV_TX_BUSY = 0x10
IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_PROMISC = 0x100
ETH_ALEN = 6
ETH_HLEN = 14
ETH_FRAME_LEN = 1514
IORESOURCE_MEM = 0x200
IORESOURCE_IRQ = 0x400
READ = 0
WRITE = 1
REQ_FLUSH = 0x2
ENOMEM = 12
EIO = 5
EBUSY = 16
ENODEV = 19
EINVAL = 22
SECTOR_SIZE = 512


# --------------------------------------------------------------------------- kernel.h, slab.h
async def printk(fmt: str, *args: Any) -> None:
    """Print a line on the driver's log (``KERN_*`` prefixes like ``<6>`` are dropped)."""
    text = fmt % args if args else fmt
    if text.startswith("<") and text[2:3] == ">":
        text = text[3:]
    await current().kit.printk(text)


def kmalloc(size: int, flags: int = GFP_KERNEL) -> int:
    """``size`` bytes of the driver's heap: their address, 0 when none is left."""
    return current().kit.malloc(size)


async def kzalloc(size: int, flags: int = GFP_KERNEL) -> int:
    addr = kmalloc(size, flags)
    if addr:
        await MemAccess(addr, size, bytes(size))
    return addr


def kfree(addr: int) -> None:
    if addr:
        current().kit.free(addr)


# --------------------------------------------------------------------------- asm/io.h
async def readl(addr: int) -> int:
    return int.from_bytes(await MemAccess(addr, 4), "little")


async def writel(value: int, addr: int) -> None:
    await MemAccess(addr, 4, (value & 0xFFFFFFFF).to_bytes(4, "little"))


async def readb(addr: int) -> int:
    return (await MemAccess(addr, 1))[0]  # type: ignore[no-any-return]


async def writeb(value: int, addr: int) -> None:
    await MemAccess(addr, 1, bytes([value & 0xFF]))


async def readq(addr: int) -> int:
    return int.from_bytes(await MemAccess(addr, 8), "little")


async def writeq(value: int, addr: int) -> None:
    await MemAccess(addr, 8, value.to_bytes(8, "little"))


async def memcpy_toio(addr: int, data: bytes) -> None:
    """Copy ``data`` to ``addr`` (memory, DMA buffers or I/O memory)."""
    await MemAccess(addr, len(data), bytes(data))


async def memcpy_fromio(addr: int, n: int) -> bytes:
    return await MemAccess(addr, n)  # type: ignore[no-any-return]


async def inb(port: int) -> int:
    return await IoAccess(port)  # type: ignore[no-any-return]


async def outb(value: int, port: int) -> None:
    await IoAccess(port, value & 0xFF)


async def ioremap(phys: int, size: int) -> int:
    """Map the registers at bus resource ``phys`` (a device of the driver's bus); their address."""
    kit = current().kit
    for dev in kit.devices:
        if _res_start(dev) == phys:
            return await kit.request_mem(dev)
    await printk("ioremap: no device of this bus has registers at %#x", phys)
    return 0


def iounmap(addr: int) -> None:
    """The mapping stays until the claim ends (io takes it back then)."""


# --------------------------------------------------------------------------- platform devices
def _res_start(dev: ddekit.Device) -> int:
    """The bus address a driver knows a device's registers by (its index in the bus's window)."""
    return 0xFE000000 + (dev.index << 16)


@dataclass
class resource:
    start: int
    end: int
    flags: int


@dataclass(eq=False)
class platform_device:
    """A device of the driver's io bus, as the driver sees it."""

    name: str
    id: int
    resource: list[resource]
    ddev: ddekit.Device
    driver_data: Any = None


def platform_get_resource(pdev: platform_device, kind: int, num: int) -> resource | None:
    found = [r for r in pdev.resource if r.flags & kind]
    return found[num] if num < len(found) else None


def platform_get_irq(pdev: platform_device, num: int) -> int:
    r = platform_get_resource(pdev, IORESOURCE_IRQ, num)
    return r.start if r is not None else -ENODEV


def platform_set_drvdata(pdev: platform_device, data: Any) -> None:
    pdev.driver_data = data


def platform_get_drvdata(pdev: platform_device) -> Any:
    return pdev.driver_data


@dataclass
class platform_driver:
    """A driver: ``probe(pdev)`` for each device of kind ``name`` on the bus."""

    name: str
    probe: Callable[[platform_device], Awaitable[int]]
    remove: Callable[[platform_device], Awaitable[int]] | None = None


async def platform_driver_register(drv: platform_driver) -> int:
    """Claim every device of the driver's kind on the bus at io and probe it; the number probed
    (negative: an error)."""
    kit = current().kit
    if not kit.devices:
        await kit.scan()
    probed = 0
    for dev in kit.devices:
        if dev.kind != drv.name:
            continue
        try:
            await kit.claim(dev)
        except ddekit.DdeError as e:
            await printk("%s: %s", drv.name, e)
            continue
        pdev = platform_device(dev.name, dev.index, [
            resource(_res_start(dev), _res_start(dev) + (dev.npages << 12) - 1, IORESOURCE_MEM),
            resource(dev.index, dev.index, IORESOURCE_IRQ)], dev)
        kit.registry.setdefault("platform", []).append(pdev)
        if await drv.probe(pdev) == 0:
            probed += 1
    return probed if probed else -ENODEV


# --------------------------------------------------------------------------- interrupts
async def request_irq(irq: int, handler: Callable[[int, Any], Awaitable[int]], flags: int, name: str,
                      dev_id: Any) -> int:
    """Run ``handler(irq, dev_id)`` for every interrupt of bus device ``irq`` (its own thread)."""
    kit = current().kit
    dev = next((d for d in kit.devices if d.index == irq), None)
    if dev is None:
        return -EINVAL

    async def run() -> None:
        await handler(irq, dev_id)

    try:
        await kit.irq_attach(dev, run, name=f"irq.{name}")
    except ddekit.DdeError:
        return -EBUSY
    return 0


async def free_irq(irq: int, dev_id: Any) -> None:
    """Stop taking the interrupt (masked; io takes the Irq back when the claim ends)."""
    kit = current().kit
    dev = next((d for d in kit.devices if d.index == irq), None)
    if dev is not None and dev.irq is not None:
        await dev.irq.mask()


# --------------------------------------------------------------------------- DMA
@dataclass
class device:
    """The generic device a DMA call names (a platform device's ``dev``)."""

    pdev: platform_device


async def dma_alloc_coherent(dev: platform_device, size: int, flags: int = GFP_KERNEL) -> tuple[int, int]:
    """(CPU address, DMA handle) of ``size`` bytes the device can reach; (0, 0) when none."""
    try:
        return await current().kit.dma_alloc(dev.ddev, size)
    except ddekit.DdeError:
        return 0, 0


async def dma_free_coherent(dev: platform_device, size: int, cpu_addr: int, dma_handle: int) -> None:
    """Give the buffer back to io (the mapping stays until the claim ends)."""


def virt_to_bus(addr: int) -> int:
    return current().kit.virt_to_bus(addr)


# --------------------------------------------------------------------------- locks
class spinlock_t:
    """A spinlock: a DDEKit lock (a holder may sleep in a trap; the others wait, not spin)."""

    def __init__(self) -> None:
        self._lock = Lock()


def spin_lock_init(lock: spinlock_t) -> None:
    lock._lock = Lock()


async def spin_lock(lock: spinlock_t) -> None:
    await lock._lock.lock()


async def spin_unlock(lock: spinlock_t) -> None:
    await lock._lock.unlock()


async def spin_lock_irqsave(lock: spinlock_t) -> int:
    await lock._lock.lock()
    return 0


async def spin_unlock_irqrestore(lock: spinlock_t, flags: int) -> None:
    await lock._lock.unlock()


class mutex(spinlock_t):
    pass


mutex_lock = spin_lock
mutex_unlock = spin_unlock


class semaphore(Semaphore):
    pass


async def down(sem: semaphore) -> None:
    await sem.down()


async def up(sem: semaphore) -> None:
    await sem.up()


# --------------------------------------------------------------------------- wait queues
class wait_queue_head_t:
    def __init__(self) -> None:
        self.waiters: deque[ddekit.DdeThread] = deque()


def init_waitqueue_head(wq: wait_queue_head_t) -> None:
    wq.waiters.clear()


async def wait_event_timeout(wq: wait_queue_head_t, cond: Callable[[], bool], timeout: int) -> int:
    """Sleep until ``cond()`` holds (checked after every wake-up) or ``timeout`` jiffies pass; the
    jiffies left (at least 1) or 0 on a timeout."""
    me = current()
    deadline = await Clock() + timeout * NS_PER_JIFFY if timeout >= 0 else None
    while not cond():
        now = await Clock()
        if deadline is not None and now >= deadline:
            return 0
        wq.waiters.append(me)
        await sleep_on(me, None if deadline is None else deadline - now)
        if me in wq.waiters:
            wq.waiters.remove(me)
    if deadline is None:
        return 1
    left: int = (deadline - await Clock()) // NS_PER_JIFFY
    return max(1, left)


async def wait_event(wq: wait_queue_head_t, cond: Callable[[], bool]) -> None:
    await wait_event_timeout(wq, cond, -1)


async def wake_up(wq: wait_queue_head_t) -> None:
    while wq.waiters:
        t = wq.waiters.popleft()
        assert t.wake is not None
        await t.wake.trigger()


# --------------------------------------------------------------------------- work queues
@dataclass(eq=False)
class work_struct:
    func: Callable[[work_struct], Awaitable[Any]] | None = None
    pending: bool = False


def INIT_WORK(work: work_struct, func: Callable[[work_struct], Awaitable[Any]]) -> None:
    work.func = func
    work.pending = False


async def schedule_work(work: work_struct) -> bool:
    """Queue ``work`` for the task's worker thread (started on first use); False if queued."""
    kit = current().kit
    if work.pending:
        return False
    work.pending = True
    state = kit.registry.setdefault("workqueue", [])
    if not state:
        q: deque[work_struct] = deque()
        sem = Semaphore(0)
        state.extend([q, sem])

        async def worker() -> int:
            while True:
                await sem.down()
                w = q.popleft()
                w.pending = False
                if w.func is not None:
                    await w.func(w)

        await kit.thread_create(worker, name="events")
    q, sem = state
    q.append(work)
    await sem.up()
    return True


# --------------------------------------------------------------------------- timers, time
async def get_jiffies() -> int:
    """``jiffies``: simulated time in ticks of 1/HZ s."""
    return await Clock() // NS_PER_JIFFY  # type: ignore[no-any-return]


def msecs_to_jiffies(ms: int) -> int:
    return ms * HZ // 1000


@dataclass(eq=False)
class timer_list:
    function: Callable[[Any], Awaitable[Any]] | None = None
    data: Any = None
    expires: int = 0
    _t: Any = None


def setup_timer(timer: timer_list, function: Callable[[Any], Awaitable[Any]], data: Any) -> None:
    timer.function = function
    timer.data = data


async def mod_timer(timer: timer_list, expires: int) -> int:
    """(Re)arm ``timer`` for jiffy ``expires``; 1 if it was pending."""
    kit = current().kit
    was = int(timer._t is not None and kit.del_timer(timer._t))
    timer.expires = expires
    assert timer.function is not None, "setup_timer first"
    fn = timer.function

    async def fire(data: Any) -> None:
        timer._t = None
        await fn(data)

    timer._t = await kit.add_timer(expires * NS_PER_JIFFY, fire, timer.data)
    return was


def del_timer(timer: timer_list) -> int:
    if timer._t is None:
        return 0
    was = int(ddekit.Kit.del_timer(timer._t))
    timer._t = None
    return was


async def msleep(ms: int) -> None:
    me = current()
    end = await Clock() + ms * 1_000_000
    while (now := await Clock()) < end:
        await sleep_on(me, end - now)


async def udelay(us: int) -> None:
    """A busy wait: CPU time spent."""
    await Compute(us * 1000)


# --------------------------------------------------------------------------- networking
@dataclass(eq=False)
class sk_buff:
    """A socket buffer: ``data`` holds the frame (``len`` bytes of it in use)."""

    data: bytearray
    len: int = 0
    dev: net_device | None = None
    protocol: int = 0


def alloc_skb(size: int, flags: int = GFP_KERNEL) -> sk_buff:
    return sk_buff(bytearray(size))


def dev_alloc_skb(size: int) -> sk_buff:
    return alloc_skb(size)


def skb_put(skb: sk_buff, n: int) -> int:
    """Extend the data by ``n`` bytes; the offset where they start."""
    off = skb.len
    skb.len += n
    if len(skb.data) < skb.len:
        skb.data.extend(bytes(skb.len - len(skb.data)))
    return off


def dev_kfree_skb(skb: sk_buff) -> None:
    skb.len = 0


dev_kfree_skb_any = dev_kfree_skb


def eth_type_trans(skb: sk_buff, dev: net_device) -> int:
    skb.dev = dev
    return int.from_bytes(bytes(skb.data[12:14]), "big")


@dataclass
class net_device_stats:
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0


@dataclass
class net_device_ops:
    ndo_open: Callable[[net_device], Awaitable[int]] | None = None
    ndo_stop: Callable[[net_device], Awaitable[int]] | None = None
    ndo_start_xmit: Callable[[sk_buff, net_device], Awaitable[int]] | None = None
    ndo_set_rx_mode: Callable[[net_device], Awaitable[None]] | None = None


@dataclass(eq=False)
class net_device:
    name: str = "eth%d"
    dev_addr: bytes = bytes(ETH_ALEN)
    flags: int = IFF_BROADCAST
    mtu: int = 1500
    netdev_ops: net_device_ops = field(default_factory=net_device_ops)
    stats: net_device_stats = field(default_factory=net_device_stats)
    priv: Any = None
    queue_stopped: bool = True
    carrier: bool = False
    #: what the network layer above gets frames with (set by the server): rx(skb)
    rx_handler: Callable[[sk_buff], Awaitable[None]] | None = None
    #: woken when the queue restarts (the server waits here with a frame to send)
    tx_wait: wait_queue_head_t = field(default_factory=wait_queue_head_t)


def alloc_etherdev(priv: Any) -> net_device:
    return net_device(priv=priv)


def netdev_priv(dev: net_device) -> Any:
    return dev.priv


async def register_netdev(dev: net_device) -> int:
    kit = current().kit
    devs = kit.registry.setdefault("net", [])
    if "%d" in dev.name:
        dev.name = dev.name % len(devs)
    devs.append(dev)
    return 0


def unregister_netdev(dev: net_device) -> None:
    kit = current().kit
    if dev in kit.registry.get("net", []):
        kit.registry["net"].remove(dev)


def free_netdev(dev: net_device) -> None:
    dev.priv = None


def netif_start_queue(dev: net_device) -> None:
    dev.queue_stopped = False


def netif_stop_queue(dev: net_device) -> None:
    dev.queue_stopped = True


async def netif_wake_queue(dev: net_device) -> None:
    dev.queue_stopped = False
    await wake_up(dev.tx_wait)


def netif_queue_stopped(dev: net_device) -> bool:
    return dev.queue_stopped


def netif_carrier_on(dev: net_device) -> None:
    dev.carrier = True


def netif_carrier_off(dev: net_device) -> None:
    dev.carrier = False


async def netif_rx(skb: sk_buff) -> int:
    """Hand a received frame up (to the server's handler); 0."""
    dev = skb.dev
    if dev is not None and dev.rx_handler is not None:
        await dev.rx_handler(skb)
    elif dev is not None:
        dev.stats.rx_dropped += 1
    return 0


async def dev_open(dev: net_device) -> int:
    """What ``ifconfig eth0 up`` does: ``ndo_open``, then the receive mode."""
    if dev.netdev_ops.ndo_open is not None:
        err = await dev.netdev_ops.ndo_open(dev)
        if err:
            return err
    dev.flags |= IFF_UP
    if dev.netdev_ops.ndo_set_rx_mode is not None:
        await dev.netdev_ops.ndo_set_rx_mode(dev)
    return 0


async def dev_set_promiscuity(dev: net_device, inc: int) -> None:
    dev.flags = dev.flags | IFF_PROMISC if inc > 0 else dev.flags & ~IFF_PROMISC
    if dev.flags & IFF_UP and dev.netdev_ops.ndo_set_rx_mode is not None:
        await dev.netdev_ops.ndo_set_rx_mode(dev)


async def dev_queue_xmit(skb: sk_buff) -> int:
    """Send ``skb`` on its device: wait while the queue is stopped, then ``ndo_start_xmit``."""
    dev = skb.dev
    assert dev is not None and dev.netdev_ops.ndo_start_xmit is not None
    while True:
        await wait_event(dev.tx_wait, lambda: not dev.queue_stopped)
        rc = await dev.netdev_ops.ndo_start_xmit(skb, dev)
        if rc != NETDEV_TX_BUSY:
            return rc


# --------------------------------------------------------------------------- block devices
@dataclass(eq=False)
class request:
    """A block request: ``cmd`` READ or WRITE (``flags`` REQ_FLUSH: a cache flush, no data)."""

    cmd: int
    sector: int
    nr_sectors: int
    buffer: bytearray
    flags: int = 0
    errors: int = 0
    done: Semaphore = field(default_factory=lambda: Semaphore(0))
    special: Any = None


def rq_data_dir(rq: request) -> int:
    return rq.cmd


def blk_rq_pos(rq: request) -> int:
    return rq.sector


def blk_rq_sectors(rq: request) -> int:
    return rq.nr_sectors


@dataclass(eq=False)
class request_queue:
    request_fn: Callable[[request_queue], Awaitable[None]]
    lock: spinlock_t
    queue: deque[request] = field(default_factory=deque)
    queuedata: Any = None


def blk_init_queue(rfn: Callable[[request_queue], Awaitable[None]], lock: spinlock_t) -> request_queue:
    return request_queue(rfn, lock)


def blk_fetch_request(q: request_queue) -> request | None:
    """The next request of ``q`` (the driver now owns it), or None."""
    return q.queue.popleft() if q.queue else None


async def blk_end_request_all(rq: request, error: int) -> None:
    """The driver is done with ``rq`` (``error`` 0 or -errno): its submitter goes on."""
    rq.errors = error
    await rq.done.up()


__blk_end_request_all = blk_end_request_all


@dataclass(eq=False)
class gendisk:
    disk_name: str = ""
    queue: request_queue | None = None
    capacity: int = 0
    private_data: Any = None


def alloc_disk(minors: int) -> gendisk:
    return gendisk()


def set_capacity(disk: gendisk, sectors: int) -> None:
    disk.capacity = sectors


async def add_disk(disk: gendisk) -> None:
    current().kit.registry.setdefault("disk", []).append(disk)


async def submit_request(disk: gendisk, rq: request) -> int:
    """What the block layer does with a request: queue it, run the driver, wait for its end."""
    q = disk.queue
    assert q is not None
    await spin_lock(q.lock)
    q.queue.append(rq)
    await q.request_fn(q)
    await spin_unlock(q.lock)
    await rq.done.down()
    return rq.errors
