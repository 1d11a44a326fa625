#include "codec/amqp_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"

#define DEFAULT_MAX_MESSAGE (128u * 1024 * 1024)
#define DEFAULT_MAX_DEPTH 32
#define FRAME_OVERHEAD 8 /* type, channel, size, frame-end */

/* ---- the method table ----
 * Each method's arguments as pairs of (wire type, field): wire types o octet, s short, l long, L long long,
 * S short string, X long string, b bit, T table; fields name nc_amqp_method members (see slot_*), '-' a
 * reserved argument (read and ignored, written as zero or empty). Consecutive bits share octets. */
enum { DIR_S = 1, DIR_C = 2, CONTENT = 4 };

typedef struct mdesc {
    uint32_t id;
    const char *name;
    const char *args;
    int dir; /* DIR_S: a broker sends it, DIR_C: a client sends it; CONTENT: content follows */
} mdesc;

static const mdesc METHODS[] = {
    {NC_AMQP_CONNECTION_START, "connection.start", "oMomTsXmXl", DIR_S},
    {NC_AMQP_CONNECTION_START_OK, "connection.start-ok", "TsSaXBSL", DIR_C},
    {NC_AMQP_CONNECTION_SECURE, "connection.secure", "XB", DIR_S},
    {NC_AMQP_CONNECTION_SECURE_OK, "connection.secure-ok", "XB", DIR_C},
    {NC_AMQP_CONNECTION_TUNE, "connection.tune", "snlfsh", DIR_S},
    {NC_AMQP_CONNECTION_TUNE_OK, "connection.tune-ok", "snlfsh", DIR_C},
    {NC_AMQP_CONNECTION_OPEN, "connection.open", "SvS-b-", DIR_C},
    {NC_AMQP_CONNECTION_OPEN_OK, "connection.open-ok", "S-", DIR_S},
    {NC_AMQP_CONNECTION_CLOSE, "connection.close", "scStsCsD", DIR_S | DIR_C},
    {NC_AMQP_CONNECTION_CLOSE_OK, "connection.close-ok", "", DIR_S | DIR_C},
    {NC_AMQP_CONNECTION_BLOCKED, "connection.blocked", "St", DIR_S},
    {NC_AMQP_CONNECTION_UNBLOCKED, "connection.unblocked", "", DIR_S},
    {NC_AMQP_CONNECTION_UPDATE_SECRET, "connection.update-secret", "XBSt", DIR_S},
    {NC_AMQP_CONNECTION_UPDATE_SECRET_OK, "connection.update-secret-ok", "", DIR_C},
    {NC_AMQP_CHANNEL_OPEN, "channel.open", "S-", DIR_C},
    {NC_AMQP_CHANNEL_OPEN_OK, "channel.open-ok", "X-", DIR_S},
    {NC_AMQP_CHANNEL_FLOW, "channel.flow", "bY", DIR_S},
    {NC_AMQP_CHANNEL_FLOW_OK, "channel.flow-ok", "bY", DIR_S | DIR_C},
    {NC_AMQP_CHANNEL_CLOSE, "channel.close", "scStsCsD", DIR_S | DIR_C},
    {NC_AMQP_CHANNEL_CLOSE_OK, "channel.close-ok", "", DIR_S | DIR_C},
    {NC_AMQP_EXCHANGE_DECLARE, "exchange.declare", "s-SeSybPbUbAbIbWTa", DIR_C},
    {NC_AMQP_EXCHANGE_DECLARE_OK, "exchange.declare-ok", "", DIR_S},
    {NC_AMQP_EXCHANGE_BIND, "exchange.bind", "s-SeSrSkbWTa", DIR_C},
    {NC_AMQP_EXCHANGE_BIND_OK, "exchange.bind-ok", "", DIR_S},
    {NC_AMQP_QUEUE_DECLARE, "queue.declare", "s-SqbPbUbEbAbWTa", DIR_C},
    {NC_AMQP_QUEUE_DECLARE_OK, "queue.declare-ok", "Sqlmlc", DIR_S},
    {NC_AMQP_QUEUE_BIND, "queue.bind", "s-SqSeSkbWTa", DIR_C},
    {NC_AMQP_QUEUE_BIND_OK, "queue.bind-ok", "", DIR_S},
    {NC_AMQP_QUEUE_PURGE, "queue.purge", "s-SqbW", DIR_C},
    {NC_AMQP_QUEUE_PURGE_OK, "queue.purge-ok", "lm", DIR_S},
    {NC_AMQP_QUEUE_DELETE, "queue.delete", "s-SqbJbjbW", DIR_C},
    {NC_AMQP_QUEUE_DELETE_OK, "queue.delete-ok", "lm", DIR_S},
    {NC_AMQP_BASIC_QOS, "basic.qos", "lzspbG", DIR_C},
    {NC_AMQP_BASIC_QOS_OK, "basic.qos-ok", "", DIR_S},
    {NC_AMQP_BASIC_CONSUME, "basic.consume", "s-SqSgbNbKbEbWTa", DIR_C},
    {NC_AMQP_BASIC_CONSUME_OK, "basic.consume-ok", "Sg", DIR_S},
    {NC_AMQP_BASIC_CANCEL, "basic.cancel", "SgbW", DIR_S | DIR_C},
    {NC_AMQP_BASIC_CANCEL_OK, "basic.cancel-ok", "Sg", DIR_S | DIR_C},
    {NC_AMQP_BASIC_PUBLISH, "basic.publish", "s-SeSkbObi", DIR_C | CONTENT},
    {NC_AMQP_BASIC_RETURN, "basic.return", "scStSeSk", DIR_S | CONTENT},
    {NC_AMQP_BASIC_DELIVER, "basic.deliver", "SgLdbVSeSk", DIR_S | CONTENT},
    {NC_AMQP_BASIC_GET_OK, "basic.get-ok", "LdbVSeSklm", DIR_S | CONTENT},
    {NC_AMQP_BASIC_GET_EMPTY, "basic.get-empty", "S-", DIR_S},
    {NC_AMQP_BASIC_ACK, "basic.ack", "LdbZ", DIR_S | DIR_C},
    {NC_AMQP_BASIC_REJECT, "basic.reject", "LdbR", DIR_C},
    {NC_AMQP_BASIC_RECOVER, "basic.recover", "bR", DIR_C},
    {NC_AMQP_BASIC_RECOVER_OK, "basic.recover-ok", "", DIR_S},
    {NC_AMQP_BASIC_NACK, "basic.nack", "LdbZbR", DIR_S | DIR_C},
    {NC_AMQP_CONFIRM_SELECT, "confirm.select", "bW", DIR_C},
    {NC_AMQP_CONFIRM_SELECT_OK, "confirm.select-ok", "", DIR_S},
};

