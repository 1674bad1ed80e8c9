/* File timestamps as tmpfs keeps them (mounted relatime): which of atime, mtime and ctime
 * each operation changes, read's relatime rule, utimensat with UTIME_NOW and UTIME_OMIT,
 * directories' times when entries come and go.  argv[1]: a directory on tmpfs to work in.
 * Prints, for each step, the times that changed ("a", "m", "c") and how they compare. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

static struct stat last;
static const char *cur = "f";

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static void pause_tick(void) {
    /* the native clock behind file times is coarse (a tick): step past it */
    struct timespec d = {0, 20000000};
    nanosleep(&d, 0);
}

static void show(const char *what, const char *path, int follow) {
    struct stat st;
    int r = follow ? stat(path, &st) : lstat(path, &st);
    if (r) { printf("%-28s stat failed\n", what); return; }
    printf("%-28s %c%c%c  a%sm m%sc\n", what,
           ns(st.st_atim) != ns(last.st_atim) ? 'a' : '-',
           ns(st.st_mtim) != ns(last.st_mtim) ? 'm' : '-',
           ns(st.st_ctim) != ns(last.st_ctim) ? 'c' : '-',
           ns(st.st_atim) < ns(st.st_mtim) ? "<" : ns(st.st_atim) == ns(st.st_mtim) ? "=" : ">",
           ns(st.st_mtim) < ns(st.st_ctim) ? "<" : ns(st.st_mtim) == ns(st.st_ctim) ? "=" : ">");
    last = st;
    pause_tick();
}

static void base(const char *path, int follow) {
    if (follow) stat(path, &last); else lstat(path, &last);
    cur = path;
    pause_tick();
}

