"""A Linux instance that a startup script starts: ``linux(NAME, argv=[...], caps={...}, ...)``.

An instance is the personality (:mod:`l4sim.linux.personality`) as one program among
others under ned (docs/linux.md "Linux among L4 programs", docs/runtime.md §4.7): a task of
its own with exactly the capabilities the script names (its channels become ``/dev/l4/NAME``,
:mod:`l4sim.linux.l4`), a kernel factory of its own for its processes' tasks and threads,
its memory from a moe dataspace of the size the script gives (``ram``; not sigma0's frames),
its console lines on its log stream, tagged with its name by moe.  Several instances share
nothing: each has its own personality, process table, pid space and file system.

The runtime sits below the subsystems and does not import them: ned names this module's
functions by their dotted names, as it names every program --

- :func:`check` (at the script's check): the root file system and the program can be used;
- :func:`config` (at boot, on the host): the personality's :class:`~l4sim.linux.state.Config`,
  with the root read and the program loaded (stand-ins for the file-system server, as for
  ``linux run``) and the seed of its random bytes drawn from the machine's generator;
- :func:`instance`: the program itself.

:func:`figures` is what the boot summary shows of an instance.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from l4sim.linux.elf import Image
from l4sim.linux.net.config import NetConfig, etc_hosts, parse
from l4sim.linux.personality import personality
from l4sim.linux.run import LinuxError, file_image, load, make_root, shown
from l4sim.linux.state import Config
from l4sim.linux.vfs import Dir, File, Vfs, guest_str
from l4sim.user.env import Env

#: the name of the dataspace capability an instance's memory comes from (docs/runtime.md)
RAM_CAP = "ram"
#: the capability of an instance's display, a GUI session (/dev/fb0, /dev/input/event0)
DISPLAY_CAP = "gui"
#: the C header of hybrid programs, shipped with the package
INCLUDE = Path(__file__).resolve().parent / "include"


def include_dir() -> Path:
    """The directory to give a C compiler (``-I``) for ``#include <l4sim/l4.h>``."""
    return INCLUDE


def _program(tree: Dir, argv0: str) -> tuple[Image, bytes]:
    """The executable ``argv0`` names: in the root, else the host's file at that path (copied
    into the root at the same path when the instance starts, as ``linux run`` does)."""
    if not argv0.startswith("/"):
        raise LinuxError(f"program {shown(argv0)}: give its absolute path in the instance's root")
    node, _err, _full = Vfs(tree).walk(tree, guest_str(argv0), None)
    if isinstance(node, File):
        return file_image(node, shown(argv0))
    if node is not None:
        raise LinuxError(f"program {shown(argv0)}: not a regular file")
    if not Path(argv0).is_file():
        raise LinuxError(f"program {shown(argv0)}: not in the instance's root nor on the host")
    image = load(argv0)
    return image, Path(argv0).read_bytes()


def check(root: str | None, argv: tuple[str, ...]) -> str | None:
    """What is wrong with an instance's root and program, in one line (None: nothing)."""
    try:
        _program(make_root(root), argv[0])
    except LinuxError as e:
        return str(e)
    return None


def config(root: str | None, argv: tuple[str, ...], devices: tuple[str, ...], allow: tuple[str | int, ...],
           memory: int, prio: int, seed: int, fb: tuple[int, int, int, int] | None = None,
           net: NetConfig | None = None, name: str = "linux") -> Config:
    """The personality's configuration for one instance (see the module); a capability
    ``gui`` (a GUI session) is its display (:mod:`l4sim.linux.fb`), in the view ``fb``; with
    network interfaces, ``/etc/hosts`` names the instance and the script's hosts."""
    tree = make_root(root)
    image, data = _program(tree, argv[0])
    etc_hosts(tree, name, net)
    gui = DISPLAY_CAP if DISPLAY_CAP in devices else None
    return Config(image, list(argv), root=tree, exe=guest_str(str(PurePosixPath(argv[0]))), exe_bytes=data,
                  seed=seed, ram=memory, ram_cap=RAM_CAP, log_console=True, guest_prio=max(1, prio - 1),
                  rt_top=max(1, prio - 1), l4_devices=tuple(d for d in devices if d != gui), l4_allow=allow,
                  gui=gui, fb_view=fb, net=net)


def network(what: str, net: dict[str, Any], hosts: dict[str, Any] | None) -> NetConfig:
    """An instance's network configuration from its script's ``net=`` and ``hosts=`` (ValueError:
    one line saying what is wrong): :func:`l4sim.linux.net.config.parse`."""
    return parse(what, net, hosts)


async def instance(env: Env, cfg: Config) -> int:
    """The program of a Linux instance: the personality, until its first process has ended;
    its exit status is the instance's."""
    return await personality(env, cfg)


def figures(cfg: Config) -> dict[str, Any]:
    """An instance's row of the boot summary: processes it ran, system calls it served, the
    exit status of its first program (None while it runs)."""
    k = cfg.observed
    return {"processes": k.procs_made if k is not None else 0, "syscalls": k.calls if k is not None else 0,
            "status": cfg.result[0] if cfg.result else None}
