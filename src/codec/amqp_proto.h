/* The AMQP 0-9-1 client protocol as RabbitMQ speaks it, sans-I/O: a parser fed the bytes a broker sends
 * that reports whole methods, heartbeats and whole messages (a content-bearing method, its content header
 * and its body frames assembled), with caps; writers for what a client sends; field tables to and from
 * JSON (amqp_table.c). No sockets here: unit-tested and fuzzed. Private. */
#ifndef NC_CODEC_AMQP_PROTO_H
#define NC_CODEC_AMQP_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* The bytes a client sends first. */
#define NC_AMQP_PROTOCOL_HEADER "AMQP\0\0\x09\x01"
#define NC_AMQP_PROTOCOL_HEADER_LEN 8

/* Frame types and the frame-end octet. */
enum {
    NC_AMQP_FRAME_METHOD = 1,
    NC_AMQP_FRAME_HEADER = 2,
    NC_AMQP_FRAME_BODY = 3,
    NC_AMQP_FRAME_HEARTBEAT = 8
};
#define NC_AMQP_FRAME_END 0xCE
/* The frame size every peer accepts before Tune (the spec's frame-min-size), and RabbitMQ's default. */
#define NC_AMQP_FRAME_MIN 4096u
#define NC_AMQP_FRAME_DEFAULT 131072u

/* A method's identity: class << 16 | method. */
#define NC_AMQP_ID(c, m) (((uint32_t)(c) << 16) | (uint32_t)(m))
enum {
    NC_AMQP_CONNECTION_START = NC_AMQP_ID(10, 10),
    NC_AMQP_CONNECTION_START_OK = NC_AMQP_ID(10, 11),
    NC_AMQP_CONNECTION_SECURE = NC_AMQP_ID(10, 20),
    NC_AMQP_CONNECTION_SECURE_OK = NC_AMQP_ID(10, 21),
    NC_AMQP_CONNECTION_TUNE = NC_AMQP_ID(10, 30),
    NC_AMQP_CONNECTION_TUNE_OK = NC_AMQP_ID(10, 31),
    NC_AMQP_CONNECTION_OPEN = NC_AMQP_ID(10, 40),
    NC_AMQP_CONNECTION_OPEN_OK = NC_AMQP_ID(10, 41),
    NC_AMQP_CONNECTION_CLOSE = NC_AMQP_ID(10, 50),
    NC_AMQP_CONNECTION_CLOSE_OK = NC_AMQP_ID(10, 51),
    NC_AMQP_CONNECTION_BLOCKED = NC_AMQP_ID(10, 60),
    NC_AMQP_CONNECTION_UNBLOCKED = NC_AMQP_ID(10, 61),
    NC_AMQP_CONNECTION_UPDATE_SECRET = NC_AMQP_ID(10, 70),
    NC_AMQP_CONNECTION_UPDATE_SECRET_OK = NC_AMQP_ID(10, 71),
    NC_AMQP_CHANNEL_OPEN = NC_AMQP_ID(20, 10),
    NC_AMQP_CHANNEL_OPEN_OK = NC_AMQP_ID(20, 11),
    NC_AMQP_CHANNEL_FLOW = NC_AMQP_ID(20, 20),
    NC_AMQP_CHANNEL_FLOW_OK = NC_AMQP_ID(20, 21),
    NC_AMQP_CHANNEL_CLOSE = NC_AMQP_ID(20, 40),
    NC_AMQP_CHANNEL_CLOSE_OK = NC_AMQP_ID(20, 41),
    NC_AMQP_EXCHANGE_DECLARE = NC_AMQP_ID(40, 10),
    NC_AMQP_EXCHANGE_DECLARE_OK = NC_AMQP_ID(40, 11),
    NC_AMQP_EXCHANGE_BIND = NC_AMQP_ID(40, 30),
    NC_AMQP_EXCHANGE_BIND_OK = NC_AMQP_ID(40, 31),
    NC_AMQP_QUEUE_DECLARE = NC_AMQP_ID(50, 10),
    NC_AMQP_QUEUE_DECLARE_OK = NC_AMQP_ID(50, 11),
    NC_AMQP_QUEUE_BIND = NC_AMQP_ID(50, 20),
    NC_AMQP_QUEUE_BIND_OK = NC_AMQP_ID(50, 21),
    NC_AMQP_QUEUE_PURGE = NC_AMQP_ID(50, 30),
    NC_AMQP_QUEUE_PURGE_OK = NC_AMQP_ID(50, 31),
    NC_AMQP_QUEUE_DELETE = NC_AMQP_ID(50, 40),
    NC_AMQP_QUEUE_DELETE_OK = NC_AMQP_ID(50, 41),
    NC_AMQP_BASIC_QOS = NC_AMQP_ID(60, 10),
    NC_AMQP_BASIC_QOS_OK = NC_AMQP_ID(60, 11),
    NC_AMQP_BASIC_CONSUME = NC_AMQP_ID(60, 20),
    NC_AMQP_BASIC_CONSUME_OK = NC_AMQP_ID(60, 21),
    NC_AMQP_BASIC_CANCEL = NC_AMQP_ID(60, 30),
    NC_AMQP_BASIC_CANCEL_OK = NC_AMQP_ID(60, 31),
    NC_AMQP_BASIC_PUBLISH = NC_AMQP_ID(60, 40),
    NC_AMQP_BASIC_RETURN = NC_AMQP_ID(60, 50),
    NC_AMQP_BASIC_DELIVER = NC_AMQP_ID(60, 60),
    NC_AMQP_BASIC_GET_OK = NC_AMQP_ID(60, 71),
    NC_AMQP_BASIC_GET_EMPTY = NC_AMQP_ID(60, 72),
    NC_AMQP_BASIC_ACK = NC_AMQP_ID(60, 80),
    NC_AMQP_BASIC_REJECT = NC_AMQP_ID(60, 90),
    NC_AMQP_BASIC_RECOVER = NC_AMQP_ID(60, 110),
    NC_AMQP_BASIC_RECOVER_OK = NC_AMQP_ID(60, 111),
    NC_AMQP_BASIC_NACK = NC_AMQP_ID(60, 120),
    NC_AMQP_CONFIRM_SELECT = NC_AMQP_ID(85, 10),
    NC_AMQP_CONFIRM_SELECT_OK = NC_AMQP_ID(85, 11),
};

