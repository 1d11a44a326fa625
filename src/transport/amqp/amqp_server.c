/* The RabbitMQ server transport, default mode (spec rmq.md §2.1, §4): one connection, one channel. Once
 * it is open: queue.declare of the work queue with NestJS's arguments (durable, exclusive, autoDelete;
 * skipped with noAssert), basic.qos (prefetchCount, isGlobalPrefetchCount), basic.consume (noAck,
 * consumerTag); "connected" on consume-ok. Each delivery is dispatched on the pattern of its JSON body
 * (NestJS: JSON.parse, else the raw string), with the AMQP properties and delivery fields in the context
 * and the headers table as headers. Every reply packet is a basic.publish to the default exchange with the
 * received replyTo as routing key and the received correlationId, its body without `id` (NestJS; the
 * no-handler reply keeps it, as NestJS's does). With noAck false every delivery is settled by the core's
 * settle op: basic.ack, basic.nack (requeue or not) or basic.reject; unknown patterns are nacked without
 * requeue, as NestJS does. With `exchange` (or wildcards) the exchange is declared and the queue bound (a
 * fanout with the empty key); maxDeliveries turns the last allowed nack with requeue into a reject and
 * rejects a delivery counted past it before dispatch (the count: a quorum queue's x-delivery-count). A lost
 * connection is re-established with the shared policy
 * (transport/common/reconnect.h), the queue declared and consumed again; tokens of the lost connection
 * are ignored (the broker delivers those messages again). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/envelope.h"
#include "core/fail.h"
#include "core/route.h"
#include "core/server_transport.h"
#include "transport/amqp/amqp.h"
#include "transport/common/reconnect.h"
#include "util/u64map.h"

#define MAX_HEADERS 64
#define ABOVE_MAX 4096 /* tags settled out of order kept for the ack floor (see amqp_server) */

typedef struct amqp_server amqp_server;

/* Where the replies of one request go, held by the core while the request is unfinished. */
typedef struct asink {
    amqp_server *as;
    int refs;
    char *corr; /* correlationId, NUL-terminated (may be empty) */
    size_t corr_len;
    int has_corr;
    char reply_to[];
} asink;

enum { S_IDLE, S_DECLARING, S_EXCHANGE, S_QOS, S_CONSUMING, S_SERVING };

struct amqp_server {
    nc_server *srv;
    const nc_server_cfg *cfg;
    nc_amqp_target t;
    nc_amqp_conn *conn;
    int phase;
    int reported, stopping, closing, nopen, closed_reported, setup_reported;
    char *queue_name; /* the queue consumed (the server-named one when `queue` is empty) */
    char *ctag;       /* the consumer tag of the current consumer */
    nc_backoff retry;
    uint64_t ready_at;
    uint32_t gen;
    /* a settle call made during the dispatch of this delivery tag is held until the outcome is known, so
     * an unknown pattern is nacked (NestJS) rather than rejected */
    uint64_t dispatching;
    int held_how; /* -1: none */
    nc_buf enc;
    /* wildcards: every handler route, each a binding key of the queue on the exchange */
    char **routes;
    size_t nroutes;
    /* maxDeliveries: the routes whose handlers set another limit than the server's, the smallest limit
     * of all (deliveries counted below it are not looked at), and the delivery tags of this connection
     * on their last allowed delivery (a nack with requeue of those becomes a reject) */
    char **lim_routes;
    int *lims;
    size_t nlims;
    int min_limit;
    nc_u64map last;
    /* Acknowledgements of one loop iteration batched (noAck=false): every delivery tag up to `floor` is
     * settled (written, or acked in the pending run); `above` holds tags past floor + 1 settled out of
     * order. An ack of floor + 1 is not written at once but joins the pending run: ack_n acks, the
     * highest ack_hi, written as ONE basic.ack (multiple=true when more than one) by `ackfl` right before
     * the connection's next write. multiple=true acks every unsettled tag up to ack_hi, and every tag up
     * to ack_hi is settled by then, so it never acks a delivery the handlers still hold. */
    uint64_t floor, ack_hi;
    uint32_t ack_n;
    nc_u64map above;
    nc_flushable ackfl;
};

static const nc_amqp_conn_cbs conn_cbs;
static const char *wildcard_route(amqp_server *as, const char *rk);

static const nc_logger *LOG(amqp_server *as) {
    return nc_server__log(as->srv);
}

/* ---- replies -------------------------------------------------------------------------------------- */

static void sink_retain(void *peer) {
    ((asink *)peer)->refs++;
}

static void sink_release(void *peer) {
    asink *k = peer;
    if (--k->refs == 0) free(k);
}

/* NestJS's reply body: `{"response":…,"isDisposed":true}` / `{"err":…,"isDisposed":true}`, without id;
 * the no-handler packet (and anything through a codec) as the envelope writer makes it. */
