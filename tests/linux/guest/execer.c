/* execve of another program given as argv[1]; the parent waits for the child */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = {argv[1], "from", "exec", NULL};
        execv(argv[1], args);
        perror("execv");
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child status=%d\n", WEXITSTATUS(status));
    return 0;
}
