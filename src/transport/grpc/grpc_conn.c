/* The HTTP/2 side of a gRPC server connection: nghttp2 is sans-I/O here (fed with mem_recv, drained with
 * mem_send), so TCP, TLS, timers and write batching stay nc_stream's, as for every other transport. */
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "nestc/error.h"
#include "transport/grpc/grpc_conn.h"
#include "transport/grpc/grpc_gzip.h"

/* ---- header pairs ----------------------------------------------------------------------------------- */

static int put_pair(nc_buf *b, const char *n, size_t nl, const char *v, size_t vl) {
    uint32_t a = (uint32_t)nl, c = (uint32_t)vl;
    if (nc_buf_append(b, &a, 4) || nc_buf_append(b, n, nl) || nc_buf_append(b, &c, 4) ||
        nc_buf_append(b, v, vl))
        return NC_ENOMEM;
    return 0;
}

/* A metadata entry the handler gave: HTTP/2 header names are lowercase (a client refuses others), and
 * metadata names are case-insensitive. */
static int put_lower(nc_buf *b, const char *n, size_t nl, const char *v, size_t vl) {
    char low[256];
    if (nl == 0 || nl > sizeof low) return NC_EINVAL;
    for (size_t i = 0; i < nl; i++) low[i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] + 32 : n[i]);
    return put_pair(b, low, nl, v, vl);
}

/* Walks a pair buffer: fills *h from *off and advances; 0 at the end. */
static int next_pair(const nc_buf *b, size_t *off, nc_header *h) {
    if (*off >= b->len) return 0;
    uint32_t l;
    memcpy(&l, b->data + *off, 4);
    h->name = b->data + *off + 4;
    h->name_len = l;
    *off += 4 + l;
    memcpy(&l, b->data + *off, 4);
    h->value = b->data + *off + 4;
    h->value_len = l;
    *off += 4 + l;
    return 1;
}

static nghttp2_nv nv(const char *n, size_t nl, const char *v, size_t vl) {
    return (nghttp2_nv){(uint8_t *)n, (uint8_t *)v, nl, vl, NGHTTP2_NV_FLAG_NONE};
}
#define NV_LIT(n, v) nv(n, sizeof n - 1, v, sizeof v - 1)

static void conn_unref(nc_grpc_conn *c);

/* Writes what nghttp2 has to send into the stream; outside mem_recv only (nghttp2 forbids mem_send from
 * its callbacks). Ends the connection once nghttp2 wants neither to read nor to write (after GOAWAY). */
static void flush(nc_grpc_conn *c) {
    if (c->in_recv || c->ended || !c->h2) return;
    c->in_recv = 1; /* mem_send's callbacks (a stream closing) must not flush again */
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->h2, &d);
        if (n < 0) {
            c->in_recv = 0;
            nc_grpc_conn_close(c, NC_EPROTO, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0) break;
        if (nc_stream_write(&c->st, d, (size_t)n)) break;
    }
    c->in_recv = 0;
    /* what nghttp2 answers by itself (PING and SETTINGS ACKs) piles up too when the client does not read:
     * the same bound as for responses (a client flooding PINGs and reading nothing) */
    if (c->max_send && (long long)nc_stream_unsent(&c->st) > c->max_send) {
        nc_logf(c->log, NC_LOG_WARN, "Server",
                "gRPC connection %s: closed, the client does not read (more than %lld bytes unsent)", c->peer,
                c->max_send);
        nc_grpc_conn_close(c, NC_ETOOBIG, "the client does not read");
        return;
    }
    if (c->goaway_close || (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2))) {
        c->ended = 1;
        nc_stream_end(&c->st);
    }
}

/* ---- deadlines: grpc-timeout ends the call with DEADLINE_EXCEEDED, as grpc-js servers do ----------------
 */

/* The timer lives apart from the call: closing a libuv handle takes a loop turn, the call may be gone by
 * then. */
typedef struct nc_grpc_deadline {
    uv_timer_t t;
    nc_grpc_call *call; /* NULL once the call let go */
} nc_grpc_deadline;

static void deadline_closed(uv_handle_t *h) {
    free(h->data);
}

static void deadline_stop(nc_grpc_call *call) {
    nc_grpc_deadline *d = call->deadline;
    if (!d) return;
    call->deadline = NULL;
    d->call = NULL;
    uv_close((uv_handle_t *)&d->t, deadline_closed);
}

