/* The MQTT client transport (spec mqtt.md §6): one connection. A request's reply topic `<route>/reply` is
 * subscribed first and the request PUBLISHed only once its SUBACK arrived (every request waits for it,
 * not only the first: NestJS's race is not copied); subscriptions are counted per reply topic, the count
 * covering requests not yet published, and UNSUBSCRIBEd when the last request on them ends. Events are
 * published at once. Per call the options qos, retain, dup, contentType, messageExpiryInterval and
 * payloadFormatIndicator set the PUBLISH's (MqttRecord; the MQTT 5 ones dropped on 3.1.1); the call's
 * headers travel as MQTT 5 user properties, and a reply's user properties are its headers. QoS 1/2
 * PUBLISHes (events and requests) are kept in the outbox (mqtt_outbox.h) until the broker completed them,
 * at most Receive Maximum unacknowledged, and resent after a reconnection; a QoS 1/2 emit completes on the
 * PUBACK / PUBCOMP (mqtt.js's publish callback), a QoS 0 one once written.
 *
 * A lost connection is re-established with the shared policy (transport/common/reconnect.h; at once, then
 * every retry_delay_ms, default 1,000 ms as mqtt.js, doubling up to a cap; retry_attempts > 0 caps it,
 * default unlimited as mqtt.js): pending requests keep waiting (their reply topics are subscribed again),
 * calls made meanwhile fail with NC_ECONNLOST; when the attempts run out the client disconnects and
 * pending calls fail with "Connection closed". */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client_internal.h"
#include "core/fail.h"
#include "transport/common/reconnect.h"
#include "transport/mqtt/mqtt.h"
#include "transport/mqtt/mqtt_outbox.h"
#include "util/map.h"
#include "util/u64map.h"

enum { C_IDLE, C_CONNECTING, C_CONNECTED, C_RECONNECTING, C_CLOSING };

#define MAX_HEADERS 64

typedef struct mqtt_client mqtt_client;

/* One reply topic. `held` keeps the encoded PUBLISHes of requests (each: id length, id, packet length,
 * packet) until the subscription is confirmed; a refused subscription fails them by their ids. */
typedef struct rsub {
    char *topic;
    size_t len;
    int refs;       /* requests waiting for replies on it, published or held */
    int inflight;   /* SUBSCRIBE/UNSUBSCRIBE sent, not yet acknowledged */
    int subscribed; /* as of the last acknowledgement */
    int refusing;
    nc_buf held;
} rsub;

struct mqtt_client {
    nc_client *cli;
    nc_mqtt_target t;
    nc_mqtt_conn *conn;
    int state, nopen;
    nc_backoff retry;
    uint64_t ready_at; /* loop time of the last CONNACK, 0 = the current connection never got one */
    int end_err;
    char end_msg[320];
    nc_map subs;       /* reply topic -> rsub */
    nc_u64map acks;    /* packet id of a SUBSCRIBE/UNSUBSCRIBE -> rsub */
    nc_mqtt_outbox ob; /* QoS 1/2 PUBLISHes until the broker completed them (mqtt_outbox.h) */
    uint16_t recv_max; /* the broker's Receive Maximum (MQTT 5 CONNACK; 65,535 absent), 0 = no limit */
    nc_buf out;
};

/* What the outbox keeps for one PUBLISH (its user): an event's completion, or a request's id. */
typedef struct pend {
    void (*accepted)(void *arg, int err);
    void (*refused)(void *arg, int err, const char *msg);
    void *arg;
    char id[]; /* a request's id ("" for an event) */
} pend;

static const nc_mqtt_conn_cbs conn_cbs;

static const nc_logger *LOG(mqtt_client *mc) {
    return nc_client__log(mc->cli);
}

/* ---- reply subscriptions ------------------------------------------------------------------------------ */

