"""Lines of code: code lines count; blank lines, comments and docstrings do not."""

from __future__ import annotations

from l4sim.tools.loc import code_lines, module_loc, package_loc

SAMPLE = '''"""A module docstring
over two lines."""

import os  # a comment after code counts as code


def f(x):
    """A docstring."""
    # a comment alone
    s = """a string
that is data"""
    return (x +
            1)
'''


def test_code_lines_skips_docstrings_comments_and_blank_lines() -> None:
    """import, def, the two-line string assignment, the two-line return: 6 lines."""
    assert code_lines(SAMPLE) == 6


def test_modules_and_packages_are_counted_from_their_files() -> None:
    assert 0 < module_loc("l4sim.security.store") < module_loc("l4sim.security.storage") + 1000
    assert package_loc("security") >= module_loc("l4sim.security.tpm") + module_loc("l4sim.security.store")


def test_shell_programs_and_machine_code() -> None:
    """A shell program's code lines; an executable's code in bytes; modules counted once."""
    import shutil

    import pytest

    from l4sim.tools.loc import elf_code_bytes, modules_loc, shell_lines

    assert shell_lines("# a comment\n\necho 1\n  # indented comment\nwhile :; do :; done\n") == 2
    assert modules_loc(["l4sim.security.tpm", "l4sim.security.tpm"]) == module_loc("l4sim.security.tpm")
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed")
    from pathlib import Path

    data = Path(busybox).read_bytes()
    assert 0 < elf_code_bytes(data) < len(data)