/* The bit arguments of methods (nc_amqp_method.flags). */
enum {
    NC_AMQP_F_PASSIVE = 1u << 0,
    NC_AMQP_F_DURABLE = 1u << 1,
    NC_AMQP_F_AUTO_DELETE = 1u << 2,
    NC_AMQP_F_INTERNAL = 1u << 3,
    NC_AMQP_F_NOWAIT = 1u << 4,
    NC_AMQP_F_EXCLUSIVE = 1u << 5,
    NC_AMQP_F_NO_LOCAL = 1u << 6,
    NC_AMQP_F_NO_ACK = 1u << 7,
    NC_AMQP_F_GLOBAL = 1u << 8,
    NC_AMQP_F_REQUEUE = 1u << 9,
    NC_AMQP_F_MULTIPLE = 1u << 10,
    NC_AMQP_F_REDELIVERED = 1u << 11,
    NC_AMQP_F_ACTIVE = 1u << 12,
    NC_AMQP_F_MANDATORY = 1u << 13,
    NC_AMQP_F_IMMEDIATE = 1u << 14,
    NC_AMQP_F_IF_UNUSED = 1u << 15,
    NC_AMQP_F_IF_EMPTY = 1u << 16,
};

/* A byte string inside a received frame (not NUL-terminated). */
typedef struct nc_amqp_span {
    const char *p;
    size_t n;
} nc_amqp_span;

/* One method and its arguments; a method has only some of these (the rest are zero). Received: spans
 * point into the parser's buffers and `table` is owned by the parser, valid during the callback only.
 * Written: the caller's, borrowed during the call (a NULL span is empty). */
typedef struct nc_amqp_method {
    uint32_t id; /* NC_AMQP_* */
    uint16_t channel;
    uint32_t flags;                                     /* NC_AMQP_F_* */
    uint8_t version_major, version_minor;               /* connection.start */
    uint16_t reply_code, failing_class, failing_method; /* connection.close, channel.close, return */
    uint16_t channel_max, heartbeat;                    /* tune, tune-ok */
    uint32_t frame_max;                                 /* tune, tune-ok */
    uint32_t prefetch_size;                             /* qos */
    uint16_t prefetch_count;                            /* qos */
    uint32_t message_count, consumer_count;             /* declare-ok, purge-ok, delete-ok, get-ok */
    uint64_t delivery_tag;                              /* deliver, get-ok, ack, nack, reject */
    nc_amqp_span text; /* reply-text (close, return), reason (blocked, update-secret) */
    nc_amqp_span queue, exchange, routing_key, consumer_tag;
    nc_amqp_span source;              /* exchange.bind (exchange is the destination) */
    nc_amqp_span type;                /* exchange.declare */
    nc_amqp_span vhost;               /* connection.open */
    nc_amqp_span mechanism, locale;   /* start-ok */
    nc_amqp_span mechanisms, locales; /* start (long strings) */
    nc_amqp_span blob; /* response (start-ok, secure-ok), challenge (secure), new-secret (update-secret) */
    json_t *table;     /* arguments, client-properties (start-ok), server-properties (start); NULL = empty */
} nc_amqp_method;

