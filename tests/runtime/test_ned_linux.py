"""``linux(...)`` in startup scripts: the plan of a Linux instance, and its checks as one line
naming file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from l4sim.runtime.ned import (
    LINUX_KMEM,
    Channel,
    KernelFactory,
    RamSpec,
    ScriptError,
    linux_kmem,
    load_script,
)

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
needs_busybox = pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed")


def script(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "system.py"
    p.write_text(text)
    return p


@needs_busybox
def test_a_linux_instance_becomes_a_program_with_its_memory_and_factory(tmp_path: Path) -> None:
    """linux() plans a program running the personality with exactly the script's channels, a
    factory of its own for its processes and a dataspace of the memory asked for."""
    p = script(tmp_path, f'''
svc = channel("svc")
start("srv", "l4sim.scenarios.programs.store:store_server", caps={{"store": svc.server()}}, daemon=True)
linux("web", argv=["{BUSYBOX}", "true"], caps={{"svc": svc}}, prio=12, cpus=[1], memory="32M",
      l4_allow=["/bin/x", 0])
''')
    plan = load_script(p, 2)
    web = plan.programs[1]
    assert web.linux is not None and web.fn is not None and web.fn.__name__ == "instance"
    assert list(web.caps) == ["svc", "factory", "ram"]
    assert isinstance(web.caps["svc"], Channel) and not web.caps["svc"].server_side
    assert isinstance(web.caps["factory"], KernelFactory) and web.caps["factory"].quota == LINUX_KMEM
    assert isinstance(web.caps["ram"], RamSpec) and web.caps["ram"].size == 32 << 20
    assert (web.prio, web.cpus, web.kmem) == (12, 0b10, linux_kmem(32 << 20))
    assert web.linux.argv == (BUSYBOX, "true") and web.linux.devices == ("svc",)
    assert web.linux.allow == ("/bin/x", 0) and web.linux.memory == 32 << 20


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('linux("a", argv=[])', "argv of linux 'a' must be a list of strings"),
        ('linux("a", argv="/bin/sh")', "argv of linux 'a' must be a list of strings"),
        ('linux("a", argv=["BB"], prio=1)', "priority 1 of linux 'a' is out of range"),
        ('linux("a", argv=["BB"], memory="64X")', "memory '64X' of linux 'a'"),
        ('linux("a", argv=["BB"], memory=1024)', "memory 1024 of linux 'a'"),
        ('linux("a", argv=["BB"], kmem=10)', "kmem 10 of linux 'a' is out of range"),
        ('linux("a", argv=["BB"], caps={"ram": channel("c")})', "capability name 'ram' of linux 'a'"),
        ('linux("a", argv=["BB"], caps={"d": dataspace("d", 4096)})', "must be a channel(...)"),
        ('linux("a", argv=["BB"], l4_allow=["rel/path"])', "l4_allow of linux 'a'"),
        ('linux("a", argv=["BB"], daemon=1)', "daemon of linux 'a'"),
        ('linux("a", argv=["BB"], root="nowhere")', "no such directory or tar file"),
        ('linux("a", argv=["relative"])', "give its absolute path"),
        ('linux("a", argv=["/no/such/program"])', "not in the instance's root nor on the host"),
        ('linux("a", argv=["/etc/hostname"])', "hostname"),
        ('linux("moe", argv=["BB"])', "reserved"),
        ('linux("a", argv=["BB"])\nlinux("a", argv=["BB"])', "started twice"),
        ('linux("a", argv=["BB"], priority=3)', "linux() has no argument 'priority'"),
    ],
)
def test_bad_instances_are_refused_with_one_line(tmp_path: Path, body: str, words: str) -> None:
    """Every mistake in linux(...) is one ScriptError naming the script's line and the fix."""
    (tmp_path / "etc").mkdir()
    p = script(tmp_path, "\n" + body.replace("BB", BUSYBOX) + "\n")
    with pytest.raises(ScriptError) as e:
        load_script(p, 2)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{p}:") and words in msg, msg


@needs_busybox
def test_a_relative_root_is_the_scripts_directory(tmp_path: Path) -> None:
    """root= is read next to the script: a tar file there holding the program is found."""
    import tarfile

    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(BUSYBOX, arcname="bin/busybox")
    p = script(tmp_path, 'linux("a", root="rootfs.tar", argv=["/bin/busybox", "true"])\n')
    plan = load_script(p, 1)
    assert plan.programs[0].linux is not None and plan.programs[0].linux.root == str(tar)
