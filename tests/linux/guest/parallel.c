/* N threads computing independently (an LCG loop each): on several cores they run side by side */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long iters = 2000000;

static void *work(void *arg) {
    unsigned long x = (unsigned long)arg + 1;
    for (long i = 0; i < iters; i++) x = x * 6364136223846793005UL + 1442695040888963407UL;
    return (void *)(x >> 40);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2) iters = atol(argv[2]);
    pthread_t t[64];
    if (n < 1 || n > 64) return 2;
    for (long i = 0; i < n; i++) pthread_create(&t[i], NULL, work, (void *)i);
    unsigned long sum = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (unsigned long)r;
    }
    printf("threads=%d sum=%lu\n", n, sum);
    return 0;
}
