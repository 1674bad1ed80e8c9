/*
 * l4sim/l4.h -- L4 calls and /dev/l4 stubs for hybrid programs of an l4sim Linux instance.
 *
 * A process of a Linux instance (a startup script's linux(...)) that the instance's
 * configuration allows (l4_allow: its executable's path, or uid 0) may make L4 system calls.
 * Its threads are alien: each call goes to the Linux personality first, which lets it pass;
 * the kernel then performs it with the capabilities in the process's own L4 capability
 * table, and the thread goes on with the result.  A process that is not allowed dies of
 * SIGSYS, as a seccomp filter kills.
 *
 * The table starts empty: l4sim_bind("NAME") maps the instance's capability NAME (a channel
 * the startup script gave it, /dev/l4/NAME) into it and returns the index to call it by.
 *
 * The entry is Fiasco's ia32 one, int 0x30, with the registers of l4sim's encoding
 * (docs/kernel.md, "Alien L4 calls"): rax the message tag, rdx the capability index ORed
 * with the operation's flags, rdi the UTCB (the message registers), r8 the timeouts; on
 * return rax holds the answer's tag, rsi its label, rdx the IPC error (0: none).  Message
 * registers only: no typed items.
 *
 * Build with the Zig C compiler:  python -m ziglang cc -target x86_64-linux-musl -static \
 *     -I "$(l4sim linux include)" prog.c -o prog
 */
#ifndef L4SIM_L4_H
#define L4SIM_L4_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

typedef uint64_t l4_umword_t;
typedef int64_t l4_mword_t;
typedef uint64_t l4_cap_idx_t;

/* the message tag: label << 16, flags in bits 12-15, items in 6-11, words in 0-5 */
typedef struct { l4_umword_t raw; } l4_msgtag_t;
/* timeouts: send << 16 | receive, each 0 for never, 0x400 for zero, else m * 2^e us */
typedef struct { uint32_t raw; } l4_timeout_t;

#define L4_UTCB_GENERIC_DATA_SIZE 63
/* the thread's message registers, and what l4_ipc() keeps of the last call */
typedef struct l4_utcb {
    l4_umword_t mr[L4_UTCB_GENERIC_DATA_SIZE];
    l4_umword_t error; /* the IPC error of the last call (rdx) */
} l4_utcb_t;

#define L4_CAP_SHIFT 12
#define L4_INVALID_CAP ((l4_cap_idx_t)1 << 11)
#define L4_SYSF_SEND 1UL
#define L4_SYSF_RECV 2UL
#define L4_SYSF_OPEN_WAIT 4UL
#define L4_SYSF_REPLY 8UL
#define L4_SYSF_CALL (L4_SYSF_SEND | L4_SYSF_RECV)
#define L4_SYSF_WAIT (L4_SYSF_RECV | L4_SYSF_OPEN_WAIT)
#define L4_SYSF_REPLY_AND_WAIT (L4_SYSF_REPLY | L4_SYSF_RECV | L4_SYSF_OPEN_WAIT)
#define L4_MSGTAG_ERROR 0x8000UL
#define L4_IPC_NEVER ((l4_timeout_t){0})
/* IPC error codes (Fiasco's): non-existent partner, timeouts, cancelled, message cut, aborted */
#define L4_IPC_ENOT_EXISTENT 0x04
#define L4_IPC_SETIMEOUT 0x02
#define L4_IPC_RETIMEOUT 0x03
#define L4_IPC_SECANCELED 0x06
#define L4_IPC_RECANCELED 0x07
#define L4_IPC_SEMSGCUT 0x08
#define L4_IPC_REMSGCUT 0x09
#define L4_IPC_SEABORTED 0x0E
#define L4_IPC_REABORTED 0x0F

/* the calling thread's UTCB (thread-local memory of the process) */
static inline l4_utcb_t *l4_utcb(void) {
    static __thread l4_utcb_t utcb;
    return &utcb;
}

