/* The Redis client transport (spec redis.md §5–6): a publisher connection for requests and events, and a
 * subscriber connection for the reply channels `<route>.reply`. A request is published only once Redis
 * confirmed the subscription to its reply channel; subscriptions are counted per channel and dropped when
 * the last request on them ends.
 *
 * A lost connection: with retry_attempts = 0 (NestJS's default) the client disconnects, pending calls fail
 * with "Connection closed" and the next call connects again. With retry_attempts > 0 it reconnects (first
 * at once, then after retry_delay_ms, default 5,000, doubling up to a cap, with jitter: util/backoff.h;
 * retry_attempts per connection) while pending calls keep waiting; calls made meanwhile fail at once
 * with NC_ECONNLOST ("Connection lost. Trying to reconnect...", NestJS's words); the reply subscriptions
 * are restored; when the attempts run out the client disconnects as above. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client_internal.h"
#include "core/fail.h"
#include "transport/common/reconnect.h"
#include "transport/redis/redis.h"
#include "util/buf.h"
#include "util/map.h"

enum { C_IDLE, C_CONNECTING, C_CONNECTED, C_RECONNECTING, C_CLOSING };

typedef struct redis_client redis_client;

/* One reply channel. `held` keeps PUBLISH commands (channel, request id and body, each length-prefixed)
 * until the subscription is confirmed; a refused subscription fails them by their ids. */
typedef struct rsub {
    char *channel;
    size_t len;
    int refs; /* requests waiting for replies on it */
    redis_client *owner;
    int inflight;   /* SUBSCRIBE/UNSUBSCRIBE sent, not yet confirmed */
    int subscribed; /* as of the last confirmation */
    int refusing;   /* failing the held requests of a refused SUBSCRIBE: forget() must not settle */
    nc_buf held;
} rsub;

struct redis_client {
    nc_client *cli;
    nc_redis_target t;
    nc_redis_conn *sub, *pub;
    int sub_ready, pub_ready;
    int state;
    nc_backoff retry[2]; /* the reconnect policy of the pub [0] and sub [1] connections */
    int nopen;
    int end_err;
    char end_msg[320];
    nc_map subs; /* reply channel -> rsub */
};

typedef struct event_note {
    void (*accepted)(void *arg, int err);
    void (*refused)(void *arg, int err, const char *msg);
    void *arg;
    char route[];
} event_note;

/* A request's PUBLISH: if Redis refuses it, the request fails by its id with Redis's words. */
typedef struct request_note {
    redis_client *rc;
    char *route; /* in text, after id */
    char text[];
} request_note;

static const nc_redis_conn_cbs sub_cbs, pub_cbs;

static const nc_logger *LOG(redis_client *rc) {
    return nc_client__log(rc->cli);
}

/* ---- reply subscriptions ------------------------------------------------------------------------------ */

static void rsub_free(redis_client *rc, rsub *s) {
    nc_map_del(&rc->subs, s->channel, s->len);
    nc_buf_free(&s->held);
    free(s->channel);
    free(s);
}

static void sub_on_reply(void *arg, redisReply *r);
static void sub_off_reply(void *arg, redisReply *r);

static int sub_cmd(redis_client *rc, rsub *s, int on) {
    const char *argv[2] = {on ? "SUBSCRIBE" : "UNSUBSCRIBE", s->channel};
    size_t lens[2] = {on ? 9u : 11u, s->len};
    int r = rc->sub ? nc_redis_conn_cmd(rc->sub, on ? sub_on_reply : sub_off_reply, s, 2, argv, lens)
                    : NC_ECONNLOST;
    if (!r) s->inflight++;
    return r;
}

