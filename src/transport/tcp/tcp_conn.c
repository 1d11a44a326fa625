#include "transport/tcp/tcp_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"
#include "util/utf8.h"

/* Reading stops while more than this many reply bytes wait for the peer (Node pauses a socket when
 * write() returns false; its high-water mark is 16 KiB — we allow a little more batching). */
#define PAUSE_ABOVE (256 * 1024)
#define RESUME_BELOW (64 * 1024)

/* How long an accepted connection reads and drops what its peer still sends after our FIN, waiting for
 * the peer's EOF before closing (see nc_stream.linger_ms). At shutdown the deadline cuts it shorter. */
#define LINGER_MS 2000

#define CONN_OF(s) ((nc_tcp_conn *)((char *)(s)-offsetof(nc_tcp_conn, st)))

static void maybe_free(nc_tcp_conn *c) {
    if (c->handles_open || c->refs) return;
    if (c->cbs->on_free) c->cbs->on_free(c);
    nc_framer_free(&c->fr);
    free(c);
}

static void on_handle_closed(uv_handle_t *h) {
    nc_tcp_conn *c = h->data;
    c->handles_open--;
    maybe_free(c);
}

static void stream_closed(nc_stream *s) {
    nc_tcp_conn *c = CONN_OF(s);
    c->handles_open--;
    maybe_free(c);
}

static void on_stall(uv_timer_t *t) {
    nc_tcp_conn *c = t->data;
    if (nc_framer_pending(&c->fr))
        nc_logf(
            c->log, NC_LOG_ERROR, c->component,
            "The remote peer %s stopped sending in the middle of a packet (%zu bytes buffered) for %d ms; "
            "closing the connection",
            c->peer, nc_framer_pending(&c->fr), c->lim.incomplete_ms);
    else
        nc_logf(c->log, NC_LOG_ERROR, c->component,
                "The remote peer %s stopped sending in the middle of a TLS record for %d ms; closing the "
                "connection",
                c->peer, c->lim.incomplete_ms);
    nc_tcp_conn_close(c, 0, NC_ESTALLED, "incomplete message timeout");
}

/* The incomplete-message timer runs while part of a frame, or of the TLS record carrying the next one,
 * is held: re-armed on every chunk, so a slow but progressing peer is never cut off. */
static void rearm_stall(nc_tcp_conn *c) {
    if (c->ending || !nc_stream_is_open(&c->st) || c->lim.incomplete_ms <= 0) return;
    /* while we do not read (the peer does not read our replies) it cannot be the peer that stalls */
    if (!c->backpressure && (nc_framer_pending(&c->fr) || nc_stream_partial_record(&c->st)))
        uv_timer_start(&c->stall, on_stall, (uint64_t)c->lim.incomplete_ms, 0);
    else
        uv_timer_stop(&c->stall);
}

static void on_wire(nc_stream *s) {
    rearm_stall(CONN_OF(s));
}

/* The TLS handshake did not complete in time (a peer that connects and stalls, or sends part of a
 * ClientHello, would otherwise hold its descriptor and buffers forever). Closing before the stream opens
 * reports on_open(err), which the server logs at WARN with the peer's address. */
static void on_handshake_timeout(uv_timer_t *t) {
    nc_tcp_conn *c = t->data;
    char why[96];
    snprintf(why, sizeof why, "TLS handshake not completed within %d ms", c->lim.handshake_ms);
    nc_tcp_conn_close(c, 0, NC_ESTALLED, why);
}

static int frame_cb(void *user, const char *json, size_t len) {
    nc_tcp_conn *c = user;
    c->framed = 1;
    char why[256];
    why[0] = '\0';
    if (c->cbs->on_frame(c, json, len, why, sizeof why) == NC_EPROTO) {
        nc_logf(c->log, NC_LOG_ERROR, c->component,
                "Could not parse JSON from %s: %s; closing the connection", c->peer, why);
        c->bad_json = 1;
        if (!c->end_err) {
            /* the reason on_end reports (a client fails its calls with it) */
            c->end_err = NC_EPROTO;
            snprintf(c->end_why, sizeof c->end_why, "invalid JSON: %s", why);
        }
        return 1;
    }
    /* The frame callback may have closed the connection (peer gone); stop feeding then. */
    return nc_stream_is_open(&c->st) && !c->ending ? 0 : 1;
}

