/* RabbitMQ topology options and dead-lettering against a real rabbitmq-server (its own, or NESTC_RMQ_URL's):
 * a fanout exchange with two servers bound (each gets every request and event; the caller takes the first
 * reply) and exchangeArguments declared alike on both sides; a client's routingKey binding of its queue in
 * default mode; wildcards (`*` and `#` handlers matched, the concrete routing key in the context); and
 * the maxDeliveries recipe on quorum queues: a message nacked with requeue reaches the dead-letter queue
 * after exactly maxDeliveries deliveries (counted by the handler, once in the DLQ, nothing left behind), a
 * rejected one at once, one returned by a server that went away unsettled past the limit is rejected
 * before any handler sees it, and a handler's own limit. Every name is unique to the case and run. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "broker_harness.h"
#include "rabbit_harness.h"

#define AMQP_FIXTURE_NAME "test_amqp_topology"
#include "amqp_fixture.h"

static unsigned run_id;

/* amqp://…?<query> with %s replaced by this run's id (names never meet between cases and runs) */
static const char *rurl(char *buf, size_t len, const char *query_fmt) {
    char q[600], id[32];
    snprintf(id, sizeof id, "%d_%u", (int)getpid(), run_id);
    const char *p = query_fmt;
    size_t o = 0;
    for (; *p && o < sizeof q - 40; p++) {
        if (p[0] == '%' && p[1] == 's') {
            o += (size_t)snprintf(q + o, sizeof q - o, "%s", id);
            p++;
        } else {
            q[o++] = *p;
        }
    }
    q[o] = '\0';
    int n = snprintf(buf, len, "%s%s", R.url, strchr(R.url, '?') ? "&" : "?");
    if (n > 0 && (size_t)n < len) memcpy(buf + n, q, strlen(q) + 1 < len - (size_t)n ? strlen(q) + 1 : 0);
    return buf;
}

static json_t *ask(nc_client *c, const char *route, json_t *data) {
    return ask_opts(c, route, data, NULL);
}

static void emit_ok(nc_client *c, const char *route) {
    call e = {0};
    assert_int_equal(nc_client_emit(c, route, NULL, NULL, on_done, &e), 0);
    assert_true(run_until_ms(&e.done, 1, 10000));
    if (e.err) fprintf(stderr, "emit %s failed: %d %s\n", route, e.err, e.msg);
    assert_int_equal(e.err, 0);
    call_clear(&e);
}

/* a short wait for something that must not happen */
static void settle_time(void) {
    int never = 0;
    run_until_ms(&never, 1, 300);
}

/* ---- fanout ------------------------------------------------------------------------------------------- */

typedef struct who {
    const char *name;
    int events, requests;
    char rk[64];
} who;

static void h_whoami(nc_request *req, const nc_msg *m, void *u) {
    who *w = u;
    w->requests++;
    size_t n;
    const char *rk = nc_msg_ctx_str(m, NC_CTX_ROUTING_KEY, &n);
    snprintf(w->rk, sizeof w->rk, "%.*s", rk ? (int)n : 0, rk ? rk : "");
    nc_reply(req, json_string(w->name));
}
static void ev_whoami(const nc_msg *m, void *u) {
    (void)m;
    ((who *)u)->events++;
}

/* exchangeType=fanout with exchange: each server declares the exchange (with exchangeArguments) and binds
 * its own queue with an empty key; the client declares the exchange alike and publishes to it. */
