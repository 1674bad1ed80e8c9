/* System V IPC between processes: shared memory (the same frames in every attachment,
 * fork, SHM_RDONLY, nattch, IPC_RMID while attached, IPC_STAT), semaphores (semop all or
 * nothing, waiting, IPC_NOWAIT, semtimedop's timeout, SEM_UNDO at exit, GETNCNT/GETZCNT,
 * SETALL/GETALL, EIDRM, EINTR) and message queues (types, MSG_EXCEPT, negative types,
 * MSG_NOERROR, E2BIG, MSG_COPY, a full queue, a receiver waiting).  Ids are printed only
 * as relations: the host's other programs use the same id space natively. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *e(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EINVAL: return "EINVAL";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EIDRM: return "EIDRM";
    case EINTR: return "EINTR";
    case ENOMSG: return "ENOMSG";
    case E2BIG: return "E2BIG";
    case ERANGE: return "ERANGE";
    case EFBIG: return "EFBIG";
    default: return strerror(errno);
    }
}

static void nap(int ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, 0);
}

union semun { int val; struct semid_ds *buf; unsigned short *array; };

static int seg_nattch(int id) {
    struct shmid_ds ds;
    return shmctl(id, IPC_STAT, &ds) ? -1 : (int)ds.shm_nattch;
}

static void shm(key_t key) {
    int id = shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0640);
    printf("shmget: %s\n", e(id));
    printf("again IPC_EXCL: %s\n", e(shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0640)));
    printf("same key: %s\n", shmget(key, 5000, 0) == id ? "same id" : "other");
    printf("larger than it is: %s\n", e(shmget(key, 20000, 0)));
    printf("no such key: %s\n", e(shmget(key + 1, 100, 0)));
    struct shmid_ds ds;
    shmctl(id, IPC_STAT, &ds);
    printf("stat: size %zu mode %o nattch %lu cpid mine %d key %s\n", ds.shm_segsz, ds.shm_perm.mode & 0777,
           ds.shm_nattch, ds.shm_cpid == getpid(), ds.shm_perm.__key == key ? "same" : "other");
    char *a = shmat(id, 0, 0), *b = shmat(id, 0, 0);
    printf("two attachments: distinct %d nattch %d\n", a != b, seg_nattch(id));
    strcpy(a, "written through a");
    strcpy(a + 8192, "third page");
    printf("b sees: %s, %s\n", b, b + 8192);
    pid_t c = fork();
    if (c == 0) {
        printf("child nattch %d, sees %s\n", seg_nattch(id), a);
        strcpy(b + 100, "from the child");
        char *r = shmat(id, 0, SHM_RDONLY);
        printf("child read-only attachment sees: %s\n", r + 100);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("parent sees: %s; nattch after the child %d\n", a + 100, seg_nattch(id));
    c = fork();
    if (c == 0) {
        char *r = shmat(id, 0, SHM_RDONLY);
        r[0] = 'x';  /* SIGSEGV */
        _exit(0);
    }
    waitpid(c, &st, 0);
    printf("store into SHM_RDONLY: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    shmctl(id, IPC_STAT, &ds);
    printf("lpid is the child %d\n", ds.shm_lpid == c);
    printf("shmdt a: %s, nattch %d\n", e(shmdt(a)), seg_nattch(id));
    printf("shmdt a again: %s\n", e(shmdt(a)));
    printf("IPC_RMID while attached: %s\n", e(shmctl(id, IPC_RMID, 0)));
    shmctl(id, IPC_STAT, &ds);
    printf("after RMID: key %d dest %d, still readable: %s\n", ds.shm_perm.__key, !!(ds.shm_perm.mode & 01000), b);
    printf("key free again: %s\n", e(shmget(key, 100, 0)));
    shmdt(b);
    printf("after the last detach: %s\n", e(shmctl(id, IPC_STAT, &ds)));
    int p = shmget(IPC_PRIVATE, 4096, 0600);
    char *fixed = shmat(p, (void *)0x500000000000, 0);
    printf("shmat at an address: %s\n", fixed == (void *)0x500000000000 ? "there" : "elsewhere");
    printf("over it again: %s\n", shmat(p, (void *)0x500000000000, 0) == (void *)-1 ? e(-1) : "ok");
    printf("unaligned: %s\n", shmat(p, (void *)0x500000000010, 0) == (void *)-1 ? e(-1) : "ok");
    printf("SHM_RND: %s\n", shmat(p, (void *)0x500000001010, SHM_RND) == (void *)0x500000001000 ? "rounded" : "?");
    printf("zero size: %s\n", e(shmget(IPC_PRIVATE, 0, 0600)));
    printf("bad id: %s\n", shmat(p + 1000000, 0, 0) == (void *)-1 ? e(-1) : "ok");
    shmctl(p, IPC_RMID, 0);
    c = fork();
    if (c == 0) {
        int q = shmget(IPC_PRIVATE, 4096, 0600);
        char *m = shmat(q, 0, 0);
        m[0] = 1;
        shmctl(q, IPC_RMID, 0);
        _exit(q == -1);  /* the segment goes with the process */
    }
    waitpid(c, &st, 0);
    printf("a child's removed segment: exit %d\n", WEXITSTATUS(st));
}

