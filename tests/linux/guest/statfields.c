/* st_size, st_nlink and st_blocks as tmpfs reports them, for directories, files of a few
   sizes and symbolic links.  argv[1]: a directory on tmpfs to work in */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        printf("%s: missing\n", path);
        return;
    }
    printf("%-8s size=%lld nlink=%lu blocks=%lld\n", path, (long long)st.st_size, (unsigned long)st.st_nlink,
           (long long)st.st_blocks);
}

static void file(const char *path, size_t n) {
    static char buf[20000];
    memset(buf, 'x', sizeof buf);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    write(fd, buf, n);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0)
        return 2;
    mkdir("empty", 0755);
    mkdir("d", 0755);
    mkdir("d/s1", 0755);
    mkdir("d/s2", 0755);
    file("d/f", 1);
    file("f0", 0);
    file("f1", 1);
    file("f4096", 4096);
    file("f4097", 4097);
    file("f12000", 12000);
    symlink("f1", "ln");
    char longname[200];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    symlink(longname, "longln");
    const char *all[] = {"empty", "d", "d/s1", "d/f", "f0", "f1", "f4096", "f4097", "f12000", "ln", "longln"};
    for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++)
        show(all[i]);
    rmdir("d/s2");
    show("d");
    link("f1", "f1b");
    show("f1");
    rename("d/s1", "s1");
    show("d");
    return 0;
}
