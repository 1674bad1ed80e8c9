"""``l4sim bench workloads``: everyday busybox work natively and under ``l4sim linux run``.

Each workload is a ``busybox sh -c`` script, run in the same invocation natively (the host's
busybox, whose shell runs its own applets) and under ``l4sim linux run`` (a separate process,
as a user starts it: interpreter start-up, boot and teardown included), each the best of
three wall-clock times, the two alternating so that a busy moment of a shared machine hits
both alike.  Both runs must print the same: a workload whose outputs differ is an error, not
a figure.  The ratio is l4sim / native; the summary is the geometric mean of the ratios.

The scripts work on files made once per invocation in a temporary directory (the run's
working directory: ``l4sim linux run`` imports it read-only, natively it is the cwd) from a
seeded generator: ``lines.txt`` (200,000 lines of a number and two words) and ``tree/``
(3,000 small files in 60 directories).

**Start-up**: ``l4sim linux run`` of a program that exits at once (a 12-byte static
executable: ``exit(0)``), the wall time from the moment this process starts the command to
the program's first instruction, which the command notes itself (its hidden option
``--first-instruction-file``: CLOCK_MONOTONIC, shared by all processes, at the kernel's
first slice of the program's thread); the best of five.

Wall-clock time is read here, in a tool, never inside the model.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: runs of each side (the best counts)
REPEAT = 3
#: runs of the start-up probe
STARTUP_REPEAT = 5
#: the guest's environment (the personality's default), natively too
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", "TERM": "dumb", "LANG": "C"}


@dataclass(frozen=True)
class Workload:
    name: str
    script: str
    what: str


WORKLOADS: tuple[Workload, ...] = (
    Workload("forkexec", "for i in $(seq 1 200); do echo $i | md5sum; done | sort | uniq | wc -l",
             "200 fork+exec pipelines"),
    Workload("sort", "sort lines.txt | md5sum", "sort 200,000 lines"),
    Workload("sed", "sed -e 's/[aeiou]/_/g' -e 's/^\\([0-9]*\\) /\\1:/' lines.txt | md5sum",
             "sed over 200,000 lines"),
    Workload("awk", "awk '{ n[$2]++; s += $1 } END { for (w in n) c++; print c, s }' lines.txt",
             "awk over 200,000 lines"),
    Workload("sha256", "dd if=/dev/zero bs=65536 count=320 2>/dev/null | sha256sum",
             "20 MiB through dd | sha256sum"),
    Workload("find", "find tree -type f | wc -l; find tree -name '*7*' | sort | md5sum",
             "find over 3,000 files"),
    Workload("tar", "tar cf - tree | wc -c", "tar of 3,000 files"),
    Workload("arith", "i=0; s=0; while [ $i -lt 20000 ]; do i=$((i + 1)); s=$(((s + i * i) % 1000003)); "
             "done; echo $s", "20,000 rounds of shell arithmetic"),
)
NAMES = tuple(w.name for w in WORKLOADS)


class WorkloadsError(Exception):
    """The benchmark cannot run as asked; ``str()`` is one line."""


_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
          "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango")


def make_data(d: Path, seed: int = 0) -> None:
    """The workloads' files in ``d``: lines.txt and tree/ (see the module docstring)."""
    rng = random.Random(seed)
    with (d / "lines.txt").open("w") as f:
        for _ in range(200_000):
            f.write(f"{rng.randrange(1_000_000)} {rng.choice(_WORDS)} {rng.choice(_WORDS)}{rng.randrange(100)}\n")
    n = 0
    for i in range(20):
        for j in range(3):
            sub = d / "tree" / f"d{i}" / f"e{j}"
            sub.mkdir(parents=True)
            for _ in range(50):
                (sub / f"f{n}.txt").write_text(f"file {n} {rng.random()}\n" * (1 + n % 4))
                n += 1


def exit_program() -> bytes:
    """A static x86-64 executable whose first instructions are ``exit(0)``."""
    code = bytes.fromhex("b83c000000" "31ff" "0f05")  # mov eax, 60; xor edi, edi; syscall
    base, ehsize, phentsize = 0x40_0000, 64, 56
    size = ehsize + phentsize + len(code)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, base + ehsize + phentsize, ehsize, 0, 0, ehsize, phentsize, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return ehdr + phdr + code


