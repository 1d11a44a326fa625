/* Hooks (include/nestc/hooks.h). First the hook machinery on its own (sets, tables, records, order,
 * per-set state, refusals, removal while messages are in flight); then, with a real TCP server and client
 * on one loop, what each kind of message shows the hooks. */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "core/hooks_internal.h"
#include "core/server_internal.h"
#include "transport/transport.h"
#include "nestc/nestc.h"

#include "tcp_fixture.h"

/* ---- a log of hook calls ------------------------------------------------------------------------- */

typedef struct ev {
    char what[48];
    uint64_t t;
    int code;
} ev;

static ev evs[256];
static int nevs;

static void logev(const char *set, const char *what, nc_hook_info *i, int code) {
    if (nevs >= (int)(sizeof evs / sizeof *evs)) return;
    snprintf(evs[nevs].what, sizeof evs[nevs].what, "%s:%s", set, what);
    evs[nevs].t = nc_hook_now(i);
    assert_true(evs[nevs].t >= i->start_ns);
    evs[nevs].code = code;
    nevs++;
}

/* The log as one string "A:dispatch A:start ..." for comparison. */
static const char *trail(void) {
    static char s[4096];
    s[0] = '\0';
    for (int k = 0; k < nevs; k++) {
        if (k) strcat(s, " ");
        strcat(s, evs[k].what);
    }
    return s;
}

static int refuse_with; /* what set "B"'s interceptors return */
static int released;

static const char *name_of(void *user) {
    return user ? user : "?";
}

static void s_dispatch(void *u, nc_hook_info *i) {
    assert_null(*i->state);
    *i->state = u; /* each set's own slot */
    logev(name_of(u), "dispatch", i, 0);
}
static int s_before(void *u, nc_hook_info *i) {
    assert_ptr_equal(*i->state, u);
    logev(name_of(u), "before", i, 0);
    return strcmp(name_of(u), "B") == 0 ? refuse_with : 0;
}
static void s_start(void *u, nc_hook_info *i) {
    logev(name_of(u), "start", i, 0);
}
static void s_return(void *u, nc_hook_info *i) {
    logev(name_of(u), "return", i, 0);
}
static void s_reply(void *u, nc_hook_info *i, nc_hook_reply kind, const char *json, size_t len, int final) {
    char w[32];
    /* the first bytes of the value are enough to tell packets apart */
    snprintf(w, sizeof w, "reply%d%s%.*s", (int)kind, final ? "f" : "", (int)(len < 9 ? len : 9),
             json ? json : "");
    logev(name_of(u), w, i, 0);
}
static void s_settle(void *u, nc_hook_info *i, nc_settle how) {
    char w[16];
    snprintf(w, sizeof w, "settle%d", (int)how);
    logev(name_of(u), w, i, (int)how);
}
static void s_finish(void *u, nc_hook_info *i, int outcome) {
    assert_ptr_equal(*i->state, u);
    char w[32];
    snprintf(w, sizeof w, "finish%d", outcome);
    logev(name_of(u), w, i, outcome);
}
static void s_release(void *u) {
    released++;
}

static const nc_server_hooks all_server = {
    .struct_size = sizeof(nc_server_hooks),
    .on_dispatch = s_dispatch,
    .before_handler = s_before,
    .on_handler_start = s_start,
    .on_handler_return = s_return,
    .on_reply = s_reply,
    .on_settle = s_settle,
    .on_finish = s_finish,
    .release = s_release,
};

static void reset(void) {
    nevs = 0;
    refuse_with = 0;
    released = 0;
}

/* A message as dispatch.c fills one (only what the hooks read). */
static void fake_msg(nc_msg *m, const char *route, int is_event) {
    memset(m, 0, sizeof *m);
    m->route = route;
    m->pattern_text = route;
    m->transport = "tcp";
    m->is_event = is_event;
}

/* ---- the machinery alone ------------------------------------------------------------------------- */

static void test_order_and_state(void **st) {
    reset();
    nc_hook_table *t = NULL;
    int a = nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A");
    int b = nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "B");
    assert_true(a > 0 && b > a);
    nc_msg m;
    fake_msg(&m, "sum", 0);
    nc_hook_rec *r = nc_hooks__dispatch(t, NULL, &m, (nc_request *)&m, "\"1\"", 3, 1);
    assert_non_null(r);
    assert_string_equal(r->info.route, "sum");
    assert_string_equal(r->info.transport, "tcp");
    assert_memory_equal(r->info.id, "\"1\"", 3);
    assert_int_equal(nc_hooks__before_handler(r), 0);
    nc_hooks__handler_start(r);
    nc_hooks__handler_return(r);
    nc_hooks__reply(r, NC_HOOK_REPLY_VALUE, "6", 1, 1);
    nc_hooks__settle(r, NC_SETTLE_ACK);
    nc_hooks__finish(r, 0);
    assert_string_equal(trail(), "A:dispatch B:dispatch A:before B:before A:start B:start B:return A:return "
                                 "A:reply0f6 B:reply0f6 A:settle0 B:settle0 B:finish0 A:finish0");
    for (int k = 1; k < nevs; k++) assert_true(evs[k].t >= evs[k - 1].t);
    nc_hooks__drop(&t);
    assert_null(t);
    assert_int_equal(released, 2);
}

