/* What is Redis's own, against a real redis-server (started here on a free loopback port in a temporary
 * directory, stopped by PID): reply-channel subscriptions counted and dropped, foreign messages, wildcards,
 * AUTH + SELECT, refusals (ACL), and Redis's reconnection rules without client retries. What every
 * transport does (requests, streams, errors, events, unknown patterns, timeouts, cancellation, broadcast
 * to two servers, a broker restart with client retries ...) is in tests/conformance, run on redis:// and
 * rediss:// too. Skipped when redis-server is not installed. */
#include <hiredis/hiredis.h>

#include "broker_harness.h"

static void broker_exec(const broker *b, const char *port) {
    const char *argv[16] = {"redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "",
                            "--appendonly", "no",     "--dir",     "."};
    int n = 11;
    if (b->pass[0]) argv[n++] = "--requirepass", argv[n++] = b->pass;
    argv[n] = NULL;
    execvp("redis-server", (char **)argv);
}

/* A side channel to Redis (hiredis, blocking) for checks and for publishing foreign messages. */
static long long numsub(broker *b, const char *channel) {
    redisContext *c = redisConnect("127.0.0.1", b->port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, "PUBSUB NUMSUB %s", channel);
    assert_non_null(r);
    long long n = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1]->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* Waits until `channel` has `want` subscribers (Redis handles an UNSUBSCRIBE a moment after the reply
 * that led to it); returns whether it got there within ms × the time factor. */
static int numsub_becomes(broker *b, const char *channel, long long want, int ms) {
    for (int waited = 0; numsub(b, channel) != want; waited += 10) {
        if (waited >= ms * time_factor()) return 0;
        run_ms(10);
    }
    return 1;
}

static void publish_raw(broker *b, const char *channel, const char *body, size_t len) {
    redisContext *c = redisConnect("127.0.0.1", b->port);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "PUBLISH %s %b", channel, body, len);
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
}

/* Runs an ACL command on the side channel (arguments without spaces). */
static void acl(broker *b, const char *cmd) {
    redisContext *c = redisConnect("127.0.0.1", b->port);
    assert_non_null(c);
    redisReply *r = redisCommand(c, cmd);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redisFree(c);
}

static char url[128];
static broker B;

/* ---- tests
 * ------------------------------------------------------------------------------------------------- */

/* many calls on one reply channel: subscribed once, dropped when nothing is pending */
static void test_reply_subscriptions(void **st) {
    svc s;
    svc_start(&s, url);
    nc_client *c = client_new(url, 0, NULL);
    enum { N = 50 };
    call calls[N];
    memset(calls, 0, sizeof calls);
    json_t *d = json_pack("[i,i,i]", 1, 2, 3);
    for (int i = 0; i < N; i++)
        assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &calls[i]), 0);
    json_decref(d);
    for (int i = 0; i < N; i++) {
        assert_true(run_until_ms(&calls[i].done, 1, 3000));
        assert_int_equal(calls[i].err, 0);
        call_clear(&calls[i]);
    }
    /* nothing pending: the reply channel is unsubscribed again */
    assert_true(numsub_becomes(&B, "{\"cmd\":\"sum\"}.reply", 0, 3000));
    /* the server's subscriptions: one each */
    assert_int_equal(numsub(&B, "{\"cmd\":\"sum\"}"), 1);
    /* while a call is pending, its reply channel is subscribed (once) */
    call slow = {0};
    json_t *ms = json_integer(3000);
    int started = sleeps_started;
    assert_int_equal(nc_client_send(c, "sleep", ms, NULL, on_value, on_done, &slow), 0);
    json_decref(ms);
    assert_true(run_until_ms(&sleeps_started, started + 1, 3000)); /* the server has it */
    assert_int_equal(numsub(&B, "sleep.reply"), 1);
    nc_client_free(c); /* fails it */
    call_clear(&slow);
    svc_stop(&s);
}

/* a call nobody can answer (nobody subscribed: PUBLISH reached 0 subscribers) fails at once with
 * NC_ENOHANDLER, not at its timeout, and its reply channel is dropped */