static void request_published(void *arg, redisReply *r) {
    request_note *n = arg;
    if (r && r->type == REDIS_REPLY_ERROR) {
        char msg[300];
        snprintf(msg, sizeof msg, "Redis refused PUBLISH to %s: %s", n->route, r->str);
        nc_logf(LOG(n->rc), NC_LOG_DEBUG, "Client", "%s", msg);
        nc_client__fail_call(n->rc->cli, n->text, nc_redis_refusal_err(r->str), msg);
    } else if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
        /* PUBLISH counts the subscribers that got it: none means no server handles the pattern, and no
         * reply can come. NestJS's ClientRedis ignores the count and waits (for its timeout, if any);
         * failing at once is what NATS's no-responders does. (Redis Cluster counts the node's own
         * subscribers only; nestc speaks to one Redis server.) */
        char msg[300];
        snprintf(msg, sizeof msg, "There are no subscribers listening to that message (\"%s\")", n->route);
        nc_client__fail_call(n->rc->cli, n->text, NC_ENOHANDLER, msg);
    }
    free(n);
}

/* PUBLISH of a request (id set: a refusal fails it) or of an event (cb given). */
static int publish(redis_client *rc, const char *ch, size_t chlen, const char *id, size_t idlen,
                   const char *body, size_t len, nc_redis_reply_fn cb, void *arg) {
    if (!rc->pub) return NC_ECONNLOST;
    request_note *n = NULL;
    if (id) {
        if (!(n = malloc(sizeof *n + idlen + chlen + 2))) return NC_ENOMEM;
        n->rc = rc;
        memcpy(n->text, id, idlen);
        n->text[idlen] = '\0';
        n->route = n->text + idlen + 1;
        memcpy(n->route, ch, chlen);
        n->route[chlen] = '\0';
        cb = request_published;
        arg = n;
    }
    const char *argv[3] = {"PUBLISH", ch, body};
    size_t lens[3] = {7, chlen, len};
    int r = nc_redis_conn_cmd(rc->pub, cb, arg, 3, argv, lens);
    if (r) free(n);
    return r;
}

static int hold_part(nc_buf *b, const char *p, size_t n) {
    return nc_buf_append(b, &n, sizeof n) || nc_buf_append(b, p, n) ? NC_ENOMEM : 0;
}

static int hold(rsub *s, const char *route, size_t rlen, const char *id, const char *body, size_t len) {
    size_t before = s->held.len;
    if (hold_part(&s->held, route, rlen) || hold_part(&s->held, id, strlen(id)) ||
        hold_part(&s->held, body, len)) {
        s->held.len = before;
        return NC_ENOMEM;
    }
    return 0;
}

/* The next held request from *at: route, id, body. Returns 0 at the end. */
static int held_next(const nc_buf *b, size_t *at, const char *p[3], size_t n[3]) {
    if (*at >= b->len) return 0;
    for (int i = 0; i < 3; i++) {
        memcpy(&n[i], b->data + *at, sizeof n[i]);
        p[i] = b->data + *at + sizeof n[i];
        *at += sizeof n[i] + n[i];
    }
    return 1;
}

static void flush_held(redis_client *rc, rsub *s) {
    size_t at = 0;
    const char *p[3];
    size_t n[3];
    while (held_next(&s->held, &at, p, n))
        if (publish(rc, p[0], n[0], p[1], n[1], p[2], n[2], NULL, NULL))
            nc_logf(LOG(rc), NC_LOG_ERROR, "Client", "a request on %.*s could not be published", (int)n[0],
                    p[0]);
    s->held.len = 0;
}

/* A confirmation settled the channel's state: act on what happened meanwhile. */
static void settle(redis_client *rc, rsub *s) {
    if (s->inflight) return;
    if (s->subscribed) {
        flush_held(rc, s);
        if (s->refs == 0) sub_cmd(rc, s, 0);
    } else if (s->refs > 0 || s->held.len) {
        sub_cmd(rc, s, 1);
    } else {
        rsub_free(rc, s);
    }
}

/* Redis refused the SUBSCRIBE (NOAUTH, an ACL NOPERM): the requests held for it fail now with Redis's
 * words instead of waiting for a reply that cannot come. It is not retried until a new request comes. */
