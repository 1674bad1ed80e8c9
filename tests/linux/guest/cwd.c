/* the cwd and a directory fd are the directories themselves: they keep working after the
   directory is renamed; after it is removed getcwd fails, nothing is listed or made there.
   argv[1]: a directory to work in (printed paths are relative to it) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *base;

static void cwd(const char *what) {
    char buf[4096];
    if (getcwd(buf, sizeof buf) == NULL) {
        printf("%s: getcwd %s\n", what, errno == ENOENT ? "ENOENT" : strerror(errno));
        return;
    }
    printf("%s: getcwd %s\n", what, strncmp(buf, base, strlen(base)) == 0 ? buf + strlen(base) : buf);
}

static void proc_cwd(const char *what) {
    char buf[4096];
    ssize_t n = readlink("/proc/self/cwd", buf, sizeof buf - 1);
    if (n < 0) {
        printf("%s: readlink %s\n", what, strerror(errno));
        return;
    }
    buf[n] = 0;
    printf("%s: /proc/self/cwd %s\n", what, strncmp(buf, base, strlen(base)) == 0 ? buf + strlen(base) : buf);
}

static int entries(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -errno;
    char buf[4096];
    int n = 0;
    long r;
    while ((r = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < r;) {
            unsigned short reclen = *(unsigned short *)(buf + off + 16);
            n++;
            off += reclen;
        }
    }
    close(fd);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0)
        return 2;
    base = argv[1];
    mkdir("a", 0755);
    mkdir("a/sub", 0755);
    close(open("a/f", O_CREAT | O_WRONLY, 0644));
    chdir("a");
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    cwd("in a");
    rename("../a", "../b");
    cwd("renamed");
    proc_cwd("renamed");
    printf("stat f: %d\n", access("f", F_OK));
    int fd = open("g", O_CREAT | O_WRONLY, 0644);
    printf("create g: %s\n", fd >= 0 ? "ok" : strerror(errno));
    close(fd);
    printf("entries: %d\n", entries("."));
    rename("sub", "sub2");
    fd = openat(dfd, "h", O_CREAT | O_WRONLY, 0644);
    printf("openat in renamed dirfd: %s\n", fd >= 0 ? "ok" : strerror(errno));
    close(fd);
    printf("h there: %d\n", access("sub2/h", F_OK));
    unlink("sub2/h");
    rmdir("sub2");
    unlink("f");
    unlink("g");
    printf("rmdir own cwd: %d\n", rmdir("../b"));
    cwd("removed");
    proc_cwd("removed");
    printf("entries: %d\n", entries("."));
    fd = open("x", O_CREAT | O_WRONLY, 0644);
    printf("create x: %s\n", fd >= 0 ? "ok" : errno == ENOENT ? "ENOENT" : strerror(errno));
    printf("mkdir y: %s\n", mkdir("y", 0755) == 0 ? "ok" : errno == ENOENT ? "ENOENT" : strerror(errno));
    printf("openat in removed dirfd: %s\n", openat(dfd, "z", O_CREAT | O_WRONLY, 0644) >= 0 ? "ok"
           : errno == ENOENT ? "ENOENT" : strerror(errno));
    printf("chdir ..: %d\n", chdir(".."));
    cwd("parent");
    return 0;
}
