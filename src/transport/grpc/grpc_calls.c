/* A gRPC call as a request of the core: the handler chosen by NestJS's key, the request decoded (gzip
 * first when compressed) and dispatched, the core's reply packets encoded as the method's output messages,
 * and errors mapped to status codes as NestJS's are (grpc.md §5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_build.h"
#include "codec/json_write.h"
#include "nestc/error.h"
#include "transport/grpc/grpc_gzip.h"
#include "transport/grpc/grpc_server.h"

/* What the server attaches to a call (call->user). */
typedef struct gcall {
    nc_grpc_server *g;
    const nc_grpc_method *gm;
    const char *route;
    nc_buf req; /* unary request: the one message, until the client half-closes */
    int nreq;
    int dispatched;
    uint64_t token;  /* the request's inbound stream (client streaming) */
    int sent_single; /* a unary response went */
    nc_buf last;     /* client streaming with one response: the last value so far, encoded */
    int have_last;
    nc_grpc_builtin_kind builtin; /* a health or reflection call, answered without the core */
} gcall;

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
    if (gc->g->max_send_message >= 0 && (long long)out->len > gc->g->max_send_message) {
        /* grpc-js's words; its first number counts the 5-byte message prefix too */
        snprintf(why, wl, "Sent message larger than max (%zu vs. %lld)", out->len + 5,
                 gc->g->max_send_message);
        return 8;
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
static const char *call_addr(void *peer) {
    nc_grpc_call *call = peer;
    return call->conn && strcmp(call->conn->peer, "?") ? call->conn->peer : NULL;
}

static size_t call_pending(void *peer) {
    return nc_grpc_call_pending(peer);
}
static void call_watch(void *peer, int on) {
    nc_grpc_call_watch(peer, on);
}

static const nc_peer_ops peer_ops = {call_reply, call_retain,  call_release,
                                     call_addr,  call_pending, call_watch};

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

static const nc_header no_headers[1];

static void dispatch(nc_grpc_call *call, gcall *gc, const nc_buf *data) {
    nc_grpc_server *g = gc->g;
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
                     .headers = hs ? hs : no_headers, /* gRPC always has metadata, maybe empty */
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

void nc_grpc_on_call(nc_grpc_call *call) {
    nc_grpc_server *g = call->conn->owner;
    char why[300];
    nc_grpc_builtin_kind bk = nc_grpc_builtin_find(&g->builtin, call->path.data);
    if (bk) {
        gcall *gc = calloc(1, sizeof *gc);
        if (!gc) {
            nc_grpc_call_finish(call, 8, "out of memory", NULL, 0);
            return;
        }
        gc->g = g;
        gc->builtin = bk;
        call->user = gc;
        return;
    }
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
    if (gc->builtin == NC_GB_REFLECT) {
        nc_grpc_builtin_reflect(&gc->g->builtin, call, data, len);
        return;
    }
    if (!gc->builtin && gc->gm->m->client_stream) {
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

void nc_grpc_on_message(nc_grpc_call *call, const char *data, size_t len, int compressed) {
    gcall *gc = call->user;
    if (!gc) return;
    nc_buf plain = NC_BUF_INIT;
    if (compressed) { /* the flag says: in the call's grpc-encoding (gzip and deflate, as grpc-js reads) */
        int algo = !call->encoding                      ? -1
                   : !strcmp(call->encoding, "gzip")    ? NC_GRPC_GZIP
                   : !strcmp(call->encoding, "deflate") ? NC_GRPC_DEFLATE
                                                        : -1;
        int r = algo > 0 ? nc_grpc_inflate(data, len, gc->g->max_message, algo, &plain) : NC_EUNSUPPORTED;
        if (r) {
            char why[200];
            if (r == NC_EUNSUPPORTED)
                snprintf(why, sizeof why, "compressed messages in grpc-encoding \"%s\" are not supported",
                         call->encoding ? call->encoding : "identity");
            else if (r == NC_ETOOBIG) /* grpc-js's words */
                snprintf(why, sizeof why, "Received message that decompresses to a size larger than %u",
                         (unsigned)gc->g->max_message);
            else
                snprintf(why, sizeof why, "cannot decompress the request (%s): %s", call->encoding,
                         nc_strerror(r));
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

void nc_grpc_on_half_close(nc_grpc_call *call) {
    gcall *gc = call->user;
    if (!gc) return;
    if (gc->builtin == NC_GB_REFLECT) {
        nc_grpc_call_finish(call, 0, NULL, NULL, 0);
        return;
    }
    if (!gc->builtin && gc->gm->m->client_stream) {
        if (gc->token) nc_server__stream_end(gc->g->srv, gc->token, 0);
        return;
    }
    if (gc->nreq != 1) {
        nc_grpc_call_finish(call, 12, "no request message for a method without a request stream", NULL, 0);
        return;
    }
    if (gc->builtin) {
        nc_grpc_builtin_request(&gc->g->builtin, call, gc->builtin, gc->req.data ? gc->req.data : "",
                                gc->req.len);
        nc_buf_free(&gc->req);
        return;
    }
    nc_buf text = NC_BUF_INIT;
    if (!decode_request(call, gc, gc->req.data ? gc->req.data : "", gc->req.len, &text))
        dispatch(call, gc, &text);
    nc_buf_free(&text);
    nc_buf_free(&gc->req);
}

void nc_grpc_on_cancel(nc_grpc_call *call) {
    gcall *gc = call->user;
    if (gc && gc->builtin == NC_GB_WATCH) nc_grpc_builtin_forget(&gc->g->builtin, call);
    if (gc && gc->dispatched) nc_server__peer_gone(gc->g->srv, call);
}

void nc_grpc_on_writable(nc_grpc_call *call) {
    gcall *gc = call->user;
    if (gc && gc->dispatched) nc_server__peer_writable(gc->g->srv, call);
}

void nc_grpc_on_call_free(nc_grpc_call *call) {
    gcall *gc = call->user;
    if (!gc) return;
    nc_buf_free(&gc->req);
    nc_buf_free(&gc->last);
    free(gc);
    call->user = NULL;
}
