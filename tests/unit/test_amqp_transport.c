/* What is RabbitMQ's own, against a real rabbitmq-server (started here with its own epmd on free loopback
 * ports in a temporary directory, stopped by PID; NESTC_RMQ_URL names a shared one instead): request and
 * reply correlated by correlationId, the AMQP properties and headers in the handler's context, events
 * completed by the publisher confirm, settling with noAck=false (ack, nack with requeue → redelivered,
 * reject), the no-handler reply, a queue declared with other arguments, a broker restart. What every
 * transport does is in tests/conformance. Skipped when rabbitmq-server is not installed. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "broker_harness.h"
#include "rabbit_harness.h"

#define AMQP_FIXTURE_NAME "test_amqp_transport"
#include "amqp_fixture.h"

/* A queue name of this run: tests and runs sharing a broker never meet. */
static const char *qurl(char *buf, size_t len, const char *tag, const char *extra) {
    snprintf(buf, len, "%s%squeue=nestc_%s_%d_%u%s%s", R.url, strchr(R.url, '?') ? "&" : "?", tag,
             (int)getpid(), (unsigned)(uv_hrtime() & 0xffffff), extra && *extra ? "&" : "",
             extra ? extra : "");
    return buf;
}

/* The context and headers a handler sees. */
static void h_ctx(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    json_t *o = json_object();
    size_t n;
    const char *v;
    if ((v = nc_msg_ctx_str(m, NC_CTX_CORRELATION_ID, &n)))
        json_object_set_new(o, "corr", json_stringn(v, n));
    if ((v = nc_msg_ctx_str(m, NC_CTX_REPLY_TO, &n))) json_object_set_new(o, "reply_to", json_stringn(v, n));
    if ((v = nc_msg_ctx_str(m, NC_CTX_ROUTING_KEY, &n))) json_object_set_new(o, "rk", json_stringn(v, n));
    if ((v = nc_msg_ctx_str(m, NC_CTX_EXCHANGE, &n))) json_object_set_new(o, "exchange", json_stringn(v, n));
    if ((v = nc_msg_ctx_str(m, NC_CTX_CONSUMER_TAG, &n))) json_object_set_new(o, "ctag", json_stringn(v, n));
    int64_t x;
    if (!nc_msg_ctx_int(m, NC_CTX_DELIVERY_TAG, &x)) json_object_set_new(o, "dtag", json_integer(x));
    if (!nc_msg_ctx_int(m, NC_CTX_REDELIVERED, &x)) json_object_set_new(o, "redelivered", json_integer(x));
    if ((v = nc_msg_header(m, "x-trace", &n))) json_object_set_new(o, "trace", json_stringn(v, n));
    if ((v = nc_msg_header(m, "x-num", &n))) json_object_set_new(o, "num", json_stringn(v, n));
    nc_reply(req, o);
}

static int srv_events;
static json_t *srv_last_event;
static void ev_note_rmq(const nc_msg *m, void *u) {
    (void)u;
    srv_events++;
    json_decref(srv_last_event);
    srv_last_event = json_incref(nc_msg_data(m));
}

/* Request/reply, the context of a delivery, headers, an event completed by its confirm, the no-handler
 * reply. */
