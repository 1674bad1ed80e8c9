/* Code that changes between processes: the parent writes a function into an
 * executable page, a child runs it and exits with its result; the parent then
 * writes another function into the same page and forks again, and again the
 * page is written from the child itself.  Each child must run what the page
 * holds now, never a translation left from an earlier process. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int (*fn)(void);

static void put(unsigned char *page, int value) {
    /* mov $value, %eax ; ret */
    unsigned char code[] = {0xb8, (unsigned char)value, 0, 0, 0, 0xc3};
    memcpy(page, code, sizeof code);
}

static int run_child(unsigned char *page, int rewrite) {
    pid_t pid = fork();
    if (pid == 0) {
        if (rewrite >= 0) put(page, rewrite);  /* the child writes (its own copy) first */
        _exit(((fn)page)());
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
    unsigned char *page = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return 1;
    for (int v = 1; v <= 4; v++) {
        put(page, v);
        printf("%d", run_child(page, -1));
    }
    printf(" %d", run_child(page, 7));
    printf(" %d", run_child(page, -1));
    printf(" %d\n", ((fn)page)());
    return 0;
}
