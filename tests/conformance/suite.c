/* The cases of the conformance suite, each written once for every transport (see suite.h). Each case
 * starts a server with the service below and a client on one loop, and waits on readiness (counters and
 * the loop, with deadlines scaled by NESTC_TEST_TIMEOUT_FACTOR), never on fixed sleeps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suite.h"

/* ---- scalars and routes where transports differ ----------------------------------------------------------
 */

/* An integer given as data, as it is or as its text (CONF_SCALARS_AS_TEXT: 5 arrives as "5"). */
static json_int_t int_of(const json_t *v) {
    return json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : json_integer_value(v);
}

/* A number received: exactly n, or n's text where scalars travel as text. */
static void assert_int_value(const json_t *v, json_int_t n) {
    if (FX.t->flags & CONF_SCALARS_AS_TEXT) {
        char want[32];
        snprintf(want, sizeof want, "%" JSON_INTEGER_FORMAT, n);
        assert_true(json_is_string(v));
        assert_string_equal(json_string_value(v), want);
    } else {
        assert_true(json_is_integer(v));
        assert_int_equal(json_integer_value(v), n);
    }
}

/* The route of the sum handler: the object pattern, or its plain name where routes are topic names. */
static const char *sum_route(void) {
    return (FX.t->flags & CONF_TOPIC_ROUTES) ? "sum" : "{\"cmd\":\"sum\"}";
}

/* ---- typed messages (CONF_TYPED_MESSAGES: gRPC) -----------------------------------------------------------
 * Handlers read data with msg_data() and reply with reply()/reply_next(); calls go through client_send() /
 * client_call(), and on_value() receives values back: each the identity elsewhere, the harness's mapping of
 * patterns to methods and data to messages (fx_route, fx_wrap, fx_unwrap) on a typed transport. */

static json_t *unwrapped; /* what msg_data() made: borrowed by the handlers until the case's end */

static json_t *msg_data(const nc_msg *m) {
    if (!(FX.t->flags & CONF_TYPED_MESSAGES)) return nc_msg_data(m);
    json_t *v = fx_unwrap(nc_msg_data(m));
    if (!unwrapped) unwrapped = json_array();
    json_array_append_new(unwrapped, v);
    return v;
}

static int reply(nc_request *req, json_t *v) {
    return nc_reply(req, fx_wrap(v));
}

static int reply_next(nc_request *req, json_t *v) {
    return nc_reply_next(req, fx_wrap(v));
}

static int client_send(nc_client *cli, const char *pattern, const json_t *data, const nc_call_opts *o,
                       nc_value_fn on_val, nc_done_fn on_dn, void *user) {
    json_t *m = fx_wrap(data ? json_incref((json_t *)data) : NULL);
    int r = nc_client_send(cli, fx_route(pattern, 0), m, o, on_val, on_dn, user);
    json_decref(m);
    return r;
}

static int client_call(nc_client *cli, const char *pattern, const json_t *data, const nc_call_opts *o,
                       const nc_call_cbs *cbs, void *user, nc_call **out) {
    json_t *m = fx_wrap(data ? json_incref((json_t *)data) : NULL);
    int r = nc_client_call(cli, fx_route(pattern, 0), m, o, cbs, user, out);
    json_decref(m);
    return r;
}

/* The error a call gets for a handler's error value e (borrowed) where errors are statuses
 * (CONF_STATUS_ERRORS: {code 2, details}, the value's message as grpc-message); elsewhere e itself. A new
 * reference. */
static json_t *error_of(json_t *e) {
    if (!(FX.t->flags & CONF_STATUS_ERRORS)) return json_incref(e);
    json_t *msg = json_object_get(e, "message");
    char *text = json_is_object(e) || json_is_string(e) ? NULL : json_dumps(e, JSON_ENCODE_ANY);
    json_t *r = json_pack("{s:i,s:s}", "code", 2, "details",
                          json_is_string(msg) ? json_string_value(msg)
                          : json_is_string(e) ? json_string_value(e)
                          : text              ? text
                                              : "");
    free(text);
    return r;
}

/* An error's message: its `message`, or its `details` where errors are statuses. */
static const char *error_message(const json_t *e) {
    return json_string_value(json_object_get(e, (FX.t->flags & CONF_STATUS_ERRORS) ? "details" : "message"));
}

/* Asserts that a call's error is what a handler's error value e (stolen) gives. */
static void assert_error(const json_t *got, json_t *e) {
    json_t *want = error_of(e);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY), *w = json_dumps(want, JSON_ENCODE_ANY);
        print_error("error %s, want %s\n", g ? g : "NULL", w);
        free(g);
        free(w);
    }
    assert_true(json_equal(got, want));
    json_decref(want);
    json_decref(e);
}

/* ---- the service --------------------------------------------------------------------------------------- */

enum { MAX_PARKED = 8, MAX_TIMERS = 16 };

typedef struct svc {
    nc_server *srv;
    nc_client *cli;
    int connected, reconnecting; /* server status */
    int order[16];               /* the event handlers of "note", in the order they ran */
    int norder;
    json_t *note_data;                   /* the data the last "note" handler saw */
    char note_channel[64];               /* and its nc_msg_channel ("-" for NULL) */
    int as_msg, as_msg_event, as_msg_rc; /* "onlymsg": calls, calls for an event, nc_reply's result */
    nc_request *parked[MAX_PARKED];      /* "park" requests not finished yet */
    int nparked, cancelled;
    int later_started, later_done;
    int unknown_event_logs;
    uv_timer_t *timers[MAX_TIMERS]; /* "later" timers not fired yet */
    int settle_rc[8];               /* "settle": the settling calls' results, in order */
    int nsettle_rc;
    nc_event *kept[MAX_PARKED]; /* "keep" events kept and not settled yet */
    int nkept, kept_settled, kept_forever;
    json_t *kept_seen; /* what the timer read of the kept message, after the handler returned */
    int redelivered;   /* "settle" requests and "keep" events delivered again (and acked then) */
    int bcast;         /* "note" handlers run for the broadcast case's event ({"n": 7}) */
    /* the settling case's deliveries, by id (0..31): how many, and the last one's delivery count and
     * redelivered flag (-1: absent) */
    int sseen[32], scount[32], sredelivered[32], stotal;
    int closing; /* the case closed its server (a shared server is made again for the next case) */
} svc;

static svc S, S2; /* a case's service (and a second server of the same service, for broadcast) */

static void h_echo(nc_request *req, const nc_msg *m, void *u) {
    reply(req, json_incref(msg_data(m)));
}

static void h_sum(nc_request *req, const nc_msg *m, void *u) {
    json_int_t s = 0;
    size_t i;
    json_t *v;
    json_array_foreach(msg_data(m), i, v) s += json_integer_value(v);
    reply(req, json_integer(s));
}

/* a stream of 1..n, then its end */
static void h_count(nc_request *req, const nc_msg *m, void *u) {
    json_int_t n = int_of(msg_data(m));
    for (json_int_t i = 1; i <= n; i++) assert_int_equal(reply_next(req, json_integer(i)), 0);
    assert_int_equal(nc_reply_end(req), 0);
}

static void h_none(nc_request *req, const nc_msg *m, void *u) {
    nc_reply_end(req);
}

static void h_fail_obj(nc_request *req, const nc_msg *m, void *u) {
    nc_reply_error(req, json_pack("{s:i,s:s,s:[i,i]}", "code", 42, "reason", "nope", "at", 1, 2));
}

static void h_fail_msg(nc_request *req, const nc_msg *m, void *u) {
    nc_reply_error_msg(req, "boom");
}

/* the error value given as data: a string, {"none": true} (NULL: "Internal server error") ... (not null
 * for none: on Kafka a null value makes the record itself the data, as in NestJS) */
static void h_fail_with(nc_request *req, const nc_msg *m, void *u) {
    json_t *d = msg_data(m);
    nc_reply_error(req, json_object_get(d, "none") ? NULL : json_incref(d));
}

/* two values, then an error */
static void h_half(nc_request *req, const nc_msg *m, void *u) {
    reply_next(req, json_integer(1));
    reply_next(req, json_integer(2));
    nc_reply_error_msg(req, "half way");
}

/* finishes twice: the second must be refused (message.h: NC_ESTATE), and so must every other call on the
 * stale handle; accessors give NULL */
static int twice_rc = 1, twice_after[8];
static void h_twice(nc_request *req, const nc_msg *m, void *u) {
    reply(req, json_integer(1));
    twice_rc = reply(req, json_integer(2));
    twice_after[0] = reply_next(req, json_integer(3));
    twice_after[1] = nc_reply_end(req);
    twice_after[2] = nc_reply_error_msg(req, "too late");
    twice_after[3] = nc_reply_json(req, "4", 1);
    twice_after[4] = nc_request_msg(req) == NULL && nc_request_loop(req) == NULL ? NC_ESTATE : 0;
    twice_after[5] = nc_reply_header(req, "x-late", "1", 1);
    twice_after[6] = nc_request_on_cancel(req, NULL, NULL);
    twice_after[7] = nc_request_ack(req);
}

/* A reply from another thread. data "after": the thread replies once the request is finished (refused
 * with NC_ESTATE, or queued and dropped); "before": it queues its reply while the request is unfinished,
 * then the handler finishes the request before the loop applies the queued one (dropped). Either way
 * the caller gets the handler's reply only. */
typedef struct ts_arg {
    nc_request *req;
    int rc;
} ts_arg;
static ts_arg ts;
static void ts_thread(void *a) {
    ts_arg *t = a;
    t->rc = nc_reply_threadsafe(t->req, NC_REPLY_VALUE, json_string("from the thread"));
}
static void h_threadsafe(nc_request *req, const nc_msg *m, void *u) {
    int after = !strcmp(json_string_value(msg_data(m)), "after");
    ts = (ts_arg){req, 1};
    if (after) reply(req, json_string("direct"));
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, ts_thread, &ts), 0);
    assert_int_equal(uv_thread_join(&th), 0);
    if (!after) reply(req, json_string("direct"));
}

/* Whether a delivery is a redelivery (a settling transport gave it again after a requeue): its delivery count
 * is 2 or more, or its redelivered flag is set. */
static int is_redelivery(const nc_msg *m) {
    int64_t n = 0;
    if (nc_msg_ctx_int(m, NC_CTX_DELIVERY_COUNT, &n) == 0 && n >= 2) return 1;
    return nc_msg_ctx_int(m, NC_CTX_REDELIVERED, &n) == 0 && n == 1;
}

/* Settling a request by hand on a transport that does not settle: each call returns 0 once, a second
 * settle NC_ESTATE; the reply is not changed. data "ack" | "nack" | "requeue" | "reject" | "manual"
 * (settle_manually, reply, then ack after the reply). */
static void h_settle(nc_request *req, const nc_msg *m, void *u) {
    svc *s = u;
    const char *how = json_string_value(msg_data(m));
    if (is_redelivery(m)) { /* (CONF_SETTLES) the requeued one again: answered, and so acked, this time */
        s->redelivered++;
        reply(req, json_string("again"));
        return;
    }
    int *rc = s->settle_rc;
    s->nsettle_rc = 0;
    if (!strcmp(how, "manual")) {
        rc[s->nsettle_rc++] = nc_request_settle_manually(req);
        rc[s->nsettle_rc++] = nc_request_settle_manually(req); /* again: still 0 */
        rc[s->nsettle_rc++] = reply(req, json_string(how));    /* finished, not settled: still alive */
        rc[s->nsettle_rc++] = nc_request_ack(req);
        rc[s->nsettle_rc++] = nc_request_ack(req); /* finished and settled: stale */
        return;
    }
    int r = !strcmp(how, "ack")       ? nc_request_ack(req)
            : !strcmp(how, "nack")    ? nc_request_nack(req, false)
            : !strcmp(how, "requeue") ? nc_request_nack(req, true)
                                      : nc_request_reject(req);
    rc[s->nsettle_rc++] = r;
    rc[s->nsettle_rc++] = nc_request_nack(req, true); /* a second settle */
    rc[s->nsettle_rc++] = nc_request_settle_manually(req);
    rc[s->nsettle_rc++] = reply(req, json_string(how));
}

