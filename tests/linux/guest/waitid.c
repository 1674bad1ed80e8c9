/* waitid: P_PID, P_ALL, P_PGID; WEXITED, WNOHANG, WNOWAIT; the siginfo of exits and kills */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *code(int c) {
    return c == CLD_EXITED ? "CLD_EXITED" : c == CLD_KILLED ? "CLD_KILLED" : c == CLD_DUMPED ? "CLD_DUMPED" : "?";
}

static void show(const char *what, int r, siginfo_t *si, pid_t pid) {
    printf("%s: r=%d signo=%d code=%s status=%d pid_ok=%d\n", what, r, si->si_signo, code(si->si_code),
           si->si_status, si->si_pid == pid);
}

int main(void) {
    siginfo_t si;
    memset(&si, 0xff, sizeof si);
    int r = waitid(P_ALL, 0, &si, WEXITED);
    printf("no children: r=%d errno=%s\n", r, r < 0 && errno == ECHILD ? "ECHILD" : "?");
    printf("no options: %s\n", waitid(P_ALL, 0, &si, 0) < 0 && errno == EINVAL ? "EINVAL" : "?");

    pid_t a = fork();
    if (a == 0) _exit(5);
    memset(&si, 0, sizeof si);
    r = waitid(P_PID, a, &si, WEXITED | WNOWAIT);
    show("P_PID WNOWAIT", r, &si, a);
    memset(&si, 0, sizeof si);
    r = waitid(P_PID, a, &si, WEXITED);
    show("P_PID", r, &si, a);

    pid_t b = fork();
    if (b == 0) {
        for (;;) pause();
    }
    memset(&si, 0xff, sizeof si);
    r = waitid(P_PID, b, &si, WEXITED | WNOHANG);
    printf("WNOHANG while running: r=%d si_pid=%d\n", r, si.si_pid);
    kill(b, SIGKILL);
    r = waitid(P_ALL, 0, &si, WEXITED);
    show("P_ALL after SIGKILL", r, &si, b);

    pid_t c = fork();
    if (c == 0) {
        setpgid(0, 0);
        struct timespec ts = {0, 3000000};
        nanosleep(&ts, NULL);
        _exit(7);
    }
    setpgid(c, c);
    r = waitid(P_PGID, c, &si, WEXITED);
    show("P_PGID", r, &si, c);

    pid_t d = fork();
    if (d == 0) {
        for (;;) pause();
    }
    kill(d, SIGTERM);
    r = waitid(P_ALL, 0, &si, WEXITED);
    show("SIGTERM", r, &si, d);
    r = waitid(P_ALL, 0, &si, WEXITED);
    printf("all reaped: r=%d errno=%s\n", r, r < 0 && errno == ECHILD ? "ECHILD" : "?");
    return 0;
}
