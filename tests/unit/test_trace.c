/* Trace context (nestc/trace.h): strict traceparent parsing, and trace continuity across a chain
 * client C -> server A -> (inside A's handler) client D -> server B over TCP, Redis and NATS: one trace id,
 * each span's parent the span before it, names by route, errors as outcomes; the async form (a call made
 * later with nc_request_trace + nc_trace_set_current); an incoming context ignored when invalid. */
#include <string.h>

#include "loop_fixture.h"

#include "../common/broker.h"
#include "../common/http_post.h"
#include "rabbit_harness.h"
#include "obs/http_status.h"
#include "obs/otlp.h"
#include "obs/otlp_headers.h"

/* ---- parsing ----------------------------------------------------------------------------------------- */

static void test_parse(void **st) {
    (void)st;
    nc_trace_ctx c;
    const char *ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_int_equal(nc_trace_parse(ok, strlen(ok), &c), 0);
    assert_int_equal(c.valid, 1);
    assert_int_equal(c.flags, 1);
    assert_int_equal(c.trace_id[0], 0x4b);
    assert_int_equal(c.span_id[7], 0xb7);
    char out[56], id[33], sid[17];
    nc_trace_format(&c, out);
    assert_string_equal(out, ok);
    nc_trace_id_hex(&c, id);
    assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    nc_trace_span_hex(&c, sid);
    assert_string_equal(sid, "00f067aa0ba902b7");
    const char *bad[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* all-zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* all-zero parent id */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",  /* flags */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* length */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        assert_int_equal(nc_trace_parse(bad[k], strlen(bad[k]), &c), NC_EINVAL);
        assert_int_equal(c.valid, 0);
    }
    nc_trace_ctx r1, r2;
    nc_trace_new_root(&r1);
    nc_trace_new_root(&r2);
    assert_int_equal(r1.valid, 1);
    assert_int_equal(r1.flags, NC_TRACE_SAMPLED);
    assert_memory_not_equal(r1.trace_id, r2.trace_id, 16);
    /* the current span: none, set, restored */
    nc_trace_ctx cur;
    assert_int_equal(nc_trace_current(&cur), NC_ENOENT);
    nc_trace_ctx prev = nc_trace_set_current(&r1);
    assert_int_equal(prev.valid, 0);
    assert_int_equal(nc_trace_current(&cur), 0);
    assert_memory_equal(cur.span_id, r1.span_id, 8);
    nc_trace_set_current(&prev);
    assert_int_equal(nc_trace_current(&cur), NC_ENOENT);
}

/* ---- the chain --------------------------------------------------------------------------------------- */

typedef struct rec {
    nc_span s;
    char name[96];
    char peer[64];
} rec;

static rec spans[64];
static int nspans;

static void on_span(void *u, const nc_span *s) {
    (void)u;
    if (nspans >= 64) return;
    spans[nspans].s = *s;
    snprintf(spans[nspans].name, sizeof spans[nspans].name, "%s", s->name);
    spans[nspans].s.name = spans[nspans].name;
    snprintf(spans[nspans].peer, sizeof spans[nspans].peer, "%s", s->peer_address ? s->peer_address : "");
    spans[nspans].s.peer_address = s->peer_address ? spans[nspans].peer : NULL;
    nspans++;
}

static const rec *find(nc_span_kind kind, const char *name) {
    const rec *found = NULL;
    for (int k = 0; k < nspans; k++)
        if (spans[k].s.kind == kind && !strcmp(spans[k].name, name)) {
            assert_null(found); /* one of each */
            found = &spans[k];
        }
    if (!found)
        for (int k = 0; k < nspans; k++)
            fprintf(stderr, "span %d kind %d name %s\n", k, spans[k].s.kind, spans[k].name);
    assert_non_null(found);
    return found;
}

/* The chain's routes as clients call them and as the servers route them (the span names on each side):
 * the same but on gRPC, whose clients call "package.Service/Method" and whose servers route NestJS's
 * {"service","rpc","streaming"} keys. */
typedef struct routes {
    const char *c_mid, *c_mid_async, *c_leaf, *c_leaf_fail;
    const char *s_mid, *s_mid_async, *s_leaf, *s_leaf_fail;
} routes;
static const routes plain_routes = {"mid", "mid_async", "leaf", "leaf_fail",
                                    "mid", "mid_async", "leaf", "leaf_fail"};
static const routes *R = &plain_routes;
/* options of every server and client of the chain (gRPC: the .proto; Kafka: quick joins) */
static const nc_option *srv_xopts[2], *cli_xopts; /* [0] server B, [1] server A */
static size_t srv_nx[2], cli_nx;

/* the chain's data: {"flag": fail}, a message of the gRPC case's .proto too */
static json_t *chain_data(int fail) {
    return json_pack("{s:b}", "flag", fail);
}

static nc_client *down;           /* A's client of B */
static nc_trace_ctx seen_in_leaf; /* what B's handler saw (nc_msg_trace) */
static nc_trace_ctx seen_current; /* the current span inside B's handler */

static void h_leaf(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    nc_msg_trace(m, &seen_in_leaf);
    nc_trace_current(&seen_current);
    nc_reply(req, json_pack("{s:s}", "text", "leaf"));
}

static void h_leaf_fail(nc_request *req, const nc_msg *m, void *u) {
    (void)u, (void)m;
    nc_reply_error_msg(req, "leaf failed");
}

static void mid_done(void *u, int err, json_t *e) {
    nc_request *req = u;
    if (err)
        nc_reply_error(req, json_incref(e));
    else
        nc_reply(req, json_pack("{s:s}", "text", "mid"));
}

static void h_mid(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    int fail = json_is_true(json_object_get(nc_msg_data(m), "flag"));
    json_t *d = chain_data(fail);
    assert_int_equal(nc_client_send(down, fail ? R->c_leaf_fail : R->c_leaf, d, NULL, NULL, mid_done, req),
                     0);
    json_decref(d);
}

/* async: the downstream call is made from a timer, as a child of the request's span */
typedef struct later {
    uv_timer_t t;
    nc_request *req;
    nc_trace_ctx ctx;
} later;

