#include "transport/nats/nats_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "io/tls.h"
#include "nestc/error.h"
#include "nestc/version.h"
#include "transport/common/dial_conn.h"

enum { NS_DIALING, NS_INFO, NS_TLS, NS_HANDSHAKE, NS_READY };

/* the dial (and its stream) is the first member */
#define CONN_OF(p) ((nc_nats_conn *)(p))

static void conn_free(nc_dial *d) {
    nc_nats_conn *c = CONN_OF(d);
    nc_nats_parser_free(&c->parser);
    nc_buf_free(&c->queue);
    free(c);
}

static void conn_ended(nc_dial *d, int err, const char *msg) {
    nc_nats_conn *c = CONN_OF(d);
    if (c->cbs->on_end) c->cbs->on_end(c, err, msg);
}

static void st_end(nc_stream *s, int err, const char *msg) {
    nc_nats_conn *c = CONN_OF(s);
    /* the TCP connection was made: the peer never spoke, as a NATS server does first */
    const char *silent =
        c->state == NS_INFO ? "connected, but no INFO greeting came (is it a NATS server?)" : NULL;
    /* nats-server closes slow handshakes (its tls timeout is 0.5 s by default): say where it happened */
    const char *closed = c->state == NS_TLS ? "the server closed the connection during the TLS handshake"
                         : c->state == NS_HANDSHAKE || c->state == NS_INFO
                             ? "the server closed the connection during the NATS handshake"
                             : NULL;
    nc_dial_conn_stream_end(&c->d, err, msg, silent, closed);
}

static void fail(nc_nats_conn *c, int err, const char *msg) {
    nc_dial_conn_fail(&c->d, err, msg, c->log, c->component, "NATS", c->t->b.host, c->t->b.port);
}

int nc_nats_conn_ping(nc_nats_conn *c) {
    int r = nc_nats_conn_write(c, "PING\r\n", 6);
    if (!r) c->pings++;
    return r;
}

int nc_nats_conn_ready(const nc_nats_conn *c) {
    return c && c->state == NS_READY;
}

size_t nc_nats_conn_max_payload(const nc_nats_conn *c) {
    return c->server_max_payload;
}

int nc_nats_conn_write(nc_nats_conn *c, const char *p, size_t n) {
    if (c->d.ended) return NC_ECLOSED;
    size_t waiting = c->queue.len + (c->state == NS_READY ? (size_t)nc_stream_unsent(&c->d.st) : 0);
    if (c->t->b.max_queue > 0 && waiting > (size_t)c->t->b.max_queue) return NC_ESTALLED;
    if (c->state == NS_READY) return nc_stream_write(&c->d.st, p, n);
    return nc_buf_append(&c->queue, p, n) ? NC_ENOMEM : 0;
}

/* ---- handshake ----------------------------------------------------------------------------------- */

static void send_connect(nc_nats_conn *c) {
    json_t *o = json_pack("{s:b,s:i,s:b,s:b,s:s,s:s,s:b}", "no_responders", 1, "protocol", 1, "verbose", 0,
                          "pedantic", 0, "lang", "nestc", "version", NESTC_VERSION, "headers", 1);
    if (!o) {
        fail(c, NC_ENOMEM, "out of memory");
        return;
    }
    if (c->t->b.user) json_object_set_new(o, "user", json_string(c->t->b.user));
    if (c->t->b.password) json_object_set_new(o, "pass", json_string(c->t->b.password));
    if (c->t->token) json_object_set_new(o, "auth_token", json_string(c->t->token));
    if (c->t->name) json_object_set_new(o, "name", json_string(c->t->name));
    if (c->t->b.ssl) json_object_set_new(o, "tls_required", json_true());
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    nc_buf b = NC_BUF_INIT;
    int r = !text || nc_buf_appendf(&b, "CONNECT %s\r\nPING\r\n", text);
    free(text);
    if (r || nc_stream_write(&c->d.st, b.data, b.len)) {
        nc_buf_free(&b);
        fail(c, NC_ENOMEM, "out of memory");
        return;
    }
    nc_buf_free(&b);
    c->state = NS_HANDSHAKE;
}

static void on_info(nc_nats_conn *c, const nc_nats_op *op) {
    json_error_t je;
    json_t *info = json_loadb(op->arg, op->arg_len, 0, &je);
    if (!json_is_object(info)) {
        json_decref(info);
        fail(c, NC_EPROTO, "the server's INFO is not a JSON object");
        return;
    }
    json_int_t mp = json_integer_value(json_object_get(info, "max_payload"));
    int tls_required = json_is_true(json_object_get(info, "tls_required"));
    json_decref(info);
    if (c->state != NS_INFO) return; /* a later INFO (cluster update): nothing to do */
    c->server_max_payload = mp > 0 ? (size_t)mp : 0;
    size_t cap = c->t->max_msg;
    if (c->server_max_payload && (!cap || c->server_max_payload < cap)) cap = c->server_max_payload;
    c->parser.max_payload = cap ? cap + 4096 : 0; /* headers ride on top of the payload limit */
    if (tls_required || c->t->tls_required) {
        if (!c->t->b.ssl) {
            static const nc_tls_opts none = {0};
            char err[300];
            if (nc_tls_ctx_new(&c->t->b.ssl, &none, 0, err, sizeof err)) {
                fail(c, NC_ETLS, err);
                return;
            }
        }
        c->state = NS_TLS;
        int r = nc_stream_start_tls(&c->d.st, c->t->b.ssl,
                                    c->t->b.verify_host ? c->t->b.verify_host : c->t->b.host);
        if (r) fail(c, r, "cannot start TLS");
        return;
    }
    send_connect(c);
}