static int write_reply(amqp_server *as, const nc_reply_pkt *pkt) {
    const nc_server_cfg *cfg = as->cfg;
    as->enc.len = 0;
    if (pkt->no_handler || cfg->has_codec)
        return nc_envelope_write_reply(&as->enc, pkt, cfg->has_codec ? &cfg->codec : NULL);
    int r = nc_buf_append_char(&as->enc, '{');
    const char *sep = "";
    if (pkt->response) {
        r |= nc_buf_append_str(&as->enc, "\"response\":");
        r |= nc_buf_append(&as->enc, pkt->response, pkt->response_len);
        sep = ",";
    } else if (pkt->err) {
        r |= nc_buf_append_str(&as->enc, "\"err\":");
        r |= nc_buf_append(&as->enc, pkt->err, pkt->err_len);
        sep = ",";
    }
    if (pkt->disposed) {
        r |= nc_buf_append_str(&as->enc, sep);
        r |= nc_buf_append_str(&as->enc, "\"isDisposed\":true");
    }
    r |= nc_buf_append_char(&as->enc, '}');
    return r ? NC_ENOMEM : 0;
}

static int sink_reply(void *peer, const nc_reply_pkt *pkt) {
    asink *k = peer;
    amqp_server *as = k->as;
    if (as->closing || !nc_amqp_conn_ready(as->conn)) return NC_ECLOSED;
    int r = write_reply(as, pkt);
    if (r) return r;
    json_t *hdrs = json_object();
    for (size_t i = 0; hdrs && i < pkt->nheaders; i++) {
        char name[256];
        size_t n = pkt->headers[i].name_len < 255 ? pkt->headers[i].name_len : 255;
        memcpy(name, pkt->headers[i].name, n);
        name[n] = '\0';
        json_object_set_new(hdrs, name, json_stringn(pkt->headers[i].value, pkt->headers[i].value_len));
    }
    nc_amqp_props props = {.flags = NC_AMQP_P_HEADERS, .headers = hdrs};
    if (k->has_corr) {
        props.flags |= NC_AMQP_P_CORRELATION_ID;
        props.correlation_id = (nc_amqp_span){k->corr, k->corr_len};
    }
    r = nc_amqp_conn_publish(as->conn, "", k->reply_to, &props, as->enc.data, as->enc.len, NULL);
    json_decref(hdrs);
    if (r == NC_ESTALLED)
        nc_logf(LOG(as), NC_LOG_ERROR, "Server",
                "reply to %s dropped: more than max_send_buffer_size bytes wait for the AMQP connection",
                k->reply_to);
    return r;
}

/* the peer is the broker: no address; always writable (the replies go to the broker connection, whose
 * buffer the transport bounds itself), so no pending bytes to report */
static const nc_peer_ops sink_ops = {sink_reply, sink_retain, sink_release, NULL, NULL, NULL};

/* ---- settling -------------------------------------------------------------------------------------- */

/* maxDeliveries: a delivery on its last allowed attempt is not requeued but rejected (dead-lettered where
 * the queue has a dead-letter exchange). */
static int final_how(amqp_server *as, uint64_t tag, int how) {
    if (!as->last.len || !nc_u64map_del(&as->last, tag) || how != NC_SETTLE_NACK_REQUEUE) return how;
    nc_logf(LOG(as), NC_LOG_WARN, "Server",
            "a message on %s reached maxDeliveries: rejected instead of requeued (dead-lettered where the "
            "queue has a dead-letter exchange)",
            as->queue_name);
    return NC_SETTLE_REJECT;
}

static void write_settle(amqp_server *as, uint64_t tag, int how, int multiple) {
    nc_amqp_method m = {.delivery_tag = tag};
    switch (how) {
    case NC_SETTLE_ACK:
        m.id = NC_AMQP_BASIC_ACK;
        if (multiple) m.flags = NC_AMQP_F_MULTIPLE;
        break;
    case NC_SETTLE_NACK_REQUEUE:
        m.id = NC_AMQP_BASIC_NACK;
        m.flags = NC_AMQP_F_REQUEUE;
        break;
    case NC_SETTLE_REJECT:
        m.id = NC_AMQP_BASIC_REJECT;
        break;
    default: /* NC_SETTLE_NACK */
        m.id = NC_AMQP_BASIC_NACK;
        break;
    }
    nc_amqp_conn_method(as->conn, &m);
}

/* The pending run of acks, as one basic.ack (see `floor` in amqp_server). */
static void flush_acks(nc_flushable *f) {
    amqp_server *as = (amqp_server *)((char *)f - offsetof(amqp_server, ackfl));
    if (!as->ack_n) return;
    if (nc_amqp_conn_ready(as->conn)) write_settle(as, as->ack_hi, NC_SETTLE_ACK, as->ack_n > 1);
    as->ack_n = 0;
}

/* Before the connection closes (or another replaces it): the pending acks go first, or are dropped. */
static void acks_now(amqp_server *as) {
    nc_ioctx_unmark(nc_server__io(as->srv), &as->ackfl);
    flush_acks(&as->ackfl);
}

