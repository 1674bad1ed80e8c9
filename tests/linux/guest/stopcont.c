/* stopping and continuing: SIGSTOP and SIGTSTP stop a child (even one computing without
   system calls), /proc/PID/stat says T, the parent's waitpid sees WIFSTOPPED with WUNTRACED
   and WIFCONTINUED with WCONTINUED, waitid CLD_STOPPED/CLD_CONTINUED, SIGCHLD comes for
   both unless SA_NOCLDSTOP; SIGTERM waits for SIGCONT, SIGKILL does not; a process stops
   itself with raise(SIGSTOP) */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int chld;
static void on_chld(int sig) { chld++; }

static struct timespec start;

static long since(struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static void nap(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

static char state(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] ? p[2] : '?';
}

static void show(const char *what, int st) {
    printf("%s: stopped=%d sig=%d continued=%d signaled=%d term=%d\n", what, WIFSTOPPED(st),
           WIFSTOPPED(st) ? WSTOPSIG(st) : 0, WIFCONTINUED(st), WIFSIGNALED(st),
           WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    volatile long *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    pid_t pid = fork();
    if (pid == 0) {
        /* a process group of its own: natively, SIGTSTP is discarded in an orphaned group
           (the test's own group may be one, depending on how the tests were started) */
        setpgid(0, 0);
        clock_gettime(CLOCK_MONOTONIC, &start);  /* the guard counts from the child's start */
        for (;;) {  /* no system calls but a look at the clock now and then: a guard */
            for (int i = 0; i < 100000; i++)
                (*counter)++;
            if (since(&start) > 30000)
                _exit(99);
        }
    }
    setpgid(pid, pid);  /* both sides, as a shell does: no race with the first signal */
    nap(20);
    int st;
    kill(pid, SIGSTOP);
    printf("waitpid WUNTRACED: %d\n", waitpid(pid, &st, WUNTRACED) == pid);
    show("after SIGSTOP", st);
    printf("state: %c\n", state(pid));
    long a = *counter;
    nap(30);
    printf("counter still while stopped: %d\n", *counter == a);
    printf("waitpid WNOHANG|WUNTRACED again: %d\n", waitpid(pid, &st, WNOHANG | WUNTRACED));
    kill(pid, SIGCONT);
    printf("waitpid WCONTINUED: %d\n", waitpid(pid, &st, WCONTINUED) == pid);
    show("after SIGCONT", st);
    nap(30);
    printf("counter moves again: %d\n", *counter != a);
    printf("state: %c\n", state(pid));
    printf("SIGCHLD for the stop and the continue: %d\n", chld >= 2);

    kill(pid, SIGTSTP);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, pid, &si, WSTOPPED);
    printf("waitid WSTOPPED: code=%s status=%d\n", si.si_code == CLD_STOPPED ? "CLD_STOPPED" : "?", si.si_status);
    kill(pid, SIGCONT);
    memset(&si, 0, sizeof si);
    waitid(P_PID, pid, &si, WCONTINUED);
    printf("waitid WCONTINUED: code=%s status=%d\n", si.si_code == CLD_CONTINUED ? "CLD_CONTINUED" : "?",
           si.si_status);

    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    chld = 0;
    kill(pid, SIGSTOP);
    waitpid(pid, &st, WUNTRACED);
    kill(pid, SIGCONT);
    waitpid(pid, &st, WCONTINUED);
    nap(20);
    printf("SIGCHLD with SA_NOCLDSTOP: %d\n", chld);
    kill(pid, SIGSTOP);
    waitpid(pid, &st, WUNTRACED);
    kill(pid, SIGTERM);
    nap(20);
    printf("SIGTERM waits while stopped: state %c, waitpid WNOHANG %d\n", state(pid), waitpid(pid, &st, WNOHANG));
    kill(pid, SIGCONT);
    waitpid(pid, &st, 0);
    show("then SIGCONT", st);

    pid = fork();
    if (pid == 0) {
        clock_gettime(CLOCK_MONOTONIC, &start);  /* a guard from the child's own start */
        for (;;)
            if (since(&start) > 30000)
                _exit(99);
    }
    kill(pid, SIGSTOP);
    waitpid(pid, &st, WUNTRACED);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    show("SIGKILL while stopped", st);

    pid = fork();
    if (pid == 0) {
        raise(SIGSTOP);
        printf("child: resumed\n");
        _exit(3);
    }
    waitpid(pid, &st, WUNTRACED);
    show("raise(SIGSTOP)", st);
    kill(pid, SIGCONT);
    waitpid(pid, &st, 0);
    printf("then exit %d\n", WEXITSTATUS(st));
    return 0;
}
