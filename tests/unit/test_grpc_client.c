/* The grpc:// client against the grpc:// server on one loop: the four call shapes, metadata both ways,
 * the status → error mapping (code, details, headers, trailers), a deadline, a cancel reaching the
 * handler, a 4 MB message, an unknown method, UNIMPLEMENTED, a refused connection and a lost one. */
#include <string.h>
#include <unistd.h>

#include "loop_fixture.h"
#include "util/buf.h"

#ifndef NESTC_VECTORS_DIR
#error "NESTC_VECTORS_DIR must point at tests/vectors"
#endif
#define PROTO NESTC_VECTORS_DIR "/grpc/conformance.proto"
#define M(x) "nestc.conformance.Conformance/" x

static nc_server *srv;

/* ---- handlers ---------------------------------------------------------------------------------------- */

static double numbers_sum(const json_t *v) {
    double s = 0;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(v, "numbers"), i, x) s += json_number_value(x);
    return s;
}

static void h_sum(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_pack("{s:o}", "sum", nc_json_number(numbers_sum(nc_msg_data(m)))));
}

static void h_echo(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_incref(nc_msg_data(m)));
}

static void h_exception(nc_request *req, const nc_msg *m, void *u) {
    json_int_t code = json_integer_value(json_object_get(nc_msg_data(m), "code"));
    nc_reply_header(req, "x-reply", "h", 1);
    nc_reply_trailer(req, "x-t", "t", 1);
    if (code)
        nc_reply_error(req, json_pack("{s:I,s:s}", "code", code, "message", "coded"));
    else
        nc_reply_error_msg(req, "plain 100%");
}

static int cancelled, sleeping;
static int64_t sleep_deadline; /* NC_CTX_TIMEOUT_MS of the last Sleep call: the grpc-timeout it came with */
static void on_cancelled(nc_request *req, void *arg) {
    cancelled++;
    nc_reply_end(req);
}
/* Sleep never answers by itself: it ends when cancelled (RST_STREAM, the deadline). */
static void h_sleep(nc_request *req, const nc_msg *m, void *u) {
    sleeping++;
    sleep_deadline = -1;
    nc_msg_ctx_int(m, NC_CTX_TIMEOUT_MS, &sleep_deadline);
    nc_request_on_cancel(req, on_cancelled, NULL);
}

static void h_streaming(nc_request *req, const nc_msg *m, void *u) {
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(nc_msg_data(m), "items"), i, x)
        nc_reply_next(req, json_pack("{s:i,s:O}", "index", (int)i, "value", x));
    nc_reply_end(req);
}

static void h_context(nc_request *req, const nc_msg *m, void *u) {
    size_t n;
    const char *a = nc_msg_header(m, "x-a", &n);
    const char *b = nc_msg_header(m, "x-b-bin", &n);
    /* x-b-bin arrives decoded: the 3 bytes 00 01 02 */
    int bin_ok = b && n == 3 && b[0] == 0 && b[1] == 1 && b[2] == 2;
    json_t *md = json_pack("{s:s,s:s}", "x-a", a ? "b" : "missing", "x-b-bin", bin_ok ? "ok" : "bad");
    nc_reply_header(req, "x-back", "yes", 3);
    nc_reply(req, json_pack("{s:o,s:s}", "metadata", md, "method", nc_msg_channel(m)));
}

static void sum_value(nc_request *req, const char *json, size_t len, void *arg) {
    json_t *v = json_loadb(json, len, JSON_DECODE_ANY, NULL);
    *(double *)arg += numbers_sum(v);
    json_decref(v);
}
static void sum_end(nc_request *req, int err, void *arg) {
    nc_reply(req, json_pack("{s:o}", "sum", nc_json_number(*(double *)arg)));
    free(arg);
}
static void h_client_sum(nc_request *req, const nc_msg *m, void *u) {
    nc_request_on_stream(req, sum_value, sum_end, calloc(1, sizeof(double)));
}

static void echo_value(nc_request *req, const char *json, size_t len, void *arg) {
    nc_reply_next(req, json_loadb(json, len, JSON_DECODE_ANY, NULL));
}
static void echo_end(nc_request *req, int err, void *arg) {
    nc_reply_end(req);
}
static void h_bidi(nc_request *req, const nc_msg *m, void *u) {
    nc_request_on_stream(req, echo_value, echo_end, NULL);
}

/* ---- the client's side -------------------------------------------------------------------------------- */

typedef struct res {
    int done, err, nvalues;
    json_t *values; /* array */
    json_t *error;
    int has_status, code;
    char hdr[32], trl[32];
} res;

static void r_value(void *u, json_t *v) {
    res *r = u;
    json_array_append(r->values, v);
    r->nvalues++;
}

static void r_done(void *u, int err, json_t *e) {
    res *r = u;
    r->err = err;
    r->error = json_incref(e);
    r->done = 1;
}

/* with a call handle: the status, a header and a trailer are read in on_done */
static nc_call *cur;
static void r_done_call(void *u, int err, json_t *e) {
    res *r = u;
    const char *msg;
    r->has_status = nc_call_status(cur, &r->code, &msg) == 1;
    size_t n;
    const char *h = nc_call_header(cur, "x-reply", &n);
    if (!h) h = nc_call_header(cur, "x-back", &n);
    if (h) snprintf(r->hdr, sizeof r->hdr, "%.*s", (int)n, h);
    const char *t = nc_call_trailer(cur, "x-t", &n);
    if (t) snprintf(r->trl, sizeof r->trl, "%.*s", (int)n, t);
    r_done(u, err, e);
}

static void res_init(res *r) {
    memset(r, 0, sizeof *r);
    r->values = json_array();
}
static void res_free(res *r) {
    json_decref(r->values);
    json_decref(r->error);
}

static int connected;
static void on_conn(void *u, int err, json_t *e) {
    connected = err ? -1 : 1;
}

static nc_client *client(int timeout_ms) {
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", nc_server_port(srv));
    nc_option opts[] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 2, .timeout_ms = timeout_ms};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    connected = 0;
    assert_int_equal(nc_client_connect(c, on_conn, NULL), 0);
    while (!connected) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(connected, 1);
    return c;
}

static void call(nc_client *c, const char *method, const char *data, res *r) {
    json_t *d = data ? json_loads(data, 0, NULL) : NULL;
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done_call};
    assert_int_equal(nc_client_call(c, method, d, NULL, &cbs, r, &cur), 0);
    json_decref(d);
    run_until(&r->done, 1);
}

static void test_unary(void **st) {
    nc_client *c = client(30000 * time_factor());
    res r;
    res_init(&r);
    call(c, M("Sum"), "{\"numbers\":[1,2,3.5]}", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nvalues, 1);
    assert_true(json_number_value(json_object_get(json_array_get(r.values, 0), "sum")) == 6.5);
    assert_true(r.has_status);
    assert_int_equal(r.code, 0);
    res_free(&r);
    /* NestJS's {service, rpc} form names the same method, the service relative to its package */
    res_init(&r);
    call(c, "{\"service\":\"Conformance\",\"rpc\":\"Sum\"}", "{\"numbers\":[2]}", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nvalues, 1);
    res_free(&r);
    /* no data: {} */
    res_init(&r);
    call(c, M("Sum"), NULL, &r);
    assert_int_equal(r.err, 0);
    res_free(&r);
    nc_client_free(c);
}

