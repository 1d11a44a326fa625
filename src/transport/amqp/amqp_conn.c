/* One AMQP 0-9-1 connection on nestc's own stream (TLS from the first byte for amqps://): the protocol
 * header, connection.start → start-ok (PLAIN), tune → tune-ok (the smaller frame_max, one channel, the
 * heartbeat), open (the vhost), channel.open of channel 1, confirm.select when asked; the connect timeout
 * runs until all of that is done. Then heartbeats (one sent when nothing else was for half the period, the
 * connection lost after two periods without a byte from the broker), connection.close and channel.close
 * from the broker (answered, then the connection fails with the broker's reply text: 403 ACCESS_REFUSED
 * is NC_EAUTH), connection.blocked/unblocked handed to the owner, and a graceful connection.close.
 * Reconnecting is the owner's job: one object per connection. Private. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"
#include "transport/amqp/amqp.h"
#include "transport/common/dial_conn.h"

enum { AS_DIALING, AS_START, AS_TUNE, AS_OPEN, AS_CHANNEL, AS_CONFIRM, AS_READY, AS_CLOSING };

#define CONN_OF(p) ((nc_amqp_conn *)(p))
#define LOOP(c) ((c)->d.io->loop)

static void conn_free(nc_dial *d) {
    nc_amqp_conn *c = CONN_OF(d);
    nc_amqp_parser_free(&c->parser);
    nc_buf_free(&c->out);
    free(c);
}

static void conn_ended(nc_dial *d, int err, const char *msg) {
    nc_amqp_conn *c = CONN_OF(d);
    if (c->cbs->on_end) c->cbs->on_end(c, err, msg);
}

static void st_end(nc_stream *s, int err, const char *msg) {
    nc_amqp_conn *c = CONN_OF(s);
    int greeting = c->state > AS_DIALING && c->state < AS_READY;
    nc_dial_conn_stream_end(&c->d, err, msg,
                            greeting ? "connected, but the AMQP handshake did not finish (is it a RabbitMQ "
                                       "broker?)"
                                     : NULL,
                            greeting ? "the broker closed the connection during the AMQP handshake" : NULL);
}

static void fail(nc_amqp_conn *c, int err, const char *msg) {
    nc_dial_conn_fail(&c->d, err, msg, c->log, c->component, "AMQP", c->host, c->port);
}

static int dead(const nc_amqp_conn *c) {
    return c->d.ended || c->d.end_err;
}

int nc_amqp_conn_ready(const nc_amqp_conn *c) {
    return c && c->state == AS_READY && !dead(c);
}

/* Writes what is in c->out. */
static int flush(nc_amqp_conn *c) {
    c->last_out = uv_now(LOOP(c));
    int r = nc_stream_write(&c->d.st, c->out.data, c->out.len);
    c->out.len = 0;
    return r;
}

/* A method on any channel during the handshake or for acknowledgements: never held back. */
static int send_method(nc_amqp_conn *c, nc_amqp_method *m) {
    c->out.len = 0;
    int r = nc_amqp_write_method(&c->out, m);
    return r ? r : flush(c);
}

int nc_amqp_conn_method(nc_amqp_conn *c, nc_amqp_method *m) {
    if (!nc_amqp_conn_ready(c)) return NC_ECLOSED;
    m->channel = NC_AMQP_CHANNEL;
    int acking = m->id == NC_AMQP_BASIC_ACK || m->id == NC_AMQP_BASIC_NACK || m->id == NC_AMQP_BASIC_REJECT;
    if (!acking && c->t->b.max_queue > 0 && nc_stream_unsent(&c->d.st) > (uint64_t)c->t->b.max_queue)
        return NC_ESTALLED;
    return send_method(c, m);
}

int nc_amqp_conn_publish(nc_amqp_conn *c, const char *exchange, const char *routing_key,
                         const nc_amqp_props *props, const char *body, size_t len, uint64_t *seq) {
    if (!nc_amqp_conn_ready(c)) return NC_ECLOSED;
    if (c->t->b.max_queue > 0 && nc_stream_unsent(&c->d.st) > (uint64_t)c->t->b.max_queue) return NC_ESTALLED;
    nc_amqp_method m = {.id = NC_AMQP_BASIC_PUBLISH, .channel = NC_AMQP_CHANNEL};
    m.exchange = (nc_amqp_span){exchange, strlen(exchange)};
    m.routing_key = (nc_amqp_span){routing_key, strlen(routing_key)};
    c->out.len = 0;
    int r = nc_amqp_write_publish(&c->out, &m, props, body, len, c->frame_max);
    if (r) return r;
    if ((r = flush(c))) return r;
    c->pub_seq++;
    if (seq) *seq = c->pub_seq;
    return 0;
}