static void acks_reset(amqp_server *as) {
    nc_ioctx_unmark(nc_server__io(as->srv), &as->ackfl);
    as->ack_n = 0;
    as->floor = 0;
    nc_u64map_free(&as->above);
}

static void send_settle(amqp_server *as, uint64_t tag, int how) {
    if (tag == as->floor + 1) {
        as->floor = tag;
        while (as->above.len && nc_u64map_del(&as->above, as->floor + 1)) as->floor++;
        if (how == NC_SETTLE_ACK) {
            as->ack_hi = tag;
            as->ack_n++;
            /* first in the iteration's flush: the ack shares the write of the replies before it */
            nc_ioctx_mark_first(nc_server__io(as->srv), &as->ackfl);
            return;
        }
    } else if (tag > as->floor) {
        /* out of order: written at once; remembered so that the floor can pass it. A delivery never
         * settled would make this grow with every later one: past ABOVE_MAX (or out of memory) the floor
         * stays where it is and the acks after it are written one by one, as without batching. */
        if (as->above.len < ABOVE_MAX && !nc_u64map_get(&as->above, tag)) nc_u64map_put(&as->above, tag, as);
    }
    write_settle(as, tag, how, 0);
}

/* A token of a connection since replaced is ignored: the broker requeued that message when the
 * connection ended and delivers it again. */
static void as_settle(void *state, const nc_delivery *d, nc_settle how) {
    amqp_server *as = state;
    if (d->conn != as->gen || !nc_amqp_conn_ready(as->conn)) return;
    if (as->dispatching && d->tag == as->dispatching) {
        as->held_how = (int)how;
        return;
    }
    send_settle(as, d->tag, final_how(as, d->tag, (int)how));
}

/* ---- incoming messages ------------------------------------------------------------------------------ */

#define SPAN_STR(sp) ((sp).p ? (sp).p : "")

/* This delivery's number, the first being 1: a quorum queue's x-delivery-count header (the earlier
 * deliveries that were returned) + 1; without it, 1 when the broker says it was never delivered before;
 * else unknown (-1: a classic queue does not count its redeliveries). */
static int64_t delivery_count(const nc_amqp_props *p, const nc_amqp_method *m) {
    json_t *x =
        (p->flags & NC_AMQP_P_HEADERS) && p->headers ? json_object_get(p->headers, "x-delivery-count") : NULL;
    if (json_is_integer(x) && json_integer_value(x) >= 0) return json_integer_value(x) + 1;
    return (m->flags & NC_AMQP_F_REDELIVERED) ? -1 : 1;
}

/* A classic queue's retry loop (dead-lettered out of this queue, back after a delay): 1 + the times
 * x-death says the message left this queue, for a delivery that is not a redelivery; else 0. Context only:
 * maxDeliveries does not act on it (its reject would go round the same loop). */
static int64_t death_count(const nc_amqp_props *p, const nc_amqp_method *m, const char *queue) {
    json_t *d = (p->flags & NC_AMQP_P_HEADERS) && p->headers ? json_object_get(p->headers, "x-death") : NULL;
    if (!json_is_array(d) || (m->flags & NC_AMQP_F_REDELIVERED)) return 0;
    int64_t n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(d, i, e) {
        json_t *q = json_object_get(e, "queue"), *c = json_object_get(e, "count");
        if (json_is_string(q) && !strcmp(json_string_value(q), queue) && json_is_integer(c))
            n += json_integer_value(c);
    }
    return n ? n + 1 : 0;
}

/* The maxDeliveries of the handler a delivery goes to (its route's, else the server's). Only asked for a
 * delivery counted at least min_limit, so the body's pattern is read again only then. */
static int limit_for(amqp_server *as, const char *body, size_t len, const char *rk) {
    if (!as->nlims) return as->t.max_deliveries;
    char *route = NULL;
    const char *r = NULL;
    if (as->t.wildcards) {
        r = wildcard_route(as, rk);
        if (!r) r = rk;
    } else {
        json_t *root = json_loadb(body, len, JSON_DECODE_ANY, NULL);
        json_t *pat = json_is_object(root) ? json_object_get(root, "pattern") : NULL;
        if (pat && !nc_route_from_value(pat, &route)) r = route;
        json_decref(root);
    }
    int limit = as->t.max_deliveries;
    for (size_t i = 0; r && i < as->nlims; i++)
        if (!strcmp(as->lim_routes[i], r)) limit = as->lims[i];
    free(route);
    return limit;
}

/* The rarer properties (NC_CTX_PRIORITY ... appended to the public keys), into out (room for 7); called only
 * when one is there, so a NestJS message (headers, delivery mode, correlation id, reply-to) does not pay
 * for the checks. Returns how many. */
