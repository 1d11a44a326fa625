/* The built-in resilience policies (include/nestc/policy.h): retries with backoff and a retry budget, the
 * circuit breaker, bulkheads on both sides. Over TCP (servers on the test's loop, started late or never),
 * then over NATS (a broker of the test's own; skipped when nats-server is not installed). */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "nestc/nestc.h"

#include "broker_harness.h"

static void broker_exec(const broker *b, const char *port) {
    (void)b;
    execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-p", port, (char *)NULL);
}

static broker B;
static int have_nats;

/* ---- a TCP server on a port chosen before it runs ------------------------------------------------------ */

static nc_server *tsrv;
static int handler_runs;
static nc_request *parked[8];
static int nparked;

static void h_park(nc_request *req, const nc_msg *m, void *u) {
    (void)m, (void)u;
    handler_runs++;
    parked[nparked++] = req;
}
static void h_fail(nc_request *req, const nc_msg *m, void *u) {
    (void)m, (void)u;
    handler_runs++;
    nc_reply_error_msg(req, "no");
}
static void h_ok(nc_request *req, const nc_msg *m, void *u) {
    (void)m, (void)u;
    handler_runs++;
    nc_reply(req, json_string("ok"));
}

static void tcp_start(int port) {
    handler_runs = nparked = 0;
    nc_server_opts o = {0};
    o.loop = &loop;
    char u[64];
    snprintf(u, sizeof u, "tcp://127.0.0.1:%d", port);
    assert_int_equal(nc_server_new(&tsrv, u, &o), 0);
    nc_server_message(tsrv, "ok", h_ok, NULL);
    nc_server_message(tsrv, "fail", h_fail, NULL);
    nc_server_message(tsrv, "park", h_park, NULL);
    assert_int_equal(nc_server_listen(tsrv), 0);
}

static void tcp_stop(void) {
    nc_server_free(tsrv);
    tsrv = NULL;
    nparked = 0;
}

static nc_client *tcp_client(int port) {
    char u[64];
    snprintf(u, sizeof u, "tcp://127.0.0.1:%d", port);
    return client_new(u, 0, NULL);
}

/* on_done, keeping the message of an error reply ({"status":"error","message":...}) in c->msg */
static void on_done_msg(void *u, int err, json_t *e) {
    on_done(u, err, e);
    json_t *m = json_object_get(e, "message");
    if (json_is_string(m)) snprintf(((call *)u)->msg, sizeof((call *)u)->msg, "%s", json_string_value(m));
}

/* Sends one request and runs the loop until it is done. */
static void send_wait(nc_client *c, const char *pattern, int timeout_ms, call *k) {
    call_clear(k);
    nc_call_opts o = {.timeout_ms = timeout_ms};
    assert_int_equal(nc_client_send(c, pattern, NULL, timeout_ms ? &o : NULL, on_value, on_done, k), 0);
    run_until(&k->done, 1);
}

/* Runs the loop until the breaker shows `st` (its cool-down is a time: this waits on the breaker, polled
 * every few ms, not on a fixed delay). */
typedef struct state_wait {
    nc_breaker *b;
    nc_breaker_state want;
    int got;
} state_wait;
static void poll_state(uv_timer_t *t) {
    state_wait *w = t->data;
    nc_breaker_info in;
    if (!nc_breaker_get_info(w->b, NULL, &in) && in.state == w->want) w->got = 1;
}
static void wait_state(nc_breaker *b, nc_breaker_state st) {
    state_wait w = {b, st, 0};
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &w;
    uv_timer_start(&t, poll_state, 0, 5);
    run_until(&w.got, 1);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static nc_breaker_state state_of(nc_breaker *b) {
    nc_breaker_info in;
    assert_int_equal(nc_breaker_get_info(b, NULL, &in), 0);
    return in.state;
}

/* ---- retry ------------------------------------------------------------------------------------------- */

/* A set installed before the retry policy: at the first refusal it starts the server, so the retry finds
 * it (the first set that returns 1 decides; this one never does). */
static int late_port, refusals;
static int start_late(void *u, nc_hook_info *i, int err, int *delay_ms) {
    (void)u, (void)i, (void)delay_ms;
    if (err == NC_ECONNREFUSED && refusals++ == 0) tcp_start(late_port);
    return 0;
}

static void test_retry_server_up_late(void **st) {
    (void)st;
    late_port = broker_free_port();
    refusals = 0;
    nc_client *c = tcp_client(late_port);
    nc_client_hooks h = {.struct_size = sizeof h, .should_retry = start_late};
    assert_true(nc_client_add_hooks(c, &h, NULL) > 0);
    nc_retry_opts ro = {.struct_size = sizeof ro, .base_delay_ms = 10, .max_delay_ms = 50};
    nc_retry *r;
    assert_true(nc_client_use_retry(c, &ro, &r) > 0);
    call k = {0};
    send_wait(c, "ok", 0, &k);
    assert_int_equal(k.err, 0);
    assert_string_equal(json_string_value(k.last), "ok");
    nc_retry_stats s;
    assert_int_equal(nc_retry_get_stats(r, &s), 0);
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.retries, 1);
    assert_int_equal(refusals, 1);
    assert_int_equal(handler_runs, 1);
    call_clear(&k);
    nc_client_free(c);
    tcp_stop();
    handler_runs = 0;
}