static void test_unknown_pattern_drops_reply_channel(void **st) {
    svc s;
    svc_start(&s, url);
    nc_client *c = client_new(url, 0, NULL);
    call k = {0};
    nc_call_opts co = {0};
    co.timeout_ms = 5000;
    assert_int_equal(nc_client_send(c, "nobody", NULL, &co, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 3000)); /* before the timeout */
    assert_int_equal(k.err, NC_ENOHANDLER);
    assert_true(numsub_becomes(&B, "nobody.reply", 0, 3000));
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
}

static void test_foreign_messages(void **st) {
    svc s;
    svc_start(&s, url);
    /* not JSON: NestJS uses the raw string as the data of an event for the channel */
    publish_raw(&B, "note", "plain text", 10);
    assert_true(run_until_ms(&s.events, 1, 3000));
    assert_string_equal(json_string_value(s.last_event), "plain text");
    /* JSON without pattern/data: the whole body is the data */
    publish_raw(&B, "note", "{\"x\":1}", 7);
    assert_true(run_until_ms(&s.events, 2, 3000));
    assert_int_equal(json_integer_value(json_object_get(s.last_event, "x")), 1);
    /* invalid UTF-8: Node's Redis client decodes it with U+FFFD, JSON.parse fails, the raw string is the
     * data */
    publish_raw(&B, "note", "\xff\xfe", 2);
    assert_true(run_until_ms(&s.events, 3, 3000));
    assert_string_equal(json_string_value(s.last_event), "\xef\xbf\xbd\xef\xbf\xbd");
    nc_client *c = client_new(url, 0, NULL);
    call k = {0};
    json_t *d = json_pack("[i]", 5);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k), 0);
    json_decref(d);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_int_equal(json_integer_value(k.last), 5);
    assert_int_equal(s.events, 3);
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
}

static void test_wildcards(void **st) {
    char wurl[160];
    snprintf(wurl, sizeof wurl, "%s?wildcards=true", url);
    svc s;
    svc_start(&s, wurl);
    /* a foreign message on a channel that is not UTF-8 (Redis channels are bytes): Node decodes the channel
     * with U+FFFD; it used to fail the dispatch (json_string refused the channel) */
    publish_raw(&B, "sensors.\xff", "plain", 5);
    assert_true(run_until_ms(&s.wheres, 1, 3000));
    assert_string_equal(s.last_channel, "sensors.\xef\xbf\xbd");
    nc_client *c = client_new(url, 0, NULL);
    call k = {0};
    assert_int_equal(nc_client_send(c, "sensors.kitchen", NULL, NULL, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_int_equal(k.err, 0);
    /* dispatched on the glob, answered on the concrete channel's reply channel */
    assert_string_equal(json_string_value(json_object_get(k.last, "channel")), "sensors.kitchen");
    assert_string_equal(json_string_value(json_object_get(k.last, "route")), "sensors.*");
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
}

static void test_auth_and_db(void **st) {
    broker p = {0};
    snprintf(p.pass, sizeof p.pass, "s3cret");
    broker_start(&p);
    char good[128], bad[128];
    snprintf(good, sizeof good, "redis://:s3cret@127.0.0.1:%d/3", p.port);
    snprintf(bad, sizeof bad, "redis://:wrong@127.0.0.1:%d", p.port);
    svc s;
    svc_start(&s, good);
    nc_client *c = client_new(good, 0, NULL);
    call k = {0};
    json_t *d = json_pack("[i,i]", 2, 2);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_int_equal(json_integer_value(k.last), 4);
    call_clear(&k);
    nc_client_free(c);
    /* a wrong password: the call fails with the broker's reason */
    c = client_new(bad, 0, NULL);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_int_equal(k.err, NC_EAUTH);
    assert_non_null(strstr(k.msg, "WRONGPASS"));
    call_clear(&k);
    nc_client_free(c);
    /* no password where one is needed: Redis answers the SUBSCRIBE with NOAUTH, the call fails at once */
    snprintf(bad, sizeof bad, "redis://127.0.0.1:%d", p.port);
    c = client_new(bad, 0, NULL);
    nc_call_opts forever = {0};
    forever.timeout_ms = NC_LIMIT_OFF;
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, &forever, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 2000));
    assert_int_equal(k.err, NC_EAUTH);
    assert_non_null(strstr(k.msg, "NOAUTH"));
    call_clear(&k);
    nc_client_free(c);
    json_decref(d);
    svc_stop(&s);
    broker_free(&p);
}

