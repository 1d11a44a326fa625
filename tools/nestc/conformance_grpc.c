/* nestc conformance on grpc:// — the service of conformance.proto (DESIGN.md §5a), registered under the
 * keys NestJS's @GrpcMethod('Conformance', …) / @GrpcStreamMethod give it: {service, rpc, streaming}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "commands.h"
#include "util/base64.h"
#include "util/buf.h"

static double numbers_sum(const json_t *req) {
    double s = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(req, "numbers"), i, v) s += json_number_value(v);
    return s;
}

static void g_sum(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_pack("{s:o}", "sum", nc_json_number(numbers_sum(nc_msg_data(m)))));
}

static void g_echo(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_incref(nc_msg_data(m)));
}

static void g_exception(nc_request *req, const nc_msg *m, void *u) {
    json_t *d = nc_msg_data(m);
    json_int_t code = json_integer_value(json_object_get(d, "code"));
    const char *msg = json_string_value(json_object_get(d, "message"));
    if (!code) /* RpcException(message) */
        nc_reply_error_msg(req, msg ? msg : "");
    else /* RpcException({code, message}) */
        nc_reply_error(req, json_pack("{s:I,s:s}", "code", code, "message", msg ? msg : ""));
}

/* A timer that belongs to one request: Sleep's reply, Streaming's next item. */
typedef struct gtimer {
    uv_timer_t t;
    nc_request *req;
    json_t *items; /* Streaming */
    size_t next, stop;
    int fail_after;
    uint64_t delay;
    int report;          /* Streaming asked (x-nestc-report-buffered) for the backpressure trailers */
    int pauses;          /* times the client was not keeping up (nc_reply_writable said 0) */
    size_t max_buffered; /* the most reply bytes queued at once */
    json_t *reply;       /* Sleep */
} gtimer;

static void gt_closed(uv_handle_t *h) {
    gtimer *g = h->data;
    json_decref(g->items);
    json_decref(g->reply);
    free(g);
}

static void gt_done(gtimer *g) {
    uv_timer_stop(&g->t);
    uv_close((uv_handle_t *)&g->t, gt_closed);
}

static void gt_cancel(nc_request *req, void *arg) {
    gt_done(arg);
    nc_reply_end(req);
}

static gtimer *gt_new(nc_request *req) {
    gtimer *g = calloc(1, sizeof *g);
    if (!g) {
        nc_reply_error_msg(req, "out of memory");
        return NULL;
    }
    g->req = req;
    uv_timer_init(nc_request_loop(req), &g->t);
    g->t.data = g;
    nc_request_on_cancel(req, gt_cancel, g);
    return g;
}

static void sleep_fire(uv_timer_t *t) {
    gtimer *g = t->data;
    nc_reply(g->req, g->reply);
    g->reply = NULL;
    gt_done(g);
}

static void g_sleep(nc_request *req, const nc_msg *m, void *u) {
    json_int_t ms = json_integer_value(json_object_get(nc_msg_data(m), "ms"));
    if (ms < 0) ms = 0;
    gtimer *g = gt_new(req);
    if (!g) return;
    g->reply = json_pack("{s:I}", "ms", ms);
    uv_timer_start(&g->t, sleep_fire, (uint64_t)ms, 0);
}

/* With x-nestc-report-buffered in the request, the end carries what backpressure did, for the interop
 * test of a slow grpc-js reader (trailers x-nestc-pauses and x-nestc-max-buffered). */
static void stream_report(gtimer *g) {
    if (!g->report) return;
    char v[32];
    int n = snprintf(v, sizeof v, "%d", g->pauses);
    nc_reply_trailer(g->req, "x-nestc-pauses", v, (size_t)n);
    n = snprintf(v, sizeof v, "%zu", g->max_buffered);
    nc_reply_trailer(g->req, "x-nestc-max-buffered", v, (size_t)n);
}

static void stream_fire(uv_timer_t *t);

/* The client read enough of what was queued: the next item goes. */
static void stream_drained(nc_request *req, void *arg) {
    gtimer *g = arg;
    uv_timer_start(&g->t, stream_fire, g->delay, 0);
}

static void stream_fire(uv_timer_t *t) {
    gtimer *g = t->data;
    if (g->next < g->stop && nc_reply_writable(g->req) == 0) {
        g->pauses++; /* the client reads slowly: stream_drained goes on */
        return;
    }
    if (g->next == g->stop) {
        stream_report(g);
        if (g->fail_after > 0) {
            char msg[64];
            snprintf(msg, sizeof msg, "failed after %zu items", g->stop);
            nc_reply_error(g->req, json_pack("{s:i,s:s}", "code", 9, "message", msg));
        } else {
            nc_reply_end(g->req);
        }
        gt_done(g);
        return;
    }
    nc_reply_next(g->req, json_pack("{s:I,s:O}", "index", (json_int_t)g->next, "value",
                                    json_array_get(g->items, g->next)));
    g->next++;
    size_t b;
    if (g->report && !nc_reply_buffered(g->req, &b) && b > g->max_buffered) g->max_buffered = b;
    uv_timer_start(&g->t, stream_fire, g->delay, 0);
}

