#include "io/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/tls.h"
#include "nestc/error.h"
#include "util/errmap.h"

enum { ST_INIT = 0, ST_CONNECTING, ST_OPEN, ST_CLOSING };

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0 /* SO_NOSIGPIPE is set on the socket instead (no_sigpipe) */
#endif

static void do_flush(nc_flushable *f);
static void start_write(nc_stream *s);
static void tls_fail(nc_stream *s);

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
    s->wfd = -1;
    s->end_wait_ms = NC_STREAM_END_WAIT_MS;
    if (uv_tcp_init(io->loop, &s->tcp)) return NC_EIO;
    s->tcp.data = s;
    s->open_handles = 1;
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
    if (h == (uv_handle_t *)&s->wpoll) {
        close(s->wfd); /* libuv never closes a polled descriptor */
        s->wfd = -1;
    }
    if (--s->open_handles > 0) return;
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
    if (s->wire_open) {
        nc_wire_add(&s->io->wire->closed, 1);
        if (err) nc_wire_add(&s->io->wire->closed_err, 1);
    }
    if (was == ST_CONNECTING && s->cbs->on_open) s->cbs->on_open(s, err ? err : NC_ECONNCLOSED, msg);
    if (s->cbs->on_end) s->cbs->on_end(s, err, msg);
    if (s->wfd >= 0) uv_close((uv_handle_t *)&s->wpoll, on_handle_closed);
    if (s->linger_init) uv_close((uv_handle_t *)&s->linger, on_handle_closed);
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

int nc_stream_is_open(const nc_stream *s) {
    return s->state == ST_OPEN;
}

static void fail_uv(nc_stream *s, int uverr, const char *what) {
    char msg[200];
    /* Node's words for a failed connect name the address ("connect ECONNREFUSED 127.0.0.1:3000") */
    if (s->addr[0])
        snprintf(msg, sizeof msg, "%s %s %s (%s)", what, uv_err_name(uverr), s->addr, uv_strerror(uverr));
    else
        snprintf(msg, sizeof msg, "%s %s %s", what, uv_err_name(uverr), uv_strerror(uverr));
    nc_stream_close(s, nc_err_from_uv(uverr), msg);
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
    s->wire_off = 0;
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

/* Where MSG_NOSIGNAL is missing (macOS, BSDs) the socket itself is told not to raise SIGPIPE. Called
 * once the descriptor exists (libuv creates it at connect/accept). */
static void no_sigpipe(nc_stream *s) {
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0)
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
    (void)s;
#endif
}

static void on_writable(uv_poll_t *p, int status, int events);

/* Sends what is left of `wire`. We call send(2) ourselves rather than uv_write/uv_try_write: libuv
 * writes with write(2), which raises SIGPIPE when the peer has reset the connection — the default
 * action kills the process, and a library must not depend on its host ignoring the signal. Returns 0
 * once everything is sent, 1 when the socket is full (writability is watched), -1 when the stream
 * failed (closed). `poll_err`: the watch reported an error, so a send that would block is a failure. */
static int send_wire(nc_stream *s, int poll_err) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd)) {
        fail_uv(s, UV_EBADF, "write");
        return -1;
    }
    while (s->wire_off < s->wire.len) {
        ssize_t n = send(fd, s->wire.data + s->wire_off, s->wire.len - s->wire_off, SEND_FLAGS);
        if (n >= 0) {
            s->wire_off += (size_t)n;
            nc_wire_add(&s->io->wire->out, (uint64_t)n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            fail_uv(s, uv_translate_sys_error(errno), "write");
            return -1;
        }
        if (poll_err) {
            /* the watch failed and the socket says "later": its pending error is the real reason */
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            fail_uv(s, soerr ? uv_translate_sys_error(soerr) : UV_EIO, "write");
            return -1;
        }
        if (s->wfd < 0) {
            int d = dup(fd);
            if (d < 0 || uv_poll_init(s->io->loop, &s->wpoll, d)) {
                if (d >= 0) close(d);
                fail_uv(s, d < 0 ? uv_translate_sys_error(errno) : UV_EIO, "write");
                return -1;
            }
            s->wfd = d;
            s->wpoll.data = s;
            s->open_handles++;
        }
        int r = uv_poll_start(&s->wpoll, UV_WRITABLE, on_writable);
        if (r) {
            fail_uv(s, r, "write");
            return -1;
        }
        return 1;
    }
    return 0;
}

static void on_writable(uv_poll_t *p, int status, int events) {
    nc_stream *s = p->data;
    (void)events;
    if (s->state == ST_CLOSING) return;
    uv_poll_stop(p);
    /* On an error (status < 0) send again: it reports the real errno (EPIPE, ECONNRESET, ...). */
    if (send_wire(s, status < 0) == 0) write_done(s);
}

