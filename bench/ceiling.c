/* The ceiling: the least a server can do to answer the benchmark's requests over the NestJS TCP wire
 * format, so that the figures of nestc and NestJS can be read against what the machine allows.
 *
 *   ceiling [--port P] [--host H]      (P 0 = any free port)
 *
 * One thread, epoll, non-blocking sockets. It frames `<length>#<json>` (length in UTF-16 units, as
 * NestJS counts), finds the top-level "id" of each packet without building any JSON, and answers every
 * request with the same reply {"response":6,"isDisposed":true,"id":<id>}; packets without an id are
 * events and get nothing. All replies to one read go out in one write. It never looks at the pattern or
 * the data beyond what finding the id needs: whatever a real server adds costs at least this much.
 * Malformed input closes the connection; nothing a peer sends can crash it.
 * Prints "listening on port N" once it accepts connections; SIGINT/SIGTERM end it.
 */
#define _GNU_SOURCE /* accept4: one call per connection instead of accept + fcntl */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* A frame may not declare more than NestJS's default maxBufferSize (UTF-16 units); a peer buffering
 * more than that many bytes of one frame is cut off. */
#define MAX_UNITS 134217728LL
#define MAX_BUFFERED ((size_t)4 * 134217728)
/* Bytes read per read(2); the figure libuv uses for TCP. */
#define READ_SIZE 65536

typedef struct conn {
    int fd;
    char *in; /* the unparsed tail of the stream (an incomplete frame), or NULL */
    size_t in_len, in_cap;
    char *out; /* replies the socket did not take yet; reading stops until they are sent */
    size_t out_len, out_off, out_cap;
} conn;

static volatile sig_atomic_t stopping;
static char rbuf[READ_SIZE];
/* The replies to one read, sent with one write. */
static char *wbuf;
static size_t wlen, wcap;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static int reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need) n *= 2;
    char *p = realloc(*buf, n);
    if (!p) return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* Advances over `units` UTF-16 code units of UTF-8 text in s[0..n). Returns the byte count, or -1 if the
 * text ends first. ASCII runs are taken eight bytes at a time: they are all the benchmark sends. */
static long long utf16_span(const char *s, size_t n, long long units) {
    size_t i = 0;
    while (units > 0) {
        while (units >= 8 && i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
            units -= 8;
        }
        if (units == 0) break;
        if (i >= n) return -1;
        unsigned char c = (unsigned char)s[i];
        /* Characters outside the BMP are two units (a surrogate pair) in four bytes; everything else is
         * one unit. Stray continuation bytes count as one unit each, so bad UTF-8 cannot stall us. */
        size_t len = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        units -= len == 4 ? 2 : 1;
        i += len;
    }
    return i <= n ? (long long)i : -1;
}

/* The end of the JSON string whose opening quote is at s[i]: the index just past its closing quote, or n. */
static size_t string_end(const char *s, size_t n, size_t i) {
    for (size_t j = i + 1; j < n;) {
        const char *q = memchr(s + j, '"', n - j);
        if (!q) return n;
        size_t k = (size_t)(q - s), bs = 0;
        while (k - bs > i + 1 && s[k - bs - 1] == '\\') bs++;
        if (!(bs & 1)) return k + 1;
        j = k + 1;
    }
    return n;
}

/* Finds the value of the top-level key "id" in the JSON object s[0..n), as raw text. Returns 0 when there
 * is none (an event). Nested objects and arrays are skipped by counting brackets outside strings. */
static int find_id(const char *s, size_t n, const char **id, size_t *id_len) {
    int depth = 0, key_next = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') {
            size_t e = string_end(s, n, i);
            if (depth == 1 && key_next) {
                key_next = 0;
                if (e - i == 4 && !memcmp(s + i, "\"id\"", 4)) {
                    size_t v = e;
                    while (v < n &&
                           (s[v] == ' ' || s[v] == '\t' || s[v] == '\n' || s[v] == '\r' || s[v] == ':'))
                        v++;
                    if (v >= n) return 0;
                    size_t ve;
                    if (s[v] == '"') {
                        ve = string_end(s, n, v);
                    } else {
                        ve = v;
                        while (ve < n && s[ve] != ',' && s[ve] != '}' && s[ve] != ' ' && s[ve] != '\n') ve++;
                    }
                    if (ve == v) return 0;
                    *id = s + v;
                    *id_len = ve - v;
                    return 1;
                }
            }
            i = e - 1;
        } else if (c == '{' || c == '[') {
            depth++;
            key_next = depth == 1 && c == '{';
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            key_next = 1;
        }
    }
    return 0;
}

