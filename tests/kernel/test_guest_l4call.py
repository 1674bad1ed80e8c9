"""Alien L4 calls: a guest thread's ``int 0x30`` goes to its exception handler first, which
lets it pass (the kernel performs it with the guest task's capabilities, then reports the
result) or answers it itself or refuses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("unicorn")

from l4sim.kernel import guest
from l4sim.kernel.abi import (
    L4_CALL_DONE,
    L4_CALL_ENTRY,
    MSGTAG_ERROR,
    PROTO_ALLOW_SYSCALL,
    TRAP_L4_CALL,
    IpcErr,
    Proto,
)
from l4sim.kernel.objects import TS
from l4sim.user.env import Env

from .guest_progs import build
from .test_guest import DATA, RW, Sys, _regs

SYS_EXIT = 60


def _run(tmp: Path, answer: Any, cap: int = 1, utcb: int = DATA) -> tuple[list[Any], Any]:
    """The l4call program against a root that is its exception handler and, through the guest's
    slot 1 (the root's thread), the server it calls; ``answer(kind, msg)`` gives each reply.
    The call names capability slot ``cap`` and the UTCB at ``utcb``."""
    prog = build("l4call", tmp)
    log: list[Any] = []

    async def root(env: Env) -> None:
        msg = await env.wait()
        while True:
            w = msg.words
            if msg.proto == Proto.EXCEPTION and w[0] == TRAP_L4_CALL:
                kind = "entry" if w[1] == L4_CALL_ENTRY else "done" if w[1] == L4_CALL_DONE else "?"
                log.append((kind, _regs(w)))
            elif msg.proto == guest.SYSCALL_LABEL and w[0] == SYS_EXIT:
                regs = dict(zip(guest.REGS, w, strict=True))
                log.append(("exit", regs["rdi"], regs["rsi"], regs["rdx"], regs["r10"]))
                msg = await env.reply_and_wait(1)
                continue
            elif msg.proto == 5:
                kind = "call"
                log.append(("call", msg.proto, msg.words, msg.label))
            else:  # anything else ends the thread (a fault would come again and again)
                log.append(("other", msg.proto, w[:2]))
                msg = await env.reply_and_wait(1)
                continue
            proto, words = answer(kind, msg)
            msg = await env.reply_and_wait(proto, *words)

    s = Sys(root)
    t = s.task()
    s.load(t, prog)
    s.give(t, DATA, RW)
    th = s.guest(t, prog, r12=(cap << 12) | 3, r13=utcb)
    s.k.run()
    return log, th


def _allow(kind: str, msg: Any) -> tuple[int, tuple[int, ...]]:
    return {"entry": (PROTO_ALLOW_SYSCALL, ()), "call": (0, (42, 7)), "done": (0, ())}[kind]


def test_an_allowed_l4_call_is_performed_and_reported(tmp_path: Path) -> None:
    """The handler sees the call's registers and lets it pass; the kernel performs it with the
    guest task's capability (slot 1: the root's thread, label 0) and the words from the UTCB;
    the reply's words land in the UTCB and the result tag in rax, and the handler hears of
    it before the thread goes on."""
    log, th = _run(tmp_path, _allow)
    assert [e[0] for e in log] == ["entry", "call", "done", "exit"]
    entry = log[0][1]
    assert entry["rax"] == (5 << 16) | 2 and entry["rdx"] == (1 << 12) | 3 and entry["rdi"] == DATA
    assert log[1] == ("call", 5, (21, 2), 0)
    done = log[2][1]
    assert (done["rax"], done["rsi"], done["rdx"]) == (2, 0, 0)
    assert log[3] == ("exit", 42, 2, 0, 0)
    assert th.state is TS.DEAD


def test_a_call_naming_an_empty_slot_gets_the_kernels_error(tmp_path: Path) -> None:
    """A capability the task does not hold: ENOT_EXISTENT in rdx and the error flag in the tag,
    reported to the handler; the thread goes on."""
    log, _th = _run(tmp_path, _allow, cap=9)
    assert [e[0] for e in log] == ["entry", "done", "exit"]
    assert log[2] == ("exit", 21, MSGTAG_ERROR, 0, int(IpcErr.ENOT_EXISTENT))


def test_the_handler_may_answer_the_call_itself(tmp_path: Path) -> None:
    """A reply labelled 0 resumes the thread with the registers it sets: no call is made."""

    def answer(kind: str, msg: Any) -> tuple[int, tuple[int, ...]]:
        assert kind == "entry"
        return 0, (99,)  # rax

    log, _th = _run(tmp_path, answer)
    assert [e[0] for e in log] == ["entry", "exit"]
    assert log[1][2] == 99  # the result tag the program saw


def test_a_refusing_reply_kills_the_thread(tmp_path: Path) -> None:
    """Any other label ends the thread, as for every exception."""
    log, th = _run(tmp_path, lambda kind, msg: (2, ()))
    assert [e[0] for e in log] == ["entry"] and th.state is TS.DEAD


def test_a_utcb_that_is_not_mapped_fails_the_call_with_msgcut(tmp_path: Path) -> None:
    """Message registers in memory that is not mapped: SEMSGCUT, never a page fault."""
    log, _th = _run(tmp_path, _allow, utcb=0x700000)
    assert [e[0] for e in log] == ["entry", "done", "exit"]
    assert log[2][4] == int(IpcErr.SEMSGCUT)
