/* The Redis server transport (spec redis.md §4): a subscriber connection that SUBSCRIBEs (PSUBSCRIBE with
 * ?wildcards=true) to the route of every handler, and a publisher connection for the replies, published on
 * `<concrete channel>.reply`. Messages are dispatched on the subscription they came through. After a lost
 * connection both are re-established (the first attempt at once, then after retry_delay_ms, default 1000,
 * doubling up to a cap, with jitter: util/backoff.h; retry_attempts > 0 caps the attempts of each
 * connection) and the subscriptions restored; replies produced meanwhile wait in the new connection's queue
 * (bounded by max_send_buffer_size). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/envelope.h"
#include "codec/frame.h"
#include "codec/json_build.h"
#include "codec/json_write.h"
#include "core/fail.h"
#include "core/server_transport.h"
#include "transport/redis/redis.h"
#include "transport/common/reconnect.h"
#include "util/map.h"
#include "util/utf8.h"

typedef struct redis_server redis_server;

/* The reply channel of the requests that arrived on one concrete channel; held by the core while a
 * request on it is unfinished. Without wildcards the channels are the routes, so sinks are kept; with
 * wildcards concrete channels are unbounded, so a sink goes with its last request. */
typedef struct rsink {
    redis_server *rs;
    char *reply_channel;
    size_t len;
    int refs;
    int cached;
} rsink;

/* A route to subscribe to: the argument of its SUBSCRIBE's reply callback. */
typedef struct rroute {
    redis_server *rs;
    const char *name; /* the routes map's key */
} rroute;

struct redis_server {
    nc_server *srv;
    const nc_server_cfg *cfg; /* nc_server__cfg(srv), kept: read per reply */
    nc_redis_target t;
    int wildcards;
    nc_redis_conn *sub, *pub;
    nc_map routes;      /* every route to subscribe to -> rroute */
    nc_map sinks;       /* concrete channel -> rsink (no wildcards) */
    size_t unconfirmed; /* subscriptions sent and not answered yet on the current sub connection */
    size_t nsubscribed; /* subscriptions confirmed on the current sub connection */
    /* refusals among the subscriptions answered since the last summary (logged once per batch) */
    size_t nrefused;
    char refused_names[160];
    char refusal[200];
    int refused_reported;    /* status "disconnected" reported for a refusal; cleared once connected */
    char reply_refusal[200]; /* the last refused reply's words: a new reason is logged once */
    int sub_ready, pub_ready, reported;
    nc_backoff retry[2]; /* the reconnect policy of the pub [0] and sub [1] connections */
    int stopping, closing, nopen, closed_reported;
    nc_buf enc;
};

static const nc_redis_conn_cbs sub_cbs, pub_cbs;

static const nc_logger *LOG(redis_server *rs) {
    return nc_server__log(rs->srv);
}

/* ---- replies --------------------------------------------------------------------------------------- */

static void sink_free(rsink *k) {
    free(k->reply_channel);
    free(k);
}

static void sink_retain(void *peer) {
    ((rsink *)peer)->refs++;
}

static void sink_release(void *peer) {
    rsink *k = peer;
    if (--k->refs == 0 && !k->cached) sink_free(k);
}

static int sink_reply(void *peer, const nc_reply_pkt *pkt) {
    rsink *k = peer;
    redis_server *rs = k->rs;
    if (!rs || rs->closing || !rs->pub) return NC_ECLOSED;
    const nc_server_cfg *cfg = rs->cfg;
    rs->enc.len = 0;
    int r = nc_envelope_write_reply(&rs->enc, pkt, cfg->has_codec ? &cfg->codec : NULL);
    if (r) return r;
    const char *argv[3] = {"PUBLISH", k->reply_channel, rs->enc.data};
    size_t lens[3] = {7, k->len, rs->enc.len};
    r = nc_redis_conn_cmd(rs->pub, NULL, NULL, 3, argv, lens);
    if (r == NC_ESTALLED)
        nc_logf(LOG(rs), NC_LOG_ERROR, "Server",
                "reply to %s dropped: more than max_send_buffer_size bytes wait for the Redis connection",
                k->reply_channel);
    return r;
}

/* the peer is the broker: no address; always writable (the replies go to the broker connection, whose
 * buffer the transport bounds itself), so no pending bytes to report */
static const nc_peer_ops sink_ops = {sink_reply, sink_retain, sink_release, NULL, NULL, NULL};

static rsink *sink_for(redis_server *rs, const char *channel) {
    size_t n = strlen(channel);
    rsink *k = rs->wildcards ? NULL : nc_map_get(&rs->sinks, channel, n);
    if (k) return k;
    if (!(k = calloc(1, sizeof *k)) || !(k->reply_channel = malloc(n + 7))) {
        free(k);
        return NULL;
    }
    k->rs = rs;
    memcpy(k->reply_channel, channel, n);
    memcpy(k->reply_channel + n, ".reply", 7);
    k->len = n + 6;
    if (!rs->wildcards && !nc_map_put(&rs->sinks, channel, n, k, NULL)) k->cached = 1;
    return k;
}

