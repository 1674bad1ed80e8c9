"""Data lifetime: where copies of a secret live, and for how long.

Chow, Pfaff, Garfinkel, Christopher and Rosenblum ("Understanding data
lifetime via whole system simulation", USENIX Security 2004) followed
sensitive data through a whole system and found copies outliving their use
by far -- in freed memory, in buffers nobody cleared.  A whole-system
simulator can ask the same question of an L4 system.

A program marks a secret where it enters (``MarkSecret``: the bytes at an
address of its own memory; a key unsealed, a password typed); the same bytes
marked again -- by the program the secret went to, which knows what it is --
are the same secret, with that name added.  From then on
the kernel follows the secret's *content* through the copies the system
makes:

- a native program's store (``env.mem.write``, which is also how servers
  such as moe and the Linux personality write frames -- the personality's
  reads and writes of guest memory included), a string item's copy between
  address spaces: every write into a frame is checked for the secret's
  bytes, and a frame holding a copy is checked again on every write to it,
  so a copy ends when it is overwritten (zeroed, reused);
- IPC words: a message whose words carry the secret puts a copy in the
  receiver's message registers, until its next message replaces them;
- a program's own buffers that no frame holds (a Linux personality's pipes
  and files) as the program reports them (``buffer_wrote`` and the rest);
- a read of a copy (a load, a string item's source) is a *use*.

What is not followed: guest (x86-64) instructions copying memory -- only the
kernel's and the servers' copies are seen (unicorn could report writes to
watched pages, at a cost) -- device DMA, and a program's own Python values.
Copies are found by content: a secret shorter than ``MIN_BYTES`` is not
tracked (its bytes would match by chance).

It costs nothing until the first secret exists: the kernel's copy paths test
``kernel.lifetime is not None`` and go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from l4sim.machine.memory import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Kernel
    from l4sim.kernel.objects import Task, Thread

#: the shortest secret the kernel follows (shorter ones would match by chance)
MIN_BYTES = 8
#: the most secrets a run may mark, and the longest one (bytes)
MAX_SECRETS, MAX_BYTES = 64, 4096


@dataclass(slots=True)
class Copy:
    """One place a secret's bytes lived, and when."""

    secret: int
    place: str  # "frame", "registers" or "buffer"
    where: str  # readable: "frame 0x1a2+0x40 (moe)", "message registers of thread client"
    start: int
    end: int | None = None  # None: still there when the run ended
    #: the frame segments (pfn, offset, length) of a copy in memory, in order
    segments: tuple[tuple[int, int, int], ...] = ()
    thread: Any = None  # the receiving thread of a copy in registers
    why_ended: str = ""
    #: a copy in a program's own buffer: the buffer's owner object (kept, so its id stays its
    #: own) and the copy's offset in it
    buf: Any = None
    offset: int = 0


@dataclass(slots=True)
class Secret:
    sid: int
    name: str
    content: bytes
    owner: str
    marked: int
    last_use: int
    #: later marks of the same bytes: "'NAME' by OWNER" (the same secret, named where it went)
    also: list[str] = field(default_factory=list)


