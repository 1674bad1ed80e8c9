/* Extended attributes on tmpfs, preadv/pwritev(2), memfd_create, close_range, the old
 * getdents, fallocate, copy_file_range, rt_sigtimedwait (sigwait, sigtimedwait,
 * sigwaitinfo) and process_vm_readv/writev.  argv[1]: a tmpfs directory to work in. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef FALLOC_FL_ZERO_RANGE
#define FALLOC_FL_ZERO_RANGE 0x10
#endif

static const char *e(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EPERM: return "EPERM";
    case EEXIST: return "EEXIST";
    case ENODATA: return "ENODATA";
    case ERANGE: return "ERANGE";
    case E2BIG: return "E2BIG";
    case EINVAL: return "EINVAL";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ESPIPE: return "ESPIPE";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ESRCH: return "ESRCH";
    case EFAULT: return "EFAULT";
    case ENOENT: return "ENOENT";
    default: return strerror(errno);
    }
}

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

static void list(const char *what, const char *path) {
    char buf[512], *names[32];
    ssize_t n = listxattr(path, buf, sizeof buf);
    int k = 0;
    for (ssize_t i = 0; i < n && k < 32; i += strlen(buf + i) + 1) names[k++] = buf + i;
    qsort(names, k, sizeof names[0], cmp);  /* the order is the file system's */
    printf("%s: %zd", what, n);
    for (int i = 0; i < k; i++) printf(" %s", names[i]);
    printf("\n");
}

static void xattrs(void) {
    int fd = open("f", O_CREAT | O_RDWR, 0644);
    struct stat a, b;
    stat("f", &a);
    struct timespec d = {0, 20000000};
    nanosleep(&d, 0);
    printf("set user.a: %s\n", e(setxattr("f", "user.a", "1", 1, 0)));
    stat("f", &b);
    printf("ctime changed %d, mtime changed %d\n", b.st_ctim.tv_nsec != a.st_ctim.tv_nsec || b.st_ctime != a.st_ctime,
           b.st_mtim.tv_nsec != a.st_mtim.tv_nsec || b.st_mtime != a.st_mtime);
    printf("set user.b: %s\n", e(setxattr("f", "user.b", "22", 2, 0)));
    printf("set trusted.t: %s, security.s: %s\n", e(setxattr("f", "trusted.t", "1", 1, 0)),
           e(setxattr("f", "security.s", "1", 1, 0)));
    printf("set foo.x: %s, system.x: %s\n", e(setxattr("f", "foo.x", "1", 1, 0)), e(setxattr("f", "system.x", "1", 1, 0)));
    printf("XATTR_CREATE existing: %s\n", e(setxattr("f", "user.a", "1", 1, XATTR_CREATE)));
    printf("XATTR_REPLACE missing: %s\n", e(setxattr("f", "user.zz", "1", 1, XATTR_REPLACE)));
    printf("XATTR_REPLACE: %s\n", e(setxattr("f", "user.a", "333", 3, XATTR_REPLACE)));
    list("list", "f");
    char buf[256];
    printf("list size %zd, too small %s\n", listxattr("f", 0, 0), e(listxattr("f", buf, 3)));
    ssize_t n = getxattr("f", "user.a", buf, sizeof buf);
    printf("get %zd %.*s, size %zd, too small %s, missing %s\n", n, (int)n, buf, getxattr("f", "user.a", 0, 0),
           e(getxattr("f", "user.a", buf, 1)), e(getxattr("f", "user.q", buf, 10)));
    printf("empty value: %s -> %zd\n", e(setxattr("f", "user.e", "", 0, 0)), getxattr("f", "user.e", buf, 10));
    printf("remove: %s, again %s\n", e(removexattr("f", "user.a")), e(removexattr("f", "user.a")));
    printf("empty name %s, \"user.\" %s\n", e(setxattr("f", "", "1", 1, 0)), e(setxattr("f", "user.", "1", 1, 0)));
    char longname[300];
    memset(longname, 'x', 299);
    longname[299] = 0;
    memcpy(longname, "user.", 5);
    printf("long name: %s\n", e(setxattr("f", longname, "1", 1, 0)));
    static char big[70000];
    printf("65537 bytes %s, 65536 bytes %s\n", e(setxattr("f", "user.big", big, 65537, 0)),
           e(setxattr("f", "user.big", big, 65536, 0)));
    symlink("f", "l");
    printf("symlink: user %s, trusted %s; through it %s\n", e(lsetxattr("l", "user.x", "1", 1, 0)),
           e(lsetxattr("l", "trusted.x", "1", 1, 0)), e(setxattr("l", "user.via", "1", 1, 0)));
    list("link", "l");
    printf("lget trusted.x %zd, lget user.x %s\n", lgetxattr("l", "trusted.x", buf, 10), e(lgetxattr("l", "user.x", buf, 10)));
    mkdir("d", 0755);
    printf("directory: %s\n", e(setxattr("d", "user.x", "1", 1, 0)));
    int p[2];
    pipe(p);
    printf("pipe: user %s, trusted %s\n", e(fsetxattr(p[0], "user.x", "1", 1, 0)), e(fsetxattr(p[0], "trusted.x", "1", 1, 0)));
    mkfifo("fifo", 0644);
    printf("fifo: user %s, trusted %s\n", e(setxattr("fifo", "user.x", "1", 1, 0)), e(setxattr("fifo", "trusted.x", "1", 1, 0)));
    printf("fset %s, fget %zd, fremove %s\n", e(fsetxattr(fd, "user.f", "x", 1, 0)), fgetxattr(fd, "user.f", buf, 10),
           e(fremovexattr(fd, "user.f")));
    printf("missing file %s, bad flags %s\n", e(getxattr("nope", "user.a", buf, 10)), e(setxattr("f", "user.a", "1", 1, 4)));
    close(p[0]);
    close(p[1]);
    close(fd);
    unlink("f");
    unlink("l");
    unlink("fifo");
    rmdir("d");
}

