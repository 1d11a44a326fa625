#include "codec/mqtt_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nestc/error.h"
#include "util/utf8.h"

#define DEFAULT_MAX_PROPS 64
#define DEFAULT_MAX_USER_PROPS 64

/* ---- names ---- */

static const char *const TYPE_NAMES[16] = {
    "reserved type 0", "CONNECT", "CONNACK",     "PUBLISH",  "PUBACK",  "PUBREC",   "PUBREL",     "PUBCOMP",
    "SUBSCRIBE",       "SUBACK",  "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"};

const char *nc_mqtt_type_name(int type) {
    return type >= 0 && type < 16 ? TYPE_NAMES[type] : "?";
}

const char *nc_mqtt_reason_text(int version, uint8_t code) {
    if (version != NC_MQTT_V5) {
        static const char *const v3[] = {"Connection Accepted",       "unacceptable protocol version",
                                         "identifier rejected",       "server unavailable",
                                         "bad user name or password", "not authorized"};
        return code < 6 ? v3[code] : "unknown return code";
    }
    switch (code) {
    case 0x00:
        return "Success";
    case 0x01:
        return "Granted QoS 1";
    case 0x02:
        return "Granted QoS 2";
    case 0x04:
        return "Disconnect with Will Message";
    case 0x10:
        return "No matching subscribers";
    case 0x11:
        return "No subscription existed";
    case 0x80:
        return "Unspecified error";
    case 0x81:
        return "Malformed Packet";
    case 0x82:
        return "Protocol Error";
    case 0x83:
        return "Implementation specific error";
    case 0x84:
        return "Unsupported Protocol Version";
    case 0x85:
        return "Client Identifier not valid";
    case 0x86:
        return "Bad User Name or Password";
    case 0x87:
        return "Not authorized";
    case 0x88:
        return "Server unavailable";
    case 0x89:
        return "Server busy";
    case 0x8A:
        return "Banned";
    case 0x8B:
        return "Server shutting down";
    case 0x8C:
        return "Bad authentication method";
    case 0x8D:
        return "Keep Alive timeout";
    case 0x8E:
        return "Session taken over";
    case 0x8F:
        return "Topic Filter invalid";
    case 0x90:
        return "Topic Name invalid";
    case 0x91:
        return "Packet Identifier in use";
    case 0x92:
        return "Packet Identifier not found";
    case 0x93:
        return "Receive Maximum exceeded";
    case 0x94:
        return "Topic Alias invalid";
    case 0x95:
        return "Packet too large";
    case 0x96:
        return "Message rate too high";
    case 0x97:
        return "Quota exceeded";
    case 0x98:
        return "Administrative action";
    case 0x99:
        return "Payload format invalid";
    case 0x9A:
        return "Retain not supported";
    case 0x9B:
        return "QoS not supported";
    case 0x9C:
        return "Use another server";
    case 0x9D:
        return "Server moved";
    case 0x9E:
        return "Shared Subscriptions not supported";
    case 0x9F:
        return "Connection rate exceeded";
    case 0xA0:
        return "Maximum connect time";
    case 0xA1:
        return "Subscription Identifiers not supported";
    case 0xA2:
        return "Wildcard Subscriptions not supported";
    default:
        return "unknown reason code";
    }
}

/* ---- strings, topics, filters ---- */

/* Byte classes for the ASCII pass: 1 = stop (NUL, or a byte above 0x7F: look closer), 2 = a wildcard. */
static const unsigned char CLS[256] = {
    [0] = 1,    ['+'] = 2,  ['#'] = 2,  [0x80] = 1, [0x81] = 1, [0x82] = 1, [0x83] = 1, [0x84] = 1,
    [0x85] = 1, [0x86] = 1, [0x87] = 1, [0x88] = 1, [0x89] = 1, [0x8A] = 1, [0x8B] = 1, [0x8C] = 1,
    [0x8D] = 1, [0x8E] = 1, [0x8F] = 1, [0x90] = 1, [0x91] = 1, [0x92] = 1, [0x93] = 1, [0x94] = 1,
    [0x95] = 1, [0x96] = 1, [0x97] = 1, [0x98] = 1, [0x99] = 1, [0x9A] = 1, [0x9B] = 1, [0x9C] = 1,
    [0x9D] = 1, [0x9E] = 1, [0x9F] = 1, [0xA0] = 1, [0xA1] = 1, [0xA2] = 1, [0xA3] = 1, [0xA4] = 1,
    [0xA5] = 1, [0xA6] = 1, [0xA7] = 1, [0xA8] = 1, [0xA9] = 1, [0xAA] = 1, [0xAB] = 1, [0xAC] = 1,
    [0xAD] = 1, [0xAE] = 1, [0xAF] = 1, [0xB0] = 1, [0xB1] = 1, [0xB2] = 1, [0xB3] = 1, [0xB4] = 1,
    [0xB5] = 1, [0xB6] = 1, [0xB7] = 1, [0xB8] = 1, [0xB9] = 1, [0xBA] = 1, [0xBB] = 1, [0xBC] = 1,
    [0xBD] = 1, [0xBE] = 1, [0xBF] = 1, [0xC0] = 1, [0xC1] = 1, [0xC2] = 1, [0xC3] = 1, [0xC4] = 1,
    [0xC5] = 1, [0xC6] = 1, [0xC7] = 1, [0xC8] = 1, [0xC9] = 1, [0xCA] = 1, [0xCB] = 1, [0xCC] = 1,
    [0xCD] = 1, [0xCE] = 1, [0xCF] = 1, [0xD0] = 1, [0xD1] = 1, [0xD2] = 1, [0xD3] = 1, [0xD4] = 1,
    [0xD5] = 1, [0xD6] = 1, [0xD7] = 1, [0xD8] = 1, [0xD9] = 1, [0xDA] = 1, [0xDB] = 1, [0xDC] = 1,
    [0xDD] = 1, [0xDE] = 1, [0xDF] = 1, [0xE0] = 1, [0xE1] = 1, [0xE2] = 1, [0xE3] = 1, [0xE4] = 1,
    [0xE5] = 1, [0xE6] = 1, [0xE7] = 1, [0xE8] = 1, [0xE9] = 1, [0xEA] = 1, [0xEB] = 1, [0xEC] = 1,
    [0xED] = 1, [0xEE] = 1, [0xEF] = 1, [0xF0] = 1, [0xF1] = 1, [0xF2] = 1, [0xF3] = 1, [0xF4] = 1,
    [0xF5] = 1, [0xF6] = 1, [0xF7] = 1, [0xF8] = 1, [0xF9] = 1, [0xFA] = 1, [0xFB] = 1, [0xFC] = 1,
    [0xFD] = 1, [0xFE] = 1, [0xFF] = 1,
};