@dataclass
class Lifetime:
    """The secrets of a run and every copy the kernel saw."""

    secrets: list[Secret] = field(default_factory=list)
    copies: list[Copy] = field(default_factory=list)
    #: frame -> the live copies with a segment in it
    by_frame: dict[int, list[Copy]] = field(default_factory=dict)
    #: thread id -> the live copies in its message registers
    by_thread: dict[int, list[Copy]] = field(default_factory=dict)
    #: id of a program's buffer -> the live copies in it
    by_buffer: dict[int, list[Copy]] = field(default_factory=dict)

    # ----------------------------------------------------------- what the kernel tells it
    def mark(self, k: Kernel, task: Task, addr: int, n: int, name: str) -> int:
        """A program marks ``n`` bytes at ``addr`` of its memory as a secret; its id, or -1
        when it cannot be followed (too short, too long, too many)."""
        if not MIN_BYTES <= n <= MAX_BYTES:
            return -1
        content = self._read(k, task, addr, n)
        now = k.now()
        for s in self.secrets:
            if s.content == content:  # the same bytes marked again (where they went): one secret
                also = f"{name!r} by {task.name}"
                if also not in s.also and (name, task.name) != (s.name, s.owner):
                    s.also.append(also)
                self._found(k, task, addr, n, now, only=s)
                return s.sid
        if len(self.secrets) >= MAX_SECRETS:
            return -1
        s = Secret(len(self.secrets), name, content, task.name, now, now)
        self.secrets.append(s)
        self._found(k, task, addr, n, now, only=s)
        return s.sid

    def wrote(self, k: Kernel, task: Task, addr: int, n: int) -> None:
        """``n`` bytes were written at ``addr`` of ``task``: copies there may have ended, and
        the bytes may be a new copy."""
        if n <= 0:
            return
        now = k.now()
        for _, m in _mapped(task, addr, n):
            for c in list(self.by_frame.get(m.pfn, ())):
                if not self._intact(k, c):
                    self._end(c, now, "overwritten")
        self._found(k, task, addr, n, now)

    def read(self, k: Kernel, task: Task, addr: int, n: int) -> None:
        """``n`` bytes were read at ``addr`` of ``task``: a copy there was used."""
        if n <= 0 or not self.by_frame:
            return
        now = k.now()
        for vpn, m in _mapped(task, addr, n):
            lo = max(addr, vpn << PAGE_SHIFT) & PAGE_MASK
            hi = min(addr + n, (vpn + 1) << PAGE_SHIFT) - (vpn << PAGE_SHIFT)
            for c in self.by_frame.get(m.pfn, ()):
                for pfn, off, ln in c.segments:
                    if pfn == m.pfn and off < hi and lo < off + ln:
                        self.secrets[c.secret].last_use = now

    def words(self, k: Kernel, rcv: Thread, words: tuple[int, ...]) -> None:
        """A message with ``words`` was delivered to ``rcv``: its registers hold them now."""
        now = k.now()
        for c in self.by_thread.pop(rcv.kid, ()):
            self._end(c, now, "replaced by the next message", thread_list=False)
        if not words:
            return
        raw = b"".join(w.to_bytes(8, "little") for w in words)
        for s in self.secrets:
            if s.content in raw:
                s.last_use = now
                c = Copy(s.sid, "registers", f"message registers of thread {rcv.name} "
                         f"({rcv.task.name if rcv.task is not None else '?'})", now, thread=rcv)
                self.copies.append(c)
                self.by_thread.setdefault(rcv.kid, []).append(c)

    # ----------------------------------------------------------- a program's own buffers
    # Bytes a program keeps where no frame holds them -- a Linux personality's pipe and file
    # buffers, Python objects of its own -- are told here by the program (an observation hook,
    # as the tracer is: linux/lifetime.py).  ``key`` names the buffer (its owner object),
    # ``data`` is its content now.
    def buffer_wrote(self, k: Kernel, key: object, data: bytes | bytearray, where: str, at: int, n: int) -> None:
        """``n`` bytes were written at ``at`` of the buffer: copies there may have ended, and
        the bytes (with the secrets' length around them) may be a new copy."""
        now = k.now()
        live = self.by_buffer.get(id(key), ())
        for c in list(live):
            size = len(self.secrets[c.secret].content)
            if c.offset < at + n and at < c.offset + size and \
                    data[c.offset : c.offset + size] != self.secrets[c.secret].content:
                self._end(c, now, "overwritten")
        longest = max(len(s.content) for s in self.secrets)
        lo = max(0, at - longest + 1)
        window = bytes(data[lo : at + n + longest - 1])
        for s in self.secrets:
            i = window.find(s.content)
            while i >= 0:
                off = lo + i
                if not any(c.secret == s.sid and c.offset == off for c in self.by_buffer.get(id(key), ())):
                    c = Copy(s.sid, "buffer", f"{where}+{off:#x}", now, buf=key, offset=off)
                    self.copies.append(c)
                    self.by_buffer.setdefault(id(key), []).append(c)
                i = window.find(s.content, i + 1)

    def buffer_read(self, k: Kernel, key: object, at: int, n: int) -> None:
        """``n`` bytes at ``at`` of the buffer were read: a copy there was used."""
        now = k.now()
        for c in self.by_buffer.get(id(key), ()):
            if c.offset < at + n and at < c.offset + len(self.secrets[c.secret].content):
                self.secrets[c.secret].last_use = now

    def buffer_taken(self, k: Kernel, key: object, n: int) -> None:
        """The first ``n`` bytes were taken out of the buffer (a pipe's read): a copy there was
        used and is gone from it; the others move down."""
        self.buffer_read(k, key, 0, n)
        now = k.now()
        for c in list(self.by_buffer.get(id(key), ())):
            if c.offset < n:
                self._end(c, now, "read out of it")
            else:
                c.offset -= n

    def buffer_cut(self, k: Kernel, key: object, length: int, why: str) -> None:
        """The buffer was cut to ``length`` bytes (0: emptied or freed): copies beyond end."""
        now = k.now()
        for c in list(self.by_buffer.get(id(key), ())):
            if c.offset + len(self.secrets[c.secret].content) > length:
                self._end(c, now, why)

    # ----------------------------------------------------------- the report
    def report(self, k: Kernel) -> list[dict[str, Any]]:
        """Per secret: every copy with its place and times, and whether it outlived the
        secret's last use (still there at the end, or ended after it)."""
        end = k.now()
        out = []
        for s in self.secrets:
            copies = []
            for c in self.copies:
                if c.secret != s.sid:
                    continue
                where = c.where
                if c.end is None and c.place == "frame":
                    holders = sorted({m.space.name for pfn, _, _ in c.segments
                                      for m in _mappings(k, pfn)
                                      if m.space is not None and not m.space.vspace.sigma0})
                    where += f"; at the end mapped by {', '.join(holders) if holders else 'nobody (free)'}"
                copies.append({"place": c.place, "where": where, "from_ns": c.start, "to_ns": c.end,
                               "ended": c.why_ended or "still there at the end",
                               "outlived_use": c.end is None or c.end > s.last_use})
            out.append({"secret": s.name, "owner": s.owner, "also": list(s.also), "marked_ns": s.marked,
                        "last_use_ns": s.last_use, "bytes": len(s.content), "copies": copies,
                        "outliving": sum(1 for c in copies if c["outlived_use"]),
                        "at_end": sum(1 for c in copies if c["to_ns"] is None)})
        del end
        return out

    # ----------------------------------------------------------- inside
    def _read(self, k: Kernel, task: Task, addr: int, n: int) -> bytes:
        from l4sim.kernel.vspace import read_frames

        return read_frames(k.machine.mem, task, addr, n)

    def _found(self, k: Kernel, task: Task, addr: int, n: int, now: int, only: Secret | None = None) -> None:
        """New copies in the bytes just written (or marked) at ``addr``: the written range and
        the secret's length around it, so a copy finished by this write is seen."""
        longest = max((len(s.content) for s in self.secrets), default=0)
        pages = task.vspace.pages
        lo = max(0, addr - longest + 1)
        hi = addr + n + longest - 1
        # only what is mapped: the window shrinks to the mapped pages around the write
        while lo < addr and (lo >> PAGE_SHIFT) not in pages:
            lo = ((lo >> PAGE_SHIFT) + 1) << PAGE_SHIFT
        while hi > addr + n and ((hi - 1) >> PAGE_SHIFT) not in pages:
            hi = ((hi - 1) >> PAGE_SHIFT) << PAGE_SHIFT
        window = self._read(k, task, lo, hi - lo)
        for s in (only,) if only is not None else self.secrets:
            start = 0
            while True:
                i = window.find(s.content, start)
                if i < 0:
                    break
                start = i + 1
                va = lo + i
                segs = _segments(task, va, len(s.content))
                if any(c.segments == segs and c.secret == s.sid for pfn, _, _ in segs
                       for c in self.by_frame.get(pfn, ())):
                    continue  # the same copy, seen again
                holder = task.name
                first = segs[0]
                c = Copy(s.sid, "frame", f"frame {first[0]:#x}+{first[1]:#x} (written in {holder} at {va:#x})",
                         now, segments=segs)
                self.copies.append(c)
                for pfn, _, _ in segs:
                    self.by_frame.setdefault(pfn, []).append(c)

    def _intact(self, k: Kernel, c: Copy) -> bool:
        view = k.machine.mem.view
        content = self.secrets[c.secret].content
        i = 0
        for pfn, off, ln in c.segments:
            base = (pfn << PAGE_SHIFT) + off
            if view[base : base + ln] != content[i : i + ln]:
                return False
            i += ln
        return True

    def _end(self, c: Copy, now: int, why: str, thread_list: bool = True) -> None:
        c.end = now
        c.why_ended = why
        if c.buf is not None:
            held = self.by_buffer.get(id(c.buf))
            if held is not None and c in held:
                held.remove(c)
                if not held:
                    del self.by_buffer[id(c.buf)]
        for pfn, _, _ in c.segments:
            lst = self.by_frame.get(pfn)
            if lst is not None and c in lst:
                lst.remove(c)
                if not lst:
                    del self.by_frame[pfn]


def _mapped(task: Task, addr: int, n: int) -> Iterator[tuple[int, Any]]:
    """The pages of ``n`` bytes at ``addr`` of ``task`` that are mapped: (vpn, mapping)."""
    pages = task.vspace.pages
    for vpn in range(addr >> PAGE_SHIFT, ((addr + n - 1) >> PAGE_SHIFT) + 1):
        m = pages.get(vpn)
        if m is not None:
            yield vpn, m


def _segments(task: Task, va: int, n: int) -> tuple[tuple[int, int, int], ...]:
    out = []
    pages = task.vspace.pages
    while n > 0:
        off = va & PAGE_MASK
        take = min(n, PAGE_SIZE - off)
        out.append((pages[va >> PAGE_SHIFT].pfn, off, take))
        va += take
        n -= take
    return tuple(out)


def _mappings(k: Kernel, pfn: int) -> list[Any]:
    """Every mapping of frame ``pfn`` (the derivation tree below its root)."""
    from l4sim.kernel.caps import subtree

    root = k.frame_roots.get(pfn)
    if root is None:
        return []
    return [root, *subtree(root)]
