/* A store through a MAP_SHARED mapping of a file is the file's, also when the program ends
   without munmap or msync. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int fd = open(argc > 1 ? argv[1] : "mapped.txt", O_RDWR);
    if (fd < 0)
        return 1;
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return 2;
    memcpy(p, "STORED", 6);
    return 0;
}