static void test_status(void **st) {
    nc_client *c = client(30000 * time_factor());
    res r;
    res_init(&r);
    call(c, M("Exception"), "{\"code\":5}", &r);
    assert_int_equal(r.err, NC_EREMOTE);
    assert_int_equal(json_integer_value(json_object_get(r.error, "code")), 5);
    assert_string_equal(json_string_value(json_object_get(r.error, "details")), "coded");
    assert_true(r.has_status);
    assert_int_equal(r.code, 5);
    assert_string_equal(r.trl, "t"); /* trailers-only: the handler's header travels with the status */
    res_free(&r);
    res_init(&r);
    call(c, M("Exception"), "{\"code\":0}", &r);
    assert_int_equal(r.err, NC_EREMOTE);
    assert_int_equal(json_integer_value(json_object_get(r.error, "code")), 2);
    assert_string_equal(json_string_value(json_object_get(r.error, "details")), "plain 100%");
    res_free(&r);
    res_init(&r);
    call(c, M("Unimplemented"), "{}", &r);
    assert_int_equal(json_integer_value(json_object_get(r.error, "code")), 12);
    res_free(&r);
    /* a method the .proto does not have fails at once, locally */
    res_init(&r);
    call(c, M("Nope"), "{}", &r);
    assert_int_equal(r.err, NC_EINVAL);
    res_free(&r);
    /* a request that is not the input message: refused before anything is sent */
    res_init(&r);
    call(c, M("Sum"), "{\"numbers\":\"x\"}", &r);
    assert_int_equal(r.err, NC_EINVAL);
    res_free(&r);
    res_init(&r);
    call(c, M("Sum"), "{\"unknown\":1}", &r);
    assert_int_equal(r.err, NC_EINVAL);
    res_free(&r);
    nc_client_free(c);
}

static void test_server_stream(void **st) {
    nc_client *c = client(30000 * time_factor());
    res r;
    res_init(&r);
    call(c, M("Streaming"), "{\"items\":[\"a\",\"b\",\"c\"]}", &r);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nvalues, 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.values, 2), "value")), "c");
    res_free(&r);
    nc_client_free(c);
}

static void test_client_stream(void **st) {
    nc_client *c = client(30000 * time_factor());
    res r;
    res_init(&r);
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done_call};
    assert_int_equal(nc_client_call(c, M("ClientSum"), NULL, NULL, &cbs, &r, &cur), 0);
    for (int i = 1; i <= 4; i++) {
        json_t *v = json_pack("{s:[i]}", "numbers", i);
        assert_int_equal(nc_call_write(cur, v), 0);
        json_decref(v);
    }
    assert_int_equal(nc_call_end(cur), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    assert_true(json_number_value(json_object_get(json_array_get(r.values, 0), "sum")) == 10);
    res_free(&r);
    /* an empty request stream */
    res_init(&r);
    assert_int_equal(nc_client_call(c, M("ClientSum"), NULL, NULL, &cbs, &r, &cur), 0);
    assert_int_equal(nc_call_end(cur), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nvalues, 1);
    res_free(&r);
    nc_client_free(c);
}

/* A client-streaming call held in a client bulkhead's queue (nestc/policy.h): the values written and the
 * end made while it waits are kept, and follow the request once a slot frees (ClientSum adds them). */
static void test_held_client_stream(void **st) {
    nc_client *c = client(30000 * time_factor());
    nc_bulkhead_opts bo = {
        .struct_size = sizeof bo, .max_in_flight = 1, .max_queue = 1, .max_wait_ms = 30000 * time_factor()};
    nc_bulkhead *b;
    assert_true(nc_client_use_bulkhead(c, &bo, &b) > 0);
    res ra, rb;
    res_init(&ra);
    res_init(&rb);
    nc_call *a, *hb;
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done};
    assert_int_equal(nc_client_call(c, M("ClientSum"), NULL, NULL, &cbs, &ra, &a), 0);
    assert_int_equal(nc_client_call(c, M("ClientSum"), NULL, NULL, &cbs, &rb, &hb), 0);
    assert_int_equal(nc_bulkhead_queued(b), 1);
    for (int i = 1; i <= 3; i++) { /* written while it waits */
        json_t *v = json_pack("{s:[i]}", "numbers", i * 10);
        assert_int_equal(nc_call_write(hb, v), 0);
        json_decref(v);
    }
    assert_int_equal(nc_call_end(hb), 0);
    json_t *v = json_pack("{s:[i]}", "numbers", 5);
    assert_int_equal(nc_call_write(a, v), 0);
    json_decref(v);
    assert_int_equal(nc_call_end(a), 0); /* a ends: b goes */
    run_until(&ra.done, 1);
    run_until(&rb.done, 1);
    assert_int_equal(ra.err, 0);
    assert_int_equal(rb.err, 0);
    assert_true(json_number_value(json_object_get(json_array_get(ra.values, 0), "sum")) == 5);
    assert_true(json_number_value(json_object_get(json_array_get(rb.values, 0), "sum")) == 60);
    assert_int_equal(nc_bulkhead_queued(b), 0);
    res_free(&ra);
    res_free(&rb);
    nc_client_free(c);
}

/* A plain send (nc_client_send) on a client-streaming or bidi method: the data is the one
 * request message, then the half-close, as NestJS's ClientGrpcProxy sends a one-element Observable. The
 * request stream used to stay open until the client's timeout. */
static void test_send_stream(void **st) {
    nc_client *c = client(3000 * time_factor()); /* the old behaviour: NC_ETIMEDOUT after it */
    res r;
    res_init(&r);
    json_t *d = json_pack("{s:[i,i]}", "numbers", 3, 4);
    assert_int_equal(nc_client_send(c, M("ClientSum"), d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    assert_true(run_until_ms(&r.done, 1, 2000));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nvalues, 1);
    assert_true(json_number_value(json_object_get(json_array_get(r.values, 0), "sum")) == 7);
    res_free(&r);
    /* no data: one empty message */
    res_init(&r);
    assert_int_equal(nc_client_send(c, M("ClientSum"), NULL, NULL, r_value, r_done, &r), 0);
    assert_true(run_until_ms(&r.done, 1, 2000));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nvalues, 1);
    res_free(&r);
    /* bidi: the one message echoed, then the end */
    res_init(&r);
    d = json_pack("{s:s}", "text", "once");
    assert_int_equal(nc_client_send(c, M("BidiEcho"), d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    assert_true(run_until_ms(&r.done, 1, 2000));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nvalues, 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.values, 0), "text")), "once");
    res_free(&r);
    nc_client_free(c);
    /* a call ended while it still waits for the connection: it goes out with its data, half-closed (the end
     * used to fail with NC_ECONNCLOSED) */
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", nc_server_port(srv));
    nc_option opts[] = {{"protoPath", PROTO}};
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 1, .timeout_ms = 3000 * time_factor()};
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    res_init(&r);
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done};
    d = json_pack("{s:[i]}", "numbers", 2);
    assert_int_equal(nc_client_call(c, M("ClientSum"), d, NULL, &cbs, &r, &cur), 0);
    json_decref(d);
    assert_int_equal(nc_call_end(cur), 0);
    assert_int_equal(nc_call_end(cur), NC_ESTATE);
    assert_true(run_until_ms(&r.done, 1, 2000));
    assert_int_equal(r.err, 0);
    assert_true(json_number_value(json_object_get(json_array_get(r.values, 0), "sum")) == 2);
    res_free(&r);
    /* the blocking send too (it used to wait for the timeout) */
    json_t *reply = NULL, *error = NULL;
    d = json_pack("{s:[i,i]}", "numbers", 4, 5);
    assert_int_equal(nc_client_send_sync(c, M("ClientSum"), d, NULL, &reply, &error), 0);
    json_decref(d);
    assert_null(error);
    assert_true(json_number_value(json_object_get(reply, "sum")) == 9);
    json_decref(reply);
    nc_client_free(c);
}