/* 20 requests to a port nobody listens on, 5 attempts each: without a budget 80 retries; with 10 % of
 * requests and no floor, 2, and the rest fail at once. */
static void storm(double ratio, uint64_t *retries, uint64_t *denied, uint64_t *metric_retries) {
    int port = broker_free_port();
    nc_client *c = tcp_client(port);
    nc_metrics *m;
    nc_metrics_new(&m, NULL);
    nc_metrics_watch_client(m, c);
    nc_retry_opts ro = {.struct_size = sizeof ro,
                        .max_attempts = 5,
                        .base_delay_ms = 1,
                        .no_jitter = 1,
                        .budget_ratio = ratio,
                        .budget_min_per_sec = -1};
    nc_retry *r;
    assert_true(nc_client_use_retry(c, &ro, &r) > 0);
    call k[20];
    int done = 0;
    for (int i = 0; i < 20; i++) {
        memset(&k[i], 0, sizeof k[i]);
        assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &k[i]), 0);
    }
    while (done < 20) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < 20; i++) done += k[i].done;
    }
    for (int i = 0; i < 20; i++) assert_int_equal(k[i].err, NC_ECONNREFUSED);
    nc_retry_stats s;
    nc_retry_get_stats(r, &s);
    *retries = s.retries;
    *denied = s.budget_denied;
    nc_metrics_series t;
    nc_metrics_totals(m, NC_HOOK_CLIENT, &t);
    *metric_retries = t.retries;
    assert_int_equal(t.outcomes[NC_OUTCOME_CONN_REFUSED], 20);
    nc_client_free(c);
    nc_metrics_free(m);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_retry_budget(void **st) {
    (void)st;
    uint64_t retries, denied, mr;
    storm(-1, &retries, &denied, &mr); /* no budget: every request is sent 5 times */
    assert_int_equal(retries, 80);
    assert_int_equal(denied, 0);
    assert_int_equal(mr, 80);
    storm(0.1, &retries, &denied, &mr);
    assert_int_equal(retries, 2);
    assert_int_equal(mr, 2);
    assert_int_equal(denied, 20); /* 18 at the first failure, the 2 retried ones at their second */
}

/* Remote errors are not retried by default (the handler ran; NestJS handlers are not idempotent), nor is
 * an event; opting in retries remote errors up to max_attempts. */
static void test_retry_what_not(void **st) {
    (void)st;
    int port = broker_free_port();
    tcp_start(port);
    nc_client *c = tcp_client(port);
    nc_retry *r;
    nc_retry_opts ro = {.struct_size = sizeof ro, .base_delay_ms = 1};
    int id = nc_client_use_retry(c, &ro, &r);
    assert_true(id > 0);
    call k = {0};
    send_wait(c, "fail", 0, &k);
    assert_int_equal(k.err, NC_EREMOTE);
    assert_int_equal(handler_runs, 1);
    nc_retry_stats s;
    nc_retry_get_stats(r, &s);
    assert_int_equal(s.retries, 0);
    /* an event to a server gone: refused, not retried (the core never asks for events either) */
    tcp_stop();
    call e = {0};
    assert_int_equal(nc_client_emit(c, "tick", NULL, NULL, on_done, &e), 0);
    run_until(&e.done, 1);
    assert_int_not_equal(e.err, 0);
    nc_retry_get_stats(r, &s);
    assert_int_equal(s.retries, 0);
    assert_int_equal(s.requests, 1);
    /* opt in: remote errors are retried */
    tcp_start(port);
    assert_int_equal(nc_client_remove_hooks(c, id), 0);
    ro.retry_on = NC_RETRY_ON_UNSENT | NC_RETRY_ON_REMOTE;
    ro.max_attempts = 3;
    assert_true(nc_client_use_retry(c, &ro, &r) > 0);
    handler_runs = 0;
    send_wait(c, "fail", 0, &k);
    assert_int_equal(k.err, NC_EREMOTE);
    assert_int_equal(handler_runs, 3);
    nc_retry_get_stats(r, &s);
    assert_int_equal(s.retries, 2);
    assert_int_equal(s.exhausted, 1);
    /* bad options */
    nc_retry_opts bad = {.struct_size = sizeof bad, .max_attempts = -1};
    assert_int_equal(nc_client_use_retry(c, &bad, NULL), NC_EINVAL);
    call_clear(&k);
    nc_client_free(c);
    tcp_stop();
    handler_runs = 0;
}

/* ---- circuit breaker --------------------------------------------------------------------------------- */