static void deadline_fire(uv_timer_t *t) {
    nc_grpc_deadline *d = t->data;
    nc_grpc_call *call = d->call;
    if (!call) return;
    nc_grpc_conn *c = call->conn;
    deadline_stop(call);
    if (!c || !nc_grpc_call_live(call)) return;
    nc_grpc_call_retain(call);
    nc_grpc_call_finish(call, 4, "Deadline exceeded", NULL, 0);
    if (call->cbs->on_cancel) call->cbs->on_cancel(call); /* the handler stops: nobody waits any more */
    nc_grpc_call_release(call);
}

static void deadline_start(nc_grpc_call *call) {
    nc_grpc_deadline *d = malloc(sizeof *d);
    if (!d) return; /* no status of our own then: the client's deadline still ends the call there */
    d->call = call;
    uv_timer_init(call->conn->st.io->loop, &d->t);
    d->t.data = d;
    uv_timer_start(&d->t, deadline_fire, (uint64_t)call->timeout_ms, 0);
    call->deadline = d;
}

/* ---- calls ------------------------------------------------------------------------------------------ */

void nc_grpc_call_retain(nc_grpc_call *call) {
    call->refs++;
}

void nc_grpc_call_release(nc_grpc_call *call) {
    if (--call->refs) return;
    deadline_stop(call);
    if (call->cbs->on_call_free) call->cbs->on_call_free(call);
    nc_buf_free(&call->path);
    nc_buf_free(&call->hdr);
    nc_buf_free(&call->out);
    nc_buf_free(&call->resp_hdr);
    nc_buf_free(&call->trailers);
    nc_grpc_reader_free(&call->rd);
    free(call->encoding);
    free(call);
}

int nc_grpc_call_live(const nc_grpc_call *call) {
    return call->conn && !call->conn->ended && !call->closed && !call->finished;
}

/* Unlinks the call from its connection (its stream closed, or the connection went) and drops the
 * stream's reference. */
static void call_detach(nc_grpc_call *call) {
    nc_grpc_conn *c = call->conn;
    if (call->prev)
        call->prev->next = call->next;
    else if (c && c->calls == call)
        c->calls = call->next;
    if (call->next) call->next->prev = call->prev;
    call->prev = call->next = NULL;
    call->closed = 1;
    if (c && !c->calls) c->idle_since = uv_now(c->st.io->loop); /* maxConnectionIdleMs counts from here */
    deadline_stop(call);
    /* nghttp2 must not hand this call to a later callback (the connection may end inside mem_recv) */
    if (c && c->h2) nghttp2_session_set_stream_user_data(c->h2, call->id, NULL);
    if (c) c->queued -= call->out.len - call->out_off; /* never to be sent */
    if (c && !call->finished && c->cbs->on_cancel) c->cbs->on_cancel(call);
    if (c && call->watched > 0) c->nwatch--;
    call->conn = NULL; /* no callback runs for it any more */
    nc_grpc_call_release(call);
    if (c) conn_unref(c);
}

size_t nc_grpc_call_headers(const nc_grpc_call *call, nc_header *out, size_t max) {
    size_t off = 0, n = 0;
    nc_header h;
    while (n < max && next_pair(&call->hdr, &off, &h)) out[n++] = h;
    return n;
}

int nc_grpc_call_add_header(nc_grpc_call *call, const char *name, size_t nlen, const char *value,
                            size_t vlen) {
    if (call->started) return NC_ESTATE;
    int r = put_lower(&call->resp_hdr, name, nlen, value, vlen);
    if (r) return r;
    call->nresp_hdr++;
    return 0;
}

