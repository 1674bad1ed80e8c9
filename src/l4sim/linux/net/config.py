"""A Linux instance's network configuration, as its startup script gives it (host side).

``linux(NAME, ..., net={"eth0": {"port": sw, "addr": "10.0.0.2/24", "gw": "10.0.0.1"}},
hosts={"web": "10.0.0.3"})`` (docs/runtime.md §4.9): each interface has

- ``port``: the channel of a switch port or a ``nic`` server (ned makes it a capability of
  the instance; the stub driver opens a session on it),
- ``addr``: one address with its prefix, or a list (IPv4 and IPv6: ``"fd00::2/64"``),
- optionally ``gw`` (a default gateway, IPv4 or IPv6, or a list of both), ``mtu`` (68 ..
  1500), and ``esp``: an ESP tunnel to a gateway -- ``{"peer": "198.51.100.1", "remote":
  "10.1.0.0/24", "spi_out": 0x100, "key_out": "<40 hex digits>", "spi_in": 0x200, "key_in":
  "..."}``: what goes to ``remote`` is sealed for ``peer``, what comes from ``remote`` must
  come through it.

``hosts`` names other machines for ``/etc/hosts``.  :func:`parse` checks all of it (one
line naming the problem and the fix) and makes the :class:`NetConfig` the personality gets
(``Config.net``); :func:`etc_hosts` writes ``/etc/hosts`` into the instance's tree: made when
the root has none (localhost, the instance's own name and addresses, the script's names),
else those lines appended to the root's own.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from l4sim.drivers.esp import parse_key
from l4sim.linux.vfs import Dir, File, Vfs

_IFNAME = re.compile(r"[a-z][a-z0-9]{0,14}")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?")
_ESP_KEYS = ("peer", "remote", "spi_out", "key_out", "spi_in", "key_in")


@dataclass(frozen=True)
class EspSpec:
    peer: str
    remote: str
    spi_out: int
    key_out: bytes
    spi_in: int
    key_in: bytes


@dataclass(frozen=True)
class IfaceSpec:
    """One interface: its name, the capability of its port, addresses, gateways, MTU, tunnel."""

    name: str
    cap: str
    addrs: tuple[str, ...]
    gw4: str | None = None
    gw6: str | None = None
    mtu: int = 1500
    esp: EspSpec | None = None


@dataclass(frozen=True)
class NetConfig:
    ifaces: tuple[IfaceSpec, ...]
    hosts: tuple[tuple[str, str], ...] = ()


def cap_name(ifname: str) -> str:
    """The capability name of interface ``ifname``'s port in the instance."""
    return f"net_{ifname}"


