/* A process patches its own text (mprotect, then a store into a function), then execs
   itself: the new program runs the file's code, not the patched copy ("2 1"). */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((noinline)) int version(void) { return 1; }

int main(int argc, char **argv) {
    int (*volatile fn)(void) = version;
    if (argc > 1) {
        printf(" %d\n", fn());
        return 0;
    }
    uintptr_t page = (uintptr_t)version & ~(uintptr_t)4095;
    if (mprotect((void *)page, 8192, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) return 1;
    unsigned char code[] = {0xb8, 2, 0, 0, 0, 0xc3}; /* mov $2, %eax ; ret */
    for (unsigned i = 0; i < sizeof code; i++) ((volatile unsigned char *)version)[i] = code[i];
    printf("%d", fn());
    fflush(stdout);
    char *args[] = {argv[0], "again", 0};
    execv("/proc/self/exe", args);
    return 2;
}