/* retry_attempts = 0 (NestJS's default): a lost connection fails pending calls with "Connection closed";
 * the next call connects again. */
static void test_restart_without_retries(void **st) {
    svc s;
    svc_start(&s, url);
    nc_client *c = client_new(url, 0, NULL);
    call slow = {0}, after = {0};
    json_t *ms = json_integer(3000);
    int started = sleeps_started;
    assert_int_equal(nc_client_send(c, "sleep", ms, NULL, on_value, on_done, &slow), 0);
    json_decref(ms);
    assert_true(run_until_ms(&sleeps_started, started + 1, 3000)); /* the server has it */
    broker_stop(&B);
    assert_true(run_until_ms(&slow.done, 1, 3000));
    assert_int_equal(slow.err, NC_ECONNCLOSED);
    assert_string_equal(slow.msg, "Connection closed");
    broker_start(&B);
    assert_true(run_until_ms(&s.connected, 2, 5000));
    json_t *d = json_pack("[i,i]", 4, 5);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &after), 0);
    json_decref(d);
    assert_true(run_until_ms(&after.done, 1, 3000));
    assert_int_equal(after.err, 0);
    assert_int_equal(json_integer_value(after.last), 9);
    call_clear(&slow);
    call_clear(&after);
    nc_client_free(c);
    svc_stop(&s);
}

/* the broker stays down: the client gives up after its attempts and fails the pending call */
static void test_retries_exhausted(void **st) {
    svc s;
    svc_start(&s, url);
    cli_status cs = {0};
    nc_client *c = client_new(url, 2, &cs);
    call slow = {0};
    json_t *ms = json_integer(5000);
    nc_call_opts co = {0};
    co.timeout_ms = 10000 * time_factor();
    int started = sleeps_started;
    assert_int_equal(nc_client_send(c, "sleep", ms, &co, on_value, on_done, &slow), 0);
    json_decref(ms);
    assert_true(run_until_ms(&sleeps_started, started + 1, 3000)); /* the server has it */
    broker_stop(&B);
    assert_true(run_until_ms(&slow.done, 1, 5000));
    assert_int_equal(slow.err, NC_ECONNCLOSED);
    assert_true(cs.reconnecting >= 1);
    assert_true(cs.disconnected >= 1);
    call_clear(&slow);
    nc_client_free(c);
    svc_stop(&s);
    broker_start(&B);
}

/* ---- refusals: Redis answers a SUBSCRIBE or a PUBLISH with NOPERM / NOAUTH ---------------------------- */

/* Issue: a refused subscription was only logged; the call waited for its timeout (forever without one)
 * and the server logged each refusal and served nothing, "connected". Now each error reply meets its
 * command: the calls fail at once with NC_EAUTH and Redis's words, without a timeout too; a refused event
 * fails the emit; a server with every subscription refused is "disconnected" (NC_EAUTH), one log line. */