/* The headers and transport context the handler sees, and reply headers (a repeated name) */
static void h_hdrs(nc_request *req, const nc_msg *m, void *u) {
    json_t *list = json_array();
    size_t n = nc_msg_header_count(m);
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        size_t kl, vl;
        assert_int_equal(nc_msg_header_at(m, i, &k, &kl, &v, &vl), 0);
        json_array_append_new(list, json_pack("[s#,s#]", k, kl, v, vl));
    }
    const char *k = "x", *v = "y";
    assert_int_equal(nc_msg_header_at(m, n, &k, NULL, &v, NULL), NC_ENOENT);
    size_t fl = 0, sl = 0, rl = 0;
    const char *first = nc_msg_header(m, "x-trace", &fl);
    const char *subj = nc_msg_ctx_str(m, NC_CTX_SUBJECT, &sl);
    const char *rto = nc_msg_ctx_str(m, NC_CTX_REPLY_TO, &rl);
    int64_t num = 0;
    int num_rc = nc_msg_ctx_int(m, NC_CTX_SUBJECT, &num); /* text only: absent as a number */
    int part_rc = nc_msg_ctx_int(m, NC_CTX_PARTITION, &num);
    json_t *r = json_pack("{s:o,s:i,s:i,s:i}", "list", list, "count", (json_int_t)n, "num_rc", num_rc,
                          "part_rc", part_rc);
    json_object_set_new(r, "first", first ? json_stringn(first, fl) : json_null());
    json_object_set_new(r, "subject", subj ? json_stringn(subj, sl) : json_null());
    json_object_set_new(r, "reply_to", rto ? json_stringn(rto, rl) : json_null());
    json_object_set_new(r, "nul", json_integer(nc_msg_header(m, "x-absent", NULL) != NULL));
    /* reply headers: carried by NATS, ignored without error elsewhere */
    int hrc = nc_reply_header(req, "x-reply", "r1", 2);
    hrc |= nc_reply_header(req, "x-reply", "r2", 2);
    hrc |= nc_reply_header(req, "x-bytes", "a: b", 4);
    json_object_set_new(r, "hrc", json_integer(hrc));
    reply(req, r);
}

/* ---- kept events ---- */

typedef struct keep_timer {
    uv_timer_t t;
    svc *s;
    nc_event *ev;
} keep_timer;

/* after the handler returned, on a later loop turn: read the kept message, then settle it as its data
 * says, and try a second settle */