/* ---- heartbeats (the dial's timer, unused once ready) ---------------------------------------------- */

static void on_heartbeat(uv_timer_t *tm) {
    nc_amqp_conn *c = CONN_OF(tm->data);
    if (dead(c)) return;
    uint64_t now = uv_now(LOOP(c)), period = (uint64_t)c->heartbeat_s * 1000;
    if (now - c->last_in >= 2 * period) {
        char msg[120];
        snprintf(msg, sizeof msg, "no heartbeat from the broker in two periods (%d s each)", c->heartbeat_s);
        fail(c, NC_ETIMEDOUT, msg);
        return;
    }
    if (now - c->last_out >= period / 2) {
        c->out.len = 0;
        if (!nc_amqp_write_heartbeat(&c->out)) flush(c);
    }
}

static void on_close_timeout(uv_timer_t *tm) {
    nc_amqp_conn *c = CONN_OF(tm->data);
    if (!c->d.ended) nc_stream_close(&c->d.st, 0, "closed");
}

/* ---- what the broker sends ------------------------------------------------------------------------- */

static void span_text(char *dst, size_t cap, nc_amqp_span s) {
    snprintf(dst, cap, "%.*s", (int)(s.n < 200 ? s.n : 200), s.p ? s.p : "");
}

static void on_broker_close(nc_amqp_conn *c, const nc_amqp_method *m, int channel) {
    nc_amqp_method ok = {.id = channel ? NC_AMQP_CHANNEL_CLOSE_OK : NC_AMQP_CONNECTION_CLOSE_OK,
                         .channel = m->channel};
    send_method(c, &ok);
    char text[220], msg[300];
    span_text(text, sizeof text, m->text);
    if (m->failing_class)
        snprintf(msg, sizeof msg, "the broker closed the %s: %s (%u, in %s)",
                 channel ? "channel" : "connection", text, m->reply_code,
                 nc_amqp_method_name(NC_AMQP_ID(m->failing_class, m->failing_method)));
    else
        snprintf(msg, sizeof msg, "the broker closed the %s: %s (%u)", channel ? "channel" : "connection",
                 text, m->reply_code);
    /* 403 ACCESS_REFUSED (a wrong password, a vhost or queue the user may not use), 530 NOT_ALLOWED (no
     * such vhost) */
    fail(c, m->reply_code == 403 || m->reply_code == 530 ? NC_EAUTH : NC_EPROTO, msg);
}

/* Whether the broker's space-separated mechanisms hold `name`, as a whole word. */
static int offers(nc_amqp_span mechs, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i + n <= mechs.n; i++)
        if (!memcmp(mechs.p + i, name, n) && (i == 0 || mechs.p[i - 1] == ' ') &&
            (i + n == mechs.n || mechs.p[i + n] == ' '))
            return 1;
    return 0;
}

