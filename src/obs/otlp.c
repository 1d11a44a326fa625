/* OTLP/HTTP span exporter, JSON or protobuf (otlp.h).
 *
 * Spans are encoded as jansson objects when they end (on the thread that ended them) and queued in a
 * bounded ring under a mutex. A timer on the exporter's loop takes up to BATCH_MAX of them every batch_ms
 * and POSTs them on a fresh connection (Connection: close: the exporter needs nothing but the status line
 * back, parsed by http_status.c, and the rest of the head after a status worth a retry, for its
 * Retry-After). The dial's timeout covers the whole exchange (nc_dial_connected is only called once that
 * is in), so a collector that accepts and never answers costs one batch.
 *
 * A batch whose request fails in a way worth retrying (429, 502, 503, 504, no connection, no answer in
 * time) is kept, as its request bytes, and sent again after an exponential backoff with jitter, or after
 * the answer's Retry-After; one batch at most waits so, and no new batch is taken meanwhile (the queue
 * stays bounded: spans pushed then drop when it is full). Its attempts and its time from the first are
 * bounded; then it counts as failed, as any other answer counts at once.
 *
 * At close, what is still queued is sent on a private loop of the closing thread, bounded by the flush
 * timeout as a whole (retries included): the owner's loop may be about to close (an owned loop closes
 * every handle left on it), and a private loop runs nothing of the owner's while the exporter waits. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dial.h"
#include "io/tls.h"
#include "obs/http_status.h"
#include "obs/otlp.h"
#include "obs/otlp_gzip.h"
#include "obs/otlp_proto.h"
#include "obs/otlp_headers.h"
#include "util/buf.h"

#define BATCH_MAX 512
#define HEADERS_MAX 4096

/* every exporter of the process, for nc_trace_export_stats and the admin endpoint's /metrics (retries:
 * counted beside them, not shown there yet) */
static _Atomic uint64_t all_exported, all_dropped, all_failed, all_retries;

/* A batch's request as sent, kept whole for a retry. */
typedef struct otlp_batch {
    char *req;
    size_t req_len, nspans;
    int attempts;      /* requests made of it so far */
    uint64_t first_ms; /* its first request (uv_hrtime, ms) */
} otlp_batch;

typedef struct otlp_conn {
    nc_dial d; /* first: the stream and the dial find the connection */
    struct nc_otlp *x;
    otlp_batch b;
    char head[NC_HTTP_HEAD_MAX];
    size_t head_len;
    int status, done;
    int retry_after; /* seconds, or -1 */
} otlp_conn;

struct nc_otlp {
    uv_loop_t *loop;
    nc_ioctx io;
    uv_timer_t timer;
    uv_timer_t retry_timer; /* the waiting batch's next attempt, on the owner's loop */
    uv_mutex_t lock;
    json_t **q; /* ring of encoded spans */
    size_t qcap, qhead, qlen;
    uint64_t exported, dropped, failed, retries;
    char host[256], hosthdr[300], path[512];
    int port, tls;
    SSL_CTX *ssl; /* https */
    char *service;
    char headers[HEADERS_MAX]; /* OTEL_EXPORTER_OTLP_HEADERS as header lines */
    int exchange_ms, flush_ms;
    int gzip, proto; /* Content-Encoding: gzip; http/protobuf rather than http/json */
    int retry_attempts, retry_initial_ms, retry_max_ms, retry_total_ms;
    uint64_t rng;        /* the backoff's jitter */
    otlp_batch waiting;  /* the batch to retry, when waiting.req */
    uint64_t waiting_at; /* when (uv_hrtime, ms) */
    otlp_conn *inflight; /* the request in flight on the owner's loop */
    otlp_conn *flushing; /* the one in flight on the close's private loop */
    int flush_failed;
    int closing, handles; /* timer + ioctx prepare/check not yet closed */
};

/* ---- endpoint -------------------------------------------------------------------------------------- */

const char *nc_otlp_endpoint(const char *given, char *buf, size_t len) {
    if (given && *given) return given;
    const char *t = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if (t && *t) return t;
    const char *b = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (!b || !*b) return NULL;
    size_t n = strlen(b);
    while (n && b[n - 1] == '/') n--;
    if ((size_t)snprintf(buf, len, "%.*s/v1/traces", (int)n, b) >= len) return NULL;
    return buf;
}

