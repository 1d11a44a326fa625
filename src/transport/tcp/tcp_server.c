/* TCP and TLS server transport (NestJS ServerTCP, tcp.md §4 and §7). */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include "io/listen.h"
#include "codec/envelope.h"
#include "core/errors.h"
#include "core/fail.h"
#include "core/server_transport.h"
#include "io/tls.h"
#include "nestc/error.h"
#include "transport/tcp/tcp.h"
#include "transport/tcp/tcp_conn.h"

typedef struct tcp_server {
    nc_server *srv;
    const nc_server_cfg *cfg; /* nc_server__cfg(srv), kept: read per reply */
    SSL_CTX *ssl;
    char *host;
    int port, bound_port;
    uv_tcp_t listener;
    int listener_open; /* handle initialised and not closed */
    int stopping, closing;
    int retries;
    uv_timer_t retry;
    int retry_open;
    nc_tcp_conn *conns;
    size_t nconns;
    nc_tcp_limits lim;
    nc_buf enc; /* reply encoding scratch */
} tcp_server;

static void maybe_closed(tcp_server *t) {
    if (t->closing == 1 && !t->listener_open && !t->retry_open && !t->conns) {
        t->closing = 2;
        nc_server__closed(t->srv);
    }
}

/* ---- connections --------------------------------------------------------------------------------- */

static int conn_reply(void *peer, const nc_reply_pkt *pkt) {
    nc_tcp_conn *c = peer;
    tcp_server *t = c->owner;
    if (!nc_tcp_conn_is_open(c)) return NC_ECONNCLOSED;
    nc_buf_reset(&t->enc);
    const nc_server_cfg *cfg = t->cfg;
    int r = nc_envelope_write_reply(&t->enc, pkt, cfg->has_codec ? &cfg->codec : NULL);
    if (r) return r;
    return nc_tcp_conn_send(c, t->enc.data, t->enc.len);
}

static void conn_retain(void *peer) {
    nc_tcp_conn_retain(peer);
}
static void conn_release(void *peer) {
    nc_tcp_conn_release(peer);
}
static const char *conn_addr(void *p) {
    const char *a = ((nc_tcp_conn *)p)->peer;
    return strcmp(a, "?") ? a : NULL;
}

/* The writable signal of a request (nc_reply_writable) is its connection's write queue: the frames of every
 * request on the connection share it, so one slow reader pauses all the streams it receives. */
static size_t conn_pending(void *p) {
    nc_tcp_conn *c = p;
    return nc_tcp_conn_is_open(c) ? (size_t)nc_stream_unsent(&c->st) : 0;
}
static void conn_watch(void *p, int on) {
    ((nc_tcp_conn *)p)->nwatch += on ? 1 : -1;
}

static const nc_peer_ops peer_ops = {conn_reply, conn_retain,  conn_release,
                                     conn_addr,  conn_pending, conn_watch};

static int conn_frame(nc_tcp_conn *c, const char *json, size_t len, char *why, size_t whylen) {
    tcp_server *t = c->owner;
    nc_inbound in = {.channel = NULL, .headers = NULL, .peer = c, .peer_ops = &peer_ops, .utf8_valid = 1};
    return nc_server__dispatch(t->srv, json, len, &in, why, whylen);
}

static void conn_open(nc_tcp_conn *c, int err, const char *msg) {
    tcp_server *t = c->owner;
    const nc_log_ctx lc = {.peer = c->peer};
    if (err) /* a TLS handshake that failed: the line names the peer, and has it as a field */
        nc_logf_ctx(nc_server__log(t->srv), NC_LOG_WARN, "Server", &lc, "connection from %s failed: %s",
                    c->peer, msg ? msg : nc_strerror(err));
}