static void test_fanout(void **st) {
    (void)st;
    /* alternate-exchange as the exchange argument: the client's declaration must carry the same table, or
     * the broker refuses it (PRECONDITION_FAILED, inequivalent arg) */
    const char *common =
        "exchange=nestc_fan_%s&exchangeType=fanout&exchangeArguments=%7B%22alternate-exchange%22%"
        "3A%22nestc_ae_%s%22%7D";
    char q1[300], q2[300], u1[700], u2[700], uc[700];
    snprintf(q1, sizeof q1, "queue=nestc_fan1_%%s&%s", common);
    snprintf(q2, sizeof q2, "queue=nestc_fan2_%%s&%s", common);
    rurl(u1, sizeof u1, q1);
    rurl(u2, sizeof u2, q2);
    rurl(uc, sizeof uc, q1);
    who w1 = {.name = "s1"}, w2 = {.name = "s2"};
    srv_st s1 = {0}, s2 = {0};
    nc_server *a = server_new(u1, &s1), *b = server_new(u2, &s2);
    assert_int_equal(nc_server_message(a, "who", h_whoami, &w1), 0);
    assert_int_equal(nc_server_event(a, "hit", ev_whoami, &w1), 0);
    assert_int_equal(nc_server_message(b, "who", h_whoami, &w2), 0);
    assert_int_equal(nc_server_event(b, "hit", ev_whoami, &w2), 0);
    listen_until_connected(a, &s1);
    listen_until_connected(b, &s2);
    nc_client *c = client_new(uc, 0, NULL);
    emit_ok(c, "hit");
    assert_true(run_until_ms(&w1.events, 1, 10000));
    assert_true(run_until_ms(&w2.events, 1, 10000));
    /* both answer; the caller takes the first reply (the second's id is no longer pending) */
    json_t *r = ask(c, "who", NULL);
    assert_true(!strcmp(json_string_value(r), "s1") || !strcmp(json_string_value(r), "s2"));
    json_decref(r);
    assert_true(run_until_ms(&w1.requests, 1, 10000));
    assert_true(run_until_ms(&w2.requests, 1, 10000));
    assert_string_equal(w1.rk, "who"); /* the pattern is the routing key (NestJS) */
    assert_string_equal(w2.rk, "who");
    settle_time();
    assert_int_equal(w1.events + w2.events, 2);
    assert_int_equal(w1.requests + w2.requests, 2);
    nc_client_free(c);
    /* another exchange table for the same exchange: refused by the broker */
    char ub[700];
    rurl(ub, sizeof ub, "queue=nestc_fan1_%s&exchange=nestc_fan_%s&exchangeType=fanout");
    c = client_new(ub, 0, NULL);
    call k = {0};
    assert_int_equal(nc_client_emit(c, "hit", NULL, NULL, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 10000));
    assert_int_not_equal(k.err, 0);
    assert_non_null(strstr(k.msg, "PRECONDITION_FAILED"));
    call_clear(&k);
    nc_client_free(c);
    nc_server_free(a);
    nc_server_free(b);
}

/* Default mode with exchange and routingKey on the client: it binds its queue to that exchange with that
 * key (NestJS's ClientRMQ), so what is published there with the key reaches the queue's server. */
static void test_client_binding(void **st) {
    (void)st;
    char us[400], ut[400], ub[400];
    rurl(us, sizeof us, "queue=nestc_cb_%s");
    rurl(ut, sizeof ut, "queue=nestc_cb_%s&wildcards=true&exchange=nestc_cbx_%s");
    rurl(ub, sizeof ub, "queue=nestc_cb_%s&exchange=nestc_cbx_%s&routingKey=k.x");
    who w = {.name = "s"};
    srv_st ss = {0};
    nc_server *srv = server_new(us, &ss);
    assert_int_equal(nc_server_event(srv, "k.x", ev_whoami, &w), 0);
    listen_until_connected(srv, &ss);
    /* the topic exchange (declared by a wildcards client), nothing bound yet: routed nowhere */
    nc_client *topic = client_new(ut, 0, NULL);
    emit_ok(topic, "k.x");
    /* the binding client: its event goes straight to the queue, and its connection bound the queue */
    nc_client *binder = client_new(ub, 0, NULL);
    emit_ok(binder, "k.x");
    assert_true(run_until_ms(&w.events, 1, 10000));
    settle_time();
    assert_int_equal(w.events, 1);
    emit_ok(topic, "k.x");
    assert_true(run_until_ms(&w.events, 2, 10000));
    nc_client_free(binder);
    nc_client_free(topic);
    nc_server_free(srv);
}

/* wildcards: `*` and `#` handlers reached through the topic exchange, the concrete routing key in the
 * context and as the channel, the handler's route as nc_msg_route. */
static void h_wild(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    size_t n;
    const char *rk = nc_msg_ctx_str(m, NC_CTX_ROUTING_KEY, &n);
    nc_reply(req, json_pack("{s:s,s:s%,s:s}", "route", nc_msg_route(m), "rk", rk ? rk : "", rk ? n : 0,
                            "channel", nc_msg_channel(m) ? nc_msg_channel(m) : ""));
}

