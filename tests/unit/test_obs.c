/* Observability (nestc/metrics.h, src/obs): the admin endpoint's HTTP request parser, the metrics a server
 * and a client count over TCP, the Prometheus exposition of them, the route cap, and the admin endpoint
 * itself (routes, refusals, its bounds, readiness while draining), driven by an HTTP client on the loop. */
#include <string.h>

#include "tcp_fixture.h"

#include "../common/broker.h"

#include "obs/admin.h"
#include "obs/http_req.h"

/* ---- the request parser ------------------------------------------------------------------------------- */

static int parse(const char *s, nc_http_req *q) {
    return nc_http_req_parse(s, strlen(s), q);
}

static void test_http_parse(void **st) {
    (void)st;
    nc_http_req q;
    const char *get = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nrest";
    assert_int_equal(parse(get, &q), 0);
    assert_int_equal(q.method_len, 3);
    assert_memory_equal(q.method, "GET", 3);
    assert_int_equal(q.path_len, 8);
    assert_memory_equal(q.path, "/metrics", 8);
    assert_int_equal(q.minor, 1);
    assert_int_equal(q.keep_alive, 1);
    assert_int_equal(q.head_len, strlen(get) - 4);
    assert_int_equal(parse("HEAD /health/ready HTTP/1.0\n\n", &q), 0); /* bare LF */
    assert_int_equal(q.keep_alive, 0);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &q), 0);
    assert_int_equal(q.keep_alive, 1);
    assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n", &q), 0);
    assert_int_equal(q.keep_alive, 0);
    assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 000\r\n\r\n", &q), 0);
    /* incomplete until the empty line */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\n", &q), 1);
    assert_int_equal(parse("GE", &q), 1);
    assert_int_equal(parse("", &q), 1);
    /* refusals */
    assert_int_equal(parse("GET /\r\n\r\n", &q), 400);
    assert_int_equal(parse("GET  / HTTP/1.1\r\n\r\n", &q), 400);
    assert_int_equal(parse("GET http://x/ HTTP/1.1\r\n\r\n", &q), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\n folded\r\n\r\n", &q), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &q), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", &q), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", &q), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", &q), 400);
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", &q), 413);
    assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &q), 413);
    assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &q), 505);
    assert_int_equal(parse("GET / HTTP/1.2\r\n\r\n", &q), 505);
    assert_int_equal(parse("GET / HTTX/1.1\r\n\r\n", &q), 400);
    char big[NC_HTTP_HEAD_MAX + 64];
    snprintf(big, sizeof big, "GET /%s HTTP/1.1\r\n\r\n", "");
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    strcpy(big + 3000, " HTTP/1.1\r\n\r\n");
    assert_int_equal(parse(big, &q), 414);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(parse(big, &q), 431); /* no end of head within the limit */
    char many[NC_HTTP_HEAD_MAX];
    size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= NC_HTTP_HEADERS_MAX; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X: y\r\n");
    snprintf(many + n, sizeof many - n, "\r\n");
    assert_int_equal(parse(many, &q), 431);
}

/* ---- a server and a client counted by one registry -------------------------------------------------------
 */

static void h_sum(nc_request *req, const nc_msg *m, void *u) {
    (void)u, (void)m;
    nc_reply(req, json_integer(6));
}
static void h_fail(nc_request *req, const nc_msg *m, void *u) {
    (void)u, (void)m;
    nc_reply_error_msg(req, "boom");
}
static nc_request *held;
static void h_hold(nc_request *req, const nc_msg *m, void *u) {
    (void)u, (void)m;
    held = req;
}
static int events_seen;
static void h_event(const nc_msg *m, void *u) {
    (void)u, (void)m;
    events_seen++;
}

static void call_once(const char *pattern, int want_err) {
    call c = call_new();
    json_t *data = json_pack("[i,i,i]", 1, 2, 3);
    assert_int_equal(nc_client_send(cli, pattern, data, NULL, on_value, on_done, &c), 0);
    json_decref(data);
    run_until(&c.done, 1);
    assert_int_equal(c.err, want_err);
    call_free(&c);
}