static void become_ready(nc_nats_conn *c) {
    c->state = NS_READY;
    nc_dial_connected(&c->d);
    if (c->queue.len) {
        int r = nc_stream_write(&c->d.st, c->queue.data, c->queue.len);
        nc_buf_free(&c->queue);
        if (r) {
            fail(c, r, "cannot queue the commands written while connecting");
            return;
        }
    }
    if (c->cbs->on_ready) c->cbs->on_ready(c);
}

int nc_nats_denied(const char *arg, size_t len, char *out, size_t outlen) {
    static const struct {
        const char *text;
        int kind;
    } forms[] = {{"Permissions Violation for Subscription to \"", NC_NATS_DENIED_SUB},
                 {"Permissions Violation for Publish with Reply of \"", NC_NATS_DENIED_REPLY},
                 {"Permissions Violation for Publish to \"", NC_NATS_DENIED_PUB}};
    if (len && arg[0] == '\'') arg++, len--;
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        size_t n = strlen(forms[f].text);
        if (len < n || memcmp(arg, forms[f].text, n)) continue;
        size_t o = 0;
        for (size_t i = n; i < len; i++) {
            char ch = arg[i];
            if (ch == '"') {
                if (out) out[o] = '\0';
                return forms[f].kind;
            }
            if (ch == '\\' && i + 1 < len) ch = arg[++i];
            if (!out) continue;
            if (o + 1 >= outlen) return NC_NATS_DENIED_NONE;
            out[o++] = ch;
        }
        return NC_NATS_DENIED_NONE; /* no closing quote */
    }
    return NC_NATS_DENIED_NONE;
}

static int on_op(void *user, const nc_nats_op *op) {
    nc_nats_conn *c = user;
    if (c->d.ended) return 1;
    switch (op->kind) {
    case NC_NATS_INFO:
        on_info(c, op);
        break;
    case NC_NATS_PING:
        nc_stream_write(&c->d.st, "PONG\r\n", 6);
        break;
    case NC_NATS_PONG:
        if (c->state == NS_HANDSHAKE) {
            become_ready(c);
        } else if (c->pings > 0) {
            c->pings--;
            if (c->cbs->on_op) c->cbs->on_op(c, op);
        }
        break;
    case NC_NATS_OK:
        break;
    case NC_NATS_ERR: {
        char msg[200];
        snprintf(msg, sizeof msg, "the server said: %.*s", (int)(op->arg_len < 150 ? op->arg_len : 150),
                 op->arg);
        if (c->state != NS_READY) {
            char low[160];
            snprintf(low, sizeof low, "%.*s", (int)(op->arg_len < 150 ? op->arg_len : 150), op->arg);
            int auth = strstr(low, "uthoriz") || strstr(low, "uthentic");
            fail(c, auth ? NC_EAUTH : NC_EPROTO, msg);
            return 1;
        }
        /* permission errors: the owner fails what they refused and sums them up in its own log lines */
        if (!c->cbs->on_op || nc_nats_denied(op->arg, op->arg_len, NULL, 0) == NC_NATS_DENIED_NONE)
            nc_logf(c->log, NC_LOG_ERROR, c->component, "NATS: %s", msg);
        if (c->cbs->on_op) c->cbs->on_op(c, op);
        break;
    }
    case NC_NATS_MSG:
        if (c->state == NS_READY && c->cbs->on_op) c->cbs->on_op(c, op);
        break;
    }
    return c->d.ended || c->d.end_err ? 1 : 0;
}

static void st_data(nc_stream *s, const char *data, size_t len) {
    nc_nats_conn *c = CONN_OF(s);
    if (c->d.ended || c->d.end_err) return;
    char why[200];
    int r = nc_nats_feed(&c->parser, data, len, on_op, c, why, sizeof why);
    if (r && r == NC_EPROTO && c->state == NS_INFO) {
        /* the first words were not NATS's INFO: most likely not a NATS server at all (an HTTP server) */
        char text[260];
        snprintf(text, sizeof text, "the peer is not a NATS server (no INFO greeting): %s", why);
        fail(c, r, text);
    } else if (r) {
        fail(c, r, why);
    }
}

static void st_open(nc_stream *s, int err, const char *msg) {
    nc_nats_conn *c = CONN_OF(s);
    if (err) return; /* st_end reports it */
    if (c->state == NS_TLS) {
        send_connect(c);
        return;
    }
    c->state = NS_INFO; /* the server speaks first */
}

static const nc_stream_cbs stream_cbs = {st_open, st_data, NULL, st_end, nc_dial_stream_closed, NULL};
static const nc_dial_ops dial_ops = {conn_ended, conn_free, NULL};

nc_nats_conn *nc_nats_conn_new(nc_ioctx *io, nc_nats_target *t, int delay_ms, const nc_nats_conn_cbs *cbs,
                               const nc_logger *log, const char *component, void *owner) {
    nc_nats_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->t = t;
    c->cbs = cbs;
    c->log = log;
    c->component = component;
    c->owner = owner;
    nc_nats_parser_init(&c->parser, 0);
    /* plain at first: NATS upgrades to TLS after its INFO greeting (on_info) */
    nc_dial_start(&c->d, io, t->b.host, t->b.port, NULL, NULL, t->b.connect_timeout_ms, delay_ms, &stream_cbs,
                  &dial_ops);
    return c;
}

void nc_nats_conn_close(nc_nats_conn *c, int graceful) {
    if (nc_dial_close_early(&c->d)) return; /* ended, or no stream yet */
    if (graceful && c->state == NS_READY)
        nc_stream_end(&c->d.st);
    else
        nc_stream_close(&c->d.st, 0, "closed");
}
