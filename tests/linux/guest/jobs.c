/* process groups and sessions: setpgid's rules, setsid, kill(-pgid); with an argument, the
   console's foreground group (tcgetpgrp/tcsetpgrp on /dev/tty) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int p[2];

static pid_t waiter(void) {  /* a child that waits until the pipe's writer closes */
    pid_t pid = fork();
    if (pid == 0) { char c; close(p[1]); while (read(p[0], &c, 1) > 0) {} _exit(0); }
    return pid;
}

static const char *err(int r) {
    if (r != -1) return "ok";
    return errno == EPERM ? "EPERM" : errno == ESRCH ? "ESRCH" : errno == EINVAL ? "EINVAL"
         : errno == EACCES ? "EACCES" : errno == ENOTTY ? "ENOTTY" : "other";
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exec-and-wait") == 0) { char c; while (read(0, &c, 1) > 0) {} return 0; }
    pipe(p);
    if (argc > 1 && strcmp(argv[1], "tty") == 0) {
        int fd = open("/dev/tty", O_RDWR);
        printf("tty: fg=me:%d\n", tcgetpgrp(fd) == getpgrp());
        pid_t a = waiter();
        setpgid(a, a);
        int r = tcsetpgrp(fd, a);
        printf("tcsetpgrp child group: %s fg=child:%d\n", err(r), tcgetpgrp(fd) == a);
        printf("tcsetpgrp no group: %s\n", err(tcsetpgrp(fd, 99999)));
        tcsetpgrp(fd, getpgrp());
        pid_t b = fork();
        if (b == 0) { setsid(); _exit(tcgetpgrp(fd) == -1 && errno == ENOTTY ? 0 : 1); }
        int st;
        waitpid(b, &st, 0);
        printf("other session: ENOTTY=%d fg=me:%d\n", WEXITSTATUS(st) == 0, tcgetpgrp(fd) == getpgrp());
        close(p[1]);
        waitpid(a, &st, 0);
        return 0;
    }
    pid_t a = waiter();
    printf("setpgid child: %s group=child:%d\n", err(setpgid(a, a)), getpgid(a) == a);
    printf("setpgid into a missing group: %s\n", err(setpgid(a, 99999)));
    printf("setpgid of a stranger: %s\n", err(setpgid(99999, 0)));
    printf("setpgid negative: %s\n", err(setpgid(0, -1)));
    pid_t b = waiter();
    printf("join the child's group: %s same=%d\n", err(setpgid(b, a)), getpgid(b) == getpgid(a));
    /* a child that has exec'd: EACCES */
    int q[2];
    pipe(q);
    pid_t e = fork();
    if (e == 0) {
        dup2(q[0], 0);
        close(q[1]);
        char *args[] = {argv[0], "exec-and-wait", 0};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(q[0]);
    int r = -1;
    for (int i = 0; i < 5000; i++) {  /* until the exec has happened */
        r = setpgid(e, e);
        if (r == -1) break;
        usleep(1000);
    }
    printf("setpgid after exec: %s\n", err(r));
    close(q[1]);
    /* setsid in a child that is not a group leader; again: EPERM */
    pid_t s = fork();
    if (s == 0) {
        pid_t me = getpid();
        int ok = setsid() == me && getsid(0) == me && getpgrp() == me;
        _exit(ok && setsid() == -1 && errno == EPERM ? 0 : 1);
    }
    int st;
    waitpid(s, &st, 0);
    printf("setsid in a child: ok=%d\n", WEXITSTATUS(st) == 0);
    /* kill(-pgid) reaches the whole group */
    printf("kill group: %s\n", err(kill(-a, SIGTERM)));
    waitpid(a, &st, 0);
    int sa = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    waitpid(b, &st, 0);
    int sb = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    printf("group members: %d %d\n", sa, sb);
    waitpid(e, &st, 0);
    close(p[1]);
    return 0;
}
