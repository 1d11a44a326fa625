/* The RabbitMQ client transport, default mode (spec rmq.md §2.1, §3, §5): one connection, one channel in
 * publisher-confirm mode. Once it is open: queue.declare of the work queue with NestJS's arguments (unless
 * noAssert or no queue is named), then basic.consume of the reply queue (the direct reply-to pseudo-queue
 * by default, no-ack) before any request is published; "connected" on consume-ok. Requests are published
 * to the default exchange with the queue as routing key, replyTo, correlationId = the request id, delivery
 * mode 2 with `persistent`, the call's headers as the headers table, and the message properties of the
 * client's and the call's options (NestJS RmqRecord: priority, messageId, ...); replies are matched by their
 * correlationId property (their bodies have no id). Events are published without correlationId and
 * replyTo and complete when the broker confirms them (basic.ack; basic.nack refuses them).
 *
 * A lost connection is re-established with the shared policy (transport/common/reconnect.h); calls made
 * meanwhile fail with NC_ECONNLOST, as NestJS's "Connection lost. Trying to reconnect..."; events awaiting
 * their confirm fail (the broker may or may not have them); pending requests on the direct reply-to
 * pseudo-queue fail with NC_ECONNLOST at once (their reply consumer is gone with the connection, so no
 * reply can come; NestJS leaves them to their timeout), those on a named replyQueue keep waiting. When the
 * attempts run out the client disconnects and pending calls fail with "Connection closed". */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/envelope.h"
#include "codec/json_build.h"
#include "codec/json_write.h"
#include "core/client_internal.h"
#include "core/fail.h"
#include "transport/amqp/amqp.h"
#include "transport/common/reconnect.h"
#include "util/map.h"

enum { C_IDLE, C_CONNECTING, C_CONNECTED, C_RECONNECTING, C_CLOSING };
enum { P_NONE, P_DECLARING, P_CONSUMING, P_READY };

#define MAX_HEADERS 64

/* An event waiting for its publisher confirm. */
typedef struct confirm {
    uint64_t seq;
    void (*accepted)(void *arg, int err);
    void (*refused)(void *arg, int err, const char *msg);
    void *arg;
} confirm;

typedef struct amqp_client {
    nc_client *cli;
    nc_amqp_target t;
    nc_amqp_conn *conn;
    int state, phase, nopen;
    nc_backoff retry;
    uint64_t ready_at;
    int end_err;
    char end_msg[320];
    confirm *conf; /* in publish order */
    size_t nconf, capconf;
    /* requests waiting for a reply through the direct reply-to pseudo-queue (id -> non-NULL): its
     * consumer dies with the connection, so they are failed when the connection is lost */
    nc_map direct;
    /* the properties of every publish from the client-wide options (spans into the client's option set,
     * which outlives the transport, and into exp); a call's own options are laid over a copy */
    nc_amqp_props tmpl;
    char exp[24];
} amqp_client;

static const nc_amqp_conn_cbs conn_cbs;

static const nc_logger *LOG(amqp_client *ac) {
    return nc_client__log(ac->cli);
}

/* ---- publisher confirms ------------------------------------------------------------------------------ */

static int conf_add(amqp_client *ac, uint64_t seq, const nc_outbound *out) {
    if (ac->nconf == ac->capconf) {
        size_t n = ac->capconf ? ac->capconf * 2 : 16;
        confirm *p = realloc(ac->conf, n * sizeof *p);
        if (!p) return NC_ENOMEM;
        ac->conf = p;
        ac->capconf = n;
    }
    ac->conf[ac->nconf++] = (confirm){seq, out->accepted, out->refused, out->arg};
    return 0;
}

