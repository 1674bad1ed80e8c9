/* Ctrl-C reaches a program spinning without system calls: the first SIGINT runs its handler,
   the second (default action) ends it (130) */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t got;
static void on_int(int sig) { got = sig; }
int main(void) {
    signal(SIGINT, on_int);
    write(1, "ready\n", 6);
    while (!got) {}
    printf("got %d\n", (int)got);
    fflush(stdout);
    signal(SIGINT, SIG_DFL);
    write(1, "again\n", 6);
    for (;;) {}
}
