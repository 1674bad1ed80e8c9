"""Capability spaces and the derivation tree (the mapping database).

A task's capability space is a table of slots; a slot holds a
:class:`CapEntry`: (object, rights).  Every entry except an object's first
(its *root*, created with the object) was derived from another entry by a
map, and records it as ``parent``.  This tree is Fiasco's mapping database:
unmapping an entry removes rights from -- or deletes -- every entry derived
from it, in every task.  Revocation walks the subtree iteratively, so chains
of any depth work, and its cost is linear in the entries it touches.

An object lives as long as some entry refers to it (``obj.refs``); when the
last one goes, the kernel destroys it (``Kernel.destroy``).  The memory issue
reuses the same tree for page mappings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from l4sim.kernel.abi import CAP_SLOTS, Rights

if TYPE_CHECKING:
    from l4sim.kernel.objects import KObject, Task


class MapNode:
    """A node of the mapping database: a right held in one space, derived from ``parent``.

    Capabilities (:class:`CapEntry`) and page or I/O-port mappings
    (``vspace.MemMap``) are both nodes, so map, grant and recursive unmap
    are one mechanism for every kind of resource, as in Fiasco.  A removed
    node has ``space`` None.
    """

    __slots__ = ("children", "parent", "rights", "space")

    def __init__(self, rights: int, space: Task, parent: MapNode | None) -> None:
        self.rights = rights
        self.space: Task | None = space
        self.parent = parent
        #: derived nodes by identity, in derivation order (a dict: O(1) unlink)
        self.children: dict[int, MapNode] = {}


class CapEntry(MapNode):
    """One capability: an object with rights, in one slot of one task."""

    __slots__ = ("obj", "slot")

    def __init__(self, obj: KObject, rights: int, space: Task, slot: int, parent: MapNode | None) -> None:
        self.rights = rights
        self.space = space
        self.parent = parent
        self.children = {}
        self.obj = obj
        self.slot = slot

    def __repr__(self) -> str:
        where = f"{self.space.name}[{self.slot}]" if self.space else "removed"
        return f"<cap {where} {self.obj!r} {Rights(self.rights)!r}>"


class CapSpace:
    """The slot table of one task.  Slots are ints in ``0 .. CAP_SLOTS-1``.

    Slot 0 is never valid (Fiasco's invalid cap); operations that insert
    check ranges in decode, so here only assertions remain.
    """

    __slots__ = ("slots",)

    def __init__(self) -> None:
        self.slots: dict[int, CapEntry] = {}

    def lookup(self, slot: int) -> CapEntry | None:
        return self.slots.get(slot)

    def __len__(self) -> int:
        return len(self.slots)


def valid_slot(slot: int) -> bool:
    return type(slot) is int and 0 < slot < CAP_SLOTS


def subtree(entry: MapNode) -> list[MapNode]:
    """Nodes derived from ``entry`` (not itself), parents before children.

    Iterative: a chain 100 000 deep is walked without recursion.
    """
    out: list[MapNode] = []
    stack = list(reversed(entry.children.values()))
    while stack:
        e = stack.pop()
        out.append(e)
        if e.children:
            stack.extend(reversed(e.children.values()))
    return out
