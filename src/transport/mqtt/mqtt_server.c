/* The MQTT server transport (spec mqtt.md §5): one connection; a SUBSCRIBE per handler route (with the
 * options qos, nl, rap, rh, the handler's over the server's; `share` makes it $share/<group>/<route>),
 * "connected" once every SUBACK of the batch arrived. A PUBLISH goes to the handler of the exact route, else
 * of the first filter that matches its topic (`+`, `#`, a $share/<group>/ prefix ignored), with the concrete
 * topic, QoS, retain flag and packet id in the context and the MQTT 5 user properties as headers. Every
 * reply packet is a QoS 0 PUBLISH to `<topic>/reply` (reply headers as user properties on MQTT 5). A lost
 * connection is re-established with the shared policy (transport/common/reconnect.h; default every
 * 1,000 ms as mqtt.js, doubling up to a cap; retry_attempts > 0 caps it, NestJS's maxConnectionAttempts).
 * A QoS 1 or 2 PUBLISH is acknowledged (PUBACK, PUBREC) when the core settles it (the settle op: once its
 * handler finished, or when the handler settles it itself), not when it is dispatched; a QoS 2 one is
 * dispatched once per packet id until the broker releases it (PUBREL), its DUP copies only acknowledged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/envelope.h"
#include "core/fail.h"
#include "core/server_transport.h"
#include "transport/common/reconnect.h"
#include "transport/mqtt/mqtt.h"

#define MAX_USER_PROPS 64

typedef struct mqtt_server mqtt_server;

/* The reply topic of one request, held by the core while the request is unfinished. */
typedef struct msink {
    mqtt_server *ms;
    int refs;
    size_t len;
    char topic[];
} msink;

typedef struct mroute {
    char *route;  /* as the handler gave it */
    char *filter; /* what is subscribed: the route, or $share/<group>/<route> */
    uint8_t qos, nl, rap, rh;
    int wild; /* the filter has + or #, or is shared: matched by nc_mqtt_topic_match */
} mroute;

struct mqtt_server {
    nc_server *srv;
    const nc_server_cfg *cfg;
    nc_mqtt_target t;
    nc_mqtt_conn *conn;
    mroute *routes;
    size_t nroutes, caproutes;
    int reported, stopping, closing, nopen, closed_reported;
    int subacks;       /* SUBACKs awaited before "connected" */
    int auth_reported; /* "disconnected" reported for a refused CONNECT; cleared once connected */
    nc_backoff retry;
    uint64_t ready_at; /* loop time of the last CONNACK, 0 = the current connection never got one */
    uint32_t gen;      /* the connection's number: a delivery token of an earlier one is ignored */
    /* QoS 2 packet ids (bit per id, allocated at the first QoS 2 PUBLISH): q2 dispatched and not yet
     * released by PUBREL, then q2 + 8192 PUBREC sent. Kept across reconnections of a kept session. */
    uint8_t *q2;
    nc_buf enc;
};

#define Q2_BYTES 8192 /* 65,536 packet ids */
#define BIT_GET(m, id) ((m)[(id) >> 3] & (1u << ((id)&7)))
#define BIT_SET(m, id) ((m)[(id) >> 3] |= (uint8_t)(1u << ((id)&7)))
#define BIT_CLR(m, id) ((m)[(id) >> 3] &= (uint8_t) ~(1u << ((id)&7)))

static const nc_mqtt_conn_cbs conn_cbs;

static const nc_logger *LOG(mqtt_server *ms) {
    return nc_server__log(ms->srv);
}

/* ---- replies -------------------------------------------------------------------------------------- */

static void sink_retain(void *peer) {
    ((msink *)peer)->refs++;
}

static void sink_release(void *peer) {
    msink *k = peer;
    if (--k->refs == 0) free(k);
}

