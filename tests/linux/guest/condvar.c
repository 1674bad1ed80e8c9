/* a condition-variable ping-pong between two threads: strict turns, then a broadcast */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn, rounds = 50, released;
static char log_[4096];
static int pos;

static void *player(void *arg) {
    int me = (int)(long)arg;
    for (int i = 0; i < rounds; i++) {
        pthread_mutex_lock(&m);
        while (turn != me) pthread_cond_wait(&cv, &m);
        log_[pos++] = me ? 'o' : 'i';
        turn = !me;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static void *waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m);
    while (!released) pthread_cond_wait(&cv, &m);
    turn++;
    pthread_mutex_unlock(&m);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = atoi(argv[1]);
    pthread_t a, b;
    pthread_create(&a, NULL, player, (void *)0);
    pthread_create(&b, NULL, player, (void *)1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    log_[pos] = 0;
    printf("%d turns: %.20s...\n", pos, log_);
    int alternating = 1;
    for (int i = 1; i < pos; i++)
        if (log_[i] == log_[i - 1]) alternating = 0;
    printf("alternating=%d\n", alternating);
    /* broadcast: three waiters released at once */
    turn = 0;
    pthread_t w[3];
    for (int i = 0; i < 3; i++) pthread_create(&w[i], NULL, waiter, NULL);
    pthread_mutex_lock(&m);
    released = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&m);
    for (int i = 0; i < 3; i++) pthread_join(w[i], NULL);
    printf("broadcast released=%d\n", turn);
    return 0;
}