static void on_later(uv_timer_t *t) {
    later *l = t->data;
    nc_trace_ctx prev = nc_trace_set_current(&l->ctx);
    json_t *d = chain_data(0);
    assert_int_equal(nc_client_send(down, R->c_leaf, d, NULL, NULL, mid_done, l->req), 0);
    json_decref(d);
    nc_trace_set_current(&prev);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void h_mid_async(nc_request *req, const nc_msg *m, void *u) {
    (void)m, (void)u;
    later *l = calloc(1, sizeof *l);
    l->req = req;
    assert_int_equal(nc_request_trace(req, &l->ctx), 0);
    uv_timer_init(nc_request_loop(req), &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, on_later, 1, 0);
}

typedef struct done_rec {
    int done, err;
} done_rec;

static void on_done(void *u, int err, json_t *e) {
    (void)e;
    done_rec *d = u;
    d->err = err;
    d->done++;
}

static int connected;
static void on_status(void *u, const char *status, int err) {
    (void)u, (void)err;
    if (!strcmp(status, "connected")) connected++;
}

static nc_server *server_on(const char *url, int is_a) {
    nc_server *s;
    nc_server_opts o = NC_SERVER_OPTS_INIT;
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.options = srv_xopts[is_a];
    o.noptions = srv_nx[is_a];
    assert_int_equal(nc_server_new(&s, url, &o), 0);
    nc_trace_opts to = {.struct_size = sizeof to, .on_span = on_span};
    assert_true(nc_trace_enable_server(s, &to) > 0);
    return s;
}

static nc_client *client_of(const char *url, int traced) {
    nc_client *c;
    nc_client_opts o = NC_CLIENT_OPTS_INIT;
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.options = cli_xopts;
    o.noptions = cli_nx;
    o.timeout_ms = 20000 * time_factor();
    assert_int_equal(nc_client_new(&c, url, &o), 0);
    nc_trace_opts to = {.struct_size = sizeof to, .on_span = on_span};
    if (traced) assert_true(nc_trace_enable_client(c, &to) > 0);
    return c;
}

static void listen_ready(nc_server *s, int brokered) {
    connected = 0;
    nc_server_on_status(s, on_status, NULL);
    assert_int_equal(nc_server_listen(s), 0);
    if (brokered) assert_true(run_until_ms(&connected, 1, 30000));
}

/* one call from C to A's route, under a root span of the test; returns the call's error */
static int call_chain(nc_client *c, const char *route, int fail, nc_trace_ctx *root) {
    nspans = 0;
    nc_trace_new_root(root);
    root->flags = 0; /* not sampled: the flag travels as it is */
    nc_trace_ctx prev = nc_trace_set_current(root);
    done_rec d = {0};
    json_t *data = chain_data(fail);
    assert_int_equal(nc_client_send(c, route, data, NULL, NULL, on_done, &d), 0);
    json_decref(data);
    nc_trace_set_current(&prev);
    assert_true(run_until_ms(&d.done, 1, 30000));
    /* the spans of C's call end with it; the servers' may end just after their reply is written */
    if (!run_until_ms(&nspans, 4, 5000)) {
        for (int k = 0; k < nspans; k++)
            fprintf(stderr, "span %d kind %d name %s\n", k, spans[k].s.kind, spans[k].name);
        fail_msg("%d spans of 4", nspans);
    }
    return d.err;
}

static void assert_child(const rec *child, const uint8_t *parent_id, const nc_trace_ctx *root) {
    assert_memory_equal(child->s.ctx.trace_id, root->trace_id, 16);
    assert_int_equal(child->s.has_parent, 1);
    assert_memory_equal(child->s.parent_id, parent_id, 8);
    assert_int_equal(child->s.ctx.flags, root->flags);
}

/* peer: the servers know their client's address (a connection per client, not a broker) */
static void check_chain(const char *c_mid, const char *s_mid, const char *c_leaf, const char *s_leaf,
                        const nc_trace_ctx *root, int err, int peer) {
    assert_int_equal(nspans, 4);
    const rec *c = find(NC_SPAN_CLIENT, c_mid), *a = find(NC_SPAN_SERVER, s_mid);
    const rec *d = find(NC_SPAN_CLIENT, c_leaf), *b = find(NC_SPAN_SERVER, s_leaf);
    /* the other side: a client names its URL's host and port, a server its client's address */
    assert_string_equal(c->s.peer_address, "127.0.0.1");
    assert_true(c->s.peer_port > 0);
    assert_string_equal(d->s.peer_address, "127.0.0.1");
    if (peer) {
        assert_string_equal(a->s.peer_address, "127.0.0.1");
        assert_true(a->s.peer_port > 0 && a->s.peer_port != c->s.peer_port);
        assert_string_equal(b->s.peer_address, "127.0.0.1");
        assert_int_equal(b->s.peer_port > 0, 1);
    } else {
        assert_null(a->s.peer_address);
        assert_null(b->s.peer_address);
    }
    assert_child(c, root->span_id, root);
    assert_child(a, c->s.ctx.span_id, root);
    assert_child(d, a->s.ctx.span_id, root);
    assert_child(b, d->s.ctx.span_id, root);
    /* four distinct spans */
    assert_memory_not_equal(c->s.ctx.span_id, a->s.ctx.span_id, 8);
    assert_memory_not_equal(a->s.ctx.span_id, d->s.ctx.span_id, 8);
    assert_memory_not_equal(d->s.ctx.span_id, b->s.ctx.span_id, 8);
    assert_int_equal(c->s.outcome, err);
    assert_int_equal(a->s.outcome, err);
    assert_int_equal(d->s.outcome, err);
    assert_int_equal(b->s.outcome, err);
    assert_true(b->s.end_unix_ns >= b->s.start_unix_ns);
}

/* the chain on url_a (A) and url_b (B); brokered: wait for the servers' subscriptions (a_opts, b_opts:
 * the servers' own options, e.g. their Kafka groups); full: the incoming-context cases too (a client
 * without tracing sending its own traceparent in headers and metadata) */
static void chain_with(const char *url_a, const char *url_b, int brokered, const char *transport, int full) {
    nc_server *b = server_on(url_b, 0);
    assert_int_equal(nc_server_message(b, R->s_leaf, h_leaf, NULL), 0);
    assert_int_equal(nc_server_message(b, R->s_leaf_fail, h_leaf_fail, NULL), 0);
    listen_ready(b, brokered);
    char ub[512], ua[512];
    snprintf(ub, sizeof ub, "%s", url_b);
    if (!brokered) snprintf(ub, sizeof ub, "%s://127.0.0.1:%d", transport, nc_server_port(b));
    nc_server *a = server_on(url_a, 1);
    assert_int_equal(nc_server_message(a, R->s_mid, h_mid, NULL), 0);
    assert_int_equal(nc_server_message(a, R->s_mid_async, h_mid_async, NULL), 0);
    listen_ready(a, brokered);
    snprintf(ua, sizeof ua, "%s", url_a);
    if (!brokered) snprintf(ua, sizeof ua, "%s://127.0.0.1:%d", transport, nc_server_port(a));
    down = client_of(ub, 1);
    nc_client *c = client_of(ua, 1);

    int peer = !brokered;
    nc_trace_ctx root;
    assert_int_equal(call_chain(c, R->c_mid, 0, &root), 0);
    check_chain(R->c_mid, R->s_mid, R->c_leaf, R->s_leaf, &root, 0, peer);
    assert_string_equal(find(NC_SPAN_SERVER, R->s_leaf)->s.transport, transport);
    /* what the leaf's handler saw: its incoming context is D's span, its current span is B's */
    assert_int_equal(seen_in_leaf.valid, 1);
    assert_memory_equal(seen_in_leaf.span_id, find(NC_SPAN_CLIENT, R->c_leaf)->s.ctx.span_id, 8);
    assert_memory_equal(seen_current.span_id, find(NC_SPAN_SERVER, R->s_leaf)->s.ctx.span_id, 8);
    /* outside any handler, no current span is left behind */
    nc_trace_ctx cur;
    assert_int_equal(nc_trace_current(&cur), NC_ENOENT);

    assert_int_equal(call_chain(c, R->c_mid, 1, &root), NC_EREMOTE);
    check_chain(R->c_mid, R->s_mid, R->c_leaf_fail, R->s_leaf_fail, &root, NC_EREMOTE, peer);

    assert_int_equal(call_chain(c, R->c_mid_async, 0, &root), 0);
    check_chain(R->c_mid_async, R->s_mid_async, R->c_leaf, R->s_leaf, &root, 0, peer);
    if (!full) {
        nc_client_free(c);
        nc_client_free(down);
        nc_server_free(a);
        nc_server_free(b);
        uv_run(&loop, UV_RUN_NOWAIT);
        return;
    }

    /* an incoming context from an untraced client: valid is continued, invalid starts a new trace */
    nc_client *plain = client_of(ub, 0);
    const char *given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const char *bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
    for (int k = 0; k < 5; k++) {
        nspans = 0;
        /* k = 2: only in a nested object, and as a value: not the message's context; k = 3: after a
         * string with escaped quotes and backslashes, with a tracestate; k = 4: a tracestate with an
         * escape (read through the metadata object) */
        json_t *md = k < 2    ? json_pack("{ss}", "traceparent", k ? bad : given)
                     : k == 2 ? json_pack("{s{ss}ss}", "x", "traceparent", given, "y", "traceparent")
                     : k == 3 ? json_pack("{ssssss}", "note", "a \"traceparent\": \\", "traceparent", given,
                                          "tracestate", "k=v,l=w")
                              : json_pack("{ssss}", "tracestate", "q=\"x\"", "traceparent", given);
        nc_call_opts co = NC_CALL_OPTS_INIT;
        co.metadata = md;
        co.headers = k < 2 ? md : NULL;
        done_rec dr = {0};
        assert_int_equal(nc_client_send(plain, "leaf", NULL, &co, NULL, on_done, &dr), 0);
        json_decref(md);
        assert_true(run_until_ms(&dr.done, 1, 5000));
        assert_int_equal(dr.err, 0);
        assert_true(run_until_ms(&nspans, 1, 2000));
        const rec *leaf = find(NC_SPAN_SERVER, "leaf");
        nc_trace_ctx g;
        nc_trace_parse(given, strlen(given), &g);
        if (k == 0 || k >= 3) {
            assert_child(leaf, g.span_id, &g);
            assert_string_equal(seen_in_leaf.tracestate, k == 3 ? "k=v,l=w" : k == 4 ? "q=\"x\"" : "");
            assert_string_equal(leaf->s.ctx.tracestate, seen_in_leaf.tracestate);
        } else {
            assert_int_equal(leaf->s.has_parent, 0);
            assert_memory_not_equal(leaf->s.ctx.trace_id, g.trace_id, 16);
            assert_int_equal(seen_in_leaf.valid, 0);
        }
    }
    /* a trace without a span made current (nc_trace_new_trace, as `nestc send --trace` does): the call's
     * CLIENT span is the root of that trace, and the server's span its child */
    nspans = 0;
    nc_trace_ctx t;
    nc_trace_new_trace(&t);
    nc_trace_ctx prev = nc_trace_set_current(&t);
    done_rec dt = {0};
    json_t *td = chain_data(0);
    assert_int_equal(nc_client_send(c, R->c_mid, td, NULL, NULL, on_done, &dt), 0);
    json_decref(td);
    nc_trace_set_current(&prev);
    assert_true(run_until_ms(&dt.done, 1, 30000));
    assert_true(run_until_ms(&nspans, 4, 5000));
    const rec *troot = find(NC_SPAN_CLIENT, R->c_mid);
    assert_int_equal(troot->s.has_parent, 0);
    assert_memory_equal(troot->s.ctx.trace_id, t.trace_id, 16);
    assert_child(find(NC_SPAN_SERVER, R->s_mid), troot->s.ctx.span_id, &t);

    nc_client_free(plain);
    nc_client_free(c);
    nc_client_free(down);
    nc_server_free(a);
    nc_server_free(b);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void chain(const char *url_a, const char *url_b, int brokered, const char *transport) {
    chain_with(url_a, url_b, brokered, transport, 1);
}

static void test_chain_tcp(void **st) {
    (void)st;
    chain("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", 0, "tcp");
}

static void redis_exec(const broker *b, const char *port) {
    (void)b;
    const char *argv[] = {"redis-server", "--bind", "127.0.0.1",    "--port", port,
                          "--save",       "",       "--appendonly", "no",     NULL};
    execvp("redis-server", (char **)argv);
}

static void nats_exec(const broker *b, const char *port) {
    (void)b;
    const char *argv[] = {"nats-server", "-a", "127.0.0.1", "-p", port, NULL};
    execvp("nats-server", (char **)argv);
}

static void brokered(const char *scheme, broker_exec_fn exec, const char *query) {
    broker b = {0};
    broker_start_with(&b, time_factor(), exec);
    char u[128];
    snprintf(u, sizeof u, "%s://127.0.0.1:%d%s", scheme, b.port, query);
    chain(u, u, 1, scheme);
    broker_free(&b);
}

static void test_chain_redis(void **st) {
    (void)st;
    brokered("redis", redis_exec, "");
}

static void test_chain_nats(void **st) {
    (void)st;
    brokered("nats", nats_exec, "");
}

/* MQTT 5: traceparent as a user property (the header) and in the packet metadata */
static void test_chain_mqtt5(void **st) {
    (void)st;
    if (system("command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto") != 0) skip();
    brokered("mqtt", broker_exec_mosquitto, "?protocolVersion=5");
}

/* gRPC: traceparent in the call's metadata; the routes of a .proto of the test's own */
static void test_chain_grpc(void **st) {
    (void)st;
    char proto[] = "/tmp/nestc-trace-XXXXXX.proto";
    int fd = mkstemps(proto, 6);
    assert_true(fd >= 0);
    const char *text =
        "syntax = \"proto3\";\npackage tr;\nmessage Msg { bool flag = 1; string text = 2; }\n"
        "service Chain {\n  rpc Mid (Msg) returns (Msg);\n  rpc MidAsync (Msg) returns (Msg);\n"
        "  rpc Leaf (Msg) returns (Msg);\n  rpc LeafFail (Msg) returns (Msg);\n}\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
#define K(m) "{\"rpc\":\"" m "\",\"service\":\"Chain\",\"streaming\":\"no_stream\"}" /* as routed */
    static const routes grpc_routes = {
        "tr.Chain/Mid", "tr.Chain/MidAsync", "tr.Chain/Leaf", "tr.Chain/LeafFail",
        K("Mid"),       K("MidAsync"),       K("Leaf"),       K("LeafFail")};
#undef K
    nc_option o[] = {{"protoPath", proto}};
    srv_xopts[0] = srv_xopts[1] = cli_xopts = o;
    srv_nx[0] = srv_nx[1] = cli_nx = 1;
    R = &grpc_routes;
    chain_with("grpc://127.0.0.1:0", "grpc://127.0.0.1:0", 0, "grpc", 0);
    R = &plain_routes;
    srv_nx[0] = srv_nx[1] = cli_nx = 0;
    unlink(proto);
}

/* AMQP (RabbitMQ): traceparent in the message's headers. The run's shared broker only (NESTC_RMQ_ENV, as
 * ctest gives it): starting one here would cost more than every other case together. */
static void test_chain_amqp(void **st) {
    (void)st;
    rabbit_read_env_file_();
    const char *u = getenv("NESTC_RMQ_URL");
    if (!u || !*u) skip();
    char ua[300], ub[300];
    snprintf(ua, sizeof ua, "%s%strace_chain_a_%d", u, strchr(u, '?') ? "&queue=" : "?queue=", (int)getpid());
    snprintf(ub, sizeof ub, "%s%strace_chain_b_%d", u, strchr(u, '?') ? "&queue=" : "?queue=", (int)getpid());
    chain_with(ua, ub, 1, "amqp", 0);
}

#ifdef NESTC_HAVE_RDKAFKA
#include "kafka_fixture.h"

/* Kafka (librdkafka's mock cluster): traceparent in the record's headers */
static void test_chain_kafka(void **st) {
    (void)st;
    (void)kafka_server_start; /* the fixture's, for other tests */
    mock_start();
    static const char *const topics[] = {"mid", "mid_async", "leaf", "leaf_fail"};
    for (size_t k = 0; k < 4; k++) {
        char r[64];
        snprintf(r, sizeof r, "%s.reply", topics[k]);
        mock_topic(topics[k], 1, 1);
        mock_topic(r, 1, 1);
    }
    static const nc_option sa[] = {{"fromBeginning", "true"},
                                   {"heartbeatInterval", "100"},
                                   {"sessionTimeout", "6000"},
                                   {"groupId", "trace-a"},
                                   {"kafka.log_level", "0"}};
    static const nc_option sb[] = {{"fromBeginning", "true"},
                                   {"heartbeatInterval", "100"},
                                   {"sessionTimeout", "6000"},
                                   {"groupId", "trace-b"},
                                   {"kafka.log_level", "0"}};
    static const nc_option co[] = {{"kafka.log_level", "0"}};
    srv_xopts[0] = sb;
    srv_xopts[1] = sa;
    srv_nx[0] = srv_nx[1] = 5;
    cli_xopts = co;
    cli_nx = 1;
    chain_with(url, url, 1, "kafka", 0);
    srv_nx[0] = srv_nx[1] = cli_nx = 0;
    mock_stop();
}
#else
static void test_chain_kafka(void **st) {
    (void)st;
    skip();
}
#endif

/* ---- export ---------------------------------------------------------------------------------------- */

static void test_status_line(void **st) {
    (void)st;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    assert_int_equal(nc_http_status_parse(ok, strlen(ok)), 200);
    assert_int_equal(nc_http_status_parse("HTTP/1.0 503\n", 13), 503);
    assert_int_equal(nc_http_status_parse("HTTP/1.1 20", 11), 0); /* more to come */
    assert_int_equal(nc_http_status_parse("HTT", 3), 0);
    assert_int_equal(nc_http_status_parse("", 0), 0);
    assert_int_equal(nc_http_status_parse("SSH-2.0", 7), -1); /* refused before a line ends */
    assert_int_equal(nc_http_status_parse("HTTP/2.0 200 OK\r\n", 17), -1);
    assert_int_equal(nc_http_status_parse("HTTP/1.1 2x0 OK\r\n", 17), -1);
    assert_int_equal(nc_http_status_parse("HTTP/1.1 200OK\r\n", 16), -1);
    assert_int_equal(nc_http_status_parse("HTTP/1.1 099 x\r\n", 16), -1);
    assert_int_equal(nc_http_status_parse("HTTP/1.1 200 \001\r\n", 16), -1);
    char big[NC_HTTP_STATUS_LINE_MAX + 8];
    memset(big, 'a', sizeof big);
    memcpy(big, "HTTP/1.1 200 ", 13);
    assert_int_equal(nc_http_status_parse(big, sizeof big), -1); /* no end of line in sight */
}

/* A collector on the loop: reads one POST per connection, keeps its JSON body, answers `answer`. */
typedef struct coll_conn {
    uv_tcp_t h;
    char buf[1 << 20];
    size_t len;
    uv_write_t w;
} coll_conn;

static uv_tcp_t coll;
static int coll_port, coll_posts;
static json_t *coll_bodies; /* array of bodies */
static const char *coll_answer =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
static char coll_path[64];

static void coll_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    (void)sz;
    coll_conn *c = h->data;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len - 1));
}

