"""The ``l4sim`` command's entry point: a plain ``l4sim linux run`` starts without click.

Everything else -- and any ``linux run`` whose command line is not plain, see
:func:`l4sim.tools.linuxrun.parse_fast` -- is :mod:`l4sim.cli`'s, where click parses it.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:2] == ["linux", "run"]:
        # importing the system makes objects by the hundred thousand, none of them garbage:
        # the collector would walk them again and again (5-6 ms of start-up).  Collect
        # nothing while importing, then keep what was imported out of later collections.
        gc.disable()
        from l4sim.linux import run as _run  # noqa: F401  (what run_command imports)
        from l4sim.tools.linuxrun import parse_fast, run_command

        gc.freeze()
        gc.enable()
        opts = parse_fast(argv[2:])
        if opts is not None:
            run_command(**opts)
    from l4sim.cli import main as cli

    cli()
