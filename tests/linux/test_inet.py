"""Network sockets of the Linux personality: the same program natively and under l4sim over
loopback, busybox's network tools between two instances on a switch, the script's ``net=``."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("unicorn")

from l4sim.linux.net import wire as w
from l4sim.linux.net.config import NetConfig, etc_hosts, parse
from l4sim.linux.net.tcp import State, Tcb
from l4sim.linux.run import run
from l4sim.linux.state import DEFAULT_ENV
from l4sim.linux.vfs import File, Vfs
from l4sim.runtime.ned import ScriptError, load_script
from l4sim.tools.boot import boot

Build = Callable[..., Path]
BUSYBOX = shutil.which("busybox") or ("/bin/busybox" if Path("/bin/busybox").is_file() else None)
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed")


# --------------------------------------------------------------------------- loopback, against Linux
def test_inet_program_prints_the_same_as_on_linux(build: Build) -> None:
    """guest/inet.c over loopback (TCP over IPv4 and IPv6, dual stack, poll/select/epoll,
    non-blocking connect and accept, SO_REUSEADDR, SO_RCVBUF, SO_RCVTIMEO, UDP, getaddrinfo
    of localhost) prints the same natively and under l4sim."""
    exe = build("inet")
    env = dict(e.split("=", 1) for e in DEFAULT_ENV)
    r = subprocess.run([str(exe)], capture_output=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    res = run(exe, [], out=lambda fd, b: out[fd].extend(b))
    if (bytes(out[1]), res.status) != (r.stdout, r.returncode):
        diff = "\n".join(difflib.unified_diff(r.stdout.decode(errors="replace").splitlines(),
                                               out[1].decode(errors="replace").splitlines(),
                                               "native", "l4sim", lineterm=""))
        pytest.fail(f"status native {r.returncode}, l4sim {res.status}\n{diff}\n{out[2].decode(errors='replace')}")
    assert b"getaddrinfo localhost: 127.0.0.1" in r.stdout


@needs_busybox
def test_busybox_httpd_and_wget_over_loopback() -> None:
    """busybox httpd serves a 32 KiB file and wget on the same instance gets it whole."""
    out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    script = ("mkdir -p /www; dd if=/dev/urandom of=/www/a.bin bs=1024 count=32 2>/dev/null; httpd -p 8080 -h /www; "
              "wget -q -O /tmp/b http://localhost:8080/a.bin && cmp /www/a.bin /tmp/b && echo SAME")
    assert BUSYBOX is not None
    res = run(BUSYBOX, ["sh", "-c", script], out=lambda fd, b: out[fd].extend(b))
    assert res.status == 0 and out[1] == b"SAME\n", out[2].decode(errors="replace")


# --------------------------------------------------------------------------- two instances on a switch
PAIR = '''
BUSYBOX = {busybox!r}
sw = channel("sw")
start("switch", "l4sim.drivers.switch:main", caps={{"svc": sw.server(), "factory": factory()}}, prio=50, daemon=True)
A = """
mkdir -p /www; echo hello-from-a > /www/a.txt
httpd -p 80 -h /www
nc -l -p 5000 > /tmp/got && echo "a: nc got: $(cat /tmp/got)"
nc -l -p 5001 -e cat
"""
B = """
ifconfig eth0 | grep -E 'HWaddr|inet addr'
ip addr show dev eth0 | grep inet
awk '$2 == "a"' /etc/hosts
ping -c 2 a | grep -E 'bytes from|packet loss'
ping6 -c 1 fd00::1 | grep 'bytes from'
ping -c 1 -W 1 10.0.0.9 | grep 'packet loss'
until wget -q -O /tmp/x http://a/a.txt; do sleep 0.05; done
echo "b: wget got: $(cat /tmp/x)"
until echo over-tcp | nc a 5000; do sleep 0.05; done
sleep 0.1
echo echoed | nc -w 1 a 5001
netstat -tn | grep -c TIME_WAIT
"""
linux("a", argv=[BUSYBOX, "sh", "-c", A], memory="16M", daemon=True,
      net={{"eth0": {{"port": sw, "addr": ["10.0.0.1/24", "fd00::1/64"]}}}})
linux("b", argv=[BUSYBOX, "sh", "-c", B], memory="16M", hosts={{"a": ["10.0.0.1", "fd00::1"]}},
      net={{"eth0": {{"port": sw, "addr": ["10.0.0.2/24", "fd00::2/64"]}}}}, cpus=[1] if CORES > 1 else [0])
'''


@needs_busybox
def test_busybox_network_tools_between_two_instances(tmp_path: Path) -> None:
    """On a switch: ifconfig and ip show eth0 with the script's addresses, /etc/hosts names the
    other instance, ping and ping6 get answers (an absent host none), wget fetches from httpd,
    nc carries a line one way and through ``nc -e cat`` back, and netstat (/proc/net/tcp) shows the
    closed connections in TIME_WAIT."""
    script = tmp_path / "pair.py"
    script.write_text(PAIR.format(busybox=BUSYBOX))
    res = boot(str(script), until=60_000_000_000)
    text = res.kernel.machine.uart.text()
    lines = [ln.split("| ", 1)[1] for ln in text.splitlines() if ln.startswith(("a ", "b "))]
    assert "eth0      Link encap:Ethernet  HWaddr 02:00:00:00:00:01  " in lines
    assert "          inet addr:10.0.0.2  Bcast:10.0.0.255  Mask:255.255.255.0" in lines
    assert any("inet 10.0.0.2/24" in ln for ln in lines) and any("inet6 fd00::2/64" in ln for ln in lines)
    assert "10.0.0.1\ta" in lines and "fd00::1\ta" in lines
    assert sum("bytes from 10.0.0.1: seq=" in ln for ln in lines) == 2
    assert "2 packets transmitted, 2 packets received, 0% packet loss" in lines
    assert any(ln.startswith("64 bytes from fd00::1: seq=0 ttl=64") for ln in lines)
    assert "1 packets transmitted, 0 packets received, 100% packet loss" in lines
    assert "b: wget got: hello-from-a" in lines
    assert "a: nc got: over-tcp" in lines and "echoed" in lines
    assert lines[-1] == "2"  # the two nc connections b closed first
    assert [(r["name"], r["status"]) for r in res.summary()["linux"]][1] == ("b", 0)


@needs_busybox
def test_two_instances_trace_the_same_twice(tmp_path: Path) -> None:
    """Deterministic: the network between two instances traces the same records twice."""
    script = tmp_path / "pair.py"
    script.write_text(PAIR.format(busybox=BUSYBOX))
    a = boot(str(script), until=60_000_000_000, trace=True)
    b = boot(str(script), until=60_000_000_000, trace=True)
    assert a.tracer is not None and b.tracer is not None
    assert a.tracer.records == b.tracer.records


# --------------------------------------------------------------------------- the script's net= and hosts=
def _script(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "s.py"
    p.write_text(f'sw = channel("sw")\nstart("switch", "l4sim.drivers.switch:main", caps={{"svc": sw.server(), '
                 f'"factory": factory()}})\n{body}\n')
    return p


@needs_busybox
@pytest.mark.parametrize(("net", "hosts", "says"), [
    ("None", '{"a": "10.0.0.1"}', "give the instance net=... too"),
    ('{"eth0": {"addr": "10.0.0.2/24"}}', "None", "give a dict with the port"),
    ('{"eth0": {"port": sw.server(), "addr": "10.0.0.2/24"}}', "None", "port must be a channel(...)"),
    ('{"eth0": {"port": sw, "addr": "10.0.0.2"}}', "None", "needs its prefix length"),
    ('{"eth0": {"port": sw, "addr": "10.0.0.2/24", "gw": "10.9.0.1"}}', "None", "a gateway must be a neighbour"),
    ('{"lo": {"port": sw, "addr": "10.0.0.2/24"}}', "None", "interface name 'lo'"),
    ('{"eth0": {"port": sw, "addr": "10.0.0.2/24", "speed": 1}}', "None", "unknown key 'speed'"),
    ('{"eth0": {"port": sw, "addr": "10.0.0.2/24"}}', '{"a": "ten"}', "'ten' is no address"),
])
def test_bad_network_configuration_is_one_line(tmp_path: Path, net: str, hosts: str, says: str) -> None:
    """Each mistake in net= or hosts= is one line naming it and the fix."""
    p = _script(tmp_path, f'linux("b", argv=[{BUSYBOX!r}, "true"], net={net}, hosts={hosts})')
    with pytest.raises(ScriptError) as e:
        load_script(p, 2)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_etc_hosts_names_localhost_the_instance_and_the_script_hosts() -> None:
    """A root without /etc/hosts gets one (localhost, the instance's addresses, the hosts);
    a root with one keeps its lines and gets the instance's appended."""
    cfg = parse("linux 'b'", {"eth0": {"cap": "net_eth0", "addr": ["10.0.0.2/24", "fd00::2/64"]}},
                {"web": "10.0.0.3"})
    tree = Vfs.empty()
    etc_hosts(tree, "b", cfg)
    node, _e, _ = Vfs(tree).walk(tree, "/etc/hosts", None)
    assert isinstance(node, File)
    assert bytes(node.data).decode().splitlines() == [
        "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "10.0.0.2\tb", "fd00::2\tb",
        "10.0.0.3\tweb"]
    own = Vfs.empty()
    Vfs.put(own, "/etc/hosts", File(b"192.0.2.1 mine", 0o644))
    etc_hosts(own, "b", NetConfig((), (("web", "10.0.0.3"),)))
    node, _e, _ = Vfs(own).walk(own, "/etc/hosts", None)
    assert isinstance(node, File) and bytes(node.data) == b"192.0.2.1 mine\n10.0.0.3\tweb\n"


# --------------------------------------------------------------------------- TCP's state machine
def _pump(a: Tcb, b: Tcb, now: int, lose: Callable[[w.Seg], bool] = lambda s: False) -> None:
    """Carry segments between ``a`` and ``b`` until neither has any (``lose`` drops some)."""
    for _ in range(1000):
        if not a.out and not b.out:
            return
        for src, dst in ((a, b), (b, a)):
            segs, src.out = src.out, []
            for s in segs:
                if not lose(s):
                    dst.input(s, now)


def _pair() -> tuple[Tcb, Tcb]:
    a = Tcb((b"\x0a\0\0\x01", 1000), (b"\x0a\0\0\x02", 80), 100, 1460, 131072, 16384)
    b = Tcb((b"\x0a\0\0\x02", 80), (b"\x0a\0\0\x01", 1000), 5000, 1460, 131072, 16384)
    a.connect(0)
    syn = a.out.pop()
    b.accept_syn(syn, 0)
    _pump(a, b, 1)
    return a, b


def test_tcp_handshake_transfer_and_close() -> None:
    """Three-way handshake, data both ways in order, FIN from each side: the active closer
    ends in TIME_WAIT, the other CLOSED."""
    a, b = _pair()
    assert a.state is State.ESTABLISHED and b.state is State.ESTABLISHED
    data = bytes(range(256)) * 60
    assert a.send(data, 2) == len(data)  # (the send buffer takes 16 KiB)
    _pump(a, b, 3)
    assert b.recv(1 << 20) == data
    assert b.send(b"back", 3) == 4
    _pump(a, b, 3)
    assert a.recv(100) == b"back"
    a.shutdown(4)
    _pump(a, b, 5)
    b.shutdown(6)
    _pump(a, b, 7)
    assert a.state is State.TIME_WAIT and b.state is State.CLOSED


def test_tcp_retransmits_a_lost_segment_after_the_rto() -> None:
    """A lost data segment is sent again when the retransmission timer expires (1 s before a
    sample, at least 200 ms after), and the receiver gets the bytes in order."""
    a, b = _pair()
    lost: list[int] = []

    def lose_first(s: w.Seg) -> bool:
        if s.data and not lost:
            lost.append(s.seq)
            return True
        return False

    a.send(b"x" * 1000, 10)
    _pump(a, b, 10, lose_first)
    assert lost and b.recv(4096) == b""
    at = a.deadline()
    assert at is not None and at >= 10 + 200_000_000
    a.tick(at)
    _pump(a, b, at)
    assert b.recv(4096) == b"x" * 1000 and a.retransmits == 1


@needs_busybox
def test_bench_tcp_measures_both_clocks(tmp_path: Path) -> None:
    """``bench net``'s TCP figure: wget of a file between two instances on the switch, the
    simulated rate deterministic (the same twice), the wall-clock rate positive."""
    from l4sim.tools.bench_net import bench_tcp

    a, b = bench_tcp(1, tmp_path), bench_tcp(1, tmp_path)
    assert a["tcp_mbytes_per_s_simulated"] == b["tcp_mbytes_per_s_simulated"] > 1
    assert a["tcp_mbytes_per_s_wall"] > 0
