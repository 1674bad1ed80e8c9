"""Shared helpers for kernel tests: build a machine, a kernel and a root program, run it.

Use the fixture ``run_system`` (or import the function: ``from .conftest import run_system``)::

    def test_x(run_system):
        out = []
        async def root(env):
            out.append(await env.clock())
        k, tr = run_system(root)

``root_fn(env)`` is an ``async def`` taking the root task's :class:`Env`
(all initial capabilities).  Programs report results to the test by
appending to lists captured by closure.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import Task, Thread
from l4sim.kernel.trace import Tracer
from l4sim.machine.board import Machine
from l4sim.user.env import INITIAL, Env, TaskLocal

RootFn = Callable[[Env], Coroutine[Any, Any, Any]]


def make_system(root_fn: RootFn, cores: int = 1, seed: int = 0, prio: int = 100,
                trace: bool = True, comm_model: str = "capabilities") -> tuple[Kernel, Tracer | None]:
    """A kernel with ``root_fn`` started as the root task, not yet run."""
    m = Machine(cores=cores, seed=seed)
    tr = Tracer() if trace else None
    k = Kernel(m, tracer=tr, comm_model=comm_model)
    k.create_root("root", lambda sp: root_fn(Env(TaskLocal(INITIAL))), prio=prio)
    return k, tr


def run_system(root_fn: RootFn, cores: int = 1, seed: int = 0, prio: int = 100,
               until: int | None = None, max_events: int | None = 1_000_000,
               trace: bool = True, comm_model: str = "capabilities") -> tuple[Kernel, Tracer | None]:
    """Build a system around ``root_fn`` and run it until idle (or ``until`` ns)."""
    k, tr = make_system(root_fn, cores=cores, seed=seed, prio=prio, trace=trace, comm_model=comm_model)
    why = k.run(until=until, max_events=max_events)
    assert why != "events", "the system did not settle within max_events"
    return k, tr


def thread_named(k: Kernel, name: str) -> Thread:
    """The (first) kernel thread called ``name``."""
    for th in k.threads:
        if th.name == name:
            return th
    raise KeyError(name)


def task_named(k: Kernel, name: str) -> Task:
    """The (first) kernel task called ``name``."""
    for t in k.tasks:
        if t.name == name:
            return t
    raise KeyError(name)


def ipc_errors(tr: Tracer) -> list[int]:
    """Codes of every ``ipc_err`` record, in order."""
    return [rec[4]["code"] for rec in tr.by_kind("ipc_err")]  # type: ignore[misc]


@pytest.fixture(name="run_system")
def run_system_fixture() -> Callable[..., tuple[Kernel, Tracer | None]]:
    """The :func:`run_system` helper as a fixture."""
    return run_system


@pytest.fixture(name="make_system")
def make_system_fixture() -> Callable[..., tuple[Kernel, Tracer | None]]:
    """The :func:`make_system` helper as a fixture."""
    return make_system
