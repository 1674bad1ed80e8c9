"""Recorded runs: the ``run`` header of a JSON Lines trace, and reading a trace back.

``l4sim boot --jsonl`` and ``l4sim linux run --jsonl`` write one line before the kernel's
records: a record of kind ``run`` (``t`` 0, ``cpu`` -1, ``tid`` -1) that says how the run was
started -- the command, the scenario or program, seed, cores and options -- so that ``l4sim
replay`` can start the same run again and ``l4sim diff`` can say how two runs were set up.
It holds nothing that changes between two identical runs (no host time, no host name): the
trace of a run stays the same, byte for byte.

:func:`read_run` reads such a file (or one without a header, as older versions wrote) back
into records of the kernel's shape ``(t, cpu, kind, tid, args)``.  A file that is not a trace
is a :class:`RunFileError` with one line naming the file, the line and the fix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from l4sim.kernel.trace import Record

#: the kind of the header record
RUN_KIND = "run"
#: the version of the header's layout (``format``); a reader accepts this one and older
FORMAT = 1
#: the fields every JSON Lines record has beside its arguments
_FIELDS = ("t", "cpu", "kind", "tid")


class RunFileError(Exception):
    """A recorded run that cannot be read: one line naming the problem and the fix."""


def version() -> str:
    """The installed l4sim's version (the same for every run of one installation)."""
    try:
        return metadata.version("l4sim")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _script(scenario: str) -> dict[str, Any]:
    """For a scenario given as a file: its absolute path and the SHA-256 of its text, so a
    replay finds it from anywhere and notices when it changed since."""
    if not (scenario.endswith(".py") or "/" in scenario):
        return {"path": None, "sha256": None}
    p = Path(scenario)
    try:
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {"path": str(p.absolute()), "sha256": digest}


def boot_header(scenario: str, seed: int, cores: int, until: int | None,
                comm_model: str | None = None, kmem_model: str | None = None,
                disk: str | None = None, crash_at: int | None = None,
                input_text: str | None = None) -> dict[str, Any]:
    """The header of an ``l4sim boot`` run (``until`` and ``crash_at`` in ns, None without; the
    models as the command line chose them, None for the scenario's own; the disk image's path;
    the text of the ``--input`` script, which a replay feeds the machine again -- the
    keyboard and pointer are the world outside, not part of the scenario)."""
    header = {"command": "boot", "scenario": scenario, **_script(scenario), "seed": seed,
              "cores": cores, "until": until, "comm_model": comm_model, "kmem_model": kmem_model,
              "disk": str(Path(disk).absolute()) if disk else None, "crash_at": crash_at,
              "format": FORMAT, "l4sim": version()}
    if input_text is not None:  # only then: a run without --input keeps the header it had
        header["input"] = input_text
    return header


def linux_header(program: str, args: list[str], seed: int, cores: int,
                 root: str | None, workdir: str | None = None) -> dict[str, Any]:
    """The header of an ``l4sim linux run`` run."""
    p = Path(program)
    return {"command": "linux run", "program": program, "path": str(p.absolute()),
            "argv": [program, *args], "seed": seed, "cores": cores,
            "root": str(Path(root).absolute()) if root else None,
            "workdir": str(Path(workdir).absolute()) if workdir else None, "format": FORMAT,
            "l4sim": version()}


def header_line(header: dict[str, Any]) -> str:
    """The header as its JSON line (compact, keys sorted, as the records)."""
    obj = {**header, "t": 0, "cpu": -1, "kind": RUN_KIND, "tid": -1}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass
class Run:
    """A recorded run: its header (None when the file has none) and its records in order."""

    path: str
    header: dict[str, Any] | None
    records: list[Record] = field(default_factory=list)


def record_of(obj: dict[str, Any]) -> Record:
    """A JSON Lines object back as a record: the four fields, the rest its arguments (an
    argument the exporter renamed ``arg_<field>`` gets its name back)."""
    args: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _FIELDS:
            continue
        if key.startswith("arg_") and (key[4:] in _FIELDS or key[4:].startswith("arg_")):
            key = key[4:]
        args[key] = value
    return (obj["t"], obj["cpu"], obj["kind"], obj["tid"], args)


def _bad(path: str, lineno: int, what: str) -> RunFileError:
    return RunFileError(f"{path}:{lineno}: {what}; give a trace written by "
                        "l4sim boot --jsonl or l4sim linux run --jsonl")


def read_run(path: str) -> Run:
    """Read a JSON Lines trace; the header, when the first line is one, apart."""
    p = Path(path)
    if not p.exists():
        raise RunFileError(f"{path}: no such file; give a trace written by l4sim boot --jsonl")
    if p.is_dir():
        raise RunFileError(f"{path} is a directory; give a .jsonl trace file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: not a text file; give a trace written by "
                           "l4sim boot --jsonl") from None
    except OSError as e:
        raise RunFileError(f"{path}: cannot read ({e.strerror})") from None
    run = Run(path, None)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise _bad(path, lineno, "not JSON") from None
        if not isinstance(obj, dict) or not all(k in obj for k in _FIELDS):
            raise _bad(path, lineno, "not a trace record (t, cpu, kind, tid)")
        t, cpu, kind, tid = (obj[k] for k in _FIELDS)
        if not (isinstance(t, int) and isinstance(cpu, int) and isinstance(kind, str)
                and isinstance(tid, int)):
            raise _bad(path, lineno, "a record's t, cpu and tid must be integers and kind a string")
        if kind == RUN_KIND:
            if run.records or run.header is not None:
                raise _bad(path, lineno, "a run header after the first line")
            run.header = {k: v for k, v in obj.items() if k not in _FIELDS}
            if isinstance(run.header.get("format"), int) and run.header["format"] > FORMAT:
                raise RunFileError(f"{path}: written by a newer l4sim (format "
                                   f"{run.header['format']}); read it with that version")
            continue
        run.records.append(record_of(obj))
    if not run.records:
        raise RunFileError(f"{path}: no trace records; give a trace written by l4sim boot --jsonl")
    return run