static void on_keep_timer(uv_timer_t *t) {
    keep_timer *k = (keep_timer *)t;
    svc *s = k->s;
    const nc_msg *m = nc_event_msg(k->ev);
    json_t *seen = json_object();
    if (m) {
        size_t hl = 0;
        const char *h = nc_msg_header(m, "x-trace", &hl);
        json_object_set_new(seen, "data", json_deep_copy(msg_data(m)));
        json_object_set_new(seen, "route", json_string(nc_msg_route(m)));
        json_object_set_new(seen, "event", json_integer(nc_msg_is_event(m)));
        json_object_set_new(seen, "header", h ? json_stringn(h, hl) : json_null());
        json_object_set_new(seen, "count", json_integer((json_int_t)nc_msg_header_count(m)));
        json_object_set_new(seen, "loop", json_boolean(nc_event_loop(k->ev) == &loop));
    }
    const char *how = m ? json_string_value(json_object_get(msg_data(m), "how")) : "ack";
    int rc = !strcmp(how, "nack")      ? nc_event_nack(k->ev, false)
             : !strcmp(how, "requeue") ? nc_event_nack(k->ev, true)
             : !strcmp(how, "reject")  ? nc_event_reject(k->ev)
                                       : nc_event_ack(k->ev);
    json_object_set_new(seen, "rc", json_integer(rc));
    json_object_set_new(seen, "again", json_integer(nc_event_ack(k->ev)));
    json_object_set_new(seen, "after",
                        json_boolean(nc_event_msg(k->ev) == NULL && nc_event_loop(k->ev) == NULL));
    json_decref(s->kept_seen);
    s->kept_seen = seen;
    for (int i = 0; i < MAX_PARKED; i++)
        if (s->kept[i] == k->ev) s->kept[i] = NULL;
    s->kept_settled++;
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

/* keeps the event; a timer settles it later ({"how": ..., "forever": true}: never settled) */
static void ev_keep(const nc_msg *m, void *u) {
    svc *s = u;
    if (is_redelivery(m)) { /* (CONF_SETTLES) the requeued one again: acked, when this handler returns */
        s->redelivered++;
        return;
    }
    nc_event *ev = nc_event_keep(m);
    assert_non_null(ev);
    s->nkept++;
    for (int i = 0; i < MAX_PARKED; i++)
        if (!s->kept[i]) {
            s->kept[i] = ev;
            break;
        }
    if (json_is_true(json_object_get(msg_data(m), "forever"))) {
        s->kept_forever++;
        return;
    }
    keep_timer *k = calloc(1, sizeof *k);
    k->s = s;
    k->ev = ev;
    uv_timer_init(nc_event_loop(ev), &k->t);
    uv_timer_start(&k->t, on_keep_timer, 5, 0);
}

/* JavaScript's undefined: a reply without a value */
static void h_undefined(nc_request *req, const nc_msg *m, void *u) {
    reply(req, NULL);
}

/* a stream of 1..n, one value per loop turn (each its own packet), then its end */
typedef struct ticker {
    uv_timer_t t;
    nc_request *req;
    json_int_t i, n;
} ticker;

static int tickers_done; /* streams of h_count_slowly that ended */

static void on_ticker(uv_timer_t *t) {
    ticker *k = (ticker *)t;
    int last = k->i >= k->n;
    int rc = last ? nc_reply_end(k->req) : reply_next(k->req, json_integer(++k->i));
    if (rc != NC_ESTATE) assert_int_equal(rc, 0); /* NC_ESTATE: the request went with its server */
    if (!last && rc == 0) return;
    if (last && rc == 0) tickers_done++;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void h_count_slowly(nc_request *req, const nc_msg *m, void *u) {
    ticker *k = calloc(1, sizeof *k);
    k->req = req;
    k->n = int_of(msg_data(m));
    uv_timer_init(nc_request_loop(req), &k->t);
    uv_timer_start(&k->t, on_ticker, 1, 1);
}

/* what the handler saw of headers and metadata */
static void h_meta(nc_request *req, const nc_msg *m, void *u) {
    json_t *h = nc_msg_headers(m), *md = nc_msg_metadata(m);
    reply(req, json_pack("{s:O,s:O,s:s}", "headers", h ? h : json_null(), "metadata", md ? md : json_null(),
                         "transport", nc_msg_transport(m)));
}

static void on_cancel(nc_request *req, void *arg) {
    svc *s = arg;
    s->cancelled++;
    for (int i = 0; i < MAX_PARKED; i++)
        if (s->parked[i] == req) s->parked[i] = NULL;
    assert_int_equal(nc_reply_end(req), 0); /* cancelled: discarded, but it finishes the request */
}

/* never answers by itself: the case finishes it, or its cancellation does */
static void h_park(nc_request *req, const nc_msg *m, void *u) {
    svc *s = u;
    s->nparked++;
    for (int i = 0; i < MAX_PARKED; i++)
        if (!s->parked[i]) {
            s->parked[i] = req;
            break;
        }
    assert_int_equal(nc_request_on_cancel(req, on_cancel, s), 0);
}

static nc_request *take_parked(svc *s) {
    for (int i = 0; i < MAX_PARKED; i++)
        if (s->parked[i]) {
            nc_request *r = s->parked[i];
            s->parked[i] = NULL;
            return r;
        }
    return NULL;
}

static void on_later(uv_timer_t *t) {
    svc *s = *(svc **)((char *)t + sizeof *t);
    nc_request *req = t->data;
    reply(req, json_string("late"));
    s->later_done++;
    for (int i = 0; i < MAX_TIMERS; i++)
        if (s->timers[i] == t) s->timers[i] = NULL;
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

/* answers "late" after data ms */
static void h_later(nc_request *req, const nc_msg *m, void *u) {
    svc *s = u;
    uv_timer_t *t = malloc(sizeof *t + sizeof s); /* the timer, then its service */
    memcpy((char *)t + sizeof *t, &s, sizeof s);
    uv_timer_init(nc_request_loop(req), t);
    t->data = req;
    uv_timer_start(t, on_later, (uint64_t)int_of(msg_data(m)), 0);
    s->later_started++;
    for (int i = 0; i < MAX_TIMERS; i++)
        if (!s->timers[i]) {
            s->timers[i] = t;
            break;
        }
}

/* a message handler that also receives events (NestJS runs it and discards its result) */
static void h_onlymsg(nc_request *req, const nc_msg *m, void *u) {
    svc *s = u;
    s->as_msg++;
    s->as_msg_event += nc_msg_is_event(m);
    s->as_msg_rc = reply(req, json_string("from onlymsg"));
}

static void note(svc *s, int which, const nc_msg *m) {
    s->order[s->norder++ % 16] = which;
    s->bcast += json_integer_value(json_object_get(msg_data(m), "n")) == 7; /* the broadcast case's */
    json_decref(s->note_data);
    s->note_data = json_incref(msg_data(m));
    snprintf(s->note_channel, sizeof s->note_channel, "%s", nc_msg_channel(m) ? nc_msg_channel(m) : "-");
}
static void ev_note1(const nc_msg *m, void *u) {
    note(u, 1, m);
}
static void ev_note2(const nc_msg *m, void *u) {
    note(u, 2, m);
}
static void ev_note3(const nc_msg *m, void *u) {
    note(u, 3, m);
}

static void srv_status(void *u, const char *status, int err) {
    svc *s = u;
    if (!strcmp(status, "connected")) s->connected++;
    if (!strcmp(status, "reconnecting")) s->reconnecting++;
}

static void srv_log(void *u, nc_log_level level, const char *component, const char *message) {
    svc *s = u;
    if (getenv("NESTC_CONF_DEBUG")) fprintf(stderr, "server %p: %s: %s\n", (void *)s, component, message);
    if (strstr(message, "There is no matching event handler defined in the remote service. Event pattern: "
                        "nobody"))
        s->unknown_event_logs++;
}

static const char UNICODE_PATTERN[] = "ünï.cødé☃"; /* no space: NATS subjects have none */

static void svc_message(svc *s, const char *route, nc_request_fn fn) {
    fx_route_ready(route);
    assert_int_equal(nc_server_message(s->srv, fx_route(route, 1), fn, s), 0);
}

static void svc_event(svc *s, const char *route, nc_event_fn fn) {
    if (FX.t->flags & CONF_NO_EVENTS) return; /* nothing could emit to it */
    fx_route_ready(route);
    assert_int_equal(nc_server_event(s->srv, route, fn, s), 0);
}

/* A server of the service, listening and (for brokers) subscribed; a client for it unless no_client. */
static void svc_up(svc *s, int shutdown_timeout_ms, int no_client) {
    memset(s, 0, sizeof *s);
    s->srv = fx_server_new(srv_log, s, shutdown_timeout_ms);
    nc_server *v = s->srv;
    svc_message(s, "echo", h_echo);
    svc_message(s, "{\"cmd\":\"sum\"}", h_sum);
    svc_message(s, "sum", h_sum); /* where routes are topic names */
    svc_message(s, "count", h_count);
    svc_message(s, "none", h_none);
    svc_message(s, "fail_obj", h_fail_obj);
    svc_message(s, "fail_msg", h_fail_msg);
    svc_message(s, "fail_with", h_fail_with);
    svc_message(s, "half", h_half);
    svc_message(s, "undefined", h_undefined);
    svc_message(s, "twice", h_twice);
    svc_message(s, "count_slowly", h_count_slowly);
    svc_message(s, "meta", h_meta);
    svc_message(s, "park", h_park);
    svc_message(s, "later", h_later);
    svc_message(s, "onlymsg", h_onlymsg);
    svc_message(s, "threadsafe", h_threadsafe);
    svc_message(s, "settle", h_settle);
    svc_message(s, "hdrs", h_hdrs);
    svc_event(s, "keep", ev_keep);
    svc_message(s, UNICODE_PATTERN, h_echo);
    svc_event(s, "note", ev_note1);
    svc_event(s, "note", ev_note2);
    svc_event(s, "note", ev_note3);
    nc_server_on_status(v, srv_status, s);
    assert_int_equal(nc_server_listen(v), 0);
    /* a readiness wait: generous, it ends when the server is up (a Kafka group join alone is 3 s) */
    assert_true(run_until(&s->connected, 1, 20000));
    if (!no_client) s->cli = fx_client_new(v, 0, NULL);
}

static void svc_down(svc *s) {
    if (s->cli) nc_client_free(s->cli);
    for (int i = 0; i < MAX_TIMERS; i++)
        if (s->timers[i]) uv_close((uv_handle_t *)s->timers[i], (uv_close_cb)free);
    if (s->srv) nc_server_free(s->srv); /* frees the requests still parked and the events still kept */
    json_decref(s->note_data);
    json_decref(s->kept_seen);
    memset(s, 0, sizeof *s);
}

/* Clients and servers a case makes besides its service's: the teardown frees those a failed case left
 * (their callbacks point into the case's statics, never into a stack frame that is gone). */
enum { MAX_EXTRA = 8 };
static nc_client *extra_cli[MAX_EXTRA];
static nc_server *extra_srv[MAX_EXTRA];

static nc_client *kept_client(nc_client *c) {
    for (int i = 0; i < MAX_EXTRA; i++)
        if (!extra_cli[i]) return extra_cli[i] = c;
    fail_msg("too many clients");
    return c;
}

static nc_server *kept_server(nc_server *v) {
    for (int i = 0; i < MAX_EXTRA; i++)
        if (!extra_srv[i]) return extra_srv[i] = v;
    fail_msg("too many servers");
    return v;
}

static void free_client(nc_client *c) {
    for (int i = 0; i < MAX_EXTRA; i++)
        if (extra_cli[i] == c) extra_cli[i] = NULL;
    nc_client_free(c);
}

static void free_server(nc_server *v) {
    for (int i = 0; i < MAX_EXTRA; i++)
        if (extra_srv[i] == v) extra_srv[i] = NULL;
    nc_server_free(v);
}

static void free_extras(void) {
    for (int i = 0; i < MAX_EXTRA; i++) {
        if (extra_cli[i]) free_client(extra_cli[i]);
        if (extra_srv[i]) free_server(extra_srv[i]);
    }
}

/* A shared server (CONF_SHARED_SERVER) serves the next case with fresh counters: the requests its
 * handlers still hold are finished (a case that failed half way), timers still pending keep their place. */
static void svc_reset(svc *s) {
    for (int i = 0; i < MAX_PARKED; i++)
        if (s->parked[i]) nc_reply_end(s->parked[i]);
    svc keep = *s;
    json_decref(s->note_data);
    json_decref(s->kept_seen);
    memset(s, 0, sizeof *s);
    s->srv = keep.srv;
    s->cli = keep.cli;
    memcpy(s->timers, keep.timers, sizeof s->timers);
    memcpy(s->kept, keep.kept, sizeof s->kept);
}

static void first_round_trip(nc_client *cli, const char *pattern, json_t *data);

/* The shutdown case's grace period. */
static int shutdown_grace(void) {
    return 400 * time_factor();
}

static int case_setup(void **st) {
    if ((FX.t->flags & CONF_SHARED_SERVER) && S.srv && !S.closing) {
        svc_reset(&S);
        if (!S.cli) S.cli = fx_client_new(S.srv, 0, NULL);
        return 0;
    }
    svc_down(&S);
    /* a shared server already has the grace the shutdown case needs (a new one would join again) */
    svc_up(&S, (FX.t->flags & CONF_SHARED_SERVER) ? shutdown_grace() : 0, 0);
    if (FX.t->flags & CONF_SHARED_SERVER) first_round_trip(S.cli, "echo", json_string("ready"));
    return 0;
}

static int group_teardown(void **st) {
    svc_down(&S);
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}

static void own_broker_end(void);

static int case_teardown(void **st) {
    free_extras();
    json_decref(unwrapped);
    unwrapped = NULL;
    own_broker_end();
    if (FX.t->broker && !fx_broker_running()) fx_broker_start(); /* a restart case failed half way */
    fx_use(FX_MAIN);
    if (!(FX.t->flags & CONF_SHARED_SERVER) || S.closing) svc_down(&S);
    svc_down(&S2);
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}

/* ---- calls ---------------------------------------------------------------------------------------------
 * A case's calls are static, not on its stack: when a case fails half way, the teardown frees its clients
 * and their pending calls end then, after the case's frame is gone. */

typedef struct call {
    int done, err;
    json_t *values; /* every value received */
    json_t *error;  /* the error value, or NULL */
} call;

static void on_value(void *u, json_t *v) {
    call *c = u;
    if (!c->values) c->values = json_array();
    json_array_append_new(c->values, fx_unwrap(v));
}

static void on_done(void *u, int err, json_t *e) {
    call *c = u;
    c->done++;
    c->err = err;
    c->error = e ? json_incref(e) : NULL;
}

static void call_clear(call *c) {
    json_decref(c->values);
    json_decref(c->error);
    memset(c, 0, sizeof *c);
}

static size_t nvalues(const call *c) {
    return c->values ? json_array_size(c->values) : 0;
}

/* Where a reply stream's separate end arrives as a final null value (CONF_END_AS_NULL), that null is
 * removed: what remains is what the other transports deliver. */
static void strip_end_null(call *c) {
    size_t n = nvalues(c);
    if ((FX.t->flags & CONF_END_AS_NULL) && n && json_is_null(json_array_get(c->values, n - 1)))
        json_array_remove(c->values, n - 1);
}

/* Sends and waits for the call's end (up to ms); the caller clears c. */
static void request_within(nc_client *cli, const char *pattern, json_t *data, const nc_call_opts *o, call *c,
                           int ms) {
    memset(c, 0, sizeof *c);
    uint64_t t0 = now_ms();
    assert_int_equal(client_send(cli, pattern, data, o, on_value, on_done, c), 0);
    json_decref(data);
    assert_true(run_until(&c->done, 1, ms));
    if (getenv("NESTC_CONF_DEBUG")) fprintf(stderr, "request %s: %d ms\n", pattern, (int)(now_ms() - t0));
}

static void request(nc_client *cli, const char *pattern, json_t *data, const nc_call_opts *o, call *c) {
    request_within(cli, pattern, data, o, c, 5000);
}

/* A new server's first round trip, with a longer wait: on Kafka a server reports "connected" at its first
 * partition assignment, and a second rebalance may follow at once (the subscription's metadata), holding
 * its records for a few seconds more. */
static void first_round_trip(nc_client *cli, const char *pattern, json_t *data) {
    static call c; /* request_within() clears it */
    nc_call_opts o = {.timeout_ms = 20000 * time_factor()};
    request_within(cli, pattern, data, &o, &c, 20000);
    assert_int_equal(c.err, 0);
    call_clear(&c);
}

/* One value, then the end: the value. */
static void expect_one(const call *c) {
    if (c->err) {
        char *e = c->error ? json_dumps(c->error, JSON_ENCODE_ANY) : NULL;
        print_error("call failed: %s %s\n", nc_err_name(c->err), e ? e : "");
        free(e);
    }
    assert_int_equal(c->err, 0);
    assert_int_equal(nvalues(c), 1);
}

/* A round trip on the client: everything sent before it on the same client has been handled. */
static void barrier(nc_client *cli) {
    static call c; /* request() clears it */
    request(cli, "echo", json_string("barrier"), NULL, &c);
    expect_one(&c);
    call_clear(&c);
}

/* ---- the cases ---------------------------------------------------------------------------------------- */

static void case_request_string_pattern(void **st) {
    static call c; /* request() clears it */
    json_t *d = json_pack("{s:[i,s,n,b],s:f}", "a", 1, "x", 1, "pi", 3.25);
    request(S.cli, "echo", json_incref(d), NULL, &c);
    expect_one(&c);
    assert_true(json_equal(json_array_get(c.values, 0), d));
    json_decref(d);
    call_clear(&c);
}

static void case_request_object_pattern(void **st) {
    static call c; /* request() clears it */
    request(S.cli, sum_route(), json_pack("[i,i,i]", 1, 2, 3), NULL, &c);
    expect_one(&c);
    assert_int_value(json_array_get(c.values, 0), 6);
    call_clear(&c);
    if (FX.t->flags & CONF_TOPIC_ROUTES) {
        print_message("an object pattern is no topic name: the plain route only\n");
        return;
    }
    /* the same route with the pattern as a value */
    json_t *p = json_pack("{s:s}", "cmd", "sum");
    if (FX.t->flags & CONF_TYPED_MESSAGES) { /* the method as NestJS's gRPC pattern value */
        json_decref(p);
        p = json_pack("{s:s,s:s}", "service", "Suite", "rpc", "CmdSum");
    }
    memset(&c, 0, sizeof c);
    json_t *d = fx_wrap(json_pack("[i,i]", 40, 2));
    assert_int_equal(nc_client_send_json(S.cli, p, d, NULL, on_value, on_done, &c), 0);
    json_decref(p);
    json_decref(d);
    assert_true(run_until(&c.done, 1, 5000));
    expect_one(&c);
    assert_int_equal(json_integer_value(json_array_get(c.values, 0)), 42);
    call_clear(&c);
}

static void case_stream(void **st) {
    static call c; /* request() clears it */
    request(S.cli, "count", json_integer(5), NULL, &c);
    assert_int_equal(c.err, 0);
    assert_int_equal(nvalues(&c), 5);
    for (int i = 0; i < 5; i++) assert_int_value(json_array_get(c.values, i), i + 1);
    call_clear(&c);
}

static void case_stream_over_loop_turns(void **st) {
    static call c; /* request() clears it */
    request(S.cli, "count_slowly", json_integer(4), NULL, &c);
    strip_end_null(&c);
    assert_int_equal(c.err, 0);
    assert_int_equal(nvalues(&c), 4);
    for (int i = 0; i < 4; i++) assert_int_value(json_array_get(c.values, i), i + 1);
    call_clear(&c);
}

static void case_stream_then_error(void **st) {
    static call c; /* request() clears it */
    request(S.cli, "half", NULL, NULL, &c);
    assert_int_equal(c.err, NC_EREMOTE);
    assert_int_equal(nvalues(&c), 2); /* the values before the error arrive */
    assert_int_value(json_array_get(c.values, 1), 2);
    assert_string_equal(error_message(c.error), "half way");
    call_clear(&c);
}

/* a reply of JavaScript's undefined: the call completes with no value (NestJS's observer alike) */
static void case_reply_undefined(void **st) {
    static call c; /* request() clears it */
    request(S.cli, "undefined", NULL, NULL, &c);
    strip_end_null(&c);
    assert_int_equal(c.err, 0);
    assert_int_equal(nvalues(&c), 0);
    call_clear(&c);
    /* null is a value */
    request(S.cli, "echo", NULL, NULL, &c);
    expect_one(&c);
    assert_true(json_is_null(json_array_get(c.values, 0)));
    call_clear(&c);
}

static void case_stream_empty(void **st) {
    static call c; /* request() clears it */
    request(S.cli, "none", NULL, NULL, &c);
    strip_end_null(&c);
    assert_int_equal(c.err, 0);
    assert_int_equal(nvalues(&c), 0);
    assert_int_equal(c.done, 1);
    call_clear(&c);
}

static void case_remote_error_object(void **st) {
    static call c; /* request() clears it */
    request(S.cli, "fail_obj", NULL, NULL, &c);
    assert_int_equal(c.err, NC_EREMOTE);
    assert_int_equal(nvalues(&c), 0);
    assert_error(c.error, json_pack("{s:i,s:s,s:[i,i]}", "code", 42, "reason", "nope", "at", 1, 2));
    call_clear(&c);
}

static void case_remote_error_msg(void **st) {
    static call c; /* request() clears it */
    request(S.cli, "fail_msg", NULL, NULL, &c);
    assert_int_equal(c.err, NC_EREMOTE);
    assert_error(c.error, json_pack("{s:s,s:s}", "status", "error", "message", "boom"));
    call_clear(&c);
}

static void case_remote_error_other_values(void **st) {
    static call c;                                                     /* request() clears it */
    request(S.cli, "fail_with", json_string("plain words"), NULL, &c); /* a string as it is */
    assert_int_equal(c.err, NC_EREMOTE);
    assert_error(c.error, json_string("plain words"));
    call_clear(&c);
    request(S.cli, "fail_with", json_integer(17), NULL, &c);
    assert_int_equal(c.err, NC_EREMOTE);
    if (FX.t->flags & CONF_STATUS_ERRORS)
        assert_error(c.error, json_integer(17));
    else
        assert_int_value(c.error, 17);
    call_clear(&c);
    request(S.cli, "fail_with", json_pack("{s:b}", "none", 1), NULL, &c); /* none given */
    assert_int_equal(c.err, NC_EREMOTE);
    assert_error(c.error, json_pack("{s:s,s:s}", "status", "error", "message", "Internal server error"));
    call_clear(&c);
}

static void case_events_several_handlers(void **st) {
    if (FX.t->flags & CONF_NO_EVENTS) {
        print_message("skipped: no events on this transport (gRPC)\n");
        skip();
    }
    for (int round = 1; round <= 2; round++) {
        static call e;
        memset(&e, 0, sizeof e);
        json_t *d = json_pack("{s:i}", "n", round);
        assert_int_equal(nc_client_emit(S.cli, "note", d, NULL, on_done, &e), 0);
        json_decref(d);
        assert_true(run_until(&e.done, 1, 5000));
        assert_int_equal(e.err, 0);
        assert_true(run_until(&S.norder, 3 * round, 5000));
        for (int i = 0; i < 3; i++) assert_int_equal(S.order[3 * (round - 1) + i], i + 1); /* all, in order */
        assert_int_equal(json_integer_value(json_object_get(S.note_data, "n")), round);
        /* the channel it came on: a broker's; a connection has none */
        assert_string_equal(S.note_channel, (FX.t->flags & CONF_CHANNEL_IS_QUEUE) ? FX.queue
                                            : FX.t->broker                        ? "note"
                                                                                  : "-");
        call_clear(&e);
    }
    barrier(S.cli);
    assert_int_equal(S.norder, 6); /* each handler once per event */
}

static void case_event_to_message_handler(void **st) {
    if (FX.t->flags & CONF_NO_EVENTS) {
        print_message("skipped: no events on this transport (gRPC)\n");
        skip();
    }
    static call e;
    memset(&e, 0, sizeof e);
    assert_int_equal(nc_client_emit(S.cli, "onlymsg", NULL, NULL, on_done, &e), 0);
    assert_true(run_until(&S.as_msg, 1, 5000));
    assert_int_equal(S.as_msg_event, 1);
    assert_int_equal(S.as_msg_rc, 0); /* its reply goes nowhere, quietly */
    assert_true(run_until(&e.done, 1, 5000));
    assert_int_equal(e.err, 0);
    call_clear(&e);
    /* a request to it is answered as ever */
    static call c; /* request() clears it */
    request(S.cli, "onlymsg", NULL, NULL, &c);
    expect_one(&c);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), "from onlymsg");
    assert_int_equal(S.as_msg, 2);
    assert_int_equal(S.as_msg_event, 1);
    call_clear(&c);
}

/* NestJS runs the event handlers of a pattern that has no message handler, then completes the request */
static void case_request_to_event_pattern(void **st) {
    if (FX.t->flags & CONF_NO_EVENTS) {
        print_message("skipped: no events on this transport (gRPC)\n");
        skip();
    }
    static call c; /* request() clears it */
    request(S.cli, "note", json_pack("{s:i}", "n", 9), NULL, &c);
    strip_end_null(&c);
    assert_int_equal(c.err, 0);
    assert_int_equal(nvalues(&c), 0);
    assert_int_equal(S.norder, 3);
    call_clear(&c);
}

static void case_unknown_pattern_request(void **st) {
    static call c; /* request() clears it */
    nc_call_opts o = {.timeout_ms = 300 * time_factor()};
    uint64_t t0 = now_ms();
    request(S.cli, "nobody", NULL, &o, &c);
    if (FX.t->flags & CONF_UNKNOWN_TIMES_OUT) {
        assert_int_equal(c.err, NC_ETIMEDOUT);
        assert_int_equal(nvalues(&c), 0);
        call_clear(&c);
        barrier(S.cli);
        return;
    }
    if (FX.t->flags & CONF_STATUS_ERRORS) { /* gRPC: the server's status 12 UNIMPLEMENTED */
        assert_int_equal(c.err, NC_EREMOTE);
        assert_int_equal(json_integer_value(json_object_get(c.error, "code")), 12);
        assert_int_equal(nvalues(&c), 0);
        call_clear(&c);
        barrier(S.cli);
        return;
    }
    /* NC_ENOHANDLER on every other transport (client.h, nc_done_fn) */
    assert_int_equal(c.err, NC_ENOHANDLER);
    if (FX.t->flags & (CONF_CONNECTED | CONF_SERVER_SEES_UNKNOWN)) {
        /* the server's answer, as received */
        assert_string_equal(json_string_value(c.error),
                            "There is no matching message handler defined in the remote service.");
    } else {
        /* NATS's no-responders, Redis's PUBLISH that reached nobody: at once, not at the timeout */
        assert_non_null(strstr(json_string_value(c.error), "no subscribers listening to that message"));
        assert_true(now_ms() - t0 < 300u * (unsigned)time_factor());
    }
    assert_int_equal(nvalues(&c), 0);
    call_clear(&c);
    barrier(S.cli); /* the client and the connection are fine */
}

static void case_unknown_pattern_event(void **st) {
    if (FX.t->flags & CONF_NO_EVENTS) {
        print_message("skipped: no events on this transport (gRPC)\n");
        skip();
    }
    static call e;
    memset(&e, 0, sizeof e);
    assert_int_equal(nc_client_emit(S.cli, "nobody", json_true(), NULL, on_done, &e), 0);
    assert_true(run_until(&e.done, 1, 5000));
    assert_int_equal(e.err, 0);
    call_clear(&e);
    int seen = !!(FX.t->flags & (CONF_CONNECTED | CONF_SERVER_SEES_UNKNOWN));
    if (seen) assert_true(run_until(&S.unknown_event_logs, 1, 5000)); /* logged */
    barrier(S.cli);
    /* logged once where the server receives it; on other brokers nobody subscribed, the server never sees it
     */
    assert_int_equal(S.unknown_event_logs, seen);
    assert_int_equal(S.norder, 0);
}

static void case_headers(void **st) {
    json_t *ch = json_pack("{s:s,s:s}", "x-client", "c1", "x-trace", "default");
    nc_client *cli = kept_client(fx_client_new(S.srv, 0, ch)); /* client-wide headers */
    json_decref(ch);
    json_t *h = json_pack("{s:s,s:s}", "x-trace", "t-1", "x-version", "1.0.0");
    nc_call_opts o = {.headers = h};
    static call c; /* request() clears it */
    request(cli, "meta", NULL, &o, &c);
    json_decref(h);
    expect_one(&c);
    json_t *got = json_object_get(json_array_get(c.values, 0), "headers");
    if (FX.t->flags & CONF_HEADERS) {
        assert_string_equal(json_string_value(json_object_get(got, "x-trace")), "t-1"); /* the call's wins */
        assert_string_equal(json_string_value(json_object_get(got, "x-version")), "1.0.0");
        assert_string_equal(json_string_value(json_object_get(got, "x-client")), "c1");
    } else {
        assert_true(json_is_null(got)); /* no headers on this transport: ignored, not an error */
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(c.values, 0), "transport")),
                        FX.t->scheme);
    call_clear(&c);
    free_client(cli);
}

