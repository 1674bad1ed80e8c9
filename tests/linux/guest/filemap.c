/* file-backed mmap: private mappings filled from the file, at an offset, copy-on-write,
   zeros past the end of the file, SIGBUS past its last page; shared anonymous memory
   across fork; /dev/zero; the address hint */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int child_signal(void (*fn)(void *), void *arg) {
    pid_t pid = fork();
    if (pid == 0) { fn(arg); _exit(0); }
    int st;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) ? WTERMSIG(st) : -WEXITSTATUS(st);
}
static void touch_read(void *p) { volatile char c = *(volatile char *)p; (void)c; }
static void touch_write(void *p) { *(volatile char *)p = 1; }

int main(void) {
    const char *path = "/tmp/l4sim-filemap";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    static char buf[10000];
    for (int i = 0; i < 10000; i++) buf[i] = (char)('a' + i % 26);
    if (write(fd, buf, sizeof buf) != sizeof buf) { puts("write failed"); return 1; }

    /* from offset 4096: the file's bytes 4096..9999, then zeros to the end of the page */
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 4096);
    if (m == MAP_FAILED) { printf("mmap: %s\n", strerror(errno)); return 1; }
    int same = memcmp(m, buf + 4096, 10000 - 4096) == 0;
    int zeros = 1;
    for (int i = 10000 - 4096; i < 8192; i++) if (m[i]) zeros = 0;
    printf("offset ok=%d tail zero=%d first=%c\n", same, zeros, m[0]);

    /* copy-on-write: writing the mapping changes neither the file nor another mapping */
    char *m2 = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 4096);
    m[0] = '#';
    char c;
    pread(fd, &c, 1, 4096);
    printf("private: mapping=%c file=%c other=%c\n", m[0], c, m2[0]);

    /* the child inherits the private copy; its writes stay its own */
    pid_t pid = fork();
    if (pid == 0) { m[1] = '!'; _exit(m[0] == '#' ? 0 : 1); }
    int st;
    waitpid(pid, &st, 0);
    printf("fork: child saw copy=%d parent second=%c\n", WEXITSTATUS(st) == 0, m[1]);

    /* a page wholly past the end of the file: SIGBUS */
    char *big = mmap(NULL, 4 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("last page=%c past end: signal %d\n", big[9999], child_signal(touch_read, big + 3 * 4096));

    /* read-only mapping: a store is SIGSEGV; mprotect makes it writable */
    printf("read-only store: signal %d\n", child_signal(touch_write, m2));
    mprotect(m2, 4096, PROT_READ | PROT_WRITE);
    m2[0] = '*';
    printf("after mprotect: %c\n", m2[0]);

    /* errors: offset not page-aligned, a write-only file, no such fd, a directory */
    int wfd = open(path, O_WRONLY);
    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
    void *e1 = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 100);
    int er1 = errno;
    void *e2 = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, wfd, 0);
    int er2 = errno;
    void *e3 = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 99, 0);
    int er3 = errno;
    void *e4 = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, dfd, 0);
    int er4 = errno;
    printf("errors: %d %d %d %d\n", e1 == MAP_FAILED ? er1 : 0, e2 == MAP_FAILED ? er2 : 0,
           e3 == MAP_FAILED ? er3 : 0, e4 == MAP_FAILED ? er4 : 0);

    /* shared anonymous memory: the child's store shows in the parent */
    int *shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shared[0] = 1;
    pid = fork();
    if (pid == 0) { shared[0] = 42; shared[1024] = 43; _exit(0); }
    waitpid(pid, &st, 0);
    printf("shared: %d %d\n", shared[0], shared[1024]);

    /* /dev/zero is anonymous memory */
    int zfd = open("/dev/zero", O_RDWR);
    int *z = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, zfd, 0);
    z[5] = 5;
    printf("dev/zero: %d %d\n", z[0], z[5]);

    /* a free hint is taken */
    void *want = (void *)0x300000000;
    void *got = mmap(want, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("hint taken=%d\n", got == want);
    close(fd);
    unlink(path);
    printf("after unlink: %c\n", big[1]);
    return 0;
}
