/* a handled signal interrupts a waiting call: with SA_RESTART read, wait4 and an untimed
   futex wait go on after the handler; without it they fail with EINTR; poll and nanosleep
   fail with EINTR either way (nanosleep says how much time was left) */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int caught;
static void on_usr1(int sig) { caught++; }

static void nap(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void handler(int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGUSR1, &sa, NULL);
}

static const char *err(long r) {
    return r >= 0 ? "ok" : errno == EINTR ? "EINTR" : strerror(errno);
}

/* a child that signals the parent after a while, then writes to fd (if any) and exits */
static pid_t poke(int fd, int exit_later) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        nap(50);
        kill(parent, SIGUSR1);
        nap(50);
        if (fd >= 0)
            write(fd, "x", 1);
        _exit(exit_later);
    }
    return pid;
}

static void test_read(int restart) {
    int fds[2];
    pipe(fds);
    caught = 0;
    pid_t pid = poke(fds[1], 0);
    char c;
    errno = 0;
    long r = read(fds[0], &c, 1);
    printf("read %s: r=%ld %s caught=%d\n", restart ? "SA_RESTART" : "plain", r, err(r), caught);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
}

static void test_wait(int restart) {
    caught = 0;
    pid_t pid = poke(-1, 7);
    int status = 0;
    errno = 0;
    long r = waitpid(pid, &status, 0);
    printf("waitpid %s: %s caught=%d", restart ? "SA_RESTART" : "plain", err(r), caught);
    if (r < 0)
        r = waitpid(pid, &status, 0);
    printf(" status=%d\n", WEXITSTATUS(status));
}

static int word;
static pid_t waiter_tid;
static long futex_result;
static int futex_errno;

static void *futex_waiter(void *arg) {
    waiter_tid = (pid_t)syscall(SYS_gettid);
    futex_result = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    futex_errno = errno;
    return NULL;
}

static void test_futex(int restart) {
    caught = 0;
    word = 0;
    waiter_tid = 0;
    pthread_t th;
    pthread_create(&th, NULL, futex_waiter, NULL);
    nap(50);
    syscall(SYS_tgkill, getpid(), waiter_tid, SIGUSR1);
    nap(50);
    word = 1;
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    pthread_join(th, NULL);
    errno = futex_errno;
    printf("futex %s: %s caught=%d\n", restart ? "SA_RESTART" : "plain", err(futex_result), caught);
}

static void test_poll_sleep(void) {
    int fds[2];
    pipe(fds);
    caught = 0;
    pid_t pid = poke(-1, 0);
    struct pollfd pfd = {fds[0], POLLIN, 0};
    errno = 0;
    long r = poll(&pfd, 1, 5000);
    printf("poll SA_RESTART: %s caught=%d\n", err(r), caught);
    waitpid(pid, NULL, 0);
    caught = 0;
    pid = poke(-1, 0);
    struct timespec req = {5, 0}, rem = {0, 0};
    errno = 0;
    r = nanosleep(&req, &rem);
    printf("nanosleep SA_RESTART: %s caught=%d rem>4s=%d\n", err(r), caught, rem.tv_sec >= 4);
    waitpid(pid, NULL, 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int restart = 0; restart < 2; restart++) {
        handler(restart);
        test_read(restart);
        test_wait(restart);
        test_futex(restart);
    }
    test_poll_sleep();
    return 0;
}