static const nc_metrics_series *find(const char *route, nc_hook_side side);
static nc_metrics_series found[32];
static int nfound;
static int collect(void *u, const nc_metrics_series *s) {
    (void)u;
    if (nfound < 32) found[nfound++] = *s;
    return 0;
}
static const nc_metrics_series *find(const char *route, nc_hook_side side) {
    for (int i = 0; i < nfound; i++)
        if (found[i].side == side && !strcmp(found[i].route, route)) return &found[i];
    return NULL;
}

static void test_counts_and_exposition(void **st) {
    (void)st;
    nc_metrics *m;
    assert_int_equal(nc_metrics_new(&m, NULL), 0);
    tcp_server_new(NULL);
    nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL);
    nc_server_message(srv, "fail", h_fail, NULL);
    nc_server_message(srv, "a\"b\\c", h_sum, NULL); /* a route that needs escaping in a label */
    nc_server_event(srv, "ev", h_event, NULL);
    assert_true(nc_metrics_watch_server(m, srv) > 0);
    tcp_listen_connect();
    assert_true(nc_metrics_watch_client(m, cli) > 0);
    for (int i = 0; i < 3; i++) call_once("{\"cmd\":\"sum\"}", 0);
    call_once("fail", NC_EREMOTE);
    call_once("a\"b\\c", 0);
    for (int i = 0; i < 5; i++) call_once("nobody", NC_ENOHANDLER);
    call_once("nobody.else", NC_ENOHANDLER); /* the same single no-handler series */
    json_t *one = json_integer(1);
    assert_int_equal(nc_client_emit(cli, "ev", one, NULL, NULL, NULL), 0);
    json_decref(one);
    while (events_seen < 1) uv_run(&loop, UV_RUN_ONCE);

    nfound = 0;
    nc_metrics_foreach(m, collect, NULL);
    const nc_metrics_series *s = find("{\"cmd\":\"sum\"}", NC_HOOK_SERVER);
    assert_non_null(s);
    assert_string_equal(s->transport, "tcp");
    assert_int_equal(s->requests, 3);
    assert_int_equal(s->outcomes[NC_OUTCOME_OK], 3);
    assert_int_equal(s->reply_values, 3);
    assert_int_equal(s->bytes_in, 3 * strlen("[1,2,3]"));
    assert_int_equal(s->bytes_out, 3);
    assert_int_equal(s->duration_count, 3);
    assert_int_equal(s->in_flight, 0);
    uint64_t sum = 0;
    for (int k = 0; k < NC_METRICS_BUCKETS; k++) sum += s->duration_buckets[k];
    assert_int_equal(sum, 3);
    s = find("fail", NC_HOOK_SERVER);
    assert_non_null(s);
    assert_int_equal(s->outcomes[NC_OUTCOME_REMOTE_ERROR], 1);
    assert_int_equal(s->reply_errors, 1);
    s = find(NC_METRICS_ROUTE_NO_HANDLER, NC_HOOK_SERVER);
    assert_non_null(s);
    assert_int_equal(s->requests, 6);
    assert_int_equal(s->outcomes[NC_OUTCOME_NO_HANDLER], 6);
    assert_null(find("nobody", NC_HOOK_SERVER));
    s = find("ev", NC_HOOK_SERVER);
    assert_non_null(s);
    assert_int_equal(s->events, 1);
    /* the client's side: calls by outcome */
    s = find("nobody", NC_HOOK_CLIENT);
    assert_non_null(s);
    assert_int_equal(s->outcomes[NC_OUTCOME_NO_HANDLER], 5);
    nc_metrics_series t;
    assert_int_equal(nc_metrics_totals(m, NC_HOOK_CLIENT, &t), 0);
    assert_int_equal(t.requests, 11);
    assert_int_equal(t.events, 1);
    assert_int_equal(t.outcomes[NC_OUTCOME_OK], 5); /* 4 requests and the event */
    assert_int_equal(t.outcomes[NC_OUTCOME_REMOTE_ERROR], 1);
    assert_int_equal(t.reply_values, 4);
    assert_int_equal(t.duration_count, 12);

    char *text;
    size_t len;
    assert_int_equal(nc_metrics_prometheus(m, srv, &text, &len), 0);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(
        text, "# TYPE nestc_server_requests_total counter\n"
              "nestc_server_requests_total{transport=\"tcp\",route=\"{\\\"cmd\\\":\\\"sum\\\"}\"} 3\n"));
    assert_non_null(strstr(text, "route=\"a\\\"b\\\\c\"} 1\n"));
    assert_non_null(strstr(text, "nestc_server_handled_total{transport=\"tcp\",route=\"(no handler)\","
                                 "outcome=\"no_handler\"} 6\n"));
    assert_non_null(strstr(text,
                           "nestc_server_handler_duration_seconds_bucket{transport=\"tcp\",route=\"fail\","
                           "le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(text, "nestc_client_calls_total{transport=\"tcp\",route=\"fail\","
                                 "outcome=\"remote_error\"} 1\n"));
    assert_non_null(strstr(text, "nestc_ready 1\n"));
    /* each family's lines are together: one TYPE line per family */
    const char *p = text;
    int types = 0;
    while ((p = strstr(p, "# TYPE nestc_server_handled_total "))) types++, p++;
    assert_int_equal(types, 1);
    free(text);
    tcp_free();
    nc_metrics_free(m); /* the last reference after both hook sets were released */
}