static void conn_end(nc_tcp_conn *c, int err, const char *msg) {
    tcp_server *t = c->owner;
    /* A TLS failure on an open connection (a corrupt or forged record, a bad alert) is worth a WARN;
     * a peer that goes away (reset, broken pipe) is ordinary. */
    const nc_log_ctx lc = {.peer = c->peer};
    if (err && err != NC_ECONNCLOSED)
        nc_logf_ctx(nc_server__log(t->srv), err == NC_ETLS && c->st.tls_done ? NC_LOG_WARN : NC_LOG_DEBUG,
                    "Server", &lc, "connection %s closed: %s", c->peer, msg ? msg : nc_strerror(err));
    /* unlink now: the server forgets the connection; in-flight requests hold it until they finish */
    if (c->prev)
        c->prev->next = c->next;
    else if (t->conns == c)
        t->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    t->nconns--;
    /* the requests still answering on it are cancelled (their handlers can stop); more than our own
     * reference means some hold it */
    if (c->refs > 1) nc_server__peer_gone(t->srv, c);
    nc_tcp_conn_release(c); /* the server's reference */
}

static void conn_free(nc_tcp_conn *c) {
    tcp_server *t = c->owner;
    maybe_closed(t);
}

static void conn_writable(nc_tcp_conn *c) {
    tcp_server *t = c->owner;
    nc_server__peer_writable(t->srv, c);
}

static const nc_tcp_conn_cbs conn_cbs = {conn_frame, conn_open, conn_end, conn_free, conn_writable};

static void on_connection(uv_stream_t *l, int status) {
    tcp_server *t = l->data;
    if (status < 0) {
        nc_logf(nc_server__log(t->srv), NC_LOG_ERROR, "Server", "accept failed: %s", uv_strerror(status));
        return;
    }
    nc_tcp_conn *c = nc_tcp_conn_new(nc_server__io(t->srv), t->ssl, 1, NULL, &t->lim, &conn_cbs,
                                     nc_server__log(t->srv), "Server", t);
    if (!c) {
        /* out of memory: accept and drop the connection so the listener keeps going */
        nc_logf(nc_server__log(t->srv), NC_LOG_ERROR, "Server", "out of memory: dropping a new connection");
        uv_tcp_t *tmp = malloc(sizeof *tmp);
        if (tmp && uv_tcp_init(l->loop, tmp) == 0) {
            uv_accept(l, (uv_stream_t *)tmp);
            uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
        } else {
            free(tmp);
        }
        return;
    }
    c->next = t->conns;
    if (t->conns) t->conns->prev = c;
    t->conns = c;
    t->nconns++;
    int r = nc_tcp_conn_accept(c, l);
    if (r) nc_tcp_conn_close(c, 0, r, "accept failed");
}

/* ---- ops ----------------------------------------------------------------------------------------- */

static int tcp_create(nc_server *srv, const nc_url *url, void **state) {
    const nc_server_cfg *cfg = nc_server__cfg(srv);
    char why[300];
    if (nc_url_check(url, 0, why, sizeof why))
        return nc_fail(nc_server__log(srv), "Server", NC_EINVAL, "%s", why);
    int is_tls = strcmp(url->scheme, "tls") == 0;
    if (is_tls && !cfg->has_tls) {
        return nc_fail(nc_server__log(srv), "Server", NC_EINVAL,
                       "a tls:// server needs TLS options (certificate and key)");
    }
    tcp_server *t = calloc(1, sizeof *t);
    if (!t) return NC_ENOMEM;
    t->srv = srv;
    t->cfg = cfg;
    t->host = strdup(url->host[0] ? url->host : "localhost");
    t->port = url->port >= 0 ? url->port : 3000;
    t->lim = (nc_tcp_limits){cfg->max_buffer_size, cfg->max_send_buffer_size, cfg->incomplete_timeout_ms,
                             is_tls ? cfg->handshake_timeout_ms : 0};
    if (is_tls) {
        char err[300];
        int r = nc_tls_ctx_new(&t->ssl, &cfg->tls, 1, err, sizeof err);
        if (r) {
            nc_logf(nc_server__log(srv), NC_LOG_ERROR, "Server", "%s", err);
            free(t->host);
            free(t);
            return r;
        }
    }
    *state = t;
    return 0;
}

