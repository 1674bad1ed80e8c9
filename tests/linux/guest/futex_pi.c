/* futex: priority inheritance (FUTEX_LOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_UNLOCK_PI and a
 * PTHREAD_PRIO_INHERIT mutex against priority inversion under SCHED_FIFO on one CPU),
 * robust lists (a thread and a process dying holding a robust mutex: EOWNERDEAD,
 * pthread_mutex_consistent, ENOTRECOVERABLE; get_robust_list), WAIT_BITSET/WAKE_BITSET,
 * REQUEUE; the scheduling calls.  Prints the same natively (as root) and under l4sim. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long fx(uint32_t *uaddr, int op, uint32_t val, void *timeout, uint32_t *uaddr2, uint32_t val3) {
    return syscall(SYS_futex, uaddr, op, val, timeout, uaddr2, val3);
}

static const char *e(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EDEADLK: return "EDEADLK";
    case EPERM: return "EPERM";
    case ESRCH: return "ESRCH";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINVAL: return "EINVAL";
    case EOWNERDEAD: return "EOWNERDEAD";
    case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
    default: return strerror(errno);
    }
}

static pid_t tid(void) { return syscall(SYS_gettid); }

static void word(const char *what, uint32_t w, pid_t owner) {
    printf("%s: %s%s%s\n", what, (w & FUTEX_TID_MASK) == 0 ? "free" : (w & FUTEX_TID_MASK) == (uint32_t)owner ? "owner" : "other",
           w & FUTEX_WAITERS ? "|WAITERS" : "", w & FUTEX_OWNER_DIED ? "|OWNER_DIED" : "");
}

/* ------------------------------------------------------------------ raw PI operations */
static uint32_t pif;
static pid_t main_tid;

static void *pi_waiter(void *arg) {
    (void)arg;
    long r = fx(&pif, FUTEX_LOCK_PI_PRIVATE, 0, 0, 0, 0);
    printf("waiter lock_pi: %s, ", e(r));
    word("word", pif, tid());
    printf("waiter unlock_pi: %s\n", e(fx(&pif, FUTEX_UNLOCK_PI_PRIVATE, 0, 0, 0, 0)));
    word("after waiter's unlock", pif, tid());
    return 0;
}

static void raw_pi(void) {
    main_tid = tid();
    printf("lock_pi free: %s\n", e(fx(&pif, FUTEX_LOCK_PI_PRIVATE, 0, 0, 0, 0)));
    word("word", pif, main_tid);
    printf("lock_pi again: %s\n", e(fx(&pif, FUTEX_LOCK_PI_PRIVATE, 0, 0, 0, 0)));
    printf("trylock_pi own: %s\n", e(fx(&pif, FUTEX_TRYLOCK_PI_PRIVATE, 0, 0, 0, 0)));
    struct timespec past = {1, 0};
    printf("lock_pi timeout: %s\n", e(fx(&pif, FUTEX_LOCK_PI_PRIVATE, 0, &past, 0, 0)));
    pthread_t th;
    pthread_create(&th, 0, pi_waiter, 0);
    struct timespec d = {0, 5000000};
    for (int i = 0; i < 400 && !(pif & FUTEX_WAITERS); i++) nanosleep(&d, 0);  /* until it waits */
    nanosleep(&d, 0);
    word("with a waiter", pif, main_tid);
    const char *r = e(fx(&pif, FUTEX_UNLOCK_PI_PRIVATE, 0, 0, 0, 0));
    pthread_join(th, 0);  /* (who runs first after the hand-over is the scheduler's business) */
    printf("unlock_pi: %s\n", r);
    printf("unlock_pi not owner: %s\n", e(fx(&pif, FUTEX_UNLOCK_PI_PRIVATE, 0, 0, 0, 0)));
    pif = 0x3ffffff0;  /* an owner that does not exist */
    printf("lock_pi dead owner: %s\n", e(fx(&pif, FUTEX_LOCK_PI_PRIVATE, 0, 0, 0, 0)));
    word("word", pif, main_tid);
    pif = FUTEX_OWNER_DIED;  /* free, its owner died: taken, the bit kept */
    printf("trylock_pi owner died: %s\n", e(fx(&pif, FUTEX_TRYLOCK_PI_PRIVATE, 0, 0, 0, 0)));
    word("word", pif, main_tid);
    pif = 0;
}

