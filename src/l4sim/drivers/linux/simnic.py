"""simnic: Linux driver for the l4sim e1000-style Ethernet controller.

Written against the Linux 2.6 driver API only (platform driver, ioremap,
readl/writel, dma_alloc_coherent, request_irq, net_device, sk_buff), in the
shape of drivers/net/e1000: a transmit and a receive ring of legacy
descriptors, one DMA buffer per descriptor, the interrupt handler cleaning
the transmit ring and passing received frames up with netif_rx.

Register and descriptor layout: see the controller's manual
(l4sim/machine/nic.py).
"""

from __future__ import annotations

import struct

from l4sim.drivers.dde.linux import (
    ETH_FRAME_LEN,
    IFF_PROMISC,
    IORESOURCE_MEM,
    IRQ_HANDLED,
    IRQ_NONE,
    NETDEV_TX_BUSY,
    NETDEV_TX_OK,
    alloc_etherdev,
    alloc_skb,
    dev_kfree_skb,
    dma_alloc_coherent,
    eth_type_trans,
    ioremap,
    memcpy_fromio,
    memcpy_toio,
    net_device,
    net_device_ops,
    netdev_priv,
    netif_carrier_off,
    netif_carrier_on,
    netif_queue_stopped,
    netif_rx,
    netif_start_queue,
    netif_stop_queue,
    netif_wake_queue,
    platform_device,
    platform_driver,
    platform_get_irq,
    platform_get_resource,
    platform_set_drvdata,
    printk,
    readl,
    register_netdev,
    request_irq,
    sk_buff,
    skb_put,
    spin_lock,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
    spinlock_t,
    writel,
)

DRV_NAME = "nic"

# registers
CTRL = 0x000
STATUS = 0x008
MACLO = 0x010
MACHI = 0x014
ICR = 0x020
IMS = 0x028
IMC = 0x02C
TDBAL = 0x100
TDBAH = 0x104
TDLEN = 0x108
TDH = 0x110
TDT = 0x118
RDBAL = 0x200
RDBAH = 0x204
RDLEN = 0x208
RDH = 0x210
RDT = 0x218

CTRL_TXEN = 1
CTRL_RXEN = 2
CTRL_PROMISC = 4
CTRL_RST = 1 << 31
STATUS_LU = 1
ICR_TXDW = 1
ICR_RXT = 2
ICR_LSC = 4
ICR_RXO = 8
ICR_DMAERR = 16
IMS_ENABLE = ICR_TXDW | ICR_RXT | ICR_LSC | ICR_RXO | ICR_DMAERR

TXD_CMD_EOP = 1
TXD_STAT_DD = 1
RXD_STAT_DD = 1
RXD_STAT_ERR = 2

DESC_SIZE = 16
TX_RING = 64
RX_RING = 64
BUF_SIZE = 2048


class simnic_adapter:
    """The driver's private state (netdev_priv)."""

    def __init__(self) -> None:
        self.netdev: net_device | None = None
        self.pdev: platform_device | None = None
        self.hw_addr = 0
        self.irq = 0
        self.tx_ring = 0
        self.tx_ring_dma = 0
        self.rx_ring = 0
        self.rx_ring_dma = 0
        self.tx_buf = 0
        self.tx_buf_dma = 0
        self.rx_buf = 0
        self.rx_buf_dma = 0
        self.next_to_use = 0
        self.next_to_clean = 0
        self.rx_next = 0
        self.tx_lock = spinlock_t()
        self.dma_errors = 0


async def simnic_rw(adapter: simnic_adapter, reg: int, value: int | None = None) -> int:
    if value is None:
        return await readl(adapter.hw_addr + reg)
    await writel(value, adapter.hw_addr + reg)
    return 0


def tx_desc(buf_dma: int, length: int) -> bytes:
    return struct.pack("<QHBBI", buf_dma, length, TXD_CMD_EOP, 0, 0)


def rx_desc(buf_dma: int) -> bytes:
    return struct.pack("<QHBBI", buf_dma, BUF_SIZE, 0, 0, 0)


