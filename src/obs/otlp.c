/* OTLP/HTTP JSON span exporter (otlp.h).
 *
 * Spans are encoded as jansson objects when they end (on the thread that ended them) and queued in a
 * bounded ring under a mutex. A timer on the exporter's loop takes up to BATCH_MAX of them every batch_ms
 * and POSTs them on a fresh connection (Connection: close: the exporter needs nothing but the status line
 * back, parsed by http_status.c). The dial's timeout covers the whole exchange (nc_dial_connected is only
 * called once the status line is in), so a collector that accepts and never answers costs one batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dial.h"
#include "obs/http_status.h"
#include "obs/otlp.h"
#include "util/buf.h"

#define BATCH_MAX 512
#define EXCHANGE_TIMEOUT_MS 5000

typedef struct otlp_conn {
    nc_dial d; /* first: the stream and the dial find the connection */
    struct nc_otlp *x;
    char *req;
    size_t req_len, nspans;
    char head[NC_HTTP_STATUS_LINE_MAX];
    size_t head_len;
    int status;
} otlp_conn;

struct nc_otlp {
    uv_loop_t *loop;
    nc_ioctx io;
    uv_timer_t timer;
    uv_mutex_t lock;
    json_t **q; /* ring of encoded spans */
    size_t qcap, qhead, qlen;
    uint64_t exported, dropped;
    char host[256], hosthdr[300], path[512];
    int port;
    char *service;
    otlp_conn *inflight;
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
    if (!strncmp(url, "https://", 8)) return NC_EUNSUPPORTED;
    if (strncmp(url, "http://", 7)) return NC_EINVAL;
    const char *h = url + 7, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (!hl || hl >= sizeof x->host) return NC_EINVAL;
    const char *colon = memchr(h, ':', hl);
    size_t namel = colon ? (size_t)(colon - h) : hl;
    if (!namel) return NC_EINVAL;
    memcpy(x->host, h, namel);
    x->host[namel] = 0;
    x->port = 4318;
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
        json_decref(o);
        return;
    }
    x->q[(x->qhead + x->qlen++) % x->qcap] = o;
    uv_mutex_unlock(&x->lock);
}

void nc_otlp_stats(nc_otlp *x, uint64_t *exported, uint64_t *dropped) {
    uv_mutex_lock(&x->lock);
    if (exported) *exported = x->exported;
    if (dropped) *dropped = x->dropped;
    uv_mutex_unlock(&x->lock);
}

/* ---- one export request ---------------------------------------------------------------------------- */

static void maybe_free(nc_otlp *x);
static void close_io(nc_otlp *x);

static void st_open(nc_stream *s, int err, const char *msg) {
    (void)msg;
    otlp_conn *c = (otlp_conn *)s;
    if (err) return; /* st_end reports it */
    if (nc_stream_write(s, c->req, c->req_len)) nc_dial_fail(&c->d, NC_ENOMEM, "out of memory");
}

static void st_data(nc_stream *s, const char *data, size_t len) {
    otlp_conn *c = (otlp_conn *)s;
    if (c->status) return;
    size_t room = sizeof c->head - c->head_len, n = len < room ? len : room;
    memcpy(c->head + c->head_len, data, n);
    c->head_len += n;
    int r = nc_http_status_parse(c->head, c->head_len);
    if (r == 0) return;
    if (r < 0) {
        nc_dial_fail(&c->d, NC_EPROTO, "not an HTTP response");
        return;
    }
    c->status = r;
    nc_dial_connected(&c->d);
    nc_stream_close(s, 0, NULL); /* all we need; the collector closes its side too (Connection: close) */
}

static void st_end(nc_stream *s, int err, const char *msg) {
    otlp_conn *c = (otlp_conn *)s;
    nc_dial_reason(&c->d, &err, &msg);
    nc_dial_end(&c->d, err, msg);
}

static void conn_ended(nc_dial *d, int err, const char *msg) {
    (void)err, (void)msg;
    otlp_conn *c = (otlp_conn *)d;
    nc_otlp *x = c->x;
    uv_mutex_lock(&x->lock);
    if (c->status >= 200 && c->status < 300)
        x->exported += c->nspans;
    else
        x->dropped += c->nspans; /* no retry: the next batch is already waiting */
    uv_mutex_unlock(&x->lock);
}

static void conn_free(nc_dial *d) {
    otlp_conn *c = (otlp_conn *)d;
    nc_otlp *x = c->x;
    free(c->req);
    free(c);
    x->inflight = NULL;
    if (x->closing) close_io(x); /* the last request is done: its writes no longer need the ioctx */
}

