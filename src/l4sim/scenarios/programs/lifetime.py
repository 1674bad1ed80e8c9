"""The lifetime scenario's programs: a key that goes where keys go.

``keeper`` holds a 32-byte key in its heap and marks it a secret; it sends
the key to ``worker`` in the words of a call and puts a copy into a shared
dataspace; ``worker`` copies it into its own heap, uses it once, and
clears the copy it made (the careful thing) -- but not the shared one, nor
the message; ``keeper`` ends without clearing its heap.  When the programs
end, moe takes their heaps back.  Which copies outlive the key's last use,
and where are they at the end?  ``l4sim lifetime lifetime`` answers, and
``--zero-on-free`` shows what clearing freed frames changes.
"""

from __future__ import annotations

from l4sim.kernel.abi import pack_bytes, unpack_bytes
from l4sim.scenarios.programs.demo import _attach
from l4sim.user.env import Env, Gate

#: the key (the scenario's own, so runs are identical)
KEY = bytes(range(0x40, 0x60))
USE, DONE = 1, 2


async def keeper(env: Env) -> int:
    heap, _ = env.heap  # type: ignore[attr-defined]
    await env.mem.write(heap, KEY)
    await env.mark_secret(heap, len(KEY), "session key")
    shared = await _attach(env, env.cap("shared"), 4096)
    await env.mem.write(shared, await env.mem.read(heap, len(KEY)))  # a copy for the worker
    r = await env.cap("worker", Gate).call(USE, *pack_bytes(KEY))  # and one in a message
    await env.print(f"keeper: the worker answered {r.words[0] if r.words else '?'}")
    await env.cap("worker", Gate).call(DONE)
    return 0


async def worker(env: Env) -> int:
    gate: Gate = env.cap("svc")
    await gate.bind(env.thread, 0x10)
    heap, _ = env.heap  # type: ignore[attr-defined]
    shared = await _attach(env, env.cap("shared"), 4096)
    msg = await env.wait()
    while msg.proto != DONE:
        key = unpack_bytes(msg.words)
        await env.mem.write(heap + 256, await env.mem.read(shared, len(key)))  # its own copy
        used = sum(await env.mem.read(heap + 256, len(key)))  # the use
        await env.mem.write(heap + 256, bytes(len(key)))  # and it clears its copy
        msg = await env.reply_and_wait(0, used)
    await env.reply(0)
    await env.print("worker: done")
    return 0
