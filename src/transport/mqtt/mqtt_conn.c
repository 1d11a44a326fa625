/* One MQTT connection on nestc's own stream (TLS from the first byte for mqtts://): CONNECT once the stream
 * is open, CONNACK checked (the connect timeout runs until it arrives), the sans-I/O parser
 * (codec/mqtt_proto.h) for everything the broker sends, the acknowledgements of incoming QoS 1 and 2
 * PUBLISHes and of our own QoS 2 ones, and the keep-alive: a PINGREQ every keep-alive period, the
 * connection lost when a whole period passes without any packet from the broker after one. Reconnecting
 * is the owner's job: one object per connection. Private. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"
#include "transport/common/dial_conn.h"
#include "transport/mqtt/mqtt.h"

enum { MS_DIALING, MS_CONNACK, MS_READY };

/* the dial (and its stream) is the first member */
#define CONN_OF(p) ((nc_mqtt_conn *)(p))

static void conn_free(nc_dial *d) {
    nc_mqtt_conn *c = CONN_OF(d);
    nc_mqtt_parser_free(&c->parser);
    nc_buf_free(&c->out);
    free(c);
}

static void conn_ended(nc_dial *d, int err, const char *msg) {
    nc_mqtt_conn *c = CONN_OF(d);
    if (c->cbs->on_end) c->cbs->on_end(c, err, msg);
}

static void st_end(nc_stream *s, int err, const char *msg) {
    nc_mqtt_conn *c = CONN_OF(s);
    int greeting = c->state == MS_CONNACK;
    nc_dial_conn_stream_end(&c->d, err, msg,
                            greeting ? "connected, but no CONNACK came (is it an MQTT broker?)" : NULL,
                            greeting ? "the broker closed the connection before its CONNACK" : NULL);
}

static void fail(nc_mqtt_conn *c, int err, const char *msg) {
    nc_dial_conn_fail(&c->d, err, msg, c->log, c->component, "MQTT", c->t->b.host, c->t->b.port);
}

int nc_mqtt_conn_ready(const nc_mqtt_conn *c) {
    return c && c->state == MS_READY && !c->d.ended && !c->d.end_err;
}

int nc_mqtt_conn_write(nc_mqtt_conn *c, const char *p, size_t n) {
    if (c->d.ended || c->d.end_err || c->state != MS_READY) return NC_ECLOSED;
    if (c->t->b.max_queue > 0 && nc_stream_unsent(&c->d.st) > (uint64_t)c->t->b.max_queue) return NC_ESTALLED;
    return nc_stream_write(&c->d.st, p, n);
}

uint16_t nc_mqtt_conn_next_id(nc_mqtt_conn *c) {
    if (++c->next_id == 0) c->next_id = 1;
    return c->next_id;
}

int nc_mqtt_conn_publish(nc_mqtt_conn *c, const nc_mqtt_publish *m) {
    if (c->t->broker_max && nc_mqtt_publish_size(c->t->version, m) > c->t->broker_max) return NC_ETOOBIG;
    c->out.len = 0;
    int r = nc_mqtt_write_publish(&c->out, c->t->version, m);
    if (r) return r;
    return nc_mqtt_conn_write(c, c->out.data, c->out.len);
}

/* ---- keep-alive (the dial's timer, unused once connected) ---------------------------------------- */

static void on_keepalive(uv_timer_t *tm) {
    nc_mqtt_conn *c = CONN_OF(tm->data);
    if (c->d.ended || c->d.end_err) return;
    if (c->ping_out && !c->heard) {
        char msg[120];
        snprintf(msg, sizeof msg, "no answer from the broker within the keep-alive period (%d s)",
                 c->t->keepalive_s);
        fail(c, NC_ETIMEDOUT, msg);
        return;
    }
    c->ping_out = 1;
    c->heard = 0;
    nc_buf b = NC_BUF_INIT;
    if (!nc_mqtt_write_pingreq(&b)) nc_stream_write(&c->d.st, b.data, b.len);
    nc_buf_free(&b);
}

/* ---- packets ------------------------------------------------------------------------------------- */