static void coll_closed(uv_handle_t *h) {
    free(h->data);
}

static void coll_written(uv_write_t *w, int st) {
    (void)st;
    uv_close((uv_handle_t *)w->data, coll_closed);
}

static void coll_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    (void)b;
    coll_conn *c = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, coll_closed);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = 0;
    char *end = strstr(c->buf, "\r\n\r\n");
    char *cl = strstr(c->buf, "Content-Length: ");
    if (!end || !cl) return;
    size_t want = (size_t)atol(cl + 16);
    if (c->len < (size_t)(end + 4 - c->buf) + want) return;
    sscanf(c->buf, "POST %63s ", coll_path);
    json_t *body = json_loadb(end + 4, want, 0, NULL);
    assert_non_null(body);
    json_array_append_new(coll_bodies, body);
    coll_posts++;
    uv_read_stop(s);
    uv_buf_t out = uv_buf_init((char *)coll_answer, (unsigned)strlen(coll_answer));
    c->w.data = s;
    uv_write(&c->w, s, &out, 1, coll_written);
}

static void coll_conn_cb(uv_stream_t *l, int st) {
    (void)st;
    coll_conn *c = calloc(1, sizeof *c);
    uv_tcp_init(&loop, &c->h);
    c->h.data = c;
    uv_accept(l, (uv_stream_t *)&c->h);
    uv_read_start((uv_stream_t *)&c->h, coll_alloc, coll_read);
}

