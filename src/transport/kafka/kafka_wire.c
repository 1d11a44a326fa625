/* Connections and wire bytes of librdkafka's broker sockets (io/wire.h, docs/observability.md).
 *
 * librdkafka reads and writes its sockets on its own threads, out of reach of the io layer's counters,
 * and it has no per-read hook. What it does have: connect_cb and closesocket_cb, called on its broker
 * threads when a socket connects and closes, with the handle's opaque (the server or client). So the
 * sockets are listed per owner as they connect, and their bytes
 * are read from the kernel (TCP_INFO: bytes received, bytes sent less retransmissions: TCP payload, TLS
 * records included) when the block is read and when a socket closes. Nothing is counted per read or
 * write; the statistics callback (statistics.interval.ms) would give the same bytes, but late (one
 * interval) and at the cost of a JSON document per handle each interval. Without TCP_INFO (not Linux)
 * the connections are counted and the bytes stay 0. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stddef.h>
#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h> /* TCP_INFO */
#endif

#include "nestc/error.h"
#include "transport/kafka/kafka.h"

#ifdef __linux__
/* The head of Linux's struct tcp_info (linux/tcp.h, an ABI only ever appended to) up to the byte
 * counters; glibc's copy stops before them, and linux/tcp.h cannot be included beside it. */
typedef struct kernel_tcp_info {
    uint8_t head[8];
    uint32_t u32s[24]; /* tcpi_rto .. tcpi_total_retrans */
    uint64_t pacing_rate, max_pacing_rate;
    uint64_t bytes_acked;    /* Linux 4.2 */
    uint64_t bytes_received; /* Linux 4.1 */
    uint32_t segs_out, segs_in, notsent_bytes, min_rtt, data_segs_in, data_segs_out;
    uint64_t delivery_rate, busy_time, rwnd_limited, sndbuf_limited;
    uint32_t delivered, delivered_ce;
    uint64_t bytes_sent;    /* Linux 4.19, retransmissions included */
    uint64_t bytes_retrans; /* Linux 4.19 */
} kernel_tcp_info;
_Static_assert(offsetof(kernel_tcp_info, bytes_acked) == 120, "struct tcp_info layout");
_Static_assert(offsetof(kernel_tcp_info, bytes_sent) == 200, "struct tcp_info layout");
#define HAS(f) (len >= offsetof(kernel_tcp_info, f) + sizeof(uint64_t))
#endif

/* Adds the bytes that crossed fd so far. */
static void socket_bytes(int fd, nc_wire_counts *c) {
#ifdef __linux__
    kernel_tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len)) return;
    if (HAS(bytes_received)) c->in += ti.bytes_received;
    if (HAS(bytes_retrans))
        c->out += ti.bytes_sent - ti.bytes_retrans;
    else if (HAS(bytes_acked))
        c->out += ti.bytes_acked; /* older kernels: what the broker acknowledged */
#else
    (void)fd, (void)c;
#endif
}

/* The sockets of one owner (a Kafka server or client: every handle whose opaque it is). */
typedef struct tracker {
    const void *owner; /* a key, never dereferenced */
    nc_wire_block *b;
    int *fds; /* the sockets open now */
    size_t n, cap;
    nc_wire_counts done; /* connections opened and closed, bytes of the closed sockets */
} tracker;

/* Every owner's tracker, under one lock: the callbacks run when a socket connects or closes (rare), the
 * probe when the figures are read. A callback finds its tracker by the handle's opaque, so a handle that
 * outlives its owner finds none and touches nothing of it. */
static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t lock;
static tracker **all;
static size_t nall, capall;

static void init_lock(void) {
    uv_mutex_init(&lock);
}

static tracker *find(const void *owner) {
    for (size_t i = 0; i < nall; i++)
        if (all[i]->owner == owner) return all[i];
    return NULL;
}

