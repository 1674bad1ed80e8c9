/* a store to an address nobody mapped: killed by SIGSEGV */
#include <stdio.h>
int main(void) {
    puts("before");
    fflush(stdout);
    *(volatile int *)0x1234 = 1;
    puts("after");
    return 0;
}
