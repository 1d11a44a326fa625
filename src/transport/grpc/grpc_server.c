/* The grpc:// server (NestJS ServerGrpc): the ops table. Loads the .proto files, listens, accepts HTTP/2
 * connections (grpc_conn.c) whose calls grpc_calls.c turns into requests of the core, and closes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "io/listen.h"
#include "codec/proto_codec.h"
#include "core/errors.h"
#include "core/fail.h"
#include "core/server_transport.h"
#include "io/tls.h"
#include "nestc/error.h"
#include "transport/grpc/grpc.h"
#include "transport/grpc/grpc_conn.h"
#include "transport/grpc/grpc_gzip.h"
#include "transport/grpc/grpc_methods.h"
#include "transport/grpc/grpc_server.h"

static void maybe_closed(nc_grpc_server *g) {
    if (g->closing == 1 && !g->listener_open && !g->conns) {
        g->closing = 2;
        nc_server__closed(g->srv);
    }
}

static void conn_end(nc_grpc_conn *c, int err, const char *msg) {
    nc_grpc_server *g = c->owner;
    if (err && err != NC_ECONNCLOSED)
        nc_logf(nc_server__log(g->srv), NC_LOG_DEBUG, "Server", "gRPC connection %s closed: %s", c->peer,
                msg ? msg : nc_strerror(err));
    if (c->prev)
        c->prev->next = c->next;
    else if (g->conns == c)
        g->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void conn_free(nc_grpc_conn *c) {
    maybe_closed(c->owner);
}

static const nc_grpc_conn_cbs conn_cbs = {nc_grpc_on_call,   nc_grpc_on_message,   nc_grpc_on_half_close,
                                          nc_grpc_on_cancel, nc_grpc_on_call_free, conn_end,
                                          conn_free,         nc_grpc_on_writable};

static void on_connection(uv_stream_t *l, int status) {
    nc_grpc_server *g = l->data;
    if (status < 0) {
        nc_logf(nc_server__log(g->srv), NC_LOG_ERROR, "Server", "accept failed: %s", uv_strerror(status));
        return;
    }
    nc_grpc_conn *c = nc_grpc_conn_new(nc_server__io(g->srv), g->ssl, g->max_message, g->max_metadata,
                                       &conn_cbs, nc_server__log(g->srv), g);
    if (!c) {
        nc_logf(nc_server__log(g->srv), NC_LOG_ERROR, "Server", "out of memory: dropping a new connection");
        uv_tcp_t *tmp = malloc(sizeof *tmp);
        if (tmp && uv_tcp_init(l->loop, tmp) == 0) {
            uv_accept(l, (uv_stream_t *)tmp);
            uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
        } else {
            free(tmp);
        }
        return;
    }
    c->max_send = nc_server__cfg(g->srv)->max_send_buffer_size; /* maxSendBufferSize, as on TCP */
    c->compress = g->compress;
    c->deflater = &g->deflater;
    c->ka = g->ka;
    c->next = g->conns;
    if (g->conns) g->conns->prev = c;
    g->conns = c;
    /* a client has the TLS handshake and then incompleteMessageTimeout to send its first frame */
    const nc_server_cfg *cfg = nc_server__cfg(g->srv);
    int first = cfg->incomplete_timeout_ms;
    if (g->ssl && first && cfg->handshake_timeout_ms) first += cfg->handshake_timeout_ms;
    int r = nc_grpc_conn_accept(c, l, first);
    if (r) nc_grpc_conn_close(c, r, "accept failed");
}

