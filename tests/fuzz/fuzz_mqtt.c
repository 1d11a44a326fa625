/* libFuzzer: the MQTT codec (codec/mqtt_proto.c). The first byte picks the protocol version (odd: MQTT 5)
 * and the caps; the rest is fed whole and again in pieces whose sizes come from the input; both runs must
 * report the same packets. Every PUBLISH accepted must have a valid topic, must be written again by the
 * writer (properties and user properties kept) and read back the same, and must match itself as a filter.
 * The writers get strings and flags cut from the input: a packet they accept must announce in its fixed
 * header exactly the bytes written, one they refuse must leave the buffer untouched. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/mqtt_proto.h"

typedef struct tally {
    uint64_t hash;
    size_t n;
    int version;
} tally;

static void mix(tally *t, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) t->hash = (t->hash ^ b[i]) * 1099511628211ULL;
}

static int same_publish(void *user, const nc_mqtt_pkt *m) {
    const nc_mqtt_pkt *want = user;
    if (m->type != NC_MQTT_PUBLISH || m->qos != want->qos || m->retain != want->retain ||
        m->dup != want->dup || m->id != want->id || m->topic.n != want->topic.n ||
        memcmp(m->topic.p, want->topic.p, m->topic.n) || m->payload.n != want->payload.n ||
        memcmp(m->payload.p, want->payload.p, m->payload.n) || m->props.n_user != want->props.n_user)
        abort();
    return 0;
}

static void republish(int version, const nc_mqtt_pkt *m) {
    nc_header users[64];
    size_t nu = nc_mqtt_user_props(&m->props, users, 64);
    if (nu != m->props.n_user || nu > 64) abort();
    nc_mqtt_pub_props pp = {.has_payload_format = !!(m->props.has & NC_MQTTP_PAYLOAD_FORMAT),
                            .payload_format = m->props.payload_format,
                            .has_message_expiry = !!(m->props.has & NC_MQTTP_MESSAGE_EXPIRY),
                            .message_expiry = m->props.message_expiry,
                            .user = users,
                            .n_user = nu};
    if (m->props.has & NC_MQTTP_CONTENT_TYPE)
        pp.content_type = m->props.content_type.p, pp.content_type_len = m->props.content_type.n;
    if (m->props.has & NC_MQTTP_RESPONSE_TOPIC)
        pp.response_topic = m->props.response_topic.p, pp.response_topic_len = m->props.response_topic.n;
    if (m->props.has & NC_MQTTP_CORRELATION)
        pp.correlation = m->props.correlation.p ? m->props.correlation.p : "",
        pp.correlation_len = m->props.correlation.n;
    nc_mqtt_publish out = {m->topic.p,   m->topic.n, m->payload.p,
                           m->payload.n, m->qos,     m->retain,
                           m->dup,       m->id,      version == NC_MQTT_V5 ? &pp : NULL};
    nc_buf b = NC_BUF_INIT;
    if (nc_mqtt_write_publish(&b, version, &out)) abort();
    if (nc_mqtt_publish_size(version, &out) != b.len) abort();
    nc_mqtt_parser p;
    nc_mqtt_parser_init(&p, version, 0);
    char why[200];
    if (nc_mqtt_feed(&p, b.data, b.len, same_publish, (void *)m, why, sizeof why) || nc_mqtt_pending(&p))
        abort();
    nc_mqtt_parser_free(&p);
    nc_buf_free(&b);
}

static int on_pkt(void *user, const nc_mqtt_pkt *m) {
    tally *t = user;
    t->n++;
    mix(t, &m->type, sizeof m->type);
    mix(t, &m->id, sizeof m->id);
    mix(t, &m->reason, 1);
    mix(t, m->codes, m->n_codes);
    mix(t, m->props.raw.p, m->props.raw.n);
    if (m->type == NC_MQTT_PUBLISH) {
        mix(t, m->topic.p, m->topic.n);
        mix(t, m->payload.p, m->payload.n);
        if (!nc_mqtt_topic_ok(m->topic.p, m->topic.n)) abort();
        /* a topic as a filter matches itself, unless it starts "$share/" (then it is a shared filter) */
        int shared = m->topic.n >= 7 && memcmp(m->topic.p, "$share/", 7) == 0;
        if (!shared && !nc_mqtt_topic_match(m->topic.p, m->topic.n, m->topic.p, m->topic.n)) abort();
        if (m->topic.p[0] != '$' && !nc_mqtt_topic_match("#", 1, m->topic.p, m->topic.n)) abort();
        republish(t->version, m);
    }
    return 0;
}

