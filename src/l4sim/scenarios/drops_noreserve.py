"""The DROPS scenario without reservations: the same pipeline, Linux and hog, all best effort.

Decoder and display run at priority 40 like the hog (the busybox loop runs
at 50), with no admission server and no reservation; they time their own
periods and count their jobs and deadline misses themselves.  The busybox
loop above them and round robin with the hog's 10 ms quanta make them miss (compare ``l4sim boot drops``).
See :mod:`l4sim.scenarios.drops`.
"""

from __future__ import annotations

from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.scenarios.drops import Drops, build


def setup(kernel: Kernel, args: Any = None) -> Drops:
    """As ``drops``, but decoder and display are best-effort threads without reservations."""
    return build(kernel, reserved=False)
