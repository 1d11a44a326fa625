#include "io/stream.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "io/tls.h"
#include "nestc/error.h"

enum { ST_INIT = 0, ST_CONNECTING, ST_OPEN, ST_CLOSING };

static void do_flush(nc_flushable *f);
static void start_write(nc_stream *s);

static int setup_ssl(nc_stream *s, SSL_CTX *ctx, int is_server, const char *host) {
    s->ssl = SSL_new(ctx);
    if (!s->ssl) return NC_ETLS;
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (!rb || !wb) {
        BIO_free(rb);
        BIO_free(wb);
        return NC_ENOMEM;
    }
    BIO_set_mem_eof_return(rb, -1);
    SSL_set_bio(s->ssl, rb, wb);
    if (is_server) {
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
        if (host && *host) {
            /* SNI only for names (not IP literals), as Node does; verification for both. */
            struct in6_addr a6;
            struct in_addr a4;
            int is_ip = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
            if (!is_ip) SSL_set_tlsext_host_name(s->ssl, host);
            if (SSL_get_verify_mode(s->ssl) != SSL_VERIFY_NONE) {
                if (is_ip)
                    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), host);
                else
                    SSL_set1_host(s->ssl, host);
            }
        }
    }
    return 0;
}

int nc_stream_init(nc_stream *s, nc_ioctx *io, const nc_stream_cbs *cbs, SSL_CTX *ctx, int is_server,
                   const char *host) {
    memset(s, 0, sizeof *s);
    s->io = io;
    s->cbs = cbs;
    s->fl.flush = do_flush;
    if (uv_tcp_init(io->loop, &s->tcp)) return NC_EIO;
    s->tcp.data = s;
    return ctx ? setup_ssl(s, ctx, is_server, host) : 0;
}

/* ---- closing ------------------------------------------------------------------------------------ */

static void fire_notes(nc_stream *s, int err) {
    size_t keep = 0;
    /* Callbacks may queue more notes; work on a snapshot count. */
    size_t n = s->nnotes;
    for (size_t i = 0; i < n; i++) {
        nc_write_note nt = s->notes[i];
        if (err || nt.at <= s->written_bytes)
            nt.cb(nt.arg, err);
        else
            s->notes[keep++] = nt;
    }
    /* Notes added during callbacks sit after n. */
    if (s->nnotes > n) memmove(s->notes + keep, s->notes + n, (s->nnotes - n) * sizeof *s->notes);
    s->nnotes = keep + (s->nnotes - n);
}

static void on_handle_closed(uv_handle_t *h) {
    nc_stream *s = h->data;
    fire_notes(s, s->close_err ? s->close_err : NC_ECONNCLOSED);
    free(s->notes);
    s->notes = NULL;
    s->nnotes = s->capnotes = 0;
    nc_buf_free(&s->out);
    nc_buf_free(&s->pend);
    nc_buf_free(&s->wire);
    if (s->ssl) SSL_free(s->ssl);
    s->ssl = NULL;
    if (s->cbs->on_close) s->cbs->on_close(s);
}

void nc_stream_close(nc_stream *s, int err, const char *msg) {
    if (s->state == ST_CLOSING) return;
    int was = s->state;
    s->state = ST_CLOSING;
    s->close_err = err;
    nc_ioctx_unmark(s->io, &s->fl);
    if (was == ST_CONNECTING && s->cbs->on_open) s->cbs->on_open(s, err ? err : NC_ECONNCLOSED, msg);
    if (s->cbs->on_end) s->cbs->on_end(s, err, msg);
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

int nc_stream_is_open(const nc_stream *s) {
    return s->state == ST_OPEN;
}

static void fail_uv(nc_stream *s, int uverr, const char *what) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s %s", what, uv_err_name(uverr), uv_strerror(uverr));
    nc_stream_close(s, nc_err_from_uv(uverr), msg);
}

static void fail_tls(nc_stream *s) {
    char msg[200];
    nc_tls_describe_error(s->ssl, msg, sizeof msg);
    nc_stream_close(s, NC_ETLS, msg);
}

/* ---- writing ------------------------------------------------------------------------------------ */

/* Moves TLS output (handshake records, alerts, encrypted data) into pend. */
static int drain_wbio(nc_stream *s) {
    BIO *wb = SSL_get_wbio(s->ssl);
    size_t n = BIO_ctrl_pending(wb);
    if (!n) return 0;
    if (nc_buf_reserve(&s->pend, n)) return NC_ENOMEM;
    int r = BIO_read(wb, s->pend.data + s->pend.len, (int)n);
    if (r > 0) s->pend.len += (size_t)r;
    return 0;
}