static void test_outcomes(void **st) {
    reset();
    nc_hook_table *t = NULL;
    nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A");
    nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "B");
    nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "C");
    nc_msg m;
    fake_msg(&m, "x", 0);
    /* B refuses: C's interceptor still runs, the refusal is B's code */
    refuse_with = NC_EREFUSED;
    nc_hook_rec *r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    assert_int_equal(nc_hooks__before_handler(r), NC_EREFUSED);
    nc_hooks__finish(r, 0);
    assert_string_equal(trail(), "A:dispatch B:dispatch C:dispatch A:before B:before C:before "
                                 "C:finish-22 B:finish-22 A:finish-22");
    /* no handler */
    reset();
    r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 0);
    nc_hooks__finish(r, 0);
    assert_int_equal(evs[nevs - 1].code, NC_ENOHANDLER);
    /* an error packet, then cancelled: cancellation says more */
    reset();
    r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    nc_hooks__reply(r, NC_HOOK_REPLY_ERROR, "{}", 2, 1);
    nc_hooks__finish(r, 0);
    assert_int_equal(evs[nevs - 1].code, NC_EREMOTE);
    reset();
    r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    nc_hooks__finish(r, NC_ECANCELED);
    assert_int_equal(evs[nevs - 1].code, NC_ECANCELED);
    nc_hooks__drop(&t);
}

/* A set removed while a message it saw is in flight still sees that message end; release runs after. */
static void test_remove_in_flight(void **st) {
    reset();
    nc_hook_table *t = NULL;
    int a = nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A");
    nc_msg m;
    fake_msg(&m, "x", 0);
    nc_hook_rec *r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    assert_int_equal(nc_hooks__remove(&t, a), 0);
    assert_null(t);
    assert_int_equal(nc_hooks__remove(&t, a), NC_EINVAL);
    int b = nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "B");
    nc_hook_rec *r2 = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    assert_int_equal(released, 0);
    nc_hooks__finish(r, 0); /* A's message */
    assert_int_equal(released, 1);
    nc_hooks__finish(r2, 0);
    assert_string_equal(trail(), "A:dispatch B:dispatch A:finish0 B:finish0");
    assert_int_equal(nc_hooks__remove(&t, b), 0);
    assert_int_equal(released, 2);
}