static void on_retry(uv_timer_t *tm);

static int do_listen(tcp_server *t) {
    char why[300];
    int r =
        nc_listen_tcp(nc_server__io(t->srv)->loop, &t->listener, t->host, t->port,
                      nc_server__cfg(t->srv)->reuseport, on_connection, t, &t->bound_port, why, sizeof why);
    if (r) return nc_fail(nc_server__log(t->srv), "Server", r, "%s", why);
    t->listener_open = 1;
    return 0;
}

static int tcp_listen(void *state) {
    tcp_server *t = state;
    int r = do_listen(t);
    if (r && t->retries < nc_server__cfg(t->srv)->retry_attempts && r != NC_ERESOLVE) {
        /* NestJS retryAttempts/retryDelay: try listening again later. */
        nc_logf(nc_server__log(t->srv), NC_LOG_WARN, "Server", "retrying listen in %d ms (attempt %d of %d)",
                nc_server__cfg(t->srv)->retry_delay_ms, t->retries + 1,
                nc_server__cfg(t->srv)->retry_attempts);
        if (!t->retry_open) {
            uv_timer_init(nc_server__io(t->srv)->loop, &t->retry);
            t->retry.data = t;
            t->retry_open = 1;
        }
        t->retries++;
        uv_timer_start(&t->retry, on_retry, (uint64_t)nc_server__cfg(t->srv)->retry_delay_ms, 0);
        return 0;
    }
    return r;
}

static void retry_closed(uv_handle_t *h) {
    tcp_server *t = h->data;
    t->retry_open = 0;
    maybe_closed(t);
}

static void on_retry(uv_timer_t *tm) {
    tcp_server *t = tm->data;
    if (t->stopping) return;
    int r = tcp_listen(t);
    if (r) nc_server__status(t->srv, "disconnected", r);
}

static void listener_closed(uv_handle_t *h) {
    tcp_server *t = h->data;
    t->listener_open = 0;
    maybe_closed(t);
}

static void tcp_stop_accepting(void *state) {
    tcp_server *t = state;
    t->stopping = 1;
    if (t->listener_open && !uv_is_closing((uv_handle_t *)&t->listener))
        uv_close((uv_handle_t *)&t->listener, listener_closed);
    if (t->retry_open && !uv_is_closing((uv_handle_t *)&t->retry))
        uv_close((uv_handle_t *)&t->retry, retry_closed);
}

static void tcp_close(void *state) {
    tcp_server *t = state;
    tcp_stop_accepting(t);
    t->closing = 1;
    /* close every connection: conn_end unlinks it from the list */
    while (t->conns) nc_tcp_conn_close(t->conns, 0, NC_ECLOSED, "server closing");
    maybe_closed(t);
}

static void tcp_drain(void *state) {
    tcp_server *t = state;
    tcp_stop_accepting(t);
    t->closing = 1;
    /* each connection ends after its last queued reply byte (FIN; TLS: close_notify first), so a reply
     * being written when the shutdown began arrives whole; conn_end unlinks it */
    for (nc_tcp_conn *c = t->conns, *next; c; c = next) {
        next = c->next;
        nc_tcp_conn_drain(c);
    }
    maybe_closed(t);
}

static void tcp_destroy(void *state) {
    tcp_server *t = state;
    if (t->ssl) SSL_CTX_free(t->ssl);
    nc_buf_free(&t->enc);
    free(t->host);
    free(t);
}

static int tcp_port(void *state) {
    return ((tcp_server *)state)->bound_port;
}

static const char *const schemes[] = {"tcp", "tls", NULL};

/* tcp_create tells tls:// from tcp:// by the URL */
const nc_server_transport nc_tcp_server_transport = {
    .schemes = schemes,
    .supports_workers = 1,
    .create = tcp_create,
    .listen = tcp_listen,
    .route_added = NULL,
    .stop_accepting = tcp_stop_accepting,
    .close = tcp_close,
    .destroy = tcp_destroy,
    .port = tcp_port,
    .drain = tcp_drain,
};
