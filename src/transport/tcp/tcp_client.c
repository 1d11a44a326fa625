/* TCP and TLS client transport (NestJS ClientTCP, tcp.md §6). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client_internal.h"
#include "core/errors.h"
#include "io/tls.h"
#include "nestc/error.h"
#include "transport/tcp/tcp.h"
#include "transport/tcp/tcp_conn.h"

typedef struct tcp_client {
    nc_client *cli;
    SSL_CTX *ssl;
    char *host, *verify_host;
    int port;
    nc_tcp_conn *conn;    /* the current connection, NULL when none */
    uv_getaddrinfo_t gai; /* host resolution in progress when resolving = 1 */
    int resolving, cancel_resolve;
    nc_tcp_limits lim;
} tcp_client;

static int conn_frame(nc_tcp_conn *c, const char *json, size_t len, char *why, size_t whylen) {
    tcp_client *t = c->owner;
    return nc_client__on_body(t->cli, json, len, why, whylen);
}

static void conn_open(nc_tcp_conn *c, int err, const char *msg) {
    tcp_client *t = c->owner;
    if (!err) nc_client__connected(t->cli);
    /* failures are reported by conn_end, which always follows */
}

static void conn_end(nc_tcp_conn *c, int err, const char *msg) {
    tcp_client *t = c->owner;
    if (t->conn != c) return;
    t->conn = NULL;
    nc_tcp_conn_release(c);
    char text[300];
    if (err == NC_ECONNREFUSED || err == NC_ETLS || err == NC_ETIMEDOUT || err == NC_ERESOLVE)
        snprintf(text, sizeof text, "%s (%s:%d)", msg ? msg : nc_strerror(err), t->host, t->port);
    else
        snprintf(text, sizeof text, "%s", msg ? msg : nc_strerror(err));
    if (err && err != NC_ECONNCLOSED && err != NC_ECLOSED)
        nc_logf(nc_client__log(t->cli), NC_LOG_ERROR, "Client", "%s", text);
    nc_client__disconnected(t->cli, err, text);
}

static const nc_tcp_conn_cbs conn_cbs = {conn_frame, conn_open, conn_end, NULL};

static int tcp_create(nc_client *cli, const nc_url *url, void **state) {
    const nc_client_cfg *cfg = nc_client__cfg(cli);
    tcp_client *t = calloc(1, sizeof *t);
    if (!t) return NC_ENOMEM;
    t->cli = cli;
    t->host = strdup(url->host[0] ? url->host : "localhost");
    t->port = url->port >= 0 ? url->port : 3000;
    t->lim = (nc_tcp_limits){cfg->max_buffer_size, cfg->max_send_buffer_size, cfg->incomplete_timeout_ms, 0};
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

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    tcp_client *t = req->data;
    t->resolving = 0;
    if (t->cancel_resolve) {
        t->cancel_resolve = 0;
        if (res) uv_freeaddrinfo(res);
        nc_client__disconnected(t->cli, NC_ECLOSED, "Connection closed");
        return;
    }
    if (status < 0 || !res) {
        char msg[200];
        snprintf(msg, sizeof msg, "getaddrinfo %s %s", uv_err_name(status), t->host);
        nc_logf(nc_client__log(t->cli), NC_LOG_ERROR, "Client", "%s", msg);
        if (res) uv_freeaddrinfo(res);
        nc_client__disconnected(t->cli, nc_err_from_uv(status), msg);
        return;
    }
    nc_tcp_conn *c = nc_tcp_conn_new(nc_client__io(t->cli), t->ssl, 0, t->verify_host, &t->lim, &conn_cbs,
                                     nc_client__log(t->cli), "Client", t);
    if (!c) {
        uv_freeaddrinfo(res);
        nc_client__disconnected(t->cli, NC_ENOMEM, "out of memory");
        return;
    }
    snprintf(c->peer, sizeof c->peer, "%s:%d", t->host, t->port);
    t->conn = c;
    int r = nc_stream_connect(&c->st, res->ai_addr);
    uv_freeaddrinfo(res);
    if (r) nc_tcp_conn_close(c, 0, r, "connect failed"); /* conn_end reports it */
}

static int tcp_connect(void *state) {
    tcp_client *t = state;
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    t->gai.data = t;
    int r = uv_getaddrinfo(nc_client__io(t->cli)->loop, &t->gai, on_resolved, t->host, port, &hints);
    if (r) return nc_err_from_uv(r);
    t->resolving = 1;
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
    if (t->resolving) {
        t->cancel_resolve = 1;
        uv_cancel((uv_req_t *)&t->gai);
        return;
    }
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
