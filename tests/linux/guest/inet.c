/* Internet sockets on the loopback interface, natively and under l4sim (the same output).
 *
 * TCP over IPv4 and IPv6 (dual stack: an IPv6 listener takes an IPv4 client as
 * ::ffff:127.0.0.1), a transfer both ways with fork, shutdown and the end of the stream,
 * MSG_PEEK, MSG_WAITALL, FIONREAD, poll/select/epoll readiness, non-blocking connect and
 * accept, refused connections, SO_REUSEADDR against a connection in TIME_WAIT, SO_RCVBUF
 * and SO_RCVTIMEO, UDP (sendto/recvfrom, connect, "port unreachable" as ECONNREFUSED,
 * truncation), getaddrinfo of numeric addresses and of "localhost" (/etc/hosts).
 * Only what does not depend on the host's choices (ephemeral ports, timing) is printed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(x) do { if ((x) < 0) { printf("FAIL %s: %s (line %d)\n", #x, strerror(errno), __LINE__); exit(1); } } while (0)

static const char *err(int e) {
    switch (e) {
    case 0: return "ok";
    case EAGAIN: return "EAGAIN";
    case EINPROGRESS: return "EINPROGRESS";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EADDRINUSE: return "EADDRINUSE";
    case EISCONN: return "EISCONN";
    case ENOTCONN: return "ENOTCONN";
    case EPIPE: return "EPIPE";
    case EINVAL: return "EINVAL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EDESTADDRREQ: return "EDESTADDRREQ";
    default: return strerror(e);
    }
}

static int port_of(int fd) {
    struct sockaddr_storage ss;
    socklen_t n = sizeof ss;
    CHECK(getsockname(fd, (struct sockaddr *)&ss, &n));
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int listener4(int port, int reuse) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l);
    if (reuse) CHECK(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (void *)&a, sizeof a) < 0) { int e = errno; close(l); errno = e; return -1; }
    CHECK(listen(l, 8));
    return l;
}

static int connect4(int port) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c, (void *)&a, sizeof a) < 0) { int e = errno; close(c); errno = e; return -1; }
    return c;
}

static unsigned long fill(char *buf, size_t n, unsigned seed) {
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i++) { buf[i] = (char)(seed * 31 + i * 7 + (i >> 9)); sum += (unsigned char)buf[i]; }
    return sum;
}

static void transfer(void) {
    int l = listener4(0, 0);
    int port = port_of(l);
    pid_t pid = fork();
    if (pid == 0) {
        int c = connect4(port);
        CHECK(c);
        static char buf[300000];
        unsigned long sum = fill(buf, sizeof buf, 1);
        size_t off = 0;
        while (off < sizeof buf) { ssize_t n = write(c, buf + off, sizeof buf - off); CHECK(n); off += n; }
        CHECK(shutdown(c, SHUT_WR));
        char back[64]; ssize_t n, got = 0;
        while ((n = read(c, back + got, sizeof back - 1 - got)) > 0) got += n;
        back[got] = 0;
        printf("client: sent %zu bytes (sum %lu); the server says \"%s\"\n", off, sum, back);
        close(c);
        _exit(0);
    }
    struct sockaddr_in peer; socklen_t plen = sizeof peer;
    int s = accept(l, (void *)&peer, &plen);
    CHECK(s);
    printf("accepted from %s, length %u\n", inet_ntoa(peer.sin_addr), (unsigned)plen);
    char peek[4];
    CHECK(recv(s, peek, 4, MSG_PEEK | MSG_WAITALL));
    char first[4];
    CHECK(recv(s, first, 4, MSG_WAITALL));
    printf("peeked what was read next: %s\n", memcmp(peek, first, 4) ? "no" : "yes");
    unsigned long sum = 0; size_t total = 4;
    for (int i = 0; i < 4; i++) sum += (unsigned char)first[i];
    char buf[8192]; ssize_t n;
    while ((n = read(s, buf, sizeof buf)) > 0) { total += n; for (ssize_t i = 0; i < n; i++) sum += (unsigned char)buf[i]; }
    CHECK(n);
    printf("server: read %zu bytes (sum %lu) up to the end of the stream\n", total, sum);
    char msg[64];
    int m = snprintf(msg, sizeof msg, "got %zu", total);
    CHECK(write(s, msg, m));
    close(s);
    int st; waitpid(pid, &st, 0);
    close(l);
}

static void dual_stack(void) {
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK(l);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any};
    CHECK(bind(l, (void *)&a6, sizeof a6));
    CHECK(listen(l, 4));
    int port = port_of(l);
    int c = connect4(port);
    CHECK(c);
    struct sockaddr_in6 peer; socklen_t plen = sizeof peer;
    int s = accept(l, (void *)&peer, &plen);
    CHECK(s);
    char text[64];
    inet_ntop(AF_INET6, &peer.sin6_addr, text, sizeof text);
    printf("IPv6 listener, IPv4 client: %s (length %u)\n", text, (unsigned)plen);
    struct sockaddr_in6 me; socklen_t mlen = sizeof me;
    CHECK(getsockname(s, (void *)&me, &mlen));
    inet_ntop(AF_INET6, &me.sin6_addr, text, sizeof text);
    printf("  its own end: %s, same port %s\n", text, ntohs(me.sin6_port) == port ? "yes" : "no");
    close(c); close(s);
    int c6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_loopback};
    CHECK(connect(c6, (void *)&to, sizeof to));
    s = accept(l, (void *)&peer, &plen);
    CHECK(s);
    inet_ntop(AF_INET6, &peer.sin6_addr, text, sizeof text);
    CHECK(write(c6, "six", 3));
    char b[8] = {0};
    CHECK(read(s, b, sizeof b - 1));
    printf("IPv6 client from %s says %s\n", text, b);
    int v6only = 1;
    int x = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK(setsockopt(x, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only));
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);
    int r = connect(x, (void *)&mapped, sizeof mapped);
    printf("IPV6_V6ONLY socket to ::ffff:127.0.0.1: %s\n", r < 0 ? err(errno) : "connected");
    close(x); close(c6); close(s); close(l);
}

static void readiness(void) {
    int l = listener4(0, 0);
    int port = port_of(l);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev));
    struct epoll_event out[4];
    printf("epoll, nobody connecting: %d ready\n", epoll_wait(ep, out, 4, 0));
    int c = connect4(port);
    CHECK(c);
    int n = epoll_wait(ep, out, 4, 1000);
    printf("epoll, a client: %d ready, the listener %s\n", n, n == 1 && out[0].data.fd == l ? "yes" : "no");
    int flags = fcntl(l, F_GETFL);
    CHECK(fcntl(l, F_SETFL, flags | O_NONBLOCK));
    int s = accept(l, 0, 0);
    CHECK(s);
    int s2 = accept(l, 0, 0);
    printf("accept again, non-blocking: %s\n", s2 < 0 ? err(errno) : "a connection?");
    struct pollfd p = {.fd = s, .events = POLLIN | POLLOUT | POLLRDHUP};
    CHECK(poll(&p, 1, 0));
    printf("poll, fresh connection: %s%s%s\n", p.revents & POLLIN ? "IN " : "", p.revents & POLLOUT ? "OUT " : "",
           p.revents & POLLRDHUP ? "RDHUP" : "");
    CHECK(write(c, "hello", 5));
    fd_set rd; FD_ZERO(&rd); FD_SET(s, &rd);
    struct timeval tv = {1, 0};
    int k = select(s + 1, &rd, 0, 0, &tv);
    int avail = 0;
    CHECK(ioctl(s, FIONREAD, &avail));
    printf("select after a write: %d ready, FIONREAD %d\n", k, avail);
    CHECK(shutdown(c, SHUT_WR));
    poll(&p, 1, 1000);
    printf("poll after the peer's shutdown: %s%s%s\n", p.revents & POLLIN ? "IN " : "", p.revents & POLLOUT ? "OUT " : "",
           p.revents & POLLRDHUP ? "RDHUP" : "");
    char b[16];
    ssize_t r1 = read(s, b, sizeof b), r2 = read(s, b, sizeof b);
    printf("reads: %zd then %zd\n", r1, r2);
    close(c); close(s); close(l); close(ep);
    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    p.fd = fresh; p.events = POLLIN | POLLOUT;
    poll(&p, 1, 0);
    printf("poll, an unconnected TCP socket: %s%s%s\n", p.revents & POLLOUT ? "OUT " : "", p.revents & POLLHUP ? "HUP " : "",
           p.revents & POLLIN ? "IN" : "");
    close(fresh);
}

static void refusals(void) {
    int l = listener4(0, 0);
    int port = port_of(l);
    close(l);
    int c = connect4(port);
    printf("connect to a closed port: %s\n", c < 0 ? err(errno) : "connected?");
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r = connect(nb, (void *)&a, sizeof a);
    int e = r < 0 ? errno : 0;
    if (e == EINPROGRESS) {
        struct pollfd p = {.fd = nb, .events = POLLOUT};
        poll(&p, 1, 1000);
        socklen_t el = sizeof e;
        getsockopt(nb, SOL_SOCKET, SO_ERROR, &e, &el);
    }
    printf("non-blocking connect to it: %s in the end\n", err(e));
    close(nb);
    l = listener4(0, 0);
    port = port_of(l);
    nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    a.sin_port = htons(port);
    r = connect(nb, (void *)&a, sizeof a);
    e = r < 0 ? errno : 0;
    struct pollfd p = {.fd = nb, .events = POLLOUT};
    poll(&p, 1, 1000);
    socklen_t el = sizeof e;
    getsockopt(nb, SOL_SOCKET, SO_ERROR, &e, &el);
    r = connect(nb, (void *)&a, sizeof a);
    printf("non-blocking connect to a listener: SO_ERROR %s, again: %s\n", err(e), r < 0 ? err(errno) : "0");
    close(nb); close(l);
    int u = socket(AF_INET, SOCK_STREAM, 0);
    r = send(u, "x", 1, MSG_NOSIGNAL);
    printf("send on an unconnected TCP socket: %s\n", r < 0 ? err(errno) : "sent?");
    close(u);
}

static void reuse(void) {
    int l = listener4(0, 1);
    int port = port_of(l);
    int c = connect4(port);
    int s = accept(l, 0, 0);
    close(s);               /* the server closes first: its end waits in TIME_WAIT */
    char b[4];
    CHECK(read(c, b, sizeof b));
    close(c);
    close(l);
    usleep(20000);
    int x = listener4(port, 0);
    printf("listen again without SO_REUSEADDR (the old one had it): %s\n", x < 0 ? err(errno) : "ok");
    if (x >= 0) close(x);
    x = listener4(port, 1);
    printf("listen again with SO_REUSEADDR: %s\n", x < 0 ? err(errno) : "ok");
    int y = listener4(port, 1);
    printf("a second listener on it, SO_REUSEADDR too: %s\n", y < 0 ? err(errno) : "ok");
    if (x >= 0) close(x);
    if (y >= 0) close(y);
}