static void refuse(redis_client *rc, rsub *s, const char *words) {
    char msg[300];
    snprintf(msg, sizeof msg, "Redis refused SUBSCRIBE %s: %s", s->channel, words);
    int err = nc_redis_refusal_err(words);
    nc_logf(LOG(rc), NC_LOG_DEBUG, "Client", "%s", msg);
    nc_buf held = s->held;
    s->held = (nc_buf)NC_BUF_INIT;
    s->subscribed = 0;
    s->refusing = 1; /* the calls' forget() must not subscribe again or free s meanwhile */
    size_t at = 0;
    const char *p[3];
    size_t n[3];
    char id[64];
    while (held_next(&held, &at, p, n)) {
        snprintf(id, sizeof id, "%.*s", (int)n[1], p[1]);
        nc_client__fail_call(rc->cli, id, err, msg);
    }
    nc_buf_free(&held);
    s->refusing = 0;
    if (s->inflight) return;
    if (s->held.len) /* requests made by the failed calls' callbacks */
        sub_cmd(rc, s, 1);
    else if (s->refs == 0)
        rsub_free(rc, s);
}

static void sub_on_reply(void *arg, redisReply *r) {
    rsub *s = arg;
    if (!r) return; /* the connection ended: a new one subscribes again (sub_ready) */
    redis_client *rc = s->owner;
    if (s->inflight) s->inflight--;
    if (r->type == REDIS_REPLY_ERROR) {
        refuse(rc, s, r->str);
        return;
    }
    s->subscribed = 1;
    settle(rc, s);
}

static void sub_off_reply(void *arg, redisReply *r) {
    rsub *s = arg;
    if (!r) return;
    redis_client *rc = s->owner;
    if (s->inflight) s->inflight--;
    if (r->type == REDIS_REPLY_ERROR) {
        /* still subscribed: keep it for the next request rather than asking again and again */
        nc_logf(LOG(rc), NC_LOG_WARN, "Client", "Redis refused UNSUBSCRIBE %s: %s", s->channel, r->str);
        if (!s->inflight) flush_held(rc, s);
        return;
    }
    s->subscribed = 0;
    settle(rc, s);
}

/* ---- connections -----------------------------------------------------------------------------------------
 */

static void both_ready(redis_client *rc) {
    if (!rc->sub_ready || !rc->pub_ready) return;
    nc_backoff_reset(&rc->retry[0]);
    nc_backoff_reset(&rc->retry[1]);
    if (rc->state == C_CONNECTING) {
        rc->state = C_CONNECTED;
        nc_client__connected(rc->cli);
    } else if (rc->state == C_RECONNECTING) {
        rc->state = C_CONNECTED;
        nc_logf(LOG(rc), NC_LOG_INFO, "Client", "reconnected to Redis at %s:%d", rc->t.b.host, rc->t.b.port);
        nc_client__status(rc->cli, "connected", 0);
    }
}

static void sub_ready(nc_redis_conn *c) {
    redis_client *rc = c->owner;
    rc->sub_ready = 1;
    /* after a reconnection: the reply channels of the calls still waiting */
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&rc->subs, &it, &k, &v)) {
        rsub *s = v;
        s->inflight = 0;
        s->subscribed = 0;
        if (s->refs > 0 || s->held.len) sub_cmd(rc, s, 1);
    }
    /* channels nobody needs any more */
    it = 0;
    while (nc_map_next(&rc->subs, &it, &k, &v)) {
        rsub *s = v;
        if (!s->inflight) {
            rsub_free(rc, s);
            it = 0;
        }
    }
    both_ready(rc);
}

static void pub_ready(nc_redis_conn *c) {
    redis_client *rc = c->owner;
    rc->pub_ready = 1;
    both_ready(rc);
}

