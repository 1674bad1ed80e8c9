/* pthread_create/join of N threads adding into a mutex-protected counter; each thread's
   return value comes back through pthread_join; tids are distinct, getpid is shared */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAXN 64
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static long rounds = 2000;
static pid_t tids[MAXN];
static pid_t pids[MAXN];

static void *work(void *arg) {
    long i = (long)arg;
    tids[i] = (pid_t)syscall(SYS_gettid);
    pids[i] = getpid();
    for (long r = 0; r < rounds; r++) {
        pthread_mutex_lock(&lock);
        counter += i + 1;
        pthread_mutex_unlock(&lock);
        if (r % 500 == 0) sched_yield();
    }
    return (void *)(i * i);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    if (argc > 2) rounds = atol(argv[2]);
    if (n < 1 || n > MAXN) return 2;
    pthread_t th[MAXN];
    for (long i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, work, (void *)i) != 0) return 3;
    long rets = 0;
    for (int i = 0; i < n; i++) {
        void *ret;
        if (pthread_join(th[i], &ret) != 0) return 4;
        rets += (long)ret;
    }
    int distinct = 1, same_pid = 1;
    pid_t me = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < n; i++) {
        if (pids[i] != getpid()) same_pid = 0;
        if (tids[i] == me || tids[i] == getpid()) distinct = 0;
        for (int j = 0; j < i; j++)
            if (tids[i] == tids[j]) distinct = 0;
    }
    printf("threads=%d counter=%ld expected=%ld rets=%ld\n", n, counter, rounds * n * (n + 1) / 2, rets);
    printf("distinct_tids=%d same_pid=%d main_tid_is_pid=%d\n", distinct, same_pid, me == getpid());
    return 0;
}
