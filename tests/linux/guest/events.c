/* Event files and timers: eventfd (counter, semaphore, blocking, poll), epoll (level- and
 * edge-triggered, EPOLLONESHOT, pipes, nested instances, errors, an item's life with its
 * open file, epoll_pwait's mask), signalfd (SIGUSR1 from kill, SIGCHLD with the child's
 * status), timerfd (one-shot and periodic counts, gettime, absolute times), pidfd
 * (poll, pidfd_send_signal, pidfd_getfd, waitid P_PIDFD), alarm, setitimer and POSIX
 * timers on simulated time. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *e(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case ELOOP: return "ELOOP";
    case EINTR: return "EINTR";
    case ESRCH: return "ESRCH";
    default: return strerror(errno);
    }
}

static void nap(int ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, 0);
}

static void show_events(const char *what, int n, struct epoll_event *ev) {
    printf("%s: %d", what, n);
    for (int i = 0; i < n; i++)
        printf(" [%llu:%s%s%s%s]", (unsigned long long)ev[i].data.u64, ev[i].events & EPOLLIN ? "IN" : "",
               ev[i].events & EPOLLOUT ? "OUT" : "", ev[i].events & EPOLLHUP ? "HUP" : "",
               ev[i].events & EPOLLERR ? "ERR" : "");
    printf("\n");
}

static void eventfds(void) {
    int fd = eventfd(3, EFD_NONBLOCK);
    uint64_t v = 0;
    printf("eventfd read: %zd value %llu\n", read(fd, &v, 8), (unsigned long long)v);
    printf("read empty: %s\n", e(read(fd, &v, 8)));
    printf("read short: %s\n", e(read(fd, &v, 4)));
    v = 5;
    write(fd, &v, 8);
    write(fd, &v, 8);
    read(fd, &v, 8);
    printf("two writes of 5: %llu\n", (unsigned long long)v);
    v = UINT64_MAX;
    printf("write 2^64-1: %s\n", e(write(fd, &v, 8)));
    v = UINT64_MAX - 1;
    printf("write 2^64-2: %s\n", e(write(fd, &v, 8)));
    v = 1;
    printf("write past the max: %s\n", e(write(fd, &v, 8)));
    struct pollfd pf = {fd, POLLIN | POLLOUT, 0};
    poll(&pf, 1, 0);
    printf("poll full: %s%s\n", pf.revents & POLLIN ? "IN" : "", pf.revents & POLLOUT ? "OUT" : "");
    read(fd, &v, 8);
    close(fd);
    struct stat st;
    fd = eventfd(2, EFD_SEMAPHORE);
    fstat(fd, &st);
    printf("fstat mode %o\n", st.st_mode);
    read(fd, &v, 8);
    printf("semaphore reads %llu", (unsigned long long)v);
    read(fd, &v, 8);
    printf(" %llu\n", (unsigned long long)v);
    /* a read that waits: a child writes later */
    pid_t c = fork();
    if (c == 0) {
        nap(50);
        v = 7;
        write(fd, &v, 8);
        _exit(0);
    }
    read(fd, &v, 8);
    printf("waited for the child: %llu\n", (unsigned long long)v);
    waitpid(c, 0, 0);
    close(fd);
    printf("eventfd bad flags: %s\n", e(eventfd(0, 0x40)));
}

