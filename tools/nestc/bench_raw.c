/* nestc bench, raw engine: a single-threaded epoll load generator for tcp:// servers.
 *
 * Exists because the servers it measures answer more than a million requests a second on one core, far
 * more than a general-purpose client can produce; this engine spends a few dozen nanoseconds per reply.
 * How:
 * - the request frame (and the event frame) is encoded once; its id is "b" + 20 digits whose last digits
 *   are the in-flight slot number, so sending a request is a memcpy and a patch of those digits, and the
 *   length prefix never changes;
 * - every connection keeps exactly --inflight requests outstanding: each reply frees its slot, and all
 *   the slots freed by one read are refilled into one write;
 * - replies are cut and scanned by bench_wire.c, zero-copy; the monotonic clock is read once per read()
 *   for the replies it brought, and once for the requests queued after it;
 * - sockets are non-blocking with TCP_NODELAY, level-triggered epoll, partial writes are kept for
 *   EPOLLOUT, large frames accumulate in a per-connection tail buffer scanned only once;
 * - at most MAX_OPENING connections are opening at once, and a connection is open once its first reply
 *   arrived: connect() completes as soon as the server's kernel queued the connection, so a burst of
 *   1000 overflows a NestJS accept queue (backlog 511) and leaves connections silent for seconds, and a
 *   busy Node.js server accepts only a few connections a second. So PRIME opens the connections with
 *   one probe request each (no events) and no other traffic, and the warmup, with the full load, starts
 *   when every connection has been answered.
 * Linux only. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "bench_wire.h"
#include "codec/envelope.h"
#include "codec/frame.h"
#include "core/route.h"
#include "core/url.h"
#include "util/buf.h"

#define RBUF_SIZE (256 * 1024)        /* shared read buffer */
#define MAX_EVENTS 512                /* epoll events per round */
#define MAX_OPENING 128               /* connections connecting or awaiting their first reply, at once */
#define DRAIN_NS (5 * 1000000000ull)  /* a request not answered by window end + this is an error */
#define PRIME_NS (10 * 1000000000ull) /* PRIME gives up after this long without progress */
#define ID_DIGITS 20
static const char ID_PLACEHOLDER[] = "b00000000000000000000"; /* "b" + ID_DIGITS zeros */

enum { PRIME, WARMUP, WINDOW, DRAIN };
enum { C_IDLE, C_CONNECTING, C_OPENING, C_OPEN, C_DEAD }; /* C_OPENING: connected, not answered yet */

typedef struct rconn {
    int fd;
    int state;   /* C_* */
    int pollout; /* EPOLLOUT is registered */
    /* bytes to write: w[woff..wlen) */
    char *w;
    size_t woff, wlen, wcap;
    /* the incomplete frame at the end of the last read */
    char *t;
    size_t tlen, tcap;
    size_t tneed; /* lower bound of the bytes that frame takes (0: unknown) */
    bw_progress pg;
    uint64_t *sent;  /* per slot: send time in ns, 0 = free */
    uint32_t *freeq; /* slots to refill */
    uint32_t nfree;
    uint32_t outstanding;
} rconn;

typedef struct raw {
    const bench_cfg *cfg;
    bench_stats *st;
    int ep;
    rconn *c;
    int n, alive, closed_by_peer;
    int next_idle;        /* the next connection to start */
    int starting;         /* connections C_CONNECTING or C_OPENING */
    int unanswered;       /* connections alive and not C_OPEN */
    int throttle;         /* at most MAX_OPENING starting at once (off once PRIME gave up) */
    int fatal;            /* errno: a connection could not be made during PRIME */
    uint64_t progress_ns; /* last connect or first reply */
    const struct addrinfo *ai;
    int phase;
    nc_buf req;      /* one request frame with the placeholder id */
    size_t slot_off; /* offset of the slot digits in req */
    nc_buf ev;       /* one event frame (empty when events == 0) */
    int idw;         /* slot digits */
    char *idtab;     /* inflight * idw digits */
    char *rbuf;
    uint64_t outstanding; /* over all connections */
    char first_error[160];
} raw;

/* ---- frames ---------------------------------------------------------------------------------------- */

static int encode_frame(nc_buf *frame, const json_t *pattern, const json_t *data, const json_t *metadata,
                        const char *id) {
    nc_buf body = NC_BUF_INIT;
    int r = nc_envelope_write_request(&body, pattern, data, metadata, id, NULL);
    if (!r) r = nc_frame_append(frame, body.data, body.len);
    nc_buf_free(&body);
    return r;
}

