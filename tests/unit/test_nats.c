/* The NATS transport against a real nats-server (started here on a free loopback port in a temporary
 * directory, stopped by PID): request/reply, no responders, headers both ways, wildcards (`*`, `>`), queue
 * groups, broadcast, max_payload, user/password, and a broker restart with a request pending. Skipped when
 * nats-server is not installed. */
#include "broker_harness.h"

static char conf_path[600]; /* a config file for the next broker started, or "" */

static void broker_exec(const broker *b, const char *port) {
    const char *argv[16] = {"nats-server", "-a", "127.0.0.1", "-p", port};
    int n = 5;
    if (conf_path[0]) argv[n++] = "-c", argv[n++] = conf_path;
    if (b->pass[0]) argv[n++] = "--user", argv[n++] = "u", argv[n++] = "--pass", argv[n++] = b->pass;
    argv[n] = NULL;
    execvp("nats-server", (char **)argv);
}

static char url[128];
static broker B;

/* ---- tests
 * ------------------------------------------------------------------------------------------------- */

static void test_request_reply(void **st) {
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
        assert_true(run_until(&calls[i].done, 1, 3000));
        assert_int_equal(calls[i].err, 0);
        assert_int_equal(json_integer_value(calls[i].last), 6);
        call_clear(&calls[i]);
    }
    nc_client_free(c);
    svc_stop(&s);
}

static void test_no_responders(void **st) {
    svc s;
    svc_start(&s, url);
    nc_client *c = client_new(url, 0, NULL);
    call k = {0};
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(nc_client_send(c, "nobody", NULL, NULL, on_value, on_done, &k), 0);
    assert_true(run_until(&k.done, 1, 3000));
    assert_true(uv_now(&loop) - t0 < 1000u * (unsigned)time_factor()); /* at once, not at the 3 s timeout */
    assert_int_equal(k.err, NC_ENOHANDLER);
    assert_string_equal(k.msg,
                        "Empty response. There are no subscribers listening to that message (\"nobody\")");
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
}

