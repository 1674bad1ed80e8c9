/* The old getdents lists a directory in getdents64's order, names that are not UTF-8
 * included.  argv[1]: a directory to work in.  Prints each call's names in hex. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct old_dirent { unsigned long ino; unsigned long off; unsigned short reclen; char name[]; };
struct dirent64 { unsigned long ino; long off; unsigned short reclen; unsigned char type; char name[]; };

static void show(const char *what, const char *name) {
    printf("%s ", what);
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) printf("%02x", *c);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0) return 2;
    mkdir("dirorder.d", 0755);
    if (chdir("dirorder.d") != 0) return 2;
    const char *names[] = {"z", "\xfe", "\xc3\xa9", "a\x80", "A", "\xef\xbc\x81"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) close(open(names[i], O_CREAT | O_WRONLY, 0644));
    char buf[4096];
    int fd = open(".", O_RDONLY | O_DIRECTORY);
    long n = syscall(SYS_getdents, fd, buf, sizeof buf);
    for (long at = 0; at < n;) { struct old_dirent *d = (void *)(buf + at); show("old", d->name); at += d->reclen; }
    close(fd);
    fd = open(".", O_RDONLY | O_DIRECTORY);
    n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    for (long at = 0; at < n;) { struct dirent64 *d = (void *)(buf + at); show("new", d->name); at += d->reclen; }
    return 0;
}