static void rsub_free(mqtt_client *mc, rsub *s) {
    nc_map_del(&mc->subs, s->topic, s->len);
    nc_buf_free(&s->held);
    free(s->topic);
    free(s);
}

/* ---- the outbox: QoS 1/2 PUBLISHes kept until completed, resent after a reconnection ------------------ */

/* Packet ids are shared by PUBLISH, SUBSCRIBE and UNSUBSCRIBE: one allocator (the outbox's) skips both the
 * kept PUBLISHes and the (UN)SUBSCRIBEs awaiting their acknowledgement. */
static int id_busy(void *arg, uint16_t id) {
    mqtt_client *mc = arg;
    return nc_u64map_get(&mc->acks, id) != NULL;
}

static int ob_write(void *arg, const char *p, size_t n) {
    mqtt_client *mc = arg;
    return nc_mqtt_conn_write(mc->conn, p, n);
}

/* Writes what the window allows, on a ready connection; the rest goes as acknowledgements come. */
static void pump(mqtt_client *mc) {
    if (mc->conn && nc_mqtt_conn_ready(mc->conn)) nc_mqtt_outbox_pump(&mc->ob, ob_write, mc);
}

static pend *pend_new(const char *id, const nc_outbound *out) {
    size_t n = id ? strlen(id) : 0;
    pend *p = malloc(sizeof *p + n + 1);
    if (!p) return NULL;
    p->accepted = id ? NULL : out->accepted;
    p->refused = id ? NULL : out->refused;
    p->arg = id ? NULL : out->arg;
    memcpy(p->id, id ? id : "", n + 1);
    return p;
}

/* Keeps an encoded QoS 1/2 PUBLISH (its id is given here) and writes it if the window allows. */
static int keep(mqtt_client *mc, const char *pkt, size_t n, pend *p) {
    int r = nc_mqtt_outbox_add(&mc->ob, pkt, n, p, id_busy, mc, NULL);
    if (r) return r;
    pump(mc);
    return 0;
}

/* The broker's PUBACK, PUBREC or PUBCOMP of a kept PUBLISH. An event completes when it is completed
 * (refused by an MQTT 5 reason >= 0x80); a request whose PUBACK/PUBREC says No matching subscribers
 * (0x10, MQTT 5) fails now with NC_ENOHANDLER instead of waiting for its timeout. */
static void on_pub_ack(mqtt_client *mc, const nc_mqtt_pkt *pkt) {
    int done;
    pend *p = nc_mqtt_outbox_ack(&mc->ob, pkt->type, pkt->id, pkt->reason, &done);
    if (!p) return;
    if (p->id[0]) {
        if (pkt->reason == 0x10 && pkt->type != NC_MQTT_PUBCOMP)
            nc_client__fail_call(
                mc->cli, p->id, NC_ENOHANDLER,
                "No matching subscribers: no server is subscribed to the route (MQTT 5 acknowledgement)");
    } else if (done) {
        if (pkt->reason >= 0x80 && pkt->type != NC_MQTT_PUBCOMP && p->refused) {
            char msg[300];
            snprintf(msg, sizeof msg, "the MQTT broker refused the event: %s",
                     nc_mqtt_reason_text(mc->t.version, pkt->reason));
            p->refused(p->arg, pkt->reason == 0x87 ? NC_EAUTH : NC_EPROTO, msg);
        } else if (p->accepted) {
            p->accepted(p->arg, 0);
        }
    }
    if (done) free(p);
    pump(mc);
}

/* The client is closed or gave up: kept events fail (requests fail with the pending calls). */
static void ob_fail_all(mqtt_client *mc, int err) {
    pend *p;
    while ((p = nc_mqtt_outbox_pop(&mc->ob))) {
        if (p->id[0]) {
        } else if (p->refused) { /* the core's refused() takes any code and says why */
            p->refused(p->arg, err,
                       "Connection closed before the MQTT broker acknowledged the event (QoS 1/2)");
        } else if (p->accepted) {
            p->accepted(p->arg, err);
        }
        free(p);
    }
}

