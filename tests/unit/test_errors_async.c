/* The reasons of asynchronous failures (client.h, nc_done_fn): each call fails with a code and an error
 * string that says what happened, and the client's error callback gets the same reason:
 *   - a peer that is no NestJS service (it answers "HTTP/1.1 400 ..." and hangs up), a peer that hangs up in
 *     the middle of a packet, TLS to a plain port (the peer hangs up, or answers in plain text);
 *   - a refused connect names the address;
 *   - timeouts say which phase: connecting (the connect timeout, or the request timeout while still
 *     connecting) or waiting for the reply; connecting stays bounded with the request timeout off;
 *   - "no handler": NC_ENOHANDLER with the server's value as received (TCP).
 * The peers are plain libuv servers on the test's loop; the blackhole is a listener whose backlog is full, so
 * the kernel drops our SYNs (deterministic on loopback, no routing needed). */
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "loop_fixture.h"

/* ---- one call ------------------------------------------------------------------------------------------ */

typedef struct call {
    int err, done;
    char error[512];
} call;

static void on_done(void *u, int err, json_t *e) {
    call *c = u;
    c->err = err;
    snprintf(c->error, sizeof c->error, "%s", json_is_string(e) ? json_string_value(e) : "(not a string)");
    c->done++;
}

static char cb_error[512]; /* what nc_client_on_error got last */
static void on_error(void *u, int err, const char *msg) {
    (void)u;
    (void)err;
    snprintf(cb_error, sizeof cb_error, "%s", msg ? msg : "");
}

#define assert_contains(hay, needle)                                                                         \
    do {                                                                                                     \
        if (!strstr((hay), (needle))) fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));           \
    } while (0)

/* The call and connect timeouts of the cases whose point is another error: far beyond what they wait for, and
 * scaled, because under valgrind on a loaded machine creating a TLS context and its handshake alone took
 * more than 5 s. */
#define BOUND_MS (5000 * time_factor())

/* Sends one request on a new client of `url` and runs until it is done. */
static call send_one(const char *url, int timeout_ms, int connect_timeout_ms) {
    nc_client_opts o = {.struct_size = sizeof o,
                        .loop = &loop,
                        .timeout_ms = timeout_ms,
                        .connect_timeout_ms = connect_timeout_ms};
    nc_tls_opts t = {.struct_size = sizeof t, .insecure_skip_verify = 1};
    if (!strncmp(url, "tls", 3)) o.tls = &t;
    nc_client *c = NULL;
    assert_int_equal(nc_client_new(&c, url, &o), 0);
    nc_client_on_error(c, on_error, NULL);
    cb_error[0] = '\0';
    call k = {0};
    assert_int_equal(nc_client_send(c, "x", NULL, NULL, NULL, on_done, &k), 0);
    run_until(&k.done, 1);
    nc_client_free(c);
    uv_run(&loop, UV_RUN_NOWAIT);
    return k;
}

/* ---- a peer that answers the first bytes it reads with `answer`, then hangs up ------------------------- */

typedef struct peer {
    uv_tcp_t srv;
    int port;
    const char *answer; /* NULL: hang up at once; "": never answer, never hang up (until peer_stop) */
    int first;          /* speaks first: writes `answer` as soon as it accepts (as a NATS server greets) */
    struct pconn *silent[8];
    int nsilent;
} peer;

typedef struct pconn {
    uv_tcp_t h;
    peer *p;
    uv_write_t w;
    char buf[4096];
} pconn;

static void pconn_closed(uv_handle_t *h) {
    free(h->data);
}

static void written(uv_write_t *w, int status) {
    (void)status;
    pconn *c = w->data;
    uv_close((uv_handle_t *)&c->h, pconn_closed);
}

static void palloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    (void)n;
    pconn *c = h->data;
    *b = uv_buf_init(c->buf, sizeof c->buf);
}