static int parse_endpoint(nc_otlp *x, const char *url) {
    x->tls = !strncmp(url, "https://", 8);
    if (!x->tls && strncmp(url, "http://", 7)) return NC_EINVAL;
    const char *h = url + (x->tls ? 8 : 7), *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (!hl || hl >= sizeof x->host) return NC_EINVAL;
    const char *colon = memchr(h, ':', hl);
    size_t namel = colon ? (size_t)(colon - h) : hl;
    if (!namel) return NC_EINVAL;
    for (size_t k = 0; k < hl; k++)
        if ((unsigned char)h[k] <= ' ' || h[k] == 0x7f) return NC_EINVAL; /* the Host header too */
    memcpy(x->host, h, namel);
    x->host[namel] = 0;
    x->port = 4318; /* the OTLP/HTTP port, with or without TLS */
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (end != h + hl || p <= 0 || p > 65535) return NC_EINVAL;
        x->port = (int)p;
    }
    snprintf(x->hosthdr, sizeof x->hosthdr, "%.*s", (int)hl, h);
    const char *path = slash && slash[1] ? slash : "/v1/traces";
    if (strlen(path) >= sizeof x->path) return NC_EINVAL;
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) return NC_EINVAL; /* no header injection */
    strcpy(x->path, path);
    return 0;
}

/* ---- encoding ------------------------------------------------------------------------------------- */

static void hexs(const uint8_t *b, int n, char *out) {
    static const char d[] = "0123456789abcdef";
    for (int k = 0; k < n; k++) out[2 * k] = d[b[k] >> 4], out[2 * k + 1] = d[b[k] & 15];
    out[2 * n] = 0;
}

static void attr(json_t *arr, const char *key, const char *val) {
    json_t *v = json_string(val);
    if (!v) return; /* not UTF-8 */
    json_array_append_new(arr, json_pack("{s:s, s:{s:o}}", "key", key, "value", "stringValue", v));
}

static void attr_int(json_t *arr, const char *key, int val) {
    json_array_append_new(arr, json_pack("{s:s, s:{s:i}}", "key", key, "value", "intValue", val));
}

/* The semantic-convention system of a transport: rpc.* for the request/reply ones, messaging.* for
 * brokers. */
static void system_attr(json_t *arr, const char *tp) {
    static const struct {
        const char *scheme, *key, *val;
    } m[] = {{"tcp", "rpc.system", "nestjs"},
             {"tls", "rpc.system", "nestjs"},
             {"grpc", "rpc.system", "grpc"},
             {"grpcs", "rpc.system", "grpc"},
             {"redis", "messaging.system", "redis"},
             {"rediss", "messaging.system", "redis"},
             {"nats", "messaging.system", "nats"},
             {"mqtt", "messaging.system", "mqtt"},
             {"mqtts", "messaging.system", "mqtt"},
             {"amqp", "messaging.system", "rabbitmq"},
             {"amqps", "messaging.system", "rabbitmq"},
             {"kafka", "messaging.system", "kafka"}};
    for (size_t k = 0; k < sizeof m / sizeof *m; k++)
        if (!strcmp(tp, m[k].scheme)) {
            attr(arr, m[k].key, m[k].val);
            return;
        }
    attr(arr, "rpc.system", tp);
}