static void vector_io(void) {
    int fd = open("v", O_CREAT | O_RDWR | O_TRUNC, 0644);
    write(fd, "0123456789", 10);
    char a[4] = {0}, b[4] = {0};
    struct iovec iov[2] = {{a, 3}, {b, 3}};
    ssize_t n = preadv(fd, iov, 2, 2);
    printf("preadv at 2: %zd %.3s|%.3s, offset %ld\n", n, a, b, (long)lseek(fd, 0, SEEK_CUR));
    struct iovec w[2] = {{"AB", 2}, {"CD", 2}};
    n = pwritev(fd, w, 2, 12);
    char all[32] = {0};
    pread(fd, all, sizeof all, 0);
    printf("pwritev at 12: %zd, file %.2s.. size %ld\n", n, all + 12, (long)lseek(fd, 0, SEEK_END));
    lseek(fd, 1, SEEK_SET);
    n = preadv2(fd, iov, 1, -1, 0);
    printf("preadv2 at -1: %zd %.3s, offset %ld\n", n, a, (long)lseek(fd, 0, SEEK_CUR));
    n = pwritev2(fd, w, 1, 0, RWF_APPEND);
    pread(fd, all, sizeof all, 0);
    printf("pwritev2 RWF_APPEND: %zd, ends %.2s\n", n, all + 16);
    printf("preadv2 bad flag: %s\n", e(preadv2(fd, iov, 1, 0, 0x10000000)));
    printf("preadv negative: %s\n", e(preadv(fd, iov, 1, -5)));
    int p[2];
    pipe2(p, 0);
    printf("preadv on a pipe: %s\n", e(preadv(p[0], iov, 1, 0)));
    printf("preadv2 RWF_NOWAIT on an empty pipe: %s\n", e(preadv2(p[0], iov, 1, -1, RWF_NOWAIT)));
    close(p[0]);
    close(p[1]);
    /* fallocate and copy_file_range */
    printf("fallocate to 100: %s", e(fallocate(fd, 0, 0, 100)));
    struct stat st;
    fstat(fd, &st);
    printf(", size %ld\n", (long)st.st_size);
    printf("keep size: %s", e(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 4096)));
    fstat(fd, &st);
    printf(", size %ld\n", (long)st.st_size);
    printf("punch hole: %s", e(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2, 3)));
    pread(fd, all, 8, 0);
    printf(" -> %d %d %d %c\n", all[2], all[3], all[4], all[5]);
    printf("punch without keep: %s, zero range: %s, len 0: %s\n", e(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 1)),
           e(fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 1)), e(fallocate(fd, 0, 0, 0)));
    int out = open("v2", O_CREAT | O_RDWR | O_TRUNC, 0644);
    loff_t in_off = 5;
    lseek(out, 3, SEEK_SET);
    n = copy_file_range(fd, &in_off, out, 0, 4, 0);
    pread(out, all, sizeof all, 0);
    printf("copy_file_range: %zd in_off %lld out offset %ld: %d %d %d %.4s\n", n, (long long)in_off,
           (long)lseek(out, 0, SEEK_CUR), all[0], all[1], all[2], all + 3);
    printf("copy_file_range flags: %s\n", e(copy_file_range(fd, 0, out, 0, 1, 1)));
    close(out);
    close(fd);
    unlink("v");
    unlink("v2");
}