/* METHODS is in ascending id order: a binary search. */
static const mdesc *find(uint32_t id) {
    size_t lo = 0, hi = sizeof METHODS / sizeof METHODS[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (METHODS[mid].id == id) return &METHODS[mid];
        if (METHODS[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *nc_amqp_method_name(uint32_t id) {
    const mdesc *d = find(id);
    return d ? d->name : "unknown";
}

/* The field a (type, slot) pair names, by type. Dummy targets for '-'. */
static uint32_t bitflag(char slot) {
    switch (slot) {
    case 'P':
        return NC_AMQP_F_PASSIVE;
    case 'U':
        return NC_AMQP_F_DURABLE;
    case 'A':
        return NC_AMQP_F_AUTO_DELETE;
    case 'I':
        return NC_AMQP_F_INTERNAL;
    case 'W':
        return NC_AMQP_F_NOWAIT;
    case 'E':
        return NC_AMQP_F_EXCLUSIVE;
    case 'N':
        return NC_AMQP_F_NO_LOCAL;
    case 'K':
        return NC_AMQP_F_NO_ACK;
    case 'G':
        return NC_AMQP_F_GLOBAL;
    case 'R':
        return NC_AMQP_F_REQUEUE;
    case 'Z':
        return NC_AMQP_F_MULTIPLE;
    case 'V':
        return NC_AMQP_F_REDELIVERED;
    case 'Y':
        return NC_AMQP_F_ACTIVE;
    case 'O':
        return NC_AMQP_F_MANDATORY;
    case 'i':
        return NC_AMQP_F_IMMEDIATE;
    case 'J':
        return NC_AMQP_F_IF_UNUSED;
    case 'j':
        return NC_AMQP_F_IF_EMPTY;
    default:
        return 0;
    }
}

static nc_amqp_span *slot_str(nc_amqp_method *m, char t, char slot) {
    if (t == 'X') {
        switch (slot) {
        case 'm':
            return &m->mechanisms;
        case 'l':
            return &m->locales;
        case 'B':
            return &m->blob;
        default:
            return NULL;
        }
    }
    switch (slot) {
    case 't':
        return &m->text;
    case 'q':
        return &m->queue;
    case 'e':
        return &m->exchange;
    case 'k':
        return &m->routing_key;
    case 'g':
        return &m->consumer_tag;
    case 'r':
        return &m->source;
    case 'y':
        return &m->type;
    case 'v':
        return &m->vhost;
    case 'a':
        return &m->mechanism;
    case 'L':
        return &m->locale;
    default:
        return NULL;
    }
}

static void num_set(nc_amqp_method *m, char t, char slot, uint64_t v) {
    switch (t) {
    case 'o':
        if (slot == 'M') m->version_major = (uint8_t)v;
        if (slot == 'm') m->version_minor = (uint8_t)v;
        break;
    case 's':
        if (slot == 'c') m->reply_code = (uint16_t)v;
        if (slot == 'C') m->failing_class = (uint16_t)v;
        if (slot == 'D') m->failing_method = (uint16_t)v;
        if (slot == 'n') m->channel_max = (uint16_t)v;
        if (slot == 'h') m->heartbeat = (uint16_t)v;
        if (slot == 'p') m->prefetch_count = (uint16_t)v;
        break;
    case 'l':
        if (slot == 'f') m->frame_max = (uint32_t)v;
        if (slot == 'm') m->message_count = (uint32_t)v;
        if (slot == 'c') m->consumer_count = (uint32_t)v;
        if (slot == 'z') m->prefetch_size = (uint32_t)v;
        break;
    case 'L':
        if (slot == 'd') m->delivery_tag = v;
        break;
    }
}

static uint64_t num_get(const nc_amqp_method *m, char t, char slot) {
    switch (t) {
    case 'o':
        return slot == 'M' ? m->version_major : slot == 'm' ? m->version_minor : 0;
    case 's':
        return slot == 'c'   ? m->reply_code
               : slot == 'C' ? m->failing_class
               : slot == 'D' ? m->failing_method
               : slot == 'n' ? m->channel_max
               : slot == 'h' ? m->heartbeat
               : slot == 'p' ? m->prefetch_count
                             : 0;
    case 'l':
        return slot == 'f'   ? m->frame_max
               : slot == 'm' ? m->message_count
               : slot == 'c' ? m->consumer_count
               : slot == 'z' ? m->prefetch_size
                             : 0;
    case 'L':
        return slot == 'd' ? m->delivery_tag : 0;
    }
    return 0;
}

static int num_size(char t) {
    return t == 'o' ? 1 : t == 's' ? 2 : t == 'l' ? 4 : t == 'L' ? 8 : 0;
}

static uint64_t be(const unsigned char *p, int k) {
    uint64_t v = 0;
    for (int i = 0; i < k; i++) v = v << 8 | p[i];
    return v;
}

static int put_be(nc_buf *b, uint64_t v, int k) {
    char t[8];
    for (int i = 0; i < k; i++) t[i] = (char)(v >> (8 * (k - 1 - i)));
    return nc_buf_append(b, t, (size_t)k);
}

/* Decodes a method frame's payload. On success m->table may hold a decoded table (the caller's). */
static int decode_method(const unsigned char *p, size_t n, uint16_t channel, int role, int max_depth,
                         nc_amqp_method *m, int *content, char *why, size_t whylen) {
    memset(m, 0, sizeof *m);
    m->channel = channel;
    if (n < 4) {
        snprintf(why, whylen, "a method frame on channel %u of %zu bytes (4 needed for class and method)",
                 channel, n);
        return NC_EPROTO;
    }
    m->id = (uint32_t)be(p, 4);
    const mdesc *d = find(m->id);
    int want = role == NC_AMQP_ROLE_SERVER ? DIR_C : DIR_S;
    if (!d || !(d->dir & want)) {
        if (d)
            snprintf(why, whylen, "method %s on channel %u, which a %s does not send", d->name, channel,
                     role == NC_AMQP_ROLE_SERVER ? "client" : "broker");
        else
            snprintf(why, whylen, "unknown method %u.%u on channel %u", m->id >> 16, m->id & 0xFFFF, channel);
        return NC_EPROTO;
    }
    *content = (d->dir & CONTENT) != 0;
    if ((channel == 0) != ((m->id >> 16) == 10)) {
        snprintf(why, whylen, "method %s on channel %u (%s)", d->name, channel,
                 channel == 0 ? "channel 0 carries only connection methods"
                              : "connection methods belong on channel 0");
        return NC_EPROTO;
    }
    size_t at = 4;
    int bit = 8; /* bits left in the current octet (8: none open) */
    unsigned char bits = 0;
    for (const char *a = d->args; *a; a += 2) {
        char t = a[0], slot = a[1];
        if (t == 'b') {
            if (bit == 8) {
                if (at >= n) goto truncated;
                bits = p[at++];
                bit = 0;
            }
            if (bits >> bit & 1) m->flags |= bitflag(slot);
            if (++bit == 8) bit = 8;
            continue;
        }
        bit = 8;
        int k = num_size(t);
        if (k) {
            if (n - at < (size_t)k) goto truncated;
            num_set(m, t, slot, be(p + at, k));
            at += (size_t)k;
        } else if (t == 'S' || t == 'X') {
            size_t hl = t == 'S' ? 1 : 4;
            if (n - at < hl) goto truncated;
            size_t len = (size_t)be(p + at, (int)hl);
            at += hl;
            if (n - at < len) goto truncated;
            nc_amqp_span *s = slot_str(m, t, slot);
            if (s) {
                s->p = (const char *)p + at;
                s->n = len;
            }
            at += len;
        } else { /* T */
            if (n - at < 4) goto truncated;
            size_t len = (size_t)be(p + at, 4);
            at += 4;
            if (n - at < len) goto truncated;
            char tw[200];
            int rc = nc_amqp_table_decode((const char *)p + at, len, max_depth, &m->table, tw, sizeof tw);
            if (rc) {
                snprintf(why, whylen, "%s on channel %u: %s", d->name, channel, tw);
                return rc;
            }
            at += len;
        }
    }
    if (at != n) {
        snprintf(why, whylen, "%s on channel %u: %zu bytes after its arguments", d->name, channel, n - at);
        json_decref(m->table);
        m->table = NULL;
        return NC_EPROTO;
    }
    return 0;
truncated:
    snprintf(why, whylen, "%s on channel %u: arguments truncated (frame of %zu bytes)", d->name, channel, n);
    json_decref(m->table);
    m->table = NULL;
    return NC_EPROTO;
}

/* ---- content headers ---- */

static const uint16_t PROP_ORDER[14] = {
    NC_AMQP_P_CONTENT_TYPE, NC_AMQP_P_CONTENT_ENCODING, NC_AMQP_P_HEADERS,  NC_AMQP_P_DELIVERY_MODE,
    NC_AMQP_P_PRIORITY,     NC_AMQP_P_CORRELATION_ID,   NC_AMQP_P_REPLY_TO, NC_AMQP_P_EXPIRATION,
    NC_AMQP_P_MESSAGE_ID,   NC_AMQP_P_TIMESTAMP,        NC_AMQP_P_TYPE,     NC_AMQP_P_USER_ID,
    NC_AMQP_P_APP_ID,       NC_AMQP_P_CLUSTER_ID};

static nc_amqp_span *prop_str(nc_amqp_props *pr, uint16_t bit) {
    switch (bit) {
    case NC_AMQP_P_CONTENT_TYPE:
        return &pr->content_type;
    case NC_AMQP_P_CONTENT_ENCODING:
        return &pr->content_encoding;
    case NC_AMQP_P_CORRELATION_ID:
        return &pr->correlation_id;
    case NC_AMQP_P_REPLY_TO:
        return &pr->reply_to;
    case NC_AMQP_P_EXPIRATION:
        return &pr->expiration;
    case NC_AMQP_P_MESSAGE_ID:
        return &pr->message_id;
    case NC_AMQP_P_TYPE:
        return &pr->type;
    case NC_AMQP_P_USER_ID:
        return &pr->user_id;
    case NC_AMQP_P_APP_ID:
        return &pr->app_id;
    case NC_AMQP_P_CLUSTER_ID:
        return &pr->cluster_id;
    default:
        return NULL;
    }
}

/* A content header's payload: class, weight, body size, property flags, properties. */
static int decode_header(const unsigned char *p, size_t n, uint16_t channel, int max_depth,
                         uint64_t *body_size, nc_amqp_props *pr, char *why, size_t whylen) {
    memset(pr, 0, sizeof *pr);
    if (n < 14) {
        snprintf(why, whylen, "a content header on channel %u of %zu bytes (14 needed)", channel, n);
        return NC_EPROTO;
    }
    unsigned cls = (unsigned)be(p, 2), weight = (unsigned)be(p + 2, 2);
    if (cls != 60 || weight != 0) {
        snprintf(why, whylen,
                 "a content header on channel %u with class %u and weight %u (60 and 0 expected)", channel,
                 cls, weight);
        return NC_EPROTO;
    }
    *body_size = be(p + 4, 8);
    pr->flags = (uint16_t)be(p + 12, 2);
    size_t at = 14;
    if (pr->flags & 3) {
        snprintf(why, whylen,
                 "a content header on channel %u with property flags 0x%04x (bits 0-1 unused by basic)",
                 channel, pr->flags);
        return NC_EPROTO;
    }
    const char *what = NULL;
    for (int i = 0; i < 14 && !what; i++) {
        uint16_t bit = PROP_ORDER[i];
        if (!(pr->flags & bit)) continue;
        nc_amqp_span *s = prop_str(pr, bit);
        if (s) {
            if (n - at < 1 || n - at - 1 < p[at]) {
                what = "a short string property";
                break;
            }
            s->p = (const char *)p + at + 1;
            s->n = p[at];
            at += 1 + s->n;
        } else if (bit == NC_AMQP_P_DELIVERY_MODE || bit == NC_AMQP_P_PRIORITY) {
            if (n - at < 1) {
                what = bit == NC_AMQP_P_PRIORITY ? "priority" : "delivery-mode";
                break;
            }
            if (bit == NC_AMQP_P_PRIORITY)
                pr->priority = p[at++];
            else
                pr->delivery_mode = p[at++];
        } else if (bit == NC_AMQP_P_TIMESTAMP) {
            if (n - at < 8) {
                what = "timestamp";
                break;
            }
            pr->timestamp = be(p + at, 8);
            at += 8;
        } else { /* headers */
            size_t len = n - at < 4 ? 0 : (size_t)be(p + at, 4);
            if (n - at < 4 || n - at - 4 < len) {
                what = "headers";
                break;
            }
            char tw[200];
            int rc =
                nc_amqp_table_decode((const char *)p + at + 4, len, max_depth, &pr->headers, tw, sizeof tw);
            if (rc) {
                snprintf(why, whylen, "the content header on channel %u: headers: %s", channel, tw);
                return rc;
            }
            at += 4 + len;
        }
    }
    if (!what && at != n) what = "the end (bytes after the properties)";
    if (what) {
        snprintf(why, whylen, "the content header on channel %u: truncated or malformed at %s", channel,
                 what);
        json_decref(pr->headers);
        pr->headers = NULL;
        return NC_EPROTO;
    }
    return 0;
}

/* ---- the parser ---- */

/* A message being assembled on one channel: its method frame and content header payloads copied (the
 * parser's buffer moves between feeds), then the body. */
struct nc_amqp_pending {
    uint16_t channel;
    int have_header;
    size_t method_len; /* meta = method payload then header payload */
    nc_buf meta;
    uint64_t body_size;
    nc_buf body;
    nc_amqp_method m;    /* decoded from meta once; spans into meta */
    nc_amqp_props props; /* decoded from meta once the header came */
};

/* The spans of a method, to move them when the buffer they point into moves. */
static int method_spans(nc_amqp_method *m, nc_amqp_span **out) {
    nc_amqp_span *s[] = {&m->text,       &m->queue,   &m->exchange, &m->routing_key, &m->consumer_tag,
                         &m->source,     &m->type,    &m->vhost,    &m->mechanism,   &m->locale,
                         &m->mechanisms, &m->locales, &m->blob};
    memcpy(out, s, sizeof s);
    return (int)(sizeof s / sizeof s[0]);
}

void nc_amqp_parser_init(nc_amqp_parser *p, int role) {
    memset(p, 0, sizeof *p);
    p->role = role;
    p->frame_max = NC_AMQP_FRAME_DEFAULT;
    p->max_message = DEFAULT_MAX_MESSAGE;
    p->max_depth = DEFAULT_MAX_DEPTH;
    p->max_pending = 2048; /* RabbitMQ's default channel_max is 2047 */
}

void nc_amqp_parser_free(nc_amqp_parser *p) {
    for (size_t i = 0; i < p->cap_pend; i++) { /* slots past n_pend keep buffers for reuse */
        if (i < p->n_pend) {
            json_decref(p->pend[i].m.table);
            json_decref(p->pend[i].props.headers);
        }
        nc_buf_free(&p->pend[i].meta);
        nc_buf_free(&p->pend[i].body);
    }
    free(p->pend);
    nc_buf_free(&p->buf);
    memset(p, 0, sizeof *p);
}

void nc_amqp_parser_set_frame_max(nc_amqp_parser *p, uint32_t frame_max) {
    p->frame_max = frame_max == 0                  ? UINT32_MAX
                   : frame_max < NC_AMQP_FRAME_MIN ? NC_AMQP_FRAME_MIN
                                                   : frame_max;
}

size_t nc_amqp_pending_bytes(const nc_amqp_parser *p) {
    return p->buf.len - p->pos;
}

static nc_amqp_pending *pend_find(nc_amqp_parser *p, uint16_t ch) {
    for (size_t i = 0; i < p->n_pend; i++)
        if (p->pend[i].channel == ch) return &p->pend[i];
    return NULL;
}

/* Ends a message in assembly; its buffers stay in the freed slot for the next message (a large body's
 * buffer is given back). */
static void pend_drop(nc_amqp_parser *p, nc_amqp_pending *x) {
    p->held -= x->body.len;
    json_decref(x->m.table);
    json_decref(x->props.headers);
    if (x->body.cap > 65536) nc_buf_free(&x->body);
    nc_buf meta = x->meta, body = x->body;
    nc_amqp_pending *last = &p->pend[--p->n_pend];
    *x = *last;
    last->meta = meta;
    last->body = body;
}

static nc_amqp_pending *pend_add(nc_amqp_parser *p, uint16_t ch) {
    if (p->n_pend == p->cap_pend) {
        size_t nc = p->cap_pend ? p->cap_pend * 2 : 4;
        nc_amqp_pending *n = realloc(p->pend, nc * sizeof *n);
        if (!n) return NULL;
        memset(n + p->cap_pend, 0, (nc - p->cap_pend) * sizeof *n);
        p->pend = n;
        p->cap_pend = nc;
    }
    nc_amqp_pending *x = &p->pend[p->n_pend++];
    nc_buf meta = x->meta, body = x->body;
    memset(x, 0, sizeof *x);
    x->meta = meta;
    x->body = body;
    x->meta.len = x->body.len = 0;
    x->channel = ch;
    return x;
}

/* Appends a frame payload to the message's copy; the method's spans, pointing into `base` (the frame
 * itself, or the copy that may move as it grows), are moved to the copy. */
static int meta_append(nc_amqp_pending *x, const char *pl, size_t n, const char *base) {
    nc_amqp_span *sp[16];
    size_t off[16];
    int k = method_spans(&x->m, sp);
    size_t at = base == pl ? x->meta.len : 0;
    for (int i = 0; i < k; i++) off[i] = sp[i]->p ? at + (size_t)(sp[i]->p - base) : SIZE_MAX;
    if (nc_buf_append(&x->meta, pl, n)) return NC_ENOMEM;
    for (int i = 0; i < k; i++)
        if (off[i] != SIZE_MAX) sp[i]->p = x->meta.data + off[i];
    return 0;
}

/* Reports a whole message (method and header decoded when they came). */
static void deliver(nc_amqp_pending *x, const char *body, size_t body_len, nc_amqp_event_fn fn, void *user,
                    int *stop) {
    nc_amqp_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = NC_AMQP_EV_MESSAGE;
    ev.channel = x->channel;
    ev.m = x->m;
    ev.props = x->props;
    ev.body.p = body;
    ev.body.n = body_len;
    *stop = fn(user, &ev);
}

static const char *frame_name(int type) {
    switch (type) {
    case NC_AMQP_FRAME_METHOD:
        return "method";
    case NC_AMQP_FRAME_HEADER:
        return "content header";
    case NC_AMQP_FRAME_BODY:
        return "body";
    case NC_AMQP_FRAME_HEARTBEAT:
        return "heartbeat";
    default:
        return "unknown";
    }
}

/* One frame's payload. Sets *stop when the callback asked to stop. */
static int frame(nc_amqp_parser *p, int type, uint16_t ch, const char *pl, size_t n, nc_amqp_event_fn fn,
                 void *user, int *stop, char *why, size_t whylen) {
    const unsigned char *u = (const unsigned char *)pl;
    nc_amqp_pending *x = pend_find(p, ch);
    if (type == NC_AMQP_FRAME_HEARTBEAT) {
        if (ch != 0) {
            snprintf(why, whylen, "a heartbeat frame on channel %u (heartbeats belong on channel 0)", ch);
            return NC_EPROTO;
        }
        nc_amqp_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = NC_AMQP_EV_HEARTBEAT;
        *stop = fn(user, &ev);
        return 0;
    }
    if (type == NC_AMQP_FRAME_METHOD) {
        if (x) {
            snprintf(why, whylen,
                     "a method frame on channel %u while a message's content is incomplete (%s of %llu body "
                     "bytes)",
                     ch, x->have_header ? "body" : "no header", (unsigned long long)x->body_size);
            return NC_EPROTO;
        }
        nc_amqp_event ev;
        memset(&ev, 0, sizeof ev);
        int content = 0;
        int rc = decode_method(u, n, ch, p->role, p->max_depth, &ev.m, &content, why, whylen);
        if (rc) return rc;
        if (content) {
            if (p->max_pending && p->n_pend >= p->max_pending) {
                json_decref(ev.m.table);
                snprintf(why, whylen, "%s on channel %u: more than %zu messages in assembly at once",
                         nc_amqp_method_name(ev.m.id), ch, p->max_pending);
                return NC_ETOOBIG;
            }
            if (!(x = pend_add(p, ch))) {
                json_decref(ev.m.table);
                return NC_ENOMEM;
            }
            x->m = ev.m; /* decoded once; its spans move into the copy */
            x->method_len = n;
            return meta_append(x, pl, n, pl);
        }
        ev.kind = NC_AMQP_EV_METHOD;
        ev.channel = ch;
        *stop = fn(user, &ev);
        json_decref(ev.m.table);
        return 0;
    }
    if (type == NC_AMQP_FRAME_HEADER) {
        if (!x || x->have_header) {
            snprintf(why, whylen, "a content header frame on channel %u without a pending %s", ch,
                     x ? "message (its header came already)" : "basic.deliver, basic.return or basic.get-ok");
            return NC_EPROTO;
        }
        if (meta_append(x, pl, n, x->meta.data)) return NC_ENOMEM;
        int rc = decode_header((const unsigned char *)x->meta.data + x->method_len, n, ch, p->max_depth,
                               &x->body_size, &x->props, why, whylen);
        if (rc) return rc;
        if (p->max_message && x->body_size > p->max_message) {
            snprintf(why, whylen, "a message of %llu bytes on channel %u (limit %zu)",
                     (unsigned long long)x->body_size, ch, p->max_message);
            return NC_ETOOBIG;
        }
        x->have_header = 1;
        if (x->body_size == 0) {
            deliver(x, "", 0, fn, user, stop);
            pend_drop(p, x);
        }
        return 0;
    }
    /* body */
    if (!x || !x->have_header) {
        snprintf(why, whylen, "a body frame on channel %u without a %s", ch,
                 x ? "content header" : "pending message");
        return NC_EPROTO;
    }
    if (n > x->body_size - x->body.len) {
        snprintf(why, whylen, "a body frame on channel %u past the body size announced (%llu bytes)", ch,
                 (unsigned long long)x->body_size);
        return NC_EPROTO;
    }
    if (x->body.len == 0 && n == x->body_size) { /* the whole body in one frame: reported in place */
        deliver(x, pl, n, fn, user, stop);
        pend_drop(p, x);
        return 0;
    }
    /* a broker interleaving large messages on many channels is held to one message's worth in total */
    if (p->max_message && n > p->max_message - p->held) {
        snprintf(why, whylen, "a body frame on channel %u: messages in assembly hold over %zu bytes", ch,
                 p->max_message);
        return NC_ETOOBIG;
    }
    if (nc_buf_append(&x->body, pl, n)) return NC_ENOMEM;
    p->held += n;
    if (x->body.len == x->body_size) {
        deliver(x, x->body.data, x->body.len, fn, user, stop);
        pend_drop(p, x);
    }
    return 0;
}

/* Parses the whole frames at b (avail bytes); *used gets the bytes of the frames reported. */
static int parse(nc_amqp_parser *p, const unsigned char *b, size_t avail, size_t *used, nc_amqp_event_fn fn,
                 void *user, char *why, size_t whylen) {
    *used = 0;
    while (avail) {
        if (!p->started && b[0] == 'A') {
            /* a broker that does not speak 0-9-1 answers the protocol header with the one it speaks */
            if (avail < NC_AMQP_PROTOCOL_HEADER_LEN) return 0;
            snprintf(why, whylen,
                     "the broker answered with protocol header AMQP %u-%u-%u-%u (it does not speak 0-9-1)",
                     b[4], b[5], b[6], b[7]);
            return NC_EPROTO;
        }
        if (avail < 7) return 0;
        int type = b[0];
        uint16_t ch = (uint16_t)be(b + 1, 2);
        uint64_t size = be(b + 3, 4);
        if (type != NC_AMQP_FRAME_METHOD && type != NC_AMQP_FRAME_HEADER && type != NC_AMQP_FRAME_BODY &&
            type != NC_AMQP_FRAME_HEARTBEAT) {
            snprintf(why, whylen, "a frame of unknown type %d on channel %u", type, ch);
            return NC_EPROTO;
        }
        if (size + FRAME_OVERHEAD > p->frame_max) {
            snprintf(why, whylen, "a %s frame on channel %u of %llu bytes (frame_max is %u)",
                     frame_name(type), ch, (unsigned long long)(size + FRAME_OVERHEAD), p->frame_max);
            return NC_EPROTO;
        }
        if (avail < size + FRAME_OVERHEAD) return 0;
        if (b[7 + size] != NC_AMQP_FRAME_END) {
            snprintf(why, whylen, "a %s frame on channel %u ends with 0x%02x, not the frame-end 0xCE",
                     frame_name(type), ch, b[7 + size]);
            return NC_EPROTO;
        }
        p->started = 1;
        int stop = 0;
        int r = frame(p, type, ch, (const char *)b + 7, (size_t)size, fn, user, &stop, why, whylen);
        if (r) return r;
        b += size + FRAME_OVERHEAD;
        avail -= (size_t)size + FRAME_OVERHEAD;
        *used += (size_t)size + FRAME_OVERHEAD;
        if (stop) return 0;
    }
    return 0;
}

int nc_amqp_feed(nc_amqp_parser *p, const char *data, size_t len, nc_amqp_event_fn fn, void *user, char *why,
                 size_t whylen) {
    size_t used;
    int r;
    if (p->pos == p->buf.len && len) {
        /* nothing buffered: frames are parsed where they are, only an incomplete tail is kept */
        p->buf.len = p->pos = 0;
        r = parse(p, (const unsigned char *)data, len, &used, fn, user, why, whylen);
        if (!r && used < len && nc_buf_append(&p->buf, data + used, len - used)) return NC_ENOMEM;
        return r;
    }
    if (len && nc_buf_append(&p->buf, data, len)) return NC_ENOMEM;
    r = parse(p, (const unsigned char *)p->buf.data + p->pos, p->buf.len - p->pos, &used, fn, user, why,
              whylen);
    p->pos += used;
    if (p->pos == p->buf.len) {
        p->buf.len = p->pos = 0;
    } else if (p->pos > 65536 || p->pos * 2 > p->buf.len) {
        memmove(p->buf.data, p->buf.data + p->pos, p->buf.len - p->pos);
        p->buf.len -= p->pos;
        p->pos = 0;
    }
    return r;
}

/* ---- writers ---- */

static int frame_open(nc_buf *out, int type, uint16_t ch, size_t *at) {
    *at = out->len;
    char h[7] = {(char)type, (char)(ch >> 8), (char)ch, 0, 0, 0, 0};
    return nc_buf_append(out, h, 7);
}

static int frame_close(nc_buf *out, size_t at) {
    size_t n = out->len - at - 7;
    if (n > UINT32_MAX - FRAME_OVERHEAD) return NC_EINVAL;
    for (int i = 0; i < 4; i++) out->data[at + 3 + (size_t)i] = (char)(n >> (8 * (3 - i)));
    return nc_buf_append_char(out, (char)NC_AMQP_FRAME_END);
}

static int put_short(nc_buf *out, nc_amqp_span s) {
    if (s.n > 255) return NC_EINVAL;
    if (nc_buf_append_char(out, (char)s.n) || nc_buf_append(out, s.p, s.n)) return NC_ENOMEM;
    return 0;
}

static int put_long(nc_buf *out, nc_amqp_span s) {
    if (s.n > UINT32_MAX) return NC_EINVAL;
    if (put_be(out, s.n, 4) || nc_buf_append(out, s.p, s.n)) return NC_ENOMEM;
    return 0;
}

static int write_method(nc_buf *out, const nc_amqp_method *m) {
    const mdesc *d = find(m->id);
    if (!d) return NC_EINVAL;
    size_t at;
    if (frame_open(out, NC_AMQP_FRAME_METHOD, m->channel, &at) || put_be(out, m->id, 4)) return NC_ENOMEM;
    nc_amqp_method *mm = (nc_amqp_method *)m; /* slot_str's pointers are only read here */
    int nbits = 0;
    size_t bitat = 0;
    int rc = 0;
    for (const char *a = d->args; *a && !rc; a += 2) {
        char t = a[0], slot = a[1];
        if (t == 'b') {
            if (nbits == 0) {
                bitat = out->len;
                if (nc_buf_append_char(out, 0)) return NC_ENOMEM;
            }
            if (m->flags & bitflag(slot)) out->data[bitat] |= (char)(1 << nbits);
            if (++nbits == 8) nbits = 0;
            continue;
        }
        nbits = 0;
        int k = num_size(t);
        if (k) {
            rc = put_be(out, num_get(m, t, slot), k);
        } else if (t == 'S' || t == 'X') {
            nc_amqp_span *s = slot_str(mm, t, slot), e = {"", 0};
            if (s && !s->p) s = &e;
            rc = t == 'S' ? put_short(out, s ? *s : e) : put_long(out, s ? *s : e);
        } else {
            rc = nc_amqp_table_write(out, m->table, DEFAULT_MAX_DEPTH);
        }
    }
    return rc ? rc : frame_close(out, at);
}

int nc_amqp_write_method(nc_buf *out, const nc_amqp_method *m) {
    size_t save = out->len;
    int rc = write_method(out, m);
    if (rc) out->len = save;
    return rc;
}

int nc_amqp_write_protocol_header(nc_buf *out) {
    return nc_buf_append(out, NC_AMQP_PROTOCOL_HEADER, NC_AMQP_PROTOCOL_HEADER_LEN);
}

int nc_amqp_write_heartbeat(nc_buf *out) {
    static const char hb[8] = {NC_AMQP_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, (char)NC_AMQP_FRAME_END};
    return nc_buf_append(out, hb, 8);
}

int nc_amqp_write_start_ok(nc_buf *out, const json_t *props, int mechanism, const char *user,
                           const char *password, const char *locale) {
    if (props && !json_is_object(props)) return NC_EINVAL;
    if (mechanism != NC_AMQP_MECH_PLAIN && mechanism != NC_AMQP_MECH_EXTERNAL) return NC_EINVAL;
    json_t *cp = props ? json_deep_copy(props) : json_object();
    json_t *caps = json_pack("{s:b,s:b,s:b,s:b,s:b,s:b}", "publisher_confirms", 1, "consumer_cancel_notify",
                             1, "basic.nack", 1, "connection.blocked", 1, "exchange_exchange_bindings", 1,
                             "authentication_failure_close", 1);
    int rc = NC_ENOMEM;
    nc_buf resp = NC_BUF_INIT;
    if (!cp || !caps || json_object_set(cp, "capabilities", caps)) goto done;
    if (mechanism == NC_AMQP_MECH_PLAIN) {
        const char *u = user ? user : "", *pw = password ? password : "";
        if (nc_buf_append_char(&resp, 0) || nc_buf_append(&resp, u, strlen(u)) ||
            nc_buf_append_char(&resp, 0) || nc_buf_append(&resp, pw, strlen(pw)))
            goto done;
    }
    nc_amqp_method m;
    memset(&m, 0, sizeof m);
    m.id = NC_AMQP_CONNECTION_START_OK;
    m.table = cp;
    m.mechanism.p = mechanism == NC_AMQP_MECH_PLAIN ? "PLAIN" : "EXTERNAL";
    m.mechanism.n = strlen(m.mechanism.p);
    m.blob.p = resp.data ? resp.data : "";
    m.blob.n = resp.len;
    m.locale.p = locale ? locale : "en_US";
    m.locale.n = strlen(m.locale.p);
    rc = nc_amqp_write_method(out, &m);
done:
    nc_buf_free(&resp);
    json_decref(caps);
    json_decref(cp);
    return rc;
}

static int write_header(nc_buf *out, uint16_t ch, const nc_amqp_props *pr, uint64_t body_size) {
    size_t at;
    uint16_t flags = pr ? (uint16_t)(pr->flags & ~3u) : 0;
    if (frame_open(out, NC_AMQP_FRAME_HEADER, ch, &at) || put_be(out, 60, 2) || put_be(out, 0, 2) ||
        put_be(out, body_size, 8) || put_be(out, flags, 2))
        return NC_ENOMEM;
    int rc = 0;
    for (int i = 0; i < 14 && !rc; i++) {
        uint16_t bit = PROP_ORDER[i];
        if (!(flags & bit)) continue;
        nc_amqp_span *s = prop_str((nc_amqp_props *)pr, bit), e = {"", 0};
        if (s)
            rc = put_short(out, s->p ? *s : e);
        else if (bit == NC_AMQP_P_DELIVERY_MODE)
            rc = nc_buf_append_char(out, (char)pr->delivery_mode);
        else if (bit == NC_AMQP_P_PRIORITY)
            rc = nc_buf_append_char(out, (char)pr->priority);
        else if (bit == NC_AMQP_P_TIMESTAMP)
            rc = put_be(out, pr->timestamp, 8);
        else
            rc = nc_amqp_table_write(out, pr->headers, DEFAULT_MAX_DEPTH);
    }
    return rc ? rc : frame_close(out, at);
}

int nc_amqp_write_publish(nc_buf *out, const nc_amqp_method *m, const nc_amqp_props *props, const char *body,
                          size_t body_len, uint32_t frame_max) {
    if (m->id != NC_AMQP_BASIC_PUBLISH || m->channel == 0) return NC_EINVAL;
    if (frame_max == 0) frame_max = NC_AMQP_FRAME_MIN;
    if (frame_max <= FRAME_OVERHEAD) return NC_EINVAL;
    size_t save = out->len;
    int rc = write_method(out, m);
    size_t mid = out->len;
    if (!rc) rc = write_header(out, m->channel, props, body_len);
    /* the method and the header are one frame each: the broker refuses either over frame_max */
    if (!rc && (mid - save > frame_max || out->len - mid > frame_max)) rc = NC_EINVAL;
    size_t chunk = frame_max - FRAME_OVERHEAD;
    for (size_t off = 0; !rc && off < body_len; off += chunk) {
        size_t k = body_len - off < chunk ? body_len - off : chunk, at;
        if (frame_open(out, NC_AMQP_FRAME_BODY, m->channel, &at) || nc_buf_append(out, body + off, k))
            rc = NC_ENOMEM;
        else
            rc = frame_close(out, at);
    }
    if (rc) out->len = save;
    return rc;
}
