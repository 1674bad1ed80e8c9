/* map 64 MiB, touch 4 MiB of it and drop it, twelve times, three ways: the frames must come back */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#define MB (1 << 20)
int main(void) {
    int rounds = 0;
    for (int i = 0; i < 12; i++) {
        size_t n = 64 * MB;
        char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) break;
        for (size_t off = 0; off < 4 * MB; off += 4096) p[off] = 1;
        if (i % 3 == 0) {
            munmap(p, n);
        } else if (i % 3 == 1) {
            madvise(p, n, MADV_DONTNEED);
            munmap(p, n);
        } else {
            p = mremap(p, n, 4096, 0);
            munmap(p, 4096);
        }
        rounds++;
    }
    printf("rounds=%d\n", rounds);
    return 0;
}