static void start_write(nc_stream *s) {
    if (s->writing || !s->pend.len || s->state == ST_CLOSING) return;
    nc_buf t = s->wire;
    s->wire = s->pend;
    s->pend = t;
    s->pend.len = 0;
    s->wire_off = 0;
    s->wire_plain = s->pend_plain;
    s->pend_plain = 0;
    s->writing = 1;
    if (send_wire(s, 0) == 0) write_done(s);
}

static void do_flush(nc_flushable *f) {
    nc_stream *s = (nc_stream *)((char *)f - offsetof(nc_stream, fl));
    if (s->state != ST_OPEN && !(s->ssl && s->state == ST_CONNECTING)) return;
    if (s->out.len && (!s->ssl || s->tls_done)) {
        if (s->ssl) {
            ERR_clear_error();
            int r = SSL_write(s->ssl, s->out.data, (int)s->out.len);
            if (r <= 0) {
                tls_fail(s);
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

/* After any SSL call: what it produced (handshake flights, alerts, session tickets, close_notify) must
 * leave even when no plaintext is queued — a TLS 1.2 server's final flight (ChangeCipherSpec, Finished)
 * is produced by the SSL_do_handshake call that completes, and the client waits for it. */
static void tls_schedule_output(nc_stream *s) {
    if (s->state == ST_CLOSING) return;
    if (drain_wbio(s)) {
        nc_stream_close(s, NC_ENOMEM, "out of memory");
        return;
    }
    if (s->pend.len) nc_ioctx_mark(s->io, &s->fl);
}

/* A handshake or record failure: best effort to deliver the alert OpenSSL wrote, then close with the
 * TLS reason (not the write error a peer already gone would cause). */
static void tls_fail(nc_stream *s) {
    char msg[200];
    nc_tls_describe_error(s->ssl, msg, sizeof msg, !s->tls_done);
    drain_wbio(s);
    if (!s->writing && s->pend.len) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0) {
            ssize_t n = send(fd, s->pend.data, s->pend.len, SEND_FLAGS);
            if (n > 0) nc_wire_add(&s->io->wire->out, (uint64_t)n);
        }
    }
    nc_stream_close(s, NC_ETLS, msg);
}

/* The peer ended its side (FIN, or TLS close_notify). Node ends a socket whose peer ended
 * (allowHalfOpen false) after flushing what was written; so do we: no more reading, what is queued
 * leaves, then FIN (and close_notify), then close. Replies produced later are refused (NC_ECLOSED). */
static void peer_ended(nc_stream *s) {
    if (s->ssl && !s->tls_done && s->state == ST_CONNECTING) {
        /* before the handshake completed: a plain TCP server that read our ClientHello as garbage and
         * hung up (a NestJS TCP server does: "Corrupted length value"), or a client that gave up */
        nc_stream_close(s, NC_ETLS,
                        SSL_is_server(s->ssl)
                            ? "TLS handshake failed: the peer closed the connection during the handshake"
                            : "TLS handshake failed: the peer closed the connection without answering in TLS "
                              "(is it a plain tcp:// port?)");
        return;
    }
    if (s->state != ST_OPEN || (!s->out.len && !s->pend.len && !s->writing)) {
        nc_stream_close(s, 0, "end of stream");
        return;
    }
    s->peer_eof = 1;
    uv_read_stop((uv_stream_t *)&s->tcp);
    nc_stream_end(s);
}

/* Runs the handshake and decrypts what the read BIO holds. */
static void tls_pump(nc_stream *s) {
    if (!s->tls_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(s->ssl);
        if (r == 1) {
            tls_schedule_output(s);
            if (s->state == ST_CLOSING) return;
            tls_open(s);
            if (s->state == ST_CLOSING) return;
        } else {
            int e = SSL_get_error(s->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                tls_fail(s);
                return;
            }
            tls_schedule_output(s);
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
            peer_ended(s); /* close_notify */
            return;
        }
        tls_fail(s);
        return;
    }
    tls_schedule_output(s);
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf) {
    nc_stream *s = h->data;
    if (n == 0 || s->state == ST_CLOSING || s->peer_eof) return;
    if (n > 0) nc_wire_add(&s->io->wire->in, (uint64_t)n);
    if (s->lingering) {
        /* our FIN is sent: drop what still comes, close at the peer's EOF (or error) */
        if (n < 0) nc_stream_close(s, s->close_err, "closed");
        return;
    }
    if (n < 0) {
        if (n == UV_EOF)
            peer_ended(s);
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
    if (s->state != ST_CLOSING && s->cbs->on_wire) s->cbs->on_wire(s);
}

int nc_stream_partial_record(const nc_stream *s) {
    /* OpenSSL moves a record's bytes from the read BIO into its own buffer as they arrive */
    return s->ssl && s->state != ST_CLOSING &&
           (BIO_ctrl_pending(SSL_get_rbio(s->ssl)) > 0 || SSL_has_pending(s->ssl));
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
    if (s->peer_eof) return;
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    /* Plaintext already decrypted into the SSL object is not signalled by the socket again. */
    if (s->ssl && s->tls_done && SSL_pending(s->ssl)) tls_pump(s);
}

/* ---- opening ------------------------------------------------------------------------------------ */

/* The TCP connection exists (accepted, or connected: before any TLS handshake or protocol greeting, so a
 * handshake that fails is a connection opened and closed with an error). */
static void wire_opened(nc_stream *s) {
    s->wire_open = 1;
    nc_wire_add(&s->io->wire->opened, 1);
}

static void on_connect(uv_connect_t *req, int status) {
    nc_stream *s = req->data;
    if (s->state == ST_CLOSING) return;
    if (status < 0) {
        fail_uv(s, status, "connect");
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    no_sigpipe(s);
    wire_opened(s);
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
    char ip[48] = "?";
    int port = 0;
    if (addr->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)addr, ip, sizeof ip);
        port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
        snprintf(s->addr, sizeof s->addr, "%s:%d", ip, port);
    } else if (addr->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)addr, ip, sizeof ip);
        port = ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
        snprintf(s->addr, sizeof s->addr, "[%s]:%d", ip, port);
    }
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
    no_sigpipe(s);
    wire_opened(s);
    s->state = s->ssl ? ST_CONNECTING : ST_OPEN;
    r = start_reading(s);
    if (r) return r;
    if (!s->ssl && s->cbs->on_open) s->cbs->on_open(s, 0, NULL);
    return 0;
}

