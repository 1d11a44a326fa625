/* The client's call object (nc_client_call): request, stream, error, timeout, cancellation (from
 * on_value and after), stale handles, request-stream operations on a transport without them, replies
 * delivered in parts with an id from a property/header (nc_client__on_reply), reply metadata, and the
 * encoded request kept for resending. A real TCP server from the library, both ends on one loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "core/client_internal.h"
#include "nestc/nestc.h"

#define TCP_FIXTURE_OWN_CALL /* this one also cancels, reads status, trailers and headers */
#include "tcp_fixture.h"

typedef struct call {
    json_t *values;
    int err, done, headers;
    json_t *error;
    nc_call *h;
    int cancel_at;   /* cancel from on_value when this many values arrived (0 = never) */
    int cancel_rc;   /* what that nc_call_cancel returned */
    int status_rc;   /* nc_call_status inside on_done */
    int status_code; /* its code */
    char status_msg[64];
    char trailer[64];   /* the "grpc-status-details" trailer inside on_done */
    char header[64];    /* the "x-a" header inside on_headers */
    struct call *other; /* cancelled from on_done */
} call;

static void on_value(void *u, json_t *v) {
    call *c = u;
    json_array_append(c->values, v);
    if (c->cancel_at && (int)json_array_size(c->values) == c->cancel_at) c->cancel_rc = nc_call_cancel(c->h);
}
static void on_done(void *u, int err, json_t *e) {
    call *c = u;
    c->err = err;
    c->error = e ? json_incref(e) : NULL;
    c->done++;
    if (!c->h) return;
    /* the handle is valid until on_done returns: the accessors work, operations are refused */
    const char *msg = NULL;
    c->status_rc = nc_call_status(c->h, &c->status_code, &msg);
    if (msg) snprintf(c->status_msg, sizeof c->status_msg, "%s", msg);
    size_t n = 0;
    const char *t = nc_call_trailer(c->h, "grpc-status-details", &n);
    if (t) snprintf(c->trailer, sizeof c->trailer, "%.*s", (int)n, t);
    assert_int_equal(nc_call_cancel(c->h), NC_ESTATE);
    assert_int_equal(nc_call_write(c->h, json_null()), NC_ESTATE);
    if (c->other) nc_call_cancel(c->other->h);
}
static void on_headers(void *u, nc_call *h) {
    call *c = u;
    c->headers++;
    assert_ptr_equal(h, c->h);
    size_t n = 0;
    const char *v = nc_call_header(h, "x-a", &n);
    if (v) snprintf(c->header, sizeof c->header, "%.*s", (int)n, v);
}
static const nc_call_cbs cbs = {on_value, on_done, on_headers};

static call call_new(void) {
    return (call){.values = json_array()};
}
static void call_free(call *c) {
    json_decref(c->values);
    json_decref(c->error);
}

/* ---- handlers ------------------------------------------------------------------------------------ */

static nc_request *parked[8];
static char parked_data[8][128];
static int nparked;
static void h_park(nc_request *req, const nc_msg *m, void *u) {
    size_t n;
    const char *t = nc_msg_data_json(m, &n);
    snprintf(parked_data[nparked], sizeof parked_data[0], "%.*s", (int)n, t);
    parked[nparked++] = req;
}

static void h_echo(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_incref(nc_msg_data(m)));
}

static void h_stream(nc_request *req, const nc_msg *m, void *u) {
    for (int i = 1; i <= 3; i++) nc_reply_next(req, json_integer(i));
    nc_reply_end(req);
}

static void h_fail(nc_request *req, const nc_msg *m, void *u) {
    nc_reply_error_msg(req, "nope");
}

static void start(void) {
    tcp_server_new(NULL);
    nc_server_message(srv, "park", h_park, NULL);
    nc_server_message(srv, "echo", h_echo, NULL);
    nc_server_message(srv, "stream", h_stream, NULL);
    nc_server_message(srv, "fail", h_fail, NULL);
    tcp_listen_connect();
}

static void stop(void) {
    nc_client_free(cli);
    for (int i = 0; i < nparked; i++) nc_reply_end(parked[i]); /* the server frees what it still holds */
    nparked = 0;
    nc_server_free(srv);
}

static int disconnects;
static void on_status(void *u, const char *status, int err) {
    if (!strcmp(status, "disconnected")) disconnects++;
}

/* Closes the client's connection and waits until it is closed: the next call is queued for a new one. */
static void close_client(void) {
    int want = disconnects + 1;
    nc_client_on_status(cli, on_status, NULL);
    nc_client_close(cli);
    run_until(&disconnects, want);
}