static void test_request_reply(void **st) {
    (void)st;
    char u[400];
    qurl(u, sizeof u, "rr", NULL);
    srv_st ss = {0};
    nc_server *srv = server_new(u, &ss);
    assert_int_equal(nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL), 0);
    assert_int_equal(nc_server_message(srv, "ctx", h_ctx, NULL), 0);
    assert_int_equal(nc_server_event(srv, "note", ev_note_rmq, NULL), 0);
    listen_until_connected(srv, &ss);
    nc_client *c = client_new(u, 0, NULL);
    json_t *r = ask_opts(c, "{\"cmd\":\"sum\"}", json_pack("[i,i,i]", 1, 2, 3), NULL);
    assert_int_equal(json_integer_value(r), 6);
    json_decref(r);
    json_t *h = json_pack("{s:s}", "x-trace", "t-1");
    nc_call_opts co = {.headers = h};
    r = ask_opts(c, "ctx", NULL, &co);
    json_decref(h);
    const char *q = strstr(u, "queue=") + 6;
    assert_string_equal(json_string_value(json_object_get(r, "rk")), q);
    assert_string_equal(json_string_value(json_object_get(r, "exchange")), "");
    assert_string_equal(json_string_value(json_object_get(r, "trace")), "t-1");
    assert_non_null(strstr(json_string_value(json_object_get(r, "reply_to")), "amq.rabbitmq.reply-to."));
    assert_int_equal(strlen(json_string_value(json_object_get(r, "corr"))) > 0, 1);
    assert_int_equal(json_integer_value(json_object_get(r, "redelivered")), 0);
    assert_true(json_integer_value(json_object_get(r, "dtag")) >= 1);
    json_decref(r);
    /* an event completes once the broker confirmed it */
    call e = {0};
    json_t *ann = json_pack("{s:s}", "name", "Ann");
    assert_int_equal(nc_client_emit(c, "note", ann, NULL, on_done, &e), 0);
    json_decref(ann);
    assert_true(run_until_ms(&e.done, 1, 10000));
    assert_int_equal(e.err, 0);
    assert_true(run_until_ms(&srv_events, 1, 10000));
    assert_string_equal(json_string_value(json_object_get(srv_last_event, "name")), "Ann");
    /* unknown pattern: NestJS's no-handler error */
    call k = {0};
    call_wait(c, "nope", &k);
    assert_int_not_equal(k.err, 0);
    assert_non_null(strstr(k.msg, "There is no matching message handler"));
    call_clear(&k);
    call_clear(&e);
    srv_events = 0;
    nc_client_free(c);
    nc_server_free(srv);
}

/* noAck=false: a request nacked with requeue comes back redelivered; a rejected event is not redelivered;
 * an unknown request gets the no-handler reply and is not redelivered either. */
static int flaky_seen, rej_seen;
static void h_flaky(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    flaky_seen++;
    int64_t red = 0;
    nc_msg_ctx_int(m, NC_CTX_REDELIVERED, &red);
    if (!red) {
        nc_request_nack(req, true);
        nc_reply_error(req, json_string("again")); /* the caller's first answer (replies are independent) */
        return;
    }
    nc_request_ack(req);
    nc_reply(req, json_pack("{s:I}", "redelivered", (json_int_t)red));
}
static void ev_rej(const nc_msg *m, void *u) {
    (void)u;
    rej_seen++;
    nc_event *e = nc_event_keep(m);
    nc_event_reject(e);
}

static void test_settle(void **st) {
    (void)st;
    char u[400];
    qurl(u, sizeof u, "settle", "noAck=false&prefetchCount=5");
    srv_st ss = {0};
    nc_server *srv = server_new(u, &ss);
    assert_int_equal(nc_server_message(srv, "flaky", h_flaky, NULL), 0);
    assert_int_equal(nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL), 0);
    assert_int_equal(nc_server_event(srv, "rej", ev_rej, NULL), 0);
    listen_until_connected(srv, &ss);
    nc_client *c = client_new(u, 0, NULL);
    /* the first delivery answers "again" and is requeued; the second is the redelivery */
    call k = {0};
    call_wait(c, "flaky", &k);
    assert_int_not_equal(k.err, 0);
    call_clear(&k);
    assert_true(run_until_ms(&flaky_seen, 2, 10000));
    call e = {0};
    assert_int_equal(nc_client_emit(c, "rej", NULL, NULL, on_done, &e), 0);
    assert_true(run_until_ms(&e.done, 1, 10000));
    assert_int_equal(e.err, 0);
    assert_true(run_until_ms(&rej_seen, 1, 10000));
    /* acked requests keep working, unknown ones get the no-handler reply */
    json_t *r = ask_opts(c, "{\"cmd\":\"sum\"}", json_pack("[i,i]", 2, 3), NULL);
    assert_int_equal(json_integer_value(r), 5);
    json_decref(r);
    call_wait(c, "nope", &k);
    assert_non_null(strstr(k.msg, "There is no matching message handler"));
    call_clear(&k);
    /* nothing comes back: the settled ones stay settled */
    int never = 0;
    run_until_ms(&never, 1, 300);
    assert_int_equal(flaky_seen, 2);
    assert_int_equal(rej_seen, 1);
    call_clear(&e);
    nc_client_free(c);
    nc_server_free(srv);
}

/* prefetchCount bounds the unsettled deliveries: a handler that answers at once but acks later holds the
 * rest of the queue back until it acks. */