static int prom_has(nc_metrics *m, const char *needle) {
    char *text;
    assert_int_equal(nc_metrics_prometheus(m, NULL, &text, NULL), 0);
    int r = strstr(text, needle) != NULL;
    free(text);
    return r;
}

/* A dead server: 3 refusals open it; calls then fail at once with NC_ECIRCUITOPEN (metrics: circuit_open);
 * after the cool-down a probe goes through (one only), fails, and it opens again; the server comes back,
 * the next probe succeeds and it closes. */
/* The breaker's log records (component "CircuitBreaker"), as one string: W for WARN, I for INFO. */
static char breaker_log[32];
static void breaker_sink(void *u, nc_log_level level, const char *component, const char *message) {
    (void)u, (void)message;
    size_t n = strlen(breaker_log);
    if (!strcmp(component, "CircuitBreaker") && n + 1 < sizeof breaker_log)
        breaker_log[n] = level == NC_LOG_WARN ? 'W' : level == NC_LOG_INFO ? 'I' : '?';
}

static void test_breaker_dead_server(void **st) {
    (void)st;
    int port = broker_free_port();
    char u[64];
    snprintf(u, sizeof u, "tcp://127.0.0.1:%d", port);
    nc_client_opts lo = {.loop = &loop, .log = breaker_sink, .log_level = NC_LOG_INFO};
    nc_client *c;
    memset(breaker_log, 0, sizeof breaker_log);
    assert_int_equal(nc_client_new(&c, u, &lo), 0);
    nc_metrics *m;
    nc_metrics_new(&m, NULL);
    nc_metrics_watch_client(m, c);
    nc_breaker_opts bo = {.struct_size = sizeof bo, .consecutive_failures = 3, .open_ms = 50};
    nc_breaker *b;
    assert_true(nc_client_use_breaker(c, &bo, &b) > 0);
    call k = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(state_of(b), NC_BREAKER_CLOSED);
        send_wait(c, "ok", 0, &k);
        assert_int_equal(k.err, NC_ECONNREFUSED);
    }
    nc_breaker_info in;
    nc_breaker_get_info(b, NULL, &in);
    assert_int_equal(in.opened, 1);
    /* open: fails before send returns, with the distinct code, events too */
    call_clear(&k);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &k), 0);
    assert_int_equal(k.done, 1);
    assert_int_equal(k.err, NC_ECIRCUITOPEN);
    assert_string_equal(k.msg, nc_strerror(NC_ECIRCUITOPEN));
    assert_true(uv_hrtime() - t0 < 50000000ULL);
    call e = {0};
    assert_int_equal(nc_client_emit(c, "tick", NULL, NULL, on_done, &e), 0);
    assert_int_equal(e.err, NC_ECIRCUITOPEN);
    nc_metrics_series t;
    nc_metrics_totals(m, NC_HOOK_CLIENT, &t);
    assert_int_equal(t.outcomes[NC_OUTCOME_CIRCUIT_OPEN], 2);
    assert_int_equal(t.outcomes[NC_OUTCOME_CONN_REFUSED], 3);
    assert_int_equal(t.outcomes[NC_OUTCOME_HOOK_REFUSED], 0);
    assert_true(
        prom_has(m, "nestc_client_calls_total{transport=\"tcp\",route=\"ok\",outcome=\"circuit_open\"} 1\n"));
    /* half-open: one probe admitted, a second call refused meanwhile; the probe fails: open again */
    wait_state(b, NC_BREAKER_HALF_OPEN);
    call p = {0}, q = {0};
    assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &p), 0);
    assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &q), 0);
    assert_int_equal(q.err, NC_ECIRCUITOPEN);
    run_until(&p.done, 1);
    assert_int_equal(p.err, NC_ECONNREFUSED);
    nc_breaker_get_info(b, NULL, &in);
    assert_int_equal(in.state, NC_BREAKER_OPEN);
    assert_int_equal(in.opened, 2);
    assert_int_equal(in.rejected, 3);
    /* the server is back: the next probe closes it */
    tcp_start(port);
    wait_state(b, NC_BREAKER_HALF_OPEN);
    send_wait(c, "ok", 0, &k);
    assert_int_equal(k.err, 0);
    assert_int_equal(state_of(b), NC_BREAKER_CLOSED);
    send_wait(c, "ok", 0, &k);
    assert_int_equal(k.err, 0);
    /* opened (WARN), half-open, opened again, half-open, closed (INFO) */
    assert_string_equal(breaker_log, "WIWII");
    call_clear(&k);
    call_clear(&p);
    call_clear(&q);
    nc_client_free(c);
    nc_metrics_free(m);
    tcp_stop();
}

/* A slow server (requests time out), one breaker per route and the failure-ratio rule alone: the route whose
 * requests time out opens once it has min_calls (4) calls in the window, not before; the other routes go
 * on; an error reply is the peer answering (not a failure unless asked). */
