/* TCP and TLS client transport (NestJS ClientTCP, tcp.md §6). Each connection attempt is an nc_dial
 * (name resolution, then the framed connection shared with the server, nc_tcp_conn): its timer is the
 * connect timeout, TLS handshake included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client_internal.h"
#include "core/errors.h"
#include "core/fail.h"
#include "io/dial.h"
#include "io/tls.h"
#include "nestc/error.h"
#include "transport/tcp/tcp.h"
#include "transport/tcp/tcp_conn.h"

typedef struct tcp_client tcp_client;

/* One connection attempt; frees itself once ended. */
typedef struct tcp_dial {
    nc_dial d;     /* first */
    tcp_client *t; /* NULL once the attempt is over for the client (connected, or reported) */
} tcp_dial;

struct tcp_client {
    nc_client *cli;
    SSL_CTX *ssl;
    char *host, *verify_host;
    int port;
    nc_tcp_conn *conn; /* the current connection, NULL when none */
    tcp_dial *dial;    /* the attempt in progress (resolving or connecting), NULL when none */
    int connect_timeout_ms;
    nc_tcp_limits lim;
};

/* The attempt is over for the client: the dial ends (if it has not) and frees itself. */
static void dial_done(tcp_client *t, int err, const char *msg) {
    tcp_dial *a = t->dial;
    if (!a) return;
    t->dial = NULL;
    a->t = NULL;
    nc_dial_end(&a->d, err, msg);
}

static int conn_frame(nc_tcp_conn *c, const char *json, size_t len, char *why, size_t whylen) {
    tcp_client *t = c->owner;
    return nc_client__on_body(t->cli, json, len, why, whylen);
}

static void conn_open(nc_tcp_conn *c, int err, const char *msg) {
    tcp_client *t = c->owner;
    if (err) return; /* failures are reported by conn_end, which always follows */
    if (t->dial) nc_dial_connected(&t->dial->d);
    dial_done(t, 0, NULL);
    nc_client__connected(t->cli);
}

static void conn_end(nc_tcp_conn *c, int err, const char *msg) {
    tcp_client *t = c->owner;
    if (t->conn != c) return;
    t->conn = NULL;
    /* the connect timeout, if it was that (its words name the peer already) */
    int timed_out = t->dial && t->dial->d.end_err;
    if (timed_out) nc_dial_reason(&t->dial->d, &err, &msg);
    char text[400], at[280];
    snprintf(at, sizeof at, "%s:%d", t->host, t->port);
    if (!timed_out &&
        (err == NC_ECONNREFUSED || err == NC_ETLS || err == NC_ETIMEDOUT || err == NC_ERESOLVE) &&
        !(msg && strstr(msg, at))) /* a failed connect's words may name the address already */
        snprintf(text, sizeof text, "%s (%s)", msg ? msg : nc_strerror(err), at);
    else
        snprintf(text, sizeof text, "%s", msg ? msg : nc_strerror(err));
    const nc_log_ctx lc = {.peer = c->peer};
    if (err && err != NC_ECONNCLOSED && err != NC_ECLOSED)
        nc_logf_ctx(nc_client__log(t->cli), NC_LOG_ERROR, "Client", &lc, "%s", text);
    dial_done(t, err, text);
    nc_tcp_conn_release(c);
    nc_client__disconnected(t->cli, err, text);
}

static const nc_tcp_conn_cbs conn_cbs = {conn_frame, conn_open, conn_end, NULL, NULL};

/* The name is resolved: the framed connection the dial connects. */
static nc_stream *dial_stream(nc_dial *d) {
    tcp_client *t = ((tcp_dial *)d)->t;
    nc_tcp_conn *c = nc_tcp_conn_new(nc_client__io(t->cli), t->ssl, 0, t->verify_host, &t->lim, &conn_cbs,
                                     nc_client__log(t->cli), "Client", t);
    if (!c) return NULL;
    snprintf(c->peer, sizeof c->peer, "%s:%d", t->host, t->port);
    t->conn = c;
    return &c->st;
}

/* The attempt ended before there was a connection: name resolution failed, it timed out meanwhile, or the
 * client closed it (err 0). */
