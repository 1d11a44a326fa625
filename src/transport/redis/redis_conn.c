#include "transport/redis/redis_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "nestc/error.h"

enum { RC_DIALING, RC_HANDSHAKE, RC_READY };

/* the dial (and its stream) is the first member */
#define CONN_OF(p) ((nc_redis_conn *)(p))

static void conn_free(nc_dial *d) {
    nc_redis_conn *c = CONN_OF(d);
    if (c->rd) redisReaderFree(c->rd);
    nc_buf_free(&c->queue);
    free(c->fifo);
    free(c);
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

/* The end (once): waiting commands get NULL, then the owner hears why. */
static void conn_ended(nc_dial *d, int err, const char *msg) {
    nc_redis_conn *c = CONN_OF(d);
    nc_redis_reply_fn cb;
    void *arg;
    while (fifo_pop(c, &cb, &arg))
        if (cb) cb(arg, NULL);
    if (c->cbs->on_end) c->cbs->on_end(c, err, msg);
}

static void st_end(nc_stream *s, int err, const char *msg) {
    nc_redis_conn *c = CONN_OF(s);
    nc_dial_reason(&c->d, &err, &msg);
    nc_dial_end(&c->d, err, msg);
}

/* Closes the stream because of something we found (bad reply, failed AUTH): on_end reports it. */
static void fail(nc_redis_conn *c, int err, const char *fmt, const char *detail) {
    char msg[200];
    snprintf(msg, sizeof msg, fmt, detail);
    if (nc_dial_fail(&c->d, err, msg))
        nc_logf(c->log, NC_LOG_ERROR, c->component, "redis %s connection to %s:%d: %s", c->role, c->t->b.host,
                c->t->b.port, msg);
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
    if (c->d.ended) return NC_ECLOSED;
    size_t waiting = c->queue.len + (c->state == RC_READY ? (size_t)nc_stream_unsent(&c->d.st) : 0);
    if (c->t->b.max_queue > 0 && waiting > (size_t)c->t->b.max_queue) return NC_ESTALLED;
    /* a slot even without a callback, taken first: each reply must meet its own command */
    int r = fifo_push(c, cb, arg);
    if (r) return r;
    if (c->state == RC_READY) {
        /* one contiguous RESP text, then one copy into the stream's buffer */
        nc_buf tmp = NC_BUF_INIT;
        r = append_cmd(&tmp, argc, argv, lens);
        if (!r) r = nc_stream_write(&c->d.st, tmp.data, tmp.len);
        nc_buf_free(&tmp);
    } else {
        size_t before = c->queue.len;
        if ((r = append_cmd(&c->queue, argc, argv, lens))) c->queue.len = before;
    }
    if (r) c->flen--; /* not sent: its slot goes too (it is the last one) */
    return r;
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
    nc_dial_connected(&c->d);
    if (c->queue.len) {
        int r = nc_stream_write(&c->d.st, c->queue.data, c->queue.len);
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

/* Every command has a slot in the FIFO, so each reply (an error included) meets its own command. On a
 * subscriber connection messages are pushes with no command; a (p)(un)subscribe confirmation is the
 * answer of the command that asked for it (one channel per command). */
static void deliver(nc_redis_conn *c, redisReply *r) {
    nc_redis_reply_fn cb = NULL;
    void *arg = NULL;
    if (c->subscriber && is_push(r) &&
        (!strcmp(r->element[0]->str, "message") || !strcmp(r->element[0]->str, "pmessage"))) {
        if (c->cbs->on_push) c->cbs->on_push(c, r);
        return;
    }
    fifo_pop(c, &cb, &arg);
    if (cb)
        cb(arg, r);
    else if (c->cbs->on_push && (r->type == REDIS_REPLY_ERROR || (c->subscriber && is_push(r))))
        c->cbs->on_push(c, r); /* the answer of a command sent without a callback, or unasked for */
}

static void st_data(nc_stream *s, const char *data, size_t len) {
    nc_redis_conn *c = CONN_OF(s);
    if (c->d.ended) return;
    if (redisReaderFeed(c->rd, data, len) != REDIS_OK) {
        fail(c, NC_ENOMEM, "%s", "out of memory");
        return;
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->rd, &reply) != REDIS_OK) {
            /* hiredis's words name the byte, not the peer: an HTTP server or a NestJS TCP port says
             * "got "H" as reply type byte" */
            fail(c, NC_EPROTO, "protocol error: %s (is it a Redis server?)", c->rd->errstr);
            return;
        }
        if (!reply) break;
        deliver(c, reply);
        freeReplyObject(reply);
        if (c->d.ended) return;
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
    if (c->t->b.password) {
        argv[n] = "AUTH", lens[n++] = 4;
        if (c->t->b.user && *c->t->b.user) argv[n] = c->t->b.user, lens[n] = strlen(c->t->b.user), n++;
        argv[n] = c->t->b.password, lens[n] = strlen(c->t->b.password), n++;
        nc_buf b = NC_BUF_INIT;
        if (append_cmd(&b, n, argv, lens) || nc_stream_write(&c->d.st, b.data, b.len)) {
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
        if (append_cmd(&b, 2, av, ln) || nc_stream_write(&c->d.st, b.data, b.len)) {
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

static const nc_stream_cbs stream_cbs = {st_open, st_data, NULL, st_end, nc_dial_stream_closed, NULL};
static const nc_dial_ops dial_ops = {conn_ended, conn_free, NULL};

/* ---- connecting ----------------------------------------------------------------------------------- */

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
    c->t = t;
    c->subscriber = subscriber;
    c->cbs = cbs;
    c->log = log;
    c->component = component;
    c->role = role;
    c->owner = owner;
    nc_dial_start(&c->d, io, t->b.host, t->b.port, t->b.ssl, t->b.verify_host, t->b.connect_timeout_ms,
                  delay_ms, &stream_cbs, &dial_ops);
    return c;
}

void nc_redis_conn_close(nc_redis_conn *c, int graceful) {
    if (nc_dial_close_early(&c->d)) return; /* ended, or no stream yet */
    if (graceful && c->state == RC_READY) {
        static const char *const quit[1] = {"QUIT"};
        static const size_t qlen[1] = {4};
        nc_redis_conn_cmd(c, NULL, NULL, 1, quit, qlen);
        nc_stream_end(&c->d.st);
        return;
    }
    nc_stream_close(&c->d.st, 0, "closed");
}