/* basic.ack / basic.nack of our publishes: `multiple` settles every one up to the tag. */
static void on_confirm(amqp_client *ac, const nc_amqp_method *m) {
    int ok = m->id == NC_AMQP_BASIC_ACK, multiple = (m->flags & NC_AMQP_F_MULTIPLE) != 0;
    size_t keep = 0;
    /* copied out first: a completion may send again (conf grows meanwhile) */
    size_t n = ac->nconf, ndone = 0;
    confirm *done = malloc((n ? n : 1) * sizeof *done);
    if (!done) return;
    for (size_t i = 0; i < n; i++) {
        confirm *c = &ac->conf[i];
        if (c->seq == m->delivery_tag || (multiple && c->seq < m->delivery_tag))
            done[ndone++] = *c;
        else
            ac->conf[keep++] = *c;
    }
    ac->nconf = keep;
    for (size_t i = 0; i < ndone; i++) {
        if (ok)
            done[i].accepted(done[i].arg, 0);
        else if (done[i].refused)
            done[i].refused(done[i].arg, NC_EPROTO, "the broker refused the event (basic.nack)");
        else
            done[i].accepted(done[i].arg, NC_EPROTO);
    }
    free(done);
}

static void conf_fail_all(amqp_client *ac, int err) {
    while (ac->nconf) {
        confirm c = ac->conf[0];
        memmove(ac->conf, ac->conf + 1, --ac->nconf * sizeof *ac->conf);
        c.accepted(c.arg, err);
    }
}

/* ---- message properties (NestJS RmqRecord options) ------------------------------------------------ */

/* The string properties and their options; each an AMQP short string. */
static const struct {
    const char *name;
    uint16_t flag;
    size_t off;
} str_props[] = {
    {"messageId", NC_AMQP_P_MESSAGE_ID, offsetof(nc_amqp_props, message_id)},
    {"type", NC_AMQP_P_TYPE, offsetof(nc_amqp_props, type)},
    {"contentType", NC_AMQP_P_CONTENT_TYPE, offsetof(nc_amqp_props, content_type)},
    {"contentEncoding", NC_AMQP_P_CONTENT_ENCODING, offsetof(nc_amqp_props, content_encoding)},
    {"appId", NC_AMQP_P_APP_ID, offsetof(nc_amqp_props, app_id)},
    {"userId", NC_AMQP_P_USER_ID, offsetof(nc_amqp_props, user_id)},
};

/* Lays one option over the properties (options that are not properties are left alone). `exp` holds the
 * expiration's text (at least 24 bytes) and must live as long as p. Returns 0, or NC_EINVAL with the
 * reason in why (a string over the 255 bytes a short string holds). */
static int prop_set(nc_amqp_props *p, const nc_optval *v, char *exp, char *why, size_t wlen) {
    const char *n = v->spec->name;
    if (!strcmp(n, "persistent")) {
        p->delivery_mode = v->num ? 2 : 1;
    } else if (!strcmp(n, "priority")) {
        p->flags |= NC_AMQP_P_PRIORITY;
        p->priority = (uint8_t)v->num;
    } else if (!strcmp(n, "timestamp")) {
        p->flags |= NC_AMQP_P_TIMESTAMP;
        p->timestamp = (uint64_t)v->num;
    } else if (!strcmp(n, "expiration")) { /* amqplib: expiration.toString() */
        int k = snprintf(exp, 24, "%lld", v->num);
        p->flags |= NC_AMQP_P_EXPIRATION;
        p->expiration = (nc_amqp_span){exp, (size_t)k};
    } else {
        for (size_t i = 0; i < sizeof str_props / sizeof *str_props; i++) {
            if (strcmp(n, str_props[i].name)) continue;
            size_t len = strlen(v->text);
            if (len > 255) {
                snprintf(why, wlen, "option %s: %zu bytes, over the 255 an AMQP short string holds", n, len);
                return NC_EINVAL;
            }
            p->flags |= str_props[i].flag;
            *(nc_amqp_span *)((char *)p + str_props[i].off) = (nc_amqp_span){v->text, len};
            break;
        }
    }
    return 0;
}