static void on_usr1(int s) { (void)s; }

/* until semaphore num of set id has n waiters of the kind (GETNCNT, GETZCNT): a process
 * that was told to wait may not have got there yet */
static void await_waiters(int id, int num, int cmd, int n) {
    for (int i = 0; i < 400 && semctl(id, num, cmd) < n; i++) nap(5);
}

static void sem(key_t key) {
    int id = semget(key, 3, IPC_CREAT | IPC_EXCL | 0600);
    printf("semget: %s\n", e(id));
    printf("more than it has: %s\n", e(semget(key, 4, 0)));
    unsigned short vals[3] = {1, 0, 5}, got[3];
    union semun u = {.array = vals};
    semctl(id, 0, SETALL, u);
    u.array = got;
    semctl(id, 0, GETALL, u);
    printf("GETALL %u %u %u\n", got[0], got[1], got[2]);
    struct sembuf two[2] = {{0, -1, 0}, {1, -1, IPC_NOWAIT}};
    printf("all or nothing: %s, sem0 %d\n", e(semop(id, two, 2)), semctl(id, 0, GETVAL));
    struct sembuf dec = {2, -3, 0};
    semop(id, &dec, 1);
    printf("GETVAL 2: %d GETPID mine %d\n", semctl(id, 2, GETVAL), semctl(id, 2, GETPID) == getpid());
    struct sembuf big = {2, 32767, 0};
    printf("past SEMVMX: %s\n", e(semop(id, &big, 1)));
    struct sembuf badnum = {7, 1, 0};
    printf("no such semaphore: %s\n", e(semop(id, &badnum, 1)));
    u.val = 40000;
    printf("SETVAL too big: %s\n", e(semctl(id, 0, SETVAL, u)));
    /* waiters: GETNCNT and GETZCNT see them; a V wakes the oldest */
    int p[2];
    pipe(p);
    for (int i = 0; i < 2; i++) {
        if (fork() == 0) {
            struct sembuf w = {1, -1, 0};
            int r = semop(id, &w, 1);
            char line[32];
            int n = snprintf(line, sizeof line, "waiter %d: %s\n", i, e(r));
            write(p[1], line, n);
            _exit(0);
        }
        await_waiters(id, 1, GETNCNT, i + 1);
    }
    if (fork() == 0) {
        struct sembuf z = {0, 0, 0};  /* waits for zero */
        semop(id, &z, 1);
        write(p[1], "zero waiter done\n", 17);
        _exit(0);
    }
    await_waiters(id, 0, GETZCNT, 1);
    printf("GETNCNT %d GETZCNT %d\n", semctl(id, 1, GETNCNT), semctl(id, 0, GETZCNT));
    struct sembuf v = {1, 1, 0};
    semop(id, &v, 1);
    char buf[64];
    ssize_t n = read(p[0], buf, sizeof buf);
    printf("%.*s", (int)n, buf);
    semop(id, &v, 1);
    n = read(p[0], buf, sizeof buf);
    printf("%.*s", (int)n, buf);
    struct sembuf down0 = {0, -1, 0};
    semop(id, &down0, 1);
    n = read(p[0], buf, sizeof buf);
    printf("%.*s", (int)n, buf);
    while (wait(0) > 0) {}
    /* SEM_UNDO: a child's operation is undone when it exits */
    u.val = 2;
    semctl(id, 2, SETVAL, u);
    pid_t c = fork();
    if (c == 0) {
        struct sembuf d = {2, -2, SEM_UNDO};
        semop(id, &d, 1);
        _exit(0);
    }
    waitpid(c, 0, 0);
    printf("after the child's SEM_UNDO: %d\n", semctl(id, 2, GETVAL));
    /* semtimedop times out; a signal interrupts a wait */
    struct sembuf w1 = {1, -1, 0};
    struct timespec to = {0, 50000000};
    printf("semtimedop: %s\n", e(semtimedop(id, &w1, 1, &to)));
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
    sigaction(SIGUSR1, &sa, 0);
    pid_t parent = getpid();
    int back[2];
    pipe(back);
    fcntl(back[0], F_SETFL, O_NONBLOCK);
    c = fork();
    if (c == 0) {
        char x;
        for (int i = 0; i < 100 && read(back[0], &x, 1) != 1; i++) {
            nap(50);  /* until the parent's semop was interrupted */
            kill(parent, SIGUSR1);
        }
        _exit(0);
    }
    printf("semop interrupted (SA_RESTART or not): %s\n", e(semop(id, &w1, 1)));
    signal(SIGUSR1, SIG_IGN);
    write(back[1], "x", 1);
    waitpid(c, 0, 0);
    c = fork();
    if (c == 0) {
        int r = semop(id, &w1, 1);
        _exit(r == -1 && errno == EIDRM ? 0 : 1);
    }
    await_waiters(id, 1, GETNCNT, 1);
    printf("IPC_RMID: %s\n", e(semctl(id, 0, IPC_RMID)));
    int st;
    waitpid(c, &st, 0);
    printf("the waiter got EIDRM: %d\n", WEXITSTATUS(st) == 0);
    printf("GETVAL after RMID: %s\n", e(semctl(id, 0, GETVAL)));
    struct seminfo si;
    u.buf = (void *)&si;
    printf("IPC_INFO: %s semmsl %d semopm %d semvmx %d\n", semctl(0, 0, IPC_INFO, u) >= 0 ? "ok" : e(-1),
           si.semmsl, si.semopm, si.semvmx);
    printf("semget nsems 0: %s\n", e(semget(IPC_PRIVATE, 0, 0600)));
}

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

