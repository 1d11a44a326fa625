/* The grpc:// and grpcs:// client (NestJS ClientGrpcProxy, docs/grpc.md §8): the ops table. One HTTP/2
 * connection (nghttp2's client session, sans-I/O, over an nc_dial's stream: plain, or TLS with ALPN h2)
 * carries every call; each call is one HTTP/2 stream. The core hands a call as a NestJS envelope: its
 * `data` is the request message (read with nc_env_scan, as the Kafka client does), its route the method
 * ("package.Service/Method", or NestJS's {service, rpc}). Replies go back as nc_reply_in: each response
 * message a value, the status trailers the end (grpc-status 0) or the error {code, details}. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "codec/grpc_wire.h"
#include "codec/json_build.h"
#include "codec/json_scan.h"
#include "codec/json_write.h"
#include "codec/proto_codec.h"
#include "core/client_internal.h"
#include "core/errors.h"
#include "core/fail.h"
#include "io/dial.h"
#include "io/tls.h"
#include "nestc/error.h"
#include "nestc/version.h"
#include "transport/common/dial_conn.h"
#include "transport/grpc/grpc.h"
#include "transport/grpc/grpc_client_call.h"
#include "transport/grpc/grpc_gzip.h"
#include "transport/grpc/grpc_methods.h"
#include "util/map.h"

typedef struct gclient gclient;

/* The keepalive timer lives apart from its connection: closing a libuv handle takes a loop turn. */
typedef struct gka {
    uv_timer_t t;
    struct gconn *c; /* NULL once the connection ended */
} gka;

/* One connection; frees itself once its stream is closed (after the client let go of it). */
typedef struct gconn {
    nc_dial d;  /* first: the dial's stream finds the connection */
    gclient *g; /* NULL once the client let go */
    nghttp2_session *h2;
    int in_recv; /* inside mem_recv or mem_send: no mem_send, no close */
    int want_close;
    int ready;
    int reported;        /* the end was reported to the client */
    int goaway;          /* the server sent GOAWAY: no new calls here, those open finish */
    int replacement;     /* dialled by the transport for calls made after a GOAWAY (the core thinks it is
                            connected): its failure is dialled again (retry_attempts), then fails the calls
                            waiting for it, not the client */
    gcall *live;         /* calls with an HTTP/2 stream open here */
    gka *ka;             /* keepaliveTimeMs, NULL when off */
    int ping_out;        /* a keepalive PING waits for its ACK */
    struct gconn *dnext; /* the client's draining connections */
} gconn;

struct gclient {
    nc_client *cli;
    SSL_CTX *ssl;
    char *host, *verify_host, *authority;
    int port;
    nc_grpc_methods methods;
    nc_pb_json_opts dec, enc;
    uint32_t max_message;
    gconn *conn;     /* the connection new calls go to (NULL: none, or it got GOAWAY) */
    gconn *draining; /* connections that got GOAWAY, finishing their calls */
    nc_map calls;    /* request id -> gcall */
    gcall *waiting;  /* calls made while no connection was ready (after a GOAWAY), in order */
    int closing;     /* gc_close ran: every connection's end is reported */
    int ka_time_ms, ka_timeout_ms,
        ka_without_calls; /* keepaliveTimeMs, keepaliveTimeoutMs, ...PermitWithoutCalls */
    int compress;         /* request compression (grpc_gzip.h), 0 = identity */
    nc_grpc_deflater *deflater;
    int redials;            /* failed dials of a replacement connection in a row (retry_attempts) */
    struct gredial *redial; /* the wait before the next one, NULL when none */
};

/* The wait between dials of a replacement connection (retry_delay_ms); freed once its handle is closed. */
typedef struct gredial {
    uv_timer_t t;
    gclient *g; /* NULL once the client let go */
} gredial;

static const nc_logger *LOG(gclient *g) {
    return nc_client__log(g->cli);
}

/* ---- writing ----------------------------------------------------------------------------------------- */

static void conn_close_now(gconn *c, int err, const char *msg);

/* What nghttp2 has to send goes into the stream; never from inside nghttp2 (see in_recv). */
static void flush(gconn *c) {
    if (c->in_recv || !c->h2 || !nc_stream_is_open(&c->d.st)) return;
    c->in_recv = 1;
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->h2, &d);
        if (n < 0) {
            c->in_recv = 0;
            conn_close_now(c, NC_EPROTO, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0 || nc_stream_write(&c->d.st, d, (size_t)n)) break;
    }
    c->in_recv = 0;
    if (c->want_close) {
        c->want_close = 0;
        nc_stream_end(&c->d.st);
    }
}

static void conn_close_now(gconn *c, int err, const char *msg) {
    if (nc_dial_close_early(&c->d)) return;
    nc_stream_close(&c->d.st, err, msg);
}

/* ---- delivering to the core ---------------------------------------------------------------------------- */

/* One reply packet of the call: a value (JSON text), or the end with its status. Headers ride on the first
 * packet, trailers on the last. The core may re-enter (forget, cancel, new calls) before this returns. */
