/* The MQTT 3.1.1 and 5.0 client protocol, sans-I/O: writers for what a client sends (CONNECT, SUBSCRIBE,
 * UNSUBSCRIBE, PUBLISH, PUBACK/PUBREC/PUBREL/PUBCOMP, PINGREQ, DISCONNECT), a parser fed the bytes a broker
 * sends that reports complete packets (views into its buffer, no allocation per packet), with caps and the
 * spec's validation, and the topic-filter matcher. No sockets here: unit-tested and fuzzed. Private. */
#ifndef NC_CODEC_MQTT_PROTO_H
#define NC_CODEC_MQTT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/header.h"

/* Protocol levels as CONNECT carries them. */
enum { NC_MQTT_V311 = 4, NC_MQTT_V5 = 5 };

/* Control packet types (the fixed header's high nibble). */
enum {
    NC_MQTT_CONNECT = 1,
    NC_MQTT_CONNACK = 2,
    NC_MQTT_PUBLISH = 3,
    NC_MQTT_PUBACK = 4,
    NC_MQTT_PUBREC = 5,
    NC_MQTT_PUBREL = 6,
    NC_MQTT_PUBCOMP = 7,
    NC_MQTT_SUBSCRIBE = 8,
    NC_MQTT_SUBACK = 9,
    NC_MQTT_UNSUBSCRIBE = 10,
    NC_MQTT_UNSUBACK = 11,
    NC_MQTT_PINGREQ = 12,
    NC_MQTT_PINGRESP = 13,
    NC_MQTT_DISCONNECT = 14,
    NC_MQTT_AUTH = 15
};

/* The largest remaining length a 4-byte variable byte integer holds. */
#define NC_MQTT_MAX_REMAINING 268435455u

/* Bits of nc_mqtt_props.has: which single-valued properties were present. */
enum {
    NC_MQTTP_PAYLOAD_FORMAT = 1u << 0,
    NC_MQTTP_MESSAGE_EXPIRY = 1u << 1,
    NC_MQTTP_CONTENT_TYPE = 1u << 2,
    NC_MQTTP_RESPONSE_TOPIC = 1u << 3,
    NC_MQTTP_CORRELATION = 1u << 4,
    NC_MQTTP_SUBSCRIPTION_ID = 1u << 5,
    NC_MQTTP_SESSION_EXPIRY = 1u << 6,
    NC_MQTTP_ASSIGNED_CLIENT_ID = 1u << 7,
    NC_MQTTP_SERVER_KEEP_ALIVE = 1u << 8,
    NC_MQTTP_RESPONSE_INFO = 1u << 9,
    NC_MQTTP_SERVER_REFERENCE = 1u << 10,
    NC_MQTTP_REASON_STRING = 1u << 11,
    NC_MQTTP_RECEIVE_MAXIMUM = 1u << 12,
    NC_MQTTP_TOPIC_ALIAS_MAXIMUM = 1u << 13,
    NC_MQTTP_MAXIMUM_QOS = 1u << 14,
    NC_MQTTP_RETAIN_AVAILABLE = 1u << 15,
    NC_MQTTP_MAXIMUM_PACKET_SIZE = 1u << 16,
    NC_MQTTP_WILDCARD_SUB_AVAILABLE = 1u << 17,
    NC_MQTTP_SUB_ID_AVAILABLE = 1u << 18,
    NC_MQTTP_SHARED_SUB_AVAILABLE = 1u << 19
};

/* A byte string inside a received packet (not NUL-terminated). */
typedef struct nc_mqtt_span {
    const char *p;
    size_t n;
} nc_mqtt_span;

/* The MQTT 5 properties of a received packet. Spans point into the parser's buffer (valid during the
 * callback only). User properties stay in wire order in `raw`: nc_mqtt_user_props lists them. */
typedef struct nc_mqtt_props {
    uint32_t has;     /* NC_MQTTP_* bits */
    nc_mqtt_span raw; /* the whole property block (without its length) */
    size_t n_user;    /* user properties in the block */
    /* PUBLISH */
    uint8_t payload_format;
    uint32_t message_expiry;
    nc_mqtt_span content_type, response_topic, correlation;
    uint32_t subscription_id; /* the first one; a PUBLISH may carry several (in raw) */
    /* CONNACK (and DISCONNECT: session expiry, server reference, reason string) */
    uint32_t session_expiry;
    nc_mqtt_span assigned_client_id, response_info, server_reference, reason_string;
    uint16_t server_keep_alive, receive_maximum, topic_alias_maximum;
    uint8_t maximum_qos, retain_available, wildcard_sub_available, sub_id_available, shared_sub_available;
    uint32_t maximum_packet_size;
} nc_mqtt_props;