static size_t more_props(const nc_amqp_props *p, nc_ctx_item *out) {
    static const struct {
        uint16_t flag;
        int key;
        size_t off;
    } strs[] = {
        {NC_AMQP_P_EXPIRATION, NC_CTX_EXPIRATION, offsetof(nc_amqp_props, expiration)},
        {NC_AMQP_P_TYPE, NC_CTX_TYPE, offsetof(nc_amqp_props, type)},
        {NC_AMQP_P_APP_ID, NC_CTX_APP_ID, offsetof(nc_amqp_props, app_id)},
        {NC_AMQP_P_USER_ID, NC_CTX_USER_ID, offsetof(nc_amqp_props, user_id)},
        {NC_AMQP_P_CONTENT_TYPE, NC_CTX_CONTENT_TYPE, offsetof(nc_amqp_props, content_type)},
        {NC_AMQP_P_CONTENT_ENCODING, NC_CTX_CONTENT_ENCODING, offsetof(nc_amqp_props, content_encoding)},
    };
    size_t n = 0;
    if (p->flags & NC_AMQP_P_PRIORITY) out[n++] = (nc_ctx_item){NC_CTX_PRIORITY, NULL, 0, p->priority};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        if (!(p->flags & strs[i].flag)) continue;
        const nc_amqp_span *sp = (const nc_amqp_span *)((const char *)p + strs[i].off);
        out[n++] = (nc_ctx_item){strs[i].key, SPAN_STR(*sp), sp->n, 0};
    }
    return n;
}