static void write_done(nc_stream *s) {
    s->written_bytes += s->wire_plain;
    s->wire_plain = 0;
    s->wire.len = 0;
    s->writing = 0;
    if (s->nnotes) fire_notes(s, 0);
    if (s->state != ST_OPEN && s->state != ST_CONNECTING) return;
    if (s->pend.len || s->out.len) {
        nc_ioctx_mark(s->io, &s->fl);
    } else if (s->want_end && !s->ended) {
        nc_stream_end(s);
    }
    if (s->cbs->on_drain) s->cbs->on_drain(s);
}

static void on_write(uv_write_t *req, int status) {
    nc_stream *s = req->data;
    if (s->state == ST_CLOSING) return;
    if (status < 0) {
        fail_uv(s, status, "write");
        return;
    }
    write_done(s);
}

static void start_write(nc_stream *s) {
    if (s->writing || !s->pend.len || s->state == ST_CLOSING) return;
    nc_buf t = s->wire;
    s->wire = s->pend;
    s->pend = t;
    s->pend.len = 0;
    s->wire_plain = s->pend_plain;
    s->pend_plain = 0;
    s->writing = 1;
    uv_buf_t b = uv_buf_init(s->wire.data, (unsigned)s->wire.len);
    int n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (n == (int)s->wire.len) {
        write_done(s);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        fail_uv(s, n, "write");
        return;
    }
    if (n < 0) n = 0;
    b = uv_buf_init(s->wire.data + n, (unsigned)(s->wire.len - (size_t)n));
    s->wreq.data = s;
    int r = uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_write);
    if (r) fail_uv(s, r, "write");
}

static void do_flush(nc_flushable *f) {
    nc_stream *s = (nc_stream *)((char *)f - offsetof(nc_stream, fl));
    if (s->state != ST_OPEN && !(s->ssl && s->state == ST_CONNECTING)) return;
    if (s->out.len && (!s->ssl || s->tls_done)) {
        if (s->ssl) {
            ERR_clear_error();
            int r = SSL_write(s->ssl, s->out.data, (int)s->out.len);
            if (r <= 0) {
                fail_tls(s);
                return;
            }
            s->pend_plain += s->out.len;
            s->out.len = 0;
        } else if (!s->pend.len) {
            nc_buf t = s->pend;
            s->pend = s->out;
            s->out = t;
            s->out.len = 0;
            s->pend_plain += s->pend.len;
        } else {
            if (nc_buf_append(&s->pend, s->out.data, s->out.len)) {
                nc_stream_close(s, NC_ENOMEM, "out of memory");
                return;
            }
            s->pend_plain += s->out.len;
            s->out.len = 0;
        }
    }
    if (s->ssl && drain_wbio(s)) {
        nc_stream_close(s, NC_ENOMEM, "out of memory");
        return;
    }
    start_write(s);
}

int nc_stream_write(nc_stream *s, const void *p, size_t n) {
    if (s->state == ST_CLOSING || s->want_end) return NC_ECLOSED;
    if (nc_buf_append(&s->out, p, n)) return NC_ENOMEM;
    s->queued_bytes += n;
    nc_ioctx_mark(s->io, &s->fl);
    return 0;
}

int nc_stream_notify_written(nc_stream *s, void (*cb)(void *, int), void *arg) {
    if (s->state == ST_CLOSING) return NC_ECLOSED;
    if (s->nnotes == s->capnotes) {
        size_t cap = s->capnotes ? s->capnotes * 2 : 8;
        nc_write_note *n = realloc(s->notes, cap * sizeof *n);
        if (!n) return NC_ENOMEM;
        s->notes = n;
        s->capnotes = cap;
    }
    s->notes[s->nnotes++] = (nc_write_note){s->queued_bytes, cb, arg};
    return 0;
}

uint64_t nc_stream_unsent(const nc_stream *s) {
    return s->queued_bytes - s->written_bytes;
}

/* ---- reading ------------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    nc_stream *s = h->data;
    char *b = nc_ioctx_read_buffer(s->io);
    *buf = uv_buf_init(b, b ? NC_READ_BUF_SIZE : 0);
}

static void tls_open(nc_stream *s) {
    s->tls_done = 1;
    s->state = ST_OPEN;
    if (s->cbs->on_open) s->cbs->on_open(s, 0, NULL);
}

/* Runs the handshake and decrypts what the read BIO holds. */
static void tls_pump(nc_stream *s) {
    if (!s->tls_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(s->ssl);
        if (r == 1) {
            drain_wbio(s);
            tls_open(s);
            if (s->state == ST_CLOSING) return;
        } else {
            int e = SSL_get_error(s->ssl, r);
            drain_wbio(s);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                start_write(s); /* try to deliver the alert */
                fail_tls(s);
                return;
            }
            nc_ioctx_mark(s->io, &s->fl);
            return;
        }
    }
    if (!s->io->tlsbuf && !(s->io->tlsbuf = malloc(NC_READ_BUF_SIZE))) {
        nc_stream_close(s, NC_ENOMEM, "out of memory");
        return;
    }
    for (;;) {
        if (s->paused || s->state != ST_OPEN) break;
        ERR_clear_error();
        int r = SSL_read(s->ssl, s->io->tlsbuf, NC_READ_BUF_SIZE);
        if (r > 0) {
            s->cbs->on_data(s, s->io->tlsbuf, (size_t)r);
            continue;
        }
        int e = SSL_get_error(s->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            nc_stream_close(s, 0, "end of stream");
            return;
        }
        fail_tls(s);
        return;
    }
    if (s->state != ST_CLOSING && BIO_ctrl_pending(SSL_get_wbio(s->ssl))) nc_ioctx_mark(s->io, &s->fl);
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf) {
    nc_stream *s = h->data;
    if (n == 0 || s->state == ST_CLOSING) return;
    if (n < 0) {
        if (n == UV_EOF)
            nc_stream_close(s, 0, "end of stream");
        else
            fail_uv(s, (int)n, "read");
        return;
    }
    if (!s->ssl) {
        s->cbs->on_data(s, buf->base, (size_t)n);
        return;
    }
    if (BIO_write(SSL_get_rbio(s->ssl), buf->base, (int)n) != (int)n) {
        nc_stream_close(s, NC_ENOMEM, "out of memory");
        return;
    }
    tls_pump(s);
}

