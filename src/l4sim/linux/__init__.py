"""l4sim.linux: an L4Linux-style personality that runs static x86-64 Linux executables.

The modules, from the bottom up: each imports only modules listed before it
(``tests/test_layers.py`` fails on any import cycle in l4sim).

1. ``elf``, ``sysnames``, ``vfs``, ``rootfs``: the executable format, Linux's
   system-call names and errnos, the file system (inodes, open files, pipes),
   and the tree an instance starts with (the small Linux, the working
   directory, init's program, writing changes back).  None of them knows the
   personality.  ``lifetime``: what the personality's own pipe and file
   buffers hold, told to the kernel's data-lifetime record, and zero-on-free
   of the frames a process lets go (it knows the personality only by type).
2. ``state``: the personality's state and the helpers all the others share
   -- :class:`~l4sim.linux.state.Personality` (frame pool, page cache, a
   process's memory, making tasks and threads, starting a program, fork's
   copy, waking and posting), ``Proc``, ``LinuxThread``, ``Vma``, ``Config``,
   ``Call``, the fd table, the address-space layout (``POOL_BASE``,
   ``STACK_TOP``, ``MMAP_TOP``).  It imports no system-call module.

   The network stack's lower half follows it (``net.wire``, ``net.tcp``,
   ``net.stack``, ``net.driver``, ``net.ifaces``: packets, TCP's state machine,
   interfaces and demultiplexing, the stub driver, what /proc/net shows),
   importing nothing but ``state``; its sockets and calls come with the
   other socket modules below.
3. The system-call modules, one concern each, in this order:

   - ``misc``: accounting (CPU times, rusage), sysinfo, prctl, affinity;
   - ``signals``: pending signals, delivery into handlers, interrupted and
     restarted waits, stop and continue, and what a fatal signal does -- the
     end of threads and processes (``kill``, ``signal_death``,
     ``end_thread``), orphaned groups, CPU exceptions (``cpu_fault``);
   - ``jobs``: process groups, sessions, the console's foreground group;
   - ``procfs``: the text of ``/proc`` files;
   - ``locks``: POSIX record locks, open-file-description locks, flock;
   - ``files``: fds, the VFS's calls, pipes, FIFOs, devices, poll;
   - ``fileio``: preadv/pwritev, memfd, close_range, fallocate, copy_file_range;
   - ``xattr``: extended attributes;
   - ``memory``: brk, mmap and friends, and the pager (``page_fault``);
   - ``futex``: futex wait queues, priority inheritance, robust lists;
   - ``threads``: clone, exit;
   - ``process``: fork, execve, wait, kill, signal dispositions;
   - ``sched``: scheduling policies and priorities, CPU affinity;
   - ``ipc``: System V shared memory, semaphores, message queues;
   - ``sockets``: AF_UNIX sockets;
   - ``net.sock``, ``net.netlink``, ``net.inet``: AF_INET, AF_INET6 and
     AF_NETLINK sockets and the socket calls (AF_UNIX's passed on to
     ``sockets``);
   - ``events``: eventfd, epoll, signalfd, pidfds, rt_sigtimedwait;
   - ``timers``: timerfd, alarm, setitimer, POSIX timers;
   - ``l4``: Linux among L4 programs -- the ``/dev/l4`` stub drivers of the
     instance's capabilities and the L4 calls of hybrid programs.
   - ``fb``: an instance's display -- ``/dev/fb0`` and ``/dev/input/event0`` over its
     session of the secure GUI.

   The facilities that must hear of ends done lower down (an fd closed, a thread or a
   process gone) are :class:`~l4sim.linux.state.Facility` objects the lower modules call;
   files with their own reads, writes and readiness (sockets, event files) are
   :class:`~l4sim.linux.state.Special` inodes the file calls ask.

4. ``syscalls``: the table of every call, dispatch, strace's lines, the
   return into a signal handler.
5. ``personality``: the program -- the loop that receives the processes'
   system calls, page faults and exceptions, and the keyboard's interrupt.
6. ``run``: the boot code of ``l4sim linux run``; ``instance``: a Linux
   instance that a startup script starts with ``linux(...)``.

Where two concerns call each other (a fatal signal ends a process, the end
of a process sends signals), the code that does both lives in the lower
module, and the lower module shares no function with a higher one by
importing it at call time.
"""