static int sink_reply(void *peer, const nc_reply_pkt *pkt) {
    msink *k = peer;
    mqtt_server *ms = k->ms;
    if (ms->closing || !nc_mqtt_conn_ready(ms->conn)) return NC_ECLOSED;
    const nc_server_cfg *cfg = ms->cfg;
    ms->enc.len = 0;
    int r = nc_envelope_write_reply(&ms->enc, pkt, cfg->has_codec ? &cfg->codec : NULL);
    if (r) return r;
    nc_mqtt_pub_props props = {0};
    props.user = pkt->headers;
    props.n_user = pkt->nheaders;
    nc_mqtt_publish m = {.topic = k->topic,
                         .topic_len = k->len,
                         .payload = ms->enc.data,
                         .payload_len = ms->enc.len,
                         .qos = 0,
                         .props = ms->t.version == NC_MQTT_V5 && pkt->nheaders ? &props : NULL};
    r = nc_mqtt_conn_publish(ms->conn, &m);
    if (r == NC_ETOOBIG) {
        char text[200];
        snprintf(text, sizeof text,
                 "\"the reply of %zu bytes exceeds the broker's maximum packet size (%u)\"", ms->enc.len,
                 (unsigned)ms->t.broker_max);
        nc_logf(LOG(ms), NC_LOG_ERROR, "Server", "%.*s", (int)strlen(text) - 2, text + 1);
        nc_reply_pkt e = {
            .err = text, .err_len = strlen(text), .disposed = 1, .id = pkt->id, .id_len = pkt->id_len};
        ms->enc.len = 0;
        if ((r = nc_envelope_write_reply(&ms->enc, &e, NULL))) return r;
        m.payload = ms->enc.data;
        m.payload_len = ms->enc.len;
        m.props = NULL;
        r = nc_mqtt_conn_publish(ms->conn, &m);
    }
    if (r == NC_ESTALLED)
        nc_logf(LOG(ms), NC_LOG_ERROR, "Server",
                "reply to %s dropped: more than max_send_buffer_size bytes wait for the MQTT connection",
                k->topic);
    return r;
}

/* the peer is the broker: no address; always writable (the replies go to the broker connection, whose
 * buffer the transport bounds itself), so no pending bytes to report */
static const nc_peer_ops sink_ops = {sink_reply, sink_retain, sink_release, NULL, NULL, NULL};

/* ---- incoming messages ------------------------------------------------------------------------------ */

/* The exact route first, then the first filter that matches (spec mqtt.md §2). */
static const mroute *route_for(mqtt_server *ms, const char *topic, size_t len) {
    for (size_t i = 0; i < ms->nroutes; i++)
        if (!ms->routes[i].wild && strlen(ms->routes[i].route) == len &&
            !memcmp(ms->routes[i].route, topic, len))
            return &ms->routes[i];
    for (size_t i = 0; i < ms->nroutes; i++)
        if (ms->routes[i].wild &&
            nc_mqtt_topic_match(ms->routes[i].filter, strlen(ms->routes[i].filter), topic, len))
            return &ms->routes[i];
    return NULL;
}

/* Returns 0 when the PUBLISH is to be acknowledged now (QoS 0, or a QoS 2 copy already settled), else
 * nonzero: the settle op acknowledges it, or nothing does (out of memory: the broker's next connection
 * delivers it again). */
