"""The programs of the ``linux-pair`` scenario: a record store, and a native client of a
Linux process that serves.

The store is a native server between two Linux instances: each instance reaches it through
its stub ``/dev/l4/store`` (linux/l4.py), whose write sends the bytes as a string item and
whose read returns the answer's string.  The protocol is text:

============================  =======================================  =================
request                       answer                                   error
============================  =======================================  =================
``put KEY VALUE...``          ``ok``                                   --
``get KEY``                   ``VALUE...``                             ``-ENOENT``
anything else                 --                                       ``-EINVAL``
============================  =======================================  =================

each followed by a newline; a request's trailing newline is ignored.  A call without a
string is a question in words: label :data:`STAT` answers (records, bytes of their values),
any other label ``-EINVAL`` -- what a hybrid program's L4 call (``include/l4sim/l4.h``, words
only) can ask.  Every request gets an answer (a caller that cannot take the answer's string
too), and the server goes on serving.
"""

from __future__ import annotations

from l4sim.kernel.abi import CALL, OPEN_WAIT, RECV, REPLY, Err, StrBuf, StrItem
from l4sim.kernel.traps import Ipc, Msg
from l4sim.user.env import Env, Gate
from l4sim.user.server import request_failed

#: the label the store binds its channel with
STORE_LABEL = 0x10
#: the longest request or answer
MAX_BYTES = 4096
#: the label of the word question "how many records, how many bytes"
STAT = 1


def answer(records: dict[str, str], text: str) -> tuple[int, bytes]:
    """(label, answer bytes) of one request."""
    parts = text.rstrip("\n").split(" ", 2)
    if len(parts) == 3 and parts[0] == "put" and parts[1]:
        records[parts[1]] = parts[2]
        return 0, b"ok\n"
    if len(parts) == 2 and parts[0] == "get":
        value = records.get(parts[1])
        if value is None:
            return -int(Err.ENOENT), b""
        return 0, value.encode() + b"\n"
    return -int(Err.EINVAL), b""


async def store_server(env: Env) -> int:
    """The store: requests arrive in the first heap page, answers leave from the second (both
    touched before the first request: a string copy resolves no page fault)."""
    store: Gate = env.cap("store")
    await store.bind(env.thread, STORE_LABEL)
    base, _size = env.heap  # type: ignore[attr-defined]
    inbox, outbox = base, base + MAX_BYTES
    await env.mem.write(base, bytes(2 * MAX_BYTES))
    records: dict[str, str] = {}
    rcv = (StrBuf(inbox, MAX_BYTES),)
    msg = await env.ipc(Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv))
    while True:
        if msg.error or msg.label & ~3 != STORE_LABEL:
            msg = await env.ipc(Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv))
            continue
        try:
            got = [b for b in msg.items if isinstance(b, StrBuf)]
            if got:
                text = (await env.mem.read(inbox, got[0].length)).decode("utf-8", "replace")
                label, data = answer(records, text)
            elif msg.proto == STAT:  # a question in words: the answer too
                msg = await env.ipc(Ipc(0, REPLY | RECV | OPEN_WAIT, 0,
                                        (len(records), sum(len(v) for v in records.values())), (),
                                        None, None, rcv))
                continue
            else:
                label, data = -int(Err.EINVAL), b""
        except Exception as exc:  # the last line: answer, keep serving
            label, data = await request_failed(env, "store", msg, exc), b""
        if data:
            await env.mem.write(outbox, data)
        msg = await _reply_and_wait(env, label, data, outbox, rcv)


async def _reply_and_wait(env: Env, label: int, data: bytes, at: int, rcv: tuple[StrBuf, ...]) -> Msg:
    items = (StrItem(at, len(data)),) if data else ()
    return await env.ipc(Ipc(0, REPLY | RECV | OPEN_WAIT, label, (len(data),), items, None, None, rcv))


async def pinger(env: Env, count: int) -> int:
    """A native client of a Linux process serving ``svc`` (``ioctl(L4SIM_IOC_SERVE)``): sends
    ``ping N`` lines, prints the answers; retries while nobody serves the channel yet."""
    svc: Gate = env.cap("svc")
    base, _size = env.heap  # type: ignore[attr-defined]
    await env.mem.write(base, bytes(2 * MAX_BYTES))
    for i in range(1, count + 1):
        line = f"ping {i}\n".encode()
        await env.mem.write(base, line)
        while True:
            r = await env.ipc(Ipc(svc.slot, CALL, 0, (len(line),), (StrItem(base, len(line)),),
                                  rcv=(StrBuf(base + MAX_BYTES, MAX_BYTES),)))
            if r.error != 4:  # ENOT_EXISTENT: the gate is not bound yet
                break
            await env.receive(env.thread, timeout=1_000_000)  # sleep 1 ms
        got = [b for b in r.items if isinstance(b, StrBuf)]
        text = (await env.mem.read(base + MAX_BYTES, got[0].length)).decode() if got and got[0].length else ""
        await env.print(f"pinger: {line.decode().strip()} -> {text.strip() or f'error {r.error} {r.proto}'}")
    return 0


async def word_client(env: Env, count: int) -> int:
    """A native client that asks in words: ``count`` calls of label 7 with (i, 10 i) through
    ``svc``, each answer printed; retries while nobody serves the channel yet."""
    svc: Gate = env.cap("svc")
    for i in range(1, count + 1):
        while True:
            r = await svc.call(7, i, 10 * i)
            if r.error != 4:  # ENOT_EXISTENT: the gate is not bound yet
                break
            await env.receive(env.thread, timeout=1_000_000)  # sleep 1 ms
        await env.print(f"word-client: ({i}, {10 * i}) -> {r.words} (label {r.proto}, error {r.error})")
    return 0
