/* Server and client API behaviour beyond the conformance table, with both ends on one loop:
 * thread-safe replies, graceful shutdown draining in-flight requests, client close and status events,
 * connection retries, packet metadata, serializer hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "nestc/nestc.h"

#include "tcp_fixture.h"

/* ---- handlers ------------------------------------------------------------------------------------ */

static void worker(void *arg) {
    nc_request *req = arg;
    /* from another thread: a stream of two values, then the end */
    nc_reply_threadsafe(req, NC_REPLY_NEXT, json_integer(1));
    nc_reply_threadsafe(req, NC_REPLY_NEXT, json_integer(2));
    nc_reply_threadsafe(req, NC_REPLY_END, NULL);
}

static uv_thread_t threads[8];
static int nthreads;

static void h_thread(nc_request *req, const nc_msg *m, void *u) {
    uv_thread_create(&threads[nthreads++], worker, req);
}

static nc_request *parked[4];
static int nparked;
static void h_park(nc_request *req, const nc_msg *m, void *u) {
    parked[nparked++] = req;
}

static void h_meta(nc_request *req, const nc_msg *m, void *u) {
    json_t *md = nc_msg_metadata(m);
    nc_reply(req, md ? json_incref(md) : json_null());
}

static void h_echo(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_incref(nc_msg_data(m)));
}

static void h_raw_echo(nc_request *req, const nc_msg *m, void *u) {
    size_t n;
    const char *t = nc_msg_data_json(m, &n);
    nc_reply_json(req, t, n);
}

static void h_raw_bad(nc_request *req, const nc_msg *m, void *u) {
    assert_int_equal(nc_reply_json(req, "{\"a\":", 5), NC_EINVAL);
}

static void start(const nc_server_opts *so) {
    tcp_server_new(so);
    nc_server_message(srv, "thread", h_thread, NULL);
    nc_server_message(srv, "park", h_park, NULL);
    nc_server_message(srv, "meta", h_meta, NULL);
    nc_server_message(srv, "echo", h_echo, NULL);
    nc_server_message(srv, "rawEcho", h_raw_echo, NULL);
    nc_server_message(srv, "rawBad", h_raw_bad, NULL);
    tcp_listen_connect();
}

static void stop(void) {
    tcp_free();
    for (int i = 0; i < nthreads; i++) uv_thread_join(&threads[i]);
    nthreads = 0;
    nparked = 0;
}

/* ---- tests --------------------------------------------------------------------------------------- */

static void test_threadsafe_reply(void **st) {
    start(NULL);
    call c = call_new();
    assert_int_equal(nc_client_send(cli, "thread", NULL, NULL, on_value, on_done, &c), 0);
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    json_t *want = json_pack("[i,i]", 1, 2);
    assert_true(json_equal(c.values, want));
    json_decref(want);
    call_free(&c);
    stop();
}

static void test_metadata(void **st) {
    start(NULL);
    call c = call_new();
    json_t *md = json_pack("{s:s}", "traceId", "abc123");
    nc_call_opts o = {.metadata = md};
    assert_int_equal(nc_client_send(cli, "meta", NULL, &o, on_value, on_done, &c), 0);
    run_until(&c.done, 1);
    assert_true(json_equal(json_array_get(c.values, 0), md));
    json_decref(md);
    call_free(&c);
    stop();
}

/* payload text in, JSON text out: no jansson value on the server side */
static void test_reply_json(void **st) {
    start(NULL);
    json_t *data = json_pack("{s:[i,f,s],s:n}", "a", 1, 2.5, "h\u00e9 \"q\"", "b");
    call c = call_new(), bad = call_new();
    assert_int_equal(nc_client_send(cli, "rawEcho", data, NULL, on_value, on_done, &c), 0);
    assert_int_equal(nc_client_send(cli, "rawBad", NULL, NULL, on_value, on_done, &bad), 0);
    run_until(&c.done, 1);
    run_until(&bad.done, 1);
    assert_int_equal(c.err, 0);
    assert_true(json_equal(json_array_get(c.values, 0), data));
    assert_int_equal(bad.err, NC_EREMOTE);
    json_decref(data);
    call_free(&c);
    call_free(&bad);
    stop();
}