static void test_route_cap(void **st) {
    (void)st;
    nc_metrics *m;
    nc_metrics_opts o = {.struct_size = sizeof o, .max_routes = 2};
    assert_int_equal(nc_metrics_new(&m, &o), 0);
    o.max_routes = 100000;
    nc_metrics *bad;
    assert_int_equal(nc_metrics_new(&bad, &o), NC_EINVAL);
    tcp_server_new(NULL);
    const char *routes[] = {"r1", "r2", "r3", "r4"};
    for (int i = 0; i < 4; i++) nc_server_message(srv, routes[i], h_sum, NULL);
    nc_metrics_watch_server(m, srv);
    tcp_listen_connect();
    for (int i = 0; i < 4; i++) call_once(routes[i], 0);
    call_once("r4", 0);
    nfound = 0;
    nc_metrics_foreach(m, collect, NULL);
    assert_int_equal(nfound, 3);
    assert_non_null(find("r1", NC_HOOK_SERVER));
    assert_non_null(find("r2", NC_HOOK_SERVER));
    const nc_metrics_series *s = find(NC_METRICS_ROUTE_OTHER, NC_HOOK_SERVER);
    assert_non_null(s);
    assert_int_equal(s->requests, 3);
    assert_int_equal(nc_metrics_routes_overflowed(m), 3);
    nc_metrics_free(m); /* the server still holds it */
    tcp_free();
}

/* ---- the admin endpoint, through an HTTP client on the loop ----------------------------------------------
 */

typedef struct http {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    char req[NC_HTTP_HEAD_MAX + 256];
    size_t reqlen;
    char resp[65536 * 4];
    size_t len;
    int eof, closed;
} http;

static void h_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    (void)sz;
    http *c = h->data;
    *b = uv_buf_init(c->resp + c->len, (unsigned)(sizeof c->resp - c->len - 1));
}
static void h_closed(uv_handle_t *h) {
    ((http *)h->data)->closed = 1;
}
static void h_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    (void)b;
    http *c = s->data;
    if (n > 0) {
        c->len += (size_t)n;
        c->resp[c->len] = 0;
    } else if (n < 0) {
        c->eof = 1;
        uv_close((uv_handle_t *)&c->tcp, h_closed);
    }
}
static void h_written(uv_write_t *w, int status) {
    (void)w, (void)status;
}
static void h_connected(uv_connect_t *cr, int status) {
    http *c = cr->data;
    if (status < 0) { /* refused: an empty answer */
        c->eof = 1;
        uv_close((uv_handle_t *)&c->tcp, h_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, h_alloc, h_read);
    if (c->reqlen) {
        uv_buf_t b = uv_buf_init(c->req, (unsigned)c->reqlen);
        uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, h_written);
    }
}

static int http_port; /* 0: the server's admin port */

/* Connects to the admin port and sends `raw` (nothing when NULL); the answer arrives in c->resp. */
static void http_start(http *c, const char *raw) {
    memset(c, 0, sizeof *c);
    if (raw) {
        c->reqlen = strlen(raw);
        memcpy(c->req, raw, c->reqlen);
    }
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", http_port ? http_port : nc_server_admin_port(srv), &a);
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c;
    c->conn.data = c;
    assert_int_equal(uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&a, h_connected), 0);
}

static http *get(const char *raw) {
    static http c;
    http_start(&c, raw);
    run_until(&c.closed, 1);
    return &c;
}