static void sub_push(nc_redis_conn *c, redisReply *r) {
    redis_client *rc = c->owner;
    if (r->type == REDIS_REPLY_ERROR) { /* every command has a callback: this answers none */
        nc_logf(LOG(rc), NC_LOG_ERROR, "Client", "Redis sent an error no command asked for: %s", r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY) return;
    const char *kind = r->element[0]->str;
    redisReply *ch = r->element[1];
    if (ch->type != REDIS_REPLY_STRING) return;
    if (!strcmp(kind, "message")) {
        redisReply *body = r->element[2];
        if (body->type != REDIS_REPLY_STRING) return;
        char why[200];
        /* NestJS falls back to the raw string when a reply is not JSON: without an id it is ignored */
        if (nc_client__on_body(rc->cli, body->str, body->len, why, sizeof why) == NC_EPROTO)
            nc_logf(LOG(rc), NC_LOG_DEBUG, "Client", "ignored a reply on %s that is not JSON: %s", ch->str,
                    why);
        return;
    }
    /* (un)subscribe confirmations answer their commands (sub_on_reply, sub_off_reply) */
}

static void pub_push(nc_redis_conn *c, redisReply *r) {
    redis_client *rc = c->owner;
    if (r->type == REDIS_REPLY_ERROR)
        nc_logf(LOG(rc), NC_LOG_ERROR, "Client", "Redis refused a command: %s", r->str);
}

static nc_redis_conn *open_conn(redis_client *rc, int subscriber, int delay_ms) {
    nc_redis_conn *c = nc_redis_conn_new(nc_client__io(rc->cli), &rc->t, subscriber, delay_ms,
                                         subscriber ? &sub_cbs : &pub_cbs, LOG(rc), "Client",
                                         subscriber ? "sub" : "pub", rc);
    if (c) rc->nopen++;
    return c;
}

/* Both connections are gone: tell the core (pending calls fail, the next call connects again). */
static void all_closed(redis_client *rc) {
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&rc->subs, &it, &k, &v)) {
        rsub_free(rc, v);
        it = 0;
    }
    int err = rc->end_err;
    rc->state = C_IDLE;
    rc->end_err = 0;
    nc_client__disconnected(rc->cli, err, rc->end_msg);
}

static void shut_down(redis_client *rc, int err, const char *msg) {
    if (!rc->end_err) {
        rc->end_err = err ? err : NC_ECONNCLOSED;
        snprintf(rc->end_msg, sizeof rc->end_msg, "%s", msg && *msg ? msg : "Connection closed");
    }
    if (rc->state != C_CLOSING) rc->state = C_CLOSING;
    if (rc->sub) nc_redis_conn_close(rc->sub, 0);
    if (rc->pub) nc_redis_conn_close(rc->pub, 0);
    if (rc->nopen == 0) all_closed(rc);
}

static void conn_end(nc_redis_conn *c, int err, const char *msg) {
    redis_client *rc = c->owner;
    int sub = c == rc->sub;
    rc->nopen--;
    if (sub) {
        rc->sub = NULL;
        rc->sub_ready = 0;
    } else {
        rc->pub = NULL;
        rc->pub_ready = 0;
    }
    if (rc->state == C_CLOSING || rc->state == C_CONNECTING) {
        /* closing, or the first connection failed: end the other one too, then report */
        if (rc->state == C_CONNECTING && !rc->end_err) {
            rc->end_err = err ? err : NC_ECONNCLOSED;
            snprintf(rc->end_msg, sizeof rc->end_msg, "%s", msg && *msg ? msg : "Connection closed");
        }
        shut_down(rc, rc->end_err, rc->end_msg);
        return;
    }
    const nc_client_cfg *cfg = nc_client__cfg(rc->cli);
    char text[300];
    snprintf(text, sizeof text, "Redis %s connection to %s:%d lost: %s", sub ? "sub" : "pub", rc->t.b.host,
             rc->t.b.port, msg && *msg ? msg : "closed");
    nc_backoff *b = &rc->retry[sub];
    nc_log_level level = NC_LOG_WARN;
    char note[64];
    int delay = cfg->retry_attempts > 0 ? nc_reconnect_next(b, nc_client__io(rc->cli)->loop, NC_LOG_WARN,
                                                            &level, note, sizeof note)
                                        : -1;
    if (delay < 0) {
        nc_logf(LOG(rc), NC_LOG_ERROR, "Client", "%s%s", text,
                cfg->retry_attempts > 0 ? "; reconnection attempts exhausted" : "");
        nc_client__error(rc->cli, err ? err : NC_ECONNCLOSED, text);
        /* a reason that says what to fix (not Redis, TLS, credentials) fails the calls with it; a
         * connection that merely went away fails them as NestJS does */
        if (err == NC_EPROTO || err == NC_ETLS || err == NC_EAUTH || err == NC_ETOOBIG)
            shut_down(rc, err, text);
        else
            shut_down(rc, NC_ECONNCLOSED, "Connection closed");
        return;
    }
    nc_logf(LOG(rc), level, "Client", "%s; reconnecting in %d ms (attempt %d of %d)%s", text, delay,
            b->attempts, b->cfg.limit, note);
    if (rc->state != C_RECONNECTING) {
        rc->state = C_RECONNECTING;
        nc_client__status(rc->cli, "reconnecting", err);
    }
    nc_redis_conn *n = open_conn(rc, sub, delay);
    if (sub)
        rc->sub = n;
    else
        rc->pub = n;
    if (!n) shut_down(rc, NC_ENOMEM, "out of memory");
}

