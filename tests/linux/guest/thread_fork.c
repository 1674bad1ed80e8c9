/* fork from a thread: the child has one thread (its tid is its pid) and may make threads of its
   own; the main thread waits for the child another thread forked */
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child;

static void *inner(void *arg) {
    return (void *)((long)arg * 2);
}

static void *forker(void *arg) {
    (void)arg;
    child = fork();
    if (child == 0) {
        pthread_t t;
        void *r;
        pthread_create(&t, NULL, inner, (void *)21);
        pthread_join(t, &r);
        _exit(getpid() == (pid_t)syscall(SYS_gettid) && (long)r == 42 ? 5 : 1);
    }
    return NULL;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, forker, NULL);
    pthread_join(t, NULL);
    int st;
    pid_t r = waitpid(child, &st, 0);
    printf("waited for another thread's child: ok=%d code=%d\n", r == child, WEXITSTATUS(st));
    return 0;
}