/* The client-wide properties: delivery mode from `persistent`, then each property option given. */
static int tmpl_init(amqp_client *ac, const nc_optset *opts, char *why, size_t wlen) {
    ac->tmpl = (nc_amqp_props){.flags = NC_AMQP_P_HEADERS | NC_AMQP_P_DELIVERY_MODE};
    ac->tmpl.delivery_mode = ac->t.persistent ? 2 : 1;
    for (const nc_optset *s = opts; s; s = s->parent)
        for (size_t i = 0; i < s->n; i++) {
            if (nc_opts_find(opts, s->v[i].spec->name) != &s->v[i]) continue; /* overridden nearer */
            int r = prop_set(&ac->tmpl, &s->v[i], ac->exp, why, wlen);
            if (r) return r;
        }
    return 0;
}

/* The headers in NestJS's order: its mergeHeaders is {...client's, ...record's}, so the client's names come
 * first (with the call's value where it has one), then the call's other names. The core merges the other
 * way round (the call's first), so a call that has headers of its own before the client's is reordered; any
 * other call (the common case) is already in that order and costs a walk over the names. Returns NULL when
 * `merged` can be sent as it is, else a new object (the caller frees it). */
static json_t *nest_order(const json_t *client, const json_t *merged) {
    if (!client || !merged || !json_object_size(client)) return NULL;
    void *ci = json_object_iter((json_t *)client), *mi = json_object_iter((json_t *)merged);
    for (; ci && mi;
         ci = json_object_iter_next((json_t *)client, ci), mi = json_object_iter_next((json_t *)merged, mi))
        if (strcmp(json_object_iter_key(ci), json_object_iter_key(mi))) break;
    if (!ci) return NULL; /* the client's names lead already */
    json_t *o = json_object();
    const char *k;
    json_t *v;
    if (!o) return NULL;
    json_object_foreach((json_t *)client, k, v) {
        json_t *m = json_object_get(merged, k);
        json_object_set(o, k, m ? m : v);
    }
    json_object_foreach((json_t *)merged, k, v) if (!json_object_get(o, k)) json_object_set(o, k, v);
    return o;
}

/* ---- replies ------------------------------------------------------------------------------------------ */

static void on_reply(amqp_client *ac, const nc_amqp_event *ev) {
    const nc_amqp_props *p = &ev->props;
    const char *body = ev->body.p ? ev->body.p : "";
    json_t *root = NULL;
    char why[120];
    int js_accepts = 0;
    if (nc_json_parse_js(body, ev->body.n, &root, why, sizeof why, &js_accepts))
        root = nc_json_string_js(body, ev->body.n, 0); /* NestJS: JSON.parse, else the raw text */
    if (!root) return;
    nc_response resp;
    nc_envelope_read_response(root, &resp);
    nc_reply_in r = {0};
    if (p->flags & NC_AMQP_P_CORRELATION_ID) {
        r.id = p->correlation_id.p ? p->correlation_id.p : "";
        r.id_len = p->correlation_id.n;
    } else if (json_is_string(resp.id)) { /* a peer that only puts the id in the body */
        r.id = json_string_value(resp.id);
        r.id_len = json_string_length(resp.id);
    }
    /* JSON.stringify's text: a lone surrogate (WTF-8 after the parse) back as its \udxxx escape, which
     * json_dumps refuses (it returned NULL: the value was lost), numbers as JavaScript writes them */
    nc_buf vb = {0}, eb = {0};
    int vok = resp.response && nc_json_write(&vb, resp.response) == 0;
    int eok = resp.err && nc_json_write(&eb, resp.err) == 0;
    const char *value = vok ? nc_buf_cstr(&vb) : NULL;
    const char *err = eok ? nc_buf_cstr(&eb) : NULL;
    nc_header hs[MAX_HEADERS];
    char *store[MAX_HEADERS];
    size_t nh = p->headers ? nc_amqp_headers(p->headers, hs, MAX_HEADERS, store) : 0;
    if (r.id) {
        r.value = value;
        r.value_len = value ? vb.len : 0;
        r.err = err;
        r.err_len = err ? eb.len : 0;
        r.final = resp.final;
        r.headers = nh ? hs : NULL;
        r.nheaders = nh;
        nc_client__on_reply(ac->cli, &r);
    }
    for (size_t i = 0; i < nh; i++) free(store[i]);
    nc_buf_free(&vb);
    nc_buf_free(&eb);
    nc_json_free(root);
}