static void test_headers_and_wildcards(void **st) {
    svc s;
    svc_start(&s, url);
    nc_client *c = client_new(url, 0, NULL);
    call k = {0};
    nc_call_opts co = {0};
    json_t *h = json_pack("{s:s,s:s}", "x-trace", "t-1", "x-version", "1.0.0");
    co.headers = h;
    assert_int_equal(nc_client_send(c, "where", NULL, &co, on_value, on_done, &k), 0);
    json_decref(h);
    assert_true(run_until(&k.done, 1, 3000));
    assert_int_equal(k.err, 0);
    json_t *got = json_object_get(k.last, "headers");
    assert_string_equal(json_string_value(json_object_get(got, "x-trace")), "t-1");
    assert_string_equal(json_string_value(json_object_get(got, "x-version")), "1.0.0");
    /* the same headers as an ordered list, and the transport context */
    assert_string_equal(json_string_value(json_object_get(k.last, "trace")), "t-1");
    assert_int_equal(json_integer_value(json_object_get(k.last, "nheaders")), 2);
    assert_string_equal(json_string_value(json_object_get(k.last, "subject")), "where");
    assert_true(json_is_true(json_object_get(k.last, "has_reply_to")));
    call_clear(&k);
    /* client-wide headers: added unless the call sets the same name */
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    json_t *ch = json_pack("{s:s,s:s}", "x-client", "c1", "x-trace", "default");
    o.headers = ch;
    nc_client *c2;
    assert_int_equal(nc_client_new(&c2, url, &o), 0);
    json_decref(ch);
    h = json_pack("{s:s}", "x-trace", "t-2");
    co.headers = h;
    assert_int_equal(nc_client_send(c2, "where", NULL, &co, on_value, on_done, &k), 0);
    json_decref(h);
    assert_true(run_until(&k.done, 1, 3000));
    got = json_object_get(k.last, "headers");
    assert_string_equal(json_string_value(json_object_get(got, "x-trace")), "t-2");
    assert_string_equal(json_string_value(json_object_get(got, "x-client")), "c1");
    call_clear(&k);
    nc_client_free(c2);
    assert_int_equal(nc_client_send(c, "sensors.kitchen", NULL, NULL, on_value, on_done, &k), 0);
    assert_true(run_until(&k.done, 1, 3000));
    assert_string_equal(json_string_value(json_object_get(k.last, "route")), "sensors.*");
    assert_string_equal(json_string_value(json_object_get(k.last, "channel")), "sensors.kitchen");
    call_clear(&k);
    assert_int_equal(nc_client_send(c, "alerts.a.b", NULL, NULL, on_value, on_done, &k), 0);
    assert_true(run_until(&k.done, 1, 3000));
    assert_string_equal(json_string_value(json_object_get(k.last, "route")), "alerts.>");
    assert_string_equal(json_string_value(json_object_get(k.last, "channel")), "alerts.a.b");
    call_clear(&k);
    /* a route holding a lone surrogate (WTF-8) is published as those bytes, which are not UTF-8: the
     * server sees the subject as Node would decode it (three U+FFFD) instead of refusing it */
    assert_int_equal(nc_client_send(c, "alerts.a\xed\xa0\xbd", NULL, NULL, on_value, on_done, &k), 0);
    assert_true(run_until(&k.done, 1, 3000));
    assert_int_equal(k.err, 0);
    assert_string_equal(json_string_value(json_object_get(k.last, "route")), "alerts.>");
    assert_string_equal(json_string_value(json_object_get(k.last, "channel")),
                        "alerts.a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
}

static void test_queue_group_and_broadcast(void **st) {
    char qurl[160];
    snprintf(qurl, sizeof qurl, "%s?queue=q", url);
    svc a, b;
    svc_start(&a, qurl);
    svc_start(&b, qurl);
    nc_client *c = client_new(url, 0, NULL);
    enum { N = 60 };
    call calls[N];
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < N; i++)
        assert_int_equal(nc_client_send(c, "who", NULL, NULL, on_value, on_done, &calls[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_true(run_until(&calls[i].done, 1, 3000));
        assert_int_equal(calls[i].err, 0);
        assert_int_equal(calls[i].nvalues, 1); /* one answer each: never both members */
        call_clear(&calls[i]);
    }
    assert_int_equal(a.handled + b.handled, N);
    assert_true(a.handled > 0 && b.handled > 0); /* shared */
    /* events in a queue group: one member each */
    call k = {0};
    assert_int_equal(nc_client_emit(c, "note", NULL, NULL, on_done, &k), 0);
    assert_true(run_until(&k.done, 1, 3000));
    for (int waited = 0; a.events + b.events < 1 && waited < 3000 * time_factor(); waited += 10) run_ms(10);
    run_ms(200); /* room for an unexpected second delivery */
    assert_int_equal(a.events + b.events, 1);
    call_clear(&k);
    svc_stop(&a);
    svc_stop(&b);
    /* without a queue both receive every event */
    svc_start(&a, url);
    svc_start(&b, url);
    json_t *d = json_pack("{s:i}", "n", 7);
    assert_int_equal(nc_client_emit(c, "note", d, NULL, on_done, &k), 0);
    json_decref(d);
    assert_true(run_until(&a.events, 1, 3000));
    assert_true(run_until(&b.events, 1, 3000));
    assert_int_equal(json_integer_value(json_object_get(b.last_event, "n")), 7);
    call_clear(&k);
    /* a handler with its own queue group shares its requests even on servers without ?queue= */
    for (int i = 0; i < N; i++)
        assert_int_equal(nc_client_send(c, "qwho", NULL, NULL, on_value, on_done, &calls[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_true(run_until(&calls[i].done, 1, 3000));
        assert_int_equal(calls[i].nvalues, 1);
        call_clear(&calls[i]);
    }
    assert_int_equal(a.handled + b.handled, N);
    assert_true(a.handled > 0 && b.handled > 0);
    nc_client_free(c);
    svc_stop(&a);
    svc_stop(&b);
}

static void test_max_payload(void **st) {
    svc s;
    svc_start(&s, url);
    nc_client *c = client_new(url, 0, NULL);
    size_t n = 1100 * 1000;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    json_t *d = json_string(big);
    free(big);
    call k = {0};
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k), 0);
    json_decref(d);
    assert_true(run_until(&k.done, 1, 3000));
    assert_int_equal(k.err, NC_ETOOBIG);
    assert_non_null(strstr(k.msg, "max_payload (1048576)"));
    call_clear(&k);
    /* the client stays usable */
    d = json_pack("[i]", 3);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k), 0);
    json_decref(d);
    assert_true(run_until(&k.done, 1, 3000));
    assert_int_equal(json_integer_value(k.last), 3);
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
}