/* nghttp2 asks for the next DATA bytes: the queued messages, then (no more coming) the trailers. */
static ssize_t read_data(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user) {
    nc_grpc_call *call = src->ptr;
    size_t taken = nc_buf_take(&call->out, &call->out_off, buf, len);
    if (taken) {
        if (call->conn) call->conn->queued -= taken;
        return (ssize_t)taken;
    }
    if (!call->finished) {
        call->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    /* the status goes as trailers: the DATA stream ends without END_STREAM, the trailers carry it */
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    nghttp2_nv t[64];
    size_t n = 0, off = 0;
    nc_header h;
    while (n < 64 && next_pair(&call->trailers, &off, &h))
        t[n++] = nv(h.name, h.name_len, h.value, h.value_len);
    if (nghttp2_submit_trailer(h2, id, t, n)) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

/* The response HEADERS: :status 200, the content type, the handler's metadata; with `data` the DATA
 * frames and trailers follow, without it (a trailers-only response) `extra` holds the status. */
static int submit_response(nc_grpc_call *call, int with_data, const nc_buf *extra) {
    nghttp2_nv h[96];
    size_t n = 0, off = 0;
    nc_header x;
    h[n++] = NV_LIT(":status", "200");
    h[n++] = NV_LIT("content-type", "application/grpc+proto");
    /* what requests may use, as grpc-js announces it; and what the responses use */
    h[n++] = NV_LIT("grpc-accept-encoding", "identity,deflate,gzip");
    if (with_data && call->enc_out == NC_GRPC_GZIP) h[n++] = NV_LIT("grpc-encoding", "gzip");
    if (with_data && call->enc_out == NC_GRPC_DEFLATE) h[n++] = NV_LIT("grpc-encoding", "deflate");
    while (n < 80 && next_pair(&call->resp_hdr, &off, &x))
        h[n++] = nv(x.name, x.name_len, x.value, x.value_len);
    off = 0;
    while (extra && n < 96 && next_pair(extra, &off, &x))
        h[n++] = nv(x.name, x.name_len, x.value, x.value_len);
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = read_data};
    call->started = 1;
    return nghttp2_submit_response(call->conn->h2, call->id, h, n, with_data ? &prd : NULL) ? NC_EPROTO : 0;
}

int nc_grpc_call_send(nc_grpc_call *call, const void *msg, size_t len) {
    if (!nc_grpc_call_live(call)) return NC_ECONNCLOSED;
    nc_grpc_conn *c = call->conn;
    nc_buf z = NC_BUF_INIT;
    if (!call->started) call->enc_out = call->accept_enc & (1u << c->compress) ? c->compress : 0;
    if (call->enc_out) { /* the Compressed-Flag set, the bytes in the response's grpc-encoding */
        if (nc_grpc_compress(c->deflater, call->enc_out, msg, len, &z)) return NC_ENOMEM;
        msg = z.data;
        len = z.len;
    }
    uint8_t pre[5];
    if (nc_grpc_prefix(pre, call->enc_out != 0, len)) {
        nc_buf_free(&z);
        return NC_ETOOBIG;
    }
    if (c->max_send && (long long)(c->queued + 5 + len + nc_stream_unsent(&c->st)) > c->max_send) {
        nc_logf(c->log, NC_LOG_WARN, "Server",
                "gRPC connection %s: closed, the client does not read its responses "
                "(more than %lld bytes unsent)",
                c->peer, c->max_send);
        nc_grpc_conn_close(c, NC_ETOOBIG, "the client does not read its responses");
        nc_buf_free(&z);
        return NC_ECONNCLOSED;
    }
    int ar = nc_buf_append(&call->out, pre, 5) || nc_buf_append(&call->out, msg, len);
    nc_buf_free(&z);
    if (ar) return NC_ENOMEM;
    c->queued += 5 + len;
    int r = 0;
    if (!call->started) {
        r = submit_response(call, 1, NULL);
    } else if (call->deferred) {
        call->deferred = 0;
        r = nghttp2_session_resume_data(call->conn->h2, call->id) ? NC_EPROTO : 0;
    }
    flush(call->conn);
    return r;
}

int nc_grpc_call_finish(nc_grpc_call *call, int status, const char *message, const nc_header *trailers,
                        size_t ntrailers) {
    if (!nc_grpc_call_live(call)) return NC_ECONNCLOSED;
    char code[16];
    int cl = snprintf(code, sizeof code, "%d", status);
    nc_buf msg = NC_BUF_INIT;
    int r = put_pair(&call->trailers, "grpc-status", 11, code, (size_t)cl);
    if (!r && message && *message) {
        r = nc_grpc_percent_encode(&msg, message, strlen(message));
        if (!r) r = put_pair(&call->trailers, "grpc-message", 12, msg.data, msg.len);
    }
    for (size_t i = 0; !r && i < ntrailers; i++)
        r = put_lower(&call->trailers, trailers[i].name, trailers[i].name_len, trailers[i].value,
                      trailers[i].value_len);
    nc_buf_free(&msg);
    if (r) return r;
    call->finished = 1;
    deadline_stop(call);
    if (!call->started) {
        r = submit_response(call, 0, &call->trailers); /* trailers-only */
    } else if (call->deferred) {
        call->deferred = 0;
        r = nghttp2_session_resume_data(call->conn->h2, call->id) ? NC_EPROTO : 0;
    }
    flush(call->conn);
    return r;
}

/* ---- nghttp2 callbacks (inside mem_recv) ------------------------------------------------------------ */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user) {
    nc_grpc_conn *c = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    nc_grpc_call *call = calloc(1, sizeof *call);
    if (!call) return NGHTTP2_ERR_CALLBACK_FAILURE;
    call->conn = c;
    call->cbs = c->cbs;
    call->id = f->hd.stream_id;
    call->refs = 1; /* the stream's */
    call->timeout_ms = -1;
    nc_grpc_reader_init(&call->rd, c->max_message);
    call->next = c->calls;
    if (c->calls) c->calls->prev = call;
    c->calls = call;
    c->refs++;
    nghttp2_session_set_stream_user_data(h2, f->hd.stream_id, call);
    return 0;
}