static void epolls(void) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int p[2], q[2];
    pipe(p);
    pipe(q);
    int efd = eventfd(0, 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, out[8];
    printf("add pipe: %s\n", e(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev)));
    printf("add again: %s\n", e(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev)));
    ev.data.u64 = 2;
    ev.events = EPOLLIN | EPOLLET;
    epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &ev);
    ev.data.u64 = 3;
    ev.events = EPOLLIN | EPOLLONESHOT;
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    ev.data.u64 = 4;
    ev.events = EPOLLOUT;
    epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev);
    show_events("only the write end", epoll_wait(ep, out, 8, 0), out);
    write(p[1], "a", 1);
    write(q[1], "b", 1);
    uint64_t one = 1;
    write(efd, &one, 8);
    show_events("all ready", epoll_wait(ep, out, 8, 0), out);
    show_events("again (ET and ONESHOT quiet)", epoll_wait(ep, out, 8, 0), out);
    write(q[1], "c", 1);
    write(efd, &one, 8);
    show_events("after new data", epoll_wait(ep, out, 8, 0), out);
    ev.events = EPOLLIN;
    ev.data.u64 = 33;
    epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev);
    show_events("oneshot re-armed", epoll_wait(ep, out, 8, 0), out);
    show_events("maxevents 2", epoll_wait(ep, out, 2, 0), out);
    show_events("then the rest", epoll_wait(ep, out, 2, 0), out);
    epoll_ctl(ep, EPOLL_CTL_DEL, p[1], 0);
    close(p[1]);  /* the reader's item sees the hang-up */
    char buf[8];
    read(p[0], buf, 8);
    show_events("writer gone", epoll_wait(ep, out, 8, 0), out);
    printf("del missing: %s\n", e(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], 0)));
    printf("mod missing: %s\n", e(epoll_ctl(ep, EPOLL_CTL_MOD, 99, &ev)));
    int f = open("/proc/self/exe", O_RDONLY);
    printf("add regular file: %s\n", e(epoll_ctl(ep, EPOLL_CTL_ADD, f, &ev)));
    close(f);
    printf("add itself: %s\n", e(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev)));
    printf("not an epoll: %s\n", e(epoll_ctl(efd, EPOLL_CTL_ADD, p[0], &ev)));
    printf("bad op: %s\n", e(epoll_ctl(ep, 9, p[0], &ev)));
    printf("wait maxevents 0: %s\n", e(epoll_wait(ep, out, 0, 0)));
    printf("create size 0: %s\n", e(epoll_create(0)));
    /* nested: an epoll in an epoll, and a loop refused */
    int outer = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.u64 = 100;
    printf("nest: %s\n", e(epoll_ctl(outer, EPOLL_CTL_ADD, ep, &ev)));
    printf("loop: %s\n", e(epoll_ctl(ep, EPOLL_CTL_ADD, outer, &ev)));
    show_events("outer", epoll_wait(outer, out, 8, 0), out);
    read(efd, &one, 8);
    read(q[0], buf, 8);
    epoll_ctl(ep, EPOLL_CTL_DEL, p[0], 0);
    show_events("outer, nothing ready inside", epoll_wait(outer, out, 8, 0), out);
    /* an item lives as long as its open file: closing a dup leaves it */
    int r[2];
    pipe(r);
    int dupr = dup(r[0]);
    ev.data.u64 = 5;
    epoll_ctl(ep, EPOLL_CTL_ADD, r[0], &ev);
    close(r[0]);
    write(r[1], "x", 1);
    show_events("closed fd, open file lives", epoll_wait(ep, out, 8, 0), out);
    close(dupr);
    show_events("last fd closed", epoll_wait(ep, out, 8, 0), out);
    /* a wait that blocks until a child writes; a timeout */
    pipe(r);
    ev.data.u64 = 6;
    epoll_ctl(ep, EPOLL_CTL_ADD, r[0], &ev);
    pid_t c = fork();
    if (c == 0) {
        nap(50);
        write(r[1], "y", 1);
        _exit(0);
    }
    show_events("waited", epoll_wait(ep, out, 8, 5000), out);
    waitpid(c, 0, 0);
    read(r[0], buf, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    show_events("timeout 30 ms", epoll_wait(ep, out, 8, 30), out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    printf("waited at least 30 ms: %d\n", ms >= 30);
    /* poll and select on an epoll fd */
    write(r[1], "z", 1);
    struct pollfd pf = {ep, POLLIN, 0};
    printf("poll on epoll: %d %s\n", poll(&pf, 1, 0), pf.revents & POLLIN ? "IN" : "-");
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(ep, &rs);
    struct timeval tv = {0, 0};
    printf("select on epoll: %d\n", select(ep + 1, &rs, 0, 0, &tv));
    close(ep);
    close(outer);
}

static volatile int got_usr1;
static void on_usr1(int s) { (void)s; got_usr1++; }

static void epoll_pwait_mask(void) {
    int ep = epoll_create1(0);
    sigset_t block, none;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigemptyset(&none);
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, 0);
    sigprocmask(SIG_BLOCK, &block, 0);
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        nap(50);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    struct epoll_event out[1];
    int r = epoll_pwait(ep, out, 1, 5000, &none);  /* SIGUSR1 unblocked while it waits */
    printf("epoll_pwait: %s, handler ran %d\n", e(r), got_usr1);
    sigset_t now;
    sigprocmask(SIG_BLOCK, 0, &now);
    printf("mask back: %d\n", sigismember(&now, SIGUSR1));
    waitpid(c, 0, 0);
    sigprocmask(SIG_UNBLOCK, &block, 0);
    signal(SIGUSR1, SIG_DFL);
    close(ep);
}