static void test_user_password(void **st) {
    broker p = {0};
    snprintf(p.pass, sizeof p.pass, "s3cret");
    broker_start(&p);
    char good[128], bad[128];
    snprintf(good, sizeof good, "nats://u:s3cret@127.0.0.1:%d", p.port);
    snprintf(bad, sizeof bad, "nats://u:wrong@127.0.0.1:%d", p.port);
    svc s;
    svc_start(&s, good);
    nc_client *c = client_new(good, 0, NULL);
    call k = {0};
    json_t *d = json_pack("[i,i]", 2, 2);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k), 0);
    assert_true(run_until(&k.done, 1, 3000));
    assert_int_equal(json_integer_value(k.last), 4);
    call_clear(&k);
    nc_client_free(c);
    c = client_new(bad, 0, NULL);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k), 0);
    json_decref(d);
    assert_true(run_until(&k.done, 1, 3000));
    assert_int_equal(k.err, NC_EAUTH);
    assert_non_null(strstr(k.msg, "Authorization"));
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
    broker_free(&p);
}

/* A restart with a request pending: it keeps waiting and gets its reply once both sides reconnected;
 * calls made meanwhile fail at once with NC_ECONNLOST. */
static void test_restart(void **st) {
    svc s;
    svc_start(&s, url);
    cli_status cs = {0};
    nc_client *c = client_new(url, 50, &cs);
    call slow = {0}, during = {0}, after = {0};
    json_t *ms = json_integer(1500 * time_factor()); /* still unanswered once the broker is back */
    int started = sleeps_started;
    assert_int_equal(nc_client_send(c, "sleep", ms, NULL, on_value, on_done, &slow), 0);
    json_decref(ms);
    assert_true(run_until(&sleeps_started, started + 1, 3000)); /* the server has it */
    broker_stop(&B);
    assert_true(run_until(&cs.reconnecting, 1, 3000));
    json_t *d = json_pack("[i]", 1);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &during), 0);
    run_until(&during.done, 1, 1000);
    assert_int_equal(during.err, NC_ECONNLOST);
    assert_int_equal(slow.done, 0);
    broker_start(&B);
    assert_true(run_until(&cs.connected, 2, 5000));
    assert_true(run_until(&s.connected, 2, 5000));
    assert_true(run_until(&slow.done, 1, 5000));
    assert_int_equal(slow.err, 0);
    assert_string_equal(json_string_value(slow.last), "late");
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &after), 0);
    json_decref(d);
    assert_true(run_until(&after.done, 1, 3000));
    assert_int_equal(after.err, 0);
    call_clear(&slow);
    call_clear(&during);
    call_clear(&after);
    nc_client_free(c);
    svc_stop(&s);
}

/* Per-user permissions (nats-server config): each user lacks one permission the tests need. */
static const char PERMISSIONS[] =
    "authorization {\n"
    "  users = [\n"
    "    {user: nosub, password: pw, permissions: {subscribe: {deny: [\"_INBOX.>\"]}}}\n"
    "    {user: nopub, password: pw, permissions: {publish: {deny: [\"who\", \"note\"]}}}\n"
    "    {user: srvnone, password: pw, permissions: {subscribe: {allow: [\"nothing\"]}}}\n"
    "    {user: srvsome, password: pw, permissions: {subscribe: {allow: [\"who\"]}}}\n"
    "    {user: srvnoreply, password: pw, permissions: {publish: {deny: [\"_INBOX.>\"]}}}\n"
    "    {user: all, password: pw}\n"
    "  ]\n"
    "}\n";

/* Issue: a permission nats-server denies (-ERR 'Permissions Violation for Subscription to "..."', '... for
 * Publish to "..."') was only logged: the call waited for its timeout, forever without one, and a server
 * whose every subscription was refused logged each and reported "connected". Now the calls it concerns
 * fail at once with NC_EAUTH and NATS's words; the server logs the refusals in one line and reports
 * "disconnected" (NC_EAUTH) when all are refused; refused replies are logged once, not per reply. */