/* Bits of nc_amqp_props.flags: the property flags as on the wire. */
enum {
    NC_AMQP_P_CONTENT_TYPE = 1u << 15,
    NC_AMQP_P_CONTENT_ENCODING = 1u << 14,
    NC_AMQP_P_HEADERS = 1u << 13,
    NC_AMQP_P_DELIVERY_MODE = 1u << 12,
    NC_AMQP_P_PRIORITY = 1u << 11,
    NC_AMQP_P_CORRELATION_ID = 1u << 10,
    NC_AMQP_P_REPLY_TO = 1u << 9,
    NC_AMQP_P_EXPIRATION = 1u << 8,
    NC_AMQP_P_MESSAGE_ID = 1u << 7,
    NC_AMQP_P_TIMESTAMP = 1u << 6,
    NC_AMQP_P_TYPE = 1u << 5,
    NC_AMQP_P_USER_ID = 1u << 4,
    NC_AMQP_P_APP_ID = 1u << 3,
    NC_AMQP_P_CLUSTER_ID = 1u << 2,
};

/* The 14 basic properties (a content header). Only those whose NC_AMQP_P_* bit is in flags are present,
 * received or written. Received: spans into the parser's buffers, headers owned by the parser (valid
 * during the callback); written: borrowed. */
typedef struct nc_amqp_props {
    uint16_t flags;
    nc_amqp_span content_type, content_encoding;
    json_t *headers; /* an object; received: decoded from the table, written: encoded (see amqp_table.c) */
    uint8_t delivery_mode, priority;
    nc_amqp_span correlation_id, reply_to, expiration, message_id;
    uint64_t timestamp;
    nc_amqp_span type, user_id, app_id, cluster_id;
} nc_amqp_props;

enum { NC_AMQP_EV_METHOD = 1, NC_AMQP_EV_MESSAGE, NC_AMQP_EV_HEARTBEAT };

/* What the parser reports. METHOD: a method without content. MESSAGE: basic.deliver / return / get-ok
 * (a server-role parser: basic.publish) with its properties and whole body. HEARTBEAT: channel 0. */
typedef struct nc_amqp_event {
    int kind;
    uint16_t channel;
    nc_amqp_method m;
    nc_amqp_props props; /* MESSAGE */
    nc_amqp_span body;   /* MESSAGE: body_size bytes */
} nc_amqp_event;

/* Which side's methods the parser accepts: a client reads what a broker sends (the default); the server
 * role reads what a client sends (fake brokers in tests, the fuzzer's round trips). */
enum { NC_AMQP_ROLE_CLIENT = 0, NC_AMQP_ROLE_SERVER = 1 };

typedef struct nc_amqp_pending nc_amqp_pending;

typedef struct nc_amqp_parser {
    nc_buf buf;
    size_t pos;         /* parsed up to here */
    int role;           /* NC_AMQP_ROLE_* */
    int started;        /* the first frame was seen (the broker's protocol-header refusal is checked first) */
    uint32_t frame_max; /* largest frame accepted, header and frame-end included */
    size_t max_message; /* largest message body accepted (default 128 MiB, RabbitMQ's own; 0: no limit) */
    int max_depth;      /* deepest nesting of field tables and arrays (default 32) */
    size_t max_pending; /* most messages in assembly at once, one per channel (default 2048) */
    size_t held;        /* body bytes copied for messages in assembly, all channels: at most max_message */
    /* messages being assembled, one per channel: the method and header payloads are copied into the
     * entry; a body that came in one frame is reported in place, one in several frames is copied */
    nc_amqp_pending *pend;
    size_t n_pend, cap_pend;
} nc_amqp_parser;

/* Return nonzero to stop (the rest stays buffered for the next feed). The callback must not feed or free
 * the parser: stop, then do that after nc_amqp_feed returns. */