/* One received packet. Pointers point into the parser's buffer: valid during the callback only. */
typedef struct nc_mqtt_pkt {
    int type;       /* NC_MQTT_* */
    uint16_t id;    /* packet identifier (PUBLISH QoS > 0, acks, SUBACK, UNSUBACK), else 0 */
    uint8_t reason; /* CONNACK return/reason code; v5 PUBACK..PUBCOMP and DISCONNECT reason (0 if absent) */
    uint8_t session_present; /* CONNACK */
    /* PUBLISH */
    uint8_t qos, retain, dup;
    nc_mqtt_span topic, payload;
    /* SUBACK / v5 UNSUBACK: one reason code per filter, in request order */
    const unsigned char *codes;
    size_t n_codes;
    nc_mqtt_props props; /* v5 only; zeroed on 3.1.1 */
} nc_mqtt_pkt;

typedef struct nc_mqtt_parser {
    nc_buf buf;
    size_t pos;            /* parsed up to here */
    int version;           /* NC_MQTT_V311 or NC_MQTT_V5: whether packets carry properties */
    size_t max_packet;     /* largest packet accepted, fixed header included (0 = the protocol's maximum) */
    size_t max_props;      /* most properties in one packet (default 64) */
    size_t max_user_props; /* most user properties in one packet (default 64) */
} nc_mqtt_parser;

/* Return nonzero to stop (the rest stays buffered for the next feed). The callback must not feed or free
 * the parser: stop, then do that after nc_mqtt_feed returns. */
typedef int (*nc_mqtt_pkt_fn)(void *user, const nc_mqtt_pkt *pkt);

/* A parser for the packets a broker sends to a client speaking `version`. */
void nc_mqtt_parser_init(nc_mqtt_parser *p, int version, size_t max_packet);
void nc_mqtt_parser_free(nc_mqtt_parser *p);
/* Feeds bytes and reports every complete packet. A PUBLISH payload is not looked at (not even with Payload
 * Format Indicator 1: NestJS reads non-UTF-8 payloads too, and the transport decides). Returns 0, NC_EPROTO
 * (malformed, or a packet a broker may not send; `why` says why; the connection cannot continue), NC_ETOOBIG
 * (a packet over max_packet, or over the property caps) or NC_ENOMEM. */
int nc_mqtt_feed(nc_mqtt_parser *p, const char *data, size_t len, nc_mqtt_pkt_fn fn, void *user, char *why,
                 size_t whylen);
/* Bytes buffered and not yet parsed. */
size_t nc_mqtt_pending(const nc_mqtt_parser *p);

/* The user properties of a packet in wire order (repeated names kept) as spans into its buffer: up to
 * `cap` go to out, returns how many the packet has (call again with a larger array when that is > cap). */
size_t nc_mqtt_user_props(const nc_mqtt_props *props, nc_header *out, size_t cap);

/* ---- writers (append one packet to out; NC_EINVAL for what the protocol forbids, NC_ETOOBIG over the
 * protocol's maximum, NC_ENOMEM; out is unchanged on failure) ---- */

/* MQTT 5 properties a client may put on a PUBLISH (and on a will). Zeroed, it has none: NULL strings, no
 * user properties and the has_ flags 0 are absent. */
typedef struct nc_mqtt_pub_props {
    int has_payload_format;
    uint8_t payload_format; /* 0: bytes, 1: UTF-8 */
    int has_message_expiry;
    uint32_t message_expiry; /* seconds */
    const char *content_type;
    size_t content_type_len;
    const char *response_topic;
    size_t response_topic_len;
    const char *correlation;
    size_t correlation_len;
    const nc_header *user; /* in order; a name may repeat */
    size_t n_user;
} nc_mqtt_pub_props;

