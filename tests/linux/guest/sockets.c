/* AF_UNIX sockets: socketpair of each type, shutdown, EPIPE, file-system and abstract
 * names (bind, listen, accept, connect, getsockname, getpeername, autobind), backlogs,
 * SCM_RIGHTS and SCM_CREDENTIALS, SO_PEERCRED and other options, message boundaries and
 * truncation, MSG_PEEK, MSG_WAITALL, ECONNRESET, timeouts, sendmmsg/recvmmsg, poll, select
 * and epoll on sockets; errors.  argv[1]: a directory to work in. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *e(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EINVAL: return "EINVAL";
    case EPIPE: return "EPIPE";
    case ENOTCONN: return "ENOTCONN";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case EADDRINUSE: return "EADDRINUSE";
    case ENOENT: return "ENOENT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOTSOCK: return "ENOTSOCK";
    case EISCONN: return "EISCONN";
    case EPROTOTYPE: return "EPROTOTYPE";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EBADF: return "EBADF";
    case EINTR: return "EINTR";
    case EPERM: return "EPERM";
    case EMSGSIZE: return "EMSGSIZE";
    default: return strerror(errno);
    }
}

static void nap(int ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, 0);
}

static socklen_t addr(struct sockaddr_un *a, const char *path, int abstract) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (abstract) {
        a->sun_path[0] = 0;
        size_t n = strlen(path);
        memcpy(a->sun_path + 1, path, n);
        return offsetof(struct sockaddr_un, sun_path) + 1 + n;
    }
    strcpy(a->sun_path, path);
    return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}

static void pairs(void) {
    int sv[2];
    char buf[64];
    printf("socketpair stream: %s\n", e(socketpair(AF_UNIX, SOCK_STREAM, 0, sv)));
    struct stat st;
    fstat(sv[0], &st);
    char link[64], target[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", sv[0]);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    printf("S_ISSOCK %d, fd link %.8s\n", S_ISSOCK(st.st_mode), target);
    write(sv[0], "hello", 5);
    write(sv[0], " world", 6);
    int avail;
    ioctl(sv[1], FIONREAD, &avail);
    n = read(sv[1], buf, sizeof buf);
    printf("FIONREAD %d, read %zd: %.*s\n", avail, n, (int)n, buf);
    struct ucred uc;
    socklen_t l = sizeof uc;
    getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &uc, &l);
    printf("SO_PEERCRED pid is mine %d uid %d gid %d\n", uc.pid == getpid(), uc.uid, uc.gid);
    int v;
    l = 4;
    getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &l);
    printf("SO_TYPE %d", v);
    getsockopt(sv[0], SOL_SOCKET, SO_DOMAIN, &v, &l);
    printf(" SO_DOMAIN %d", v);
    getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &l);
    printf(" SO_SNDBUF %d", v);
    v = 1000;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, 4);
    getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &l);
    printf(" set 1000: %d\n", v);
    printf("SO_PEERSEC-ish unknown option: %s\n", e(getsockopt(sv[0], SOL_SOCKET, 999, &v, &l)));
    /* shutdown: the peer reads what is left, then end of file; it can still write back */
    write(sv[0], "bye", 3);
    printf("shutdown WR: %s\n", e(shutdown(sv[0], SHUT_WR)));
    struct pollfd pf = {sv[1], POLLIN | POLLRDHUP | POLLOUT, 0};
    poll(&pf, 1, 0);
    printf("peer poll: %s%s%s%s\n", pf.revents & POLLIN ? "IN " : "", pf.revents & POLLRDHUP ? "RDHUP " : "",
           pf.revents & POLLOUT ? "OUT " : "", pf.revents & POLLHUP ? "HUP" : "");
    n = read(sv[1], buf, sizeof buf);
    printf("read %zd, then %zd\n", n, read(sv[1], buf, sizeof buf));
    signal(SIGPIPE, SIG_IGN);
    printf("write after shutdown: %s\n", e(write(sv[0], "x", 1)));
    printf("peer writes back: %zd, reads %zd\n", write(sv[1], "ok", 2), read(sv[0], buf, sizeof buf));
    close(sv[1]);
    pf.fd = sv[0];
    poll(&pf, 1, 0);
    printf("after the peer's close: %s%s\n", pf.revents & POLLHUP ? "HUP " : "", pf.revents & POLLIN ? "IN" : "");
    printf("send MSG_NOSIGNAL: %s\n", e(send(sv[0], "x", 1, MSG_NOSIGNAL)));
    close(sv[0]);
    signal(SIGPIPE, SIG_DFL);
    /* SIGPIPE's default action ends a writer */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int go[2];
    pipe(go);
    pid_t c = fork();
    if (c == 0) {
        close(sv[1]);
        read(go[0], buf, 1);  /* until the parent has closed its end too */
        write(sv[0], "x", 1);
        _exit(0);
    }
    close(sv[1]);
    write(go[1], "g", 1);
    close(go[0]);
    close(go[1]);
    int stt;
    waitpid(c, &stt, 0);
    printf("writer to a closed peer: signal %d\n", WIFSIGNALED(stt) ? WTERMSIG(stt) : 0);
    close(sv[0]);

    /* datagrams: boundaries, truncation, the queue's bound */
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    send(sv[0], "one", 3, 0);
    send(sv[0], "three", 5, 0);
    send(sv[0], "", 0, 0);
    ioctl(sv[1], FIONREAD, &avail);
    printf("dgram FIONREAD %d\n", avail);
    n = recv(sv[1], buf, 2, MSG_TRUNC);
    printf("dgram recv 2 MSG_TRUNC: %zd\n", n);
    struct iovec iov = {buf, 3};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    n = recvmsg(sv[1], &mh, 0);
    printf("recvmsg: %zd flags %s\n", n, mh.msg_flags & MSG_TRUNC ? "TRUNC" : "-");
    printf("empty datagram: %zd\n", recv(sv[1], buf, sizeof buf, 0));
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    int count = 0;
    while (send(sv[0], "x", 1, 0) == 1) count++;
    printf("queued %d then %s\n", count, e(-1));
    close(sv[0]);
    close(sv[1]);

    /* seqpacket: boundaries and end of file */
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    send(sv[0], "abc", 3, 0);
    send(sv[0], "de", 2, 0);
    printf("seqpacket: %zd", recv(sv[1], buf, 2, 0));
    printf(" %zd", recv(sv[1], buf, 64, 0));
    close(sv[0]);
    printf(" eof %zd\n", recv(sv[1], buf, 64, 0));
    close(sv[1]);
}