static void on_deliver(amqp_server *as, const nc_amqp_event *ev) {
    const nc_amqp_props *p = &ev->props;
    const nc_amqp_method *m = &ev->m;
    asink *k = NULL;
    if ((p->flags & NC_AMQP_P_REPLY_TO) && p->reply_to.n) {
        size_t cn = p->flags & NC_AMQP_P_CORRELATION_ID ? p->correlation_id.n : 0;
        k = malloc(sizeof *k + p->reply_to.n + 1 + cn + 1);
        if (k) {
            k->as = as;
            k->refs = 1; /* held across the dispatch */
            memcpy(k->reply_to, p->reply_to.p, p->reply_to.n);
            k->reply_to[p->reply_to.n] = '\0';
            k->corr = k->reply_to + p->reply_to.n + 1;
            k->has_corr = (p->flags & NC_AMQP_P_CORRELATION_ID) != 0;
            k->corr_len = cn;
            if (cn) memcpy(k->corr, p->correlation_id.p, cn);
            k->corr[cn] = '\0';
        }
    }
    nc_ctx_item ctx[20];
    size_t nctx = 0;
    if (p->flags & NC_AMQP_P_CORRELATION_ID)
        ctx[nctx++] =
            (nc_ctx_item){NC_CTX_CORRELATION_ID, SPAN_STR(p->correlation_id), p->correlation_id.n, 0};
    if (p->flags & NC_AMQP_P_REPLY_TO)
        ctx[nctx++] = (nc_ctx_item){NC_CTX_REPLY_TO, SPAN_STR(p->reply_to), p->reply_to.n, 0};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_EXCHANGE, SPAN_STR(m->exchange), m->exchange.n, 0};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_ROUTING_KEY, SPAN_STR(m->routing_key), m->routing_key.n, 0};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_CONSUMER_TAG, SPAN_STR(m->consumer_tag), m->consumer_tag.n, 0};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_DELIVERY_TAG, NULL, 0, (int64_t)m->delivery_tag};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_REDELIVERED, NULL, 0, (m->flags & NC_AMQP_F_REDELIVERED) ? 1 : 0};
    if (p->flags & NC_AMQP_P_MESSAGE_ID)
        ctx[nctx++] = (nc_ctx_item){NC_CTX_MESSAGE_ID, SPAN_STR(p->message_id), p->message_id.n, 0};
    if (p->flags & NC_AMQP_P_TIMESTAMP)
        ctx[nctx++] = (nc_ctx_item){NC_CTX_TIMESTAMP_MS, NULL, 0, (int64_t)p->timestamp * 1000};
    int64_t count = delivery_count(p, m), dead = count == 1 ? death_count(p, m, as->queue_name) : 0;
    if (count > 0) ctx[nctx++] = (nc_ctx_item){NC_CTX_DELIVERY_COUNT, NULL, 0, dead ? dead : count};
    if (p->flags & NC_AMQP_P_DELIVERY_MODE)
        ctx[nctx++] = (nc_ctx_item){NC_CTX_DELIVERY_MODE, NULL, 0, p->delivery_mode};
    if (p->flags & (NC_AMQP_P_PRIORITY | NC_AMQP_P_EXPIRATION | NC_AMQP_P_TYPE | NC_AMQP_P_APP_ID |
                    NC_AMQP_P_USER_ID | NC_AMQP_P_CONTENT_TYPE | NC_AMQP_P_CONTENT_ENCODING))
        nctx += more_props(p, ctx + nctx);
    nc_header hdrs[MAX_HEADERS];
    char *store[MAX_HEADERS];
    size_t nh = p->headers ? nc_amqp_headers(p->headers, hdrs, MAX_HEADERS, store) : 0;
    char rk[256]; /* a short string: at most 255 bytes */
    memcpy(rk, SPAN_STR(m->routing_key), m->routing_key.n);
    rk[m->routing_key.n] = '\0';
    if (!as->t.no_ack && as->min_limit && count >= as->min_limit) {
        int limit = limit_for(as, ev->body.p ? ev->body.p : "", ev->body.n, rk);
        if (limit && count > limit) { /* returned unsettled past its limit (a crash): not dispatched again */
            nc_logf(LOG(as), NC_LOG_WARN, "Server",
                    "a message on %s delivered %lld times (maxDeliveries %d): rejected without dispatch "
                    "(dead-lettered where the queue has a dead-letter exchange)",
                    as->queue_name, (long long)count, limit);
            send_settle(as, m->delivery_tag, NC_SETTLE_REJECT);
            for (size_t i = 0; i < nh; i++) free(store[i]);
            if (k) sink_release(k);
            return;
        }
        if (limit && count == limit && nc_u64map_put(&as->last, m->delivery_tag, as))
            nc_logf(LOG(as), NC_LOG_ERROR, "Server", "out of memory: maxDeliveries not applied to a message");
    }
    nc_inbound in = {0};
    in.channel = rk; /* the routing key it arrived with: the queue's name in default mode (DESIGN §5b) */
    in.route = as->t.wildcards ? wildcard_route(as, rk) : NULL; /* else the pattern of the body */
    in.headers = (p->flags & NC_AMQP_P_HEADERS) ? hdrs : NULL;
    in.nheaders = nh;
    in.ctx = ctx;
    in.nctx = nctx;
    in.peer = k;
    in.peer_ops = k ? &sink_ops : NULL;
    in.flags = NC_IN_JSON_OR_STRING; /* NestJS: JSON.parse, else the raw string */
    if (!as->t.no_ack) in.delivery = (nc_delivery){.tag = m->delivery_tag, .conn = as->gen, .set = 1};
    nc_dispatch_outcome oc = NC_DISPATCH_FAILED;
    in.outcome = &oc;
    as->dispatching = as->t.no_ack ? 0 : m->delivery_tag;
    as->held_how = -1;
    char why[200];
    why[0] = '\0';
    if (nc_server__dispatch(as->srv, ev->body.p ? ev->body.p : "", ev->body.n, &in, why, sizeof why) ==
        NC_EPROTO)
        nc_logf(LOG(as), NC_LOG_ERROR, "Server", "message on %s ignored: %s", as->queue_name, why);
    as->dispatching = 0;
    if (as->held_how >= 0 && nc_amqp_conn_ready(as->conn)) {
        int how = as->held_how;
        if (oc == NC_DISPATCH_NO_HANDLER) {
            how = NC_SETTLE_NACK; /* NestJS: basic.nack requeue=false for unknown patterns */
            nc_logf(LOG(as), NC_LOG_WARN, "Server",
                    "An unsupported message was received. It has been negative "
                    "acknowledged, so it will not be re-delivered.");
        }
        send_settle(as, m->delivery_tag,
                    oc == NC_DISPATCH_NO_HANDLER ? how : final_how(as, m->delivery_tag, how));
    }
    as->held_how = -1;
    for (size_t i = 0; i < nh; i++) free(store[i]);
    if (k) sink_release(k);
}

/* ---- topology and connection ------------------------------------------------------------------------ */

static void report_connected(amqp_server *as) {
    if (as->reported || as->stopping) return;
    as->reported = 1;
    as->setup_reported = 0;
    nc_server__status(as->srv, "connected", 0);
}

/* AMQP topic matching (spec rmq.md §2.2): `*` is one dot-separated word, `#` zero or more. */
static int topic_match(const char *pat, const char *key) {
    if (!*pat) return !*key;
    const char *pe = strchr(pat, '.'), *ke = strchr(key, '.');
    size_t pl = pe ? (size_t)(pe - pat) : strlen(pat), kl = ke ? (size_t)(ke - key) : strlen(key);
    if (pl == 1 && pat[0] == '#') {
        if (!pe) return 1;
        for (const char *k = key;; k = strchr(k, '.') + 1) { /* # takes zero or more words */
            if (topic_match(pe + 1, k)) return 1;
            if (!strchr(k, '.')) return 0;
        }
    }
    if (!*key && !(pl == 0 && !pe)) return 0;
    if (!(pl == 1 && pat[0] == '*') && (pl != kl || memcmp(pat, key, pl))) return 0;
    if (!pe || !ke) return !pe ? !ke : !strcmp(pe + 1, "#"); /* "a.#" matches "a" */
    return topic_match(pe + 1, ke + 1);
}