/* Why s is not an MQTT string (with `topic`: a topic name, so no `+` or `#`), or NULL when it is one (MQTT 5
 * 1.5.4: well-formed UTF-8 without U+0000). Topics and property names are mostly short ASCII: one pass over
 * the ASCII prefix, the UTF-8 validator only from the first byte above 0x7F. */
static const char *text_why(const char *s, size_t len, int topic) {
    if (!len) return NULL;
    if (len > 65535) return "is longer than 65535 bytes";
    const unsigned char *p = (const unsigned char *)s;
    unsigned mask = topic ? 3u : 1u;
    size_t i = 0;
    while (i < len && !(CLS[p[i]] & mask)) i++;
    if (i == len) return NULL;
    if (CLS[p[i]] & 2) return "contains a wildcard";
    if (memchr(s + i, 0, len - i)) return "contains U+0000";
    if (topic && (memchr(s + i, '+', len - i) || memchr(s + i, '#', len - i))) return "contains a wildcard";
    if (nc_utf8_validate(s + i, len - i, NULL)) return "is not well-formed UTF-8";
    return NULL;
}

static const char *string_why(const char *s, size_t len) {
    return text_why(s, len, 0);
}

int nc_mqtt_string_ok(const char *s, size_t len) {
    return (s || !len) && string_why(s, len) == NULL;
}

int nc_mqtt_topic_ok(const char *s, size_t len) {
    return s && len && text_why(s, len, 1) == NULL;
}

nc_mqtt_span nc_mqtt_filter_unshared(const char *s, size_t len) {
    nc_mqtt_span r = {s, len};
    if (len > 7 && memcmp(s, "$share/", 7) == 0) {
        const char *slash = memchr(s + 7, '/', len - 7);
        if (slash) {
            r.p = slash + 1;
            r.n = len - (size_t)(r.p - s);
        }
    }
    return r;
}

/* A filter without the $share prefix: `+` a whole level, `#` the whole last level. */
static int plain_filter_ok(const char *s, size_t len) {
    if (!len) return 0;
    for (size_t i = 0; i < len; i++) {
        int level_start = i == 0 || s[i - 1] == '/';
        int level_end = i + 1 == len || s[i + 1] == '/';
        if (s[i] == '+' && !(level_start && level_end)) return 0;
        if (s[i] == '#' && !(level_start && i + 1 == len)) return 0;
    }
    return 1;
}

int nc_mqtt_filter_ok(const char *s, size_t len) {
    if (!s || !len || !nc_mqtt_string_ok(s, len)) return 0;
    if (len >= 7 && memcmp(s, "$share/", 7) == 0) {
        const char *slash = memchr(s + 7, '/', len - 7);
        if (!slash || slash == s + 7) return 0; /* no group, or an empty one */
        size_t glen = (size_t)(slash - (s + 7));
        if (memchr(s + 7, '+', glen) || memchr(s + 7, '#', glen)) return 0;
        nc_mqtt_span f = nc_mqtt_filter_unshared(s, len);
        return plain_filter_ok(f.p, f.n);
    }
    return plain_filter_ok(s, len);
}

int nc_mqtt_topic_match(const char *filter, size_t flen, const char *topic, size_t tlen) {
    nc_mqtt_span f = nc_mqtt_filter_unshared(filter, flen);
    /* MQTT 4.7.2: topics starting with '$' are not matched by a filter starting with a wildcard */
    if (tlen && topic[0] == '$' && f.n && (f.p[0] == '+' || f.p[0] == '#')) return 0;
    size_t i = 0, j = 0;
    while (i < f.n) {
        if (f.p[i] == '#') return 1;
        if (f.p[i] == '+') {
            while (j < tlen && topic[j] != '/') j++;
            i++;
        } else {
            while (i < f.n && f.p[i] != '/') {
                if (j >= tlen || topic[j] != f.p[i]) return 0;
                i++, j++;
            }
            if (j < tlen && topic[j] != '/') return 0;
        }
        if (i == f.n) return j == tlen;
        i++;                                                 /* the filter's '/' */
        if (j == tlen) return f.n - i == 1 && f.p[i] == '#'; /* "a/#" matches "a" */
        j++;                                                 /* the topic's '/' */
    }
    return j == tlen;
}

/* ---- variable byte integers ---- */

/* Reads a variable byte integer: bytes used, 0 when more bytes are needed, -1 when malformed (over 4
 * bytes, or not in its shortest form as MQTT 5 1.5.5 requires). */
static int varint_get(const unsigned char *b, size_t n, uint32_t *out) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i == n) return 0;
        v |= (uint32_t)(b[i] & 0x7F) << (7 * i);
        if (!(b[i] & 0x80)) {
            if (i && b[i] == 0) return -1;
            *out = v;
            return (int)i + 1;
        }
    }
    return -1;
}