struct msg { long type; char text[32]; };

static void msgq(key_t key) {
    int id = msgget(key, IPC_CREAT | 0600);
    printf("msgget: %s\n", e(id));
    struct msg m;
    long types[] = {3, 1, 2, 1, 5};
    for (int i = 0; i < 5; i++) {
        m.type = types[i];
        snprintf(m.text, sizeof m.text, "m%d-t%ld", i, types[i]);
        msgsnd(id, &m, strlen(m.text) + 1, 0);
    }
    struct msqid_ds ds;
    msgctl(id, IPC_STAT, &ds);
    printf("qnum %lu cbytes %lu qbytes %lu lspid mine %d\n", ds.msg_qnum, ds.__msg_cbytes, ds.msg_qbytes,
           ds.msg_lspid == getpid());
    ssize_t n = msgrcv(id, &m, sizeof m.text, 2, 0);
    printf("type 2: %zd %s\n", n, m.text);
    n = msgrcv(id, &m, sizeof m.text, 1, MSG_EXCEPT);
    printf("not type 1: %s\n", m.text);
    n = msgrcv(id, &m, sizeof m.text, -4, 0);
    printf("lowest <= 4: %s\n", m.text);
    n = msgrcv(id, &m, sizeof m.text, 0, MSG_COPY | IPC_NOWAIT);
    printf("MSG_COPY 0: %s\n", n < 0 ? e(n) : m.text);
    n = msgrcv(id, &m, 3, 0, 0);
    printf("too small: %s\n", e(n));
    n = msgrcv(id, &m, 3, 0, MSG_NOERROR);
    printf("MSG_NOERROR: %zd %.3s\n", n, m.text);
    n = msgrcv(id, &m, sizeof m.text, 0, 0);
    printf("first: %s\n", m.text);
    printf("empty, IPC_NOWAIT: %s\n", e(msgrcv(id, &m, sizeof m.text, 0, IPC_NOWAIT)));
    m.type = 0;
    printf("type 0: %s\n", e(msgsnd(id, &m, 4, 0)));
    /* a receiver waits; a send hands it over */
    pid_t c = fork();
    if (c == 0) {
        struct msg r;
        ssize_t k = msgrcv(id, &r, sizeof r.text, 9, 0);
        printf("child received %zd: %s\n", k, r.text);
        _exit(0);
    }
    nap(50);
    m.type = 8;
    strcpy(m.text, "not for it");
    msgsnd(id, &m, 11, 0);
    m.type = 9;
    strcpy(m.text, "for it");
    msgsnd(id, &m, 7, 0);
    waitpid(c, 0, 0);
    msgctl(id, IPC_STAT, &ds);
    printf("left: %lu, lrpid the child %d\n", ds.msg_qnum, ds.msg_lrpid == c);
    msgrcv(id, &m, sizeof m.text, 0, 0);
    /* a full queue */
    ds.msg_qbytes = 64;
    printf("IPC_SET qbytes: %s\n", e(msgctl(id, IPC_SET, &ds)));
    m.type = 1;
    int sent = 0;
    while (msgsnd(id, &m, 30, IPC_NOWAIT) == 0) sent++;
    printf("sent %d then %s\n", sent, e(-1));
    c = fork();
    if (c == 0) {
        int r = msgsnd(id, &m, 30, 0);  /* waits for room */
        _exit(r == 0 ? 0 : 1);
    }
    nap(50);
    msgrcv(id, &m, sizeof m.text, 0, 0);
    int st;
    waitpid(c, &st, 0);
    msgctl(id, IPC_STAT, &ds);
    printf("the waiting sender went on: %d, qnum %lu\n", WEXITSTATUS(st) == 0, ds.msg_qnum);
    c = fork();
    if (c == 0) {
        struct msg r;
        int k = msgrcv(id, &r, sizeof r.text, 77, 0);
        /* EIDRM when it waited; EINVAL when the queue went before it asked */
        _exit(k == -1 && (errno == EIDRM || errno == EINVAL) ? 0 : 1);
    }
    nap(50);
    printf("IPC_RMID: %s\n", e(msgctl(id, IPC_RMID, 0)));
    waitpid(c, &st, 0);
    printf("the receiver saw the queue go: %d\n", WEXITSTATUS(st) == 0);
    printf("stat after RMID: %s\n", e(msgctl(id, IPC_STAT, &ds)));
    struct msginfo mi;
    msgctl(0, IPC_INFO, (void *)&mi);
    printf("IPC_INFO: msgmax %d msgmnb %d msgmni %d\n", mi.msgmax, mi.msgmnb, mi.msgmni);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    /* keys of this run only: IPC objects are the host's natively */
    key_t base = 0x4c340000 + (getpid() & 0xffff) * 4;
    shm(base);
    sem(base + 1);
    msgq(base + 2);
    return 0;
}
