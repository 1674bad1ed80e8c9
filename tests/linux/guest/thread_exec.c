/* execve from a thread: the other threads end, the process keeps its pid */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *self;

static void *execer(void *arg) {
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    char *argv[] = {self, "after", pid, NULL};
    execv("/proc/self/exe", argv);
    perror("execv");
    exit(9);
}

static void *spinner(void *arg) {
    (void)arg;
    for (;;) sched_yield();
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "after")) {
        printf("after exec: same pid=%d\n", atoi(argv[2]) == (int)getpid());
        return 4;
    }
    self = argv[0];
    printf("before exec\n");
    fflush(stdout);
    pthread_t t;
    pthread_create(&t, NULL, spinner, NULL);
    pthread_create(&t, NULL, execer, NULL);
    pthread_join(t, NULL);
    printf("not reached\n");
    return 0;
}