static nc_request *held[8];
static int nheld;
static void h_hold(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    nc_request_settle_manually(req);
    held[nheld++ % 8] = req;
    nc_reply(req, json_true());
}

static void test_prefetch(void **st) {
    (void)st;
    char u[400];
    qurl(u, sizeof u, "prefetch", "noAck=false&prefetchCount=2");
    srv_st ss = {0};
    nc_server *srv = server_new(u, &ss);
    assert_int_equal(nc_server_message(srv, "hold", h_hold, NULL), 0);
    listen_until_connected(srv, &ss);
    nc_client *c = client_new(u, 0, NULL);
    call k[5];
    memset(k, 0, sizeof k);
    for (int i = 0; i < 5; i++)
        assert_int_equal(nc_client_send(c, "hold", NULL, NULL, on_value, on_done, &k[i]), 0);
    assert_true(run_until_ms(&nheld, 2, 10000));
    int never = 0;
    run_until_ms(&never, 1, 300); /* the broker sends no third one while two are unacknowledged */
    assert_int_equal(nheld, 2);
    for (int round = 0; nheld < 5 && round < 5; round++) {
        int had = nheld;
        for (int i = 0; i < had; i++)
            if (held[i]) nc_request_ack(held[i]), held[i] = NULL;
        assert_true(run_until_ms(&nheld, had + 1, 10000));
        run_until_ms(&never, 1, 100);
        assert_true(nheld <= had + 2);
    }
    assert_int_equal(nheld, 5);
    for (int i = 0; i < 5; i++) {
        if (held[i]) nc_request_ack(held[i]);
        assert_true(run_until_ms(&k[i].done, 1, 10000));
        assert_int_equal(k[i].err, 0);
        call_clear(&k[i]);
    }
    nc_client_free(c);
    nc_server_free(srv);
}

/* A queue declared with other arguments (durable vs not): the broker closes the channel
 * (PRECONDITION_FAILED) and the call says so. */
static void test_queue_mismatch(void **st) {
    (void)st;
    char u[400], u2[460];
    qurl(u, sizeof u, "mismatch", NULL);
    srv_st ss = {0};
    nc_server *srv = server_new(u, &ss);
    assert_int_equal(nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL), 0);
    listen_until_connected(srv, &ss);
    snprintf(u2, sizeof u2, "%s&durable=false", u);
    nc_client *c = client_new(u2, 0, NULL);
    call k = {0};
    call_wait(c, "{\"cmd\":\"sum\"}", &k);
    assert_int_not_equal(k.err, 0);
    if (!strstr(k.msg, "PRECONDITION_FAILED")) fprintf(stderr, "got: %s\n", k.msg);
    assert_non_null(strstr(k.msg, "PRECONDITION_FAILED"));
    call_clear(&k);
    nc_client_free(c);
    /* a server so configured says so with its status */
    srv_st s2 = {0};
    nc_server *bad = server_new(u2, &s2);
    assert_int_equal(nc_server_message(bad, "{\"cmd\":\"sum\"}", h_sum, NULL), 0);
    assert_int_equal(nc_server_listen(bad), 0);
    assert_true(run_until_ms(&s2.disconnected, 1, 10000));
    assert_int_equal(s2.err, NC_EPROTO);
    assert_int_equal(s2.connected, 0);
    nc_server_free(bad);
    nc_server_free(srv);
}

