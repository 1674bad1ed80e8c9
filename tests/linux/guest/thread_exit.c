/* how threads end a process: exit() from a thread (exit_group) while main waits in join;
   pthread_exit from main while another thread goes on; a detached thread */
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *exiter(void *arg) {
    (void)arg;
    printf("thread calls exit(3)\n");
    exit(3);
}

static void *late(void *arg) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    printf("late thread after main's pthread_exit: %s\n", (char *)arg);
    return NULL;
}

static void *detached(void *arg) {
    *(int *)arg = 1;
    return NULL;
}

int main(int argc, char **argv) {
    pthread_t t;
    if (argc > 1 && !strcmp(argv[1], "group")) {
        pthread_create(&t, NULL, exiter, NULL);
        pthread_join(t, NULL);
        printf("not reached\n");
        return 0;
    }
    static int flag;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_create(&t, &at, detached, &flag);
    struct timespec ts = {0, 1000000};
    while (!flag) nanosleep(&ts, NULL);
    printf("detached ran=%d\n", flag);
    pthread_create(&t, NULL, late, "ok");
    fflush(stdout);
    pthread_exit(NULL);
}