static void deliver(gclient *g, gcall *k, const char *value, size_t vlen, const char *err, size_t elen,
                    int final, int has_status, int code, const char *smsg, size_t slen) {
    if (k->done) return;
    nc_header hs[NC_GCALL_MAX_HEADERS], ts[NC_GCALL_MAX_HEADERS];
    nc_reply_in r = {.id = k->id,
                     .id_len = strlen(k->id),
                     .value = value,
                     .value_len = vlen,
                     .err = err,
                     .err_len = elen,
                     .final = final,
                     .has_status = has_status,
                     .status_code = code,
                     .status_msg = smsg,
                     .status_msg_len = slen};
    if (!k->headers_given && k->nhdr) {
        r.headers = hs;
        r.nheaders = nc_gcall_pairs(&k->hdr, hs, NC_GCALL_MAX_HEADERS);
        k->headers_given = 1;
    }
    if (final && k->ntrl) {
        r.trailers = ts;
        r.ntrailers = nc_gcall_pairs(&k->trl, ts, NC_GCALL_MAX_HEADERS);
    }
    if (final) k->done = 1;
    k->refs++;
    nc_client__on_reply(g->cli, &r);
    nc_gcall_unref(k);
}

/* Ends the call with a status other than OK: the error value {code, details} (grpc-js's ServiceError
 * without its JavaScript-only parts). */
static void deliver_status(gclient *g, gcall *k, int code, const char *msg, size_t len) {
    if (k->done) return;
    if (code == 0) {
        deliver(g, k, NULL, 0, NULL, 0, 1, 1, 0, msg, len);
        return;
    }
    nc_buf e = NC_BUF_INIT;
    json_t *d = nc_json_string_js(msg ? msg : "", msg ? len : 0, 0);
    json_t *v = d ? json_pack("{s:i,s:o}", "code", code, "details", d) : NULL;
    if (!v || nc_json_write(&e, v)) {
        json_decref(v);
        nc_buf_free(&e);
        static const char oom[] = "{\"code\":13,\"details\":\"out of memory\"}";
        deliver(g, k, NULL, 0, oom, sizeof oom - 1, 1, 1, code, msg, len);
        return;
    }
    json_decref(v);
    deliver(g, k, NULL, 0, e.data, e.len, 1, 1, code, msg, len);
    nc_buf_free(&e);
}

static void fail_local(gclient *g, gcall *k, int code, const char *msg) {
    deliver_status(g, k, code, msg, strlen(msg));
}

/* ---- nghttp2 callbacks --------------------------------------------------------------------------------- */

static ssize_t read_req(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *user) {
    gcall *k = src->ptr;
    size_t n;
    if (k->replay) { /* kept whole until the call ends: a refused stream is sent again */
        n = k->out.len - k->out_off < len ? k->out.len - k->out_off : len;
        if (n) memcpy(buf, k->out.data + k->out_off, n);
        k->out_off += n;
    } else {
        n = nc_buf_take(&k->out, &k->out_off, buf, len);
        if (n) k->taken = 1;
    }
    if (n) return (ssize_t)n;
    if (!k->half_closed) {
        k->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user) {
    gcall *k = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!k || f->hd.type != NGHTTP2_HEADERS) return 0;
    /* the second HEADERS block, or the only one of a trailers-only response (END_STREAM): trailers */
    int trailer = k->got_headers || (f->hd.flags & NGHTTP2_FLAG_END_STREAM);
    return nc_gcall_on_header(k, trailer, (const char *)name, nl, (const char *)value, vl)
               ? NGHTTP2_ERR_CALLBACK_FAILURE
               : 0;
}

/* Reads the whole messages received so far; a bad one ends the call (RST_STREAM, a status of ours). */
static void read_messages(gclient *g, gconn *c, gcall *k) {
    nc_grpc_msg m;
    int r;
    nc_buf plain = NC_BUF_INIT, text = NC_BUF_INIT;
    while (!k->done && (r = nc_grpc_reader_next(&k->rd, &m)) == 1) {
        const char *p = m.data;
        size_t n = m.len;
        if (m.compressed) {
            if (!k->encoding || strcmp(k->encoding, "gzip")) {
                nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, k->sid, NGHTTP2_CANCEL);
                fail_local(g, k, 13, "Received compressed message but \"grpc-encoding\" header was identity");
                break;
            }
            nc_buf_reset(&plain);
            int zr = nc_grpc_gunzip(m.data, m.len, g->max_message, &plain);
            if (zr) {
                nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, k->sid, NGHTTP2_CANCEL);
                fail_local(g, k, zr == NC_ETOOBIG ? 8 : 13,
                           zr == NC_ETOOBIG ? "Received message that decompresses to a size larger than max"
                                            : "Failed to decompress the response message");
                break;
            }
            p = plain.data ? plain.data : "";
            n = plain.len;
        }
        json_t *v = NULL;
        char why[200];
        if (nc_pb_decode(k->m->output, p, n, &g->dec, &v, why, sizeof why)) {
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, k->sid, NGHTTP2_CANCEL);
            char msg[260];
            snprintf(msg, sizeof msg, "Failed to parse server response: %s", why);
            fail_local(g, k, 13, msg);
            break;
        }
        nc_buf_reset(&text);
        int wr = nc_json_write(&text, v);
        json_decref(v);
        if (wr) {
            fail_local(g, k, 13, "out of memory");
            break;
        }
        deliver(g, k, text.data, text.len, NULL, 0, 0, 0, 0, NULL, 0);
    }
    if (!k->done && r == NC_ETOOBIG) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, k->sid, NGHTTP2_CANCEL);
        char msg[120];
        snprintf(msg, sizeof msg, "Received message larger than max (limit %u bytes)",
                 (unsigned)g->max_message);
        fail_local(g, k, 8, msg);
    } else if (!k->done && r < 0) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, k->sid, NGHTTP2_CANCEL);
        fail_local(g, k, 13, "malformed message framing");
    }
    nc_buf_free(&plain);
    nc_buf_free(&text);
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *user) {
    gconn *c = user;
    gcall *k = nghttp2_session_get_stream_user_data(h2, id);
    if (!k || k->done || !c->g) return 0;
    if (nc_grpc_reader_feed(&k->rd, data, len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    k->refs++;
    read_messages(c->g, c, k);
    nc_gcall_unref(k);
    return 0;
}

/* The status of a finished response: from the trailers (or a trailers-only response). */
static void finish_from_trailers(gclient *g, gcall *k) {
    if (k->done) return;
    if (nc_grpc_reader_pending(&k->rd)) {
        fail_local(g, k, 13, "the response ended inside a message");
        return;
    }
    if (k->http_status && k->http_status != 200) {
        char msg[80];
        snprintf(msg, sizeof msg, "Received HTTP status code %d", k->http_status);
        /* gRPC's HTTP-to-status table (http-grpc-status-mapping.md) */
        int code =
            k->http_status == 400   ? 13
            : k->http_status == 401 ? 16
            : k->http_status == 403 ? 7
            : k->http_status == 404 ? 12
            : k->http_status == 429 || k->http_status == 502 || k->http_status == 503 || k->http_status == 504
                ? 14
                : 2;
        fail_local(g, k, code, msg);
        return;
    }
    if (k->status < 0) {
        fail_local(g, k, 13, "the response ended without a grpc-status");
        return;
    }
    deliver_status(g, k, k->status, k->status_msg.data, k->status_msg.len);
}

static void conn_goaway(gconn *c);
static void ka_acked(gconn *c);

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user) {
    gconn *c = user;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        gclient *g = c->g;
        /* a server policing PINGs (grpc-core's rule, nestc's http2MaxPingStrikes): grpc-js doubles its
         * keepalive time for the connections that follow, and so does this client */
        if (g && g->ka_time_ms > 0 && f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM &&
            f->goaway.opaque_data_len == 14 && !memcmp(f->goaway.opaque_data, "too_many_pings", 14)) {
            g->ka_time_ms = g->ka_time_ms > INT_MAX / 2 ? INT_MAX : g->ka_time_ms * 2;
            nc_logf(LOG(g), NC_LOG_DEBUG, "Client", "gRPC: GOAWAY too_many_pings, keepalive time now %d ms",
                    g->ka_time_ms);
        }
        conn_goaway(c);
        return 0;
    }
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
        ka_acked(c);
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    gcall *k = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!k || !c->g) return 0;
    if (f->hd.type == NGHTTP2_HEADERS) k->got_headers = 1;
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        k->refs++;
        finish_from_trailers(c->g, k);
        nc_gcall_unref(k);
    }
    return 0;
}