static void peek_waitall(void) {
    int sv[2];
    char buf[64];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    write(sv[0], "peekaboo", 8);
    ssize_t n = recv(sv[1], buf, 4, MSG_PEEK);
    printf("peek %.*s", (int)n, buf);
    n = recv(sv[1], buf, 64, 0);
    printf(", read %.*s\n", (int)n, buf);
    pid_t c = fork();
    if (c == 0) {
        write(sv[0], "part1", 5);
        nap(50);
        write(sv[0], "part2", 5);
        _exit(0);
    }
    n = recv(sv[1], buf, 10, MSG_WAITALL);
    printf("waitall: %zd %.*s\n", n, (int)n, buf);
    waitpid(c, 0, 0);
    struct timeval tv = {0, 30000};
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    printf("recv with SO_RCVTIMEO: %s", e(recv(sv[1], buf, 64, 0)));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf(" after at least 30 ms: %d\n", (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 30);
    close(sv[0]);
    close(sv[1]);
}

static void server_client(const char *path, int abstract) {
    struct sockaddr_un a, got;
    socklen_t len = addr(&a, path, abstract), gl;
    int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    printf("[%s] bind: %s", abstract ? "abstract" : "path", e(bind(srv, (void *)&a, len)));
    int other = socket(AF_UNIX, SOCK_STREAM, 0);
    printf(", again: %s", e(bind(other, (void *)&a, len)));
    printf(", bind twice: %s\n", e(bind(srv, (void *)&a, len)));
    close(other);
    gl = sizeof got;
    getsockname(srv, (void *)&got, &gl);
    printf("getsockname len %s\n", gl == len ? "as bound" : "other");
    if (!abstract) {
        struct stat st;
        stat(path, &st);
        printf("stat: socket %d mode %o\n", S_ISSOCK(st.st_mode), st.st_mode & 0777);
    }
    int cl = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("connect before listen: %s\n", e(connect(cl, (void *)&a, len)));
    printf("listen: %s\n", e(listen(srv, 4)));
    int v;
    socklen_t l = 4;
    getsockopt(srv, SOL_SOCKET, SO_ACCEPTCONN, &v, &l);
    printf("SO_ACCEPTCONN %d\n", v);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, srv, &ev);
    pid_t c = fork();
    if (c == 0) {  /* the client says what it saw at the end: the order of two processes' lines is the scheduler's */
        char log[512];
        int at = 0;
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(s, (void *)&a, len)) { printf("client connect: %s\n", e(-1)); _exit(1); }
        struct ucred uc;
        socklen_t ul = sizeof uc;
        getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &ul);
        at += snprintf(log + at, sizeof log - at, "client: peer is the parent %d\n", uc.pid == getppid());
        struct sockaddr_un pa;
        socklen_t pl = sizeof pa;
        getpeername(s, (void *)&pa, &pl);
        at += snprintf(log + at, sizeof log - at, "client getpeername len %s\n", pl == len ? "as bound" : "other");
        at += snprintf(log + at, sizeof log - at, "client connect again: %s\n", e(connect(s, (void *)&a, len)));
        write(s, "ping", 4);
        char b[8];
        ssize_t n = read(s, b, sizeof b);
        printf("%sclient got %.*s\n", log, (int)n, b);
        _exit(0);
    }
    printf("epoll on the listener: %d\n", epoll_wait(ep, out, 2, 5000));
    gl = sizeof got;
    int conn = accept4(srv, (void *)&got, &gl, SOCK_CLOEXEC);
    printf("accept4: %s, peer address len %u, cloexec %d\n", e(conn), gl, fcntl(conn, F_GETFD));
    struct ucred uc;
    l = sizeof uc;
    getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &uc, &l);
    printf("server: peer is the child %d\n", uc.pid == c);
    gl = sizeof got;
    getsockname(conn, (void *)&got, &gl);
    printf("accepted socket's name len %s\n", gl == len ? "the listener's" : "other");
    char b[8];
    ssize_t n = read(conn, b, sizeof b);
    printf("server got %.*s\n", (int)n, b);
    write(conn, "pong", 4);
    waitpid(c, 0, 0);
    close(conn);
    /* a full backlog: listen(0) takes one waiting connection */
    listen(srv, 0);
    int c1 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    printf("backlog: %s", e(connect(c1, (void *)&a, len)));
    printf(" %s\n", e(connect(c2, (void *)&a, len)));
    /* the listener closes with c1 not accepted: c1 is reset */
    close(srv);
    printf("unaccepted, listener closed: %s", e(read(c1, b, sizeof b)));
    printf(", then %zd\n", read(c1, b, sizeof b));
    printf("connect after close: %s\n", e(connect(cl, (void *)&a, len)));
    close(c1);
    close(c2);
    close(cl);
    close(ep);
    if (!abstract) {
        struct stat st;
        printf("the name stays: %d\n", stat(path, &st) == 0);
        unlink(path);
    }
}