static int append_reply(const char *id, size_t id_len) {
    static const char head[] = "{\"response\":6,\"isDisposed\":true,\"id\":";
    size_t body = sizeof head - 1 + id_len + 1;
    if (reserve(&wbuf, &wcap, wlen + body + 24)) return -1;
    /* The id is copied as received; a string id may hold non-ASCII text, so count its UTF-16 units. */
    long long units = (long long)(body - id_len);
    for (size_t i = 0; i < id_len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x80 || c >= 0xC0) units += c >= 0xF0 ? 2 : 1;
    }
    wlen += (size_t)sprintf(wbuf + wlen, "%lld#", units);
    memcpy(wbuf + wlen, head, sizeof head - 1);
    wlen += sizeof head - 1;
    memcpy(wbuf + wlen, id, id_len);
    wlen += id_len;
    wbuf[wlen++] = '}';
    return 0;
}

/* Parses every complete frame in s[0..n) and queues the replies. Returns the bytes consumed, or -1 to
 * close the connection (bad frame, out of memory). */
static long long parse(const char *s, size_t n) {
    size_t pos = 0;
    while (pos < n) {
        long long units = 0;
        size_t i = pos;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            units = units * 10 + (s[i] - '0');
            if (units > MAX_UNITS) return -1;
            i++;
        }
        if (i == n) return (long long)pos; /* the prefix is not complete yet */
        if (s[i] != '#' || i == pos || units == 0) return -1;
        i++;
        long long len = utf16_span(s + i, n - i, units);
        if (len < 0) return (long long)pos;
        const char *id;
        size_t id_len;
        if (find_id(s + i, (size_t)len, &id, &id_len) && append_reply(id, id_len)) return -1;
        pos = i + (size_t)len;
    }
    return (long long)pos;
}

static void conn_close(int ep, conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Sends the queued replies; the unsent rest waits in c->out for EPOLLOUT. Returns -1 on a dead socket. */
static int flush(int ep, conn *c) {
    if (wlen) {
        ssize_t w = send(c->fd, wbuf, wlen, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        size_t sent = w < 0 ? 0 : (size_t)w;
        if (sent < wlen) {
            if (reserve(&c->out, &c->out_cap, c->out_len + wlen - sent)) return -1;
            memcpy(c->out + c->out_len, wbuf + sent, wlen - sent);
            c->out_len += wlen - sent;
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
        wlen = 0;
    }
    return 0;
}

static int on_readable(int ep, conn *c) {
    char *buf;
    size_t have = c->in_len;
    /* Without a pending tail, read into the shared buffer: an idle connection then owns no buffer. */
    if (have == 0) {
        buf = rbuf;
    } else {
        if (reserve(&c->in, &c->in_cap, have + READ_SIZE)) return -1;
        buf = c->in;
    }
    ssize_t r = read(c->fd, buf + have, have ? c->in_cap - have : READ_SIZE);
    if (r == 0) return -1;
    if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    size_t n = have + (size_t)r;
    long long used = parse(buf, n);
    if (used < 0) return -1;
    size_t rest = n - (size_t)used;
    if (rest > MAX_BUFFERED) return -1;
    if (buf == rbuf) {
        if (rest) {
            if (reserve(&c->in, &c->in_cap, rest)) return -1;
            memcpy(c->in, rbuf + used, rest);
        }
    } else if (used) {
        memmove(c->in, c->in + used, rest);
    }
    c->in_len = rest;
    return flush(ep, c);
}

static int on_writable(int ep, conn *c) {
    ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    c->out_off += (size_t)w;
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    return 0;
}

static void on_accept(int ep, int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or out of descriptors: try again on the next wake-up */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (!c || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
    }
}

static int usage(void) {
    fprintf(stderr, "usage: ceiling [--port P] [--host H]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--host")) {
            host = argv[++i];
        } else if (!strcmp(argv[i], "--port")) {
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 0 || port > 65535) return usage();
        } else {
            return usage();
        }
    }

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return usage();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t alen = sizeof addr;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 4096) ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
        perror("ceiling: listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL marks the listener */
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev)) {
        perror("ceiling: epoll");
        return 1;
    }
    printf("listening on port %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct epoll_event evs[256];
    while (!stopping) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("ceiling: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                on_accept(ep, lfd);
                continue;
            }
            int rc = evs[i].events & EPOLLOUT ? on_writable(ep, c) : on_readable(ep, c);
            /* EPOLLERR/EPOLLHUP with nothing left to read also end in a failed read or send. */
            if (rc) conn_close(ep, c);
        }
    }
    return 0;
}
