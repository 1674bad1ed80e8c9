/* files in /tmp: create, write, lseek, read, stat, rename, getdents64, unlink, mkdir/rmdir, dup2, cwd */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    int fd = open("/tmp/a.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    write(fd, "hello file\n", 11);
    lseek(fd, 6, SEEK_SET);
    char buf[32] = {0};
    long n = read(fd, buf, sizeof buf - 1);
    struct stat st;
    fstat(fd, &st);
    printf("read=%ld [%s] size=%ld reg=%d\n", n, buf, (long)st.st_size, S_ISREG(st.st_mode));
    close(fd);
    printf("rename=%d\n", rename("/tmp/a.txt", "/tmp/b.txt"));
    printf("old=%d new=%d\n", access("/tmp/a.txt", F_OK), access("/tmp/b.txt", F_OK));
    int mk = mkdir("/tmp/d", 0755);
    int cd = chdir("/tmp/d");
    printf("mkdir=%d chdir=%d\n", mk, cd);
    char cwd[64];
    printf("cwd=%s\n", getcwd(cwd, sizeof cwd));
    FILE *f = fopen("x", "w");
    fprintf(f, "in d\n");
    fclose(f);
    DIR *d = opendir("/tmp/d");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) if (e->d_name[0] != '.') printf("entry %s\n", e->d_name);
    closedir(d);
    fflush(stdout);
    int nul = open("/dev/null", O_WRONLY);
    dup2(nul, 1);
    printf("this vanishes\n");
    fflush(stdout);
    dup2(2, 1);
    int ul = unlink("/tmp/b.txt");
    int rf = rmdir("/tmp/d");
    int ux = unlink("x");
    int re = rmdir("/tmp/d");
    printf("unlink=%d rmdir_full=%d rmdir_empty=%d\n", ul, rf, ux + re);
    printf("enoent=%d\n", open("/nope", O_RDONLY));
    return 0;
}