/* ---- incoming messages ----------------------------------------------------------------------------- */

static void on_message(redis_server *rs, const char *route, const char *channel, const redisReply *body) {
    if (rs->stopping) return;
    rsink *k = sink_for(rs, channel);
    if (!k) {
        nc_logf(LOG(rs), NC_LOG_ERROR, "Server", "out of memory: message on %s dropped", channel);
        return;
    }
    nc_inbound in = {0};
    in.channel = channel;
    in.route = route;
    in.peer = k;
    in.peer_ops = &sink_ops;
    in.flags = NC_IN_JSON_OR_STRING; /* NestJS JSON.parse()s the body, else takes the raw string */
    k->refs++;                       /* hold it across the dispatch (a request may finish inside) */
    char why[200];
    why[0] = '\0';
    /* Node's Redis client decodes the body as UTF-8 before JSON.parse, ill-formed bytes as U+FFFD: so do
     * we, so a message NestJS answers is answered (there is no length prefix here to disagree with). */
    const char *text = body->str;
    size_t len = body->len;
    json_t *decoded = NULL;
    if (nc_utf8_validate(text, len, NULL)) {
        decoded = nc_json_string_js(text, len, 0);
        text = decoded ? json_string_value(decoded) : NULL;
        len = decoded ? json_string_length(decoded) : 0;
    }
    if (!text)
        nc_logf(LOG(rs), NC_LOG_ERROR, "Server", "out of memory: message on %s dropped", channel);
    else
        nc_server__dispatch(rs->srv, text, len, &in, why, sizeof why);
    json_decref(decoded);
    sink_release(k);
}

/* ---- subscriptions ----------------------------------------------------------------------------------- */

/* Connected once both connections are up and every subscription is answered, unless Redis refused them
 * all: a server that can serve nothing is not connected. */
static void report_connected(redis_server *rs) {
    if (rs->reported || !rs->sub_ready || !rs->pub_ready || rs->unconfirmed || rs->stopping) return;
    if (rs->routes.len && !rs->nsubscribed) return;
    rs->reported = 1;
    nc_backoff_reset(&rs->retry[0]);
    nc_backoff_reset(&rs->retry[1]);
    rs->refused_reported = 0;
    nc_server__status(rs->srv, "connected", 0);
}

/* A refusal the server cannot get past by itself (NOAUTH, NOPERM, a wrong password): status
 * "disconnected" with the error, once until it is connected again. It keeps trying (an ACL can change). */
static void report_refused(redis_server *rs, int err) {
    if (rs->refused_reported || rs->stopping) return;
    rs->refused_reported = 1;
    rs->reported = 0;
    nc_server__status(rs->srv, "disconnected", err);
}

/* Every subscription sent is answered: one log line for the refusals among them, however many. */
static void summarise_refusals(redis_server *rs) {
    if (rs->unconfirmed || !rs->nrefused) return;
    nc_logf(LOG(rs), NC_LOG_ERROR, "Server",
            "Redis refused %zu of %zu subscription(s): %s; their handlers get no messages: %s", rs->nrefused,
            rs->routes.len, rs->refusal, rs->refused_names);
    int err = nc_redis_refusal_err(rs->refusal);
    rs->nrefused = 0;
    rs->refused_names[0] = '\0';
    if (!rs->nsubscribed) report_refused(rs, err);
}

static void sub_reply(void *arg, redisReply *r) {
    rroute *rt = arg;
    redis_server *rs = rt->rs;
    if (!r) return; /* the connection ended: the next one subscribes again */
    if (rs->unconfirmed) rs->unconfirmed--;
    if (r->type == REDIS_REPLY_ERROR) {
        if (!rs->nrefused++) snprintf(rs->refusal, sizeof rs->refusal, "%s", r->str);
        size_t n = strlen(rs->refused_names), room = sizeof rs->refused_names - n;
        if (room > 5) snprintf(rs->refused_names + n, room, "%s%s", n ? ", " : "", rt->name);
        if (strlen(rs->refused_names) == sizeof rs->refused_names - 1) /* cut: say so */
            memcpy(rs->refused_names + sizeof rs->refused_names - 4, "...", 4);
    } else {
        rs->nsubscribed++;
    }
    summarise_refusals(rs);
    report_connected(rs);
}

