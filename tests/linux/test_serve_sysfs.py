"""``/sys/class/l4/NAME/serve``: a shell switches a stub to serving without a program of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from l4sim.tools.boot import boot

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
pytestmark = pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed")
P = "l4sim.scenarios.programs.store"


def test_a_busybox_loop_serves_after_echo_1_into_sysfs(tmp_path: Path) -> None:
    """The attribute reads 0, then 1; the client end refuses (EPERM), junk is EINVAL, 0 while
    serving EBUSY, 1 again is fine; the shell answers a native client's three pings."""
    p = tmp_path / "s.py"
    p.write_text(f'''
svc, other = channel("svc"), channel("other")
linux("web", argv=["{BUSYBOX}", "sh", "-c", """
cat /sys/class/l4/svc/serve
echo 1 > /sys/class/l4/other/serve || echo "other: $?"
echo 2 > /sys/class/l4/svc/serve || echo "junk: $?"
echo 1 > /sys/class/l4/svc/serve && cat /sys/class/l4/svc/serve
echo 0 > /sys/class/l4/svc/serve || echo "off: $?"
echo 1 > /sys/class/l4/svc/serve && echo "again: ok"
exec 3<>/dev/l4/svc
i=0
while [ $i -lt 3 ] && read -r req <&3; do echo "pong ${{req#ping }}" >&3; i=$((i+1)); done
echo "served $i"
"""], caps={{"svc": svc.server(), "other": other}}, prio=20, memory="16M")
start("pinger", "{P}:pinger", caps={{"svc": svc}}, prio=15, args=(3,))
start("store", "{P}:store_server", caps={{"store": other.server()}}, prio=30, daemon=True)
''')
    out = boot(str(p)).kernel.machine.uart.text().splitlines()
    web = [ln.split("| ", 1)[1] for ln in out if ln.startswith("web     |")]
    assert web == ["0", "sh: write error: Operation not permitted", "other: 1",
                   "sh: write error: Invalid argument", "junk: 1", "1",
                   "sh: write error: Device or resource busy", "off: 1", "again: ok", "served 3"]
    pings = [ln.split("| ", 1)[1] for ln in out if ln.startswith("pinger  |")]
    assert pings == [f"pinger: ping {i} -> pong {i}" for i in (1, 2, 3)]