static void case_metadata(void **st) {
    json_t *md = json_pack("{s:s,s:i,s:{s:s}}", "traceId", "abc-1", "n", 7, "nested", "k", "v");
    nc_call_opts o = {.metadata = md};
    static call c; /* request() clears it */
    request(S.cli, "meta", NULL, &o, &c);
    expect_one(&c);
    if (FX.t->flags & CONF_NO_METADATA) /* not carried: none seen */
        assert_true(json_is_null(json_object_get(json_array_get(c.values, 0), "metadata")));
    else
        assert_true(json_equal(json_object_get(json_array_get(c.values, 0), "metadata"), md));
    call_clear(&c);
    json_decref(md);
    /* none given: none seen */
    request(S.cli, "meta", NULL, NULL, &c);
    expect_one(&c);
    assert_true(json_is_null(json_object_get(json_array_get(c.values, 0), "metadata")));
    call_clear(&c);
}

static void case_request_timeout(void **st) {
    int ms = 300 * time_factor();
    nc_call_opts o = {.timeout_ms = ms};
    static call c; /* request() clears it */
    uint64_t t0 = now_ms();
    request(S.cli, "park", json_true(), &o, &c);
    assert_int_equal(c.err, NC_ETIMEDOUT);
    assert_true(now_ms() - t0 + 5 >= (uint64_t)ms); /* not before its time */
    assert_true(run_until(&S.nparked, 1, 5000));    /* (Kafka: the first record of a route may come later) */
    if (FX.t->flags & CONF_TIMEOUT_CANCELS) { /* the deadline reached the server: its request is cancelled */
        assert_true(run_until(&S.cancelled, 1, 5000));
        assert_null(take_parked(&S));
        barrier(S.cli);
        assert_int_equal(c.done, 1);
        assert_int_equal(nvalues(&c), 0);
        call_clear(&c);
        return;
    }
    /* the server's request is still there, not cancelled by the caller's timeout; finishing it late is
     * fine, and the late reply does not reach the finished call */
    nc_request *r = take_parked(&S);
    assert_non_null(r);
    assert_false(nc_request_is_cancelled(r));
    assert_int_equal(reply(r, json_string("too late")), 0);
    barrier(S.cli);
    assert_int_equal(c.done, 1);
    assert_int_equal(nvalues(&c), 0);
    assert_int_equal(S.cancelled, 0);
    call_clear(&c);
}

static void case_cancel_on_client_close(void **st) {
    static call c;
    memset(&c, 0, sizeof c);
    assert_int_equal(client_send(S.cli, "park", NULL, NULL, on_value, on_done, &c), 0);
    assert_true(run_until(&S.nparked, 1, 5000));
    nc_client_free(S.cli);
    S.cli = NULL;
    assert_int_equal(c.done, 1); /* the caller learns at once */
    assert_int_equal(c.err, NC_ECLOSED);
    if (FX.t->flags & CONF_CONNECTED) {
        /* the server learns the caller is gone: the cancel callback runs (and finishes the request) */
        assert_true(run_until(&S.cancelled, 1, 5000));
        assert_null(take_parked(&S));
    } else {
        /* a broker does not say that a caller left: the request stays until its handler finishes it
         * (its reply is published to a reply channel nobody listens to) */
        nc_client *other = kept_client(fx_client_new(S.srv, 0, NULL));
        barrier(other);
        free_client(other);
        assert_int_equal(S.cancelled, 0);
        nc_request *r = take_parked(&S);
        assert_non_null(r);
        assert_false(nc_request_is_cancelled(r));
        assert_int_equal(reply(r, json_string("nobody listens")), 0);
    }
    call_clear(&c);
}