static void test_bidi(void **st) {
    nc_client *c = client(30000 * time_factor());
    res r;
    res_init(&r);
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done_call};
    json_t *first = json_pack("{s:s}", "text", "one");
    assert_int_equal(nc_client_call(c, M("BidiEcho"), first, NULL, &cbs, &r, &cur), 0);
    json_decref(first);
    run_until(&r.nvalues, 1); /* echoed before the half-close */
    json_t *v = json_pack("{s:s}", "text", "two");
    assert_int_equal(nc_call_write(cur, v), 0);
    json_decref(v);
    run_until(&r.nvalues, 2);
    assert_int_equal(r.done, 0);
    assert_int_equal(nc_call_end(cur), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.values, 1), "text")), "two");
    res_free(&r);
    nc_client_free(c);
}

static void test_metadata(void **st) {
    nc_client *c = client(30000 * time_factor());
    res r;
    res_init(&r);
    json_t *h = json_pack("{s:s,s:s}", "X-A", "b", "x-b-bin", "AAEC");
    nc_call_opts o = {.headers = h};
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done_call};
    json_t *d = json_object();
    assert_int_equal(nc_client_call(c, M("Context"), d, &o, &cbs, &r, &cur), 0);
    json_decref(d);
    json_decref(h);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    json_t *md = json_object_get(json_array_get(r.values, 0), "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "x-a")), "b");
    assert_string_equal(json_string_value(json_object_get(md, "x-b-bin")), "ok");
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.values, 0), "method")),
                        "/nestc.conformance.Conformance/Context");
    assert_string_equal(r.hdr, "yes"); /* the response metadata */
    res_free(&r);
    nc_client_free(c);
}

/* A Sleep call that outlives its timeout (`co`, else the client's): it fails with the core's timeout or
 * the server's DEADLINE_EXCEEDED, whichever comes first, and the handler is cancelled (grpc-timeout, or
 * our RST_STREAM). */
static void sleep_past_deadline(nc_client *c, const nc_call_opts *co) {
    res r;
    res_init(&r);
    int before = cancelled;
    json_t *d = json_loads("{\"ms\":100000}", 0, NULL);
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done_call};
    assert_int_equal(nc_client_call(c, M("Sleep"), d, co, &cbs, &r, &cur), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_true(r.err == NC_ETIMEDOUT ||
                (r.err == NC_EREMOTE && json_integer_value(json_object_get(r.error, "code")) == 4));
    run_until(&cancelled, before + 1);
    res_free(&r);
}

static void test_deadline(void **st) {
    nc_client *c = client(100 * time_factor());
    sleep_past_deadline(c, NULL);
    nc_client_free(c);
}

/* A call's own timeout, shorter than the client's, is the grpc-timeout the server sees (it was the
 * client's until the core handed transports the time left). */
static void test_call_deadline_sent(void **st) {
    nc_client *c = client(30000 * time_factor());
    nc_call_opts co = {.timeout_ms = 300 * time_factor()};
    sleep_past_deadline(c, &co);
    assert_true(sleep_deadline > 0 && sleep_deadline <= 300 * time_factor());
    nc_client_free(c);
}

static void test_cancel(void **st) {
    nc_client *c = client(30000 * time_factor());
    res r;
    res_init(&r);
    int before = cancelled;
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done};
    json_t *d = json_pack("{s:i}", "ms", 100000);
    assert_int_equal(nc_client_call(c, M("Sleep"), d, NULL, &cbs, &r, &cur), 0);
    json_decref(d);
    /* the call reaches the handler, then is cancelled: RST_STREAM(CANCEL) cancels it there */
    int in = sleeping;
    while (sleeping == in) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(nc_call_cancel(cur), 0);
    assert_int_equal(r.err, NC_ECANCELED);
    run_until(&cancelled, before + 1);
    res_free(&r);
    nc_client_free(c);
}

static void test_big(void **st) {
    nc_client *c = client(30000 * time_factor());
    res r;
    res_init(&r);
    size_t n = 4000000;
    char *t = malloc(n + 1);
    memset(t, 'x', n);
    t[n] = '\0';
    json_t *d = json_pack("{s:s}", "text", t);
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done};
    assert_int_equal(nc_client_call(c, M("Echo"), d, NULL, &cbs, &r, &cur), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(json_string_length(json_object_get(json_array_get(r.values, 0), "text")), n);
    res_free(&r);
    /* past the server's 4 MiB: RESOURCE_EXHAUSTED */
    res_init(&r);
    size_t big = 5u << 20;
    t = realloc(t, big + 1);
    memset(t, 'y', big);
    t[big] = '\0';
    d = json_pack("{s:s}", "text", t);
    assert_int_equal(nc_client_call(c, M("Echo"), d, NULL, &cbs, &r, &cur), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_int_equal(r.err, NC_EREMOTE);
    assert_int_equal(json_integer_value(json_object_get(r.error, "code")), 8);
    res_free(&r);
    free(t);
    nc_client_free(c);
}

static void test_refused(void **st) {
    /* a port nobody listens on: a server started and freed */
    nc_option opts[] = {{"protoPath", PROTO}};
    nc_server_opts so = {.loop = &loop, .options = opts, .noptions = 1};
    nc_server *s2;
    assert_int_equal(nc_server_new(&s2, "grpc://127.0.0.1:0", &so), 0);
    assert_int_equal(nc_server_listen(s2), 0);
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", nc_server_port(s2));
    nc_server_free(s2);
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 1};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    res r;
    res_init(&r);
    json_t *d = json_object();
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_int_equal(r.err, NC_ECONNREFUSED);
    res_free(&r);
    nc_client_free(c);
    /* a .proto that does not load fails the client's creation */
    nc_option bad[] = {{"protoPath", "/nonexistent.proto"}};
    co.options = bad;
    nc_client *c2 = NULL;
    assert_int_not_equal(nc_client_new(&c2, url, &co), 0);
}

