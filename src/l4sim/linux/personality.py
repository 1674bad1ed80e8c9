"""The Linux personality: a native program that runs static x86-64 Linux executables.

The kernel knows nothing of Linux.  The personality is an ordinary native
program (it uses system calls only) and is, for each Linux process it
starts, the process's **pager** and **exception handler**:

- a process is a task; each of its threads is a guest thread of that task
  (started with ex_regs and ``EX_REGS_GUEST``) whose pager and
  exception-handler slot hold an IPC gate of its own, bound to the
  personality's thread and labelled with the thread's id (``tid << 2``), so
  every message names the Linux thread that sent it (the main thread's tid
  is the pid);
- ``syscall`` arrives as exception IPC (label ``Proto.SYS_EXCEPTION``, the
  registers in seL4's UnknownSyscall order) and is dispatched through the
  xv6-style table in :mod:`l4sim.linux.syscalls`; the reply's first word is
  rax (``arch_prctl`` also sets fs_base through the reply);
- page faults below brk, in mmap regions and on the stack get a zeroed frame
  (a map item in the reply: :func:`l4sim.linux.memory.page_fault`); any other
  fault, and CPU exceptions, kill the process with the matching signal or
  enter its handler (:func:`l4sim.linux.signals.cpu_fault`).

This module is the top of the package (see :mod:`l4sim.linux` for the order
of the modules): the loop that receives those messages and answers them.
The state it serves from is :class:`l4sim.linux.state.Personality`.

Stand-ins for servers that do not exist yet (documented in docs/linux.md):
the executable's bytes are an argument (the file-system server), the
process's stdout/stderr go to a host ``write`` callable (the console
server), and the seed of the process's random bytes is an argument drawn
by the boot code from the machine's seeded generator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from l4sim.kernel.abi import EX_REGS_TRIGGER_EXCEPTION, IP_UNCHANGED, TRAP_L4_CALL, Proto, ThreadOp
from l4sim.linux import l4
from l4sim.linux.jobs import console_signals
from l4sim.linux.memory import page_fault
from l4sim.linux.net import stack as net
from l4sim.linux.signals import cpu_fault, forget_process, signal_death
from l4sim.linux.state import SIGKILL, WAITING, Config, LogConsole, Personality, Proc, text_bytes
from l4sim.linux.syscalls import TABLE, TIMELESS, dispatch, resume
from l4sim.linux.sysnames import NAMES
from l4sim.linux.timers import expire
from l4sim.runtime.console import start_console
from l4sim.runtime.protocols import DATASPACE, DsOp
from l4sim.user.env import Env, Gate, L4Error

if TYPE_CHECKING:
    from l4sim.linux.fb import Display

#: the label of the terminal's receive interrupt (no thread's label: those are tid << 2)
KBD_LABEL = 1 << 62
#: the machine's UART line (machine/board.py: LINE_UART), the terminal's keyboard
LINE_UART = 1


async def personality(env: Env, cfg: Config) -> int:
    """The personality's program: start ``cfg``'s executable, serve it until it ends."""
    return await serve(Personality(env, cfg))


async def serve(k: Personality) -> int:
    """Answer the processes' exception IPC until the first process ends.

    The clock is read from the kernel once per message, before anything
    that may look at it; a system call in ``TIMELESS`` is served without
    (getpid needs no time), and a fresh reading precedes waking sleepers
    and re-running woken calls.
    """
    env = k.env
    cfg = k.cfg
    k.ncores, _prio, k.cpu_mask = (await env.scheduler.info())[:3]
    if cfg.log_console:  # a Linux instance of a startup script: its lines tagged with its name
        k.console = LogConsole(env)
    else:
        k.console = await start_console(env, cfg.out, cfg.stdin)
    if cfg.ram_cap is not None:  # its memory: a dataspace of its own (Personality.alloc)
        ram = env.cap(cfg.ram_cap, Gate)
        info = await ram.call(DATASPACE, DsOp.INFO)
        if info.error or info.proto < 0 or not info.words:
            raise L4Error(-info.proto if info.proto < 0 else 0, "the instance's memory", info.error)
        k.ram = (ram, info.words[0])
    await l4.setup(k)
    await net.setup(k)  # the instance's network interfaces (Config.net)
    bridge = k.l4
    display: Display | None = None
    if cfg.gui is not None:  # /dev/fb0 and /dev/input/event0 of its GUI session, if it has one
        from l4sim.linux import fb  # (imported only then: it costs a run without one start-up time)

        display = await fb.setup(k)
    # the terminal's receive interrupt: typed Ctrl-C / Ctrl-Z (see run.py and jobs.py)
    kbd = None
    if cfg.keyboard:
        kbd = await env.factory.create_irq()
        await env.icu.bind(LINE_UART, kbd)
        await kbd.attach(env.thread, KBD_LABEL)
    first = await k.spawn(cfg.image, cfg.argv, cfg.env, cfg.exe, cfg.exe_named)
    threads = k.threads
    sleepers = k.sleepers
    SYS, PF, EXC, IRQ = (int(Proto.SYS_EXCEPTION), int(Proto.PAGE_FAULT), int(Proto.EXCEPTION),
                         int(Proto.IRQ))
    L4CALL = int(TRAP_L4_CALL)
    msg = await env.wait()
    while True:
        if k.init_waiting is not None:
            await k.start_init()
        reply: Any = None
        proto = msg.proto
        if kbd is not None and proto == IRQ and msg.label == KBD_LABEL and not msg.error:
            k.cur = 0  # no thread's call is being served
            if cfg.interrupts:
                await console_signals(k)
            await kbd.unmask()  # a hardware line masks itself when it fires
        if bridge is not None and proto == IRQ and msg.label == l4.IRQ_LABEL and not msg.error:
            k.cur = 0
            l4.news(k)  # a device's worker finished a call or took a request
        if display is not None and proto == IRQ and msg.label == fb.IRQ_LABEL and not msg.error:
            k.cur = 0
            await fb.news(k, display)  # input arrived, or the damage is due
        if proto == IRQ and msg.label == net.IRQ_LABEL and not msg.error:
            k.cur = 0
            net.received(k)  # frames came in: the stack takes them below
        t = threads.get(msg.label >> 2) if not msg.error else None
        timed = t is None or proto != SYS or msg.words[0] not in TIMELESS
        if timed:
            k.now_ns = int(await env.clock())
        if t is not None:
            p = t.proc
            p.cur = t
            k.cur = t.tid
            try:
                if proto == SYS:
                    reply = await dispatch(k, p, msg.words)
                elif proto == PF:
                    reply = await page_fault(k, t, msg.words)
                elif proto == EXC and t.start_regs is not None:
                    reply = (0, t.start_regs, ())  # a new thread's first fault: its registers
                    t.start_regs = None
                elif proto == EXC and msg.words and msg.words[0] == L4CALL:
                    reply = await l4.l4_call(k, p, t, msg.words)  # a hybrid program's L4 call
                elif proto == EXC:
                    reply = await cpu_fault(k, p, t, msg.words)
                else:
                    reply = (-38, (), ())
            except Exception as e:  # whatever went wrong ends this process only
                await contain(k, p, _what(proto, msg.words), e)
                reply = None
            if reply is WAITING:
                t.reply = await env.save_reply()
                reply = None
        if k.timers and min(k.timers.values()) <= k.now_ns:
            await expire(k)  # alarm, setitimer, POSIX timers: their signals
        if k.console_out or k.stdin_want:
            await _console_io(k)
        if k.to_trigger:
            await _trigger(k)
        if not timed and (sleepers or k.runnable):
            k.now_ns = int(await env.clock())
        if sleepers:
            for tid, at in sorted(sleepers.items()):
                if at <= k.now_ns:
                    del sleepers[tid]
                    k.wake({tid})
        if display is not None and display.todo():
            await fb.work(k, display)  # the pixels of reads and writes (before their callers go on)
        if net.pending(k):
            await net.run(k)  # frames and packets in and out, TCP's timers: wakes sockets' waiters
        if k.runnable or k.console_out or k.stdin_want:
            await _run_woken(k)
        while net.pending(k):  # what the woken calls sent
            await net.run(k)
            if k.runnable:
                await _run_woken(k)
        if bridge is not None and (bridge.kicks or bridge.answers):
            await l4.flush(k)  # wake the devices' workers, send serving devices' answers
        if first.status is not None:
            for node in list(k.file_pages):  # what shared mappings wrote is the files' (write-back)
                await k.pull_file(node)
            await _console_io(k)
            k.cfg.stats.update(calls=k.calls, unimplemented=dict(k.unimplemented),
                               forks=k.forks, cow_copies=k.cow_copies,
                               text_pages_shared=k.text_shared, tasks_peak=k.tasks_peak)
            return first.status
        timeout = None
        net_at = net.deadline(k)
        if sleepers or k.timers or net_at is not None:
            timeout = max(0, min([*sleepers.values(), *k.timers.values(), *([] if net_at is None else [net_at])])
                          - int(await env.clock()))
        if reply is None:
            msg = await env.wait(timeout=timeout)
        else:
            msg = await env.answer(reply[0], reply[1], reply[2], timeout)


async def _run_woken(k: Personality) -> None:
    """Run again the waiting calls of woken threads; answer those that can go on."""
    while True:
        if k.console_out or k.stdin_want:
            await _console_io(k)  # may wake readers of the console
        if not k.runnable:
            return
        tid = k.runnable.pop(0)
        t = k.threads.get(tid)
        if t is None or t.blocked is None or t.reply is None:
            continue
        c, t.blocked = t.blocked, None
        p = t.proc
        p.cur = t
        k.cur = tid
        try:
            r = await resume(k, p, c)
        except Exception as e:  # as in serve: this process ends, the others go on
            await contain(k, p, c.name or f"syscall_{c.nr:#x}", e)
            r = None
        if r is WAITING or r is None or t.reply is None:
            continue
        if k.console_out:
            await _console_io(k)  # what it wrote goes out before it goes on
        cap, t.reply = t.reply, None
        await k.env.ipc(cap.send(r[0], *r[1], items=r[2]))
        k.env.free_slot(cap.slot)


def _what(proto: int, words: tuple[int, ...]) -> str:
    """What the personality was serving: a system call's name, a page fault, an exception."""
    if proto == int(Proto.SYS_EXCEPTION):
        sc = TABLE.get(words[0])
        known = NAMES.get(words[0])
        return sc.name if sc is not None else known[0] if known is not None else f"syscall_{words[0]:#x}"
    return "page fault" if proto == int(Proto.PAGE_FAULT) else "exception"