static void case_concurrent_requests(void **st) {
    enum { N = 200 };
    call *c = calloc(N, sizeof *c);
    for (int i = 0; i < N; i++) {
        /* odd: an echo of its own value; even: a stream of i % 7 values */
        json_t *d = i % 2 ? json_pack("{s:i,s:[i]}", "i", i, "sq", i * i) : json_integer(i % 7);
        assert_int_equal(client_send(S.cli, i % 2 ? "echo" : "count", d, NULL, on_value, on_done, &c[i]), 0);
        json_decref(d);
    }
    int all = 0;
    for (int i = 0; i < N; i++) {
        assert_true(run_until(&c[i].done, 1, 10000));
        strip_end_null(&c[i]);
        assert_int_equal(c[i].err, 0);
        if (i % 2) {
            assert_int_equal(nvalues(&c[i]), 1);
            json_t *v = json_array_get(c[i].values, 0);
            assert_int_equal(json_integer_value(json_object_get(v, "i")), i);
            assert_int_equal(json_integer_value(json_array_get(json_object_get(v, "sq"), 0)), i * i);
        } else {
            assert_int_equal(nvalues(&c[i]), (size_t)(i % 7));
        }
        all++;
        call_clear(&c[i]);
    }
    assert_int_equal(all, N);
    free(c);
}

static void case_large_payload(void **st) {
    size_t n = 1024 * 1024;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
    json_t *d = json_stringn(big, n);
    free(big);
    static call c; /* request() clears it */
    request(S.cli, "echo", json_incref(d), NULL, &c);
    expect_one(&c);
    assert_true(json_equal(json_array_get(c.values, 0), d));
    json_decref(d);
    call_clear(&c);
}

static void case_unicode(void **st) {
    json_t *d =
        json_pack("{s:s,s:s}", "ключ", "значение — 日本語 🎉", "e", "é\u00e9\xc3\xa9 \xf0\x9f\x98\x80");
    static call c; /* request() clears it */
    request(S.cli, "echo", json_incref(d), NULL, &c);
    expect_one(&c);
    assert_true(json_equal(json_array_get(c.values, 0), d));
    call_clear(&c);
    /* a pattern with non-ASCII characters (a channel/subject of UTF-8 bytes on brokers; not a topic name) */
    if (!(FX.t->flags & CONF_TOPIC_ROUTES)) {
        request(S.cli, UNICODE_PATTERN, json_incref(d), NULL, &c);
        expect_one(&c);
        assert_true(json_equal(json_array_get(c.values, 0), d));
        call_clear(&c);
    }
    if (FX.t->flags & CONF_NO_EVENTS) {
        json_decref(d);
        return;
    }
    static call e;
    memset(&e, 0, sizeof e);
    assert_int_equal(nc_client_emit(S.cli, "note", d, NULL, on_done, &e), 0);
    assert_true(run_until(&S.norder, 3, 5000));
    assert_true(json_equal(S.note_data, d));
    assert_true(run_until(&e.done, 1, 5000));
    call_clear(&e);
    json_decref(d);
}

static void on_closed(void *u) {
    (*(int *)u)++;
}

/* Graceful close with one request about to be answered and one its handler never answers: the first is
 * answered; the second is cancelled at the shutdown deadline (its cancel callback finishes it). */
static void case_shutdown_with_pending_request(void **st) {
    int grace = shutdown_grace();
    if (!(FX.t->flags & CONF_SHARED_SERVER)) { /* (a shared server has it already) */
        svc_down(&S);
        svc_up(&S, grace, 0);
    }
    static call soon, never;
    if (FX.t->flags & CONF_WARM_ROUTES) {
        /* Kafka, a known issue (docs/kafka.md, "Not done yet"): a server's first reply to a route, given
         * while it closes, is lost (its producer does not know the reply topic yet) */
        request(S.cli, "later", json_integer(1), NULL, &soon);
        call_clear(&soon);
    }
    memset(&soon, 0, sizeof soon);
    memset(&never, 0, sizeof never);
    nc_call_opts o = {.timeout_ms = 3 * grace}; /* beyond the deadline: the outcome is not our timeout */
    json_t *ms = json_integer(50);
    assert_int_equal(client_send(S.cli, "later", ms, NULL, on_value, on_done, &soon), 0);
    json_decref(ms);
    assert_int_equal(client_send(S.cli, "park", NULL, &o, on_value, on_done, &never), 0);
    assert_true(run_until(&S.nparked, 1, 5000));
    assert_true(run_until(&S.later_started, 1, 5000));
    int closed = 0;
    uint64_t t0 = now_ms();
    S.closing = 1;
    nc_server_close(S.srv, on_closed, &closed);
    assert_true(run_until(&soon.done, 1, 5000));
    expect_one(&soon);
    assert_string_equal(json_string_value(json_array_get(soon.values, 0)), "late");
    assert_true(run_until(&closed, 1, 5000));
    assert_int_equal(S.cancelled, 1); /* at the deadline */
    assert_true(now_ms() - t0 + 5 >= (uint64_t)grace);
    assert_true(run_until(&never.done, 1, 5000));
    /* connection: it closes with the server; broker: nothing comes, the caller's timeout ends it */
    if (FX.t->flags & CONF_STATUS_ERRORS) { /* gRPC: the connection's end is the call's status, 14 */
        assert_int_equal(never.err, NC_EREMOTE);
        assert_int_equal(json_integer_value(json_object_get(never.error, "code")), 14);
    } else {
        assert_int_equal(never.err, (FX.t->flags & CONF_CONNECTED) ? NC_ECONNCLOSED : NC_ETIMEDOUT);
    }
    assert_int_equal(nvalues(&never), 0);
    call_clear(&soon);
    call_clear(&never);
}

static void case_broadcast_two_servers(void **st) {
    if (!FX.t->broker) {
        print_message("skipped: no broker (one server per address)\n");
        skip();
    }
    fx_use(FX_OTHER_GROUP); /* Kafka: a group of its own (a second member of S's would share with it) */
    svc_up(&S2, 0, 1);
    fx_use(FX_MAIN);
    static call e;
    memset(&e, 0, sizeof e);
    json_t *d = json_pack("{s:i}", "n", 7);
    assert_int_equal(nc_client_emit(S.cli, "note", d, NULL, on_done, &e), 0);
    json_decref(d);
    assert_true(run_until(&e.done, 1, 5000));
    assert_int_equal(e.err, 0);
    if (FX.t->flags & CONF_WORK_QUEUE) {
        /* one of the two runs the event's handlers, once; the other never sees it */
        uint64_t end = now_ms() + 5000u * (unsigned)time_factor();
        while (S.bcast + S2.bcast < 3 && now_ms() < end) run_until(&S.bcast, S.bcast + 1, 10);
        barrier(S.cli);
        assert_int_equal(S.bcast + S2.bcast, 3);
        assert_true(S.bcast == 0 || S2.bcast == 0);
        call_clear(&e);
        return;
    }
    /* (counted by the event's data: a second server of a group of its own, read from the beginning, also
     * sees the run's earlier events on Kafka) */
    assert_true(run_until(&S.bcast, 3, 5000));
    /* a new server's first records may wait for a second rebalance (first_round_trip) */
    assert_true(run_until(&S2.bcast, 3, (FX.t->flags & CONF_SHARED_SERVER) ? 20000 : 5000));
    call_clear(&e);
}

typedef struct cli_status {
    int connected, reconnecting;
} cli_status;

static void cli_on_status(void *u, const char *status, int err) {
    cli_status *s = u;
    if (!strcmp(status, "connected")) s->connected++;
    if (!strcmp(status, "reconnecting")) s->reconnecting++;
}

/* The broker stops (by PID) and starts again on the same port, with a request pending and a client that
 * retries: the request keeps waiting and gets its reply; a call made meanwhile fails at once with
 * NC_ECONNLOST; the server subscribes again and serves new requests (docs/redis.md, docs/nats.md). */
static void case_broker_restart(void **st) {
    if (!FX.t->broker) {
        print_message("skipped: no broker\n");
        skip();
    }
    if (fx_broker_external()) {
        print_message("skipped: a shared broker\n");
        skip();
    }
    static cli_status cs;
    memset(&cs, 0, sizeof cs);
    nc_client *cli = kept_client(fx_client_new(S.srv, 50, NULL));
    nc_client_on_status(cli, cli_on_status, &cs);
    static call slow, during, after;
    memset(&slow, 0, sizeof slow);
    memset(&during, 0, sizeof during);
    memset(&after, 0, sizeof after);
    json_t *ms = json_integer(1500 * time_factor());           /* still unanswered once the broker is back */
    nc_call_opts wait = {.timeout_ms = 20000 * time_factor()}; /* beyond the restart (Kafka: reconnecting) */
    assert_int_equal(client_send(cli, "later", ms, &wait, on_value, on_done, &slow), 0);
    json_decref(ms);
    assert_true(run_until(&S.later_started, 1, 5000)); /* the server has it */
    /* Kafka: a route's first call looks its reply topic up first, which fails (NC_EIO) after 10 s without a
     * broker: the call made while they are down goes to a route this client knows */
    if (FX.t->flags & CONF_QUEUES_WHILE_DOWN) barrier(cli);
    fx_broker_stop();
    if (FX.t->flags & CONF_QUEUES_WHILE_DOWN) {
        /* nothing is reported, nothing fails: a call made meanwhile and the reply the server sends meanwhile
         * wait in librdkafka's queues, and go once the brokers are back */
        json_t *dd = json_string("during");
        assert_int_equal(client_send(cli, "echo", dd, &wait, on_value, on_done, &during), 0);
        json_decref(dd);
        uint64_t down = now_ms();
        assert_true(run_until(&S.later_done, 1, 5000)); /* the server replied while they were down */
        if (during.done + slow.done)
            print_error("while the brokers were down: during %d %s, slow %d %s\n", during.done,
                        nc_err_name(during.err), slow.done, nc_err_name(slow.err));
        assert_int_equal(during.done + slow.done, 0);
        assert_int_equal(cs.reconnecting, 0);
        fx_broker_start();
        uint64_t up = now_ms();
        assert_true(run_until(&slow.done, 1, 15000));
        if (getenv("NESTC_CONF_DEBUG"))
            fprintf(stderr, "brokers down %d ms, the reply %d ms after they were up\n", (int)(up - down),
                    (int)(now_ms() - up));
        expect_one(&slow);
        assert_string_equal(json_string_value(json_array_get(slow.values, 0)), "late");
        assert_true(run_until(&during.done, 1, 15000));
        expect_one(&during);
        assert_string_equal(json_string_value(json_array_get(during.values, 0)), "during");
    } else {
        assert_true(run_until(&cs.reconnecting, 1, 5000));
        assert_int_equal(client_send(cli, "echo", NULL, NULL, on_value, on_done, &during), 0);
        assert_true(run_until(&during.done, 1, 1000));
        assert_int_equal(during.err, NC_ECONNLOST);
        assert_string_equal(json_string_value(during.error), "Connection lost. Trying to reconnect...");
        if (FX.t->flags & CONF_PENDING_LOST) {
            assert_int_equal(slow.done, 1); /* failed when the connection went */
            assert_int_equal(slow.err, NC_ECONNLOST);
            assert_int_equal(nvalues(&slow), 0);
        } else {
            assert_int_equal(slow.done, 0); /* still waiting */
        }
        fx_broker_start();
        assert_true(run_until(&cs.connected, 2, 20000));
        assert_true(run_until(&S.connected, 2, 20000)); /* the server too, subscriptions restored */
        if (!(FX.t->flags & CONF_PENDING_LOST)) {
            assert_true(run_until(&slow.done, 1, 5000));
            expect_one(&slow);
            assert_string_equal(json_string_value(json_array_get(slow.values, 0)), "late");
        }
    }
    request(cli, sum_route(), json_pack("[i,i]", 4, 5), NULL, &after);
    expect_one(&after);
    assert_int_value(json_array_get(after.values, 0), 9);
    /* and a client that was connected before the restart without retries of its own */
    barrier(S.cli);
    call_clear(&slow);
    call_clear(&during);
    call_clear(&after);
    free_client(cli);
}

