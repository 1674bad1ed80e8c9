/* A hybrid program: L4 calls from inside Linux (include/l4sim/l4.h).
 *
 *   l4tool call NAME LABEL W...   bind /dev/l4/NAME into my L4 table, call it with LABEL and
 *                                 the words, print the answer
 *   l4tool raw INDEX              call the capability INDEX of my table as it is (no binding)
 *   l4tool ioctl NAME LABEL W...  the same call through the stub's ioctl (no L4 call)
 *   l4tool serve NAME             the stub serves its capability's clients from now on
 *   l4tool echo NAME COUNT        a server: the gate's calls come to this thread; answer
 *                                 COUNT of them with each word plus one
 */
#include <l4sim/l4.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int stub(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "/dev/l4/%s", name);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        printf("open %s: %s\n", path, strerror(errno));
    return fd;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    const char *mode = argv[1], *name = argv[2];
    l4_utcb_t *u = l4_utcb();
    if (!strcmp(mode, "call") && argc >= 4) {
        l4_cap_idx_t cap = l4sim_bind(name);
        if (cap == L4_INVALID_CAP) {
            printf("bind %s: %s\n", name, strerror(errno));
            return 1;
        }
        unsigned n = 0;
        for (int i = 4; i < argc; i++)
            u->mr[n++] = strtoull(argv[i], 0, 0);
        l4_msgtag_t t = l4_ipc_call(cap, u, l4_msgtag(atol(argv[3]), n, 0, 0), L4_IPC_NEVER);
        if (l4_ipc_error(t, u)) {
            printf("ipc error %lu\n", (unsigned long)l4_ipc_error(t, u));
            return 3;
        }
        printf("answer: label %ld, words", l4_msgtag_label(t));
        for (unsigned i = 0; i < l4_msgtag_words(t); i++)
            printf(" %llu", (unsigned long long)u->mr[i]);
        printf("\n");
        return 0;
    }
    if (!strcmp(mode, "raw")) {
        l4_msgtag_t t = l4_ipc_call(strtoull(name, 0, 0), u, l4_msgtag(1, 0, 0, 0), L4_IPC_NEVER);
        printf("error %lu, tag %#lx\n", (unsigned long)l4_ipc_error(t, u), (unsigned long)t.raw);
        return 0;
    }
    if (!strcmp(mode, "ioctl") && argc >= 4) {
        int fd = stub(name);
        if (fd < 0)
            return 1;
        struct l4sim_msg m = {.label = atol(argv[3])};
        for (int i = 4; i < argc && m.count < 61; i++)
            m.words[m.count++] = strtoull(argv[i], 0, 0);
        if (ioctl(fd, L4SIM_IOC_CALL, &m) < 0) {
            printf("ioctl: %s\n", strerror(errno));
            return 1;
        }
        printf("answer: label %lld, words", (long long)m.label);
        for (unsigned i = 0; i < m.count; i++)
            printf(" %llu", (unsigned long long)m.words[i]);
        printf("\n");
        return 0;
    }
    if (!strcmp(mode, "serve")) {
        int fd = stub(name);
        if (fd < 0)
            return 1;
        if (ioctl(fd, L4SIM_IOC_SERVE) < 0) {
            printf("serve: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    }
    if (!strcmp(mode, "echo") && argc >= 4) {
        int fd = stub(name);
        uint64_t label = 0x20;
        if (fd < 0)
            return 1;
        if (ioctl(fd, L4SIM_IOC_RECEIVE, &label) < 0) {
            printf("receive: %s\n", strerror(errno));
            return 1;
        }
        printf("echo: serving %s\n", name);
        fflush(stdout);
        int count = atoi(argv[3]);
        l4_umword_t from;
        l4_msgtag_t t = l4_ipc_wait(u, &from, L4_IPC_NEVER);
        for (int i = 0; i < count; i++) {
            unsigned n = l4_msgtag_words(t);
            printf("echo: label %ld from %#lx, %u words\n", l4_msgtag_label(t), (unsigned long)from, n);
            fflush(stdout);
            for (unsigned j = 0; j < n; j++)
                u->mr[j] += 1;
            if (i + 1 == count)
                t = l4_ipc(L4_INVALID_CAP, u, L4_SYSF_REPLY, 0, l4_msgtag(0, n, 0, 0), 0, L4_IPC_NEVER);
            else
                t = l4_ipc_reply_and_wait(u, l4_msgtag(0, n, 0, 0), &from, L4_IPC_NEVER);
        }
        return 0;
    }
    return 2;
}