async def simnic_setup_rings(adapter: simnic_adapter) -> int:
    pdev = adapter.pdev
    assert pdev is not None
    adapter.tx_ring, adapter.tx_ring_dma = await dma_alloc_coherent(pdev, TX_RING * DESC_SIZE)
    adapter.rx_ring, adapter.rx_ring_dma = await dma_alloc_coherent(pdev, RX_RING * DESC_SIZE)
    adapter.tx_buf, adapter.tx_buf_dma = await dma_alloc_coherent(pdev, TX_RING * BUF_SIZE)
    adapter.rx_buf, adapter.rx_buf_dma = await dma_alloc_coherent(pdev, RX_RING * BUF_SIZE)
    if not (adapter.tx_ring and adapter.rx_ring and adapter.tx_buf and adapter.rx_buf):
        return -12  # ENOMEM
    ring = b"".join(rx_desc(adapter.rx_buf_dma + i * BUF_SIZE) for i in range(RX_RING))
    await memcpy_toio(adapter.rx_ring, ring)
    await simnic_rw(adapter, TDBAL, adapter.tx_ring_dma & 0xFFFFFFFF)
    await simnic_rw(adapter, TDBAH, adapter.tx_ring_dma >> 32)
    await simnic_rw(adapter, TDLEN, TX_RING)
    await simnic_rw(adapter, RDBAL, adapter.rx_ring_dma & 0xFFFFFFFF)
    await simnic_rw(adapter, RDBAH, adapter.rx_ring_dma >> 32)
    await simnic_rw(adapter, RDLEN, RX_RING)
    await simnic_rw(adapter, RDT, RX_RING - 1)  # every descriptor but one belongs to the device
    adapter.next_to_use = adapter.next_to_clean = adapter.rx_next = 0
    return 0


async def simnic_open(netdev: net_device) -> int:
    adapter: simnic_adapter = netdev_priv(netdev)
    err = await simnic_setup_rings(adapter)
    if err:
        await printk("<3>%s: no memory for the rings\n", netdev.name)
        return err
    err = await request_irq(adapter.irq, simnic_intr, 0, netdev.name, netdev)
    if err:
        await printk("<3>%s: cannot get its interrupt\n", netdev.name)
        return err
    await simnic_rw(adapter, IMS, IMS_ENABLE)
    await simnic_rw(adapter, CTRL, CTRL_TXEN | CTRL_RXEN)
    if await simnic_rw(adapter, STATUS) & STATUS_LU:
        netif_carrier_on(netdev)
    netif_start_queue(netdev)
    return 0


async def simnic_stop(netdev: net_device) -> int:
    adapter: simnic_adapter = netdev_priv(netdev)
    netif_stop_queue(netdev)
    await simnic_rw(adapter, IMC, 0xFFFFFFFF)
    await simnic_rw(adapter, CTRL, 0)
    return 0


async def simnic_set_rx_mode(netdev: net_device) -> None:
    adapter: simnic_adapter = netdev_priv(netdev)
    ctrl = await simnic_rw(adapter, CTRL)
    ctrl = ctrl | CTRL_PROMISC if netdev.flags & IFF_PROMISC else ctrl & ~CTRL_PROMISC
    await simnic_rw(adapter, CTRL, ctrl)


async def simnic_xmit_frame(skb: sk_buff, netdev: net_device) -> int:
    adapter: simnic_adapter = netdev_priv(netdev)
    if skb.len > ETH_FRAME_LEN:
        netdev.stats.tx_dropped += 1
        dev_kfree_skb(skb)
        return NETDEV_TX_OK
    flags = await spin_lock_irqsave(adapter.tx_lock)
    i = adapter.next_to_use
    if (i + 1) % TX_RING == adapter.next_to_clean:  # ring full: the interrupt wakes the queue
        netif_stop_queue(netdev)
        await spin_unlock_irqrestore(adapter.tx_lock, flags)
        return NETDEV_TX_BUSY
    await memcpy_toio(adapter.tx_buf + i * BUF_SIZE, bytes(skb.data[: skb.len]))
    await memcpy_toio(adapter.tx_ring + i * DESC_SIZE, tx_desc(adapter.tx_buf_dma + i * BUF_SIZE, skb.len))
    adapter.next_to_use = (i + 1) % TX_RING
    netdev.stats.tx_packets += 1
    netdev.stats.tx_bytes += skb.len
    await simnic_rw(adapter, TDT, adapter.next_to_use)
    await spin_unlock_irqrestore(adapter.tx_lock, flags)
    dev_kfree_skb(skb)
    return NETDEV_TX_OK