static const nc_redis_conn_cbs sub_cbs = {sub_ready, sub_push, conn_end};
static const nc_redis_conn_cbs pub_cbs = {pub_ready, pub_push, conn_end};

/* ---- ops -------------------------------------------------------------------------------------------------
 */

static int rc_create(nc_client *cli, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_USERINFO | NC_URL_PATH | NC_URL_CLIENT, why, sizeof why))
        return nc_fail(nc_client__log(cli), "Client", NC_EINVAL, "%s", why);
    redis_client *rc = calloc(1, sizeof *rc);
    if (!rc) return NC_ENOMEM;
    rc->cli = cli;
    const nc_client_cfg *cfg = nc_client__cfg(cli);
    int r = nc_redis_target_init(&rc->t, url, cfg->has_tls ? &cfg->tls : NULL, nc_client__log(cli), "Client");
    if (r) {
        free(rc);
        return r;
    }
    rc->t.max_reply = cfg->max_buffer_size;
    rc->t.b.max_queue = cfg->max_send_buffer_size;
    rc->t.b.connect_timeout_ms = cfg->connect_timeout_ms; /* each connection, reconnections included */
    int limit = cfg->retry_attempts > 0 ? cfg->retry_attempts : 0;
    nc_reconnect_init(&rc->retry[0], cfg->retry_delay_ms, 5000, limit, &rc->retry[0]);
    nc_reconnect_init(&rc->retry[1], cfg->retry_delay_ms, 5000, limit, &rc->retry[1]);
    *state = rc;
    return 0;
}

static int rc_connect(void *state) {
    redis_client *rc = state;
    rc->state = C_CONNECTING;
    rc->end_err = 0;
    nc_backoff_reset(&rc->retry[0]);
    nc_backoff_reset(&rc->retry[1]);
    rc->sub = open_conn(rc, 1, 0);
    rc->pub = open_conn(rc, 0, 0);
    if (!rc->sub || !rc->pub) {
        shut_down(rc, NC_ENOMEM, "out of memory");
        return 0; /* reported through disconnected() */
    }
    return 0;
}

static void event_done(void *arg, redisReply *r) {
    event_note *n = arg;
    if (r && r->type == REDIS_REPLY_ERROR && n->refused) {
        char msg[300];
        snprintf(msg, sizeof msg, "Redis refused PUBLISH to %s: %s", n->route, r->str);
        n->refused(n->arg, nc_redis_refusal_err(r->str), msg);
    } else {
        n->accepted(n->arg, !r ? NC_ECONNCLOSED : r->type == REDIS_REPLY_ERROR ? NC_EPROTO : 0);
    }
    free(n);
}

