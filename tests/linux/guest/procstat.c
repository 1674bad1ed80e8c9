/* /proc/self/stat, /proc/self/status, maps, cmdline, comm, and /proc/PID/stat of a child
   that waits in read(), then of the zombie it becomes */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static char text[1 << 16];

static int slurp(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int n = 0, r;
    while ((r = read(fd, text + n, sizeof text - 1 - n)) > 0) n += r;
    close(fd);
    text[n] = 0;
    return n;
}

/* the fields of a stat line; field 2 (comm) may hold spaces: it ends at the last ')' */
static int fields(char *line, char **f) {
    char *open = strchr(line, '('), *close = strrchr(line, ')');
    *open = 0;
    f[0] = line;
    f[1] = open + 1;
    *close = 0;
    int n = 2;
    for (char *t = strtok(close + 1, " \n"); t && n < 64; t = strtok(NULL, " \n")) f[n++] = t;
    return n;
}

static const char *status_line(const char *name) {
    static char outs[8][256];
    static int next;
    char *out = outs[next++ % 8];
    char key[64];
    snprintf(key, sizeof key, "\n%s:\t", name);
    char *at = strncmp(text, key + 1, strlen(key + 1)) == 0 ? text - 1 : strstr(text, key);
    if (!at) return "(missing)";
    at += strlen(key);
    size_t n = strcspn(at, "\n");
    memcpy(out, at, n);
    out[n] = 0;
    return out;
}

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, (void (*)(int))1 + 1);  /* a "handler" address: only recorded */
    char *f[64];
    if (slurp("/proc/self/stat") <= 0) { puts("no /proc/self/stat"); return 1; }
    int n = fields(text, f);
    printf("stat: fields=%d pid_ok=%d comm=%s state=%s ppid_ok=%d pgrp_ok=%d sid_ok=%d threads=%s\n", n,
           atol(f[0]) == getpid(), f[1], f[2], atol(f[3]) == getppid(), atol(f[4]) == getpgrp(),
           atol(f[5]) == getsid(0), f[19]);
    printf("stat: vsize_pos=%d sigignore=%s sigcatch=%s exit_signal=%s itreal=%s rsslim=%s\n",
           atol(f[22]) > 0, f[32], f[33], f[37], f[20], f[24]);

    slurp("/proc/self/status");
    char pid[32];
    snprintf(pid, sizeof pid, "%d", getpid());
    printf("status: name=%s state=%s tgid_ok=%d pid_ok=%d threads=%s sigign=%s sigcgt=%s\n",
           status_line("Name"), status_line("State"), strcmp(status_line("Tgid"), pid) == 0,
           strcmp(status_line("Pid"), pid) == 0, status_line("Threads"), status_line("SigIgn"),
           status_line("SigCgt"));

    /* maps: the stack, and a file mapping at offset 4096 with its path */
    int fd = open("/tmp/l4sim-procstat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    static char page[8192];
    write(fd, page, sizeof page);
    char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 4096);
    slurp("/proc/self/maps");
    int stack = 0, file = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, "[stack]") && strstr(line, " rw-p ")) stack = 1;
        char want[64];
        snprintf(want, sizeof want, "%lx-", (unsigned long)m);
        if (strncmp(line, want, strlen(want)) == 0 && strstr(line, " r--p 00001000 ")
            && strstr(line, "/tmp/l4sim-procstat"))
            file = 1;
    }
    printf("maps: stack=%d file=%d\n", stack, file);
    unlink("/tmp/l4sim-procstat");

    int len = slurp("/proc/self/cmdline");
    for (int i = 0; i < len; i++) if (!text[i]) text[i] = '|';
    char *base = strrchr(text, '/');
    printf("cmdline: %s\n", base ? base + 1 : text);
    slurp("/proc/self/comm");
    printf("comm: %s", text);

    /* a child waiting in read() is sleeping; its ppid is us */
    int p[2];
    pipe(p);
    pid_t child = fork();
    if (child == 0) { char c; read(p[0], &c, 1); _exit(3); }
    char path[64], state[8] = "?";
    snprintf(path, sizeof path, "/proc/%d/stat", child);
    for (int i = 0; i < 5000; i++) {
        slurp(path);
        fields(text, f);
        snprintf(state, sizeof state, "%s", f[2]);
        if (state[0] == 'S') break;
        usleep(1000);
    }
    printf("child: state=%s ppid_ok=%d comm=%s\n", state, atol(f[3]) == getpid(), f[1]);
    write(p[1], "x", 1);
    /* it ends: a zombie until we reap it */
    for (int i = 0; i < 5000; i++) {
        slurp(path);
        fields(text, f);
        snprintf(state, sizeof state, "%s", f[2]);
        if (state[0] == 'Z') break;
        usleep(1000);
    }
    printf("ended: state=%s exit_code=%s\n", state, f[51]);
    int st;
    waitpid(child, &st, 0);
    snprintf(path, sizeof path, "/proc/%d/stat", child);
    printf("reaped: status=%d gone=%d\n", WEXITSTATUS(st), open(path, O_RDONLY) < 0);
    return 0;
}