static void resets(void) {
    int sv[2];
    char b[8];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    write(sv[0], "unread", 6);
    close(sv[1]);  /* closed with unread data: the peer is reset */
    printf("reset: %s", e(read(sv[0], b, sizeof b)));
    printf(", then %zd\n", read(sv[0], b, sizeof b));
    int v;
    socklen_t l = 4;
    getsockopt(sv[0], SOL_SOCKET, SO_ERROR, &v, &l);
    printf("SO_ERROR %d\n", v);
    close(sv[0]);
}

static void send_fds(int sock, int *fds, int n, const char *data) {
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {(void *)data, strlen(data)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    if (sendmsg(sock, &mh, 0) < 0) printf("sendmsg: %s\n", e(-1));
}

static int recv_fds(int sock, int *fds, int max, char *data, size_t dlen, int flags, int *mflags) {
    char cbuf[CMSG_SPACE(sizeof(int) * 4)];
    struct iovec iov = {data, dlen};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = CMSG_SPACE(sizeof(int) * max)};
    ssize_t n = recvmsg(sock, &mh, flags);
    if (n < 0) { printf("recvmsg: %s\n", e(-1)); return -1; }
    data[n] = 0;
    *mflags = mh.msg_flags;
    int got = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_type == SCM_RIGHTS) {
            got = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(cm), sizeof(int) * got);
        }
    return got;
}