/* Headers the handler does not see as metadata, as grpc-js leaves them out (server-interceptors.ts). */
static int reserved(const uint8_t *n, size_t l) {
    static const char *const names[] = {
        "te", "content-type", "accept-encoding", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
        NULL};
    if (l && n[0] == ':') return 1;
    for (size_t i = 0; names[i]; i++)
        if (strlen(names[i]) == l && !memcmp(names[i], n, l)) return 1;
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user) {
    nc_grpc_call *call = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!call || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    const char *n = (const char *)name, *v = (const char *)value;
    /* metadata is held per call: past the cap the stream is reset (RST_STREAM) rather than buffered */
    call->meta_bytes += nl + vl;
    if (call->meta_bytes > call->conn->max_metadata) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (nl == 5 && !memcmp(n, ":path", 5)) {
        nc_buf_reset(&call->path);
        if (nc_buf_append(&call->path, v, vl) || nc_buf_append_char(&call->path, '\0'))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        call->path.len--;
    } else if (nl == 7 && !memcmp(n, ":method", 7)) {
        if (vl != 4 || memcmp(v, "POST", 4)) call->bad_request = 1;
    } else if (nl == 12 && !memcmp(n, "content-type", 12)) {
        if (vl < 16 || memcmp(v, "application/grpc", 16) || (vl > 16 && v[16] != '+' && v[16] != ';'))
            call->bad_request = 1;
    } else if (nl == 12 && !memcmp(n, "grpc-timeout", 12)) {
        int64_t ms;
        if (!nc_grpc_timeout_parse(v, vl, &ms)) call->timeout_ms = ms;
    } else if (nl == 20 && !memcmp(n, "grpc-accept-encoding", 20)) {
        /* a comma-separated list of tokens */
        for (size_t i = 0; i < vl;) {
            while (i < vl && (v[i] == ',' || v[i] == ' ')) i++;
            size_t e = i;
            while (e < vl && v[e] != ',' && v[e] != ' ') e++;
            if (e - i == 4 && !memcmp(v + i, "gzip", 4)) call->accept_enc |= 1u << NC_GRPC_GZIP;
            if (e - i == 7 && !memcmp(v + i, "deflate", 7)) call->accept_enc |= 1u << NC_GRPC_DEFLATE;
            i = e;
        }
    } else if (nl == 13 && !memcmp(n, "grpc-encoding", 13)) {
        free(call->encoding);
        call->encoding = strndup(v, vl);
    }
    if (reserved(name, nl)) return 0;
    int r;
    if (nc_grpc_is_bin(n, nl)) {
        nc_buf b = NC_BUF_INIT;
        r = nc_grpc_bin_decode(&b, v, vl);
        if (r == NC_EPROTO) { /* not base64: kept as received rather than failing the call */
            nc_buf_free(&b);
            r = put_pair(&call->hdr, n, nl, v, vl);
        } else if (!r) {
            r = put_pair(&call->hdr, n, nl, b.data ? b.data : "", b.len);
            nc_buf_free(&b);
        }
    } else {
        r = put_pair(&call->hdr, n, nl, v, vl);
    }
    if (r) return NGHTTP2_ERR_CALLBACK_FAILURE;
    call->nhdr++;
    return 0;
}