/* The broker restarts: server and client reconnect (the durable queue is still there) and work again. */
static void test_broker_restart(void **st) {
    (void)st;
    if (R.external) {
        skip();
        return;
    }
    char u[400];
    qurl(u, sizeof u, "restart", "heartbeat=1");
    srv_st ss = {0};
    nc_server *srv = server_new(u, &ss);
    assert_int_equal(nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL), 0);
    assert_int_equal(nc_server_message(srv, "sleep", h_sleep, NULL), 0);
    listen_until_connected(srv, &ss);
    cli_status cs = {0};
    nc_client *c = client_new(u, 0, &cs);
    json_t *r = ask_opts(c, "{\"cmd\":\"sum\"}", json_pack("[i,i]", 1, 1), NULL);
    assert_int_equal(json_integer_value(r), 2);
    json_decref(r);
    /* a request waiting on the direct reply-to consumer fails when the connection goes, not at its timeout */
    call k = {0};
    json_t *ms = json_integer(600000);
    nc_call_opts lo = {.timeout_ms = 600000};
    int started = sleeps_started;
    assert_int_equal(nc_client_send(c, "sleep", ms, &lo, on_value, on_done, &k), 0);
    json_decref(ms);
    assert_true(run_until_ms(&sleeps_started, started + 1, 10000));
    int was_connected = cs.connected; /* the first connection's status included */
    rabbit_stop(&R);
    assert_true(run_until_ms(&cs.reconnecting, 1, 10000));
    assert_true(run_until_ms(&k.done, 1, 5000));
    assert_int_equal(k.err, NC_ECONNLOST);
    call_clear(&k);
    rabbit_start(&R, time_factor());
    assert_true(run_until_ms(&ss.connected, 2, 60000));
    assert_true(run_until_ms(&cs.connected, was_connected + 1, 60000));
    r = ask_opts(c, "{\"cmd\":\"sum\"}", json_pack("[i,i]", 2, 2), NULL);
    assert_int_equal(json_integer_value(r), 4);
    json_decref(r);
    nc_client_free(c);
    cancel_sleeps();
    nc_server_free(srv);
}

/* amqps://: TLS from the first byte with the CA of the test certificates; without it the handshake fails. */
static void test_tls(void **st) {
    (void)st;
    if (!R.tls_url[0] || !R.certs[0]) {
        skip();
        return;
    }
    char ca[200];
    snprintf(ca, sizeof ca, "%s/ca.pem", R.certs);
    nc_tls_opts tls = {.ca_file = ca, .server_name = "localhost"};
    char u[400];
    snprintf(u, sizeof u, "%s?queue=nestc_tls_%d", R.tls_url, (int)getpid());
    nc_server_opts so = amqp_server_opts();
    so.tls = &tls;
    srv_st ss = {0};
    nc_server *srv = server_new_opts(u, &so, &ss);
    assert_int_equal(nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL), 0);
    listen_until_connected(srv, &ss);
    nc_client_opts co = {0};
    co.loop = &loop;
    co.log_level = NC_LOG_OFF;
    co.timeout_ms = 5000 * time_factor();
    co.tls = &tls;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, u, &co), 0);
    json_t *r = ask_opts(c, "{\"cmd\":\"sum\"}", json_pack("[i,i]", 20, 22), NULL);
    assert_int_equal(json_integer_value(r), 42);
    json_decref(r);
    nc_client_free(c);
    /* the system store does not trust the test CA */
    co.tls = NULL;
    assert_int_equal(nc_client_new(&c, u, &co), 0);
    call k = {0};
    call_wait(c, "{\"cmd\":\"sum\"}", &k);
    assert_int_equal(k.err, NC_ETLS);
    call_clear(&k);
    nc_client_free(c);
    nc_server_free(srv);
}

static int setup(void **st) {
    (void)st;
    amqp_loop_begin();
    if (!getenv("NESTC_RMQ_URL")) {
        const char *tmp = getenv("TMPDIR");
        snprintf(R.certs, sizeof R.certs, "%s/nestc-rmq-certs-XXXXXX",
                 tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        if (mkdtemp(R.certs)) {
            char cmd[400];
            snprintf(cmd, sizeof cmd, "bash '%s/tests/interop/gen-certs.sh' '%s' >/dev/null 2>&1",
                     NESTC_SOURCE_DIR, R.certs);
            if (system(cmd)) R.certs[0] = '\0'; /* no openssl: the TLS case is skipped */
        } else {
            R.certs[0] = '\0';
        }
    }
    rabbit_start(&R, time_factor());
    return 0;
}

static int teardown(void **st) {
    (void)st;
    rabbit_free(&R);
    if (R.certs[0] && !R.external) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", R.certs);
        if (system(cmd)) {
        }
    }
    int r = amqp_loop_end();
    json_decref(srv_last_event);
    return r;
}

int main(void) {
    AMQP_FIXTURE_NEED_RABBIT();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_reply),  cmocka_unit_test(test_settle),
        cmocka_unit_test(test_prefetch),       cmocka_unit_test(test_queue_mismatch),
        cmocka_unit_test(test_broker_restart), cmocka_unit_test(test_tls),
    };
    return amqp_fixture_run(tests, setup, teardown);
}