static void call_requeue(gclient *g, gcall *k);

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user) {
    gconn *c = user;
    gcall *k = nghttp2_session_get_stream_user_data(h2, id);
    if (!k) return 0;
    nghttp2_session_set_stream_user_data(h2, id, NULL);
    gclient *g = c->g;
    nc_gcall_unlink(&c->live, k);
    k->sid = 0;
    if (g && !k->done) {
        k->refs++;
        /* REFUSED_STREAM (sent, or nghttp2's for a stream above a GOAWAY's last-stream-id): the server never
         * processed it, so it goes again on a fresh connection, as grpc-js retries such calls
         * transparently, when its request is still whole (not a stream whose messages are gone) */
        if (code == NGHTTP2_REFUSED_STREAM && !k->taken && k->retries < 3) {
            k->retries++;
            k->out_off = 0;
            k->deferred = 0;
            call_requeue(g, k);
        } else if (code == NGHTTP2_REFUSED_STREAM)
            fail_local(g, k, 14, "the server refused the stream");
        else if (code == NGHTTP2_CANCEL)
            fail_local(g, k, 1, "Call cancelled");
        else
            fail_local(g, k, 13, "the server reset the stream");
        nc_gcall_unref(k);
    }
    nc_gcall_unref(k); /* the stream's */
    return 0;
}

/* ---- the stream -------------------------------------------------------------------------------------------
 */

static int session_new(gconn *c) {
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb)) return NC_ENOMEM;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    int r = nghttp2_session_client_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (r) return NC_ENOMEM;
    /* a large connection window: a 4 MiB message should not wait for WINDOW_UPDATEs */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20}};
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2)) return NC_ENOMEM;
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 8 << 20);
    return 0;
}

static void ka_start(gconn *c);
static void submit_waiting(gclient *g, gconn *c);

static void st_open(nc_stream *s, int err, const char *msg) {
    gconn *c = (gconn *)s;
    if (err || !c->g) return; /* st_end reports it */
    if (s->ssl) {
        const unsigned char *p = NULL;
        unsigned n = 0;
        SSL_get0_alpn_selected(s->ssl, &p, &n);
        if (n != 2 || memcmp(p, "h2", 2)) {
            nc_dial_conn_fail(&c->d, NC_ETLS, "the server did not select h2 by ALPN (is it a gRPC server?)",
                              LOG(c->g), "Client", "gRPC", c->g->host, c->g->port);
            return;
        }
    }
    int r = session_new(c);
    if (r) {
        nc_dial_fail(&c->d, r, "out of memory");
        return;
    }
    c->ready = 1;
    nc_dial_connected(&c->d);
    ka_start(c);
    gclient *g = c->g;
    if (c->replacement) {
        /* a new connection in place of one the server retired: the client is connected again (the
         * status was "reconnecting" since the GOAWAY) */
        g->redials = 0;
        submit_waiting(g, c);
        flush(c);
        nc_client__connected(g->cli);
        return;
    }
    flush(c);
    nc_client__connected(g->cli);
}

