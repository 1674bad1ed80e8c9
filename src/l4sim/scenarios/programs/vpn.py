"""The vpn scenario's attacker: "mallory", the internet between the outer cable and the web host.

Mallory is on the path: it holds a promiscuous session at the NIC server beyond the cable
(``uplink``) and serves the internet host's port (``svc``, the ``NET`` protocol of
:mod:`l4sim.drivers.netport`).  It forwards every frame both ways, and, as its plan says
(the program's argument: ``key=N`` words counting the ESP packets of each direction from
1), attacks the tunnel:

- ``drop=N``: the N-th ESP packet towards the web host is not delivered (TCP sends it again);
- ``replay=N``: the N-th ESP packet towards the gateway is sent once more right after it
  (its sequence number was seen: the gateway's replay window refuses it);
- ``late=N``: the N-th is kept and sent again four packets later (still in the window, seen);
- ``flip=N``: before the N-th, a copy with one bit of its ciphertext flipped (the ICV fails);
- ``forge=N``: before the N-th, a copy whose sequence number is 1000 higher -- fresh to the
  window, but the sequence number is authenticated: the ICV fails, and the window must not
  move (or the genuine packets that follow would look old).

Every attack is a line on its log (``mallory: replayed ESP #N``); the scenario sets them
beside what the gateway counted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from l4sim.drivers.dde import ddekit
from l4sim.drivers.netport import NetClient, PortServer, Session
from l4sim.user.env import Env, Gate

ETH_IP = b"\x08\x00"
PROTO_ESP = 50
#: the web host's MAC on mallory's port
HOST_PORT_MAC = bytes.fromhex("020000000a01")


def _esp(frame: bytes) -> bool:
    return len(frame) > 14 + 20 + 8 and frame[12:14] == ETH_IP and frame[14 + 9] == PROTO_ESP


@dataclass
class Plan:
    """Which ESP packets mallory attacks (see the module), and what it did."""

    drop: set[int] = field(default_factory=set)
    replay: set[int] = field(default_factory=set)
    late: set[int] = field(default_factory=set)
    flip: set[int] = field(default_factory=set)
    forge: set[int] = field(default_factory=set)
    to_host: int = 0
    to_gateway: int = 0
    #: packets kept for a late replay: (when to send, frame)
    kept: list[tuple[int, bytes]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Plan:
        p = cls()
        for word in text.split():
            key, _, nums = word.partition("=")
            getattr(p, key).update(int(n) for n in nums.split(",") if n)
        return p

    def towards_host(self, frame: bytes) -> list[bytes]:
        if not _esp(frame):
            return [frame]
        self.to_host += 1
        if self.to_host in self.drop:
            self.log.append(f"mallory: dropped ESP #{self.to_host} on its way to the web host")
            return []
        return [frame]

    def towards_gateway(self, frame: bytes) -> list[bytes]:
        if not _esp(frame):
            return [frame]
        self.to_gateway += 1
        n = self.to_gateway
        out = []
        if n in self.flip:
            bad = bytearray(frame)
            bad[14 + 20 + 16 + 5] ^= 0x04  # a bit of the ciphertext
            out.append(bytes(bad))
            self.log.append(f"mallory: sent ESP #{n} with a bit flipped first")
        if n in self.forge:
            bad = bytearray(frame)
            at = 14 + 20 + 4
            seq = struct.unpack_from("!I", bad, at)[0]
            struct.pack_into("!I", bad, at, seq + 1000)
            out.append(bytes(bad))
            self.log.append(f"mallory: sent a copy of ESP #{n} with sequence number {seq + 1000} first")
        out.append(frame)
        if n in self.replay:
            out.append(frame)
            self.log.append(f"mallory: replayed ESP #{n}")
        if n in self.late:
            self.kept.append((n + 4, frame))
        for at, old in list(self.kept):
            if at == n:
                self.kept.remove((at, old))
                out.append(old)
                self.log.append(f"mallory: replayed ESP #{at - 4} after #{n}")
        return out


async def mallory(env: Env, plan: str) -> int:
    """The program (``l4sim.scenarios.programs.vpn:mallory``): ``svc`` (server side, the web
    host's port), ``uplink`` (the far NIC server's channel), ``factory``; the plan."""
    return await ddekit.run(env, lambda kit: _serve(kit, Plan.parse(plan)))


async def _serve(kit: ddekit.Kit, plan: Plan) -> int:
    env = kit.env
    buf = kit.malloc(8192)
    up = await NetClient.open(env, env.cap("uplink", Gate), (buf + 4095) & ~4095, promisc=True)
    ports: PortServer

    async def flush_log() -> None:
        while plan.log:
            await env.print(plan.log.pop(0))

    async def transmit(s: Session, frame: bytes) -> int:
        for f in plan.towards_gateway(frame):
            await up.send(f)
        await flush_log()
        return 0

    ports = PortServer(kit, "mallory", transmit, lambda label: HOST_PORT_MAC)

    async def receiver() -> int:
        while True:
            frame = await up.recv()
            if frame is None:  # the uplink's session is gone: nothing more comes
                return 0
            for f in plan.towards_host(frame):
                for s in list(ports.sessions.values()):
                    await ports.deliver(s, f)
            await flush_log()

    await kit.thread_create(receiver, name="mallory.uplink")
    return await ports.serve(env.cap("svc", Gate))
