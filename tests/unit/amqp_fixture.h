/* The fixture of the RabbitMQ unit tests, in two parts a test picks by what it defines before including it.
 *
 * AMQP_FIXTURE_NAME (the binary's name; include after broker_harness.h and rabbit_harness.h): the real
 * rabbitmq-server of the binary (R, started by the test's setup), servers on this loop that count their
 * status events, a time limit that stops the broker before ctest would kill the binary (a test's own
 * processes first, through amqp_fixture_on_alarm), and the end of the loop that cannot hang on what a failed
 * test left open.
 *
 * AMQP_FIXTURE_FAKE (include after the test's fake, with uv_tcp_t lst and int port, open, and its peer, with
 * uv_tcp_t h, fake *f and nc_amqp_parser parser): the plumbing of a fake broker written with plain libuv
 * on the test's loop: its listener, its clients accepted, its read buffer, the writes of bytes and methods
 * to a client. */
#ifndef NESTC_TEST_AMQP_FIXTURE_H
#define NESTC_TEST_AMQP_FIXTURE_H

/* The loop of a test binary, logging off. */
static inline void amqp_loop_begin(void) {
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    uv_loop_init(&loop);
}

/* Runs what is left on the loop (a bounded while), then closes it; what stays open is printed. */
static inline int amqp_loop_end(void) {
    int never = 0;
    for (int i = 0; i < 300 && uv_loop_alive(&loop); i++) run_until_ms(&never, 1, 10);
    int r = uv_loop_close(&loop);
    if (r) uv_print_all_handles(&loop, stderr);
    return r;
}

#ifdef AMQP_FIXTURE_NAME

static void broker_exec(const broker *b, const char *port) {
    (void)b;
    (void)port;
}

static rabbit R;

typedef struct srv_st {
    int connected, disconnected, err;
} srv_st;

static inline void on_srv_status(void *u, const char *status, int err) {
    srv_st *s = u;
    if (!strcmp(status, "connected")) s->connected++;
    if (!strcmp(status, "disconnected")) s->disconnected++, s->err = err;
}

/* A server's options on this loop: quiet, retrying fast, a short shutdown. */
static inline nc_server_opts amqp_server_opts(void) {
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.retry_delay_ms = 100;
    o.shutdown_timeout_ms = 500;
    return o;
}

/* A server with options o whose status events *st counts. */
static inline nc_server *server_new_opts(const char *u, const nc_server_opts *o, srv_st *st) {
    nc_server *srv;
    assert_int_equal(nc_server_new(&srv, u, o), 0);
    nc_server_on_status(srv, on_srv_status, st);
    return srv;
}

#ifndef AMQP_FIXTURE_OWN_SERVER_NEW
static inline nc_server *server_new(const char *u, srv_st *st) {
    nc_server_opts o = amqp_server_opts();
    return server_new_opts(u, &o, st);
}
#endif

static inline void listen_until_connected(nc_server *srv, srv_st *st) {
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&st->connected, 1, 20000));
}

/* A call's reply (a new reference); the call must succeed. data is borrowed by the call. */
static inline json_t *ask_opts(nc_client *c, const char *route, json_t *data, const nc_call_opts *o) {
    call k = {0};
    assert_int_equal(nc_client_send(c, route, data, o, on_value, on_done, &k), 0);
    json_decref(data); /* borrowed by the call */
    assert_true(run_until_ms(&k.done, 1, 10000));
    if (k.err) fprintf(stderr, "call %s failed: %d %s\n", route, k.err, k.msg);
    assert_int_equal(k.err, 0);
    json_t *v = json_incref(k.last);
    call_clear(&k);
    return v;
}

/* A call of route without data, waited for: its outcome in *k (call_clear it). */
static inline void call_wait(nc_client *c, const char *route, call *k) {
    assert_int_equal(nc_client_send(c, route, NULL, NULL, on_value, on_done, k), 0);
    assert_true(run_until_ms(&k->done, 1, 10000));
}

/* Set by a test that starts processes of its own: called first when the time limit is reached. */
static void (*amqp_fixture_on_alarm)(void);