/* A request that makes sure everything sent before it on the connection has been answered. */
static void barrier(void) {
    call b = call_new();
    assert_int_equal(nc_client_send(cli, "echo", NULL, NULL, on_value, on_done, &b), 0);
    run_until(&b.done, 1);
    assert_int_equal(b.err, 0);
    call_free(&b);
}

/* ---- tests --------------------------------------------------------------------------------------- */

static void test_request_and_stale_handle(void **st) {
    start();
    call c = call_new();
    json_t *d = json_pack("{s:i}", "a", 1);
    assert_int_equal(nc_client_call(cli, "echo", d, NULL, &cbs, &c, &c.h), 0);
    assert_non_null(c.h);
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    assert_true(json_equal(json_array_get(c.values, 0), d));
    assert_int_equal(c.status_rc, 0); /* TCP has no status */
    assert_int_equal(c.headers, 0);
    /* after on_done returned the handle is stale, whatever is done with it */
    assert_int_equal(nc_call_cancel(c.h), NC_ESTATE);
    assert_int_equal(nc_call_write(c.h, d), NC_ESTATE);
    assert_int_equal(nc_call_end(c.h), NC_ESTATE);
    assert_int_equal(nc_call_status(c.h, NULL, NULL), NC_ESTATE);
    assert_int_equal(nc_call__resend(c.h), NC_ESTATE);
    assert_null(nc_call_header(c.h, "x", NULL));
    assert_int_equal(nc_call_header_count(c.h), 0);
    /* a later call may reuse the slot, never the generation: the old handle stays stale */
    call c2 = call_new();
    nc_call *h2 = NULL;
    assert_int_equal(nc_client_call(cli, "park", NULL, NULL, &cbs, &c2, &h2), 0);
    assert_ptr_not_equal(h2, c.h);
    assert_int_equal(nc_call_cancel(c.h), NC_ESTATE);
    assert_int_equal(c2.done, 0);
    c2.h = h2;
    assert_int_equal(nc_call_cancel(h2), 0);
    assert_int_equal(c2.done, 1);
    json_decref(d);
    call_free(&c);
    call_free(&c2);
    stop();
}

static void test_stream_error_timeout(void **st) {
    start();
    call s = call_new(), e = call_new(), t = call_new();
    assert_int_equal(nc_client_call(cli, "stream", NULL, NULL, &cbs, &s, &s.h), 0);
    assert_int_equal(nc_client_call(cli, "fail", NULL, NULL, &cbs, &e, &e.h), 0);
    nc_call_opts o = {.timeout_ms = 50 * time_factor()};
    assert_int_equal(nc_client_call(cli, "park", NULL, &o, &cbs, &t, &t.h), 0);
    run_until(&s.done, 1);
    run_until(&e.done, 1);
    run_until(&t.done, 1);
    assert_int_equal(s.err, 0);
    assert_int_equal(json_array_size(s.values), 3);
    assert_int_equal(json_integer_value(json_array_get(s.values, 2)), 3);
    assert_int_equal(e.err, NC_EREMOTE);
    assert_int_equal(t.err, NC_ETIMEDOUT);
    assert_int_equal(nc_call_cancel(t.h), NC_ESTATE);
    /* the late reply to the timed-out call is dropped */
    run_until(&nparked, 1);
    nc_reply(parked[0], json_integer(7));
    nparked = 0;
    barrier();
    assert_int_equal(t.done, 1);
    assert_int_equal(json_array_size(t.values), 0);
    call_free(&s);
    call_free(&e);
    call_free(&t);
    stop();
}

static void test_cancel(void **st) {
    start();
    /* after it was sent, before any reply: on_done runs at once, once */
    call c = call_new();
    assert_int_equal(nc_client_call(cli, "park", NULL, NULL, &cbs, &c, &c.h), 0);
    run_until(&nparked, 1);
    assert_int_equal(nc_call_cancel(c.h), 0);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.err, NC_ECANCELED);
    assert_int_equal(nc_call_cancel(c.h), NC_ESTATE);
    assert_int_equal(nc_client_pending(cli), 0);
    nc_reply(parked[0], json_integer(1)); /* the handler finishes; its reply is dropped */
    nparked = 0;
    barrier();
    assert_int_equal(c.done, 1);
    assert_int_equal(json_array_size(c.values), 0);

    /* from on_value, mid-stream: the rest of the stream is dropped */
    call m = call_new();
    m.cancel_at = 1;
    assert_int_equal(nc_client_call(cli, "stream", NULL, NULL, &cbs, &m, &m.h), 0);
    run_until(&m.done, 1);
    barrier();
    assert_int_equal(m.cancel_rc, 0);
    assert_int_equal(m.done, 1);
    assert_int_equal(m.err, NC_ECANCELED);
    assert_int_equal(json_array_size(m.values), 1);

    /* from on_value on the final value: done with NC_ECANCELED, not 0, and once */
    call f = call_new();
    f.cancel_at = 1;
    assert_int_equal(nc_client_call(cli, "echo", NULL, NULL, &cbs, &f, &f.h), 0);
    run_until(&f.done, 1);
    barrier();
    assert_int_equal(f.done, 1);
    assert_int_equal(f.err, NC_ECANCELED);

    /* before it was even sent (queued for the connection) */
    close_client();
    call q = call_new();
    assert_int_equal(nc_client_call(cli, "echo", NULL, NULL, &cbs, &q, &q.h), 0);
    assert_int_equal(nc_call_cancel(q.h), 0);
    assert_int_equal(q.err, NC_ECANCELED);
    barrier();
    assert_int_equal(q.done, 1);
    call_free(&c);
    call_free(&m);
    call_free(&f);
    call_free(&q);
    stop();
}