static void memfd_close_range(void) {
    int m = memfd_create("l4sim-memfd", MFD_CLOEXEC);
    char link[64], target[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", m);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    struct stat st;
    fstat(m, &st);
    printf("memfd: %s cloexec %d regular %d mode %o links %lu\n", target, fcntl(m, F_GETFD), S_ISREG(st.st_mode),
           st.st_mode & 0777, (unsigned long)st.st_nlink);
    ftruncate(m, 4096);
    char *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    pid_t c = fork();
    if (c == 0) {
        strcpy(p, "from the child");
        _exit(0);
    }
    waitpid(c, 0, 0);
    char buf[32] = {0};
    pread(m, buf, 14, 0);
    printf("memfd shared: %s / %s\n", p, buf);
    printf("memfd long name: %s\n", e(memfd_create(
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
        "01234567890123456789012345678901234567890123456789", 0)));
    printf("memfd bad flags: %s\n", e(memfd_create("x", 0x100)));
    int a = dup(0), b = dup(0), d = dup(0);
    printf("close_range cloexec: %s -> %d %d\n", e(syscall(SYS_close_range, a, b, 4)), fcntl(a, F_GETFD), fcntl(b, F_GETFD));
    printf("close_range: %s -> %s %s %s\n", e(syscall(SYS_close_range, a, d, 0)), e(fcntl(a, F_GETFD)),
           e(fcntl(b, F_GETFD)), e(fcntl(d, F_GETFD)));
    printf("close_range first > last: %s\n", e(syscall(SYS_close_range, 5, 4, 0)));
    close(m);
}

struct old_dirent { unsigned long ino; unsigned long off; unsigned short reclen; char name[]; };

static void old_getdents(void) {
    mkdir("gd", 0755);
    close(open("gd/file", O_CREAT | O_WRONLY, 0644));
    mkdir("gd/sub", 0755);
    int fd = open("gd", O_RDONLY | O_DIRECTORY);
    char buf[512];
    long n = syscall(SYS_getdents, fd, buf, sizeof buf);
    char *names[8];
    int types[8], k = 0;
    for (long at = 0; at < n && k < 8;) {
        struct old_dirent *de = (void *)(buf + at);
        names[k] = de->name;
        types[k++] = buf[at + de->reclen - 1];
        at += de->reclen;
    }
    char line[8][64];
    char *sorted[8];
    for (int i = 0; i < k; i++) {
        snprintf(line[i], sizeof line[i], "%s/%d", names[i], types[i]);
        sorted[i] = line[i];
    }
    qsort(sorted, k, sizeof sorted[0], cmp);  /* the order is the file system's */
    printf("getdents:");
    for (int i = 0; i < k; i++) printf(" %s", sorted[i]);
    printf("\n");
    printf("getdents small buffer: %s\n", e(syscall(SYS_getdents, fd, buf, 10)));
    close(fd);
    unlink("gd/file");
    rmdir("gd/sub");
    rmdir("gd");
}

static void sigwaits(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, 0);
    kill(getpid(), SIGUSR1);
    int sig = 0;
    printf("sigwait: %d -> %d\n", sigwait(&set, &sig), sig);
    struct timespec to = {0, 30000000};
    printf("sigtimedwait timeout: %s\n", e(sigtimedwait(&set, 0, &to)));
    pid_t c = fork();
    if (c == 0) _exit(5);
    siginfo_t si;
    int r = sigwaitinfo(&set, &si);
    printf("sigwaitinfo: %d code %s pid %s status %d\n", r, si.si_code == CLD_EXITED ? "EXITED" : "other",
           si.si_pid == c ? "child" : "other", si.si_status);
    waitpid(c, 0, 0);
    pid_t parent = getpid();
    c = fork();
    if (c == 0) {
        struct timespec d = {0, 30000000};
        nanosleep(&d, 0);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    r = sigwaitinfo(&set, &si);
    printf("waited for the child's kill: %d from the child %d\n", r, si.si_pid == c);
    r = sigwaitinfo(&set, &si);  /* and then its SIGCHLD */
    printf("then: %d\n", r);
    waitpid(c, 0, 0);
    sigprocmask(SIG_UNBLOCK, &set, 0);
    printf("bad size: %s\n", e(syscall(SYS_rt_sigtimedwait, &set, 0, 0, 4)));
}

static char secret[32] = "the child's secret";

static void vm_rw(void) {
    int p[2];
    pipe(p);
    pid_t c = fork();
    if (c == 0) {
        char x;
        read(p[0], &x, 1);  /* until the parent has written */
        printf("child now holds: %s\n", secret);
        _exit(0);
    }
    char buf[32] = {0};
    struct iovec local = {buf, sizeof buf}, remote = {secret, sizeof secret};
    ssize_t n = process_vm_readv(c, &local, 1, &remote, 1, 0);
    printf("process_vm_readv: %zd %s\n", n, buf);
    struct iovec msg = {"overwritten by the parent", 26};
    n = process_vm_writev(c, &msg, 1, &remote, 1, 0);
    printf("process_vm_writev: %zd\n", n);
    write(p[1], "x", 1);
    waitpid(c, 0, 0);
    struct iovec bad = {(void *)0x10, 8};
    printf("bad remote: %s\n", e(process_vm_readv(getpid(), &local, 1, &bad, 1, 0)));
    printf("no such process: %s\n", e(process_vm_readv(0x3ffffff0, &local, 1, &remote, 1, 0)));
    printf("flags: %s\n", e(process_vm_readv(getpid(), &local, 1, &remote, 1, 1)));
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    if (argc > 1 && chdir(argv[1])) return 1;
    xattrs();
    vector_io();
    memfd_close_range();
    old_getdents();
    sigwaits();
    vm_rw();
    return 0;
}