static json_t *encode(const nc_span *s) {
    char tid[33], sid[17], pid[17], st[24], en[24];
    hexs(s->ctx.trace_id, 16, tid);
    hexs(s->ctx.span_id, 8, sid);
    snprintf(st, sizeof st, "%llu", (unsigned long long)s->start_unix_ns);
    snprintf(en, sizeof en, "%llu", (unsigned long long)s->end_unix_ns);
    json_t *name = json_string(s->name);
    json_t *o = json_pack("{s:s, s:s, s:o, s:i, s:s, s:s}", "traceId", tid, "spanId", sid, "name",
                          name ? name : json_string("(not UTF-8)"), "kind", (int)s->kind, "startTimeUnixNano",
                          st, "endTimeUnixNano", en);
    if (!o) return NULL;
    if (s->has_parent) {
        hexs(s->parent_id, 8, pid);
        json_object_set_new(o, "parentSpanId", json_string(pid));
    }
    if (s->ctx.tracestate[0]) {
        json_t *ts = json_string(s->ctx.tracestate);
        if (ts) json_object_set_new(o, "traceState", ts);
    }
    json_t *attrs = json_array();
    system_attr(attrs, s->transport);
    attr(attrs, "rpc.method", s->name);
    attr(attrs, "nestjs.transport", s->transport);
    attr(attrs, "nestjs.kind", s->is_event ? "event" : "request");
    /* the other side (OpenTelemetry general attributes): a server span names its client, a client span
     * its server; network.peer.* as the RPC conventions list it (the same socket, no proxy in between) */
    if (s->peer_address) {
        int srv = s->kind == NC_SPAN_SERVER;
        attr(attrs, srv ? "client.address" : "server.address", s->peer_address);
        if (s->peer_port) attr_int(attrs, srv ? "client.port" : "server.port", s->peer_port);
        if (srv) {
            attr(attrs, "network.peer.address", s->peer_address);
            if (s->peer_port) attr_int(attrs, "network.peer.port", s->peer_port);
        }
    }
    json_object_set_new(o, "attributes", attrs);
    /* STATUS_CODE_ERROR = 2; unset (an empty status) when it went well */
    json_object_set_new(o, "status",
                        s->outcome ? json_pack("{s:i, s:s}", "code", 2, "message", nc_strerror(s->outcome))
                                   : json_object());
    return o;
}

/* ---- queue ------------------------------------------------------------------------------------------ */

void nc_otlp_push(nc_otlp *x, const nc_span *s) {
    json_t *o = encode(s);
    uv_mutex_lock(&x->lock);
    if (!o || x->qlen == x->qcap) {
        x->dropped++;
        uv_mutex_unlock(&x->lock);
        atomic_fetch_add_explicit(&all_dropped, 1, memory_order_relaxed);
        json_decref(o);
        return;
    }
    x->q[(x->qhead + x->qlen++) % x->qcap] = o;
    uv_mutex_unlock(&x->lock);
}

void nc_otlp_stats(nc_otlp *x, uint64_t *exported, uint64_t *dropped, uint64_t *failed) {
    uv_mutex_lock(&x->lock);
    if (exported) *exported = x->exported;
    if (dropped) *dropped = x->dropped;
    if (failed) *failed = x->failed;
    uv_mutex_unlock(&x->lock);
}

uint64_t nc_otlp_retries(nc_otlp *x) {
    uv_mutex_lock(&x->lock);
    uint64_t n = x->retries;
    uv_mutex_unlock(&x->lock);
    return n;
}

void nc_trace_export_counters(nc_trace_counters *out) {
    if (!out) return;
    out->exported = atomic_load_explicit(&all_exported, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&all_dropped, memory_order_relaxed);
    out->failed = atomic_load_explicit(&all_failed, memory_order_relaxed);
}

static void count(nc_otlp *x, uint64_t *mine, _Atomic uint64_t *all, size_t n) {
    uv_mutex_lock(&x->lock);
    *mine += n;
    uv_mutex_unlock(&x->lock);
    atomic_fetch_add_explicit(all, n, memory_order_relaxed);
}

/* ---- one export request ---------------------------------------------------------------------------- */

static void close_io(nc_otlp *x);

static uint64_t now_ms(void) {
    return uv_hrtime() / 1000000; /* one clock for the owner's loop and the close's private one */
}

static void st_open(nc_stream *s, int err, const char *msg) {
    (void)msg;
    otlp_conn *c = (otlp_conn *)s;
    if (err) return; /* st_end reports it */
    if (nc_stream_write(s, c->b.req, c->b.req_len)) nc_dial_fail(&c->d, NC_ENOMEM, "out of memory");
}

/* the answers worth a retry (OTLP/HTTP): the collector is overloaded or a gateway could not reach it */
static int retryable_status(int st) {
    return st == 429 || st == 502 || st == 503 || st == 504;
}

static void st_data(nc_stream *s, const char *data, size_t len) {
    otlp_conn *c = (otlp_conn *)s;
    if (c->done) return;
    size_t room = sizeof c->head - c->head_len, n = len < room ? len : room;
    memcpy(c->head + c->head_len, data, n);
    c->head_len += n;
    if (!c->status) {
        int r = nc_http_status_parse(c->head, c->head_len);
        if (r == 0) return;
        if (r < 0) {
            nc_dial_fail(&c->d, NC_EPROTO, "not an HTTP response");
            return;
        }
        c->status = r;
    }
    /* A retry may be told when: the rest of the head is read, still within the exchange's timeout (the
     * dial's, running until nc_dial_connected). A head longer than the buffer has none we can read. */
    if (retryable_status(c->status)) {
        int ra = nc_http_retry_after(c->head, c->head_len);
        if (ra == -2 && c->head_len < sizeof c->head) return;
        c->retry_after = ra >= 0 ? ra : -1;
    }
    c->done = 1;
    nc_dial_connected(&c->d);
    nc_stream_close(s, 0, NULL); /* all we need; the collector closes its side too (Connection: close) */
}