/* With wildcards: the route a routing key dispatches on when it is no handler's route itself, the first
 * wildcard route matching it (NestJS: exact route first, then the first matching wildcard); else NULL
 * (the body's pattern decides). */
static const char *wildcard_route(amqp_server *as, const char *rk) {
    for (size_t i = 0; i < as->nroutes; i++)
        if (!strcmp(as->routes[i], rk)) return NULL;
    for (size_t i = 0; i < as->nroutes; i++)
        if ((strchr(as->routes[i], '*') || strchr(as->routes[i], '#')) && topic_match(as->routes[i], rk))
            return as->routes[i];
    return NULL;
}

static void send_bind(amqp_server *as, const char *key) {
    nc_amqp_method m = {.id = NC_AMQP_QUEUE_BIND};
    m.queue = (nc_amqp_span){as->queue_name, strlen(as->queue_name)};
    m.exchange = (nc_amqp_span){as->t.exchange, strlen(as->t.exchange)};
    m.routing_key = (nc_amqp_span){key, strlen(key) > 255 ? 255 : strlen(key)};
    nc_amqp_conn_method(as->conn, &m);
}

static void step_qos(amqp_server *as);

/* NestJS: the exchange declared durable, then the queue bound with every route (and routingKey) */
static void step_exchange(amqp_server *as) {
    if (!as->t.wildcards && !as->t.exchange_given) { /* NestJS: `if (exchange || wildcards)` */
        step_qos(as);
        return;
    }
    nc_amqp_method m = {.id = NC_AMQP_EXCHANGE_DECLARE, .flags = NC_AMQP_F_DURABLE};
    m.table = as->t.exchange_args;
    m.exchange = (nc_amqp_span){as->t.exchange, strlen(as->t.exchange)};
    m.type = (nc_amqp_span){as->t.exchange_type, strlen(as->t.exchange_type)};
    as->phase = S_EXCHANGE;
    nc_amqp_conn_method(as->conn, &m);
}

static void step_consume(amqp_server *as) {
    nc_amqp_method m = {.id = NC_AMQP_BASIC_CONSUME};
    m.queue = (nc_amqp_span){as->queue_name, strlen(as->queue_name)};
    if (as->t.consumer_tag) m.consumer_tag = (nc_amqp_span){as->t.consumer_tag, strlen(as->t.consumer_tag)};
    if (as->t.no_ack) m.flags |= NC_AMQP_F_NO_ACK;
    as->phase = S_CONSUMING;
    nc_amqp_conn_method(as->conn, &m);
}

static void step_qos(amqp_server *as) {
    if (!as->t.prefetch_count && !as->t.global_prefetch) {
        step_consume(as);
        return;
    }
    nc_amqp_method m = {.id = NC_AMQP_BASIC_QOS, .prefetch_count = (uint16_t)as->t.prefetch_count};
    if (as->t.global_prefetch) m.flags |= NC_AMQP_F_GLOBAL;
    as->phase = S_QOS;
    nc_amqp_conn_method(as->conn, &m);
}

static void conn_ready(nc_amqp_conn *c) {
    amqp_server *as = c->owner;
    nc_u64map_free(&as->last); /* tags of a lost connection */
    as->ready_at = uv_now(nc_server__io(as->srv)->loop);
    free(as->queue_name);
    as->queue_name = strdup(as->t.queue);
    if (!as->queue_name) {
        nc_amqp_conn_close(c, 0);
        return;
    }
    /* NestJS: declared unless noAssert; a server with no queue name declares a server-named one anyway */
    if (as->t.no_assert && as->t.queue[0]) {
        step_exchange(as);
        return;
    }
    nc_amqp_method m = {.id = NC_AMQP_QUEUE_DECLARE};
    m.queue = (nc_amqp_span){as->t.queue, strlen(as->t.queue)};
    if (as->t.durable) m.flags |= NC_AMQP_F_DURABLE;
    if (as->t.exclusive) m.flags |= NC_AMQP_F_EXCLUSIVE;
    if (as->t.auto_delete) m.flags |= NC_AMQP_F_AUTO_DELETE;
    m.table = as->t.queue_args; /* queueOptions' arguments, as amqplib builds them */
    as->phase = S_DECLARING;
    nc_amqp_conn_method(as->conn, &m);
}

