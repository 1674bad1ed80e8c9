/* touches ever more memory: more than the machine has */
#include <stdio.h>
#include <sys/mman.h>
int main(void) {
    size_t n = 1UL << 30;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    puts("mapped");
    fflush(stdout);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    puts("survived");
    return 0;
}