static int closed_flag;
static void on_closed(void *u) {
    closed_flag = 1;
}

static void test_graceful_shutdown_drains(void **st) {
    start(NULL);
    call c = call_new();
    assert_int_equal(nc_client_send(cli, "park", NULL, NULL, on_value, on_done, &c), 0);
    while (nparked < 1) uv_run(&loop, UV_RUN_ONCE);
    closed_flag = 0;
    nc_server_close(srv, on_closed, NULL);
    /* the server stops accepting but keeps the in-flight request's connection */
    for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(closed_flag, 0);
    nc_reply(parked[0], json_string("finished"));
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), "finished");
    run_until(&closed_flag, 1);
    /* the client notices the closed connection; a new call cannot connect any more */
    while (nc_client_unwrap(cli)) uv_run(&loop, UV_RUN_ONCE);
    call d = call_new();
    nc_client_send(cli, "echo", NULL, NULL, on_value, on_done, &d);
    run_until(&d.done, 1);
    assert_int_equal(d.err, NC_ECONNREFUSED);
    call_free(&c);
    call_free(&d);
    stop();
}

static void test_shutdown_deadline(void **st) {
    nc_server_opts so = {.shutdown_timeout_ms = 100};
    start(&so);
    call c = call_new();
    nc_client_send(cli, "park", NULL, NULL, on_value, on_done, &c);
    while (nparked < 1) uv_run(&loop, UV_RUN_ONCE);
    closed_flag = 0;
    nc_server_close(srv, on_closed, NULL);
    run_until(&c.done, 1); /* connection closed at the deadline */
    assert_int_equal(c.err, NC_ECONNCLOSED);
    run_until(&closed_flag, 1);
    nc_reply(parked[0], json_true()); /* late reply to a gone peer: dropped, request freed */
    call_free(&c);
    stop();
}

static char statuses[256];
static void on_status(void *u, const char *s, int err) {
    strcat(statuses, s);
    strcat(statuses, ";");
}

static void test_client_close_and_status(void **st) {
    start(NULL);
    statuses[0] = '\0';
    nc_client_on_status(cli, on_status, NULL);
    call c = call_new();
    nc_client_send(cli, "park", NULL, NULL, on_value, on_done, &c);
    while (nparked < 1) uv_run(&loop, UV_RUN_ONCE);
    assert_non_null(nc_client_unwrap(cli));
    nc_client_close(cli);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.err, NC_ECLOSED);
    assert_string_equal(json_string_value(c.error), "Connection closed");
    for (int i = 0; i < 10; i++) uv_run(&loop, UV_RUN_NOWAIT);
    assert_string_equal(statuses, "connected;disconnected;");
    /* the next call reconnects lazily */
    call d = call_new();
    json_t *five = json_integer(5);
    nc_client_send(cli, "echo", five, NULL, on_value, on_done, &d);
    json_decref(five);
    run_until(&d.done, 1);
    assert_int_equal(d.err, 0);
    assert_string_equal(statuses, "connected;disconnected;connected;");
    nc_reply(parked[0], NULL);
    call_free(&c);
    call_free(&d);
    stop();
}

static void test_connect_retries(void **st) {
    nc_client *c2;
    nc_client_opts o = {.loop = &loop, .retry_attempts = 2, .retry_delay_ms = 50, .log_level = NC_LOG_OFF};
    o.log = NULL;
    assert_int_equal(nc_client_new(&c2, "tcp://127.0.0.1:1", &o), 0);
    call c = call_new();
    uint64_t t0 = uv_now(&loop);
    nc_client_send(c2, "x", NULL, NULL, on_value, on_done, &c);
    run_until(&c.done, 1);
    assert_int_equal(c.err, NC_ECONNREFUSED);
    assert_true(uv_now(&loop) - t0 >= 100); /* two retries, 50 ms apart */
    call_free(&c);
    nc_client_free(c2);
}

