/* Several brokers in one amqp:// URL (`amqp://h1:p1,h2:p2/vhost`) and the SASL mechanism option, against a
 * real rabbitmq-server (the run's shared broker named by NESTC_RMQ_ENV, else NESTC_RMQ_URL, else one
 * started here) and fake brokers on the test's loop: a listener that accepts and closes (counted), and a
 * proxy to the real broker whose connections the test cuts. What is checked: every other scheme still reads
 * a comma in the authority as before host lists; the list's errors; a first broker that is not there (server
 * and client serve through the second); after a lost connection the next attempt goes to the next broker
 * (round robin, as amqp-connection-manager), the log naming it; maxConnectionAttempts counting attempts
 * across the brokers; authMechanism=EXTERNAL refused with the broker's mechanisms named when the broker does
 * not offer it. Skipped (the broker cases) when rabbitmq-server is not installed. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <glob.h>

#include "broker_harness.h"
#include "rabbit_harness.h"

#define AMQP_FIXTURE_NAME "test_amqp_failover"
#define AMQP_FIXTURE_OWN_SERVER_NEW /* its own: logs captured, a handler added */
#include "amqp_fixture.h"

static int have_broker;
static char certs[128]; /* gen-certs.sh's directory (ca.pem, client.pem, client.key), or "" */
static int own_certs;

/* The real broker's plain port (R.url is amqp://127.0.0.1:P). */
static int real_port(void) {
    const char *c = strrchr(R.url, ':');
    return c ? atoi(c + 1) : 0;
}

static unsigned uniq(void) {
    return (unsigned)(uv_hrtime() & 0xffffff);
}

/* ---- the log ---------------------------------------------------------------------------------------- */

typedef struct logcap {
    int connected_lines; /* "connected to the AMQP broker at" */
    char last_connected[300];
    int giving_up;
} logcap;

static void on_log(void *u, nc_log_level level, const char *component, const char *message) {
    (void)level;
    (void)component;
    logcap *l = u;
    if (strstr(message, "connected to the AMQP broker at")) {
        l->connected_lines++;
        snprintf(l->last_connected, sizeof l->last_connected, "%s", message);
    }
    if (strstr(message, "giving up")) l->giving_up++;
}

static nc_server *server_new(const char *u, srv_st *st, logcap *l) {
    nc_server_opts o = amqp_server_opts();
    o.log = on_log;
    o.log_user = l;
    o.log_level = NC_LOG_DEBUG;
    nc_server *srv = server_new_opts(u, &o, st);
    assert_int_equal(nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL), 0);
    return srv;
}

static json_t *ask(nc_client *c, const char *route, json_t *data) {
    return ask_opts(c, route, data, NULL);
}

static void expect_sum(nc_client *c, int a, int b) {
    json_t *r = ask(c, "{\"cmd\":\"sum\"}", json_pack("[i,i]", a, b));
    assert_int_equal(json_integer_value(r), a + b);
    json_decref(r);
}

/* ---- fake brokers: a closer (accepts, closes) and a proxy to the real broker ------------------------- */

enum { F_CLOSE, F_PROXY };

typedef struct pconn pconn;
typedef struct fake {
    uv_tcp_t lst;
    int port, mode, target;
    int accepted;
    pconn *conns[16];
} fake;

struct pconn {
    uv_tcp_t a, b; /* a: from nestc; b: to the broker */
    uv_connect_t cr;
    fake *f;
    int handles, slot, closing;
};

static char pbuf[65536];
static void p_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    (void)h;
    (void)n;
    *b = uv_buf_init(pbuf, sizeof pbuf);
}

static void p_closed(uv_handle_t *h) {
    pconn *p = h->data;
    if (--p->handles == 0) free(p);
}

static void p_close(pconn *p) {
    if (p->closing) return;
    p->closing = 1;
    if (p->slot >= 0) p->f->conns[p->slot] = NULL;
    uv_close((uv_handle_t *)&p->a, p_closed);
    uv_close((uv_handle_t *)&p->b, p_closed);
}

static void p_written(uv_write_t *w, int status) {
    (void)status;
    free(w);
}