static size_t varint_size(uint32_t v) {
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* ---- properties ---- */

enum { PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_UTF8, PT_BINARY, PT_PAIR };

#define P(t) (1u << (t))
typedef struct prop_def {
    uint8_t type;
    uint32_t bit;     /* NC_MQTTP_* (0: may repeat) */
    uint32_t packets; /* packet types a broker may send it in */
    const char *name;
} prop_def;

static const uint32_t REASON_STRING_IN = P(NC_MQTT_CONNACK) | P(NC_MQTT_PUBACK) | P(NC_MQTT_PUBREC) |
                                         P(NC_MQTT_PUBREL) | P(NC_MQTT_PUBCOMP) | P(NC_MQTT_SUBACK) |
                                         P(NC_MQTT_UNSUBACK) | P(NC_MQTT_DISCONNECT);

static const prop_def *prop_lookup(uint32_t id) {
    static const prop_def defs[] = {
        [0x01] = {PT_BYTE, NC_MQTTP_PAYLOAD_FORMAT, P(NC_MQTT_PUBLISH), "Payload Format Indicator"},
        [0x02] = {PT_U32, NC_MQTTP_MESSAGE_EXPIRY, P(NC_MQTT_PUBLISH), "Message Expiry Interval"},
        [0x03] = {PT_UTF8, NC_MQTTP_CONTENT_TYPE, P(NC_MQTT_PUBLISH), "Content Type"},
        [0x08] = {PT_UTF8, NC_MQTTP_RESPONSE_TOPIC, P(NC_MQTT_PUBLISH), "Response Topic"},
        [0x09] = {PT_BINARY, NC_MQTTP_CORRELATION, P(NC_MQTT_PUBLISH), "Correlation Data"},
        [0x0B] = {PT_VARINT, 0, P(NC_MQTT_PUBLISH), "Subscription Identifier"},
        [0x11] = {PT_U32, NC_MQTTP_SESSION_EXPIRY, P(NC_MQTT_CONNACK) | P(NC_MQTT_DISCONNECT),
                  "Session Expiry Interval"},
        [0x12] = {PT_UTF8, NC_MQTTP_ASSIGNED_CLIENT_ID, P(NC_MQTT_CONNACK), "Assigned Client Identifier"},
        [0x13] = {PT_U16, NC_MQTTP_SERVER_KEEP_ALIVE, P(NC_MQTT_CONNACK), "Server Keep Alive"},
        /* Authentication Method/Data (0x15/0x16): enhanced authentication is not offered, so a broker may
         * not send them; Request Problem/Response Information (0x17/0x19), Will Delay (0x18): client only */
        [0x1A] = {PT_UTF8, NC_MQTTP_RESPONSE_INFO, P(NC_MQTT_CONNACK), "Response Information"},
        [0x1C] = {PT_UTF8, NC_MQTTP_SERVER_REFERENCE, P(NC_MQTT_CONNACK) | P(NC_MQTT_DISCONNECT),
                  "Server Reference"},
        [0x1F] = {PT_UTF8, NC_MQTTP_REASON_STRING, 0, "Reason String"},
        [0x21] = {PT_U16, NC_MQTTP_RECEIVE_MAXIMUM, P(NC_MQTT_CONNACK), "Receive Maximum"},
        [0x22] = {PT_U16, NC_MQTTP_TOPIC_ALIAS_MAXIMUM, P(NC_MQTT_CONNACK), "Topic Alias Maximum"},
        /* Topic Alias (0x23): nestc announces no Topic Alias Maximum, so a broker may not use one */
        [0x24] = {PT_BYTE, NC_MQTTP_MAXIMUM_QOS, P(NC_MQTT_CONNACK), "Maximum QoS"},
        [0x25] = {PT_BYTE, NC_MQTTP_RETAIN_AVAILABLE, P(NC_MQTT_CONNACK), "Retain Available"},
        [0x26] = {PT_PAIR, 0, 0xFFFF, "User Property"},
        [0x27] = {PT_U32, NC_MQTTP_MAXIMUM_PACKET_SIZE, P(NC_MQTT_CONNACK), "Maximum Packet Size"},
        [0x28] = {PT_BYTE, NC_MQTTP_WILDCARD_SUB_AVAILABLE, P(NC_MQTT_CONNACK),
                  "Wildcard Subscription Available"},
        [0x29] = {PT_BYTE, NC_MQTTP_SUB_ID_AVAILABLE, P(NC_MQTT_CONNACK),
                  "Subscription Identifier Available"},
        [0x2A] = {PT_BYTE, NC_MQTTP_SHARED_SUB_AVAILABLE, P(NC_MQTT_CONNACK),
                  "Shared Subscription Available"},
    };
    if (id >= sizeof defs / sizeof defs[0] || !defs[id].name) return NULL;
    return &defs[id];
}

typedef struct perr {
    char *why;
    size_t whylen;
} perr;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
bad(perr *e, const char *fmt, ...) {
    if (e->why && e->whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->why, e->whylen, fmt, ap);
        va_end(ap);
    }
    return NC_EPROTO;
}

/* A two-byte length-prefixed field at b[*at]; 0 or -1 when it runs past n. */
static int get_lenfield(const unsigned char *b, size_t n, size_t *at, nc_mqtt_span *out) {
    if (n - *at < 2) return -1;
    size_t l = (size_t)b[*at] << 8 | b[*at + 1];
    if (n - *at - 2 < l) return -1;
    out->p = (const char *)b + *at + 2;
    out->n = l;
    *at += 2 + l;
    return 0;
}

/* An MQTT string field: checks it; 0 or NC_EPROTO. */
static int get_string(const unsigned char *b, size_t n, size_t *at, nc_mqtt_span *out, const char *what,
                      const char *pkt, perr *e) {
    if (get_lenfield(b, n, at, out)) return bad(e, "%s: %s runs past the end of the packet", pkt, what);
    const char *w = string_why(out->p, out->n);
    if (w) return bad(e, "%s: %s %s", pkt, what, w);
    return 0;
}

