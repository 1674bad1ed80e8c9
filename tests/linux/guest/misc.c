/* uname, pids, the simulated clock, getrandom, an unimplemented call */
#include <errno.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    struct utsname u;
    uname(&u);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (volatile int i = 0; i < 100000; i++) {}
    clock_gettime(CLOCK_MONOTONIC, &b);
    long da = a.tv_sec * 1000000000L + a.tv_nsec, db = b.tv_sec * 1000000000L + b.tv_nsec;
    unsigned char buf[32];
    long n = getrandom(buf, sizeof buf, 0);
    long r = syscall(500);
    printf("%s %s pid=%d tid=%ld later=%d random=%ld enosys=%d\n", u.sysname, u.machine, (int)getpid(),
           (long)syscall(SYS_gettid), db > da, n, r == -1 && errno == ENOSYS);
    return 0;
}