static void test_limits(void **st) {
    reset();
    nc_hook_table *t = NULL;
    /* struct_size 0: the first layout (this one), read whole */
    nc_server_hooks zero = {.on_dispatch = s_dispatch};
    assert_true(nc_hooks__add(&t, NC_HOOK_SERVER, &zero, "Z") > 0);
    assert_ptr_equal(t->sets[0]->s.on_dispatch, s_dispatch);
    nc_hooks__drop(&t);
    /* smaller than the first layout: refused */
    nc_server_hooks tiny = {.struct_size = 4};
    assert_int_equal(nc_hooks__add(&t, NC_HOOK_SERVER, &tiny, NULL), NC_EINVAL);
    /* from a newer header: accepted only when what this library does not know is unset */
    struct {
        nc_server_hooks h;
        void (*later)(void *);
    } newer = {{.struct_size = sizeof newer}, s_release};
    assert_int_equal(nc_hooks__add(&t, NC_HOOK_SERVER, &newer, NULL), NC_EINVAL);
    newer.later = NULL;
    assert_true(nc_hooks__add(&t, NC_HOOK_SERVER, &newer, NULL) > 0);
    for (int k = 1; k < NC_HOOKS_MAX; k++)
        assert_true(nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A") > 0);
    assert_int_equal(nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A"), NC_ETOOBIG);
    nc_hooks__drop(&t);
    assert_int_equal(released, NC_HOOKS_MAX - 1);
}

static int c_submit(void *u, nc_hook_info *i) {
    logev(name_of(u), "submit", i, 0);
    assert_int_equal(nc_hook_set_header(i, "traceparent", "00-abc-def-01"), 0);
    assert_int_equal(nc_hook_set_metadata(i, "k", json_integer(1)), 0);
    return strcmp(name_of(u), "B") == 0 ? refuse_with : 0;
}
static void c_end(void *u, nc_hook_info *i, int err) {
    logev(name_of(u), "end", i, err);
}

static void test_client_machinery(void **st) {
    reset();
    nc_client_hooks h = {.struct_size = sizeof h, .on_submit = c_submit, .on_call_end = c_end};
    nc_hook_table *t = NULL;
    nc_hooks__add(&t, NC_HOOK_CLIENT, &h, "A");
    nc_hooks__add(&t, NC_HOOK_CLIENT, &h, "B");
    json_t *headers = NULL;
    json_t *md = json_pack("{s:s}", "x", "y");
    nc_hook_rec *r;
    refuse_with = 1; /* not an nc_err: taken as NC_EREFUSED */
    assert_int_equal(nc_hooks__submit(t, &r, NULL, "tcp", "sum", "sum", 0, "id", 2, &headers, md),
                     NC_EREFUSED);
    assert_string_equal(json_string_value(json_object_get(headers, "traceparent")), "00-abc-def-01");
    assert_int_equal(json_integer_value(json_object_get(r->info.metadata, "k")), 1);
    assert_string_equal(json_string_value(json_object_get(r->info.metadata, "x")), "y");
    assert_null(json_object_get(md, "k")); /* the caller's object is untouched */
    /* outside on_submit the setters refuse */
    assert_int_equal(nc_hook_set_header(&r->info, "a", "b"), NC_EINVAL);
    assert_int_equal(nc_hooks__should_retry(r, NC_ETIMEDOUT, &(int){0}), 0);
    nc_hooks__call_end(r, NC_EREFUSED);
    assert_string_equal(trail(), "A:submit B:submit B:end A:end");
    json_decref(headers);
    json_decref(md);
    nc_hooks__drop(&t);
}

/* ---- a real server and client on one loop --------------------------------------------------------- */

static int finished; /* on_finish calls of set "A" */
static int handler_runs;
static nc_request *parked;
static json_t *seen_data; /* nc_msg_data at on_finish */

static void t_finish(void *u, nc_hook_info *i, int outcome) {
    s_finish(u, i, outcome);
    assert_non_null(i->msg); /* still readable at the end */
    if (!seen_data && !i->is_event) seen_data = json_incref(nc_msg_data(i->msg));
    finished++;
}

static const nc_server_hooks tcp_hooks = {
    .struct_size = sizeof(nc_server_hooks),
    .on_dispatch = s_dispatch,
    .before_handler = s_before,
    .on_handler_start = s_start,
    .on_handler_return = s_return,
    .on_reply = s_reply,
    .on_settle = s_settle,
    .on_finish = t_finish,
    .release = s_release,
};

static void h_sum(nc_request *req, const nc_msg *m, void *u) {
    handler_runs++;
    json_t *d = nc_msg_data(m);
    json_int_t n = 0;
    size_t k;
    json_t *v;
    json_array_foreach(d, k, v) n += json_integer_value(v);
    nc_reply(req, json_integer(n));
}
static void h_stream(nc_request *req, const nc_msg *m, void *u) {
    handler_runs++;
    nc_reply_next(req, json_integer(1));
    nc_reply_next(req, json_integer(2));
    nc_reply_end(req);
}
static void h_fail(nc_request *req, const nc_msg *m, void *u) {
    handler_runs++;
    nc_reply_error_msg(req, "no");
}
static void h_park(nc_request *req, const nc_msg *m, void *u) {
    handler_runs++;
    parked = req;
}
static void h_meta(nc_request *req, const nc_msg *m, void *u) {
    handler_runs++;
    json_t *md = nc_msg_metadata(m);
    nc_reply(req, md ? json_incref(md) : json_null());
}
static void h_tick(const nc_msg *m, void *u) {
    handler_runs++;
}
static void h_slow(nc_request *req, const nc_msg *m, void *u) {
    handler_runs++;
    struct timespec ts = {0, 60 * 1000000L}; /* 60 ms of work before the reply */
    while (nanosleep(&ts, &ts)) continue;
    nc_reply(req, json_integer(1));
}

static void start(void) {
    reset();
    finished = handler_runs = 0;
    parked = NULL;
    tcp_server_new(NULL);
    nc_server_message(srv, "sum", h_sum, NULL);
    nc_server_message(srv, "stream", h_stream, NULL);
    nc_server_message(srv, "fail", h_fail, NULL);
    nc_server_message(srv, "park", h_park, NULL);
    nc_server_message(srv, "meta", h_meta, NULL);
    nc_server_event(srv, "tick", h_tick, NULL);
    nc_server_message(srv, "slow", h_slow, NULL);
    tcp_listen_connect();
}

static void stop(void) {
    tcp_free();
    json_decref(seen_data);
    seen_data = NULL;
}

/* Sends one request and waits for both its reply and the server's on_finish. */
static void request(const char *pattern, json_t *data, call *c) {
    *c = call_new();
    int want = finished + 1;
    assert_int_equal(nc_client_send(cli, pattern, data, NULL, on_value, on_done, c), 0);
    json_decref(data);
    run_until(&c->done, 1);
    run_until(&finished, want);
}

static void assert_monotonic(void) {
    for (int k = 1; k < nevs; k++) assert_true(evs[k].t >= evs[k - 1].t);
}

static void test_tcp_request(void **st) {
    start();
    assert_true(nc_server_add_hooks(srv, &tcp_hooks, "A") > 0);
    call c;
    request("sum", json_pack("[i,i,i]", 1, 2, 3), &c);
    assert_int_equal(c.err, 0);
    /* the handler replied before returning: on_handler_return, then on_finish, the last */
    assert_string_equal(trail(), "A:dispatch A:before A:start A:reply0f6 A:return A:finish0");
    assert_monotonic();
    assert_true(json_equal(seen_data, json_array_get(c.values, 0)) == 0); /* data [1,2,3], reply 6 */
    assert_int_equal(json_array_size(seen_data), 3);
    call_free(&c);
    stop();
}

static void test_tcp_stream_error_unknown(void **st) {
    start();
    nc_server_add_hooks(srv, &tcp_hooks, "A");
    call c;
    request("stream", NULL, &c);
    assert_int_equal(json_array_size(c.values), 2);
    assert_string_equal(trail(), "A:dispatch A:before A:start A:reply01 A:reply0f2 A:return A:finish0");
    call_free(&c);
    reset();
    request("fail", NULL, &c);
    assert_int_equal(c.err, NC_EREMOTE);
    assert_string_equal(trail(), "A:dispatch A:before A:start A:reply1f{\"status\" "
                                 "A:return A:finish-14");
    call_free(&c);
    reset();
    request("nobody", NULL, &c);
    assert_int_equal(c.err, NC_ENOHANDLER);
    assert_string_equal(trail(), "A:dispatch A:finish-9"); /* no interceptor, no handler */
    call_free(&c);
    stop();
}

static void test_tcp_events(void **st) {
    start();
    nc_server_add_hooks(srv, &tcp_hooks, "A");
    nc_client_emit(cli, "tick", NULL, NULL, NULL, NULL);
    run_until(&finished, 1);
    assert_int_equal(handler_runs, 1);
    assert_string_equal(trail(), "A:dispatch A:before A:start A:return A:finish0");
    reset();
    nc_client_emit(cli, "untick", NULL, NULL, NULL, NULL);
    run_until(&finished, 2);
    assert_string_equal(trail(), "A:dispatch A:finish-9");
    stop();
}

/* A handler that answers later: on_handler_return comes when it returns, the reply and on_finish later. */
static void test_tcp_async(void **st) {
    start();
    nc_server_add_hooks(srv, &tcp_hooks, "A");
    call c = call_new();
    nc_client_send(cli, "park", NULL, NULL, on_value, on_done, &c);
    while (!parked) uv_run(&loop, UV_RUN_ONCE);
    assert_string_equal(trail(), "A:dispatch A:before A:start A:return");
    nc_reply(parked, json_string("late"));
    run_until(&c.done, 1);
    assert_string_equal(trail(), "A:dispatch A:before A:start A:return A:reply0f\"late\" A:finish0");
    assert_monotonic();
    call_free(&c);
    stop();
}

/* Durations (on_finish's now_ns - start_ns) are read from the clock at the message's dispatch and at its
 * end: a handler that works 60 ms shows at least that, and a request that waited in the same read behind
 * it starts its clock when it is dispatched, not when the read came in. */
static uint64_t dur_slow, dur_fast;
static void d_finish(void *u, nc_hook_info *i, int outcome) {
    (void)u, (void)outcome;
    uint64_t d = i->now_ns - i->start_ns;
    if (!strcmp(i->route, "slow")) dur_slow = d;
    if (!strcmp(i->route, "sum")) dur_fast = d;
    finished++;
}
static void test_tcp_durations(void **st) {
    start();
    nc_server_hooks h = {.struct_size = sizeof h, .on_finish = d_finish};
    assert_true(nc_server_add_hooks(srv, &h, NULL) > 0);
    dur_slow = dur_fast = 0;
    call a = call_new(), b = call_new();
    /* both leave in one write, and reach the server in one read */
    assert_int_equal(nc_client_send(cli, "slow", NULL, NULL, on_value, on_done, &a), 0);
    json_t *d = json_pack("[i]", 1);
    assert_int_equal(nc_client_send(cli, "sum", d, NULL, on_value, on_done, &b), 0);
    json_decref(d);
    run_until(&b.done, 1);
    run_until(&a.done, 1);
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_true(dur_slow >= 60 * 1000000ULL);
    assert_true(dur_fast > 0 && dur_fast < dur_slow / 2);
    call_free(&a);
    call_free(&b);
    stop();
}

/* An interceptor refuses: the handler does not run, the caller gets the error. */
static void test_tcp_refused(void **st) {
    start();
    nc_server_add_hooks(srv, &tcp_hooks, "A");
    nc_server_add_hooks(srv, &tcp_hooks, "B");
    refuse_with = NC_EREFUSED;
    call c;
    request("sum", json_pack("[i]", 1), &c);
    assert_int_equal(c.err, NC_EREMOTE);
    assert_string_equal(json_string_value(json_object_get(c.error, "message")), nc_strerror(NC_EREFUSED));
    assert_int_equal(handler_runs, 0);
    assert_string_equal(trail(), "A:dispatch B:dispatch A:before B:before A:reply1f{\"status\" "
                                 "B:reply1f{\"status\" B:finish-22 A:finish-22");
    call_free(&c);
    /* an event is refused the same way: its handlers do not run */
    reset();
    refuse_with = NC_EREFUSED;
    int want = finished + 1;
    nc_client_emit(cli, "tick", NULL, NULL, NULL, NULL);
    run_until(&finished, want);
    assert_int_equal(handler_runs, 0);
    stop();
}

/* Removing a set: later messages are not seen; release runs once nothing it saw is in flight. */
static void test_tcp_remove(void **st) {
    start();
    int a = nc_server_add_hooks(srv, &tcp_hooks, "A");
    call c = call_new();
    nc_client_send(cli, "park", NULL, NULL, on_value, on_done, &c);
    while (!parked) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(nc_server_remove_hooks(srv, a), 0);
    assert_int_equal(nc_server_remove_hooks(srv, a), NC_EINVAL);
    assert_int_equal(released, 0);
    call d;
    int seen = nevs;
    d = call_new();
    json_t *four = json_pack("[i]", 4);
    nc_client_send(cli, "sum", four, NULL, on_value, on_done, &d);
    json_decref(four);
    run_until(&d.done, 1);
    assert_int_equal(nevs, seen); /* not seen */
    nc_reply(parked, NULL);       /* the parked request still ends under A */
    run_until(&c.done, 1);
    assert_int_equal(finished, 1);
    assert_int_equal(released, 1);
    call_free(&c);
    call_free(&d);
    stop();
}

/* A request still unfinished when the server is freed: on_finish with NC_ECLOSED, then release. */
static void test_tcp_free_unfinished(void **st) {
    start();
    nc_server_add_hooks(srv, &tcp_hooks, "A");
    call c = call_new();
    nc_client_send(cli, "park", NULL, NULL, on_value, on_done, &c);
    while (!parked) uv_run(&loop, UV_RUN_ONCE);
    nc_server_free(srv);
    srv = NULL;
    assert_int_equal(finished, 1);
    assert_int_equal(evs[nevs - 1].code, NC_ECANCELED); /* the free closed its connection first */
    assert_int_equal(released, 1);
    call_free(&c);
    stop();
}

/* With workers, every worker runs a copy of the sets installed before listening, on its own thread. */
static atomic_int w_dispatched, w_finished;
static void w_dispatch(void *u, nc_hook_info *i) {
    atomic_fetch_add(&w_dispatched, 1);
}
static void w_finish(void *u, nc_hook_info *i, int outcome) {
    assert_int_equal(outcome, 0);
    atomic_fetch_add(&w_finished, 1);
}
static void run_server(void *arg) {
    nc_server_run(arg);
}

static void test_tcp_workers(void **st) {
    reset();
    nc_server *ws;
    assert_int_equal(nc_server_new(&ws, "tcp://127.0.0.1:0", &(nc_server_opts){.workers = 3}), 0);
    nc_server_message(ws, "sum", h_sum, NULL);
    nc_server_hooks h = {
        .struct_size = sizeof h, .on_dispatch = w_dispatch, .on_finish = w_finish, .release = s_release};
    int id = nc_server_add_hooks(ws, &h, NULL);
    assert_true(id > 0);
    /* the tracer too: each worker thread keeps its ended spans for reuse, and frees them as it exits
     * (a leak under the sanitizers otherwise) */
    assert_true(nc_trace_enable_server(ws, NULL) > 0);
    assert_int_equal(nc_server_listen(ws), 0);
    /* the sets were copied to the other workers: no change once they run */
    assert_int_equal(nc_server_add_hooks(ws, &h, NULL), NC_ESTATE);
    assert_int_equal(nc_server_remove_hooks(ws, id), NC_ESTATE);
    uv_thread_t th;
    uv_thread_create(&th, run_server, ws);
    char wurl[64];
    snprintf(wurl, sizeof wurl, "tcp://127.0.0.1:%d", nc_server_port(ws));
    enum { N = 24 };
    nc_client *cs[N];
    call calls[N];
    json_t *one = json_pack("[i]", 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(nc_client_new(&cs[i], wurl, &(nc_client_opts){.loop = &loop}), 0);
        calls[i] = call_new();
        nc_client_send(cs[i], "sum", one, NULL, on_value, on_done, &calls[i]);
    }
    json_decref(one);
    for (int i = 0; i < N; i++) run_until(&calls[i].done, 1);
    assert_int_equal(atomic_load(&w_dispatched), N);
    assert_int_equal(atomic_load(&w_finished), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(calls[i].err, 0);
        nc_client_free(cs[i]);
        call_free(&calls[i]);
    }
    nc_server_close_threadsafe(ws);
    uv_thread_join(&th);
    nc_server_free(ws);
    assert_int_equal(released, 1); /* once, for the server the set was given to */
}

/* ---- client hooks --------------------------------------------------------------------------------- */

static int c_refuse; /* what on_submit returns */
static int c_retries_wanted;
static int c_ended, c_end_err, c_end_attempt;
static uint64_t c_duration;

static int cc_submit(void *u, nc_hook_info *i) {
    assert_int_equal(i->side, NC_HOOK_CLIENT);
    assert_ptr_equal(i->client, cli);
    assert_string_equal(i->transport, "tcp");
    assert_int_equal(i->attempt, 1);
    logev(name_of(u), "submit", i, 0);
    *i->state = u;
    assert_int_equal(
        nc_hook_set_metadata(i, "traceparent",
                             json_string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")),
        0);
    return c_refuse;
}
static void cc_reply(void *u, nc_hook_info *i, const json_t *v, int final) {
    assert_ptr_equal(*i->state, u);
    char w[32];
    snprintf(w, sizeof w, "value%s%lld", final ? "f" : "", (long long)json_integer_value(v));
    logev(name_of(u), w, i, 0);
}
static int cc_retry(void *u, nc_hook_info *i, int err, int *delay_ms) {
    char w[32];
    snprintf(w, sizeof w, "retry%d", err);
    logev(name_of(u), w, i, err);
    if (i->attempt > c_retries_wanted) return 0;
    *delay_ms = 5;
    return 1;
}
static void cc_end(void *u, nc_hook_info *i, int err) {
    assert_ptr_equal(*i->state, u);
    char w[32];
    snprintf(w, sizeof w, "end%d", err);
    logev(name_of(u), w, i, err);
    c_ended++;
    c_end_err = err;
    c_end_attempt = i->attempt;
    c_duration = i->now_ns - i->start_ns;
}
static const nc_client_hooks client_hooks = {
    .struct_size = sizeof(nc_client_hooks),
    .on_submit = cc_submit,
    .on_reply = cc_reply,
    .should_retry = cc_retry,
    .on_call_end = cc_end,
    .release = s_release,
};

/* Sends one request and waits for its reply (no server hooks here). */
static void crequest(const char *pattern, json_t *data, call *c) {
    *c = call_new();
    assert_int_equal(nc_client_send(cli, pattern, data, NULL, on_value, on_done, c), 0);
    json_decref(data);
    run_until(&c->done, 1);
}

static void client_reset(void) {
    c_refuse = c_retries_wanted = c_ended = c_end_err = c_end_attempt = 0;
    c_duration = 0;
}

/* The order of a call's hooks, and what on_submit adds travels: the metadata reaches the handler. */
static void test_client_call(void **st) {
    start();
    client_reset();
    assert_true(nc_client_add_hooks(cli, &client_hooks, "C") > 0);
    call c;
    crequest("meta", NULL, &c);
    assert_int_equal(c.err, 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(c.values, 0), "traceparent")),
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    call_free(&c);
    assert_int_equal(c_ended, 1);
    assert_int_equal(c_end_attempt, 1);
    assert_true(c_duration > 0);
    reset();
    crequest("stream", NULL, &c);
    assert_string_equal(trail(), "C:submit C:value1 C:valuef2 C:end0");
    call_free(&c);
    /* a remote error: no value, the end with NC_EREMOTE (a retry hook is asked first) */
    reset();
    crequest("fail", NULL, &c);
    assert_string_equal(trail(), "C:submit C:retry-14 C:end-14");
    call_free(&c);
    stop();
}

/* on_submit refuses (an open circuit): the call fails at once with the code, nothing is sent. */
static void test_client_refused(void **st) {
    start();
    client_reset();
    int id = nc_client_add_hooks(cli, &client_hooks, "C");
    c_refuse = NC_EREFUSED;
    call c = call_new();
    assert_int_equal(nc_client_send(cli, "sum", NULL, NULL, on_value, on_done, &c), 0);
    assert_int_equal(c.done, 1); /* before send returned */
    assert_int_equal(c.err, NC_EREFUSED);
    assert_string_equal(json_string_value(c.error), nc_strerror(NC_EREFUSED));
    assert_string_equal(trail(), "C:submit C:end-22");
    assert_int_equal(nc_client_pending(cli), 0);
    call_free(&c);
    /* events too */
    c = call_new();
    assert_int_equal(nc_client_emit(cli, "tick", NULL, NULL, on_done, &c), 0);
    assert_int_equal(c.err, NC_EREFUSED);
    call_free(&c);
    /* removed: calls go through again, release ran */
    assert_int_equal(nc_client_remove_hooks(cli, id), 0);
    assert_int_equal(released, 1);
    crequest("sum", json_pack("[i,i]", 2, 3), &c);
    assert_int_equal(c.err, 0);
    assert_int_equal(handler_runs, 1);
    call_free(&c);
    stop();
}

/* A request times out; the retry hook asks for a resend; the server sees the same id and body again and
 * answers this time. */
static int flaky_calls;
static char flaky_ids[2][32];
static json_t *flaky_data[2];
static void h_flaky(nc_request *req, const nc_msg *m, void *u) {
    handler_runs++;
    flaky_data[flaky_calls] = json_incref(nc_msg_data(m));
    if (flaky_calls++ == 0)
        parked = req; /* the first attempt goes unanswered */
    else
        nc_reply(req, json_string("second time lucky"));
}
static void id_dispatch(void *u, nc_hook_info *i) {
    if (flaky_calls < 2) snprintf(flaky_ids[flaky_calls], sizeof flaky_ids[0], "%.*s", (int)i->id_len, i->id);
}

static void test_client_retry(void **st) {
    start();
    client_reset();
    flaky_calls = 0;
    nc_server_message(srv, "flaky", h_flaky, NULL);
    nc_server_hooks ids = {.struct_size = sizeof ids, .on_dispatch = id_dispatch};
    nc_server_add_hooks(srv, &ids, NULL);
    nc_client_add_hooks(cli, &client_hooks, "C");
    c_retries_wanted = 1;
    call c = call_new();
    json_t *data = json_pack("{s:i}", "n", 7);
    nc_call_opts o = {.timeout_ms = 200 * time_factor()};
    assert_int_equal(nc_client_send(cli, "flaky", data, &o, on_value, on_done, &c), 0);
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), "second time lucky");
    assert_int_equal(flaky_calls, 2);
    assert_string_equal(flaky_ids[0], flaky_ids[1]);
    assert_true(json_equal(flaky_data[0], flaky_data[1]));
    assert_string_equal(trail(), "C:submit C:retry-3 C:valuef0 C:end0");
    assert_int_equal(c_end_attempt, 2);
    nc_reply_end(parked);
    json_decref(data);
    json_decref(flaky_data[0]);
    json_decref(flaky_data[1]);
    call_free(&c);
    /* no retry wanted: the timeout is the end */
    reset();
    client_reset();
    c = call_new();
    parked = NULL;
    flaky_calls = 0;
    nc_client_send(cli, "park", NULL, &o, on_value, on_done, &c);
    run_until(&c.done, 1);
    assert_int_equal(c.err, NC_ETIMEDOUT);
    assert_string_equal(trail(), "C:submit C:retry-3 C:end-3");
    nc_reply_end(parked);
    call_free(&c);
    stop();
}