/* Reads the property block at b[*at]; fills props; NC_EPROTO / NC_ETOOBIG with why. */
static int get_props(const nc_mqtt_parser *p, int type, const unsigned char *b, size_t n, size_t *at,
                     nc_mqtt_props *props, perr *e) {
    const char *pkt = TYPE_NAMES[type];
    uint32_t plen;
    int k = varint_get(b + *at, n - *at, &plen);
    if (k <= 0) return bad(e, "%s: malformed property length", pkt);
    *at += (size_t)k;
    if (plen > n - *at) return bad(e, "%s: the properties run past the end of the packet", pkt);
    const unsigned char *q = b + *at;
    size_t end = plen, i = 0, count = 0;
    props->raw.p = (const char *)q;
    props->raw.n = plen;
    *at += plen;
    while (i < end) {
        uint32_t id;
        k = varint_get(q + i, end - i, &id);
        if (k <= 0) return bad(e, "%s: malformed property identifier", pkt);
        i += (size_t)k;
        const prop_def *d = prop_lookup(id);
        if (!d) {
            if (id == 0x23) return bad(e, "%s: a Topic Alias, which this client does not allow", pkt);
            if (id == 0x15 || id == 0x16)
                return bad(e, "%s: authentication properties, but enhanced authentication was not asked for",
                           pkt);
            return bad(e, "%s: property 0x%02x is not one a broker may send", pkt, (unsigned)id);
        }
        uint32_t allowed = id == 0x1F ? REASON_STRING_IN : d->packets;
        if (!(allowed & P(type))) return bad(e, "%s: property %s is not allowed in it", pkt, d->name);
        if (d->bit && (props->has & d->bit)) return bad(e, "%s: property %s appears twice", pkt, d->name);
        props->has |= d->bit;
        if (++count > p->max_props) {
            snprintf(e->why, e->whylen, "%s: more than %zu properties", pkt, p->max_props);
            return NC_ETOOBIG;
        }
        uint32_t v = 0;
        nc_mqtt_span s = {NULL, 0}, s2;
        switch (d->type) {
        case PT_BYTE:
            if (end - i < 1) goto past;
            v = q[i++];
            if (v > 1) return bad(e, "%s: property %s has the value %u (0 or 1 allowed)", pkt, d->name, v);
            break;
        case PT_U16:
            if (end - i < 2) goto past;
            v = (uint32_t)q[i] << 8 | q[i + 1];
            i += 2;
            break;
        case PT_U32:
            if (end - i < 4) goto past;
            v = (uint32_t)q[i] << 24 | (uint32_t)q[i + 1] << 16 | (uint32_t)q[i + 2] << 8 | q[i + 3];
            i += 4;
            break;
        case PT_VARINT:
            k = varint_get(q + i, end - i, &v);
            if (k <= 0) return bad(e, "%s: malformed %s", pkt, d->name);
            i += (size_t)k;
            if (v == 0) return bad(e, "%s: %s 0", pkt, d->name);
            break;
        case PT_UTF8:
        case PT_BINARY:
            if (d->type == PT_UTF8) {
                int r = get_string(q, end, &i, &s, d->name, pkt, e);
                if (r) return r;
            } else if (get_lenfield(q, end, &i, &s))
                goto past;
            break;
        case PT_PAIR:
            if (++props->n_user > p->max_user_props) {
                snprintf(e->why, e->whylen, "%s: more than %zu user properties", pkt, p->max_user_props);
                return NC_ETOOBIG;
            }
            if (get_string(q, end, &i, &s, "a user property name", pkt, e) ||
                get_string(q, end, &i, &s2, "a user property value", pkt, e))
                return NC_EPROTO;
            break;
        }
        switch (id) {
        case 0x01:
            props->payload_format = (uint8_t)v;
            break;
        case 0x02:
            props->message_expiry = v;
            break;
        case 0x03:
            props->content_type = s;
            break;
        case 0x08:
            if (!nc_mqtt_topic_ok(s.p, s.n)) return bad(e, "%s: the Response Topic is not a topic name", pkt);
            props->response_topic = s;
            break;
        case 0x09:
            props->correlation = s;
            break;
        case 0x0B:
            if (!(props->has & NC_MQTTP_SUBSCRIPTION_ID)) props->subscription_id = v;
            props->has |= NC_MQTTP_SUBSCRIPTION_ID;
            break;
        case 0x11:
            props->session_expiry = v;
            break;
        case 0x12:
            props->assigned_client_id = s;
            break;
        case 0x13:
            props->server_keep_alive = (uint16_t)v;
            break;
        case 0x1A:
            props->response_info = s;
            break;
        case 0x1C:
            props->server_reference = s;
            break;
        case 0x1F:
            props->reason_string = s;
            break;
        case 0x21:
            if (!v) return bad(e, "%s: Receive Maximum 0", pkt);
            props->receive_maximum = (uint16_t)v;
            break;
        case 0x22:
            props->topic_alias_maximum = (uint16_t)v;
            break;
        case 0x24:
            props->maximum_qos = (uint8_t)v;
            break;
        case 0x25:
            props->retain_available = (uint8_t)v;
            break;
        case 0x27:
            if (!v) return bad(e, "%s: Maximum Packet Size 0", pkt);
            props->maximum_packet_size = v;
            break;
        case 0x28:
            props->wildcard_sub_available = (uint8_t)v;
            break;
        case 0x29:
            props->sub_id_available = (uint8_t)v;
            break;
        case 0x2A:
            props->shared_sub_available = (uint8_t)v;
            break;
        default:
            break;
        }
        continue;
    past:
        return bad(e, "%s: property %s runs past the end of the properties", pkt, d->name);
    }
    return 0;
}

size_t nc_mqtt_user_props(const nc_mqtt_props *props, nc_header *out, size_t cap) {
    /* the block was validated when the packet was parsed: walk it without checks beyond bounds */
    const unsigned char *q = (const unsigned char *)props->raw.p;
    size_t end = props->raw.n, i = 0, n = 0;
    while (i < end) {
        uint32_t id;
        int k = varint_get(q + i, end - i, &id);
        if (k <= 0) break;
        i += (size_t)k;
        const prop_def *d = prop_lookup(id);
        if (!d) break;
        nc_mqtt_span a, b;
        uint32_t v;
        switch (d->type) {
        case PT_BYTE:
            i += 1;
            break;
        case PT_U16:
            i += 2;
            break;
        case PT_U32:
            i += 4;
            break;
        case PT_VARINT:
            k = varint_get(q + i, end - i, &v);
            if (k <= 0) return n;
            i += (size_t)k;
            break;
        case PT_UTF8:
        case PT_BINARY:
            if (get_lenfield(q, end, &i, &a)) return n;
            break;
        case PT_PAIR:
            if (get_lenfield(q, end, &i, &a) || get_lenfield(q, end, &i, &b)) return n;
            if (n < cap) out[n] = (nc_header){a.p, a.n, b.p, b.n};
            n++;
            break;
        }
    }
    return n;
}

/* ---- the parser ---- */

void nc_mqtt_parser_init(nc_mqtt_parser *p, int version, size_t max_packet) {
    memset(p, 0, sizeof *p);
    p->version = version == NC_MQTT_V5 ? NC_MQTT_V5 : NC_MQTT_V311;
    p->max_packet = max_packet;
    p->max_props = DEFAULT_MAX_PROPS;
    p->max_user_props = DEFAULT_MAX_USER_PROPS;
}

void nc_mqtt_parser_free(nc_mqtt_parser *p) {
    nc_buf_free(&p->buf);
    memset(p, 0, sizeof *p);
}

size_t nc_mqtt_pending(const nc_mqtt_parser *p) {
    return p->buf.len - p->pos;
}

