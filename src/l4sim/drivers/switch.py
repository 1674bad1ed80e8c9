"""An ORe-style network switch: virtual ports for clients, MAC learning, an uplink to a NIC.

DROPS' ORe (the "Oshkosh Runtime Environment" network multiplexer) gave each
client a virtual network port and forwarded between the ports and the
physical NIC.  This switch does the same as a native server:

- each ``OPEN`` on its service gate (``svc``) is a port: a ``NET`` session
  (:mod:`l4sim.drivers.protocols`, the same protocol the ``nic`` server
  speaks, so a client works against either) with a locally administered MAC
  address of its own (``02:00:00:00:00:NN``, NN from the port);
- the *uplink* is a promiscuous session at the ``nic`` server (``uplink``);
  a second thread receives from it;
- a frame's source address is learned for the port it came from; a frame
  to a learned address goes to that port only (or nowhere, if it is the
  port it came from); broadcast, multicast and unknown destinations are
  flooded to every other port and, unless it came from there, the uplink.

Every frame costs the IPC it takes (a string copy in, one out per
destination); the switch counts what it forwarded (:attr:`Switch.stats`,
and ``INFO`` per port).  A client that dies takes its port with it (the
deletion notification), its learned addresses with it.
"""

from __future__ import annotations

from l4sim.drivers.dde import ddekit
from l4sim.drivers.netport import NetClient, PortServer, Session
from l4sim.user.env import Env, Gate

#: the uplink's place in the MAC table
UPLINK = -1


def port_mac(label: int) -> bytes:
    """The locally administered MAC address of the port with gate label ``label``."""
    n = (label - 0x1000) >> 2
    return bytes([0x02, 0, 0, 0, (n >> 8) & 0xFF, n & 0xFF])


class Switch:
    """The forwarding table and counters."""

    def __init__(self) -> None:
        #: MAC address -> the port (session label) or UPLINK it was last seen on
        self.table: dict[bytes, int] = {}
        self.stats = {"forwarded": 0, "flooded": 0, "filtered": 0, "to_uplink": 0, "from_uplink": 0}


async def main(env: Env) -> int:
    """The program (``l4sim.drivers.switch:main``): ``svc`` (server side), ``factory``, and
    optionally ``uplink`` (a ``nic`` server's channel)."""
    return await ddekit.run(env, _serve)


async def _serve(kit: ddekit.Kit) -> int:
    env = kit.env
    sw = Switch()
    uplink: NetClient | None = None
    ports: PortServer

    async def forward(src: int, frame: bytes) -> int:
        dst, srcmac = frame[:6], frame[6:12]
        if not srcmac[0] & 1:
            sw.table[srcmac] = src
        out = None if dst[0] & 1 else sw.table.get(dst)
        if out is not None:
            if out == src:
                sw.stats["filtered"] += 1
                return 0
            sw.stats["forwarded"] += 1
            if out == UPLINK:
                sw.stats["to_uplink"] += 1
                assert uplink is not None
                return await uplink.send(frame)
            s = ports.sessions.get(out)
            if s is not None:
                await ports.deliver(s, frame)
                return 0
            del sw.table[dst]  # the port is gone: flood instead
        sw.stats["flooded"] += 1
        for s in list(ports.sessions.values()):
            if s.label != src:
                await ports.deliver(s, frame)
        if uplink is not None and src != UPLINK:
            sw.stats["to_uplink"] += 1
            await uplink.send(frame)
        return 0

    async def transmit(s: Session, frame: bytes) -> int:
        return await forward(s.label, frame)

    ports = PortServer(kit, "switch", transmit, port_mac)
    if env.has("uplink"):
        buf = kit.malloc(8192)
        uplink = await NetClient.open(env, env.cap("uplink", Gate), (buf + 4095) & ~4095, promisc=True)
        link = uplink

        async def receiver() -> int:
            while True:
                frame = await link.recv()
                if frame is not None:
                    sw.stats["from_uplink"] += 1
                    await forward(UPLINK, frame)

        await kit.thread_create(receiver, name="switch.uplink")
    kit.registry["switch"] = [sw]
    return await ports.serve(env.cap("svc", Gate))