/* A request finished twice: the second finish returns NC_ESTATE and the caller gets one reply; every
 * other call on the stale handle is refused too (issue 12, safe handles: this freed the pooled request
 * twice before). */
static void case_finish_twice(void **st) {
    static call c; /* request() clears it */
    twice_rc = 1;
    memset(twice_after, 0, sizeof twice_after);
    request(S.cli, "twice", NULL, NULL, &c);
    expect_one(&c);
    assert_int_value(json_array_get(c.values, 0), 1);
    assert_int_equal(twice_rc, NC_ESTATE);
    for (int i = 0; i < 8; i++) {
        if (twice_after[i] != NC_ESTATE) print_error("call %d on the stale handle: %d\n", i, twice_after[i]);
        assert_int_equal(twice_after[i], NC_ESTATE);
    }
    call_clear(&c);
    barrier(S.cli);
}

/* A thread-safe reply to a finished request (refused, or queued and dropped by the loop): nothing is sent,
 * the caller gets the handler's reply only. */
static void case_threadsafe_after_finish(void **st) {
    static call c; /* request() clears it */
    request(S.cli, "threadsafe", json_string("after"), NULL, &c);
    expect_one(&c);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), "direct");
    assert_int_equal(ts.rc, NC_ESTATE); /* "a request already finished is refused at once" */
    call_clear(&c);
    /* queued while unfinished, applied after the handler finished it: dropped */
    request(S.cli, "threadsafe", json_string("before"), NULL, &c);
    expect_one(&c);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), "direct");
    assert_int_equal(ts.rc, 0);
    call_clear(&c);
    barrier(S.cli); /* the queued replies were applied (or dropped) by now: nothing more arrived */
    barrier(S.cli);
}

typedef struct disconnects {
    int n, err;
} disconnects;

static void srv_disconnects(void *u, const char *status, int err) {
    disconnects *d = u;
    if (!strcmp(status, "disconnected")) d->n++, d->err = err;
}

/* the case's own broker stands in for FX's while it runs (fx_* build URLs from FX.broker) */
static broker saved_broker;
static int own_broker;

static void own_broker_end(void) {
    if (!own_broker) return;
    broker_free(&FX.broker);
    FX.broker = saved_broker;
    own_broker = 0;
}

/* A broker that requires a password (user "default"): a server and a client with it are served; a client
 * with a wrong one fails its call with NC_EAUTH, a server with a wrong one reports disconnected with
 * NC_EAUTH (and keeps retrying). */
static void case_broker_credentials(void **st) {
    if (!FX.t->broker) {
        print_message("skipped: no broker\n");
        skip();
    }
    if (fx_broker_external()) {
        print_message("skipped: a shared broker\n");
        skip();
    }
    if (FX.t->flags & CONF_NO_BROKER_AUTH) {
        print_message("skipped: this broker takes no password (the Kafka mock cluster has no SASL)\n");
        skip();
    }
    saved_broker = FX.broker;
    own_broker = 1;
    FX.broker = (broker){.kind = saved_broker.kind, .tls = saved_broker.tls};
    snprintf(FX.broker.pass, sizeof FX.broker.pass, "s3cret");
    fx_broker_start();
    char good[240], bad[240];
    snprintf(good, sizeof good, "%s://default:s3cret@127.0.0.1:%d%s", FX.t->scheme, FX.broker.port,
             fx_url_params());
    snprintf(bad, sizeof bad, "%s://default:wrong@127.0.0.1:%d%s", FX.t->scheme, FX.broker.port,
             fx_url_params());
    nc_server_opts so = {
        .loop = &loop, .log_level = NC_LOG_OFF, .retry_delay_ms = 100, .shutdown_timeout_ms = 200};
    nc_client_opts co = {.loop = &loop,
                         .log_level = NC_LOG_OFF,
                         .timeout_ms = 5000 * time_factor(),
                         .connect_timeout_ms = 5000 * time_factor()};
    if (FX.t->flags & CONF_TLS) so.tls = co.tls = &FX.client_tls;
    static svc in;
    memset(&in, 0, sizeof in);
    assert_int_equal(nc_server_new(&in.srv, good, &so), 0);
    kept_server(in.srv);
    assert_int_equal(nc_server_message(in.srv, "echo", h_echo, NULL), 0);
    nc_server_on_status(in.srv, srv_status, &in);
    assert_int_equal(nc_server_listen(in.srv), 0);
    assert_true(run_until(&in.connected, 1, 20000));
    nc_client *cli;
    static call c; /* request() clears it */
    assert_int_equal(nc_client_new(&cli, good, &co), 0);
    kept_client(cli);
    request(cli, "echo", json_string("in"), NULL, &c);
    expect_one(&c);
    call_clear(&c);
    free_client(cli);
    assert_int_equal(nc_client_new(&cli, bad, &co), 0);
    kept_client(cli);
    request(cli, "echo", json_string("out"), NULL, &c);
    assert_int_equal(c.err, NC_EAUTH);
    assert_non_null(strstr(json_string_value(c.error), fx_broker_auth_words())); /* the broker's words */
    call_clear(&c);
    free_client(cli);
    nc_server *out;
    static disconnects d;
    memset(&d, 0, sizeof d);
    assert_int_equal(nc_server_new(&out, bad, &so), 0);
    kept_server(out);
    assert_int_equal(nc_server_message(out, "echo", h_echo, NULL), 0);
    nc_server_on_status(out, srv_disconnects, &d);
    assert_int_equal(nc_server_listen(out), 0);
    assert_true(run_until(&d.n, 1, 5000));
    assert_int_equal(d.err, NC_EAUTH);
    free_server(out);
    free_server(in.srv);
    own_broker_end();
}

/* Settling requests by hand: on a transport that does not settle every settling call succeeds once and
 * does nothing; a second settle is refused; the reply is what it would be without them. */
static void case_settle_request(void **st) {
    static const char *hows[] = {"ack", "nack", "requeue", "reject"};
    static call c; /* request() clears it */
    for (size_t i = 0; i < sizeof hows / sizeof *hows; i++) {
        request(S.cli, "settle", json_string(hows[i]), NULL, &c);
        expect_one(&c);
        assert_string_equal(json_string_value(json_array_get(c.values, 0)), hows[i]);
        assert_int_equal(S.nsettle_rc, 4);
        assert_int_equal(S.settle_rc[0], 0);         /* the settle */
        assert_int_equal(S.settle_rc[1], NC_ESTATE); /* a second one */
        assert_int_equal(S.settle_rc[2], NC_ESTATE); /* settled already: nothing to take over */
        assert_int_equal(S.settle_rc[3], 0);         /* the reply, as ever */
        call_clear(&c);
    }
    request(S.cli, "settle", json_string("manual"), NULL, &c);
    expect_one(&c);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), "manual");
    assert_int_equal(S.nsettle_rc, 5);
    int want[] = {0, 0, 0, 0, NC_ESTATE}; /* taking over twice is fine */
    for (int i = 0; i < 5; i++) assert_int_equal(S.settle_rc[i], want[i]);
    call_clear(&c);
    barrier(S.cli);
    /* (CONF_SETTLES: the requeued one comes again and is answered then; case_settle_redelivery proves
     * redelivery on a server that settles at its broker) */
}

/* Kept events: the handler keeps the event, a timer reads the message after the handler returned (data,
 * route, headers), then settles it; a second settle is NC_ESTATE and the handle is stale. */
static void case_settle_kept_event(void **st) {
    if (FX.t->flags & CONF_NO_EVENTS) {
        print_message("skipped: no events on this transport (gRPC)\n");
        skip();
    }
    static const char *hows[] = {"ack", "nack", "requeue", "reject"};
    json_t *h = json_pack("{s:s}", "x-trace", "kept-1");
    nc_call_opts o = {.headers = h};
    for (size_t i = 0; i < sizeof hows / sizeof *hows; i++) {
        static call e;
        memset(&e, 0, sizeof e);
        json_t *d = json_pack("{s:s,s:i}", "how", hows[i], "n", (int)i);
        assert_int_equal(nc_client_emit(S.cli, "keep", d, &o, on_done, &e), 0);
        assert_true(run_until(&S.kept_settled, (int)i + 1, 5000));
        json_t *seen = S.kept_seen;
        assert_true(json_equal(json_object_get(seen, "data"), d));
        assert_string_equal(json_string_value(json_object_get(seen, "route")), "keep");
        assert_int_equal(json_integer_value(json_object_get(seen, "event")), 1);
        assert_true(json_is_true(json_object_get(seen, "loop")));
        if (FX.t->flags & CONF_HEADERS) {
            assert_string_equal(json_string_value(json_object_get(seen, "header")), "kept-1");
            assert_int_equal(json_integer_value(json_object_get(seen, "count")), 1);
        } else {
            assert_true(json_is_null(json_object_get(seen, "header")));
            assert_int_equal(json_integer_value(json_object_get(seen, "count")), 0);
        }
        assert_int_equal(json_integer_value(json_object_get(seen, "rc")), 0);
        assert_int_equal(json_integer_value(json_object_get(seen, "again")), NC_ESTATE);
        assert_true(json_is_true(json_object_get(seen, "after")));
        json_decref(d);
        assert_true(run_until(&e.done, 1, 5000));
        assert_int_equal(e.err, 0);
        call_clear(&e);
    }
    json_decref(h);
    assert_int_equal(S.nkept, 4);
    /* (CONF_SETTLES: the requeued one comes again and is acked then; case_settle_redelivery proves it) */
}

/* ---- settling at the broker (CONF_SETTLES) ---- */

/* Records a settling-case delivery; returns its id and how it is to be settled. */
static int settle_seen(svc *s, const nc_msg *m, const char **how) {
    json_t *d = nc_msg_data(m);
    int id = (int)int_of(json_object_get(d, "id")) & 31;
    *how = json_string_value(json_object_get(d, "how"));
    if (!*how) *how = "ack";
    int64_t n;
    s->sseen[id]++;
    s->scount[id] = nc_msg_ctx_int(m, NC_CTX_DELIVERY_COUNT, &n) == 0 ? (int)n : -1;
    s->sredelivered[id] = nc_msg_ctx_int(m, NC_CTX_REDELIVERED, &n) == 0 ? (int)n : -1;
    s->stotal++;
    return id;
}

/* an event kept and settled as its data says ({"id": n, "how": ...}); a redelivery is acked */
static void ev_settle(const nc_msg *m, void *u) {
    svc *s = u;
    const char *how;
    int id = settle_seen(s, m, &how);
    if (s->sseen[id] > 1) return; /* acked when the handler returns */
    nc_event *ev = nc_event_keep(m);
    assert_non_null(ev);
    int rc = !strcmp(how, "requeue")  ? nc_event_nack(ev, true)
             : !strcmp(how, "nack")   ? nc_event_nack(ev, false)
             : !strcmp(how, "reject") ? nc_event_reject(ev)
                                      : nc_event_ack(ev);
    assert_int_equal(rc, 0);
}

/* the same for a request, answered with how it was settled (a redelivery: "again", acked) */
static void h_settle_req(nc_request *req, const nc_msg *m, void *u) {
    svc *s = u;
    const char *how;
    int id = settle_seen(s, m, &how);
    if (s->sseen[id] > 1) {
        nc_reply(req, json_string("again"));
        return;
    }
    int rc = !strcmp(how, "requeue")  ? nc_request_nack(req, true)
             : !strcmp(how, "nack")   ? nc_request_nack(req, false)
             : !strcmp(how, "reject") ? nc_request_reject(req)
                                      : nc_request_ack(req);
    assert_int_equal(rc, 0);
    nc_reply(req, json_string(how));
}

