/* A child whose uname() the personality fails to serve (a test injects the failure): the
 * child is killed with SIGKILL, the parent goes on. */
#include <stdio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct utsname u;
        uname(&u);
        printf("child: uname returned\n");
        return 0;
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child %s %d\n", WIFSIGNALED(st) ? "killed by signal" : "exited with", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    printf("parent goes on\n");
    return 0;
}
