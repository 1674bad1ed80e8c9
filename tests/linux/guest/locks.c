/* File locks between processes: POSIX record locks (F_SETLK, F_SETLKW, F_GETLK; split
 * and merged ranges; released by any close and at exit; not inherited; EDEADLK),
 * open-file-description locks (F_OFD_*), flock; errors.  argv[1]: a directory to work in. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(int ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, 0);
}

static const char *err(int r) {
    if (r == 0) return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EDEADLK: return "EDEADLK";
    case EINTR: return "EINTR";
    default: return strerror(errno);
    }
}

static int lk(int fd, int cmd, int type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

static void getlk(const char *who, int fd, int cmd, int type, off_t start, off_t len, pid_t owner) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    int r = fcntl(fd, cmd, &fl);
    if (r) { printf("%s getlk: %s\n", who, err(r)); return; }
    if (fl.l_type == F_UNLCK) { printf("%s getlk [%ld,+%ld): unlocked\n", who, (long)start, (long)len); return; }
    printf("%s getlk [%ld,+%ld): %s [%ld,+%ld) pid %s\n", who, (long)start, (long)len,
           fl.l_type == F_WRLCK ? "write" : "read", (long)fl.l_start, (long)fl.l_len,
           fl.l_pid == owner ? "owner" : fl.l_pid == -1 ? "-1" : "other");
}

static int sync_pipe[2], back_pipe[2];
static void tell(int *pp) { char c = 1; write(pp[1], &c, 1); }
static void hear(int *pp) { char c; read(pp[0], &c, 1); }

static void posix_locks(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "0123456789abcdefghij", 20);
    pid_t me = getpid();
    printf("setlk W [0,+10): %s\n", err(lk(fd, F_SETLK, F_WRLCK, 0, 10)));
    printf("setlk W [10,+10): %s\n", err(lk(fd, F_SETLK, F_WRLCK, 10, 10)));
    printf("setlk R [30,+0): %s\n", err(lk(fd, F_SETLK, F_RDLCK, 30, 0)));
    getlk("self", fd, F_GETLK, F_WRLCK, 0, 100, me);
    pid_t c = fork();
    if (c == 0) {
        int cfd = open(path, O_RDWR);
        getlk("child", cfd, F_GETLK, F_WRLCK, 5, 1, me);
        getlk("child", cfd, F_GETLK, F_RDLCK, 0, 0, me);
        getlk("child", cfd, F_GETLK, F_RDLCK, 25, 10, me);
        getlk("child", cfd, F_GETLK, F_WRLCK, 25, 10, me);
        printf("child setlk W [19,+1): %s\n", err(lk(cfd, F_SETLK, F_WRLCK, 19, 1)));
        printf("child setlk R [20,+5): %s\n", err(lk(cfd, F_SETLK, F_RDLCK, 20, 5)));
        printf("child setlk R [31,+1): %s\n", err(lk(cfd, F_SETLK, F_RDLCK, 31, 1)));
        printf("child inherited fd setlk W [0,+1): %s\n", err(lk(fd, F_SETLK, F_WRLCK, 0, 1)));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    printf("unlock [5,+10): %s\n", err(lk(fd, F_SETLK, F_UNLCK, 5, 10)));
    c = fork();
    if (c == 0) {
        int cfd = open(path, O_RDWR);
        getlk("child", cfd, F_GETLK, F_WRLCK, 0, 0, me);
        getlk("child", cfd, F_GETLK, F_WRLCK, 5, 15, me);
        getlk("child", cfd, F_GETLK, F_WRLCK, 5, 10, me);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    /* a lock over another owner's range in the middle: a read lock splits the write lock */
    printf("setlk R [2,+2): %s\n", err(lk(fd, F_SETLK, F_RDLCK, 2, 2)));
    c = fork();
    if (c == 0) {
        int cfd = open(path, O_RDWR);
        getlk("child", cfd, F_GETLK, F_RDLCK, 0, 5, me);
        getlk("child", cfd, F_GETLK, F_WRLCK, 2, 2, me);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    /* closing any fd of the file drops the process's locks */
    int fd2 = open(path, O_RDONLY);
    close(fd2);
    c = fork();
    if (c == 0) {
        int cfd = open(path, O_RDWR);
        getlk("child after close", cfd, F_GETLK, F_WRLCK, 0, 0, me);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);

    /* F_SETLKW waits until the lock goes; a child's locks go when it exits */
    pipe(sync_pipe);
    c = fork();
    if (c == 0) {
        printf("child setlk W [0,+5): %s\n", err(lk(fd, F_SETLK, F_WRLCK, 0, 5)));
        fflush(stdout);
        tell(sync_pipe);
        nap(100);
        printf("child exits holding it\n");
        fflush(stdout);
        _exit(0);
    }
    hear(sync_pipe);
    printf("setlk W [0,+5): %s\n", err(lk(fd, F_SETLK, F_WRLCK, 0, 5)));
    printf("setlkw W [0,+5): %s\n", err(lk(fd, F_SETLKW, F_WRLCK, 0, 5)));
    waitpid(c, 0, 0);
    lk(fd, F_SETLK, F_UNLCK, 0, 0);

    /* deadlock: each of two processes holds one lock and waits for the other's; the one
     * that asks second gets EDEADLK (which one that is, is the scheduler's business) */
    pipe(back_pipe);
    printf("setlk W [0,+1): %s\n", err(lk(fd, F_SETLK, F_WRLCK, 0, 1)));
    c = fork();
    if (c == 0) {
        lk(fd, F_SETLK, F_WRLCK, 1, 1);
        tell(sync_pipe);
        nap(50);
        int r = lk(fd, F_SETLKW, F_WRLCK, 0, 1);
        _exit(r == 0 ? 0 : errno == EDEADLK ? 35 : 1);  /* its lock on [1,+1) goes */
    }
    hear(sync_pipe);
    int r = lk(fd, F_SETLKW, F_WRLCK, 1, 1);
    int mine = r == 0 ? 0 : errno == EDEADLK ? 35 : 1;
    if (mine == 35) lk(fd, F_SETLK, F_UNLCK, 0, 1);  /* give way: the child gets [0,+1) */
    int cst;
    waitpid(c, &cst, 0);
    int theirs = WEXITSTATUS(cst);
    printf("deadlock: %s\n", (mine == 35) + (theirs == 35) == 1 && (mine == 0 || theirs == 0) ?
           "one got EDEADLK, the other its lock" : "?");
    lk(fd, F_SETLK, F_UNLCK, 0, 0);

    /* errors */
    int ro = open(path, O_RDONLY);
    printf("setlk W on O_RDONLY: %s\n", err(lk(ro, F_SETLK, F_WRLCK, 0, 1)));
    printf("setlk R on O_RDONLY: %s\n", err(lk(ro, F_SETLK, F_RDLCK, 0, 1)));
    printf("bad type: %s\n", err(lk(fd, F_SETLK, 7, 0, 1)));
    printf("negative start: %s\n", err(lk(fd, F_SETLK, F_WRLCK, -5, 1)));
    struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
    printf("getlk F_UNLCK: %s\n", err(fcntl(fd, F_GETLK, &fl)));
    fl.l_type = F_WRLCK;
    fl.l_pid = 5;
    printf("ofd with l_pid: %s\n", err(fcntl(fd, F_OFD_SETLK, &fl)));
    fl.l_pid = 0;
    fl.l_whence = 9;
    printf("bad whence: %s\n", err(fcntl(fd, F_SETLK, &fl)));
    /* SEEK_CUR and SEEK_END ranges; a negative length */
    lseek(fd, 4, SEEK_SET);
    fl.l_whence = SEEK_CUR; fl.l_start = 2; fl.l_len = -2;
    printf("setlk SEEK_CUR len -2: %s\n", err(fcntl(fd, F_SETLK, &fl)));
    fl.l_whence = SEEK_END; fl.l_start = -1; fl.l_len = 1;
    printf("setlk SEEK_END -1: %s\n", err(fcntl(fd, F_SETLK, &fl)));
    c = fork();
    if (c == 0) {
        int cfd = open(path, O_RDWR);
        getlk("child", cfd, F_GETLK, F_WRLCK, 0, 0, me);
        getlk("child", cfd, F_GETLK, F_WRLCK, 6, 0, me);
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    close(ro);  /* and with it every POSIX lock of this process on the file */
    close(fd);
}

static void ofd_locks(const char *path) {
    int a = open(path, O_RDWR), b = open(path, O_RDWR);
    pid_t me = getpid();
    printf("ofd a W [0,+10): %s\n", err(lk(a, F_OFD_SETLK, F_WRLCK, 0, 10)));
    printf("ofd b W [5,+1): %s\n", err(lk(b, F_OFD_SETLK, F_WRLCK, 5, 1)));
    printf("posix W [5,+1): %s\n", err(lk(b, F_SETLK, F_WRLCK, 5, 1)));
    getlk("ofd b", b, F_OFD_GETLK, F_RDLCK, 0, 0, me);
    getlk("posix", b, F_GETLK, F_RDLCK, 0, 0, me);
    printf("posix W [20,+1): %s\n", err(lk(b, F_SETLK, F_WRLCK, 20, 1)));
    getlk("ofd a", a, F_OFD_GETLK, F_WRLCK, 20, 1, me);
    lk(b, F_SETLK, F_UNLCK, 20, 1);
    int a2 = dup(a);
    close(a2);  /* a dup's close leaves an OFD lock */
    getlk("ofd b after dup close", b, F_OFD_GETLK, F_WRLCK, 0, 0, me);
    pid_t c = fork();
    if (c == 0) {  /* the child shares open file a, and so its lock */
        getlk("child ofd a", a, F_OFD_GETLK, F_WRLCK, 0, 0, me);
        printf("child ofd a R [0,+10): %s\n", err(lk(a, F_OFD_SETLK, F_RDLCK, 0, 10)));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    getlk("ofd b", b, F_OFD_GETLK, F_WRLCK, 0, 0, me);
    pipe(sync_pipe);
    c = fork();
    if (c == 0) {
        close(a);  /* else the child would hold open file a, and its lock, itself */
        int cb = open(path, O_RDWR);
        tell(sync_pipe);
        printf("child ofd setlkw W [0,+1): %s\n", err(lk(cb, F_OFD_SETLKW, F_WRLCK, 0, 1)));
        fflush(stdout);
        _exit(0);
    }
    hear(sync_pipe);
    nap(100);
    printf("closing a\n");
    fflush(stdout);
    close(a);  /* the last reference: its lock goes, and the child gets its lock */
    waitpid(c, 0, 0);
    close(b);
}

static void flocks(const char *path) {
    int fd = open(path, O_RDWR);
    printf("flock EX: %s\n", err(flock(fd, LOCK_EX)));
    printf("flock EX again: %s\n", err(flock(fd, LOCK_EX)));
    printf("flock bad: %s\n", err(flock(fd, 3)));
    pid_t c = fork();
    if (c == 0) {
        int other = open(path, O_RDONLY);
        printf("child other SH|NB: %s\n", err(flock(other, LOCK_SH | LOCK_NB)));
        printf("child inherited EX|NB: %s\n", err(flock(fd, LOCK_EX | LOCK_NB)));
        printf("child inherited SH: %s\n", err(flock(fd, LOCK_SH)));
        printf("child other SH|NB: %s\n", err(flock(other, LOCK_SH | LOCK_NB)));
        printf("child other EX|NB: %s\n", err(flock(other, LOCK_EX | LOCK_NB)));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, 0, 0);
    /* record locks and flock do not meet */
    printf("posix W over flock: %s\n", err(lk(fd, F_SETLK, F_WRLCK, 0, 0)));
    lk(fd, F_SETLK, F_UNLCK, 0, 0);
    flock(fd, LOCK_EX);
    pipe(sync_pipe);
    c = fork();
    if (c == 0) {
        int other = open(path, O_RDONLY);
        tell(sync_pipe);
        printf("child other SH (waits): %s\n", err(flock(other, LOCK_SH)));
        fflush(stdout);
        _exit(0);
    }
    hear(sync_pipe);
    nap(100);
    printf("unlock\n");
    fflush(stdout);
    printf("flock UN: %s\n", err(flock(fd, LOCK_UN)));
    fflush(stdout);
    waitpid(c, 0, 0);
    close(fd);
}

static void on_usr1(int s) { (void)s; }

static void interrupted(const char *path) {
    int fd = open(path, O_RDWR);
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, 0);
    pipe(sync_pipe);
    pipe(back_pipe);
    fcntl(back_pipe[0], F_SETFL, O_NONBLOCK);
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        lk(fd, F_SETLK, F_WRLCK, 0, 1);
        tell(sync_pipe);
        char x;
        for (int i = 0; i < 100 && read(back_pipe[0], &x, 1) != 1; i++) {
            nap(50);  /* until the parent says its wait was interrupted */
            kill(parent, SIGUSR1);
        }
        _exit(0);
    }
    hear(sync_pipe);
    printf("setlkw interrupted: %s\n", err(lk(fd, F_SETLKW, F_WRLCK, 0, 1)));
    signal(SIGUSR1, SIG_IGN);  /* the child's last signals must not cut the waitpid short */
    tell(back_pipe);
    waitpid(c, 0, 0);
    printf("after the child: %s\n", err(lk(fd, F_SETLK, F_WRLCK, 0, 1)));
    close(fd);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    if (argc > 1 && chdir(argv[1])) { perror("chdir"); return 1; }
    posix_locks("lockfile");
    ofd_locks("lockfile");
    flocks("lockfile");
    interrupted("lockfile");
    unlink("lockfile");
    return 0;
}
