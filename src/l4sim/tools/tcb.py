"""Trusted computing bases, measured: what a component's security depends on, and its size.

``l4sim tcb SCENARIO COMPONENT`` runs the scenario and walks the live
authority graph -- the kernel's own state, as a debugger would -- at the
last instant COMPONENT was alive.  A component (a task) depends on

- the **kernel**, always;
- every component that serves an IPC gate it holds a capability to (its
  servers: moe for dataspaces, the GUI, the bank ...), because it trusts
  their answers;
- every component from whose mappings its pages and ports derive (its
  pagers' memory: moe, sigma0, io, a driver), because they can read, change
  or take back that memory;
- every component holding a capability to its task or one of its threads
  (its loader, ned), because they can stop it or change it;

and, transitively, on everything those depend on.  The graph is the
mapping database and capability tables at that instant: nothing is listed
by hand.

A component's size is the lines of code (not blank, not comment, not
docstring) of the modules it runs: the modules of the functions on its
threads' coroutine stacks -- the program, its region manager -- and what
they import from the user library, the drivers and the security
components (the runtime's modules count where they run: moe's, sigma0's,
ned's).  The kernel is ``l4sim/kernel``.  A module shared by components is
counted once in a total.  (A Linux instance will count the personality
and the guest binaries it ran.)

``l4sim tcb compare SCENARIO`` sets the TCB of an application run
monolithically beside the same application split into an untrusted part
and a small AppCore (the scenario's ``TCB_COMPARE``), with the ratios of
Singaravelu, Pu, Härtig and Helmuth (EuroSys 2006) beside it: ratios, not
absolute sizes, are what compare.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l4sim.kernel.caps import MapNode
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS, IpcGate, Task, Thread
from l4sim.kernel.trace import Record, Tracer
from l4sim.machine.board import Machine
from l4sim.tools.boot import BootError, load_scenario
from l4sim.tools.loc import code_lines

ROOT = Path(__file__).resolve().parent.parent
#: packages whose modules a component's code pulls in through imports (the runtime's, the
#: kernel's and the tools' do not: they count where they run, or as the kernel, or not at all)
LIBRARY = ("user", "drivers", "security", "linux")
#: EuroSys 2006, table of TCB sizes (kLoC): monolithic, split
PAPER = (("e-commerce", 978, 10), ("VPN", 155, 74), ("e-mail signer", 250, 54), ("Linux + X11", 1485, 100))


#: kinds of dependence (:class:`Component`)
USES, CONTROLS, MEMORY = "uses", "controls", "memory"


class TcbError(BootError):
    """A TCB question that cannot be answered: one line naming it and the fix."""


# --------------------------------------------------------------------------- lines of code
_LOC: dict[Path, int] = {}


def loc(path: Path) -> int:
    """Lines of ``path`` with code on them: no blank lines, comments or docstrings (counted as
    :func:`l4sim.tools.loc.code_lines` counts them, once per file and run)."""
    n = _LOC.get(path)
    if n is None:
        _LOC[path] = n = code_lines(path.read_text())
    return n


def kernel_modules() -> list[Path]:
    return sorted((ROOT / "kernel").glob("*.py"))


def _module_path(name: str) -> Path | None:
    if not name.startswith("l4sim."):
        return None
    rel = Path(*name.split(".")[1:])
    for p in (ROOT / rel.with_suffix(".py"), ROOT / rel / "__init__.py"):
        if p.is_file():
            return p
    return None


@functools.cache
def _imports(path: Path) -> set[Path]:
    """The l4sim modules ``path`` imports (absolute and relative, at any depth)."""
    out: set[Path] = set()
    pkg = ".".join(("l4sim", *path.relative_to(ROOT).parent.parts))
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            p = _module_path(name)
            if p is not None and p.name != "__init__.py":
                out.add(p)
    return out


@functools.cache
def code_of(frames: frozenset[Path]) -> list[Path]:
    """The modules a component runs: those of its stack frames and, from the library packages
    (:data:`LIBRARY`), everything they import."""
    seen = set(frames)
    todo = list(frames)
    while todo:
        for p in _imports(todo.pop()):
            if p not in seen and p.relative_to(ROOT).parts[0] in LIBRARY:
                seen.add(p)
                todo.append(p)
    return sorted(seen)


def _frames(th: Thread) -> Iterator[Path]:
    """The source files of the coroutine frames a thread is running (its call stack)."""
    coro: Any = th.coro
    while coro is not None and hasattr(coro, "cr_code"):
        code = coro.cr_code
        path = Path(code.co_filename)
        if not (code.co_name == "_main_entry" and path.name == "loader.py"):  # the loader's 3-line glue
            with_root = path.resolve()
            if with_root.is_relative_to(ROOT):
                yield with_root
        coro = coro.cr_await


# --------------------------------------------------------------------------- the authority graph
@dataclass
class Component:
    name: str
    #: the modules it runs
    modules: list[Path] = field(default_factory=list)
    #: components it depends on -> (why, the first reason seen, ``{}`` standing for this one;
    #: the kind of dependence: USES a server, is CONTROLLED by it, or its MEMORY comes from it)
    deps: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Graph:
    """The authority graph at one instant."""

    time: int
    components: dict[str, Component]


def _node_space(n: MapNode) -> Task | None:
    space = getattr(n, "space", None)
    return space if isinstance(space, Task) else None


def snapshot(kernel: Kernel) -> Graph:
    """The authority graph of the live tasks, now."""
    tasks = [t for t in kernel.tasks
             if t.alive and any(th.task is t and th.state is not TS.DEAD for th in kernel.threads)]
    names: dict[int, str] = {}
    for t in tasks:
        names[id(t)] = t.name
    comps = {t.name: Component(t.name) for t in tasks}
    for th in kernel.threads:
        if th.task is not None and id(th.task) in names and th.state is not TS.DEAD:
            c = comps[names[id(th.task)]]
            c.modules = sorted(set(c.modules) | set(_frames(th)))
    for t in tasks:
        me = comps[t.name]
        for entry in t.caps.slots.values():
            obj = entry.obj
            if type(obj) is IpcGate and obj.thread is not None and obj.thread.task is not None:
                owner = obj.thread.task
                if owner is not t and id(owner) in names:
                    me.deps.setdefault(owner.name, ("serves a gate {} holds", USES))
            elif type(obj) is Task and obj is not t and id(obj) in names:
                comps[obj.name].deps.setdefault(t.name, ("holds {}'s task", CONTROLS))
            elif type(obj) is Thread and obj.task is not None and obj.task is not t and id(obj.task) in names:
                comps[obj.task.name].deps.setdefault(t.name, ("holds {}'s thread", CONTROLS))
        seen: set[int] = set()
        for table, what in ((t.vspace.pages, "maps {}'s memory"), (t.vspace.io, "maps {}'s ports")):
            for m in table.values():
                p: MapNode | None = m.parent
                while p is not None and id(p) not in seen:
                    seen.add(id(p))
                    s = _node_space(p)
                    if s is not None and s is not t and id(s) in names:
                        me.deps.setdefault(s.name, (what, MEMORY))
                    p = p.parent
    return Graph(kernel.machine.now, comps)


def closure(g: Graph, name: str) -> dict[str, str]:
    """``name`` and everything it depends on, each with why (the first edge that reached it),
    in the order found (breadth first).

    A server it uses counts with everything that server depends on.  A component that
    controls it (holds its task or a thread: its loader) counts with what could take that
    control over -- whoever controls the controller, and the memory it runs in -- but not with
    the servers it merely holds gates of: ned keeps every channel of its script, and a bank
    does not join a GUI client's TCB because ned once made the bank's channel.
    """
    why = {name: "itself"}
    full = {name: True}
    todo = [name]
    while todo:
        n = todo.pop(0)
        for d, (reason, kind) in g.components[n].deps.items():
            if kind == USES and not full[n]:
                continue
            f = full[n] and kind != CONTROLS
            if d not in full:
                why[d] = reason.format(n)
                full[d] = f
                todo.append(d)
            elif f and not full[d]:  # reached again, now with everything: look at its servers too
                full[d] = True
                todo.append(d)
    return why


class _Watcher(Tracer):
    """The tracing hook as an observer: a look at the authority graph whenever a thread ends.

    A component's graph is the latest look at it alive with the system at its fullest (as many
    components alive as ever beside it): when the system ends, ned takes its programs apart one
    by one, and a server gone first must not drop out of its clients' TCBs.  Each look comes
    before anything of a program is taken apart: ned's loader deletes the program's watcher
    thread (one of ned's own) before the program's task.
    """

    __slots__ = ("kernel", "last")

    def __init__(self) -> None:
        super().__init__()
        self.kernel: Kernel | None = None
        #: component name -> the latest graph it was alive in
        self.last: dict[str, Graph] = {}

    def emit(self, rec: Record) -> None:
        if rec[2] == "exit" and self.kernel is not None:
            self.look()

    def look(self) -> None:
        assert self.kernel is not None
        g = snapshot(self.kernel)
        for name in g.components:
            old = self.last.get(name)
            if old is None or len(g.components) >= len(old.components):
                self.last[name] = g


def run(scenario: str, component: str, cores: int = 2, seed: int = 0) -> Graph:
    """Run ``scenario`` and return the authority graph with ``component`` alive in the fullest
    system (a look whenever a thread ends, and at the end; :class:`_Watcher`)."""
    from l4sim.tools.display import parse_input, schedule_input

    mod = load_scenario(scenario)
    machine = Machine(cores=cores, seed=seed)
    watcher = _Watcher()
    kernel = Kernel(machine, tracer=watcher)
    watcher.kernel = kernel
    root = mod.setup(kernel)
    text = getattr(mod, "DEFAULT_INPUT", None)
    if isinstance(text, str):
        schedule_input(machine, parse_input(text, f"{scenario}'s input"))
    stop = root.done if hasattr(root, "done") else (lambda: root.state is TS.DEAD)
    kernel.run(stop=stop)
    watcher.look()
    watcher.kernel = None
    kernel.shutdown()
    g = watcher.last.get(component)
    if g is None:
        raise TcbError(f"{scenario} has no component {component!r}: choose one of "
                       f"{', '.join(sorted(watcher.last))}")
    for c in g.components.values():
        c.modules = code_of(frozenset(c.modules))
    return g


@dataclass
class Tcb:
    scenario: str
    component: str
    graph: Graph
    #: the TCB's components (but the kernel), each with why it is in
    why: dict[str, str]

    @property
    def members(self) -> list[str]:
        return list(self.why)

    def rows(self) -> list[dict[str, Any]]:
        comps = self.graph.components
        out = [{"name": "kernel", "why": "always", "loc": sum(loc(p) for p in kernel_modules()),
                "modules": [str(p.relative_to(ROOT)) for p in kernel_modules()]}]
        for n in self.members:
            mods = comps[n].modules
            out.append({"name": n, "why": self.why[n], "loc": sum(loc(p) for p in mods),
                        "modules": [str(p.relative_to(ROOT)) for p in mods]})
        return out

    def modules(self) -> set[Path]:
        mods = set(kernel_modules())
        for n in self.members:
            mods.update(self.graph.components[n].modules)
        return mods

    def total(self) -> int:
        """Lines of the TCB, each module once."""
        return sum(loc(p) for p in self.modules())


def tcb(scenario: str, component: str, cores: int = 2, seed: int = 0) -> Tcb:
    g = run(scenario, component, cores, seed)
    return Tcb(scenario, component, g, closure(g, component))


def format_tcb(t: Tcb) -> str:
    rows = t.rows()
    w0 = max(len(r["name"]) for r in rows)
    w1 = max(len(r["why"]) for r in rows)
    lines = [f"TCB of {t.component} in {t.scenario}, from the authority graph at "
             f"{t.graph.time / 1e6:.3f} ms (the latest look at it alive in the fullest system)", "",
             f"{'component':<{w0}}  {'depends because':<{w1}}  {'lines':>6}  modules"]
    for r in rows:
        mods = ", ".join(m.removesuffix(".py") for m in r["modules"]) if r["name"] != "kernel" else "kernel/*"
        lines.append(f"{r['name']:<{w0}}  {r['why']:<{w1}}  {r['loc']:>6}  {mods}")
    lines.append("")
    lines.append(f"TCB: {len(rows)} components, {t.total()} lines of code (each module counted once)")
    return "\n".join(lines)


def to_json(t: Tcb) -> dict[str, Any]:
    return {"scenario": t.scenario, "component": t.component, "time_ns": t.graph.time,
            "tcb": t.rows(), "total_loc": t.total()}


def dot(t: Tcb) -> str:
    """The authority graph in Graphviz's language: an arrow from a component to what it depends
    on (a server it uses, what controls it, where its memory comes from); the TCB filled, the
    rest grey."""
    members = set(t.members)
    lines = ["digraph tcb {", '  rankdir=TB; node [shape=box, fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8];',
             f'  label="TCB of {t.component} in {t.scenario}: {t.total()} lines"; labelloc=t;',
             '  kernel [style=filled, fillcolor="#f4c542"];']
    sizes = {r["name"]: r["loc"] for r in t.rows()}
    for name, c in sorted(t.graph.components.items()):
        lines_ = sizes.get(name, sum(loc(p) for p in c.modules))
        style = ('style=filled, fillcolor="#9fd39f"' if name == t.component else
                 'style=filled, fillcolor="#cfe3f7"' if name in members else 'color="#aaaaaa", fontcolor="#888888"')
        lines.append(f'  "{name}" [label="{name}\\n{lines_} lines", {style}];')
    for name, c in sorted(t.graph.components.items()):
        for d, (_, kind) in c.deps.items():
            colour = "black" if name in members and d in members else "#bbbbbb"
            label = {USES: "uses", CONTROLS: "controlled by", MEMORY: "memory from"}[kind]
            lines.append(f'  "{name}" -> "{d}" [label="{label}", color="{colour}", fontcolor="{colour}"];')
    for name in sorted(members):
        lines.append(f'  "{name}" -> kernel [style=dotted];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(t: Tcb, path: str) -> str | None:
    """Write the graph to ``path`` (``.svg``/``.png``/``.pdf`` through Graphviz, ``.dot`` as
    text); returns a line to show instead when Graphviz is missing."""
    source = dot(t)
    if path.endswith(".dot"):
        Path(path).write_text(source)
        return None
    try:
        import graphviz  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return "the graph needs Graphviz: pip install graphviz (and apt-get install graphviz); skipped"
    fmt = Path(path).suffix.lstrip(".") or "svg"
    try:
        data = graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        return "the graph needs Graphviz's dot program: apt-get install graphviz; skipped"
    except graphviz.CalledProcessError as e:
        return f"Graphviz could not draw the graph ({str(e).splitlines()[0]}); skipped"
    Path(path).write_bytes(data)
    return None


# --------------------------------------------------------------------------- monolithic against split
def compare(scenario: str, cores: int = 2, seed: int = 0) -> dict[str, Any]:
    """The TCBs of the scenario's ``TCB_COMPARE``: {"monolithic": (scenario, [components]),
    "split": (scenario, component), "paper": row name}; a monolithic application of several
    components is their union (one program would use everything they use)."""
    mod = load_scenario(scenario)
    spec = getattr(mod, "TCB_COMPARE", None)
    if not isinstance(spec, dict):
        raise TcbError(f"scenario {scenario} defines no monolithic and split pair (TCB_COMPARE): "
                       f"compare one that does, e.g. split-demo")
    mono_s, mono_c = spec["monolithic"]
    split_s, split_c = spec["split"]
    mono_mods: set[Path] = set()
    mono_names: list[str] = []
    for c in mono_c:
        t = tcb(mono_s, c, cores, seed)
        mono_mods |= t.modules()
        mono_names += [n for n in t.members if n not in mono_names]
    s = tcb(split_s, split_c, cores, seed)
    m_loc = sum(loc(p) for p in mono_mods)
    s_loc = s.total()
    return {"monolithic_loc": m_loc, "split_loc": s_loc, "ratio": round(m_loc / s_loc, 2),
            "monolithic": ["kernel", *mono_names], "split": ["kernel", *s.members],
            "paper": spec.get("paper", "e-commerce"), "note": spec.get("note", "")}


def format_compare(r: dict[str, Any]) -> str:
    lines = [f"monolithic: {r['monolithic_loc']:>6} lines  ({', '.join(r['monolithic'])})",
             f"split:      {r['split_loc']:>6} lines  ({', '.join(r['split'])})",
             f"ratio:      {r['ratio']:.2f}x", ""]
    if r.get("note"):
        lines += [r["note"], ""]
    lines.append("EuroSys 2006 (Singaravelu, Pu, Härtig, Helmuth), kLoC:")
    lines.append(f"  {'application':<14} {'monolithic':>10} {'split':>6} {'ratio':>7}")
    for name, mono, split in PAPER:
        mark = "  <- this scenario's counterpart" if name == r.get("paper") else ""
        lines.append(f"  {name:<14} {mono:>10} {split:>6} {mono / split:>6.1f}x{mark}")
    lines.append("")
    lines.append("Compare the ratios, not the sizes: l4sim's components are models, a fraction of the "
                 "size of the real ones.")
    return "\n".join(lines)