static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    (void)b;
    pconn *c = s->data;
    if (n == 0) return;
    uv_read_stop(s);
    if (n < 0 || !c->p->answer) {
        uv_close((uv_handle_t *)&c->h, pconn_closed);
        return;
    }
    if (!*c->p->answer) { /* silent: keeps the connection, reads no more */
        if (c->p->nsilent < 8) c->p->silent[c->p->nsilent++] = c;
        return;
    }
    uv_buf_t out = uv_buf_init((char *)c->p->answer, (unsigned)strlen(c->p->answer));
    c->w.data = c;
    uv_write(&c->w, s, &out, 1, written);
}

static void pconnection(uv_stream_t *srv, int status) {
    if (status < 0) return;
    pconn *c = calloc(1, sizeof *c);
    c->p = srv->data;
    uv_tcp_init(&loop, &c->h);
    c->h.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->h)) {
        uv_close((uv_handle_t *)&c->h, pconn_closed);
        return;
    }
    if (c->p->first) {
        uv_buf_t out = uv_buf_init((char *)c->p->answer, (unsigned)strlen(c->p->answer));
        c->w.data = c;
        uv_write(&c->w, (uv_stream_t *)&c->h, &out, 1, written);
        return;
    }
    uv_read_start((uv_stream_t *)&c->h, palloc, peer_read);
}

static void peer_start(peer *p, const char *answer) {
    p->answer = answer;
    p->first = 0;
    p->nsilent = 0;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &p->srv);
    p->srv.data = p;
    assert_int_equal(uv_tcp_bind(&p->srv, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->srv, 16, pconnection), 0);
    int len = sizeof a;
    uv_tcp_getsockname(&p->srv, (struct sockaddr *)&a, &len);
    p->port = ntohs(a.sin_port);
}