static int build_frames(raw *R) {
    const bench_cfg *cfg = R->cfg;
    int r = encode_frame(&R->req, cfg->pattern, cfg->data, cfg->metadata, ID_PLACEHOLDER);
    if (r) return r;
    /* the id is the last member: ..."id":"b000..."} */
    size_t idlen = sizeof ID_PLACEHOLDER - 1;
    if (R->req.len < idlen + 2 || memcmp(R->req.data + R->req.len - 2 - idlen, ID_PLACEHOLDER, idlen))
        return NC_EINVAL;
    R->idw = 1;
    for (long long m = cfg->inflight - 1; m >= 10; m /= 10) R->idw++;
    R->slot_off = R->req.len - 2 - (size_t)R->idw;
    R->idtab = malloc((size_t)cfg->inflight * (size_t)R->idw);
    if (!R->idtab) return NC_ENOMEM;
    for (int s = 0; s < cfg->inflight; s++) {
        int v = s;
        for (int d = R->idw - 1; d >= 0; d--, v /= 10)
            R->idtab[(size_t)s * (size_t)R->idw + (size_t)d] = (char)('0' + v % 10);
    }
    if (cfg->events > 0) {
        /* NestJS TCP clients send the event's normalised route string as its pattern */
        char *route = NULL;
        r = nc_route_from_value(cfg->event_pattern, &route);
        if (r) return r;
        json_t *rp = json_string(route);
        free(route);
        r = rp ? encode_frame(&R->ev, rp, cfg->event_data, cfg->metadata, NULL) : NC_ENOMEM;
        json_decref(rp);
    }
    return r;
}

/* Slot of a reply id, or -1 when it is not one of ours. */
static long slot_of(const raw *R, const char *id, size_t len) {
    if (len != ID_DIGITS + 1 || id[0] != 'b') return -1;
    size_t zeros = (size_t)(ID_DIGITS - R->idw);
    if (memcmp(id + 1, ID_PLACEHOLDER + 1, zeros)) return -1;
    long v = 0;
    for (size_t i = 1 + zeros; i < len; i++) {
        if (id[i] < '0' || id[i] > '9') return -1;
        v = v * 10 + (id[i] - '0');
    }
    return v < R->cfg->inflight ? v : -1;
}

/* ---- connections ----------------------------------------------------------------------------------- */