/* ---- connection -------------------------------------------------------------------------------------- */

static void step_consume(amqp_client *ac) {
    /* NestJS default mode: with exchange and routingKey the client binds the queue to that (existing)
     * exchange; pipelined before the consume (a refused bind closes the channel) */
    if (!ac->t.wildcards && !ac->t.fanout && ac->t.exchange_given && ac->t.routing_key && ac->t.queue[0]) {
        nc_amqp_method b = {.id = NC_AMQP_QUEUE_BIND};
        b.queue = (nc_amqp_span){ac->t.queue, strlen(ac->t.queue)};
        b.exchange = (nc_amqp_span){ac->t.exchange, strlen(ac->t.exchange)};
        b.routing_key = (nc_amqp_span){ac->t.routing_key, strlen(ac->t.routing_key)};
        nc_amqp_conn_method(ac->conn, &b);
    }
    nc_amqp_method m = {.id = NC_AMQP_BASIC_CONSUME, .flags = NC_AMQP_F_NO_ACK};
    m.queue = (nc_amqp_span){ac->t.reply_queue, strlen(ac->t.reply_queue)};
    ac->phase = P_CONSUMING;
    nc_amqp_conn_method(ac->conn, &m);
}

static void conn_ready(nc_amqp_conn *c) {
    amqp_client *ac = c->owner;
    ac->ready_at = uv_now(nc_client__io(ac->cli)->loop);
    if (ac->t.wildcards || ac->t.fanout) { /* NestJS: the exchange is declared, not the queue */
        nc_amqp_method m = {.id = NC_AMQP_EXCHANGE_DECLARE, .flags = NC_AMQP_F_DURABLE};
        m.table = ac->t.exchange_args;
        m.exchange = (nc_amqp_span){ac->t.exchange, strlen(ac->t.exchange)};
        m.type = (nc_amqp_span){ac->t.exchange_type, strlen(ac->t.exchange_type)};
        ac->phase = P_DECLARING;
        nc_amqp_conn_method(ac->conn, &m);
        return;
    }
    if (ac->t.no_assert || !ac->t.queue[0]) {
        step_consume(ac);
        return;
    }
    nc_amqp_method m = {.id = NC_AMQP_QUEUE_DECLARE};
    m.queue = (nc_amqp_span){ac->t.queue, strlen(ac->t.queue)};
    if (ac->t.durable) m.flags |= NC_AMQP_F_DURABLE;
    if (ac->t.exclusive) m.flags |= NC_AMQP_F_EXCLUSIVE;
    if (ac->t.auto_delete) m.flags |= NC_AMQP_F_AUTO_DELETE;
    m.table = ac->t.queue_args; /* queueOptions' arguments, as amqplib builds them */
    ac->phase = P_DECLARING;
    nc_amqp_conn_method(ac->conn, &m);
}

static void serving(amqp_client *ac) {
    ac->phase = P_READY;
    if (ac->state == C_CONNECTING) {
        ac->state = C_CONNECTED;
        nc_client__connected(ac->cli);
        return;
    }
    if (ac->state != C_RECONNECTING) return;
    ac->state = C_CONNECTED;
    nc_logf(LOG(ac), NC_LOG_INFO, "Client", "reconnected to the AMQP broker at %s:%d", ac->t.b.host,
            ac->t.b.port);
    nc_client__status(ac->cli, "connected", 0);
}