static void test_refused(void **st) {
    acl(&B, "ACL SETUSER nosub on >pw ~* &* +@all -subscribe -psubscribe");
    acl(&B, "ACL SETUSER nochan on >pw ~* resetchannels &other +@all");
    acl(&B, "ACL SETUSER nopub on >pw ~* &* +@all -publish");
    acl(&B, "ACL SETUSER partial on >pw ~* resetchannels &who &who.reply +@all");
    nc_call_opts forever = {0};
    forever.timeout_ms = NC_LIMIT_OFF;
    json_t *d = json_pack("[i,i]", 1, 2);
    char u[128];
    const char *refused_sub[2] = {"nosub", "nochan"};
    for (int i = 0; i < 2; i++) {
        snprintf(u, sizeof u, "redis://%s:pw@127.0.0.1:%d", refused_sub[i], B.port);
        nc_client *c = client_new(u, 0, NULL);
        call k[3] = {{0}};
        /* three concurrent calls on one reply channel, then one more after the refusal */
        for (int j = 0; j < 2; j++)
            assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, &forever, on_value, on_done, &k[j]),
                             0);
        assert_true(run_until_ms(&k[0].done, 1, 2000));
        assert_true(run_until_ms(&k[1].done, 1, 2000));
        assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, &forever, on_value, on_done, &k[2]), 0);
        assert_true(run_until_ms(&k[2].done, 1, 2000));
        for (int j = 0; j < 3; j++) {
            assert_int_equal(k[j].err, NC_EAUTH);
            assert_non_null(strstr(k[j].msg, "SUBSCRIBE {\"cmd\":\"sum\"}.reply"));
            assert_non_null(strstr(k[j].msg, "NOPERM"));
            call_clear(&k[j]);
        }
        assert_int_equal(nc_client_pending(c), 0);
        nc_client_free(c);
    }
    /* PUBLISH refused: the request and the event fail with Redis's words */
    snprintf(u, sizeof u, "redis://nopub:pw@127.0.0.1:%d", B.port);
    nc_client *c = client_new(u, 0, NULL);
    call k = {0}, ev = {0};
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, &forever, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 2000));
    assert_int_equal(k.err, NC_EAUTH);
    assert_non_null(strstr(k.msg, "PUBLISH to {\"cmd\":\"sum\"}"));
    assert_non_null(strstr(k.msg, "NOPERM"));
    assert_int_equal(nc_client_emit(c, "note", d, NULL, on_done, &ev), 0);
    assert_true(run_until_ms(&ev.done, 1, 2000));
    assert_int_equal(ev.err, NC_EAUTH);
    assert_non_null(strstr(ev.msg, "PUBLISH to note"));
    call_clear(&k);
    call_clear(&ev);
    nc_client_free(c);
    json_decref(d);
    /* a server whose every subscription is refused: disconnected, NC_EAUTH, one log line for three;
     * some refused: it serves the others (connected) and says which are not served, once */
    snprintf(u, sizeof u, "redis://nosub:pw@127.0.0.1:%d", B.port);
    expect_server_refused_all(u);
    snprintf(u, sizeof u, "redis://partial:pw@127.0.0.1:%d", B.port);
    expect_server_refused_some(u);
    /* UNSUBSCRIBE refused: the channel stays subscribed and the next call on it is answered (it was held
     * for ever, the refusal leaving the channel "in flight") */
    acl(&B, "ACL SETUSER nounsub on >pw ~* &* +@all -unsubscribe");
    svc s;
    svc_start(&s, url);
    snprintf(u, sizeof u, "redis://nounsub:pw@127.0.0.1:%d", B.port);
    c = client_new(u, 0, NULL);
    d = json_pack("[i,i]", 2, 3);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k), 0);
        assert_true(run_until_ms(&k.done, 1, 2000));
        assert_int_equal(k.err, 0);
        assert_int_equal(json_integer_value(k.last), 5);
        call_clear(&k);
    }
    json_decref(d);
    nc_client_free(c);
    svc_stop(&s);
}

static int setup(void **st) {
    if (system("command -v redis-server >/dev/null 2>&1") != 0) return 0;
    /* SIGPIPE keeps its default action: no write of the library may raise it (brokers get killed here) */
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    uv_loop_init(&loop);
    broker_start(&B);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", B.port);
    return 0;
}

static int teardown(void **st) {
    if (!B.port) return 0;
    uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks of what the tests freed */
    broker_free(&B);
    int r = uv_loop_close(&loop);
    if (r) uv_print_all_handles(&loop, stderr);
    return r;
}

int main(void) {
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        printf("test_redis: redis-server not installed, skipped\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_subscriptions),
        cmocka_unit_test(test_unknown_pattern_drops_reply_channel),
        cmocka_unit_test(test_foreign_messages),
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_auth_and_db),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_restart_without_retries),
        cmocka_unit_test(test_retries_exhausted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