/* A server that settles at the broker, on the settling destination (fx_use(FX_SETTLING)), and its client. */
static void settle_up(svc *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 32; i++) s->scount[i] = s->sredelivered[i] = -2;
    fx_use(FX_SETTLING);
    s->srv = kept_server(fx_server_new(srv_log, s, 0));
    svc_event(s, "settle_ev", ev_settle);
    svc_message(s, "settle_req", h_settle_req);
    nc_server_on_status(s->srv, srv_status, s);
    assert_int_equal(nc_server_listen(s->srv), 0);
    assert_true(run_until(&s->connected, 1, 10000));
    s->cli = kept_client(fx_client_new(s->srv, 0, NULL));
    fx_use(FX_MAIN);
    first_round_trip(s->cli, "settle_req", json_pack("{s:i,s:s}", "id", 31, "how", "ack"));
    memset(s->sseen, 0, sizeof s->sseen);
    s->stotal = 0;
}

static void settle_down(svc *s, int graceful) {
    if (graceful) { /* settlements written and (Kafka) the group left with its offsets committed */
        int closed = 0;
        nc_server_close(s->srv, on_closed, &closed);
        assert_true(run_until(&closed, 1, 10000));
    }
    free_client(s->cli);
    free_server(s->srv);
    s->cli = NULL;
    s->srv = NULL;
}

static void settle_emit(svc *s, int id, const char *how) {
    static call e;
    memset(&e, 0, sizeof e);
    json_t *d = json_pack("{s:i,s:s}", "id", id, "how", how);
    assert_int_equal(nc_client_emit(s->cli, "settle_ev", d, NULL, on_done, &e), 0);
    json_decref(d);
    assert_true(run_until(&e.done, 1, 5000));
    assert_int_equal(e.err, 0);
    call_clear(&e);
}

static void settle_request(svc *s, int id, const char *how, const char *want) {
    static call c; /* request() clears it */
    request(s->cli, "settle_req", json_pack("{s:i,s:s}", "id", id, "how", how), NULL, &c);
    expect_one(&c);
    assert_string_equal(json_string_value(json_array_get(c.values, 0)), want);
    call_clear(&c);
}

/* Settling proved at the broker: a requeued event and a requeued request come again (delivery count 2, the
 * redelivered flag where the transport has one); what was acked, nacked without requeue or rejected does
 * not come again, neither to the same server nor, after it closed, to the next server of the same
 * destination (which gets what is sent after: every partition's, on Kafka, since 8 records in a row go round
 * the 4 partitions). */
static svc SS;
static void case_settle_redelivery(void **st) {
    if (!(FX.t->flags & CONF_SETTLES)) {
        print_message("skipped: settling is a documented no-op on this transport\n");
        skip();
    }
    settle_up(&SS);
    settle_emit(&SS, 1, "ack");
    settle_emit(&SS, 2, "reject");
    settle_emit(&SS, 3, "requeue");
    settle_emit(&SS, 4, "nack");
    settle_request(&SS, 5, "requeue", "requeue");
    assert_true(run_until(&SS.stotal, 7, 10000)); /* 5 deliveries, and 2 again */
    int want[] = {0, 1, 1, 2, 1, 2};
    for (int id = 1; id <= 5; id++) {
        if (SS.sseen[id] != want[id]) print_error("delivery %d seen %d times\n", id, SS.sseen[id]);
        assert_int_equal(SS.sseen[id], want[id]);
    }
    for (int id = 3; id <= 5; id += 2) {
        assert_int_equal(SS.scount[id], 2); /* the second delivery */
        if (FX.t->flags & CONF_REDELIVERED_CTX) assert_int_equal(SS.sredelivered[id], 1);
    }
    settle_request(&SS, 6, "ack", "ack"); /* (a round trip after them: nothing more came meanwhile) */
    assert_int_equal(SS.stotal, 8);
    settle_down(&SS, 1);
    settle_up(&SS);
    for (int id = 8; id < 16; id++) settle_emit(&SS, id, "ack");
    for (int id = 16; id < 24; id++) settle_request(&SS, id, "ack", "ack");
    assert_true(run_until(&SS.stotal, 16, 10000));
    for (int id = 1; id <= 6; id++) {
        if (SS.sseen[id]) print_error("delivery %d came again to the next server\n", id);
        assert_int_equal(SS.sseen[id], 0);
    }
    assert_int_equal(SS.stotal, 16);
    settle_down(&SS, 0);
}

/* A kept event never settled: its server is freed with it (no leak under ASan/valgrind), its handle is
 * stale afterwards. A graceful close does not wait for it. */
static void case_kept_event_at_server_free(void **st) {
    if (FX.t->flags & CONF_NO_EVENTS) {
        print_message("skipped: no events on this transport (gRPC)\n");
        skip();
    }
    static call e;
    memset(&e, 0, sizeof e);
    json_t *d = json_pack("{s:b}", "forever", 1);
    assert_int_equal(nc_client_emit(S.cli, "keep", d, NULL, on_done, &e), 0);
    json_decref(d);
    assert_true(run_until(&S.kept_forever, 1, 5000));
    assert_true(run_until(&e.done, 1, 5000));
    call_clear(&e);
    nc_event *ev = S.kept[0];
    assert_non_null(nc_event_msg(ev)); /* kept: readable after its handler returned */
    assert_string_equal(nc_msg_route(nc_event_msg(ev)), "keep");
    int closed = 0;
    S.closing = 1;
    nc_server_close(S.srv, on_closed, &closed);
    assert_true(run_until(&closed, 1, 2000)); /* not held up by the kept event */
    svc_down(&S);
    assert_null(nc_event_msg(ev));
    assert_int_equal(nc_event_ack(ev), NC_ESTATE);
}

/* Headers and transport context as the handler sees them, and reply headers as the call sees them. The
 * client sends headers as a JSON object, so it cannot send a repeated name: the ordered list is checked
 * with distinct names (repeated names are the transport unit tests' business). */
typedef struct hcall {
    call c;
    int on_headers;
    json_t *got; /* what nc_call_header* gave, read in on_done */
} hcall;

static void hcall_on_headers(void *u, nc_call *cl) {
    ((hcall *)u)->on_headers++;
}

static nc_call *hcall_call; /* the call hcall_done reads */

static void hcall_done(void *u, int err, json_t *e) {
    hcall *h = u;
    json_t *got = json_object();
    size_t n = nc_call_header_count(hcall_call);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        size_t kl, vl;
        assert_int_equal(nc_call_header_at(hcall_call, i, &k, &kl, &v, &vl), 0);
        json_array_append_new(list, json_pack("[s#,s#]", k, kl, v, vl));
    }
    json_object_set_new(got, "list", list);
    size_t fl = 0;
    const char *f = nc_call_header(hcall_call, "x-reply", &fl);
    json_object_set_new(got, "first", f ? json_stringn(f, fl) : json_null());
    int code = -1;
    json_object_set_new(got, "status", json_integer(nc_call_status(hcall_call, &code, NULL)));
    json_object_set_new(got, "trailer", json_boolean(nc_call_trailer(hcall_call, "x", NULL) != NULL));
    h->got = got;
    on_done(&h->c, err, e);
}

/* A list of [name, value] without the transport's own headers (CONF_TRANSPORT_HEADERS), in place. */
static void drop_transport_headers(json_t *list) {
    const char *prefix = fx_transport_header_prefix();
    if (!(FX.t->flags & CONF_TRANSPORT_HEADERS) || !list) return;
    for (size_t i = json_array_size(list); i-- > 0;)
        if (!strncmp(json_string_value(json_array_get(json_array_get(list, i), 0)), prefix, strlen(prefix)))
            json_array_remove(list, i);
}

static void case_headers_and_context(void **st) {
    static hcall hc;
    memset(&hc, 0, sizeof hc);
    json_t *h = json_pack("{s:s,s:s,s:s}", "x-trace", "t-1", "x-version", "1.0.0", "x-more", "m");
    nc_call_opts o = {.headers = h};
    nc_call_cbs cbs = {.on_value = on_value, .on_done = hcall_done, .on_headers = hcall_on_headers};
    assert_int_equal(client_call(S.cli, "hdrs", NULL, &o, &cbs, &hc, &hcall_call), 0);
    json_decref(h);
    assert_true(run_until(&hc.c.done, 1, 5000));
    expect_one(&hc.c);
    json_t *r = json_array_get(hc.c.values, 0);
    assert_int_equal(json_integer_value(json_object_get(r, "hrc")), 0); /* reply headers: never an error */
    assert_int_equal(json_integer_value(json_object_get(r, "num_rc")), NC_ENOENT);
    assert_int_equal(json_integer_value(json_object_get(r, "part_rc")),
                     (FX.t->flags & CONF_PARTITION_CTX) ? 0 : NC_ENOENT);
    assert_int_equal(json_integer_value(json_object_get(r, "nul")), 0);
    json_t *list = json_object_get(r, "list");
    size_t nlist = json_array_size(list);
    drop_transport_headers(list);
    drop_transport_headers(json_object_get(hc.got, "list"));
    if (FX.t->flags & CONF_HEADERS) {
        /* every header sent, in a list of [name, value] (the client sends them in its object's order) */
        assert_int_equal(json_integer_value(json_object_get(r, "count")), nlist);
        assert_int_equal(json_array_size(list), 3);
        json_t *want = json_pack("{s:s,s:s,s:s}", "x-trace", "t-1", "x-version", "1.0.0", "x-more", "m");
        size_t i;
        json_t *kv;
        json_array_foreach(list, i, kv) {
            const char *k = json_string_value(json_array_get(kv, 0));
            assert_non_null(json_object_get(want, k));
            assert_string_equal(json_string_value(json_array_get(kv, 1)),
                                json_string_value(json_object_get(want, k)));
            json_object_del(want, k); /* each once */
        }
        assert_int_equal(json_object_size(want), 0);
        json_decref(want);
        assert_string_equal(json_string_value(json_object_get(r, "first")), "t-1");
        /* reply headers reach the call, in order, the repeated name twice; no status or trailers */
        assert_int_equal(hc.on_headers, 1);
        int table = !!(FX.t->flags & CONF_HEADER_TABLE);
        json_t *wantl =
            table ? json_pack("[[s,s],[s,s]]", "x-reply", "r2", "x-bytes", "a: b")
                  : json_pack("[[s,s],[s,s],[s,s]]", "x-reply", "r1", "x-reply", "r2", "x-bytes", "a: b");
        json_t *gotl = json_object_get(hc.got, "list");
        if (!json_equal(gotl, wantl)) {
            char *g = json_dumps(hc.got, 0);
            print_error("reply headers: %s\n", g);
            free(g);
        }
        assert_true(json_equal(gotl, wantl));
        json_decref(wantl);
        assert_string_equal(json_string_value(json_object_get(hc.got, "first")), table ? "r2" : "r1");
    } else {
        assert_int_equal(json_integer_value(json_object_get(r, "count")), 0);
        assert_int_equal(json_array_size(list), 0);
        assert_true(json_is_null(json_object_get(r, "first")));
        assert_int_equal(hc.on_headers, 0);
        assert_int_equal(json_array_size(json_object_get(hc.got, "list")), 0);
        assert_true(json_is_null(json_object_get(hc.got, "first")));
    }
    /* no status on these; gRPC's is there: OK */
    assert_int_equal(json_integer_value(json_object_get(hc.got, "status")),
                     (FX.t->flags & CONF_STATUS_ERRORS) ? 1 : 0);
    assert_false(json_is_true(json_object_get(hc.got, "trailer")));
    if (FX.t->flags & CONF_SUBJECT_CTX) {
        assert_string_equal(json_string_value(json_object_get(r, "subject")), "hdrs");
        const char *rto = json_string_value(json_object_get(r, "reply_to"));
        assert_non_null(rto);
        assert_true(strlen(rto) > 0 && strcmp(rto, "hdrs") != 0);
    } else if (FX.t->flags & CONF_REPLY_TO_CTX) {
        assert_true(json_is_null(json_object_get(r, "subject")));
        const char *rto = json_string_value(json_object_get(r, "reply_to"));
        assert_non_null(rto);
        assert_true(strlen(rto) > 0 && strcmp(rto, "hdrs") != 0);
    } else {
        assert_true(json_is_null(json_object_get(r, "subject")));
        assert_true(json_is_null(json_object_get(r, "reply_to")));
    }
    json_decref(hc.got);
    call_clear(&hc.c);
    /* after on_done the call is stale */
    assert_null(nc_call_header(hcall_call, "x-reply", NULL));
    assert_int_equal(nc_call_header_count(hcall_call), 0);
    assert_int_equal(nc_call_status(hcall_call, NULL, NULL), NC_ESTATE);
}