static void read_messages(nc_grpc_call *call) {
    nc_grpc_conn *c = call->conn;
    nc_grpc_msg m;
    int r;
    while (!call->finished && (r = nc_grpc_reader_next(&call->rd, &m)) == 1) {
        c->cbs->on_message(call, m.data, m.len, m.compressed);
        if (call->closed) return; /* the connection ended under the owner's callback */
    }
    if (call->finished) return;
    if (r == NC_ETOOBIG) {
        /* grpc-js's words: the size the prefix announced, then the limit (the prefix is at the reader's
         * offset: it stopped there) */
        const uint8_t *h = (const uint8_t *)call->rd.buf.data + call->rd.off;
        uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
        char why[96];
        snprintf(why, sizeof why, "Received message larger than max (%u vs %u)", (unsigned)len,
                 (unsigned)c->max_message);
        nc_grpc_call_finish(call, 8, why, NULL, 0); /* RESOURCE_EXHAUSTED, as grpc-js */
    } else if (r < 0) {
        nc_grpc_call_finish(call, 13, "malformed message framing", NULL, 0);
    }
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *user) {
    nc_grpc_call *call = nghttp2_session_get_stream_user_data(h2, id);
    if (!call || call->finished || call->bad_request) return 0; /* answered already: dropped */
    if (nc_grpc_reader_feed(&call->rd, data, len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    nc_grpc_call_retain(call); /* held while the owner's callbacks run (see frame_for_call) */
    read_messages(call);
    nc_grpc_call_release(call);
    return 0;
}

/* What a frame means for its call; the call is held meanwhile: the owner's callbacks reach the core, whose
 * replies may end the connection and detach the call before they return. */
static void frame_for_call(nc_grpc_conn *c, nc_grpc_call *call, const nghttp2_frame *f) {
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (call->bad_request || !call->path.len) {
            /* not gRPC (a browser, curl): HTTP 415 as grpc-js answers a wrong content type */
            nghttp2_nv h[] = {NV_LIT(":status", "415"), NV_LIT("grpc-status", "13"),
                              NV_LIT("grpc-message", "not a gRPC request")};
            call->finished = call->started = 1;
            nghttp2_submit_response(c->h2, call->id, h, sizeof h / sizeof *h, NULL);
            return;
        }
        if (call->timeout_ms >= 0) deadline_start(call);
        c->cbs->on_call(call);
    }
    if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->half_closed && call->conn) {
        call->half_closed = 1;
        if (call->finished) return;
        if (nc_grpc_reader_pending(&call->rd)) {
            nc_grpc_call_finish(call, 13, "the request ended inside a message", NULL, 0);
            return;
        }
        c->cbs->on_half_close(call);
    }
}

static void stall_stop(nc_grpc_conn *c);
static void ka_acked(nc_grpc_conn *c);

/* A client PING, policed as grpc-core servers do (http2MinPingIntervalWithoutDataMs, http2MaxPingStrikes):
 * one sooner than the minimum after the previous one, with nothing sent in between, is a strike; without
 * calls the minimum is two hours unless keepalivePermitWithoutCalls. Past the strikes allowed: GOAWAY
 * ENHANCE_YOUR_CALM with "too_many_pings" (what grpc-js clients read to back their keepalive off). */
static void client_ping(nc_grpc_conn *c) {
    if (c->ka.min_ping_ms <= 0) return;
    uint64_t now = uv_now(c->st.io->loop);
    uint64_t min = !c->calls && !c->ka.permit_without_calls ? 7200000u : (uint64_t)c->ka.min_ping_ms;
    if (c->have_ping && now - c->last_ping_recv < min && ++c->strikes > c->ka.max_strikes &&
        !c->goaway_close) {
        nc_logf(c->log, NC_LOG_DEBUG, "Server", "gRPC connection %s: too many pings, GOAWAY", c->peer);
        nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                              NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)"too_many_pings", 14);
        c->goaway_close = 1;
    }
    c->have_ping = 1;
    c->last_ping_recv = now;
}

static int on_frame_send(nghttp2_session *h2, const nghttp2_frame *f, void *user) {
    nc_grpc_conn *c = user;
    if (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) c->have_ping = 0, c->strikes = 0;
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user) {
    nc_grpc_conn *c = user;
    if (!c->got_frame) {
        c->got_frame = 1;
        stall_stop(c);
    }
    if (f->hd.type == NGHTTP2_PING) {
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            ka_acked(c);
        else
            client_ping(c);
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    nc_grpc_call *call = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!call) return 0;
    nc_grpc_call_retain(call);
    frame_for_call(user, call, f);
    nc_grpc_call_release(call);
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user) {
    nc_grpc_call *call = nghttp2_session_get_stream_user_data(h2, id);
    if (call) {
        nghttp2_session_set_stream_user_data(h2, id, NULL);
        call_detach(call);
    }
    return 0;
}