/* ------------------------------------------------------------------ priority inversion */
static pthread_mutex_t pim;
static int use_pi;

static void say(const char *s) { write(1, s, strlen(s)); }

static pthread_t start(void *(*fn)(void *), int prio) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&a, SCHED_FIFO);
    struct sched_param sp = {.sched_priority = prio};
    pthread_attr_setschedparam(&a, &sp);
    pthread_t t;
    if (pthread_create(&t, &a, fn, 0)) say("pthread_create failed\n");
    return t;
}

static void *high(void *arg) {
    (void)arg;
    say("H: locking\n");
    pthread_mutex_lock(&pim);
    say("H: got the lock\n");
    pthread_mutex_unlock(&pim);
    return 0;
}

static void *medium(void *arg) {
    (void)arg;
    say("M: runs\n");
    return 0;
}

static void *low(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pim);
    say("L: locked\n");
    pthread_t h = start(high, 30);  /* preempts L, waits for the lock */
    int pol;
    struct sched_param sp;
    pthread_getschedparam(pthread_self(), &pol, &sp);
    printf("L: policy %s priority %d\n", pol == SCHED_FIFO ? "FIFO" : "other", sp.sched_priority);
    fflush(stdout);
    pthread_t m = start(medium, 20);  /* with PI, L runs above it until it unlocks */
    say("L: unlocking\n");
    pthread_mutex_unlock(&pim);
    say("L: done\n");
    pthread_join(h, 0);
    pthread_join(m, 0);
    return 0;
}

static int inversion(int pi) {
    use_pi = pi;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    if (pi) pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&pim, &ma);
    printf("-- priority inversion, %s mutex\n", pi ? "PI" : "plain");
    fflush(stdout);
    pthread_t l = start(low, 10);
    pthread_join(l, 0);
    pthread_mutex_destroy(&pim);
    return 0;
}

/* ------------------------------------------------------------------ robust mutexes */
static pthread_mutex_t rm;

static void *die_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&rm);
    syscall(SYS_exit, 0);  /* this thread only, holding rm */
    return 0;
}

/* musl's mutex word (the futex) is the second int of pthread_mutex_t */
static volatile int *lockword(pthread_mutex_t *m) { return (volatile int *)m + 1; }

static void until(pthread_mutex_t *m, int bits) {
    struct timespec d = {0, 5000000};
    for (int i = 0; i < 400 && !(*lockword(m) & bits); i++) nanosleep(&d, 0);
}

static void robust_thread(int pi) {
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    /* musl registers its robust list with the kernel for process-shared mutexes only (a
     * private one is released by pthread_exit in the library) */
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    if (pi) pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&rm, &ma);
    pthread_t t;
    pthread_create(&t, 0, die_holding, 0);
    until(&rm, FUTEX_OWNER_DIED);  /* the thread locked it and died */
    printf("robust%s, owner thread gone: lock %s\n", pi ? " PI" : "", e(-(errno = pthread_mutex_lock(&rm)) ? -1 : 0));
    printf("  consistent: %d, unlock: %d, lock: %s\n", pthread_mutex_consistent(&rm), pthread_mutex_unlock(&rm),
           (errno = pthread_mutex_lock(&rm)) ? e(-1) : "ok");
    pthread_mutex_unlock(&rm);
    /* (a thread that ended with the raw exit call cannot be joined: musl marks it done in
     * pthread_exit) */
    pthread_mutex_destroy(&rm);
    pthread_mutex_init(&rm, &ma);
}

static void *hold_then_die(void *arg) {
    (void)arg;
    pthread_mutex_lock(&rm);
    struct timespec d = {0, 50000000};
    nanosleep(&d, 0);
    syscall(SYS_exit, 0);
    return 0;
}

