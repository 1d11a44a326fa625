/* What is NATS's own, against a real nats-server (started here on a free loopback port in a temporary
 * directory, stopped by PID): no responders (at once, NestJS's words), `*` and `>` wildcards, subjects
 * that are not UTF-8, queue groups, max_payload, permissions. What every transport does
 * (requests, streams, errors, events, headers, unknown patterns, timeouts, cancellation, broadcast to two
 * servers, a broker restart, a password ...) is in tests/conformance, run on nats:// plain and over TLS too.
 * Skipped when nats-server is not installed. */
#include "broker_harness.h"
#include "core/client_internal.h"

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

static void test_no_responders(void **st) {
    svc s;
    svc_start(&s, url);
    nc_client *c = client_new(url, 0, NULL);
    call k = {0};
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(nc_client_send(c, "nobody", NULL, NULL, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_true(uv_now(&loop) - t0 < 1000u * (unsigned)time_factor()); /* at once, not at the 3 s timeout */
    assert_int_equal(k.err, NC_ENOHANDLER);
    assert_string_equal(k.msg,
                        "Empty response. There are no subscribers listening to that message (\"nobody\")");
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
}

static void test_wildcards(void **st) {
    svc s;
    svc_start(&s, url);
    nc_client *c = client_new(url, 0, NULL);
    call k = {0};
    assert_int_equal(nc_client_send(c, "sensors.kitchen", NULL, NULL, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_string_equal(json_string_value(json_object_get(k.last, "route")), "sensors.*");
    assert_string_equal(json_string_value(json_object_get(k.last, "channel")), "sensors.kitchen");
    call_clear(&k);
    assert_int_equal(nc_client_send(c, "alerts.a.b", NULL, NULL, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_string_equal(json_string_value(json_object_get(k.last, "route")), "alerts.>");
    assert_string_equal(json_string_value(json_object_get(k.last, "channel")), "alerts.a.b");
    call_clear(&k);
    /* a route holding a lone surrogate (WTF-8) is published as those bytes, which are not UTF-8: the
     * server sees the subject as Node would decode it (three U+FFFD) instead of refusing it */
    assert_int_equal(nc_client_send(c, "alerts.a\xed\xa0\xbd", NULL, NULL, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_int_equal(k.err, 0);
    assert_string_equal(json_string_value(json_object_get(k.last, "route")), "alerts.>");
    assert_string_equal(json_string_value(json_object_get(k.last, "channel")),
                        "alerts.a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
}

static void test_queue_groups(void **st) {
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
        assert_true(run_until_ms(&calls[i].done, 1, 3000));
        assert_int_equal(calls[i].err, 0);
        assert_int_equal(calls[i].nvalues, 1); /* one answer each: never both members */
        call_clear(&calls[i]);
    }
    assert_int_equal(a.handled + b.handled, N);
    assert_true(a.handled > 0 && b.handled > 0); /* shared */
    /* events in a queue group: one member each */
    call k = {0};
    assert_int_equal(nc_client_emit(c, "note", NULL, NULL, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 3000));
    for (int waited = 0; a.events + b.events < 1 && waited < 3000 * time_factor(); waited += 10) run_ms(10);
    run_ms(200); /* room for an unexpected second delivery */
    assert_int_equal(a.events + b.events, 1);
    call_clear(&k);
    svc_stop(&a);
    svc_stop(&b);
    /* (without a queue both receive every event: tests/conformance, broadcast) */
    svc_start(&a, url);
    svc_start(&b, url);
    /* a handler with its own queue group shares its requests even on servers without ?queue= */
    for (int i = 0; i < N; i++)
        assert_int_equal(nc_client_send(c, "qwho", NULL, NULL, on_value, on_done, &calls[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_true(run_until_ms(&calls[i].done, 1, 3000));
        assert_int_equal(calls[i].nvalues, 1);
        call_clear(&calls[i]);
    }
    assert_int_equal(a.handled + b.handled, N);
    assert_true(a.handled > 0 && b.handled > 0);
    nc_client_free(c);
    svc_stop(&a);
    svc_stop(&b);
}

/* A server whose options come from nc_server_opts.options (over the URL's ?queue=) with `who` and two
 * routes with handler options: `hwho` in a queue group of its own, `awho` with queue "" (no group: every
 * server answers, whatever the server's queue). */
static void svc_start_opts(svc *s, const char *u, const nc_option *opts, size_t n) {
    memset(s, 0, sizeof *s);
    nc_server_opts o = NC_SERVER_OPTS_INIT;
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.shutdown_timeout_ms = 200;
    o.options = opts;
    o.noptions = n;
    assert_int_equal(nc_server_new(&s->srv, u, &o), 0);
    assert_int_equal(nc_server_message(s->srv, "who", h_who, s), 0);
    nc_option own[] = {{"queue", "hq"}}, none[] = {{"queue", ""}};
    nc_handler_opts ho = NC_HANDLER_OPTS_INIT;
    ho.options = own;
    ho.noptions = 1;
    assert_int_equal(nc_server_message_opts(s->srv, "hwho", &ho, h_who, s), 0);
    ho.options = none;
    assert_int_equal(nc_server_message_opts(s->srv, "awho", &ho, h_who, s), 0);
    nc_server_on_status(s->srv, srv_status, s);
    assert_int_equal(nc_server_listen(s->srv), 0);
    assert_true(run_until_ms(&s->connected, 1, 5000));
}

/* N requests to route; returns once all are answered (one value each). */
static void send_n(nc_client *c, const char *route, int n) {
    call calls[60];
    assert_true(n <= 60);
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < n; i++)
        assert_int_equal(nc_client_send(c, route, NULL, NULL, on_value, on_done, &calls[i]), 0);
    for (int i = 0; i < n; i++) {
        assert_true(run_until_ms(&calls[i].done, 1, 3000));
        assert_int_equal(calls[i].err, 0);
        assert_int_equal(calls[i].nvalues, 1);
        call_clear(&calls[i]);
    }
}

/* The queue group as a transport option: at server level (winning over the URL's ?queue=), at handler
 * level (replacing the server's for that route, "" = none). */
static void test_queue_group_by_option(void **st) {
    enum { N = 60 };
    char qurl[160];
    snprintf(qurl, sizeof qurl, "%s?queue=other", url);
    nc_option q[] = {{"queue", "q"}};
    svc a, b;
    svc_start_opts(&a, qurl, q, 1); /* option q over the URL's `other`: both are in group q */
    svc_start_opts(&b, url, q, 1);
    nc_client *c = client_new(url, 0, NULL);
    send_n(c, "who", N);
    assert_int_equal(a.handled + b.handled, N); /* one member each: the option won over the URL */
    assert_true(a.handled > 0 && b.handled > 0);
    a.handled = b.handled = 0;
    send_n(c, "hwho", N); /* the handler's own group */
    assert_int_equal(a.handled + b.handled, N);
    assert_true(a.handled > 0 && b.handled > 0);
    a.handled = b.handled = 0;
    send_n(c, "awho", N); /* no group for this route: both servers get every request */
    for (int waited = 0; a.handled + b.handled < 2 * N && waited < 3000 * time_factor(); waited += 10)
        run_ms(10);
    assert_int_equal(a.handled, N);
    assert_int_equal(b.handled, N);
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
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_int_equal(k.err, NC_ETOOBIG);
    assert_non_null(strstr(k.msg, "max_payload (1048576)"));
    call_clear(&k);
    /* the client stays usable */
    d = json_pack("[i]", 3);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k), 0);
    json_decref(d);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_int_equal(json_integer_value(k.last), 3);
    call_clear(&k);
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
        assert_true(run_until_ms(&k[i].done, 1, 2000));
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
        assert_true(run_until_ms(&k[i].done, 1, 2000));
        assert_int_equal(k[i].err, NC_EAUTH);
        assert_non_null(strstr(k[i].msg, "Permissions Violation for Publish to \"who\""));
        call_clear(&k[i]);
    }
    /* other routes still work on the same connection */
    json_t *d = json_pack("[i,i]", 1, 2);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &k[0]), 0);
    json_decref(d);
    assert_true(run_until_ms(&k[0].done, 1, 3000));
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
        assert_true(run_until_ms(&k[i].done, 1, 3000));
        assert_int_equal(k[i].err, NC_ETIMEDOUT);
        call_clear(&k[i]);
    }
    assert_int_equal(l.refusals, 1);
    assert_non_null(strstr(l.last, "Permissions Violation for Publish to \"_INBOX."));
    nc_client_free(c);
    nc_server_free(srv);
    broker_free(&p);
}

/* ---- reply headers through the call object ------------------------------------------------------------ */

/* A responder speaking the NATS protocol itself (nestc's server does not put headers on replies): it
 * answers with HPUB, a header block with a repeated name, and a NestJS reply packet. */
static int raw_fd = -1;
static char raw_in[8192];
static size_t raw_len;

/* Reads what the broker sent until `needle` is in it (a readiness wait, bounded), running the loop in
 * between so the client under test makes progress. */
static const char *raw_wait(const char *needle, int ms) {
    uv_update_time(&loop);
    uint64_t end = uv_now(&loop) + (uint64_t)ms * (uint64_t)time_factor();
    for (;;) {
        ssize_t n = recv(raw_fd, raw_in + raw_len, sizeof raw_in - 1 - raw_len, MSG_DONTWAIT);
        if (n > 0) raw_len += (size_t)n;
        raw_in[raw_len] = '\0';
        const char *at = strstr(raw_in, needle);
        if (at || uv_now(&loop) >= end) return at;
        run_ms(5);
    }
}

static void raw_send(const char *s) {
    assert_int_equal(send(raw_fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

typedef struct hcall {
    nc_call *h;
    int done, err, headers;
    char first_a[16], b[16];
    size_t count;
    char third_value[16];
    json_t *value;
} hcall;

static void h_on_headers(void *u, nc_call *h) {
    hcall *k = u;
    k->headers++;
    size_t n = 0;
    const char *v = nc_call_header(h, "x-a", &n);
    if (v) snprintf(k->first_a, sizeof k->first_a, "%.*s", (int)n, v);
    v = nc_call_header(h, "x-b", &n);
    if (v) snprintf(k->b, sizeof k->b, "%.*s", (int)n, v);
    k->count = nc_call_header_count(h);
    const char *name, *val;
    size_t nl, vl;
    if (nc_call_header_at(h, 2, &name, &nl, &val, &vl) == 0)
        snprintf(k->third_value, sizeof k->third_value, "%.*s=%.*s", (int)nl, name, (int)vl, val);
}
static void h_on_value(void *u, json_t *v) {
    hcall *k = u;
    k->value = json_incref(v);
}
static void h_on_done(void *u, int err, json_t *e) {
    hcall *k = u;
    k->done++;
    k->err = err;
}

static void test_reply_headers_on_call(void **st) {
    raw_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(raw_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)B.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(raw_fd, (struct sockaddr *)&a, sizeof a), 0);
    raw_len = 0;
    assert_non_null(raw_wait("INFO", 3000));
    raw_send(
        "CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB hdr.echo 1\r\nPING\r\n");
    assert_non_null(raw_wait("PONG", 3000));
    raw_len = 0;

    nc_client *c = client_new(url, 0, NULL);
    hcall k = {0};
    nc_call_cbs cbs = {h_on_value, h_on_done, h_on_headers};
    assert_int_equal(nc_client_call(c, "hdr.echo", NULL, NULL, &cbs, &k, &k.h), 0);
    /* MSG hdr.echo 1 <inbox> <bytes>\r\n<payload>\r\n */
    const char *m = raw_wait("\r\n", 3000);
    assert_non_null(m);
    char inbox[128];
    assert_int_equal(sscanf(raw_in, "MSG hdr.echo 1 %127s", inbox), 1);
    assert_non_null(raw_wait("\"}\r\n", 3000)); /* the whole payload, which ends with the id */
    const char *id = nc_call__id(k.h);
    assert_non_null(id);
    assert_non_null(strstr(raw_in, id));
    char hdr[256], body[256], pub[700];
    snprintf(hdr, sizeof hdr, "NATS/1.0\r\nx-a: one\r\nx-b:  two \r\nx-a: again\r\n\r\n");
    snprintf(body, sizeof body, "{\"response\":42,\"isDisposed\":true,\"id\":\"%s\"}", id);
    snprintf(pub, sizeof pub, "HPUB %s %zu %zu\r\n%s%s\r\n", inbox, strlen(hdr), strlen(hdr) + strlen(body),
             hdr, body);
    raw_send(pub);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_int_equal(k.err, 0);
    assert_int_equal(json_integer_value(k.value), 42);
    assert_int_equal(k.headers, 1);
    assert_string_equal(k.first_a, "one"); /* the first of a repeated name */
    assert_string_equal(k.b, "two");       /* trimmed as nats.js does */
    assert_int_equal(k.count, 3);
    assert_string_equal(k.third_value, "x-a=again"); /* in wire order, repeats kept */
    assert_int_equal(nc_call_header_count(k.h), 0);  /* stale once on_done returned */
    json_decref(k.value);
    nc_client_free(c);
    close(raw_fd);
    raw_fd = -1;
}

/* A call sent again: the first attempt's reply inbox is dropped, the second one gets the answer. */
static void test_resend(void **st) {
    svc s;
    svc_start(&s, url);
    nc_client *c = client_new(url, 0, NULL);
    call warm = {0};
    json_t *d = json_pack("[i,i,i]", 1, 2, 3);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &warm), 0);
    assert_true(run_until_ms(&warm.done, 1, 3000)); /* connected */
    call k = {0};
    nc_call *h = NULL;
    nc_call_cbs cbs = {on_value, on_done, NULL};
    assert_int_equal(nc_client_call(c, "{\"cmd\":\"sum\"}", d, NULL, &cbs, &k, &h), 0);
    assert_int_equal(nc_call__resend(h), 0);
    assert_int_equal(nc_call__resend(h), 0);
    assert_true(run_until_ms(&k.done, 1, 3000));
    assert_int_equal(k.err, 0);
    assert_int_equal(k.nvalues, 1);
    assert_int_equal(json_integer_value(k.last), 6);
    assert_int_equal(nc_call__resend(h), NC_ESTATE);
    /* the same client goes on working: nothing of the dropped attempts is left in the way */
    call_clear(&warm);
    assert_int_equal(nc_client_send(c, "{\"cmd\":\"sum\"}", d, NULL, on_value, on_done, &warm), 0);
    assert_true(run_until_ms(&warm.done, 1, 3000));
    assert_int_equal(warm.err, 0);
    json_decref(d);
    call_clear(&warm);
    call_clear(&k);
    nc_client_free(c);
    svc_stop(&s);
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
        cmocka_unit_test(test_no_responders),         cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_queue_groups),          cmocka_unit_test(test_max_payload),
        cmocka_unit_test(test_permissions),           cmocka_unit_test(test_queue_group_by_option),
        cmocka_unit_test(test_reply_headers_on_call), cmocka_unit_test(test_resend),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
