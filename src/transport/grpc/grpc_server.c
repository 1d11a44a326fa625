/* The grpc:// server (NestJS ServerGrpc): listens, accepts HTTP/2 connections (grpc_conn.c), maps each
 * call to its handler by NestJS's key {service, rpc, streaming}, decodes requests to JSON as NestJS's
 * loader does, encodes the handler's replies, and ends each call with the status its error maps to
 * (grpc.md §5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "codec/json_build.h"
#include "codec/json_write.h"
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

typedef struct grpc_server {
    nc_server *srv;
    SSL_CTX *ssl;
    char *host;
    int port, bound_port;
    uv_tcp_t listener;
    int listener_open;
    int closing;
    nc_grpc_conn *conns;
    nc_grpc_methods methods;
    nc_pb_json_opts jo;
    uint32_t max_message, max_metadata;
    nc_map handled; /* routes that have a handler (route_added) */
} grpc_server;

/* What the server attaches to a call (call->user). */
typedef struct gcall {
    grpc_server *g;
    const nc_grpc_method *gm;
    const char *route;
    nc_buf req; /* unary request: the one message, until the client half-closes */
    int nreq;
    int dispatched;
    uint64_t token;  /* the request's inbound stream (client streaming) */
    int sent_single; /* a unary response went */
    nc_buf last;     /* client streaming with one response: the last value so far, encoded */
    int have_last;
} gcall;

static void maybe_closed(grpc_server *g) {
    if (g->closing == 1 && !g->listener_open && !g->conns) {
        g->closing = 2;
        nc_server__closed(g->srv);
    }
}

/* grpc-js's words: a method of the proto without a handler is named alone, an unknown one by its path. */
static const char *unimplemented(const nc_grpc_call *call, const nc_grpc_method *gm, char *buf, size_t len) {
    snprintf(buf, len, "The server does not implement the method %s",
             gm                ? gm->m->name
             : call->path.data ? call->path.data
                               : "");
    return buf;
}

/* ---- replies: the core's packets as gRPC messages and status --------------------------------------- */

/* The status and message of an error value, as grpc-js makes them of what NestJS hands it: a numeric
 * `code` of 1..16 is the status (RpcException({code, message})), anything else UNKNOWN; `message` (or
 * the string itself) is grpc-message. */
static int error_status(const char *text, size_t len, char **msg) {
    json_t *e = nc_json_build(text, len);
    int code = 2;
    *msg = NULL;
    if (json_is_object(e)) {
        json_t *c = json_object_get(e, "code"), *m = json_object_get(e, "message");
        if (json_is_integer(c) && json_integer_value(c) >= 1 && json_integer_value(c) <= 16)
            code = (int)json_integer_value(c);
        if (json_is_string(m)) *msg = strdup(json_string_value(m));
    } else if (json_is_string(e)) {
        *msg = strdup(json_string_value(e));
    } else if (e) {
        *msg = strndup(text, len);
    }
    nc_json_free(e);
    return code;
}

/* Encodes a reply value as the method's output message into out. 0, or the status to end with. */
static int encode_reply(gcall *gc, const char *text, size_t len, nc_buf *out, char *why, size_t wl) {
    json_t *v = nc_json_build(text, len);
    if (!v) {
        snprintf(why, wl, "out of memory");
        return 13;
    }
    char err[200] = "";
    int r = nc_pb_encode(gc->gm->m->output, v, &gc->g->jo, out, err, sizeof err);
    nc_json_free(v);
    if (r) {
        snprintf(why, wl, "the reply is no %s: %s", gc->gm->m->output->full_name, err);
        return 13;
    }
    return 0;
}

