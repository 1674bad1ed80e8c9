"""Startup scripts: plans, and every validation error as one line naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.runtime.loader import MIN_QUOTA
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
        (f'start("a", "{P}:hello")\nstart("a", "{P}:hello")', 3, "started twice (first at {p}:2)"),
        (f'c = channel("c")\nstart("a", "{P}:hello", caps={{"c": c}})', 2, "has no server"),
        ('x = channel("c")\ny = channel("c")', 3, "channel 'c' is defined twice (first at {p}:2)"),
        ('d = dataspace("d", 0)', 2, "size 0"),
        ('d = dataspace("d", 4096)\ne = dataspace("d", 8192)', 3, "dataspace 'd' is defined twice (first at {p}:2)"),
        (f'start("a", "{P}:hello", quota=100000)', 2, "too small for its log, scheduler, stack and heap"),
        (f'start("a", "{P}:hello", quota="big")', 2, "quota 'big' of 'a' must be a number of bytes"),
        (f'start("a", "{P}:hello", caps=["svc"])', 2, "caps of 'a' must be a dict"),
        (f'start("a", "{P}:hello", args="x")', 2, "args of 'a' must be a tuple or list"),
        (f'start("a", "{P}:hello", args=5)', 2, "args of 'a' must be a tuple or list"),
        (f'start("a", "{P}:hello", daemon="yes")', 2, "daemon of 'a' must be True or False"),
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
    assert words.format(p=p) in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("name", ["sigma0", "moe", "ned", "console", "io"])
def test_the_runtimes_own_task_names_are_reserved(tmp_path: Path, name: str) -> None:
    """A program may not take the name of a task the runtime starts; the line lists them all."""
    p = script(tmp_path, f'start("{name}", "{P}:hello")\n')
    with pytest.raises(ScriptError) as e:
        load_script(p, ncores=2)
    assert str(e.value) == (f"{p}:1: the name '{name}' is reserved for the system's own tasks "
                            "(console, io, moe, ned, sigma0): choose another program name")


def test_the_quota_check_is_the_loaders_minimum(tmp_path: Path) -> None:
    """Exactly the minimum passes the check; one byte less is refused, naming the minimum."""
    ok = script(tmp_path, f'start("a", "{P}:hello", quota={MIN_QUOTA})\n')
    assert load_script(ok, 1).programs[0].quota == MIN_QUOTA
    bad = script(tmp_path, f'start("a", "{P}:hello", quota={MIN_QUOTA - 1})\n')
    with pytest.raises(ScriptError) as e:
        load_script(bad, 1)
    assert str(e.value) == (f"{bad}:1: quota {MIN_QUOTA - 1} of 'a' is too small for its log, "
                            f"scheduler, stack and heap: give at least {MIN_QUOTA} bytes")


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (f'start("a", "{P}:hello", priority=3)', "start() has no argument 'priority'; use start(name, program, "
         "caps=None, prio=1, cpus=None, args=(), quota=4194304, daemon=False, kmem=262144)"),
        ('start("a")', "start() needs the argument 'program'; use start(name, program, "),
        (f'start("a", "{P}:hello", None, 1, None, (), 4194304, False, 262144, 9)',
         "start() takes at most 9 arguments, 10 given"),
        (f'start("a", "{P}:hello", name="b")', "start() got 'name' twice, by position and by name"),
        ('channel("c", server=True)', "channel() has no argument 'server'; use channel(name)"),
        ('channel()', "channel() needs the argument 'name'; use channel(name)"),
        ('dataspace("d")', "dataspace() needs the argument 'size'; use dataspace(name, size)"),
        ('dataspace("d", size=4096, pinned=True)', "dataspace() has no argument 'pinned'"),
        ('factory(4096, 8192)', "factory() takes at most 1 argument, 2 given; use factory(quota=1048576)"),
        ('factory(kind="x")', "factory() has no argument 'kind'"),
    ],
)
def test_a_call_that_does_not_fit_a_script_function_is_one_line(tmp_path: Path, call: str, words: str) -> None:
    """Unknown keywords, missing or extra arguments: file, line, what is wrong, and the accepted form."""
    p = script(tmp_path, f"# a system\nx = 1\n{call}\n")
    with pytest.raises(ScriptError) as e:
        load_script(p, ncores=2)
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: "), msg
    assert words in msg, msg
    assert "\n" not in msg and "<locals>" not in msg


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (f'start("a", "{P}:hello", priority=3)', "start() has no argument 'priority'"),
        ('start("a")', "start() needs the argument 'program'"),
        (f'start("a", "{P}:hello", args=5)', "args of 'a' must be a tuple or list"),
        (f'start("moe", "{P}:hello")', "reserved for the system's own tasks"),
    ],
)
def test_l4sim_boot_of_a_bad_script_is_one_line_and_status_2(tmp_path: Path, body: str, words: str) -> None:
    """Through the command line: exit status 2, exactly one line on stderr, no traceback."""
    p = script(tmp_path, f"# a system\n{body}\n")
    res = CliRunner().invoke(main, ["boot", str(p)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"l4sim: {p}:2: ") and words in lines[0], lines[0]
    assert "Traceback" not in res.output and res.stdout == ""


def test_a_missing_script_file_is_one_clear_error(tmp_path: Path) -> None:
    """A path that is not there is refused with its name."""
    with pytest.raises(ScriptError, match="cannot read"):
        load_script(tmp_path / "nope.py", 1)