static inline l4_msgtag_t l4_msgtag(long label, unsigned words, unsigned items, unsigned flags) {
    l4_msgtag_t t;
    t.raw = ((l4_umword_t)label << 16) | (flags & 0xF000) | ((items & 0x3F) << 6) | (words & 0x3F);
    return t;
}
static inline long l4_msgtag_label(l4_msgtag_t t) { return (long)((l4_mword_t)t.raw >> 16); }
static inline unsigned l4_msgtag_words(l4_msgtag_t t) { return (unsigned)(t.raw & 0x3F); }
static inline int l4_msgtag_has_error(l4_msgtag_t t) { return (t.raw & L4_MSGTAG_ERROR) != 0; }
/* the IPC error of the last call that returned ``tag`` (0 when it went through) */
static inline l4_umword_t l4_ipc_error(l4_msgtag_t tag, l4_utcb_t *utcb) {
    return l4_msgtag_has_error(tag) ? utcb->error : 0;
}

/* the system call: operation ``flags`` on capability ``dest``, message registers in ``utcb`` */
static inline l4_msgtag_t l4_ipc(l4_cap_idx_t dest, l4_utcb_t *utcb, l4_umword_t flags, l4_umword_t slabel,
                                 l4_msgtag_t tag, l4_umword_t *rlabel, l4_timeout_t timeout) {
    register l4_umword_t to __asm__("r8") = timeout.raw;
    l4_umword_t d = dest | flags, label = slabel;
    __asm__ __volatile__("int $0x30"
                         : "+a"(tag.raw), "+d"(d), "+S"(label)
                         : "D"(utcb), "r"(to)
                         : "memory", "cc");
    utcb->error = d;
    if (rlabel)
        *rlabel = label;
    return tag;
}

/* send the message and wait for the answer from the same partner */
static inline l4_msgtag_t l4_ipc_call(l4_cap_idx_t object, l4_utcb_t *utcb, l4_msgtag_t tag,
                                      l4_timeout_t timeout) {
    return l4_ipc(object, utcb, L4_SYSF_CALL, 0, tag, 0, timeout);
}

/* wait for a message from anybody (a gate bound to this thread: L4SIM_IOC_RECEIVE) */
static inline l4_msgtag_t l4_ipc_wait(l4_utcb_t *utcb, l4_umword_t *label, l4_timeout_t timeout) {
    return l4_ipc(L4_INVALID_CAP, utcb, L4_SYSF_WAIT, 0, l4_msgtag(0, 0, 0, 0), label, timeout);
}

/* answer the last call received and wait for the next message */
static inline l4_msgtag_t l4_ipc_reply_and_wait(l4_utcb_t *utcb, l4_msgtag_t tag, l4_umword_t *label,
                                                l4_timeout_t timeout) {
    return l4_ipc(L4_INVALID_CAP, utcb, L4_SYSF_REPLY_AND_WAIT, 0, tag, label, timeout);
}

/* send only */
static inline l4_msgtag_t l4_ipc_send(l4_cap_idx_t object, l4_utcb_t *utcb, l4_msgtag_t tag,
                                      l4_timeout_t timeout) {
    return l4_ipc(object, utcb, L4_SYSF_SEND, 0, tag, 0, timeout);
}

/* --- the stub of a capability: /dev/l4/NAME ------------------------------------------- */
/* a call through the stub: label and words both ways (the answer's label: -errno on error) */
struct l4sim_msg {
    int64_t label;
    uint64_t count;
    uint64_t words[61];
};
#define L4SIM_IOC_LABEL _IOW('L', 1, int64_t)            /* the label of write()'s messages */
#define L4SIM_IOC_CALL _IOWR('L', 2, struct l4sim_msg)   /* a call with words */
#define L4SIM_IOC_BIND _IOR('L', 3, uint64_t)            /* into my L4 table: the index */
#define L4SIM_IOC_SERVE _IO('L', 4)                      /* the device serves the clients */
#define L4SIM_IOC_RECEIVE _IOW('L', 5, uint64_t)         /* the gate's calls to my thread */

/* the instance's capability ``name`` bound into this process's L4 table: the index to call
 * it by, or L4_INVALID_CAP (errno: ENOENT no such capability, EPERM not allowed) */
static inline l4_cap_idx_t l4sim_bind(const char *name) {
    char path[128];
    uint64_t idx = L4_INVALID_CAP;
    snprintf(path, sizeof path, "/dev/l4/%s", name);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return L4_INVALID_CAP;
    if (ioctl(fd, L4SIM_IOC_BIND, &idx) < 0)
        idx = L4_INVALID_CAP;
    close(fd);
    return idx;
}

#endif /* L4SIM_L4_H */
