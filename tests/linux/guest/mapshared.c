/* MAP_SHARED of a regular file: Linux maps it; the personality refuses it (ENODEV) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
    int fd = open("/tmp/l4sim-mapshared", O_RDWR | O_CREAT | O_TRUNC, 0600);
    write(fd, "data", 4);
    void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    printf("shared file mapping: %s\n", m == MAP_FAILED ? (errno == ENODEV ? "ENODEV" : "error") : "mapped");
    unlink("/tmp/l4sim-mapshared");
    return 0;
}