static void g_streaming(nc_request *req, const nc_msg *m, void *u) {
    json_t *d = nc_msg_data(m);
    gtimer *g = gt_new(req);
    if (!g) return;
    g->items = json_incref(json_is_array(json_object_get(d, "items")) ? json_object_get(d, "items") : NULL);
    if (!g->items) g->items = json_array();
    g->stop = json_array_size(g->items);
    g->fail_after = (int)json_integer_value(json_object_get(d, "fail_after"));
    if (g->fail_after > 0 && (size_t)g->fail_after < g->stop) g->stop = (size_t)g->fail_after;
    json_int_t delay = json_integer_value(json_object_get(d, "delay_ms"));
    g->delay = delay > 0 ? (uint64_t)delay : 0;
    g->report = nc_msg_header(m, "x-nestc-report-buffered", NULL) != NULL;
    nc_request_on_drain(req, 0, stream_drained, g); /* items wait while the client does not keep up */
    stream_fire(&g->t);
}

static void g_context(nc_request *req, const nc_msg *m, void *u) {
    json_t *md = json_object();
    const char *n, *v;
    size_t nl, vl;
    for (size_t i = 0; nc_msg_header_at(m, i, &n, &nl, &v, &vl) == 0; i++) {
        char name[256];
        if (nl >= sizeof name) continue;
        memcpy(name, n, nl);
        name[nl] = '\0';
        json_t *val;
        if (nl > 4 && !memcmp(n + nl - 4, "-bin", 4)) { /* binary values as base64, as the spec asks */
            nc_buf b = NC_BUF_INIT;
            nc_base64_encode(&b, v, vl);
            val = json_stringn(b.data ? b.data : "", b.len);
            nc_buf_free(&b);
        } else {
            val = json_stringn(v, vl);
        }
        if (val) json_object_set_new(md, name, val);
    }
    const char *path = nc_msg_channel(m);
    nc_reply(req, json_pack("{s:o,s:s}", "metadata", md, "method", path ? path : ""));
}

static void sum_value(nc_request *req, const char *json, size_t len, void *arg) {
    json_t *v = json_loadb(json, len, JSON_DECODE_ANY, NULL);
    *(double *)arg += numbers_sum(v);
    json_decref(v);
}

static void sum_end(nc_request *req, int err, void *arg) {
    double s = *(double *)arg;
    free(arg);
    if (err)
        nc_reply_error_msg(req, nc_strerror(err));
    else
        nc_reply(req, json_pack("{s:o}", "sum", nc_json_number(s)));
}

static void g_client_sum(nc_request *req, const nc_msg *m, void *u) {
    double *acc = calloc(1, sizeof *acc);
    if (!acc || nc_request_on_stream(req, sum_value, sum_end, acc)) {
        free(acc);
        nc_reply_error_msg(req, "cannot read the request stream");
    }
}

static void echo_value(nc_request *req, const char *json, size_t len, void *arg) {
    nc_reply_next(req, json_loadb(json, len, JSON_DECODE_ANY, NULL));
}

static void echo_end(nc_request *req, int err, void *arg) {
    if (err)
        nc_reply_error_msg(req, nc_strerror(err));
    else
        nc_reply_end(req);
}

static void g_bidi_echo(nc_request *req, const nc_msg *m, void *u) {
    if (nc_request_on_stream(req, echo_value, echo_end, NULL))
        nc_reply_error_msg(req, "cannot read the request stream");
}

static void method(nc_server *s, const char *rpc, const char *streaming, nc_request_fn fn) {
    char key[160];
    snprintf(key, sizeof key, "{\"service\":\"Conformance\",\"rpc\":\"%s\",\"streaming\":\"%s\"}", rpc,
             streaming);
    nc_server_message(s, key, fn, NULL);
}

void conformance_grpc_register(nc_server *s) {
    method(s, "Sum", "no_stream", g_sum);
    method(s, "Echo", "no_stream", g_echo);
    method(s, "Exception", "no_stream", g_exception);
    method(s, "Sleep", "no_stream", g_sleep);
    method(s, "Context", "no_stream", g_context);
    method(s, "Streaming", "no_stream", g_streaming);
    method(s, "ClientSum", "rx_stream", g_client_sum);
    method(s, "BidiEcho", "rx_stream", g_bidi_echo);
    /* Unimplemented: declared in the proto, no handler (status 12) */
}
