"""ESP security associations and the VPN gateway's packet logic (no system running)."""

from __future__ import annotations

import struct

import pytest

from l4sim.drivers.esp import REPLAY_WINDOW, Inbound, Outbound, parse_key
from l4sim.drivers.vpn import Config, Gateway
from l4sim.linux.net.wire import ip4

KEY = bytes(range(20))


def test_a_sealed_packet_opens_once_and_hides_its_plaintext() -> None:
    """Sealed, the inner packet is not in the ESP payload; opened, it comes back whole; the
    same packet again is a replay."""
    out, inb = Outbound(0x100, KEY), Inbound(0x100, KEY)
    inner = b"E" + b"secret marker" * 10
    esp = out.seal(inner, 4)
    assert b"secret marker" not in esp
    assert inb.open(esp) == ("ok", inner, 4)
    assert inb.open(esp)[0] == "replayed"
    assert inb.counts == {"ok": 1, "replayed": 1, "corrupt": 0, "malformed": 0}


def test_a_flipped_bit_or_a_forged_number_fails_and_does_not_move_the_window() -> None:
    """Any altered bit fails the ICV (the SPI and sequence number are authenticated too); a
    forged far-ahead number does not push genuine packets out of the window."""
    out, inb = Outbound(0x100, KEY), Inbound(0x100, KEY)
    first = out.seal(b"one", 4)
    bad = bytearray(first)
    bad[20] ^= 1
    assert inb.open(bytes(bad))[0] == "corrupt"
    forged = bytearray(first)
    struct.pack_into("!I", forged, 4, 1000)
    assert inb.open(bytes(forged))[0] == "corrupt"
    assert inb.top == 0
    assert inb.open(first)[0] == "ok"


def test_the_window_takes_late_packets_once_and_refuses_older_ones() -> None:
    """Out of order within 64 packets: accepted once; below the window: replayed."""
    out, inb = Outbound(0x100, KEY), Inbound(0x100, KEY)
    pkts = [out.seal(bytes([i]), 4) for i in range(REPLAY_WINDOW + 5)]
    assert inb.open(pkts[3])[0] == "ok"
    assert inb.open(pkts[1])[0] == "ok" and inb.open(pkts[1])[0] == "replayed"
    assert inb.open(pkts[-1])[0] == "ok"
    assert inb.open(pkts[2])[0] == "replayed"  # fell below the window


def test_keys_are_checked() -> None:
    """A key is hex: an AES key of 16, 24 or 32 bytes and a 4-byte salt."""
    assert parse_key("0x" + KEY.hex()) == KEY
    with pytest.raises(ValueError, match="hex digits"):
        parse_key("zz")
    with pytest.raises(ValueError, match="has 3 bytes"):
        parse_key("010203")


def _gateway() -> Gateway:
    gw = Gateway(Config.parse(f"red=10.1.0.1/24 black=198.51.100.1/24 peer=198.51.100.2 local=10.1.0.0/24 "
                              f"remote=198.51.100.2/32 spi_out=0x100 key_out={KEY.hex()} spi_in=0x200 "
                              f"key_in={KEY.hex()}"))
    gw.red.mac, gw.black.mac = b"\x02" * 6, b"\x04" * 6
    gw.red.neigh[bytes([10, 1, 0, 2])] = b"\x06" * 6
    gw.black.neigh[bytes([198, 51, 100, 2])] = b"\x08" * 6
    return gw


def _ip(src: list[int], dst: list[int], proto: int, payload: bytes) -> bytes:
    return ip4(bytes(src), bytes(dst), proto, payload)


def test_the_gateway_seals_what_policy_allows_and_drops_the_rest() -> None:
    """From red: a packet to the remote network leaves black as ESP to the peer, its TTL one
    less inside; one elsewhere is dropped (policy).  From black: plaintext is dropped, ESP
    from the peer is opened and forwarded to red."""
    gw = _gateway()
    pkt = _ip([10, 1, 0, 2], [198, 51, 100, 2], 17, b"hello gateway")
    out = gw.from_red(b"\x02" * 6 + b"\x06" * 6 + b"\x08\x00" + pkt)
    assert len(out) == 1 and out[0][0] is gw.black
    frame = out[0][1]
    assert frame[14 + 9] == 50 and frame[14 + 16 : 14 + 20] == bytes([198, 51, 100, 2])
    assert b"hello gateway" not in frame
    assert gw.from_red(b"\x02" * 6 + b"\x06" * 6 + b"\x08\x00" + _ip([10, 1, 0, 2], [192, 0, 2, 1], 17, b"x")) == []
    assert gw.counts["policy"] == 1
    plain = _ip([198, 51, 100, 2], [198, 51, 100, 1], 17, b"x")
    assert gw.from_black(b"\x04" * 6 + b"\x08" * 6 + b"\x08\x00" + plain) == []
    assert gw.counts["plaintext"] == 1
    back = Outbound(0x200, KEY).seal(_ip([198, 51, 100, 2], [10, 1, 0, 2], 17, b"reply"), 4)
    esp = _ip([198, 51, 100, 2], [198, 51, 100, 1], 50, back)
    got = gw.from_black(b"\x04" * 6 + b"\x08" * 6 + b"\x08\x00" + esp)
    assert len(got) == 1 and got[0][0] is gw.red and got[0][1].endswith(b"reply")
    assert got[0][1][14 + 8] == 63  # the TTL, one less
