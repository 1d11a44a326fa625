/* The message model through a test-only transport registered at run time ("fake://"), since no shipped
 * transport settles yet: settling (auto-ack after the reply stream ends, manual ack/nack/reject, kept
 * events settled later from a timer with the strongest outcome, unmatched → reject, unsettled at server
 * free → nack with requeue), dispatch outcomes, the "JSON, else the raw string" flag, ordered headers and
 * the transport context, messages handed as parts, inbound streams, deadlines, and reply metadata. The
 * transport records every settle and every reply packet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "core/server_internal.h"
#include "nestc/nestc.h"
#include "transport/transport.h"

#include "loop_fixture.h"

/* ---- the fake transport ------------------------------------------------------------------------- */

typedef struct settled {
    uint64_t tag;
    nc_settle how;
} settled;

static settled settles[32];
static int nsettles;

typedef struct packet {
    char id[32];
    char response[64];
    int is_err, disposed, no_handler;
    size_t nheaders, ntrailers;
    char header0[32];
    int has_status, status;
    char trailer0[32];
} packet;

static packet pkts[32];
static int npkts;

static nc_server *fake_srv;

static int fake_create(nc_server *srv, const nc_url *url, void **state) {
    fake_srv = srv;
    *state = srv;
    return 0;
}
static int fake_listen(void *st) {
    return 0;
}
static void fake_stop(void *st) {}
static void fake_close(void *st) {
    nc_server__closed(st);
}
static void fake_destroy(void *st) {}
static void fake_settle(void *st, const nc_delivery *d, nc_settle how) {
    assert_true(d->set);
    assert_int_equal(d->conn, 7); /* the token comes back as given */
    settles[nsettles++] = (settled){d->tag, how};
}

static const char *const fake_schemes[] = {"fake", NULL};

static const nc_server_transport fake_tp = {
    .schemes = fake_schemes,
    .create = fake_create,
    .listen = fake_listen,
    .stop_accepting = fake_stop,
    .close = fake_close,
    .destroy = fake_destroy,
    .settle = fake_settle,
};

