"""``l4sim bench linux``: guest system calls and guest instructions per wall-clock second.

Two static x86-64 programs are built at run time with the host's ``gcc
-static -O1 -nostdlib`` (no libc: the programs make exactly the system calls
counted, nothing for libc's start-up) into the l4sim cache directory:

- ``getpid N``: N ``getpid`` system calls (inline ``syscall``), then
  ``exit(0)``;
- ``loop N``: N rounds of ``x = x*3 + 1`` written as inline assembly, so the
  count is exact: ``lea 1(%rax,%rax,2),%rax; dec %rcx; jnz`` = **3
  instructions per round**; then ``exit(x & 0x7f)``.

(a) ``syscalls_per_s``: the getpid program under ``l4sim linux run``
    machinery (:func:`l4sim.linux.run.run`: every call is exception IPC to
    the personality and its reply).  Boot and teardown are taken out by
    timing a run with N calls and one with 2N and dividing N by the
    difference (each the best of three).  ``bare_hook_syscalls_per_s``: the same binary in a plain
    unicorn instance (segments loaded with ``mem_map``, no kernel), a
    ``UC_HOOK_INSN``/``SYSCALL`` hook answering getpid inside the hook
    through ctypes ``uc_reg_read``/``uc_reg_write`` on the raw handle (the C functions
    without the binding's argument conversion, the cheapest call ctypes makes), ``exit``
    by ``uc_emu_stop``; the same N/2N difference, best of three, with
    ``bare_factor`` times more calls (it is much faster).  ``syscall_ratio``
    = bare / ours.

(b) ``instructions_per_s``: the loop program under the same machinery, N and
    2N rounds, 3 instructions per round; ``native_instructions_per_s``: the
    same binary run natively (subprocess, wall clock, N and 2N rounds times
    ``native_factor``, best of three); ``slowdown_vs_native`` = native / ours.

Wall-clock time is read here, in a tool, never inside the model.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: instructions per round of the compute loop (see the assembly below)
LOOP_INSNS = 3

#: what both programs share: a raw system call and argv[1] as a number
_PRELUDE = r"""
static long sys1(long n, long a) {
    long r;
    __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a) : "rcx", "r11", "memory");
    return r;
}
static long num(const char *s) { long n = 0; while (*s >= '0' && *s <= '9') n = n * 10 + (*s++ - '0'); return n; }
"""

_GETPID_C = _PRELUDE + r"""
__attribute__((used)) void cmain(long *sp) {
    long n = sp[0] > 1 ? num((const char *)sp[2]) : 1000;
    for (long i = 0; i < n; i++) sys1(39, 0);          /* getpid */
    sys1(60, 0);                                        /* exit(0) */
    for (;;) ;
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n hlt\n");
"""

_LOOP_C = _PRELUDE + r"""
__attribute__((used)) void cmain(long *sp) {
    long n = sp[0] > 1 ? num((const char *)sp[2]) : 1000;
    long x = 0;
    if (n > 0)  /* x = x*3 + 1, n times: 3 instructions a round */
        __asm__ volatile ("1: lea 1(%0,%0,2), %0\n dec %1\n jnz 1b" : "+r"(x), "+r"(n) :: "cc");
    sys1(60, x & 0x7f);                                 /* exit */
    for (;;) ;
}
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call cmain\n hlt\n");
"""


class BenchError(Exception):
    """The benchmark cannot run (no compiler, build failed); ``str()`` is one line."""


def _cache_dir() -> Path:
    from l4sim.kernel.guest import _cache_dir as guest_cache

    return guest_cache()


def build(name: str, cc: str | None = None) -> Path:
    """Compile one of the benchmark programs ("getpid" or "loop"), cached by source hash."""
    src = {"getpid": _GETPID_C, "loop": _LOOP_C}[name]
    gcc = cc or shutil.which("gcc")
    if gcc is None:
        raise BenchError("bench linux needs gcc to build its static test programs: install gcc")
    flags = ["-static", "-O1", "-nostdlib", "-fno-pie", "-no-pie", "-fno-stack-protector"]
    key = hashlib.sha256((src + " ".join(flags)).encode()).hexdigest()[:16]
    d = _cache_dir()
    exe = d / f"bench_{name}_{key}"
    if exe.exists():
        return exe
    d.mkdir(parents=True, exist_ok=True)
    c = d / f"bench_{name}_{key}.{os.getpid()}.c"
    tmp = d / f"bench_{name}_{key}.{os.getpid()}.tmp"
    c.write_text(src)
    try:
        r = subprocess.run([gcc, *flags, "-o", str(tmp), str(c)], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        raise BenchError(f"gcc failed to build the {name} program: {e}") from None
    finally:
        c.unlink(missing_ok=True)
    if r.returncode != 0:
        first = (r.stderr.strip().splitlines() or ["(no message)"])[0]
        raise BenchError(f"gcc failed to build the {name} program: {first}")
    os.replace(tmp, exe)
    return exe


# ------------------------------------------------------------------ under l4sim
def l4sim_seconds(exe: Path, n: int) -> tuple[float, int]:
    """Wall-clock seconds of one ``linux run`` of ``exe n`` (boot included) and its status."""
    from l4sim.linux.run import run

    def out(fd: int, data: bytes) -> None:
        pass

    t0 = time.perf_counter()
    r = run(exe, [str(n)], out=out)
    return time.perf_counter() - t0, r.status


def _diff_rate(timer: Any, exe: Path, n: int, repeat: int) -> tuple[float, int]:
    """n / (best time at 2n - best time at n): the per-unit rate with fixed costs taken out."""
    t1 = min(timer(exe, n)[0] for _ in range(repeat))
    t2, status = min(timer(exe, 2 * n) for _ in range(repeat))
    dt = t2 - t1
    if dt <= 0:  # noise swamped the work: fall back to the whole 2n run
        dt = t2
    return n / dt, status


# ------------------------------------------------------------------ bare unicorn
def bare_seconds(exe: Path, n: int) -> tuple[float, int]:
    """Seconds to run ``exe n`` in a plain unicorn instance with a Python syscall hook; its status."""
    from unicorn import UC_ARCH_X86, UC_HOOK_INSN, UC_MODE_64, UC_PROT_ALL
    from unicorn import x86_const as X
    from unicorn.unicorn_py3.arch.types import uc_hook_h
    from unicorn.unicorn_py3.unicorn import Uc as _Uc
    from unicorn.unicorn_py3.unicorn import uclib

    from l4sim.kernel.guest import _raw
    from l4sim.linux.elf import parse

    image = parse(exe.read_bytes(), str(exe))
    Uc: Any = _Uc
    uc: Any = Uc(UC_ARCH_X86, UC_MODE_64)
    for seg in image.segments:
        lo = seg.vaddr & ~0xFFF
        hi = (seg.vaddr + seg.memsz + 0xFFF) & ~0xFFF
        uc.mem_map(lo, hi - lo, UC_PROT_ALL)
        uc.mem_write(seg.vaddr, seg.data)
    stack_top = 0x7FFF_F000_0000
    uc.mem_map(stack_top - 0x10000, 0x10000, UC_PROT_ALL)
    # argc, argv[0], argv[1], NULL, envp NULL, AT_NULL; then the strings
    strs = stack_top - 0x100
    uc.mem_write(strs, b"bench\0" + str(n).encode() + b"\0")
    sp = stack_top - 0x1000
    words = [2, strs, strs + 6, 0, 0, 0, 0]
    uc.mem_write(sp, b"".join(w.to_bytes(8, "little") for w in words))
    uc.reg_write(X.UC_X86_REG_RSP, sp)

    uch = uc._uch
    rax = ctypes.c_uint64()
    rdi = ctypes.c_uint64()
    rdx = ctypes.c_uint64()
    # the C functions without the binding's argtypes, called with prepared pointers: the
    # cheapest register access ctypes gives (the kernel's guest CPU uses the same calls)
    ref_rax, ref_rdi, ref_rdx = (ctypes.c_void_p(ctypes.addressof(r)) for r in (rax, rdi, rdx))
    reg_read, reg_write, emu_stop = _raw.uc_reg_read, _raw.uc_reg_write, uclib.uc_emu_stop
    h = ctypes.c_void_p(uch.value)
    RAX, RDI, RDX = X.UC_X86_REG_RAX, X.UC_X86_REG_RDI, X.UC_X86_REG_RDX
    status = [-1]

    def hook(_h: Any, data: Any) -> None:
        reg_read(h, RAX, ref_rax)
        nr = rax.value
        if nr == 39:  # getpid
            rax.value = 1
        elif nr == 1:  # write: pretend it all went out
            reg_read(h, RDX, ref_rdx)
            rax.value = rdx.value
        elif nr in (60, 231):  # exit, exit_group
            reg_read(h, RDI, ref_rdi)
            status[0] = rdi.value & 0xFF
            emu_stop(h)
            return
        else:
            rax.value = (-38) & 0xFFFF_FFFF_FFFF_FFFF  # ENOSYS
        reg_write(h, RAX, ref_rax)

    cb = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(hook)
    hh = uc_hook_h()
    err = uclib.uc_hook_add(uch, ctypes.byref(hh), UC_HOOK_INSN, ctypes.cast(cb, ctypes.c_void_p), None,
                            ctypes.c_uint64(1), ctypes.c_uint64(0), ctypes.c_int(X.UC_X86_INS_SYSCALL))
    if err:
        raise BenchError(f"unicorn hook_add failed: {err}")
    t0 = time.perf_counter()
    uc.emu_start(image.entry, 0)
    dt = time.perf_counter() - t0
    del cb
    if status[0] < 0:
        raise BenchError("the bare run stopped without exit")
    return dt, status[0]


# ------------------------------------------------------------------ native
def native_seconds(exe: Path, n: int) -> tuple[float, int]:
    """Wall-clock seconds of a native run of ``exe n`` and its exit status."""
    t0 = time.perf_counter()
    r = subprocess.run([str(exe), str(n)], capture_output=True, timeout=600)
    return time.perf_counter() - t0, r.returncode


# ------------------------------------------------------------------ the benchmark
def bench_linux(calls: int = 20_000, loops: int = 20_000_000, repeat: int = 3, bare_factor: int = 10,
                native_factor: int = 20,
                progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """The figures of ``l4sim bench linux`` (see the module docstring).

    ``progress(done, total, step)`` is called as each of its steps starts (see
    :mod:`l4sim.tools.bench`)."""
    if calls < 1 or loops < 1:
        raise BenchError("--calls and --loops must be at least 1")
    steps = ("build the test programs", "getpid under l4sim", "getpid in bare unicorn",
             "compute loop under l4sim", "compute loop natively")

    def step(i: int) -> None:
        if progress is not None:
            progress(i, len(steps), steps[i])

    step(0)
    getpid = build("getpid")
    loop = build("loop")
    step(1)
    l4sim_seconds(getpid, 1)  # warm-up: imports, the C block counter, caches
    ours, st = _diff_rate(l4sim_seconds, getpid, calls, repeat)
    if st != 0:
        raise BenchError(f"the getpid program ended with status {st} under l4sim")
    step(2)
    bare, st = _diff_rate(bare_seconds, getpid, calls * bare_factor, repeat)
    if st != 0:
        raise BenchError(f"the getpid program ended with status {st} under bare unicorn")
    step(3)
    rounds, st_sim = _diff_rate(l4sim_seconds, loop, loops, repeat)
    step(4)
    native_rounds, st_nat = _diff_rate(native_seconds, loop, loops * native_factor, repeat)
    # both statuses come from runs of 2n rounds (different n): check each against the formula
    if st_sim != _expected_status(2 * loops) or st_nat != _expected_status(2 * loops * native_factor):
        raise BenchError(f"the loop program's result differs from the formula (l4sim {st_sim}, native {st_nat})")
    return {
        "calls": calls,
        "loops": loops,
        "syscalls_per_s": round(ours),
        "bare_hook_syscalls_per_s": round(bare),
        "syscall_ratio": round(bare / ours, 3),
        "loop_iterations_per_s": round(rounds),
        "instructions_per_loop_iteration": LOOP_INSNS,
        "instructions_per_s": round(rounds * LOOP_INSNS),
        "native_instructions_per_s": round(native_rounds * LOOP_INSNS),
        "slowdown_vs_native": round(native_rounds / rounds, 2),
    }


def _expected_status(n: int) -> int:
    """x & 0x7f after n rounds of x = x*3 + 1 from 0 (mod 128 all along)."""
    # x_n = (3^n - 1) / 2; compute mod 256 then halve: (3^n - 1) is even
    x = ((pow(3, n, 256) - 1) % 256) // 2
    return x & 0x7F
