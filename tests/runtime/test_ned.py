"""Startup scripts: plans, and every validation error as one line naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from l4sim.runtime.ned import Channel, KernelFactory, ScriptError, Shared, load_script

P = "l4sim.scenarios.programs.demo"


def script(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "system.py"
    p.write_text(text)
    return p


def test_a_good_script_becomes_a_plan(tmp_path: Path) -> None:
    """Channels, dataspaces, factories and programs arrive in the plan in order."""
    p = script(tmp_path, f'''
svc = channel("svc")
ring = dataspace("ring", 8192)
start("srv", "{P}:counter_server", caps={{"svc": svc.server(), "factory": factory()}}, prio=30, daemon=True)
start("cli", "{P}:counter_client", caps={{"svc": svc}}, prio=20, cpus=[0, 1], args=("cli", 2))
start("prod", "{P}:producer", caps={{"ring": ring}}, args=(4,))
''')
    plan = load_script(p, ncores=2)
    assert [c.name for c in plan.channels] == ["svc"]
    assert [(s.name, s.size) for s in plan.shared] == [("ring", 8192)]
    srv, cli, prod = plan.programs
    assert srv.daemon and srv.prio == 30 and isinstance(srv.caps["factory"], KernelFactory)
    assert isinstance(srv.caps["svc"], Channel) and srv.caps["svc"].server_side
    assert not cli.caps["svc"].server_side and cli.cpus == 0b11 and cli.args == ("cli", 2)
    assert isinstance(prod.caps["ring"], Shared)
    assert srv.fn is not None and srv.fn.__name__ == "counter_server"


def test_the_default_script_is_valid_on_one_and_two_cores() -> None:
    """The built-in default system plans on any machine size."""
    path = Path(__file__).resolve().parents[2] / "src/l4sim/scenarios/scripts/default.py"
    for cores in (1, 2, 4):
        plan = load_script(path, cores)
        assert {s.name for s in plan.programs} >= {"hello", "counter", "crasher"}


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ('start("a", "no.such.module:main")', 2, "cannot import"),
        ('start("a", "l4sim.scenarios.programs.demo:nothing")', 2, "has no nothing"),
        ('start("a", "nocolon")', 2, "package.module:function"),
        (f'start("a", "{P}:hello", prio=300)', 2, "priority 300"),
        (f'start("a", "{P}:hello", prio=0)', 2, "priority 0"),
        (f'start("a", "{P}:hello", cpus=[5])', 2, "does not exist: this machine has cores 0 .. 1"),
        (f'start("a", "{P}:hello", cpus=[])', 2, "core number"),
        (f'start("a", "{P}:hello", caps={{"svc": 42}})', 2, "names nothing"),
        (f'start("a", "{P}:hello", caps={{"log": channel("x")}})', 2, "not allowed"),
        (f'start("a", "{P}:hello")\nstart("a", "{P}:hello")', 3, "started twice"),
        (f'c = channel("c")\nstart("a", "{P}:hello", caps={{"c": c}})', 2, "has no server"),
        ('x = channel("c")\ny = channel("c")', 3, "defined twice"),
        ('d = dataspace("d", 0)', 2, "size 0"),
        ('d = dataspace("d", 4096)\ne = dataspace("d", 4096)', 3, "defined twice"),
        (f'start("ned", "{P}:hello")', 2, "belongs to the system"),
        (f'start("a", "{P}:hello", quota=100000)', 2, "too small for its log, stack and heap"),
        (f'start("a b", "{P}:hello")', 2, "not allowed"),
        (f'start("a", "{P}:hello", quota=10)', 2, "quota"),
        ('f = factory(1)', 2, "factory quota"),
        ('undefined_name()', 2, "NameError"),
        ('start("a", ', 2, "syntax error"),
        ('pass', 1, "starts no program"),
    ],
)
def test_script_errors_name_file_and_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    """Each mistake in a script is refused before boot with file:line and what to fix."""
    p = script(tmp_path, "# a system\n" + body + "\n")
    with pytest.raises(ScriptError) as e:
        load_script(p, ncores=2)
    msg = str(e.value)
    assert msg.startswith(f"{p}:{line}:"), msg
    assert words in msg, msg
    assert "\n" not in msg


def test_a_missing_script_file_is_one_clear_error(tmp_path: Path) -> None:
    """A path that is not there is refused with its name."""
    with pytest.raises(ScriptError, match="cannot read"):
        load_script(tmp_path / "nope.py", 1)