def _l4sim() -> list[str]:
    """The command that starts ``l4sim`` as a user does (this interpreter, this l4sim)."""
    return [sys.executable, "-m", "l4sim"]


def _timed(cmd: Sequence[str], cwd: Path) -> tuple[float, bytes, int]:
    t0 = time.perf_counter()
    r = subprocess.run(list(cmd), cwd=cwd, env=_env(), capture_output=True, stdin=subprocess.DEVNULL,
                       timeout=3600)
    return time.perf_counter() - t0, r.stdout, r.returncode


def _env() -> dict[str, str]:
    """The environment of both runs: the guest's, and what the host needs to start Python."""
    env = dict(ENV)
    for key in ("PYTHONPATH", "L4SIM_CACHE", "VIRTUAL_ENV", "LD_LIBRARY_PATH"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def startup(d: Path, repeat: int = STARTUP_REPEAT) -> float:
    """Seconds from starting ``l4sim linux run`` (in directory ``d``) to the first instruction
    of a program that exits at once (best of ``repeat``)."""
    exe = d / "exit0"
    exe.write_bytes(exit_program())
    exe.chmod(0o755)
    probe = d / "first-instruction"
    best = math.inf
    for _ in range(repeat):
        probe.unlink(missing_ok=True)
        t0 = time.monotonic_ns()
        r = subprocess.run([*_l4sim(), "linux", "run", "--first-instruction-file", str(probe), "--", str(exe)],
                           cwd=d, env=_env(), capture_output=True, stdin=subprocess.DEVNULL,
                           timeout=600)
        if r.returncode != 0 or not probe.exists():
            err = r.stderr.decode(errors="replace").strip().splitlines()
            raise WorkloadsError(f"l4sim linux run of the start-up probe failed (status {r.returncode}): "
                                 f"{err[-1] if err else 'no message'}")
        best = min(best, (int(probe.read_text()) - t0) / 1e9)
    return best


def bench_workloads(only: Sequence[str] = (), repeat: int = REPEAT, startup_repeat: int = STARTUP_REPEAT,
                    progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Run the workloads (``only``: these names) natively and under ``l4sim linux run``; the
    figures as the JSON of ``--json`` (see the CLI).  :class:`WorkloadsError` when busybox is
    missing (``str()`` says so) or a workload fails or differs."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise WorkloadsError("busybox is not on PATH (install it, e.g. Debian's busybox-static)")
    chosen = [w for w in WORKLOADS if not only or w.name in only]
    steps = len(chosen) * 2 * repeat + 2
    done = 0

    def step(what: str) -> None:  # announced as it starts (the bar's last step then says "done")
        nonlocal done
        if progress is not None:
            progress(done, steps, what)
        done += 1

    with tempfile.TemporaryDirectory(prefix="l4sim-workloads-") as tmp:
        d = Path(tmp)
        step("data")
        make_data(d)
        rows: list[dict[str, Any]] = []
        for w in chosen:
            native_cmd = [busybox, "sh", "-c", w.script]
            l4sim_cmd = [*_l4sim(), "linux", "run", "--", busybox, "sh", "-c", w.script]
            best_n = best_l = math.inf
            outs: dict[str, bytes] = {}
            for i in range(repeat):
                for side, cmd in (("native", native_cmd), ("l4sim", l4sim_cmd)):
                    step(f"{w.name} {side}")
                    t, out, status = _timed(cmd, d)
                    if status != 0:
                        raise WorkloadsError(f"{w.name}: {side} run ended with status {status}")
                    if i == 0:
                        outs[side] = out
                    if side == "native":
                        best_n = min(best_n, t)
                    else:
                        best_l = min(best_l, t)
            if outs["native"] != outs["l4sim"]:
                raise WorkloadsError(f"{w.name}: l4sim printed {outs['l4sim'][:60]!r}, natively "
                                     f"{outs['native'][:60]!r}")
            rows.append({"name": w.name, "native_s": round(best_n, 4), "l4sim_s": round(best_l, 4),
                         "ratio": round(best_l / best_n, 2)})
        step("start-up")
        start = startup(d, startup_repeat)
    geo = math.exp(sum(math.log(r["l4sim_s"] / r["native_s"]) for r in rows) / len(rows)) if rows else 0.0
    return {"workloads": rows, "geomean_ratio": round(geo, 2), "startup_s": round(start, 4)}
