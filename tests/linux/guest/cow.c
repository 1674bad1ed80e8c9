/* copy-on-write: the child's writes to stack, heap and data do not show in the parent */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int global = 1;
int main(void) {
    int local = 2;
    /* volatile: the child's stores must happen (a compiler may drop stores to memory
       that nothing reads before _exit) */
    volatile int *heap = malloc(64 * 1024);
    for (int i = 0; i < 16384; i++) heap[i] = i;
    pid_t pid = fork();
    if (pid == 0) {
        global = 100; local = 200;
        for (int i = 0; i < 16384; i++) heap[i] = -1;
        printf("child global=%d local=%d heap=%d\n", global, local, heap[5]);
        fflush(stdout);
        _exit(heap[16383] == -1 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    long sum = 0;
    for (int i = 0; i < 16384; i++) sum += heap[i];
    printf("parent global=%d local=%d heap=%d sum=%ld child=%d\n", global, local, heap[5], sum,
           WEXITSTATUS(status));
    return 0;
}