/* ---- the stream --------------------------------------------------------------------------------------- */

static void st_open(nc_stream *s, int err, const char *msg) {
    nc_grpc_conn *c = s->data;
    if (err) {
        nc_logf(c->log, NC_LOG_DEBUG, "Server", "gRPC connection from %s failed: %s", c->peer,
                msg ? msg : nc_strerror(err));
        return;
    }
    if (c->st.ssl) { /* TLS: the peer must have chosen h2 by ALPN (gRPC requires it) */
        const unsigned char *p;
        unsigned l;
        SSL_get0_alpn_selected(c->st.ssl, &p, &l);
        if (l != 2 || memcmp(p, "h2", 2)) {
            nc_grpc_conn_close(c, NC_EPROTO, "the TLS client did not negotiate h2 (ALPN)");
            return;
        }
    }
    flush(c);
}

size_t nc_grpc_call_pending(const nc_grpc_call *call) {
    if (!nc_grpc_call_live(call)) return 0;
    return (call->out.len - call->out_off) + (size_t)nc_stream_unsent(&call->conn->st);
}

void nc_grpc_call_watch(nc_grpc_call *call, int on) {
    int was = call->watched > 0;
    call->watched += on ? 1 : -1;
    int is = call->watched > 0;
    if (call->conn && was != is) call->conn->nwatch += is ? 1 : -1;
}

/* Tells the owner about every watched call that its bytes may have gone down. The calls are held while
 * the callbacks run: a handler that replies from one may end any call of the connection. */
static void tell_writable(nc_grpc_conn *c) {
    if (!c->nwatch || !c->cbs->on_writable) return;
    nc_grpc_call *few[16], **v = few;
    size_t n = 0, cap = 16;
    for (nc_grpc_call *call = c->calls; call; call = call->next)
        if (call->watched) n++;
    if (n > cap && !(v = malloc(n * sizeof *v))) return;
    n = 0;
    for (nc_grpc_call *call = c->calls; call; call = call->next)
        if (call->watched) {
            nc_grpc_call_retain(call);
            v[n++] = call;
        }
    for (size_t i = 0; i < n; i++) {
        if (v[i]->watched && nc_grpc_call_live(v[i])) c->cbs->on_writable(v[i]);
        nc_grpc_call_release(v[i]);
    }
    if (v != few) free(v);
}

static void st_data(nc_stream *s, const char *data, size_t len) {
    nc_grpc_conn *c = s->data;
    c->refs++;
    nc_grpc_conn_feed(c, data, len);
    tell_writable(c); /* a WINDOW_UPDATE may have let nghttp2 take queued messages */
    conn_unref(c);
}

static void st_drain(nc_stream *s) {
    nc_grpc_conn *c = s->data;
    if (!c->nwatch) return;
    c->refs++;
    tell_writable(c); /* the socket took bytes */
    conn_unref(c);
}