static void test_breaker_slow_server_ratio(void **st) {
    (void)st;
    int port = broker_free_port();
    tcp_start(port);
    nc_client *c = tcp_client(port);
    nc_breaker_opts bo = {.struct_size = sizeof bo,
                          .consecutive_failures = -1,
                          .failure_ratio = 0.5,
                          .min_calls = 4,
                          .open_ms = 60000,
                          .per_route = 1};
    nc_breaker *b;
    assert_true(nc_client_use_breaker(c, &bo, &b) > 0);
    call k = {0};
    int tmo = 50 * time_factor();
    const char *seq[] = {"ok", "park", "ok", "fail", "park"};
    int want[] = {0, NC_ETIMEDOUT, 0, NC_EREMOTE, NC_ETIMEDOUT};
    for (int i = 0; i < 5; i++) {
        send_wait(c, seq[i], tmo, &k);
        assert_int_equal(k.err, want[i]);
    }
    nc_breaker_info in;
    /* "park": 2 calls, 2 failures, below min_calls: still closed; "ok": 2 successes */
    assert_int_equal(nc_breaker_get_info(b, "park", &in), 0);
    assert_int_equal(in.state, NC_BREAKER_CLOSED);
    assert_int_equal(in.window_calls, 2);
    assert_int_equal(in.window_failures, 2);
    assert_int_equal(nc_breaker_get_info(b, "nothing yet", &in), NC_ENOENT);
    send_wait(c, "park", tmo, &k);
    send_wait(c, "park", tmo, &k);
    assert_int_equal(nc_breaker_get_info(b, "park", &in), 0);
    assert_int_equal(in.state, NC_BREAKER_OPEN);
    send_wait(c, "park", tmo, &k);
    assert_int_equal(k.err, NC_ECIRCUITOPEN);
    send_wait(c, "ok", tmo, &k); /* another route goes on */
    assert_int_equal(k.err, 0);
    nc_breaker_get_info(b, "fail", &in);
    assert_int_equal(in.window_failures, 0); /* a remote error is the peer answering */
    call_clear(&k);
    nc_client_free(c);
    tcp_stop();
}

/* ---- bulkheads ---------------------------------------------------------------------------------------- */

/* Server, limit 2: the first two requests run, the third gets NestJS's error reply at once; both then
 * succeed. Client, limit 1: the second call fails before send returns. */
static void test_bulkheads_tcp(void **st) {
    (void)st;
    int port = broker_free_port();
    tcp_start(port);
    nc_bulkhead_opts bo = {.struct_size = sizeof bo, .max_in_flight = 2};
    nc_bulkhead *sb;
    assert_true(nc_server_use_bulkhead(tsrv, &bo, &sb) > 0);
    nc_client *c = tcp_client(port);
    call k[3] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(nc_client_send(c, "park", NULL, NULL, on_value, on_done_msg, &k[i]), 0);
    run_until(&k[2].done, 1);
    assert_int_equal(k[2].err, NC_EREMOTE);
    assert_string_equal(k[2].msg, nc_strerror(NC_EREFUSED));
    run_until(&nparked, 2);
    assert_int_equal(handler_runs, 2);
    assert_int_equal(nc_bulkhead_in_flight(sb), 2);
    assert_int_equal(nc_bulkhead_refused(sb), 1);
    nc_reply(parked[0], json_integer(1));
    nc_reply(parked[1], json_integer(2));
    run_until(&k[0].done, 1);
    run_until(&k[1].done, 1);
    assert_int_equal(k[0].err, 0);
    assert_int_equal(k[1].err, 0);
    assert_int_equal(nc_bulkhead_in_flight(sb), 0);
    /* the client's own */
    nc_bulkhead_opts co = {.struct_size = sizeof co, .max_in_flight = 1};
    nc_bulkhead *cb;
    assert_true(nc_client_use_bulkhead(c, &co, &cb) > 0);
    call a = {0}, z = {0};
    nparked = 0;
    assert_int_equal(nc_client_send(c, "park", NULL, NULL, on_value, on_done, &a), 0);
    assert_int_equal(nc_client_send(c, "park", NULL, NULL, on_value, on_done, &z), 0);
    assert_int_equal(z.done, 1);
    assert_int_equal(z.err, NC_EREFUSED);
    assert_int_equal(nc_bulkhead_in_flight(cb), 1);
    run_until(&nparked, 1);
    nc_reply(parked[0], json_integer(3));
    run_until(&a.done, 1);
    assert_int_equal(a.err, 0);
    assert_int_equal(nc_bulkhead_in_flight(cb), 0);
    assert_int_equal(nc_bulkhead_refused(cb), 1);
    nc_bulkhead_opts bad = {.struct_size = sizeof bad};
    assert_int_equal(nc_client_use_bulkhead(c, &bad, NULL), NC_EINVAL);
    for (int i = 0; i < 3; i++) call_clear(&k[i]);
    call_clear(&a);
    call_clear(&z);
    nc_client_free(c);
    tcp_stop();
}

/* ---- the client bulkhead's queue ------------------------------------------------------------------------
 */