static int sub_cmd(mqtt_client *mc, rsub *s, int on) {
    nc_mqtt_sub sub = {.filter = s->topic, .filter_len = s->len, .qos = 0};
    uint16_t id = nc_mqtt_outbox_next_id(&mc->ob, id_busy, mc);
    if (!id) return NC_ESTALLED;
    nc_buf b = NC_BUF_INIT;
    int r = on ? nc_mqtt_write_subscribe(&b, mc->t.version, id, &sub, 1, 0)
               : nc_mqtt_write_unsubscribe(&b, mc->t.version, id, &sub, 1);
    if (!r) r = nc_u64map_put(&mc->acks, id, s);
    if (!r && (r = nc_mqtt_conn_write(mc->conn, b.data, b.len))) nc_u64map_del(&mc->acks, id);
    nc_buf_free(&b);
    if (!r) s->inflight++;
    return r;
}

static int hold(rsub *s, const char *id, size_t idlen, const char *pkt, size_t n) {
    size_t at = s->held.len;
    if (nc_buf_append(&s->held, (const char *)&idlen, sizeof idlen) || nc_buf_append(&s->held, id, idlen) ||
        nc_buf_append(&s->held, (const char *)&n, sizeof n) || nc_buf_append(&s->held, pkt, n)) {
        s->held.len = at;
        return NC_ENOMEM;
    }
    return 0;
}

static int held_next(const nc_buf *b, size_t *at, const char *p[2], size_t n[2]) {
    if (*at >= b->len) return 0;
    for (int i = 0; i < 2; i++) {
        memcpy(&n[i], b->data + *at, sizeof n[i]);
        p[i] = b->data + *at + sizeof n[i];
        *at += sizeof n[i] + n[i];
    }
    return 1;
}

static void flush_held(mqtt_client *mc, rsub *s) {
    size_t at = 0;
    const char *p[2];
    size_t n[2];
    char id[64];
    while (held_next(&s->held, &at, p, n)) {
        int r;
        if (((unsigned char)p[1][0] >> 1) & 3) { /* QoS 1/2: kept until the broker completes it */
            snprintf(id, sizeof id, "%.*s", (int)n[0], p[0]);
            pend *pd = pend_new(id, NULL);
            r = pd ? nc_mqtt_outbox_add(&mc->ob, p[1], n[1], pd, id_busy, mc, NULL) : NC_ENOMEM;
            if (r) free(pd);
        } else {
            r = nc_mqtt_conn_write(mc->conn, p[1], n[1]);
        }
        if (r)
            nc_logf(LOG(mc), NC_LOG_ERROR, "Client",
                    "a request expecting replies on %s could not be published (%s)", s->topic,
                    nc_strerror(r));
    }
    s->held.len = 0;
    pump(mc);
}

/* An acknowledgement settled the topic's state: act on what happened meanwhile. */
static void settle(mqtt_client *mc, rsub *s) {
    if (s->inflight || !nc_mqtt_conn_ready(mc->conn)) return;
    if (s->subscribed) {
        flush_held(mc, s);
        if (s->refs == 0) sub_cmd(mc, s, 0);
    } else if (s->refs > 0 || s->held.len) {
        sub_cmd(mc, s, 1);
    } else {
        rsub_free(mc, s);
    }
}

/* The broker refused the SUBSCRIBE: the held requests fail now instead of waiting for replies that
 * cannot come. */