static void on_connack(nc_mqtt_conn *c, const nc_mqtt_pkt *pkt) {
    if (pkt->reason) {
        char msg[200];
        snprintf(msg, sizeof msg, "the broker refused the connection: %s",
                 nc_mqtt_reason_text(c->t->version, pkt->reason));
        /* 3.1.1: 4 bad user name or password, 5 not authorized; 5.0: 0x86, 0x87 */
        int auth = pkt->reason == 4 || pkt->reason == 5 || pkt->reason == 0x86 || pkt->reason == 0x87;
        fail(c, auth ? NC_EAUTH : NC_EPROTO, msg);
        return;
    }
    int ka = c->t->keepalive_s;
    if (pkt->props.has & NC_MQTTP_SERVER_KEEP_ALIVE) ka = pkt->props.server_keep_alive;
    c->t->broker_max = pkt->props.has & NC_MQTTP_MAXIMUM_PACKET_SIZE ? pkt->props.maximum_packet_size : 0;
    c->t->broker_qos = pkt->props.has & NC_MQTTP_MAXIMUM_QOS ? pkt->props.maximum_qos : 2;
    c->t->retain_ok = pkt->props.has & NC_MQTTP_RETAIN_AVAILABLE ? pkt->props.retain_available : 1;
    c->state = MS_READY;
    nc_dial_connected(&c->d);
    if (c->cbs->on_pkt) c->cbs->on_pkt(c, pkt); /* the owner reads what else it needs (Receive Maximum) */
    if (ka > 0) uv_timer_start(&c->d.timer, on_keepalive, (uint64_t)ka * 1000, (uint64_t)ka * 1000);
    if (c->cbs->on_ready) c->cbs->on_ready(c, pkt->session_present);
}

static void ack(nc_mqtt_conn *c, int type, uint16_t id, uint8_t reason) {
    nc_buf b = NC_BUF_INIT;
    if (!nc_mqtt_write_ack(&b, c->t->version, type, id, reason)) nc_stream_write(&c->d.st, b.data, b.len);
    nc_buf_free(&b);
}

void nc_mqtt_conn_ack(nc_mqtt_conn *c, int type, uint16_t id, uint8_t reason) {
    /* not through nc_mqtt_conn_write: an acknowledgement is never held back by max_queue */
    if (c->d.ended || c->d.end_err || c->state != MS_READY) return;
    ack(c, type, id, reason);
}

static int on_pkt(void *user, const nc_mqtt_pkt *pkt) {
    nc_mqtt_conn *c = user;
    if (c->d.ended || c->d.end_err) return 1;
    if (c->state != MS_READY) {
        if (pkt->type != NC_MQTT_CONNACK) {
            char msg[120];
            snprintf(msg, sizeof msg, "the broker sent %s before its CONNACK", nc_mqtt_type_name(pkt->type));
            fail(c, NC_EPROTO, msg);
            return 1;
        }
        on_connack(c, pkt);
        return c->d.ended || c->d.end_err ? 1 : 0;
    }
    switch (pkt->type) {
    case NC_MQTT_CONNACK:
        fail(c, NC_EPROTO, "the broker sent a second CONNACK");
        return 1;
    case NC_MQTT_PUBLISH: {
        int keep = c->cbs->on_pkt ? c->cbs->on_pkt(c, pkt) : 0;
        if (c->d.ended || c->d.end_err) return 1;
        if (keep) break; /* left unacknowledged, or acknowledged later with nc_mqtt_conn_ack */
        if (pkt->qos == 1) ack(c, NC_MQTT_PUBACK, pkt->id, 0);
        if (pkt->qos == 2) ack(c, NC_MQTT_PUBREC, pkt->id, 0);
        break;
    }
    case NC_MQTT_PUBREL: /* the broker's QoS 2 PUBLISH, second half: the owner forgets the id */
        ack(c, NC_MQTT_PUBCOMP, pkt->id, 0);
        if (c->cbs->on_pkt) c->cbs->on_pkt(c, pkt);
        break;
    case NC_MQTT_PUBREC: /* our QoS 2 PUBLISH, second half; the owner records that PUBREL was sent */
        /* MQTT 5 §4.3.3: a PUBREC with a failure reason (>= 0x80) ends the exchange: no PUBREL */
        if (pkt->reason < 0x80) ack(c, NC_MQTT_PUBREL, pkt->id, 0);
        if (c->cbs->on_pkt) c->cbs->on_pkt(c, pkt);
        break;
    case NC_MQTT_DISCONNECT: {
        char msg[200];
        snprintf(msg, sizeof msg, "the broker disconnected: %s",
                 nc_mqtt_reason_text(c->t->version, pkt->reason));
        fail(c, NC_ECONNCLOSED, msg);
        return 1;
    }
    case NC_MQTT_PINGRESP:
        break;
    default: /* SUBACK, UNSUBACK, PUBACK, PUBCOMP */
        if (c->cbs->on_pkt) c->cbs->on_pkt(c, pkt);
        break;
    }
    return c->d.ended || c->d.end_err ? 1 : 0;
}

