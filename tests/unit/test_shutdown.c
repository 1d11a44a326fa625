/* Shutdown and cancellation through the public API: a server on its own loop whose handler started an
 * hour-long timer must still close by its deadline (nc_server_run returns, nc_server_free returns), the
 * handler's cancel callback runs exactly once; a caller that disconnects cancels its request; a client
 * freed with a call pending returns and fails the call. A watchdog (alarm) turns a hang into a failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "nestc/nestc.h"

#define HOUR_MS 3600000

static int timeout_factor(void) {
    const char *f = getenv("NESTC_TEST_TIMEOUT_FACTOR");
    int n = f ? atoi(f) : 1;
    return n > 0 ? n : 1;
}

/* A hang is the failure these tests look for: end the process instead of waiting for ctest. */
static void watchdog(int seconds) {
    alarm((unsigned)(seconds * timeout_factor()));
}

/* ---- the handler: an hour-long timer per request ---------------------------------------------------- */

typedef struct slow {
    uv_timer_t timer;
    nc_request *req;
} slow;

static int ncancelled, nclosed_timers, nstarted, use_cancel;
static nc_server *srv;
static int close_on_start; /* the handler starts the server's close (as SIGTERM would) */

static void timer_closed(uv_handle_t *h) {
    nclosed_timers++;
    free(h->data);
}

static void slow_fire(uv_timer_t *t) {
    slow *s = t->data;
    nc_reply(s->req, json_true());
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}

static void slow_cancel(nc_request *req, void *arg) {
    slow *s = arg;
    ncancelled++;
    assert_true(nc_request_is_cancelled(req));
    assert_ptr_equal(req, s->req);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, timer_closed);
    nc_reply_end(req); /* goes nowhere: cancelled */
}

static slow *last_slow;

static void h_slow(nc_request *req, const nc_msg *m, void *u) {
    slow *s = malloc(sizeof *s);
    assert_non_null(s);
    last_slow = s;
    s->req = req;
    uv_timer_init(nc_request_loop(req), &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, slow_fire, HOUR_MS, 0);
    assert_false(nc_request_is_cancelled(req));
    if (use_cancel) nc_request_on_cancel(req, slow_cancel, s);
    nstarted++;
    if (close_on_start) nc_server_close(srv, NULL, NULL);
}

/* ---- a raw caller on the server's own loop ------------------------------------------------------------ */

static uv_tcp_t caller;
static uv_connect_t caller_conn;
static uv_write_t caller_write;
static char frame[128];

static void caller_wrote(uv_write_t *w, int status) {}

static void caller_connected(uv_connect_t *c, int status) {
    assert_int_equal(status, 0);
    uv_buf_t b = uv_buf_init(frame, (unsigned)strlen(frame));
    uv_write(&caller_write, (uv_stream_t *)&caller, &b, 1, caller_wrote);
}

/* Connects a raw TCP caller to the server and queues one request (sent once the loop runs). */
static void call(const char *pattern) {
    char json[96];
    snprintf(json, sizeof json, "{\"pattern\":\"%s\",\"data\":null,\"id\":\"1\"}", pattern);
    snprintf(frame, sizeof frame, "%zu#%s", strlen(json), json);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", nc_server_port(srv), &a);
    uv_tcp_init(nc_server_loop(srv), &caller);
    uv_tcp_connect(&caller_conn, &caller, (struct sockaddr *)&a, caller_connected);
}

static void call_slow(void) {
    call("slow");
}

static long long max_send; /* the next server's max_send_buffer_size (0: default) */

static void big_cancel(nc_request *req, void *arg) {
    ncancelled++;
    nc_reply_end(req);
}

/* Registers for cancellation, then answers with more than max_send_buffer_size: the server drops the
 * connection inside nc_reply, so the request's peer goes while a reply of it is under way. */
static void h_big(nc_request *req, const nc_msg *m, void *u) {
    nstarted++;
    nc_request_on_cancel(req, big_cancel, NULL);
    char text[4096];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    nc_reply(req, json_string(text));
    nclosed_timers++; /* here: the reply returned */
}

static void new_server(int shutdown_ms) {
    nc_server_opts so = {
        .shutdown_timeout_ms = shutdown_ms, .log_level = NC_LOG_ERROR, .max_send_buffer_size = max_send};
    assert_int_equal(nc_server_new(&srv, "tcp://127.0.0.1:0", &so), 0);
    assert_int_equal(nc_server_message(srv, "slow", h_slow, NULL), 0);
    assert_int_equal(nc_server_message(srv, "big", h_big, NULL), 0);
    assert_int_equal(nc_server_listen(srv), 0);
    ncancelled = nclosed_timers = nstarted = 0;
}

/* ---- tests ---------------------------------------------------------------------------------------- */