static void p_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    pconn *p = s->data;
    if (n < 0) {
        p_close(p);
        return;
    }
    if (n == 0 || p->closing) return;
    uv_stream_t *to = s == (uv_stream_t *)&p->a ? (uv_stream_t *)&p->b : (uv_stream_t *)&p->a;
    uv_write_t *w = malloc(sizeof *w + (size_t)n);
    memcpy((char *)(w + 1), buf->base, (size_t)n);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)n);
    if (uv_write(w, to, &b, 1, p_written)) free(w);
}

static void p_connected(uv_connect_t *cr, int status) {
    pconn *p = cr->data;
    if (p->closing) return;
    if (status) {
        p_close(p);
        return;
    }
    uv_read_start((uv_stream_t *)&p->a, p_alloc, p_read);
    uv_read_start((uv_stream_t *)&p->b, p_alloc, p_read);
}

static void on_fake_conn(uv_stream_t *srv, int status) {
    fake *f = srv->data;
    if (status) return;
    pconn *p = calloc(1, sizeof *p);
    p->f = f;
    p->slot = -1;
    p->handles = 2;
    uv_tcp_init(&loop, &p->a);
    uv_tcp_init(&loop, &p->b);
    p->a.data = p->b.data = p->cr.data = p;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&p->a), 0);
    f->accepted++;
    if (f->mode == F_CLOSE) {
        p_close(p);
        return;
    }
    for (int i = 0; i < 16; i++)
        if (!f->conns[i]) {
            f->conns[i] = p;
            p->slot = i;
            break;
        }
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", f->target, &sa);
    uv_tcp_connect(&p->cr, &p->b, (const struct sockaddr *)&sa, p_connected);
}

static void fake_start(fake *f, int mode, int target) {
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->target = target;
    uv_tcp_init(&loop, &f->lst);
    f->lst.data = f;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&f->lst, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->lst, 16, on_fake_conn), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&f->lst, (struct sockaddr *)&ss, &len);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Cuts every proxied connection (the broker sees its client go, nestc sees the broker go). */
static void fake_cut(fake *f) {
    for (int i = 0; i < 16; i++)
        if (f->conns[i]) p_close(f->conns[i]);
}

static void lst_closed(uv_handle_t *h) {
    ((fake *)h->data)->port = 0;
}

/* Returns once the listener is closed (the fake lives on the test's stack). */
static void fake_stop(fake *f) {
    fake_cut(f);
    uv_close((uv_handle_t *)&f->lst, lst_closed);
    while (f->port) uv_run(&loop, UV_RUN_ONCE);
}

/* ---- cases ------------------------------------------------------------------------------------------- */

static int expect_refused(const char *url, int server) {
    int r;
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    if (server) {
        nc_server_opts o = {0};
        o.loop = &loop;
        o.log_level = NC_LOG_OFF;
        nc_server *s = NULL;
        r = nc_server_new(&s, url, &o);
        if (!r) nc_server_free(s);
    } else {
        nc_client_opts o = {0};
        o.loop = &loop;
        o.log_level = NC_LOG_OFF;
        nc_client *c = NULL;
        r = nc_client_new(&c, url, &o);
        if (!r) nc_client_free(c);
    }
    return r;
}

/* Every scheme but amqp reads the authority as one host, as before lists: "h1:1,h2:2" is an invalid port,
 * "h1,h2:1" the host "h1,h2". */
static void test_other_schemes_unchanged(void **st) {
    (void)st;
    static const char *urls[] = {"tcp://127.0.0.1:1,127.0.0.1:2", "redis://127.0.0.1:1,127.0.0.1:2",
                                 "nats://127.0.0.1:1,127.0.0.1:2", "mqtt://127.0.0.1:1,127.0.0.1:2"};
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++)
        for (int server = 0; server < 2; server++) {
            assert_int_equal(expect_refused(urls[i], server), NC_EINVAL);
            char want[120];
            snprintf(want, sizeof want, "invalid port in URL \"%s\"", urls[i]);
            assert_non_null(strstr(nc_last_error(), want));
        }
    /* an IPv6 first entry followed by a comma: "invalid URL", as before */
    assert_int_equal(expect_refused("tcp://[::1],127.0.0.1:2", 0), NC_EINVAL);
    assert_non_null(strstr(nc_last_error(), "invalid URL \"tcp://[::1],127.0.0.1:2\""));
    assert_int_equal(expect_refused("nats://[::1]:1,[::1]:2", 1), NC_EINVAL);
    assert_non_null(strstr(nc_last_error(), "invalid port in URL \"nats://[::1]:1,[::1]:2\""));
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, "tcp://a,b:1", &o), 0); /* the host "a,b", failing when it connects */
    nc_client_free(c);
    /* a bad port in the first entry is the parser's error for every scheme, amqp included */
    assert_int_equal(expect_refused("amqp://127.0.0.1:x,127.0.0.1:2", 0), NC_EINVAL);
    assert_int_equal(expect_refused("tcp://127.0.0.1:99999,127.0.0.1:2", 0), NC_EINVAL);
}