static void conn_event(nc_amqp_conn *c, const nc_amqp_event *ev) {
    amqp_client *ac = c->owner;
    const nc_amqp_method *m = &ev->m;
    if (ev->kind == NC_AMQP_EV_MESSAGE) {
        if (m->id == NC_AMQP_BASIC_DELIVER) on_reply(ac, ev);
        return;
    }
    switch (m->id) {
    case NC_AMQP_QUEUE_DECLARE_OK:
    case NC_AMQP_EXCHANGE_DECLARE_OK:
        if (ac->phase == P_DECLARING) step_consume(ac);
        break;
    case NC_AMQP_BASIC_CONSUME_OK:
        if (ac->phase == P_CONSUMING) serving(ac);
        break;
    case NC_AMQP_BASIC_ACK:
    case NC_AMQP_BASIC_NACK:
        on_confirm(ac, m);
        break;
    case NC_AMQP_BASIC_CANCEL:
        nc_logf(LOG(ac), NC_LOG_ERROR, "Client", "the broker cancelled the reply consumer of %s",
                ac->t.reply_queue);
        nc_amqp_conn_close(c, 0);
        break;
    case NC_AMQP_CONNECTION_BLOCKED:
        nc_client__status(ac->cli, "blocked", 0);
        break;
    case NC_AMQP_CONNECTION_UNBLOCKED:
        nc_client__status(ac->cli, "unblocked", 0);
        break;
    default:
        break;
    }
}

static nc_amqp_conn *open_conn(amqp_client *ac, int delay) {
    nc_amqp_conn *c =
        nc_amqp_conn_new(nc_client__io(ac->cli), &ac->t, delay, 1, &conn_cbs, LOG(ac), "Client", ac);
    if (c) ac->nopen++;
    ac->phase = P_NONE;
    return c;
}

static void all_closed(amqp_client *ac) {
    int err = ac->end_err;
    conf_fail_all(ac, err ? err : NC_ECONNCLOSED);
    ac->state = C_IDLE;
    ac->end_err = 0;
    nc_client__disconnected(ac->cli, err, ac->end_msg);
}

/* Fails the requests whose replies could only come through the lost connection's direct reply-to
 * consumer (NestJS leaves them to their timeout). */
static void fail_direct(amqp_client *ac) {
    size_t n = 0, it = 0;
    const char *k;
    void *v;
    while (nc_map_next(&ac->direct, &it, &k, &v)) n++;
    if (!n) return;
    char **ids = calloc(n, sizeof *ids);
    size_t got = 0;
    it = 0;
    while (ids && nc_map_next(&ac->direct, &it, &k, &v))
        if ((ids[got] = strdup(k))) got++;
    nc_map_free(&ac->direct);
    memset(&ac->direct, 0, sizeof ac->direct);
    for (size_t i = 0; i < got; i++) {
        nc_client__fail_call(ac->cli, ids[i], NC_ECONNLOST,
                             "connection lost: the reply can no longer arrive (direct reply-to)");
        free(ids[i]);
    }
    free(ids);
}