/* The server goes away under a call in flight: the call fails with UNAVAILABLE; the next call reconnects. */
static void test_lost(void **st) {
    nc_option opts[] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    nc_server_opts so = {.loop = &loop, .options = opts, .noptions = 2, .shutdown_timeout_ms = 1};
    nc_server *s2;
    assert_int_equal(nc_server_new(&s2, "grpc://127.0.0.1:0", &so), 0);
    nc_server_message(s2, "{\"service\":\"Conformance\",\"rpc\":\"Sleep\",\"streaming\":\"no_stream\"}",
                      h_sleep, NULL);
    nc_server_message(s2, "{\"service\":\"Conformance\",\"rpc\":\"Sum\",\"streaming\":\"no_stream\"}", h_sum,
                      NULL);
    assert_int_equal(nc_server_listen(s2), 0);
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", nc_server_port(s2));
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 2};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    res r;
    res_init(&r);
    json_t *d = json_object();
    int before = sleeping;
    assert_int_equal(nc_client_send(c, M("Sleep"), d, NULL, r_value, r_done, &r), 0);
    run_until(&sleeping, before + 1); /* the call is in the handler */
    nc_server_free(s2);
    run_until(&r.done, 1);
    assert_int_equal(r.err, NC_EREMOTE);
    assert_int_equal(json_integer_value(json_object_get(r.error, "code")), 14);
    res_free(&r);
    /* the next call connects again (to the group's server now refusing: a new connection attempt) */
    res_init(&r);
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, NC_ECONNREFUSED);
    res_free(&r);
    json_decref(d);
    nc_client_free(c);
}

/* The client's own cap on response messages (maxReceiveMessageLength): a larger one resets the stream and
 * ends the call with 8, read from the prefix; the connection serves the next call. */
static void test_response_cap(void **st) {
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", nc_server_port(srv));
    nc_option opts[] = {{"protoPath", PROTO}, {"keepCase", "true"}, {"maxReceiveMessageLength", "64"}};
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 3, .timeout_ms = 30000 * time_factor()};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    res r;
    res_init(&r);
    char text[200];
    memset(text, 'z', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    json_t *d = json_pack("{s:s}", "text", text);
    assert_int_equal(nc_client_send(c, M("Echo"), d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_int_equal(r.err, NC_EREMOTE);
    assert_int_equal(json_integer_value(json_object_get(r.error, "code")), 8);
    assert_int_equal(r.nvalues, 0);
    res_free(&r);
    res_init(&r);
    d = json_pack("{s:s}", "text", "small");
    assert_int_equal(nc_client_send(c, M("Echo"), d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    res_free(&r);
    nc_client_free(c);
}

/* A peer that is not a gRPC server (an HTTP/1.1 server's answer, then close): the call fails, nothing
 * hangs or crashes. */
static uv_tcp_t raw_listener;
static void raw_written(uv_write_t *w, int status) {
    uv_close((uv_handle_t *)w->data, (uv_close_cb)free);
    free(w);
}
/* A loopback listener on a free port for the test's own peers; returns the port. */
static int loopback_listen(uv_tcp_t *l, uv_connection_cb conn_cb) {
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, l);
    assert_int_equal(uv_tcp_bind(l, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)l, 8, conn_cb), 0);
    struct sockaddr_in b;
    int bl = sizeof b;
    uv_tcp_getsockname(l, (struct sockaddr *)&b, &bl);
    return ntohs(b.sin_port);
}
static void raw_conn(uv_stream_t *l, int status) {
    static char answer[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
    uv_tcp_t *t = malloc(sizeof *t);
    uv_tcp_init(&loop, t);
    assert_int_equal(uv_accept(l, (uv_stream_t *)t), 0);
    uv_write_t *w = malloc(sizeof *w);
    w->data = t;
    uv_buf_t b = uv_buf_init(answer, sizeof answer - 1);
    uv_write(w, (uv_stream_t *)t, &b, 1, raw_written);
}
static void test_not_grpc_server(void **st) {
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", loopback_listen(&raw_listener, raw_conn));
    nc_option opts[] = {{"protoPath", PROTO}};
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 1, .timeout_ms = 30000 * time_factor()};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    res r;
    res_init(&r);
    json_t *d = json_object();
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_int_not_equal(r.err, 0);
    assert_int_not_equal(r.err, NC_ETIMEDOUT); /* the failure is seen, not waited out */
    res_free(&r);
    nc_client_free(c);
    uv_close((uv_handle_t *)&raw_listener, NULL);
}

/* ---- GOAWAY, queued writes, keepalive, compression ------------------------------------------------------
 */

static nc_server *server_with(nc_option *extra, size_t nextra) {
    nc_option opts[8] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    for (size_t i = 0; i < nextra; i++) opts[2 + i] = extra[i];
    nc_server_opts so = {.loop = &loop, .options = opts, .noptions = 2 + nextra, .shutdown_timeout_ms = 1};
    nc_server *s;
    assert_int_equal(nc_server_new(&s, "grpc://127.0.0.1:0", &so), 0);
    nc_server_message(s, "{\"service\":\"Conformance\",\"rpc\":\"Sleep\",\"streaming\":\"no_stream\"}",
                      h_sleep, NULL);
    nc_server_message(s, "{\"service\":\"Conformance\",\"rpc\":\"Sum\",\"streaming\":\"no_stream\"}", h_sum,
                      NULL);
    nc_server_message(s, "{\"service\":\"Conformance\",\"rpc\":\"Echo\",\"streaming\":\"no_stream\"}", h_echo,
                      NULL);
    nc_server_message(s, "{\"service\":\"Conformance\",\"rpc\":\"ClientSum\",\"streaming\":\"rx_stream\"}",
                      h_client_sum, NULL);
    assert_int_equal(nc_server_listen(s), 0);
    return s;
}

static nc_client *client_of(nc_server *s, nc_option *extra, size_t nextra, int connect) {
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", nc_server_port(s));
    nc_option opts[8] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    for (size_t i = 0; i < nextra; i++) opts[2 + i] = extra[i];
    nc_client_opts co = {
        .loop = &loop, .options = opts, .noptions = 2 + nextra, .timeout_ms = 30000 * time_factor()};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    if (connect) {
        connected = 0;
        assert_int_equal(nc_client_connect(c, on_conn, NULL), 0);
        run_until(&connected, 1);
        assert_int_equal(connected, 1);
    }
    return c;
}

/* A Sleep call with data d, once its handler is sleeping (the server's, counted in `sleeping`). */
static nc_call *sleeping_call(nc_client *c, json_t *d, res *r) {
    nc_call *k;
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done};
    int before = sleeping;
    assert_int_equal(nc_client_call(c, M("Sleep"), d, NULL, &cbs, r, &k), 0);
    run_until(&sleeping, before + 1);
    return k;
}

/* A server's GOAWAY (maxConnectionAgeMs 100: one every ~100 ms, graceful) while a call is in flight on the
 * old connection: every call made after it goes to a new connection and succeeds (it failed with "the
 * server is closing the connection" before), and the call in flight finishes on the old one (here:
 * cancelled, which still reaches its handler there). */
static void test_goaway_new_calls(void **st) {
    nc_option age[] = {{"maxConnectionAgeMs", "100"}};
    nc_server *s = server_with(age, 1);
    nc_client *c = client_of(s, NULL, 0, 1);
    res slow;
    res_init(&slow);
    json_t *d = json_object();
    nc_call *sc = sleeping_call(c, d, &slow);
    uv_update_time(&loop);
    uint64_t end = uv_now(&loop) + 500; /* five ages: several GOAWAYs, each to a connection with calls */
    int calls = 0;
    while (uv_now(&loop) < end) {
        res r;
        res_init(&r);
        json_t *n = json_pack("{s:[i,i]}", "numbers", 2, calls);
        assert_int_equal(nc_client_send(c, M("Sum"), n, NULL, r_value, r_done, &r), 0);
        json_decref(n);
        run_until(&r.done, 1);
        if (r.err) fprintf(stderr, "call %d: %d %s\n", calls, r.err, json_dumps(r.error, JSON_ENCODE_ANY));
        assert_int_equal(r.err, 0);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(r.values, 0), "sum")), 2 + calls);
        res_free(&r);
        calls++;
    }
    assert_true(calls > 5);
    assert_int_equal(slow.done, 0); /* still open on the first connection, past its GOAWAY */
    int was = cancelled;
    nc_call_cancel(sc);
    run_until(&cancelled, was + 1); /* the RST_STREAM went out on the old connection */
    res_free(&slow);
    json_decref(d);
    nc_client_free(c);
    nc_server_free(s);
}