static int puback_reason_ok(int type, uint8_t c) {
    if (type == NC_MQTT_PUBREL || type == NC_MQTT_PUBCOMP) return c == 0x00 || c == 0x92;
    switch (c) {
    case 0x00:
    case 0x10:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x90:
    case 0x91:
    case 0x97:
    case 0x99:
        return 1;
    default:
        return 0;
    }
}

static int suback_code_ok(int version, uint8_t c) {
    if (c <= 2 || c == 0x80) return 1;
    if (version != NC_MQTT_V5) return 0;
    switch (c) {
    case 0x83:
    case 0x87:
    case 0x8F:
    case 0x91:
    case 0x97:
    case 0x9E:
    case 0xA1:
    case 0xA2:
        return 1;
    default:
        return 0;
    }
}

static int unsuback_code_ok(uint8_t c) {
    switch (c) {
    case 0x00:
    case 0x11:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x8F:
    case 0x91:
        return 1;
    default:
        return 0;
    }
}

static int connack_code_ok(uint8_t c) {
    switch (c) {
    case 0x00:
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
    case 0x84:
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x8A:
    case 0x8C:
    case 0x90:
    case 0x95:
    case 0x97:
    case 0x99:
    case 0x9A:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9F:
        return 1;
    default:
        return 0;
    }
}

static int disconnect_code_ok(uint8_t c) {
    switch (c) {
    case 0x00:
    case 0x04:
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
    case 0x87:
    case 0x89:
    case 0x8B:
    case 0x8D:
    case 0x8E:
    case 0x8F:
    case 0x90:
    case 0x93:
    case 0x94:
    case 0x95:
    case 0x96:
    case 0x97:
    case 0x98:
    case 0x99:
    case 0x9A:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9E:
    case 0x9F:
    case 0xA0:
    case 0xA1:
    case 0xA2:
        return 1;
    default:
        return 0;
    }
}

static int get_id(const unsigned char *b, size_t n, size_t *at, uint16_t *id, const char *pkt, perr *e) {
    if (n - *at < 2) return bad(e, "%s: too short for a packet identifier", pkt);
    *id = (uint16_t)(b[*at] << 8 | b[*at + 1]);
    *at += 2;
    if (!*id) return bad(e, "%s: packet identifier 0", pkt);
    return 0;
}

/* One packet: fixed header byte h, body b[0..n). */
static int parse_packet(const nc_mqtt_parser *p, unsigned h, const unsigned char *b, size_t n, nc_mqtt_pkt *m,
                        perr *e) {
    int type = (int)(h >> 4), v5 = p->version == NC_MQTT_V5;
    unsigned flags = h & 0x0F;
    const char *pkt = TYPE_NAMES[type];
    size_t at = 0;
    int r;
    memset(m, 0, sizeof *m);
    m->type = type;
    if (type != NC_MQTT_PUBLISH && flags != (type == NC_MQTT_PUBREL ? 2u : 0u))
        return bad(e, "%s: reserved flag bits 0x%x", pkt, flags);
    switch (type) {
    case NC_MQTT_PUBLISH:
        m->qos = (uint8_t)((flags >> 1) & 3);
        m->dup = (uint8_t)(flags >> 3);
        m->retain = (uint8_t)(flags & 1);
        if (m->qos == 3) return bad(e, "PUBLISH: QoS 3");
        if (m->qos == 0 && m->dup) return bad(e, "PUBLISH: the DUP flag on a QoS 0 message");
        if ((r = get_string(b, n, &at, &m->topic, "the topic", pkt, e))) return r;
        if (!m->topic.n) return bad(e, "PUBLISH: an empty topic");
        if (memchr(m->topic.p, '+', m->topic.n) || memchr(m->topic.p, '#', m->topic.n))
            return bad(e, "PUBLISH: the topic contains a wildcard");
        if (m->qos && (r = get_id(b, n, &at, &m->id, pkt, e))) return r;
        if (v5 && (r = get_props(p, type, b, n, &at, &m->props, e))) return r;
        m->payload.p = (const char *)b + at;
        m->payload.n = n - at;
        return 0;
    case NC_MQTT_CONNACK:
        if (n < 2) return bad(e, "CONNACK: too short");
        if (b[0] & 0xFE) return bad(e, "CONNACK: reserved acknowledge flag bits 0x%x", b[0] & 0xFEu);
        m->session_present = b[0] & 1;
        m->reason = b[1];
        at = 2;
        if (!v5) {
            if (n != 2) return bad(e, "CONNACK: remaining length %zu (2 expected)", n);
            if (m->reason > 5) return bad(e, "CONNACK: unknown return code %u", m->reason);
        } else if (n == 2) {
            /* a broker that speaks only 3.1.1 refuses a v5 CONNECT with a 3.1.1 CONNACK (code 1) */
            if (m->reason != 0 && m->reason != 1 && !connack_code_ok(m->reason))
                return bad(e, "CONNACK: unknown reason code 0x%02x", m->reason);
        } else {
            if (!connack_code_ok(m->reason)) return bad(e, "CONNACK: unknown reason code 0x%02x", m->reason);
            if ((r = get_props(p, type, b, n, &at, &m->props, e))) return r;
            if (at != n) return bad(e, "CONNACK: %zu bytes after the properties", n - at);
        }
        if (m->reason && m->session_present) return bad(e, "CONNACK: session present on a refusal");
        return 0;
    case NC_MQTT_PUBACK:
    case NC_MQTT_PUBREC:
    case NC_MQTT_PUBREL:
    case NC_MQTT_PUBCOMP:
        if ((r = get_id(b, n, &at, &m->id, pkt, e))) return r;
        if (!v5) {
            if (n != 2) return bad(e, "%s: remaining length %zu (2 expected)", pkt, n);
            return 0;
        }
        if (n > 2) {
            m->reason = b[at++];
            if (!puback_reason_ok(type, m->reason))
                return bad(e, "%s: unknown reason code 0x%02x", pkt, m->reason);
        }
        if (n > 3) {
            if ((r = get_props(p, type, b, n, &at, &m->props, e))) return r;
            if (at != n) return bad(e, "%s: %zu bytes after the properties", pkt, n - at);
        }
        return 0;
    case NC_MQTT_SUBACK:
    case NC_MQTT_UNSUBACK:
        if ((r = get_id(b, n, &at, &m->id, pkt, e))) return r;
        if (type == NC_MQTT_UNSUBACK && !v5) {
            if (n != 2) return bad(e, "UNSUBACK: remaining length %zu (2 expected)", n);
            return 0;
        }
        if (v5 && (r = get_props(p, type, b, n, &at, &m->props, e))) return r;
        if (at == n) return bad(e, "%s: no reason codes", pkt);
        m->codes = b + at;
        m->n_codes = n - at;
        for (size_t i = 0; i < m->n_codes; i++)
            if (type == NC_MQTT_SUBACK ? !suback_code_ok(p->version, m->codes[i])
                                       : !unsuback_code_ok(m->codes[i]))
                return bad(e, "%s: unknown reason code 0x%02x", pkt, m->codes[i]);
        return 0;
    case NC_MQTT_PINGRESP:
        if (n) return bad(e, "PINGRESP: remaining length %zu (0 expected)", n);
        return 0;
    case NC_MQTT_DISCONNECT:
        if (!v5) return bad(e, "DISCONNECT from the broker (MQTT 3.1.1 brokers never send one)");
        if (n > 0) {
            m->reason = b[at++];
            if (!disconnect_code_ok(m->reason))
                return bad(e, "DISCONNECT: unknown reason code 0x%02x", m->reason);
        }
        if (n > 1) {
            if ((r = get_props(p, type, b, n, &at, &m->props, e))) return r;
            if (at != n) return bad(e, "DISCONNECT: %zu bytes after the properties", n - at);
        }
        return 0;
    case NC_MQTT_AUTH:
        return bad(e, "AUTH: enhanced authentication is not supported");
    case 0:
        return bad(e, "reserved packet type 0");
    default:
        return bad(e, "%s: a packet only clients send", pkt);
    }
}

