/* brk and malloc: many small blocks, one big block (mmap'd by malloc), sbrk by hand, checked sums */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    char *start = (char *)syscall(SYS_brk, 0);
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
    /* some C libraries' malloc (and sbrk) never grow the heap: move the break by hand too */
    char *more = (char *)syscall(SYS_brk, 0);
    char *end = (char *)syscall(SYS_brk, more + 4 * 4096);
    if (end != more + 4 * 4096) return 2;
    memset(more, 7, 4 * 4096);
    printf("sum=%ld big=%ld heap_grew=%d\n", sum, bsum, end > start);
    return 0;
}