static void test_list_errors(void **st) {
    (void)st;
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"amqp://127.0.0.1:5672,127.0.0.1:70000?queue=q", "invalid port in the host list"},
        {"amqp://127.0.0.1:5672,:5673?queue=q", "an empty host in the list"},
        {"amqp://127.0.0.1:5672,?queue=q", "an empty host in the list"},
        {"amqp://127.0.0.1:5672,127.0.0.1:0?queue=q", "port 0 in the host list"},
        {"amqp://127.0.0.1:5672,[::1?queue=q", "unterminated IPv6 address"},
        {"amqp://127.0.0.1?queue=q&authMechanism=CRAM-MD5", "PLAIN or EXTERNAL"},
        {"amqp://127.0.0.1?queue=q&authMechanism=EXTERNAL", "needs amqps:// and a client certificate"},
        {"amqps://127.0.0.1?queue=q&authMechanism=EXTERNAL", "needs amqps:// and a client certificate"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        for (int server = 0; server < 2; server++) {
            assert_int_equal(expect_refused(bad[i].url, server), NC_EINVAL);
            if (!strstr(nc_last_error(), bad[i].why))
                fprintf(stderr, "%s: %s\n", bad[i].url, nc_last_error());
            assert_non_null(strstr(nc_last_error(), bad[i].why));
        }
    /* what is accepted: IPv6, default ports, case-insensitive mechanism names */
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    nc_client *c;
    assert_int_equal(
        nc_client_new(&c, "amqp://u:p@[::1]:5672,localhost,127.0.0.1:5673/vh?queue=q&authMechanism=plain",
                      &o),
        0);
    nc_client_free(c);
    assert_int_equal(nc_client_new(&c, "amqps://[::1],[::1]:5673?queue=q", &o), 0);
    nc_client_free(c);
}

/* maxConnectionAttempts counts attempts across the brokers, which are tried in turn: the shared policy's
 * count for 2 (the first connection and two more) on two closers goes to the first, the second, the
 * first. */
static void test_attempts_across_brokers(void **st) {
    (void)st;
    fake a, b;
    fake_start(&a, F_CLOSE, 0);
    fake_start(&b, F_CLOSE, 0);
    char u[300];
    snprintf(u, sizeof u, "amqp://127.0.0.1:%d,127.0.0.1:%d?queue=q_att_%u&maxConnectionAttempts=2", a.port,
             b.port, uniq());
    srv_st ss = {0};
    logcap l = {0};
    nc_server *srv = server_new(u, &ss, &l);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&l.giving_up, 1, 10000));
    assert_int_equal(a.accepted, 2);
    assert_int_equal(b.accepted, 1);
    assert_int_equal(ss.connected, 0);
    nc_server_free(srv);
    /* the client alike */
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.retry_delay_ms = 100;
    nc_client *c;
    snprintf(u, sizeof u, "amqp://127.0.0.1:%d,127.0.0.1:%d?queue=q&maxConnectionAttempts=3", a.port, b.port);
    a.accepted = b.accepted = 0;
    assert_int_equal(nc_client_new(&c, u, &o), 0);
    call k = {0};
    call_wait(c, "x", &k);
    assert_int_not_equal(k.err, 0);
    assert_int_equal(a.accepted, 1); /* the first connection tried each broker once */
    assert_int_equal(b.accepted, 1);
    call_clear(&k);
    nc_client_free(c);
    fake_stop(&a);
    fake_stop(&b);
}

