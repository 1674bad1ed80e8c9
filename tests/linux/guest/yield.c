/* two threads that call sched_yield in a loop take turns (each records its id); built with
   -DCALL=getppid they make another system call instead, which does not yield */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>
#ifndef CALL
#define CALL sched_yield
#endif
static char seen[64];
static volatile int n;
static void *work(void *arg) {
    for (int i = 0; i < 20; i++) { seen[n++] = (char)('0' + (long)arg); CALL(); }
    return 0;
}
int main(void) {
    pthread_t t[2];
    for (long i = 0; i < 2; i++) pthread_create(&t[i], 0, work, (void *)i);
    for (int i = 0; i < 2; i++) pthread_join(t[i], 0);
    seen[n] = 0;
    printf("%s\n", seen);
    return 0;
}