def parse(what: str, net: dict[str, Any], hosts: dict[str, Any] | None) -> NetConfig:
    """The configuration of ``net`` (its ports already replaced by their capability names,
    ``port`` -> ``cap``) and ``hosts``; ValueError with one line naming the problem."""
    ifaces = []
    for ifname, spec in net.items():
        if not isinstance(ifname, str) or not _IFNAME.fullmatch(ifname) or ifname == "lo":
            raise ValueError(f"net of {what}: interface name {ifname!r}: use a short lower-case name like 'eth0' "
                             f"(not 'lo': every instance has it)")
        where = f"net of {what}, interface {ifname!r}"
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: give a dict, e.g. {{'port': sw, 'addr': '10.0.0.2/24'}}")
        unknown = sorted(set(spec) - {"cap", "addr", "gw", "mtu", "esp"})
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r}: the keys are port, addr, gw, mtu, esp")
        addrs = spec.get("addr")
        addrs = [addrs] if isinstance(addrs, str) else addrs
        if not isinstance(addrs, list | tuple) or not addrs:
            raise ValueError(f"{where}: addr: give an address with its prefix, e.g. '10.0.0.2/24', or a list")
        norm = []
        for a in addrs:
            try:
                iface = ipaddress.ip_interface(a)
            except ValueError:
                raise ValueError(f"{where}: addr {a!r} is no address with a prefix: write e.g. '10.0.0.2/24' "
                                 f"or 'fd00::2/64'") from None
            if "/" not in str(a):
                raise ValueError(f"{where}: addr {a!r} needs its prefix length, e.g. '{a}/24'")
            if iface.ip.is_loopback or iface.ip.is_multicast or iface.ip.is_unspecified:
                raise ValueError(f"{where}: addr {a!r} cannot be an interface's address (loopback, multicast "
                                 f"or unspecified)")
            norm.append(str(iface))
        gws = spec.get("gw")
        gws = [] if gws is None else [gws] if isinstance(gws, str) else gws
        gw4 = gw6 = None
        for g in gws if isinstance(gws, list | tuple) else [gws]:
            try:
                ip = ipaddress.ip_address(g)
            except ValueError:
                raise ValueError(f"{where}: gw {g!r} is no address: give the gateway's address, e.g. "
                                 f"'10.0.0.1'") from None
            nets = [ipaddress.ip_interface(a).network for a in norm]
            if not any(ip in n for n in nets):
                raise ValueError(f"{where}: gw {g} is not on the interface's networks "
                                 f"({', '.join(str(n) for n in nets)}): a gateway must be a neighbour")
            if ip.version == 4:
                gw4 = str(ip)
            else:
                gw6 = str(ip)
        mtu = spec.get("mtu", 1500)
        if type(mtu) is not int or not 68 <= mtu <= 1500:
            raise ValueError(f"{where}: mtu {mtu!r}: give bytes, 68 .. 1500")
        esp = _esp(where, spec.get("esp"), norm)
        ifaces.append(IfaceSpec(ifname, str(spec["cap"]), tuple(norm), gw4, gw6, mtu, esp))
    pairs: list[tuple[str, str]] = []
    if hosts is not None and not isinstance(hosts, dict):
        raise ValueError(f"hosts of {what} must be a dict {{name: address}}, not {type(hosts).__name__}")
    for name, addr in (hosts or {}).items():
        if not isinstance(name, str) or not _HOST.fullmatch(name):
            raise ValueError(f"hosts of {what}: {name!r} is no host name: letters, digits, '-' and '.'")
        for a in [addr] if isinstance(addr, str) else addr if isinstance(addr, list | tuple) else [addr]:
            try:
                pairs.append((name, str(ipaddress.ip_address(a))))
            except ValueError:
                raise ValueError(f"hosts of {what}: {name}: {a!r} is no address: give e.g. '10.0.0.3'") from None
    return NetConfig(tuple(ifaces), tuple(pairs))


def _esp(where: str, e: Any, addrs: list[str]) -> EspSpec | None:
    if e is None:
        return None
    if not isinstance(e, dict) or sorted(e) != sorted(_ESP_KEYS):
        raise ValueError(f"{where}: esp must be a dict with exactly {', '.join(_ESP_KEYS)}")
    try:
        peer = ipaddress.ip_address(e["peer"])
        remote = ipaddress.ip_network(e["remote"])
    except (ValueError, TypeError):
        raise ValueError(f"{where}: esp: peer is the gateway's address and remote the network behind it, "
                         f"e.g. '10.1.0.0/24'") from None
    if not any(ipaddress.ip_interface(a).version == peer.version for a in addrs):
        raise ValueError(f"{where}: esp peer {peer} has no address of its family on the interface")
    for k in ("spi_out", "spi_in"):
        if type(e[k]) is not int or not 256 <= e[k] < 1 << 32:
            raise ValueError(f"{where}: esp {k} {e[k]!r}: an SPI is a number 256 .. 2^32-1")
    keys = []
    for k in ("key_out", "key_in"):
        try:
            keys.append(parse_key(e[k] if isinstance(e[k], str) else repr(e[k])))
        except ValueError as err:
            raise ValueError(f"{where}: esp {k}: {err}") from None
    return EspSpec(str(peer), str(remote), e["spi_out"], keys[0], e["spi_in"], keys[1])


def etc_hosts(tree: Dir, name: str | None, cfg: NetConfig | None) -> None:
    """Write ``/etc/hosts`` into ``tree`` (see the module); without interfaces (``cfg``
    None) only a root without the file gets one, naming ``localhost`` (what musl's and
    glibc's resolvers read before they would ask a name server the instance cannot reach)."""
    lines = []
    for spec in cfg.ifaces if cfg is not None else ():
        for a in spec.addrs:
            lines.append(f"{ipaddress.ip_interface(a).ip}\t{name}")
    lines += [f"{addr}\t{host}" for host, addr in (cfg.hosts if cfg is not None else ())]
    node, _err, _ = Vfs(tree).walk(tree, "/etc/hosts", None)
    if isinstance(node, File):
        if not lines:
            return
        old = bytes(node.data)
        text = old + (b"" if not old or old.endswith(b"\n") else b"\n") + "".join(f"{ln}\n" for ln in lines).encode()
    elif node is not None:
        return  # something else by that name: the root's own business
    else:
        head = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        text = "".join(f"{ln}\n" for ln in head + lines).encode()
    Vfs.put(tree, "/etc/hosts", File(text, 0o644))