static void robust_waiter(int pi) {
    pthread_t t;
    pthread_create(&t, 0, hold_then_die, 0);
    until(&rm, FUTEX_TID_MASK);  /* the thread holds it */
    int r = pthread_mutex_lock(&rm);
    printf("robust%s waiter: %s\n", pi ? " PI" : "", r == EOWNERDEAD ? "EOWNERDEAD" : r ? strerror(r) : "ok");
    r = pthread_mutex_unlock(&rm);  /* without consistent: not recoverable */
    r = pthread_mutex_lock(&rm);
    printf("  after unlock without consistent: %s\n", r == ENOTRECOVERABLE ? "ENOTRECOVERABLE" : r ? strerror(r) : "ok");
}

static void robust_process(void) {
    pthread_mutex_t *m = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(m, &ma);
    int p[2];
    pipe(p);
    pid_t c = fork();
    if (c == 0) {
        pthread_mutex_lock(m);
        write(p[1], "x", 1);
        struct timespec d = {0, 50000000};
        nanosleep(&d, 0);
        _exit(3);  /* the process ends holding the mutex */
    }
    char x;
    read(p[0], &x, 1);
    int r = pthread_mutex_lock(m);  /* waits; the child's end wakes it */
    printf("robust process: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : r ? strerror(r) : "ok");
    pthread_mutex_consistent(m);
    pthread_mutex_unlock(m);
    int st;
    waitpid(c, &st, 0);
    printf("  child status %d\n", WEXITSTATUS(st));
}

static void robust_list_calls(void) {
    struct robust_list_head *head;
    size_t len;
    pthread_mutex_lock(&rm);  /* musl registers its list on the first robust lock */
    long r = syscall(SYS_get_robust_list, 0, &head, &len);
    printf("get_robust_list: %s len %zu head %s\n", e(r), len, head ? "set" : "NULL");
    printf("set_robust_list bad size: %s\n", e(syscall(SYS_set_robust_list, head, 12)));
    printf("get_robust_list no such thread: %s\n", e(syscall(SYS_get_robust_list, 0x3ffffff0, &head, &len)));
    pthread_mutex_unlock(&rm);
}

/* ------------------------------------------------------------------ bitsets, requeue */
static uint32_t fa, fb;
static int woke[4];

static void *bit_waiter(void *arg) {
    long i = (long)arg;
    long r = fx(&fa, FUTEX_WAIT_BITSET_PRIVATE, 0, 0, 0, 1u << i);
    woke[i] = r == 0 ? 1 : -1;
    return 0;
}

static void *req_waiter(void *arg) {
    (void)arg;
    fx(&fa, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0);
    return 0;
}

static void bitsets(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, bit_waiter, (void *)i);
    struct timespec d = {0, 100000000};
    nanosleep(&d, 0);
    printf("wake_bitset 0b0101: %ld\n", fx(&fa, FUTEX_WAKE_BITSET_PRIVATE, 10, 0, 0, 5));
    nanosleep(&d, 0);
    printf("woken: %d %d %d %d\n", woke[0], woke[1], woke[2], woke[3]);
    printf("wake_bitset 0: %s\n", e(fx(&fa, FUTEX_WAKE_BITSET_PRIVATE, 10, 0, 0, 0)));
    printf("wake_bitset all: %ld\n", fx(&fa, FUTEX_WAKE_BITSET_PRIVATE, 10, 0, 0, FUTEX_BITSET_MATCH_ANY));
    for (int i = 0; i < 4; i++) pthread_join(t[i], 0);
    for (int i = 0; i < 3; i++) pthread_create(&t[i], 0, req_waiter, 0);
    nanosleep(&d, 0);
    printf("requeue 1 woken, 1 moved: %ld\n", fx(&fa, FUTEX_REQUEUE_PRIVATE, 1, (void *)1, &fb, 0));
    printf("wake the rest of a: %ld\n", fx(&fa, FUTEX_WAKE_PRIVATE, 10, 0, 0, 0));
    printf("wake b: %ld\n", fx(&fb, FUTEX_WAKE_PRIVATE, 10, 0, 0, 0));
    for (int i = 0; i < 3; i++) pthread_join(t[i], 0);
}

