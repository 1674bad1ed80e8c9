"""Linux among L4 programs: hybrid programs' L4 calls and the /dev/l4 stub drivers.

``guest/l4tool.c`` is built with ``include/l4sim/l4.h`` (the package's header) and put with
busybox into an instance's root; a startup script starts the instance beside native servers
(``l4sim.scenarios.programs.store``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from l4sim.linux.instance import include_dir
from l4sim.tools.boot import boot

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
pytestmark = pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed")
P = "l4sim.scenarios.programs.store"
MS = 1_000_000


def test_the_header_ships_with_the_package() -> None:
    """``l4sim linux include`` prints the directory of <l4sim/l4.h>, which has the calls."""
    from click.testing import CliRunner

    from l4sim.cli import main

    r = CliRunner().invoke(main, ["linux", "include"])
    header = Path(r.output.strip()) / "l4sim" / "l4.h"
    assert r.exit_code == 0 and header == include_dir() / "l4sim" / "l4.h"
    text = header.read_text()
    for name in ("l4_ipc_call", "l4_ipc_wait", "l4_ipc_reply_and_wait", "int $0x30", "L4SIM_IOC_SERVE"):
        assert name in text


def _root(tmp_path: Path, build: Callable[..., Path] | None) -> Path:
    """An instance's root: busybox, and l4tool twice -- at /l4tool (allowed L4 calls) and at
    /l4deny (not)."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    if build is not None:
        tool = build("l4tool", f"-I{include_dir()}")
        shutil.copy(tool, root / "l4tool")
        shutil.copy(tool, root / "l4deny")
    return root


def _boot(tmp_path: Path, text: str, **kw: object) -> list[str]:
    p = tmp_path / "system.py"
    p.write_text(text)
    res = boot(str(p), **kw)  # type: ignore[arg-type]
    return res.kernel.machine.uart.text().splitlines()


def _lines(out: list[str], tag: str) -> list[str]:
    return [ln.split("| ", 1)[1] for ln in out if ln.startswith(f"{tag:<8}|")]


def test_hybrid_programs_call_l4_servers_with_their_own_capabilities(tmp_path: Path,
                                                                     build: Callable[..., Path]) -> None:
    """An allowed process binds the store into its L4 table and calls it (and the same through
    the stub's ioctl); a capability it was not given gets the kernel's ENOT_EXISTENT (4), the
    personality's own gates too; a process the configuration does not allow gets EPERM for
    binding and dies of SIGSYS for an L4 call (status 159); and a hybrid server answers a
    native client through l4_ipc_wait and l4_ipc_reply_and_wait."""
    root = _root(tmp_path, build)
    out = _boot(tmp_path, f'''
store = channel("store")
svc = channel("svc")
start("store", "{P}:store_server", caps={{"store": store.server()}}, prio=30, daemon=True)
linux("h", root="{root}", argv=["/bin/busybox", "sh", "-c", """
echo 'put k v1' > /dev/l4/store
echo 'put k2 value2' > /dev/l4/store
/l4tool call store 1
/l4tool ioctl store 1
/l4tool raw 0x40001000
/l4tool raw 0x8000
/l4deny call store 1; echo "bind: $?"
/l4deny raw 0x40000000; echo "status $?"
/l4tool echo svc 2
"""], caps={{"store": store, "svc": svc.server()}}, prio=20, memory="16M", l4_allow=["/l4tool"])
start("client", "{P}:word_client", caps={{"svc": svc}}, prio=15, args=(2,))
''')
    assert _lines(out, "h") == [
        "answer: label 0, words 2 8",
        "answer: label 0, words 2 8",
        "error 4, tag 0x8000",
        "error 4, tag 0x8000",
        "bind store: Operation not permitted",
        "bind: 1",
        "Bad system call",
        "status 159",
        "echo: serving svc",
        "echo: label 7 from 0x21, 2 words",
        "echo: label 7 from 0x21, 2 words",
    ]
    assert _lines(out, "client") == ["word-client: (1, 10) -> (2, 11) (label 0, error 0)",
                                     "word-client: (2, 20) -> (3, 21) (label 0, error 0)"]


def test_a_process_in_an_l4_call_waits_uninterruptibly_and_kill_9_ends_it(
        tmp_path: Path, build: Callable[..., Path]) -> None:
    """A hybrid thread in an open wait nobody answers is in D (/proc/PID/stat); SIGTERM ends it
    like SIGKILL (it has no handler): the wait for the kernel ends with the process."""
    root = _root(tmp_path, build)
    out = _boot(tmp_path, f'''
svc = channel("svc")
linux("h", root="{root}", argv=["/bin/busybox", "sh", "-c", """
/l4tool echo svc 1 & sleep 0.01
cut -d' ' -f3 /proc/$!/stat
kill -9 $!; wait $!; echo "status $?"
/l4tool echo svc 1 & sleep 0.01
kill $!; wait $!; echo "status $?"
"""], caps={{"svc": svc.server()}}, prio=20, memory="16M", l4_allow=["/l4tool"])
''')
    assert _lines(out, "h") == ["echo: serving svc", "D", "status 137", "echo: serving svc", "status 143"]


def test_busybox_sh_serves_a_native_client(tmp_path: Path, build: Callable[..., Path]) -> None:
    """After ioctl(SERVE) the stub of a channel's server end takes its clients' calls: a
    busybox loop reads each request (polling with read -t) and answers it with a write."""
    root = _root(tmp_path, build)
    out = _boot(tmp_path, f'''
svc = channel("svc")
linux("web", root="{root}", argv=["/bin/busybox", "sh", "-c", """
/l4tool serve svc || exit 1
exec 3<>/dev/l4/svc
i=0
while [ $i -lt 3 ] && read -t 5 -r req <&3; do echo "pong ${{req#ping }}" >&3; i=$((i+1)); done
echo "served $i"
"""], caps={{"svc": svc.server()}}, prio=20, memory="16M")
start("pinger", "{P}:pinger", caps={{"svc": svc}}, prio=15, args=(3,))
''')
    assert _lines(out, "pinger") == [f"pinger: ping {i} -> pong {i}" for i in (1, 2, 3)]
    assert _lines(out, "web") == ["served 3"]


def test_stub_writes_reads_errors_and_poll(tmp_path: Path) -> None:
    """A write is a call carrying the bytes; a read takes the answer (then end of file); the
    server's -ENOENT comes back as write's errno; poll says when an answer is there; a device
    serves only with the server's end (EPERM), and there is none for a capability the
    instance was not given (ENOENT)."""
    root = _root(tmp_path, None)
    out = _boot(tmp_path, f'''
store = channel("store")
start("store", "{P}:store_server", caps={{"store": store.server()}}, prio=30, daemon=True)
linux("c", root="{root}", argv=["/bin/busybox", "sh", "-c", """
echo 'put colour blue' > /dev/l4/store && cat /dev/l4/store && cat /dev/l4/store && echo EOF
echo 'get shape' > /dev/l4/store || echo "write failed: $?"
echo 'nonsense' > /dev/l4/store
exec 3<>/dev/l4/store
echo 'get colour' >&3
read -t 1 -r v <&3 && echo "polled: $v"
ls /dev/l4
cat /dev/l4/other
"""], caps={{"store": store}}, prio=20, memory="16M")
''')
    assert _lines(out, "c") == [
        "ok",
        "EOF",
        "sh: write error: No such file or directory",
        "write failed: 1",
        "sh: write error: Invalid argument",
        "polled: blue",
        "store",
        "cat: can't open '/dev/l4/other': No such file or directory",
    ]
