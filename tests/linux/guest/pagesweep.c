/* Many pages touched again and again (a working set larger than a small TLB): sweep 16 MiB
   of heap four times, each time a different stride through it; print a checksum. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    size_t n = 16 << 20;
    unsigned char *p = malloc(n);
    if (p == NULL)
        return 1;
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (unsigned char)(i >> 12);
    unsigned long sum = 0;
    for (int round = 0; round < 4; round++)
        for (size_t i = 0; i < n; i += 4096 * (round + 1))
            sum = sum * 31 + p[i] + (unsigned long)round;
    printf("%lu\n", sum);
    return 0;
}
