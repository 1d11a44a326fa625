/* libmosquitto against nestc's own MQTT codec (docs/mqtt.md, "Why our own codec"): N small PUBLISHes from one
 * connection to another through a local mosquitto, with at most W sent and not yet received, either with
 * libmosquitto (its external-loop API: the socket under a uv_poll, mosquitto_loop_read/_write when ready,
 * mosquitto_loop_misc on a timer, no library threads) or with nestc's codec on uv_tcp (one write in flight
 * per connection, the bytes produced meanwhile batched into the next, as nestc's streams do). Prints one JSON
 * line: CPU (getrusage, user + sys) and allocations (malloc/calloc/realloc, interposed: library calls
 * included) per message, peak RSS, wall time per message.
 *
 *   mosq-vs-codec mosq|own QOS PORT N [W]     W defaults to 500; W = 1 measures the round trip
 *   mosq-vs-codec codec N VERSION             the codec alone: write + parse N x 16 QoS 1 PUBLISHes
 *                                             (VERSION 5: with two user properties), for callgrind
 *
 * Built and run by compare.sh. */
#define _GNU_SOURCE
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "codec/mqtt_proto.h"

/* malloc counting (interposes for the shared libraries too) */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static unsigned long n_alloc;
void *malloc(size_t n) {
    n_alloc++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    n_alloc++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    n_alloc++;
    return __libc_realloc(p, n);
}
void free(void *p) {
    __libc_free(p);
}

static int qos, port;
static long N, sent, recvd, acked;
static long W = 500;
static uint64_t t0;
static uv_loop_t *loop;
static struct rusage ru0;
static unsigned long alloc0;
static int started;
static char payload[128];
static int plen;

static void mkpayload(long i) {
    plen =
        snprintf(payload, sizeof payload, "{\"pattern\":\"bench/t\",\"data\":[1,2,3],\"id\":\"%021ld\"}", i);
}

static void start_clock(void) {
    started = 1;
    t0 = uv_hrtime();
    getrusage(RUSAGE_SELF, &ru0);
    alloc0 = n_alloc;
}

