/* Job control at the terminal: a background process that reads it is stopped by SIGTTIN
   and reads once it is the foreground group and continued; with SIGTTIN ignored the read is
   EIO; SIGTSTP does not stop a process of an orphaned group; a stopped job whose group is
   orphaned when its parent exits gets SIGHUP and SIGCONT.  Run with a terminal as stdin
   (natively: a pty; the program takes it as its controlling terminal). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int hup_fd;

static void on_hup(int sig) {
    (void)sig;
    write(hup_fd, "hup", 3);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (getsid(0) == getpid()) ioctl(0, TIOCSCTTY, 0);  /* natively: the pty becomes ours */
    signal(SIGTTOU, SIG_IGN);  /* as a shell does: tcsetpgrp from the background is allowed */
    int tty = open("/dev/tty", O_RDWR);
    int st;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        char c;
        ssize_t n = read(tty, &c, 1);  /* background: SIGTTIN stops us until we are foreground */
        printf("child read: %zd\n", n);
        _exit(7);
    }
    setpgid(pid, pid);
    waitpid(pid, &st, WUNTRACED);
    printf("background read: stopped=%d sig=%d\n", WIFSTOPPED(st), WIFSTOPPED(st) ? WSTOPSIG(st) : 0);
    tcsetpgrp(tty, pid);  /* make it the foreground group and let it go on */
    kill(pid, SIGCONT);
    pid_t fg = getpgrp();
    waitpid(pid, &st, 0);
    tcsetpgrp(tty, fg);
    printf("then: exited=%d status=%d\n", WIFEXITED(st), WEXITSTATUS(st));

    pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGTTIN, SIG_IGN);
        char c;
        ssize_t n = read(tty, &c, 1);
        printf("ignored SIGTTIN: read=%zd %s\n", n, n < 0 && errno == EIO ? "EIO" : "?");
        _exit(0);
    }
    setpgid(pid, pid);
    waitpid(pid, &st, 0);

    pid = fork();
    if (pid == 0) {  /* a group of its own whose parent is gone: orphaned */
        setpgid(0, 0);
        pid_t gc = fork();
        if (gc == 0) {
            sleep(1);
            kill(getpid(), SIGTSTP);  /* discarded in an orphaned group */
            printf("orphaned SIGTSTP: still running\n");
            _exit(0);
        }
        _exit(0);
    }
    waitpid(pid, &st, 0);
    sleep(2);

    int fds[2];
    pipe(fds);
    hup_fd = fds[1];
    pid = fork();
    if (pid == 0) {  /* leaves a stopped job behind when it exits */
        pid_t gc = fork();
        if (gc == 0) {
            setpgid(0, 0);
            signal(SIGHUP, on_hup);
            raise(SIGSTOP);
            write(fds[1], " cont", 5);
            _exit(0);
        }
        setpgid(gc, gc);
        waitpid(gc, &st, WUNTRACED);
        _exit(0);
    }
    close(fds[1]);
    waitpid(pid, &st, 0);
    char buf[32];
    int n = 0, r;
    while ((r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += r;
    buf[n] = 0;
    printf("orphaned stopped job: %s\n", buf);
    return 0;
}