static void subscribe(redis_server *rs, rroute *rt) {
    const char *argv[2] = {rs->wildcards ? "PSUBSCRIBE" : "SUBSCRIBE", rt->name};
    size_t lens[2] = {strlen(argv[0]), strlen(rt->name)};
    if (nc_redis_conn_cmd(rs->sub, sub_reply, rt, 2, argv, lens) == 0) rs->unconfirmed++;
}

static void sub_ready(nc_redis_conn *c) {
    redis_server *rs = c->owner;
    rs->sub_ready = 1;
    rs->unconfirmed = 0;
    rs->nsubscribed = 0;
    rs->nrefused = 0;
    rs->refused_names[0] = '\0';
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&rs->routes, &it, &k, &v)) subscribe(rs, v);
    report_connected(rs);
}

static void sub_push(nc_redis_conn *c, redisReply *r) {
    redis_server *rs = c->owner;
    if (r->type == REDIS_REPLY_ERROR) { /* every command has a callback: this answers none */
        nc_logf(LOG(rs), NC_LOG_ERROR, "Server", "Redis sent an error no command asked for: %s", r->str);
        return;
    }
    const char *kind = r->element[0]->str;
    if (!strcmp(kind, "message") && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[2]->type == REDIS_REPLY_STRING) {
        on_message(rs, r->element[1]->str, r->element[1]->str, r->element[2]);
    } else if (!strcmp(kind, "pmessage") && r->elements >= 4 && r->element[1]->type == REDIS_REPLY_STRING &&
               r->element[2]->type == REDIS_REPLY_STRING && r->element[3]->type == REDIS_REPLY_STRING) {
        on_message(rs, r->element[1]->str, r->element[2]->str, r->element[3]);
    }
    /* (p)subscribe confirmations answer their commands (sub_reply) */
}

static void pub_ready(nc_redis_conn *c) {
    redis_server *rs = c->owner;
    rs->pub_ready = 1;
    report_connected(rs);
}

/* A refused reply (NOPERM on the reply channel): one line per new reason, not one per reply. */
static void pub_push(nc_redis_conn *c, redisReply *r) {
    redis_server *rs = c->owner;
    if (r->type != REDIS_REPLY_ERROR) return;
    int fresh = strncmp(rs->reply_refusal, r->str, sizeof rs->reply_refusal - 1) != 0;
    if (fresh) snprintf(rs->reply_refusal, sizeof rs->reply_refusal, "%s", r->str);
    nc_logf(LOG(rs), fresh ? NC_LOG_ERROR : NC_LOG_DEBUG, "Server", "Redis refused a reply: %s%s", r->str,
            fresh ? " (the same refusal again is logged at debug level)" : "");
}

/* ---- connection loss and closing ------------------------------------------------------------------- */

static void maybe_closed(redis_server *rs) {
    if (!rs->closing || rs->nopen || rs->closed_reported) return;
    rs->closed_reported = 1;
    nc_server__closed(rs->srv);
}

static nc_redis_conn *open_conn(redis_server *rs, int subscriber, int delay_ms) {
    nc_redis_conn *c = nc_redis_conn_new(nc_server__io(rs->srv), &rs->t, subscriber, delay_ms,
                                         subscriber ? &sub_cbs : &pub_cbs, LOG(rs), "Server",
                                         subscriber ? "sub" : "pub", rs);
    if (c) rs->nopen++;
    return c;
}

static void conn_end(nc_redis_conn *c, int err, const char *msg) {
    redis_server *rs = c->owner;
    int sub = c == rs->sub;
    rs->nopen--;
    if (sub) {
        rs->sub = NULL;
        rs->sub_ready = 0;
    } else {
        rs->pub = NULL;
        rs->pub_ready = 0;
    }
    if (rs->closing || (sub && rs->stopping)) {
        maybe_closed(rs);
        return;
    }
    nc_backoff *b = &rs->retry[sub];
    nc_log_level level = NC_LOG_ERROR;
    char note[64];
    int delay = nc_reconnect_next(b, nc_server__io(rs->srv)->loop, NC_LOG_ERROR, &level, note, sizeof note);
    if (delay < 0) {
        nc_logf(LOG(rs), NC_LOG_ERROR, "Server",
                "Redis %s connection to %s:%d lost (%s); giving up after %d attempts", sub ? "sub" : "pub",
                rs->t.b.host, rs->t.b.port, msg ? msg : "closed", b->cfg.limit);
        if (rs->reported) nc_server__status(rs->srv, "disconnected", err ? err : NC_ECONNCLOSED);
        rs->reported = 0;
        return;
    }
    nc_logf(LOG(rs), level, "Server", "Redis %s connection to %s:%d lost (%s); reconnecting in %d ms%s",
            sub ? "sub" : "pub", rs->t.b.host, rs->t.b.port, msg ? msg : "closed", delay, note);
    if (rs->reported) nc_server__status(rs->srv, "reconnecting", err);
    rs->reported = 0;
    nc_redis_conn *n = open_conn(rs, sub, delay);
    if (sub)
        rs->sub = n;
    else
        rs->pub = n;
    /* a wrong password will not right itself: say so (the CLI then gives up), and keep trying */
    if (err == NC_EAUTH) report_refused(rs, err);
}