/* The connection dialled after a GOAWAY: the status goes "reconnecting" at the GOAWAY and "connected" again
 * once the new connection is up, and a refused dial is tried again after retry_delay_ms, retry_attempts times
 * in a row, the call waiting meanwhile (before, the replacement sent no status and its first refusal failed
 * the call); past the attempts the call fails and the status is "disconnected". */
static char statuses[8][16];
static int nstatus, nerrors, server_closed;
static void on_status(void *u, const char *status, int err) {
    if (nstatus < 8) snprintf(statuses[nstatus], sizeof statuses[0], "%s", status);
    nstatus++;
}
static void on_error(void *u, int err, const char *msg) {
    nerrors++;
}
static void on_server_closed(void *u) {
    server_closed = 1;
}
static void close_server(nc_server *s) {
    server_closed = 0;
    nc_server_close(s, on_server_closed, NULL);
    run_until(&server_closed, 1);
    nc_server_free(s);
}
static int sum_on(nc_client *c) {
    res r;
    res_init(&r);
    json_t *n = json_pack("{s:[i,i]}", "numbers", 1, 2);
    assert_int_equal(nc_client_send(c, M("Sum"), n, NULL, r_value, r_done, &r), 0);
    json_decref(n);
    run_until(&r.done, 1);
    int err = r.err;
    res_free(&r);
    return err;
}

static void test_goaway_reconnect(void **st) {
    nc_server *s = server_with(NULL, 0);
    int port = nc_server_port(s);
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", port);
    nc_option opts[] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    nc_client_opts co = {.loop = &loop,
                         .options = opts,
                         .noptions = 2,
                         .timeout_ms = 30000 * time_factor(),
                         .retry_attempts = 2,
                         .retry_delay_ms = 50};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    nstatus = nerrors = 0;
    nc_client_on_status(c, on_status, NULL);
    nc_client_on_error(c, on_error, NULL);
    assert_int_equal(sum_on(c), 0);
    assert_int_equal(nstatus, 1);
    assert_string_equal(statuses[0], "connected");
    /* the server closes gracefully (GOAWAY): the client has no connection for new calls */
    close_server(s);
    run_until(&nstatus, 2);
    assert_string_equal(statuses[1], "reconnecting");
    /* the next call dials, is refused, and waits; the server comes back before the next attempt */
    res r;
    res_init(&r);
    json_t *n = json_pack("{s:[i,i]}", "numbers", 1, 2);
    assert_int_equal(nc_client_send(c, M("Sum"), n, NULL, r_value, r_done, &r), 0);
    json_decref(n);
    run_until(&nerrors, 1);
    assert_int_equal(r.done, 0);
    nc_option o2[] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    nc_server_opts so = {.loop = &loop, .options = o2, .noptions = 2, .shutdown_timeout_ms = 1};
    char surl[64];
    snprintf(surl, sizeof surl, "grpc://127.0.0.1:%d", port);
    assert_int_equal(nc_server_new(&s, surl, &so), 0);
    nc_server_message(s, "{\"service\":\"Conformance\",\"rpc\":\"Sum\",\"streaming\":\"no_stream\"}", h_sum,
                      NULL);
    assert_int_equal(nc_server_listen(s), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    res_free(&r);
    assert_int_equal(nstatus, 3);
    assert_string_equal(statuses[2], "connected");
    /* gone for good: two more attempts, then the call fails and the client says so */
    close_server(s);
    run_until(&nstatus, 4);
    assert_string_equal(statuses[3], "reconnecting");
    int errors = nerrors;
    assert_int_not_equal(sum_on(c), 0);
    assert_int_equal(nerrors, errors + 3); /* the first dial and its two retries */
    assert_int_equal(nstatus, 5);
    assert_string_equal(statuses[4], "disconnected");
    nc_client_free(c);
}

/* maxConnectionAgeGraceMs: after the age GOAWAY, a call still open when the grace ends is cut (the
 * connection closed): the client sees UNAVAILABLE, the handler its cancel. */
static void test_age_grace(void **st) {
    nc_option age[] = {{"maxConnectionAgeMs", "50"}, {"maxConnectionAgeGraceMs", "100"}};
    nc_server *s = server_with(age, 2);
    nc_client *c = client_of(s, NULL, 0, 1);
    res r;
    res_init(&r);
    json_t *d = json_object();
    int was = cancelled;
    assert_int_equal(nc_client_send(c, M("Sleep"), d, NULL, r_value, r_done, &r), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, NC_EREMOTE);
    assert_int_equal(json_integer_value(json_object_get(r.error, "code")), 14);
    run_until(&cancelled, was + 1);
    res_free(&r);
    /* the next call gets a new connection */
    res_init(&r);
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    res_free(&r);
    json_decref(d);
    nc_client_free(c);
    nc_server_free(s);
}

/* nc_call_write on a call still waiting for the connection: the messages are kept, in order, and go
 * after the request (it failed with NC_ECONNCLOSED before); ended while waiting too. */
static void test_write_while_connecting(void **st) {
    nc_client *c = client_of(srv, NULL, 0, 0);
    res r;
    res_init(&r);
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done};
    nc_call *k;
    json_t *first = json_pack("{s:[i]}", "numbers", 1);
    assert_int_equal(nc_client_call(c, M("ClientSum"), first, NULL, &cbs, &r, &k), 0);
    json_decref(first);
    for (int i = 2; i <= 4; i++) {
        json_t *m = json_pack("{s:[i]}", "numbers", i);
        assert_int_equal(nc_call_write(k, m), 0);
        json_decref(m);
    }
    assert_int_equal(nc_call_end(k), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r.values, 0), "sum")), 10);
    res_free(&r);
    /* bidi, ended later: the writes made while waiting come back first, in order */
    res_init(&r);
    nc_client_close(c);
    assert_int_equal(nc_client_call(c, M("BidiEcho"), NULL, NULL, &cbs, &r, &k), 0);
    for (int i = 0; i < 3; i++) {
        json_t *m = json_pack("{s:s}", "text", i == 0 ? "a" : i == 1 ? "b" : "c");
        assert_int_equal(nc_call_write(k, m), 0);
        json_decref(m);
    }
    run_until(&r.nvalues, 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.values, 2), "text")), "c");
    assert_int_equal(nc_call_end(k), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    res_free(&r);
    nc_client_free(c);
}

