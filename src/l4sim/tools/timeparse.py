"""Times a person writes (``250ms``, ``3s``) and the error a person's mistake is.

Kept apart from :mod:`l4sim.tools.boot` so that what boot uses (the input scripts of
:mod:`l4sim.tools.display`) can read times too; boot re-exports both names.
"""

from __future__ import annotations

import re


class BootError(Exception):
    """A problem the user caused: one line naming it and the fix."""


_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_TIME = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE]([-+]?\d{1,4}))?\s*([a-z]*)\s*")


def parse_time(text: str, option: str = "--until", bare_unit: str | None = None, *,
               positive: bool = False) -> int:
    """``"250ms"``, ``"3s"``, ``"100us"``, ``"1500ns"`` -> nanoseconds (rounded to whole ns).

    A number needs a unit (``ns``, ``us``, ``ms`` or ``s``) unless ``bare_unit`` names the unit
    of a bare number (a task set's, for ``rt simulate --duration``).  The value is read exactly
    from its decimal text (no binary float) and must be at most
    :data:`~l4sim.realtime.taskset.MAX_TIME_NS`; ``positive`` refuses 0.  Anything else is a
    :class:`BootError` naming ``option``, the text and what is accepted.
    """
    from fractions import Fraction

    from l4sim.realtime.taskset import MAX_TIME_NS, TIME_UNITS

    units = "ns, us, ms or s"
    accepted = (f"a number of {bare_unit} or a number with a unit ({units}), e.g. 20ms"
                if bare_unit is not None else f"a number with a unit ({units}), e.g. 500us, 20ms, 2s")
    m = _TIME.fullmatch(text)
    unit = m.group(3) if m is not None else ""
    if m is None or (unit and unit not in _UNITS):
        raise BootError(f"{option} {text!r} is not a time; give {accepted}")
    if not unit and bare_unit is None:
        raise BootError(f"{option} {text!r} has no unit; give {accepted}")
    value = Fraction(m.group(1)) * Fraction(10) ** int(m.group(2) or 0)
    ns = round(value * (_UNITS[unit] if unit else TIME_UNITS[bare_unit or "ns"]))
    if ns > MAX_TIME_NS:
        raise BootError(f"{option} {text!r} is too long; give at most {MAX_TIME_NS // 10**9:,} s "
                        "(about 31.7 years)")
    if positive and ns <= 0:
        raise BootError(f"{option} {text!r} must be > 0; give {accepted}")
    return ns