static void handshake(nc_amqp_conn *c, const nc_amqp_event *ev) {
    const nc_amqp_method *m = &ev->m;
    char msg[200];
    if (ev->kind != NC_AMQP_EV_METHOD) {
        fail(c, NC_EPROTO, "the broker sent a message during the AMQP handshake");
        return;
    }
    if (c->state == AS_START && m->id == NC_AMQP_CONNECTION_START) {
        const char *mech = c->t->external ? "EXTERNAL" : "PLAIN";
        if (!offers(m->mechanisms, mech)) {
            char offered[120];
            span_text(offered, sizeof offered, m->mechanisms);
            /* EXTERNAL: RabbitMQ offers it with the rabbitmq_auth_mechanism_ssl plugin and
             * auth_mechanisms including it */
            snprintf(msg, sizeof msg, "the broker does not offer the %s mechanism (it offers: %s)", mech,
                     offered[0] ? offered : "none");
            fail(c, NC_EAUTH, msg);
            return;
        }
        json_t *props = json_pack("{s:s,s:s}", "product", "nestc", "platform", "C");
        c->out.len = 0;
        int r = nc_amqp_write_start_ok(&c->out, props,
                                       c->t->external ? NC_AMQP_MECH_EXTERNAL : NC_AMQP_MECH_PLAIN,
                                       c->t->b.user, c->t->b.password, NULL);
        json_decref(props);
        if (r || flush(c)) {
            fail(c, r ? r : NC_ENOMEM,
                 r == NC_EINVAL ? "invalid start-ok (user name or password)" : "out of memory");
            return;
        }
        c->state = AS_TUNE;
        return;
    }
    if (c->state == AS_TUNE && m->id == NC_AMQP_CONNECTION_SECURE) {
        fail(c, NC_EAUTH, "the broker asked for a secure/secure-ok exchange (PLAIN and EXTERNAL need none)");
        return;
    }
    if (c->state == AS_TUNE && m->id == NC_AMQP_CONNECTION_TUNE) {
        uint32_t ours = c->t->frame_max, theirs = m->frame_max;
        if (theirs && theirs < NC_AMQP_FRAME_MIN) {
            snprintf(msg, sizeof msg, "the broker's frame_max %u is under the protocol's minimum of %u",
                     (unsigned)theirs, NC_AMQP_FRAME_MIN);
            fail(c, NC_EPROTO, msg);
            return;
        }
        c->frame_max = theirs && theirs < ours ? theirs : ours;
        /* 0 on either side turns heartbeats off, else the smaller period (amqplib asks for its own) */
        int hb = c->t->heartbeat_s;
        if (hb && m->heartbeat && m->heartbeat < hb) hb = m->heartbeat;
        c->heartbeat_s = hb;
        nc_amqp_method ok = {.id = NC_AMQP_CONNECTION_TUNE_OK,
                             .channel_max = NC_AMQP_CHANNEL,
                             .frame_max = c->frame_max,
                             .heartbeat = (uint16_t)hb};
        nc_amqp_method open = {.id = NC_AMQP_CONNECTION_OPEN};
        open.vhost = (nc_amqp_span){c->t->vhost, strlen(c->t->vhost)};
        c->out.len = 0;
        int r = nc_amqp_write_method(&c->out, &ok);
        if (!r) r = nc_amqp_write_method(&c->out, &open);
        if (r || flush(c)) {
            fail(c, r == NC_EINVAL ? NC_EINVAL : NC_ENOMEM,
                 r == NC_EINVAL ? "vhost name over 255 bytes" : "out of memory");
            return;
        }
        nc_amqp_parser_set_frame_max(&c->parser, c->frame_max);
        c->state = AS_OPEN;
        return;
    }
    if (c->state == AS_OPEN && m->id == NC_AMQP_CONNECTION_OPEN_OK) {
        nc_amqp_method ch = {.id = NC_AMQP_CHANNEL_OPEN, .channel = NC_AMQP_CHANNEL};
        send_method(c, &ch);
        c->state = AS_CHANNEL;
        return;
    }
    if (c->state == AS_CHANNEL && m->id == NC_AMQP_CHANNEL_OPEN_OK && c->confirm) {
        nc_amqp_method cs = {.id = NC_AMQP_CONFIRM_SELECT, .channel = NC_AMQP_CHANNEL};
        send_method(c, &cs);
        c->state = AS_CONFIRM;
        return;
    }
    if ((c->state == AS_CHANNEL && m->id == NC_AMQP_CHANNEL_OPEN_OK) ||
        (c->state == AS_CONFIRM && m->id == NC_AMQP_CONFIRM_SELECT_OK)) {
        c->state = AS_READY;
        c->t->round_failed = 0;
        nc_dial_connected(&c->d);
        if (c->t->nhosts > 1) /* which of the brokers this connection reached */
            nc_logf(c->log, NC_LOG_INFO, c->component, "connected to the AMQP broker at %s:%d (%d of %d)",
                    c->host, c->port, c->host_index + 1, c->t->nhosts);
        if (c->heartbeat_s > 0) {
            uint64_t tick = (uint64_t)c->heartbeat_s * 500;
            uv_timer_start(&c->d.timer, on_heartbeat, tick, tick);
        }
        if (c->cbs->on_ready) c->cbs->on_ready(c);
        return;
    }
    snprintf(msg, sizeof msg, "the broker sent %s during the AMQP handshake", nc_amqp_method_name(m->id));
    fail(c, NC_EPROTO, msg);
}

