/* sigaltstack: a handler with SA_ONSTACK runs on the alternate stack, one without on the
   thread's stack; old_ss reports SS_ONSTACK inside it; bad sizes and flags are refused */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char alt[65536];
static volatile int on_alt = -1, flags_inside = -1, eperm = -1;

static void handler(int sig) {
    char here;
    on_alt = (&here >= alt && &here < alt + sizeof alt);
    stack_t cur;
    sigaltstack(NULL, &cur);
    flags_inside = cur.ss_flags;
    stack_t again = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
    eperm = sigaltstack(&again, NULL) == -1 && errno == EPERM;
    (void)sig;
}

int main(void) {
    stack_t ss = {.ss_sp = alt, .ss_size = 100, .ss_flags = 0};
    printf("small=%d %s\n", sigaltstack(&ss, NULL), errno == ENOMEM ? "ENOMEM" : "?");
    ss.ss_size = sizeof alt;
    ss.ss_flags = 4;
    printf("badflags=%d %s\n", sigaltstack(&ss, NULL), errno == EINVAL ? "EINVAL" : "?");
    ss.ss_flags = 0;
    stack_t old;
    printf("set=%d\n", sigaltstack(&ss, &old));
    printf("old disabled=%d\n", old.ss_flags == SS_DISABLE);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("onstack: on_alt=%d flags=%d eperm=%d\n", on_alt, flags_inside, eperm);
    sa.sa_flags = 0;
    sigaction(SIGUSR2, &sa, NULL);
    raise(SIGUSR2);
    printf("plain: on_alt=%d flags=%d\n", on_alt, flags_inside);
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    raise(SIGUSR1);
    printf("disabled: on_alt=%d\n", on_alt);
    return 0;
}