void nc_grpc_conn_feed(nc_grpc_conn *c, const char *data, size_t len) {
    if (c->ended || !c->h2) return;
    c->refs++;
    c->in_recv = 1;
    ssize_t n = nghttp2_session_mem_recv(c->h2, (const uint8_t *)data, len);
    c->in_recv = 0;
    if (n < 0) {
        /* malformed HTTP/2 (a bad preface, a protocol error): nghttp2 queued a GOAWAY when it could;
         * send it and close */
        nc_logf(c->log, NC_LOG_DEBUG, "Server", "gRPC connection %s: %s", c->peer, nghttp2_strerror((int)n));
        if (n != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
            nghttp2_session_terminate_session(c->h2, NGHTTP2_PROTOCOL_ERROR);
        flush(c);
        if (!c->ended) {
            c->ended = 1;
            nc_stream_end(&c->st);
        }
    } else {
        flush(c);
    }
    conn_unref(c);
}

static void timers_stop(nc_grpc_conn *c);

static void st_end(nc_stream *s, int err, const char *msg) {
    nc_grpc_conn *c = s->data;
    c->ended = 1;
    stall_stop(c);
    timers_stop(c);
    c->refs++;
    /* every call still open is cancelled: its stream can carry nothing more */
    while (c->calls) call_detach(c->calls);
    if (c->cbs->on_end) c->cbs->on_end(c, err, msg);
    conn_unref(c);
}

static void st_close(nc_stream *s) {
    conn_unref(s->data); /* the stream's reference */
}

static const nc_stream_cbs stream_cbs = {
    .on_open = st_open, .on_data = st_data, .on_drain = st_drain, .on_end = st_end, .on_close = st_close};

static void conn_unref(nc_grpc_conn *c) {
    if (--c->refs) return;
    if (c->cbs->on_free) c->cbs->on_free(c);
    if (c->h2) nghttp2_session_del(c->h2);
    free(c);
}

nc_grpc_conn *nc_grpc_conn_new(nc_ioctx *io, SSL_CTX *ssl, uint32_t max_message, uint32_t max_metadata,
                               const nc_grpc_conn_cbs *cbs, const nc_logger *log, void *owner) {
    nc_grpc_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cbs = cbs;
    c->log = log;
    c->owner = owner;
    c->max_message = max_message;
    c->max_metadata = max_metadata;
    c->refs = 1; /* the stream's (until on_close); the owner only links the connection until on_end */
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb)) {
        free(c);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    int r = nghttp2_session_server_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (r || nc_stream_init(&c->st, io, &stream_cbs, ssl, 1, NULL)) {
        if (c->h2) nghttp2_session_del(c->h2);
        free(c);
        return NULL;
    }
    c->st.data = c;
    return c;
}

/* ---- the first-frame timer ---------------------------------------------------------------------------- */

static void stall_closed(uv_handle_t *h) {
    conn_unref(h->data); /* the timer's reference */
}

static void stall_stop(nc_grpc_conn *c) {
    if (!c->stall_open) return;
    c->stall_open = 0;
    uv_close((uv_handle_t *)&c->stall, stall_closed);
}

static void stall_fire(uv_timer_t *t) {
    nc_grpc_conn *c = t->data;
    stall_stop(c);
    if (!c->got_frame && !c->ended) {
        nc_logf(c->log, NC_LOG_DEBUG, "Server", "gRPC connection %s: no HTTP/2 preface in time, closed",
                c->peer);
        nc_grpc_conn_close(c, NC_ETIMEDOUT, "no HTTP/2 preface in time");
    }
}

/* ---- keepalive and idle timers ------------------------------------------------------------------------- */

static void timer_closed(uv_handle_t *h) {
    conn_unref(h->data); /* the timer's reference */
}

static void timer_arm(nc_grpc_conn *c, uv_timer_t *t, int *open, uv_timer_cb cb, uint64_t ms) {
    if (c->ended) return;
    if (!*open) {
        if (uv_timer_init(c->st.io->loop, t)) return;
        t->data = c;
        *open = 1;
        c->refs++; /* until the timer's handle is closed */
    }
    uv_timer_start(t, cb, ms, 0);
}

static void timer_close(uv_timer_t *t, int *open) {
    if (!*open) return;
    *open = 0;
    uv_close((uv_handle_t *)t, timer_closed);
}

static void timers_stop(nc_grpc_conn *c) {
    timer_close(&c->ka_timer, &c->ka_open);
    timer_close(&c->idle_timer, &c->idle_open);
    timer_close(&c->age_timer, &c->age_open);
}

/* keepaliveTimeMs passed: a PING, then keepaliveTimeoutMs for its ACK; none and the connection is closed
 * (grpc-js destroys the session then: no GOAWAY). */
static void ka_fire(uv_timer_t *t) {
    nc_grpc_conn *c = t->data;
    if (c->ended) return;
    if (c->ping_out) {
        nc_logf(c->log, NC_LOG_DEBUG, "Server", "gRPC connection %s: keepalive PING not acknowledged, closed",
                c->peer);
        nc_grpc_conn_close(c, NC_ETIMEDOUT, "keepalive ping not acknowledged");
        return;
    }
    if (nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL)) {
        nc_grpc_conn_close(c, NC_ENOMEM, "cannot send a keepalive ping");
        return;
    }
    c->ping_out = 1;
    timer_arm(c, &c->ka_timer, &c->ka_open, ka_fire, (uint64_t)c->ka.timeout_ms);
    flush(c);
}

static void ka_acked(nc_grpc_conn *c) {
    if (!c->ping_out) return; /* an ACK of no PING of ours: nghttp2 checks nothing here, nor do we */
    c->ping_out = 0;
    timer_arm(c, &c->ka_timer, &c->ka_open, ka_fire, (uint64_t)c->ka.time_ms);
}

