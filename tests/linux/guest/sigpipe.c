/* writing to a pipe without readers: the writer dies of SIGPIPE, the parent sees WIFSIGNALED */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int fds[2];
    pipe(fds);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        for (;;) write(fds[1], "x", 1);
    }
    close(fds[0]);
    close(fds[1]);
    int status;
    waitpid(pid, &status, 0);
    printf("signaled=%d sig=%d\n", WIFSIGNALED(status), WTERMSIG(status));
    signal(SIGPIPE, SIG_IGN);
    pipe(fds);
    close(fds[0]);
    long r = write(fds[1], "y", 1);
    printf("ignored: r=%ld\n", r);
    fflush(stdout);
    raise(SIGPIPE);
    signal(SIGPIPE, SIG_DFL);
    write(fds[1], "z", 1);
    printf("not reached\n");
    return 0;
}