async def contain(k: Personality, p: Proc, what: str, exc: Exception) -> None:
    """A Python exception escaped while ``p``'s call (or fault) was served: a bug of the
    personality, or a limit of the model the call met.  As a Linux oops kills the current
    task, ``p`` is killed with SIGKILL and one line on the console's stderr says why; every
    other process runs on.  Out of memory (MemoryError, no frame left) is the OOM killer's
    line.  The reply to the call is never sent."""
    if isinstance(exc, MemoryError):
        line = f"l4sim: out of memory: killed process {p.pid} ({p.name})"
    else:
        text = " ".join(str(exc).split())
        line = f"l4sim: internal error in {what} (pid {p.pid}): {type(exc).__name__}" + (f": {text}" if text else "")
    k.console_out.append((2, text_bytes(line) + b"\n"))
    if p.status is None:
        try:
            await signal_death(k, p, SIGKILL, 0)
        except Exception:  # its state is broken: take it out of the tables at least
            await forget_process(k, p)


async def _trigger(k: Personality) -> None:
    """Interrupt the threads in ``to_trigger`` where they run: ex_regs' TRIGGER_EXCEPTION
    makes each raise exception IPC (trap 0xff), answered by entering its signal's handler
    (or ending the process: :func:`l4sim.linux.signals.cpu_fault`) -- as L4Linux
    interrupts a thread running in user mode."""
    tids, k.to_trigger = sorted(k.to_trigger), set()
    for tid in tids:
        t = k.threads.get(tid)
        if t is not None and t.blocked is None and t.proc.status is None:
            await t.thread._op("ex_regs trigger", ThreadOp.EX_REGS, IP_UNCHANGED, 0,
                               EX_REGS_TRIGGER_EXCEPTION)


async def _console_io(k: Personality) -> None:
    """Send the console output written so far (adjacent writes to a stream joined), and
    fetch input when a read is waiting for it."""
    con = k.console
    assert con is not None
    out, k.console_out = k.console_out, []
    i = 0
    while i < len(out):
        stream, data = out[i]
        j = i + 1
        while j < len(out) and out[j][0] == stream:
            j += 1
        if j > i + 1:
            data = b"".join(d for _, d in out[i:j])
        await con.write(stream, data)
        i = j
    if k.stdin_want:
        k.stdin_want = False
        data = await con.read(1 << 16)
        if data:
            k.stdin_buf += data
        else:
            k.stdin_eof = True
        k.wake(k.stdin_waiters)