static void test_wildcards_context(void **st) {
    (void)st;
    char u[400];
    rurl(u, sizeof u, "queue=nestc_wild_%s&wildcards=true");
    srv_st ss = {0};
    nc_server *srv = server_new(u, &ss);
    assert_int_equal(nc_server_message(srv, "sensors.*", h_wild, NULL), 0);
    assert_int_equal(nc_server_message(srv, "logs.#", h_wild, NULL), 0);
    listen_until_connected(srv, &ss);
    nc_client *c = client_new(u, 0, NULL);
    json_t *r = ask(c, "sensors.kitchen", NULL);
    assert_string_equal(json_string_value(json_object_get(r, "route")), "sensors.*");
    assert_string_equal(json_string_value(json_object_get(r, "rk")), "sensors.kitchen");
    assert_string_equal(json_string_value(json_object_get(r, "channel")), "sensors.kitchen");
    json_decref(r);
    r = ask(c, "logs.app.error", NULL);
    assert_string_equal(json_string_value(json_object_get(r, "route")), "logs.#");
    assert_string_equal(json_string_value(json_object_get(r, "rk")), "logs.app.error");
    json_decref(r);
    r = ask(c, "logs", NULL); /* # is zero or more words */
    assert_string_equal(json_string_value(json_object_get(r, "route")), "logs.#");
    assert_string_equal(json_string_value(json_object_get(r, "rk")), "logs");
    json_decref(r);
    nc_client_free(c);
    nc_server_free(srv);
}

/* ---- queue arguments ----------------------------------------------------------------------------------- */

static void h_pong(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    nc_reply(req, json_string("pong"));
}

/* Declared again by a client: the same table given as named options or as queueArguments (a named option
 * wins over the same key there, as in amqplib) is accepted; another value is PRECONDITION_FAILED. A
 * queueArguments that is not a JSON object is refused when the server is made. */
static void test_queue_arguments(void **st) {
    (void)st;
    char us[600], u[600];
    rurl(us, sizeof us,
         "queue=nestc_qa_%s&maxPriority=5&messageTtl=60000&queueArguments=%7B%22x-max-length%22%3A100%7D");
    srv_st ss = {0};
    nc_server *srv = server_new(us, &ss);
    assert_int_equal(nc_server_message(srv, "ping", h_pong, NULL), 0);
    listen_until_connected(srv, &ss);
    static const char *const same[] = {
        "queue=nestc_qa_%s&maxPriority=5&messageTtl=60000&queueArguments=%7B%22x-max-length%22%3A100%7D",
        /* all three in queueArguments, 100.0 an integer as JSON.parse makes it */
        "queue=nestc_qa_%s&queueArguments=%7B%22x-max-priority%22%3A5%2C%22x-message-ttl%22%3A60000%2C%22x-"
        "max-"
        "length%22%3A100.0%7D",
        /* maxPriority overrides the 9 of queueArguments */
        "queue=nestc_qa_%s&maxPriority=5&maxLength=100&queueArguments=%7B%22x-max-priority%22%3A9%2C%22x-"
        "message-"
        "ttl%22%3A60000%7D",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        nc_client *c = client_new(rurl(u, sizeof u, same[i]), 0, NULL);
        json_t *r = ask(c, "ping", NULL);
        assert_string_equal(json_string_value(r), "pong");
        json_decref(r);
        nc_client_free(c);
    }
    nc_client *c = client_new(
        rurl(
            u, sizeof u,
            "queue=nestc_qa_%s&maxPriority=6&messageTtl=60000&queueArguments=%7B%22x-max-length%22%3A100%7D"),
        0, NULL);
    call k = {0};
    call_wait(c, "ping", &k);
    assert_int_not_equal(k.err, 0);
    assert_non_null(strstr(k.msg, "PRECONDITION_FAILED"));
    assert_non_null(strstr(k.msg, "x-max-priority"));
    call_clear(&k);
    nc_client_free(c);
    nc_server_free(srv);
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    nc_server *bad = NULL;
    assert_int_equal(nc_server_new(&bad, rurl(u, sizeof u, "queue=nestc_qa_%s&queueArguments=%5B1%5D"), &o),
                     NC_EINVAL);
    assert_null(bad);
}

/* ---- dead-lettering: maxDeliveries on a quorum queue ------------------------------------------------------
 */

/* The work queue: a quorum queue whose own delivery limit (10) is only the backstop, dead-lettering to
 * nestc_dlx_<id> with key "dead"; the DLQ is bound there by its own server (exchange + routingKey). */