static void conn_end(nc_amqp_conn *c, int err, const char *msg) {
    amqp_client *ac = c->owner;
    ac->nopen--;
    ac->conn = NULL;
    ac->phase = P_NONE;
    /* confirms of that connection will not come, nor replies to its direct reply-to consumer */
    conf_fail_all(ac, NC_ECONNLOST);
    if (ac->state != C_CLOSING) fail_direct(ac);
    /* several brokers: the first connection fails only once each was tried (NestJS's ClientRMQ retries
     * connectFailed until the last URL failed) */
    if (ac->state == C_CONNECTING && ++ac->t.round_failed < ac->t.nhosts) {
        nc_logf(LOG(ac), NC_LOG_WARN, "Client", "AMQP connection to %s:%d failed: %s; trying the next broker",
                c->host, c->port, msg && *msg ? msg : "closed");
        if ((ac->conn = open_conn(ac, 0))) return;
    }
    ac->t.round_failed = 0;
    if (ac->state == C_CLOSING || ac->state == C_CONNECTING) {
        if (ac->state == C_CONNECTING && !ac->end_err) {
            ac->end_err = err ? err : NC_ECONNCLOSED;
            snprintf(ac->end_msg, sizeof ac->end_msg, "%s", msg && *msg ? msg : "Connection closed");
        }
        all_closed(ac);
        return;
    }
    uv_loop_t *lp = nc_client__io(ac->cli)->loop;
    if (ac->ready_at && uv_now(lp) - ac->ready_at >= NC_AMQP_HEALTHY_MS) nc_backoff_reset(&ac->retry);
    ac->ready_at = 0;
    char text[300];
    snprintf(text, sizeof text, "AMQP connection to %s:%d lost: %s", ac->t.b.host, ac->t.b.port,
             msg && *msg ? msg : "closed");
    nc_log_level level = NC_LOG_WARN;
    char note[64];
    int delay = nc_reconnect_next(&ac->retry, lp, NC_LOG_WARN, &level, note, sizeof note);
    if (delay < 0) {
        nc_logf(LOG(ac), NC_LOG_ERROR, "Client", "%s; reconnection attempts exhausted", text);
        nc_client__error(ac->cli, err ? err : NC_ECONNCLOSED, text);
        int telling = err == NC_EPROTO || err == NC_ETLS || err == NC_EAUTH || err == NC_ETOOBIG;
        ac->end_err = telling ? err : NC_ECONNCLOSED;
        snprintf(ac->end_msg, sizeof ac->end_msg, "%s", telling ? text : "Connection closed");
        all_closed(ac);
        return;
    }
    nc_logf(LOG(ac), level, "Client", "%s; reconnecting in %d ms%s", text, delay, note);
    if (ac->state != C_RECONNECTING) {
        ac->state = C_RECONNECTING;
        nc_client__status(ac->cli, "reconnecting", err);
    }
    ac->conn = open_conn(ac, delay);
    if (!ac->conn) {
        ac->end_err = NC_ENOMEM;
        snprintf(ac->end_msg, sizeof ac->end_msg, "out of memory");
        all_closed(ac);
    }
}

static const nc_amqp_conn_cbs conn_cbs = {conn_ready, conn_event, conn_end};

/* ---- ops ------------------------------------------------------------------------------------------------
 */

static int ac_create(nc_client *cli, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_USERINFO | NC_URL_PATH | NC_URL_CLIENT | NC_URL_HOSTS, why, sizeof why))
        return nc_fail(nc_client__log(cli), "Client", NC_EINVAL, "%s", why);
    amqp_client *ac = calloc(1, sizeof *ac);
    if (!ac) return NC_ENOMEM;
    ac->cli = cli;
    const nc_client_cfg *cfg = nc_client__cfg(cli);
    const nc_optset *opts = nc_client__opts(cli);
    int r = nc_amqp_target_init(&ac->t, url, opts, cfg->has_tls ? &cfg->tls : NULL, nc_client__log(cli),
                                "Client");
    if (r) {
        free(ac);
        return r;
    }
    if ((r = tmpl_init(ac, opts, why, sizeof why))) {
        nc_amqp_target_free(&ac->t);
        free(ac);
        return nc_fail(nc_client__log(cli), "Client", r, "%s", why);
    }
    ac->t.b.max_queue = cfg->max_send_buffer_size;
    ac->t.b.connect_timeout_ms = nc_opts_find(opts, "connectTimeout")
                                     ? (int)nc_opts_int(opts, "connectTimeout")
                                     : cfg->connect_timeout_ms;
    int limit = ac->t.max_attempts > 0    ? ac->t.max_attempts
                : cfg->retry_attempts > 0 ? cfg->retry_attempts
                                          : 0;
    nc_reconnect_init(&ac->retry, cfg->retry_delay_ms, 1000, limit, ac);
    *state = ac;
    return 0;
}

static int ac_connect(void *state) {
    amqp_client *ac = state;
    ac->state = C_CONNECTING;
    ac->end_err = 0;
    nc_backoff_reset(&ac->retry);
    ac->conn = open_conn(ac, 0);
    return ac->conn ? 0 : NC_ENOMEM;
}

