/* writev and readv through a pipe, a call Linux has but the personality does not, and a
   number Linux does not have: the lines --strace prints for them */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
int main(void) {
    int p[2];
    pipe(p);
    struct iovec out[2] = {{"hello, ", 7}, {"world\n", 6}};
    long w = writev(p[1], out, 2);
    char a[5], b[20];
    struct iovec in[2] = {{a, sizeof a}, {b, sizeof b}};
    long r = readv(p[0], in, 2);
    long e1 = syscall(SYS_io_setup, 1, (void *)0);
    int err1 = errno;
    long e2 = syscall(500, 1, 2);
    int err2 = errno;
    printf("w=%ld r=%ld [%.5s|%.*s] io_setup=%ld/%d 500=%ld/%d\n", w, r, a, (int)(r - 5), b, e1, err1, e2, err2);
    return 0;
}