typedef struct nc_mqtt_connect {
    int version; /* NC_MQTT_V311 or NC_MQTT_V5 */
    const char *client_id;
    size_t client_id_len;
    int clean; /* clean session (3.1.1) / clean start (5) */
    uint16_t keepalive;
    const char *username; /* NULL: none */
    size_t username_len;
    const char *password; /* NULL: none (3.1.1 needs a username with it) */
    size_t password_len;
    const char *will_topic; /* NULL: no will */
    size_t will_topic_len;
    const char *will_payload;
    size_t will_payload_len;
    uint8_t will_qos;
    int will_retain;
    const nc_mqtt_pub_props *will_props; /* v5 */
    /* v5 properties; 0 = absent */
    uint32_t session_expiry;
    uint16_t receive_maximum;
    uint32_t maximum_packet_size;
    const nc_header *user;
    size_t n_user;
} nc_mqtt_connect;

int nc_mqtt_write_connect(nc_buf *out, const nc_mqtt_connect *c);

/* One SUBSCRIBE entry; UNSUBSCRIBE uses only the filter. nl/rap/rh are MQTT 5 subscription options. */
typedef struct nc_mqtt_sub {
    const char *filter;
    size_t filter_len;
    uint8_t qos;
    uint8_t nl, rap, rh;
} nc_mqtt_sub;

/* sub_id: the v5 subscription identifier (0 = none). */
int nc_mqtt_write_subscribe(nc_buf *out, int version, uint16_t id, const nc_mqtt_sub *subs, size_t n,
                            uint32_t sub_id);
int nc_mqtt_write_unsubscribe(nc_buf *out, int version, uint16_t id, const nc_mqtt_sub *subs, size_t n);

typedef struct nc_mqtt_publish {
    const char *topic;
    size_t topic_len;
    const char *payload;
    size_t payload_len;
    uint8_t qos;
    int retain, dup;
    uint16_t id;                    /* QoS > 0: nonzero */
    const nc_mqtt_pub_props *props; /* v5 only; NULL: none */
} nc_mqtt_publish;

int nc_mqtt_write_publish(nc_buf *out, int version, const nc_mqtt_publish *m);
/* The size of that PUBLISH on the wire (to hold it against the broker's maximum packet size); 0 if it
 * cannot be written. */
size_t nc_mqtt_publish_size(int version, const nc_mqtt_publish *m);
/* Rewrites a PUBLISH that nc_mqtt_write_publish wrote with QoS > 0 in place: its packet identifier (id
 * nonzero) and its DUP flag (a redelivery), so a kept packet can be resent without encoding it again.
 * Returns 0, or NC_EINVAL when the bytes are not such a PUBLISH. */
int nc_mqtt_publish_patch(char *pkt, size_t n, uint16_t id, int dup);
/* PUBACK, PUBREC, PUBREL or PUBCOMP; reason is written only on v5 and when nonzero. */
int nc_mqtt_write_ack(nc_buf *out, int version, int type, uint16_t id, uint8_t reason);
int nc_mqtt_write_pingreq(nc_buf *out);
/* reason is written only on v5 and when nonzero. */
int nc_mqtt_write_disconnect(nc_buf *out, int version, uint8_t reason);

/* ---- names ---- */

/* A UTF-8 string MQTT accepts: well-formed, no U+0000, at most 65,535 bytes. */
int nc_mqtt_string_ok(const char *s, size_t len);
/* A topic name a PUBLISH may carry: a non-empty MQTT string without `+` or `#`. */
int nc_mqtt_topic_ok(const char *s, size_t len);
/* A topic filter: a non-empty MQTT string; `+` only as a whole level, `#` only as the whole last level;
 * `$share/<group>/<filter>` with a non-empty group without wildcards and a valid filter. */
int nc_mqtt_filter_ok(const char *s, size_t len);
/* The filter without a `$share/<group>/` prefix (the filter itself when it has none). */
nc_mqtt_span nc_mqtt_filter_unshared(const char *s, size_t len);
/* 1 when topic matches filter as an MQTT broker matches it (MQTT 5 4.7): `+` one level (an empty one too),
 * `#` this level and all below, a `$share/<group>/` prefix ignored; a topic starting with `$` is not matched
 * by a filter starting with a wildcard. NestJS's matchMqttPattern differs in two places (docs/mqtt.md). */
int nc_mqtt_topic_match(const char *filter, size_t flen, const char *topic, size_t tlen);

/* The name of a packet type ("PUBLISH"), for messages. */
const char *nc_mqtt_type_name(int type);
/* The words of a CONNACK return code (3.1.1) or a reason code (5), for messages. */
const char *nc_mqtt_reason_text(int version, uint8_t code);

#endif
