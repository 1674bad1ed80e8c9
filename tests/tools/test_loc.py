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
