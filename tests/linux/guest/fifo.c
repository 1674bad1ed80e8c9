/* named pipes: mkfifo and mknod(S_IFIFO), the blocking opens (a reader waits for a writer and
   a writer for a reader), O_NONBLOCK opens, O_RDWR, and what is left in a FIFO when the last
   end closes.  argv[1]: a directory to work in */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(void) {
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0)
        return 2;
    umask(022);
    printf("mkfifo: %d\n", mkfifo("f", 0666));
    printf("mkfifo again: %s\n", mkfifo("f", 0666) == 0 ? "ok" : errno == EEXIST ? "EEXIST" : strerror(errno));
    printf("mknod fifo: %d\n", mknod("g", S_IFIFO | 0600, 0));
    printf("mknod file: %d\n", mknod("h", S_IFREG | 0600, 0));
    struct stat st;
    stat("f", &st);
    printf("f: fifo=%d mode=%o size=%lld\n", S_ISFIFO(st.st_mode), st.st_mode & 07777, (long long)st.st_size);
    stat("g", &st);
    printf("g: fifo=%d mode=%o\n", S_ISFIFO(st.st_mode), st.st_mode & 07777);
    stat("h", &st);
    printf("h: reg=%d\n", S_ISREG(st.st_mode));

    /* the reader opens first and waits for the writer */
    pid_t pid = fork();
    if (pid == 0) {
        nap();
        int w = open("f", O_WRONLY);
        write(w, "first\n", 6);
        close(w);
        _exit(0);
    }
    int r = open("f", O_RDONLY);
    char buf[64];
    ssize_t n = read(r, buf, sizeof buf);
    printf("reader got %zd: %.*s", n, (int)n, buf);
    printf("then eof: %zd\n", read(r, buf, sizeof buf));
    close(r);
    waitpid(pid, NULL, 0);

    /* the writer opens first and waits for the reader */
    pid = fork();
    if (pid == 0) {
        int w = open("f", O_WRONLY);
        write(w, "second\n", 7);
        close(w);
        _exit(0);
    }
    nap();
    r = open("f", O_RDONLY);
    n = read(r, buf, sizeof buf);
    printf("reader got %zd: %.*s", n, (int)n, buf);
    close(r);
    waitpid(pid, NULL, 0);

    /* non-blocking opens, O_RDWR, and data dropped with the last end */
    r = open("f", O_RDONLY | O_NONBLOCK);
    printf("nonblocking reader: %s\n", r >= 0 ? "ok" : strerror(errno));
    int w = open("f", O_WRONLY | O_NONBLOCK);
    printf("nonblocking writer with a reader: %s\n", w >= 0 ? "ok" : strerror(errno));
    close(w);
    close(r);
    w = open("f", O_WRONLY | O_NONBLOCK);
    printf("nonblocking writer alone: %s\n", w >= 0 ? "ok" : errno == ENXIO ? "ENXIO" : strerror(errno));
    int rw = open("f", O_RDWR);
    printf("O_RDWR: %s\n", rw >= 0 ? "ok" : strerror(errno));
    write(rw, "left", 4);
    close(rw);
    r = open("f", O_RDONLY | O_NONBLOCK);
    n = read(r, buf, sizeof buf);
    printf("after the last close: %zd\n", n);
    close(r);
    printf("lseek: %s\n", lseek(open("f", O_RDWR), 0, SEEK_SET) < 0 && errno == ESPIPE ? "ESPIPE" : "?");
    return 0;
}
