/* fork + pipe + wait4: the child writes through a pipe, the parent reads it and collects the status */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        for (int i = 0; i < 3; i++) {
            char line[32];
            int n = snprintf(line, sizeof line, "line %d ppid_ok=%d\n", i, getppid() == me);
            write(fds[1], line, n);
        }
        _exit(7);
    }
    close(fds[1]);
    char buf[256];
    long total = 0, n;
    while ((n = read(fds[0], buf + total, sizeof buf - 1 - total)) > 0) total += n;
    buf[total] = 0;
    int status = 0;
    pid_t w = waitpid(pid, &status, 0);
    printf("%schild_ok=%d exited=%d code=%d\n", buf, w == pid, WIFEXITED(status),
           WEXITSTATUS(status));
    return 0;
}
