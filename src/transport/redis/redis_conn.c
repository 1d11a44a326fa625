#include "transport/redis/redis_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "nestc/error.h"

enum { RC_WAITING, RC_RESOLVING, RC_CONNECTING, RC_HANDSHAKE, RC_READY, RC_ENDED };

#define CONN_OF(s) ((nc_redis_conn *)((char *)(s)-offsetof(nc_redis_conn, st)))

static void maybe_free(nc_redis_conn *c) {
    if (!c->ended || c->handles_open || c->resolving) return;
    if (c->rd) redisReaderFree(c->rd);
    nc_buf_free(&c->queue);
    free(c->fifo);
    free(c);
}

static void handle_closed(uv_handle_t *h) {
    nc_redis_conn *c = h->data;
    c->handles_open--;
    maybe_free(c);
}

static void stream_closed(nc_stream *s) {
    nc_redis_conn *c = CONN_OF(s);
    c->handles_open--;
    maybe_free(c);
}

/* ---- command replies in order ------------------------------------------------------------------ */

static int fifo_push(nc_redis_conn *c, nc_redis_reply_fn cb, void *arg) {
    if (c->flen == c->fcap) {
        size_t ncap = c->fcap ? c->fcap * 2 : 16;
        void *p = malloc(ncap * sizeof *c->fifo);
        if (!p) return NC_ENOMEM;
        for (size_t i = 0; i < c->flen; i++)
            memcpy((char *)p + i * sizeof *c->fifo, &c->fifo[(c->fhead + i) % c->fcap], sizeof *c->fifo);
        free(c->fifo);
        c->fifo = p;
        c->fcap = ncap;
        c->fhead = 0;
    }
    size_t at = (c->fhead + c->flen) % c->fcap;
    c->fifo[at].cb = cb;
    c->fifo[at].arg = arg;
    c->flen++;
    return 0;
}

static int fifo_pop(nc_redis_conn *c, nc_redis_reply_fn *cb, void **arg) {
    if (!c->flen) return 0;
    *cb = c->fifo[c->fhead].cb;
    *arg = c->fifo[c->fhead].arg;
    c->fhead = (c->fhead + 1) % c->fcap;
    c->flen--;
    return 1;
}

/* ---- ending ------------------------------------------------------------------------------------- */

/* Reports the end once: waiting commands get NULL, then the owner hears why. */
static void finish(nc_redis_conn *c, int err, const char *msg) {
    if (c->ended) return;
    c->ended = 1;
    c->state = RC_ENDED;
    uv_timer_stop(&c->timer);
    nc_redis_reply_fn cb;
    void *arg;
    while (fifo_pop(c, &cb, &arg))
        if (cb) cb(arg, NULL);
    if (c->cbs->on_end) c->cbs->on_end(c, err, msg);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
}

static void st_end(nc_stream *s, int err, const char *msg) {
    nc_redis_conn *c = CONN_OF(s);
    if (c->end_err) {
        err = c->end_err;
        msg = c->end_msg;
    }
    finish(c, err, msg);
}

/* Closes the stream because of something we found (bad reply, failed AUTH): on_end reports it. */
static void fail(nc_redis_conn *c, int err, const char *fmt, const char *detail) {
    if (c->ended) return;
    c->end_err = err;
    snprintf(c->end_msg, sizeof c->end_msg, fmt, detail);
    nc_logf(c->log, NC_LOG_ERROR, c->component, "redis %s connection to %s:%d: %s", c->role, c->t->host,
            c->t->port, c->end_msg);
    nc_stream_close(&c->st, err, c->end_msg);
}

/* ---- writing commands ---------------------------------------------------------------------------- */

/* RESP: *<argc>\r\n then $<len>\r\n<bytes>\r\n per argument. Binary-safe. */
static int append_cmd(nc_buf *b, int argc, const char *const *argv, const size_t *lens) {
    char head[32];
    int n = snprintf(head, sizeof head, "*%d\r\n", argc);
    if (nc_buf_append(b, head, (size_t)n)) return NC_ENOMEM;
    for (int i = 0; i < argc; i++) {
        n = snprintf(head, sizeof head, "$%zu\r\n", lens[i]);
        if (nc_buf_append(b, head, (size_t)n) || nc_buf_append(b, argv[i], lens[i]) ||
            nc_buf_append(b, "\r\n", 2))
            return NC_ENOMEM;
    }
    return 0;
}

int nc_redis_conn_ready(const nc_redis_conn *c) {
    return c && c->state == RC_READY;
}