static void coll_start(void) {
    coll_bodies = json_array();
    coll_posts = 0;
    uv_tcp_init(&loop, &coll);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&coll, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&coll, 16, coll_conn_cb), 0);
    int l = sizeof a;
    uv_tcp_getsockname(&coll, (struct sockaddr *)&a, &l);
    coll_port = ntohs(a.sin_port);
}

static void coll_stop(void) {
    uv_close((uv_handle_t *)&coll, NULL);
    json_decref(coll_bodies);
}

/* every span the collector got, by name and kind */
static json_t *coll_span(const char *name, int kind) {
    size_t i, j, k;
    json_t *b, *rs, *sp, *found = NULL;
    json_array_foreach(coll_bodies, i, b) {
        json_array_foreach(json_object_get(b, "resourceSpans"), j, rs) {
            json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
            json_array_foreach(json_object_get(ss, "spans"), k, sp) {
                if (!strcmp(json_string_value(json_object_get(sp, "name")), name) &&
                    json_integer_value(json_object_get(sp, "kind")) == kind) {
                    assert_null(found);
                    found = sp;
                }
            }
        }
    }
    assert_non_null(found);
    return found;
}

static const char *attr_of(json_t *sp, const char *key) {
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(sp, "attributes"), i, a) {
        if (!strcmp(json_string_value(json_object_get(a, "key")), key))
            return json_string_value(json_object_get(json_object_get(a, "value"), "stringValue"));
    }
    return NULL;
}