static void st_data(nc_stream *s, const char *data, size_t len) {
    gconn *c = (gconn *)s;
    if (!c->h2) return;
    c->in_recv = 1;
    ssize_t n = nghttp2_session_mem_recv(c->h2, (const uint8_t *)data, len);
    c->in_recv = 0;
    if (n < 0) {
        nc_logf(c->g ? LOG(c->g) : NULL, NC_LOG_DEBUG, "Client", "gRPC: %s", nghttp2_strerror((int)n));
        conn_close_now(c, NC_EPROTO, "the server sent bytes that are not HTTP/2");
        return;
    }
    if (c->want_close) {
        c->want_close = 0;
        flush(c);
        nc_stream_end(&c->d.st);
        return;
    }
    flush(c);
    if (c->h2 && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))
        nc_stream_end(&c->d.st); /* GOAWAY and nothing left in flight */
}

static void st_end(nc_stream *s, int err, const char *msg) {
    gconn *c = (gconn *)s;
    nc_dial_conn_stream_end(&c->d, err, msg, NULL, NULL);
}

/* The connection ended (any phase): its calls fail with UNAVAILABLE, then the client hears of it. */
static void ka_stop(gconn *c);
static void draining_unlink(gclient *g, gconn *c);

static gcall *take_waiting(gclient *g);
static gcall *next_taken(gcall **list);
static int redial_later(gclient *g, const char *why);

static void conn_ended(nc_dial *d, int err, const char *msg) {
    gconn *c = (gconn *)d;
    ka_stop(c);
    gclient *g = c->g;
    if (!g || c->reported) return;
    c->reported = 1;
    int current = g->conn == c;
    if (current) g->conn = NULL;
    draining_unlink(g, c);
    c->g = NULL;
    char text[400];
    snprintf(text, sizeof text, "%s", msg && *msg ? msg : err ? nc_strerror(err) : "Connection closed");
    if (current && c->replacement && !c->ready) {
        /* the connection dialled for calls made after a GOAWAY did not come up: dialled again after
         * retry_delay_ms up to retry_attempts times in a row, as the core does for a first connection, the
         * calls waiting meanwhile; then they fail as a first connection's calls would, with its reason.
         * Calls still finishing elsewhere go on. */
        nc_client__error(g->cli, err ? err : NC_ECONNCLOSED, text);
        if (!g->closing && redial_later(g, text)) return;
        g->redials = 0;
        nc_client__status(g->cli, "disconnected", err ? err : NC_ECONNCLOSED);
        gcall *list = take_waiting(g), *k; /* calls made from on_done wait for a connection of their own */
        while ((k = next_taken(&list))) {
            if (!k->done) nc_client__fail_call(g->cli, k->id, err ? err : NC_ECONNCLOSED, text);
            nc_gcall_unref(k);
        }
        if (!g->closing) return;
    }
    while (c->live) {
        gcall *k = c->live;
        nc_gcall_unlink(&c->live, k);
        k->refs++;
        char why[460];
        snprintf(why, sizeof why, "Connection dropped (%s)", text);
        fail_local(g, k, 14, why);
        /* nghttp2_session_del frees its streams without on_stream_close: the stream's reference goes here */
        if (k->sid && c->h2) nghttp2_session_set_stream_user_data(c->h2, k->sid, NULL);
        if (k->sid) {
            k->sid = 0;
            nc_gcall_unref(k);
        }
        nc_gcall_unref(k);
    }
    if (err && err != NC_ECLOSED && err != NC_ECONNCLOSED)
        nc_logf(LOG(g), NC_LOG_ERROR, "Client", "gRPC connection to %s:%d: %s", g->host, g->port, text);
    /* a connection that got GOAWAY ends by itself once its calls are done: the client, connected as far
     * as its caller knows, makes a new one for the next call */
    if (current) nc_client__disconnected(g->cli, err, text);
}

static void redial_closed(uv_handle_t *h) {
    free(h->data);
}

static void redial_stop(gclient *g) {
    if (!g->redial) return;
    g->redial->g = NULL;
    uv_close((uv_handle_t *)&g->redial->t, redial_closed);
    g->redial = NULL;
}

static gconn *conn_dial(gclient *g, int replacement);

static void redial_fire(uv_timer_t *t) {
    gredial *r = t->data;
    gclient *g = r->g;
    if (!g) return;
    redial_stop(g);
    if (!g->conn && !g->closing && !conn_dial(g, 1)) {
        gcall *list = take_waiting(g), *k;
        while ((k = next_taken(&list))) {
            if (!k->done) nc_client__fail_call(g->cli, k->id, NC_ENOMEM, "out of memory");
            nc_gcall_unref(k);
        }
    }
}

/* Schedules the next dial of a replacement connection if retry_attempts allow one. 1 when scheduled. */
static int redial_later(gclient *g, const char *why) {
    const nc_client_cfg *cfg = nc_client__cfg(g->cli);
    if (g->redials >= cfg->retry_attempts || g->redial) return 0;
    gredial *r = malloc(sizeof *r);
    if (!r) return 0;
    g->redials++;
    nc_logf(LOG(g), NC_LOG_WARN, "Client", "%s; retrying in %d ms (attempt %d of %d)", why,
            cfg->retry_delay_ms, g->redials, cfg->retry_attempts);
    r->g = g;
    uv_timer_init(nc_client__io(g->cli)->loop, &r->t);
    r->t.data = r;
    uv_timer_start(&r->t, redial_fire, (uint64_t)(cfg->retry_delay_ms > 0 ? cfg->retry_delay_ms : 0), 0);
    g->redial = r;
    return 1;
}

static void conn_free(nc_dial *d) {
    gconn *c = (gconn *)d;
    if (c->h2) nghttp2_session_del(c->h2);
    free(c);
}