/* Parses whole packets from b[0..n): *used gets the bytes consumed. Returns 0 (needs more bytes), 1
 * (the callback stopped) or an error. */
static int run(nc_mqtt_parser *p, const unsigned char *b, size_t n, size_t *used, nc_mqtt_pkt_fn fn,
               void *user, perr *e) {
    size_t at = 0;
    size_t max = p->max_packet ? p->max_packet : (size_t)NC_MQTT_MAX_REMAINING + 5;
    int r = 0;
    while (n - at >= 2) {
        uint32_t rem;
        int k = varint_get(b + at + 1, n - at - 1, &rem);
        if (k < 0) {
            r = bad(e, "%s: malformed remaining length", nc_mqtt_type_name(b[at] >> 4));
            break;
        }
        if (k == 0) break;
        size_t total = 1 + (size_t)k + rem;
        if (total > max) {
            snprintf(e->why, e->whylen, "a %s of %zu bytes is over the limit of %zu",
                     nc_mqtt_type_name(b[at] >> 4), total, max);
            r = NC_ETOOBIG;
            break;
        }
        if (n - at < total) break;
        nc_mqtt_pkt m;
        r = parse_packet(p, b[at], b + at + 1 + k, rem, &m, e);
        if (r) break;
        at += total;
        if (fn(user, &m)) {
            r = 1;
            break;
        }
    }
    *used = at;
    return r;
}

int nc_mqtt_feed(nc_mqtt_parser *p, const char *data, size_t len, nc_mqtt_pkt_fn fn, void *user, char *why,
                 size_t whylen) {
    char dummy[1];
    perr e = {why ? why : dummy, why ? whylen : sizeof dummy};
    size_t used = 0;
    int r;
    if (p->pos == p->buf.len) {
        /* nothing buffered: parse straight from the caller's bytes and keep only an incomplete tail */
        p->pos = p->buf.len = 0;
        r = run(p, (const unsigned char *)data, len, &used, fn, user, &e);
        if (r < 0) return r;
        if (used < len && nc_buf_append(&p->buf, data + used, len - used)) return NC_ENOMEM;
        return 0;
    }
    if (len && nc_buf_append(&p->buf, data, len)) return NC_ENOMEM;
    r = run(p, (const unsigned char *)p->buf.data + p->pos, p->buf.len - p->pos, &used, fn, user, &e);
    p->pos += used;
    if (p->pos == p->buf.len) {
        p->pos = p->buf.len = 0;
    } else if (p->pos) {
        memmove(p->buf.data, p->buf.data + p->pos, p->buf.len - p->pos);
        p->buf.len -= p->pos;
        p->pos = 0;
    }
    return r < 0 ? r : 0;
}

/* ---- writers ---- */

static unsigned char *put_u16(unsigned char *w, size_t v) {
    w[0] = (unsigned char)(v >> 8);
    w[1] = (unsigned char)v;
    return w + 2;
}

static unsigned char *put_u32(unsigned char *w, uint32_t v) {
    w[0] = (unsigned char)(v >> 24);
    w[1] = (unsigned char)(v >> 16);
    w[2] = (unsigned char)(v >> 8);
    w[3] = (unsigned char)v;
    return w + 4;
}

static unsigned char *put_varint(unsigned char *w, uint32_t v) {
    do {
        unsigned char c = v & 0x7F;
        v >>= 7;
        *w++ = v ? (unsigned char)(c | 0x80) : c;
    } while (v);
    return w;
}

static unsigned char *put_field(unsigned char *w, const char *s, size_t n) {
    w = put_u16(w, n);
    if (n) memcpy(w, s, n);
    return w + n;
}

/* Reserves the whole packet (fixed header + body of `body` bytes) and writes the fixed header. */
static unsigned char *begin(nc_buf *out, unsigned h, size_t body, int *err) {
    if (body > NC_MQTT_MAX_REMAINING) {
        *err = NC_ETOOBIG;
        return NULL;
    }
    if (nc_buf_reserve(out, 1 + varint_size((uint32_t)body) + body)) {
        *err = NC_ENOMEM;
        return NULL;
    }
    unsigned char *w = (unsigned char *)out->data + out->len;
    *w++ = (unsigned char)h;
    return put_varint(w, (uint32_t)body);
}

static void finish(nc_buf *out, unsigned char *w) {
    out->len = (size_t)((char *)w - out->data);
}

static int users_size(const nc_header *u, size_t n, size_t *size) {
    for (size_t i = 0; i < n; i++) {
        if (!nc_mqtt_string_ok(u[i].name, u[i].name_len) || !nc_mqtt_string_ok(u[i].value, u[i].value_len))
            return NC_EINVAL;
        *size += 5 + u[i].name_len + u[i].value_len;
    }
    return 0;
}