static const nc_redis_conn_cbs sub_cbs = {sub_ready, sub_push, conn_end};
static const nc_redis_conn_cbs pub_cbs = {pub_ready, pub_push, conn_end};

/* ---- ops ------------------------------------------------------------------------------------------ */

static int rs_create(nc_server *srv, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_USERINFO | NC_URL_PATH, why, sizeof why))
        return nc_fail(nc_server__log(srv), "Server", NC_EINVAL, "%s", why);
    redis_server *rs = calloc(1, sizeof *rs);
    if (!rs) return NC_ENOMEM;
    rs->srv = srv;
    rs->cfg = nc_server__cfg(srv);
    const nc_server_cfg *cfg = nc_server__cfg(srv);
    int r = nc_redis_target_init(&rs->t, url, cfg->has_tls ? &cfg->tls : NULL, nc_server__log(srv), "Server");
    if (r) {
        free(rs);
        return r;
    }
    rs->wildcards = nc_opts_bool(nc_server__opts(srv), "wildcards");
    rs->t.max_reply = cfg->max_buffer_size;
    rs->t.b.max_queue = cfg->max_send_buffer_size;
    rs->t.b.connect_timeout_ms = 5000;
    int limit = cfg->retry_attempts > 0 ? cfg->retry_attempts : 0;
    nc_reconnect_init(&rs->retry[0], cfg->retry_delay_ms, 1000, limit, &rs->retry[0]);
    nc_reconnect_init(&rs->retry[1], cfg->retry_delay_ms, 1000, limit, &rs->retry[1]);
    *state = rs;
    return 0;
}

static int rs_listen(void *state) {
    redis_server *rs = state;
    rs->sub = open_conn(rs, 1, 0);
    rs->pub = open_conn(rs, 0, 0);
    return rs->sub && rs->pub ? 0 : NC_ENOMEM;
}

static int rs_route_added(void *state, const char *route, const nc_optset *opts) {
    redis_server *rs = state;
    size_t n = strlen(route);
    if (nc_map_get(&rs->routes, route, n)) return 0;
    rroute *rt = malloc(sizeof *rt);
    if (!rt) return NC_ENOMEM;
    rt->rs = rs;
    if (nc_map_put(&rs->routes, route, n, rt, &rt->name)) {
        free(rt);
        return NC_ENOMEM;
    }
    if (rs->sub_ready) subscribe(rs, rt);
    return 0;
}

static void rs_stop_accepting(void *state) {
    redis_server *rs = state;
    rs->stopping = 1;
    /* no new messages: QUIT the subscriber connection */
    if (rs->sub) nc_redis_conn_close(rs->sub, 1);
}

static void rs_drain(void *state) {
    redis_server *rs = state;
    rs->closing = 1; /* no more replies; those already queued leave before QUIT */
    if (rs->pub) nc_redis_conn_close(rs->pub, 1);
    if (rs->sub) nc_redis_conn_close(rs->sub, 0);
    maybe_closed(rs);
}

static void rs_close(void *state) {
    redis_server *rs = state;
    rs->closing = 1; /* the deadline passed: a broker that does not take our replies is not waited for */
    if (rs->pub) nc_redis_conn_close(rs->pub, 0);
    if (rs->sub) nc_redis_conn_close(rs->sub, 0);
    maybe_closed(rs);
}

static void rs_destroy(void *state) {
    redis_server *rs = state;
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&rs->sinks, &it, &k, &v)) {
        rsink *s = v;
        s->cached = 0;
        s->rs = NULL;
        if (s->refs == 0) sink_free(s);
    }
    nc_map_free(&rs->sinks);
    it = 0;
    while (nc_map_next(&rs->routes, &it, &k, &v)) free(v);
    nc_map_free(&rs->routes);
    nc_buf_free(&rs->enc);
    nc_redis_target_free(&rs->t);
    free(rs);
}

static const char *const schemes[] = {"redis", "rediss", NULL};

/* nc_redis_target_init tells rediss:// from redis:// by the URL */
const nc_server_transport nc_redis_server_transport = {
    .schemes = schemes,
    .options = nc_redis_options,
    .supports_workers = 0,
    .reports_connected = 1,
    .create = rs_create,
    .listen = rs_listen,
    .route_added = rs_route_added,
    .stop_accepting = rs_stop_accepting,
    .close = rs_close,
    .destroy = rs_destroy,
    .port = NULL,
    .drain = rs_drain,
};