static int done_calls; /* on_done_count's: callbacks after a client's free would show here */
static void on_done_count(void *u, int err, json_t *e) {
    done_calls++;
    on_done(u, err, e);
}

static int always_retry(void *u, nc_hook_info *i, int err, int *delay_ms) {
    (void)u, (void)i, (void)err;
    *delay_ms = 0;
    return 1;
}

static uint64_t ms_since(uint64_t t0) {
    return (uv_hrtime() - t0) / 1000000u;
}

/* Limit 1, queue 2: the second and third calls wait (not sent: the server sees one), the fourth is
 * refused at once; a reply lets the queue's head go; a queued call cancelled leaves it; a wait that
 * expires fails with NC_EREFUSED, one whose call timeout comes first with NC_ETIMEDOUT; freeing the
 * client fails a queued call inside nc_client_free and nothing after. */
static void test_bulkhead_queue(void **st) {
    (void)st;
    int port = broker_free_port();
    tcp_start(port);
    nc_client *c = tcp_client(port);
    nc_bulkhead_opts bo = {
        .struct_size = sizeof bo, .max_in_flight = 1, .max_queue = 2, .max_wait_ms = 20000 * time_factor()};
    nc_bulkhead *b;
    assert_true(nc_client_use_bulkhead(c, &bo, &b) > 0);
    call a = {0}, q1 = {0}, q2 = {0}, full = {0};
    nc_call *h2;
    assert_int_equal(nc_client_send(c, "park", NULL, NULL, on_value, on_done, &a), 0);
    assert_int_equal(nc_client_send(c, "park", NULL, NULL, on_value, on_done, &q1), 0);
    nc_call_cbs cbs = {.on_value = on_value, .on_done = on_done};
    assert_int_equal(nc_client_call(c, "park", NULL, NULL, &cbs, &q2, &h2), 0);
    assert_int_equal(nc_client_send(c, "park", NULL, NULL, on_value, on_done, &full), 0);
    assert_int_equal(full.done, 1); /* the queue is full: refused before send returned */
    assert_int_equal(full.err, NC_EREFUSED);
    assert_int_equal(nc_bulkhead_in_flight(b), 1);
    assert_int_equal(nc_bulkhead_queued(b), 2);
    assert_int_equal(nc_client_pending(c), 3); /* the queued ones are pending: nc_client_run waits */
    run_until(&nparked, 1);
    nc_reply(parked[0], json_integer(1)); /* a slot frees: q1 goes */
    run_until(&a.done, 1);
    assert_int_equal(a.err, 0);
    run_until(&nparked, 2);
    assert_int_equal(handler_runs, 2); /* q2 still waits: never sent */
    assert_int_equal(nc_bulkhead_queued(b), 1);
    assert_int_equal(nc_call_cancel(h2), 0); /* cancelled while queued */
    assert_int_equal(q2.done, 1);
    assert_int_equal(q2.err, NC_ECANCELED);
    assert_int_equal(nc_bulkhead_queued(b), 0);
    nc_reply(parked[1], json_integer(2));
    run_until(&q1.done, 1);
    assert_int_equal(q1.err, 0);
    assert_int_equal(nc_bulkhead_in_flight(b), 0);
    assert_int_equal(nc_bulkhead_refused(b), 1);
    assert_int_equal(handler_runs, 2);
    call_clear(&a), call_clear(&q1), call_clear(&q2), call_clear(&full);
    nc_client_free(c);

    /* a short wait: expires with NC_EREFUSED; a shorter call timeout: NC_ETIMEDOUT */
    c = tcp_client(port);
    int tf = time_factor();
    nc_bulkhead_opts so = {
        .struct_size = sizeof so, .max_in_flight = 1, .max_queue = 4, .max_wait_ms = 100 * tf};
    assert_true(nc_client_use_bulkhead(c, &so, &b) > 0);
    /* a set that would resend any failed request: a call that never left the queue must not be */
    nc_client_hooks rh = {.struct_size = sizeof rh, .should_retry = always_retry};
    assert_true(nc_client_add_hooks(c, &rh, NULL) > 0);
    call p = {0}, late = {0}, tmo = {0};
    nparked = handler_runs = 0;
    assert_int_equal(nc_client_send(c, "park", NULL, NULL, on_value, on_done, &p), 0);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(nc_client_send(c, "park", NULL, NULL, on_value, on_done, &late), 0);
    nc_call_opts o = {.timeout_ms = 30 * tf};
    assert_int_equal(nc_client_send(c, "park", NULL, &o, on_value, on_done, &tmo), 0);
    run_until(&tmo.done, 1);
    assert_int_equal(tmo.err, NC_ETIMEDOUT);
    assert_non_null(strstr(tmo.msg, "held by a client policy"));
    run_until(&late.done, 1);
    assert_int_equal(late.err, NC_EREFUSED);
    assert_true(ms_since(t0) >= 99u * tf);
    assert_int_equal(nc_bulkhead_expired(b), 1);
    assert_int_equal(nc_bulkhead_queued(b), 0);
    run_until(&nparked, 1);
    assert_int_equal(handler_runs, 1);

    /* freed with a call queued: its on_done runs inside nc_client_free (NC_ECLOSED), nothing after */
    call f = {0};
    done_calls = 0;
    assert_int_equal(nc_client_send(c, "park", NULL, NULL, on_value, on_done_count, &f), 0);
    assert_int_equal(nc_bulkhead_queued(b), 1);
    nc_client_free(c);
    assert_int_equal(f.done, 1);
    assert_int_equal(f.err, NC_ECLOSED);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(done_calls, 1);
    call_clear(&p), call_clear(&late), call_clear(&tmo), call_clear(&f);
    nc_bulkhead_opts srvq = {.struct_size = sizeof srvq, .max_in_flight = 1, .max_queue = 1};
    assert_int_equal(nc_server_use_bulkhead(tsrv, &srvq, NULL), NC_EINVAL); /* client only */
    tcp_stop();
}