static int run(int version, size_t max, const uint8_t *data, size_t size, int split, tally *t) {
    nc_mqtt_parser p;
    nc_mqtt_parser_init(&p, version, max);
    p.max_user_props = 64;
    char why[200];
    int r = 0;
    size_t at = 0, step = 1;
    while (at < size && !r) {
        size_t n = split ? step : size - at;
        if (n > size - at) n = size - at;
        r = nc_mqtt_feed(&p, (const char *)data + at, n, on_pkt, t, why, sizeof why);
        at += n;
        step = (step * 7 + data[at % size]) % 97 + 1;
    }
    nc_mqtt_parser_free(&p);
    return r;
}

/* A written packet's fixed header must announce exactly the bytes written after it; a refused packet must
 * leave the buffer as it was. */
static void check_written(nc_buf *b, size_t before, int r) {
    if (r) {
        if (b->len != before) abort();
        return;
    }
    const unsigned char *p = (const unsigned char *)b->data + before;
    size_t n = b->len - before, rem = 0, i = 1;
    for (int shift = 0; i < n && i <= 4; i++, shift += 7) {
        rem |= (size_t)(p[i] & 0x7F) << shift;
        if (!(p[i] & 0x80)) break;
    }
    if (i >= n || 1 + i + rem != n) abort();
}

/* The writers with strings cut from the input: whatever they accept they write consistently. */
static void writers(int version, const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    size_t a = size / 4, b = size / 2, c = 3 * size / 4;
    nc_buf out = NC_BUF_INIT;
    nc_header users[2] = {{s, a, s + a, b - a}, {s + b, c - b, s + c, size - c}};
    nc_mqtt_pub_props pp = {.has_payload_format = data[0] & 2,
                            .payload_format = (uint8_t)(data[0] % 3),
                            .has_message_expiry = data[0] & 4,
                            .message_expiry = 7,
                            .content_type = s,
                            .content_type_len = a,
                            .response_topic = s + a,
                            .response_topic_len = b - a,
                            .correlation = s,
                            .correlation_len = size,
                            .user = users,
                            .n_user = data[0] & 8 ? 2 : 0};
    size_t before = out.len;
    nc_mqtt_connect cn = {.version = version,
                          .client_id = s,
                          .client_id_len = a,
                          .clean = data[0] & 1,
                          .keepalive = 60,
                          .username = data[0] & 16 ? s + a : NULL,
                          .username_len = b - a,
                          .password = data[0] & 32 ? s + b : NULL,
                          .password_len = c - b,
                          .will_topic = data[0] & 64 ? s + c : NULL,
                          .will_topic_len = size - c,
                          .will_payload = s,
                          .will_payload_len = a,
                          .will_qos = (uint8_t)(data[0] >> 6),
                          .will_props = version == NC_MQTT_V5 ? &pp : NULL,
                          .session_expiry = size,
                          .receive_maximum = (uint16_t)size,
                          .maximum_packet_size = (uint32_t)size,
                          .user = users,
                          .n_user = version == NC_MQTT_V5 ? 2 : 0};
    check_written(&out, before, nc_mqtt_write_connect(&out, &cn));
    nc_mqtt_sub subs[2] = {{s, b, (uint8_t)(data[0] & 3), 0, 0, 0}, {s + b, size - b, 1, data[0] >> 7, 1, 2}};
    if (version != NC_MQTT_V5) subs[1].nl = subs[1].rap = subs[1].rh = 0;
    before = out.len;
    check_written(&out, before,
                  nc_mqtt_write_subscribe(&out, version, 1, subs, 2, version == NC_MQTT_V5 ? size : 0));
    before = out.len;
    check_written(&out, before, nc_mqtt_write_unsubscribe(&out, version, 2, subs, 2));
    nc_mqtt_publish m = {
        s, b, s + b, size - b, (uint8_t)(data[0] % 3), data[0] & 1, 0, 3, version == NC_MQTT_V5 ? &pp : NULL};
    before = out.len;
    int r = nc_mqtt_write_publish(&out, version, &m);
    check_written(&out, before, r);
    if (!r && nc_mqtt_publish_size(version, &m) != out.len - before) abort();
    nc_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int version = (data[0] & 1) ? NC_MQTT_V5 : NC_MQTT_V311;
    size_t max = (data[0] & 2) ? 4096 : 0;
    data++, size--;
    tally a = {1469598103934665603ULL, 0, version}, b = {1469598103934665603ULL, 0, version};
    int ra = run(version, max, data, size, 0, &a);
    int rb = run(version, max, data, size, 1, &b);
    if (ra == 0 && rb == 0 && (a.n != b.n || a.hash != b.hash)) abort();
    writers(version, data, size);
    /* the input as a filter and a topic: the matcher and the checks never read out of bounds */
    size_t half = size / 2;
    int fok = nc_mqtt_filter_ok((const char *)data, half);
    int m = nc_mqtt_topic_match((const char *)data, half, (const char *)data + half, size - half);
    if (fok && nc_mqtt_topic_ok((const char *)data, half) && half == size - half &&
        memcmp(data, data + half, half) == 0 && !(half >= 7 && memcmp(data, "$share/", 7) == 0) && !m)
        abort();
    return 0;
}