static void on_data(nc_stream *s, const char *data, size_t len) {
    nc_tcp_conn *c = CONN_OF(s);
    if (c->ending) return;
    c->refs++; /* callbacks below may drop the owner's reference */
    if (!c->framed && c->nfirst < sizeof c->first) {
        size_t n = sizeof c->first - c->nfirst < len ? sizeof c->first - c->nfirst : len;
        memcpy(c->first + c->nfirst, data, n);
        c->nfirst = (unsigned char)(c->nfirst + n);
    }
    int r = nc_framer_feed(&c->fr, data, len, frame_cb, c);
    if (r < 0) {
        nc_logf(c->log, NC_LOG_ERROR, c->component, "%s (from %s); closing the connection", c->fr.error,
                c->peer);
        char why[240];
        /* nothing NestJS-like came first: most likely not a NestJS service at all (an HTTP server) */
        snprintf(why, sizeof why, "%s%s",
                 !c->framed && r == NC_EPROTO ? "the peer sent data that is not a NestJS packet: " : "",
                 c->fr.error);
        nc_tcp_conn_close(c, 1, r, why);
    } else if (c->bad_json) {
        nc_tcp_conn_close(c, 1, NC_EPROTO, "invalid JSON");
    } else {
        rearm_stall(c);
    }
    c->refs--;
    maybe_free(c);
}

static void on_open(nc_stream *s, int err, const char *msg) {
    nc_tcp_conn *c = CONN_OF(s);
    uv_timer_stop(&c->stall); /* the handshake timeout, if any */
    if (!err && !strcmp(c->peer, "?")) nc_stream_peer(s, c->peer, sizeof c->peer);
    if (c->cbs->on_open) c->cbs->on_open(c, err, msg);
}

/* 1 when the first bytes can begin a NestJS packet: optional whitespace and sign, digits, then '#' or
 * nothing more yet. */
static int looks_framed(const char *p, size_t n) {
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    size_t digits = i;
    while (i < n && p[i] >= '0' && p[i] <= '9') i++;
    if (i == n) return 1;
    return i > digits && p[i] == '#';
}