static void report(const char *mode) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    double us = (r.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 +
                (r.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                (r.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 + (r.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
    double uu = (r.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 + (r.ru_utime.tv_usec - ru0.ru_utime.tv_usec);
    printf("{\"mode\":\"%s\",\"qos\":%d,\"n\":%ld,\"cpu_us_per_msg\":%.3f,\"user_us_per_msg\":%.3f,"
           "\"allocs_per_msg\":%.2f,\"maxrss_kb\":%ld,\"window\":%ld,\"wall_us_per_msg\":%.2f}\n",
           mode, qos, N, us / N, uu / N, (double)(n_alloc - alloc0) / N, r.ru_maxrss, W,
           (uv_hrtime() - t0) / 1e3 / N);
    fflush(stdout);
}

/* ---------------- libmosquitto ---------------- */
typedef struct mq {
    struct mosquitto *m;
    uv_poll_t poll;
    int events;
} mq;
static mq mpub, msub;
static uv_timer_t misc_timer;
static int subscribed;

static void on_poll(uv_poll_t *h, int status, int events);
static void mq_update(mq *c) {
    int ev = UV_READABLE | (mosquitto_want_write(c->m) ? UV_WRITABLE : 0);
    if (ev != c->events) {
        c->events = ev;
        uv_poll_start(&c->poll, ev, on_poll);
    }
}
static void mq_refill(void);
static void on_poll(uv_poll_t *h, int status, int events) {
    mq *c = h->data;
    (void)status;
    if (events & UV_READABLE) mosquitto_loop_read(c->m, 100);
    if (events & UV_WRITABLE) mosquitto_loop_write(c->m, 100);
    mq_refill();
    mq_update(&mpub);
    mq_update(&msub);
}
static void mq_poll_start(mq *c) {
    uv_poll_init_socket(loop, &c->poll, mosquitto_socket(c->m));
    c->poll.data = c;
    c->events = UV_READABLE | UV_WRITABLE;
    uv_poll_start(&c->poll, c->events, on_poll);
}
static void on_misc(uv_timer_t *t) {
    (void)t;
    mosquitto_loop_misc(mpub.m);
    mosquitto_loop_misc(msub.m);
}
static void mq_refill(void) {
    if (!subscribed) return;
    while (sent < N && sent - recvd < W) {
        mkpayload(sent);
        mosquitto_publish(mpub.m, NULL, "bench/t", plen, payload, qos, false);
        sent++;
    }
}
static void on_subscribe(struct mosquitto *m, void *u, int mid, int n, const int *g) {
    (void)m, (void)u, (void)mid, (void)n, (void)g;
    subscribed = 1;
    start_clock();
}
static void on_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg) {
    (void)m, (void)u, (void)msg;
    if (++recvd == N) {
        report("libmosquitto");
        uv_stop(loop);
    }
}
static void on_connect_sub(struct mosquitto *m, void *u, int rc) {
    (void)u, (void)rc;
    mosquitto_subscribe(m, NULL, "bench/t", qos);
}

static int run_mosq(void) {
    mosquitto_lib_init();
    mpub.m = mosquitto_new("bench-pub", true, &mpub);
    msub.m = mosquitto_new("bench-sub", true, &msub);
    mosquitto_connect_callback_set(msub.m, on_connect_sub);
    mosquitto_subscribe_callback_set(msub.m, on_subscribe);
    mosquitto_message_callback_set(msub.m, on_message);
    if (mosquitto_connect(mpub.m, "127.0.0.1", port, 60) ||
        mosquitto_connect(msub.m, "127.0.0.1", port, 60)) {
        fprintf(stderr, "connect failed\n");
        return 1;
    }
    mq_poll_start(&mpub);
    mq_poll_start(&msub);
    uv_timer_init(loop, &misc_timer);
    uv_timer_start(&misc_timer, on_misc, 1000, 1000);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}

/* ---------------- own codec ---------------- */
typedef struct oc {
    uv_tcp_t tcp;
    uv_connect_t cr;
    nc_mqtt_parser p;
    nc_buf out, inflight;
    uv_write_t w;
    int writing;
    int connacked;
    char rbuf[65536];
} oc;
static oc opub, osub;
static uint16_t next_id = 1;

static void flush(oc *c);
static void on_written(uv_write_t *w, int st) {
    oc *c = w->data;
    (void)st;
    c->inflight.len = 0;
    c->writing = 0;
    if (c->out.len) flush(c);
}
/* one write in flight per connection; bytes produced meanwhile are batched into the next */
static void flush(oc *c) {
    if (c->writing || !c->out.len) return;
    nc_buf t = c->inflight;
    c->inflight = c->out;
    c->out = t;
    c->w.data = c;
    uv_buf_t b = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
    c->writing = 1;
    uv_write(&c->w, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}
static void oc_refill(void) {
    if (!started || !opub.connacked) return;
    while (sent < N && sent - recvd < W) {
        mkpayload(sent);
        nc_mqtt_publish m = {"bench/t", 7, payload, (size_t)plen, (uint8_t)qos, 0, 0, 0, NULL};
        if (qos) {
            m.id = next_id++;
            if (!next_id) next_id = 1;
        }
        nc_mqtt_write_publish(&opub.out, NC_MQTT_V311, &m);
        sent++;
    }
    flush(&opub);
}
static int on_pkt(void *u, const nc_mqtt_pkt *m) {
    oc *c = u;
    switch (m->type) {
    case NC_MQTT_CONNACK:
        if (c == &osub) {
            nc_mqtt_sub s = {"bench/t", 7, (uint8_t)qos, 0, 0, 0};
            nc_mqtt_write_subscribe(&c->out, NC_MQTT_V311, 1, &s, 1, 0);
        }
        c->connacked = 1;
        break;
    case NC_MQTT_SUBACK:
        start_clock();
        break;
    case NC_MQTT_PUBLISH:
        if (m->qos == 1) nc_mqtt_write_ack(&c->out, NC_MQTT_V311, NC_MQTT_PUBACK, m->id, 0);
        if (++recvd == N) {
            flush(c);
            report("own-codec");
            uv_stop(loop);
            return 1;
        }
        break;
    case NC_MQTT_PUBACK:
        acked++;
        break;
    default:
        break;
    }
    return 0;
}
static void alloc_cb(uv_handle_t *h, size_t s, uv_buf_t *b) {
    oc *c = h->data;
    (void)s;
    *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    oc *c = s->data;
    if (n <= 0) return;
    char why[200];
    int r = nc_mqtt_feed(&c->p, b->base, (size_t)n, on_pkt, c, why, sizeof why);
    if (r) {
        fprintf(stderr, "parse: %s\n", why);
        exit(1);
    }
    flush(c);
    oc_refill();
}
static void on_conn(uv_connect_t *cr, int st) {
    oc *c = cr->data;
    if (st) {
        fprintf(stderr, "connect: %s\n", uv_strerror(st));
        exit(1);
    }
    nc_mqtt_connect cn = {0};
    cn.version = NC_MQTT_V311;
    cn.client_id = c == &opub ? "own-pub" : "own-sub";
    cn.client_id_len = 7;
    cn.clean = 1;
    cn.keepalive = 60;
    nc_mqtt_write_connect(&c->out, &cn);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
    flush(c);
}
static void oc_start(oc *c) {
    nc_mqtt_parser_init(&c->p, NC_MQTT_V311, 0);
    uv_tcp_init(loop, &c->tcp);
    uv_tcp_nodelay(&c->tcp, 1);
    c->tcp.data = c;
    c->cr.data = c;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_tcp_connect(&c->cr, &c->tcp, (struct sockaddr *)&a, on_conn);
}
static int run_own(void) {
    oc_start(&opub);
    oc_start(&osub);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}

static long got;
static int on_codec(void *u, const nc_mqtt_pkt *m) {
    (void)u;
    got += (long)m->payload.n;
    return 0;
}

/* The codec alone, no I/O: 16 PUBLISHes written into one buffer, then parsed from it. */
static int run_codec(long n, int v) {
    const char *pl = "{\"pattern\":\"bench/t\",\"data\":[1,2,3],\"id\":\"000000000000000000001\"}";
    nc_header up[2] = {{"x-version", 9, "1.0.0", 5}, {"x-trace", 7, "t-1", 3}};
    nc_mqtt_pub_props pp = {.user = up, .n_user = 2};
    nc_buf b = NC_BUF_INIT;
    nc_mqtt_parser p;
    nc_mqtt_parser_init(&p, v, 0);
    char why[200];
    for (long i = 0; i < n; i++) {
        b.len = 0;
        for (int k = 0; k < 16; k++) {
            nc_mqtt_publish m = {"bench/t",          7, pl, strlen(pl), 1, 0, 0, (uint16_t)(k + 1),
                                 v == 5 ? &pp : NULL};
            if (nc_mqtt_write_publish(&b, v, &m)) return 1;
        }
        if (nc_mqtt_feed(&p, b.data, b.len, on_codec, NULL, why, sizeof why)) return 1;
    }
    printf("{\"mode\":\"codec\",\"version\":%d,\"packets\":%ld,\"payload_bytes\":%ld}\n", v, n * 16, got);
    nc_mqtt_parser_free(&p);
    nc_buf_free(&b);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "codec") == 0) return run_codec(atol(argv[2]), atoi(argv[3]));
    if (argc < 5) {
        fprintf(stderr, "usage: mosq-vs-codec mosq|own QOS PORT N [W] | codec N VERSION\n");
        return 2;
    }
    qos = atoi(argv[2]);
    port = atoi(argv[3]);
    N = atol(argv[4]);
    if (argc > 5) W = atol(argv[5]);
    loop = uv_default_loop();
    return strcmp(argv[1], "mosq") == 0 ? run_mosq() : run_own();
}