static void refuse(mqtt_client *mc, rsub *s, uint8_t code) {
    char msg[300];
    snprintf(msg, sizeof msg, "the MQTT broker refused SUBSCRIBE %s: %s", s->topic,
             nc_mqtt_reason_text(mc->t.version, code));
    int err = code == 0x87 ? NC_EAUTH : NC_EPROTO;
    nc_buf held = s->held;
    s->held = (nc_buf)NC_BUF_INIT;
    s->subscribed = 0;
    s->refusing = 1;
    size_t at = 0;
    const char *p[2];
    size_t n[2];
    char id[64];
    while (held_next(&held, &at, p, n)) {
        snprintf(id, sizeof id, "%.*s", (int)n[0], p[0]);
        nc_client__fail_call(mc->cli, id, err, msg);
    }
    nc_buf_free(&held);
    s->refusing = 0;
    if (s->inflight) return;
    if (s->held.len)
        sub_cmd(mc, s, 1);
    else if (s->refs == 0)
        rsub_free(mc, s);
}

static void on_ack(mqtt_client *mc, const nc_mqtt_pkt *pkt) {
    rsub *s = nc_u64map_del(&mc->acks, pkt->id);
    if (!s) return;
    if (s->inflight) s->inflight--;
    if (pkt->type == NC_MQTT_SUBACK) {
        if (pkt->n_codes && pkt->codes[0] >= 0x80) {
            refuse(mc, s, pkt->codes[0]);
            return;
        }
        s->subscribed = 1;
    } else {
        s->subscribed = 0;
    }
    settle(mc, s);
}

/* ---- replies ---------------------------------------------------------------------------------------- */

static void on_publish(mqtt_client *mc, const nc_mqtt_pkt *pkt) {
    nc_header hs[MAX_HEADERS];
    nc_reply_in extra = {.headers = hs};
    if (mc->t.version == NC_MQTT_V5 && pkt->props.n_user) {
        extra.nheaders = nc_mqtt_user_props(&pkt->props, hs, MAX_HEADERS);
        if (extra.nheaders > MAX_HEADERS) extra.nheaders = MAX_HEADERS;
    }
    char why[200];
    /* NestJS falls back to the raw string when a reply is not JSON: without an id it is dropped */
    if (nc_client__on_body_ex(mc->cli, pkt->payload.p, pkt->payload.n, extra.nheaders ? &extra : NULL, why,
                              sizeof why) == NC_EPROTO)
        nc_logf(LOG(mc), NC_LOG_DEBUG, "Client", "ignored a reply on %.*s that is not JSON: %s",
                (int)pkt->topic.n, pkt->topic.p, why);
}

/* ---- connection -------------------------------------------------------------------------------------- */

static void conn_ready(nc_mqtt_conn *c, int session_present) {
    mqtt_client *mc = c->owner;
    mc->ready_at = uv_now(nc_client__io(mc->cli)->loop);
    /* what is kept goes again in its order: DUP if the broker kept the session, else as new publishes
     * (the ids are free in a new session); a PUBREL for those that had their PUBREC */
    nc_mqtt_outbox_reconnect(&mc->ob, session_present, mc->recv_max);
    if (mc->state == C_CONNECTING) {
        mc->state = C_CONNECTED;
        nc_client__connected(mc->cli);
        return;
    }
    if (mc->state != C_RECONNECTING) return;
    /* the reply topics of the requests still waiting; topics nobody needs any more */
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&mc->subs, &it, &k, &v)) {
        rsub *s = v;
        s->inflight = 0;
        s->subscribed = 0;
        if (s->refs > 0 || s->held.len) sub_cmd(mc, s, 1);
    }
    it = 0;
    while (nc_map_next(&mc->subs, &it, &k, &v)) {
        rsub *s = v;
        if (!s->inflight) {
            rsub_free(mc, s);
            it = 0;
        }
    }
    mc->state = C_CONNECTED;
    /* after the SUBSCRIBEs of the reply topics: a resent request's reply finds its subscription */
    if (mc->ob.count)
        nc_logf(LOG(mc), NC_LOG_INFO, "Client", "resending %zu unacknowledged QoS 1/2 PUBLISHes (session %s)",
                mc->ob.count, session_present ? "kept" : "new");
    pump(mc);
    nc_logf(LOG(mc), NC_LOG_INFO, "Client", "reconnected to the MQTT broker at %s:%d", mc->t.b.host,
            mc->t.b.port);
    nc_client__status(mc->cli, "connected", 0);
}

