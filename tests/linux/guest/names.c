/* File names are bytes: every byte but '/' and NUL in names made, listed, looked up,
 * renamed, linked to and removed; in symbolic links' targets, /proc/self/cwd and
 * /proc/self/fd/N, getcwd, and in argv and envp across execve.  Names are printed with
 * every byte outside printable ASCII in hex.  argv[1]: a directory to make and work in. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *what, const char *s) {
    printf("%s ", what);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c > 32 && *c < 127 && *c != '\\') putchar(*c); else printf("\\x%02x", *c);
    putchar('\n');
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *dir) {
    DIR *d = opendir(dir);
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    for (int i = 0; i < n; i++) show("  entry", names[i]);
}

int main(int argc, char **argv, char **envp) {
    if (argc > 2 && !strcmp(argv[1], "--args")) {  /* after execve: what arrived */
        for (int i = 2; i < argc; i++) show("arg", argv[i]);
        for (char **e = envp; *e; e++) if (!strncmp(*e, "ODD", 3)) show("env", *e);
        return 0;
    }
    if (argc < 2 || mkdir(argv[1], 0755) || chdir(argv[1])) return 2;
    static const char *odd[] = {"a\376b", "\377", "caf\303\251", "tab\there", "new\nline", "sp ace", "\x01\x7f\x80",
                                "-dash", "\\back", "q\"uote", "\303", 0};
    for (int i = 0; odd[i]; i++) {
        int fd = open(odd[i], O_CREAT | O_WRONLY | O_EXCL, 0644);
        if (fd < 0 || write(fd, odd[i], strlen(odd[i])) < 0) { show("cannot create", odd[i]); return 1; }
        close(fd);
    }
    printf("made %d names\n", 11);
    list(".");
    struct stat st;
    for (int i = 0; odd[i]; i++)
        if (stat(odd[i], &st) || st.st_size != (off_t)strlen(odd[i])) show("stat wrong", odd[i]);
    if (rename("a\376b", "re\375named") || access("a\376b", F_OK) == 0 || access("re\375named", F_OK)) puts("rename wrong");
    if (symlink("target\376\377", "link\201") || mkdir("dir\376", 0755)) puts("make wrong");
    char buf[256];
    ssize_t n = readlink("link\201", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    show("readlink", buf);
    if (unlink("\377") || unlink("\303")) puts("unlink wrong");
    list(".");
    /* a directory whose name is not UTF-8: the cwd and an fd of it */
    if (chdir("dir\376")) return 3;
    int dfd = open(".", O_RDONLY | O_DIRECTORY);
    char link[64], cwd[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dfd);
    n = readlink(link, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    char *tail = strrchr(buf, '/');
    show("fd link ends in", tail ? tail : buf);
    n = readlink("/proc/self/cwd", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    tail = strrchr(buf, '/');
    show("cwd link ends in", tail ? tail : buf);
    if (!getcwd(cwd, sizeof cwd)) return 4;
    tail = strrchr(cwd, '/');
    show("getcwd ends in", tail ? tail : cwd);
    fflush(stdout);
    /* argv and envp are bytes too */
    char *args[] = {argv[0], "--args", "x\376y", "caf\303\251", "\377", 0};
    char *env[] = {"ODD=v\376w", "ODD\377=1", "PATH=/bin", 0};
    execve("/proc/self/exe", args, env);
    perror("execve");
    return 5;
}
