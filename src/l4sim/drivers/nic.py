"""The ``nic`` server: a NIC driven by a Linux driver under DDE, serving packet sessions.

The program's capabilities: ``bus`` (io's bus with the NIC), ``svc`` (the
channel it serves, server side), ``factory`` (threads, Irqs, session gates).
It registers the Linux driver (:mod:`l4sim.drivers.linux.simnic`) with the
DDE Linux layer, which claims the bus's NIC at io and probes it; the driver
registers a ``net_device``, which the server opens (``dev_open``).  Then it
serves ``NET`` sessions (:mod:`l4sim.drivers.protocols`):

- ``SEND``: the frame becomes an ``sk_buff`` and goes to the driver's
  ``ndo_start_xmit`` (``dev_queue_xmit``: while the driver has stopped its
  queue the server waits for the interrupt thread to wake it);
- received frames come up from the driver's interrupt handler through
  ``netif_rx``; the server hands each to every session it is for -- those
  opened promiscuous get every frame, the others frames to the NIC's MAC
  address, broadcast and multicast.  A session opened promiscuous puts the
  NIC into promiscuous mode (the switch's uplink needs frames to its
  clients' addresses).

Its log says what the driver said (``eth0: simnic at nic0, MAC ...``).
"""

from __future__ import annotations

from l4sim.drivers.dde import ddekit
from l4sim.drivers.dde.linux import (
    IFF_PROMISC,
    alloc_skb,
    dev_open,
    dev_queue_xmit,
    dev_set_promiscuity,
    net_device,
    platform_driver_register,
    sk_buff,
    skb_put,
)
from l4sim.drivers.linux.simnic import simnic_driver
from l4sim.drivers.netport import PortServer, Session
from l4sim.kernel.abi import Err
from l4sim.user.env import Env, Gate


async def main(env: Env) -> int:
    """The program (``l4sim.drivers.nic:main``)."""
    return await ddekit.run(env, _serve)


async def _serve(kit: ddekit.Kit) -> int:
    env = kit.env
    if await platform_driver_register(simnic_driver) <= 0 or not kit.registry.get("net"):
        await env.print("nic: no NIC on the bus could be driven")
        return 1
    netdev: net_device = kit.registry["net"][0]
    ports: PortServer

    async def transmit(s: Session, frame: bytes) -> int:
        if s.promisc and not netdev.flags & IFF_PROMISC:
            await dev_set_promiscuity(netdev, 1)
        skb = alloc_skb(len(frame))
        off = skb_put(skb, len(frame))
        skb.data[off : off + len(frame)] = frame
        skb.dev = netdev
        return 0 if await dev_queue_xmit(skb) == 0 else -Err.EIO

    async def receive(skb: sk_buff) -> None:
        frame = bytes(skb.data[: skb.len])
        to_us = frame[:6] == netdev.dev_addr or bool(frame[0] & 1)
        for s in list(ports.sessions.values()):
            if s.promisc or to_us:
                await ports.deliver(s, frame)

    ports = PortServer(kit, "nic", transmit, lambda label: netdev.dev_addr)
    netdev.rx_handler = receive
    err = await dev_open(netdev)
    if err:
        await env.print(f"nic: {netdev.name}: open failed ({err})")
        return 1
    return await ports.serve(env.cap("svc", Gate))