static void peer_stop(peer *p) {
    for (int i = 0; i < p->nsilent; i++) uv_close((uv_handle_t *)&p->silent[i]->h, pconn_closed);
    p->nsilent = 0;
    uv_close((uv_handle_t *)&p->srv, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* Short enough for the framer to wait for the '#' of a length prefix (at most 64 bytes) */
static const char http400[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
/* Longer: the framer refuses it as a length prefix before the peer hangs up */
static const char http400_long[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/* ---- cases --------------------------------------------------------------------------------------------- */

static void test_http_peer(void **st) {
    (void)st;
    static peer p; /* its handle outlives a failed assertion: keep it off the stack */
    peer_start(&p, http400);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", p.port);
    call k = send_one(url, BOUND_MS, BOUND_MS);
    assert_int_equal(k.err, NC_EPROTO);
    assert_string_equal(k.error,
                        "the peer closed the connection after sending data that is not a NestJS packet: "
                        "\"HTTP/1.1 400 Bad Request\\r\\n\\r\\n\"");
    assert_contains(cb_error, "not a NestJS packet");
    peer_stop(&p);
    peer_start(&p, http400_long);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", p.port);
    k = send_one(url, BOUND_MS, BOUND_MS);
    assert_int_equal(k.err, NC_EPROTO);
    assert_contains(k.error, "the peer sent data that is not a NestJS packet: Corrupted length value "
                             "\"HTTP/1.1 400 Bad Request\\r\\n");
    peer_stop(&p);
}

static void test_midframe(void **st) {
    (void)st;
    static peer p; /* its handle outlives a failed assertion: keep it off the stack */
    peer_start(&p, "100#{\"id\":");
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", p.port);
    call k = send_one(url, BOUND_MS, BOUND_MS);
    assert_int_equal(k.err, NC_ECONNCLOSED);
    assert_contains(k.error, "Connection closed in the middle of a packet (10 bytes of it received)");
    peer_stop(&p);
}

static void test_plain_close_is_connection_closed(void **st) {
    (void)st;
    static peer p; /* its handle outlives a failed assertion: keep it off the stack */
    peer_start(&p, NULL);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", p.port);
    call k = send_one(url, BOUND_MS, BOUND_MS);
    assert_int_equal(k.err, NC_ECONNCLOSED);
    assert_string_equal(k.error, "Connection closed"); /* NestJS's words: nothing more is known */
    peer_stop(&p);
}

static void test_tls_to_plain_port(void **st) {
    (void)st;
    static peer p;        /* its handle outlives a failed assertion: keep it off the stack */
    peer_start(&p, NULL); /* a NestJS TCP server reads the ClientHello as a bad length and hangs up */
    char url[64];
    snprintf(url, sizeof url, "tls://127.0.0.1:%d", p.port);
    call k = send_one(url, BOUND_MS, BOUND_MS);
    assert_int_equal(k.err, NC_ETLS);
    assert_contains(k.error, "TLS handshake failed: the peer closed the connection without answering in TLS "
                             "(is it a plain tcp:// port?)");
    peer_stop(&p);
    peer_start(&p, http400); /* answers in plain text */
    snprintf(url, sizeof url, "tls://127.0.0.1:%d", p.port);
    k = send_one(url, BOUND_MS, BOUND_MS);
    assert_int_equal(k.err, NC_ETLS);
    assert_contains(k.error,
                    "TLS handshake failed: the peer did not answer in TLS (is it a plain tcp:// port?)");
    assert_contains(cb_error, "TLS handshake failed");
    peer_stop(&p);
}

static void test_redis_not_redis(void **st) {
    (void)st;
    static peer p; /* its handle outlives a failed assertion: keep it off the stack */
    peer_start(&p, http400);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", p.port);
    call k = send_one(url, BOUND_MS, BOUND_MS);
    assert_int_equal(k.err, NC_EPROTO);
    assert_contains(k.error, "protocol error");
    assert_contains(k.error, "is it a Redis server?");
    peer_stop(&p);
}

static void test_nats_not_nats(void **st) {
    (void)st;
    static peer p;
    peer_start(&p, http400);
    p.first = 1;
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", p.port);
    call k = send_one(url, BOUND_MS, BOUND_MS);
    assert_int_equal(k.err, NC_EPROTO);
    assert_contains(k.error,
                    "the peer is not a NATS server (no INFO greeting): unknown operation \"HTTP/1.1\"");
    peer_stop(&p);
}

static void test_nats_silent_peer(void **st) {
    (void)st;
    static peer p;
    peer_start(&p, ""); /* accepts, never speaks: a NATS server greets first */
    char url[64], want[160];
    int ms = 200 * time_factor();
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", p.port);
    call k = send_one(url, NC_LIMIT_OFF, ms);
    assert_int_equal(k.err, NC_ETIMEDOUT);
    snprintf(
        want, sizeof want,
        "connecting to 127.0.0.1:%d timed out after %d ms: connected, but no INFO greeting came (is it a "
        "NATS server?)",
        p.port, ms);
    assert_contains(k.error, want);
    peer_stop(&p);
}

/* A port nobody listens on: bound, never listened, closed. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_refused_names_address(void **st) {
    (void)st;
    int port = free_port();
    char url[64], want[64];
    const char *schemes[] = {"tcp", "redis", "nats"};
    for (int i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "%s://127.0.0.1:%d", schemes[i], port);
        call k = send_one(url, BOUND_MS, BOUND_MS);
        assert_int_equal(k.err, NC_ECONNREFUSED);
        snprintf(want, sizeof want, "connect ECONNREFUSED 127.0.0.1:%d", port);
        assert_contains(k.error, want);
    }
}

/* A listener with a backlog of 0 holding one connection it never accepts: the kernel drops further SYNs,
 * so a connect to it waits for its timeout. */
typedef struct blackhole {
    int lfd, cfd, port;
} blackhole;

static blackhole blackhole_open(void) {
    blackhole b;
    b.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(b.lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(b.lfd, 0), 0);
    getsockname(b.lfd, (struct sockaddr *)&a, &len);
    b.port = ntohs(a.sin_port);
    b.cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(b.cfd, (struct sockaddr *)&a, sizeof a), 0); /* fills the queue */
    return b;
}

static void blackhole_close(blackhole *b) {
    close(b->cfd);
    close(b->lfd);
}

static void test_connect_timeout(void **st) {
    (void)st;
    blackhole b = blackhole_open();
    char url[64], want[96];
    int ms = 200 * time_factor();
    /* the request timeout off: connecting is still bounded, by the connect timeout */
    const char *schemes[] = {"tcp", "redis", "nats"};
    for (int i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "%s://127.0.0.1:%d", schemes[i], b.port);
        call k = send_one(url, NC_LIMIT_OFF, ms);
        assert_int_equal(k.err, NC_ETIMEDOUT);
        snprintf(want, sizeof want, "connecting to 127.0.0.1:%d timed out after %d ms", b.port, ms);
        assert_contains(k.error, want);
    }
    blackhole_close(&b);
}

static void test_request_timeout_while_connecting(void **st) {
    (void)st;
    blackhole b = blackhole_open();
    char url[64], want[160];
    int ms = 200 * time_factor();
    const char *schemes[] = {"tcp", "redis", "nats"};
    for (int i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "%s://127.0.0.1:%d", schemes[i], b.port);
        call k = send_one(url, ms, 0); /* the connect timeout: its default, 5000 ms */
        assert_int_equal(k.err, NC_ETIMEDOUT);
        snprintf(want, sizeof want,
                 "Timeout has occurred: not connected to %s within the request timeout of %d ms", url, ms);
        assert_contains(k.error, want);
    }
    blackhole_close(&b);
}

static void test_no_reply_timeout(void **st) {
    (void)st;
    static peer p;      /* its handle outlives a failed assertion: keep it off the stack */
    peer_start(&p, ""); /* reads the request, never answers */
    char url[64], want[64];
    int ms = 200 * time_factor();
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", p.port);
    call k = send_one(url, ms, 0);
    assert_int_equal(k.err, NC_ETIMEDOUT);
    snprintf(want, sizeof want, "Timeout has occurred: no reply within %d ms", ms);
    assert_contains(k.error, want);
    peer_stop(&p);
}

/* TCP: a server without a handler for the pattern answers with NestJS's text: NC_ENOHANDLER, the value as
 * received. A handler's own error stays NC_EREMOTE. */
static void failing(nc_request *req, const nc_msg *msg, void *u) {
    (void)msg;
    (void)u;
    nc_reply_error(req, json_string("There is no matching message handler defined in the remote service!"));
}

static void test_no_handler_tcp(void **st) {
    (void)st;
    nc_server_opts so = {.struct_size = sizeof so, .loop = &loop};
    nc_server *s = NULL;
    assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0", &so), 0);
    assert_int_equal(nc_server_message(s, "fails", failing, NULL), 0);
    assert_int_equal(nc_server_listen(s), 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", nc_server_port(s));
    call k = send_one(url, BOUND_MS, BOUND_MS); /* pattern "x": no handler */
    assert_int_equal(k.err, NC_ENOHANDLER);
    assert_string_equal(k.error, "There is no matching message handler defined in the remote service.");

    nc_client_opts o = {.struct_size = sizeof o, .loop = &loop};
    nc_client *c = NULL;
    assert_int_equal(nc_client_new(&c, url, &o), 0);
    call e = {0};
    assert_int_equal(nc_client_send(c, "fails", NULL, NULL, NULL, on_done, &e), 0);
    run_until(&e.done, 1);
    assert_int_equal(e.err, NC_EREMOTE);
    nc_client_free(c);
    nc_server_free(s);
    uv_run(&loop, UV_RUN_NOWAIT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_peer),
        cmocka_unit_test(test_midframe),
        cmocka_unit_test(test_plain_close_is_connection_closed),
        cmocka_unit_test(test_tls_to_plain_port),
        cmocka_unit_test(test_redis_not_redis),
        cmocka_unit_test(test_nats_not_nats),
        cmocka_unit_test(test_nats_silent_peer),
        cmocka_unit_test(test_refused_names_address),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_request_timeout_while_connecting),
        cmocka_unit_test(test_no_reply_timeout),
        cmocka_unit_test(test_no_handler_tcp),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