static void set_pollout(raw *R, rconn *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(R->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->pollout = on;
}

static void kill_conn(raw *R, rconn *c, const char *why) {
    if (c->state == C_DEAD) return;
    if (!R->first_error[0]) snprintf(R->first_error, sizeof R->first_error, "%s", why);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    if (c->state == C_CONNECTING || c->state == C_OPENING) R->starting--;
    if (c->state != C_OPEN) R->unanswered--;
    c->state = C_DEAD;
    R->alive--;
    R->closed_by_peer++;
    R->st->failures += c->outstanding;
    R->outstanding -= c->outstanding;
    c->outstanding = 0;
    c->nfree = 0;
}

static int reserve(char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need) n *= 2;
    char *q = realloc(*p, n);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* Queues the requests of up to `max` free slots, each preceded by its events when `events`. */
static void refill_n(raw *R, rconn *c, uint64_t now, uint32_t max, int events) {
    if (!c->nfree || c->state == C_DEAD || R->phase == DRAIN) return;
    uint32_t n = c->nfree < max ? c->nfree : max;
    int ne = events ? R->cfg->events : 0;
    size_t per = R->req.len + (size_t)ne * R->ev.len;
    if (c->woff == c->wlen) {
        c->woff = c->wlen = 0;
    } else if (c->woff > c->wcap / 2) {
        memmove(c->w, c->w + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
    }
    if (reserve(&c->w, &c->wcap, c->wlen + per * n)) {
        kill_conn(R, c, "out of memory");
        return;
    }
    char *dst = c->w + c->wlen;
    for (uint32_t i = c->nfree - n; i < c->nfree; i++) {
        uint32_t s = c->freeq[i];
        for (int k = 0; k < ne; k++, dst += R->ev.len) memcpy(dst, R->ev.data, R->ev.len);
        memcpy(dst, R->req.data, R->req.len);
        memcpy(dst + R->slot_off, R->idtab + (size_t)s * (size_t)R->idw, (size_t)R->idw);
        dst += R->req.len;
        c->sent[s] = now;
    }
    c->wlen = (size_t)(dst - c->w);
    c->outstanding += n;
    R->outstanding += n;
    c->nfree -= n;
}

/* Keeps --inflight requests pending (from the warmup on; during PRIME only the one probe is). */
static void refill(raw *R, rconn *c, uint64_t now) {
    if (R->phase != PRIME) refill_n(R, c, now, UINT32_MAX, 1);
}

static void flush(raw *R, rconn *c) {
    while (c->state != C_DEAD && c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->w + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
            if (R->st->counting) R->st->bytes_out += (uint64_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            char why[128];
            snprintf(why, sizeof why, "write: %s", strerror(errno));
            kill_conn(R, c, why);
            return;
        }
    }
    if (c->state == C_DEAD) return;
    int pending = c->woff < c->wlen;
    if (!pending) c->woff = c->wlen = 0;
    if (pending != c->pollout) set_pollout(R, c, pending);
}

/* Handles the complete frames in buf[0..have); returns the bytes consumed, or -1 on a protocol error. */
static long parse(raw *R, rconn *c, const char *buf, size_t have, uint64_t now) {
    bench_stats *st = R->st;
    size_t off = 0;
    c->tneed = 0;
    while (off < have) {
        const char *body;
        size_t blen, need;
        long fl = bw_next_frame(buf + off, have - off, &c->pg, &body, &blen, &need);
        if (fl < 0) return -1;
        if (fl == 0) {
            c->tneed = need;
            break;
        }
        off += (size_t)fl;
        bw_reply rp;
        if (bw_parse_reply(body, blen, &rp)) return -1;
        if (!rp.final || !rp.id) continue; /* a stream value: wait for the end */
        long s = slot_of(R, rp.id, rp.id_len);
        if (s < 0 || !c->sent[s]) continue; /* not ours, or already done */
        uint64_t t0 = c->sent[s];
        if (c->state == C_OPENING) {
            c->state = C_OPEN;
            R->starting--;
            R->unanswered--;
            R->progress_ns = now;
        }
        c->sent[s] = 0;
        c->freeq[c->nfree++] = (uint32_t)s;
        c->outstanding--;
        R->outstanding--;
        if (st->counting) {
            st->requests++;
            st->events += (uint64_t)R->cfg->events;
            if (rp.err) st->errors++;
            bench_hist_add(&st->hist, now > t0 ? now - t0 : 0);
        }
    }
    return (long)off;
}

static void on_readable(raw *R, rconn *c) {
    for (int round = 0; round < 64 && c->state != C_DEAD; round++) {
        char *buf;
        size_t have, cap;
        int in_tail;
        if (c->tlen == 0 || (c->tlen <= RBUF_SIZE / 4 && c->tneed <= RBUF_SIZE)) {
            /* small tail: move it in front of the shared buffer */
            if (c->tlen) memcpy(R->rbuf, c->t, c->tlen);
            buf = R->rbuf, have = c->tlen, cap = RBUF_SIZE, in_tail = 0;
            c->tlen = 0;
        } else {
            /* a large frame: read straight into the tail, grown to hold it */
            size_t want = c->tlen + RBUF_SIZE;
            if (c->tneed > want) want = c->tneed;
            if (reserve(&c->t, &c->tcap, want)) {
                kill_conn(R, c, "out of memory");
                return;
            }
            buf = c->t, have = c->tlen, cap = c->tcap, in_tail = 1;
        }
        ssize_t n = recv(c->fd, buf + have, cap - have, 0);
        int err = n < 0 ? errno : 0;
        size_t room = cap - have;
        if (n > 0) {
            have += (size_t)n;
            if (R->st->counting) R->st->bytes_in += (uint64_t)n;
        }
        long used = parse(R, c, buf, have, bench_now_ns());
        if (used < 0) {
            kill_conn(R, c, "malformed reply frame");
            return;
        }
        size_t left = have - (size_t)used;
        if (in_tail) {
            memmove(c->t, c->t + used, left);
        } else if (left) {
            if (reserve(&c->t, &c->tcap, left > c->tneed ? left : c->tneed)) {
                kill_conn(R, c, "out of memory");
                return;
            }
            memcpy(c->t, buf + used, left);
        }
        c->tlen = left;
        if (n == 0) {
            kill_conn(R, c, "connection closed by the server");
            return;
        }
        if (n < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
            char why[128];
            snprintf(why, sizeof why, "read: %s", strerror(err));
            kill_conn(R, c, why);
            return;
        }
        if (n < 0 || (size_t)n < room) break; /* drained */
    }
    refill(R, c, bench_now_ns());
    flush(R, c);
}

/* ---- setup ----------------------------------------------------------------------------------------- */

static int conn_alloc(raw *R, rconn *c) {
    size_t n = (size_t)R->cfg->inflight;
    c->fd = -1;
    c->sent = calloc(n, sizeof *c->sent);
    c->freeq = malloc(n * sizeof *c->freeq);
    if (!c->sent || !c->freeq) return -1;
    for (size_t i = 0; i < n; i++) c->freeq[i] = (uint32_t)i;
    c->nfree = (uint32_t)n;
    return 0;
}

static int open_socket(const struct addrinfo *ai, int *out) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *out = fd;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return 0;
    if (errno == EINPROGRESS) return 1;
    int e = errno;
    close(fd);
    *out = -1;
    return -e;
}

/* Connected: send the first requests. */
static void on_connected(raw *R, rconn *c) {
    c->state = C_OPENING;
    R->progress_ns = bench_now_ns();
    c->pollout = 1; /* registered with EPOLLOUT for the connect: flush() drops it when all is written */
    refill_n(R, c, R->progress_ns, 1, 0); /* one probe request, no events */
    flush(R, c);
}

static void connect_failed(raw *R, rconn *c, int err) {
    if (R->phase == PRIME && !R->fatal) R->fatal = err;
    kill_conn(R, c, strerror(err));
}

static void start_connect(raw *R, rconn *c) {
    c->state = C_CONNECTING;
    R->starting++;
    int r = open_socket(R->ai, &c->fd);
    if (r < 0) {
        connect_failed(R, c, -r);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(R->ep, EPOLL_CTL_ADD, c->fd, &ev)) {
        connect_failed(R, c, errno);
        return;
    }
    if (r == 0) on_connected(R, c);
}

static void finish_connect(raw *R, rconn *c) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl)) soerr = errno;
    if (soerr)
        connect_failed(R, c, soerr);
    else
        on_connected(R, c);
}

