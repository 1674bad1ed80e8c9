"""``l4sim diff A.jsonl B.jsonl``: where two recorded runs part.

Runs are deterministic, so two traces of the same scenario, seed and version are identical;
when they are not, the first record that differs is where to look (a changed scenario, seed,
cost model or kernel).  Records are compared as the JSON objects they were written as; the
run headers are compared apart, since they say how each run was started, not what happened.
The report shows the records both runs share just before the divergence, then the first
differing record of each run with the fields that differ, then a few records of each after
it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from l4sim.kernel.trace import Record
from l4sim.tools.runfile import Run

#: header fields that say how a run was started (``format`` and ``path`` are not compared:
#: the same run from another folder is the same run)
_SETTINGS = ("command", "scenario", "program", "argv", "seed", "cores", "until", "root", "sha256",
             "l4sim")


@dataclass
class Divergence:
    """Where two runs part: ``index`` of the first differing record (None when identical),
    and what is around it."""

    a: Run
    b: Run
    index: int | None
    settings: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.index is None

    def fields(self) -> list[tuple[str, Any, Any]]:
        """The fields of the first differing records that differ: (name, in A, in B)."""
        if self.index is None:
            return []
        ra, rb = _get(self.a, self.index), _get(self.b, self.index)
        if ra is None or rb is None:
            return []
        da, db = _flat(ra), _flat(rb)
        return [(k, da.get(k), db.get(k)) for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)]

    def to_json(self, context: int) -> dict[str, Any]:
        i = self.index
        out: dict[str, Any] = {"identical": self.identical, "a": self.a.path, "b": self.b.path,
                               "records_a": len(self.a.records), "records_b": len(self.b.records),
                               "settings": [{"field": k, "a": va, "b": vb} for k, va, vb in self.settings]}
        if i is not None:
            out["index"] = i
            out["record_a"] = _flat(r) if (r := _get(self.a, i)) is not None else None
            out["record_b"] = _flat(r) if (r := _get(self.b, i)) is not None else None
            out["fields"] = [{"field": k, "a": va, "b": vb} for k, va, vb in self.fields()]
            out["before"] = [_flat(self.a.records[j]) for j in range(max(0, i - context), i)]
        return out


def _get(run: Run, i: int) -> Record | None:
    return run.records[i] if i < len(run.records) else None


def _flat(rec: Record) -> dict[str, Any]:
    t, cpu, kind, tid, args = rec
    return {"t": t, "cpu": cpu, "kind": kind, "tid": tid, **args}


def diff(a: Run, b: Run) -> Divergence:
    """Compare two runs record by record."""
    ha, hb = a.header or {}, b.header or {}
    settings = [(k, ha.get(k), hb.get(k)) for k in _SETTINGS if ha.get(k) != hb.get(k)]
    n = min(len(a.records), len(b.records))
    for i in range(n):
        if _flat(a.records[i]) != _flat(b.records[i]):
            return Divergence(a, b, i, settings)
    if len(a.records) != len(b.records):
        return Divergence(a, b, n, settings)
    return Divergence(a, b, None, settings)


def show(rec: Record, i: int) -> str:
    """One record in a line: number, time, core, kind, thread, then its arguments."""
    t, cpu, kind, tid, args = rec
    who = f" thread {tid}" if tid >= 0 else ""
    rest = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(args.items()))
    return f"{i:>7}  t={t:<12} cpu {cpu:<2} {kind}{who}  {rest}".rstrip()


def format_divergence(d: Divergence, context: int = 3) -> str:
    """The report in text: the settings that differ, then the records around the divergence."""
    lines = []
    if d.settings:
        lines.append("the runs were started differently: " + ", ".join(
            f"{k} {json.dumps(va)} | {json.dumps(vb)}" for k, va, vb in d.settings))
    na, nb = len(d.a.records), len(d.b.records)
    if d.index is None:
        lines.append(f"{d.a.path} and {d.b.path} have the same {na:,} records")
        return "\n".join(lines)
    i = d.index
    ra, rb = _get(d.a, i), _get(d.b, i)
    if ra is None or rb is None:
        short, longer = (d.a, d.b) if ra is None else (d.b, d.a)
        lines.append(f"{short.path} ends after {len(short.records):,} records; {longer.path} goes on "
                     f"(the first {i:,} records are the same)")
    else:
        lines.append(f"{d.a.path} and {d.b.path} part at record {i:,} (t = {ra[0]} ns in A, {rb[0]} ns in B); "
                     f"the {i:,} records before are the same")
    lines.append("--- A: " + d.a.path + f" ({na:,} records)")
    lines.append("+++ B: " + d.b.path + f" ({nb:,} records)")
    for j in range(max(0, i - context), i):
        lines.append("  " + show(d.a.records[j], j))
    for j in range(i, i + context + 1):
        xa, xb = _get(d.a, j), _get(d.b, j)
        if xa is not None:
            lines.append("- " + show(xa, j))
        if xb is not None:
            lines.append("+ " + show(xb, j))
        if j == i:
            f = d.fields()
            if f:
                lines.append("  differs in: " + ", ".join(f"{k} {json.dumps(va)} | {json.dumps(vb)}"
                                                          for k, va, vb in f))
    return "\n".join(lines)