int nc_redis_conn_cmd(nc_redis_conn *c, nc_redis_reply_fn cb, void *arg, int argc, const char *const *argv,
                      const size_t *lens) {
    if (c->ended || c->state == RC_ENDED) return NC_ECLOSED;
    size_t waiting = c->queue.len + (c->state == RC_READY ? (size_t)nc_stream_unsent(&c->st) : 0);
    if (c->t->max_queue > 0 && waiting > (size_t)c->t->max_queue) return NC_ESTALLED;
    int r;
    if (c->state == RC_READY) {
        /* one contiguous RESP text, then one copy into the stream's buffer */
        nc_buf tmp = NC_BUF_INIT;
        r = append_cmd(&tmp, argc, argv, lens);
        if (!r) r = nc_stream_write(&c->st, tmp.data, tmp.len);
        nc_buf_free(&tmp);
        if (r) return r;
    } else if ((r = append_cmd(&c->queue, argc, argv, lens))) {
        return r;
    }
    if (cb && (r = fifo_push(c, cb, arg))) return r;
    return 0;
}

/* ---- reading replies ----------------------------------------------------------------------------- */

static int is_push(const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    const char *k = r->element[0]->str;
    return !strcmp(k, "message") || !strcmp(k, "pmessage") || !strcmp(k, "subscribe") ||
           !strcmp(k, "psubscribe") || !strcmp(k, "unsubscribe") || !strcmp(k, "punsubscribe");
}

static void become_ready(nc_redis_conn *c) {
    c->state = RC_READY;
    uv_timer_stop(&c->timer);
    if (c->queue.len) {
        int r = nc_stream_write(&c->st, c->queue.data, c->queue.len);
        nc_buf_free(&c->queue);
        if (r) {
            fail(c, r, "%s", "cannot queue the commands written while connecting");
            return;
        }
    }
    if (c->cbs->on_ready) c->cbs->on_ready(c);
}

static void handshake_reply(void *arg, redisReply *r) {
    nc_redis_conn *c = arg;
    if (!r) return;
    if (r->type == REDIS_REPLY_ERROR) {
        fail(c, NC_EAUTH, "the server refused the handshake: %s", r->str);
        return;
    }
    if (--c->handshake_left == 0 && c->state == RC_HANDSHAKE) become_ready(c);
}

static void deliver(nc_redis_conn *c, redisReply *r) {
    nc_redis_reply_fn cb;
    void *arg;
    if (c->subscriber && is_push(r)) {
        if (c->cbs->on_push) c->cbs->on_push(c, r);
    } else if (fifo_pop(c, &cb, &arg)) {
        if (cb) cb(arg, r);
    } else if (r->type == REDIS_REPLY_ERROR && c->cbs->on_push) {
        c->cbs->on_push(c, r); /* the error answer of a command sent without a callback */
    }
}

static void st_data(nc_stream *s, const char *data, size_t len) {
    nc_redis_conn *c = CONN_OF(s);
    if (c->ended) return;
    if (redisReaderFeed(c->rd, data, len) != REDIS_OK) {
        fail(c, NC_ENOMEM, "%s", "out of memory");
        return;
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->rd, &reply) != REDIS_OK) {
            fail(c, NC_EPROTO, "protocol error: %s", c->rd->errstr);
            return;
        }
        if (!reply) break;
        deliver(c, reply);
        freeReplyObject(reply);
        if (c->ended) return;
    }
    /* what is buffered now belongs to one incomplete reply */
    if (c->t->max_reply > 0 && c->rd->len - c->rd->pos > (size_t)c->t->max_reply)
        fail(c, NC_ETOOBIG, "a reply exceeds the %s byte limit (max_buffer_size)", "configured");
}

static void st_open(nc_stream *s, int err, const char *msg) {
    nc_redis_conn *c = CONN_OF(s);
    if (err) return; /* st_end reports it */
    c->state = RC_HANDSHAKE;
    /* AUTH and SELECT go before anything queued; their replies come first */
    const char *argv[3];
    size_t lens[3];
    int n = 0;
    if (c->t->password) {
        argv[n] = "AUTH", lens[n++] = 4;
        if (c->t->user && *c->t->user) argv[n] = c->t->user, lens[n] = strlen(c->t->user), n++;
        argv[n] = c->t->password, lens[n] = strlen(c->t->password), n++;
        nc_buf b = NC_BUF_INIT;
        if (append_cmd(&b, n, argv, lens) || nc_stream_write(&c->st, b.data, b.len)) {
            nc_buf_free(&b);
            fail(c, NC_ENOMEM, "%s", "out of memory");
            return;
        }
        nc_buf_free(&b);
        c->handshake_left++;
    }
    if (c->t->db > 0) {
        char db[16];
        int dl = snprintf(db, sizeof db, "%d", c->t->db);
        const char *av[2] = {"SELECT", db};
        size_t ln[2] = {6, (size_t)dl};
        nc_buf b = NC_BUF_INIT;
        if (append_cmd(&b, 2, av, ln) || nc_stream_write(&c->st, b.data, b.len)) {
            nc_buf_free(&b);
            fail(c, NC_ENOMEM, "%s", "out of memory");
            return;
        }
        nc_buf_free(&b);
        c->handshake_left++;
    }
    if (!c->handshake_left) {
        become_ready(c);
        return;
    }
    /* the handshake replies come before the replies of anything queued: put them at the FIFO's front */
    size_t queued = c->flen;
    for (size_t i = 0; i < c->handshake_left; i++) fifo_push(c, handshake_reply, c);
    for (size_t i = 0; i < queued; i++) { /* rotate the queued entries behind the handshake ones */
        nc_redis_reply_fn cb = NULL;
        void *arg = NULL;
        fifo_pop(c, &cb, &arg);
        fifo_push(c, cb, arg);
    }
}