static void hex_of(const uint8_t *b, int n, char *out) {
    for (int k = 0; k < n; k++) sprintf(out + 2 * k, "%02x", b[k]);
}

/* A TCP server on a free port with one or two routes, traced with *to when to is not NULL; its URL in u. */
static nc_server *tcp_server(const nc_trace_opts *to, const char *r1, nc_request_fn f1, const char *r2,
                             nc_request_fn f2, char u[64]) {
    nc_server *s;
    nc_server_opts so = NC_SERVER_OPTS_INIT;
    so.loop = &loop;
    so.log_level = NC_LOG_OFF;
    assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0", &so), 0);
    if (to) assert_true(nc_trace_enable_server(s, to) > 0);
    assert_int_equal(nc_server_message(s, r1, f1, NULL), 0);
    if (r2) assert_int_equal(nc_server_message(s, r2, f2, NULL), 0);
    assert_int_equal(nc_server_listen(s), 0);
    snprintf(u, 64, "tcp://127.0.0.1:%d", nc_server_port(s));
    return s;
}

/* A client of u traced with *to. */
static nc_client *tcp_client(const char *u, const nc_trace_opts *to) {
    nc_client *c;
    nc_client_opts co = NC_CLIENT_OPTS_INIT;
    co.loop = &loop;
    co.log_level = NC_LOG_OFF;
    assert_int_equal(nc_client_new(&c, u, &co), 0);
    assert_true(nc_trace_enable_client(c, to) > 0);
    return c;
}

/* A server and its client over TCP, both exporting to the collector: the spans arrive as OTLP JSON with
 * ids, parents, kinds, names, attributes and an error status. */