static int conn_pkt(nc_mqtt_conn *c, const nc_mqtt_pkt *pkt) {
    mqtt_client *mc = c->owner;
    if (pkt->type == NC_MQTT_PUBLISH)
        on_publish(mc, pkt);
    else if (pkt->type == NC_MQTT_SUBACK || pkt->type == NC_MQTT_UNSUBACK)
        on_ack(mc, pkt);
    else if (pkt->type == NC_MQTT_PUBACK || pkt->type == NC_MQTT_PUBREC || pkt->type == NC_MQTT_PUBCOMP)
        on_pub_ack(mc, pkt);
    else if (pkt->type == NC_MQTT_CONNACK) /* before conn_ready: the window of this connection */
        mc->recv_max = mc->t.version != NC_MQTT_V5                 ? 0
                       : pkt->props.has & NC_MQTTP_RECEIVE_MAXIMUM ? pkt->props.receive_maximum
                                                                   : 65535;
    return 0;
}

static nc_mqtt_conn *open_conn(mqtt_client *mc, int delay) {
    nc_mqtt_conn *c =
        nc_mqtt_conn_new(nc_client__io(mc->cli), &mc->t, delay, &conn_cbs, LOG(mc), "Client", mc);
    if (c) mc->nopen++;
    return c;
}

static void all_closed(mqtt_client *mc) {
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&mc->subs, &it, &k, &v)) {
        rsub_free(mc, v);
        it = 0;
    }
    nc_u64map_free(&mc->acks);
    memset(&mc->acks, 0, sizeof mc->acks);
    int err = mc->end_err;
    ob_fail_all(mc, err ? err : NC_ECONNCLOSED);
    mc->state = C_IDLE;
    mc->end_err = 0;
    nc_client__disconnected(mc->cli, err, mc->end_msg);
}

static void conn_end(nc_mqtt_conn *c, int err, const char *msg) {
    mqtt_client *mc = c->owner;
    mc->nopen--;
    mc->conn = NULL;
    /* acknowledgements of that connection will not come */
    nc_u64map_free(&mc->acks);
    memset(&mc->acks, 0, sizeof mc->acks);
    if (mc->state == C_CLOSING || mc->state == C_CONNECTING) {
        if (mc->state == C_CONNECTING && !mc->end_err) {
            mc->end_err = err ? err : NC_ECONNCLOSED;
            snprintf(mc->end_msg, sizeof mc->end_msg, "%s", msg && *msg ? msg : "Connection closed");
        }
        all_closed(mc);
        return;
    }
    uv_loop_t *lp = nc_client__io(mc->cli)->loop;
    if (mc->ready_at && uv_now(lp) - mc->ready_at >= NC_MQTT_HEALTHY_MS) nc_backoff_reset(&mc->retry);
    mc->ready_at = 0;
    char text[300];
    snprintf(text, sizeof text, "MQTT connection to %s:%d lost: %s", mc->t.b.host, mc->t.b.port,
             msg && *msg ? msg : "closed");
    nc_log_level level = NC_LOG_WARN;
    char note[64];
    int delay =
        nc_reconnect_next(&mc->retry, nc_client__io(mc->cli)->loop, NC_LOG_WARN, &level, note, sizeof note);
    if (delay < 0) {
        nc_logf(LOG(mc), NC_LOG_ERROR, "Client", "%s; reconnection attempts exhausted", text);
        nc_client__error(mc->cli, err ? err : NC_ECONNCLOSED, text);
        int telling = err == NC_EPROTO || err == NC_ETLS || err == NC_EAUTH || err == NC_ETOOBIG;
        mc->end_err = telling ? err : NC_ECONNCLOSED;
        snprintf(mc->end_msg, sizeof mc->end_msg, "%s", telling ? text : "Connection closed");
        all_closed(mc);
        return;
    }
    nc_logf(LOG(mc), level, "Client", "%s; reconnecting in %d ms%s", text, delay, note);
    if (mc->state != C_RECONNECTING) {
        mc->state = C_RECONNECTING;
        nc_client__status(mc->cli, "reconnecting", err);
    }
    mc->conn = open_conn(mc, delay);
    if (!mc->conn) {
        mc->end_err = NC_ENOMEM;
        snprintf(mc->end_msg, sizeof mc->end_msg, "out of memory");
        all_closed(mc);
    }
}