static void st_end(nc_stream *s, int err, const char *msg) {
    otlp_conn *c = (otlp_conn *)s;
    nc_dial_reason(&c->d, &err, &msg);
    nc_dial_end(&c->d, err, msg);
}

static void batch_free(otlp_batch *b) {
    free(b->req);
    b->req = NULL;
}

/* The delay before attempt b->attempts + 1 (ms): the collector's Retry-After when it gave one, else an
 * exponential backoff (retry_initial_ms × 1.5^(attempts-1), at most retry_max_ms) with ±20 % jitter, as
 * the OpenTelemetry exporters do; -1 when the batch may not be retried (attempts or total time spent). */
static int64_t retry_delay(nc_otlp *x, const otlp_batch *b, int retry_after) {
    if (x->retry_attempts <= 1 || b->attempts >= x->retry_attempts) return -1;
    int64_t d;
    if (retry_after >= 0) {
        d = (int64_t)retry_after * 1000;
    } else {
        double back = x->retry_initial_ms;
        for (int k = 1; k < b->attempts && back < x->retry_max_ms; k++) back *= 1.5;
        if (back > x->retry_max_ms) back = x->retry_max_ms;
        x->rng ^= x->rng << 13, x->rng ^= x->rng >> 7, x->rng ^= x->rng << 17; /* xorshift64 */
        double j = (double)(x->rng >> 11) / 9007199254740992.0;                /* [0, 1) */
        d = (int64_t)(back * (0.8 + 0.4 * j));
    }
    if ((int64_t)(now_ms() - b->first_ms) + d > x->retry_total_ms) return -1;
    return d;
}

/* Whether the way this request ended is worth a retry: a retryable status, or no answer at all
 * (refused, reset, timed out) but for a cut at close, a certificate that does not verify (it will not on
 * the next attempt either) and an answer that is not HTTP. */
static int retryable(const otlp_conn *c, int err) {
    if (c->status) return retryable_status(c->status);
    return err != NC_ECANCELED && err != NC_ETLS && err != NC_EPROTO;
}

static void on_retry(uv_timer_t *t);

static void conn_ended(nc_dial *d, int err, const char *msg) {
    (void)msg;
    otlp_conn *c = (otlp_conn *)d;
    nc_otlp *x = c->x;
    int flush = c == x->flushing;
    if (c->status >= 200 && c->status < 300) {
        count(x, &x->exported, &all_exported, c->b.nspans);
        return;
    }
    int64_t delay = -1;
    /* on the owner's loop only while it is open; the flush retries on its own loop, within its bound */
    if ((flush || !x->closing) && retryable(c, err)) delay = retry_delay(x, &c->b, c->retry_after);
    if (delay < 0) {
        count(x, &x->failed, &all_failed, c->b.nspans);
        if (flush) x->flush_failed = 1;
        return;
    }
    count(x, &x->retries, &all_retries, 1);
    x->waiting = c->b; /* the request bytes move to the waiting slot */
    c->b.req = NULL;
    x->waiting_at = now_ms() + (uint64_t)delay;
    if (!flush) uv_timer_start(&x->retry_timer, on_retry, (uint64_t)delay, 0);
}

static void conn_free(nc_dial *d) {
    otlp_conn *c = (otlp_conn *)d;
    nc_otlp *x = c->x;
    int flush = c == x->flushing;
    batch_free(&c->b);
    free(c);
    if (flush) {
        x->flushing = NULL;
        return;
    }
    x->inflight = NULL;
    if (x->closing) close_io(x); /* the last request is done: its writes no longer need the ioctx */
}

static const nc_stream_cbs stream_cbs = {st_open, st_data, NULL, st_end, nc_dial_stream_closed, NULL};
static const nc_dial_ops dial_ops = {conn_ended, conn_free, NULL};