static int on_publish(mqtt_server *ms, const nc_mqtt_pkt *pkt) {
    if (pkt->qos == 2) {
        if (!ms->q2 && !(ms->q2 = calloc(2, Q2_BYTES))) return 1;
        /* a copy (DUP) of one handled and not yet released: PUBREC again once settled, never a second
         * dispatch (MQTT §4.3.3: exactly once) */
        if (BIT_GET(ms->q2, pkt->id)) return BIT_GET(ms->q2 + Q2_BYTES, pkt->id) ? 0 : 1;
        BIT_SET(ms->q2, pkt->id);
    }
    char small[256];
    char *topic = pkt->topic.n < sizeof small ? small : malloc(pkt->topic.n + 1);
    if (!topic) {
        if (pkt->qos == 2) BIT_CLR(ms->q2, pkt->id);
        return 1;
    }
    memcpy(topic, pkt->topic.p, pkt->topic.n);
    topic[pkt->topic.n] = '\0';
    const mroute *rt = route_for(ms, topic, pkt->topic.n);
    nc_header hdrs[MAX_USER_PROPS];
    size_t nh = 0;
    if (ms->t.version == NC_MQTT_V5 && pkt->props.n_user) {
        nh = nc_mqtt_user_props(&pkt->props, hdrs, MAX_USER_PROPS);
        if (nh > MAX_USER_PROPS) nh = MAX_USER_PROPS; /* the parser caps them at 64 as well */
    }
    msink *k = malloc(sizeof *k + pkt->topic.n + 7);
    if (k) {
        k->ms = ms;
        k->refs = 1; /* held across the dispatch */
        k->len = pkt->topic.n + 6;
        memcpy(k->topic, topic, pkt->topic.n);
        memcpy(k->topic + pkt->topic.n, "/reply", 7);
    }
    char idtext[8];
    int idlen = snprintf(idtext, sizeof idtext, "%u", (unsigned)pkt->id);
/* a text item's str is never NULL (NULL marks a number), an empty property included */
#define SPAN_STR(sp) ((sp).p ? (sp).p : "")
    nc_ctx_item ctx[11];
    size_t nctx = 0;
    ctx[nctx++] = (nc_ctx_item){NC_CTX_SUBJECT, topic, pkt->topic.n, 0};
    if (k) ctx[nctx++] = (nc_ctx_item){NC_CTX_REPLY_TO, k->topic, k->len, 0};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_QOS, NULL, 0, pkt->qos};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_RETAIN, NULL, 0, pkt->retain};
    if (pkt->qos) ctx[nctx++] = (nc_ctx_item){NC_CTX_MESSAGE_ID, idtext, (size_t)idlen, pkt->id};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_REDELIVERED, NULL, 0, pkt->dup};
    /* the MQTT 5 PUBLISH properties a handler may want (MqttContext.getPacket().properties) */
    const nc_mqtt_props *pp = &pkt->props;
    if (pp->has & NC_MQTTP_CONTENT_TYPE)
        ctx[nctx++] = (nc_ctx_item){NC_CTX_CONTENT_TYPE, SPAN_STR(pp->content_type), pp->content_type.n, 0};
    if (pp->has & NC_MQTTP_MESSAGE_EXPIRY)
        ctx[nctx++] = (nc_ctx_item){NC_CTX_MESSAGE_EXPIRY, NULL, 0, pp->message_expiry};
    if (pp->has & NC_MQTTP_PAYLOAD_FORMAT)
        ctx[nctx++] = (nc_ctx_item){NC_CTX_PAYLOAD_FORMAT, NULL, 0, pp->payload_format};
    if (pp->has & NC_MQTTP_RESPONSE_TOPIC)
        ctx[nctx++] =
            (nc_ctx_item){NC_CTX_RESPONSE_TOPIC, SPAN_STR(pp->response_topic), pp->response_topic.n, 0};
    if (pp->has & NC_MQTTP_CORRELATION)
        ctx[nctx++] = (nc_ctx_item){NC_CTX_CORRELATION_ID, SPAN_STR(pp->correlation), pp->correlation.n, 0};
    nc_inbound in = {0};
    in.channel = topic;
    in.route = rt ? rt->route : topic;
    /* none when the PUBLISH carried no user property, as NATS without a header block: `nc_msg_headers` NULL
     */
    in.headers = nh ? hdrs : NULL;
    in.nheaders = nh;
    in.ctx = ctx;
    in.nctx = nctx;
    in.peer = k;
    in.peer_ops = k ? &sink_ops : NULL;
    in.flags = NC_IN_JSON_OR_STRING; /* NestJS: JSON.parse, else the raw string */
    if (pkt->qos)
        in.delivery = (nc_delivery){.tag = pkt->id | (uint64_t)pkt->qos << 16, .conn = ms->gen, .set = 1};
    char why[200];
    why[0] = '\0';
    if (nc_server__dispatch(ms->srv, pkt->payload.p, pkt->payload.n, &in, why, sizeof why) == NC_EPROTO)
        nc_logf(LOG(ms), NC_LOG_ERROR, "Server", "message on %s ignored: %s", topic, why);
    if (k) sink_release(k);
    if (topic != small) free(topic);
    return pkt->qos; /* QoS 1 and 2: acknowledged by the settle op (called already, or later) */
}

/* The core settled a QoS 1 or 2 message. ACK: PUBACK (QoS 1) or PUBREC (QoS 2). REJECT and NACK without
 * requeue: acknowledged as well, so the broker drops it (MQTT has no refusal that makes a broker drop or
 * dead-letter a message; MQTT 5 says why with reason code 0x83, Implementation specific error: "valid, but
 * the receiver is not willing to accept it"). NACK with requeue: not acknowledged, so a broker keeping the
 * session (clean=false) delivers it again on the next connection (MQTT forbids redelivery within one); the
 * server does not reconnect to get it back sooner. Acknowledged in settle order, not in arrival order: the
 * brokers match acknowledgements by packet id, and strict order would let one slow handler hold back the
 * acknowledgements of every later message (the broker's in-flight window then fills and delivery stops).
 * A token of a connection since replaced is ignored: the broker delivers that message again. */
