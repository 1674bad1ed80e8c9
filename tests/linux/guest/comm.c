/* a process is named (comm) after the file it executes, not its argv[0]: /proc/self/comm,
   the name in /proc/self/stat, prctl(PR_GET_NAME) -- the last component of the path given to
   execve (not of a symbolic link's target), 15 characters at most.  argv[1]: a directory */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *who) {
    char comm[64] = "", stat[256] = "", name[17] = "";
    FILE *f = fopen("/proc/self/comm", "r");
    if (f) {
        fgets(comm, sizeof comm, f);
        fclose(f);
    }
    comm[strcspn(comm, "\n")] = 0;
    f = fopen("/proc/self/stat", "r");
    if (f) {
        fgets(stat, sizeof stat, f);
        fclose(f);
    }
    char *a = strchr(stat, '('), *b = strrchr(stat, ')');
    if (a && b)
        *b = 0;
    prctl(PR_GET_NAME, name);
    printf("%s: comm=%s stat=%s prctl=%s\n", who, comm, a ? a + 1 : "?", name);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 2) {
        show(argv[2]);
        return 0;
    }
    show("first");
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = {"argv0-is-not-the-name", "child", "via /proc/self/exe", NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        char exe[4096], link[4200];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        snprintf(link, sizeof link, "%s/a-very-long-program-name", argc > 1 ? argv[1] : "/tmp");
        symlink(exe, link);
        char *args[] = {"also-not", "child", "through a symlink with a long name", NULL};
        execv(link, args);
        _exit(127);
    }
    waitpid(pid, NULL, 0);
    return 0;
}