static void test_permissions(void **st) {
    /* beside the test (the broker's own directory does not exist before it starts) */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(conf_path, sizeof conf_path, "%s/nestc-nats-conf-XXXXXX", cwd);
    int fd = mkstemp(conf_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, PERMISSIONS, sizeof PERMISSIONS - 1), (ssize_t)(sizeof PERMISSIONS - 1));
    close(fd);
    broker p = {0};
    broker_start(&p);
    unlink(conf_path); /* read when it started */
    conf_path[0] = '\0';
    char u[128], all[128];
    snprintf(all, sizeof all, "nats://all:pw@127.0.0.1:%d", p.port);
    svc s;
    svc_start(&s, all);
    nc_call_opts forever = {0};
    forever.timeout_ms = NC_LIMIT_OFF;
    /* the reply inbox cannot be subscribed: both calls fail at once, without a timeout too */
    snprintf(u, sizeof u, "nats://nosub:pw@127.0.0.1:%d", p.port);
    nc_client *c = client_new(u, 0, NULL);
    call k[2] = {{0}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(nc_client_send(c, "who", NULL, &forever, on_value, on_done, &k[i]), 0);
    for (int i = 0; i < 2; i++) {
        assert_true(run_until(&k[i].done, 1, 2000));
        assert_int_equal(k[i].err, NC_EAUTH);
        assert_non_null(strstr(k[i].msg, "Permissions Violation for Subscription to \"_INBOX."));
        call_clear(&k[i]);
    }
    assert_int_equal(nc_client_pending(c), 0);
    nc_client_free(c);
    /* the route cannot be published to */
    snprintf(u, sizeof u, "nats://nopub:pw@127.0.0.1:%d", p.port);
    c = client_new(u, 0, NULL);
    for (int i = 0; i < 2; i++)
        assert_int_equal(nc_client_send(c, "who", NULL, &forever, on_value, on_done, &k[i]), 0);
    for (int i = 0; i < 2; i++) {
        assert_true(run_until(&k[i].done, 1, 2000));
        assert_int_equal(k[i].err, NC_EAUTH);
        assert_non_null(strstr(k[i].msg, "Permissions Violation for Publish to \"who\""));
        call_clear(&k[i]);
    }
    /* other routes still work on the same connection */
    json_t *d = json_pack("[i,i]", 1, 2);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k[0]), 0);
    json_decref(d);
    assert_true(run_until(&k[0].done, 1, 3000));
    assert_int_equal(k[0].err, 0);
    assert_int_equal(json_integer_value(k[0].last), 3);
    call_clear(&k[0]);
    nc_client_free(c);
    svc_stop(&s);
    /* a server refused every subscription: disconnected, NC_EAUTH, one log line; some refused: it
     * serves the others */
    snprintf(u, sizeof u, "nats://srvnone:pw@127.0.0.1:%d", p.port);
    expect_server_refused_all(u);
    snprintf(u, sizeof u, "nats://srvsome:pw@127.0.0.1:%d", p.port);
    expect_server_refused_some(u);
    /* its replies refused: the callers time out, the server logs the first refusal, not each */
    refusal_log l = {0};
    snprintf(u, sizeof u, "nats://srvnoreply:pw@127.0.0.1:%d", p.port);
    nc_server *srv = refused_server(u, &l);
    assert_int_equal(l.connected, 1);
    c = client_new(all, 0, NULL);
    nc_call_opts brief = {0};
    brief.timeout_ms = 300 * time_factor();
    d = json_pack("[i]", 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, &brief, on_value, on_done, &k[i]), 0);
    json_decref(d);
    for (int i = 0; i < 2; i++) {
        assert_true(run_until(&k[i].done, 1, 3000));
        assert_int_equal(k[i].err, NC_ETIMEDOUT);
        call_clear(&k[i]);
    }
    assert_int_equal(l.refusals, 1);
    assert_non_null(strstr(l.last, "Permissions Violation for Publish to \"_INBOX."));
    nc_client_free(c);
    nc_server_free(srv);
    broker_free(&p);
}

static int setup(void **st) {
    if (system("command -v nats-server >/dev/null 2>&1") != 0) return 0;
    /* SIGPIPE keeps its default action: no write of the library may raise it (brokers get killed here) */
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    uv_loop_init(&loop);
    broker_start(&B);
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", B.port);
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
    if (system("command -v nats-server >/dev/null 2>&1") != 0) {
        printf("test_nats: nats-server not installed, skipped\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_reply),         cmocka_unit_test(test_no_responders),
        cmocka_unit_test(test_headers_and_wildcards), cmocka_unit_test(test_queue_group_and_broadcast),
        cmocka_unit_test(test_max_payload),           cmocka_unit_test(test_user_password),
        cmocka_unit_test(test_permissions),           cmocka_unit_test(test_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
