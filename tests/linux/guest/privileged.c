/* Privileged instructions in user mode: each raises SIGSEGV (general protection), as on
 * Linux: the signal, si_code, si_addr and the saved RIP (on the instruction) are printed.
 * A handler survives every one of them (the CPU forgets each exception), and a divide
 * error twice in a row is SIGFPE both times.  rdtsc and rdtscp work and never go back. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

static sigjmp_buf env;
static volatile int got_sig, got_code;
static volatile uintptr_t got_addr, got_rip;

static void handler(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    got_sig = sig;
    got_code = si->si_code;
    got_addr = (uintptr_t)si->si_addr;
    got_rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    siglongjmp(env, 1);
}

static char table[16];

#define INSN(name, text)                                                              \
    extern char at_##name[];                                                          \
    static void do_##name(void) {                                                     \
        __asm__ volatile(".globl at_" #name "\nat_" #name ":\n" text                 \
                         :: "D"(table) : "memory", "rax", "rcx", "rdx");              \
    }

INSN(cli, "cli")
INSN(sti, "sti")
INSN(hlt, "hlt")
INSN(in, "inb $0x80, %%al")
INSN(out, "outb %%al, $0x80")
INSN(insb, "insb")
INSN(rdmsr, "mov $0x10, %%ecx\n rdmsr")
INSN(wrmsr, "xor %%eax, %%eax\n xor %%edx, %%edx\n mov $0x10, %%ecx\n .globl at_wrmsr2\nat_wrmsr2: wrmsr")
INSN(mov_from_cr0, "mov %%cr0, %%rax")
INSN(mov_to_cr3, "xor %%eax, %%eax\n mov %%rax, %%cr3")
INSN(mov_from_dr7, "mov %%dr7, %%rax")
INSN(mov_to_dr0, "xor %%eax, %%eax\n mov %%rax, %%dr0")
INSN(lgdt, "lgdt (%%rdi)")
INSN(lidt, "lidt (%%rdi)")
INSN(ltr, "xor %%eax, %%eax\n ltr %%ax")
INSN(invlpg, "invlpg (%%rdi)")
INSN(wbinvd, "wbinvd")

extern char at_wrmsr2[], at_mov_to_cr3[], at_mov_to_dr0[], at_ltr[], at_rdmsr[];

struct test { const char *name; void (*fn)(void); char *at; };

static int run(const char *name, void (*fn)(void), char *at) {
    got_sig = got_code = 0;
    got_addr = got_rip = 0;
    if (sigsetjmp(env, 1) == 0) {
        fn();
        printf("%-14s no signal\n", name);
        return 1;
    }
    /* the saved RIP is the faulting instruction itself (for the ones with a setup
     * instruction, the last instruction of the sequence) */
    printf("%-14s sig %d code %d addr %#lx rip %s\n", name, got_sig, got_code,
           (unsigned long)got_addr, got_rip == (uintptr_t)at ? "at the instruction" : "elsewhere");
    return 0;
}

static volatile long zero = 0;
static volatile long quotient;
extern char at_div[];
static void do_div(void) {
    long n = 100, d = zero;
    __asm__ volatile("cqto\n .globl at_div\nat_div: idivq %2" : "+a"(n) : "d"(0L), "r"(d));
    quotient = n;
}

static uint64_t tsc(void) {
    unsigned lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "cli")) {  /* no handler: the process dies of SIGSEGV */
        __asm__ volatile("cli");
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "tsc")) {  /* the counter across a 10 ms sleep */
        struct timespec ts = {0, 10000000};
        uint64_t t0 = tsc();
        nanosleep(&ts, 0);
        uint64_t t1 = tsc();
        printf("%llu %llu\n", (unsigned long long)t0, (unsigned long long)(t1 - t0));
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGFPE, &sa, 0);
    sigaction(SIGILL, &sa, 0);
    sigaction(SIGBUS, &sa, 0);
    /* rdmsr: the exception is at rdmsr itself, after the mov into ecx */
    char *rdmsr_at = at_rdmsr + 5;
    struct test tests[] = {
        {"cli", do_cli, at_cli}, {"sti", do_sti, at_sti}, {"hlt", do_hlt, at_hlt},
        {"in", do_in, at_in}, {"out", do_out, at_out}, {"insb", do_insb, at_insb},
        {"rdmsr", do_rdmsr, rdmsr_at}, {"wrmsr", do_wrmsr, at_wrmsr2},
        {"mov cr0,rax", do_mov_from_cr0, at_mov_from_cr0},
        {"mov rax,cr3", do_mov_to_cr3, at_mov_to_cr3 + 2},
        {"mov dr7,rax", do_mov_from_dr7, at_mov_from_dr7},
        {"mov rax,dr0", do_mov_to_dr0, at_mov_to_dr0 + 2},
        {"lgdt", do_lgdt, at_lgdt}, {"lidt", do_lidt, at_lidt},
        {"ltr", do_ltr, at_ltr + 2}, {"invlpg", do_invlpg, at_invlpg},
        {"wbinvd", do_wbinvd, at_wbinvd},
    };
    int bad = 0;
    for (unsigned i = 0; i < sizeof tests / sizeof tests[0]; i++)
        bad += run(tests[i].name, tests[i].fn, tests[i].at);
    for (int i = 0; i < 3; i++)
        bad += run("idiv by 0", do_div, at_div);
    /* the time stamp counter: readable, never going back */
    unsigned lo, hi, aux;
    uint64_t last = 0;
    int back = 0;
    for (int i = 0; i < 100; i++) {
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        uint64_t t = (uint64_t)hi << 32 | lo;
        if (t < last) back++;
        last = t;
        __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
        t = (uint64_t)hi << 32 | lo;
        if (t < last) back++;
        last = t;
    }
    printf("rdtsc went back %d times\n", back);
    printf("%d instructions did not fault\n", bad);
    return 0;
}
