"""Kernel memory is charged to whoever causes it: each program's own kmem quota.

The kernel charges a task's page tables to the factory that created the task.
ned creates each program's task, threads and parent gate from a factory of the
program's own (``start(..., kmem=...)``), so a program that grows its address
space without end spends its own quota and nobody else's.  The attack: a
program with no factory maps one page of its heap at 2 MiB strides with
``Task.map`` into its own task (every stride costs a page-table page); it must
be refused with -ENOMEM at its own quota, and programs that fault in heap
pages afterwards must run on.  Before per-program quotas it spent ned's root
factory (some 16,000 strides) and the others' heap faults failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from l4sim.kernel.abi import Err, Fpage
from l4sim.kernel.objects import IpcGate, Task, Thread
from l4sim.kernel.vspace import MAPPING_SIZE, PT_SIZE
from l4sim.machine.memory import PAGE_SIZE
from l4sim.runtime.loader import HEAP_SIZE, KMEM, MIN_KMEM, STACK_SIZE, min_kmem
from l4sim.runtime.ned import ScriptError, load_script
from l4sim.runtime.system import System
from l4sim.tools.boot import boot
from l4sim.user.env import Env, L4Error

from .test_system import run_plan, script, statuses

ME = __name__
#: where the hog maps its page, 2 MiB apart (far above its stack and heap)
HOG_BASE = 0x4000_0000
STRIDE = 2 << 20
#: a mapping and the page-table page of a new 2 MiB region
ONE_REGION = MAPPING_SIZE + PT_SIZE
#: what ned's loader creates from a program's kernel memory before it runs
START = Task.SIZE + 3 * Thread.SIZE + IpcGate.SIZE


# --- programs ---------------------------------------------------------------------------------


async def map_hog(env: Env) -> int:
    """Map one page of its own heap into its own task at 2 MiB strides until the kernel refuses.

    Exit 0 when the refusal is -ENOMEM (the count is printed), 1 for any other error, 2 if
    20,000 strides went through (no quota stopped it)."""
    heap, _ = env.heap
    await env.mem.write_word(heap, 1)  # one page of its own: the heap's first
    n = 0
    while n < 20_000:
        try:
            await env.task.map(env.task, Fpage.mem(heap, 12), HOG_BASE + n * STRIDE)
        except L4Error as e:
            await env.print(f"map_hog: mapping {n} refused: {e}")
            return 0 if e.err == Err.ENOMEM else 1
        n += 1
    return 2


async def hog_then_heap(env: Env) -> int:
    """The hog, then single pages into a region it has until not even a mapping fits, then one
    more heap page: its own quota is spent, so that fault cannot be resolved."""
    if await map_hog(env):
        return 1
    heap, _ = env.heap
    try:
        for i in range(1, 512):
            await env.task.map(env.task, Fpage.mem(heap, 12), HOG_BASE + i * PAGE_SIZE)
    except L4Error:
        pass
    await env.mem.write_word(heap + PAGE_SIZE, 2)
    return 3  # not reached: the fault ends it


async def heap_user(env: Env, name: str) -> int:
    """Fault in every page of its heap, write and read each back."""
    heap, size = env.heap
    for addr in range(heap, heap + size, PAGE_SIZE):
        await env.mem.write_word(addr, addr)
    for addr in range(heap, heap + size, PAGE_SIZE):
        if await env.mem.read_word(addr) != addr:
            return 1
    await env.print(f"{name}: all {size // PAGE_SIZE} heap pages")
    return 0


async def stack_and_heap(env: Env) -> int:
    """Touch every page of the stack and the heap."""
    for base, size in (env.stack, env.heap):
        for addr in range(base, base + size, PAGE_SIZE):
            await env.mem.write_word(addr, addr)
    return 0


# --- the attack -------------------------------------------------------------------------------


def test_a_program_mapping_2mib_strides_runs_out_of_its_own_kernel_memory_only(tmp_path: Path) -> None:
    """The hog is refused with -ENOMEM once its own 256 KiB are spent, after exactly as many
    strides as fit; programs faulting in their heaps afterwards (on its core, at a lower
    priority, and on the other core) all run; ned's root factory has hardly been touched."""
    p = script(tmp_path, f'''
start("hog", "{ME}:map_hog", prio=50)
start("after", "{ME}:heap_user", prio=10, args=("after",))
start("beside", "{ME}:heap_user", prio=10, cpus=[1], args=("beside",))
start("later", "{ME}:heap_user", prio=5, args=("later",))
''')
    r = boot(str(p))
    text = r.kernel.machine.uart.text()
    fits = (KMEM - START - ONE_REGION) // ONE_REGION  # its heap page took one region already
    assert f"map_hog: mapping {fits} refused: task map failed: ENOMEM" in text
    assert fits < 100
    s = r.scenario
    assert isinstance(s, System)
    assert statuses(s) == {"hog": "exit 0", "after": "exit 0", "beside": "exit 0", "later": "exit 0"}
    for name in ("after", "beside", "later"):
        assert f"{name}: all {HEAP_SIZE // PAGE_SIZE} heap pages" in text
    root = next(t for t in r.kernel.tasks if t.name == "ned").factory
    assert root is not None and root.used < root.limit // 16, "ned's factory was not spent"
    assert r.reason == "stop"


