/* signals and threads: pthread_kill reaches the named thread, kill() to the process reaches
   the thread that does not block the signal, a fatal signal ends every thread, a thread's
   segfault ends the process */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t handled_in, b_tid;
static volatile int got;

static void on_sig(int sig) {
    handled_in = (pid_t)syscall(SYS_gettid);
    got = sig;
}

static void *waiter(void *arg) {
    b_tid = (pid_t)syscall(SYS_gettid);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, (int)(long)arg);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    while (!got) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *forever(void *arg) {
    (void)arg;
    for (;;) pause();
}

static void *crasher(void *arg) {
    (void)arg;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    *(volatile int *)16 = 1;
    return NULL;
}

int main(void) {
    signal(SIGUSR1, on_sig);
    signal(SIGUSR2, on_sig);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &s, NULL);  /* main blocks both; threads inherit, then unblock one */

    pthread_t t;
    pthread_create(&t, NULL, waiter, (void *)(long)SIGUSR1);
    kill(getpid(), SIGUSR1);
    pthread_join(t, NULL);
    printf("kill to the process: sig=%d handled by the unblocking thread=%d\n", got, handled_in == b_tid);

    got = 0;
    b_tid = 0;
    pthread_create(&t, NULL, waiter, (void *)(long)SIGUSR2);
    while (!b_tid) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    pthread_kill(t, SIGUSR2);
    pthread_join(t, NULL);
    printf("pthread_kill: sig=%d handled by the target=%d\n", got, handled_in == b_tid);

    sigset_t pend;
    kill(getpid(), SIGUSR2);  /* blocked in main, no other thread: stays pending */
    sigpending(&pend);
    printf("pending while blocked=%d\n", sigismember(&pend, SIGUSR2));
    got = 0;
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    printf("delivered on unblock: sig=%d in main=%d\n", got, handled_in == getpid());

    pid_t c = fork();
    if (c == 0) {
        pthread_create(&t, NULL, forever, NULL);
        pthread_create(&t, NULL, forever, NULL);
        kill(getpid(), SIGTERM);
        for (;;) pause();
    }
    int st;
    waitpid(c, &st, 0);
    printf("SIGTERM to a threaded process: signaled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));

    c = fork();
    if (c == 0) {
        pthread_create(&t, NULL, crasher, NULL);
        pthread_create(&t, NULL, forever, NULL);
        for (;;) pause();
    }
    waitpid(c, &st, 0);
    printf("a thread's segfault: signaled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));

    c = fork();
    if (c == 0) {
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
        kill(getpid(), SIGTERM);  /* blocked: pending, not fatal yet */
        write(1, "child survives a blocked SIGTERM\n", 33);
        sigprocmask(SIG_UNBLOCK, &all, NULL);
        write(1, "not reached\n", 12);
        _exit(0);
    }
    waitpid(c, &st, 0);
    printf("fatal once unblocked: signaled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));
    return 0;
}