static void ms_settle(void *state, const nc_delivery *d, nc_settle how) {
    mqtt_server *ms = state;
    uint16_t id = (uint16_t)(d->tag & 0xffff);
    int qos = (int)(d->tag >> 16);
    if (d->conn != ms->gen || !nc_mqtt_conn_ready(ms->conn)) return;
    if (how == NC_SETTLE_NACK_REQUEUE) {
        if (qos == 2) BIT_CLR(ms->q2, id);
        return;
    }
    uint8_t reason = how == NC_SETTLE_ACK || ms->t.version != NC_MQTT_V5 ? 0 : 0x83;
    if (qos == 1) {
        nc_mqtt_conn_ack(ms->conn, NC_MQTT_PUBACK, id, reason);
        return;
    }
    nc_mqtt_conn_ack(ms->conn, NC_MQTT_PUBREC, id, reason);
    if (reason) /* a PUBREC with an error code ends the exchange: no PUBREL comes, the id is free */
        BIT_CLR(ms->q2, id);
    else
        BIT_SET(ms->q2 + Q2_BYTES, id);
}

/* ---- subscriptions and connection ------------------------------------------------------------------- */

static int subscribe(mqtt_server *ms, const mroute *rt) {
    nc_mqtt_sub s = {.filter = rt->filter,
                     .filter_len = strlen(rt->filter),
                     .qos = rt->qos,
                     .nl = rt->nl,
                     .rap = rt->rap,
                     .rh = rt->rh};
    nc_buf b = NC_BUF_INIT;
    int r = nc_mqtt_write_subscribe(&b, ms->t.version, nc_mqtt_conn_next_id(ms->conn), &s, 1, 0);
    if (!r) r = nc_mqtt_conn_write(ms->conn, b.data, b.len);
    nc_buf_free(&b);
    if (!r) ms->subacks++;
    return r;
}

static void report_connected(mqtt_server *ms) {
    if (ms->reported || ms->stopping || ms->subacks) return;
    ms->reported = 1;
    ms->auth_reported = 0;
    nc_server__status(ms->srv, "connected", 0);
}

static void conn_ready(nc_mqtt_conn *c, int session_present) {
    mqtt_server *ms = c->owner;
    if (ms->q2) {
        if (!session_present) {
            memset(ms->q2, 0, 2 * Q2_BYTES); /* a new session: every id is new */
        } else {
            /* unsettled ones were left unacknowledged (their tokens are ignored now): the broker sends them
             * again and they are dispatched again; settled ones wait for their PUBREL */
            for (size_t i = 0; i < Q2_BYTES; i++) ms->q2[i] &= ms->q2[Q2_BYTES + i];
        }
    }
    ms->ready_at = uv_now(nc_server__io(ms->srv)->loop);
    ms->subacks = 0;
    /* subscribed again even with a session present: a broker may have lost the session */
    for (size_t i = 0; i < ms->nroutes; i++) subscribe(ms, &ms->routes[i]);
    report_connected(ms);
}

static int conn_pkt(nc_mqtt_conn *c, const nc_mqtt_pkt *pkt) {
    mqtt_server *ms = c->owner;
    if (pkt->type == NC_MQTT_PUBLISH) {
        /* closing: not dispatched, and not acknowledged, so a kept session delivers it again */
        if (ms->stopping) return 1;
        return on_publish(ms, pkt);
    } else if (pkt->type == NC_MQTT_PUBREL) {
        if (ms->q2) BIT_CLR(ms->q2, pkt->id), BIT_CLR(ms->q2 + Q2_BYTES, pkt->id);
    } else if (pkt->type == NC_MQTT_SUBACK) {
        for (size_t i = 0; i < pkt->n_codes; i++)
            if (pkt->codes[i] >= 0x80)
                nc_logf(LOG(ms), NC_LOG_ERROR, "Server",
                        "the broker refused a subscription (%s); its handler gets no messages",
                        nc_mqtt_reason_text(ms->t.version, pkt->codes[i]));
        if (ms->subacks) ms->subacks--;
        report_connected(ms);
    }
    return 0;
}