/* The first broker is not there (a closed loopback port): server and client serve through the second. */
static void test_first_broker_down(void **st) {
    (void)st;
    if (!have_broker) {
        skip();
        return;
    }
    int closed = broker_free_port();
    char u[300];
    snprintf(u, sizeof u, "amqp://127.0.0.1:%d,127.0.0.1:%d/?queue=nestc_fo_%d_%u", closed, real_port(),
             (int)getpid(), uniq());
    srv_st ss = {0};
    logcap l = {0};
    nc_server *srv = server_new(u, &ss, &l);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&ss.connected, 1, 20000));
    char want[80];
    snprintf(want, sizeof want, "127.0.0.1:%d (2 of 2)", real_port());
    assert_non_null(strstr(l.last_connected, want));
    nc_client *c = client_new(u, 0, NULL);
    expect_sum(c, 2, 3);
    nc_client_free(c);
    nc_server_free(srv);
}

/* After a lost connection the next attempt goes to the next broker: the first is a proxy to the real
 * broker, the second the real broker itself; the proxy's connection is cut and the server comes back
 * through the second, the proxy not asked again. */
static void test_lost_goes_to_next(void **st) {
    (void)st;
    if (!have_broker) {
        skip();
        return;
    }
    fake p;
    fake_start(&p, F_PROXY, real_port());
    char u[300], cu[300];
    unsigned id = uniq();
    snprintf(u, sizeof u, "amqp://127.0.0.1:%d,127.0.0.1:%d?queue=nestc_lost_%d_%u", p.port, real_port(),
             (int)getpid(), id);
    snprintf(cu, sizeof cu, "%s?queue=nestc_lost_%d_%u", R.url, (int)getpid(), id);
    srv_st ss = {0};
    logcap l = {0};
    nc_server *srv = server_new(u, &ss, &l);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&ss.connected, 1, 20000));
    char want[80];
    snprintf(want, sizeof want, "127.0.0.1:%d (1 of 2)", p.port);
    assert_non_null(strstr(l.last_connected, want));
    assert_int_equal(p.accepted, 1);
    nc_client *c = client_new(cu, 0, NULL);
    expect_sum(c, 1, 1);
    fake_cut(&p);
    assert_true(run_until_ms(&l.connected_lines, 2, 20000));
    snprintf(want, sizeof want, "127.0.0.1:%d (2 of 2)", real_port());
    assert_non_null(strstr(l.last_connected, want));
    assert_int_equal(p.accepted, 1);
    expect_sum(c, 4, 5);
    nc_client_free(c);
    nc_server_free(srv);
    fake_stop(&p);
}

/* A client whose first broker accepts and closes: it connects through the second. */
static void test_client_fails_over(void **st) {
    (void)st;
    if (!have_broker) {
        skip();
        return;
    }
    fake a;
    fake_start(&a, F_CLOSE, 0);
    char u[300], su[300];
    unsigned id = uniq();
    snprintf(su, sizeof su, "%s?queue=nestc_cfo_%d_%u", R.url, (int)getpid(), id);
    snprintf(u, sizeof u, "amqp://guest:guest@127.0.0.1:%d,127.0.0.1:%d/%%2F?queue=nestc_cfo_%d_%u", a.port,
             real_port(), (int)getpid(), id);
    srv_st ss = {0};
    logcap l = {0};
    nc_server *srv = server_new(su, &ss, &l);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&ss.connected, 1, 20000));
    nc_client *c = client_new(u, 0, NULL);
    expect_sum(c, 6, 7);
    assert_int_equal(a.accepted, 1);
    nc_client_free(c);
    nc_server_free(srv);
    fake_stop(&a);
}

/* authMechanism=EXTERNAL towards a broker that does not offer it (the shared broker has no
 * rabbitmq_auth_mechanism_ssl): NC_EAUTH, the broker's mechanisms named. */