/* maxConnectionIdleMs: no call since idle_ms, the connection is drained (GOAWAY NO_ERROR), as grpc-js's
 * closeSession; with calls the check comes back later. */
static void idle_fire(uv_timer_t *t) {
    nc_grpc_conn *c = t->data;
    if (c->ended || c->draining) return;
    uint64_t now = uv_now(c->st.io->loop), idle = (uint64_t)c->ka.idle_ms;
    if (c->calls || now - c->idle_since < idle) {
        timer_arm(c, &c->idle_timer, &c->idle_open, idle_fire,
                  c->calls ? idle : idle - (now - c->idle_since));
        return;
    }
    nc_logf(c->log, NC_LOG_DEBUG, "Server", "gRPC connection %s: idle for %d ms, GOAWAY", c->peer,
            c->ka.idle_ms);
    nc_grpc_conn_drain(c);
}

/* maxConnectionAgeMs: GOAWAY NO_ERROR (calls in flight go on, new ones go to another connection), then,
 * with maxConnectionAgeGraceMs, the connection is closed after the grace whatever is still open (grpc-js's
 * server: goaway, then session.destroy after the grace). */
static void age_fire(uv_timer_t *t) {
    nc_grpc_conn *c = t->data;
    if (c->ended) return;
    if (c->aged) {
        nc_logf(c->log, NC_LOG_DEBUG, "Server", "gRPC connection %s: max connection age grace over, closed",
                c->peer);
        nc_grpc_conn_close(c, NC_ECLOSED, "max connection age grace over");
        return;
    }
    c->aged = 1;
    nc_logf(c->log, NC_LOG_DEBUG, "Server", "gRPC connection %s: max connection age, GOAWAY", c->peer);
    if (c->ka.age_grace_ms > 0)
        timer_arm(c, &c->age_timer, &c->age_open, age_fire, (uint64_t)c->ka.age_grace_ms);
    if (c->draining) return;
    /* a plain GOAWAY, not nghttp2_session_terminate_session (which ends the session once it is sent): the
     * streams at or below the last one processed finish; nghttp2 ends the session when none is left */
    c->draining = 1;
    nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                          NGHTTP2_NO_ERROR, NULL, 0);
    flush(c);
}

/* The age with grpc-js's jitter (±10 %), so connections made together do not all end together. */
static uint64_t age_jittered(int age_ms) {
    double j = ((double)rand() / RAND_MAX) * 0.2 - 0.1;
    uint64_t ms = (uint64_t)((double)age_ms * (1.0 + j));
    return ms ? ms : 1;
}

int nc_grpc_conn_accept(nc_grpc_conn *c, uv_stream_t *listener, int first_frame_ms) {
    int r = nc_stream_accept(&c->st, listener);
    if (r) return r;
    if (first_frame_ms > 0 && uv_timer_init(listener->loop, &c->stall) == 0) {
        c->stall.data = c;
        c->stall_open = 1;
        c->refs++; /* until the timer's handle is closed */
        uv_timer_start(&c->stall, stall_fire, (uint64_t)first_frame_ms, 0);
    }
    nc_stream_peer(&c->st, c->peer, sizeof c->peer);
    c->idle_since = uv_now(listener->loop);
    if (c->ka.time_ms > 0 && c->ka.timeout_ms > 0)
        timer_arm(c, &c->ka_timer, &c->ka_open, ka_fire, (uint64_t)c->ka.time_ms);
    if (c->ka.idle_ms > 0) timer_arm(c, &c->idle_timer, &c->idle_open, idle_fire, (uint64_t)c->ka.idle_ms);
    if (c->ka.age_ms > 0) timer_arm(c, &c->age_timer, &c->age_open, age_fire, age_jittered(c->ka.age_ms));
    /* the server preface: our SETTINGS (nghttp2 answers the client's and runs flow control itself) */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 1)) return NC_ENOMEM;
    if (!c->st.ssl) flush(c); /* TLS: once the handshake is done (st_open) */
    return 0;
}

void nc_grpc_conn_close(nc_grpc_conn *c, int err, const char *why) {
    c->ended = 1;
    nc_stream_close(&c->st, err, why);
}

void nc_grpc_conn_drain(nc_grpc_conn *c) {
    if (c->ended || c->draining) return;
    c->draining = 1;
    nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
    flush(c);
}
