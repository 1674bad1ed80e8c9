/* Signals reach a thread that never makes a system call: a child spinning in user mode gets
   SIGUSR1 (its handler ends the spin) and later SIGTERM (default: it dies); a thread of the
   parent spins until the main thread's pthread_kill arrives. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t flag;
static void on_usr1(int sig) { (void)sig; flag = 1; }

static void *spinner(void *arg) {
    (void)arg;
    while (!flag) {}
    return (void *)7;
}

int main(void) {
    signal(SIGUSR1, on_usr1);
    pid_t pid = fork();
    if (pid == 0) {
        while (!flag) {}            /* no system call in this loop */
        write(1, "child caught\n", 13);
        for (;;) {}                 /* SIGTERM ends it here */
    }
    usleep(2000);
    kill(pid, SIGUSR1);
    usleep(2000);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    printf("child: signaled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));
    flag = 0;
    pthread_t t;
    pthread_create(&t, NULL, spinner, NULL);
    usleep(2000);
    pthread_kill(t, SIGUSR1);
    void *r;
    pthread_join(t, &r);
    printf("thread: %ld\n", (long)r);
    return 0;
}