static int call_reply(void *peer, const nc_reply_pkt *pkt) {
    nc_grpc_call *call = peer;
    gcall *gc = call->user;
    if (!gc || !nc_grpc_call_live(call)) return NC_ECONNCLOSED;
    char why[300];
    if (pkt->no_handler)
        return nc_grpc_call_finish(call, 12, unimplemented(call, gc->gm, why, sizeof why), NULL, 0);
    for (size_t i = 0; i < pkt->nheaders; i++)
        nc_grpc_call_add_header(call, pkt->headers[i].name, pkt->headers[i].name_len, pkt->headers[i].value,
                                pkt->headers[i].value_len);
    int single = !gc->gm->m->server_stream;
    if (pkt->response && !(single && gc->sent_single)) {
        nc_buf b = NC_BUF_INIT;
        int st = encode_reply(gc, pkt->response, pkt->response_len, &b, why, sizeof why);
        if (st) {
            nc_buf_free(&b);
            return nc_grpc_call_finish(call, st, why, NULL, 0);
        }
        int r = 0;
        if (single && gc->gm->m->client_stream) { /* NestJS: the last value is the response */
            nc_buf_free(&gc->last);
            gc->last = b;
            gc->have_last = 1;
            b = (nc_buf)NC_BUF_INIT;
        } else {
            r = nc_grpc_call_send(call, b.data ? b.data : "", b.len);
            if (single) gc->sent_single = 1; /* NestJS: the first value is the response */
        }
        nc_buf_free(&b);
        if (r) return r;
    }
    if (pkt->err) {
        char *msg;
        int code = error_status(pkt->err, pkt->err_len, &msg);
        if (pkt->has_status && pkt->status) code = pkt->status;
        int r = nc_grpc_call_finish(call, code, msg, pkt->trailers, pkt->ntrailers);
        free(msg);
        return r;
    }
    if (!pkt->disposed) return 0;
    if (gc->have_last) {
        int r = nc_grpc_call_send(call, gc->last.data ? gc->last.data : "", gc->last.len);
        gc->have_last = 0;
        gc->sent_single = 1;
        if (r) return r;
    }
    if (single && !gc->sent_single && !(pkt->has_status && pkt->status))
        return nc_grpc_call_finish(call, 13, "the handler ended without a response", NULL, 0);
    return nc_grpc_call_finish(call, pkt->has_status ? pkt->status : 0,
                               pkt->has_status ? pkt->status_msg : NULL, pkt->trailers, pkt->ntrailers);
}

static void call_retain(void *peer) {
    nc_grpc_call_retain(peer);
}
static void call_release(void *peer) {
    nc_grpc_call_release(peer);
}
static const nc_peer_ops peer_ops = {call_reply, call_retain, call_release};

/* ---- requests: from a call to the core ---------------------------------------------------------------- */

/* Decodes one request message to JSON text. 0, or finishes the call and returns nonzero. */
static int decode_request(nc_grpc_call *call, gcall *gc, const char *p, size_t n, nc_buf *text) {
    json_t *v = NULL;
    char err[200] = "";
    int r = nc_pb_decode(gc->gm->m->input, p, n, &gc->g->jo, &v, err, sizeof err);
    if (!r) r = nc_json_write(text, v);
    json_decref(v);
    if (r) {
        char why[300];
        snprintf(why, sizeof why, "cannot decode the request as %s: %s", gc->gm->m->input->full_name,
                 err[0] ? err : nc_strerror(r));
        nc_grpc_call_finish(call, 13, why, NULL, 0);
    }
    return r;
}

static void dispatch(nc_grpc_call *call, gcall *gc, const nc_buf *data) {
    grpc_server *g = gc->g;
    nc_header *hs = call->nhdr ? malloc(call->nhdr * sizeof *hs) : NULL;
    size_t nh = hs ? nc_grpc_call_headers(call, hs, call->nhdr) : 0;
    char id[16];
    int idl = snprintf(id, sizeof id, "%d", (int)call->id);
    nc_inbound_parts parts = {.id = id, .id_len = (size_t)idl, .data_is_json = 1};
    if (data) {
        parts.data = data->data ? data->data : "{}";
        parts.data_len = data->data ? data->len : 2;
    }
    nc_ctx_item ctx[1];
    size_t nctx = 0;
    uint32_t deadline = 0;
    if (call->timeout_ms >= 0) {
        ctx[nctx++] = (nc_ctx_item){.key = NC_CTX_TIMEOUT_MS, .num = call->timeout_ms};
        deadline = call->timeout_ms > UINT32_MAX ? UINT32_MAX
                   : call->timeout_ms            ? (uint32_t)call->timeout_ms
                                                 : 1;
    }
    nc_inbound in = {.channel = call->path.data,
                     .route = gc->route,
                     .headers = hs ? hs : (const nc_header *)"",
                     .nheaders = nh,
                     .ctx = ctx,
                     .nctx = nctx,
                     .parts = &parts,
                     .peer = call,
                     .peer_ops = &peer_ops,
                     .utf8_valid = 1,
                     .deadline_ms = deadline,
                     .stream_in = gc->gm->m->client_stream,
                     .stream_token = &gc->token};
    gc->dispatched = 1;
    char why[200];
    nc_server__dispatch(g->srv, NULL, 0, &in, why, sizeof why);
    free(hs);
}