int main(int argc, char **argv) {
    char buf[64];
    if (argc > 1 && chdir(argv[1])) { perror("chdir"); return 1; }
    mkdir("d", 0755);
    if (chdir("d")) return 1;
    base(".", 1);
    int fd = open("f", O_CREAT | O_RDWR, 0644);
    show("dir after create", ".", 1);
    base("f", 1);
    pause_tick();
    show("nothing", "f", 1);
    write(fd, "hello", 5);
    show("write", "f", 1);
    write(fd, "", 0);
    show("write 0 bytes", "f", 1);
    lseek(fd, 0, SEEK_SET);
    read(fd, buf, sizeof buf);
    show("read (atime <= mtime)", "f", 1);
    lseek(fd, 0, SEEK_SET);
    read(fd, buf, sizeof buf);
    show("read again (relatime)", "f", 1);
    read(fd, buf, sizeof buf);
    show("read at end of file", "f", 1);
    pread(fd, buf, 2, 0);
    show("pread", "f", 1);
    pwrite(fd, "J", 1, 0);
    show("pwrite", "f", 1);
    pread(fd, buf, 2, 0);
    show("pread after pwrite", "f", 1);
    ftruncate(fd, 5);
    show("ftruncate same size", "f", 1);
    ftruncate(fd, 3);
    show("ftruncate shorter", "f", 1);
    truncate("f", 3);
    show("truncate same size", "f", 1);
    truncate("f", 10);
    show("truncate longer", "f", 1);
    fchmod(fd, 0600);
    show("fchmod", "f", 1);
    chmod("f", 0600);
    show("chmod same mode", "f", 1);
    chown("f", 0, 0);
    show("chown", "f", 1);
    int fd2 = open("f", O_RDWR | O_TRUNC);
    show("open O_TRUNC", "f", 1);
    close(fd2);
    fd2 = open("f", O_RDONLY);
    show("open O_RDONLY", "f", 1);
    close(fd2);
    fsync(fd);
    show("fsync", "f", 1);
    link("f", "g");
    show("link", "f", 1);
    unlink("g");
    show("unlink other name", "f", 1);
    rename("f", "h");
    show("rename", "h", 1);
    rename("h", "f");
    base(".", 1);
    link("f", "g");
    show("dir after link", ".", 1);
    rename("g", "g2");
    show("dir after rename", ".", 1);
    unlink("g2");
    show("dir after unlink", ".", 1);
    chmod(".", 0755);
    show("dir chmod", ".", 1);
    DIR *dir = opendir(".");
    while (readdir(dir)) {}
    closedir(dir);
    show("dir readdir", ".", 1);
    dir = opendir(".");
    while (readdir(dir)) {}
    closedir(dir);
    show("dir readdir again", ".", 1);
    mkdir("sub", 0755);
    show("dir after mkdir", ".", 1);
    rmdir("sub");
    show("dir after rmdir", ".", 1);
    symlink("f", "l");
    show("dir after symlink", ".", 1);
    base("l", 0);
    readlink("l", buf, sizeof buf);
    show("readlink", "l", 0);
    mkfifo("p", 0644);
    base(".", 1);
    unlink("p");
    show("dir after mkfifo+unlink", ".", 1);

    base("f", 1);
    struct timespec ts[2] = {{1000, 5}, {2000, 6}};
    utimensat(AT_FDCWD, "f", ts, 0);
    show("utimensat values", "f", 1);
    printf("  atime %lld.%09ld mtime %lld.%09ld\n", (long long)last.st_atim.tv_sec, last.st_atim.tv_nsec,
           (long long)last.st_mtim.tv_sec, last.st_mtim.tv_nsec);
    lseek(fd, 0, SEEK_SET);
    read(fd, buf, 1);
    show("read (atime old)", "f", 1);
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_sec = 3000;
    ts[1].tv_nsec = 7;
    utimensat(AT_FDCWD, "f", ts, 0);
    show("utimensat OMIT, value", "f", 1);
    printf("  mtime %lld.%09ld\n", (long long)last.st_mtim.tv_sec, last.st_mtim.tv_nsec);
    ts[0].tv_nsec = UTIME_NOW;
    ts[1].tv_nsec = UTIME_OMIT;
    utimensat(AT_FDCWD, "f", ts, 0);
    show("utimensat NOW, OMIT", "f", 1);
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_nsec = UTIME_OMIT;
    utimensat(AT_FDCWD, "f", ts, 0);
    show("utimensat OMIT, OMIT", "f", 1);
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_nsec = UTIME_NOW;
    futimens(fd, ts);
    show("futimens OMIT, NOW", "f", 1);
    utimensat(AT_FDCWD, "f", 0, 0);
    show("utimensat NULL", "f", 1);
    struct timeval tv[2] = {{4000, 1}, {5000, 2}};
    utimes("f", tv);
    show("utimes", "f", 1);
    printf("  atime %lld.%09ld mtime %lld.%09ld\n", (long long)last.st_atim.tv_sec, last.st_atim.tv_nsec,
           (long long)last.st_mtim.tv_sec, last.st_mtim.tv_nsec);
    struct utimbuf ub = {6000, 7000};
    utime("f", &ub);
    show("utime", "f", 1);
    printf("  atime %lld.%09ld mtime %lld.%09ld\n", (long long)last.st_atim.tv_sec, last.st_atim.tv_nsec,
           (long long)last.st_mtim.tv_sec, last.st_mtim.tv_nsec);
    utime("f", 0);
    show("utime NULL", "f", 1);
    ts[0].tv_nsec = 1000000000;
    printf("utimensat bad nsec: %d\n", utimensat(AT_FDCWD, "f", ts, 0) == -1 ? -1 : 0);
    base("l", 0);
    ts[0].tv_sec = 100; ts[0].tv_nsec = 0; ts[1].tv_sec = 200; ts[1].tv_nsec = 0;
    utimensat(AT_FDCWD, "l", ts, AT_SYMLINK_NOFOLLOW);
    show("utimensat link NOFOLLOW", "l", 0);
    printf("  link mtime %lld, target mtime ", (long long)last.st_mtim.tv_sec);
    struct stat st;
    stat("f", &st);
    printf("%s\n", st.st_mtim.tv_sec == 200 ? "changed" : "kept");

    /* a shared mapping's stores reach the file's mtime when written back */
    base("f", 1);
    ftruncate(fd, 4096);
    show("ftruncate 4096", "f", 1);
    char *m = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    m[0] = 'x';
    msync(m, 4096, MS_SYNC);
    munmap(m, 4096);
    struct stat st2;
    stat("f", &st2);
    printf("mmap store: mtime %s\n", ns(st2.st_mtim) >= ns(last.st_mtim) ? "not older" : "older");
    close(fd);
    unlink("f");
    unlink("l");
    if (chdir("..")) return 1;
    rmdir("d");
    return 0;
}