static const nc_mqtt_conn_cbs conn_cbs = {conn_ready, conn_pkt, conn_end};

/* ---- ops ------------------------------------------------------------------------------------------------
 */

static int mc_create(nc_client *cli, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_USERINFO | NC_URL_CLIENT, why, sizeof why))
        return nc_fail(nc_client__log(cli), "Client", NC_EINVAL, "%s", why);
    mqtt_client *mc = calloc(1, sizeof *mc);
    if (!mc) return NC_ENOMEM;
    mc->cli = cli;
    const nc_client_cfg *cfg = nc_client__cfg(cli);
    int r = nc_mqtt_target_init(&mc->t, url, nc_client__opts(cli), cfg->has_tls ? &cfg->tls : NULL,
                                nc_client__log(cli), "Client");
    if (r) {
        free(mc);
        return r;
    }
    mc->t.max_packet = cfg->max_buffer_size > 0 && cfg->max_buffer_size < 0x7fffffff
                           ? (uint32_t)cfg->max_buffer_size + 65536
                           : 0;
    mc->t.b.max_queue = cfg->max_send_buffer_size;
    /* the kept QoS 1/2 PUBLISHes are bounded like the send buffer (0: unbounded) */
    nc_mqtt_outbox_init(&mc->ob, cfg->max_send_buffer_size > 0 ? (size_t)cfg->max_send_buffer_size : 0,
                        (uint16_t)(uv_hrtime() & 0x7fff));
    const nc_optset *opts = nc_client__opts(cli);
    mc->t.b.connect_timeout_ms = nc_opts_find(opts, "connectTimeout")
                                     ? (int)nc_opts_int(opts, "connectTimeout")
                                     : cfg->connect_timeout_ms;
    nc_reconnect_init(&mc->retry, cfg->retry_delay_ms, 1000,
                      cfg->retry_attempts > 0 ? cfg->retry_attempts : 0, mc);
    *state = mc;
    return 0;
}

static int mc_connect(void *state) {
    mqtt_client *mc = state;
    mc->state = C_CONNECTING;
    mc->end_err = 0;
    nc_backoff_reset(&mc->retry);
    mc->conn = open_conn(mc, 0);
    return mc->conn ? 0 : NC_ENOMEM;
}

/* The call's headers (a JSON object of strings) as user properties, in the object's order. */
static size_t user_props(const json_t *headers, nc_header *out, size_t cap) {
    size_t n = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)headers, key, val) {
        if (n == cap || !json_is_string(val)) continue;
        out[n++] = (nc_header){key, strlen(key), json_string_value(val), json_string_length(val)};
    }
    return n;
}

