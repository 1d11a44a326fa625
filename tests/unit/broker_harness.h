/* What the broker tests (test_redis.c, test_nats.c) share: a broker process of their own on a free
 * loopback port in a temporary directory (started, restarted on the same port, stopped by PID), loop
 * helpers (with loop_fixture.h: every time limit is scaled by time_factor(), every wait ends as soon as
 * what it waits for happens), one service with the handlers both use, and call/status recorders. Each test
 * defines broker_exec(), which runs in the child and execs its broker. Included by one file each. */
#ifndef NESTC_TEST_BROKER_HARNESS_H
#define NESTC_TEST_BROKER_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <uv.h>

#include "../common/broker.h"
#include "nestc/nestc.h"

#include "loop_fixture.h"

/* In the child: exec the broker listening on 127.0.0.1:port (b->pass: the password it requires). */
static void broker_exec(const broker *b, const char *port);

/* ---- the broker (tests/common/broker.h) ------------------------------------------------------------ */

/* Starts (or restarts, same port) the broker; returns once it accepts connections. */
static void broker_start(broker *b) {
    broker_start_with(b, time_factor(), broker_exec);
}

/* ---- loop helpers ------------------------------------------------------------------------------------ */

static void run_ms(int ms) {
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&loop, &t);
    t.data = &fired;
    uv_timer_start(&t, loop_fixture_on_tick, (uint64_t)ms, 0);
    while (!fired) uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- the service --------------------------------------------------------------------------------------- */

typedef struct svc {
    nc_server *srv;
    int handled; /* requests answered by `who` */
    int connected, reconnecting;
    int events;
    json_t *last_event; /* data of the last event */
    char last_channel[128];
    int wheres; /* calls of h_where, events included */
} svc;

static void h_sum(nc_request *req, const nc_msg *m, void *u) {
    json_t *d = nc_msg_data(m);
    double s = 0;
    size_t i;
    json_t *v;
    json_array_foreach(d, i, v) s += json_number_value(v);
    nc_reply(req, json_integer((json_int_t)s));
}

/* the timers of unfinished `sleep` requests: a server freed with them pending frees the requests */
enum { MAX_SLEEPS = 64 };
static uv_timer_t *sleeps[MAX_SLEEPS];
static int sleeps_started; /* `sleep` requests a server has received: a test waits on it, not on a delay */

static void on_later(uv_timer_t *t) {
    nc_request *req = t->data;
    nc_reply(req, json_string("late"));
    for (int i = 0; i < MAX_SLEEPS; i++)
        if (sleeps[i] == t) sleeps[i] = NULL;
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

/* replies "late" after data ms */
static void h_sleep(nc_request *req, const nc_msg *m, void *u) {
    uv_timer_t *t = malloc(sizeof *t);
    uv_timer_init(nc_request_loop(req), t);
    t->data = req;
    uv_timer_start(t, on_later, (uint64_t)json_integer_value(nc_msg_data(m)), 0);
    sleeps_started++;
    for (int i = 0; i < MAX_SLEEPS; i++)
        if (!sleeps[i]) {
            sleeps[i] = t;
            break;
        }
}

static void cancel_sleeps(void) {
    for (int i = 0; i < MAX_SLEEPS; i++)
        if (sleeps[i]) {
            uv_close((uv_handle_t *)sleeps[i], (uv_close_cb)free);
            sleeps[i] = NULL;
        }
}

static void h_where(nc_request *req, const nc_msg *m, void *u) {
    svc *s = u;
    s->wheres++;
    snprintf(s->last_channel, sizeof s->last_channel, "%s", nc_msg_channel(m) ? nc_msg_channel(m) : "");
    json_t *o = json_pack("{s:s,s:s}", "channel", nc_msg_channel(m) ? nc_msg_channel(m) : "", "route",
                          nc_msg_route(m));
    if (nc_msg_headers(m)) json_object_set(o, "headers", nc_msg_headers(m));
    /* the ordered list and the transport context, where the transport has them (NATS) */
    size_t n;
    const char *v = nc_msg_header(m, "x-trace", &n);
    if (v) json_object_set_new(o, "trace", json_stringn(v, n));
    if (nc_msg_header_count(m))
        json_object_set_new(o, "nheaders", json_integer((json_int_t)nc_msg_header_count(m)));
    if ((v = nc_msg_ctx_str(m, NC_CTX_SUBJECT, &n))) json_object_set_new(o, "subject", json_stringn(v, n));
    if (nc_msg_ctx_str(m, NC_CTX_REPLY_TO, &n)) json_object_set_new(o, "has_reply_to", json_true());
    nc_reply(req, o);
}

static void h_who(nc_request *req, const nc_msg *m, void *u) {
    svc *s = u;
    s->handled++;
    nc_reply(req, json_integer((json_int_t)(uintptr_t)s));
}

static void ev_note(const nc_msg *m, void *u) {
    svc *s = u;
    s->events++;
    json_decref(s->last_event);
    s->last_event = json_incref(nc_msg_data(m));
    snprintf(s->last_channel, sizeof s->last_channel, "%s", nc_msg_channel(m) ? nc_msg_channel(m) : "");
}

static void srv_status(void *u, const char *status, int err) {
    svc *s = u;
    if (!strcmp(status, "connected")) s->connected++;
    if (!strcmp(status, "reconnecting")) s->reconnecting++;
}

static void svc_start(svc *s, const char *url) {
    memset(s, 0, sizeof *s);
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.log = NULL;
    o.retry_delay_ms = 100;
    o.shutdown_timeout_ms = 200;
    assert_int_equal(nc_server_new(&s->srv, url, &o), 0);
    assert_int_equal(nc_server_message(s->srv, "{\"cmd\":\"sum\"}", h_sum, s), 0);
    assert_int_equal(nc_server_message(s->srv, "sleep", h_sleep, s), 0);
    assert_int_equal(nc_server_message(s->srv, "sensors.*", h_where, s), 0);
    assert_int_equal(nc_server_message(s->srv, "alerts.>", h_where, s), 0);
    assert_int_equal(nc_server_message(s->srv, "where", h_where, s), 0);
    assert_int_equal(nc_server_message(s->srv, "who", h_who, s), 0);
    nc_handler_opts ho = {.queue = "q2"}; /* a queue of its own, whatever the server's */
    assert_int_equal(nc_server_message_opts(s->srv, "qwho", &ho, h_who, s), 0);
    assert_int_equal(nc_server_event(s->srv, "note", ev_note, s), 0);
    nc_server_on_status(s->srv, srv_status, s);
    assert_int_equal(nc_server_listen(s->srv), 0);
    assert_true(run_until_ms(&s->connected, 1, 5000));
}

static void svc_stop(svc *s) {
    cancel_sleeps();
    nc_server_free(s->srv);
    json_decref(s->last_event);
    s->srv = NULL;
}

/* ---- a server the broker refuses (permissions) ----------------------------------------------------------
 */

typedef struct refusal_log {
    int refusals;     /* ERROR lines about refusals */
    int disconnected; /* status "disconnected" with an error */
    int connected;
    int settled; /* connected or disconnected */
    int err;
    char last[300]; /* the last of those lines */
} refusal_log;

static void count_refusals(void *u, nc_log_level level, const char *component, const char *message) {
    refusal_log *l = u;
    if (level >= NC_LOG_ERROR && strstr(message, "refused")) {
        l->refusals++;
        snprintf(l->last, sizeof l->last, "%s", message);
    }
}

static void refusal_status(void *u, const char *status, int err) {
    refusal_log *l = u;
    if (!strcmp(status, "connected")) l->connected++, l->settled++;
    if (!strcmp(status, "disconnected") && err) {
        l->disconnected++;
        l->settled++;
        l->err = err;
    }
}

/* A server on url with three handlers (`{"cmd":"sum"}`, who, where), logging into l; returns once it
 * reported connected or disconnected. */
static nc_server *refused_server(const char *url, refusal_log *l) {
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log = count_refusals;
    o.log_user = l;
    o.log_level = NC_LOG_DEBUG;
    o.retry_delay_ms = 100;
    o.shutdown_timeout_ms = 200;
    nc_server *srv;
    assert_int_equal(nc_server_new(&srv, url, &o), 0);
    assert_int_equal(nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL), 0);
    assert_int_equal(nc_server_message(srv, "who", h_sum, NULL), 0);
    assert_int_equal(nc_server_message(srv, "where", h_sum, NULL), 0);
    nc_server_on_status(srv, refusal_status, l);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&l->settled, 1, 3000));
    return srv;
}