static const nc_stream_cbs stream_cbs = {st_open, st_data, NULL, st_end, stream_closed};

/* ---- connecting ----------------------------------------------------------------------------------- */

static void on_timeout(uv_timer_t *t) {
    nc_redis_conn *c = t->data;
    char msg[160];
    snprintf(msg, sizeof msg, "connecting to %s:%d timed out after %d ms", c->t->host, c->t->port,
             c->t->connect_timeout_ms);
    c->end_err = NC_ETIMEDOUT;
    snprintf(c->end_msg, sizeof c->end_msg, "%s", msg);
    if (c->resolving) {
        c->cancel_resolve = 1;
        uv_cancel((uv_req_t *)&c->gai);
        return;
    }
    nc_stream_close(&c->st, NC_ETIMEDOUT, c->end_msg);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    nc_redis_conn *c = req->data;
    c->resolving = 0;
    if (c->cancel_resolve || c->ended) {
        if (res) uv_freeaddrinfo(res);
        if (!c->ended) finish(c, c->end_err ? c->end_err : 0, c->end_err ? c->end_msg : "closed");
        maybe_free(c);
        return;
    }
    if (status < 0 || !res) {
        char msg[200];
        snprintf(msg, sizeof msg, "getaddrinfo %s %s", uv_err_name(status), c->t->host);
        if (res) uv_freeaddrinfo(res);
        finish(c, NC_ERESOLVE, msg);
        return;
    }
    int r = nc_stream_init(&c->st, c->io, &stream_cbs, c->t->ssl, 0, c->t->verify_host);
    c->handles_open++; /* the stream's handle exists from here on (closed through nc_stream_close) */
    c->state = RC_CONNECTING;
    if (!r) r = nc_stream_connect(&c->st, res->ai_addr);
    uv_freeaddrinfo(res);
    if (r) nc_stream_close(&c->st, r, "connect failed");
}

static void start_resolve(nc_redis_conn *c) {
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    char port[16];
    snprintf(port, sizeof port, "%d", c->t->port);
    c->gai.data = c;
    c->state = RC_RESOLVING;
    if (c->t->connect_timeout_ms > 0)
        uv_timer_start(&c->timer, on_timeout, (uint64_t)c->t->connect_timeout_ms, 0);
    int r = uv_getaddrinfo(c->io->loop, &c->gai, on_resolved, c->t->host, port, &hints);
    if (r) {
        char msg[160];
        snprintf(msg, sizeof msg, "getaddrinfo %s", uv_strerror(r));
        finish(c, nc_err_from_uv(r), msg);
        return;
    }
    c->resolving = 1;
}

static void on_delay(uv_timer_t *t) {
    start_resolve(t->data);
}

nc_redis_conn *nc_redis_conn_new(nc_ioctx *io, const nc_redis_target *t, int subscriber, int delay_ms,
                                 const nc_redis_conn_cbs *cbs, const nc_logger *log, const char *component,
                                 const char *role, void *owner) {
    nc_redis_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->rd = redisReaderCreate();
    if (!c->rd) {
        free(c);
        return NULL;
    }
    c->io = io;
    c->t = t;
    c->subscriber = subscriber;
    c->cbs = cbs;
    c->log = log;
    c->component = component;
    c->role = role;
    c->owner = owner;
    uv_timer_init(io->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    if (delay_ms > 0) {
        c->state = RC_WAITING;
        uv_timer_start(&c->timer, on_delay, (uint64_t)delay_ms, 0);
    } else {
        start_resolve(c);
    }
    return c;
}

void nc_redis_conn_close(nc_redis_conn *c, int graceful) {
    if (c->ended) return;
    switch (c->state) {
    case RC_WAITING:
        finish(c, 0, "closed");
        maybe_free(c);
        return;
    case RC_RESOLVING:
        c->cancel_resolve = 1;
        uv_cancel((uv_req_t *)&c->gai);
        return; /* on_resolved finishes */
    case RC_READY:
        if (graceful) {
            static const char *const quit[1] = {"QUIT"};
            static const size_t qlen[1] = {4};
            nc_redis_conn_cmd(c, NULL, NULL, 1, quit, qlen);
            nc_stream_end(&c->st);
            return;
        }
        /* fallthrough */
    default:
        nc_stream_close(&c->st, 0, "closed");
    }
}