/* The first bytes as a short printable excerpt in quotes: escapes for control and non-ASCII bytes. */
static void excerpt(char *out, size_t outlen, const char *p, size_t n, int more) {
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < outlen; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\r' || ch == '\n' || ch == '\t') {
            out[o++] = '\\';
            out[o++] = ch == '\r' ? 'r' : ch == '\n' ? 'n' : 't';
        } else if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    if (more && o + 4 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* The peer hung up with part of a packet held: say what it sent instead of "Connection closed". */
static void explain_cut(nc_tcp_conn *c, int err) {
    size_t held = nc_framer_pending(&c->fr);
    /* only for the peer's end (EOF, reset): any other reason (ours, TLS, a timeout) says more */
    if (c->end_err || !held || (err != 0 && err != NC_ECONNCLOSED)) return;
    if (!c->framed && !looks_framed(c->first, c->nfirst)) {
        char ex[160];
        excerpt(ex, sizeof ex, c->first, c->nfirst, held > c->nfirst);
        c->end_err = NC_EPROTO;
        snprintf(c->end_why, sizeof c->end_why,
                 "the peer closed the connection after sending data that is not a NestJS packet: %s", ex);
    } else {
        c->end_err = NC_ECONNCLOSED;
        snprintf(c->end_why, sizeof c->end_why,
                 "Connection closed in the middle of a packet (%zu bytes of it received)", held);
    }
}

static void on_end(nc_stream *s, int err, const char *msg) {
    nc_tcp_conn *c = CONN_OF(s);
    uv_timer_stop(&c->stall);
    if (c->handles_open == 2) {
        uv_close((uv_handle_t *)&c->stall, on_handle_closed);
    }
    c->ending = 1;
    explain_cut(c, err);
    if (c->end_err) {
        /* we ended it (a protocol error, FIN sent): report that, not the orderly close or the reset
         * that followed */
        err = c->end_err;
        msg = c->end_why;
    }
    if (c->cbs->on_end) c->cbs->on_end(c, err, msg);
}

static void on_drain(nc_stream *s) {
    nc_tcp_conn *c = CONN_OF(s);
    if (c->backpressure && nc_stream_unsent(s) < RESUME_BELOW) {
        c->backpressure = 0;
        nc_stream_resume(s);
        rearm_stall(c);
    }
    if (c->nwatch && c->cbs->on_writable) {
        c->refs++; /* a drain callback may end the connection */
        c->cbs->on_writable(c);
        nc_tcp_conn_release(c);
    }
}

static const nc_stream_cbs stream_cbs = {on_open, on_data, on_drain, on_end, stream_closed, on_wire};

nc_tcp_conn *nc_tcp_conn_new(nc_ioctx *io, SSL_CTX *ssl, int is_server, const char *host,
                             const nc_tcp_limits *lim, const nc_tcp_conn_cbs *cbs, const nc_logger *log,
                             const char *component, void *owner) {
    nc_tcp_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    static const nc_tcp_conn_cbs none = {0};
    uv_timer_init(io->loop, &c->stall);
    c->stall.data = c;
    c->handles_open = 2;
    c->log = log;
    c->component = component;
    if (nc_stream_init(&c->st, io, &stream_cbs, ssl, is_server, host)) {
        /* both handles exist: close them through the loop; nobody else knows this conn */
        c->cbs = &none;
        nc_stream_close(&c->st, NC_ENOMEM, "init");
        return NULL;
    }
    if (is_server) c->st.linger_ms = LINGER_MS;
    c->refs = 1;
    c->cbs = cbs;
    c->log = log;
    c->component = component;
    c->lim = *lim;
    c->owner = owner;
    strcpy(c->peer, "?");
    nc_framer_limits fl;
    nc_framer_limits_default(&fl);
    if (lim->max_buffer > 0)
        fl.max_buffer_units = (size_t)lim->max_buffer;
    else
        fl.max_buffer_units = (size_t)-1;
    nc_framer_init(&c->fr, &fl);
    return c;
}

int nc_tcp_conn_send(nc_tcp_conn *c, const char *json, size_t len) {
    if (!nc_stream_is_open(&c->st) || c->st.want_end) return NC_ECONNCLOSED;
    char pre[24];
    size_t pl = nc_frame_prefix(pre, nc_utf16_units(json, len));
    if (nc_stream_write(&c->st, pre, pl) || nc_stream_write(&c->st, json, len)) return NC_ENOMEM;
    uint64_t unsent = nc_stream_unsent(&c->st);
    if (c->lim.max_send > 0 && unsent > (uint64_t)c->lim.max_send) {
        nc_logf(c->log, NC_LOG_ERROR, c->component,
                "The remote peer %s is not reading its responses (%llu bytes unsent, limit %lld); "
                "closing the connection",
                c->peer, (unsigned long long)unsent, c->lim.max_send);
        nc_tcp_conn_close(c, 0, NC_ESTALLED, "peer not reading");
        return NC_ESTALLED;
    }
    if (!c->backpressure && unsent > PAUSE_ABOVE) {
        c->backpressure = 1;
        nc_stream_pause(&c->st);
        uv_timer_stop(&c->stall);
    }
    return 0;
}

int nc_tcp_conn_accept(nc_tcp_conn *c, uv_stream_t *listener) {
    int r = nc_stream_accept(&c->st, listener);
    if (r) return r;
    nc_stream_peer(&c->st, c->peer, sizeof c->peer);
    if (c->st.ssl && c->lim.handshake_ms > 0 && !nc_stream_is_open(&c->st))
        uv_timer_start(&c->stall, on_handshake_timeout, (uint64_t)c->lim.handshake_ms, 0);
    return 0;
}

void nc_tcp_conn_retain(nc_tcp_conn *c) {
    c->refs++;
}

void nc_tcp_conn_release(nc_tcp_conn *c) {
    c->refs--;
    maybe_free(c);
}

void nc_tcp_conn_close(nc_tcp_conn *c, int graceful, int err, const char *why) {
    if (graceful && nc_stream_is_open(&c->st)) {
        if (err && !c->end_err) {
            c->end_err = err;
            snprintf(c->end_why, sizeof c->end_why, "%s", why ? why : nc_strerror(err));
        }
        c->ending = 1;
        uv_timer_stop(&c->stall);
        nc_stream_pause(&c->st);
        nc_stream_end(&c->st);
        return;
    }
    nc_stream_close(&c->st, err, why);
}

int nc_tcp_conn_is_open(const nc_tcp_conn *c) {
    return nc_stream_is_open(&c->st) && !c->ending;
}

void nc_tcp_conn_drain(nc_tcp_conn *c) {
    if (!nc_stream_is_open(&c->st)) {
        nc_tcp_conn_close(c, 0, 0, NULL);
        return;
    }
    c->ending = 1; /* on_data drops what still comes */
    uv_timer_stop(&c->stall);
    /* keep reading even when the peer does not read our replies: bytes left unread when the socket
     * closes make the kernel answer with a reset, which discards the reply's tail still queued for the
     * peer */
    c->backpressure = 0;
    nc_stream_resume(&c->st);
    nc_stream_end(&c->st);
}
