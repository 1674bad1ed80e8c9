#define _GNU_SOURCE
/* Address-space calls at their limits.  "fill": map all of user space PROT_NONE in a few
 * huge mmaps (halving the size down to a page when one fails), then allocate (sbrk, mmap)
 * until it fails: ENOMEM, and a page can be mapped again once a region is unmapped.  "as": RLIMIT_AS
 * bounds mmap (PROT_NONE counts, a MAP_FIXED over a mapping does not grow it) and brk.
 * "data": RLIMIT_DATA bounds private writable mappings and brk, not read-only ones. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define MB (1UL << 20)

static const char *res(void *p) { return p == MAP_FAILED ? (errno == ENOMEM ? "ENOMEM" : strerror(errno)) : "ok"; }
static void *map(size_t n, int prot) { return mmap(0, n, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0); }

static void limit(int what, size_t n) {
    struct rlimit r = {n, n};
    if (setrlimit(what, &r)) perror("setrlimit");
}

/* Linux grows the stack on demand and keeps a guard gap below it free: touch 256 KiB of
 * stack first, so that printf has room once everything else is mapped */
static void grow_stack(void) {
    volatile char buf[256 << 10];
    for (size_t i = 0; i < sizeof buf; i += 4096) buf[i] = 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "fill";
    if (!strcmp(mode, "fill")) {
        grow_stack();
        void *first = 0;
        size_t size = 1UL << 46, total = 0;
        int maps = 0;
        while (size >= 4096) {
            void *p = map(size, PROT_NONE);
            if (p == MAP_FAILED) { size /= 2; continue; }
            if (!first) first = p;
            total += size;
            maps++;
        }
        printf("filled: more than 100 TiB mapped %s, in fewer than 200 mmaps %s\n",
               total > (100UL << 40) ? "yes" : "no", maps < 200 ? "yes" : "no");
        long n = 0;
        while (sbrk(4096) != (void *)-1) n++;  /* the heap cannot grow either */
        printf("sbrk fails: %s, after %s\n", errno == ENOMEM ? "ENOMEM" : strerror(errno),
               n < 16 ? "a few pages at most" : "many pages");
        printf("mmap of a page: %s\n", res(map(4096, PROT_READ | PROT_WRITE)));
        /* calls naming the first region, 64 TiB, cost what is mapped there */
        printf("mprotect of the first region: %d\n", mprotect(first, 1UL << 46, PROT_READ));
        printf("madvise of the first region: %d\n", madvise(first, 1UL << 46, MADV_DONTNEED));
        printf("munmap of the first region: %d\n", munmap(first, 1UL << 46));
        char *p = map(4096, PROT_READ | PROT_WRITE);
        printf("mmap of a page again: %s\n", res(p));
        if (p != MAP_FAILED) { p[0] = 1; printf("touched it\n"); }
        return 0;
    }
    if (!strcmp(mode, "as")) {
        limit(RLIMIT_AS, 256 * MB);
        void *a = map(128 * MB, PROT_READ | PROT_WRITE);
        printf("AS: 128 MiB %s\n", res(a));
        printf("AS: 256 MiB more %s\n", res(map(256 * MB, PROT_READ | PROT_WRITE)));
        printf("AS: 256 MiB PROT_NONE more %s\n", res(map(256 * MB, PROT_NONE)));
        void *b = map(64 * MB, PROT_NONE);
        printf("AS: 64 MiB PROT_NONE %s\n", res(b));
        printf("AS: 64 MiB more %s\n", res(map(64 * MB, PROT_READ)));
        void *c = mmap(b, 64 * MB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        printf("AS: MAP_FIXED over the 64 MiB %s\n", res(c));
        printf("AS: sbrk 128 MiB %s\n", sbrk(128 * MB) == (void *)-1 ? "ENOMEM" : "ok");
        munmap(a, 128 * MB);
        printf("AS: after munmap, 64 MiB %s\n", res(map(64 * MB, PROT_READ | PROT_WRITE)));
        printf("AS: mremap 64 to 512 MiB %s\n", res(mremap(c, 64 * MB, 512 * MB, MREMAP_MAYMOVE)));
        return 0;
    }
    if (!strcmp(mode, "data")) {
        limit(RLIMIT_DATA, 64 * MB);
        printf("DATA: rw 32 MiB %s\n", res(map(32 * MB, PROT_READ | PROT_WRITE)));
        printf("DATA: rw 48 MiB more %s\n", res(map(48 * MB, PROT_READ | PROT_WRITE)));
        printf("DATA: read-only 48 MiB %s\n", res(map(48 * MB, PROT_READ)));
        printf("DATA: PROT_NONE 48 MiB %s\n", res(map(48 * MB, PROT_NONE)));
        printf("DATA: shared rw 48 MiB %s\n",
               res(mmap(0, 48 * MB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)));
        printf("DATA: sbrk 40 MiB %s\n", sbrk(40 * MB) == (void *)-1 ? "ENOMEM" : "ok");
        return 0;
    }
    return 2;
}
