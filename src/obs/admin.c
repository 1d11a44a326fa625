/* The admin HTTP endpoint (admin.h, docs/observability.md): a few GET routes on the server's own loop.
 *
 * Bounded so that whoever can reach it cannot hurt the server: at most ADMIN_CONNS connections at once
 * (more are accepted and closed at once, so the backlog drains), a request head of NC_HTTP_HEAD_MAX bytes,
 * no request body, ADMIN_TIMEOUT_MS from accept to the end of the response, one request per connection
 * (every response says Connection: close). Probes and scrapers open a connection per request anyway. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/obs_support.h"
#include "core/server_transport.h"
#include "io/listen.h"
#include "obs/admin.h"
#include "obs/http_req.h"
#include "obs/metrics_internal.h"
#include "util/buf.h"

#define ADMIN_CONNS 16
#define ADMIN_TIMEOUT_MS 5000

typedef struct aconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    struct nc_admin *a;
    struct aconn *prev, *next;
    nc_buf out;
    size_t len;
    int handles; /* open handles of this connection */
    int done;    /* responded or closing: read no more */
    char in[NC_HTTP_HEAD_MAX];
} aconn;

struct nc_admin {
    nc_server *srv;
    uv_timer_t wait; /* nc_admin_close_after */
    _Atomic int *wait_closed;
    int wait_want, waiting;
    uv_loop_t *loop;
    char host[256];
    int port, bound_port;
    uv_tcp_t listener;
    int listening;
    int closing;
    int handles; /* listener + connections' handles not yet closed */
    nc_metrics *m;
    aconn *conns;
    int nconns;
    void (*done)(void *);
    void *done_user;
};

static const nc_logger *lg(nc_admin *a) {
    return nc_server__logger(a->srv);
}

int nc_admin_new(nc_admin **out, nc_server *srv, const char *addr) {
    *out = NULL;
    nc_admin *a = calloc(1, sizeof *a);
    if (!a) return NC_ENOMEM;
    a->srv = srv;
    a->loop = nc_server_loop(srv);
    /* host:port, [v6]:port; the host is required: the endpoint is bound only where the user says */
    const char *colon = strrchr(addr, ':');
    const char *h = addr, *he = colon;
    if (colon && addr[0] == '[') {
        h = addr + 1;
        he = colon > addr && colon[-1] == ']' ? colon - 1 : NULL;
    }
    char *endp = NULL;
    long port = colon ? strtol(colon + 1, &endp, 10) : -1;
    if (!colon || !he || he <= h || (size_t)(he - h) >= sizeof a->host || !colon[1] || *endp || port < 0 ||
        port > 65535) {
        nc_logf(nc_server__logger(srv), NC_LOG_ERROR, "Admin",
                "admin address \"%s\": expected host:port (e.g. 127.0.0.1:9464, [::1]:9464)", addr);
        free(a);
        return NC_EINVAL;
    }
    memcpy(a->host, h, (size_t)(he - h));
    a->port = (int)port;
    int r = nc_metrics_new(&a->m, NULL);
    if (r || (r = nc_metrics_watch_server(a->m, srv)) < 0) {
        nc_metrics_free(a->m);
        free(a);
        return r ? r : NC_ENOMEM;
    }
    *out = a;
    return 0;
}

int nc_admin_port(const nc_admin *a) {
    return a && a->listening ? a->bound_port : 0;
}

nc_metrics *nc_admin_metrics(nc_admin *a) {
    return a ? a->m : NULL;
}

/* ---- closing ---------------------------------------------------------------------------------------- */

static void handle_gone(nc_admin *a) {
    if (--a->handles == 0 && a->closing && a->done) {
        void (*fn)(void *) = a->done;
        a->done = NULL;
        fn(a->done_user);
    }
}

