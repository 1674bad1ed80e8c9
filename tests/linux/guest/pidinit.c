/* The program is pid 2, init's child, and init (pid 1) reaps orphans and ignores signals.

   "pidinit init PROG ARGS": natively, the stand-in for l4sim's init as pid 1 of a pid
   namespace (unshare -pf): it starts PROG and reaps every child, ending with PROG's status.
   "pidinit": the checks. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char state_of(pid_t pid) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '-';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' ? p[2] : '?';
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "init") == 0) {
        pid_t prog = fork();
        if (prog == 0) {
            execv(argv[2], argv + 2);
            _exit(127);
        }
        for (;;) {
            int st;
            pid_t r = wait(&st);
            if (r == prog)
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            if (r < 0 && errno == ECHILD)
                pause();
        }
    }
    printf("pid=%d ppid=%d\n", (int)getpid(), (int)getppid());
    fflush(stdout);

    pid_t c = fork();
    if (c == 0) {
        printf("child: ppid=%d\n", (int)getppid());
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);

    /* an orphan: the child forks a grandchild and ends; the grandchild gets init as parent */
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    c = fork();
    if (c == 0) {
        pid_t old = getpid();
        pid_t g = fork();
        if (g == 0) {
            while (getppid() == old)
                usleep(1000);
            printf("orphan: ppid=%d\n", (int)getppid());
            fflush(stdout);
            _exit(0);
        }
        write(fds[1], &g, sizeof g);
        _exit(0);
    }
    pid_t g;
    read(fds[0], &g, sizeof g);
    waitpid(c, NULL, 0);
    /* once it ends, init reaps it: kill(g, 0) fails with ESRCH (a zombie would still answer) */
    int spins = 0;
    while (!(kill(g, 0) == -1 && errno == ESRCH) && spins < 10000) {
        usleep(1000);
        spins++;
    }
    printf("orphan reaped: %s\n", spins < 10000 ? "yes" : "no");

    /* init takes no signal it has no handler for, from anyone */
    int k1 = kill(1, SIGKILL), k2 = kill(1, SIGTERM), k3 = kill(1, SIGSTOP), k4 = kill(1, SIGINT);
    usleep(10000);
    printf("kill(1, ...) = %d %d %d %d; init alive: %d, state %c\n", k1, k2, k3, k4, kill(1, 0) == 0,
           state_of(1));
    printf("children of init reaped, the program still pid %d\n", (int)getpid());
    return 3;
}