/* Starts b's request (the connection takes b) on io; NULL when out of memory (its spans count failed). */
static otlp_conn *start(nc_otlp *x, nc_ioctx *io, otlp_batch *b, int timeout_ms) {
    otlp_conn *c = calloc(1, sizeof *c);
    if (!c) {
        count(x, &x->failed, &all_failed, b->nspans);
        batch_free(b);
        return NULL;
    }
    c->x = x;
    c->b = *b;
    b->req = NULL;
    c->b.attempts++;
    c->retry_after = -1;
    nc_dial_start(&c->d, io, x->host, x->port, x->ssl, x->tls ? x->host : NULL, timeout_ms, 0, &stream_cbs,
                  &dial_ops);
    return c;
}

/* Takes up to BATCH_MAX queued spans into a request; 0 when there is one in *b, else nothing was queued
 * or it could not be made (its spans then count as failed). */
static int take_batch(nc_otlp *x, otlp_batch *b) {
    memset(b, 0, sizeof *b);
    json_t *spans = json_array();
    if (!spans) return -1;
    uv_mutex_lock(&x->lock);
    size_t n = x->qlen < BATCH_MAX ? x->qlen : BATCH_MAX;
    for (size_t k = 0; k < n; k++) json_array_append_new(spans, x->q[(x->qhead + k) % x->qcap]);
    x->qhead = (x->qhead + n) % x->qcap;
    x->qlen -= n;
    uv_mutex_unlock(&x->lock);
    if (!n) {
        json_decref(spans);
        return -1;
    }
    char *js = NULL;
    size_t plen = 0;
    if (x->proto) {
        nc_buf pb = NC_BUF_INIT;
        if (!nc_otlp_proto_request(&pb, x->service, spans) && !nc_buf_reserve(&pb, 1))
            js = pb.data;
        else
            nc_buf_free(&pb);
        plen = pb.len;
        json_decref(spans);
    } else {
        json_t *body = json_pack("{s:[{s:{s:[{s:s, s:{s:s}}]}, s:[{s:{s:s}, s:o}]}]}", "resourceSpans",
                                 "resource", "attributes", "key", "service.name", "value", "stringValue",
                                 x->service, "scopeSpans", "scope", "name", "nestc", "spans", spans);
        js = body ? json_dumps(body, JSON_COMPACT) : NULL;
        plen = js ? strlen(js) : 0;
        json_decref(body);
    }
    char *payload = js;
    if (js && x->gzip) {
        char *z;
        if (nc_otlp_gzip(js, plen, &z, &plen)) z = NULL;
        free(js);
        js = payload = z;
    }
    nc_buf buf = NC_BUF_INIT;
    char head[1024];
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/%s\r\n%sContent-Length: "
                      "%zu\r\nConnection: close\r\n",
                      x->path, x->hosthdr, x->proto ? "x-protobuf" : "json",
                      x->gzip ? "Content-Encoding: gzip\r\n" : "", plen);
    if (!payload || hl < 0 || (size_t)hl >= sizeof head || nc_buf_append(&buf, head, (size_t)hl) ||
        nc_buf_append(&buf, x->headers, strlen(x->headers)) || nc_buf_append(&buf, "\r\n", 2) ||
        nc_buf_append(&buf, payload, plen)) {
        free(js);
        nc_buf_free(&buf);
        count(x, &x->failed, &all_failed, n);
        return -1;
    }
    free(js);
    b->req = buf.data;
    b->req_len = buf.len;
    b->nspans = n;
    b->first_ms = now_ms();
    return 0;
}

/* The next request on io: the waiting batch once its time has come (*wait_ms then says how long is left
 * otherwise), else a new batch; NULL when there is none. */
static otlp_conn *next(nc_otlp *x, nc_ioctx *io, int timeout_ms, uint64_t *wait_ms) {
    *wait_ms = 0;
    if (x->waiting.req) {
        uint64_t now = now_ms();
        if (now < x->waiting_at) {
            *wait_ms = x->waiting_at - now;
            return NULL;
        }
        return start(x, io, &x->waiting, timeout_ms);
    }
    otlp_batch b;
    return take_batch(x, &b) ? NULL : start(x, io, &b, timeout_ms);
}

static void on_tick(uv_timer_t *t) {
    nc_otlp *x = t->data;
    uint64_t wait;
    if (!x->inflight) x->inflight = next(x, &x->io, x->exchange_ms, &wait);
}