def test_a_program_that_spent_its_quota_faults_alone(tmp_path: Path) -> None:
    """After the hog's quota is spent, its own next heap page cannot be mapped: it ends with a
    segmentation fault, and the program after it runs."""
    p = script(tmp_path, f'''
start("hog", "{ME}:hog_then_heap", prio=50)
start("after", "{ME}:heap_user", prio=10, args=("after",))
''')
    _, s, reason = run_plan(load_script(p, 2))
    st = statuses(s)
    assert st["hog"].startswith("fault: segmentation fault (write at 0x10011000"), st
    assert st["after"] == "exit 0" and reason == "stop"


def test_more_kmem_lets_the_same_program_map_more(tmp_path: Path) -> None:
    """kmem is the program's: four times the default, and the hog maps that much further."""
    p = script(tmp_path, f'start("hog", "{ME}:map_hog", kmem={4 * KMEM})\n')
    k, s, _ = run_plan(load_script(p, 2))
    fits = (4 * KMEM - START - ONE_REGION) // ONE_REGION
    assert f"map_hog: mapping {fits} refused" in k.machine.uart.text()
    assert statuses(s) == {"hog": "exit 0"}


# --- the minimum ------------------------------------------------------------------------------


def test_the_minimum_kmem_is_what_the_loader_creates_and_the_stack_and_heap_pages() -> None:
    """Task, three threads (main, region manager, ned's watcher), the parent gate, and a mapping
    per stack and heap page with the one page table they share: 17,024 bytes by default."""
    pages = (STACK_SIZE + HEAP_SIZE) // PAGE_SIZE
    assert MIN_KMEM == min_kmem() == START + pages * MAPPING_SIZE + PT_SIZE == 17_024
    assert min_kmem(stack=1 << 21, heap=1 << 21) == START + 1024 * MAPPING_SIZE + 2 * PT_SIZE


def test_the_minimum_kmem_suffices_and_one_byte_less_does_not(tmp_path: Path) -> None:
    """With exactly min_kmem a program touches every page of its stack and heap; with one byte
    less (the plan altered past the check) its last page cannot be mapped."""
    p = script(tmp_path, f'start("a", "{ME}:stack_and_heap", kmem={MIN_KMEM})\n')
    _, s, _ = run_plan(load_script(p, 2))
    assert statuses(s) == {"a": "exit 0"}
    plan = load_script(p, 2)
    plan.programs[0].kmem = MIN_KMEM - 1
    _, s, _ = run_plan(plan)
    last = 0x1000_0000 + STACK_SIZE + HEAP_SIZE - PAGE_SIZE
    assert statuses(s)["a"].startswith(f"fault: segmentation fault (write at {last:#x} "), statuses(s)


@pytest.mark.parametrize(
    ("kmem", "words"),
    [
        ("'1M'", "kmem '1M' of 'a' must be a number of bytes (an int)"),
        (str(MIN_KMEM - 1), f"kmem {MIN_KMEM - 1} of 'a' is out of range: its task, threads and the page "
                            f"tables of its stack and heap need at least {MIN_KMEM} bytes"),
        (str((64 << 20) + 1), "at most 64 MiB (67108864) can be given"),
    ],
)
def test_a_bad_kmem_is_one_line_naming_the_script_line(tmp_path: Path, kmem: str, words: str) -> None:
    """kmem must be an int between the loader's minimum and 64 MiB; anything else stops the check."""
    p = script(tmp_path, f'\nstart("a", "{ME}:map_hog", kmem={kmem})\n')
    with pytest.raises(ScriptError) as e:
        load_script(p, 2)
    assert str(e.value).startswith(f"{p}:2: ") and words in str(e.value), str(e.value)


def test_a_program_whose_kmem_ned_cannot_carve_is_reported_and_the_rest_run(tmp_path: Path) -> None:
    """Two programs of 40 MiB kernel memory each do not both fit ned's 64 MiB: the second is
    reported, the third starts."""
    p = script(tmp_path, f'''
start("a", "{ME}:stack_and_heap", kmem={40 << 20})
start("b", "{ME}:stack_and_heap", kmem={40 << 20})
start("c", "{ME}:stack_and_heap")
''')
    k, s, _ = run_plan(load_script(p, 2))
    assert "ned: b: could not start: its kernel memory of 41943040 bytes failed: ENOMEM" in k.machine.uart.text()
    assert statuses(s) == {"a": "exit 0", "c": "exit 0"}