#define WORK_Q(T)                                                                                            \
    "queue=nestc_work" T "_%s&deadLetterExchange=nestc_dlx" T                                                \
    "_%s&deadLetterRoutingKey=dead&queueArguments=%7B%22x-"                                                  \
    "queue-type%22%3A%22quorum%22%2C%22x-delivery-limit%22%3A10%7D"
#define DLQ_Q(T) "queue=nestc_dlq" T "_%s&exchange=nestc_dlx" T "_%s&exchangeType=direct&routingKey=dead"

#define MAXN 16
typedef struct tally {
    int n;              /* deliveries the handler saw */
    int64_t seen[MAXN]; /* NC_CTX_DELIVERY_COUNT of each (0: absent) */
    int how; /* what the handler does: 0 nack with requeue, 1 reject, 2 keep unsettled from `hold` on */
    int hold;
} tally;

static void ev_tally(const nc_msg *m, void *u) {
    tally *t = u;
    int64_t c = 0;
    nc_msg_ctx_int(m, NC_CTX_DELIVERY_COUNT, &c);
    if (t->n < MAXN) t->seen[t->n] = c;
    t->n++;
    nc_event *e = nc_event_keep(m);
    if (t->how == 1)
        nc_event_reject(e);
    else if (t->how == 2 && c >= t->hold)
        return; /* never settled: the server goes away with it */
    else
        nc_event_nack(e, true);
}

static void ev_count(const nc_msg *m, void *u) {
    (void)m;
    ((tally *)u)->n++;
}

/* A handler that always nacks with requeue: with maxDeliveries=3 the message is delivered exactly 3 times
 * (counts 1, 2, 3) and then dead-lettered once; a reject goes to the DLQ at once; a handler's own
 * maxDeliveries (2) wins over the server's; nothing stays in the work queue (its server, still consuming,
 * gets nothing more). */
static void test_max_deliveries(void **st) {
    (void)st;
    char ud[400], uw[600], uc[600];
    rurl(ud, sizeof ud, DLQ_Q("m"));
    rurl(uw, sizeof uw, WORK_Q("m") "&noAck=false&maxDeliveries=3");
    rurl(uc, sizeof uc, WORK_Q("m"));
    tally dl_poison = {0}, dl_refuse = {0}, dl_own = {0};
    srv_st sd = {0}, sw = {0};
    nc_server *dlq = server_new(ud, &sd);
    assert_int_equal(nc_server_event(dlq, "poison", ev_count, &dl_poison), 0);
    assert_int_equal(nc_server_event(dlq, "refuse", ev_count, &dl_refuse), 0);
    assert_int_equal(nc_server_event(dlq, "own", ev_count, &dl_own), 0);
    listen_until_connected(dlq, &sd);
    tally poison = {.how = 0}, refuse = {.how = 1}, own = {.how = 0};
    nc_server *work = server_new(uw, &sw);
    assert_int_equal(nc_server_event(work, "poison", ev_tally, &poison), 0);
    assert_int_equal(nc_server_event(work, "refuse", ev_tally, &refuse), 0);
    nc_option o2[] = {{"maxDeliveries", "2"}};
    nc_handler_opts ho = NC_HANDLER_OPTS_INIT;
    ho.options = o2;
    ho.noptions = 1;
    assert_int_equal(nc_server_event_opts(work, "own", &ho, ev_tally, &own), 0);
    listen_until_connected(work, &sw);
    nc_client *c = client_new(uc, 0, NULL); /* declares the same quorum queue: the same arguments */
    emit_ok(c, "poison");
    emit_ok(c, "refuse");
    emit_ok(c, "own");
    assert_true(run_until_ms(&dl_poison.n, 1, 10000));
    assert_true(run_until_ms(&dl_refuse.n, 1, 10000));
    assert_true(run_until_ms(&dl_own.n, 1, 10000));
    settle_time();
    assert_int_equal(poison.n, 3);
    assert_int_equal(poison.seen[0], 1);
    assert_int_equal(poison.seen[1], 2);
    assert_int_equal(poison.seen[2], 3);
    assert_int_equal(refuse.n, 1);
    assert_int_equal(refuse.seen[0], 1);
    assert_int_equal(own.n, 2);
    assert_int_equal(own.seen[1], 2);
    assert_int_equal(dl_poison.n + dl_refuse.n + dl_own.n, 3);
    nc_client_free(c);
    nc_server_free(work);
    nc_server_free(dlq);
}