static int ac_send(void *state, nc_outbound *out) {
    amqp_client *ac = state;
    if (ac->state == C_RECONNECTING) return NC_ECONNLOST;
    if (ac->state != C_CONNECTED || ac->phase != P_READY || !nc_amqp_conn_ready(ac->conn))
        return NC_ECONNCLOSED;
    nc_amqp_props props = ac->tmpl;
    char exp[24];
    /* the call's own options over the client's (its parent set is the client's, already in tmpl);
     * correlationId and replyTo stay ours, set below */
    for (size_t i = 0; out->opts && i < out->opts->n; i++) {
        int r = prop_set(&props, &out->opts->v[i], exp, out->why, sizeof out->why);
        if (r) return r;
    }
    if (out->id) {
        props.flags |= NC_AMQP_P_CORRELATION_ID | NC_AMQP_P_REPLY_TO;
        props.correlation_id = (nc_amqp_span){out->id, strlen(out->id)};
        props.reply_to = (nc_amqp_span){ac->t.reply_queue, strlen(ac->t.reply_queue)};
    }
    uint64_t seq = 0;
    /* wildcards and fanout: to the exchange, the pattern as routing key (spec rmq.md §2.2, §2.3): a string
     * pattern as it is, any other as NestJS's JSON.stringify(pattern), not normalised (keys in the caller's
     * order, where the route sorts them) */
    int to_ex = ac->t.wildcards || ac->t.fanout;
    const char *ex = to_ex ? ac->t.exchange : "";
    const char *rk = !to_ex                                             ? ac->t.queue
                     : out->pattern_json && out->pattern_json[0] != '"' ? out->pattern_json
                                                                        : out->route;
    if (strlen(rk) > 255) {
        snprintf(out->why, sizeof out->why, "the pattern is over 255 bytes: no AMQP routing key");
        return NC_EINVAL;
    }
    json_t *ordered = nest_order(nc_client__cfg(ac->cli)->headers, out->headers);
    props.headers = ordered ? ordered : (json_t *)out->headers; /* NULL: an empty table, as NestJS sends */
    int r = nc_amqp_conn_publish(ac->conn, ex, rk, &props, out->body, out->len, &seq); /* encodes at once */
    json_decref(ordered);
    if (r == NC_EINVAL) snprintf(out->why, sizeof out->why, "the headers cannot be sent as an AMQP table");
    if (!r && out->id && !strcmp(ac->t.reply_queue, NC_AMQP_REPLY_TO))
        nc_map_put(&ac->direct, out->id, strlen(out->id), ac, NULL); /* out of memory: left to its timeout */
    if (r || out->id) return r;
    if ((r = conf_add(ac, seq, out))) return r;
    return 0;
}

static void ac_forget(void *state, const char *route, const char *id) {
    (void)route;
    amqp_client *ac = state;
    nc_map_del(&ac->direct, id, strlen(id));
}

static void ac_close(void *state) {
    amqp_client *ac = state;
    if (ac->state == C_IDLE) return;
    ac->end_err = NC_ECLOSED;
    snprintf(ac->end_msg, sizeof ac->end_msg, "Connection closed");
    ac->state = C_CLOSING;
    if (ac->conn)
        nc_amqp_conn_close(ac->conn, 1);
    else if (ac->nopen == 0)
        all_closed(ac);
}

static void ac_destroy(void *state) {
    amqp_client *ac = state;
    free(ac->conf);
    nc_map_free(&ac->direct);
    nc_amqp_target_free(&ac->t);
    free(ac);
}

static const char *const schemes[] = {"amqp", "amqps", NULL};

const nc_client_transport nc_amqp_client_transport = {
    .schemes = schemes,
    .options = nc_amqp_options,
    .event_pattern_is_route = 0,
    .create = ac_create,
    .connect = ac_connect,
    .send = ac_send,
    .forget = ac_forget,
    .close = ac_close,
    .unwrap = NULL,
    .destroy = ac_destroy,
};