static int on_event(void *user, const nc_amqp_event *ev) {
    nc_amqp_conn *c = user;
    if (dead(c)) return 1;
    if (ev->kind == NC_AMQP_EV_HEARTBEAT) return 0;
    const nc_amqp_method *m = &ev->m;
    if (ev->kind == NC_AMQP_EV_METHOD) {
        if (m->id == NC_AMQP_CONNECTION_CLOSE || m->id == NC_AMQP_CHANNEL_CLOSE) {
            on_broker_close(c, m, m->id == NC_AMQP_CHANNEL_CLOSE);
            return 1;
        }
        if (m->id == NC_AMQP_CONNECTION_CLOSE_OK) {
            if (c->state == AS_CLOSING)
                nc_stream_end(&c->d.st);
            else
                fail(c, NC_EPROTO, "the broker sent connection.close-ok to no connection.close");
            return 1;
        }
        /* flow control may come as soon as the connection is open, before our channel is: only an open
         * connection's owner hears of it (a blocked broker simply does not read what we publish) */
        if ((m->id == NC_AMQP_CONNECTION_BLOCKED || m->id == NC_AMQP_CONNECTION_UNBLOCKED) &&
            c->state != AS_READY)
            return 0;
    }
    if (c->state == AS_CLOSING) return 0;
    if (c->state != AS_READY) {
        handshake(c, ev);
        return dead(c) ? 1 : 0;
    }
    if (ev->kind == NC_AMQP_EV_METHOD && m->id == NC_AMQP_CHANNEL_FLOW) {
        nc_amqp_method ok = {
            .id = NC_AMQP_CHANNEL_FLOW_OK, .channel = ev->channel, .flags = m->flags & NC_AMQP_F_ACTIVE};
        send_method(c, &ok);
        return 0;
    }
    if (c->cbs->on_event) c->cbs->on_event(c, ev);
    return dead(c) ? 1 : 0;
}

static void st_data(nc_stream *s, const char *data, size_t len) {
    nc_amqp_conn *c = CONN_OF(s);
    if (dead(c)) return;
    c->last_in = uv_now(LOOP(c));
    char why[200];
    int r = nc_amqp_feed(&c->parser, data, len, on_event, c, why, sizeof why);
    if (r && !dead(c)) {
        char text[260];
        snprintf(text, sizeof text, "%s%s",
                 c->state < AS_READY ? "the peer is not an AMQP 0-9-1 broker: " : "", why);
        fail(c, r, text);
    }
}

static void st_open(nc_stream *s, int err, const char *msg) {
    (void)msg;
    nc_amqp_conn *c = CONN_OF(s);
    if (err) return; /* st_end reports it */
    c->out.len = 0;
    if (nc_amqp_write_protocol_header(&c->out) || flush(c)) {
        fail(c, NC_ENOMEM, "out of memory");
        return;
    }
    c->last_in = uv_now(LOOP(c));
    c->state = AS_START;
}

static const nc_stream_cbs stream_cbs = {st_open, st_data, NULL, st_end, nc_dial_stream_closed, NULL};
static const nc_dial_ops dial_ops = {conn_ended, conn_free, NULL};

nc_amqp_conn *nc_amqp_conn_new(nc_ioctx *io, nc_amqp_target *t, int delay_ms, int confirm,
                               const nc_amqp_conn_cbs *cbs, const nc_logger *log, const char *component,
                               void *owner) {
    nc_amqp_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->t = t;
    c->cbs = cbs;
    c->log = log;
    c->component = component;
    c->owner = owner;
    c->confirm = confirm;
    c->frame_max = NC_AMQP_FRAME_MIN;
    nc_amqp_parser_init(&c->parser, NC_AMQP_ROLE_CLIENT);
    /* each connection to the next broker of a list (amqp-connection-manager's round robin) */
    c->host_index = nc_amqp_target_next(t);
    /* the list's strings live as long as the target; b.host is replaced at each connection */
    c->host = t->nhosts ? t->hosts[c->host_index] : t->b.host;
    c->port = t->b.port;
    const char *verify = t->nhosts && t->own_name ? c->host : t->b.verify_host ? t->b.verify_host : t->b.host;
    nc_dial_start(&c->d, io, c->host, c->port, t->b.ssl, verify, t->b.connect_timeout_ms, delay_ms,
                  &stream_cbs, &dial_ops);
    return c;
}

void nc_amqp_conn_close(nc_amqp_conn *c, int graceful) {
    if (nc_dial_close_early(&c->d)) return; /* ended, or no stream yet */
    if (graceful && c->state == AS_READY && !c->d.end_err) {
        nc_amqp_method m = {.id = NC_AMQP_CONNECTION_CLOSE, .reply_code = 200};
        m.text = (nc_amqp_span){"OK", 2};
        c->state = AS_CLOSING;
        send_method(c, &m);
        /* close-ok ends the stream; a broker that does not answer is not waited for long */
        uv_timer_stop(&c->d.timer);
        uv_timer_start(&c->d.timer, on_close_timeout, 2000, 0);
    } else {
        nc_stream_close(&c->d.st, 0, "closed");
    }
}