static void options(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int v; socklen_t n = sizeof v;
    CHECK(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &n));
    printf("SO_TYPE %d, ", v);
    v = 4096;
    CHECK(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
    n = sizeof v;
    CHECK(getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &n));
    printf("SO_RCVBUF set 4096 reads %d, ", v);
    v = 1;
    CHECK(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v));
    n = sizeof v;
    CHECK(getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &n));
    printf("TCP_NODELAY %d, ", v);
    n = sizeof v;
    CHECK(getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &n));
    printf("SO_ACCEPTCONN %d\n", v);
    struct timeval tv = {0, 100000};
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(u, (void *)&a, sizeof a));
    char b[8];
    ssize_t r = recv(u, b, sizeof b, 0);
    printf("recv with SO_RCVTIMEO and nothing sent: %s\n", r < 0 ? err(errno) : "data?");
    close(u); close(s);
}

static void udp(void) {
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(a, (void *)&lo, sizeof lo));
    CHECK(bind(b, (void *)&lo, sizeof lo));
    struct sockaddr_in to = lo;
    to.sin_port = htons(port_of(b));
    CHECK(sendto(a, "datagram one", 12, 0, (void *)&to, sizeof to));
    CHECK(sendto(a, "two", 3, 0, (void *)&to, sizeof to));
    char buf[64];
    struct sockaddr_in from; socklen_t fl = sizeof from;
    ssize_t n = recvfrom(b, buf, 8, 0, (void *)&from, &fl);
    printf("udp: %zd bytes \"%.*s\" from the sender's port %s\n", n, (int)n, buf,
           ntohs(from.sin_port) == port_of(a) ? "yes" : "no");
    n = recv(b, buf, sizeof buf, MSG_TRUNC);
    printf("udp: then %zd bytes\n", n);
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    int closed = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(bind(closed, (void *)&lo, sizeof lo));
    struct sockaddr_in gone = lo;
    gone.sin_port = htons(port_of(closed));
    close(closed);
    CHECK(connect(c, (void *)&gone, sizeof gone));
    n = send(c, "anyone?", 7, 0);
    printf("udp: send to a port nobody has: %zd\n", n);
    struct pollfd p = {.fd = c, .events = POLLIN};
    poll(&p, 1, 1000);
    n = recv(c, buf, sizeof buf, 0);
    printf("udp: then recv: %s, and again: ", n < 0 ? err(errno) : "data?");
    n = recv(c, buf, sizeof buf, MSG_DONTWAIT);
    printf("%s\n", n < 0 ? err(errno) : "data?");
    int small = 2048;
    CHECK(setsockopt(b, SOL_SOCKET, SO_RCVBUF, &small, sizeof small));
    int sent = 0, got = 0;
    memset(buf, 'u', sizeof buf);
    for (int i = 0; i < 50; i++) if (sendto(a, buf, 64, 0, (void *)&to, sizeof to) == 64) sent++;
    while (recv(b, buf, sizeof buf, MSG_DONTWAIT) > 0) got++;
    printf("udp: 50 datagrams into a small SO_RCVBUF: %d sent, some kept %s, some dropped %s\n", sent,
           got > 0 ? "yes" : "no", got < sent ? "yes" : "no");
    n = send(a, "x", 1, 0);
    printf("udp: send without a destination: %s\n", n < 0 ? err(errno) : "sent?");
    close(a); close(b); close(c);
}

static void names(void) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    int r = getaddrinfo("127.0.0.1", "80", &hints, &res);
    if (r == 0) {
        printf("getaddrinfo 127.0.0.1: %s port %d\n", inet_ntoa(((struct sockaddr_in *)res->ai_addr)->sin_addr),
               ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port));
        freeaddrinfo(res);
    }
    r = getaddrinfo("localhost", "80", &hints, &res);
    if (r == 0) {
        printf("getaddrinfo localhost: %s\n", inet_ntoa(((struct sockaddr_in *)res->ai_addr)->sin_addr));
        freeaddrinfo(res);
    } else {
        printf("getaddrinfo localhost: %s\n", gai_strerror(r));
    }
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    transfer();
    dual_stack();
    readiness();
    refusals();
    reuse();
    options();
    udp();
    names();
    return 0;
}