static void test_export(void **st) {
    (void)st;
    coll_start();
    setenv("OTEL_BSP_SCHEDULE_DELAY", "20", 1);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", coll_port);
    nc_trace_opts to = {.struct_size = sizeof to, .otlp_endpoint = ep, .service_name = "svc-test"};
    char u[64];
    nc_server *s = tcp_server(&to, "leaf", h_leaf, "leaf_fail", h_leaf_fail, u);
    nc_client *c = tcp_client(u, &to);
    done_rec d1 = {0}, d2 = {0};
    assert_int_equal(nc_client_send(c, "leaf", NULL, NULL, NULL, on_done, &d1), 0);
    assert_int_equal(nc_client_send(c, "leaf_fail", NULL, NULL, NULL, on_done, &d2), 0);
    assert_true(run_until_ms(&d2.done, 1, 5000));
    assert_true(run_until_ms(&d1.done, 1, 5000));
    /* four spans, in one or more batches */
    for (int n = 0; n < 4;) {
        size_t i, j;
        json_t *b, *rs;
        n = 0;
        json_array_foreach(coll_bodies, i, b) json_array_foreach(json_object_get(b, "resourceSpans"), j, rs)
            n += (int)json_array_size(
                json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans"));
        if (n < 4) assert_true(run_until_ms(&coll_posts, coll_posts + 1, 5000));
    }
    assert_string_equal(coll_path, "/v1/traces");
    json_t *rs0 = json_array_get(json_object_get(json_array_get(coll_bodies, 0), "resourceSpans"), 0);
    json_t *svc = json_array_get(json_object_get(json_object_get(rs0, "resource"), "attributes"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(svc, "value"), "stringValue")),
                        "svc-test");
    json_t *cs = coll_span("leaf", NC_SPAN_CLIENT), *ss = coll_span("leaf", NC_SPAN_SERVER);
    assert_string_equal(json_string_value(json_object_get(cs, "traceId")),
                        json_string_value(json_object_get(ss, "traceId")));
    assert_string_equal(json_string_value(json_object_get(cs, "spanId")),
                        json_string_value(json_object_get(ss, "parentSpanId")));
    assert_null(json_object_get(cs, "parentSpanId")); /* a root: no current span when it was made */
    assert_int_equal(strlen(json_string_value(json_object_get(ss, "traceId"))), 32);
    assert_string_equal(attr_of(ss, "rpc.system"), "nestjs");
    assert_string_equal(attr_of(ss, "rpc.method"), "leaf");
    assert_null(json_object_get(json_object_get(ss, "status"), "code"));
    json_t *fs = coll_span("leaf_fail", NC_SPAN_SERVER), *fc = coll_span("leaf_fail", NC_SPAN_CLIENT);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(fs, "status"), "code")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(fc, "status"), "code")), 2);
    assert_true(strtoull(json_string_value(json_object_get(fs, "endTimeUnixNano")), NULL, 10) >=
                strtoull(json_string_value(json_object_get(fs, "startTimeUnixNano")), NULL, 10));
    (void)hex_of;
    nc_client_free(c);
    nc_server_free(s);
    coll_stop();
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* The queue is bounded (a full one drops and counts), and a collector that is down costs the batch, not
 * memory, nor a loop kept running. */
static void test_export_bounds(void **st) {
    (void)st;
    nc_otlp *x;
    int port = broker_free_port(); /* nobody listens there */
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/custom", port);
    char why[256];
    nc_otlp_cfg cfg = {
        .endpoint = ep, .queue_max = 4, .batch_ms = 10, .retry_max_attempts = -1}; /* no retry */
    assert_int_equal(nc_otlp_new(&x, &loop, &cfg, why, sizeof why), 0);
    nc_span s = {0};
    nc_trace_new_root(&s.ctx);
    s.name = "r";
    s.transport = "tcp";
    s.kind = NC_SPAN_SERVER;
    for (int k = 0; k < 10; k++) nc_otlp_push(x, &s);
    uint64_t exported, dropped, failed;
    nc_otlp_stats(x, &exported, &dropped, &failed);
    assert_int_equal(dropped, 6);
    /* the batch of 4 fails to connect: failed */
    int ten = 0;
    for (int k = 0; k < 500 && failed < 4; k++) {
        run_until_ms(&ten, 1, 10);
        nc_otlp_stats(x, &exported, &dropped, &failed);
    }
    assert_int_equal(dropped, 6);
    assert_int_equal(failed, 4);
    assert_int_equal(exported, 0);
    nc_otlp_close(x);
    uv_run(&loop, UV_RUN_DEFAULT); /* ends: nothing of the exporter is left open */
    /* bad addresses */
    static const char *const bad[] = {"ftp://h", "http://h:99999", "http://h/a b", "http://h\r\nX: 1/",
                                      "https://"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        cfg.endpoint = bad[k];
        assert_int_equal(nc_otlp_new(&x, &loop, &cfg, why, sizeof why), NC_EINVAL);
    }
    cfg.endpoint = "http://h";
    cfg.headers = "a=1,b";
    assert_int_equal(nc_otlp_new(&x, &loop, &cfg, why, sizeof why), NC_EINVAL);
    cfg.headers = NULL;
    cfg.endpoint = "https://h";
    cfg.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(nc_otlp_new(&x, &loop, &cfg, why, sizeof why), NC_ETLS);
    char buf[128];
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/", 1);
    assert_string_equal(nc_otlp_endpoint(NULL, buf, sizeof buf), "http://c:4318/v1/traces");
    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x", 1);
    assert_string_equal(nc_otlp_endpoint(NULL, buf, sizeof buf), "http://t:1/x");
    assert_string_equal(nc_otlp_endpoint("http://g", buf, sizeof buf), "http://g");
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
}

/* ---- the flush at close: a collector on its own thread ---------------------------------------------- */

/* Plain sockets on a thread, so that it answers while the test's thread is inside nc_client_free /
 * nc_server_free. silent: accepts (the kernel's backlog) and never reads nor answers. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct tcoll {
    int fd, port, silent;
    _Atomic int stop;
    uv_thread_t th;
    uv_mutex_t lock;
    char got[1 << 16]; /* the request bodies, one after the other */
    size_t len;
    int posts;
    char head[2048]; /* the last request's head */
} tcoll;