static void conn_handle_closed(uv_handle_t *h) {
    aconn *c = h->data;
    nc_admin *a = c->a;
    if (--c->handles == 0) {
        if (c->prev)
            c->prev->next = c->next;
        else
            a->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        a->nconns--;
        nc_buf_free(&c->out);
        free(c);
    }
    handle_gone(a);
}

static void conn_close(aconn *c) {
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    c->done = 1;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void listener_closed(uv_handle_t *h) {
    handle_gone(h->data);
}

void nc_admin_close(nc_admin *a, void (*done)(void *), void *user) {
    if (a->closing) return;
    a->closing = 1;
    a->done = done;
    a->done_user = user;
    if (a->listening) uv_close((uv_handle_t *)&a->listener, listener_closed);
    for (aconn *c = a->conns; c; c = c->next) conn_close(c);
    if (a->handles == 0 && done) {
        a->done = NULL;
        done(user);
    }
}

static void wait_tick(uv_timer_t *t) {
    nc_admin *a = t->data;
    if (atomic_load(a->wait_closed) < a->wait_want) return;
    uv_timer_stop(&a->wait);
    uv_close((uv_handle_t *)&a->wait, listener_closed); /* counted in a->handles: closing waits for it */
    nc_admin_close(a, a->done, a->done_user);
}

void nc_admin_close_after(nc_admin *a, _Atomic int *closed, int want, void (*done)(void *), void *user) {
    if (a->closing || a->waiting || atomic_load(closed) >= want) {
        nc_admin_close(a, done, user);
        return;
    }
    a->waiting = 1;
    a->done = done;
    a->done_user = user;
    a->wait_closed = closed;
    a->wait_want = want;
    uv_timer_init(a->loop, &a->wait);
    a->wait.data = a;
    a->handles++;
    uv_timer_start(&a->wait, wait_tick, 20, 20);
}

void nc_admin_free(nc_admin *a) {
    if (!a) return;
    if (a->waiting && !a->closing) {
        uv_timer_stop(&a->wait);
        uv_close((uv_handle_t *)&a->wait, listener_closed);
    }
    if (!a->closing) nc_admin_close(a, NULL, NULL);
    while (a->handles > 0 && uv_run(a->loop, UV_RUN_ONCE)) {
    }
    nc_metrics_free(a->m);
    free(a);
}

/* ---- responses -------------------------------------------------------------------------------------- */

static const char *reason(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

static void written(uv_write_t *w, int status) {
    (void)status;
    conn_close(w->data);
}

/* Sends status + body (not for HEAD) and closes after the last byte. */
static void respond(aconn *c, int status, const char *ctype, const char *body, size_t blen, int head_only) {
    c->done = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    nc_buf_reset(&c->out);
    int r = nc_buf_appendf(&c->out,
                           "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                           "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                           status, reason(status), ctype, blen, status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!r && !head_only && blen) r = nc_buf_append(&c->out, body, blen);
    if (r) {
        conn_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, written)) conn_close(c);
}

static void respond_text(aconn *c, int status, const char *text) {
    respond(c, status, "text/plain; charset=utf-8", text, strlen(text), 0);
}

/* The body NestJS terminus writes: {"status":"ok"|"error","info":{up indicators},"error":{down
 * indicators},"details":{all}}, one indicator here, named after the transport. */
static int health_body(nc_buf *b, const char *key, int up, const char *extra) {
    char ind[512];
    snprintf(ind, sizeof ind, "{\"%s\":{\"status\":\"%s\"%s%s}}", key, up ? "up" : "down", *extra ? "," : "",
             extra);
    return nc_buf_appendf(b, "{\"status\":\"%s\",\"info\":%s,\"error\":%s,\"details\":%s}",
                          up ? "ok" : "error", up ? ind : "{}", up ? "{}" : ind, ind);
}

static void serve(aconn *c, const nc_http_req *q) {
    nc_admin *a = c->a;
    int head_only = q->method_len == 4 && !memcmp(q->method, "HEAD", 4);
    int get = q->method_len == 3 && !memcmp(q->method, "GET", 3);
    if (!get && !head_only) {
        respond_text(c, 405, "method not allowed\n");
        return;
    }
#define IS(p) (q->path_len == sizeof(p) - 1 && !memcmp(q->path, p, sizeof(p) - 1))
    nc_buf body = NC_BUF_INIT;
    int status = 200, r = 0;
    const char *ctype = "application/json; charset=utf-8";
    if (IS("/metrics")) {
        nc_server_health h;
        nc_server_health_get(a->srv, &h);
        r = nc_prom_write(&body, a->m, &h);
        ctype = "text/plain; version=0.0.4; charset=utf-8";
    } else if (IS("/health/live")) {
        r = health_body(&body, "loop", 1, "");
    } else if (IS("/health/ready") || IS("/health")) {
        nc_server_health h;
        nc_server_health_get(a->srv, &h);
        char extra[256];
        snprintf(extra, sizeof extra, "\"listening\":%s,\"connected\":%s,\"draining\":%s,\"reconnects\":%llu",
                 h.listening ? "true" : "false", h.connected ? "true" : "false",
                 h.draining ? "true" : "false", (unsigned long long)h.reconnects);
        r = health_body(&body, nc_server__scheme(a->srv), h.ready, extra);
        status = h.ready ? 200 : 503;
    } else {
        respond_text(c, 404, "not found: /metrics, /health/live, /health/ready\n");
        return;
    }
#undef IS
    if (r)
        respond_text(c, 500, "out of memory\n");
    else
        respond(c, status, ctype, body.data, body.len, head_only);
    nc_buf_free(&body);
}

/* ---- connections ------------------------------------------------------------------------------------ */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    aconn *c = h->data;
    *buf = uv_buf_init(c->in + c->len, (unsigned)(sizeof c->in - c->len));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    aconn *c = s->data;
    if (c->done) return;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    nc_http_req q;
    int r = nc_http_req_parse(c->in, c->len, &q);
    if (r == 1) return; /* more to come (the buffer holds a whole head at most: full means 431) */
    if (r == 0)
        serve(c, &q);
    else
        respond_text(c, r, reason(r));
}