static void test_external_not_offered(void **st) {
    (void)st;
    if (!have_broker || !R.tls_url[0] || !certs[0]) {
        skip();
        return;
    }
    char ca[250], cert[250], key[250];
    snprintf(ca, sizeof ca, "%s/ca.pem", certs);
    snprintf(cert, sizeof cert, "%s/client.pem", certs);
    snprintf(key, sizeof key, "%s/client.key", certs);
    nc_tls_opts tls = {.ca_file = ca, .cert_file = cert, .key_file = key, .server_name = "localhost"};
    char u[400];
    snprintf(u, sizeof u, "%s?queue=nestc_ext_%d&authMechanism=EXTERNAL", R.tls_url, (int)getpid());
    nc_client_opts co = {0};
    co.loop = &loop;
    co.log_level = NC_LOG_OFF;
    co.timeout_ms = 5000 * time_factor();
    co.connect_timeout_ms = 5000 * time_factor();
    co.tls = &tls;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, u, &co), 0);
    call k = {0};
    call_wait(c, "x", &k);
    assert_int_equal(k.err, NC_EAUTH);
    if (!strstr(k.msg, "does not offer the EXTERNAL mechanism (it offers: ")) fprintf(stderr, "%s\n", k.msg);
    assert_non_null(strstr(k.msg, "does not offer the EXTERNAL mechanism (it offers: "));
    assert_non_null(strstr(k.msg, "PLAIN"));
    call_clear(&k);
    nc_client_free(c);
}

/* SASL EXTERNAL for real: a broker of this test's own (TLS only, a client certificate required, the
 * rabbitmq_auth_mechanism_ssl plugin, the user named by the certificate's CN, made on first start), and a
 * server and a client logging in with the test client certificate and no password. The run's shared broker
 * stays as it is. The broker is started in setup and booted meanwhile (the other cases, or the harness's
 * own broker when there is no shared one), so the case waits little. */
static rabbit_node ext_node;
static broker ext;
static pid_t ext_epmd;
static char x_ca[250], x_scert[250], x_skey[250], x_cert[250], x_key[250];

static void ext_begin(void) {
    glob_t g;
    int plugin =
        !glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_auth_mechanism_ssl-*", 0, NULL, &g);
    if (plugin) globfree(&g);
    if (!certs[0] || !plugin || access("/usr/lib/rabbitmq/bin/rabbitmq-server", X_OK)) return;
    snprintf(x_ca, sizeof x_ca, "%s/ca.pem", certs);
    snprintf(x_scert, sizeof x_scert, "%s/server.pem", certs);
    snprintf(x_skey, sizeof x_skey, "%s/server.key", certs);
    snprintf(x_cert, sizeof x_cert, "%s/client.pem", certs);
    snprintf(x_key, sizeof x_key, "%s/client.key", certs);
    int epmd_port = broker_free_port();
    ext_epmd = rabbit_epmd_start(epmd_port, time_factor());
    ext.port = broker_free_port();
    ext_node =
        (rabbit_node){.epmd_port = epmd_port,
                      .tcp = 0,
                      .tls_port = ext.port,
                      .ca = x_ca,
                      .cert = x_scert,
                      .key = x_skey,
                      .verify_peer = 1,
                      .plugins = "[rabbitmq_auth_mechanism_ssl].\n",
                      /* gen-certs.sh's client certificate: CN=nestc test client */
                      .extra_conf = "auth_mechanisms.1 = EXTERNAL\nauth_mechanisms.2 = PLAIN\n"
                                    "ssl_cert_login_from = common_name\n"
                                    "default_user = nestc test client\ndefault_pass = not-used-here\n"};
    const char *tmp = getenv("TMPDIR");
    snprintf(ext.dir, sizeof ext.dir, "%s/nestc-broker-XXXXXX",
             tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    assert_non_null(mkdtemp(ext.dir));
    char port[16];
    snprintf(port, sizeof port, "%d", ext.port);
    ext.pid = fork(); /* broker_start_with without its wait */
    assert_true(ext.pid >= 0);
    if (ext.pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        if (chdir(ext.dir)) _exit(126);
        rabbit_exec(&ext, port, &ext_node);
        _exit(127);
    }
}

/* Waits until the broker of ext_begin accepts; 0 when there is none. */
static int ext_ready(void) {
    if (ext.pid <= 0) return 0;
    for (int i = 0; i < 12000 * time_factor() && !broker_port_open(ext.port); i++) {
        int status;
        assert_int_equal(waitpid(ext.pid, &status, WNOHANG), 0); /* it did not exit */
        usleep(10000);
    }
    return broker_port_open(ext.port);
}

static void test_external_login(void **st) {
    (void)st;
    if (!ext_ready()) {
        skip();
        return;
    }
    nc_tls_opts tls = {.ca_file = x_ca, .cert_file = x_cert, .key_file = x_key, .server_name = "localhost"};
    char u[300];
    /* a user in the URL is not sent: the certificate names the user */
    snprintf(u, sizeof u, "amqps://nobody:wrong@127.0.0.1:%d?queue=nestc_extok_%d&authMechanism=EXTERNAL",
             ext.port, (int)getpid());
    nc_server_opts so = amqp_server_opts();
    so.tls = &tls;
    srv_st ss = {0};
    nc_server *srv = server_new_opts(u, &so, &ss);
    assert_int_equal(nc_server_message(srv, "{\"cmd\":\"sum\"}", h_sum, NULL), 0);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&ss.connected, 1, 20000));
    nc_client_opts co = {0};
    co.loop = &loop;
    co.log_level = NC_LOG_OFF;
    co.timeout_ms = 5000 * time_factor();
    co.connect_timeout_ms = 5000 * time_factor();
    co.tls = &tls;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, u, &co), 0);
    expect_sum(c, 40, 2);
    nc_client_free(c);
    /* PLAIN with a password the broker does not know: refused (EXTERNAL did the login above) */
    snprintf(u, sizeof u, "amqps://nobody:wrong@127.0.0.1:%d?queue=nestc_extok_%d", ext.port, (int)getpid());
    assert_int_equal(nc_client_new(&c, u, &co), 0);
    call k = {0};
    call_wait(c, "{\"cmd\":\"sum\"}", &k);
    assert_int_equal(k.err, NC_EAUTH);
    call_clear(&k);
    nc_client_free(c);
    nc_server_free(srv);
}

