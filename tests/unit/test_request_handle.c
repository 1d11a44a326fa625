/* Request handles are ids, not pointers: finishing a request twice, replying after it finished (on the
 * loop or from another thread), or using a request its server already freed is refused with NC_ESTATE
 * and touches no freed or reused memory (run under ASan). Server and client share one loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "nestc/nestc.h"

#include "tcp_fixture.h"

/* what the handlers saw, checked by the tests after the loop ran */
static int rc_second, rc_end, rc_err, rc_json, rc_cancel, rc_ts;
static const void *msg_after, *loop_after;
static nc_request *kept;

static void h_twice(nc_request *req, const nc_msg *m, void *u) {
    assert_int_equal(nc_reply(req, json_integer(1)), 0);
    rc_second = nc_reply(req, json_integer(2)); /* the value is still released */
    rc_end = nc_reply_end(req);
    rc_err = nc_reply_error_msg(req, "late");
    rc_json = nc_reply_json(req, "3", 1);
    rc_cancel = nc_request_on_cancel(req, NULL, NULL);
    msg_after = nc_request_msg(req);
    loop_after = nc_request_loop(req);
}

static void ts_worker(void *arg) {
    rc_ts = nc_reply_threadsafe((nc_request *)arg, NC_REPLY_VALUE, json_integer(2));
}

/* Posts a reply from another thread while the request is live, then finishes it on the loop before the
 * loop applies the posted reply: that one must be dropped. */
static void h_race(nc_request *req, const nc_msg *m, void *u) {
    uv_thread_t th;
    uv_thread_create(&th, ts_worker, req);
    uv_thread_join(&th);
    nc_reply(req, json_integer(1));
}

static void h_keep(nc_request *req, const nc_msg *m, void *u) {
    kept = req;
    nc_reply(req, json_integer(1));
}

static void h_park(nc_request *req, const nc_msg *m, void *u) {
    kept = req;
}

static void h_echo(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_incref(nc_msg_data(m)));
}

/* A hang (a corrupted in-flight list) is a failure too. */
static void watchdog(int seconds) {
    alarm((unsigned)(seconds * time_factor()));
}

static void start(void) {
    watchdog(30);
    tcp_server_new(&(nc_server_opts){.log_level = NC_LOG_ERROR, .shutdown_timeout_ms = 50});
    nc_server_message(srv, "twice", h_twice, NULL);
    nc_server_message(srv, "race", h_race, NULL);
    nc_server_message(srv, "keep", h_keep, NULL);
    nc_server_message(srv, "park", h_park, NULL);
    nc_server_message(srv, "echo", h_echo, NULL);
    tcp_listen_connect();
    kept = NULL;
}

static void stop(void) {
    tcp_free();
}

/* One request, its values (a JSON array) compared with `want`. */
static void expect(const char *pattern, const char *want) {
    call c = call_new();
    json_t *seven = json_integer(7); /* borrowed by the client */
    assert_int_equal(nc_client_send(cli, pattern, seven, NULL, on_value, on_done, &c), 0);
    json_decref(seven);
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    json_t *w = json_loads(want, 0, NULL);
    assert_true(json_equal(c.values, w));
    json_decref(w);
    call_free(&c);
}

static void test_reply_twice_is_refused(void **st) {
    start();
    expect("twice", "[1]");
    expect("echo", "[7]"); /* the server is intact: the pool was not corrupted */
    stop(); /* nothing in flight: nothing is freed twice (ASan: heap-use-after-free here before) */
    assert_int_equal(rc_second, NC_ESTATE);
    assert_int_equal(rc_end, NC_ESTATE);
    assert_int_equal(rc_err, NC_ESTATE);
    assert_int_equal(rc_json, NC_ESTATE);
    assert_int_equal(rc_cancel, NC_ESTATE);
    assert_null(msg_after);
    assert_null(loop_after);
}

static void test_threadsafe_reply_after_finish_dropped(void **st) {
    start();
    rc_ts = 99;
    expect("race", "[1]");
    assert_int_equal(rc_ts, 0); /* posted while the request was live */
    expect("echo", "[7]");      /* the loop has applied (dropped) the posted reply by now */
    expect("race", "[1]");
    /* after the request finished: refused at once */
    expect("keep", "[1]");
    uv_thread_t th;
    uv_thread_create(&th, ts_worker, kept);
    uv_thread_join(&th);
    assert_int_equal(rc_ts, NC_ESTATE);
    stop();
}

static void test_request_freed_by_server(void **st) {
    start();
    call c = call_new();
    assert_int_equal(nc_client_send(cli, "park", NULL, NULL, on_value, on_done, &c), 0);
    while (!kept) uv_run(&loop, UV_RUN_ONCE);
    nc_client_free(cli);
    nc_server_free(srv); /* frees the parked request */
    assert_int_equal(nc_reply(kept, json_true()), NC_ESTATE);
    assert_null(nc_request_msg(kept));
    assert_false(nc_request_is_cancelled(kept));
    call_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_twice_is_refused),
        cmocka_unit_test(test_threadsafe_reply_after_finish_dropped),
        cmocka_unit_test(test_request_freed_by_server),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