static unsigned char *put_users(unsigned char *w, const nc_header *u, size_t n) {
    for (size_t i = 0; i < n; i++) {
        *w++ = 0x26;
        w = put_field(w, u[i].name, u[i].name_len);
        w = put_field(w, u[i].value, u[i].value_len);
    }
    return w;
}

/* The size of a PUBLISH/will property block (without its length), or (size_t)-1 if invalid. */
static size_t pub_props_size(const nc_mqtt_pub_props *pp) {
    size_t s = 0;
    if (!pp) return 0;
    if (pp->has_payload_format) {
        if (pp->payload_format > 1) return (size_t)-1;
        s += 2;
    }
    if (pp->has_message_expiry) s += 5;
    if (pp->content_type) {
        if (!nc_mqtt_string_ok(pp->content_type, pp->content_type_len)) return (size_t)-1;
        s += 3 + pp->content_type_len;
    }
    if (pp->response_topic) {
        if (!nc_mqtt_topic_ok(pp->response_topic, pp->response_topic_len)) return (size_t)-1;
        s += 3 + pp->response_topic_len;
    }
    if (pp->correlation) {
        if (pp->correlation_len > 65535) return (size_t)-1;
        s += 3 + pp->correlation_len;
    }
    if (users_size(pp->user, pp->n_user, &s)) return (size_t)-1;
    return s;
}

static unsigned char *put_pub_props(unsigned char *w, const nc_mqtt_pub_props *pp, size_t size) {
    w = put_varint(w, (uint32_t)size);
    if (!pp) return w;
    if (pp->has_payload_format) *w++ = 0x01, *w++ = pp->payload_format;
    if (pp->has_message_expiry) *w++ = 0x02, w = put_u32(w, pp->message_expiry);
    if (pp->content_type) *w++ = 0x03, w = put_field(w, pp->content_type, pp->content_type_len);
    if (pp->response_topic) *w++ = 0x08, w = put_field(w, pp->response_topic, pp->response_topic_len);
    if (pp->correlation) *w++ = 0x09, w = put_field(w, pp->correlation, pp->correlation_len);
    return put_users(w, pp->user, pp->n_user);
}

static int version_ok(int v) {
    return v == NC_MQTT_V311 || v == NC_MQTT_V5;
}

int nc_mqtt_write_connect(nc_buf *out, const nc_mqtt_connect *c) {
    int v5 = c->version == NC_MQTT_V5;
    if (!version_ok(c->version) || !nc_mqtt_string_ok(c->client_id, c->client_id_len)) return NC_EINVAL;
    if (c->username && !nc_mqtt_string_ok(c->username, c->username_len)) return NC_EINVAL;
    if (c->password && (c->password_len > 65535 || (!v5 && !c->username))) return NC_EINVAL;
    size_t body = 10 + 2 + c->client_id_len, props = 0, wprops = 0;
    if (v5) {
        if (c->session_expiry) props += 5;
        if (c->receive_maximum) props += 3;
        if (c->maximum_packet_size) props += 5;
        if (users_size(c->user, c->n_user, &props)) return NC_EINVAL;
        body += varint_size((uint32_t)props) + props;
    } else if (c->n_user)
        return NC_EINVAL;
    if (c->will_topic) {
        if (!nc_mqtt_topic_ok(c->will_topic, c->will_topic_len) || c->will_payload_len > 65535 ||
            c->will_qos > 2)
            return NC_EINVAL;
        if (v5) {
            wprops = pub_props_size(c->will_props);
            if (wprops == (size_t)-1) return NC_EINVAL;
            body += varint_size((uint32_t)wprops) + wprops;
        } else if (c->will_props)
            return NC_EINVAL;
        body += 4 + c->will_topic_len + c->will_payload_len;
    }
    if (c->username) body += 2 + c->username_len;
    if (c->password) body += 2 + c->password_len;
    int err = 0;
    unsigned char *w = begin(out, NC_MQTT_CONNECT << 4, body, &err);
    if (!w) return err;
    memcpy(w, "\0\4MQTT", 6);
    w += 6;
    *w++ = (unsigned char)c->version;
    unsigned flags = c->clean ? 0x02 : 0;
    if (c->will_topic) flags |= 0x04 | (unsigned)c->will_qos << 3 | (c->will_retain ? 0x20 : 0);
    if (c->password) flags |= 0x40;
    if (c->username) flags |= 0x80;
    *w++ = (unsigned char)flags;
    w = put_u16(w, c->keepalive);
    if (v5) {
        w = put_varint(w, (uint32_t)props);
        if (c->session_expiry) *w++ = 0x11, w = put_u32(w, c->session_expiry);
        if (c->receive_maximum) *w++ = 0x21, w = put_u16(w, c->receive_maximum);
        if (c->maximum_packet_size) *w++ = 0x27, w = put_u32(w, c->maximum_packet_size);
        w = put_users(w, c->user, c->n_user);
    }
    w = put_field(w, c->client_id, c->client_id_len);
    if (c->will_topic) {
        if (v5) w = put_pub_props(w, c->will_props, wprops);
        w = put_field(w, c->will_topic, c->will_topic_len);
        w = put_field(w, c->will_payload, c->will_payload_len);
    }
    if (c->username) w = put_field(w, c->username, c->username_len);
    if (c->password) w = put_field(w, c->password, c->password_len);
    finish(out, w);
    return 0;
}

