/* the initial stack: auxv entries, AT_RANDOM bytes, the environment */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
extern char _start[];
int main(void) {
    unsigned char *r = (unsigned char *)getauxval(AT_RANDOM);
    printf("pagesz=%lu entry_ok=%d phnum=%lu hwcap=%lu uid=%lu\n", getauxval(AT_PAGESZ),
           getauxval(AT_ENTRY) == (unsigned long)_start, getauxval(AT_PHNUM), getauxval(AT_HWCAP),
           getauxval(AT_UID));
    printf("random=");
    for (int i = 0; i < 16; i++) printf("%02x", r[i]);
    printf("\nplatform=%s path=%s\n", (char *)getauxval(AT_PLATFORM), getenv("PATH") ? "set" : "unset");
    return 0;
}