/* A bounded queue: a write that would pass max_send_buffer_size while waiting is refused. */
static void test_write_queue_bound(void **st) {
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", nc_server_port(srv));
    nc_option opts[] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    nc_client_opts co = {.loop = &loop,
                         .options = opts,
                         .noptions = 2,
                         .timeout_ms = 30000 * time_factor(),
                         .max_send_buffer_size = 4096};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    res r;
    res_init(&r);
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done};
    nc_call *k;
    assert_int_equal(nc_client_call(c, M("BidiEcho"), NULL, NULL, &cbs, &r, &k), 0);
    char text[3000];
    memset(text, 'q', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    json_t *m = json_pack("{s:s}", "text", text);
    assert_int_equal(nc_call_write(k, m), 0);
    assert_int_equal(nc_call_write(k, m), NC_ESTALLED);
    json_decref(m);
    assert_int_equal(nc_call_end(k), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nvalues, 1);
    res_free(&r);
    nc_client_free(c);
}

/* A peer that accepts and then never answers anything (no SETTINGS, no PING ACK): with keepaliveTimeMs
 * the call fails with UNAVAILABLE within keepalive time + timeout, not at its 30 s deadline. */
static uv_tcp_t mute_listener;
static void mute_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    static char sink[4096];
    *b = uv_buf_init(sink, sizeof sink);
}
static nc_buf mute_bytes;
static int gz_seen;
static void mute_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    if (n < 0) {
        uv_close((uv_handle_t *)s, (uv_close_cb)free);
        return;
    }
    nc_buf_append(&mute_bytes, b->base, (size_t)n);
    /* a gRPC message prefix with the Compressed-Flag (1, then a 4-byte length), then gzip's magic 1f 8b */
    for (size_t i = 0; i + 7 <= mute_bytes.len; i++)
        if (mute_bytes.data[i] == 1 && (uint8_t)mute_bytes.data[i + 5] == 0x1f &&
            (uint8_t)mute_bytes.data[i + 6] == 0x8b)
            gz_seen = 1;
}
static void mute_conn(uv_stream_t *l, int status) {
    uv_tcp_t *t = malloc(sizeof *t);
    uv_tcp_init(&loop, t);
    assert_int_equal(uv_accept(l, (uv_stream_t *)t), 0);
    uv_read_start((uv_stream_t *)t, mute_alloc, mute_read);
}
static int mute_listen(void) {
    return loopback_listen(&mute_listener, mute_conn);
}
static void test_keepalive_dead_peer(void **st) {
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", mute_listen());
    nc_option opts[] = {{"protoPath", PROTO}, {"keepaliveTimeMs", "50"}, {"keepaliveTimeoutMs", "100"}};
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 3, .timeout_ms = 30000 * time_factor()};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    res r;
    res_init(&r);
    json_t *d = json_object();
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_int_equal(r.err, NC_EREMOTE);
    assert_int_equal(json_integer_value(json_object_get(r.error, "code")), 14);
    assert_non_null(strstr(json_string_value(json_object_get(r.error, "details")), "keepalive"));
    assert_true(uv_now(&loop) - t0 < 5000u * (unsigned)time_factor());
    res_free(&r);
    nc_client_free(c);
    uv_close((uv_handle_t *)&mute_listener, NULL);
}

/* Keepalive against a server that answers: PINGs every 20 ms over a 200 ms call, the call served. */
static void test_keepalive_alive(void **st) {
    nc_option ka[] = {{"keepaliveTimeMs", "20"}, {"keepaliveTimeoutMs", "5000"}};
    nc_client *c = client_of(srv, ka, 2, 1);
    res r;
    res_init(&r);
    json_t *d = json_object();
    nc_call *k = sleeping_call(c, d, &r);
    int never = 0;
    run_until_ms(&never, 1, 200);
    assert_int_equal(r.done, 0);
    nc_call_cancel(k);
    res_free(&r);
    res_init(&r);
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    res_free(&r);
    json_decref(d);
    nc_client_free(c);
}

/* defaultCompressionAlgorithm on the client: every request message compressed (grpc-encoding gzip or
 * deflate, the flag set), read by the server; the bytes on the wire (caught by a peer that only reads) hold a
 * message with the Compressed-Flag set and gzip's magic. */
static void test_compressed_requests(void **st) {
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", mute_listen());
    nc_option zo[] = {{"protoPath", PROTO}, {"defaultCompressionAlgorithm", "gzip"}};
    nc_client_opts co = {.loop = &loop, .options = zo, .noptions = 2, .timeout_ms = 30000 * time_factor()};
    nc_client *mc;
    assert_int_equal(nc_client_new(&mc, url, &co), 0);
    res mr;
    res_init(&mr);
    json_t *md = json_pack("{s:s}", "text", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
    gz_seen = 0;
    assert_int_equal(nc_client_send(mc, M("Echo"), md, NULL, r_value, r_done, &mr), 0);
    json_decref(md);
    run_until(&gz_seen, 1);
    nc_client_free(mc);
    res_free(&mr);
    nc_buf_free(&mute_bytes);
    uv_close((uv_handle_t *)&mute_listener, NULL);
    const char *algs[] = {"gzip", "deflate"};
    for (int i = 0; i < 2; i++) {
        nc_option z[] = {{"defaultCompressionAlgorithm", algs[i]}};
        nc_client *c = client_of(srv, z, 1, 1);
        res r;
        res_init(&r);
        char text[5000];
        memset(text, 'z', sizeof text - 1);
        text[sizeof text - 1] = '\0';
        json_t *d = json_pack("{s:s}", "text", text);
        assert_int_equal(nc_client_send(c, M("Echo"), d, NULL, r_value, r_done, &r), 0);
        json_decref(d);
        run_until(&r.done, 1);
        assert_int_equal(r.err, 0);
        assert_int_equal(strlen(json_string_value(json_object_get(json_array_get(r.values, 0), "text"))),
                         sizeof text - 1);
        res_free(&r);
        /* client streaming: each message compressed */
        res_init(&r);
        nc_call *k;
        nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done};
        json_t *m = json_pack("{s:[i,i]}", "numbers", 3, 4);
        assert_int_equal(nc_client_call(c, M("ClientSum"), m, NULL, &cbs, &r, &k), 0);
        assert_int_equal(nc_call_write(k, m), 0);
        json_decref(m);
        assert_int_equal(nc_call_end(k), 0);
        run_until(&r.done, 1);
        assert_int_equal(r.err, 0);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(r.values, 0), "sum")), 14);
        res_free(&r);
        nc_client_free(c);
    }
}