static void conn_event(nc_amqp_conn *c, const nc_amqp_event *ev) {
    amqp_server *as = c->owner;
    const nc_amqp_method *m = &ev->m;
    if (ev->kind == NC_AMQP_EV_MESSAGE) {
        if (m->id != NC_AMQP_BASIC_DELIVER) return;
        if (as->stopping) { /* closing: requeued by the broker when the connection ends */
            if (!as->t.no_ack) send_settle(as, m->delivery_tag, NC_SETTLE_NACK_REQUEUE);
            return;
        }
        on_deliver(as, ev);
        return;
    }
    switch (m->id) {
    case NC_AMQP_QUEUE_DECLARE_OK:
        if (as->phase != S_DECLARING) return;
        free(as->queue_name);
        as->queue_name = strndup(m->queue.p ? m->queue.p : "", m->queue.n);
        if (!as->queue_name) {
            nc_amqp_conn_close(c, 0);
            return;
        }
        step_exchange(as);
        break;
    case NC_AMQP_EXCHANGE_DECLARE_OK:
        if (as->phase != S_EXCHANGE) return;
        /* pipelined: the broker answers in order, so qos-ok follows every bind-ok (a refused bind closes
         * the channel) */
        /* NestJS: routingKey (fanout: the empty key) first, then with wildcards every route */
        if (as->t.fanout)
            send_bind(as, "");
        else if (as->t.routing_key)
            send_bind(as, as->t.routing_key);
        for (size_t i = 0; i < as->nroutes; i++) send_bind(as, as->routes[i]);
        step_qos(as);
        break;
    case NC_AMQP_BASIC_QOS_OK:
        if (as->phase == S_QOS) step_consume(as);
        break;
    case NC_AMQP_BASIC_CONSUME_OK:
        if (as->phase != S_CONSUMING) return;
        free(as->ctag);
        as->ctag = strndup(m->consumer_tag.p ? m->consumer_tag.p : "", m->consumer_tag.n);
        as->phase = S_SERVING;
        report_connected(as);
        break;
    case NC_AMQP_BASIC_CANCEL: /* the queue was deleted: consume it again on a new connection */
        nc_logf(LOG(as), NC_LOG_ERROR, "Server", "the broker cancelled the consumer of %s (queue deleted?)",
                as->queue_name);
        nc_amqp_conn_close(c, 0);
        break;
    case NC_AMQP_CONNECTION_BLOCKED:
        nc_server__status(as->srv, "blocked", 0);
        break;
    case NC_AMQP_CONNECTION_UNBLOCKED:
        nc_server__status(as->srv, "unblocked", 0);
        break;
    default:
        break;
    }
}

static void maybe_closed(amqp_server *as) {
    if (!as->closing || as->nopen || as->closed_reported) return;
    as->closed_reported = 1;
    nc_server__closed(as->srv);
}

static nc_amqp_conn *open_conn(amqp_server *as, int delay) {
    nc_amqp_conn *c =
        nc_amqp_conn_new(nc_server__io(as->srv), &as->t, delay, 0, &conn_cbs, LOG(as), "Server", as);
    if (c) as->nopen++;
    acks_reset(as); /* delivery tags start again at 1 on the new channel */
    as->gen++;
    as->phase = S_IDLE;
    return c;
}

static void conn_end(nc_amqp_conn *c, int err, const char *msg) {
    amqp_server *as = c->owner;
    as->nopen--;
    as->conn = NULL;
    int in_setup = as->phase != S_SERVING && as->phase != S_IDLE;
    as->phase = S_IDLE;
    if (as->closing || as->stopping) {
        maybe_closed(as);
        return;
    }
    uv_loop_t *lp = nc_server__io(as->srv)->loop;
    if (as->ready_at && uv_now(lp) - as->ready_at >= NC_AMQP_HEALTHY_MS) nc_backoff_reset(&as->retry);
    as->ready_at = 0;
    nc_log_level level = NC_LOG_ERROR;
    char note[64];
    int delay = nc_reconnect_next(&as->retry, lp, NC_LOG_ERROR, &level, note, sizeof note);
    if (delay < 0) {
        nc_logf(LOG(as), NC_LOG_ERROR, "Server",
                "AMQP connection to %s:%d lost (%s); giving up after %d attempts", as->t.b.host, as->t.b.port,
                msg ? msg : "closed", as->retry.cfg.limit);
        nc_server__status(as->srv, "disconnected", err ? err : NC_ECONNCLOSED);
        as->reported = 0;
        return;
    }
    nc_logf(LOG(as), level, "Server", "AMQP connection to %s:%d lost (%s); reconnecting in %d ms%s",
            as->t.b.host, as->t.b.port, msg ? msg : "closed", delay, note);
    if (as->reported) nc_server__status(as->srv, "reconnecting", err);
    as->reported = 0;
    as->conn = open_conn(as, delay);
    /* a wrong password or a queue declared with other arguments will not right itself: say so once (the
     * CLI then gives up), and keep trying */
    if ((err == NC_EAUTH || (err == NC_EPROTO && in_setup)) && !as->setup_reported) {
        as->setup_reported = 1;
        nc_server__status(as->srv, "disconnected", err);
    }
}

static const nc_amqp_conn_cbs conn_cbs = {conn_ready, conn_event, conn_end};

/* ---- ops --------------------------------------------------------------------------------------------- */