/* Starts connections while fewer than MAX_OPENING are starting (all the rest once throttling is off). */
static void start_more(raw *R) {
    while (!R->fatal && R->next_idle < R->n && (!R->throttle || R->starting < MAX_OPENING))
        start_connect(R, &R->c[R->next_idle++]);
}

static int resolve(const char *url, struct addrinfo **out) {
    nc_url u;
    char err[160] = "";
    if (nc_url_parse(&u, url, err, sizeof err)) {
        fprintf(stderr, "nestc bench: bad URL %s: %s\n", url, err);
        return 2;
    }
    int ok = !strcmp(u.scheme, "tcp") && u.host[0] && u.port > 0;
    if (!ok) {
        fprintf(stderr, "nestc bench: the raw engine needs a tcp://host:port URL, got %s\n", url);
        nc_url_free(&u);
        return 2;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", u.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int r = getaddrinfo(u.host, port, &hints, out);
    if (r) fprintf(stderr, "nestc bench: cannot resolve %s: %s\n", u.host, gai_strerror(r));
    nc_url_free(&u);
    return r ? 2 : 0;
}

static void raw_free(raw *R) {
    for (int i = 0; R->c && i < R->n; i++) {
        rconn *c = &R->c[i];
        if (c->fd >= 0) close(c->fd);
        free(c->w);
        free(c->t);
        free(c->sent);
        free(c->freeq);
    }
    free(R->c);
    free(R->idtab);
    free(R->rbuf);
    nc_buf_free(&R->req);
    nc_buf_free(&R->ev);
    if (R->ep >= 0) close(R->ep);
}

/* ---- the run --------------------------------------------------------------------------------------- */

/* PRIME: opens the connections; returns the next deadline, or 0 once PRIME is over. */
static uint64_t prime(raw *R, uint64_t now) {
    start_more(R);
    if (R->fatal) return 0;
    if (R->unanswered > 0 && now - R->progress_ns < PRIME_NS) return R->progress_ns + PRIME_NS;
    if (R->unanswered > 0) {
        int connecting = 0;
        for (int i = 0; i < R->n; i++) connecting += R->c[i].state == C_CONNECTING;
        if (connecting && R->alive == R->unanswered) { /* nothing connected and answered at all */
            R->fatal = ETIMEDOUT;
            return 0;
        }
        fprintf(stderr, "nestc bench: %d connection(s) not answered after %.0f s, starting anyway\n",
                R->unanswered, PRIME_NS / 1e9);
        R->throttle = 0;
        start_more(R);
    }
    return 0;
}

/* Returns 0, or an errno value when the connections could not be made. */
static int run_loop(raw *R) {
    const bench_cfg *cfg = R->cfg;
    bench_stats *st = R->st;
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = bench_now_ns(), t_next = 0, t_start = now;
    R->phase = PRIME;
    R->throttle = 1;
    R->progress_ns = now;
    for (;;) {
        now = bench_now_ns();
        if (R->phase == PRIME) {
            t_next = prime(R, now);
            if (R->fatal) return R->fatal;
            if (!t_next) {
                if (cfg->verbose)
                    fprintf(stderr, "nestc bench: %d connection(s) open after %.3f s\n", R->alive,
                            (now - t_start) / 1e9);
                R->phase = WARMUP;
                t_next = now + (uint64_t)(cfg->warmup_s * 1e9);
                for (int i = 0; i < R->n; i++) {
                    refill(R, &R->c[i], now);
                    flush(R, &R->c[i]);
                }
            }
        }
        if (R->phase == WARMUP && (now >= t_next || R->alive == 0)) {
            bench_window_open(st, now);
            R->phase = WINDOW;
            t_next = now + (uint64_t)(cfg->duration_s * 1e9);
        }
        if (R->phase == WINDOW && (now >= t_next || R->alive == 0)) {
            bench_window_close(st, now);
            R->phase = DRAIN;
            t_next = now + DRAIN_NS;
        }
        if (R->phase == DRAIN && (R->outstanding == 0 || now >= t_next || R->alive == 0)) {
            if (cfg->verbose)
                fprintf(stderr, "nestc bench: drained after %.3f s\n", (now - st->t_close_ns) / 1e9);
            break;
        }
        int tmo = now >= t_next ? 0 : (int)((t_next - now + 999999) / 1000000);
        int k = epoll_wait(R->ep, evs, MAX_EVENTS, tmo);
        if (k < 0 && errno != EINTR) {
            perror("nestc bench: epoll_wait");
            break;
        }
        for (int i = 0; i < k; i++) {
            rconn *c = evs[i].data.ptr;
            if (c->state == C_CONNECTING)
                finish_connect(R, c);
            else if (c->state != C_DEAD && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                on_readable(R, c);
            else if (c->state != C_DEAD && (evs[i].events & EPOLLOUT))
                flush(R, c);
        }
    }
    st->failures += R->outstanding; /* not answered by the end of the drain */
    if (R->closed_by_peer)
        fprintf(stderr, "nestc bench: %d connection(s) lost, first: %s\n", R->closed_by_peer, R->first_error);
    if (R->outstanding)
        fprintf(stderr, "nestc bench: %llu request(s) unanswered %.0f s after the window\n",
                (unsigned long long)R->outstanding, DRAIN_NS / 1e9);
    return 0;
}

int bench_run_raw(const bench_cfg *cfg, bench_stats *st) {
    raw R = {0};
    R.cfg = cfg;
    R.st = st;
    R.ep = -1;
    R.n = cfg->connections;
    struct addrinfo *ai = NULL;
    if (resolve(cfg->url, &ai)) return 2;
    int rc = 2;
    if (build_frames(&R)) {
        fprintf(stderr, "nestc bench: cannot encode the request\n");
        goto out;
    }
    R.rbuf = malloc(RBUF_SIZE);
    R.c = calloc((size_t)R.n, sizeof *R.c);
    R.ep = epoll_create1(EPOLL_CLOEXEC);
    if (!R.rbuf || !R.c || R.ep < 0) {
        fprintf(stderr, "nestc bench: out of memory\n");
        goto out;
    }
    for (int i = 0; i < R.n; i++) {
        if (conn_alloc(&R, &R.c[i])) {
            fprintf(stderr, "nestc bench: out of memory\n");
            goto out;
        }
    }
    R.ai = ai;
    R.alive = R.unanswered = R.n;
    int e = run_loop(&R);
    if (e) {
        fprintf(stderr, "nestc bench: cannot connect to %s: %s\n", cfg->url, strerror(e));
        goto out;
    }
    rc = 0;
out:
    freeaddrinfo(ai);
    raw_free(&R);
    return rc;
}
