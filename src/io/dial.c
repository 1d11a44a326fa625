#include "io/dial.h"

#include <stdio.h>
#include <string.h>

#include "nestc/error.h"
#include "util/errmap.h"

enum { DIAL_WAITING, DIAL_RESOLVING, DIAL_STREAM };

static void maybe_free(nc_dial *d) {
    if (!d->ended || d->handles_open || d->resolving) return;
    d->ops->free(d);
}

static void handle_closed(uv_handle_t *h) {
    nc_dial *d = h->data;
    d->handles_open--;
    maybe_free(d);
}

void nc_dial_stream_closed(nc_stream *s) {
    nc_dial *d = (nc_dial *)s;
    d->handles_open--;
    maybe_free(d);
}

void nc_dial_end(nc_dial *d, int err, const char *msg) {
    if (d->ended) return;
    d->ended = 1;
    uv_timer_stop(&d->timer);
    d->ops->ended(d, err, msg);
    uv_close((uv_handle_t *)&d->timer, handle_closed);
}

void nc_dial_reason(const nc_dial *d, int *err, const char **msg) {
    if (!d->end_err) return;
    *err = d->end_err;
    *msg = d->end_msg;
}

int nc_dial_fail(nc_dial *d, int err, const char *msg) {
    if (d->ended || d->end_err) return 0;
    d->end_err = err;
    size_t n = strlen(msg);
    if (n >= sizeof d->end_msg) n = sizeof d->end_msg - 1;
    memcpy(d->end_msg, msg, n);
    d->end_msg[n] = '\0';
    nc_stream_close(d->s, err, d->end_msg);
    return 1;
}

void nc_dial_connected(nc_dial *d) {
    uv_timer_stop(&d->timer);
}

static void on_timeout(uv_timer_t *t) {
    nc_dial *d = t->data;
    d->end_err = NC_ETIMEDOUT;
    snprintf(d->end_msg, sizeof d->end_msg, "connecting to %s:%d timed out after %d ms", d->host, d->port,
             d->timeout_ms);
    if (d->resolving) {
        d->cancel_resolve = 1;
        uv_cancel((uv_req_t *)&d->gai);
        return;
    }
    nc_stream_close(d->s, NC_ETIMEDOUT, d->end_msg);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    nc_dial *d = req->data;
    d->resolving = 0;
    if (d->cancel_resolve || d->ended) {
        if (res) uv_freeaddrinfo(res);
        nc_dial_end(d, d->end_err, d->end_err ? d->end_msg : "closed");
        maybe_free(d);
        return;
    }
    if (status < 0 || !res) {
        char msg[200];
        snprintf(msg, sizeof msg, "getaddrinfo %s %s", uv_err_name(status), d->host);
        if (res) uv_freeaddrinfo(res);
        nc_dial_end(d, NC_ERESOLVE, msg);
        return;
    }
    int r;
    if (d->ops->stream) { /* the owner's stream: its handle is the owner's to count and close */
        if (!(d->s = d->ops->stream(d))) {
            uv_freeaddrinfo(res);
            d->s = &d->st;
            nc_dial_end(d, NC_ENOMEM, "out of memory");
            return;
        }
        r = 0;
    } else {
        r = nc_stream_init(&d->st, d->io, d->scbs, d->ssl, 0, d->verify_host);
        d->handles_open++; /* the stream's handle exists from here on (closed through nc_stream_close) */
    }
    d->phase = DIAL_STREAM;
    if (!r) r = nc_stream_connect(d->s, res->ai_addr);
    uv_freeaddrinfo(res);
    if (r) nc_stream_close(d->s, r, "connect failed");
}

static void start_resolve(nc_dial *d) {
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    char port[16];
    snprintf(port, sizeof port, "%d", d->port);
    d->gai.data = d;
    d->phase = DIAL_RESOLVING;
    if (d->timeout_ms > 0) uv_timer_start(&d->timer, on_timeout, (uint64_t)d->timeout_ms, 0);
    int r = uv_getaddrinfo(d->io->loop, &d->gai, on_resolved, d->host, port, &hints);
    if (r) {
        char msg[160];
        snprintf(msg, sizeof msg, "getaddrinfo %s", uv_strerror(r));
        nc_dial_end(d, nc_err_from_uv(r), msg);
        return;
    }
    d->resolving = 1;
}

static void on_delay(uv_timer_t *t) {
    start_resolve(t->data);
}

void nc_dial_start(nc_dial *d, nc_ioctx *io, const char *host, int port, SSL_CTX *ssl,
                   const char *verify_host, int timeout_ms, int delay_ms, const nc_stream_cbs *scbs,
                   const nc_dial_ops *ops) {
    d->io = io;
    d->s = &d->st;
    d->host = host;
    d->port = port;
    d->ssl = ssl;
    d->verify_host = verify_host;
    d->timeout_ms = timeout_ms;
    d->scbs = scbs;
    d->ops = ops;
    uv_timer_init(io->loop, &d->timer);
    d->timer.data = d;
    d->handles_open = 1;
    if (delay_ms > 0) {
        d->phase = DIAL_WAITING;
        uv_timer_start(&d->timer, on_delay, (uint64_t)delay_ms, 0);
    } else {
        start_resolve(d);
    }
}

int nc_dial_close_early(nc_dial *d) {
    if (d->ended) return 1;
    switch (d->phase) {
    case DIAL_WAITING:
        nc_dial_end(d, 0, "closed");
        maybe_free(d);
        return 1;
    case DIAL_RESOLVING:
        d->cancel_resolve = 1;
        uv_cancel((uv_req_t *)&d->gai);
        return 1; /* on_resolved ends it */
    default:
        return 0;
    }
}
