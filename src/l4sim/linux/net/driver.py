"""The stub network driver: an interface of a Linux instance on a port of the switch.

ORe's Linux stub driver (DROPS) made a port of the network multiplexer look like a network
card to L4Linux.  This one does the same for the personality's stack: the instance's
startup script gives it a ``NET`` channel (a switch port, or a ``nic`` server: the protocol
is the same, :mod:`l4sim.drivers.protocols`), and the driver

- opens a session on it once (``OPEN``; the answer's MAC becomes the interface's address),
- sends each frame the stack transmits with ``SEND``, from a page of the personality's pool
  (the serving thread makes the call: the switch answers once it has forwarded the frame),
- keeps a receiver thread of the personality blocked in ``RECV``: each frame it gets goes
  into the stack's receive queue, and an Irq (``stack.IRQ_LABEL``) wakes the serving thread,
  which runs the stack (a second frame before it has done so does not trigger again).

The receiver shares the queue with the serving thread as the /dev/l4 workers share their
devices (:mod:`l4sim.linux.l4`): each thread runs undisturbed between two traps.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from l4sim.drivers.netport import NetClient
from l4sim.linux.state import Personality
from l4sim.user.env import Env, Gate, IrqCap, L4Error


@dataclass(eq=False)
class Port:
    """One interface's session: the send side (the serving thread's), the receive queue the
    receiver fills, and whether it has triggered the Irq since the queue was last drained."""

    name: str
    mac: bytes
    tx: NetClient
    rxq: deque[bytes] = field(default_factory=deque)
    signalled: bool = False
    sent: int = 0
    failed: int = 0


@dataclass(eq=False)
class Driver:
    """The instance's ports and the Irq of their receivers."""

    irq: IrqCap
    ports: list[Port] = field(default_factory=list)


async def attach(k: Personality, drv: Driver, name: str, cap: str) -> Port:
    """Open a session on the channel ``cap`` for interface ``name`` and start its receiver.
    L4Error when the channel serves no session."""
    env = k.env
    page = await k.alloc()  # 4 KiB of the pool: the send buffer (and the session's buffer)
    tx = await NetClient.open(env, env.cap(cap, Gate), page)
    port = Port(name, tx.mac, tx)
    rxpage = await k.alloc()
    info = await env.scheduler.info()
    prio = max(1, min(info[1], k.cfg.guest_prio + 1))
    await env.spawn(_receiver, drv, port, tx.session.slot, rxpage, name=f"net-{name}", prio=prio)
    drv.ports.append(port)
    return port


async def _receiver(env: Env, drv: Driver, port: Port, session: int, page: int) -> None:
    """The receiver thread: RECV, queue the frame, wake the serving thread."""
    client = NetClient(env, Gate(env, session), port.mac, page - 2048)  # its rx half is ``page``
    while True:
        frame = await client.recv()
        if frame is None:  # the session is gone (the switch ended): nothing more comes
            return
        port.rxq.append(frame)
        if not port.signalled:
            port.signalled = True
            await drv.irq.trigger()


async def transmit(port: Port, frame: bytes) -> bool:
    """Send one frame (False: the switch refused it or is gone)."""
    try:
        r = await port.tx.send(frame)
    except L4Error:
        r = -1
    if r:
        port.failed += 1
        return False
    port.sent += 1
    return True
