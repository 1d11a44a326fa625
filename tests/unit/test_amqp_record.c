/* The RabbitMQ message properties (NestJS RmqRecord options) against a real rabbitmq-server (started here
 * with its own epmd on free loopback ports in a temporary directory, stopped by PID; NESTC_RMQ_URL names a
 * shared one instead): per-call and client-wide priority, expiration, messageId, timestamp, type,
 * contentType, contentEncoding, appId, userId, persistent and headers as a nestc handler's context, a
 * call's values over the client's, invalid values refused naming the option, and a user-id the broker
 * refuses (the call fails, the client comes back). Skipped when
 * rabbitmq-server is not installed. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "broker_harness.h"
#include "rabbit_harness.h"

#define AMQP_FIXTURE_NAME "test_amqp_record"
#include "amqp_fixture.h"

/* A queue name of this run: tests and runs sharing a broker never meet. */
static const char *qurl(char *buf, size_t len, const char *tag) {
    snprintf(buf, len, "%s%squeue=nestc_%s_%d_%u", R.url, strchr(R.url, '?') ? "&" : "?", tag, (int)getpid(),
             (unsigned)(uv_hrtime() & 0xffffff));
    return buf;
}

/* The properties a handler sees in its context, as a JSON object (absent keys left out). */
static json_t *ctx_props(const nc_msg *m) {
    static const struct {
        nc_ctx_key key;
        const char *name;
    } strs[] =
        {
            {NC_CTX_MESSAGE_ID, "messageId"},
            {NC_CTX_EXPIRATION, "expiration"},
            {NC_CTX_TYPE, "type"},
            {NC_CTX_APP_ID, "appId"},
            {NC_CTX_USER_ID, "userId"},
            {NC_CTX_CONTENT_TYPE, "contentType"},
            {NC_CTX_CONTENT_ENCODING, "contentEncoding"},
        },
      nums[] = {
          {NC_CTX_PRIORITY, "priority"},
          {NC_CTX_DELIVERY_MODE, "deliveryMode"},
          {NC_CTX_TIMESTAMP_MS, "timestampMs"},
      };
    json_t *o = json_object();
    size_t n;
    const char *v;
    int64_t x;
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if ((v = nc_msg_ctx_str(m, strs[i].key, &n)))
            json_object_set_new(o, strs[i].name, json_stringn(v, n));
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++)
        if (!nc_msg_ctx_int(m, nums[i].key, &x)) json_object_set_new(o, nums[i].name, json_integer(x));
    json_t *h = nc_msg_headers(m);
    if (h) json_object_set(o, "headers", h);
    return o;
}

static void h_props(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    nc_reply(req, ctx_props(m));
}

static int got_events;
static json_t *last_event;
static void ev_props(const nc_msg *m, void *u) {
    (void)u;
    got_events++;
    json_decref(last_event);
    last_event = ctx_props(m);
}

static nc_server *serve(const char *u, srv_st *st) {
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.shutdown_timeout_ms = 500;
    nc_server *srv;
    assert_int_equal(nc_server_new(&srv, u, &o), 0);
    nc_server_on_status(srv, on_srv_status, st);
    assert_int_equal(nc_server_message(srv, "props", h_props, NULL), 0);
    assert_int_equal(nc_server_event(srv, "note", ev_props, NULL), 0);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&st->connected, 1, 20000));
    return srv;
}

static nc_client *client_with(const char *u, const nc_option *opts, size_t n, const json_t *headers) {
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.options = opts;
    o.noptions = n;
    o.headers = headers;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, u, &o), 0);
    return c;
}

static json_t *ask(nc_client *c, const nc_option *opts, size_t n, const json_t *headers) {
    nc_call_opts co = NC_CALL_OPTS_INIT;
    co.options = opts;
    co.noptions = n;
    co.headers = headers;
    call k = {0};
    assert_int_equal(nc_client_send(c, "props", NULL, &co, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 10000));
    if (k.err) fprintf(stderr, "call failed: %d %s\n", k.err, k.msg);
    assert_int_equal(k.err, 0);
    json_t *v = json_incref(k.last);
    call_clear(&k);
    return v;
}

static const char *str_of(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "(absent)";
}

