/* Connections and wire bytes of librdkafka's broker sockets (io/wire.h, docs/observability.md).
 *
 * librdkafka reads and writes its sockets on its own threads, out of reach of the io layer's counters,
 * and it has no per-read hook. What it does have: connect_cb and closesocket_cb, called on its broker
 * threads when a socket connects and closes. So the sockets are listed as they connect, and their bytes
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

/* The block's probe (reading thread, the block's lock held). */
static void probe(void *arg, nc_wire_counts *c) {
    nc_kafka_wire *w = arg;
    uv_mutex_lock(&w->lock);
    c->in += w->done.in;
    c->out += w->done.out;
    c->opened += w->done.opened;
    c->closed += w->done.closed;
    c->closed_err += w->done.closed_err;
    for (size_t i = 0; i < w->n; i++) socket_bytes(w->fds[i], c);
    uv_mutex_unlock(&w->lock);
}

void nc_kafka_wire_init(nc_kafka_wire *w, nc_wire_block *b) {
    memset(w, 0, sizeof *w);
    uv_mutex_init(&w->lock);
    w->b = b;
    if (b) nc_wire_block_probe(b, probe, w);
}

void nc_kafka_wire_free(nc_kafka_wire *w) {
    if (w->b) nc_wire_block_probe(w->b, NULL, NULL); /* the figures so far stay in the block */
    w->b = NULL;
    free(w->fds);
    w->fds = NULL;
    uv_mutex_destroy(&w->lock);
}

int nc_kafka_wire_connect(nc_kafka_wire *w, int fd, const struct sockaddr *addr, int addrlen) {
    /* what librdkafka does without a connect_cb: a non-blocking connect, EINPROGRESS is success */
    if (connect(fd, addr, (socklen_t)addrlen) && errno != EINPROGRESS) return errno;
    uv_mutex_lock(&w->lock);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        int *v = realloc(w->fds, cap * sizeof *v);
        if (!v) {
            uv_mutex_unlock(&w->lock);
            return 0; /* connected, just not counted */
        }
        w->fds = v;
        w->cap = cap;
    }
    w->fds[w->n++] = fd;
    w->done.opened++;
    uv_mutex_unlock(&w->lock);
    return 0;
}

int nc_kafka_wire_close(nc_kafka_wire *w, int fd) {
    uv_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n; i++) {
        if (w->fds[i] != fd) continue;
        socket_bytes(fd, &w->done);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        w->done.closed++;
        if (soerr) w->done.closed_err++;
        w->fds[i] = w->fds[--w->n];
        break;
    }
    /* closed under the lock: a reader never asks TCP_INFO of a descriptor number reused meanwhile */
    int r = close(fd) ? errno : 0;
    uv_mutex_unlock(&w->lock);
    return r;
}
