/* brk and malloc: many small blocks on the heap, one big block (mmap'd by malloc), checked sums */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    char *start = sbrk(0);
    long sum = 0;
    char *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(100 + i);
        memset(blocks[i], i & 0xff, 100 + i);
    }
    for (int i = 0; i < 1000; i++) sum += (unsigned char)blocks[i][99 + i];
    for (int i = 0; i < 1000; i += 2) free(blocks[i]);
    char *big = malloc(1 << 20);
    for (int i = 0; i < (1 << 20); i += 4096) big[i] = (char)(i >> 12);
    long bsum = 0;
    for (int i = 0; i < (1 << 20); i += 4096) bsum += big[i];
    free(big);
    char *end = sbrk(0);
    printf("sum=%ld big=%ld heap_grew=%d\n", sum, bsum, end > start);
    return 0;
}