static long long int_of(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* A call's options arrive as the delivery's properties; the client's fill what the call leaves; the
 * call's headers are merged over the client's. */
static void test_call_options(void **st) {
    (void)st;
    char u[400];
    qurl(u, sizeof u, "rec");
    srv_st ss = {0};
    nc_server *srv = serve(u, &ss);
    nc_option copts[] = {{"appId", "nestc-test"}, {"type", "client-type"}, {"persistent", "true"}};
    json_t *ch = json_pack("{s:s,s:s}", "x-a", "client", "x-c", "c");
    nc_client *c = client_with(u, copts, 3, ch);
    json_decref(ch);
    /* without call options: the client's */
    json_t *r = ask(c, NULL, 0, NULL);
    assert_string_equal(str_of(r, "appId"), "nestc-test");
    assert_string_equal(str_of(r, "type"), "client-type");
    assert_int_equal(int_of(r, "deliveryMode"), 2);
    assert_int_equal(int_of(r, "priority"), -1);
    assert_null(json_object_get(r, "messageId"));
    assert_null(json_object_get(r, "expiration"));
    assert_string_equal(str_of(json_object_get(r, "headers"), "x-a"), "client");
    json_decref(r);
    /* every property per call; the call's type and persistent over the client's */
    int own_login = strchr(R.url, '@') == NULL; /* guest, the harness's broker */
    nc_option o[] = {
        {"priority", "3"},
        {"expiration", "60000"},
        {"messageId", "m-1"},
        {"timestamp", "1700000000"},
        {"type", "call-type"},
        {"contentType", "application/json"},
        {"contentEncoding", "identity"},
        {"persistent", "false"},
        {"userId", "guest"},
    };
    json_t *h = json_pack("{s:s,s:s}", "x-a", "call", "x-b", "b");
    r = ask(c, o, own_login ? 9 : 8, h);
    json_decref(h);
    assert_int_equal(int_of(r, "priority"), 3);
    assert_string_equal(str_of(r, "expiration"), "60000");
    assert_string_equal(str_of(r, "messageId"), "m-1");
    assert_int_equal(int_of(r, "timestampMs"), 1700000000000LL);
    assert_string_equal(str_of(r, "type"), "call-type");
    assert_string_equal(str_of(r, "appId"), "nestc-test");
    assert_string_equal(str_of(r, "contentType"), "application/json");
    assert_string_equal(str_of(r, "contentEncoding"), "identity");
    assert_int_equal(int_of(r, "deliveryMode"), 1);
    if (own_login) assert_string_equal(str_of(r, "userId"), "guest");
    json_t *rh = json_object_get(r, "headers");
    assert_string_equal(str_of(rh, "x-a"), "call"); /* the call's wins (NestJS mergeHeaders) */
    assert_string_equal(str_of(rh, "x-b"), "b");
    assert_string_equal(str_of(rh, "x-c"), "c");
    /* in NestJS's order, {...client's, ...call's}: x-a, x-c, x-b */
    const char *order[3], *k;
    size_t i = 0;
    json_t *hv;
    json_object_foreach(rh, k, hv) if (i < 3) order[i++] = k;
    assert_int_equal(i, 3);
    assert_string_equal(order[0], "x-a");
    assert_string_equal(order[1], "x-c");
    assert_string_equal(order[2], "x-b");
    json_decref(r);
    /* an event carries them too */
    nc_option eo[] = {{"priority", "7"}, {"messageId", "ev-1"}};
    nc_call_opts co = NC_CALL_OPTS_INIT;
    co.options = eo;
    co.noptions = 2;
    call e = {0};
    assert_int_equal(nc_client_emit(c, "note", NULL, &co, on_done, &e), 0);
    assert_true(run_until_ms(&e.done, 1, 10000));
    assert_int_equal(e.err, 0);
    assert_true(run_until_ms(&got_events, 1, 10000));
    assert_int_equal(int_of(last_event, "priority"), 7);
    assert_string_equal(str_of(last_event, "messageId"), "ev-1");
    assert_string_equal(str_of(last_event, "type"), "client-type");
    call_clear(&e);
    nc_client_free(c);
    nc_server_free(srv);
}

/* Values the protocol or the option table cannot take are refused, naming the option; the client goes on
 * working. */
static void test_invalid(void **st) {
    (void)st;
    char u[400], err[300];
    qurl(u, sizeof u, "inv");
    srv_st ss = {0};
    nc_server *srv = serve(u, &ss);
    nc_client *c = client_with(u, NULL, 0, NULL);
    /* out of the option's range: refused when the call is made */
    nc_option bad[] = {{"priority", "256"}};
    nc_call_opts co = NC_CALL_OPTS_INIT;
    co.options = bad;
    co.noptions = 1;
    call k = {0};
    assert_int_equal(nc_client_send(c, "props", NULL, &co, on_value, on_done, &k), NC_EINVAL);
    assert_int_equal(nc_options_check("amqp", NC_OPT_CALL, bad, 1, err, sizeof err), NC_EINVAL);
    assert_non_null(strstr(err, "priority"));
    nc_option neg[] = {{"expiration", "-1"}};
    assert_int_equal(nc_options_check("amqp", NC_OPT_CALL, neg, 1, err, sizeof err), NC_EINVAL);
    assert_non_null(strstr(err, "expiration"));
    /* nestc's own properties are not options; messageId is per call only */
    nc_option corr[] = {{"correlationId", "x"}};
    assert_int_equal(nc_options_check("amqp", NC_OPT_CALL, corr, 1, err, sizeof err), NC_EINVAL);
    nc_option mid[] = {{"messageId", "x"}};
    assert_int_equal(nc_options_check("amqp", NC_OPT_CLIENT, mid, 1, err, sizeof err), NC_EINVAL);
    /* over a short string's 255 bytes: the call fails with NC_EINVAL naming the option */
    char longv[300];
    memset(longv, 'm', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    nc_option lm[] = {{"messageId", longv}};
    co.options = lm;
    assert_int_equal(nc_client_send(c, "props", NULL, &co, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 10000));
    assert_int_equal(k.err, NC_EINVAL);
    assert_non_null(strstr(k.msg, "messageId"));
    call_clear(&k);
    /* and client-wide, when the client is made */
    nc_option la[] = {{"appId", longv}};
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.options = la;
    o.noptions = 1;
    nc_client *bad_c = NULL;
    int r = nc_client_new(&bad_c, u, &o);
    if (!r) { /* created lazily: the first call meets it */
        memset(&k, 0, sizeof k);
        assert_int_equal(nc_client_send(bad_c, "props", NULL, NULL, on_value, on_done, &k), 0);
        assert_true(run_until_ms(&k.done, 1, 10000));
        r = k.err;
        call_clear(&k);
        nc_client_free(bad_c);
    }
    assert_int_equal(r, NC_EINVAL);
    /* the first client still works */
    json_t *v = ask(c, NULL, 0, NULL);
    assert_int_equal(int_of(v, "deliveryMode"), 1);
    json_decref(v);
    nc_client_free(c);
    nc_server_free(srv);
}

/* A user-id that is not the login's: RabbitMQ closes the channel (406 PRECONDITION_FAILED); the call fails
 * and the client reconnects and works again. */
static void test_foreign_user(void **st) {
    (void)st;
    char u[400];
    qurl(u, sizeof u, "usr");
    srv_st ss = {0};
    nc_server *srv = serve(u, &ss);
    nc_client *c = client_with(u, NULL, 0, NULL);
    json_t *v = ask(c, NULL, 0, NULL); /* connected */
    json_decref(v);
    nc_option o[] = {{"userId", "someone-else"}};
    nc_call_opts co = NC_CALL_OPTS_INIT;
    co.options = o;
    co.noptions = 1;
    call k = {0};
    assert_int_equal(nc_client_send(c, "props", NULL, &co, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 10000));
    assert_int_equal(k.err, NC_ECONNLOST); /* its reply consumer went with the connection */
    call_clear(&k);
    /* back once reconnected */
    int err = -1;
    for (int i = 0; i < 100 && err; i++) {
        memset(&k, 0, sizeof k);
        assert_int_equal(nc_client_send(c, "props", NULL, NULL, on_value, on_done, &k), 0);
        assert_true(run_until_ms(&k.done, 1, 10000));
        err = k.err;
        call_clear(&k);
        int never = 0;
        if (err) run_until_ms(&never, 1, 100);
    }
    assert_int_equal(err, 0);
    nc_client_free(c);
    nc_server_free(srv);
}

static int teardown(void **st) {
    (void)st;
    rabbit_free(&R);
    int r = amqp_loop_end();
    json_decref(last_event);
    return r;
}

int main(void) {
    AMQP_FIXTURE_NEED_RABBIT();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_options),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_foreign_user),
    };
    return amqp_fixture_run(tests, amqp_fixture_setup, teardown);
}