static void on_retry(uv_timer_t *t) {
    nc_otlp *x = t->data;
    uint64_t wait;
    if (x->inflight || !x->waiting.req) return; /* the tick's */
    x->inflight = next(x, &x->io, x->exchange_ms, &wait);
    if (!x->inflight && wait) uv_timer_start(&x->retry_timer, on_retry, wait, 0); /* early by a tick */
}

/* ---- life ------------------------------------------------------------------------------------------- */

static void otlp_free(nc_otlp *x) {
    if (x->ssl) SSL_CTX_free(x->ssl);
    free(x->q);
    free(x->service);
    free(x);
}

int nc_otlp_new(nc_otlp **out, uv_loop_t *loop, const nc_otlp_cfg *cfg, char *why, size_t whylen) {
    *out = NULL;
    if (whylen) why[0] = 0;
    nc_otlp *x = calloc(1, sizeof *x);
    if (!x) return NC_ENOMEM;
    int r = parse_endpoint(x, cfg->endpoint);
    if (r) {
        snprintf(why, whylen, "not an http:// or https:// collector URL: %s", cfg->endpoint);
        free(x);
        return r;
    }
    if (cfg->headers &&
        (r = nc_otlp_headers_parse(cfg->headers, strlen(cfg->headers), x->headers, sizeof x->headers))) {
        snprintf(why, whylen, "%s", r == NC_ETOOBIG ? "OTLP headers too long" : "invalid OTLP headers");
        free(x);
        return NC_EINVAL;
    }
    if (cfg->compression && *cfg->compression && strcmp(cfg->compression, "none")) {
        if (strcmp(cfg->compression, "gzip")) {
            snprintf(why, whylen, "unknown OTLP compression: %s (gzip or none)", cfg->compression);
            free(x);
            return NC_EINVAL;
        }
        if (!nc_otlp_gzip_available()) {
            snprintf(why, whylen, "OTLP gzip compression needs zlib, and this build has none");
            free(x);
            return NC_EUNSUPPORTED;
        }
        x->gzip = 1;
    }
    if (cfg->protocol && *cfg->protocol && strcmp(cfg->protocol, "http/json")) {
        if (!strcmp(cfg->protocol, "http/protobuf")) {
            x->proto = 1;
        } else {
            snprintf(why, whylen, "%s OTLP protocol: %s (http/json or http/protobuf)",
                     strcmp(cfg->protocol, "grpc") ? "unknown" : "unsupported", cfg->protocol);
            free(x);
            return strcmp(cfg->protocol, "grpc") ? NC_EINVAL : NC_EUNSUPPORTED;
        }
    }
    if (x->tls) {
        nc_tls_opts t = NC_TLS_OPTS_INIT;
        t.ca_file = cfg->ca_file;
        t.cert_file = cfg->cert_file;
        t.key_file = cfg->key_file;
        if ((r = nc_tls_ctx_new(&x->ssl, &t, 0, why, whylen))) {
            free(x);
            return r;
        }
    }
    x->qcap = cfg->queue_max > 0 ? (size_t)cfg->queue_max : 2048;
    x->q = calloc(x->qcap, sizeof *x->q);
    x->service = strdup(cfg->service && *cfg->service ? cfg->service : "nestc");
    x->exchange_ms = cfg->exchange_timeout_ms > 0 ? cfg->exchange_timeout_ms : 5000;
    x->flush_ms = cfg->flush_timeout_ms;
    x->retry_attempts = cfg->retry_max_attempts ? cfg->retry_max_attempts : 5;
    x->retry_initial_ms = cfg->retry_initial_ms > 0 ? cfg->retry_initial_ms : 1000;
    x->retry_max_ms = cfg->retry_max_backoff_ms > 0 ? cfg->retry_max_backoff_ms : 5000;
    x->retry_total_ms = cfg->retry_total_ms > 0 ? cfg->retry_total_ms : 30000;
    x->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)x;
    if (!x->rng) x->rng = 1;
    if (!x->q || !x->service || uv_mutex_init(&x->lock)) {
        otlp_free(x);
        return NC_ENOMEM;
    }
    if (nc_ioctx_init(&x->io, loop)) {
        uv_mutex_destroy(&x->lock);
        otlp_free(x);
        return NC_ENOMEM;
    }
    x->loop = loop;
    uv_timer_init(loop, &x->timer);
    x->timer.data = x;
    uint64_t every = cfg->batch_ms > 0 ? (uint64_t)cfg->batch_ms : 1000;
    uv_timer_start(&x->timer, on_tick, every, every);
    uv_unref((uv_handle_t *)&x->timer); /* the exporter alone never keeps a loop running */
    uv_timer_init(loop, &x->retry_timer);
    x->retry_timer.data = x;
    uv_unref((uv_handle_t *)&x->retry_timer);
    *out = x;
    return 0;
}