static const nc_stream_cbs stream_cbs = {st_open, st_data, NULL, st_end, nc_dial_stream_closed, NULL};
static const nc_dial_ops dial_ops = {conn_ended, conn_free, NULL};

/* ---- GOAWAY, waiting calls, keepalive ------------------------------------------------------------------ */

static void draining_unlink(gclient *g, gconn *c) {
    for (gconn **p = &g->draining; *p; p = &(*p)->dnext)
        if (*p == c) {
            *p = c->dnext;
            c->dnext = NULL;
            return;
        }
}

/* The server sent GOAWAY: calls open here at or below its last-stream-id finish here (nghttp2 closes those
 * above it with REFUSED_STREAM: on_stream_close sends them again); new calls go to a new connection, made
 * when the next call comes (grpc-js's channel goes IDLE, and its next call connects). */
static void conn_goaway(gconn *c) {
    gclient *g = c->g;
    c->goaway = 1;
    if (!g || g->conn != c) return;
    nc_logf(LOG(g), NC_LOG_DEBUG, "Client", "gRPC connection to %s:%d: GOAWAY, the next call connects again",
            g->host, g->port);
    g->conn = NULL;
    c->dnext = g->draining;
    g->draining = c;
    /* no connection for new calls until the next call dials one (grpc-js's channel goes IDLE): calls in
     * flight go on here */
    if (!g->closing) nc_client__status(g->cli, "reconnecting", 0);
}

/* Opens the call's HTTP/2 stream on c (ready). Returns 0, or an error after which the call is failed. */
static int submit_on(gclient *g, gconn *c, gcall *k) {
    nghttp2_data_provider prd = {.source.ptr = k, .read_callback = read_req};
    int32_t sid = nghttp2_submit_request(c->h2, NULL, k->nv, k->nnv, &prd, k);
    if (sid < 0) return sid == NGHTTP2_ERR_NOMEM ? NC_ENOMEM : NC_ECONNCLOSED;
    k->sid = sid;
    k->refs++; /* the stream's (released in on_stream_close) */
    nc_gcall_link(&c->live, k);
    return 0;
}

/* The calls made while no connection was ready go out, in order, on c. */
/* The waiting calls taken out of the client's list, oldest first (linked by next), each with a reference
 * held: the core may forget, cancel or make calls from the callbacks that follow. */
static gcall *take_waiting(gclient *g) {
    gcall *list = NULL;
    while (g->waiting) { /* newest first there (nc_gcall_link): pushing each in front reverses it */
        gcall *k = g->waiting;
        nc_gcall_unlink(&g->waiting, k);
        k->waiting = 0;
        k->refs++;
        k->next = list;
        list = k;
    }
    return list;
}

static gcall *next_taken(gcall **list) {
    gcall *k = *list;
    if (k) {
        *list = k->next;
        k->next = NULL;
    }
    return k;
}

static void submit_waiting(gclient *g, gconn *c) {
    gcall *list = take_waiting(g), *k;
    while ((k = next_taken(&list))) {
        if (!k->done && submit_on(g, c, k))
            fail_local(g, k, 14, "cannot open a stream on the new connection");
        nc_gcall_unref(k);
    }
}

/* A call goes to the current connection when it is ready, else waits for one (dialled when there is
 * none). Used for new calls after a GOAWAY and for refused streams sent again. */
static void call_requeue(gclient *g, gcall *k) {
    gconn *c = g->conn;
    if (c && c->goaway) {
        conn_goaway(c);
        c = NULL;
    }
    if (c && c->ready && c->h2 && nghttp2_session_check_request_allowed(c->h2)) {
        int r = submit_on(g, c, k);
        if (r) fail_local(g, k, 14, "cannot open a stream");
        flush(c);
        return;
    }
    nc_gcall_link(&g->waiting, k);
    k->waiting = 1;
    if (!g->conn && !g->redial && !conn_dial(g, 1)) { /* a redial pending: the call waits for it */
        nc_gcall_unlink(&g->waiting, k);
        k->waiting = 0;
        fail_local(g, k, 14, "out of memory");
    }
}

static void ka_closed(uv_handle_t *h) {
    free(h->data);
}

static void ka_stop(gconn *c) {
    if (!c->ka) return;
    c->ka->c = NULL;
    uv_close((uv_handle_t *)&c->ka->t, ka_closed);
    c->ka = NULL;
}

/* keepaliveTimeMs passed: a PING (when calls are open, or keepalivePermitWithoutCalls), then
 * keepaliveTimeoutMs for its ACK; none and the connection is closed, its calls failing with UNAVAILABLE
 * (grpc-js's client: "keepalive timeout"), instead of each waiting for its deadline. */
static void ka_fire(uv_timer_t *t) {
    gka *ka = t->data;
    gconn *c = ka->c;
    if (!c || !c->g || !c->h2) return;
    gclient *g = c->g;
    if (c->ping_out) {
        nc_logf(LOG(g), NC_LOG_DEBUG, "Client", "gRPC connection to %s:%d: keepalive PING not acknowledged",
                g->host, g->port);
        conn_close_now(c, NC_ETIMEDOUT, "keepalive timeout: the server did not answer a PING");
        return;
    }
    if (!c->live && !g->ka_without_calls) {
        uv_timer_start(&ka->t, ka_fire, (uint64_t)g->ka_time_ms, 0);
        return;
    }
    if (nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL)) {
        conn_close_now(c, NC_ENOMEM, "cannot send a keepalive ping");
        return;
    }
    c->ping_out = 1;
    uv_timer_start(&ka->t, ka_fire, (uint64_t)g->ka_timeout_ms, 0);
    flush(c);
}