static void dial_ended(nc_dial *d, int err, const char *msg) {
    tcp_dial *a = (tcp_dial *)d;
    tcp_client *t = a->t;
    if (!t) return; /* the connection's end was reported instead (conn_end), or it connected */
    t->dial = NULL;
    a->t = NULL;
    if (!err) {
        nc_client__disconnected(t->cli, NC_ECLOSED, "Connection closed");
        return;
    }
    nc_logf(nc_client__log(t->cli), NC_LOG_ERROR, "Client", "%s", msg);
    nc_client__disconnected(t->cli, err, msg);
}

static void dial_free(nc_dial *d) {
    free(d);
}

static const nc_dial_ops dial_ops = {dial_ended, dial_free, dial_stream};

static int tcp_create(nc_client *cli, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_CLIENT, why, sizeof why))
        return nc_fail(nc_client__log(cli), "Client", NC_EINVAL, "%s", why);
    const nc_client_cfg *cfg = nc_client__cfg(cli);
    tcp_client *t = calloc(1, sizeof *t);
    if (!t) return NC_ENOMEM;
    t->cli = cli;
    t->host = strdup(url->host[0] ? url->host : "localhost");
    t->port = url->port >= 0 ? url->port : 3000;
    t->lim = (nc_tcp_limits){cfg->max_buffer_size, cfg->max_send_buffer_size, cfg->incomplete_timeout_ms, 0};
    t->connect_timeout_ms = cfg->connect_timeout_ms;
    if (strcmp(url->scheme, "tls") == 0) {
        static const nc_tls_opts none = {0};
        char err[300];
        int r = nc_tls_ctx_new(&t->ssl, cfg->has_tls ? &cfg->tls : &none, 0, err, sizeof err);
        if (r) {
            nc_logf(nc_client__log(cli), NC_LOG_ERROR, "Client", "%s", err);
            free(t->host);
            free(t);
            return r;
        }
        t->verify_host = strdup(cfg->has_tls && cfg->tls.server_name ? cfg->tls.server_name : t->host);
    }
    *state = t;
    return 0;
}

static int tcp_connect(void *state) {
    tcp_client *t = state;
    tcp_dial *a = calloc(1, sizeof *a);
    if (!a) return NC_ENOMEM;
    a->t = t;
    t->dial = a;
    nc_dial_start(&a->d, nc_client__io(t->cli), t->host, t->port, NULL, NULL, t->connect_timeout_ms, 0, NULL,
                  &dial_ops);
    return 0;
}

static int tcp_send(void *state, nc_outbound *out) {
    tcp_client *t = state;
    if (!t->conn) return NC_ECONNCLOSED;
    int r = nc_tcp_conn_send(t->conn, out->body, out->len);
    if (r) return r;
    if (out->accepted) {
        /* an event is done once the socket took it (NestJS completes emit() right after write) */
        r = nc_stream_notify_written(&t->conn->st, out->accepted, out->arg);
        if (r) return r;
    }
    return 0;
}

static void tcp_close(void *state) {
    tcp_client *t = state;
    if (t->dial && nc_dial_close_early(&t->dial->d)) return; /* resolving: dial_ended reports it */
    /* half-close after what is queued was written, as ClientTCP.close() does (FIN) */
    if (t->conn) nc_tcp_conn_close(t->conn, nc_tcp_conn_is_open(t->conn), NC_ECLOSED, "Connection closed");
}

static void *tcp_unwrap(void *state) {
    tcp_client *t = state;
    return t->conn ? (void *)&t->conn->st.tcp : NULL;
}

static void tcp_destroy(void *state) {
    tcp_client *t = state;
    if (t->ssl) SSL_CTX_free(t->ssl);
    free(t->host);
    free(t->verify_host);
    free(t);
}

static const char *const schemes[] = {"tcp", "tls", NULL};

/* tcp_create tells tls:// from tcp:// by the URL */
const nc_client_transport nc_tcp_client_transport = {
    .schemes = schemes,
    .event_pattern_is_route = 1,
    .create = tcp_create,
    .connect = tcp_connect,
    .send = tcp_send,
    .forget = NULL,
    .close = tcp_close,
    .unwrap = tcp_unwrap,
    .destroy = tcp_destroy,
};