static void test_write_end_unsupported(void **st) {
    start();
    call c = call_new();
    assert_int_equal(nc_client_call(cli, "park", NULL, NULL, &cbs, &c, &c.h), 0);
    run_until(&nparked, 1);
    json_t *v = json_integer(2);
    assert_int_equal(nc_call_write(c.h, v), NC_EUNSUPPORTED); /* TCP has no request streams */
    assert_int_equal(nc_call_end(c.h), 0);                    /* the request was the whole stream */
    assert_int_equal(nc_call_end(c.h), NC_ESTATE);
    assert_int_equal(nc_call_write(c.h, v), NC_ESTATE);
    /* the reply still comes after the half-close */
    nc_reply(parked[0], json_integer(5));
    nparked = 0;
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    assert_int_equal(json_integer_value(json_array_get(c.values, 0)), 5);
    json_decref(v);
    call_free(&c);
    stop();
}

/* A transport that carries the id in a property or header hands the core the parts; here the test is
 * that transport. */
static void test_reply_in_parts(void **st) {
    start();
    call c = call_new();
    assert_int_equal(nc_client_call(cli, "park", NULL, NULL, &cbs, &c, &c.h), 0);
    run_until(&nparked, 1);
    const char *id = nc_call__id(c.h);
    assert_non_null(id);
    nc_header hs[] = {{"x-a", 3, "one", 3}, {"x-b", 3, "t\0o", 3}, {"x-a", 3, "again", 5}};
    nc_header tr[] = {{"grpc-status-details", 19, "bin", 3}};
    /* an unknown raw id: dropped */
    nc_reply_in r = {.id = "ffffffff0000000000001", .id_len = 21, .value = "1", .value_len = 1};
    nc_client__on_reply(cli, &r);
    assert_int_equal(json_array_size(c.values), 0);
    /* a value, with headers, id as raw bytes (not JSON text) */
    r = (nc_reply_in){.id = id,
                      .id_len = strlen(id),
                      .value = "[1,{\"k\":2}]",
                      .value_len = 11,
                      .headers = hs,
                      .nheaders = 3};
    nc_client__on_reply(cli, &r);
    assert_int_equal(c.headers, 1);
    assert_string_equal(c.header, "one");
    assert_int_equal(json_array_size(c.values), 1);
    assert_int_equal(json_array_size(json_array_get(c.values, 0)), 2);
    assert_int_equal(nc_call_header_count(c.h), 3);
    const char *name, *val;
    size_t nl, vl;
    assert_int_equal(nc_call_header_at(c.h, 1, &name, &nl, &val, &vl), 0);
    assert_int_equal(vl, 3);
    assert_memory_equal(val, "t\0o", 3);
    assert_int_equal(nc_call_header_at(c.h, 2, &name, &nl, &val, &vl), 0);
    assert_string_equal(val, "again");
    assert_int_equal(nc_call_header_at(c.h, 3, &name, &nl, &val, &vl), NC_EINVAL);
    /* the same id as JSON text (as from a body), final, with a status and trailers; no value */
    char jid[40];
    snprintf(jid, sizeof jid, "\"%s\"", id);
    r = (nc_reply_in){.id = jid,
                      .id_len = strlen(jid),
                      .id_is_json = 1,
                      .final = 1,
                      .has_status = 1,
                      .status_code = 0,
                      .status_msg = "OK",
                      .status_msg_len = 2,
                      .trailers = tr,
                      .ntrailers = 1};
    nc_client__on_reply(cli, &r);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.headers, 1); /* once */
    assert_int_equal(c.status_rc, 1);
    assert_int_equal(c.status_code, 0);
    assert_string_equal(c.status_msg, "OK");
    assert_string_equal(c.trailer, "bin");
    assert_int_equal(json_array_size(c.values), 1);
    assert_int_equal(nc_call_status(c.h, NULL, NULL), NC_ESTATE);

    /* an error in parts; a value text that is not JSON is dropped, not delivered */
    call e = call_new();
    assert_int_equal(nc_client_call(cli, "park", NULL, NULL, &cbs, &e, &e.h), 0);
    run_until(&nparked, 2);
    id = nc_call__id(e.h);
    r = (nc_reply_in){.id = id, .id_len = strlen(id), .value = "{bad", .value_len = 4};
    nc_client__on_reply(cli, &r);
    assert_int_equal(json_array_size(e.values), 0);
    assert_int_equal(e.done, 0);
    r = (nc_reply_in){.id = id, .id_len = strlen(id), .err = "{\"message\":\"x\"}", .err_len = 15};
    nc_client__on_reply(cli, &r);
    assert_int_equal(e.done, 1);
    assert_int_equal(e.err, NC_EREMOTE);
    assert_string_equal(json_string_value(json_object_get(e.error, "message")), "x");
    call_free(&c);
    call_free(&e);
    stop();
}

