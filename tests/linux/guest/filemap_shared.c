/* MAP_SHARED of a file: stores through the mapping are the file's bytes (read, a second
   mapping, a forked child, after munmap), and write/pwrite/ftruncate show in the mapping.
   argv[1]: a directory for the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, int fd) {
    char buf[16] = {0};
    pread(fd, buf, 11, 0);
    printf("%s: [%s]\n", what, buf);
}

int main(int argc, char **argv) {
    char path[256];
    snprintf(path, sizeof path, "%s/shared.dat", argc > 1 ? argv[1] : "/tmp");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    char init[6000];
    memset(init, '.', sizeof init);
    memcpy(init, "hello world", 11);
    write(fd, init, sizeof init);
    char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { printf("mmap: errno %d\n", errno); return 1; }
    printf("mapped: [%.11s] tail=%c beyond=%d\n", p, p[5999], p[6000]);
    p[0] = 'H';
    show("after a store", fd);
    pwrite(fd, "W", 1, 6);
    printf("after pwrite: [%.11s]\n", p);
    char *q = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    p[2] = 'L';
    printf("second mapping: [%.11s]\n", q);
    pid_t pid = fork();
    if (pid == 0) { p[1] = 'E'; _exit(0); }
    waitpid(pid, 0, 0);
    show("after the child's store", fd);
    printf("msync: %d\n", msync(p, 4096, MS_SYNC));
    munmap(p, 8192);
    munmap(q, 4096);
    close(fd);
    fd = open(path, O_RDONLY);
    show("reopened", fd);
    char *r = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("rw shared of a read-only fd: %s\n", r == MAP_FAILED && errno == EACCES ? "EACCES" : "mapped");
    r = mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    fd = open(path, O_RDWR);
    ftruncate(fd, 3);
    printf("after ftruncate: [%.3s] then %d %d\n", r, r[3], r[100]);
    lseek(fd, 0, SEEK_END);
    write(fd, "ABC", 3);
    printf("after append: [%.6s]\n", r);
    unlink(path);
    return 0;
}