/* ---- the broker ---------------------------------------------------------------------------------------- */

/* Under ctest the run's shared broker: NESTC_RMQ_ENV names its NAME=VALUE file. */
static void read_shared_env(void) {
    const char *path = getenv("NESTC_RMQ_ENV");
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f) return;
    char line[600];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = '\0';
        setenv(line, eq + 1, 1);
    }
    fclose(f);
}

static int setup(void **st) {
    (void)st;
    amqp_loop_begin();
    read_shared_env();
    if (!rabbit_installed()) return 0;
    const char *ca = getenv("NESTC_RMQ_CA");
    if (getenv("NESTC_RMQ_URL")) {
        if (ca && *ca) { /* the CA's directory has gen-certs.sh's client certificate too */
            snprintf(certs, sizeof certs, "%s", ca);
            char *s = strrchr(certs, '/');
            if (s) *s = '\0';
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(certs, sizeof certs, "%s/nestc-rmq-certs-XXXXXX",
                 tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
        if (mkdtemp(certs)) {
            char cmd[400];
            snprintf(cmd, sizeof cmd, "bash '%s/tests/interop/gen-certs.sh' '%s' >/dev/null 2>&1",
                     NESTC_SOURCE_DIR, certs);
            own_certs = 1;
            if (system(cmd)) certs[0] = '\0';
        } else {
            certs[0] = '\0';
        }
        snprintf(R.certs, sizeof R.certs, "%s", certs);
    }
    ext_begin(); /* boots while the harness's broker does, or the cases before its own run */
    rabbit_start(&R, time_factor());
    have_broker = 1;
    return 0;
}

static int teardown(void **st) {
    (void)st;
    if (have_broker) rabbit_free(&R);
    broker_free(&ext);
    rabbit_epmd_stop(&ext_epmd);
    if (own_certs && certs[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs);
        if (system(cmd)) {
        }
    }
    return amqp_loop_end();
}

/* A test that hangs ends the binary: the EXTERNAL case's broker stopped too. */
static void kill_ext(void) {
    if (ext.pid > 0) kill(ext.pid, SIGTERM);
    if (ext_epmd > 0) kill(ext_epmd, SIGTERM);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_other_schemes_unchanged), cmocka_unit_test(test_list_errors),
        cmocka_unit_test(test_attempts_across_brokers), cmocka_unit_test(test_first_broker_down),
        cmocka_unit_test(test_lost_goes_to_next),       cmocka_unit_test(test_client_fails_over),
        cmocka_unit_test(test_external_not_offered),    cmocka_unit_test(test_external_login),
    };
    amqp_fixture_on_alarm = kill_ext;
    return amqp_fixture_run(tests, setup, teardown);
}
