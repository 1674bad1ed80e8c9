/* anonymous mmap: zero-filled, writable, munmap; a fixed mapping at a chosen address */
#include <stdio.h>
#include <sys/mman.h>
int main(void) {
    size_t n = 64 * 4096;
    unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { puts("mmap failed"); return 1; }
    int zero = 1;
    for (size_t i = 0; i < n; i += 4096) if (p[i] != 0) zero = 0;
    for (size_t i = 0; i < n; i += 4096) p[i] = (unsigned char)(i / 4096);
    unsigned long s = 0;
    for (size_t i = 0; i < n; i += 4096) s += p[i];
    if (munmap(p, n) != 0) { puts("munmap failed"); return 1; }
    unsigned char *q = mmap((void *)0x200000000, 8192, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    q[8191] = 7;
    printf("zero=%d sum=%lu fixed=%d at=%p\n", zero, s, q[8191], (void *)q);
    return 0;
}
