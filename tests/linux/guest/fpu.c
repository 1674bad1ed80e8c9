/* The x87/SSE state Linux gives a process and its threads: the control word and MXCSR at
 * exec, long double arithmetic, state kept per thread across switches, copied by fork and
 * pthread_create (clone), saved in a signal frame's fpstate (uc_mcontext.fpregs), reset for
 * the handler and restored (with the handler's changes) by rt_sigreturn. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

static unsigned cw(void) { unsigned short v; __asm__ volatile("fnstcw %0" : "=m"(v)); return v; }
static unsigned mxcsr(void) { unsigned v; __asm__ volatile("stmxcsr %0" : "=m"(v)); return v; }
static void set_cw(unsigned short v) { __asm__ volatile("fldcw %0" :: "m"(v)); }
static void set_mxcsr(unsigned v) { __asm__ volatile("ldmxcsr %0" :: "m"(v)); }

static long raw_syscall(long n, long a, long b) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return r;
}

/* --- threads: each keeps its own MXCSR, control word and xmm7 across switches */
struct turn { int id; unsigned mx, cw; uint64_t pattern; int bad; unsigned start_mx, start_cw; };

static void *worker(void *arg) {
    struct turn *t = arg;
    t->start_mx = mxcsr();  /* what pthread_create's clone copied from the creator */
    t->start_cw = cw();
    set_mxcsr(t->mx);
    set_cw(t->cw);
    uint64_t in[2] = {t->pattern, ~t->pattern}, out[2];
    __asm__ volatile("movdqu %0, %%xmm7" :: "m"(in) : "xmm7");
    for (int i = 0; i < 200; i++) {
        raw_syscall(24, 0, 0);  /* sched_yield: the other thread runs in between */
        __asm__ volatile("movdqu %%xmm7, %0" : "=m"(out));
        if (mxcsr() != t->mx || cw() != t->cw || out[0] != in[0] || out[1] != in[1]) t->bad++;
    }
    return 0;
}

/* --- signals: the FXSAVE image at uc_mcontext.fpregs (its layout, whatever the C library calls it) */
struct fxsave { uint16_t cwd, swd, ftw, fop; uint64_t rip, rdp; uint32_t mxcsr, mxcsr_mask;
                uint8_t st[8][16], xmm[16][16], pad[96]; };
static volatile unsigned h_cw, h_mx, f_cw, f_mx, magic, aligned, above, has_fp;
static volatile uint64_t f_xmm0;
static volatile long double h_third;

static void handler(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    h_cw = cw();
    h_mx = mxcsr();
    volatile long double one = 1, three = 3;
    h_third = one / three;  /* at the handler's (initial) precision */
    struct fxsave *fp = (struct fxsave *)uc->uc_mcontext.fpregs;
    has_fp = fp != 0;
    if (!fp) return;
    aligned = ((uintptr_t)fp & 63) == 0;
    above = (char *)fp > (char *)uc;
    f_cw = fp->cwd;
    f_mx = fp->mxcsr;
    memcpy((void *)&f_xmm0, fp->xmm[0], 8);
    memcpy((void *)&magic, (char *)fp + 464, 4);
    /* what the interrupted code gets back: another xmm0, rounding upwards */
    uint64_t x = 0x1122334455667788ull;
    memcpy(fp->xmm[0], &x, 8);
    fp->mxcsr = 0x5f80;
}

int main(void) {
    printf("at exec: control word %#x mxcsr %#x\n", cw(), mxcsr());
    volatile long double a = 1, b = 3;
    printf("1/3 = %.20Lf\n", a / b);
    printf("strtold(0.1) = %.25Lg, %%g of 1/7: %g\n", strtold("0.1", 0), 1.0 / 7);

    /* fork copies the state */
    set_mxcsr(0x3f80);  /* round towards zero */
    set_cw(0x27f);      /* double precision */
    pid_t pid = fork();
    if (pid == 0) {
        printf("child after fork: control word %#x mxcsr %#x\n", cw(), mxcsr());
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, 0, 0);

    /* threads: clone copies the creator's state; each thread's stays its own */
    struct turn t1 = {1, 0x1f80, 0x37f, 0x0123456789abcdefull}, t2 = {2, 0x7f80, 0x7f, 0xfedcba9876543210ull};
    pthread_t a1, a2;
    pthread_create(&a1, 0, worker, &t1);
    pthread_create(&a2, 0, worker, &t2);
    pthread_join(a1, 0);
    pthread_join(a2, 0);
    for (struct turn *t = &t1; t; t = t == &t1 ? &t2 : 0)
        printf("thread %d: started with control word %#x mxcsr %#x; %d changes seen\n", t->id, t->start_cw,
               t->start_mx, t->bad);

    /* a signal: its frame holds the state, the handler starts clean, sigreturn restores */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, 0);
    set_mxcsr(0x3f80);
    set_cw(0x7f);  /* single precision */
    uint64_t in[2] = {0xa5a5a5a55a5a5a5aull, 42}, out[2];
    long me = getpid();
    __asm__ volatile("movdqu %[in], %%xmm0\n mov $62, %%eax\n syscall\n movdqu %%xmm0, %[out]"
                     : [out] "=m"(out) : [in] "m"(in), "D"(me), "S"((long)SIGUSR1)
                     : "rax", "rcx", "r11", "memory", "xmm0");
    unsigned after_mx = mxcsr(), after_cw = cw();
    volatile long double c = 1, d = 3;
    long double third = c / d;
    set_cw(0x37f);
    set_mxcsr(0x1f80);
    printf("handler: control word %#x mxcsr %#x, 1/3 = %.20Lf\n", h_cw, h_mx, h_third);
    printf("frame: fpregs %s, 64-byte aligned %u, above the ucontext %u, magic %#x\n",
           has_fp ? "set" : "NULL", aligned, above, magic);
    printf("frame: control word %#x mxcsr %#x xmm0 %#llx\n", f_cw, f_mx, (unsigned long long)f_xmm0);
    printf("after sigreturn: control word %#x mxcsr %#x xmm0 %#llx %llu, 1/3 = %.20Lf\n", after_cw,
           after_mx, (unsigned long long)out[0], (unsigned long long)out[1], third);
    return 0;
}