static void tcoll_serve(void *arg) {
    tcoll *c = arg;
    while (!c->stop) {
        struct pollfd p = {c->fd, POLLIN, 0};
        if (c->silent || poll(&p, 1, 20) <= 0) {
            if (c->silent) usleep(20000);
            continue;
        }
        int s = accept(c->fd, NULL, NULL);
        if (s < 0) continue;
        char buf[1 << 16];
        size_t n = 0;
        long body = http_post_read(s, buf, sizeof buf, &n);
        if (body >= 0) {
            const char *end = buf + body - 4;
            uv_mutex_lock(&c->lock);
            size_t hl = (size_t)(end - buf) < sizeof c->head - 1 ? (size_t)(end - buf) : sizeof c->head - 1;
            memcpy(c->head, buf, hl);
            c->head[hl] = 0;
            size_t bl = n - (size_t)body;
            if (c->len + bl < sizeof c->got) {
                memcpy(c->got + c->len, buf + body, bl);
                c->len += bl;
            }
            c->posts++;
            uv_mutex_unlock(&c->lock);
            const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            if (write(s, ok, strlen(ok)) < 0) {
                /* the exporter gave up: it sees the connection close */
            }
        }
        close(s);
    }
}

static void tcoll_start(tcoll *c, int silent) {
    memset(c, 0, sizeof *c);
    c->silent = silent;
    c->fd = http_post_bind(&c->port);
    assert_true(c->fd >= 0);
    assert_int_equal(listen(c->fd, 16), 0);
    uv_mutex_init(&c->lock);
    assert_int_equal(uv_thread_create(&c->th, tcoll_serve, c), 0);
}

static void tcoll_stop(tcoll *c) {
    c->stop = 1;
    uv_thread_join(&c->th);
    close(c->fd);
    uv_mutex_destroy(&c->lock);
}

static int tcoll_has(tcoll *c, const char *needle) {
    uv_mutex_lock(&c->lock);
    c->got[c->len] = 0;
    int r = strstr(c->got, needle) != NULL;
    uv_mutex_unlock(&c->lock);
    return r;
}

static uint64_t ms_now(void) {
    return uv_hrtime() / 1000000;
}

/* Spans still queued when the server and the client are freed are sent then (the batch delay is far
 * away): the client's CLIENT span and the server's SERVER span reach the collector, with the peer
 * attributes and the configured headers; the counters say so. */
static void test_flush_at_close(void **st) {
    (void)st;
    tcoll tc;
    tcoll_start(&tc, 0);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "600000", 1);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", tc.port);
    nc_trace_opts to = {.struct_size = sizeof to,
                        .otlp_endpoint = ep,
                        .otlp_headers = "authorization=Bearer%20s3cret, x-tenant = t1"};
    nc_trace_counters before, after;
    nc_trace_export_counters(&before);
    char u[64];
    nc_server *s = tcp_server(&to, "flushed_leaf", h_leaf, NULL, NULL, u);
    nc_client *c = tcp_client(u, &to);
    done_rec d = {0};
    assert_int_equal(nc_client_send(c, "flushed_leaf", NULL, NULL, NULL, on_done, &d), 0);
    assert_true(run_until_ms(&d.done, 1, 5000));
    int zero = 0;
    run_until_ms(&zero, 1, 20); /* the server's span ends once its reply is written */
    assert_int_equal(tc.posts, 0);
    nc_client_free(c);
    assert_true(tcoll_has(&tc, "\"kind\":3")); /* the CLIENT span, sent by nc_client_free */
    char port[64];
    snprintf(port, sizeof port, "\"server.port\",\"value\":{\"intValue\":%d}", nc_server_port(s));
    assert_true(tcoll_has(&tc, "\"key\":\"server.address\",\"value\":{\"stringValue\":\"127.0.0.1\"}"));
    assert_true(tcoll_has(&tc, port));
    nc_server_free(s);
    assert_true(tcoll_has(&tc, "\"kind\":2")); /* the SERVER span, sent by nc_server_free */
    assert_true(tcoll_has(&tc, "\"key\":\"client.address\",\"value\":{\"stringValue\":\"127.0.0.1\"}"));
    assert_true(tcoll_has(&tc, "\"network.peer.port\""));
    uv_mutex_lock(&tc.lock);
    assert_non_null(strstr(tc.head, "\r\nauthorization: Bearer s3cret\r\n"));
    assert_non_null(strstr(tc.head, "\r\nx-tenant: t1"));
    uv_mutex_unlock(&tc.lock);
    nc_trace_export_counters(&after);
    assert_int_equal(after.exported - before.exported, 2);
    assert_int_equal(after.dropped - before.dropped, 0);
    assert_int_equal(after.failed - before.failed, 0);
    tcoll_stop(&tc);
    uv_run(&loop, UV_RUN_NOWAIT);
    unsetenv("OTEL_BSP_SCHEDULE_DELAY");
}

/* A collector that accepts and never answers (nor reads) delays nc_client_free by the flush bound at
 * most, not by the exchange timeout (5 s), and the batch counts as failed; a flush bound < 0 drops. */
static void test_flush_bounded(void **st) {
    (void)st;
    tcoll tc;
    tcoll_start(&tc, 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "600000", 1);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", tc.port);
    char u[64];
    nc_server *s = tcp_server(NULL, "leaf", h_leaf, NULL, NULL, u);
    for (int k = 0; k < 2; k++) {
        nc_trace_opts to = {
            .struct_size = sizeof to, .otlp_endpoint = ep, .otlp_flush_timeout_ms = k ? -1 : 300};
        nc_trace_counters before, after;
        nc_trace_export_counters(&before);
        nc_client *c = tcp_client(u, &to);
        done_rec d = {0};
        assert_int_equal(nc_client_send(c, "leaf", NULL, NULL, NULL, on_done, &d), 0);
        assert_true(run_until_ms(&d.done, 1, 5000));
        uint64_t t0 = ms_now();
        nc_client_free(c);
        uint64_t took = ms_now() - t0;
        nc_trace_export_counters(&after);
        if (k == 0) {
            assert_true(took >= 250);
            assert_true(took < 300 + 1000 * (uint64_t)time_factor());
            assert_int_equal(after.failed - before.failed, 1);
            assert_int_equal(after.dropped - before.dropped, 0);
        } else {
            assert_true(took < 200 * (uint64_t)time_factor());
            assert_int_equal(after.failed - before.failed, 0);
            assert_int_equal(after.dropped - before.dropped, 1);
        }
        assert_int_equal(after.exported - before.exported, 0);
    }
    nc_server_free(s);
    tcoll_stop(&tc);
    uv_run(&loop, UV_RUN_NOWAIT);
    unsetenv("OTEL_BSP_SCHEDULE_DELAY");
}