static void ka_start(gconn *c) {
    gclient *g = c->g;
    if (g->ka_time_ms <= 0 || c->ka) return;
    gka *ka = calloc(1, sizeof *ka);
    if (!ka || uv_timer_init(nc_client__io(g->cli)->loop, &ka->t)) {
        free(ka);
        return;
    }
    ka->c = c;
    ka->t.data = ka;
    c->ka = ka;
    uv_timer_start(&ka->t, ka_fire, (uint64_t)g->ka_time_ms, 0);
}

static void ka_acked(gconn *c) {
    if (!c->ping_out || !c->ka || !c->g) return;
    c->ping_out = 0;
    uv_timer_start(&c->ka->t, ka_fire, (uint64_t)c->g->ka_time_ms, 0);
}

/* ---- ops ----------------------------------------------------------------------------------------------- */

static int gc_create(nc_client *cli, const nc_url *url, void **state) {
    char why[600];
    if (nc_url_check(url, NC_URL_CLIENT, why, sizeof why))
        return nc_fail(nc_client__log(cli), "Client", NC_EINVAL, "%s", why);
    const nc_client_cfg *cfg = nc_client__cfg(cli);
    const nc_optset *o = nc_client__opts(cli);
    gclient *g = calloc(1, sizeof *g);
    if (!g) return NC_ENOMEM;
    g->cli = cli;
    g->host = strdup(url->host[0] ? url->host : "localhost");
    g->port = url->port >= 0 ? url->port : 5000;
    g->max_message = (uint32_t)nc_opts_int(o, "maxReceiveMessageLength");
    g->ka_time_ms = (int)nc_opts_int(o, "keepaliveTimeMs");
    g->ka_timeout_ms = (int)nc_opts_int(o, "keepaliveTimeoutMs");
    g->ka_without_calls = nc_opts_bool(o, "keepalivePermitWithoutCalls");
    g->compress = nc_grpc_compression_opt(o);
    nc_grpc_json_opts(o, &g->dec);
    g->enc = g->dec;
    g->enc.any_case = 1; /* requests in either spelling; a member that names no field is refused */
    g->enc.strict = 1;
    size_t al = strlen(g->host) + 16;
    g->authority = malloc(al);
    if (!g->host || !g->authority) {
        free(g->host);
        free(g->authority);
        free(g);
        return NC_ENOMEM;
    }
    snprintf(g->authority, al, "%s:%d", g->host, g->port);
    int r = nc_grpc_methods_load(&g->methods, nc_opts_str(o, "protoPath"), nc_opts_str(o, "package"),
                                 nc_opts_str(o, "includeDirs"), why, sizeof why);
    if (!r && (!strcmp(url->scheme, "grpcs") || cfg->has_tls)) {
        static const nc_tls_opts none = {0};
        r = nc_tls_ctx_new(&g->ssl, cfg->has_tls ? &cfg->tls : &none, 0, why, sizeof why);
        if (!r) {
            static const unsigned char h2[] = {2, 'h', '2'};
            SSL_CTX_set_alpn_protos(g->ssl, h2, sizeof h2); /* gRPC over TLS is h2 or nothing */
            g->verify_host = strdup(cfg->has_tls && cfg->tls.server_name ? cfg->tls.server_name : g->host);
        }
    }
    if (r) {
        nc_grpc_methods_free(&g->methods);
        if (g->ssl) SSL_CTX_free(g->ssl);
        free(g->host);
        free(g->authority);
        free(g);
        return nc_fail(nc_client__log(cli), "Client", r, "%s", why);
    }
    *state = g;
    return 0;
}

static gconn *conn_dial(gclient *g, int replacement) {
    gconn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->g = g;
    c->replacement = replacement;
    g->conn = c;
    nc_dial_start(&c->d, nc_client__io(g->cli), g->host, g->port, g->ssl, g->verify_host,
                  nc_client__cfg(g->cli)->connect_timeout_ms, 0, &stream_cbs, &dial_ops);
    return c;
}

static int gc_connect(void *state) {
    gclient *g = state;
    g->closing = 0;
    return conn_dial(g, 0) ? 0 : NC_ENOMEM;
}

/* The method a route names: "pkg.Service/Method" ("/pkg.Service/Method" too), or NestJS's {service, rpc}
 * with the service fully qualified or relative to its package. */
static const nc_grpc_method *method_of(gclient *g, const char *route) {
    if (route[0] != '{') {
        const char *p = route[0] == '/' ? route + 1 : route;
        size_t n = strlen(p);
        char *path = malloc(n + 2);
        if (!path) return NULL;
        path[0] = '/';
        memcpy(path + 1, p, n + 1);
        const nc_grpc_method *m = nc_grpc_methods_find(&g->methods, path, n + 1);
        free(path);
        return m;
    }
    json_t *v = NULL;
    if (nc_json_parse(route, strlen(route), &v, NULL, 0)) return NULL;
    const char *svc = json_string_value(json_object_get(v, "service"));
    const char *rpc = json_string_value(json_object_get(v, "rpc"));
    const nc_grpc_method *hit = NULL;
    for (size_t i = 0; svc && rpc && i < g->methods.n && !hit; i++) {
        const nc_grpc_method *m = &g->methods.v[i];
        const char *path = m->path + 1, *slash = strrchr(path, '/');
        size_t sl = (size_t)(slash - path), ql = strlen(svc);
        if (strcmp(slash + 1, rpc)) continue;
        if ((sl == ql && !memcmp(path, svc, ql)) ||
            (sl > ql && path[sl - ql - 1] == '.' && !memcmp(path + sl - ql, svc, ql)))
            hit = m;
    }
    json_decref(v);
    return hit;
}