static void maybe_closed(mqtt_server *ms) {
    if (!ms->closing || ms->nopen || ms->closed_reported) return;
    ms->closed_reported = 1;
    nc_server__closed(ms->srv);
}

static nc_mqtt_conn *open_conn(mqtt_server *ms, int delay) {
    nc_mqtt_conn *c =
        nc_mqtt_conn_new(nc_server__io(ms->srv), &ms->t, delay, &conn_cbs, LOG(ms), "Server", ms);
    if (c) ms->nopen++;
    ms->gen++;
    return c;
}

static void conn_end(nc_mqtt_conn *c, int err, const char *msg) {
    mqtt_server *ms = c->owner;
    ms->nopen--;
    ms->conn = NULL;
    if (ms->closing || ms->stopping) {
        maybe_closed(ms);
        return;
    }
    uv_loop_t *lp = nc_server__io(ms->srv)->loop;
    if (ms->ready_at && uv_now(lp) - ms->ready_at >= NC_MQTT_HEALTHY_MS) nc_backoff_reset(&ms->retry);
    ms->ready_at = 0;
    nc_log_level level = NC_LOG_ERROR;
    char note[64];
    int delay =
        nc_reconnect_next(&ms->retry, nc_server__io(ms->srv)->loop, NC_LOG_ERROR, &level, note, sizeof note);
    if (delay < 0) {
        nc_logf(LOG(ms), NC_LOG_ERROR, "Server",
                "MQTT connection to %s:%d lost (%s); giving up after %d attempts", ms->t.b.host, ms->t.b.port,
                msg ? msg : "closed", ms->retry.cfg.limit);
        nc_server__status(ms->srv, "disconnected", err ? err : NC_ECONNCLOSED);
        ms->reported = 0;
        return;
    }
    nc_logf(LOG(ms), level, "Server", "MQTT connection to %s:%d lost (%s); reconnecting in %d ms%s",
            ms->t.b.host, ms->t.b.port, msg ? msg : "closed", delay, note);
    if (ms->reported) nc_server__status(ms->srv, "reconnecting", err);
    ms->reported = 0;
    ms->conn = open_conn(ms, delay);
    /* a wrong password will not right itself: say so once (the CLI then gives up), and keep trying */
    if (err == NC_EAUTH && !ms->auth_reported) {
        ms->auth_reported = 1;
        nc_server__status(ms->srv, "disconnected", err);
    }
}

static const nc_mqtt_conn_cbs conn_cbs = {conn_ready, conn_pkt, conn_end};

/* ---- ops --------------------------------------------------------------------------------------------- */

static int ms_create(nc_server *srv, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_USERINFO, why, sizeof why))
        return nc_fail(nc_server__log(srv), "Server", NC_EINVAL, "%s", why);
    mqtt_server *ms = calloc(1, sizeof *ms);
    if (!ms) return NC_ENOMEM;
    ms->srv = srv;
    ms->cfg = nc_server__cfg(srv);
    const nc_server_cfg *cfg = ms->cfg;
    int r = nc_mqtt_target_init(&ms->t, url, nc_server__opts(srv), cfg->has_tls ? &cfg->tls : NULL,
                                nc_server__log(srv), "Server");
    if (r) {
        free(ms);
        return r;
    }
    ms->t.max_packet = cfg->max_buffer_size > 0 && cfg->max_buffer_size < 0x7fffffff
                           ? (uint32_t)cfg->max_buffer_size + 65536 /* topic and properties on top */
                           : 0;
    ms->t.b.max_queue = cfg->max_send_buffer_size;
    const nc_optset *opts = nc_server__opts(srv);
    ms->t.b.connect_timeout_ms = nc_opts_find(opts, "connectTimeout")
                                     ? (int)nc_opts_int(opts, "connectTimeout")
                                     : 30000; /* mqtt.js's default */
    nc_reconnect_init(&ms->retry, cfg->retry_delay_ms, 1000,
                      cfg->retry_attempts > 0 ? cfg->retry_attempts : 0, ms);
    *state = ms;
    return 0;
}

static int ms_listen(void *state) {
    mqtt_server *ms = state;
    ms->conn = open_conn(ms, 0);
    return ms->conn ? 0 : NC_ENOMEM;
}