/* OTEL_EXPORTER_OTLP_HEADERS: the members as header lines, strictly validated. */
static void test_headers_parse(void **st) {
    (void)st;
    char out[256];
    assert_int_equal(nc_otlp_headers_parse("a=1,b=x%2Cy , c = %20sp", 23, out, sizeof out), 0);
    assert_string_equal(out, "a: 1\r\nb: x,y\r\nc:  sp\r\n");
    assert_int_equal(nc_otlp_headers_parse(",,k=v,", 6, out, sizeof out), 0);
    assert_string_equal(out, "k: v\r\n");
    assert_int_equal(nc_otlp_headers_parse("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(nc_otlp_headers_parse("k=", 2, out, sizeof out), 0);
    assert_string_equal(out, "k: \r\n");
    static const char *const bad[] = {"novalue",
                                      "=v",
                                      "a b=c",
                                      "k=v%0d%0aX-Evil: 1",
                                      "k=v\r\nX: 1",
                                      "k=%zz",
                                      "k=%4",
                                      "k=a%",
                                      "k=\x01",
                                      "k=%7f",
                                      "Host=x",
                                      "content-length=1",
                                      "CONNECTION=close",
                                      "transfer-encoding=chunked",
                                      "content-type=x",
                                      "k:=v",
                                      "k(=v"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        assert_int_equal(nc_otlp_headers_parse(bad[k], strlen(bad[k]), out, sizeof out), NC_EINVAL);
        assert_string_equal(out, "");
    }
    assert_int_equal(nc_otlp_headers_parse("k=v\0x", 5, out, sizeof out), NC_EINVAL);
    assert_int_equal(nc_otlp_headers_parse("key=value", 9, out, 8), NC_ETOOBIG);
    assert_string_equal(out, "");
}

/* OTEL_TRACES_SAMPLER: the client span's sampled flag under each sampler, for a parent with a low or a high
 * trace id (its last 8 bytes) sampled or not, and for a new trace. */
static void test_sampler(void **st) {
    (void)st;
    char u[64];
    nc_server *s = tcp_server(NULL, "leaf", h_leaf, NULL, NULL, u);
    static const struct {
        const char *name, *arg;                 /* sampler (NULL: the environment's), its argument */
        int low_on, low_off, high_on, high_off; /* parent: low/high trace id, sampled / not: the flag */
    } cases[] = {
        {NULL, NULL, 1, 0, 1, 0}, /* parentbased_always_on from OTEL_TRACES_SAMPLER (below) */
        {"always_on", NULL, 1, 1, 1, 1},
        {"always_off", NULL, 0, 0, 0, 0},
        {"traceidratio", "0.5", 1, 1, 0, 0},
        {"traceidratio", "0", 0, 0, 0, 0},
        {"parentbased_always_off", NULL, 1, 0, 1, 0},
        {"parentbased_traceidratio", "0.5", 1, 0, 1, 0},
        {"bogus", NULL, 1, 0, 1, 0},       /* unknown: the default */
        {"traceidratio", "2", 1, 1, 1, 1}, /* a ratio out of range: 1 */
    };
    setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on", 1);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nc_trace_opts to = {.struct_size = sizeof to,
                            .on_span = on_span,
                            .sampler = cases[k].name,
                            .sampler_arg = cases[k].arg};
        nc_client *c = tcp_client(u, &to);
        const int want[4] = {cases[k].low_on, cases[k].low_off, cases[k].high_on, cases[k].high_off};
        for (int p = 0; p < 5; p++) {
            nc_trace_ctx parent;
            nc_trace_new_root(&parent);
            memset(parent.trace_id + 8, p < 2 ? 0x00 : 0xff, 8); /* low (0) or high (2^64 - 1) */
            parent.trace_id[15] = 1;
            parent.flags = p % 2 ? 0 : NC_TRACE_SAMPLED;
            nc_trace_ctx prev = nc_trace_set_current(p < 4 ? &parent : NULL); /* 4: a new trace */
            nspans = 0;
            done_rec d = {0};
            assert_int_equal(nc_client_send(c, "leaf", NULL, NULL, NULL, on_done, &d), 0);
            nc_trace_set_current(&prev);
            assert_true(run_until_ms(&d.done, 1, 5000));
            assert_int_equal(nspans, 1);
            if (p < 4) {
                if ((spans[0].s.ctx.flags & NC_TRACE_SAMPLED) != (want[p] ? NC_TRACE_SAMPLED : 0))
                    fail_msg("sampler %s %s, parent %d: flags %d", cases[k].name ? cases[k].name : "(env)",
                             cases[k].arg ? cases[k].arg : "", p, spans[0].s.ctx.flags);
            } else if (k != 3 && k != 6) { /* a new trace (a random id: ratio 0.5 may go either way) */
                int off = k == 2 || k == 4 || k == 5;
                assert_int_equal(spans[0].s.ctx.flags & NC_TRACE_SAMPLED, off ? 0 : NC_TRACE_SAMPLED);
            }
        }
        nc_client_free(c);
    }
    unsetenv("OTEL_TRACES_SAMPLER");
    nc_server_free(s);
    uv_run(&loop, UV_RUN_NOWAIT);
}

int main(void) {
    /* the chain's servers export nothing, whatever the environment says */
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),         cmocka_unit_test(test_chain_tcp),
        cmocka_unit_test(test_chain_redis),   cmocka_unit_test(test_chain_nats),
        cmocka_unit_test(test_chain_mqtt5),   cmocka_unit_test(test_chain_grpc),
        cmocka_unit_test(test_chain_amqp),    cmocka_unit_test(test_chain_kafka),
        cmocka_unit_test(test_status_line),   cmocka_unit_test(test_export),
        cmocka_unit_test(test_export_bounds), cmocka_unit_test(test_flush_at_close),
        cmocka_unit_test(test_flush_bounded), cmocka_unit_test(test_headers_parse),
        cmocka_unit_test(test_sampler),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