/* ---- the call object ---- */

static nc_call *cancel_on_value_call;
static void on_value_cancel(void *u, json_t *v) {
    on_value(u, v);
    assert_int_equal(nc_call_cancel(cancel_on_value_call), 0);
    assert_int_equal(nc_call_cancel(cancel_on_value_call), NC_ESTATE); /* done already */
}

static void case_call_object(void **st) {
    static call c;
    nc_call_cbs cbs = {.on_value = on_value, .on_done = on_done};
    nc_call *cl = NULL;
    /* a request */
    memset(&c, 0, sizeof c);
    json_t *d = json_pack("{s:i}", "a", 1);
    /* gRPC: writing needs the call on the wire (a queued call's write is NC_ECONNCLOSED, docs/grpc.md) */
    if (FX.t->flags & CONF_WRITE_STATE) barrier(S.cli);
    assert_int_equal(client_call(S.cli, "echo", d, NULL, &cbs, &c, &cl), 0);
    assert_non_null(cl);
    /* no request streams on these transports; on gRPC none on this method: the request was the stream */
    assert_int_equal(nc_call_write(cl, d), (FX.t->flags & CONF_WRITE_STATE) ? NC_ESTATE : NC_EUNSUPPORTED);
    assert_int_equal(nc_call_end(cl), 0); /* the request was the whole stream */
    assert_int_equal(nc_call_end(cl), NC_ESTATE);
    assert_true(run_until(&c.done, 1, 5000));
    expect_one(&c);
    assert_true(json_equal(json_array_get(c.values, 0), d));
    json_decref(d);
    call_clear(&c);
    /* stale once done */
    assert_int_equal(nc_call_cancel(cl), NC_ESTATE);
    assert_int_equal(nc_call_write(cl, NULL), NC_ESTATE);
    assert_int_equal(nc_call_end(cl), NC_ESTATE);
    assert_null(nc_call_header(cl, "x", NULL));
    /* a stream */
    memset(&c, 0, sizeof c);
    json_t *n = json_integer(3);
    assert_int_equal(client_call(S.cli, "count", n, NULL, &cbs, &c, NULL), 0);
    json_decref(n);
    assert_true(run_until(&c.done, 1, 5000));
    assert_int_equal(c.err, 0);
    assert_int_equal(nvalues(&c), 3);
    call_clear(&c);
    /* a remote error */
    memset(&c, 0, sizeof c);
    assert_int_equal(client_call(S.cli, "fail_msg", NULL, NULL, &cbs, &c, NULL), 0);
    assert_true(run_until(&c.done, 1, 5000));
    assert_int_equal(c.err, NC_EREMOTE);
    assert_string_equal(error_message(c.error), "boom");
    call_clear(&c);
    /* a timeout */
    memset(&c, 0, sizeof c);
    int ms = 200 * time_factor();
    nc_call_opts o = {.timeout_ms = ms};
    uint64_t t0 = now_ms();
    assert_int_equal(client_call(S.cli, "park", NULL, &o, &cbs, &c, &cl), 0);
    assert_true(run_until(&c.done, 1, 5000));
    assert_int_equal(c.err, NC_ETIMEDOUT);
    assert_true(now_ms() - t0 + 5 >= (uint64_t)ms);
    assert_int_equal(nc_call_cancel(cl), NC_ESTATE);
    assert_true(run_until(&S.nparked, 1, 5000)); /* (Kafka: the first record of a route may come later) */
    if (FX.t->flags & CONF_TIMEOUT_CANCELS) {
        assert_true(run_until(&S.cancelled, 1, 5000)); /* the deadline cancelled it on the server */
    } else {
        nc_request *r = take_parked(&S);
        assert_non_null(r);
        assert_int_equal(reply(r, json_string("too late")), 0);
    }
    barrier(S.cli);
    assert_int_equal(c.done, 1);
    assert_int_equal(nvalues(&c), 0);
    call_clear(&c);
}

/* Cancelling a call: on_done once, at once, with NC_ECANCELED; the server's later replies are dropped. */
static void case_call_cancel(void **st) {
    static call c;
    nc_call_cbs cbs = {.on_value = on_value, .on_done = on_done};
    /* after sending, before any reply: the server holds the request until the case answers it */
    memset(&c, 0, sizeof c);
    nc_call *cl;
    assert_int_equal(client_call(S.cli, "park", NULL, NULL, &cbs, &c, &cl), 0);
    assert_true(run_until(&S.nparked, 1, 5000)); /* the server has it */
    assert_int_equal(nc_call_cancel(cl), 0);
    assert_int_equal(c.done, 1); /* at once */
    assert_int_equal(c.err, NC_ECANCELED);
    assert_int_equal(nc_call_cancel(cl), NC_ESTATE);
    nc_request *r = take_parked(&S);
    assert_non_null(r);
    assert_int_equal(reply(r, json_string("late")), 0); /* the server's late reply ... */
    barrier(S.cli);
    assert_int_equal(c.done, 1); /* ... is dropped */
    assert_int_equal(nvalues(&c), 0);
    call_clear(&c);
    /* from on_value: the first of four values (each its own packet) */
    memset(&c, 0, sizeof c);
    nc_call_cbs cb2 = {.on_value = on_value_cancel, .on_done = on_done};
    json_t *n = json_integer(4);
    tickers_done = 0;
    assert_int_equal(client_call(S.cli, "count_slowly", n, NULL, &cb2, &c, &cancel_on_value_call), 0);
    json_decref(n);
    assert_true(run_until(&c.done, 1, 5000));
    assert_int_equal(c.err, NC_ECANCELED);
    assert_int_equal(nvalues(&c), 1);
    assert_true(run_until(&tickers_done, 1, 5000)); /* the stream goes on to its end on the server */
    barrier(S.cli);
    assert_int_equal(c.done, 1); /* ... nothing more reached the cancelled call */
    assert_int_equal(nvalues(&c), 1);
    call_clear(&c);
    /* cancelling before the server has it at all, right after the call */
    memset(&c, 0, sizeof c);
    assert_int_equal(client_call(S.cli, "echo", NULL, NULL, &cbs, &c, &cl), 0);
    assert_int_equal(nc_call_cancel(cl), 0);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.err, NC_ECANCELED);
    barrier(S.cli);
    assert_int_equal(c.done, 1);
    assert_int_equal(nvalues(&c), 0);
    call_clear(&c);
}

/* ---- connections and wire bytes (nestc/metrics.h): counted where every transport's sockets are ---------
 * read and written, so one case checks them on each transport: a client's connections open and close,
 * and the bytes on the wire of both sides are at least the payloads that crossed and grow with traffic. */

static nc_metrics_wire wire_of(nc_metrics *m, nc_hook_side side) {
    nc_metrics_wire w;
    assert_int_equal(nc_metrics_wire_totals(m, side, &w), 0);
    return w;
}

static void case_wire_counters(void **st) {
    enum { N = 3, PAYLOAD = 1000 };
    nc_metrics *m;
    assert_int_equal(nc_metrics_new(&m, NULL), 0);
    assert_true(nc_metrics_watch_server(m, S.srv) > 0);
    nc_client *cli = kept_client(fx_client_new(S.srv, 0, NULL));
    assert_true(nc_metrics_watch_client(m, cli) > 0);
    nc_metrics_wire s0 = wire_of(m, NC_HOOK_SERVER), c0 = wire_of(m, NC_HOOK_CLIENT);
    assert_int_equal(c0.opened, 0); /* a client connects on its first call */
    char *text = malloc(PAYLOAD + 1);
    memset(text, 'x', PAYLOAD);
    text[PAYLOAD] = 0;
    static call c;                                          /* request_within() clears it */
    nc_call_opts o = {.timeout_ms = 20000 * time_factor()}; /* Kafka: a new client's reply consumer joins */
    for (int i = 0; i < N; i++) {
        request_within(cli, "echo", json_string(text), &o, &c, 20000);
        expect_one(&c);
        call_clear(&c);
    }
    free(text);
    nc_metrics_wire s1 = wire_of(m, NC_HOOK_SERVER), c1 = wire_of(m, NC_HOOK_CLIENT);
    assert_true(c1.opened >= 1);
    assert_true(c1.connections >= 1);
    assert_true(c1.bytes_out - c0.bytes_out >= N * PAYLOAD); /* the requests */
    assert_true(c1.bytes_in > c0.bytes_in);                  /* the replies */
    assert_true(s1.connections >= 1);
    assert_true(s1.bytes_in - s0.bytes_in >= N * PAYLOAD);   /* the requests reached the server */
    assert_true(s1.bytes_out - s0.bytes_out >= N * PAYLOAD); /* and went back */
    char *prom;
    assert_int_equal(nc_metrics_prometheus(m, NULL, &prom, NULL), 0);
    char want[96];
    snprintf(want, sizeof want, "nestc_server_wire_received_bytes_total{transport=\"%s\"} ", FX.t->scheme);
    assert_non_null(strstr(prom, want));
    free(prom);
    free_client(cli); /* its figures stay readable */
    nc_metrics_wire c2 = wire_of(m, NC_HOOK_CLIENT);
    assert_int_equal(c2.connections, 0);
    assert_int_equal(c2.closed, c2.opened);
    if (FX.t->flags & CONF_CONNECTED) { /* the server sees the caller's connection close */
        uint64_t t0 = now_ms();
        int never = 0;
        while (wire_of(m, NC_HOOK_SERVER).connections != s1.connections - 1 &&
               now_ms() - t0 < 5000u * (uint64_t)time_factor())
            run_until(&never, 1, 10);
        nc_metrics_wire s2 = wire_of(m, NC_HOOK_SERVER);
        assert_int_equal(s2.connections, s1.connections - 1);
        assert_int_equal(s2.closed, s1.closed + 1);
    }
    nc_metrics_free(m);
}

int conf_run(void) {
#define CASE(f) cmocka_unit_test_setup_teardown(f, case_setup, case_teardown)
    const struct CMUnitTest cases[] = {
        CASE(case_request_string_pattern),
        CASE(case_request_object_pattern),
        CASE(case_stream),
        CASE(case_stream_over_loop_turns),
        CASE(case_stream_then_error),
        CASE(case_stream_empty),
        CASE(case_reply_undefined),
        CASE(case_remote_error_object),
        CASE(case_remote_error_msg),
        CASE(case_remote_error_other_values),
        CASE(case_events_several_handlers),
        CASE(case_event_to_message_handler),
        CASE(case_request_to_event_pattern),
        CASE(case_unknown_pattern_request),
        CASE(case_unknown_pattern_event),
        CASE(case_headers),
        CASE(case_metadata),
        CASE(case_request_timeout),
        CASE(case_cancel_on_client_close),
        CASE(case_concurrent_requests),
        CASE(case_large_payload),
        CASE(case_unicode),
        CASE(case_shutdown_with_pending_request),
        CASE(case_broadcast_two_servers),
        CASE(case_broker_restart),
        CASE(case_broker_credentials),
        CASE(case_finish_twice),
        CASE(case_threadsafe_after_finish),
        CASE(case_settle_request),
        CASE(case_settle_kept_event),
        CASE(case_settle_redelivery),
        CASE(case_kept_event_at_server_free),
        CASE(case_headers_and_context),
        CASE(case_call_object),
        CASE(case_call_cancel),
        CASE(case_wire_counters),
    };
#undef CASE
    const char *only = getenv("NESTC_CONF_CASES"); /* a glob of case names, e.g. "case_stream*" */
    if (only && *only) cmocka_set_test_filter(only);
    char name[64];
    snprintf(name, sizeof name, "conformance.%s", FX.t->name);
    return cmocka_run_group_tests_name(name, cases, NULL, group_teardown);
}
