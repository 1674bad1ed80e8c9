/* mremap (grow in place, move, shrink, MREMAP_FIXED, a file mapping grown), madvise
   (MADV_DONTNEED zeroes private anonymous pages and refills file pages; errors), and a
   large realloc (musl moves big blocks with mremap) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096

static long sum(const unsigned char *p, size_t n) {
    long s = 0;
    for (size_t i = 0; i < n; i++) s += p[i];
    return s;
}

int main(void) {
    /* grow in place: the pages after the area are free (we map at a hint with room) */
    unsigned char *a = mmap((void *)0x400000000, 2 * PG, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(a, 7, 2 * PG);
    unsigned char *b = mremap(a, 2 * PG, 4 * PG, 0);
    printf("grow in place: same=%d kept=%ld new=%ld\n", b == a, sum(b, 2 * PG), sum(b + 2 * PG, 2 * PG));

    /* blocked by a mapping right after it: ENOMEM without MREMAP_MAYMOVE, moved with it */
    unsigned char *block = mmap(b + 4 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    void *r = mremap(b, 4 * PG, 8 * PG, 0);
    printf("blocked: %s\n", r == MAP_FAILED && errno == ENOMEM ? "ENOMEM" : "?");
    b[4 * PG - 1] = 9;
    unsigned char *c = mremap(b, 4 * PG, 8 * PG, MREMAP_MAYMOVE);
    printf("moved: away=%d kept=%ld last=%d new=%ld\n", c != b, sum(c, 4 * PG), c[4 * PG - 1],
           sum(c + 4 * PG, 4 * PG));
    /* the old range is gone: mapping it anew with MAP_FIXED_NOREPLACE succeeds */
    void *again = mmap(b, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("old range free=%d\n", again == (void *)b);

    /* shrink, then MREMAP_FIXED to a chosen address */
    unsigned char *d = mremap(c, 8 * PG, 2 * PG, 0);
    unsigned char *target = (unsigned char *)0x500000000;
    unsigned char *e = mremap(d, 2 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    printf("shrink same=%d fixed at=%d kept=%ld tail=%ld\n", d == c, e == target, sum(e, 2 * PG),
           sum(e + 2 * PG, PG));
    errno = 0;
    r = mremap(e, PG, PG, MREMAP_FIXED, target + 16 * PG);
    printf("fixed without maymove: %s\n", r == MAP_FAILED && errno == EINVAL ? "EINVAL" : "?");
    r = mremap((void *)0x600000000, PG, 2 * PG, MREMAP_MAYMOVE);
    printf("unmapped: %s\n", r == MAP_FAILED && errno == EFAULT ? "EFAULT" : "?");

    /* a private file mapping grown: the new pages come from the file */
    const char *path = "/tmp/l4sim-mremap";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    static unsigned char buf[3 * PG];
    for (int i = 0; i < 3 * PG; i++) buf[i] = (unsigned char)(i / PG + 1);
    write(fd, buf, sizeof buf);
    unsigned char *f = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    f[0] = 100;
    unsigned char *g = mremap(f, PG, 3 * PG, MREMAP_MAYMOVE);
    printf("file grown: first=%d p1=%d p2=%d\n", g[0], g[PG + 5], g[2 * PG + 5]);

    /* madvise(MADV_DONTNEED): private anonymous pages read back as zeros, file pages anew */
    unsigned char *h = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(h, 3, 4 * PG);
    int rc = madvise(h + PG, 2 * PG, MADV_DONTNEED);
    printf("dontneed rc=%d: %ld %ld %ld %ld\n", rc, sum(h, PG), sum(h + PG, PG), sum(h + 2 * PG, PG),
           sum(h + 3 * PG, PG));
    g[PG] = 50;
    madvise(g, 3 * PG, MADV_DONTNEED);
    printf("file dontneed: first=%d p1=%d\n", g[0], g[PG]);
    /* shared anonymous memory keeps its contents */
    unsigned char *s = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    s[0] = 77;
    madvise(s, PG, MADV_DONTNEED);
    printf("shared dontneed: %d\n", s[0]);
    /* other advice is accepted; errors */
    int ok = madvise(h, PG, MADV_WILLNEED) | madvise(h, PG, MADV_SEQUENTIAL) | madvise(h, PG, MADV_NORMAL);
    int e1 = madvise(h + 1, PG, MADV_NORMAL) == -1 ? errno : 0;
    int e2 = madvise(h, PG, 12345) == -1 ? errno : 0;
    munmap(h + PG, PG);
    int e3 = madvise(h, 4 * PG, MADV_NORMAL) == -1 ? errno : 0;
    printf("advice ok=%d unaligned=%d unknown=%d hole=%d\n", ok, e1, e2, e3);

    /* realloc of a large block keeps its bytes */
    size_t n = 1 << 20;
    unsigned char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (unsigned char)(i * 7);
    big = realloc(big, 8 * n);
    long bad = 0;
    for (size_t i = 0; i < n; i++) bad += big[i] != (unsigned char)(i * 7);
    big[8 * n - 1] = 1;
    printf("realloc bad=%ld\n", bad);
    (void)block;
    unlink(path);
    return 0;
}
