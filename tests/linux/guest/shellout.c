/* The shell and the commands a program expects to find: popen, posix_spawnp by PATH,
   system() and execl("/bin/sh", ...) each run and report their statuses. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(void) {
    char buf[64] = {0};
    FILE *f = popen("echo hello", "r");
    if (f == NULL) {
        perror("popen");
        return 1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int st = pclose(f);
    printf("popen: [%.*s] status=%d\n", (int)strcspn(buf, "\n"), buf, n > 0 ? WEXITSTATUS(st) : -1);
    fflush(stdout);

    pid_t pid;
    char *argv[] = {"echo", "spawned", NULL};
    int r = posix_spawnp(&pid, "echo", NULL, NULL, argv, environ);
    if (r == 0)
        waitpid(pid, &st, 0);
    printf("posix_spawnp: %d status=%d\n", r, r == 0 ? WEXITSTATUS(st) : -1);
    fflush(stdout);

    st = system("exit 7");
    printf("system: exit=%d\n", WEXITSTATUS(st));
    fflush(stdout);
    st = system("echo from system | tr a-z A-Z");
    printf("system: pipeline=%d\n", WEXITSTATUS(st));
    fflush(stdout);

    pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "echo from execl; exit 5", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    printf("execl: status=%d\n", WEXITSTATUS(st));
    return 0;
}
