/* clone3 for a process and for a thread (CLONE_CHILD_CLEARTID wakes the joiner), vfork */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct clone_args_v0 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static long raw(long nr, long a, long b, long c, long d, long e) {
    long r;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return r;
}

static volatile int shared, child_tid = -1, parent_tid;
static char stack[65536] __attribute__((aligned(16)));

/* the new thread: raw system calls only (it shares the caller's TLS) */
static void thread_main(void) {
    shared = (int)raw(SYS_gettid, 0, 0, 0, 0, 0);
    raw(SYS_exit, 0, 0, 0, 0, 0);
}

static long clone3_thread(struct clone_args_v0 *args) {
    long r;
    register void (*fn)(void) __asm__("r12") = thread_main;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "call *%%r12\n\t"
                     "hlt\n"
                     "1:"
                     : "=a"(r) : "a"(SYS_clone3), "D"(args), "S"(sizeof *args), "r"(fn)
                     : "rcx", "r11", "memory");
    return r;
}

int main(void) {
    struct clone_args_v0 ca;
    memset(&ca, 0, sizeof ca);
    ca.exit_signal = SIGCHLD;
    long pid = raw(SYS_clone3, (long)&ca, sizeof ca, 0, 0, 0);
    if (pid == 0) raw(SYS_exit_group, 9, 0, 0, 0, 0);
    int st;
    waitpid((pid_t)pid, &st, 0);
    printf("clone3 process: exited=%d code=%d\n", WIFEXITED(st), WEXITSTATUS(st));
    printf("clone3 with a short struct: %s\n", raw(SYS_clone3, (long)&ca, 32, 0, 0, 0) == -EINVAL ? "EINVAL" : "?");

    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM
               | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
    ca.child_tid = (uint64_t)(uintptr_t)&child_tid;
    ca.parent_tid = (uint64_t)(uintptr_t)&parent_tid;
    ca.stack = (uint64_t)(uintptr_t)stack;
    ca.stack_size = sizeof stack;
    long tid = clone3_thread(&ca);
    if (tid < 0) { printf("clone3 thread: error %ld\n", tid); return 1; }
    int v;
    while ((v = child_tid) != 0) raw(SYS_futex, (long)&child_tid, FUTEX_WAIT, v, 0, 0);
    printf("clone3 thread: ran=%d parent_settid=%d cleared=%d\n", shared == tid, parent_tid == tid, child_tid == 0);

    pid = vfork();
    if (pid == 0) {
        write(1, "vfork child runs first\n", 23);
        _exit(6);
    }
    write(1, "vfork parent goes on\n", 21);
    waitpid((pid_t)pid, &st, 0);
    printf("vfork child: code=%d\n", WEXITSTATUS(st));
    return 0;
}