/* The request message of the envelope the core encoded (its `data`); *data NULL when absent or null. */
static int data_of(const nc_outbound *out, json_t **data) {
    nc_env env;
    *data = NULL;
    if (nc_env_scan(out->body, out->len, &env) == NC_SCAN_OK) {
        if (env.data.p && nc_json_parse(env.data.p, env.data.len, data, NULL, 0)) return NC_EPROTO;
    } else {
        json_t *root = NULL;
        if (nc_json_parse(out->body, out->len, &root, NULL, 0)) return NC_EPROTO;
        *data = json_incref(json_object_get(root, "data"));
        json_decref(root);
    }
    if (json_is_null(*data)) {
        json_decref(*data);
        *data = NULL;
    }
    return 0;
}

/* Appends one framed request message (v encoded as the method's input). */
static int frame_message(gclient *g, gcall *k, const json_t *v, char *why, size_t whylen) {
    size_t at = k->out.len;
    uint8_t pre[5] = {0};
    if (nc_buf_append(&k->out, pre, 5)) return NC_ENOMEM;
    char err[200];
    nc_buf plain = NC_BUF_INIT;
    int r = nc_pb_encode(k->m->input, v, &g->enc, g->compress ? &plain : &k->out, err, sizeof err);
    if (r) {
        nc_buf_free(&plain);
        k->out.len = at;
        if (snprintf(why, whylen, "the request is not a %s: %s", k->m->input->full_name, err) >= (int)whylen)
            why[whylen - 1] = '\0'; /* cut: the start says enough */
        return r;
    }
    if (g->compress) { /* defaultCompressionAlgorithm: every request message compressed, the flag set */
        r = nc_grpc_compress(&g->deflater, g->compress, plain.data ? plain.data : "", plain.len, &k->out);
        nc_buf_free(&plain);
        if (r) {
            k->out.len = at;
            return r;
        }
        pre[0] = 1;
    }
    nc_grpc_prefix(pre, pre[0], k->out.len - at - 5);
    memcpy(k->out.data + at, pre, 5);
    return 0;
}

static int gc_send(void *state, nc_outbound *out) {
    gclient *g = state;
    gconn *c = g->conn;
    if (c && c->h2 && !nghttp2_session_check_request_allowed(c->h2)) {
        /* GOAWAY (whether or not nghttp2 told us yet): the call goes to a new connection */
        conn_goaway(c);
        c = NULL;
    }
    if (!out->id) {
        snprintf(out->why, sizeof out->why, "gRPC has no events: use send() (a call)");
        return NC_EUNSUPPORTED;
    }
    const nc_grpc_method *gm = method_of(g, out->route);
    if (!gm) {
        snprintf(out->why, sizeof out->why, "no method %.120s in the loaded .proto files", out->route);
        return NC_EINVAL;
    }
    json_t *data = NULL;
    if (data_of(out, &data)) return NC_EPROTO;
    gcall *k = nc_gcall_new(out->id, gm->m, g->max_message);
    if (!k) {
        json_decref(data);
        return NC_ENOMEM;
    }
    /* A request stream the caller can write to (a call with its handle): its first message goes only when
     * given. Otherwise the data is the whole request, {} when absent, then the half-close: a plain send on a
     * client-streaming or bidi method is a stream of one message, as NestJS's ClientGrpcProxy sends a
     * one-element Observable. */
    int writable = gm->m->client_stream && out->writable;
    k->replay = !writable; /* the whole request is known: kept, so a refused stream can go again */
    k->encoding_out = g->compress == NC_GRPC_GZIP      ? "gzip"
                      : g->compress == NC_GRPC_DEFLATE ? "deflate"
                                                       : NULL;
    int r = 0;
    if (data || !writable) {
        json_t *empty = data ? NULL : json_object();
        r = frame_message(g, k, data ? data : empty, out->why, sizeof out->why);
        json_decref(empty);
    }
    json_decref(data);
    if (!writable) k->half_closed = 1;
    int tmo = (int)out->deadline_ms; /* the call's own time left (its timeout, or the client's) */
    nghttp2_nv nv[NC_GCALL_MAX_HEADERS + 10];
    size_t n = 0;
    if (!r)
        r = nc_gcall_request_headers(k, gm->path, g->ssl ? "https" : "http", g->authority, tmo, out->headers,
                                     &k->hb, nv, &n, out->why, sizeof out->why);
    if (!r && !(k->nv = malloc(n * sizeof *nv))) r = NC_ENOMEM;
    if (r) {
        nc_gcall_unref(k);
        return r;
    }
    memcpy(k->nv, nv, n * sizeof *nv);
    k->nnv = n;
    if (nc_map_put(&g->calls, k->id, strlen(k->id), k, NULL)) {
        nc_gcall_unref(k);
        return NC_ENOMEM;
    }
    if (c && c->ready && c->h2) {
        r = submit_on(g, c, k);
        if (r) {
            nc_map_del(&g->calls, k->id, strlen(k->id));
            nc_gcall_unref(k);
            snprintf(out->why, sizeof out->why, "HTTP/2: cannot open a stream");
            return r;
        }
        flush(c);
        return 0;
    }
    /* no connection ready (a GOAWAY ended the last one for new calls): the call waits for a new one */
    k->refs++;
    call_requeue(g, k);
    nc_gcall_unref(k);
    return 0;
}

static gcall *call_of(gclient *g, const char *id) {
    return id ? nc_map_get(&g->calls, id, strlen(id)) : NULL;
}

