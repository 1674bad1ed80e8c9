/* signal handlers: raise, a signal from a child while sigsuspend waits, SIGCHLD, nanosleep */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static volatile int usr1, chld;
static void on_usr1(int sig) { usr1 += sig; }
static void on_chld(int sig) { (void)sig; chld++; }
int main(void) {
    signal(SIGUSR1, on_usr1);
    struct sigaction sa = {0};
    sa.sa_handler = on_chld;
    sigaction(SIGCHLD, &sa, NULL);
    long before = 7;
    raise(SIGUSR1);
    printf("after raise usr1=%d before=%ld\n", usr1, before);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        kill(getppid(), SIGUSR1);
        _exit(4);
    }
    while (usr1 < 20 || !chld) sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    int status;
    waitpid(pid, &status, 0);
    printf("usr1=%d chld=%d status=%d\n", usr1, chld, WEXITSTATUS(status));
    return 0;
}