/* ---- ops ----------------------------------------------------------------------------------------------- */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg) {
    static const unsigned char h2[] = {2, 'h', '2'};
    unsigned char *o;
    if (SSL_select_next_proto(&o, outlen, h2, sizeof h2, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* gRPC over TLS is h2 or nothing */
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static int grpc_create(nc_server *srv, const nc_url *url, void **state) {
    const nc_server_cfg *cfg = nc_server__cfg(srv);
    const nc_optset *o = nc_server__opts(srv);
    char why[600];
    if (nc_url_check(url, 0, why, sizeof why))
        return nc_fail(nc_server__log(srv), "Server", NC_EINVAL, "%s", why);
    nc_grpc_server *g = calloc(1, sizeof *g);
    if (!g) return NC_ENOMEM;
    g->srv = srv;
    g->host = strdup(url->host[0] ? url->host : "localhost");
    g->port = url->port >= 0 ? url->port : 5000; /* NestJS's default url, localhost:5000 */
    g->max_message = (uint32_t)nc_opts_int(o, "maxReceiveMessageLength");
    g->max_metadata = (uint32_t)nc_opts_int(o, "maxMetadataSize");
    g->max_send_message = nc_opts_int(o, "maxSendMessageLength");
    g->compress = nc_grpc_compression_opt(o);
    g->ka = (nc_grpc_keepalive){.time_ms = (int)nc_opts_int(o, "keepaliveTimeMs"),
                                .timeout_ms = (int)nc_opts_int(o, "keepaliveTimeoutMs"),
                                .permit_without_calls = nc_opts_bool(o, "keepalivePermitWithoutCalls"),
                                .min_ping_ms = (int)nc_opts_int(o, "http2MinPingIntervalWithoutDataMs"),
                                .max_strikes = (int)nc_opts_int(o, "http2MaxPingStrikes"),
                                .idle_ms = (int)nc_opts_int(o, "maxConnectionIdleMs"),
                                .age_ms = (int)nc_opts_int(o, "maxConnectionAgeMs"),
                                .age_grace_ms = (int)nc_opts_int(o, "maxConnectionAgeGraceMs")};
    nc_grpc_json_opts(o, &g->jo);
    int r = nc_grpc_methods_load(&g->methods, nc_opts_str(o, "protoPath"), nc_opts_str(o, "package"),
                                 nc_opts_str(o, "includeDirs"), why, sizeof why);
    if (r) {
        free(g->host);
        free(g);
        return nc_fail(nc_server__log(srv), "Server", r, "%s", why);
    }
    r = nc_grpc_builtin_init(&g->builtin, &g->methods, nc_opts_bool(o, "healthCheck"),
                             nc_opts_bool(o, "reflection"), why, sizeof why);
    if (r) {
        nc_grpc_methods_free(&g->methods);
        free(g->host);
        free(g);
        return nc_fail(nc_server__log(srv), "Server", r, "%s", why);
    }
    if (cfg->has_tls) {
        r = nc_tls_ctx_new(&g->ssl, &cfg->tls, 1, why, sizeof why);
        if (r) {
            nc_grpc_builtin_free(&g->builtin);
            nc_grpc_methods_free(&g->methods);
            free(g->host);
            free(g);
            return nc_fail(nc_server__log(srv), "Server", r, "%s", why);
        }
        SSL_CTX_set_alpn_select_cb(g->ssl, alpn_select, NULL);
    }
    *state = g;
    return 0;
}

static int grpc_listen(void *state) {
    nc_grpc_server *g = state;
    char why[300];
    int r =
        nc_listen_tcp(nc_server__io(g->srv)->loop, &g->listener, g->host, g->port,
                      nc_server__cfg(g->srv)->reuseport, on_connection, g, &g->bound_port, why, sizeof why);
    if (r) return nc_fail(nc_server__log(g->srv), "Server", r, "%s", why);
    g->listener_open = 1;
    return 0;
}

static int grpc_route_added(void *state, const char *route, const nc_optset *opts) {
    nc_grpc_server *g = state;
    return nc_map_put(&g->handled, route, strlen(route), g, NULL) ? NC_ENOMEM : 0;
}

static void listener_closed(uv_handle_t *h) {
    nc_grpc_server *g = h->data;
    g->listener_open = 0;
    maybe_closed(g);
}

static void grpc_stop_accepting(void *state) {
    nc_grpc_server *g = state;
    nc_grpc_builtin_not_serving(&g->builtin); /* health: NOT_SERVING from the start of a shutdown */
    if (g->listener_open && !uv_is_closing((uv_handle_t *)&g->listener))
        uv_close((uv_handle_t *)&g->listener, listener_closed);
}

static void grpc_close(void *state) {
    nc_grpc_server *g = state;
    grpc_stop_accepting(g);
    g->closing = 1;
    nc_grpc_builtin_end_watches(&g->builtin);
    for (nc_grpc_conn *c = g->conns, *next; c; c = next) {
        next = c->next;
        nc_grpc_conn_close(c, NC_ECLOSED, "server closing");
    }
    maybe_closed(g);
}

static void grpc_drain(void *state) {
    nc_grpc_server *g = state;
    grpc_stop_accepting(g);
    g->closing = 1;
    nc_grpc_builtin_end_watches(&g->builtin); /* the health watches are the only calls left open */
    /* no call is in flight: GOAWAY, then each connection ends after its last byte */
    for (nc_grpc_conn *c = g->conns, *next; c; c = next) {
        next = c->next;
        nc_grpc_conn_drain(c);
    }
    maybe_closed(g);
}

static void grpc_destroy(void *state) {
    nc_grpc_server *g = state;
    if (g->ssl) SSL_CTX_free(g->ssl);
    nc_grpc_deflater_free(g->deflater);
    nc_grpc_builtin_free(&g->builtin);
    nc_grpc_methods_free(&g->methods);
    nc_map_free(&g->handled);
    free(g->host);
    free(g);
}

static int grpc_port(void *state) {
    return ((nc_grpc_server *)state)->bound_port;
}

static const char *const schemes[] = {"grpc", NULL};

static int grpc_set_health(void *state, const char *service, int status) {
    nc_grpc_server *g = state;
    return nc_grpc_builtin_set_health(&g->builtin, service, status);
}

const nc_server_transport nc_grpc_server_transport = {
    .schemes = schemes,
    .options = nc_grpc_options,
    .supports_workers = 1,
    .create = grpc_create,
    .listen = grpc_listen,
    .route_added = grpc_route_added,
    .stop_accepting = grpc_stop_accepting,
    .close = grpc_close,
    .destroy = grpc_destroy,
    .port = grpc_port,
    .drain = grpc_drain,
    .set_health = grpc_set_health,
};