/* The connection a call's stream is open on (the current one, or one draining after GOAWAY). */
static gconn *conn_of(gclient *g, gcall *k) {
    if (!k->sid) return NULL;
    if (g->conn && g->conn->h2 && nghttp2_session_get_stream_user_data(g->conn->h2, k->sid) == k)
        return g->conn;
    for (gconn *c = g->draining; c; c = c->dnext)
        if (c->h2 && nghttp2_session_get_stream_user_data(c->h2, k->sid) == k) return c;
    return NULL;
}

static void resume(gclient *g, gcall *k) {
    gconn *c = conn_of(g, k);
    if (!c) return; /* waiting for a connection: it goes out with the stream */
    if (k->deferred) {
        k->deferred = 0;
        nghttp2_session_resume_data(c->h2, k->sid);
    }
    flush(c);
}

static int gc_write(void *state, nc_outbound *out) {
    gclient *g = state;
    gcall *k = call_of(g, out->id);
    if (!k || k->done || (!k->sid && !k->waiting)) return NC_ECONNCLOSED;
    if (k->half_closed) return NC_ESTATE;
    json_t *v = NULL;
    if (nc_json_parse(out->body, out->len, &v, NULL, 0)) return NC_EINVAL;
    int r = frame_message(g, k, v, out->why, sizeof out->why);
    json_decref(v);
    if (r) return r;
    resume(g, k);
    return 0;
}

static int gc_end(void *state, nc_outbound *out) {
    gclient *g = state;
    gcall *k = call_of(g, out->id);
    if (!k || k->done) return k ? 0 : NC_ECONNCLOSED;
    if (k->half_closed) return 0; /* unary, server streaming: the request was the whole stream */
    k->half_closed = 1;
    resume(g, k);
    return 0;
}

/* The call ended locally (cancel, the core's deadline): the server hears RST_STREAM(CANCEL), as grpc-js
 * sends, so its handler is cancelled. */
static void stop_call(gclient *g, gcall *k) {
    k->done = 1;
    if (k->waiting) { /* never went out */
        nc_gcall_unlink(&g->waiting, k);
        k->waiting = 0;
        return;
    }
    gconn *c = conn_of(g, k);
    if (c) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, k->sid, NGHTTP2_CANCEL);
        flush(c);
    }
}

static void gc_cancel(void *state, const char *route, const char *id) {
    gclient *g = state;
    gcall *k = call_of(g, id);
    if (k && !k->done) stop_call(g, k);
}

static void gc_forget(void *state, const char *route, const char *id) {
    gclient *g = state;
    gcall *k = call_of(g, id);
    if (!k) return;
    if (!k->done) stop_call(g, k); /* timed out, or failed locally: nobody waits for the rest */
    k->done = 1;
    nc_map_del(&g->calls, k->id, strlen(k->id));
    nc_gcall_unref(k);
}

/* Ends one connection: GOAWAY, what is queued, then the end (at once when it has no stream yet). */
static void conn_shut(gconn *c) {
    if (nc_dial_close_early(&c->d)) return; /* no stream yet: conn_ended reports it */
    if (c->h2) nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR); /* GOAWAY */
    if (c->in_recv) {
        c->want_close = 1;
        return;
    }
    flush(c);
    nc_stream_end(&c->d.st);
}

static void gc_close(void *state) {
    gclient *g = state;
    g->closing = 1;
    redial_stop(g);
    while (g->waiting) {
        gcall *k = g->waiting;
        nc_gcall_unlink(&g->waiting, k);
        k->waiting = 0;
    }
    for (gconn *c = g->draining, *next; c; c = next) {
        next = c->dnext;
        conn_shut(c); /* may unlink c (conn_ended) */
    }
    gconn *c = g->conn;
    if (c)
        conn_shut(c);
    else
        nc_client__disconnected(g->cli, 0, NULL); /* only draining connections (or none) were left */
}

static void *gc_unwrap(void *state) {
    gclient *g = state;
    return g->conn ? (void *)&g->conn->d.st.tcp : NULL;
}

static void gc_destroy(void *state) {
    gclient *g = state;
    redial_stop(g);
    /* connections still closing free themselves; they no longer report to this client */
    while (g->draining) {
        gconn *c = g->draining;
        g->draining = c->dnext;
        ka_stop(c);
        c->g = NULL;
    }
    if (g->conn) {
        ka_stop(g->conn);
        g->conn->g = NULL;
    }
    while (g->waiting) {
        gcall *k = g->waiting;
        nc_gcall_unlink(&g->waiting, k);
        k->waiting = 0;
    }
    if (g->deflater) nc_grpc_deflater_free(g->deflater);
    void *v;
    size_t it = 0;
    while (nc_map_next(&g->calls, &it, NULL, &v)) {
        gcall *k = v;
        nc_map_del(&g->calls, k->id, strlen(k->id));
        nc_gcall_unref(k);
        it = 0;
    }
    nc_map_free(&g->calls);
    nc_grpc_methods_free(&g->methods);
    if (g->ssl) SSL_CTX_free(g->ssl);
    free(g->host);
    free(g->verify_host);
    free(g->authority);
    free(g);
}

static const char *const schemes[] = {"grpc", "grpcs", NULL};

const nc_client_transport nc_grpc_client_transport = {
    .schemes = schemes,
    .options = nc_grpc_options,
    .event_pattern_is_route = 0,
    .create = gc_create,
    .connect = gc_connect,
    .send = gc_send,
    .forget = gc_forget,
    .write = gc_write,
    .end = gc_end,
    .cancel = gc_cancel,
    .close = gc_close,
    .unwrap = gc_unwrap,
    .destroy = gc_destroy,
};