/* nc_server_set_health: statuses the application sets, seen by Check, Watch and List (grpc.health.v1, the
 * health.proto grpc-health-check carries); a transport without a health service says NC_EUNSUPPORTED. */
static const char health_proto[] =
    "syntax = \"proto3\"; package grpc.health.v1;\n"
    "message HealthListRequest {}\n"
    "message HealthListResponse { map<string, HealthCheckResponse> statuses = 1; }\n"
    "message HealthCheckRequest { string service = 1; }\n"
    "message HealthCheckResponse { enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2;\n"
    " SERVICE_UNKNOWN = 3; } ServingStatus status = 1; }\n"
    "service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse);\n"
    " rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);\n"
    " rpc List(HealthListRequest) returns (HealthListResponse); }\n";

static int check_status(nc_client *c, const char *service) {
    res r;
    res_init(&r);
    json_t *d = json_pack("{s:s}", "service", service);
    assert_int_equal(nc_client_send(c, "grpc.health.v1.Health/Check", d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    run_until(&r.done, 1);
    int st = r.err ? -(int)json_integer_value(json_object_get(r.error, "code"))
                   : (int)json_integer_value(json_object_get(json_array_get(r.values, 0), "status"));
    res_free(&r);
    return st; /* the status, or minus the gRPC code of the error */
}

static void test_set_health(void **st) {
    char path[128];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/nestc-health-XXXXXX", tmp && *tmp && strlen(tmp) < 80 ? tmp : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, health_proto, sizeof health_proto - 1), (ssize_t)(sizeof health_proto - 1));
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", nc_server_port(srv));
    nc_option opts[] = {{"protoPath", path}};
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 1, .timeout_ms = 30000 * time_factor()};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    const char *svc = "nestc.conformance.Conformance";
    assert_int_equal(check_status(c, svc), NC_HEALTH_SERVING);
    assert_int_equal(check_status(c, "my.Custom"), -5); /* unknown: NOT_FOUND */
    /* a watch of a name not served yet: SERVICE_UNKNOWN, then what the application sets */
    res w;
    res_init(&w);
    json_t *d = json_pack("{s:s}", "service", "my.Custom");
    nc_call *wc;
    nc_call_cbs cbs = {.on_value = r_value, .on_done = r_done};
    assert_int_equal(nc_client_call(c, "grpc.health.v1.Health/Watch", d, NULL, &cbs, &w, &wc), 0);
    json_decref(d);
    run_until(&w.nvalues, 1);
    assert_int_equal(nc_server_set_health(srv, "my.Custom", NC_HEALTH_SERVING), 0);
    run_until(&w.nvalues, 2);
    assert_int_equal(nc_server_set_health(srv, "my.Custom", NC_HEALTH_NOT_SERVING), 0);
    run_until(&w.nvalues, 3);
    int want[] = {3, 1, 2};
    for (int i = 0; i < 3; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(w.values, (size_t)i), "status")),
                         want[i]);
    assert_int_equal(check_status(c, "my.Custom"), NC_HEALTH_NOT_SERVING);
    nc_call_cancel(wc);
    res_free(&w);
    /* a served service and the server as a whole, set and set back */
    assert_int_equal(nc_server_set_health(srv, svc, NC_HEALTH_NOT_SERVING), 0);
    assert_int_equal(nc_server_set_health(srv, "", NC_HEALTH_NOT_SERVING), 0);
    assert_int_equal(check_status(c, svc), NC_HEALTH_NOT_SERVING);
    assert_int_equal(check_status(c, ""), NC_HEALTH_NOT_SERVING);
    nc_server_health h;
    assert_int_equal(nc_server_health_get(srv, &h), 0);
    assert_int_equal(h.ready, 0); /* the admin endpoint's /health/ready follows the server's own status */
    /* List carries what was set */
    res r;
    res_init(&r);
    d = json_object();
    assert_int_equal(nc_client_send(c, "grpc.health.v1.Health/List", d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    json_t *all = json_object_get(json_array_get(r.values, 0), "statuses");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(all, "my.Custom"), "status")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(all, svc), "status")), 2);
    res_free(&r);
    assert_int_equal(nc_server_set_health(srv, svc, NC_HEALTH_SERVICE_UNKNOWN), 0);
    assert_int_equal(check_status(c, svc), -5);
    assert_int_equal(nc_server_set_health(srv, svc, NC_HEALTH_SERVING), 0);
    assert_int_equal(nc_server_set_health(srv, "", NC_HEALTH_SERVING), 0);
    assert_int_equal(check_status(c, svc), NC_HEALTH_SERVING);
    assert_int_equal(nc_server_health_get(srv, &h), 0);
    assert_int_equal(h.ready, 1);
    assert_int_equal(nc_server_set_health(srv, "", 7), NC_EINVAL);
    nc_client_free(c);
    unlink(path);
    /* no health service: a TCP server, and gRPC with healthCheck=false */
    nc_server *t;
    nc_server_opts so = {.loop = &loop};
    assert_int_equal(nc_server_new(&t, "tcp://127.0.0.1:0", &so), 0);
    assert_int_equal(nc_server_set_health(t, "", NC_HEALTH_SERVING), NC_EUNSUPPORTED);
    nc_server_free(t);
    nc_option off[] = {{"healthCheck", "false"}};
    t = server_with(off, 1);
    assert_int_equal(nc_server_set_health(t, "", NC_HEALTH_SERVING), NC_EUNSUPPORTED);
    nc_server_free(t);
}

/* A stream above a GOAWAY's last-stream-id never reached a handler: it is sent again, transparently, on a
 * new connection (it failed with 14 "the server refused the stream" before). The first connection is
 * answered with SETTINGS and GOAWAY(last-stream-id 0) and kept open; the next ones are piped to the
 * suite's server. */