/* ---- rate limiters --------------------------------------------------------------------------------------
 */

/* Client, 10/s with a burst of 2 and no wait: two calls go, the third fails before send returns; per
 * route, each route has its own bucket. With waits (20/s, burst 1): the calls after the first wait their
 * turn, one token interval apart, and succeed; one cancelled while it waits gives its token back;
 * one whose token is due past max_wait is refused at once; freeing the client ends a waiting call. */
static void test_rate_limit_client(void **st) {
    (void)st;
    int port = broker_free_port();
    tcp_start(port);
    nc_client *c = tcp_client(port);
    nc_rate_limit_opts ro = {.struct_size = sizeof ro, .rate = 10, .burst = 2};
    nc_rate_limiter *l;
    assert_true(nc_client_use_rate_limit(c, &ro, &l) > 0);
    call k[3] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &k[i]), 0);
    assert_int_equal(k[2].done, 1);
    assert_int_equal(k[2].err, NC_EREFUSED);
    run_until(&k[0].done, 1);
    run_until(&k[1].done, 1);
    assert_int_equal(k[0].err, 0);
    assert_int_equal(k[1].err, 0);
    nc_rate_limit_info in;
    assert_int_equal(nc_rate_limit_get_info(l, NULL, &in), 0);
    assert_int_equal(in.admitted, 2);
    assert_int_equal(in.refused, 1);
    assert_true(in.tokens < 2);
    for (int i = 0; i < 3; i++) call_clear(&k[i]);
    nc_client_free(c);

    /* per route: rate ~0, burst 1 */
    c = tcp_client(port);
    nc_rate_limit_opts pr = {.struct_size = sizeof pr, .rate = 0.001, .burst = 1, .per_route = 1};
    assert_true(nc_client_use_rate_limit(c, &pr, &l) > 0);
    assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &k[0]), 0);
    assert_int_equal(nc_client_send(c, "fail", NULL, NULL, on_value, on_done, &k[1]), 0);
    assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &k[2]), 0);
    assert_int_equal(k[2].err, NC_EREFUSED);
    run_until(&k[0].done, 1);
    run_until(&k[1].done, 1);
    assert_int_equal(k[0].err, 0);
    assert_int_equal(k[1].err, NC_EREMOTE); /* its own bucket: it ran */
    assert_int_equal(nc_rate_limit_get_info(l, "ok", &in), 0);
    assert_true(in.tokens < 1);
    assert_int_equal(nc_rate_limit_get_info(l, "park", &in), NC_ENOENT);
    for (int i = 0; i < 3; i++) call_clear(&k[i]);
    nc_client_free(c);

    /* waiting: 20/s (50 ms apart), burst 1, up to 120 ms (two calls' wait); all × the time factor */
    c = tcp_client(port);
    int tf = time_factor(); /* slower tokens on a slow machine: the margins between the calls grow too */
    nc_rate_limit_opts wo = {
        .struct_size = sizeof wo, .rate = 20.0 / tf, .burst = 1, .max_wait_ms = 120 * tf};
    assert_true(nc_client_use_rate_limit(c, &wo, &l) > 0);
    call w[5] = {{0}};
    nc_call *hw;
    nc_call_cbs cbs = {.on_value = on_value, .on_done = on_done};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &w[0]), 0); /* at once */
    assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &w[1]), 0); /* +50 ms */
    assert_int_equal(nc_client_call(c, "ok", NULL, NULL, &cbs, &w[2], &hw), 0);         /* +100 ms */
    assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &w[3]), 0); /* +150: refused */
    assert_int_equal(w[3].done, 1);
    assert_int_equal(w[3].err, NC_EREFUSED);
    assert_int_equal(nc_rate_limit_get_info(l, NULL, &in), 0);
    assert_int_equal(in.waiting, 2);
    assert_int_equal(in.tokens, 0);
    assert_int_equal(nc_call_cancel(hw), 0); /* its token (+100 ms) goes back */
    assert_int_equal(w[2].err, NC_ECANCELED);
    assert_int_equal(nc_client_send(c, "ok", NULL, NULL, on_value, on_done, &w[4]), 0); /* takes it back */
    assert_int_equal(w[4].done, 0);
    run_until(&w[1].done, 1);
    uint64_t t1 = ms_since(t0);
    run_until(&w[4].done, 1);
    uint64_t t4 = ms_since(t0);
    assert_int_equal(w[0].err, 0);
    assert_int_equal(w[1].err, 0);
    assert_int_equal(w[4].err, 0);
    assert_true(t1 >= 45u * tf);
    assert_true(t4 >= 95u * tf);
    assert_int_equal(nc_rate_limit_get_info(l, NULL, &in), 0);
    assert_int_equal(in.admitted, 1);
    assert_int_equal(in.delayed, 2);
    assert_int_equal(in.refused, 1);
    assert_int_equal(in.waiting, 0);
    /* freed with a call waiting */
    call f = {0}, g = {0};
    done_calls = 0;
    nc_client_send(c, "ok", NULL, NULL, on_value, on_done_count, &f);
    nc_client_send(c, "ok", NULL, NULL, on_value, on_done_count, &g);
    assert_int_equal(nc_rate_limit_get_info(l, NULL, &in), 0);
    assert_true(in.waiting >= 1);
    nc_client_free(c);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(done_calls, 2);
    assert_int_equal(g.err, NC_ECLOSED);
    for (int i = 0; i < 5; i++) call_clear(&w[i]);
    call_clear(&f), call_clear(&g);
    nc_rate_limit_opts bad = {.struct_size = sizeof bad};
    assert_int_equal(nc_server_use_rate_limit(tsrv, &bad, NULL), NC_EINVAL); /* no rate */
    bad.rate = 1, bad.max_wait_ms = 10;
    assert_int_equal(nc_server_use_rate_limit(tsrv, &bad, NULL), NC_EINVAL); /* a server does not wait */
    tcp_stop();
}