/* A server that goes away with a delivery unsettled (as a process that dies would): the broker returns it
 * and counts the return. The next server, with maxDeliveries=3, gets it as delivery 4 and rejects it
 * without dispatching it: it ends in the DLQ, its handler never sees it. */
static void test_over_limit_rejected_unseen(void **st) {
    (void)st;
    char ud[400], uw0[600], uw[600], uc[600];
    rurl(ud, sizeof ud, DLQ_Q("c"));
    rurl(uw0, sizeof uw0, WORK_Q("c") "&noAck=false");
    rurl(uw, sizeof uw, WORK_Q("c") "&noAck=false&maxDeliveries=3");
    rurl(uc, sizeof uc, WORK_Q("c"));
    tally dl = {0};
    srv_st sd = {0}, s0 = {0}, s1 = {0};
    nc_server *dlq = server_new(ud, &sd);
    assert_int_equal(nc_server_event(dlq, "crash", ev_count, &dl), 0);
    listen_until_connected(dlq, &sd);
    tally first = {.how = 2, .hold = 3}, second = {.how = 0};
    nc_server *w0 = server_new(uw0, &s0);
    assert_int_equal(nc_server_event(w0, "crash", ev_tally, &first), 0);
    listen_until_connected(w0, &s0);
    nc_client *c = client_new(uc, 0, NULL);
    emit_ok(c, "crash");
    assert_true(run_until_ms(&first.n, 3, 10000)); /* nacked twice, then held */
    nc_server_free(w0);
    nc_server *w1 = server_new(uw, &s1);
    assert_int_equal(nc_server_event(w1, "crash", ev_tally, &second), 0);
    listen_until_connected(w1, &s1);
    assert_true(run_until_ms(&dl.n, 1, 10000));
    settle_time();
    assert_int_equal(first.n, 3);
    assert_int_equal(second.n, 0);
    assert_int_equal(dl.n, 1);
    nc_client_free(c);
    nc_server_free(w1);
    nc_server_free(dlq);
}

/* A classic queue's retry loop: the work queue dead-letters (default exchange) to a retry queue whose TTL
 * dead-letters back to the work queue. NC_CTX_DELIVERY_COUNT counts the rounds from x-death: a handler
 * that rejects its first delivery sees the message again as delivery 2. */
static void ev_retry(const nc_msg *m, void *u) {
    tally *t = u;
    int64_t c = 0;
    nc_msg_ctx_int(m, NC_CTX_DELIVERY_COUNT, &c);
    if (t->n < MAXN) t->seen[t->n] = c;
    t->n++;
    nc_event *e = nc_event_keep(m);
    if (c < 2)
        nc_event_reject(e);
    else
        nc_event_ack(e);
}

static void test_classic_retry_count(void **st) {
    (void)st;
    char uw[400], ur[400];
    rurl(uw, sizeof uw, "queue=nestc_cw_%s&deadLetterExchange=&deadLetterRoutingKey=nestc_cr_%s&noAck=false");
    rurl(ur, sizeof ur,
         "queue=nestc_cr_%s&messageTtl=20&deadLetterExchange=&deadLetterRoutingKey=nestc_cw_%s");
    tally t = {0};
    srv_st sw = {0};
    nc_server *w = server_new(uw, &sw);
    assert_int_equal(nc_server_event(w, "retry", ev_retry, &t), 0);
    listen_until_connected(w, &sw);
    /* published into the retry queue (which this client declares): it expires into the work queue */
    nc_client *c = client_new(ur, 0, NULL);
    emit_ok(c, "retry");
    assert_true(run_until_ms(&t.n, 2, 10000));
    settle_time();
    assert_int_equal(t.n, 2);
    assert_int_equal(t.seen[0], 1);
    assert_int_equal(t.seen[1], 2);
    nc_client_free(c);
    nc_server_free(w);
}

/* ---- main ---------------------------------------------------------------------------------------------- */

static int setup(void **st) {
    (void)st;
    amqp_loop_begin();
    run_id = (unsigned)(uv_hrtime() & 0xffffff);
    rabbit_start(&R, time_factor());
    return 0;
}

int main(void) {
    AMQP_FIXTURE_NEED_RABBIT();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_arguments),     cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_client_binding),      cmocka_unit_test(test_wildcards_context),
        cmocka_unit_test(test_max_deliveries),      cmocka_unit_test(test_over_limit_rejected_unseen),
        cmocka_unit_test(test_classic_retry_count),
    };
    return amqp_fixture_run(tests, setup, amqp_fixture_teardown);
}
