/* setrlimit/getrlimit/prlimit64 and RLIMIT_NOFILE; renameat2 NOREPLACE and EXCHANGE */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int rn2(const char *a, const char *b, unsigned flags) {
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}

static void show(const char *path) {
    char buf[16] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("%s: missing\n", path); return; }
    read(fd, buf, sizeof buf - 1);
    close(fd);
    printf("%s: %s", path, buf);
}

int main(void) {
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    printf("nofile %lu %lu\n", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
    r.rlim_cur = 8;
    printf("set=%d\n", setrlimit(RLIMIT_NOFILE, &r));
    int last = -1, n = 0;
    for (;;) { int fd = open("/dev/null", O_RDONLY); if (fd < 0) { printf("open: %s after %d\n", errno == EMFILE ? "EMFILE" : "?", n); break; } last = fd; n++; }
    printf("last=%d\n", last);
    struct rlimit bad = {10, 5};
    printf("bad=%d %s\n", setrlimit(RLIMIT_NOFILE, &bad), errno == EINVAL ? "EINVAL" : "?");
    struct rlimit got;
    prlimit(0, RLIMIT_NOFILE, NULL, &got);
    printf("prlimit %lu\n", (unsigned long)got.rlim_cur);
    for (int fd = 3; fd <= last; fd++) close(fd);
    printf("unknown=%d %s\n", (int)syscall(SYS_prlimit64, 0, 99, NULL, &got), errno == EINVAL ? "EINVAL" : "?");

    mkdir("/tmp/rn", 0755);
    chdir("/tmp/rn");
    int fd = open("a", O_CREAT | O_WRONLY, 0644); write(fd, "A\n", 2); close(fd);
    fd = open("b", O_CREAT | O_WRONLY, 0644); write(fd, "B\n", 2); close(fd);
    printf("noreplace=%d %s\n", rn2("a", "b", 1), errno == EEXIST ? "EEXIST" : "?");
    printf("exchange=%d\n", rn2("a", "b", 2));
    show("a"); show("b");
    printf("exchange-missing=%d %s\n", rn2("a", "c", 2), errno == ENOENT ? "ENOENT" : "?");
    printf("noreplace-new=%d\n", rn2("a", "c", 1));
    show("a"); show("c");
    printf("both=%d %s\n", rn2("b", "c", 3), errno == EINVAL ? "EINVAL" : "?");
    return 0;
}