static void rights(const char *dir) {
    int sv[2], p[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pipe(p);
    char path[256];
    snprintf(path, sizeof path, "%s/shared.txt", dir);
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(f, "0123456789", 10);
    pid_t c = fork();
    if (c == 0) {
        close(p[1]);
        close(f);
        int fds[4], mf;
        char data[64];
        int n = recv_fds(sv[1], fds, 4, data, sizeof data, MSG_CMSG_CLOEXEC, &mf);
        printf("child got %d fds with \"%s\", cloexec %d\n", n, data, fcntl(fds[0], F_GETFD));
        lseek(fds[1], 3, SEEK_SET);  /* the same open file: the parent sees the offset */
        n = recv_fds(sv[1], fds, 1, data, sizeof data, 0, &mf);
        printf("child: %d fd(s), \"%s\", %s\n", n, data, mf & MSG_CTRUNC ? "MSG_CTRUNC" : "-");
        write(fds[0], "via passed pipe", 15);  /* the parent reads it after the lines above */
        _exit(0);
    }
    int two[2] = {p[1], f};
    write(sv[0], "ab", 2);
    send_fds(sv[0], two, 2, "cd");
    write(sv[0], "ef", 2);
    int three[3] = {p[1], f, p[1]};
    send_fds(sv[0], three, 3, "gh");
    close(p[1]);
    char b[32];
    ssize_t n = read(p[0], b, sizeof b);
    printf("parent read from its pipe: %.*s\n", (int)n, b);
    waitpid(c, 0, 0);
    printf("offset moved by the child: %ld\n", (long)lseek(f, 0, SEEK_CUR));
    printf("after the child, pipe at eof: %zd\n", read(p[0], b, sizeof b));
    close(f);
    close(p[0]);
    /* stream read boundaries around descriptors, seen from one process */
    int q[2];
    pipe(q);
    write(sv[0], "xy", 2);
    send_fds(sv[0], &q[0], 1, "z");
    write(sv[0], "tail", 4);
    int fds[4], mf;
    char data[64];
    int got = recv_fds(sv[1], fds, 4, data, sizeof data, 0, &mf);
    printf("first read: \"%s\" with %d fd, next: ", data, got);
    got = recv_fds(sv[1], fds, 4, data, sizeof data, 0, &mf);
    printf("\"%s\" with %d fd\n", data, got);
    int bad = 999;
    send_fds(sv[0], &bad, 1, "bad");
    close(q[0]);
    close(q[1]);
    /* credentials */
    int on = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    write(sv[0], "cred", 4);
    char cbuf[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {data, sizeof data};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    recvmsg(sv[1], &mh, 0);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    struct ucred *uc = (struct ucred *)CMSG_DATA(cm);
    printf("SCM_CREDENTIALS: type %d pid mine %d uid %d\n", cm->cmsg_type, uc->pid == getpid(), uc->uid);
    close(sv[0]);
    close(sv[1]);
}

static void dgram_names(const char *dir) {
    char path[256], path2[256];
    snprintf(path, sizeof path, "%s/dg", dir);
    snprintf(path2, sizeof path2, "%s/dg2", dir);
    struct sockaddr_un a, a2, from;
    socklen_t len = addr(&a, path, 0), len2 = addr(&a2, path2, 0), fl;
    int rx = socket(AF_UNIX, SOCK_DGRAM, 0);
    bind(rx, (void *)&a, len);
    int tx = socket(AF_UNIX, SOCK_DGRAM, 0);
    printf("sendto: %zd\n", sendto(tx, "anon", 4, 0, (void *)&a, len));
    char b[16];
    fl = sizeof from;
    ssize_t n = recvfrom(rx, b, sizeof b, 0, (void *)&from, &fl);
    printf("recvfrom unbound sender: %zd addrlen %u\n", n, fl);
    bind(tx, (void *)&a2, len2);
    sendto(tx, "named", 5, 0, (void *)&a, len);
    fl = sizeof from;
    n = recvfrom(rx, b, sizeof b, 0, (void *)&from, &fl);
    printf("recvfrom bound sender: %zd %s\n", n, fl == len2 && !strcmp(from.sun_path, path2) ? "its name" : "other");
    printf("send unconnected: %s\n", e(send(tx, "x", 1, 0)));
    connect(tx, (void *)&a, len);
    printf("connected send: %zd\n", send(tx, "y", 1, 0));
    recv(rx, b, sizeof b, 0);
    /* sendmmsg / recvmmsg */
    struct mmsghdr mm[3];
    struct iovec iv[3] = {{"m1", 2}, {"m22", 3}, {"m333", 4}};
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &iv[i]; mm[i].msg_hdr.msg_iovlen = 1; }
    printf("sendmmsg: %d\n", sendmmsg(tx, mm, 3, 0));
    char bufs[3][8];
    struct iovec rv[3] = {{bufs[0], 8}, {bufs[1], 8}, {bufs[2], 8}};
    for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &rv[i]; mm[i].msg_len = 0; }
    int r = recvmmsg(rx, mm, 3, 0, 0);
    printf("recvmmsg: %d lens %u %u %u\n", r, mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
    int third = socket(AF_UNIX, SOCK_DGRAM, 0);
    connect(rx, (void *)&a2, len2);  /* rx now takes datagrams from tx only */
    printf("to a socket connected elsewhere: %s\n", e(sendto(third, "z", 1, 0, (void *)&a, len)));
    close(rx);
    printf("peer closed: %s", e(send(tx, "z", 1, 0)));
    printf(", then %s\n", e(send(tx, "z", 1, 0)));
    close(tx);
    close(third);
    unlink(path);
    unlink(path2);
}

static void autobind_and_errors(void) {
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX}, got;
    printf("autobind: %s", e(bind(s, (void *)&a, sizeof(sa_family_t))));
    socklen_t gl = sizeof got;
    getsockname(s, (void *)&got, &gl);
    printf(" len %u abstract %d\n", gl, got.sun_path[0] == 0);
    printf("listen on dgram: %s\n", e(listen(s, 1)));
    printf("accept on dgram: %s\n", e(accept(s, 0, 0)));
    close(s);
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    char b[4];
    printf("recv unconnected stream: %s\n", e(recv(s, b, 4, 0)));
    printf("send unconnected stream: %s\n", e(send(s, b, 4, MSG_NOSIGNAL)));
    printf("getpeername unconnected: %s\n", e(getpeername(s, (void *)&got, &gl)));
    printf("shutdown unconnected: %s\n", e(shutdown(s, SHUT_RD)));
    printf("listen unbound: %s\n", e(listen(s, 1)));
    printf("accept not listening: %s\n", e(accept(s, 0, 0)));
    struct ucred uc;
    socklen_t l = sizeof uc;
    getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &l);
    printf("SO_PEERCRED unconnected: pid %d uid %d gid %d\n", uc.pid, uc.uid, uc.gid);
    struct pollfd pf = {s, POLLIN | POLLOUT, 0};
    poll(&pf, 1, 0);
    printf("unconnected poll: %s%s%s\n", pf.revents & POLLIN ? "IN " : "", pf.revents & POLLOUT ? "OUT " : "",
           pf.revents & POLLHUP ? "HUP" : "");
    struct sockaddr_un missing;
    socklen_t ml = addr(&missing, "/nonexistent/sock", 0);
    printf("connect missing path: %s\n", e(connect(s, (void *)&missing, ml)));
    ml = addr(&missing, "/proc/self/exe", 0);
    printf("connect to a non-socket: %s\n", e(connect(s, (void *)&missing, ml)));
    close(s);
    printf("bad type: %s\n", e(socket(AF_UNIX, 7, 0)));
    printf("bad protocol: %s\n", e(socket(AF_UNIX, SOCK_STREAM, 5)));
    int p[2];
    pipe(p);
    printf("not a socket: %s\n", e(send(p[1], b, 1, 0)));
    int dg = socket(AF_UNIX, SOCK_DGRAM, 0), st = socket(AF_UNIX, SOCK_STREAM, 0);
    char path[64];
    snprintf(path, sizeof path, "l4sim-proto-%d", getpid());
    struct sockaddr_un pa;
    socklen_t pl = addr(&pa, path, 1);
    bind(dg, (void *)&pa, pl);
    printf("stream to a datagram socket: %s\n", e(connect(st, (void *)&pa, pl)));
    close(dg);
    close(st);
    close(p[0]);
    close(p[1]);
}

static void select_poll(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t c = fork();
    if (c == 0) {
        nap(50);
        write(sv[1], "late", 4);
        _exit(0);
    }
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(sv[0], &rs);
    printf("select waits for the data: %d\n", select(sv[0] + 1, &rs, 0, 0, 0));
    char b[8];
    read(sv[0], b, sizeof b);
    waitpid(c, 0, 0);
    struct pollfd pf = {sv[0], POLLIN, 0};
    printf("poll after the writer ended: %d %s\n", poll(&pf, 1, 1000), pf.revents & POLLIN ? "IN" : "-");
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    if (chdir(dir)) return 1;
    pairs();
    peek_waitall();
    server_client("srv.sock", 0);
    char abs[64];
    snprintf(abs, sizeof abs, "l4sim-test-%d", getpid());  /* the abstract namespace is the host's */
    server_client(abs, 1);
    resets();
    rights(dir);
    dgram_names(dir);
    autobind_and_errors();
    select_poll();
    return 0;
}