/* A server on url the broker refuses every subscription of: it reports disconnected with NC_EAUTH and
 * logs one line for the three. */
static void expect_server_refused_all(const char *url) {
    refusal_log l = {0};
    nc_server *srv = refused_server(url, &l);
    assert_int_equal(l.disconnected, 1);
    assert_int_equal(l.err, NC_EAUTH);
    assert_int_equal(l.connected, 0);
    assert_int_equal(l.refusals, 1);
    assert_non_null(strstr(l.last, "3 of 3"));
    nc_server_free(srv);
}

/* A server on url the broker refuses two of three subscriptions of: it serves the third (connected) and
 * says once which routes are not served. */
static void expect_server_refused_some(const char *url) {
    refusal_log l = {0};
    nc_server *srv = refused_server(url, &l);
    assert_int_equal(l.connected, 1);
    assert_int_equal(l.disconnected, 0);
    assert_int_equal(l.refusals, 1);
    assert_non_null(strstr(l.last, "2 of 3"));
    assert_non_null(strstr(l.last, "where"));
    nc_server_free(srv);
}

/* ---- calls --------------------------------------------------------------------------------------------- */

typedef struct call {
    int done, err, nvalues;
    json_t *last;
    char msg[200];
} call;

static void on_value(void *u, json_t *v) {
    call *c = u;
    c->nvalues++;
    json_decref(c->last);
    c->last = json_incref(v);
}

static void on_done(void *u, int err, json_t *e) {
    call *c = u;
    c->done = 1;
    c->err = err;
    if (json_is_string(e)) snprintf(c->msg, sizeof c->msg, "%s", json_string_value(e));
}

static void call_clear(call *c) {
    json_decref(c->last);
    memset(c, 0, sizeof *c);
}

typedef struct cli_status {
    int connected, reconnecting, disconnected;
} cli_status;

static void cli_on_status(void *u, const char *status, int err) {
    cli_status *s = u;
    if (!strcmp(status, "connected")) s->connected++;
    if (!strcmp(status, "reconnecting")) s->reconnecting++;
    if (!strcmp(status, "disconnected")) s->disconnected++;
}

static nc_client *client_new(const char *url, int retries, cli_status *st) {
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.timeout_ms = 3000 * time_factor();
    o.retry_attempts = retries;
    o.retry_delay_ms = 100;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, url, &o), 0);
    if (st) nc_client_on_status(c, cli_on_status, st);
    return c;
}

#endif