static void run_server(void *s) {
    nc_server_run(s);
}

static atomic_int events_run; /* on the workers' threads */
static void h_event(const nc_msg *m, void *u) {
    (void)m, (void)u;
    atomic_fetch_add(&events_run, 1);
}

/* Runs the loop until the limiter has refused `want` messages (polled every few ms: the server's workers
 * refuse events with no reply to wait for). */
typedef struct refused_wait {
    nc_rate_limiter *l;
    uint64_t want;
    int got;
} refused_wait;
static void poll_refused(uv_timer_t *t) {
    refused_wait *w = t->data;
    nc_rate_limit_info in;
    if (!nc_rate_limit_get_info(w->l, NULL, &in) && in.refused >= w->want) w->got = 1;
}

/* Server, burst 5 and (nearly) no refill, 3 workers, 4 clients of 5 requests each on their own
 * connections: exactly 5 run in all (one budget for every worker), the 15 others get NestJS's error reply
 * with NC_EREFUSED's message; events beyond the limit are refused too (their handlers do not run). */
static void test_rate_limit_server_workers(void **st) {
    (void)st;
    nc_server *ws;
    assert_int_equal(nc_server_new(&ws, "tcp://127.0.0.1:0", &(nc_server_opts){.workers = 3}), 0);
    nc_server_message(ws, "ok", h_ok, NULL);
    nc_server_event(ws, "ev", h_event, NULL);
    atomic_store(&events_run, 0);
    nc_rate_limit_opts ro = {.struct_size = sizeof ro, .rate = 0.001, .burst = 5};
    nc_rate_limiter *l;
    assert_true(nc_server_use_rate_limit(ws, &ro, &l) > 0);
    assert_int_equal(nc_server_listen(ws), 0);
    uv_thread_t th;
    uv_thread_create(&th, run_server, ws);
    enum { NC = 4, NR = 5 };
    nc_client *cs[NC];
    call k[NC][NR];
    memset(k, 0, sizeof k);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", nc_server_port(ws));
    for (int i = 0; i < NC; i++) {
        cs[i] = client_new(url, 0, NULL);
        for (int j = 0; j < NR; j++)
            assert_int_equal(nc_client_send(cs[i], "ok", NULL, NULL, on_value, on_done_msg, &k[i][j]), 0);
    }
    int ok = 0, refused = 0;
    for (int i = 0; i < NC; i++)
        for (int j = 0; j < NR; j++) {
            run_until(&k[i][j].done, 1);
            if (k[i][j].err == 0) ok++;
            if (k[i][j].err == NC_EREMOTE && !strcmp(k[i][j].msg, nc_strerror(NC_EREFUSED))) refused++;
            call_clear(&k[i][j]);
        }
    assert_int_equal(ok, 5);
    assert_int_equal(refused, 15);
    nc_rate_limit_info in;
    assert_int_equal(nc_rate_limit_get_info(l, NULL, &in), 0);
    assert_int_equal(in.admitted, 5);
    assert_int_equal(in.refused, 15);
    /* events over the limit: refused too, their handlers never run */
    call e[3] = {{0}};
    for (int i = 0; i < 3; i++) assert_int_equal(nc_client_emit(cs[i], "ev", NULL, NULL, on_done, &e[i]), 0);
    refused_wait rw = {l, 18, 0};
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &rw;
    uv_timer_start(&t, poll_refused, 0, 5);
    run_until(&rw.got, 1);
    uv_close((uv_handle_t *)&t, NULL);
    for (int i = 0; i < 3; i++) run_until(&e[i].done, 1);
    assert_int_equal(atomic_load(&events_run), 0);
    for (int i = 0; i < NC; i++) nc_client_free(cs[i]);
    nc_server_close_threadsafe(ws);
    uv_thread_join(&th);
    nc_server_free(ws);
}