static const nc_stream_cbs stream_cbs = {st_open, st_data, NULL, st_end, nc_dial_stream_closed, NULL};
static const nc_dial_ops dial_ops = {conn_ended, conn_free, NULL};

static void send_batch(nc_otlp *x) {
    if (x->inflight) return;
    json_t *spans = json_array();
    if (!spans) return;
    uv_mutex_lock(&x->lock);
    size_t n = x->qlen < BATCH_MAX ? x->qlen : BATCH_MAX;
    for (size_t k = 0; k < n; k++) json_array_append_new(spans, x->q[(x->qhead + k) % x->qcap]);
    x->qhead = (x->qhead + n) % x->qcap;
    x->qlen -= n;
    uv_mutex_unlock(&x->lock);
    if (!n) {
        json_decref(spans);
        return;
    }
    json_t *body = json_pack("{s:[{s:{s:[{s:s, s:{s:s}}]}, s:[{s:{s:s}, s:o}]}]}", "resourceSpans",
                             "resource", "attributes", "key", "service.name", "value", "stringValue",
                             x->service, "scopeSpans", "scope", "name", "nestc", "spans", spans);
    char *js = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    otlp_conn *c = js ? calloc(1, sizeof *c) : NULL;
    nc_buf b = NC_BUF_INIT;
    char head[1024];
    int hl =
        snprintf(head, sizeof head,
                 "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 x->path, x->hosthdr, js ? strlen(js) : 0);
    if (!c || hl < 0 || (size_t)hl >= sizeof head || nc_buf_append(&b, head, (size_t)hl) ||
        nc_buf_append(&b, js, strlen(js))) {
        free(js);
        free(c);
        nc_buf_free(&b);
        uv_mutex_lock(&x->lock);
        x->dropped += n;
        uv_mutex_unlock(&x->lock);
        return;
    }
    free(js);
    c->x = x;
    c->req = b.data;
    c->req_len = b.len;
    c->nspans = n;
    x->inflight = c;
    nc_dial_start(&c->d, &x->io, x->host, x->port, NULL, NULL, EXCHANGE_TIMEOUT_MS, 0, &stream_cbs,
                  &dial_ops);
}

static void on_tick(uv_timer_t *t) {
    send_batch(t->data);
}

/* ---- life ------------------------------------------------------------------------------------------- */

int nc_otlp_new(nc_otlp **out, uv_loop_t *loop, const char *endpoint, const char *service, int queue_max,
                int batch_ms) {
    *out = NULL;
    nc_otlp *x = calloc(1, sizeof *x);
    if (!x) return NC_ENOMEM;
    int r = parse_endpoint(x, endpoint);
    if (r) {
        free(x);
        return r;
    }
    x->qcap = queue_max > 0 ? (size_t)queue_max : 2048;
    x->q = calloc(x->qcap, sizeof *x->q);
    x->service = strdup(service && *service ? service : "nestc");
    if (!x->q || !x->service || uv_mutex_init(&x->lock)) {
        free(x->q);
        free(x->service);
        free(x);
        return NC_ENOMEM;
    }
    if (nc_ioctx_init(&x->io, loop)) {
        uv_mutex_destroy(&x->lock);
        free(x->q);
        free(x->service);
        free(x);
        return NC_ENOMEM;
    }
    x->loop = loop;
    uv_timer_init(loop, &x->timer);
    x->timer.data = x;
    uint64_t every = batch_ms > 0 ? (uint64_t)batch_ms : 1000;
    uv_timer_start(&x->timer, on_tick, every, every);
    uv_unref((uv_handle_t *)&x->timer); /* the exporter alone never keeps a loop running */
    *out = x;
    return 0;
}

static void maybe_free(nc_otlp *x) {
    if (!x->closing || x->handles || x->inflight) return;
    for (size_t k = 0; k < x->qlen; k++) json_decref(x->q[(x->qhead + k) % x->qcap]);
    uv_mutex_destroy(&x->lock);
    free(x->io.rbuf);
    free(x->io.tlsbuf);
    free(x->q);
    free(x->service);
    free(x);
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

void nc_otlp_close(nc_otlp *x) {
    if (!x || x->closing) return;
    x->closing = 1;
    x->handles = 3;
    uv_close((uv_handle_t *)&x->timer, handle_closed);
    /* A request in flight is cut rather than awaited: the owner may be closing its loop right after
     * (an owned loop closes every handle left on it), and a handle must not be open then. The spans
     * still queued are dropped: at most one batch interval's worth (OTEL_BSP_SCHEDULE_DELAY). */
    otlp_conn *c = x->inflight;
    if (!c)
        close_io(x);
    else if (!nc_dial_close_early(&c->d))
        nc_stream_close(&c->d.st, NC_ECANCELED, "exporter closed");
}
