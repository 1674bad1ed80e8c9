/* futex: EAGAIN on a changed word, relative and absolute timeouts (simulated time), a wake
   from another thread, CMP_REQUEUE and WAKE_OP, pthread_cond_timedwait; "-v" prints times */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long fx(int *uaddr, int op, int val, const struct timespec *ts, int *uaddr2, int val3) {
    long r = syscall(SYS_futex, uaddr, op, val, ts, uaddr2, val3);
    return r < 0 ? -errno : r;
}

static long now_ns(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int word, f1, f2, woken_ok, waiting;

static void *sleeper(void *arg) {
    (void)arg;
    __atomic_add_fetch(&waiting, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&word, __ATOMIC_SEQ_CST) == 0)
        fx(&word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    woken_ok = 1;
    return NULL;
}

static void *requeued(void *arg) {
    (void)arg;
    fx(&f1, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    __atomic_add_fetch(&waiting, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static int never;
static volatile long intr_result = 1;

static void on_usr1(int sig) { (void)sig; }

static void *intr_waiter(void *arg) {
    (void)arg;
    intr_result = fx(&never, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return NULL;
}

int main(int argc, char **argv) {
    int verbose = argc > 1 && !strcmp(argv[1], "-v");
    int w = 1;
    printf("wait on changed word: %s\n", fx(&w, FUTEX_WAIT, 2, NULL, NULL, 0) == -EAGAIN ? "EAGAIN" : "?");
    printf("wake without waiters: %ld\n", fx(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
    struct timespec rel = {0, 30000000};  /* 30 ms */
    long t0 = now_ns(CLOCK_MONOTONIC);
    long r = fx(&w, FUTEX_WAIT_PRIVATE, 1, &rel, NULL, 0);
    long dt = now_ns(CLOCK_MONOTONIC) - t0;
    printf("relative timeout: %s waited>=30ms=%d\n", r == -ETIMEDOUT ? "ETIMEDOUT" : "?", dt >= 30000000);
    if (verbose) printf("relative waited %ld us\n", dt / 1000);
    struct timespec abs;
    clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_nsec += 20000000;
    if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
    t0 = now_ns(CLOCK_MONOTONIC);
    r = fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 1, &abs, NULL, FUTEX_BITSET_MATCH_ANY);
    dt = now_ns(CLOCK_MONOTONIC) - t0;
    printf("absolute timeout: %s waited>=20ms=%d\n", r == -ETIMEDOUT ? "ETIMEDOUT" : "?", dt >= 19000000);
    if (verbose) printf("absolute waited %ld us\n", dt / 1000);
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_sec -= 1;
    r = fx(&w, FUTEX_WAIT_BITSET_PRIVATE | FUTEX_CLOCK_REALTIME, 1, &abs, NULL, FUTEX_BITSET_MATCH_ANY);
    printf("deadline in the past: %s\n", r == -ETIMEDOUT ? "ETIMEDOUT" : "?");
    printf("bitset 0: %s\n", fx(&w, FUTEX_WAIT_BITSET, 1, NULL, NULL, 0) == -EINVAL ? "EINVAL" : "?");

    /* a wake from another thread */
    pthread_t t;
    pthread_create(&t, NULL, sleeper, NULL);
    struct timespec ms = {0, 1000000};
    while (!__atomic_load_n(&waiting, __ATOMIC_SEQ_CST)) nanosleep(&ms, NULL);
    nanosleep(&ms, NULL);
    __atomic_store_n(&word, 1, __ATOMIC_SEQ_CST);
    fx(&word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    pthread_join(t, NULL);
    printf("woken by another thread: %d\n", woken_ok);

    /* CMP_REQUEUE two waiters from f1 to f2, then wake them on f2 */
    waiting = 0;
    pthread_t q[2];
    for (int i = 0; i < 2; i++) pthread_create(&q[i], NULL, requeued, NULL);
    int moved = 0, woke = 0;
    while (moved < 2) {
        long n = fx(&f1, FUTEX_CMP_REQUEUE_PRIVATE, 0, (struct timespec *)(long)2, &f2, 0);
        if (n < 0) { printf("requeue error %ld\n", n); return 1; }
        moved += (int)n;
        if (moved < 2) nanosleep(&ms, NULL);
    }
    printf("cmp_requeue with a changed word: %s\n",
           fx(&f1, FUTEX_CMP_REQUEUE_PRIVATE, 0, (struct timespec *)(long)2, &f2, 5) == -EAGAIN ? "EAGAIN" : "?");
    printf("still waiting after requeue: %d\n", __atomic_load_n(&waiting, __ATOMIC_SEQ_CST));
    while (woke < 2) woke += (int)fx(&f2, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    for (int i = 0; i < 2; i++) pthread_join(q[i], NULL);
    printf("requeued=%d woken on f2=%d returned=%d\n", moved, woke, waiting);

    /* WAKE_OP: f2 = f2 + 5, wake f1, wake f2 if old f2 == 0 (no waiters: 0) */
    f2 = 0;
    r = fx(&f1, FUTEX_WAKE_OP_PRIVATE, 1, (struct timespec *)(long)1, &f2,
           FUTEX_OP(FUTEX_OP_ADD, 5, FUTEX_OP_CMP_EQ, 0));
    printf("wake_op=%ld f2=%d\n", r, f2);

    /* pthread_cond_timedwait against the realtime clock */
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_nsec += 15000000;
    if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
    pthread_mutex_lock(&m);
    int e = pthread_cond_timedwait(&cv, &m, &abs);
    pthread_mutex_unlock(&m);
    printf("cond_timedwait: %s\n", e == ETIMEDOUT ? "ETIMEDOUT" : strerror(e));

    /* a handler (without SA_RESTART) interrupts a wait: EINTR */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_create(&t, NULL, intr_waiter, NULL);
    while (intr_result == 1) {
        pthread_kill(t, SIGUSR1);
        nanosleep(&ms, NULL);
    }
    pthread_join(t, NULL);
    printf("signal during a wait: %s\n", intr_result == -EINTR ? "EINTR" : "?");
    return 0;
}
