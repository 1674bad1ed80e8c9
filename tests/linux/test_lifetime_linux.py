"""Data lifetime inside a Linux instance: the personality's pipe and file buffers, zero-on-free.

A native ``keeper`` marks a key and hands it to whoever calls its channel; busybox in an
instance fetches it through the stub ``/dev/l4/key``, sends it through a pipe into a file,
reads the file back and removes it.  The programs are defined here (``{__name__}:keeper``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from l4sim.kernel.abi import OPEN_WAIT, RECV, StrBuf, StrItem
from l4sim.kernel.traps import Ipc
from l4sim.tools.boot import boot
from l4sim.user.env import Env, Gate

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
pytestmark = pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed")
KEY = b"0123456789abcdef-the-instance-key"


async def keeper(env: Env) -> int:
    """Mark KEY in the heap; answer every call with it as a string item."""
    gate: Gate = env.cap("svc")
    await gate.bind(env.thread, 0x10)
    heap, _ = env.heap  # type: ignore[attr-defined]
    await env.mem.write(heap, KEY)
    await env.mem.write(heap + 4096, bytes(4096))  # the receive buffer, mapped
    await env.mark_secret(heap, len(KEY), "instance key")
    rcv = (StrBuf(heap + 4096, 4096),)
    await env.ipc(Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv))
    while True:
        await env.answer(0, (len(KEY),), (StrItem(heap, len(KEY)),), rcv=rcv)


SCRIPT = f'''
key = channel("key")
start("keeper", "{__name__}:keeper", caps={{"svc": key.server()}}, prio=30, daemon=True)
linux("lin", argv=["{BUSYBOX}", "sh", "-c", """
echo get > /dev/l4/key
cat /dev/l4/key | cat > /tmp/k
cat /tmp/k > /dev/null
rm /tmp/k
sleep 0.05
"""], caps={{"key": key}}, prio=20, memory="16M")
'''


def _report(tmp_path: Path, zero_on_free: bool) -> tuple[dict[str, Any], int]:
    p = tmp_path / "lt.py"
    p.write_text(SCRIPT)
    res = boot(str(p), zero_on_free=zero_on_free)
    k = res.kernel
    assert "lin     | " not in k.machine.uart.text(), "the shell printed no error"
    assert k.lifetime is not None
    (s,) = k.lifetime.report(k)
    return s, k.now()


def test_pipe_and_file_buffers_of_the_personality_are_followed(tmp_path: Path) -> None:
    """The key in the pipe's buffer (until the reader took it) and in /tmp/k (until it was
    removed), and in the frames the personality wrote for the guests."""
    s, _end = _report(tmp_path, False)
    buffers = {c["where"].split("+")[0]: c["ended"] for c in s["copies"] if c["place"] == "buffer"}
    pipes = [w for w in buffers if w.startswith("pipe buffer pipe:[")]
    assert len(pipes) == 1 and pipes[0].endswith(" of lin") and buffers[pipes[0]] == "read out of it"
    assert buffers["file /tmp/k of lin"] == "removed"
    guests = [c for c in s["copies"] if c["place"] == "frame" and "written in lin" in c["where"]]
    assert len(guests) >= 3, "the stub's answer, the pipe's reader, the file's reader"


def test_zero_on_free_clears_a_dead_process_s_frames(tmp_path: Path) -> None:
    """Without the policy the key the two cats read stays in their free frames to the end;
    with it the personality clears them when each cat ends, long before the instance does
    (the shell sleeps 50 ms after the last reader).  The stub's receive page is the
    personality's own and stays either way."""
    before, _ = _report(tmp_path, False)
    after, end = _report(tmp_path, True)

    def left(s: dict[str, Any]) -> list[str]:
        return [c["where"] for c in s["copies"] if c["place"] == "frame" and "written in lin" in c["where"]
                and c["to_ns"] is None]

    stub = left(before)[0]
    assert len(left(before)) == 3 and left(after) == [stub]
    early = [c for c in after["copies"] if "written in lin" in c["where"] and c["to_ns"] is not None
             and c["to_ns"] < end - 40_000_000 and c["ended"] == "overwritten"]
    assert len(early) == 2, "cleared when each process ended, not when the instance did"
