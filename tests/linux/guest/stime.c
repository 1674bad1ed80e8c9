/* System time: N write(2) calls of 4 KiB to /dev/null (the personality's work for the
   process), in the process and in a forked child; prints the rusage and times figures. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[4096];

static long us(struct timeval tv) { return tv.tv_sec * 1000000L + tv.tv_usec; }

static void calls(long n) {
    int fd = open("/dev/null", O_WRONLY);
    for (long i = 0; i < n; i++) write(fd, buf, sizeof buf);
    close(fd);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    calls(n);
    pid_t pid = fork();
    if (pid == 0) { calls(n); _exit(0); }
    int st;
    struct rusage child, self, kids;
    wait4(pid, &st, 0, &child);
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    struct tms t;
    times(&t);
    printf("self_stime_us=%ld self_utime_us=%ld wait4_stime_us=%ld kids_stime_us=%ld stime=%ld cstime=%ld\n",
           us(self.ru_stime), us(self.ru_utime), us(child.ru_stime), us(kids.ru_stime),
           (long)t.tms_stime, (long)t.tms_cstime);
    return 0;
}