/* ---- settling, through a test-only transport that settles ("hookfake://") ------------------------- */

static nc_server *fake_srv;
static int fake_settles[8], nfake_settles;
static int fake_create(nc_server *fsrv, const nc_url *addr, void **state) {
    fake_srv = fsrv;
    *state = NULL;
    return 0;
}
static int fake_listen(void *st) {
    return 0;
}
static void fake_nop(void *st) {}
/* Nothing of its own to close; reporting it closed (the transport contract) lets nc_server_free close the
 * server's handles on the loop before it frees them. */
static void fake_close(void *st) {
    nc_server__closed(fake_srv);
}
static void fake_settle(void *st, const nc_delivery *d, nc_settle how) {
    fake_settles[nfake_settles++] = (int)how;
}
static const char *const fake_schemes[] = {"hookfake", NULL};
static const nc_server_transport fake_tp = {
    .schemes = fake_schemes,
    .create = fake_create,
    .listen = fake_listen,
    .stop_accepting = fake_nop,
    .close = fake_close,
    .destroy = fake_nop,
    .settle = fake_settle,
};
static int peer_reply(void *peer, const nc_reply_pkt *p) {
    return 0;
}
static void peer_nop(void *peer) {}
static const nc_peer_ops fake_peer = {peer_reply, peer_nop, peer_nop, NULL, NULL, NULL};
static int the_peer;

