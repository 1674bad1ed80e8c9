/* Handlers for synchronous faults: SIGSEGV (a store to an unmapped page and to a read-only
   page, reported with si_addr and si_code), SIGFPE (divide by zero), SIGILL (ud2), SIGTRAP
   (int3); each handler leaves by siglongjmp.  Then a stack overflow caught on sigaltstack. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static sigjmp_buf env;
static volatile int got_sig, got_code;
static void *volatile got_addr;
static char alt[65536];

static void handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    got_addr = si->si_addr;
    siglongjmp(env, 1);
}

static int depth(int n) {
    volatile char buf[4096];
    buf[0] = (char)n;
    return depth(n + 1) + buf[0];
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    for (int s = 1; s < 32; s++) if (s != SIGKILL && s != SIGSTOP) sigaction(s, &sa, NULL);
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    sigaltstack(&ss, NULL);

    volatile int *bad = (int *)0x50000000;
    if (!sigsetjmp(env, 1)) *bad = 1;
    printf("unmapped: sig=%d code=%d addr_page=%#lx\n", got_sig, got_code, (unsigned long)got_addr & ~0xfffUL);

    int *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!sigsetjmp(env, 1)) *(volatile int *)ro = 1;
    printf("readonly: sig=%d code=%d same_page=%d\n", got_sig, got_code,
           ((uintptr_t)got_addr & ~0xfffUL) == (uintptr_t)ro);

    volatile int zero = 0;
    if (!sigsetjmp(env, 1)) { volatile int x = 7 / zero; (void)x; }
    printf("divide: sig=%d code=%d\n", got_sig, got_code);

    if (!sigsetjmp(env, 1)) __asm__ volatile("ud2");
    printf("ud2: sig=%d code=%d\n", got_sig, got_code);

    if (!sigsetjmp(env, 1)) __asm__ volatile("int3");
    printf("int3: sig=%d\n", got_sig);

    if (!sigsetjmp(env, 1)) depth(0);
    printf("overflow: sig=%d\n", got_sig);
    return 0;
}