static int start_reading(nc_stream *s) {
    s->reading = 1;
    int r = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    return r ? nc_err_from_uv(r) : 0;
}

void nc_stream_pause(nc_stream *s) {
    if (s->paused || s->state == ST_CLOSING) return;
    s->paused = 1;
    uv_read_stop((uv_stream_t *)&s->tcp);
}

void nc_stream_resume(nc_stream *s) {
    if (!s->paused || s->state == ST_CLOSING) return;
    s->paused = 0;
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    /* Plaintext already decrypted into the SSL object is not signalled by the socket again. */
    if (s->ssl && s->tls_done && SSL_pending(s->ssl)) tls_pump(s);
}

/* ---- opening ------------------------------------------------------------------------------------ */

static void on_connect(uv_connect_t *req, int status) {
    nc_stream *s = req->data;
    if (s->state == ST_CLOSING) return;
    if (status < 0) {
        fail_uv(s, status, "connect");
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    int r = start_reading(s);
    if (r) {
        nc_stream_close(s, r, "cannot read from the socket");
        return;
    }
    if (!s->ssl) {
        s->state = ST_OPEN;
        if (s->cbs->on_open) s->cbs->on_open(s, 0, NULL);
        return;
    }
    tls_pump(s); /* writes the ClientHello */
}

int nc_stream_connect(nc_stream *s, const struct sockaddr *addr) {
    s->state = ST_CONNECTING;
    s->connect_req.data = s;
    int r = uv_tcp_connect(&s->connect_req, &s->tcp, addr, on_connect);
    if (r) {
        s->state = ST_INIT;
        return nc_err_from_uv(r);
    }
    return 0;
}

int nc_stream_start_tls(nc_stream *s, SSL_CTX *ctx, const char *host) {
    if (s->state != ST_OPEN || s->ssl) return NC_ESTATE;
    int r = setup_ssl(s, ctx, 0, host);
    if (r) return r;
    s->state = ST_CONNECTING;
    tls_pump(s); /* writes the ClientHello; on_open follows the handshake */
    return 0;
}

int nc_stream_accept(nc_stream *s, uv_stream_t *listener) {
    int r = uv_accept(listener, (uv_stream_t *)&s->tcp);
    if (r) return nc_err_from_uv(r);
    uv_tcp_nodelay(&s->tcp, 1);
    s->state = s->ssl ? ST_CONNECTING : ST_OPEN;
    r = start_reading(s);
    if (r) return r;
    if (!s->ssl && s->cbs->on_open) s->cbs->on_open(s, 0, NULL);
    return 0;
}

/* ---- ending ------------------------------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status) {
    nc_stream *s = req->data;
    nc_stream_close(s, s->close_err, "closed");
}

void nc_stream_end(nc_stream *s) {
    if (s->state == ST_CLOSING || s->ended) return;
    s->want_end = 1;
    if (s->state != ST_OPEN) {
        nc_stream_close(s, 0, "closed");
        return;
    }
    if (s->out.len || s->pend.len || s->writing) {
        nc_ioctx_mark(s->io, &s->fl);
        return; /* write_done comes back here once everything is out */
    }
    if (s->ssl && !s->notify_sent) {
        /* close_notify first, then FIN */
        s->notify_sent = 1;
        SSL_shutdown(s->ssl);
        drain_wbio(s);
        if (s->pend.len) {
            start_write(s);
            return;
        }
    }
    s->ended = 1;
    s->sreq.data = s;
    if (uv_shutdown(&s->sreq, (uv_stream_t *)&s->tcp, on_shutdown)) nc_stream_close(s, 0, "closed");
}

void nc_stream_peer(const nc_stream *s, char *buf, size_t len) {
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    snprintf(buf, len, "%s:%d", ip, port);
}
