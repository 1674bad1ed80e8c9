"""Communication-control models: who may send to whom, and what the receiver learns.

Elphinstone ("Future Directions in the Evolution of the L4 Microkernel",
section 4) names communication control as one of the two impediments to
L4 in secure systems, and lists the designs tried.  Each is a *model* here,
chosen when the kernel is built (``Kernel(comm_model=...)``):

``capabilities`` (the default; no model object at all)
    Fiasco.OC today: IPC names a capability (an IPC gate or a thread) in
    the sender's own space; the receiver sees the gate's label.  A program
    reaches only what it was given.
``global-ids``
    The original L4: threads have global identifiers and any thread may
    send to any identifier; the receiver sees the sender's id.  No control:
    a program can scan the id space for receivers.
``clans-chiefs``
    L4 version 2 (Liedtke): every task has a chief, the task that created it,
    fixed for its life.  IPC among the tasks of one clan (same chief), and
    between a task and its own chief, goes directly; anything else is
    redirected by the kernel to the next chief on the way -- up to the
    sender's chief when the destination lies outside the sender's clan,
    down to the destination's enclosing chief when it lies inside.  A chief
    may forward impersonating the original sender, but only across a clan
    boundary it guards.
``redirection``
    Jaeger et al.: a table per (source task, destination task) pair, set by
    a privileged manager through the comm-control object: allow, block, or
    redirect to an intermediary thread.  A change takes effect at the next
    IPC.  An intermediary may forward impersonating the source only along
    the path of intermediaries the table gives.
``redirectors``
    L4Ka::Pistachio (X.2): one redirector per address space, nil or a
    thread that receives all of the space's IPC to other spaces (but for
    IPC to the redirector itself); it may forward impersonating the sender.
``pclans``
    Groups of tasks with uncontrolled IPC inside, and the redirection table
    between groups.
``virtual-threads``
    Per-task thread spaces managed with map/grant/unmap, like memory (here:
    thread capabilities in the capability space): a sender names the
    destination by its index in its own space and names itself by its
    index in the receiver's space; the kernel checks the latter, so the
    receiver authenticates the sender by a name of its own choosing.

How the models fit the kernel: IPC that names its destination by a
*capability* is unchanged under every model (the runtime -- moe, ned,
sigma0 -- keeps working, and a program still reaches only what it holds).
The models govern IPC that names its destination by *thread id*
(``abi.tid(kid)`` in ``Ipc.cap``), which the thread-id models allow and
the capability model refuses (ENOT_EXISTENT: no such capability), and,
for ``virtual-threads``, IPC through a thread capability.  Each model is
one object behind one narrow interface -- :meth:`CommModel.route` resolves
a destination and the identity the receiver sees, :meth:`CommModel.
may_impersonate` checks a forwarder's claim -- and the kernel's IPC path
asks it at one place; with the default model that place costs one
attribute test, on the fastpath too.

A message the kernel redirects reaches the intermediary with the original
sender's id as its label and the original destination's id in
``Msg.dest``; the intermediary forwards with ``Ipc(abi.tid(dest), ...,
sender=label)``, which the model checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from l4sim.kernel.abi import TID_FLAG, TID_MASK, Err, IpcErr
from l4sim.kernel.objects import TS, KObject, Task, Thread

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Kernel

#: the names a scenario may choose
COMM_MODELS = ("capabilities", "global-ids", "clans-chiefs", "redirection", "redirectors",
               "pclans", "virtual-threads")

#: redirection-table actions (the comm-control object's words)
ALLOW, BLOCK, REDIRECT = 0, 1, 2
#: longest chain of intermediaries a route may take (a table can describe a loop)
MAX_HOPS = 16


@dataclass(frozen=True, slots=True)
class Route:
    """Where the kernel delivers a message, and what the receiver is told."""

    to: Thread
    label: int  # what identifies the sender to the receiver
    dest: int = 0  # the final destination's id when ``to`` is an intermediary, else 0


def first_thread(task: Task | None) -> Thread | None:
    """The thread that stands for a task as an intermediary (its first live thread)."""
    if task is None:
        return None
    for th in task.threads:
        if th.state is not TS.DEAD:
            return th
    return None


class CommModel:
    """The interface every communication-control model implements.

    ``route(k, src, dest_id, dest, claimed)``: a message from thread ``src``
    to the thread with id ``dest_id`` -- ``dest``, or None when no live thread
    has that id -- presenting identity ``claimed`` (0: its own), goes to the
    returned :class:`Route`, or fails with the returned IPC error code.  A
    model that sends the message to an intermediary does so whether the
    destination exists or not (the intermediary learns the id), so the
    sender cannot tell.  It decodes only: nothing may change.
    """

    name = "?"
    #: a thread id names a destination (False: only capabilities do)
    ids = True
    #: IPC through a thread capability is governed by the model too (virtual threads)
    thread_caps = False

    def task_created(self, task: Task, creator: Task | None) -> None:
        """A task was created by a thread of ``creator`` (None: at boot)."""

    def route(self, k: Kernel, src: Thread, dest_id: int, dest: Thread | None,
              claimed: int) -> Route | int:
        raise NotImplementedError

    def route_cap(self, k: Kernel, src: Thread, dest: Thread, claimed: int) -> int | None:
        """The label for IPC through a thread capability, or None when refused."""
        return 0

    def control(self, k: Kernel, op: int, args: list[KObject | int]) -> int:
        """An operation of the comm-control object (a privileged manager's); 0 or ``-Err``."""
        return -int(Err.ENOSYS)


def _own(src: Thread, claimed: int) -> bool:
    return claimed == 0 or claimed == TID_FLAG | src.kid


class GlobalIds(CommModel):
    """Any thread may send to any thread id; the receiver sees the sender's id."""

    name = "global-ids"

    def route(self, k: Kernel, src: Thread, dest_id: int, dest: Thread | None,
              claimed: int) -> Route | int:
        if dest is None or not _own(src, claimed):
            return int(IpcErr.ENOT_EXISTENT)  # no such thread; no impersonation without intermediaries
        return Route(dest, TID_FLAG | src.kid)


class _Redirecting(CommModel):
    """Common to the models that redirect through intermediaries.

    ``path`` gives the intermediaries a message passes from a sender to a
    destination task (None: a thread id that names no live thread); the
    kernel delivers to the first, which learns the destination and forwards.
    An intermediary may present the original sender's identity only when it
    is on the path from that sender to the destination.
    """

    def path(self, k: Kernel, src: Thread, dt: Task | None) -> list[Thread] | int:
        raise NotImplementedError

    def route(self, k: Kernel, src: Thread, dest_id: int, dest: Thread | None,
              claimed: int) -> Route | int:
        dt = dest.task if dest is not None else None
        origin = src
        if not _own(src, claimed):
            claimer = k.thread_ids.get(claimed & TID_MASK) if claimed >> 41 == 0 and claimed & TID_FLAG \
                else None
            if claimer is None:
                return int(IpcErr.ENOT_EXISTENT)
            theirs = self.path(k, claimer, dt)
            if type(theirs) is int or src not in theirs:  # type: ignore[operator]
                return int(IpcErr.ENOT_EXISTENT)  # not on the claimed sender's path
            origin = claimer
        hop = self.first(k, src, dt)
        if type(hop) is int:
            return hop
        label = TID_FLAG | origin.kid
        if hop is not None:
            assert isinstance(hop, Thread)
            return Route(hop, label, TID_FLAG | dest_id)
        if dest is None:
            return int(IpcErr.ENOT_EXISTENT)
        return Route(dest, label)

    def first(self, k: Kernel, src: Thread, dt: Task | None) -> Thread | int | None:
        """The first intermediary on the way (None: direct), or an error."""
        hops = self.path(k, src, dt)
        if type(hops) is int:
            return hops
        assert isinstance(hops, list)
        return hops[0] if hops else None


class ClansChiefs(_Redirecting):
    """L4 v2's clans and chiefs: a task's chief is its creator, fixed at creation."""

    name = "clans-chiefs"

    def __init__(self) -> None:
        self.chief: dict[int, Task | None] = {}

    def task_created(self, task: Task, creator: Task | None) -> None:
        self.chief[task.kid] = creator

    def next_hop(self, st: Task, dt: Task | None) -> Task | None:
        """The task a message from task ``st`` to task ``dt`` goes to next (``dt``: direct).

        Direct between siblings (one clan), to one's own chief, and from a
        chief into its own clan.  Otherwise the message crosses a clan's
        border and goes to that clan's chief: into the clan of the
        destination's ancestor that is the sender's sibling or child, or out
        of the sender's clan to the sender's chief -- also for a destination
        that does not exist, which only the chief then learns.
        """
        chief = self.chief.get
        cs = chief(st.kid)
        if dt is None:
            return cs
        if cs is chief(dt.kid) or dt is cs or st is chief(dt.kid):
            return dt
        a: Task | None = dt
        for _ in range(4 * MAX_HOPS):
            if a is None:
                break
            up = chief(a.kid)
            if up is st or (up is cs and a is not st):
                return a  # the sender's child or sibling above the destination: enter its clan
            a = up
        return cs

    def first(self, k: Kernel, src: Thread, dt: Task | None) -> Thread | int | None:
        """Only the next chief: what lies beyond it is that chief's to pass on."""
        st = src.task
        if st is None:
            return int(IpcErr.ENOT_EXISTENT)
        nxt = self.next_hop(st, dt)
        if nxt is dt:
            return None
        th = first_thread(nxt)
        return th if th is not None else int(IpcErr.ENOT_EXISTENT)

    def path(self, k: Kernel, src: Thread, dt: Task | None) -> list[Thread] | int:
        """The chiefs between ``src`` and ``dt``, in order (empty: direct)."""
        cur = src.task
        if cur is None:
            return int(IpcErr.ENOT_EXISTENT)
        hops: list[Thread] = []
        while True:
            nxt = self.next_hop(cur, dt)
            if nxt is dt:
                return hops
            th = first_thread(nxt)
            if th is None or th in hops or len(hops) >= MAX_HOPS:
                return int(IpcErr.ENOT_EXISTENT)  # a chief without a thread: nobody passes it on
            hops.append(th)
            assert nxt is not None
            cur = nxt


class Redirection(_Redirecting):
    """Jaeger et al.'s IPC redirection: a table per (source, destination) task pair."""

    name = "redirection"

    def __init__(self) -> None:
        #: (source key, destination key) -> (action, intermediary)
        self.rules: dict[tuple[int, int], tuple[int, Thread | None]] = {}
        #: what a pair without a rule does (ALLOW or BLOCK)
        self.default = ALLOW

    def key(self, task: Task) -> int:
        return task.kid

    def path(self, k: Kernel, src: Thread, dt: Task | None) -> list[Thread] | int:
        if dt is None:
            return int(IpcErr.ENOT_EXISTENT)  # no rule names a thread that does not exist
        hops: list[Thread] = []
        cur = src
        while True:
            st = cur.task
            if st is None:
                return int(IpcErr.ENOT_EXISTENT)
            if st is dt:
                return hops
            action, via = self.rules.get((self.key(st), self.key(dt)), (self.default, None))
            if action == BLOCK:
                return int(IpcErr.ENOT_EXISTENT)  # as for a thread that does not exist: no probing
            if action == ALLOW or via is None or via is cur:
                return hops
            if via.state is TS.DEAD or via in hops or len(hops) >= MAX_HOPS:
                return int(IpcErr.ENOT_EXISTENT)
            hops.append(via)
            cur = via

    def control(self, k: Kernel, op: int, args: list[KObject | int]) -> int:
        """op 0: set (src task, dst task, action, intermediary thread or 0); op 1: default action."""
        if op == 1:
            if args[0] not in (ALLOW, BLOCK):
                return -int(Err.EINVAL)
            self.default = int(args[0])
            return 0
        if op != 0:
            return -int(Err.ENOSYS)
        src, dst, action, via = args
        if not isinstance(src, Task) or not isinstance(dst, Task) or action not in (ALLOW, BLOCK, REDIRECT):
            return -int(Err.EINVAL)
        if action == REDIRECT and not isinstance(via, Thread):
            return -int(Err.EINVAL)
        self.rules[(self.key(src), self.key(dst))] = (int(action),
                                                      via if isinstance(via, Thread) else None)
        return 0


class PClans(Redirection):
    """Groups with uncontrolled IPC inside and the redirection table between groups."""

    name = "pclans"

    def __init__(self) -> None:
        super().__init__()
        self.group: dict[int, int] = {}

    def key(self, task: Task) -> int:
        return self.group.get(task.kid, -task.kid)  # an ungrouped task is a group of its own

    def path(self, k: Kernel, src: Thread, dt: Task | None) -> list[Thread] | int:
        st = src.task
        if st is not None and dt is not None and self.key(st) == self.key(dt):
            return []  # inside a group: uncontrolled
        return super().path(k, src, dt)

    def control(self, k: Kernel, op: int, args: list[KObject | int]) -> int:
        """op 2: put (task) into group (number > 0); ops 0, 1: the table, between groups."""
        if op == 2:
            task, group = args
            if not isinstance(task, Task) or not isinstance(group, int) or group <= 0:
                return -int(Err.EINVAL)
            self.group[task.kid] = group
            return 0
        return super().control(k, op, args)


class Redirectors(_Redirecting):
    """L4Ka::Pistachio's redirectors: one per address space, for its outgoing IPC."""

    name = "redirectors"

    def __init__(self) -> None:
        self.redirector: dict[int, Thread] = {}

    def path(self, k: Kernel, src: Thread, dt: Task | None) -> list[Thread] | int:
        hops: list[Thread] = []
        cur = src
        while cur.task is not dt and len(hops) < MAX_HOPS:
            assert cur.task is not None
            red = self.redirector.get(cur.task.kid)
            if red is None or red is cur or (dt is not None and red.task is dt):
                return hops
            if red.state is TS.DEAD or red in hops:
                return int(IpcErr.ENOT_EXISTENT)
            hops.append(red)
            cur = red
        return hops

    def control(self, k: Kernel, op: int, args: list[KObject | int]) -> int:
        """op 3: set the redirector of (task) to (thread, or 0 for nil)."""
        if op != 3:
            return -int(Err.ENOSYS)
        task, red = args
        if not isinstance(task, Task):
            return -int(Err.EINVAL)
        if isinstance(red, Thread):
            self.redirector[task.kid] = red
        else:
            self.redirector.pop(task.kid, None)
        return 0


class VirtualThreads(CommModel):
    """Thread spaces as capability spaces: the sender proves its name in the receiver's space."""

    name = "virtual-threads"
    ids = False
    thread_caps = True

    def route(self, k: Kernel, src: Thread, dest_id: int, dest: Thread | None,
              claimed: int) -> Route | int:
        return int(IpcErr.ENOT_EXISTENT)  # no global ids in this model

    def route_cap(self, k: Kernel, src: Thread, dest: Thread, claimed: int) -> int | None:
        """The receiver sees ``claimed``, the sender's index in the receiver's thread space,
        after the kernel checked that the index names the sender there (0: anonymous)."""
        if claimed == 0:
            return 0
        rt = dest.task
        e = rt.caps.slots.get(claimed) if rt is not None else None
        if e is None or e.obj is not src:
            return None
        return claimed


def make(name: str) -> CommModel | None:
    """The model called ``name`` (None for the default, capabilities)."""
    models: dict[str, type[CommModel]] = {
        "global-ids": GlobalIds, "clans-chiefs": ClansChiefs, "redirection": Redirection,
        "redirectors": Redirectors, "pclans": PClans, "virtual-threads": VirtualThreads}
    if name == "capabilities":
        return None
    cls = models.get(name)
    if cls is None:
        raise ValueError(f"unknown communication model {name!r}; choose one of {', '.join(COMM_MODELS)}")
    return cls()