static void st_data(nc_stream *s, const char *data, size_t len) {
    nc_mqtt_conn *c = CONN_OF(s);
    if (c->d.ended || c->d.end_err) return;
    c->heard = 1;
    char why[200];
    int r = nc_mqtt_feed(&c->parser, data, len, on_pkt, c, why, sizeof why);
    if (r && !c->d.ended && !c->d.end_err) {
        char text[260];
        snprintf(text, sizeof text, "%s%s", c->state != MS_READY ? "the peer is not an MQTT broker: " : "",
                 why);
        fail(c, r, text);
    }
}

static void st_open(nc_stream *s, int err, const char *msg) {
    (void)msg;
    nc_mqtt_conn *c = CONN_OF(s);
    if (err) return; /* st_end reports it */
    nc_mqtt_connect cn = {0};
    cn.version = c->t->version;
    cn.client_id = c->t->client_id;
    cn.client_id_len = strlen(c->t->client_id);
    cn.clean = c->t->clean;
    cn.keepalive = (uint16_t)c->t->keepalive_s;
    if (c->t->b.user) cn.username = c->t->b.user, cn.username_len = strlen(c->t->b.user);
    if (c->t->b.password) cn.password = c->t->b.password, cn.password_len = strlen(c->t->b.password);
    cn.maximum_packet_size = c->t->max_packet;
    if (c->t->version == NC_MQTT_V5) cn.receive_maximum = c->t->receive_max; /* 0: not announced (65,535) */
    if (c->t->version == NC_MQTT_V5 && c->t->has_session_expiry)
        cn.session_expiry = c->t->session_expiry;
    else if (c->t->version == NC_MQTT_V5 && !c->t->clean)
        cn.session_expiry = 0xFFFFFFFFu; /* kept while away */
    if (c->t->will_topic) {
        cn.will_topic = c->t->will_topic, cn.will_topic_len = strlen(c->t->will_topic);
        cn.will_payload = c->t->will_payload, cn.will_payload_len = strlen(c->t->will_payload);
        cn.will_qos = c->t->will_qos, cn.will_retain = c->t->will_retain;
    }
    nc_buf b = NC_BUF_INIT;
    int r = nc_mqtt_write_connect(&b, &cn);
    if (r || nc_stream_write(&c->d.st, b.data, b.len)) {
        nc_buf_free(&b);
        fail(c, r ? r : NC_ENOMEM,
             r == NC_EINVAL ? "invalid CONNECT (client id, user name, password or will)" : "out of memory");
        return;
    }
    nc_buf_free(&b);
    c->state = MS_CONNACK;
}

static const nc_stream_cbs stream_cbs = {st_open, st_data, NULL, st_end, nc_dial_stream_closed, NULL};
static const nc_dial_ops dial_ops = {conn_ended, conn_free, NULL};

nc_mqtt_conn *nc_mqtt_conn_new(nc_ioctx *io, nc_mqtt_target *t, int delay_ms, const nc_mqtt_conn_cbs *cbs,
                               const nc_logger *log, const char *component, void *owner) {
    nc_mqtt_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->t = t;
    c->cbs = cbs;
    c->log = log;
    c->component = component;
    c->owner = owner;
    c->next_id = (uint16_t)(uv_hrtime() & 0x7fff);
    nc_mqtt_parser_init(&c->parser, t->version, t->max_packet);
    nc_dial_start(&c->d, io, t->b.host, t->b.port, t->b.ssl, t->b.verify_host ? t->b.verify_host : t->b.host,
                  t->b.connect_timeout_ms, delay_ms, &stream_cbs, &dial_ops);
    return c;
}

void nc_mqtt_conn_close(nc_mqtt_conn *c, int graceful) {
    if (nc_dial_close_early(&c->d)) return; /* ended, or no stream yet */
    if (graceful && c->state == MS_READY && !c->d.end_err) {
        nc_buf b = NC_BUF_INIT;
        if (!nc_mqtt_write_disconnect(&b, c->t->version, 0)) nc_stream_write(&c->d.st, b.data, b.len);
        nc_buf_free(&b);
        nc_stream_end(&c->d.st);
    } else {
        nc_stream_close(&c->d.st, 0, "closed");
    }
}