int nc_mqtt_write_subscribe(nc_buf *out, int version, uint16_t id, const nc_mqtt_sub *subs, size_t n,
                            uint32_t sub_id) {
    int v5 = version == NC_MQTT_V5;
    if (!version_ok(version) || !id || !n || sub_id > NC_MQTT_MAX_REMAINING || (sub_id && !v5))
        return NC_EINVAL;
    size_t props = sub_id ? 1 + varint_size(sub_id) : 0;
    size_t body = 2 + (v5 ? varint_size((uint32_t)props) + props : 0);
    for (size_t i = 0; i < n; i++) {
        const nc_mqtt_sub *s = &subs[i];
        if (!nc_mqtt_filter_ok(s->filter, s->filter_len) || s->qos > 2) return NC_EINVAL;
        if (!v5 && (s->nl || s->rap || s->rh)) return NC_EINVAL;
        if (s->nl > 1 || s->rap > 1 || s->rh > 2) return NC_EINVAL;
        /* MQTT 5 3.8.3.1: No Local on a shared subscription is a protocol error */
        if (s->nl && s->filter_len >= 7 && memcmp(s->filter, "$share/", 7) == 0) return NC_EINVAL;
        body += 3 + s->filter_len;
    }
    int err = 0;
    unsigned char *w = begin(out, NC_MQTT_SUBSCRIBE << 4 | 2, body, &err);
    if (!w) return err;
    w = put_u16(w, id);
    if (v5) {
        w = put_varint(w, (uint32_t)props);
        if (sub_id) *w++ = 0x0B, w = put_varint(w, sub_id);
    }
    for (size_t i = 0; i < n; i++) {
        w = put_field(w, subs[i].filter, subs[i].filter_len);
        *w++ = (unsigned char)(subs[i].qos | subs[i].nl << 2 | subs[i].rap << 3 | subs[i].rh << 4);
    }
    finish(out, w);
    return 0;
}

int nc_mqtt_write_unsubscribe(nc_buf *out, int version, uint16_t id, const nc_mqtt_sub *subs, size_t n) {
    int v5 = version == NC_MQTT_V5;
    if (!version_ok(version) || !id || !n) return NC_EINVAL;
    size_t body = 2 + (v5 ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        if (!nc_mqtt_filter_ok(subs[i].filter, subs[i].filter_len)) return NC_EINVAL;
        body += 2 + subs[i].filter_len;
    }
    int err = 0;
    unsigned char *w = begin(out, NC_MQTT_UNSUBSCRIBE << 4 | 2, body, &err);
    if (!w) return err;
    w = put_u16(w, id);
    if (v5) *w++ = 0;
    for (size_t i = 0; i < n; i++) w = put_field(w, subs[i].filter, subs[i].filter_len);
    finish(out, w);
    return 0;
}

/* Checks a PUBLISH; *body and *props get its remaining length and property block size. */
static int publish_check(int version, const nc_mqtt_publish *m, size_t *body, size_t *props) {
    int v5 = version == NC_MQTT_V5;
    if (!version_ok(version) || m->qos > 2 || (m->qos && !m->id) || (!m->qos && m->dup)) return NC_EINVAL;
    if (!nc_mqtt_topic_ok(m->topic, m->topic_len) || (m->payload_len && !m->payload)) return NC_EINVAL;
    *props = 0;
    if (v5) {
        *props = pub_props_size(m->props);
        if (*props == (size_t)-1) return NC_EINVAL;
    } else if (m->props && pub_props_size(m->props) != 0)
        return NC_EINVAL; /* 3.1.1 has no properties */
    *body = 2 + m->topic_len + (m->qos ? 2 : 0) + (v5 ? varint_size((uint32_t)*props) + *props : 0) +
            m->payload_len;
    if (*body > NC_MQTT_MAX_REMAINING) return NC_ETOOBIG;
    return 0;
}

size_t nc_mqtt_publish_size(int version, const nc_mqtt_publish *m) {
    size_t body, props;
    if (publish_check(version, m, &body, &props)) return 0;
    return 1 + varint_size((uint32_t)body) + body;
}

int nc_mqtt_write_publish(nc_buf *out, int version, const nc_mqtt_publish *m) {
    size_t body, props;
    int r = publish_check(version, m, &body, &props);
    if (r) return r;
    unsigned h = NC_MQTT_PUBLISH << 4 | (m->dup ? 8u : 0) | (unsigned)m->qos << 1 | (m->retain ? 1u : 0);
    unsigned char *w = begin(out, h, body, &r);
    if (!w) return r;
    w = put_field(w, m->topic, m->topic_len);
    if (m->qos) w = put_u16(w, m->id);
    if (version == NC_MQTT_V5) w = put_pub_props(w, m->props, props);
    if (m->payload_len) memcpy(w, m->payload, m->payload_len);
    finish(out, w + m->payload_len);
    return 0;
}

int nc_mqtt_publish_patch(char *pkt, size_t n, uint16_t id, int dup) {
    const unsigned char *u = (const unsigned char *)pkt;
    if (n < 2 || !id || u[0] >> 4 != NC_MQTT_PUBLISH || !(u[0] & 6)) return NC_EINVAL;
    size_t at = 1, rem = 0;
    for (int shift = 0;; shift += 7) { /* the remaining length: at most 4 bytes */
        if (at >= n || shift > 21) return NC_EINVAL;
        rem |= (size_t)(u[at] & 0x7f) << shift;
        if (!(u[at++] & 0x80)) break;
    }
    if (rem != n - at || rem < 2) return NC_EINVAL;
    size_t tlen = (size_t)u[at] << 8 | u[at + 1];
    at += 2 + tlen;
    if (at + 2 > n) return NC_EINVAL;
    pkt[0] = (char)(dup ? u[0] | 8u : u[0] & ~8u);
    pkt[at] = (char)(id >> 8);
    pkt[at + 1] = (char)(id & 0xff);
    return 0;
}

int nc_mqtt_write_ack(nc_buf *out, int version, int type, uint16_t id, uint8_t reason) {
    if (!version_ok(version) || type < NC_MQTT_PUBACK || type > NC_MQTT_PUBCOMP || !id) return NC_EINVAL;
    int with_reason = version == NC_MQTT_V5 && reason;
    if (with_reason && !puback_reason_ok(type, reason)) return NC_EINVAL;
    if (!with_reason && reason) return NC_EINVAL;
    int err = 0;
    unsigned char *w =
        begin(out, (unsigned)type << 4 | (type == NC_MQTT_PUBREL ? 2u : 0), with_reason ? 3 : 2, &err);
    if (!w) return err;
    w = put_u16(w, id);
    if (with_reason) *w++ = reason;
    finish(out, w);
    return 0;
}

int nc_mqtt_write_pingreq(nc_buf *out) {
    return nc_buf_append(out, "\xC0\x00", 2);
}

int nc_mqtt_write_disconnect(nc_buf *out, int version, uint8_t reason) {
    if (!version_ok(version) || (reason && (version != NC_MQTT_V5 || !disconnect_code_ok(reason))))
        return NC_EINVAL;
    if (!reason) return nc_buf_append(out, "\xE0\x00", 2);
    char b[3] = {(char)0xE0, 1, (char)reason};
    return nc_buf_append(out, b, 3);
}