/* musl's sched_setscheduler and friends return ENOSYS by design (they name processes, not
 * threads): the raw calls */
static long setsched(pid_t pid, int policy, int prio) {
    struct sched_param sp = {.sched_priority = prio};
    return syscall(SYS_sched_setscheduler, pid, policy, &sp);
}

static void sched_calls(void) {
    struct sched_param sp = {0};
    setpriority(PRIO_PROCESS, 0, 0);  /* not the nice value this run was started with */
    printf("priority max/min FIFO %d %d RR %d %d OTHER %d %d\n", sched_get_priority_max(SCHED_FIFO),
           sched_get_priority_min(SCHED_FIFO), sched_get_priority_max(SCHED_RR), sched_get_priority_min(SCHED_RR),
           sched_get_priority_max(SCHED_OTHER), sched_get_priority_min(SCHED_OTHER));
    printf("max of policy 9: %s\n", e(sched_get_priority_max(9)));
    printf("policy %ld\n", syscall(SYS_sched_getscheduler, 0));
    printf("setscheduler OTHER prio 5: %s\n", e(setsched(0, SCHED_OTHER, 5)));
    printf("setscheduler RR 0: %s\n", e(setsched(0, SCHED_RR, 0)));
    printf("setscheduler RR 100: %s\n", e(setsched(0, SCHED_RR, 100)));
    printf("setscheduler RR 7: %s\n", e(setsched(0, SCHED_RR, 7)));
    syscall(SYS_sched_getparam, 0, &sp);
    struct timespec ts;
    syscall(SYS_sched_rr_get_interval, 0, &ts);
    printf("policy %ld priority %d slice %ld ms\n", syscall(SYS_sched_getscheduler, 0), sp.sched_priority,
           ts.tv_nsec / 1000000);
    sp.sched_priority = 9;
    printf("setparam 9: %s", e(syscall(SYS_sched_setparam, 0, &sp)));
    syscall(SYS_sched_getparam, 0, &sp);
    printf(" -> %d\n", sp.sched_priority);
    setsched(0, SCHED_FIFO, 3);
    syscall(SYS_sched_rr_get_interval, 0, &ts);
    printf("FIFO slice %ld\n", (long)ts.tv_nsec);
    setsched(0, SCHED_OTHER, 0);
    printf("nice %d, setpriority 5: %s, getpriority %d\n", getpriority(PRIO_PROCESS, 0),
           e(setpriority(PRIO_PROCESS, 0, 5)), getpriority(PRIO_PROCESS, 0));
    printf("setpriority 40 -> %d\n", (setpriority(PRIO_PROCESS, 0, 40), getpriority(PRIO_PROCESS, 0)));
    setpriority(PRIO_PROCESS, 0, 0);
    errno = 0;
    printf("getpriority no such: %s\n", getpriority(PRIO_PROCESS, 0x3ffffff0) == -1 && errno ? e(-1) : "ok");
    printf("setscheduler no such: %s\n", e(setsched(0x3ffffff0, SCHED_OTHER, 0)));
    struct { uint32_t size, policy; uint64_t flags; int32_t nice; uint32_t prio; uint64_t rt, dl, per; } at = {0};
    printf("getattr: %s", e(syscall(SYS_sched_getattr, 0, &at, sizeof at, 0)));
    printf(" size %u policy %u nice %d prio %u\n", at.size, at.policy, at.nice, at.prio);
    at.size = sizeof at; at.policy = SCHED_OTHER; at.nice = 3;
    printf("setattr nice 3: %s -> %d\n", e(syscall(SYS_sched_setattr, 0, &at, 0)), getpriority(PRIO_PROCESS, 0));
    setpriority(PRIO_PROCESS, 0, 0);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);
    raw_pi();
    bitsets();
    robust_thread(0);
    robust_waiter(0);
    robust_thread(1);
    robust_waiter(1);
    robust_list_calls();
    robust_process();
    sched_calls();
    fflush(stdout);
    if (setsched(0, SCHED_FIFO, 50)) {
        printf("no SCHED_FIFO: %s\n", strerror(errno));
        return 0;
    }
    inversion(0);
    inversion(1);
    return 0;
}
