/* Devices: /dev/full (writes fail with ENOSPC, reads give zeros), /dev/random and
 * /dev/urandom, /dev/shm as tmpfs with shm_open and named semaphores (sem_open) shared
 * with a child process. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    char buf[64];
    int fd = open("/dev/full", O_RDWR);
    errno = 0;
    printf("write /dev/full: %zd %s\n", write(fd, "x", 1), strerror(errno));
    memset(buf, 7, sizeof buf);
    ssize_t n = read(fd, buf, sizeof buf);
    int zeros = 1;
    for (int i = 0; i < n; i++) zeros &= buf[i] == 0;
    printf("read /dev/full: %zd zeros %d\n", n, zeros);
    struct stat st;
    fstat(fd, &st);
    printf("/dev/full: chr %d rdev %u:%u\n", S_ISCHR(st.st_mode), major(st.st_rdev), minor(st.st_rdev));
    close(fd);
    FILE *f = fopen("/dev/full", "w");
    fputs("hello", f);
    errno = 0;
    printf("fclose of /dev/full: %d %s\n", fclose(f), strerror(errno));
    for (const char *dev = "/dev/random"; dev; dev = dev[5] == 'r' ? "/dev/urandom" : 0) {
        fd = open(dev, O_RDONLY);
        n = read(fd, buf, 32);
        stat(dev, &st);
        printf("%s: read %zd, rdev %u:%u\n", dev, n, major(st.st_rdev), minor(st.st_rdev));
        close(fd);
    }

    /* /dev/shm */
    struct statfs sfs;
    statfs("/dev/shm", &sfs);
    stat("/dev/shm", &st);
    printf("/dev/shm: tmpfs %d mode %o\n", sfs.f_type == 0x01021994, st.st_mode & 07777);
    char shm_name[64], sem_name[64];  /* names of this run only: tests may run side by side */
    snprintf(shm_name, sizeof shm_name, "/l4sim-shm-%d", getpid());
    snprintf(sem_name, sizeof sem_name, "/l4sim-sem-%d", getpid());
    int shm = shm_open(shm_name, O_CREAT | O_EXCL | O_RDWR, 0600);
    printf("shm_open: %s\n", shm >= 0 ? "ok" : strerror(errno));
    printf("shm_open again O_EXCL: %s\n", shm_open(shm_name, O_CREAT | O_EXCL | O_RDWR, 0600) < 0 ? strerror(errno) : "ok");
    ftruncate(shm, 8192);
    char *m = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, shm, 0);
    strcpy(m, "parent");
    sem_t *s = sem_open(sem_name, O_CREAT | O_EXCL, 0600, 0);
    printf("sem_open: %s\n", s != SEM_FAILED ? "ok" : strerror(errno));
    pid_t c = fork();
    if (c == 0) {
        int fd2 = shm_open(shm_name, O_RDWR, 0);
        char *m2 = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
        printf("child sees: %s\n", m2);
        strcpy(m2 + 4096, "from the child");
        sem_t *s2 = sem_open(sem_name, 0);
        sem_post(s2);
        _exit(0);
    }
    sem_wait(s);  /* the child posts it */
    printf("parent sees: %s\n", m + 4096);
    int v;
    sem_getvalue(s, &v);
    printf("sem value %d, trywait %s\n", v, sem_trywait(s) ? strerror(errno) : "ok");
    waitpid(c, 0, 0);
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        found += !strcmp(e->d_name, shm_name + 1) + !strcmp(e->d_name, sem_name + 1);
    closedir(d);
    printf("/dev/shm lists both: %d\n", found == 2);
    fstat(shm, &st);
    printf("size %lld\n", (long long)st.st_size);
    printf("shm_unlink: %d, again: %s\n", shm_unlink(shm_name), shm_unlink(shm_name) ? strerror(errno) : "ok");
    printf("sem_unlink: %d\n", sem_unlink(sem_name));
    printf("after unlink, the mapping: %s\n", m);
    return 0;
}
