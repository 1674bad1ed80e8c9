/* SIGPIPE when it does not kill: a handler runs after the write, which fails with EPIPE; a
   blocked SIGPIPE stays pending (and kills when unblocked); an ignored one does nothing */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int caught;
static void on_pipe(int sig) { caught = sig; }

static int broken(void) {
    int fds[2];
    pipe(fds);
    close(fds[0]);
    return fds[1];
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int w = broken();
    signal(SIGPIPE, on_pipe);
    errno = 0;
    long r = write(w, "x", 1);
    printf("handler: r=%ld errno=%s caught=%d\n", r, errno == EPIPE ? "EPIPE" : strerror(errno), caught);

    signal(SIGPIPE, SIG_IGN);
    caught = 0;
    r = write(w, "x", 1);
    printf("ignored: r=%ld errno=%s\n", r, errno == EPIPE ? "EPIPE" : strerror(errno));

    signal(SIGPIPE, SIG_DFL);
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_BLOCK, &set, NULL);
    r = write(w, "x", 1);
    sigpending(&pend);
    printf("blocked: r=%ld errno=%s pending=%d\n", r, errno == EPIPE ? "EPIPE" : strerror(errno),
           sigismember(&pend, SIGPIPE));
    signal(SIGPIPE, on_pipe);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("unblocked with a handler: caught=%d\n", caught);
    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_BLOCK, &set, NULL);
    write(w, "x", 1);
    printf("unblocking the default action ends it\n");
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("not reached\n");
    return 0;
}
