"""Data lifetime in the personality: the bytes it keeps in buffers of its own, and zero-on-free.

The kernel follows a secret's copies through frames and messages
(:mod:`l4sim.kernel.lifetime`, Chow et al.).  A Linux process's memory is
frames the personality reads and writes through the kernel, so those copies
are followed already.  What the personality keeps in Python buffers of its
own is not in any frame: a pipe's buffer, a file's bytes.  In L4Linux they
would be pages of the Linux kernel; here the personality tells the kernel's
record what they hold -- an observation hook, as the tracer is: it changes
nothing in the run, and costs one test (``Config.watch`` and its
``lifetime``) until the first secret of the run is marked.

Followed: writes into a pipe and reads out of it (a read takes the bytes
out: the copy ends when a reader took it), writes into a file and reads of
it, a file cut short (``O_TRUNC``, ``truncate``) or removed (its last name
unlinked).  Not followed: ``sendfile``, ``splice``, ``copy_file_range`` and
the shared pages of a ``MAP_SHARED`` file written back into its bytes; a
pipe's buffer when the pipe goes away unread (Python drops it: where Linux
would leave the bytes in a free page, the model cannot say).

Zero-on-free (``Config.zero_on_free``, ``l4sim lifetime --zero-on-free``):
the frames a process let go when it ended or exec'd are cleared at once
(:func:`clear_freed`), not only when the pool hands them out again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from l4sim.linux.elf import PAGE

if TYPE_CHECKING:
    from l4sim.kernel.lifetime import Lifetime
    from l4sim.linux.state import Personality
    from l4sim.linux.vfs import File, Pipe


def _me(k: Personality) -> str:
    return k.env.local.owner or "linux"


def pipe_wrote(k: Personality, lt: Lifetime, pipe: Pipe, at: int, n: int) -> None:
    """``n`` bytes went into ``pipe`` at ``at`` (its end)."""
    lt.buffer_wrote(k.cfg.watch, pipe, pipe.buf, f"pipe buffer pipe:[{pipe.ino}] of {_me(k)}", at, n)


def pipe_taken(k: Personality, lt: Lifetime, pipe: Pipe, n: int) -> None:
    """A reader took the first ``n`` bytes out of ``pipe``."""
    lt.buffer_taken(k.cfg.watch, pipe, n)


def file_wrote(k: Personality, lt: Lifetime, node: File, path: str, at: int, n: int) -> None:
    """``n`` bytes were written into ``node`` (opened as ``path``) at ``at``."""
    lt.buffer_wrote(k.cfg.watch, node, node.data, f"file {path} of {_me(k)}", at, n)


def file_read(k: Personality, lt: Lifetime, node: File, at: int, n: int) -> None:
    lt.buffer_read(k.cfg.watch, node, at, n)


def file_cut(k: Personality, lt: Lifetime, node: File, length: int, why: str) -> None:
    """``node``'s bytes were cut to ``length`` (0 and ``removed``: its last name went)."""
    lt.buffer_cut(k.cfg.watch, node, length, why)


async def clear_freed(k: Personality, since: int) -> None:
    """Zero-on-free: clear the pool pages freed since the free list was ``since`` long (they
    need no clearing when handed out again)."""
    for a in k.free[since:]:
        if a in k.dirty:
            await k.env.mem.write(a, bytes(PAGE))
            k.dirty.discard(a)