/* The block's probe (reading thread, the block's lock held; lock order: block, then ours). */
static void probe(void *arg, nc_wire_counts *c) {
    tracker *t = arg;
    uv_mutex_lock(&lock);
    c->in += t->done.in;
    c->out += t->done.out;
    c->opened += t->done.opened;
    c->closed += t->done.closed;
    c->closed_err += t->done.closed_err;
    for (size_t i = 0; i < t->n; i++) socket_bytes(t->fds[i], c);
    uv_mutex_unlock(&lock);
}

static int on_connect(int fd, const struct sockaddr *addr, int addrlen, const char *id, void *opaque) {
    (void)id;
    /* what librdkafka does without a connect_cb: a non-blocking connect, EINPROGRESS is success */
    if (connect(fd, addr, (socklen_t)addrlen) && errno != EINPROGRESS) return errno;
    uv_once(&once, init_lock);
    uv_mutex_lock(&lock);
    tracker *t = find(opaque);
    if (t && t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        int *v = realloc(t->fds, cap * sizeof *v);
        if (v) {
            t->fds = v;
            t->cap = cap;
        }
    }
    if (t && t->n < t->cap) { /* else connected, just not counted */
        t->fds[t->n++] = fd;
        t->done.opened++;
    }
    uv_mutex_unlock(&lock);
    return 0;
}

static int on_closesocket(int fd, void *opaque) {
    uv_once(&once, init_lock);
    uv_mutex_lock(&lock);
    tracker *t = find(opaque);
    for (size_t i = 0; t && i < t->n; i++) {
        if (t->fds[i] != fd) continue;
        socket_bytes(fd, &t->done);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        t->done.closed++;
        if (soerr) t->done.closed_err++;
        t->fds[i] = t->fds[--t->n];
        break;
    }
    /* closed under the lock: the probe never asks TCP_INFO of a descriptor number reused meanwhile */
    int r = close(fd) ? errno : 0;
    uv_mutex_unlock(&lock);
    return r;
}

void nc_kafka_wire_conf(rd_kafka_conf_t *c) {
    rd_kafka_conf_set_connect_cb(c, on_connect);
    rd_kafka_conf_set_closesocket_cb(c, on_closesocket);
}

int nc_kafka_wire_register(const void *owner, nc_wire_block *b) {
    if (!b) return 0;
    uv_once(&once, init_lock);
    tracker *t = calloc(1, sizeof *t);
    if (!t) return NC_ENOMEM;
    t->owner = owner;
    t->b = b;
    uv_mutex_lock(&lock);
    if (nall == capall) {
        size_t cap = capall ? capall * 2 : 8;
        tracker **v = realloc(all, cap * sizeof *v);
        if (!v) {
            uv_mutex_unlock(&lock);
            free(t);
            return NC_ENOMEM;
        }
        all = v;
        capall = cap;
    }
    all[nall++] = t;
    uv_mutex_unlock(&lock);
    nc_wire_block_probe(b, probe, t);
    return 0;
}

void nc_kafka_wire_unregister(const void *owner) {
    uv_once(&once, init_lock);
    uv_mutex_lock(&lock);
    tracker *t = find(owner);
    /* sockets still open belong to a handle that outlives its owner: no longer the owner's, counted as
     * closed, so the owner's open connections end at 0 */
    for (size_t i = 0; t && i < t->n; i++) {
        socket_bytes(t->fds[i], &t->done);
        t->done.closed++;
    }
    if (t) t->n = 0;
    uv_mutex_unlock(&lock);
    if (!t) return;
    /* the last figures go into the block (the probe takes our lock: not held here) */
    nc_wire_block_probe(t->b, NULL, NULL);
    uv_mutex_lock(&lock);
    for (size_t i = 0; i < nall; i++)
        if (all[i] == t) {
            all[i] = all[--nall];
            break;
        }
    uv_mutex_unlock(&lock);
    free(t->fds);
    free(t);
    if (!nall) { /* nothing registered: no memory left behind for leak checkers */
        uv_mutex_lock(&lock);
        if (!nall) {
            free(all);
            all = NULL;
            capall = 0;
        }
        uv_mutex_unlock(&lock);
    }
}