static int mc_send(void *state, nc_outbound *out) {
    mqtt_client *mc = state;
    if (mc->state == C_RECONNECTING) return NC_ECONNLOST;
    if (mc->state != C_CONNECTED || !nc_mqtt_conn_ready(mc->conn)) return NC_ECONNCLOSED;
    size_t rlen = strlen(out->route);
    if (!nc_mqtt_topic_ok(out->route, rlen)) {
        snprintf(out->why, sizeof out->why, "pattern %.150s is not a valid MQTT topic name", out->route);
        return NC_EINVAL;
    }
    const nc_optset *opts = out->opts ? out->opts : nc_client__opts(mc->cli);
    nc_header hs[MAX_HEADERS];
    nc_mqtt_pub_props props = {0};
    int has_props = 0;
    if (mc->t.version == NC_MQTT_V5) { /* on 3.1.1 the MQTT 5 properties are dropped, as mqtt.js does */
        if (out->headers) {
            props.user = hs;
            props.n_user = user_props(out->headers, hs, MAX_HEADERS);
        }
        if ((props.content_type = nc_opts_str(opts, "contentType"))) {
            props.content_type_len = strlen(props.content_type);
            if (!nc_mqtt_string_ok(props.content_type, props.content_type_len)) {
                snprintf(out->why, sizeof out->why, "contentType is not an MQTT string (UTF-8, no NUL)");
                return NC_EINVAL;
            }
        }
        if (nc_opts_find(opts, "messageExpiryInterval")) {
            props.has_message_expiry = 1;
            props.message_expiry = (uint32_t)nc_opts_int(opts, "messageExpiryInterval");
        }
        if (nc_opts_find(opts, "payloadFormatIndicator")) {
            props.has_payload_format = 1;
            props.payload_format = (uint8_t)nc_opts_bool(opts, "payloadFormatIndicator");
        }
        has_props =
            props.n_user || props.content_type || props.has_message_expiry || props.has_payload_format;
    }
    nc_mqtt_publish m = {.topic = out->route,
                         .topic_len = rlen,
                         .payload = out->body,
                         .payload_len = out->len,
                         .qos = (uint8_t)nc_opts_int(opts, "qos"),
                         .retain = nc_opts_bool(opts, "retain"),
                         .props = has_props ? &props : NULL};
    /* what the MQTT 5 broker announced it takes (it would disconnect a client sending more): QoS lowered
     * to its Maximum QoS, retain dropped when it has no retained messages */
    if (m.qos > mc->t.broker_qos) m.qos = mc->t.broker_qos;
    if (!mc->t.retain_ok) m.retain = 0;
    m.dup = m.qos && nc_opts_bool(opts, "dup"); /* DUP is 0 at QoS 0 (MQTT 3.3.1.1) */
    if (m.qos) m.id = 1;                        /* the outbox gives it its id */
    if (mc->t.broker_max && nc_mqtt_publish_size(mc->t.version, &m) > mc->t.broker_max) {
        snprintf(out->why, sizeof out->why,
                 "a message of %zu bytes exceeds the broker's maximum packet size (%u)", out->len,
                 (unsigned)mc->t.broker_max);
        return NC_ETOOBIG;
    }
    if (!out->id && !m.qos) { /* a QoS 0 event: accepted once it is on its way (mqtt.js publish) */
        int r = nc_mqtt_conn_publish(mc->conn, &m);
        if (!r && out->accepted) out->accepted(out->arg, 0);
        return r;
    }
    if (!out->id) { /* QoS 1/2: accepted when the broker completed it (PUBACK, PUBCOMP), as mqtt.js */
        mc->out.len = 0;
        int r = nc_mqtt_write_publish(&mc->out, mc->t.version, &m);
        pend *p = r ? NULL : pend_new(NULL, out);
        if (!r && !p) r = NC_ENOMEM;
        if (!r && (r = keep(mc, mc->out.data, mc->out.len, p))) free(p);
        if (r == NC_ESTALLED)
            snprintf(out->why, sizeof out->why,
                     "too many unacknowledged QoS 1/2 messages (max_send_buffer_size, or 65,535 ids)");
        return r;
    }
    /* a request: its reply topic first; at QoS 1/2 kept until the broker completed it */
    char stackbuf[256];
    size_t tlen = rlen + 6;
    char *topic = tlen < sizeof stackbuf ? stackbuf : malloc(tlen + 1);
    if (!topic) return NC_ENOMEM;
    memcpy(topic, out->route, rlen);
    memcpy(topic + rlen, "/reply", 7);
    rsub *s = nc_map_get(&mc->subs, topic, tlen);
    int r = 0;
    if (!s) {
        if (!(s = calloc(1, sizeof *s)) || !(s->topic = strdup(topic)) ||
            nc_map_put(&mc->subs, topic, tlen, s, NULL)) {
            if (s) free(s->topic);
            free(s);
            r = NC_ENOMEM;
            goto done;
        }
        s->len = tlen;
    }
    if (s->subscribed && !s->inflight && !m.qos) {
        r = nc_mqtt_conn_publish(mc->conn, &m);
    } else if (s->subscribed && !s->inflight) {
        mc->out.len = 0;
        r = nc_mqtt_write_publish(&mc->out, mc->t.version, &m);
        pend *p = r ? NULL : pend_new(out->id, out);
        if (!r && !p) r = NC_ENOMEM;
        if (!r && (r = keep(mc, mc->out.data, mc->out.len, p))) free(p);
        if (r == NC_ESTALLED)
            snprintf(out->why, sizeof out->why,
                     "too many unacknowledged QoS 1/2 messages (max_send_buffer_size, or 65,535 ids)");
    } else {
        mc->out.len = 0;
        r = nc_mqtt_write_publish(&mc->out, mc->t.version, &m);
        if (!r) r = hold(s, out->id, strlen(out->id), mc->out.data, mc->out.len);
        if (!r && !s->inflight) r = sub_cmd(mc, s, 1);
    }
    if (!r)
        s->refs++;
    else if (!s->refs && !s->inflight && !s->held.len)
        rsub_free(mc, s);
done:
    if (topic != stackbuf) free(topic);
    return r;
}