static int rc_send(void *state, nc_outbound *out) {
    redis_client *rc = state;
    if (rc->state == C_RECONNECTING) return NC_ECONNLOST;
    if (rc->state != C_CONNECTED) return NC_ECONNCLOSED;
    size_t rlen = strlen(out->route);
    if (!out->id) { /* an event: accepted once Redis answered the PUBLISH (as ioredis's callback) */
        event_note *n = NULL;
        if (out->accepted && !(n = malloc(sizeof *n + rlen + 1))) return NC_ENOMEM;
        if (n) {
            *n = (event_note){out->accepted, out->refused, out->arg};
            memcpy(n->route, out->route, rlen + 1);
        }
        int r = publish(rc, out->route, rlen, NULL, 0, out->body, out->len, n ? event_done : NULL, n);
        if (r) free(n);
        return r;
    }
    /* a request: its reply channel first */
    size_t clen = rlen + 6;
    char stackbuf[256];
    char *ch = clen < sizeof stackbuf ? stackbuf : malloc(clen + 1);
    if (!ch) return NC_ENOMEM;
    memcpy(ch, out->route, rlen);
    memcpy(ch + rlen, ".reply", 7);
    rsub *s = nc_map_get(&rc->subs, ch, clen);
    int r = 0;
    if (!s) {
        if (!(s = calloc(1, sizeof *s)) || !(s->channel = strdup(ch)) ||
            nc_map_put(&rc->subs, ch, clen, s, NULL)) {
            if (s) free(s->channel);
            free(s);
            r = NC_ENOMEM;
            goto out;
        }
        s->len = clen;
        s->owner = rc;
    }
    if (s->subscribed && !s->inflight) {
        r = publish(rc, out->route, rlen, out->id, strlen(out->id), out->body, out->len, NULL, NULL);
    } else {
        r = hold(s, out->route, rlen, out->id, out->body, out->len);
        if (!r && !s->inflight) r = sub_cmd(rc, s, 1);
    }
    if (!r) {
        s->refs++;
    } else if (!s->refs && !s->inflight && !s->held.len) {
        rsub_free(rc, s);
    }
out:
    if (ch != stackbuf) free(ch);
    return r;
}

static void rc_forget(void *state, const char *route, const char *id) {
    redis_client *rc = state;
    char stackbuf[256];
    size_t rlen = strlen(route), clen = rlen + 6;
    char *ch = clen < sizeof stackbuf ? stackbuf : malloc(clen + 1);
    if (!ch) return;
    memcpy(ch, route, rlen);
    memcpy(ch + rlen, ".reply", 7);
    rsub *s = nc_map_get(&rc->subs, ch, clen);
    if (ch != stackbuf) free(ch);
    if (!s || s->refs == 0) return;
    s->refs--;
    /* the last request on the channel: unsubscribe once its state is settled */
    if (s->refs == 0 && rc->state == C_CONNECTED && !s->refusing) settle(rc, s);
}

static void rc_close(void *state) {
    redis_client *rc = state;
    if (rc->state == C_IDLE) return;
    rc->end_err = NC_ECLOSED;
    snprintf(rc->end_msg, sizeof rc->end_msg, "Connection closed");
    rc->state = C_CLOSING;
    /* QUIT after what is queued (events already accepted locally still leave) */
    if (rc->pub) nc_redis_conn_close(rc->pub, 1);
    if (rc->sub) nc_redis_conn_close(rc->sub, 1);
    if (rc->nopen == 0) all_closed(rc);
}

static void rc_destroy(void *state) {
    redis_client *rc = state;
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&rc->subs, &it, &k, &v)) {
        rsub_free(rc, v);
        it = 0;
    }
    nc_map_free(&rc->subs);
    nc_redis_target_free(&rc->t);
    free(rc);
}

static const char *const schemes[] = {"redis", "rediss", NULL};

/* nc_redis_target_init tells rediss:// from redis:// by the URL */
const nc_client_transport nc_redis_client_transport = {
    .schemes = schemes,
    .options = nc_redis_options,
    .event_pattern_is_route = 0,
    .create = rc_create,
    .connect = rc_connect,
    .send = rc_send,
    .forget = rc_forget,
    .close = rc_close,
    .unwrap = NULL,
    .destroy = rc_destroy,
};