async def simnic_clean_tx(adapter: simnic_adapter, netdev: net_device) -> None:
    await spin_lock(adapter.tx_lock)
    while adapter.next_to_clean != adapter.next_to_use:
        i = adapter.next_to_clean
        status = (await memcpy_fromio(adapter.tx_ring + i * DESC_SIZE + 11, 1))[0]
        if not status & TXD_STAT_DD:
            break
        if status & 2:
            netdev.stats.tx_errors += 1
        adapter.next_to_clean = (i + 1) % TX_RING
    await spin_unlock(adapter.tx_lock)
    if netif_queue_stopped(netdev):
        await netif_wake_queue(netdev)


async def simnic_clean_rx(adapter: simnic_adapter, netdev: net_device) -> None:
    while True:
        i = adapter.rx_next
        desc = await memcpy_fromio(adapter.rx_ring + i * DESC_SIZE, DESC_SIZE)
        _addr, length, _cmd, status, _ = struct.unpack("<QHBBI", desc)
        if not status & RXD_STAT_DD:
            return
        if status & RXD_STAT_ERR or not length:
            netdev.stats.rx_errors += 1
        else:
            skb = alloc_skb(length)
            off = skb_put(skb, length)
            skb.data[off : off + length] = await memcpy_fromio(adapter.rx_buf + i * BUF_SIZE, length)
            skb.protocol = eth_type_trans(skb, netdev)
            netdev.stats.rx_packets += 1
            netdev.stats.rx_bytes += length
            await netif_rx(skb)
        await memcpy_toio(adapter.rx_ring + i * DESC_SIZE, rx_desc(adapter.rx_buf_dma + i * BUF_SIZE))
        await simnic_rw(adapter, RDT, i)  # give the descriptor back
        adapter.rx_next = (i + 1) % RX_RING


async def simnic_intr(irq: int, netdev: net_device) -> int:
    adapter: simnic_adapter = netdev_priv(netdev)
    icr = await simnic_rw(adapter, ICR)
    if not icr:
        return IRQ_NONE
    if icr & ICR_DMAERR:
        adapter.dma_errors += 1
        await printk("<3>%s: DMA error (a buffer the device may not reach)\n", netdev.name)
    if icr & ICR_LSC:
        if await simnic_rw(adapter, STATUS) & STATUS_LU:
            netif_carrier_on(netdev)
        else:
            netif_carrier_off(netdev)
    if icr & (ICR_RXT | ICR_RXO):
        await simnic_clean_rx(adapter, netdev)
    if icr & ICR_TXDW:
        await simnic_clean_tx(adapter, netdev)
    return IRQ_HANDLED


simnic_netdev_ops = net_device_ops(
    ndo_open=simnic_open,
    ndo_stop=simnic_stop,
    ndo_start_xmit=simnic_xmit_frame,
    ndo_set_rx_mode=simnic_set_rx_mode,
)


async def simnic_probe(pdev: platform_device) -> int:
    res = platform_get_resource(pdev, IORESOURCE_MEM, 0)
    if res is None:
        return -19  # ENODEV
    adapter = simnic_adapter()
    netdev = alloc_etherdev(adapter)
    adapter.netdev = netdev
    adapter.pdev = pdev
    adapter.hw_addr = await ioremap(res.start, res.end - res.start + 1)
    if not adapter.hw_addr:
        return -12
    adapter.irq = platform_get_irq(pdev, 0)
    await simnic_rw(adapter, CTRL, CTRL_RST)
    lo = await simnic_rw(adapter, MACLO)
    hi = await simnic_rw(adapter, MACHI)
    netdev.dev_addr = lo.to_bytes(4, "little") + (hi & 0xFFFF).to_bytes(2, "little")
    netdev.netdev_ops = simnic_netdev_ops
    platform_set_drvdata(pdev, netdev)
    err = await register_netdev(netdev)
    if err:
        return err
    await printk("<6>%s: simnic at %s, MAC %s\n", netdev.name, pdev.name,
                 ":".join(f"{b:02x}" for b in netdev.dev_addr))
    return 0


simnic_driver = platform_driver(name=DRV_NAME, probe=simnic_probe)