static int ms_route_added(void *state, const char *route, const nc_optset *opts) {
    mqtt_server *ms = state;
    for (size_t i = 0; i < ms->nroutes; i++)
        if (!strcmp(ms->routes[i].route, route)) return 0;
    const char *share = nc_opts_str(opts, "share");
    char *filter = NULL;
    if (share && *share) {
        size_t n = strlen(share) + strlen(route) + 9;
        if ((filter = malloc(n))) snprintf(filter, n, "$share/%s/%s", share, route);
    } else {
        filter = strdup(route);
    }
    if (!filter) return NC_ENOMEM;
    if (!nc_mqtt_filter_ok(filter, strlen(filter))) {
        nc_logf(LOG(ms), NC_LOG_ERROR, "Server",
                "pattern %s is not a valid MQTT topic filter; not subscribed", filter);
        free(filter);
        return NC_EINVAL;
    }
    if (ms->nroutes == ms->caproutes) {
        size_t n = ms->caproutes ? ms->caproutes * 2 : 16;
        mroute *p = realloc(ms->routes, n * sizeof *p);
        if (!p) {
            free(filter);
            return NC_ENOMEM;
        }
        ms->routes = p;
        ms->caproutes = n;
    }
    mroute *rt = &ms->routes[ms->nroutes];
    if (!(rt->route = strdup(route))) {
        free(filter);
        return NC_ENOMEM;
    }
    rt->filter = filter;
    rt->qos = (uint8_t)nc_opts_int(opts, "qos");
    rt->nl = (uint8_t)nc_opts_bool(opts, "nl");
    rt->rap = (uint8_t)nc_opts_bool(opts, "rap");
    rt->rh = (uint8_t)nc_opts_int(opts, "rh");
    rt->wild = strpbrk(filter, "+#") != NULL || strncmp(filter, "$share/", 7) == 0;
    ms->nroutes++;
    if (nc_mqtt_conn_ready(ms->conn)) subscribe(ms, rt);
    return 0;
}

static void ms_stop_accepting(void *state) {
    mqtt_server *ms = state;
    ms->stopping = 1;
    /* a kept session (clean=false) keeps its subscriptions, so the broker queues what comes meanwhile */
    if (!ms->t.clean || !nc_mqtt_conn_ready(ms->conn)) return;
    /* no new messages; in-flight requests may still answer on the same connection */
    for (size_t i = 0; i < ms->nroutes; i++) {
        nc_mqtt_sub s = {.filter = ms->routes[i].filter, .filter_len = strlen(ms->routes[i].filter)};
        nc_buf b = NC_BUF_INIT;
        if (!nc_mqtt_write_unsubscribe(&b, ms->t.version, nc_mqtt_conn_next_id(ms->conn), &s, 1))
            nc_mqtt_conn_write(ms->conn, b.data, b.len);
        nc_buf_free(&b);
    }
}

static void ms_drain(void *state) {
    mqtt_server *ms = state;
    ms->closing = 1;
    if (ms->conn) nc_mqtt_conn_close(ms->conn, 1);
    maybe_closed(ms);
}

static void ms_close(void *state) {
    mqtt_server *ms = state;
    ms->closing = 1;
    if (ms->conn) nc_mqtt_conn_close(ms->conn, 0);
    maybe_closed(ms);
}

static void ms_destroy(void *state) {
    mqtt_server *ms = state;
    for (size_t i = 0; i < ms->nroutes; i++) {
        free(ms->routes[i].route);
        free(ms->routes[i].filter);
    }
    free(ms->routes);
    free(ms->q2);
    nc_buf_free(&ms->enc);
    nc_mqtt_target_free(&ms->t);
    free(ms);
}

static const char *const schemes[] = {"mqtt", "mqtts", NULL};

const nc_server_transport nc_mqtt_server_transport = {
    .schemes = schemes,
    .options = nc_mqtt_options,
    .supports_workers = 0,
    .reports_connected = 1,
    .create = ms_create,
    .listen = ms_listen,
    .route_added = ms_route_added,
    .stop_accepting = ms_stop_accepting,
    .close = ms_close,
    .destroy = ms_destroy,
    .port = NULL,
    .drain = ms_drain,
    .settle = ms_settle,
};