static void signalfds(void) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGCHLD);
    sigprocmask(SIG_BLOCK, &m, 0);
    int sfd = signalfd(-1, &m, SFD_NONBLOCK);
    struct signalfd_siginfo si;
    printf("signalfd empty: %s\n", e(read(sfd, &si, sizeof si)));
    printf("signalfd short read: %s\n", e(read(sfd, &si, 10)));
    kill(getpid(), SIGUSR1);
    struct pollfd pf = {sfd, POLLIN, 0};
    printf("poll: %d\n", poll(&pf, 1, 0));
    read(sfd, &si, sizeof si);
    printf("read: signo %u code %d pid %s\n", si.ssi_signo, si.ssi_code, si.ssi_pid == (uint32_t)getpid() ? "self" : "other");
    pid_t c = fork();
    if (c == 0) _exit(7);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 9}, out[1];
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    show_events("epoll on signalfd", epoll_wait(ep, out, 1, 5000), out);
    read(sfd, &si, sizeof si);
    printf("SIGCHLD: signo %u code %d pid %s status %d\n", si.ssi_signo, si.ssi_code,
           si.ssi_pid == (uint32_t)c ? "child" : "other", si.ssi_status);
    waitpid(c, 0, 0);
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    printf("change the mask: %s\n", signalfd(sfd, &usr2, 0) == sfd ? "same fd" : "?");
    printf("not a signalfd: %s\n", e(signalfd(ep, &usr2, 0)));
    close(ep);
    close(sfd);
    sigprocmask(SIG_UNBLOCK, &m, 0);
}

static void timerfds(void) {
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{0, 0}, {0, 50000000}}, cur;
    timerfd_settime(tfd, 0, &its, 0);
    timerfd_gettime(tfd, &cur);
    printf("armed: %d\n", cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 50000000);
    uint64_t n;
    read(tfd, &n, 8);  /* waits for the expiry */
    printf("one-shot expirations: %llu\n", (unsigned long long)n);
    timerfd_gettime(tfd, &cur);
    printf("disarmed: %ld %ld\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);
    its.it_interval.tv_nsec = 200000000;
    its.it_value.tv_nsec = 200000000;
    timerfd_settime(tfd, 0, &its, 0);
    nap(500);
    read(tfd, &n, 8);
    printf("periodic after 500 ms: %llu\n", (unsigned long long)n);
    struct pollfd pf = {tfd, POLLIN, 0};
    printf("poll right after a read: %d\n", poll(&pf, 1, 0));
    printf("poll waits for the next: %d\n", poll(&pf, 1, 1000));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7}, out[1];
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    read(tfd, &n, 8);
    show_events("epoll waits for the timer", epoll_wait(ep, out, 1, 1000), out);
    close(ep);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int rfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    struct itimerspec abs = {{0, 0}, {now.tv_sec + 1, now.tv_nsec}};
    timerfd_settime(rfd, TFD_TIMER_ABSTIME, &abs, 0);
    printf("absolute, not yet: %s\n", e(read(rfd, &n, 8)));
    timerfd_gettime(rfd, &cur);
    printf("absolute: about a second left: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 900000000);
    its.it_value.tv_nsec = 0;
    timerfd_settime(tfd, 0, &its, &cur);
    printf("old interval %ld ms\n", cur.it_interval.tv_nsec / 1000000);
    printf("create bad clock: %s\n", e(timerfd_create(99, 0)));
    printf("settime not a timerfd: %s\n", e(timerfd_settime(0, 0, &its, 0)));
    close(tfd);
    close(rfd);
}

static volatile int alarms;
static void on_alrm(int s) { (void)s; alarms++; }