/* ---- NATS ---------------------------------------------------------------------------------------------- */

/* The server's bulkhead and the client's breaker over a broker: a second request while one sleeps gets the
 * error reply; two timeouts open the breaker; after the cool-down a probe closes it. */
static void test_nats(void **st) {
    (void)st;
    if (!have_nats) {
        printf("nats-server not installed: NATS case skipped\n");
        return;
    }
    char u[64];
    snprintf(u, sizeof u, "nats://127.0.0.1:%d", B.port);
    svc s;
    svc_start(&s, u);
    nc_bulkhead_opts bo = {.struct_size = sizeof bo, .max_in_flight = 1};
    nc_bulkhead *sb;
    int bid = nc_server_use_bulkhead(s.srv, &bo, &sb);
    assert_true(bid > 0);
    nc_client *c = client_new(u, 0, NULL);
    call w = {0}, k = {0};
    json_t *d = json_integer(300);
    int before = sleeps_started;
    assert_int_equal(nc_client_send(c, "sleep", d, NULL, on_value, on_done, &w), 0);
    run_until(&sleeps_started, before + 1);
    json_t *nums = json_pack("[i,i]", 1, 2);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", nums, NULL, on_value, on_done_msg, &k), 0);
    run_until(&k.done, 1);
    assert_int_equal(k.err, NC_EREMOTE);
    assert_string_equal(k.msg, nc_strerror(NC_EREFUSED));
    run_until(&w.done, 1);
    assert_int_equal(w.err, 0);
    assert_int_equal(nc_bulkhead_in_flight(sb), 0);
    assert_int_equal(nc_server_remove_hooks(s.srv, bid), 0);
    /* the breaker */
    nc_breaker_opts br = {.struct_size = sizeof br, .consecutive_failures = 2, .open_ms = 50};
    nc_breaker *b;
    assert_true(nc_client_use_breaker(c, &br, &b) > 0);
    json_decref(d);
    d = json_integer(10000);
    nc_call_opts slow = {.timeout_ms = 100 * time_factor()};
    for (int i = 0; i < 2; i++) {
        call_clear(&k);
        assert_int_equal(nc_client_send(c, "sleep", d, &slow, on_value, on_done, &k), 0);
        run_until(&k.done, 1);
        assert_int_equal(k.err, NC_ETIMEDOUT);
    }
    assert_int_equal(state_of(b), NC_BREAKER_OPEN);
    call_clear(&k);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", nums, NULL, on_value, on_done, &k), 0);
    assert_int_equal(k.err, NC_ECIRCUITOPEN);
    wait_state(b, NC_BREAKER_HALF_OPEN);
    call_clear(&k);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", nums, NULL, on_value, on_done, &k), 0);
    run_until(&k.done, 1);
    assert_int_equal(k.err, 0);
    assert_int_equal(json_integer_value(k.last), 3);
    assert_int_equal(state_of(b), NC_BREAKER_CLOSED);
    json_decref(d);
    json_decref(nums);
    call_clear(&w);
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
}

static int setup(void **st) {
    (void)st;
    (void)run_ms, (void)expect_server_refused_all, (void)expect_server_refused_some; /* the harness's */
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    uv_loop_init(&loop);
    have_nats = system("command -v nats-server >/dev/null 2>&1") == 0;
    if (have_nats) broker_start(&B);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    uv_run(&loop, UV_RUN_DEFAULT);
    if (have_nats) broker_free(&B);
    int r = uv_loop_close(&loop);
    if (r) uv_print_all_handles(&loop, stderr);
    return r;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_server_up_late),
        cmocka_unit_test(test_retry_budget),
        cmocka_unit_test(test_retry_what_not),
        cmocka_unit_test(test_breaker_dead_server),
        cmocka_unit_test(test_breaker_slow_server_ratio),
        cmocka_unit_test(test_bulkheads_tcp),
        cmocka_unit_test(test_bulkhead_queue),
        cmocka_unit_test(test_rate_limit_client),
        cmocka_unit_test(test_rate_limit_server_workers),
        cmocka_unit_test(test_nats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