static void on_call(nc_grpc_call *call) {
    grpc_server *g = call->conn->owner;
    char why[300];
    const nc_grpc_method *gm = nc_grpc_methods_find(&g->methods, call->path.data, call->path.len);
    const char *route = NULL;
    if (gm && nc_map_get(&g->handled, gm->route_rel, strlen(gm->route_rel)))
        route = gm->route_rel;
    else if (gm && nc_map_get(&g->handled, gm->route_full, strlen(gm->route_full)))
        route = gm->route_full; /* NestJS tries the fully qualified service name second */
    if (!route) {
        nc_grpc_call_finish(call, 12, unimplemented(call, gm, why, sizeof why), NULL, 0);
        return;
    }
    gcall *gc = calloc(1, sizeof *gc);
    if (!gc) {
        nc_grpc_call_finish(call, 8, "out of memory", NULL, 0);
        return;
    }
    gc->g = g;
    gc->gm = gm;
    gc->route = route;
    call->user = gc;
    if (gm->m->client_stream) dispatch(call, gc, NULL); /* the handler reads the stream as it comes */
}

/* One request message, uncompressed: a value of the request stream, or the unary request kept until the
 * client half-closes. */
static void on_plain_message(nc_grpc_call *call, gcall *gc, const char *data, size_t len) {
    if (gc->gm->m->client_stream) {
        nc_buf text = NC_BUF_INIT;
        if (!decode_request(call, gc, data, len, &text))
            nc_server__stream_value(gc->g->srv, gc->token, text.data, text.len);
        else if (gc->token)
            nc_server__stream_end(gc->g->srv, gc->token, NC_EPROTO);
        nc_buf_free(&text);
        return;
    }
    if (++gc->nreq > 1) {
        nc_grpc_call_finish(call, 12, "more than one request message for a method without a request stream",
                            NULL, 0);
        return;
    }
    if (nc_buf_append(&gc->req, data, len)) nc_grpc_call_finish(call, 8, "out of memory", NULL, 0);
}

static void on_message(nc_grpc_call *call, const char *data, size_t len, int compressed) {
    gcall *gc = call->user;
    if (!gc) return;
    nc_buf plain = NC_BUF_INIT;
    if (compressed) { /* the flag says: in the call's grpc-encoding; gzip is the one clients use */
        int r = call->encoding && !strcmp(call->encoding, "gzip")
                    ? nc_grpc_gunzip(data, len, gc->g->max_message, &plain)
                    : NC_EUNSUPPORTED;
        if (r) {
            char why[200];
            if (r == NC_EUNSUPPORTED)
                snprintf(why, sizeof why, "compressed messages in grpc-encoding \"%s\" are not supported",
                         call->encoding ? call->encoding : "identity");
            else
                snprintf(why, sizeof why, "cannot decompress the request (%s): %s", call->encoding,
                         r == NC_ETOOBIG ? "larger than the message limit" : nc_strerror(r));
            nc_grpc_call_finish(call, r == NC_EUNSUPPORTED ? 12 : r == NC_ETOOBIG ? 8 : 13, why, NULL, 0);
            if (gc->token) nc_server__stream_end(gc->g->srv, gc->token, NC_EPROTO);
            nc_buf_free(&plain);
            return;
        }
        data = plain.data ? plain.data : "";
        len = plain.len;
    }
    on_plain_message(call, gc, data, len);
    nc_buf_free(&plain);
}

static void on_half_close(nc_grpc_call *call) {
    gcall *gc = call->user;
    if (!gc) return;
    if (gc->gm->m->client_stream) {
        if (gc->token) nc_server__stream_end(gc->g->srv, gc->token, 0);
        return;
    }
    if (gc->nreq != 1) {
        nc_grpc_call_finish(call, 12, "no request message for a method without a request stream", NULL, 0);
        return;
    }
    nc_buf text = NC_BUF_INIT;
    if (!decode_request(call, gc, gc->req.data ? gc->req.data : "", gc->req.len, &text))
        dispatch(call, gc, &text);
    nc_buf_free(&text);
    nc_buf_free(&gc->req);
}

static void on_cancel(nc_grpc_call *call) {
    gcall *gc = call->user;
    if (gc && gc->dispatched) nc_server__peer_gone(gc->g->srv, call);
}

static void on_call_free(nc_grpc_call *call) {
    gcall *gc = call->user;
    if (!gc) return;
    nc_buf_free(&gc->req);
    nc_buf_free(&gc->last);
    free(gc);
    call->user = NULL;
}