static void admin_server(void) {
    nc_server_opts o = NC_SERVER_OPTS_INIT;
    o.admin = "127.0.0.1:0";
    o.shutdown_timeout_ms = 60000;
    tcp_server_new(&o);
    nc_server_message(srv, "sum", h_sum, NULL);
    nc_server_message(srv, "hold", h_hold, NULL);
    assert_non_null(nc_server_metrics(srv));
    assert_int_equal(nc_server_admin_port(srv), 0); /* not listening yet */
    tcp_listen_connect();
    assert_true(nc_server_admin_port(srv) > 0);
    assert_true(nc_metrics_watch_client(nc_server_metrics(srv), cli) > 0);
}

static void test_admin_routes(void **st) {
    (void)st;
    admin_server();
    call_once("sum", 0);
    http *c = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(!strncmp(c->resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_non_null(strstr(c->resp, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(c->resp, "nestc_server_requests_total{transport=\"tcp\",route=\"sum\"} 1\n"));
    assert_non_null(
        strstr(c->resp, "nestc_client_calls_total{transport=\"tcp\",route=\"sum\",outcome=\"ok\"} 1\n"));
    c = get("GET /health/live HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(c->resp,
                           "\r\n\r\n{\"status\":\"ok\",\"info\":{\"loop\":{\"status\":\"up\"}},\"error\":{},"
                           "\"details\":{\"loop\":{\"status\":\"up\"}}}"));
    c = get("GET /health/ready HTTP/1.0\r\n\r\n");
    assert_true(!strncmp(c->resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_non_null(
        strstr(c->resp, "{\"status\":\"ok\",\"info\":{\"tcp\":{\"status\":\"up\",\"listening\":true,"));
    c = get("HEAD /health/ready HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(c->resp, "Content-Length: "));
    assert_true(c->resp[c->len - 1] == '\n' && !strstr(c->resp, "{\"status\"")); /* no body */
    c = get("GET /nope HTTP/1.1\r\n\r\n");
    assert_true(!strncmp(c->resp, "HTTP/1.1 404 ", 13));
    c = get("DELETE /metrics HTTP/1.1\r\n\r\n");
    assert_true(!strncmp(c->resp, "HTTP/1.1 405 ", 13));
    assert_non_null(strstr(c->resp, "Allow: GET, HEAD\r\n"));
    c = get("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert_true(!strncmp(c->resp, "HTTP/1.1 413 ", 13));
    c = get("\x16\x03\x01 not http at all\r\n\r\n");
    assert_true(!strncmp(c->resp, "HTTP/1.1 400 ", 13));
    static char big[NC_HTTP_HEAD_MAX + 100];
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    c = get(big);
    assert_true(!strncmp(c->resp, "HTTP/1.1 431 ", 13));
    tcp_free();
}

/* 16 idle connections are held; the 17th is closed at once without an answer; once they go, it serves. */
static void test_admin_connection_cap(void **st) {
    (void)st;
    admin_server();
    static http idle[16];
    for (int i = 0; i < 16; i++) http_start(&idle[i], NULL);
    static http over;
    http_start(&over, "GET /health/live HTTP/1.1\r\n\r\n");
    run_until(&over.closed, 1);
    assert_int_equal(over.len, 0);
    for (int i = 0; i < 16; i++) uv_close((uv_handle_t *)&idle[i].tcp, h_closed);
    for (int i = 0; i < 16; i++) run_until(&idle[i].closed, 1);
    /* the server sees them go in its next iterations: ask until the answer comes */
    http *c;
    do c = get("GET /health/live HTTP/1.1\r\n\r\n");
    while (c->len == 0);
    assert_true(!strncmp(c->resp, "HTTP/1.1 200 OK\r\n", 17));
    tcp_free();
}

static int closed_done;
static void on_closed(void *u) {
    (void)u;
    closed_done = 1;
}

/* Graceful shutdown: from nc_server_close on, /health/ready says 503 with draining, while the request in
 * flight finishes and /health/live stays up. */
static void test_admin_draining(void **st) {
    (void)st;
    admin_server();
    call c = call_new();
    held = NULL;
    json_t *one = json_integer(1);
    nc_client_send(cli, "hold", one, NULL, on_value, on_done, &c);
    json_decref(one);
    while (!held) uv_run(&loop, UV_RUN_ONCE);
    nc_server_health h;
    assert_int_equal(nc_server_health_get(srv, &h), 0);
    assert_true(h.ready && h.listening && h.connected && !h.draining);
    closed_done = 0;
    nc_server_close(srv, on_closed, NULL);
    http *r = get("GET /health/ready HTTP/1.1\r\n\r\n");
    assert_true(!strncmp(r->resp, "HTTP/1.1 503 ", 13));
    assert_non_null(
        strstr(r->resp, "{\"status\":\"error\",\"info\":{},\"error\":{\"tcp\":{\"status\":\"down\""));
    assert_non_null(strstr(r->resp, "\"draining\":true"));
    r = get("GET /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(r->resp, "nestc_ready 0\n"));
    assert_non_null(strstr(r->resp, "nestc_server_in_flight{transport=\"tcp\",route=\"hold\"} 1\n"));
    r = get("GET /health/live HTTP/1.1\r\n\r\n");
    assert_true(!strncmp(r->resp, "HTTP/1.1 200 OK\r\n", 17));
    nc_reply(held, json_integer(1));
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    call_free(&c);
    run_until(&closed_done, 1);
    tcp_free();
}

/* With workers, the server closes its endpoint through nc_admin_close_after: it stays until the count of
 * closed workers reaches the number of workers (other threads count; here the test does). */
static int admin_done;
static void on_admin_done(void *u) {
    (void)u;
    admin_done = 1;
}
static void test_admin_waits_for_workers(void **st) {
    (void)st;
    tcp_server_new(NULL);
    nc_admin *a;
    assert_int_equal(nc_admin_new(&a, srv, "127.0.0.1:0"), 0);
    assert_int_equal(nc_admin_listen(a), 0);
    http_port = nc_admin_port(a);
    _Atomic int closed = 0;
    admin_done = 0;
    nc_admin_close_after(a, &closed, 2, on_admin_done, NULL);
    http *c = get("GET /health/live HTTP/1.1\r\n\r\n");
    assert_true(!strncmp(c->resp, "HTTP/1.1 200 OK\r\n", 17)); /* still serving */
    atomic_store(&closed, 1);
    c = get("GET /health/live HTTP/1.1\r\n\r\n");
    assert_true(!strncmp(c->resp, "HTTP/1.1 200 OK\r\n", 17)); /* one worker left */
    assert_int_equal(admin_done, 0);
    atomic_store(&closed, 2);
    run_until(&admin_done, 1); /* the last one closed: the endpoint goes */
    c = get("GET /health/live HTTP/1.1\r\n\r\n");
    assert_int_equal(c->len, 0); /* refused */
    nc_admin_free(a);
    http_port = 0;
    nc_server_free(srv);
}

static void test_admin_bad_address(void **st) {
    (void)st;
    const char *bad[] = {"9464", ":9464", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:70000", "[::1:9464"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nc_server_opts o = NC_SERVER_OPTS_INIT;
        o.admin = bad[i];
        o.loop = &loop;
        nc_server *s = NULL;
        assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0", &o), NC_EINVAL);
        assert_null(s);
    }
    assert_null(nc_server_metrics(NULL));
    assert_int_equal(nc_metrics_outcome_of(NC_EREFUSED), NC_OUTCOME_HOOK_REFUSED);
    assert_string_equal(nc_metrics_outcome_name(NC_OUTCOME_CONN_LOST), "conn_lost");
}

/* ---- connections and wire bytes (nc_metrics_wire_*) ------------------------------------------------------
 */

static nc_metrics_wire wire_of(nc_metrics *m, nc_hook_side side) {
    nc_metrics_wire w;
    assert_int_equal(nc_metrics_wire_totals(m, side, &w), 0);
    return w;
}

/* Runs the loop until the side's open connections are `want` (5 s × the time factor). */
static void wait_connections(nc_metrics *m, nc_hook_side side, int64_t want) {
    int never = 0;
    for (int i = 0; i < 500 && wire_of(m, side).connections != want; i++) run_until_ms(&never, 1, 10);
    assert_int_equal(wire_of(m, side).connections, want);
}

static void wire_connected(uv_connect_t *cr, int status) {
    assert_int_equal(status, 0);
    *(int *)cr->data = 1;
}

/* Over TCP every byte one side writes the other reads: once the traffic stops the figures match. */
static void test_wire_tcp(void **st) {
    (void)st;
    nc_metrics *m;
    assert_int_equal(nc_metrics_new(&m, NULL), 0);
    tcp_server_new(NULL);
    nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL);
    assert_true(nc_metrics_watch_server(m, srv) > 0);
    tcp_listen_connect();
    assert_true(nc_metrics_watch_client(m, cli) > 0);
    nc_metrics_wire s = wire_of(m, NC_HOOK_SERVER), c = wire_of(m, NC_HOOK_CLIENT);
    assert_int_equal(s.opened + s.bytes_in + c.opened + c.bytes_out, 0); /* nothing before the first call */
    call_once("{\"cmd\":\"sum\"}", 0);
    s = wire_of(m, NC_HOOK_SERVER);
    c = wire_of(m, NC_HOOK_CLIENT);
    assert_int_equal(s.connections, 1);
    assert_int_equal(s.opened, 1);
    assert_int_equal(s.closed, 0);
    assert_int_equal(c.connections, 1);
    assert_int_equal(c.opened, 1);
    assert_int_equal(c.bytes_out, s.bytes_in);
    assert_int_equal(c.bytes_in, s.bytes_out);
    nc_metrics_series p;
    assert_int_equal(nc_metrics_totals(m, NC_HOOK_SERVER, &p), 0);
    assert_true(s.bytes_in > p.bytes_in); /* the payload and its framing */
    assert_true(s.bytes_out > p.bytes_out);
    for (int i = 0; i < 10; i++) call_once("{\"cmd\":\"sum\"}", 0);
    nc_metrics_wire s2 = wire_of(m, NC_HOOK_SERVER), c2 = wire_of(m, NC_HOOK_CLIENT);
    assert_true(s2.bytes_in >= s.bytes_in + 10 * strlen("[1,2,3]"));
    assert_true(s2.bytes_out >= s.bytes_out + 10);
    assert_int_equal(c2.bytes_out, s2.bytes_in);
    assert_int_equal(c2.bytes_in, s2.bytes_out);
    assert_int_equal(s2.opened, 1); /* one connection carried them all */

    char *text;
    assert_int_equal(nc_metrics_prometheus(m, srv, &text, NULL), 0);
    char want[160];
    assert_non_null(strstr(
        text, "# TYPE nestc_server_connections gauge\nnestc_server_connections{transport=\"tcp\"} 1\n"));
    assert_non_null(strstr(text, "nestc_client_connections_opened_total{transport=\"tcp\"} 1\n"));
    assert_non_null(
        strstr(text, "nestc_server_connections_closed_total{transport=\"tcp\",reason=\"error\"} 0\n"));
    snprintf(want, sizeof want, "nestc_server_wire_received_bytes_total{transport=\"tcp\"} %llu\n",
             (unsigned long long)s2.bytes_in);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "nestc_client_wire_sent_bytes_total{transport=\"tcp\"} %llu\n",
             (unsigned long long)c2.bytes_out);
    assert_non_null(strstr(text, want));
    free(text);

    /* the client goes: both sides count the close, an orderly one */
    nc_client_free(cli);
    cli = NULL;
    wait_connections(m, NC_HOOK_SERVER, 0);
    s = wire_of(m, NC_HOOK_SERVER);
    c = wire_of(m, NC_HOOK_CLIENT);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.closed_error, 0);
    assert_int_equal(c.connections, 0);
    assert_int_equal(c.closed, 1);
    /* a peer that resets: a close for an error */
    uv_tcp_t raw;
    uv_connect_t cr;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", nc_server_port(srv), &a);
    uv_tcp_init(&loop, &raw);
    int connected = 0;
    cr.data = &connected;
    assert_int_equal(uv_tcp_connect(&cr, &raw, (struct sockaddr *)&a, wire_connected), 0);
    run_until(&connected, 1);
    wait_connections(m, NC_HOOK_SERVER, 1);
    uv_write_t wr;
    uv_buf_t junk = uv_buf_init("12#{\"pattern\":", 14); /* half a packet, then the reset */
    uv_write(&wr, (uv_stream_t *)&raw, &junk, 1, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_tcp_close_reset(&raw, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* its close callback: the handle is on this frame */
    wait_connections(m, NC_HOOK_SERVER, 0);
    s = wire_of(m, NC_HOOK_SERVER);
    assert_int_equal(s.opened, 2);
    assert_int_equal(s.closed_error, 1);
    nc_server_free(srv);
    srv = NULL;
    /* the registry keeps the figures of what it watched */
    assert_int_equal(wire_of(m, NC_HOOK_SERVER).bytes_in, s.bytes_in);
    assert_int_equal(wire_of(m, NC_HOOK_CLIENT).bytes_out, c2.bytes_out);
    nc_metrics_free(m);
}

static void redis_exec(const broker *b, const char *port) {
    (void)b;
    const char *argv[] = {"redis-server", "--bind", "127.0.0.1",    "--port", port,
                          "--save",       "",       "--appendonly", "no",     NULL};
    execvp("redis-server", (char **)argv);
}

static int redis_connected;
static void on_redis_status(void *u, const char *status, int err) {
    (void)u, (void)err;
    if (!strcmp(status, "connected")) redis_connected++;
}

/* A broker transport: the server's connections are the ones it makes to the broker. */
static void test_wire_redis(void **st) {
    (void)st;
    broker b = {0};
    broker_start_with(&b, time_factor(), redis_exec);
    char u[96];
    snprintf(u, sizeof u, "redis://127.0.0.1:%d", b.port);
    nc_metrics *m;
    assert_int_equal(nc_metrics_new(&m, NULL), 0);
    nc_server_opts so = {.loop = &loop, .log_level = NC_LOG_OFF};
    assert_int_equal(nc_server_new(&srv, u, &so), 0);
    nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL);
    assert_true(nc_metrics_watch_server(m, srv) > 0);
    redis_connected = 0;
    nc_server_on_status(srv, on_redis_status, NULL);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&redis_connected, 1, 5000));
    nc_metrics_wire s0 = wire_of(m, NC_HOOK_SERVER);
    assert_true(s0.connections >= 1); /* subscriber and publisher */
    assert_int_equal(s0.opened, (uint64_t)s0.connections);
    assert_true(s0.bytes_out > 0); /* SUBSCRIBE */
    nc_client_opts co = {.loop = &loop, .log_level = NC_LOG_OFF};
    assert_int_equal(nc_client_new(&cli, u, &co), 0);
    assert_true(nc_metrics_watch_client(m, cli) > 0);
    call_once("{\"cmd\":\"sum\"}", 0);
    nc_metrics_wire s1 = wire_of(m, NC_HOOK_SERVER), c1 = wire_of(m, NC_HOOK_CLIENT);
    assert_true(c1.connections >= 1);
    for (int i = 0; i < 10; i++) call_once("{\"cmd\":\"sum\"}", 0);
    nc_metrics_wire s2 = wire_of(m, NC_HOOK_SERVER), c2 = wire_of(m, NC_HOOK_CLIENT);
    assert_true(s2.bytes_in >= s1.bytes_in + 10 * strlen("[1,2,3]"));
    assert_true(s2.bytes_out >= s1.bytes_out + 10);
    assert_true(c2.bytes_out >= c1.bytes_out + 10 * strlen("[1,2,3]"));
    assert_true(c2.bytes_in > c1.bytes_in);
    assert_int_equal(s2.opened, s0.opened); /* the same broker connections */
    nc_client_free(cli);
    cli = NULL;
    nc_metrics_wire c3 = wire_of(m, NC_HOOK_CLIENT);
    assert_int_equal(c3.connections, 0);
    assert_int_equal(c3.closed, c3.opened);
    nc_server_free(srv);
    srv = NULL;
    nc_metrics_wire s3 = wire_of(m, NC_HOOK_SERVER);
    assert_int_equal(s3.connections, 0);
    assert_int_equal(s3.closed, s3.opened);
    assert_true(s3.bytes_in >= s2.bytes_in);
    nc_metrics_free(m);
    broker_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse),
        cmocka_unit_test(test_counts_and_exposition),
        cmocka_unit_test(test_route_cap),
        cmocka_unit_test(test_admin_routes),
        cmocka_unit_test(test_admin_connection_cap),
        cmocka_unit_test(test_admin_draining),
        cmocka_unit_test(test_admin_waits_for_workers),
        cmocka_unit_test(test_admin_bad_address),
        cmocka_unit_test(test_wire_tcp),
        cmocka_unit_test(test_wire_redis),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