static void timers(void) {
    struct sigaction sa = {.sa_handler = on_alrm};
    sigaction(SIGALRM, &sa, 0);
    printf("alarm: %u\n", alarm(5));
    printf("alarm again: %u\n", alarm(0));
    alarm(1);
    pause();
    printf("alarm fired: %d\n", alarms);
    struct itimerval it = {{0, 100000}, {0, 100000}}, old;
    setitimer(ITIMER_REAL, &it, 0);
    while (alarms < 4) pause();
    getitimer(ITIMER_REAL, &old);
    printf("itimer: interval %ld us, fired 3 more\n", (long)old.it_interval.tv_usec);
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, &old);
    printf("itimer stopped (old interval %ld)\n", (long)old.it_interval.tv_usec);
    printf("ITIMER_VIRTUAL: %s\n", e(getitimer(99, &old)));
    /* POSIX timers */
    timer_t t;
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM};
    printf("timer_create: %s\n", e(timer_create(CLOCK_MONOTONIC, &sev, &t)));
    struct itimerspec its = {{0, 0}, {0, 50000000}};
    alarms = 0;
    timer_settime(t, 0, &its, 0);
    pause();
    printf("timer fired: %d\n", alarms);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGALRM);
    sigprocmask(SIG_BLOCK, &m, 0);
    its.it_interval.tv_nsec = 20000000;
    its.it_value.tv_nsec = 20000000;
    timer_settime(t, 0, &its, 0);
    nap(130);  /* blocked: the first expiry is pending, later ones are overruns */
    sigprocmask(SIG_UNBLOCK, &m, 0);
    int ov = timer_getoverrun(t);
    printf("after unblocking: fired %d, overruns %s (again %s)\n", alarms, ov >= 3 ? "several" : "few",
           timer_getoverrun(t) == ov ? "same" : "other");
    sigprocmask(SIG_BLOCK, &m, 0);
    nap(30);  /* pending again: re-arming the timer discards its signal */
    its.it_value.tv_nsec = 0;
    timer_settime(t, 0, &its, 0);
    sigprocmask(SIG_UNBLOCK, &m, 0);
    printf("disarmed while pending: fired %d\n", alarms);
    struct itimerspec cur;
    timer_gettime(t, &cur);
    printf("disarmed: %ld\n", cur.it_value.tv_nsec);
    int d1 = timer_delete(t), d2 = timer_delete(t);  /* musl returns -EINVAL itself, errno untouched */
    printf("timer_delete: %d, again: %d\n", d1, d2);
    sev.sigev_notify = SIGEV_NONE;
    timer_create(CLOCK_REALTIME, &sev, &t);
    its.it_value.tv_sec = 10;
    timer_settime(t, 0, &its, 0);
    timer_gettime(t, &cur);
    printf("SIGEV_NONE armed: %d\n", cur.it_value.tv_sec == 9);
    timer_delete(t);
    signal(SIGALRM, SIG_DFL);
    /* the default action of SIGALRM ends a child */
    pid_t c = fork();
    if (c == 0) {
        alarm(1);
        for (;;) pause();
    }
    int st;
    waitpid(c, &st, 0);
    printf("child killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void pidfds(void) {
    pid_t c = fork();
    if (c == 0) {
        for (;;) pause();
    }
    int pfd = syscall(SYS_pidfd_open, c, 0);
    struct pollfd pf = {pfd, POLLIN, 0};
    printf("pidfd: %s, poll alive: %d\n", e(pfd), poll(&pf, 1, 0));
    printf("pidfd_open no such: %s\n", e(syscall(SYS_pidfd_open, 0x3ffffff0, 0)));
    printf("pidfd_open bad flags: %s\n", e(syscall(SYS_pidfd_open, c, 1)));
    printf("send SIGTERM: %s\n", e(syscall(SYS_pidfd_send_signal, pfd, SIGTERM, 0, 0)));
    printf("poll waits for the end: %d %s\n", poll(&pf, 1, 5000), pf.revents & POLLIN ? "IN" : "-");
    siginfo_t si;
    memset(&si, 0, sizeof si);
    printf("waitid P_PIDFD: %s", e(waitid(P_PIDFD, pfd, &si, WEXITED)));
    printf(" code %s status %d\n", si.si_code == CLD_KILLED ? "KILLED" : "other", si.si_status);
    printf("send to the ended: %s\n", e(syscall(SYS_pidfd_send_signal, pfd, SIGTERM, 0, 0)));
    close(pfd);
    int p[2];
    pipe(p);
    c = fork();
    if (c == 0) {
        close(p[0]);
        for (;;) pause();
    }
    close(p[1]);
    pfd = syscall(SYS_pidfd_open, c, 0);
    nap(20);
    int theirs = syscall(SYS_pidfd_getfd, pfd, p[1], 0);
    printf("pidfd_getfd: %s cloexec %d\n", e(theirs), fcntl(theirs, F_GETFD));
    write(theirs, "hi", 2);
    char buf[4] = {0};
    read(p[0], buf, 2);
    printf("through their fd: %s\n", buf);
    printf("pidfd_getfd bad fd: %s\n", e(syscall(SYS_pidfd_getfd, pfd, 77, 0)));
    kill(c, SIGKILL);
    waitpid(c, 0, 0);
    close(pfd);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    eventfds();
    epolls();
    epoll_pwait_mask();
    signalfds();
    timerfds();
    timers();
    pidfds();
    return 0;
}