/* A test that hangs ends the binary: the broker stopped first. */
static void amqp_fixture_alarm(int sig) {
    (void)sig;
    if (amqp_fixture_on_alarm) amqp_fixture_on_alarm();
    if (R.b.pid > 0) kill(R.b.pid, SIGTERM);
    if (R.epmd > 0) kill(R.epmd, SIGTERM);
    static const char msg[] = AMQP_FIXTURE_NAME ": time limit reached, stopped\n";
    if (write(2, msg, sizeof msg - 1)) {
    }
    _exit(1);
}

/* The binary's own broker: stopped by the group's teardown. */
static inline int amqp_fixture_setup(void **st) {
    (void)st;
    amqp_loop_begin();
    rabbit_start(&R, time_factor());
    return 0;
}

static inline int amqp_fixture_teardown(void **st) {
    (void)st;
    rabbit_free(&R);
    return amqp_loop_end();
}

/* Runs the group under the time limit (before ctest's 120 s: the broker is stopped, not orphaned). */
#define amqp_fixture_run(tests, setup, teardown)                                                             \
    (signal(SIGALRM, amqp_fixture_alarm), alarm(110u * (unsigned)time_factor()),                             \
     cmocka_run_group_tests(tests, setup, teardown))

/* Skipped, as a success, when rabbitmq-server is not installed. */
#define AMQP_FIXTURE_NEED_RABBIT()                                                                           \
    do {                                                                                                     \
        if (!rabbit_installed()) {                                                                           \
            printf("rabbitmq-server not installed: skipped\n");                                              \
            return 0;                                                                                        \
        }                                                                                                    \
    } while (0)

#endif /* AMQP_FIXTURE_NAME */

#ifdef AMQP_FIXTURE_FAKE

static char rbuf[65536];
static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    (void)h;
    (void)n;
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_written(uv_write_t *w, int status) {
    (void)status;
    free(w);
}

/* Bytes to the client, copied: the write owns them. */
static void say(peer *p, const char *bytes, size_t n) {
    uv_write_t *w = malloc(sizeof *w + n);
    memcpy((char *)(w + 1), bytes, n);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)n);
    uv_write(w, (uv_stream_t *)&p->h, &b, 1, on_written);
}

static void say_method(peer *p, nc_amqp_method *m) {
    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_amqp_write_method(&b, m), 0);
    say(p, b.data, b.len);
    nc_buf_free(&b);
}

/* The broker's first word after the protocol header. */
static void say_start(peer *p) {
    nc_amqp_method m = {.id = NC_AMQP_CONNECTION_START, .version_major = 0, .version_minor = 9};
    m.mechanisms = (nc_amqp_span){"PLAIN AMQPLAIN", 14};
    m.locales = (nc_amqp_span){"en_US", 5};
    say_method(p, &m);
}

/* The test's fake f listening on a free loopback port (f->port), on_conn called for each client. */
static void fake_listen(fake *f, uv_connection_cb on_conn) {
    uv_tcp_init(&loop, &f->lst);
    f->lst.data = f;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&f->lst, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->lst, 16, on_conn), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&f->lst, (struct sockaddr *)&got, &len);
    f->port = ntohs(got.sin_port);
}

/* A client of listener l as a peer of its fake, read by on_read (counted in f->open until closed, which
 * closed does); NULL when the accept failed. */
static peer *fake_accept(uv_stream_t *l, uv_close_cb closed, uv_read_cb on_read) {
    fake *f = l->data;
    peer *p = calloc(1, sizeof *p);
    p->f = f;
    nc_amqp_parser_init(&p->parser, NC_AMQP_ROLE_SERVER);
    uv_tcp_init(&loop, &p->h);
    p->h.data = p;
    f->open++;
    if (uv_accept(l, (uv_stream_t *)&p->h)) {
        uv_close((uv_handle_t *)&p->h, closed);
        return NULL;
    }
    uv_read_start((uv_stream_t *)&p->h, on_alloc, on_read);
    return p;
}

#endif /* AMQP_FIXTURE_FAKE */

#endif
