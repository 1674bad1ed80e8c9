"""Programs of the secure-storage scenario: clients of the storage server, and an intruder.

Each client behaves by what the storage holds, never by the boot it is in
(its arguments are part of the measured configuration, and the same
configuration must boot every time): a file it does not find it writes, a
file it finds it reads and compares with what it wrote.  Each prints one
line per file: ``NAME: ok ...``, ``NAME: refused (-ERRNO)``, or
``NAME: WRONG DATA`` -- the line that must never appear, since it would
mean the storage served forged bytes.
"""

from __future__ import annotations

from l4sim.kernel.abi import CALL, MSG_WORDS, pack_bytes
from l4sim.kernel.traps import Ipc
from l4sim.security.storage import OPEN, STORAGE_PROTO, StorageClient, StorageError
from l4sim.user.env import Env


async def owner(env: Env, name: str, *versions: str) -> int:
    """Keep one file: write ``versions`` in turn (one commit each) when it is not there yet,
    then read it back; when it is there, read it.  Either way it must hold the last version."""
    st = StorageClient(env.cap("storage"))
    want = versions[-1].encode()
    try:
        if name not in await st.names():
            for text in versions:
                fd = await st.open(name, create=True)
                await st.write(fd, text.encode())
                await st.close(fd)
        fd = await st.open(name)
        got = await st.read(fd)
        version = await st.close(fd)
    except StorageError as e:
        await env.print(f"{name}: refused (-{e.err})")
        return 0
    await env.print(f"{name}: ok (version {version}, {len(got)} bytes)" if got == want else f"{name}: WRONG DATA")
    return 0


async def diarist(env: Env, name: str, *entries: str) -> int:
    """Keep a diary of ``entries``: each boot that finds fewer lines than entries adds the next one.

    So the first boots change the storage (and the TPM's counter) and the
    later ones only read it: a snapshot of the store taken before the last
    change is an old state the counter catches.
    """
    st = StorageClient(env.cap("storage"))
    try:
        fd = await st.open(name, create=True)
        got = (await st.read(fd)).decode()
        lines = got.splitlines()
        if lines != list(entries[: len(lines)]):
            await st.close(fd)
            await env.print(f"{name}: WRONG DATA")
            return 0
        if len(lines) < len(entries):
            await st.write(fd, (entries[len(lines)] + "\n").encode(), len(got.encode()))
            lines.append(entries[len(lines)])
        version = await st.close(fd)
    except StorageError as e:
        await env.print(f"{name}: refused (-{e.err})")
        return 0
    await env.print(f"{name}: ok (version {version}, {len(lines)} entries)")
    return 0


#: slots an intruder tries (its own main thread, slot 3, it leaves alone: that is itself)
PROBE_SLOTS = [s for s in range(32) if s != 3]


async def intruder(env: Env) -> int:
    """A program without the storage capability tries to reach the storage server anyway.

    It holds no channel to it, so it tries every slot of its own capability
    space with a storage request (OPEN of a file name): an empty slot is
    refused by the kernel, and what it does hold (its own task, log, region
    manager, parent, scheduler) answers as those objects do -- never with a
    file descriptor.
    """
    name = b"notes"
    answered = empty = 0
    got_fd = []
    for slot in PROBE_SLOTS:
        msg = await env.ipc(Ipc(slot, CALL, STORAGE_PROTO, (OPEN, 0, *pack_bytes(name))[:MSG_WORDS],
                                timeout=100_000, rcv_timeout=100_000))
        if msg.error:
            empty += 1
        elif msg.proto == 0 and msg.words and env.has("storage"):
            got_fd.append(slot)
        else:
            answered += 1
    reached = "yes" if got_fd or env.has("storage") else "no"
    await env.print(f"reached the storage server: {reached} ({len(PROBE_SLOTS)} slots tried: {empty} refused "
                    f"by the kernel, {answered} answered by other objects)")
    return 0