static void maybe_free(nc_otlp *x) {
    if (!x->closing || x->handles || x->inflight) return;
    size_t left = x->qlen;
    for (size_t k = 0; k < x->qlen; k++) json_decref(x->q[(x->qhead + k) % x->qcap]);
    if (left) atomic_fetch_add_explicit(&all_dropped, left, memory_order_relaxed); /* the flush gave up */
    if (x->waiting.req) { /* sent and refused, its retry not made in time */
        atomic_fetch_add_explicit(&all_failed, x->waiting.nspans, memory_order_relaxed);
        batch_free(&x->waiting);
    }
    uv_mutex_destroy(&x->lock);
    free(x->io.rbuf);
    free(x->io.tlsbuf);
    otlp_free(x);
}

static void handle_closed(uv_handle_t *h) {
    nc_otlp *x = h->data;
    x->handles--;
    maybe_free(x);
}

/* the ioctx's handles, closed here rather than by nc_ioctx_close, to know when they are */
static void close_io(nc_otlp *x) {
    if (x->io.closing) return;
    x->io.closing = 1;
    x->io.prepare.data = x->io.check.data = x;
    uv_close((uv_handle_t *)&x->io.prepare, handle_closed);
    uv_close((uv_handle_t *)&x->io.check, handle_closed);
}

static void cut(otlp_conn *c) {
    if (!nc_dial_close_early(&c->d)) nc_stream_close(&c->d.st, NC_ECANCELED, "exporter closed");
}

static void flush_deadline(uv_timer_t *t) {
    nc_otlp *x = t->data;
    x->flush_failed = 1;
    if (x->flushing) cut(x->flushing);
}

static void woke(uv_timer_t *t) {
    (void)t;
}

/* What is still queued, sent batch after batch on a private loop until the queue is empty, a batch fails
 * for good (a collector that is down or slow: the rest would fare no better), or flush_ms have passed as
 * a whole. A batch waiting for a retry goes first, and a retry whose time comes after the bound is not
 * waited for. */
static void flush(nc_otlp *x) {
    if (x->flush_ms <= 0 || (!x->qlen && !x->waiting.req)) return;
    nc_ioctx io;
    if (nc_ioctx_init(&io, NULL)) return;
    uv_timer_t deadline, wake;
    uv_timer_init(io.loop, &deadline);
    uv_timer_init(io.loop, &wake);
    deadline.data = x;
    uv_timer_start(&deadline, flush_deadline, (uint64_t)x->flush_ms, 0);
    uint64_t end = now_ms() + (uint64_t)x->flush_ms;
    x->flush_failed = 0;
    for (;;) {
        if (!x->flushing) {
            uint64_t now = now_ms(), wait;
            if (x->flush_failed || now >= end) break;
            if (x->waiting.req && x->waiting_at >= end) break; /* its retry would come too late */
            int left = (int)(end - now);
            x->flushing = next(x, &io, left < x->exchange_ms ? left : x->exchange_ms, &wait);
            if (!x->flushing) {
                if (!wait) break;
                uv_timer_start(&wake, woke, wait, 0);
            }
        }
        uv_run(io.loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_close((uv_handle_t *)&wake, NULL);
    nc_ioctx_finish(&io); /* runs the private loop until every handle closed, then frees it */
}

void nc_otlp_close(nc_otlp *x) {
    if (!x || x->closing) return;
    x->closing = 1;
    x->handles = 4;
    uv_close((uv_handle_t *)&x->timer, handle_closed);
    uv_close((uv_handle_t *)&x->retry_timer, handle_closed);
    /* A request in flight on the owner's loop is cut rather than awaited (its spans count as failed):
     * the owner may be closing its loop right after, and a handle must not be open then. */
    otlp_conn *c = x->inflight;
    if (!c)
        close_io(x);
    else
        cut(c);
    flush(x);
}
