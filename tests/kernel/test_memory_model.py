"""Model-based property test of recursive address spaces: random map, grant and unmap
sequences across several tasks, checked step by step against a reference model.

The kernel is driven through its host-side API (``Kernel.sigma0_root``,
``Kernel.mem_map``, ``Kernel.mdb_remove``): no programs, so thousands of
operations run in seconds.  The reference model is a plain derivation tree of
:class:`Node` records, written from the rules of L4's recursive address spaces
rather than from the kernel's code:

- *map* gives the receiver a new mapping of the sender's frame, derived from the
  sender's, with the requested rights cut to the sender's; a mapping that was at
  the receiver's page goes first, with everything derived from it (unless it
  already is this derivation of the same frame: then it only gains rights);
- *grant* moves the sender's mapping itself to the receiver (same place in the
  tree, rights cut as for map, and cut below it too); the sender's page empties;
- *unmap* takes the masked rights from everything derived from a mapping (and
  from the mapping itself with ``include_self``); a mask containing R removes
  those mappings entirely, with everything derived from them.

Every mapping the model hands out includes R, so no mapping is ever left
without rights.  After each step the test compares, for every task and page,
what the task reaches (frame and rights, or nothing) and from which mapping it
was derived; and each task's kernel-memory charge (one node per mapping, one
page-table page per 512-page region in use).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from l4sim.kernel import invariants
from l4sim.kernel.abi import MemRights
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.vspace import MAPPING_SIZE, PT_SHIFT, PT_SIZE
from l4sim.machine.board import Machine

R, W, X = MemRights.R, MemRights.W, MemRights.X
NTASKS = 4
FRAMES = [1, 2, 3, 4]
#: pages used in every task: two page-table regions share 0..2, 512/513 and 1024 have their own
VPNS = [0, 1, 2, 512, 513, 1024]
#: rights a mapping is asked for: always with R (so nothing is ever left without rights)
MAP_RIGHTS = [R, R | W, R | X, R | W | X]
#: rights an unmap takes away
MASKS = [W, X, W | X, R, R | W, R | W | X]

tasks_st = st.integers(0, NTASKS - 1)
vpns_st = st.sampled_from(VPNS)


class Node:
    """A mapping in the reference model: ``space`` (task index, or "s0") at ``vpn``."""

    __slots__ = ("children", "parent", "pfn", "rights", "space", "vpn")

    def __init__(self, space: Any, vpn: int, pfn: int, rights: int, parent: Node | None) -> None:
        self.space, self.vpn, self.pfn, self.rights, self.parent = space, vpn, pfn, rights, parent
        self.children: list[Node] = []
        if parent is not None:
            parent.children.append(self)


class Model:
    """Who may touch which frame with which rights: a derivation tree and page tables."""

    def __init__(self) -> None:
        self.pages: dict[tuple[Any, int], Node] = {}

    def at(self, space: Any, vpn: int) -> Node | None:
        return self.pages.get((space, vpn))

    def s0_root(self, pfn: int) -> Node:
        n = self.pages.get(("s0", pfn))
        if n is None:
            n = self.pages[("s0", pfn)] = Node("s0", pfn, pfn, R | W | X, None)
        return n

    def below(self, n: Node) -> list[Node]:
        out, stack = [], list(n.children)
        while stack:
            c = stack.pop()
            out.append(c)
            stack.extend(c.children)
        return out

    def remove(self, n: Node) -> None:
        """``n`` and everything derived from it leave their page tables and the tree."""
        for m in [n, *self.below(n)]:
            del self.pages[(m.space, m.vpn)]
            m.space = None
        if n.parent is not None:
            n.parent.children.remove(n)
            n.parent = None

    def alive(self, n: Node) -> bool:
        return n.space is not None

    def map(self, src: Node, dst: Any, vpn: int, rights: int) -> None:
        rights &= src.rights
        old = self.at(dst, vpn)
        if old is not None:
            if old.parent is src and old.pfn == src.pfn:
                old.rights |= rights
                return
            self.remove(old)
            if not self.alive(src):
                return
        self.pages[(dst, vpn)] = Node(dst, vpn, src.pfn, rights, src)

    def grant(self, src: Node, dst: Any, vpn: int, rights: int) -> None:
        rights &= src.rights
        old = self.at(dst, vpn)
        if old is src:
            return
        if old is not None:
            self.remove(old)
            if not self.alive(src):
                return
        del self.pages[(src.space, src.vpn)]
        src.space, src.vpn, src.rights = dst, vpn, rights
        self.pages[(dst, vpn)] = src
        for d in self.below(src):
            d.rights &= rights

    def unmap(self, n: Node, include_self: bool, mask: int) -> None:
        tops = [n] if include_self else list(n.children)
        for top in tops:
            if mask & R:
                self.remove(top)
            else:
                for d in [top, *self.below(top)]:
                    d.rights &= ~mask


class MemoryMachine(RuleBasedStateMachine):
    """Kernel and model side by side; every rule applies to both."""

    def __init__(self) -> None:
        super().__init__()
        self.k = Kernel(Machine(ram=64 * 4096))
        self.s0 = self.k.create_task("sigma0")  # what create_sigma0 does, without a thread
        self.s0.vspace.sigma0 = True
        self.factory = self.k.create_factory(1 << 30)
        self.tasks = [self.k.create_task(f"t{i}", self.factory) for i in range(NTASKS)]
        self.base_used = self.factory.used
        self.model = Model()
        self.ops = 0

    # --- helpers
    def kspace(self, space: Any) -> Any:
        return self.s0 if space == "s0" else self.tasks[space]

    def where(self, kn: Any) -> tuple[Any, int] | None:
        """(space, vpn) of a kernel mapping in the model's terms (None for no mapping)."""
        if kn is None:
            return None
        return ("s0" if kn.space is self.s0 else self.tasks.index(kn.space), kn.vpn)

    def knode(self, space: Any, vpn: int) -> Any:
        return self.kspace(space).vspace.pages.get(vpn)

    # --- rules
    @rule(pfn=st.sampled_from(FRAMES), dst=tasks_st, vpn=vpns_st, rights=st.sampled_from(MAP_RIGHTS))
    def map_from_sigma0(self, pfn: int, dst: int, vpn: int, rights: int) -> None:
        root = self.k.sigma0_root(self.s0, pfn)
        assert root is not None, "sigma0 always holds a frame it has not given away"
        self.k.mem_map(root, self.tasks[dst], vpn, rights, False)
        self.model.map(self.model.s0_root(pfn), dst, vpn, rights)
        self.ops += 1

    def pick(self, i: int, with_s0: bool) -> tuple[Any, Node] | None:
        """The ``i``-th (mod count) mapping the model has, in a fixed order: (kernel node, model node)."""
        keys = sorted((k for k in self.model.pages if with_s0 or k[0] != "s0"), key=str)
        if not keys:
            return None
        space, vpn = keys[i % len(keys)]
        kn = self.knode(space, vpn)
        assert kn is not None, f"the kernel lost {space}:{vpn:#x}"
        return kn, self.model.pages[(space, vpn)]

    @rule(i=st.integers(0, 1 << 16), dst=tasks_st, dvpn=vpns_st, rights=st.sampled_from(MAP_RIGHTS),
          grant=st.booleans())
    def map_or_grant(self, i: int, dst: int, dvpn: int, rights: int, grant: bool) -> None:
        """A task maps (or grants) one of its pages to a page of some task, maybe itself."""
        got = self.pick(i, with_s0=False)
        if got is None:
            return
        kn, mn = got
        self.k.mem_map(kn, self.tasks[dst], dvpn, rights, grant)
        (self.model.grant if grant else self.model.map)(mn, dst, dvpn, rights)
        self.ops += 1

    @rule(i=st.integers(0, 1 << 16), mask=st.sampled_from(MASKS), include_self=st.booleans())
    def unmap(self, i: int, mask: int, include_self: bool) -> None:
        """Unmap from one mapping (sigma0's roots included) what is derived from it."""
        got = self.pick(i, with_s0=True)
        if got is None:
            return
        kn, mn = got
        self.k.mdb_remove(kn, include_self=include_self, mask=mask)
        self.model.unmap(mn, include_self, mask)
        self.ops += 1

    # --- the property
    @invariant()
    def every_access_matches_the_model(self) -> None:
        model = self.model
        for i, t in enumerate(self.tasks):
            for vpn in VPNS:
                kn = t.vspace.pages.get(vpn)
                mn = model.at(i, vpn)
                if mn is None:
                    assert kn is None, f"t{i}:{vpn:#x} reaches frame {kn.pfn} but the model says nothing"
                    continue
                assert kn is not None, f"t{i}:{vpn:#x} has no mapping but the model has frame {mn.pfn}"
                assert (kn.pfn, int(kn.rights)) == (mn.pfn, int(mn.rights)), f"t{i}:{vpn:#x}"
                assert self.where(kn.parent) == (None if mn.parent is None else (mn.parent.space, mn.parent.vpn)), \
                    f"t{i}:{vpn:#x} derived from the wrong mapping"
            assert len(t.vspace.pages) == sum(1 for (s, _) in model.pages if s == i)

    @invariant()
    def kernel_memory_matches_the_mappings(self) -> None:
        total = 0
        for t in self.tasks:
            vpns = list(t.vspace.pages)
            charge = len(vpns) * MAPPING_SIZE + len({v >> PT_SHIFT for v in vpns}) * PT_SIZE
            assert t.vspace.charge == charge, t.name
            total += charge
        assert self.factory.used == self.base_used + total

    def teardown(self) -> None:
        violations = [v for v in invariants.check(self.k) if "root capabilities" not in v]
        assert violations == []


MemoryMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow])
TestMemoryModel = MemoryMachine.TestCase
TestMemoryModel.__doc__ = "Random map/grant/unmap sequences agree with the reference derivation-tree model."