static void test_deadline_cancels_and_run_returns(void **st) {
    watchdog(20);
    new_server(200);
    use_cancel = 1;
    close_on_start = 1;
    call_slow();
    uint64_t t0 = uv_hrtime();
    assert_int_equal(nc_server_run(srv), 0); /* returns: the timer is cancelled at the deadline */
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(nstarted, 1);
    assert_int_equal(ncancelled, 1);
    assert_true(ms >= 150);
    assert_true(ms < 5000u * (unsigned)timeout_factor());
    nc_server_free(srv); /* closes the raw caller left on the loop */
    assert_int_equal(ncancelled, 1);
    assert_int_equal(nclosed_timers, 1);
    alarm(0);
}

static void test_handler_ignoring_cancel_does_not_block(void **st) {
    /* no cancel callback: the server still closes at its deadline, and nc_server_free closes the
     * handler's timer it finds left on the server's own loop */
    watchdog(20);
    new_server(100);
    use_cancel = 0;
    close_on_start = 1;
    call_slow();
    assert_int_equal(nc_server_run(srv), 0);
    assert_int_equal(nstarted, 1);
    nc_server_free(srv);
    assert_int_equal(ncancelled, 0);
    assert_int_equal(nclosed_timers, 0); /* closed by nc_server_free, without our callback */
    free(last_slow);
    alarm(0);
}

static int caller_gone;
static void caller_closed(uv_handle_t *h) {
    caller_gone = 1;
}

static void test_caller_disconnect_cancels(void **st) {
    watchdog(20);
    new_server(HOUR_MS); /* a grace period the test would notice */
    use_cancel = 1;
    close_on_start = 0;
    caller_gone = 0;
    call_slow();
    while (!nstarted) uv_run(nc_server_loop(srv), UV_RUN_ONCE);
    uv_close((uv_handle_t *)&caller, caller_closed);
    while (!ncancelled) uv_run(nc_server_loop(srv), UV_RUN_ONCE);
    assert_int_equal(ncancelled, 1);
    /* nothing in flight any more: the close finishes at once, not after the hour */
    nc_server_close(srv, NULL, NULL);
    assert_int_equal(nc_server_run(srv), 0);
    nc_server_free(srv);
    assert_int_equal(ncancelled, 1);
    assert_int_equal(nclosed_timers, 1);
    alarm(0);
}

static void test_free_without_run_cancels(void **st) {
    /* nc_server_free on a server with a request in flight: no grace period, the handler is told */
    watchdog(20);
    new_server(HOUR_MS);
    use_cancel = 1;
    close_on_start = 0;
    call_slow();
    while (!nstarted) uv_run(nc_server_loop(srv), UV_RUN_ONCE);
    nc_server_free(srv);
    assert_int_equal(ncancelled, 1);
    assert_int_equal(nclosed_timers, 1);
    alarm(0);
}

static void test_peer_gone_during_own_reply(void **st) {
    /* the cancel callback must not run inside the reply that dropped the connection (it would finish
     * the request a second time); the request is finished by that reply, so it never runs */
    watchdog(20);
    max_send = 1000;
    new_server(HOUR_MS);
    max_send = 0;
    call("big");
    while (!nclosed_timers) uv_run(nc_server_loop(srv), UV_RUN_ONCE);
    for (int i = 0; i < 3; i++) uv_run(nc_server_loop(srv), UV_RUN_NOWAIT);
    assert_int_equal(nstarted, 1);
    assert_int_equal(ncancelled, 0);
    nc_server_close(srv, NULL, NULL);
    assert_int_equal(nc_server_run(srv), 0); /* nothing in flight: closes at once */
    nc_server_free(srv);
    alarm(0);
}

static int client_done, client_err;
static void on_done(void *u, int err, json_t *e) {
    client_done++;
    client_err = err;
}

static void test_client_free_with_pending_call(void **st) {
    /* a peer that accepts (in the kernel's backlog) and never answers */
    watchdog(20);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    nc_client_opts co = {.log_level = NC_LOG_ERROR};
    nc_client *cli;
    assert_int_equal(nc_client_new(&cli, url, &co), 0);
    client_done = 0;
    nc_call_opts o = {.timeout_ms = HOUR_MS};
    assert_int_equal(nc_client_send(cli, "slow", NULL, &o, NULL, on_done, NULL), 0);
    while (!nc_client_unwrap(cli)) uv_run(nc_client_loop(cli), UV_RUN_ONCE); /* connected, request sent */
    uv_run(nc_client_loop(cli), UV_RUN_NOWAIT);
    assert_int_equal(nc_client_pending(cli), 1);
    nc_client_free(cli);
    assert_int_equal(client_done, 1);
    assert_int_equal(client_err, NC_ECLOSED);
    close(fd);
    alarm(0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_cancels_and_run_returns),
        cmocka_unit_test(test_handler_ignoring_cancel_does_not_block),
        cmocka_unit_test(test_caller_disconnect_cancels),
        cmocka_unit_test(test_free_without_run_cancels),
        cmocka_unit_test(test_peer_gone_during_own_reply),
        cmocka_unit_test(test_client_free_with_pending_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