/* ---- ending ------------------------------------------------------------------------------------- */

static void on_linger_timeout(uv_timer_t *t) {
    nc_stream *s = t->data;
    nc_stream_close(s, s->close_err, "closed");
}

static int linger_timer(nc_stream *s) {
    if (s->linger_init) return 0;
    if (uv_timer_init(s->io->loop, &s->linger)) return NC_ENOMEM;
    s->linger.data = s;
    s->linger_init = 1;
    s->open_handles++;
    return 0;
}

static uint64_t bytes_out(const nc_stream *s) {
    return s->written_bytes + s->wire_off;
}

/* An orderly end is still waiting for its queued bytes to leave: go on while they move, else cut. */
static void on_end_wait(uv_timer_t *t) {
    nc_stream *s = t->data;
    if (s->state != ST_OPEN || s->ended) return;
    if (bytes_out(s) != s->end_wait_mark) {
        s->end_wait_mark = bytes_out(s);
        uv_timer_start(&s->linger, on_end_wait, (uint64_t)s->end_wait_ms, 0);
        return;
    }
    char why[128];
    snprintf(why, sizeof why, "peer not reading: closed with %llu bytes unsent after %d ms",
             (unsigned long long)nc_stream_unsent(s), s->end_wait_ms);
    nc_stream_close(s, NC_ESTALLED, why);
}

static void start_end_wait(nc_stream *s) {
    if (s->end_wait_ms <= 0 || linger_timer(s) || uv_is_active((uv_handle_t *)&s->linger)) return;
    s->end_wait_mark = bytes_out(s);
    uv_timer_start(&s->linger, on_end_wait, (uint64_t)s->end_wait_ms, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    nc_stream *s = req->data;
    if (s->state == ST_CLOSING) return;
    if (status < 0 || s->peer_eof || s->linger_ms <= 0) {
        nc_stream_close(s, s->close_err, "closed");
        return;
    }
    /* Linger (see linger_ms): read even if the owner paused reading, until EOF or the time is up. */
    if (linger_timer(s)) {
        nc_stream_close(s, s->close_err, "closed");
        return;
    }
    s->lingering = 1;
    s->paused = 0;
    uv_timer_start(&s->linger, on_linger_timeout, (uint64_t)s->linger_ms, 0);
    uv_read_stop((uv_stream_t *)&s->tcp);
    if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read)) nc_stream_close(s, s->close_err, "closed");
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
        /* write_done comes back here once everything is out; on_end_wait cuts a peer that reads nothing */
        start_end_wait(s);
        return;
    }
    if (s->linger_init) uv_timer_stop(&s->linger);
    if (s->ssl && !s->notify_sent) {
        /* close_notify first, then FIN */
        s->notify_sent = 1;
        SSL_shutdown(s->ssl);
        drain_wbio(s);
        if (s->pend.len) {
            start_write(s);
            start_end_wait(s);
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