static json_t *wrap(void *u, json_t *p) {
    return json_pack("{s:O}", "wrapped", p);
}
static json_t *unwrap(void *u, json_t *p) {
    return json_incref(json_object_get(p, "wrapped"));
}

static void test_codec_hooks(void **st) {
    nc_codec codec = {wrap, unwrap, NULL};
    nc_server_opts so = {.codec = &codec};
    start(&so);
    nc_client_free(cli);
    nc_client_opts co = {.loop = &loop, .codec = &codec};
    assert_int_equal(nc_client_new(&cli, url, &co), 0);
    call c = call_new();
    json_t *text = json_string("through hooks");
    nc_client_send(cli, "echo", text, NULL, on_value, on_done, &c);
    json_decref(text);
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), "through hooks");
    call_free(&c);
    stop();
}

/* ---- workers ------------------------------------------------------------------------------------ */

static void h_which_loop(nc_request *req, const nc_msg *m, void *u) {
    char id[32];
    snprintf(id, sizeof id, "%p", (void *)nc_request_loop(req));
    nc_reply(req, json_string(id));
}

static void run_server(void *arg) {
    nc_server_run(arg);
}

static void test_workers(void **st) {
    /* workers need the server's own loop */
    nc_server *bad;
    nc_server_opts bo = {.loop = &loop, .workers = 2};
    assert_int_equal(nc_server_new(&bad, "tcp://127.0.0.1:0", &bo), NC_EINVAL);

    nc_server_opts o = {.workers = 3};
    nc_server *ws;
    assert_int_equal(nc_server_new(&ws, "tcp://127.0.0.1:0", &o), 0);
    assert_int_equal(nc_server_message(ws, "which", h_which_loop, NULL), 0);
    assert_int_equal(nc_server_listen(ws), 0);
    /* the handler table was copied to the other workers: later changes are refused */
    assert_int_equal(nc_server_message(ws, "late", h_echo, NULL), NC_ESTATE);
    uv_thread_t th;
    uv_thread_create(&th, run_server, ws);
    char wurl[64];
    snprintf(wurl, sizeof wurl, "tcp://127.0.0.1:%d", nc_server_port(ws));

    enum { N = 24 };
    nc_client *cs[N];
    call calls[N];
    int done = 0;
    for (int i = 0; i < N; i++) {
        nc_client_opts co = {.loop = &loop};
        assert_int_equal(nc_client_new(&cs[i], wurl, &co), 0);
        calls[i] = call_new();
        assert_int_equal(nc_client_send(cs[i], "which", NULL, NULL, on_value, on_done, &calls[i]), 0);
    }
    while (done < N) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++) done += calls[i].done;
    }
    json_t *seen = json_object();
    for (int i = 0; i < N; i++) {
        assert_int_equal(calls[i].err, 0);
        assert_int_equal(json_array_size(calls[i].values), 1);
        json_object_set(seen, json_string_value(json_array_get(calls[i].values, 0)), json_true());
    }
    /* 24 connections over 3 listeners: the kernel spread them over more than one loop */
    assert_true(json_object_size(seen) >= 2);
    json_decref(seen);
    for (int i = 0; i < N; i++) {
        nc_client_free(cs[i]);
        call_free(&calls[i]);
    }
    /* closing worker 0 closes all; nc_server_run returns once every worker is done */
    nc_server_close_threadsafe(ws);
    uv_thread_join(&th);
    nc_server_free(ws);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threadsafe_reply),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_graceful_shutdown_drains),
        cmocka_unit_test(test_shutdown_deadline),
        cmocka_unit_test(test_client_close_and_status),
        cmocka_unit_test(test_connect_retries),
        cmocka_unit_test(test_codec_hooks),
        cmocka_unit_test(test_workers),
        cmocka_unit_test(test_reply_json),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