static int as_create(nc_server *srv, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_USERINFO | NC_URL_PATH | NC_URL_HOSTS, why, sizeof why))
        return nc_fail(nc_server__log(srv), "Server", NC_EINVAL, "%s", why);
    amqp_server *as = calloc(1, sizeof *as);
    if (!as) return NC_ENOMEM;
    as->srv = srv;
    as->cfg = nc_server__cfg(srv);
    as->held_how = -1;
    as->ackfl.flush = flush_acks;
    const nc_server_cfg *cfg = as->cfg;
    const nc_optset *opts = nc_server__opts(srv);
    int r = nc_amqp_target_init(&as->t, url, opts, cfg->has_tls ? &cfg->tls : NULL, nc_server__log(srv),
                                "Server");
    if (r) {
        free(as);
        return r;
    }
    as->t.b.max_queue = cfg->max_send_buffer_size;
    as->min_limit = as->t.max_deliveries;
    as->t.b.connect_timeout_ms =
        nc_opts_find(opts, "connectTimeout") ? (int)nc_opts_int(opts, "connectTimeout") : 30000;
    int limit = as->t.max_attempts > 0    ? as->t.max_attempts
                : cfg->retry_attempts > 0 ? cfg->retry_attempts
                                          : 0;
    nc_reconnect_init(&as->retry, cfg->retry_delay_ms, 1000, limit, as);
    *state = as;
    return 0;
}

/* A handler's own maxDeliveries (NC_OPT_HANDLER), kept when it differs from the server's. */
static int add_limit(amqp_server *as, const char *route, const nc_optset *opts) {
    int lim = (int)nc_opts_int(opts, "maxDeliveries");
    if (lim && (!as->min_limit || lim < as->min_limit)) as->min_limit = lim;
    if (lim == as->t.max_deliveries) return 0;
    char **r = realloc(as->lim_routes, (as->nlims + 1) * sizeof *r);
    if (!r) return NC_ENOMEM;
    as->lim_routes = r;
    int *l = realloc(as->lims, (as->nlims + 1) * sizeof *l);
    if (!l) return NC_ENOMEM;
    as->lims = l;
    if (!(r[as->nlims] = strdup(route))) return NC_ENOMEM;
    l[as->nlims++] = lim;
    return 0;
}

static int as_route_added(void *state, const char *route, const nc_optset *opts) {
    amqp_server *as = state;
    int rc = add_limit(as, route, opts);
    if (rc) return rc;
    if (!as->t.wildcards) return 0;
    char **r = realloc(as->routes, (as->nroutes + 1) * sizeof *r);
    if (!r) return NC_ENOMEM;
    as->routes = r;
    if (!(r[as->nroutes] = strdup(route))) return NC_ENOMEM;
    as->nroutes++;
    /* a handler added while serving: bound now (during setup, the exchange step binds them all) */
    if (as->phase == S_QOS || as->phase == S_CONSUMING || as->phase == S_SERVING) send_bind(as, route);
    return 0;
}

static int as_listen(void *state) {
    amqp_server *as = state;
    as->conn = open_conn(as, 0);
    return as->conn ? 0 : NC_ENOMEM;
}

static void as_stop_accepting(void *state) {
    amqp_server *as = state;
    as->stopping = 1;
    if (!nc_amqp_conn_ready(as->conn) || !as->ctag) return;
    /* no new deliveries; in-flight requests may still answer and settle on the same connection */
    nc_amqp_method m = {.id = NC_AMQP_BASIC_CANCEL};
    m.consumer_tag = (nc_amqp_span){as->ctag, strlen(as->ctag)};
    nc_amqp_conn_method(as->conn, &m);
}

static void as_drain(void *state) {
    amqp_server *as = state;
    as->closing = 1;
    acks_now(as);
    if (as->conn) nc_amqp_conn_close(as->conn, 1);
    maybe_closed(as);
}

static void as_close(void *state) {
    amqp_server *as = state;
    as->closing = 1;
    acks_now(as);
    if (as->conn) nc_amqp_conn_close(as->conn, 0);
    maybe_closed(as);
}

static void as_destroy(void *state) {
    amqp_server *as = state;
    free(as->queue_name);
    free(as->ctag);
    nc_buf_free(&as->enc);
    for (size_t i = 0; i < as->nroutes; i++) free(as->routes[i]);
    free(as->routes);
    for (size_t i = 0; i < as->nlims; i++) free(as->lim_routes[i]);
    free(as->lim_routes);
    free(as->lims);
    nc_u64map_free(&as->last);
    acks_reset(as);
    nc_amqp_target_free(&as->t);
    free(as);
}

static const char *const schemes[] = {"amqp", "amqps", NULL};

const nc_server_transport nc_amqp_server_transport = {
    .schemes = schemes,
    .options = nc_amqp_options,
    .supports_workers = 0,
    .reports_connected = 1,
    .create = as_create,
    .listen = as_listen,
    .route_added = as_route_added,
    .stop_accepting = as_stop_accepting,
    .close = as_close,
    .destroy = as_destroy,
    .port = NULL,
    .drain = as_drain,
    .settle = as_settle,
};
