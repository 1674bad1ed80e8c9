/* How many tasks the system lets a program make: fork (or pthread_create, or fork of
 * children left as zombies) until it fails, print how many and the error, clean up.
 * argv[1]: "fork", "thread" or "zombie"; argv[2] (optional): the RLIMIT_NPROC to set. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void *idle(void *arg) { (void)arg; for (;;) pause(); }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "fork";
    if (argc > 2) {
        struct rlimit r = {strtoul(argv[2], 0, 10), strtoul(argv[2], 0, 10)};
        if (setrlimit(RLIMIT_NPROC, &r)) { perror("setrlimit"); return 1; }
    }
    static pid_t kids[100000];
    int n = 0, err = 0;
    for (;;) {
        if (!strcmp(mode, "thread")) {
            pthread_t t;
            err = pthread_create(&t, 0, idle, 0);
            if (err) break;
        } else {
            pid_t pid = fork();
            if (pid < 0) { err = errno; break; }
            if (pid == 0) {
                if (!strcmp(mode, "zombie")) _exit(0);
                for (;;) pause();
            }
            kids[n] = pid;
        }
        n++;
    }
    printf("%s: made %d, then %s\n", mode, n, err == EAGAIN ? "EAGAIN" : strerror(err));
    fflush(stdout);
    int reaped = 0;
    for (int i = 0; i < n && strcmp(mode, "thread"); i++) {
        kill(kids[i], SIGKILL);
        if (waitpid(kids[i], 0, 0) == kids[i]) reaped++;
    }
    if (strcmp(mode, "thread")) {
        pid_t pid = fork();  /* all reaped: a fork works again */
        if (pid == 0) _exit(0);
        printf("reaped %d; fork afterwards %s\n", reaped, pid > 0 ? "works" : "fails");
    }
    return 0;
}