static void copy_n(char *dst, size_t cap, const char *p, size_t n) {
    if (!p) {
        dst[0] = '\0';
        return;
    }
    if (n >= cap) n = cap - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

static int peer_reply(void *peer, const nc_reply_pkt *p) {
    packet *k = &pkts[npkts++];
    memset(k, 0, sizeof *k);
    copy_n(k->id, sizeof k->id, p->id, p->id_len);
    copy_n(k->response, sizeof k->response, p->err ? p->err : p->response,
           p->err ? p->err_len : p->response_len);
    k->is_err = p->err != NULL;
    k->disposed = p->disposed;
    k->no_handler = p->no_handler;
    k->nheaders = p->nheaders;
    if (p->nheaders) copy_n(k->header0, sizeof k->header0, p->headers[0].value, p->headers[0].value_len);
    k->has_status = p->has_status;
    k->status = p->status;
    k->ntrailers = p->ntrailers;
    if (p->ntrailers) copy_n(k->trailer0, sizeof k->trailer0, p->trailers[0].value, p->trailers[0].value_len);
    return 0;
}
static int peer_refs;
static void peer_retain(void *peer) {
    peer_refs++;
}
static void peer_release(void *peer) {
    peer_refs--;
}
static const nc_peer_ops peer_ops = {peer_reply, peer_retain, peer_release, NULL, NULL, NULL};
static int the_peer;

/* Dispatches one body with delivery tag `tag` (0: nothing to settle); returns the outcome. */
static nc_dispatch_outcome deliver_in(const char *body, uint64_t tag, nc_inbound *in) {
    nc_dispatch_outcome oc = 99;
    in->peer = &the_peer;
    in->peer_ops = &peer_ops;
    in->delivery = (nc_delivery){tag, 7, tag != 0};
    in->outcome = &oc;
    char why[64];
    nc_server__dispatch(fake_srv, body ? body : "", body ? strlen(body) : 0, in, why, sizeof why);
    return oc;
}
static nc_dispatch_outcome deliver(const char *body, uint64_t tag) {
    nc_inbound in = {0};
    return deliver_in(body, tag, &in);
}

/* ---- handlers ----------------------------------------------------------------------------------- */

static nc_server *srv;
static nc_request *parked;
static int manual_mode; /* 1: take over settling; 2: reject before replying */

static void h_reply(nc_request *req, const nc_msg *m, void *u) {
    if (manual_mode) assert_int_equal(nc_request_settle_manually(req), 0);
    if (manual_mode == 2) assert_int_equal(nc_request_reject(req), 0);
    assert_int_equal(nc_reply(req, json_integer(1)), 0);
    parked = req;
}

static void h_park(nc_request *req, const nc_msg *m, void *u) {
    parked = req;
}

static nc_event *kept[4];
static int nkept, nevents_seen;
static void h_keep(const nc_msg *m, void *u) {
    nevents_seen++;
    kept[nkept] = nc_event_keep(m);
    assert_non_null(kept[nkept]);
    nkept++;
}
static void h_plain_event(const nc_msg *m, void *u) {
    nevents_seen++;
}

static void start(void) {
    nc_server_opts so = {.loop = &loop, .log_level = NC_LOG_OFF, .shutdown_timeout_ms = 10};
    assert_int_equal(nc_server_new(&srv, "fake://local:1", &so), 0);
    nc_server_message(srv, "reply", h_reply, NULL);
    nc_server_message(srv, "park", h_park, NULL);
    nc_server_event(srv, "keep", h_keep, NULL);
    nc_server_event(srv, "keep", h_keep, NULL);
    nc_server_event(srv, "plain", h_plain_event, NULL);
    assert_int_equal(nc_server_listen(srv), 0);
    nsettles = npkts = nkept = nevents_seen = manual_mode = 0;
    parked = NULL;
}

static void stop(void) {
    nc_server_free(srv);
    assert_int_equal(peer_refs, 0);
}

/* ---- settling ----------------------------------------------------------------------------------- */

static void test_auto_ack_after_reply(void **st) {
    start();
    assert_int_equal(deliver("{\"pattern\":\"reply\",\"data\":1,\"id\":\"1\"}", 11), NC_DISPATCH_HANDLED);
    assert_int_equal(npkts, 1);
    assert_int_equal(nsettles, 1);
    assert_int_equal(settles[0].tag, 11);
    assert_int_equal(settles[0].how, NC_SETTLE_ACK);
    /* settling a finished, auto-acked request is refused */
    assert_int_equal(nc_request_ack(parked), NC_ESTATE);
    /* a stream: acked when it ends, not at its first value */
    assert_int_equal(deliver("{\"pattern\":\"park\",\"data\":1,\"id\":\"2\"}", 12), NC_DISPATCH_HANDLED);
    assert_int_equal(nc_reply_next(parked, json_integer(1)), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(nsettles, 1);
    assert_int_equal(nc_reply_end(parked), 0);
    assert_int_equal(nsettles, 2);
    assert_int_equal(settles[1].how, NC_SETTLE_ACK);
    /* an error reply finishes (and acks) too */
    assert_int_equal(deliver("{\"pattern\":\"park\",\"data\":1,\"id\":\"3\"}", 13), NC_DISPATCH_HANDLED);
    assert_int_equal(nc_reply_error_msg(parked, "no"), 0);
    assert_int_equal(nsettles, 3);
    assert_int_equal(settles[2].how, NC_SETTLE_ACK);
    /* nothing to settle (delivery.set 0): the transport is not called */
    assert_int_equal(deliver("{\"pattern\":\"reply\",\"data\":1,\"id\":\"4\"}", 0), NC_DISPATCH_HANDLED);
    assert_int_equal(nsettles, 3);
    stop();
}

static void test_manual_settling(void **st) {
    start();
    manual_mode = 1;
    deliver("{\"pattern\":\"reply\",\"data\":1,\"id\":\"1\"}", 21);
    assert_int_equal(npkts, 1);              /* replied */
    assert_int_equal(nsettles, 0);           /* not settled: the handler does it */
    assert_non_null(nc_request_msg(parked)); /* alive until settled */
    assert_int_equal(nc_reply(parked, json_true()), NC_ESTATE);
    assert_int_equal(nc_request_nack(parked, true), 0);
    assert_int_equal(nsettles, 1);
    assert_int_equal(settles[0].how, NC_SETTLE_NACK_REQUEUE);
    assert_int_equal(nc_request_ack(parked), NC_ESTATE); /* once per message */
    assert_null(nc_request_msg(parked));
    /* settled before replying: the reply still goes, the settle is not repeated */
    manual_mode = 2;
    deliver("{\"pattern\":\"reply\",\"data\":1,\"id\":\"2\"}", 22);
    assert_int_equal(npkts, 2);
    assert_int_equal(nsettles, 2);
    assert_int_equal(settles[1].tag, 22);
    assert_int_equal(settles[1].how, NC_SETTLE_REJECT);
    /* nack without requeue */
    manual_mode = 1;
    deliver("{\"pattern\":\"reply\",\"data\":1,\"id\":\"3\"}", 23);
    assert_int_equal(nc_request_nack(parked, false), 0);
    assert_int_equal(settles[2].how, NC_SETTLE_NACK);
    stop();
}

static void test_unmatched_and_failed(void **st) {
    start();
    assert_int_equal(deliver("{\"pattern\":\"nobody\",\"data\":1,\"id\":\"1\"}", 31), NC_DISPATCH_NO_HANDLER);
    assert_int_equal(npkts, 1);
    assert_true(pkts[0].no_handler);
    assert_int_equal(settles[0].how, NC_SETTLE_REJECT);
    assert_int_equal(deliver("{\"pattern\":\"nobody\",\"data\":1}", 32), NC_DISPATCH_NO_HANDLER);
    assert_int_equal(nsettles, 2);
    assert_int_equal(settles[1].how, NC_SETTLE_REJECT);
    assert_int_equal(deliver("not json", 33), NC_DISPATCH_FAILED);
    assert_int_equal(nsettles, 3);
    assert_int_equal(settles[2].how, NC_SETTLE_REJECT);
    /* NC_IN_JSON_OR_STRING: the raw string is an event on the route */
    nc_inbound in = {.route = "plain", .channel = "plain", .flags = NC_IN_JSON_OR_STRING};
    assert_int_equal(deliver_in("not json", 34, &in), NC_DISPATCH_HANDLED);
    assert_int_equal(nevents_seen, 1);
    assert_int_equal(settles[3].how, NC_SETTLE_ACK);
    /* an event nobody keeps: acked when its handlers return */
    assert_int_equal(deliver("{\"pattern\":\"plain\",\"data\":1}", 35), NC_DISPATCH_HANDLED);
    assert_int_equal(nsettles, 5);
    assert_int_equal(settles[4].tag, 35);
    assert_int_equal(settles[4].how, NC_SETTLE_ACK);
    stop();
}

static int timer_fired;
static void settle_later(uv_timer_t *t) {
    /* after asynchronous work: the message is still readable, then each keeper settles */
    const nc_msg *m = nc_event_msg(kept[0]);
    assert_non_null(m);
    assert_string_equal(nc_msg_route(m), "keep");
    size_t n;
    const char *d = nc_msg_data_json(m, &n);
    assert_int_equal(n, 7);
    assert_memory_equal(d, "[1,2,3]", 7);
    assert_ptr_equal(nc_event_loop(kept[0]), &loop);
    assert_int_equal(nc_event_ack(kept[0]), 0);
    assert_int_equal(nsettles, 0); /* the other keeper has not settled */
    assert_int_equal(nc_event_ack(kept[0]), NC_ESTATE);
    assert_null(nc_event_msg(kept[0]));
    assert_int_equal(nc_event_nack(kept[1], true), 0);
    timer_fired = 1;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_kept_event_settled_later(void **st) {
    start();
    char body[64];
    snprintf(body, sizeof body, "{\"pattern\":\"keep\",\"data\":[1,2,3]}");
    assert_int_equal(deliver(body, 41), NC_DISPATCH_HANDLED);
    memset(body, 'x', sizeof body); /* the packet is gone: the kept message has its own copy */
    assert_int_equal(nkept, 2);
    assert_ptr_not_equal(kept[0], kept[1]);
    assert_int_equal(nsettles, 0);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    timer_fired = 0;
    uv_timer_start(&t, settle_later, 5, 0);
    while (!timer_fired) uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(nsettles, 1); /* once, with the strongest outcome */
    assert_int_equal(settles[0].tag, 41);
    assert_int_equal(settles[0].how, NC_SETTLE_NACK_REQUEUE);
    /* keep outside an event handler's message: refused */
    assert_null(nc_event_keep(NULL));
    /* reject wins over ack */
    deliver("{\"pattern\":\"keep\",\"data\":1}", 42);
    assert_int_equal(nc_event_reject(kept[2]), 0);
    assert_int_equal(nc_event_ack(kept[3]), 0);
    assert_int_equal(nsettles, 2);
    assert_int_equal(settles[1].how, NC_SETTLE_REJECT);
    stop();
}

static void test_unsettled_at_free_are_requeued(void **st) {
    start();
    deliver("{\"pattern\":\"park\",\"data\":1,\"id\":\"1\"}", 51); /* never answered */
    nc_request *unanswered = parked;
    manual_mode = 1;
    deliver("{\"pattern\":\"reply\",\"data\":1,\"id\":\"2\"}", 52); /* answered, never settled */
    deliver("{\"pattern\":\"keep\",\"data\":1}", 53);               /* kept, never settled */
    assert_int_equal(nsettles, 0);
    nc_server_free(srv);
    assert_int_equal(nsettles, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(settles[i].how, NC_SETTLE_NACK_REQUEUE);
    assert_int_equal(nc_request_ack(unanswered), NC_ESTATE);
    assert_int_equal(nc_event_ack(kept[0]), NC_ESTATE);
    assert_int_equal(peer_refs, 0);
}

/* ---- headers, context, parts ---------------------------------------------------------------------- */

static int checked;
static void check_msg(const nc_msg *m) {
    assert_int_equal(nc_msg_header_count(m), 3);
    size_t n;
    const char *v = nc_msg_header(m, "a", &n);
    assert_non_null(v);
    assert_memory_equal(v, "1", n);
    assert_null(nc_msg_header(m, "A", &n)); /* case-sensitive */
    const char *name, *val;
    size_t nl, vl;
    assert_int_equal(nc_msg_header_at(m, 2, &name, &nl, &val, &vl), 0);
    assert_int_equal(nl, 1);
    assert_memory_equal(val, "3\0x", 3); /* byte values */
    assert_int_equal(nc_msg_header_at(m, 3, &name, &nl, &val, &vl), NC_ENOENT);
    json_t *want = json_pack("{s:s,s:s}", "a", "1", "b", "2"); /* a repeated name keeps its first value */
    assert_true(json_equal(nc_msg_headers(m), want));
    json_decref(want);
    const char *subj = nc_msg_ctx_str(m, NC_CTX_SUBJECT, &n);
    assert_non_null(subj);
    assert_memory_equal(subj, "orders.1", n);
    int64_t part = 0;
    assert_int_equal(nc_msg_ctx_int(m, NC_CTX_PARTITION, &part), 0);
    assert_int_equal(part, 5);
    assert_int_equal(nc_msg_ctx_int(m, NC_CTX_OFFSET, &part), NC_ENOENT);
    assert_null(nc_msg_ctx_str(m, NC_CTX_PARTITION, &n)); /* a number, not text */
    checked++;
}
static void h_check_event(const nc_msg *m, void *u) {
    check_msg(m);
}

static void test_headers_and_context(void **st) {
    start();
    nc_server_event(srv, "hdr", h_check_event, NULL);
    char hbytes[] = "a1b2a3\0x";
    nc_header hs[3] = {
        {hbytes, 1, hbytes + 1, 1}, {hbytes + 2, 1, hbytes + 3, 1}, {hbytes + 4, 1, hbytes + 5, 3}};
    nc_ctx_item ctx[2] = {{NC_CTX_SUBJECT, "orders.1", 8, 0}, {NC_CTX_PARTITION, NULL, 0, 5}};
    nc_inbound in = {.headers = hs, .nheaders = 3, .ctx = ctx, .nctx = 2};
    checked = 0;
    deliver_in("{\"pattern\":\"hdr\",\"data\":1}", 0, &in); /* borrowed by the stack event */
    assert_int_equal(checked, 1);
    nc_inbound in2 = {.headers = hs, .nheaders = 3, .ctx = ctx, .nctx = 2};
    deliver_in("{\"pattern\":\"park\",\"data\":1,\"id\":\"1\"}", 0, &in2);
    memset(hbytes, '?', sizeof hbytes); /* the request has its own copy */
    check_msg(nc_request_msg(parked));
    nc_reply_end(parked);
    stop();
}

static void h_parts(nc_request *req, const nc_msg *m, void *u) {
    parked = req;
    assert_string_equal(nc_msg_pattern(m), "orders");
    json_t *d = nc_msg_data(m);
    assert_true(json_is_string(d));
    assert_string_equal(json_string_value(d), "hello \"x\"");
    nc_reply(req, json_true());
}

static void test_parts(void **st) {
    start();
    nc_server_message(srv, "orders", h_parts, NULL);
    nc_inbound_parts p = {
        .pattern = "orders", .id = "abc", .id_len = 3, .data = "hello \"x\"", .data_len = 9};
    nc_inbound in = {.parts = &p};
    assert_int_equal(deliver_in(NULL, 61, &in), NC_DISPATCH_HANDLED);
    assert_int_equal(npkts, 1);
    assert_string_equal(pkts[0].id, "\"abc\""); /* a raw id is echoed as a JSON string */
    assert_string_equal(pkts[0].response, "true");
    assert_int_equal(settles[0].how, NC_SETTLE_ACK);
    /* JSON parts: the id echoed as given, the data as JSON */
    nc_inbound_parts q = {
        .id = "42", .id_len = 2, .id_is_json = 1, .data = "[1, 2]", .data_len = 6, .data_is_json = 1};
    nc_inbound in2 = {.parts = &q, .route = "reply"};
    assert_int_equal(deliver_in(NULL, 0, &in2), NC_DISPATCH_HANDLED);
    assert_string_equal(pkts[1].id, "42");
    /* JSON data the fast scanner leaves to the DOM parser (an exponent, an escaped key, a lone surrogate):
     * still JSON, still dispatched (the Kafka server hands every record value this way) */
    const char *slow = "[1e308,{\"k\\\"\":\"\\ud83d\"}]";
    nc_inbound_parts q2 = {
        .id = "43", .id_len = 2, .id_is_json = 1, .data = slow, .data_len = strlen(slow), .data_is_json = 1};
    nc_inbound in2b = {.parts = &q2, .route = "reply"};
    assert_int_equal(deliver_in(NULL, 0, &in2b), NC_DISPATCH_HANDLED);
    /* an event as parts, not JSON data under JSON_OR_STRING */
    nc_inbound_parts e = {
        .pattern = "plain", .data = "{oops", .data_len = 5, .data_is_json = 1, .is_event = 1};
    nc_inbound in3 = {.parts = &e, .flags = NC_IN_JSON_OR_STRING};
    assert_int_equal(deliver_in(NULL, 0, &in3), NC_DISPATCH_HANDLED);
    assert_int_equal(nevents_seen, 1);
    nc_inbound in4 = {.parts = &e};
    assert_int_equal(deliver_in(NULL, 0, &in4), NC_DISPATCH_FAILED);
    stop();
}

/* ---- inbound streams, deadlines, reply metadata ---------------------------------------------------- */

static char got[128];
static int ended = -1;
static void on_sval(nc_request *req, const char *json, size_t len, void *arg) {
    strncat(got, json, len);
    strcat(got, ";");
}
static void on_send(nc_request *req, int err, void *arg) {
    ended = err;
    nc_reply(req, json_string(got));
}

static void test_inbound_stream(void **st) {
    start();
    uint64_t token = 0;
    nc_inbound in = {.stream_in = 1, .stream_token = &token};
    deliver_in("{\"pattern\":\"park\",\"data\":null,\"id\":\"1\"}", 0, &in);
    assert_true(token != 0);
    got[0] = '\0';
    ended = -1;
    /* before the handler subscribes: buffered */
    assert_int_equal(nc_server__stream_value(srv, token, "1", 1), 0);
    assert_int_equal(nc_server__stream_value(srv, token, "{\"a\":2}", 7), 0);
    assert_int_equal(nc_request_on_stream(parked, on_sval, on_send, NULL), 0);
    assert_string_equal(got, "1;{\"a\":2};");
    assert_int_equal(nc_request_on_stream(parked, on_sval, on_send, NULL), NC_ESTATE);
    assert_int_equal(nc_server__stream_value(srv, token, "3", 1), 0);
    assert_int_equal(nc_server__stream_end(srv, token, 0), 0);
    assert_int_equal(ended, 0);
    assert_string_equal(pkts[0].response, "\"1;{\\\"a\\\":2};3;\"");
    /* the request finished: a late feed is dropped */
    assert_int_equal(nc_server__stream_value(srv, token, "4", 1), NC_ESTATE);
    assert_int_equal(nc_server__stream_end(srv, token, 0), NC_ESTATE);
    /* a request without an inbound stream */
    deliver("{\"pattern\":\"park\",\"data\":null,\"id\":\"2\"}", 0);
    assert_int_equal(nc_request_on_stream(parked, on_sval, on_send, NULL), NC_EUNSUPPORTED);
    nc_reply_end(parked);
    /* a bound: a handler that never reads ends the stream with NC_ETOOBIG */
    token = 0;
    nc_inbound in2 = {.stream_in = 1, .stream_token = &token};
    deliver_in("{\"pattern\":\"park\",\"data\":null,\"id\":\"3\"}", 0, &in2);
    int r = 0;
    for (int i = 0; i < 100 && r == 0; i++) r = nc_server__stream_value(srv, token, "0", 1);
    assert_int_equal(r, NC_ETOOBIG);
    got[0] = '\0';
    assert_int_equal(nc_request_on_stream(parked, on_sval, on_send, NULL), 0);
    assert_int_equal(ended, NC_ETOOBIG);
    stop();
}

static int deadline_cancelled;
static void on_deadline(nc_request *req, void *arg) {
    deadline_cancelled++;
    nc_reply_end(req);
}

static void test_deadline(void **st) {
    start();
    nc_inbound in = {.deadline_ms = 20};
    deliver_in("{\"pattern\":\"park\",\"data\":null,\"id\":\"1\"}", 71, &in);
    nc_request_on_cancel(parked, on_deadline, NULL);
    deadline_cancelled = 0;
    uint64_t t0 = uv_now(&loop);
    while (!deadline_cancelled) uv_run(&loop, UV_RUN_ONCE);
    assert_true(uv_now(&loop) - t0 >= 15);
    assert_int_equal(npkts, 0); /* cancelled: the end went nowhere */
    assert_int_equal(settles[0].how, NC_SETTLE_ACK);
    /* a request answered before its deadline: its timer goes with it */
    nc_inbound in2 = {.deadline_ms = 20};
    deliver_in("{\"pattern\":\"reply\",\"data\":null,\"id\":\"2\"}", 0, &in2);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(deadline_cancelled, 1);
    stop();
}

static void test_reply_metadata(void **st) {
    start();
    deliver("{\"pattern\":\"park\",\"data\":null,\"id\":\"1\"}", 0);
    assert_int_equal(nc_reply_header(parked, "x-a", "1", 1), 0);
    assert_int_equal(nc_reply_header(parked, "x-a", "2", 1), 0); /* repeated names allowed */
    assert_int_equal(nc_reply_status(parked, 5, "not found"), 0);
    assert_int_equal(nc_reply_trailer(parked, "t", "v", 1), 0);
    assert_int_equal(nc_reply_next(parked, json_integer(1)), 0);
    nc_ioctx_flush(nc_server__io(srv)); /* the end of the loop iteration: the held value goes alone */
    assert_int_equal(nc_reply_header(parked, "late", "x", 1), NC_ESTATE);
    assert_int_equal(nc_reply_next(parked, json_integer(2)), 0);
    assert_int_equal(nc_reply_end(parked), 0);
    assert_int_equal(npkts, 2);
    assert_int_equal(pkts[0].nheaders, 2);
    assert_string_equal(pkts[0].header0, "1");
    assert_false(pkts[0].has_status);
    assert_int_equal(pkts[1].nheaders, 0);
    assert_true(pkts[1].disposed);
    assert_true(pkts[1].has_status);
    assert_int_equal(pkts[1].status, 5);
    assert_int_equal(pkts[1].ntrailers, 1);
    assert_string_equal(pkts[1].trailer0, "v");
    assert_int_equal(nc_reply_status(parked, 0, NULL), NC_ESTATE);
    stop();
}

static int setup(void **st) {
    assert_int_equal(nc_transport_register_server(&fake_tp), 0);
    return loop_setup(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_ack_after_reply),
        cmocka_unit_test(test_manual_settling),
        cmocka_unit_test(test_unmatched_and_failed),
        cmocka_unit_test(test_kept_event_settled_later),
        cmocka_unit_test(test_unsettled_at_free_are_requeued),
        cmocka_unit_test(test_headers_and_context),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_inbound_stream),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_reply_metadata),
    };
    return cmocka_run_group_tests(tests, setup, loop_teardown);
}