static void conn_end(nc_grpc_conn *c, int err, const char *msg) {
    grpc_server *g = c->owner;
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

static const nc_grpc_conn_cbs conn_cbs = {on_call,      on_message, on_half_close, on_cancel,
                                          on_call_free, conn_end,   conn_free};

static void on_connection(uv_stream_t *l, int status) {
    grpc_server *g = l->data;
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
    grpc_server *g = calloc(1, sizeof *g);
    if (!g) return NC_ENOMEM;
    g->srv = srv;
    g->host = strdup(url->host[0] ? url->host : "localhost");
    g->port = url->port >= 0 ? url->port : 5000; /* NestJS's default url, localhost:5000 */
    g->max_message = (uint32_t)nc_opts_int(o, "maxReceiveMessageLength");
    g->max_metadata = (uint32_t)nc_opts_int(o, "maxMetadataSize");
    nc_grpc_json_opts(o, &g->jo);
    int r = nc_grpc_methods_load(&g->methods, nc_opts_str(o, "protoPath"), nc_opts_str(o, "package"),
                                 nc_opts_str(o, "includeDirs"), why, sizeof why);
    if (r) {
        free(g->host);
        free(g);
        return nc_fail(nc_server__log(srv), "Server", r, "%s", why);
    }
    if (cfg->has_tls) {
        r = nc_tls_ctx_new(&g->ssl, &cfg->tls, 1, why, sizeof why);
        if (r) {
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
    grpc_server *g = state;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", g->port);
    int r = getaddrinfo(g->host, port, &hints, &res);
    if (r || !res)
        return nc_fail(nc_server__log(g->srv), "Server", NC_ERESOLVE, "cannot resolve %s: %s", g->host,
                       gai_strerror(r));
    uv_tcp_init_ex(nc_server__io(g->srv)->loop, &g->listener, (unsigned)res->ai_family);
    g->listener.data = g;
    g->listener_open = 1;
    r = uv_tcp_bind(&g->listener, res->ai_addr, 0);
    freeaddrinfo(res);
    if (!r) r = uv_listen((uv_stream_t *)&g->listener, 1024, on_connection);
    if (r) {
        nc_fail(nc_server__log(g->srv), "Server", nc_err_from_uv(r), "cannot listen on %s:%d: %s", g->host,
                g->port, uv_strerror(r));
        g->listener_open = 0;
        uv_close((uv_handle_t *)&g->listener, NULL);
        return nc_err_from_uv(r);
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    uv_tcp_getsockname(&g->listener, (struct sockaddr *)&ss, &sl);
    g->bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static int grpc_route_added(void *state, const char *route, const nc_optset *opts) {
    grpc_server *g = state;
    return nc_map_put(&g->handled, route, strlen(route), g, NULL) ? NC_ENOMEM : 0;
}

static void listener_closed(uv_handle_t *h) {
    grpc_server *g = h->data;
    g->listener_open = 0;
    maybe_closed(g);
}

static void grpc_stop_accepting(void *state) {
    grpc_server *g = state;
    if (g->listener_open && !uv_is_closing((uv_handle_t *)&g->listener))
        uv_close((uv_handle_t *)&g->listener, listener_closed);
}

static void grpc_close(void *state) {
    grpc_server *g = state;
    grpc_stop_accepting(g);
    g->closing = 1;
    for (nc_grpc_conn *c = g->conns, *next; c; c = next) {
        next = c->next;
        nc_grpc_conn_close(c, NC_ECLOSED, "server closing");
    }
    maybe_closed(g);
}

static void grpc_drain(void *state) {
    grpc_server *g = state;
    grpc_stop_accepting(g);
    g->closing = 1;
    /* no call is in flight: GOAWAY, then each connection ends after its last byte */
    for (nc_grpc_conn *c = g->conns, *next; c; c = next) {
        next = c->next;
        nc_grpc_conn_drain(c);
    }
    maybe_closed(g);
}

static void grpc_destroy(void *state) {
    grpc_server *g = state;
    if (g->ssl) SSL_CTX_free(g->ssl);
    nc_grpc_methods_free(&g->methods);
    nc_map_free(&g->handled);
    free(g->host);
    free(g);
}

static int grpc_port(void *state) {
    return ((grpc_server *)state)->bound_port;
}

static const char *const schemes[] = {"grpc", NULL};

const nc_server_transport nc_grpc_server_transport = {
    .schemes = schemes,
    .options = nc_grpc_options,
    .create = grpc_create,
    .listen = grpc_listen,
    .route_added = grpc_route_added,
    .stop_accepting = grpc_stop_accepting,
    .close = grpc_close,
    .destroy = grpc_destroy,
    .port = grpc_port,
    .drain = grpc_drain,
};