typedef struct pipe_end {
    uv_tcp_t t;
    struct pipe_end *other;
    uv_connect_t cr;
} pipe_end;
static uv_tcp_t goaway_listener;
static int goaway_accepts, goaway_then_close;
static void pipe_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    *b = uv_buf_init(malloc(65536), 65536);
}
static void pipe_written(uv_write_t *w, int status) {
    free(w->data);
    free(w);
}
static void pipe_closed(uv_handle_t *h) {
    free(h);
}
static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    pipe_end *e = (pipe_end *)s;
    if (n < 0) {
        free(b->base);
        if (e->other) {
            e->other->other = NULL;
            uv_close((uv_handle_t *)&e->other->t, pipe_closed);
        }
        uv_close((uv_handle_t *)&e->t, pipe_closed);
        return;
    }
    if (n == 0 || !e->other) {
        free(b->base);
        return;
    }
    uv_write_t *w = malloc(sizeof *w);
    w->data = b->base;
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    uv_write(w, (uv_stream_t *)&e->other->t, &out, 1, pipe_written);
}
static void pipe_connected(uv_connect_t *cr, int status) {
    pipe_end *up = cr->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&up->t, pipe_alloc, pipe_read);
    uv_read_start((uv_stream_t *)&up->other->t, pipe_alloc, pipe_read);
}
static void goaway_conn(uv_stream_t *l, int status) {
    pipe_end *down = calloc(1, sizeof *down);
    uv_tcp_init(&loop, &down->t);
    assert_int_equal(uv_accept(l, (uv_stream_t *)&down->t), 0);
    if (goaway_accepts++ == 0) {
        /* SETTINGS (empty), then GOAWAY last-stream-id 0 NO_ERROR; what the client sends is read and dropped
         */
        static char frames[] = {0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        uv_write_t *w = malloc(sizeof *w);
        w->data = NULL;
        uv_buf_t b = uv_buf_init(frames, sizeof frames);
        uv_write(w, (uv_stream_t *)&down->t, &b, 1, pipe_written);
        uv_read_start((uv_stream_t *)&down->t, pipe_alloc, pipe_read);
        if (goaway_then_close) uv_close((uv_handle_t *)l, NULL); /* the next connection is refused */
        return;
    }
    pipe_end *up = calloc(1, sizeof *up);
    uv_tcp_init(&loop, &up->t);
    up->other = down;
    down->other = up;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", nc_server_port(srv), &a);
    up->cr.data = up;
    uv_tcp_connect(&up->cr, &up->t, (const struct sockaddr *)&a, pipe_connected);
}
static void listener_closed(uv_handle_t *h) {
    *(int *)h->data = 1;
}
static int goaway_listen(int then_close) {
    goaway_accepts = 0;
    goaway_then_close = then_close;
    return loopback_listen(&goaway_listener, goaway_conn);
}
static void test_refused_retried(void **st) {
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", goaway_listen(0));
    nc_option opts[] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 2, .timeout_ms = 30000 * time_factor()};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    res r;
    res_init(&r);
    json_t *d = json_pack("{s:[i,i]}", "numbers", 20, 22);
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    run_until(&r.done, 1);
    if (r.err) fprintf(stderr, "refused: %s\n", json_dumps(r.error, JSON_ENCODE_ANY));
    assert_int_equal(r.err, 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r.values, 0), "sum")), 42);
    assert_int_equal(goaway_accepts, 2); /* the GOAWAY's connection, then the one that served it */
    res_free(&r);
    nc_client_free(c);
    int closed = 0;
    goaway_listener.data = &closed;
    uv_close((uv_handle_t *)&goaway_listener, listener_closed);
    run_until(&closed, 1); /* the handle is used again by the next case */
}

/* The same, the new connection refused: the call waiting for it fails with the connection's error, as a
 * first connection's calls do; the client then closes cleanly. */
static void test_refused_no_new_connection(void **st) {
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", goaway_listen(1));
    nc_option opts[] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    nc_client_opts co = {.loop = &loop, .options = opts, .noptions = 2, .timeout_ms = 30000 * time_factor()};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    res r;
    res_init(&r);
    json_t *d = json_object();
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, NC_ECONNREFUSED);
    res_free(&r);
    /* and the next call tries again (refused again: nothing listens any more) */
    res_init(&r);
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    run_until(&r.done, 1);
    assert_int_equal(r.err, NC_ECONNREFUSED);
    res_free(&r);
    json_decref(d);
    nc_client_free(c);
}

/* A server that polices PINGs answers a client's keepalive every 20 ms with GOAWAY ENHANCE_YOUR_CALM
 * "too_many_pings": the client doubles its keepalive time, as grpc-js does (its debug log says so), and
 * the next call goes to a new connection. */
static int doubled;
static void ka_log(void *user, nc_log_level level, const char *component, const char *message) {
    if (strstr(message, "too_many_pings, keepalive time now 40 ms")) doubled = 1;
}
static void test_keepalive_too_many_pings(void **st) {
    nc_option pol[] = {{"http2MinPingIntervalWithoutDataMs", "60000"},
                       {"http2MaxPingStrikes", "0"},
                       {"keepalivePermitWithoutCalls", "true"}};
    nc_server *s = server_with(pol, 3);
    char url[64];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", nc_server_port(s));
    nc_option opts[] = {{"protoPath", PROTO},
                        {"keepCase", "true"},
                        {"keepaliveTimeMs", "20"},
                        {"keepalivePermitWithoutCalls", "true"}};
    nc_client_opts co = {.loop = &loop,
                         .options = opts,
                         .noptions = 4,
                         .timeout_ms = 30000 * time_factor(),
                         .log = ka_log,
                         .log_level = NC_LOG_DEBUG};
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &co), 0);
    doubled = 0;
    assert_int_equal(nc_client_connect(c, NULL, NULL), 0);
    assert_true(run_until_ms(&doubled, 1, 5000));
    res r;
    res_init(&r);
    json_t *d = json_pack("{s:[i]}", "numbers", 5);
    assert_int_equal(nc_client_send(c, M("Sum"), d, NULL, r_value, r_done, &r), 0);
    json_decref(d);
    run_until(&r.done, 1);
    assert_int_equal(r.err, 0);
    res_free(&r);
    nc_client_free(c);
    nc_server_free(s);
}

static void method(nc_server *s, const char *rpc, const char *streaming, nc_request_fn fn) {
    char key[160];
    snprintf(key, sizeof key, "{\"service\":\"Conformance\",\"rpc\":\"%s\",\"streaming\":\"%s\"}", rpc,
             streaming);
    nc_server_message(s, key, fn, NULL);
}

static int setup(void **st) {
    loop_setup(st);
    nc_option opts[] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    nc_server_opts so = {.loop = &loop, .options = opts, .noptions = 2};
    assert_int_equal(nc_server_new(&srv, "grpc://127.0.0.1:0", &so), 0);
    method(srv, "Sum", "no_stream", h_sum);
    method(srv, "Echo", "no_stream", h_echo);
    method(srv, "Exception", "no_stream", h_exception);
    method(srv, "Sleep", "no_stream", h_sleep);
    method(srv, "Streaming", "no_stream", h_streaming);
    method(srv, "Context", "no_stream", h_context);
    method(srv, "ClientSum", "rx_stream", h_client_sum);
    method(srv, "BidiEcho", "rx_stream", h_bidi);
    assert_int_equal(nc_server_listen(srv), 0);
    return 0;
}

static int teardown(void **st) {
    nc_server_free(srv);
    return loop_teardown(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_server_stream),
        cmocka_unit_test(test_client_stream),
        cmocka_unit_test(test_held_client_stream),
        cmocka_unit_test(test_bidi),
        cmocka_unit_test(test_send_stream),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_call_deadline_sent),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_big),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_lost),
        cmocka_unit_test(test_response_cap),
        cmocka_unit_test(test_not_grpc_server),
        cmocka_unit_test(test_goaway_new_calls),
        cmocka_unit_test(test_goaway_reconnect),
        cmocka_unit_test(test_age_grace),
        cmocka_unit_test(test_write_while_connecting),
        cmocka_unit_test(test_write_queue_bound),
        cmocka_unit_test(test_keepalive_dead_peer),
        cmocka_unit_test(test_keepalive_alive),
        cmocka_unit_test(test_compressed_requests),
        cmocka_unit_test(test_set_health),
        cmocka_unit_test(test_refused_retried),
        cmocka_unit_test(test_refused_no_new_connection),
        cmocka_unit_test(test_keepalive_too_many_pings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