static void deliver(const char *body, uint64_t tag) {
    nc_dispatch_outcome oc;
    nc_inbound in = {.peer = &the_peer, .peer_ops = &fake_peer, .outcome = &oc};
    in.delivery = (nc_delivery){tag, 1, tag != 0};
    char why[64];
    nc_server__dispatch(fake_srv, body, strlen(body), &in, why, sizeof why);
}

static nc_event *kept_ev;
static void h_keep(const nc_msg *m, void *u) {
    handler_runs++;
    kept_ev = nc_event_keep(m);
}
static void h_manual(nc_request *req, const nc_msg *m, void *u) {
    handler_runs++;
    nc_request_settle_manually(req);
    nc_reply(req, json_integer(1));
    parked = req;
}

static void test_settling(void **st) {
    static int registered;
    if (!registered++) assert_int_equal(nc_transport_register_server(&fake_tp), 0);
    reset();
    finished = handler_runs = nfake_settles = 0;
    nc_server *fs;
    nc_server_opts so = {.loop = &loop, .log_level = NC_LOG_OFF, .shutdown_timeout_ms = 10};
    assert_int_equal(nc_server_new(&fs, "hookfake://local:1", &so), 0);
    nc_server_message(fs, "sum", h_sum, NULL);
    nc_server_message(fs, "manual", h_manual, NULL);
    nc_server_event(fs, "tick", h_tick, NULL);
    nc_server_event(fs, "keep", h_keep, NULL);
    assert_int_equal(nc_server_listen(fs), 0);
    nc_server_add_hooks(fs, &tcp_hooks, "B"); /* B: the set s_before lets refuse */
    /* a request: the auto-ack when its stream ends, before on_handler_return and on_finish */
    deliver("{\"pattern\":\"sum\",\"data\":[1],\"id\":\"1\"}", 1);
    assert_string_equal(trail(), "B:dispatch B:before B:start B:reply0f1 B:settle0 B:return B:finish0");
    /* settled by the handler after its reply: on_finish once it is settled */
    reset();
    deliver("{\"pattern\":\"manual\",\"id\":\"2\"}", 2);
    assert_string_equal(trail(), "B:dispatch B:before B:start B:reply0f1 B:return");
    nc_request_nack(parked, true);
    assert_string_equal(trail(), "B:dispatch B:before B:start B:reply0f1 B:return B:settle2 B:finish0");
    /* an event, and an unmatched one (rejected) */
    reset();
    deliver("{\"pattern\":\"tick\",\"data\":1}", 3);
    deliver("{\"pattern\":\"nobody\",\"data\":1}", 4);
    assert_string_equal(trail(), "B:dispatch B:before B:start B:return B:settle0 B:finish0 "
                                 "B:dispatch B:settle3 B:finish-9");
    /* a kept event ends when it is settled, with its kept message */
    reset();
    deliver("{\"pattern\":\"keep\",\"data\":1}", 5);
    assert_string_equal(trail(), "B:dispatch B:before B:start B:return");
    int before = finished;
    nc_event_reject(kept_ev);
    assert_int_equal(finished, before + 1);
    assert_string_equal(trail(), "B:dispatch B:before B:start B:return B:settle3 B:finish0");
    /* refused: the event is nacked (not requeued) and its handlers do not run */
    reset();
    refuse_with = NC_EREFUSED;
    handler_runs = 0;
    nfake_settles = 0;
    deliver("{\"pattern\":\"tick\",\"data\":1}", 6);
    assert_int_equal(handler_runs, 0);
    assert_int_equal(nfake_settles, 1);
    assert_int_equal(fake_settles[0], NC_SETTLE_NACK);
    assert_string_equal(trail(), "B:dispatch B:before B:settle1 B:finish-22");
    /* an event for a message handler, refused: nacked as well, not acked as a failed request is */
    reset();
    refuse_with = NC_EREFUSED;
    handler_runs = nfake_settles = 0;
    deliver("{\"pattern\":\"sum\",\"data\":[1]}", 8);
    assert_int_equal(handler_runs, 0);
    assert_int_equal(nfake_settles, 1);
    assert_int_equal(fake_settles[0], NC_SETTLE_NACK);
    assert_string_equal(trail(), "B:dispatch B:before B:settle1 B:finish-22");
    /* a kept event still unsettled when the server is freed: nacked with requeue, on_finish NC_ECLOSED */
    reset();
    deliver("{\"pattern\":\"keep\",\"data\":1}", 7);
    nc_server_free(fs);
    assert_string_equal(trail(), "B:dispatch B:before B:start B:return B:settle2 B:finish-6");
    assert_int_equal(released, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_state),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_remove_in_flight),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_client_machinery),
        cmocka_unit_test(test_tcp_request),
        cmocka_unit_test(test_tcp_stream_error_unknown),
        cmocka_unit_test(test_tcp_events),
        cmocka_unit_test(test_tcp_async),
        cmocka_unit_test(test_tcp_durations),
        cmocka_unit_test(test_tcp_refused),
        cmocka_unit_test(test_tcp_remove),
        cmocka_unit_test(test_tcp_free_unfinished),
        cmocka_unit_test(test_tcp_workers),
        cmocka_unit_test(test_settling),
        cmocka_unit_test(test_client_call),
        cmocka_unit_test(test_client_refused),
        cmocka_unit_test(test_client_retry),
    };
    uv_loop_init(&loop);
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    uv_loop_close(&loop);
    return r;
}
