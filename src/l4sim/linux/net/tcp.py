"""TCP's connection state machine (RFC 9293), driven by segments and simulated time.

A :class:`Tcb` is one connection's transmission control block.  It knows nothing of sockets,
processes or interfaces: the stack (:mod:`l4sim.linux.net.stack`) gives it the segments that
arrive (:meth:`Tcb.input`), the time (``now``, simulated nanoseconds), and what the
application does (:meth:`Tcb.send`, :meth:`Tcb.recv`, :meth:`Tcb.close`, ...), and takes from
``Tcb.out`` the segments to transmit.  Nothing here reads a clock or draws a random number:
the initial sequence number comes from the stack's seeded generator.

What it does, as Linux does it where the RFC leaves a choice:

- the eleven states and their transitions (one ``match`` case per state in :meth:`input`);
- the MSS option on SYNs; sequence numbers modulo 2^32 throughout;
- the receive window: the free room of the receive buffer (half of ``SO_RCVBUF``, Linux's
  ``tcp_adv_win_scale`` 1), at most 65535 (no window scaling), never moved left, and opened
  again only by at least an MSS or half the buffer (receiver-side silly window avoidance);
  out-of-order segments are kept and joined when the hole is filled;
- the send window: the peer's window and the congestion window (slow start, congestion
  avoidance, fast retransmit after three duplicate ACKs with a NewReno-style recovery);
  Nagle's algorithm unless ``nodelay``; a persist timer probes a zero window;
- retransmission on a timer (RFC 6298: ``RTO = SRTT + 4 RTTVAR``, at least 200 ms as on
  Linux, 1 s before the first sample, doubled on each expiry, Karn's rule for samples); six
  SYN retries (ETIMEDOUT), fifteen for data;
- ACKs: each batch of arriving segments is answered by one ACK (the stack drains all input
  before it collects output), an out-of-order segment at once (a duplicate ACK);
- closing: FIN after the queued data, TIME_WAIT of 60 s (``TCP_TIMEWAIT_LEN``), an orphaned
  FIN_WAIT_2 given up after 60 s (``tcp_fin_timeout``), RST on a close with unread data and
  for ``SO_LINGER`` with a zero timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from l4sim.linux.net.wire import ACK, FIN, PSH, RST, SYN, Seg

MASK = 0xFFFF_FFFF
MS = 1_000_000
#: RTO bounds and the initial RTO (Linux's TCP_RTO_MIN, TCP_RTO_MAX, TCP_TIMEOUT_INIT)
RTO_MIN, RTO_MAX, RTO_INIT = 200 * MS, 120_000 * MS, 1_000 * MS
#: TIME_WAIT's length and an orphan's FIN_WAIT_2 timeout (Linux: 60 s each)
TIMEWAIT_LEN = FIN_TIMEOUT = 60_000 * MS
#: retries before giving up (tcp_syn_retries, tcp_synack_retries, tcp_retries2)
SYN_RETRIES, SYNACK_RETRIES, DATA_RETRIES = 6, 5, 15
#: the largest window without the window-scale option
MAX_WINDOW = 0xFFFF
ETIMEDOUT, ECONNREFUSED, ECONNRESET, EPIPE = 110, 111, 104, 32


def seq_lt(a: int, b: int) -> bool:
    """``a`` comes before ``b`` in sequence space (modulo 2^32)."""
    return ((a - b) & MASK) > 0x7FFF_FFFF


def seq_le(a: int, b: int) -> bool:
    return a == b or seq_lt(a, b)


class State(Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECEIVED = "SYN_RECV"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT1"
    FIN_WAIT_2 = "FIN_WAIT2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"


#: Linux's numbers of the states (/proc/net/tcp, TCP_INFO)
STATE_NUMBERS = {State.ESTABLISHED: 1, State.SYN_SENT: 2, State.SYN_RECEIVED: 3, State.FIN_WAIT_1: 4,
                 State.FIN_WAIT_2: 5, State.TIME_WAIT: 6, State.CLOSED: 7, State.CLOSE_WAIT: 8,
                 State.LAST_ACK: 9, State.LISTEN: 10, State.CLOSING: 11}
#: states in which the connection has been synchronized (SYNs exchanged)
SYNCHRONIZED = frozenset((State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT,
                          State.CLOSING, State.LAST_ACK, State.TIME_WAIT))
#: states in which data from the peer is taken
RECEIVING = frozenset((State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2))
#: states in which the application may still send
SENDING = frozenset((State.ESTABLISHED, State.CLOSE_WAIT))


class Timer(Enum):
    RETRANSMIT = "retransmit"
    PERSIST = "persist"
    TIMEWAIT = "timewait"
    FINWAIT2 = "finwait2"


def _nothing() -> None:
    pass


class Tcb:
    """One connection (see the module).  ``local`` and ``remote`` are (address, port); the
    addresses are bytes (4 or 16) and matter only to the stack."""

    def __init__(self, local: tuple[bytes, int], remote: tuple[bytes, int], iss: int, mss: int,
                 rcvbuf: int, sndbuf: int) -> None:
        self.local = local
        self.remote = remote
        self.state = State.CLOSED
        # --- send side (RFC 9293 §3.3.1): SND.UNA, SND.NXT, SND.WND, SND.WL1, SND.WL2, ISS
        self.iss = iss & MASK
        self.snd_una = self.snd_nxt = self.iss
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.max_wnd = 0
        #: the application's bytes not yet acknowledged, from the first unacknowledged one
        self.sndq = bytearray()
        self.sndbuf = sndbuf
        #: the application closed its sending side: a FIN follows the queued bytes; the peer
        #: has acknowledged that FIN
        self.fin_queued = False
        self.fin_done = False
        # --- receive side: RCV.NXT, IRS, the right edge advertised, the in-order bytes the
        # application has not read, segments beyond a hole (seq -> (data, fin))
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0
        self.rcvq = bytearray()
        self.ooo: dict[int, tuple[bytes, bool]] = {}
        self.rcvbuf = rcvbuf
        #: the peer's FIN arrived (reads end at the end of ``rcvq``)
        self.fin_received = False
        # --- segment size, congestion control
        self.my_mss = mss
        self.mss = min(mss, 536)
        self.cwnd = 0
        self.ssthresh = 1 << 30
        self.dupacks = 0
        #: the highest sequence number sent when a fast retransmit began (NewReno's "recover")
        self.recover: int | None = None
        # --- round-trip time (RFC 6298)
        self.srtt = 0
        self.rttvar = 0
        self.rto = RTO_INIT
        self.rtt_seq: int | None = None
        self.rtt_start = 0
        self.retries = 0
        self.backoff = 0
        self.timer: Timer | None = None
        self.timer_at = 0
        #: an ACK must go out (data arrived, a window opened, a duplicate)
        self.ack_now = False
        #: Nagle's algorithm off (TCP_NODELAY)
        self.nodelay = False
        #: the error the application gets next (ECONNREFUSED, ECONNRESET, ETIMEDOUT), 0: none
        self.err = 0
        #: a connection that was established once (a later reset is ECONNRESET, not refused)
        self.was_established = False
        #: segments to transmit (the stack drains them)
        self.out: list[Seg] = []
        #: counters (TCP_INFO, /proc/net/snmp)
        self.retransmits = 0
        self.segs_in = self.segs_out = 0
        #: the stack's hooks: something the socket may wait for changed; the connection is gone
        self.on_change: Callable[[], None] = _nothing
        self.on_closed: Callable[[], None] = _nothing
        #: a connection made by a listener, until it is accepted; the claim on the local port
        #: (both the stack's)
        self.parent: object | None = None
        self.binding: Any = None

    # ------------------------------------------------------------------ what the socket sees
    def rcv_limit(self) -> int:
        """The bytes the receive buffer holds for the application (half of SO_RCVBUF)."""
        return max(self.rcvbuf // 2, 1)

    def window(self) -> int:
        """The window to advertise now: the right edge moves right only (RFC 9293
        §3.8.6.2.2), by at least an MSS or half the buffer (receiver-side SWS avoidance)."""
        space = min(MAX_WINDOW, max(0, self.rcv_limit() - len(self.rcvq)))
        cur = (self.rcv_adv - self.rcv_nxt) & MASK
        if space > cur and space - cur >= min(self.rcv_limit() // 2, self.my_mss):
            self.rcv_adv = (self.rcv_nxt + space) & MASK
            cur = space
        return cur

    def send_room(self) -> int:
        """Bytes the application may queue now."""
        return max(0, self.sndbuf - len(self.sndq))

    def unsent(self) -> int:
        """Queued bytes not sent yet."""
        return len(self.sndq) - self._sent_bytes()

    def _data_start(self) -> int:
        """The sequence number of ``sndq[0]``: SND.UNA, past our SYN once that is acknowledged."""
        return self.snd_una if self.state not in (State.SYN_SENT, State.SYN_RECEIVED) else (self.iss + 1) & MASK

    def _sent_bytes(self) -> int:
        return min(len(self.sndq), max(0, (self.snd_nxt - self._data_start()) & MASK)
                   if not seq_lt(self.snd_nxt, self._data_start()) else 0)

    def _fin_seq(self) -> int:
        return (self._data_start() + len(self.sndq)) & MASK

    def fin_acked(self) -> bool:
        return self.fin_done

    # ------------------------------------------------------------------ opening
    def connect(self, now: int) -> None:
        """An active open: SYN_SENT, the SYN goes out."""
        assert self.state is State.CLOSED, "connect from CLOSED only"
        self.state = State.SYN_SENT
        self.snd_nxt = (self.iss + 1) & MASK
        self.out.append(Seg(self.local[1], self.remote[1], self.iss, 0, SYN, self.window_for_syn(),
                            mss=self.my_mss))
        self.segs_out += 1
        self.rtt_seq, self.rtt_start = self.snd_nxt, now
        self._arm(now, Timer.RETRANSMIT, self.rto)

    def window_for_syn(self) -> int:
        space = min(MAX_WINDOW, self.rcv_limit())
        return space

    def accept_syn(self, seg: Seg, now: int) -> None:
        """A passive open: a listener's SYN made this connection; SYN_RECEIVED, the SYN-ACK goes out."""
        self.state = State.SYN_RECEIVED
        self.irs = seg.seq
        self.rcv_nxt = (seg.seq + 1) & MASK
        self.rcv_adv = (self.rcv_nxt + self.window_for_syn()) & MASK
        self._take_mss(seg)
        self.snd_wnd = seg.wnd
        self.max_wnd = seg.wnd
        self.snd_wl1, self.snd_wl2 = seg.seq, self.iss
        self.snd_nxt = (self.iss + 1) & MASK
        self._send_synack()
        self.rtt_seq, self.rtt_start = self.snd_nxt, now
        self._arm(now, Timer.RETRANSMIT, self.rto)

    def _send_synack(self) -> None:
        self.out.append(Seg(self.local[1], self.remote[1], self.iss, self.rcv_nxt, SYN | ACK,
                            self.window_for_syn(), mss=self.my_mss))
        self.segs_out += 1

    def _take_mss(self, seg: Seg) -> None:
        self.mss = min(self.my_mss, seg.mss or 536)
        self.cwnd = 10 * self.mss  # Linux's initial window (RFC 6928)

    # ------------------------------------------------------------------ the application
    def send(self, data: bytes, now: int) -> int:
        """Queue what fits of ``data`` and transmit what the windows allow; the bytes taken."""
        n = min(len(data), self.send_room())
        if n:
            self.sndq += data[:n]
            self.output(now)
        return n

    def recv(self, n: int, peek: bool = False) -> bytes:
        """Up to ``n`` of the bytes received in order; reading opens the window again."""
        data = bytes(self.rcvq[:n])
        if not peek and data:
            before = (self.rcv_adv - self.rcv_nxt) & MASK
            del self.rcvq[: len(data)]
            if self.state in RECEIVING and self.window() > before and \
                    (before < self.mss or self.window() - before >= 2 * self.mss):
                self.ack_now = True  # a window update
        return data

    def shutdown(self, now: int) -> None:
        """The application closes its sending side: FIN after the queued bytes."""
        match self.state:
            case State.ESTABLISHED:
                self.fin_queued = True
                self.state = State.FIN_WAIT_1
                self.output(now)
            case State.SYN_RECEIVED:
                self.fin_queued = True  # FIN_WAIT_1 once the handshake completes
            case State.CLOSE_WAIT:
                self.fin_queued = True
                self.state = State.LAST_ACK
                self.output(now)
            case State.SYN_SENT:
                self._closed()
            case _:
                pass

    def abort(self, now: int) -> None:
        """Reset the connection (a close with unread data, SO_LINGER 0, a listener's
        connections never accepted): RST when synchronized, then CLOSED."""
        if self.state in SYNCHRONIZED or self.state is State.SYN_RECEIVED:
            self.out.append(Seg(self.local[1], self.remote[1], self.snd_nxt, self.rcv_nxt, RST | ACK, 0))
            self.segs_out += 1
        self._closed()

    # ------------------------------------------------------------------ segments arriving
    def input(self, seg: Seg, now: int) -> None:
        """A segment for this connection (RFC 9293 §3.10.7.4 "SEGMENT ARRIVES")."""
        self.segs_in += 1
        match self.state:
            case State.CLOSED | State.LISTEN:
                return  # (the stack answers segments for no connection)
            case State.SYN_SENT:
                self._input_syn_sent(seg, now)
            case _:
                self._input_synchronized(seg, now)
        self.output(now)
        self.on_change()

    def _input_syn_sent(self, seg: Seg, now: int) -> None:
        """SYN_SENT: our SYN is out; a SYN-ACK establishes, a RST refuses."""
        if seg.flags & ACK and (seq_le(seg.ack, self.iss) or seq_lt(self.snd_nxt, seg.ack)):
            if not seg.flags & RST:
                self.out.append(Seg(self.local[1], self.remote[1], seg.ack, 0, RST, 0))
            return
        if seg.flags & RST:
            if seg.flags & ACK:
                self.err = ECONNREFUSED
                self._closed()
            return
        if not seg.flags & SYN:
            return
        self.irs = seg.seq
        self.rcv_nxt = (seg.seq + 1) & MASK
        self.rcv_adv = (self.rcv_nxt + self.window_for_syn()) & MASK
        self._take_mss(seg)
        if seg.flags & ACK:
            self.snd_una = seg.ack
            self._sample_rtt(seg.ack, now)
            self.snd_wnd = self.max_wnd = seg.wnd
            self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
            self._established(now)
            self.ack_now = True
        else:  # a simultaneous open: both sent a SYN
            self.state = State.SYN_RECEIVED
            self.snd_wnd = self.max_wnd = seg.wnd
            self._send_synack()

    def _established(self, now: int) -> None:
        self.state = State.ESTABLISHED
        self.was_established = True
        self.retries = self.backoff = 0
        self._disarm()
        if self.sndq or self.fin_queued:
            self._arm(now, Timer.RETRANSMIT, self.rto)

    def _acceptable(self, seg: Seg, wnd: int) -> bool:
        """RFC 9293's acceptability test of a segment's sequence numbers -- and, as Linux's
        ``tcp_sequence``, a segment that starts exactly at RCV.NXT even into a closed window
        (a FIN, a probe: its data is cut to the window below)."""
        n = seg.length
        nxt = self.rcv_nxt
        if seg.seq == nxt:
            return True
        end = (nxt + wnd) & MASK
        if n == 0:
            return seg.seq == nxt if wnd == 0 else seq_le(nxt, seg.seq) and seq_lt(seg.seq, end)
        if wnd == 0:
            return False
        last = (seg.seq + n - 1) & MASK
        return (seq_le(nxt, seg.seq) and seq_lt(seg.seq, end)) or (seq_le(nxt, last) and seq_lt(last, end))

    def _input_synchronized(self, seg: Seg, now: int) -> None:
        wnd = (self.rcv_adv - self.rcv_nxt) & MASK
        # 1. sequence numbers
        if not self._acceptable(seg, wnd):
            if not seg.flags & RST:
                if self.state is State.TIME_WAIT and seg.flags & FIN:
                    self._arm(now, Timer.TIMEWAIT, TIMEWAIT_LEN)  # its FIN again: our ACK was lost
                self.ack_now = True
            return
        # 2. RST
        if seg.flags & RST:
            if self.state is State.SYN_RECEIVED:
                self.err = ECONNREFUSED if self.parent is None else 0
            elif self.state in (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT):
                self.err = ECONNRESET
            self._closed()
            return
        # 3. a SYN in the window: the peer restarted (RFC 5961 would answer with an ACK; Linux
        # resets when it is exactly in order)
        if seg.flags & SYN:
            self.ack_now = True
            return
        # 4. ACK
        if not seg.flags & ACK:
            return
        if self.state is State.SYN_RECEIVED:
            if seq_lt(self.snd_una, seg.ack) and seq_le(seg.ack, self.snd_nxt):
                self.snd_una = seg.ack
                self._sample_rtt(seg.ack, now)
                self.snd_wnd = seg.wnd
                self.max_wnd = max(self.max_wnd, seg.wnd)
                self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
                was_fin = self.fin_queued
                self._established(now)
                if was_fin:  # closed before it was established: the FIN is owed
                    self.state = State.FIN_WAIT_1
            else:
                self.out.append(Seg(self.local[1], self.remote[1], seg.ack, 0, RST, 0))
                return
        elif not self._ack(seg, now):
            return
        # 5. the data
        fin = bool(seg.flags & FIN)
        data = seg.data
        seq = seg.seq
        if self.state in RECEIVING:
            if seq_lt(seq, self.rcv_nxt):  # the front was received already: cut it
                cut = (self.rcv_nxt - seq) & MASK
                data, seq = data[cut:], self.rcv_nxt
            room = (self.rcv_adv - seq) & MASK if seq_le(seq, self.rcv_adv) else 0
            if len(data) > room:  # beyond the window: cut, and the FIN with it
                data, fin = data[:room], False
            if seq == self.rcv_nxt:
                self._take(data, fin, now)
                self._join(now)
            elif data or fin:
                self.ooo[seq] = (bytes(data), fin)
            if seg.length:
                self.ack_now = True  # every segment with data is answered (out of order: a duplicate ACK)
        elif fin and self.state is State.TIME_WAIT:
            self.ack_now = True
            self._arm(now, Timer.TIMEWAIT, TIMEWAIT_LEN)

    def _join(self, now: int) -> None:
        """The hole before the out-of-order segments may be filled: take what now follows
        RCV.NXT (a retransmission may have cut the bytes at other places), drop what is old."""
        while self.ooo and self.state in RECEIVING:
            for seq in sorted(self.ooo, key=lambda s: (s - self.rcv_nxt) & MASK):
                data, fin = self.ooo[seq]
                end = (seq + len(data)) & MASK
                if seq_le(seq, self.rcv_nxt) and (seq_lt(self.rcv_nxt, end) or (fin and end == self.rcv_nxt)):
                    del self.ooo[seq]
                    self._take(data[(self.rcv_nxt - seq) & MASK :], fin, now)
                    break
                if seq_le(end, self.rcv_nxt) and not (fin and end == self.rcv_nxt):
                    del self.ooo[seq]  # wholly received already
                    break
            else:
                return

    def _take(self, data: bytes, fin: bool, now: int) -> None:
        """In-order bytes (and FIN) into the receive buffer; a FIN moves the state on."""
        if data:
            self.rcvq += data
            self.rcv_nxt = (self.rcv_nxt + len(data)) & MASK
        if fin and not self.fin_received:
            self.fin_received = True
            self.rcv_nxt = (self.rcv_nxt + 1) & MASK
            match self.state:
                case State.ESTABLISHED:
                    self.state = State.CLOSE_WAIT
                case State.FIN_WAIT_1:
                    self.state = State.CLOSING  # our FIN is not acknowledged yet
                case State.FIN_WAIT_2:
                    self._time_wait(now)
                case _:
                    pass
        if self.rcv_nxt == self.rcv_adv or seq_lt(self.rcv_adv, self.rcv_nxt):
            self.rcv_adv = self.rcv_nxt

    def _ack(self, seg: Seg, now: int) -> bool:
        """The ACK field of a segment in a synchronized state; False: drop the segment."""
        ack = seg.ack
        if seq_lt(self.snd_nxt, ack):
            self.ack_now = True  # it acknowledges what we never sent
            return False
        acked = (ack - self.snd_una) & MASK if seq_lt(self.snd_una, ack) else 0
        flight = (self.snd_nxt - self.snd_una) & MASK
        if acked:
            data = min(acked, len(self.sndq))
            if self.fin_queued and acked > data and self.snd_nxt == ack:
                self.fin_done = True  # the FIN's sequence number is acknowledged too
            del self.sndq[:data]
            self.snd_una = ack
            self._sample_rtt(ack, now)
            self.retries = self.backoff = 0
            self._grow_cwnd(acked, ack)
            self.dupacks = 0
            if self.snd_una == self.snd_nxt:
                self._disarm()
            else:
                self._arm(now, Timer.RETRANSMIT, self.rto)
            self.on_change()  # room to write
        elif (not seg.data and not seg.flags & FIN and seg.wnd == self.snd_wnd and flight
              and self.state is not State.TIME_WAIT):
            self.dupacks += 1
            if self.dupacks == 3:
                self._fast_retransmit(now)
            elif self.dupacks > 3:
                self.cwnd += self.mss  # each further duplicate: a segment left the network
        if seq_lt(self.snd_wl1, seg.seq) or (self.snd_wl1 == seg.seq and seq_le(self.snd_wl2, ack)):
            if seg.wnd > self.snd_wnd:
                self.on_change()
            self.snd_wnd = seg.wnd
            self.max_wnd = max(self.max_wnd, seg.wnd)
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
            if seg.wnd and self.timer is Timer.PERSIST:
                self._disarm()
        if self.fin_acked():
            match self.state:
                case State.FIN_WAIT_1:
                    self.state = State.FIN_WAIT_2
                    self._arm(now, Timer.FINWAIT2, FIN_TIMEOUT)
                case State.CLOSING:
                    self._time_wait(now)
                    return False
                case State.LAST_ACK:
                    self._closed()
                    return False
                case _:
                    pass
        return True

    def _grow_cwnd(self, acked: int, ack: int) -> None:
        """Slow start below ssthresh, congestion avoidance above; the end of a fast recovery."""
        if self.recover is not None:
            if seq_le(self.recover, ack):
                self.cwnd = self.ssthresh  # recovered: deflate the window
                self.recover = None
            else:  # a partial ACK: the next hole, at once (NewReno)
                self._retransmit_one()
            return
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, self.mss)
        else:
            self.cwnd += max(1, self.mss * self.mss // self.cwnd)

    def _fast_retransmit(self, now: int) -> None:
        flight = (self.snd_nxt - self.snd_una) & MASK
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh + 3 * self.mss
        self.recover = self.snd_nxt
        self._retransmit_one()
        self._arm(now, Timer.RETRANSMIT, self.rto)

    def _retransmit_one(self) -> None:
        """The first unacknowledged segment again."""
        n = min(self.mss, len(self.sndq))
        flags = ACK | (PSH if n else 0)
        if n == len(self.sndq) and self.fin_queued:
            flags |= FIN
        if not n and not flags & FIN:
            return
        self.out.append(Seg(self.local[1], self.remote[1], self.snd_una, self.rcv_nxt, flags, self.window(),
                            bytes(self.sndq[:n])))
        self.segs_out += 1
        self.retransmits += 1
        self.rtt_seq = None  # Karn: no sample from a retransmitted segment

    def _sample_rtt(self, ack: int, now: int) -> None:
        if self.rtt_seq is None or seq_lt(ack, self.rtt_seq):
            return
        r = max(1, now - self.rtt_start)
        self.rtt_seq = None
        if not self.srtt:
            self.srtt, self.rttvar = r, r // 2
        else:
            self.rttvar = (3 * self.rttvar + abs(self.srtt - r)) // 4
            self.srtt = (7 * self.srtt + r) // 8
        self.rto = min(RTO_MAX, max(RTO_MIN, self.srtt + 4 * self.rttvar))

    # ------------------------------------------------------------------ timers
    def _arm(self, now: int, kind: Timer, after: int) -> None:
        self.timer, self.timer_at = kind, now + after

    def _disarm(self) -> None:
        self.timer = None

    def deadline(self) -> int | None:
        return self.timer_at if self.timer is not None else None

    def tick(self, now: int) -> None:
        """The timer's time has come."""
        kind = self.timer
        if kind is None or now < self.timer_at:
            return
        self.timer = None
        match kind:
            case Timer.TIMEWAIT | Timer.FINWAIT2:
                self._closed()
            case Timer.PERSIST:  # a zero window: probe it (an old sequence number: the peer
                # answers with an ACK that carries its window, as Linux's tcp_xmit_probe_skb)
                if self.snd_wnd == 0 and (self.unsent() or (self.fin_queued and not self.fin_done)):
                    self.out.append(Seg(self.local[1], self.remote[1], (self.snd_una - 1) & MASK,
                                        self.rcv_nxt, ACK, self.window()))
                    self.segs_out += 1
                    self.backoff += 1
                    self._arm(now, Timer.PERSIST, min(RTO_MAX, self.rto << min(self.backoff, 10)))
            case Timer.RETRANSMIT:
                self._expired(now)
        self.output(now)
        self.on_change()

    def _expired(self, now: int) -> None:
        """The retransmission timer expired: back off, and send again from SND.UNA."""
        self.retries += 1
        limit = SYN_RETRIES if self.state is State.SYN_SENT else \
            SYNACK_RETRIES if self.state is State.SYN_RECEIVED else DATA_RETRIES
        if self.retries > limit:
            self.err = ETIMEDOUT
            if self.state in SYNCHRONIZED:
                self.out.append(Seg(self.local[1], self.remote[1], self.snd_nxt, self.rcv_nxt, RST | ACK, 0))
            self._closed()
            return
        self.backoff += 1
        self.rto = min(RTO_MAX, self.rto * 2)
        self.rtt_seq = None
        self.retransmits += 1
        if self.state is State.SYN_SENT:
            self.out.append(Seg(self.local[1], self.remote[1], self.iss, 0, SYN, self.window_for_syn(),
                                mss=self.my_mss))
            self.segs_out += 1
        elif self.state is State.SYN_RECEIVED:
            self._send_synack()
        else:  # go back to SND.UNA, in slow start
            flight = (self.snd_nxt - self.snd_una) & MASK
            self.ssthresh = max(flight // 2, 2 * self.mss)
            self.cwnd = self.mss
            self.recover = None
            self.dupacks = 0
            self.snd_nxt = self.snd_una
        self._arm(now, Timer.RETRANSMIT, self.rto)

    def _time_wait(self, now: int) -> None:
        self.state = State.TIME_WAIT
        self._arm(now, Timer.TIMEWAIT, TIMEWAIT_LEN)

    def _closed(self) -> None:
        was = self.state
        self.state = State.CLOSED
        self.timer = None
        if was is not State.CLOSED:
            self.on_closed()
            self.on_change()

    # ------------------------------------------------------------------ output
    def output(self, now: int) -> None:
        """Send what the windows allow (data, then FIN), or an ACK that is owed."""
        sent = False
        if self.state in SYNCHRONIZED and self.state is not State.TIME_WAIT:
            sent = self._send_data(now)
        if self.ack_now and not sent and self.state in SYNCHRONIZED:
            self.out.append(Seg(self.local[1], self.remote[1], self.snd_nxt, self.rcv_nxt, ACK, self.window()))
            self.segs_out += 1
        self.ack_now = False

    def _send_data(self, now: int) -> bool:
        sent = False
        start = self._data_start()
        while True:
            flight = (self.snd_nxt - self.snd_una) & MASK
            off = self._sent_bytes()
            unsent = len(self.sndq) - off
            room = min(self.snd_wnd, self.cwnd) - flight
            n = min(self.mss, unsent, room)
            if n > 0:
                if n < self.mss and n < unsent:  # the window cuts it short: wait for more room
                    if n < self.max_wnd // 2:
                        break
                elif n < self.mss and flight and not self.nodelay and not self.fin_queued:
                    break  # Nagle: a small segment waits while data is unacknowledged
                seq = (start + off) & MASK
                last = off + n == len(self.sndq)
                flags = ACK | (PSH if last else 0)
                if last and self.fin_queued and room > n:
                    flags |= FIN
                self.out.append(Seg(self.local[1], self.remote[1], seq, self.rcv_nxt, flags, self.window(),
                                    bytes(self.sndq[off : off + n])))
                self.segs_out += 1
                self.snd_nxt = (seq + n + (1 if flags & FIN else 0)) & MASK
                if self.rtt_seq is None:
                    self.rtt_seq, self.rtt_start = self.snd_nxt, now
                if self.timer is not Timer.RETRANSMIT:
                    self._arm(now, Timer.RETRANSMIT, self.rto)
                sent = True
                continue
            if (self.fin_queued and not self.fin_done and unsent == 0 and self.snd_nxt == self._fin_seq()
                    and (room > 0 or not flight)):
                self.out.append(Seg(self.local[1], self.remote[1], self.snd_nxt, self.rcv_nxt, FIN | ACK,
                                    self.window()))
                self.segs_out += 1
                self.snd_nxt = (self.snd_nxt + 1) & MASK
                if self.timer is not Timer.RETRANSMIT:
                    self._arm(now, Timer.RETRANSMIT, self.rto)
                sent = True
            break
        if self.unsent() and self.snd_wnd == 0 and self.snd_una == self.snd_nxt and self.timer is None:
            self._arm(now, Timer.PERSIST, self.rto)
        return sent
