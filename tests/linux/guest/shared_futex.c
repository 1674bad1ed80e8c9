/* a futex in MAP_SHARED memory between a parent and its child (no FUTEX_PRIVATE_FLAG) */
#include <linux/futex.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    int *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        while (__atomic_load_n(&w[0], __ATOMIC_SEQ_CST) == 0) syscall(SYS_futex, &w[0], FUTEX_WAIT, 0, NULL);
        w[1] = 42;
        __atomic_store_n(&w[2], 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, &w[2], FUTEX_WAKE, 1);
        _exit(w[0]);
    }
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    __atomic_store_n(&w[0], 7, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &w[0], FUTEX_WAKE, 1);
    while (__atomic_load_n(&w[2], __ATOMIC_SEQ_CST) == 0) syscall(SYS_futex, &w[2], FUTEX_WAIT, 0, NULL);
    int st;
    waitpid(pid, &st, 0);
    printf("child woke: code=%d wrote=%d\n", WEXITSTATUS(st), w[1]);
    return 0;
}