static void mc_forget(void *state, const char *route, const char *id) {
    (void)id;
    mqtt_client *mc = state;
    char stackbuf[256];
    size_t rlen = strlen(route), tlen = rlen + 6;
    char *topic = tlen < sizeof stackbuf ? stackbuf : malloc(tlen + 1);
    if (!topic) return;
    memcpy(topic, route, rlen);
    memcpy(topic + rlen, "/reply", 7);
    rsub *s = nc_map_get(&mc->subs, topic, tlen);
    if (topic != stackbuf) free(topic);
    if (!s || s->refs == 0) return;
    s->refs--;
    if (s->refs == 0 && mc->state == C_CONNECTED && !s->refusing) settle(mc, s);
}

static void mc_close(void *state) {
    mqtt_client *mc = state;
    if (mc->state == C_IDLE) return;
    mc->end_err = NC_ECLOSED;
    snprintf(mc->end_msg, sizeof mc->end_msg, "Connection closed");
    mc->state = C_CLOSING;
    if (mc->conn)
        nc_mqtt_conn_close(mc->conn, 1);
    else if (mc->nopen == 0)
        all_closed(mc);
}

static void mc_destroy(void *state) {
    mqtt_client *mc = state;
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&mc->subs, &it, &k, &v)) {
        rsub_free(mc, v);
        it = 0;
    }
    nc_map_free(&mc->subs);
    nc_u64map_free(&mc->acks);
    pend *p;
    while ((p = nc_mqtt_outbox_pop(&mc->ob))) free(p); /* all_closed failed the events */
    nc_mqtt_outbox_free(&mc->ob);
    nc_buf_free(&mc->out);
    nc_mqtt_target_free(&mc->t);
    free(mc);
}

static const char *const schemes[] = {"mqtt", "mqtts", NULL};

const nc_client_transport nc_mqtt_client_transport = {
    .schemes = schemes,
    .options = nc_mqtt_options,
    .event_pattern_is_route = 0,
    .create = mc_create,
    .connect = mc_connect,
    .send = mc_send,
    .forget = mc_forget,
    .close = mc_close,
    .unwrap = NULL,
    .destroy = mc_destroy,
};
