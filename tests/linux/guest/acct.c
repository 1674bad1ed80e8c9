/* times, getrusage (self and children, and wait4's), sysinfo, prctl names, CPU affinity.
   With an argument, the raw figures instead (they differ natively). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile unsigned long sink;

static void spin(long n) {
    unsigned long x = 1;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        sink = x;  /* a store each round: the loop cannot be folded */
    }
}

static long us(struct timeval tv) { return tv.tv_sec * 1000000L + tv.tv_usec; }

int main(int argc, char **argv) {
    int raw = argc > 1;
    long n = 20000000;
    spin(n);
    struct tms t;
    clock_t now = times(&t);
    pid_t pid = fork();
    if (pid == 0) { spin(n); _exit(0); }
    int st;
    struct rusage child_ru, self_ru, kids_ru;
    wait4(pid, &st, 0, &child_ru);
    struct tms t2;
    times(&t2);
    getrusage(RUSAGE_SELF, &self_ru);
    getrusage(RUSAGE_CHILDREN, &kids_ru);
    int einval = getrusage(5, &self_ru) == -1 && errno == EINVAL;
    getrusage(RUSAGE_SELF, &self_ru);
    struct sysinfo si;
    int si_rc = sysinfo(&si);
    cpu_set_t set;
    CPU_ZERO(&set);
    int aff = sched_getaffinity(0, sizeof set, &set);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (raw) {
        printf("ticks=%ld utime=%ld cutime=%ld wait4_utime_us=%ld self_utime_us=%ld kids_utime_us=%ld\n",
               (long)now, (long)t.tms_utime, (long)t2.tms_cutime, us(child_ru.ru_utime),
               us(self_ru.ru_utime), us(kids_ru.ru_utime));
        printf("maxrss_kb=%ld minflt=%ld kids_minflt=%ld totalram=%lu freeram=%lu procs=%d unit=%u uptime=%ld\n",
               self_ru.ru_maxrss, self_ru.ru_minflt, kids_ru.ru_minflt, si.totalram, si.freeram, si.procs,
               si.mem_unit, si.uptime);
        printf("affinity=%d count=%d cpu0=%d nprocs=%ld\n", aff, CPU_COUNT(&set), (int)CPU_ISSET(0, &set), ncpu);
    } else {
        printf("times: now>=0=%d stime>=0=%d\n", now >= 0, t.tms_stime >= 0);
        printf("rusage: wait4>0=%d self>0=%d children>0=%d maxrss>0=%d minflt>0=%d einval=%d\n",
               us(child_ru.ru_utime) > 0, us(self_ru.ru_utime) > 0, us(kids_ru.ru_utime) > 0,
               self_ru.ru_maxrss > 0, self_ru.ru_minflt > 0, einval);
        printf("sysinfo: rc=%d ram>0=%d free<=total=%d procs>0=%d\n", si_rc, si.totalram > 0,
               si.freeram <= si.totalram, si.procs > 0);
        printf("affinity: rc=%d count>0=%d nprocs>0=%d\n", aff, CPU_COUNT(&set) > 0, ncpu > 0);
    }
    char name[16] = "";
    prctl(PR_SET_NAME, "renamed-process-long-name");
    prctl(PR_GET_NAME, name);
    char comm[32] = "";
    int fd = open("/proc/self/comm", O_RDONLY);
    int k = read(fd, comm, sizeof comm - 1);
    comm[k > 0 ? k : 0] = 0;
    int bad = prctl(12345, 0, 0, 0, 0) == -1 && errno == EINVAL;
    printf("prctl: name=[%s] comm=[%.*s] unknown=EINVAL:%d dumpable=%d\n", name, (int)strcspn(comm, "\n"),
           comm, bad, prctl(PR_GET_DUMPABLE));
    return 0;
}