static void timeout_cb(uv_timer_t *t) {
    aconn *c = t->data;
    if (c->done) {
        conn_close(c); /* the response did not leave in time: a peer that does not read */
        return;
    }
    respond_text(c, 408, "request timeout\n");
    if (!uv_is_closing((uv_handle_t *)&c->timer)) uv_timer_start(&c->timer, timeout_cb, ADMIN_TIMEOUT_MS, 0);
}

static void on_connection(uv_stream_t *ls, int status) {
    nc_admin *a = ls->data;
    if (status < 0 || a->closing) return;
    aconn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->a = a;
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    a->handles += 2;
    c->next = a->conns;
    if (a->conns) a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) || a->nconns > ADMIN_CONNS) {
        conn_close(c); /* over the limit: accepted only to be closed, so the backlog drains */
        return;
    }
    uv_timer_start(&c->timer, timeout_cb, ADMIN_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) conn_close(c);
}

int nc_admin_listen(nc_admin *a) {
    if (a->listening) return 0;
    if (a->closing) return NC_ECLOSED;
    char why[256] = "";
    int r = nc_listen_tcp(a->loop, &a->listener, a->host, a->port, 0, on_connection, a, &a->bound_port, why,
                          sizeof why);
    if (r) {
        nc_logf(lg(a), NC_LOG_ERROR, "Admin", "cannot listen on %s:%d: %s", a->host, a->port, why);
        return r;
    }
    a->listening = 1;
    a->handles++;
    nc_logf(lg(a), NC_LOG_INFO, "Admin", "admin endpoint on %s:%d (/metrics, /health/live, /health/ready)",
            a->host, a->bound_port);
    return 0;
}