typedef int (*nc_amqp_event_fn)(void *user, const nc_amqp_event *ev);

void nc_amqp_parser_init(nc_amqp_parser *p, int role);
void nc_amqp_parser_free(nc_amqp_parser *p);
/* After Tune: the negotiated frame_max, header and frame-end included (0: the protocol's "no limit", kept
 * as 2^32-1). Values under NC_AMQP_FRAME_MIN are raised to it. Until then NC_AMQP_FRAME_DEFAULT. */
void nc_amqp_parser_set_frame_max(nc_amqp_parser *p, uint32_t frame_max);
/* Feeds bytes and reports every complete method, heartbeat and message. Returns 0, NC_EPROTO (malformed,
 * or a frame the peer may not send; `why` says which frame and what is wrong; the connection cannot
 * continue), NC_ETOOBIG (a message over max_message, bodies in assembly on all channels together over
 * max_message, more than max_pending messages in assembly) or NC_ENOMEM. */
int nc_amqp_feed(nc_amqp_parser *p, const char *data, size_t len, nc_amqp_event_fn fn, void *user, char *why,
                 size_t whylen);
/* Bytes buffered and not yet parsed. */
size_t nc_amqp_pending_bytes(const nc_amqp_parser *p);
/* The method's name, e.g. "basic.deliver" ("unknown" for others). */
const char *nc_amqp_method_name(uint32_t id);

/* ---- writers (append to out; NC_EINVAL for what the protocol forbids (a short string over 255 bytes, a
 * value a field table cannot hold, an unknown method), NC_ENOMEM; out is unchanged on failure) ---- */

int nc_amqp_write_protocol_header(nc_buf *out);
int nc_amqp_write_heartbeat(nc_buf *out);
/* Any method of the table, client's or server's, with the arguments the method has taken from m. */
int nc_amqp_write_method(nc_buf *out, const nc_amqp_method *m);

enum { NC_AMQP_MECH_PLAIN = 0, NC_AMQP_MECH_EXTERNAL = 1 };
/* connection.start-ok with client-properties: `props` (an object, may be NULL: product, version, platform
 * ... as the caller wants; not modified) plus a "capabilities" table announcing publisher_confirms,
 * consumer_cancel_notify, basic.nack, connection.blocked, exchange_exchange_bindings and
 * authentication_failure_close. PLAIN sends "\0user\0password"; EXTERNAL an empty response (the TLS
 * client certificate names the user). locale NULL: "en_US". */
int nc_amqp_write_start_ok(nc_buf *out, const json_t *props, int mechanism, const char *user,
                           const char *password, const char *locale);
/* basic.publish, its content header and the body split into body frames of at most frame_max bytes
 * (frame overhead included; 0: NC_AMQP_FRAME_MIN). NC_EINVAL when the method or the header frame alone
 * is over frame_max (long names, large headers). */
int nc_amqp_write_publish(nc_buf *out, const nc_amqp_method *m, const nc_amqp_props *props, const char *body,
                          size_t body_len, uint32_t frame_max);

/* ---- field tables (amqp_table.c) ---- */

/* Decodes a field table's bytes (without its 4-byte length) into a JSON object (*out, the caller's);
 * max_depth bounds nested tables and arrays. Field types as RabbitMQ reads them: t bool; b int8; B uint8;
 * s int16 (and the spec's U); u uint16; I int32; i uint32; l int64; L int64 (the spec's; RabbitMQ never
 * sends it); f float; d double; D decimal (scale, uint32: a double); S long string; x byte array (strings;
 * ill-formed UTF-8 becomes U+FFFD); T timestamp (uint64); F table; A array; V void (null). Timestamps past
 * int64 are doubles. Returns 0, NC_EPROTO (`why` says what is wrong) or NC_ENOMEM. */
int nc_amqp_table_decode(const char *p, size_t n, int max_depth, json_t **out, char *why, size_t whylen);
/* Appends a field table (with its length) from a JSON object (NULL: an empty table): integers as 'l',
 * reals as 'd', strings as 'S', booleans as 't', null as 'V', objects as 'F', arrays as 'A'. NC_EINVAL
 * for a key over 255 bytes, nesting deeper than max_depth, a table over 4 GiB, or a value that is not an
 * object. out is unchanged on failure. */
int nc_amqp_table_write(nc_buf *out, const json_t *obj, int max_depth);

#endif