/* The encoded request stays with the call: it can be sent again, byte for byte, and either answer ends
 * the call once. */
static void test_resend(void **st) {
    start();
    call c = call_new();
    json_t *d = json_pack("{s:s,s:[i,i]}", "k", "v", "n", 1, 2);
    assert_int_equal(nc_client_call(cli, "park", d, NULL, &cbs, &c, &c.h), 0);
    run_until(&nparked, 1);
    assert_int_equal(nc_call__resend(c.h), 0);
    run_until(&nparked, 2);
    assert_string_equal(parked_data[0], parked_data[1]);
    assert_string_equal(parked_data[0], "{\"k\":\"v\",\"n\":[1,2]}");
    nc_reply(parked[1], json_string("second"));
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), "second");
    nc_reply(parked[0], json_string("first")); /* the same id again: the call is over, dropped */
    nparked = 0;
    barrier();
    assert_int_equal(c.done, 1);
    assert_int_equal(json_array_size(c.values), 1);
    assert_int_equal(nc_call__resend(c.h), NC_ESTATE);

    /* resend while disconnected: queued, sent once the connection is back */
    close_client();
    call q = call_new();
    assert_int_equal(nc_client_call(cli, "park", d, NULL, &cbs, &q, &q.h), 0);
    assert_int_equal(nc_call__resend(q.h), 0); /* still queued: nothing more to do */
    run_until(&nparked, 1);
    nc_reply(parked[0], json_integer(1));
    nparked = 0;
    run_until(&q.done, 1);
    assert_int_equal(q.err, 0);
    json_decref(d);
    call_free(&c);
    call_free(&q);
    stop();
}

/* Freeing the client fails pending calls with NC_ECLOSED; their handles are stale after. Each on_done
 * cancels the other call: the one failed second must not complete twice. */
static void test_free_fails_pending(void **st) {
    start();
    call a = call_new(), b = call_new();
    a.other = &b;
    b.other = &a;
    assert_int_equal(nc_client_call(cli, "park", NULL, NULL, &cbs, &a, &a.h), 0);
    assert_int_equal(nc_client_call(cli, "park", NULL, NULL, &cbs, &b, &b.h), 0);
    run_until(&nparked, 2);
    nc_client_free(cli);
    cli = NULL;
    assert_int_equal(a.done, 1);
    assert_int_equal(b.done, 1);
    /* whichever failed first cancelled the other */
    assert_true((a.err == NC_ECLOSED && b.err == NC_ECANCELED) ||
                (a.err == NC_ECANCELED && b.err == NC_ECLOSED));
    assert_int_equal(nc_call_cancel(a.h), NC_ESTATE);
    for (int i = 0; i < nparked; i++) nc_reply_end(parked[i]);
    nparked = 0;
    nc_server_free(srv);
    call_free(&a);
    call_free(&b);
}

/* The handle is never dereferenced: garbage and NULL are refused the same way. */
static void test_bogus_handles(void **st) {
    assert_int_equal(nc_call_cancel(NULL), NC_ESTATE);
    assert_int_equal(nc_call_end((nc_call *)(uintptr_t)0x123456789abcULL), NC_ESTATE);
    assert_int_equal(nc_call_write((nc_call *)(uintptr_t)1, NULL), NC_ESTATE);
    assert_null(nc_call_trailer(NULL, "x", NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_and_stale_handle),
        cmocka_unit_test(test_stream_error_timeout),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_write_end_unsupported),
        cmocka_unit_test(test_reply_in_parts),
        cmocka_unit_test(test_resend),
        cmocka_unit_test(test_free_fails_pending),
        cmocka_unit_test(test_bogus_handles),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
