/* The MQTT codec (codec/mqtt_proto.c): writers and parser checked against the packets of
 * ../shared/spec/vectors/mqtt/ (session.txt, v5-record-wildcards.txt). Those vectors are decoded packets;
 * the bytes below are their MQTT 3.1.1 / 5.0 encodings, written out by hand from the spec's layouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <sys/time.h>

#include "../common/broker.h"
#include "codec/mqtt_proto.h"
#include "nestc/error.h"

#define PUB_V3                                                                                               \
    "0T\x00\x0d{\"cmd\":\"sum\"}{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":"                     \
    "\"79e3d563a0717a08b281d\"}"
#define REPLY_V3                                                                                             \
    "0R\x00\x13{\"cmd\":\"sum\"}/reply{\"response\":6,\"isDisposed\":true,\"id\":\"79e3d563a0717a08b281d\"}"
#define PUB_V5                                                                                               \
    "2\xa0\x01\x00\x14sensors/kitchen/temp9\x10"                                                             \
    "5\x03\x00\x10"                                                                                          \
    "application/json&\x00\x09x-version\x00\x05"                                                             \
    "1.0.0&\x00\x07x-trace\x00\x03t-1{\"pattern\":\"sensors/kitchen/"                                        \
    "temp\",\"data\":{\"temp\":21},\"id\":\"1471a253b94dfb085b25f\"}"
#define PUB_V5_IN                                                                                            \
    "2\xa0\x01\x00\x14sensors/kitchen/temp\x00\x01"                                                          \
    "5\x03\x00\x10"                                                                                          \
    "application/json&\x00\x09x-version\x00\x05"                                                             \
    "1.0.0&\x00\x07x-trace\x00\x03t-1{\"pattern\":\"sensors/kitchen/"                                        \
    "temp\",\"data\":{\"temp\":21},\"id\":\"1471a253b94dfb085b25f\"}"
#define EVT_V5                                                                                               \
    "0_\x00\x14"                                                                                             \
    "alerts/kitchen/smoke\x13&\x00\x09x-version\x00\x05"                                                     \
    "1.0.0{\"pattern\":\"alerts/kitchen/smoke\",\"data\":{\"temp\":21}}"
#define UNSUB_V3 "\xa2\x1b\xb3L\x00\x17{\"cmd\":\"failObj\"}/reply"
#define SUB_V3 "\x82\x12#\xd3\x00\x0d{\"cmd\":\"sum\"}\x00"
#define SUB_V5 "\x82\x14\xd6\x0f\x00\x00\x0esensors/+/temp\x01"
#define CONNECT_V3 "\x10\x1b\x00\x04MQTT\x04\x02\x00<\x00\x0fmqttjs_30ca2d78"
#define CONNECT_V5 "\x10\x1c\x00\x04MQTT\x05\x02\x00<\x00\x00\x0fmqttjs_7312dc0b"
#define CONNACK_V5 " \x09\x00\x00\x06\"\x00\x0a!\x00\x14"
#define CONNACK_V3 "\x20\x02\x00\x00"
#define SUBACK_V3 "\x90\x03\x23\xd3\x00"       /* granted [0], messageId 9171 */
#define SUBACK_V5 "\x90\x04\xd6\x0f\x00\x01"   /* granted [1], messageId 54799 */
#define UNSUBACK_V3 "\xb0\x02\xb3\x4c"         /* messageId 45900 */
#define UNSUBACK_V5 "\xb0\x04\x39\x11\x00\x00" /* granted [0], messageId 14609 */
#define PUBACK_V5_OUT "\x40\x02\x39\x10"       /* messageId 14608, reasonCode 0 */
#define PINGRESP "\xd0\x00"

#define LEN(s) (sizeof(s) - 1)

typedef struct seen {
    int n;
    int types[32];
    char text[32][400];
} seen;

static int collect(void *user, const nc_mqtt_pkt *m) {
    seen *s = user;
    assert_true(s->n < 32);
    s->types[s->n] = m->type;
    char *t = s->text[s->n];
    int k = snprintf(t, 400, "%s id=%u r=%u sp=%u q=%u rt=%u d=%u", nc_mqtt_type_name(m->type), m->id,
                     m->reason, m->session_present, m->qos, m->retain, m->dup);
    if (m->type == NC_MQTT_PUBLISH)
        k += snprintf(t + k, 400 - (size_t)k, " %.*s|%.*s", (int)m->topic.n, m->topic.p, (int)m->payload.n,
                      m->payload.p);
    for (size_t i = 0; i < m->n_codes; i++) k += snprintf(t + k, 400 - (size_t)k, " c%u", m->codes[i]);
    if (m->props.has & NC_MQTTP_CONTENT_TYPE)
        k += snprintf(t + k, 400 - (size_t)k, " ct=%.*s", (int)m->props.content_type.n,
                      m->props.content_type.p);
    if (m->props.has & NC_MQTTP_RECEIVE_MAXIMUM)
        k += snprintf(t + k, 400 - (size_t)k, " rm=%u", m->props.receive_maximum);
    if (m->props.has & NC_MQTTP_TOPIC_ALIAS_MAXIMUM)
        k += snprintf(t + k, 400 - (size_t)k, " tam=%u", m->props.topic_alias_maximum);
    nc_header h[4];
    size_t nu = nc_mqtt_user_props(&m->props, h, 4);
    assert_int_equal(nu, m->props.n_user);
    for (size_t i = 0; i < nu && i < 4; i++)
        k += snprintf(t + k, 400 - (size_t)k, " %.*s=%.*s", (int)h[i].name_len, h[i].name,
                      (int)h[i].value_len, h[i].value);
    s->n++;
    return 0;
}

/* What the broker sent the ClientMqtt (3.1.1 session) and the ServerMqtt (MQTT 5 session), in order. */
static const char STREAM_V3[] = CONNACK_V3 SUBACK_V3 REPLY_V3 UNSUBACK_V3 PUB_V3 PINGRESP;
static const char STREAM_V5[] = CONNACK_V5 SUBACK_V5 PUB_V5_IN UNSUBACK_V5 EVT_V5 PINGRESP;

static void check_v3(const seen *s) {
    assert_int_equal(s->n, 6);
    assert_string_equal(s->text[0], "CONNACK id=0 r=0 sp=0 q=0 rt=0 d=0");
    assert_string_equal(s->text[1], "SUBACK id=9171 r=0 sp=0 q=0 rt=0 d=0 c0");
    assert_string_equal(s->text[2], "PUBLISH id=0 r=0 sp=0 q=0 rt=0 d=0 {\"cmd\":\"sum\"}/reply|"
                                    "{\"response\":6,\"isDisposed\":true,\"id\":\"79e3d563a0717a08b281d\"}");
    assert_string_equal(s->text[3], "UNSUBACK id=45900 r=0 sp=0 q=0 rt=0 d=0");
    assert_int_equal(s->types[4], NC_MQTT_PUBLISH);
    assert_int_equal(s->types[5], NC_MQTT_PINGRESP);
}

static void check_v5(const seen *s) {
    assert_int_equal(s->n, 6);
    assert_string_equal(s->text[0], "CONNACK id=0 r=0 sp=0 q=0 rt=0 d=0 rm=20 tam=10");
    assert_string_equal(s->text[1], "SUBACK id=54799 r=0 sp=0 q=0 rt=0 d=0 c1");
    assert_string_equal(
        s->text[2], "PUBLISH id=1 r=0 sp=0 q=1 rt=0 d=0 sensors/kitchen/temp|{\"pattern\":\"sensors/kitchen/"
                    "temp\",\"data\":{\"temp\":21},\"id\":\"1471a253b94dfb085b25f\"} ct=application/json "
                    "x-version=1.0.0 x-trace=t-1");
    assert_string_equal(s->text[3], "UNSUBACK id=14609 r=0 sp=0 q=0 rt=0 d=0 c0");
    assert_string_equal(s->text[4],
                        "PUBLISH id=0 r=0 sp=0 q=0 rt=0 d=0 alerts/kitchen/smoke|{\"pattern\":\"alerts/"
                        "kitchen/smoke\",\"data\":{\"temp\":21}} x-version=1.0.0");
    assert_int_equal(s->types[5], NC_MQTT_PINGRESP);
}

static void run_splits(int version, const char *stream, size_t len, void (*check)(const seen *)) {
    char why[200];
    for (size_t cut = 0; cut <= len; cut++) {
        nc_mqtt_parser p;
        nc_mqtt_parser_init(&p, version, 0);
        seen s = {0};
        assert_int_equal(nc_mqtt_feed(&p, stream, cut, collect, &s, why, sizeof why), 0);
        assert_int_equal(nc_mqtt_feed(&p, stream + cut, len - cut, collect, &s, why, sizeof why), 0);
        check(&s);
        assert_int_equal(nc_mqtt_pending(&p), 0);
        nc_mqtt_parser_free(&p);
    }
    nc_mqtt_parser p;
    nc_mqtt_parser_init(&p, version, 0);
    seen s = {0};
    for (size_t i = 0; i < len; i++)
        assert_int_equal(nc_mqtt_feed(&p, stream + i, 1, collect, &s, why, sizeof why), 0);
    check(&s);
    nc_mqtt_parser_free(&p);
}

static void test_vectors_every_split(void **st) {
    (void)st;
    run_splits(NC_MQTT_V311, STREAM_V3, LEN(STREAM_V3), check_v3);
    run_splits(NC_MQTT_V5, STREAM_V5, LEN(STREAM_V5), check_v5);
}

static int stop_after_first(void *user, const nc_mqtt_pkt *m) {
    (void)m;
    return ++*(int *)user == 1;
}

static void test_callback_stops(void **st) {
    (void)st;
    nc_mqtt_parser p;
    nc_mqtt_parser_init(&p, NC_MQTT_V311, 0);
    int n = 0;
    char why[200];
    assert_int_equal(nc_mqtt_feed(&p, STREAM_V3, LEN(STREAM_V3), stop_after_first, &n, why, sizeof why), 0);
    assert_int_equal(n, 1);
    assert_int_equal(nc_mqtt_pending(&p), LEN(STREAM_V3) - LEN(CONNACK_V3));
    n = 1; /* go on: the rest comes from the buffer */
    assert_int_equal(nc_mqtt_feed(&p, NULL, 0, stop_after_first, &n, why, sizeof why), 0);
    assert_int_equal(n, 6);
    assert_int_equal(nc_mqtt_pending(&p), 0);
    nc_mqtt_parser_free(&p);
}

static void expect(nc_buf *b, const char *bytes, size_t len) {
    assert_int_equal(b->len, len);
    assert_memory_equal(b->data, bytes, len);
    b->len = 0;
}

static void test_writers_match_vectors(void **st) {
    (void)st;
    nc_buf b = NC_BUF_INIT;
    nc_mqtt_connect c = {0};
    c.version = NC_MQTT_V311;
    c.client_id = "mqttjs_30ca2d78";
    c.client_id_len = 15;
    c.clean = 1;
    c.keepalive = 60;
    assert_int_equal(nc_mqtt_write_connect(&b, &c), 0);
    expect(&b, CONNECT_V3, LEN(CONNECT_V3));
    c.version = NC_MQTT_V5;
    c.client_id = "mqttjs_7312dc0b";
    assert_int_equal(nc_mqtt_write_connect(&b, &c), 0);
    expect(&b, CONNECT_V5, LEN(CONNECT_V5));

    nc_mqtt_sub s = {"{\"cmd\":\"sum\"}", 13, 0, 0, 0, 0};
    assert_int_equal(nc_mqtt_write_subscribe(&b, NC_MQTT_V311, 9171, &s, 1, 0), 0);
    expect(&b, SUB_V3, LEN(SUB_V3));
    nc_mqtt_sub s5 = {"sensors/+/temp", 14, 1, 0, 0, 0};
    assert_int_equal(nc_mqtt_write_subscribe(&b, NC_MQTT_V5, 54799, &s5, 1, 0), 0);
    expect(&b, SUB_V5, LEN(SUB_V5));
    nc_mqtt_sub u = {"{\"cmd\":\"failObj\"}/reply", 23, 0, 0, 0, 0};
    assert_int_equal(nc_mqtt_write_unsubscribe(&b, NC_MQTT_V311, 45900, &u, 1), 0);
    expect(&b, UNSUB_V3, LEN(UNSUB_V3));

    const char *p1 = "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"79e3d563a0717a08b281d\"}";
    nc_mqtt_publish m = {"{\"cmd\":\"sum\"}", 13, p1, strlen(p1), 0, 0, 0, 0, NULL};
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), 0);
    assert_int_equal(nc_mqtt_publish_size(NC_MQTT_V311, &m), LEN(PUB_V3));
    expect(&b, PUB_V3, LEN(PUB_V3));

    /* the MqttRecord request of the MQTT 5 session: QoS 1, content type, two user properties in order */
    const char *p2 =
        "{\"pattern\":\"sensors/kitchen/temp\",\"data\":{\"temp\":21},\"id\":\"1471a253b94dfb085b25f\"}";
    nc_header up[2] = {{"x-version", 9, "1.0.0", 5}, {"x-trace", 7, "t-1", 3}};
    nc_mqtt_pub_props pp = {
        .content_type = "application/json", .content_type_len = 16, .user = up, .n_user = 2};
    nc_mqtt_publish m5 = {"sensors/kitchen/temp", 20, p2, strlen(p2), 1, 0, 0, 14608, &pp};
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V5, &m5), 0);
    expect(&b, PUB_V5, LEN(PUB_V5));
    /* the event: QoS 0, only the client-level user property */
    const char *e = "{\"pattern\":\"alerts/kitchen/smoke\",\"data\":{\"temp\":21}}";
    nc_mqtt_pub_props pe = {.user = up, .n_user = 1};
    nc_mqtt_publish me = {"alerts/kitchen/smoke", 20, e, strlen(e), 0, 0, 0, 0, &pe};
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V5, &me), 0);
    expect(&b, EVT_V5, LEN(EVT_V5));

    assert_int_equal(nc_mqtt_write_ack(&b, NC_MQTT_V5, NC_MQTT_PUBACK, 14608, 0), 0);
    expect(&b, PUBACK_V5_OUT, LEN(PUBACK_V5_OUT));
    assert_int_equal(nc_mqtt_write_ack(&b, NC_MQTT_V5, NC_MQTT_PUBREC, 7, 0x10), 0);
    expect(&b, "\x50\x03\x00\x07\x10", 5);
    assert_int_equal(nc_mqtt_write_ack(&b, NC_MQTT_V311, NC_MQTT_PUBREL, 7, 0), 0);
    expect(&b, "\x62\x02\x00\x07", 4);
    assert_int_equal(nc_mqtt_write_ack(&b, NC_MQTT_V5, NC_MQTT_PUBCOMP, 7, 0x92), 0);
    expect(&b, "\x70\x03\x00\x07\x92", 5);
    assert_int_equal(nc_mqtt_write_pingreq(&b), 0);
    expect(&b, "\xc0\x00", 2);
    assert_int_equal(nc_mqtt_write_disconnect(&b, NC_MQTT_V311, 0), 0);
    expect(&b, "\xe0\x00", 2);
    assert_int_equal(nc_mqtt_write_disconnect(&b, NC_MQTT_V5, 0), 0); /* reasonCode 0: the short form */
    expect(&b, "\xe0\x00", 2);
    assert_int_equal(nc_mqtt_write_disconnect(&b, NC_MQTT_V5, 0x04), 0);
    expect(&b, "\xe0\x01\x04", 3);
    nc_buf_free(&b);
}

/* MQTT 3.1.1 will: flags (will, will QoS, will retain) and the will topic and payload after the client id,
 * no properties; an empty payload is allowed; a wildcard topic, QoS 3 or v5 properties on 3.1.1 are not. */
static void test_write_connect_will_311(void **st) {
    (void)st;
    nc_buf b = NC_BUF_INIT;
    nc_mqtt_connect c = {.version = NC_MQTT_V311,
                         .client_id = "c",
                         .client_id_len = 1,
                         .clean = 1,
                         .keepalive = 60,
                         .will_topic = "w",
                         .will_topic_len = 1,
                         .will_payload = "",
                         .will_payload_len = 0,
                         .will_qos = 2};
    assert_int_equal(nc_mqtt_write_connect(&b, &c), 0);
    static const char want[] = "\x10\x12\x00\x04MQTT\x04\x16\x00\x3c\x00\x01"
                               "c\x00\x01w\x00\x00";
    expect(&b, want, LEN(want));
    c.will_retain = 1;
    c.will_qos = 0;
    assert_int_equal(nc_mqtt_write_connect(&b, &c), 0);
    assert_int_equal((unsigned char)b.data[9], 0x26); /* clean, will, retain; QoS 0 */
    b.len = 0;
    c.will_qos = 3;
    assert_int_equal(nc_mqtt_write_connect(&b, &c), NC_EINVAL);
    c.will_qos = 1;
    c.will_topic = "w/#";
    c.will_topic_len = 3;
    assert_int_equal(nc_mqtt_write_connect(&b, &c), NC_EINVAL);
    nc_mqtt_pub_props wp = {.content_type = "t", .content_type_len = 1};
    c.will_topic = "w";
    c.will_topic_len = 1;
    c.will_props = &wp;
    assert_int_equal(nc_mqtt_write_connect(&b, &c), NC_EINVAL);
    assert_int_equal(b.len, 0);
    nc_buf_free(&b);
}

static void test_write_connect_and_subscribe_options(void **st) {
    (void)st;
    nc_buf b = NC_BUF_INIT;
    nc_header up[2] = {{"a", 1, "1", 1}, {"a", 1, "2", 1}};
    nc_mqtt_pub_props wp = {
        .has_payload_format = 1, .payload_format = 1, .has_message_expiry = 1, .message_expiry = 300};
    nc_mqtt_connect c = {.version = NC_MQTT_V5,
                         .client_id = "id",
                         .client_id_len = 2,
                         .clean = 0,
                         .keepalive = 30,
                         .username = "u",
                         .username_len = 1,
                         .password = "p\0w",
                         .password_len = 3,
                         .will_topic = "w/t",
                         .will_topic_len = 3,
                         .will_payload = "bye",
                         .will_payload_len = 3,
                         .will_qos = 1,
                         .will_retain = 1,
                         .will_props = &wp,
                         .session_expiry = 3600,
                         .receive_maximum = 100,
                         .maximum_packet_size = 1048576,
                         .user = up,
                         .n_user = 2};
    assert_int_equal(nc_mqtt_write_connect(&b, &c), 0);
    static const char want[] = "\x10\x44\x00\x04MQTT\x05\xec\x00\x1e"
                               "\x1b\x11\x00\x00\x0e\x10\x21\x00\x64\x27\x00\x10\x00\x00"
                               "\x26\x00\x01"
                               "a\x00\x01"
                               "1\x26\x00\x01"
                               "a\x00\x01"
                               "2"
                               "\x00\x02id"
                               "\x07\x01\x01\x02\x00\x00\x01\x2c"
                               "\x00\x03w/t\x00\x03"
                               "bye\x00\x01u\x00\x03p\x00w";
    expect(&b, want, LEN(want));
    /* 3.1.1: a password needs a user name; no properties */
    nc_mqtt_connect c3 = {.version = NC_MQTT_V311, .client_id = "", .password = "p", .password_len = 1};
    assert_int_equal(nc_mqtt_write_connect(&b, &c3), NC_EINVAL);
    c3.password = NULL;
    c3.n_user = 1;
    c3.user = up;
    assert_int_equal(nc_mqtt_write_connect(&b, &c3), NC_EINVAL);
    assert_int_equal(b.len, 0);

    nc_mqtt_sub subs[2] = {{"a/#", 3, 2, 1, 1, 2}, {"$share/g/x/+", 12, 1, 0, 0, 1}};
    assert_int_equal(nc_mqtt_write_subscribe(&b, NC_MQTT_V5, 5, subs, 2, 300), 0);
    static const char wsub[] = "\x82\x1b\x00\x05\x03\x0b\xac\x02\x00\x03"
                               "a/#\x2e\x00\x0c$share/g/x/+\x11";
    expect(&b, wsub, LEN(wsub));
    assert_int_equal(nc_mqtt_write_unsubscribe(&b, NC_MQTT_V5, 6, subs, 2), 0);
    static const char wunsub[] = "\xa2\x16\x00\x06\x00\x00\x03"
                                 "a/#\x00\x0c$share/g/x/+";
    expect(&b, wunsub, LEN(wunsub));
    nc_buf_free(&b);
}

static void test_writer_refusals(void **st) {
    (void)st;
    nc_buf b = NC_BUF_INIT;
    nc_mqtt_publish m = {"a/+", 3, "x", 1, 0, 0, 0, 0, NULL};
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), NC_EINVAL); /* wildcard in a topic name */
    m.topic = "";
    m.topic_len = 0;
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), NC_EINVAL);
    m.topic = "a\0b";
    m.topic_len = 3;
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), NC_EINVAL); /* U+0000 */
    m.topic = "a\xc0\x80";
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), NC_EINVAL); /* overlong, not UTF-8 */
    m.topic = "a";
    m.topic_len = 1;
    m.qos = 3;
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), NC_EINVAL);
    m.qos = 1; /* id 0 */
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), NC_EINVAL);
    m.qos = 0;
    m.dup = 1;
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), NC_EINVAL);
    m.dup = 0;
    nc_header up = {"k", 1, "v", 1};
    nc_mqtt_pub_props pp = {.user = &up, .n_user = 1};
    nc_mqtt_pub_props none = {0};
    m.props = &none; /* zeroed: no properties, so 3.1.1 takes it */
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), 0);
    b.len = 0;
    m.props = &pp;
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V311, &m), NC_EINVAL); /* no properties in 3.1.1 */
    none.has_payload_format = 1;
    none.payload_format = 2;
    assert_int_equal(
        nc_mqtt_write_publish(&b, NC_MQTT_V5, &(nc_mqtt_publish){"a", 1, "", 0, 0, 0, 0, 0, &none}),
        NC_EINVAL);
    pp.response_topic = "r/#";
    pp.response_topic_len = 3;
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V5, &m), NC_EINVAL);
    assert_int_equal(nc_mqtt_publish_size(NC_MQTT_V5, &m), 0);
    nc_mqtt_sub s[1] = {{"a/#/b", 5, 0, 0, 0, 0}};
    assert_int_equal(nc_mqtt_write_subscribe(&b, NC_MQTT_V311, 1, s, 1, 0), NC_EINVAL);
    s[0] = (nc_mqtt_sub){"a", 1, 0, 1, 0, 0};
    assert_int_equal(nc_mqtt_write_subscribe(&b, NC_MQTT_V311, 1, s, 1, 0), NC_EINVAL); /* nl is MQTT 5 */
    s[0] = (nc_mqtt_sub){"$share/g/a", 10, 0, 1, 0, 0};
    assert_int_equal(nc_mqtt_write_subscribe(&b, NC_MQTT_V5, 1, s, 1, 0), NC_EINVAL); /* nl on a shared sub */
    s[0] = (nc_mqtt_sub){"a", 1, 0, 0, 0, 3};
    assert_int_equal(nc_mqtt_write_subscribe(&b, NC_MQTT_V5, 1, s, 1, 0), NC_EINVAL);
    s[0] = (nc_mqtt_sub){"a", 1, 0, 0, 0, 0};
    assert_int_equal(nc_mqtt_write_subscribe(&b, NC_MQTT_V5, 0, s, 1, 0), NC_EINVAL); /* id 0 */
    assert_int_equal(nc_mqtt_write_ack(&b, NC_MQTT_V311, NC_MQTT_PUBACK, 1, 0x80), NC_EINVAL);
    assert_int_equal(nc_mqtt_write_disconnect(&b, NC_MQTT_V311, 0x04), NC_EINVAL);
    assert_int_equal(b.len, 0);
    nc_buf_free(&b);
}

static int feed_one(int version, const char *bytes, size_t len, size_t max, char *why) {
    nc_mqtt_parser p;
    nc_mqtt_parser_init(&p, version, max);
    seen s = {0};
    why[0] = '\0';
    int r = nc_mqtt_feed(&p, bytes, len, collect, &s, why, 200);
    nc_mqtt_parser_free(&p);
    return r;
}

#define BAD(v, bytes, code, words)                                                                           \
    do {                                                                                                     \
        assert_int_equal(feed_one(v, bytes, LEN(bytes), 0, why), code);                                      \
        if (!strstr(why, words)) fail_msg("%s: got \"%s\"", words, why);                                     \
    } while (0)

static void test_malformed(void **st) {
    (void)st;
    char why[200];
    BAD(NC_MQTT_V311, "\x30\x80\x80\x80\x80\x01", NC_EPROTO, "malformed remaining length"); /* 5 bytes */
    BAD(NC_MQTT_V311, "\x30\x80\x00", NC_EPROTO, "malformed remaining length");             /* not minimal */
    BAD(NC_MQTT_V311, "\x41\x02\x00\x01", NC_EPROTO, "PUBACK: reserved flag bits 0x1");
    BAD(NC_MQTT_V311, "\x60\x02\x00\x01", NC_EPROTO, "PUBREL: reserved flag bits 0x0");
    BAD(NC_MQTT_V311, "\x36\x05\x00\x01t\x00\x01", NC_EPROTO, "QoS 3");
    BAD(NC_MQTT_V311, "\x38\x03\x00\x01t", NC_EPROTO, "DUP flag on a QoS 0");
    BAD(NC_MQTT_V311, "\x30\x03\x00\x01+", NC_EPROTO, "wildcard");
    BAD(NC_MQTT_V311, "\x30\x02\x00\x00", NC_EPROTO, "empty topic");
    BAD(NC_MQTT_V311, "\x30\x04\x00\x02t\x00", NC_EPROTO, "contains U+0000");
    BAD(NC_MQTT_V311, "\x30\x04\x00\x02\xc0\x80", NC_EPROTO, "not well-formed UTF-8");
    BAD(NC_MQTT_V311, "\x30\x03\x00\x05t", NC_EPROTO, "runs past");
    BAD(NC_MQTT_V311, "\x32\x05\x00\x01t\x00\x00", NC_EPROTO, "packet identifier 0");
    BAD(NC_MQTT_V311, "\x20\x02\x01\x05", NC_EPROTO, "session present on a refusal");
    BAD(NC_MQTT_V311, "\x20\x02\x02\x00", NC_EPROTO, "reserved acknowledge flag");
    BAD(NC_MQTT_V311, "\x20\x02\x00\x06", NC_EPROTO, "unknown return code 6");
    BAD(NC_MQTT_V311, "\x90\x03\x00\x01\x03", NC_EPROTO, "SUBACK: unknown reason code 0x03");
    BAD(NC_MQTT_V311, "\x90\x02\x00\x01", NC_EPROTO, "no reason codes");
    BAD(NC_MQTT_V311, "\xb0\x03\x00\x01\x00", NC_EPROTO, "remaining length 3");
    BAD(NC_MQTT_V311, "\xe0\x00", NC_EPROTO, "DISCONNECT from the broker");
    BAD(NC_MQTT_V5, "\xf0\x00", NC_EPROTO, "AUTH: enhanced authentication is not supported");
    BAD(NC_MQTT_V311, "\x10\x00", NC_EPROTO, "CONNECT: a packet only clients send");
    BAD(NC_MQTT_V311, "\x00\x00", NC_EPROTO, "reserved packet type 0");
    BAD(NC_MQTT_V311, "\xd0\x01\x00", NC_EPROTO, "PINGRESP: remaining length 1");
    /* MQTT 5 properties */
    BAD(NC_MQTT_V5, "\x20\x06\x00\x00\x03\x03\x00\x00", NC_EPROTO, "Content Type is not allowed");
    BAD(NC_MQTT_V5, "\x20\x09\x00\x00\x06\x21\x00\x01\x21\x00\x02", NC_EPROTO,
        "Receive Maximum appears twice");
    BAD(NC_MQTT_V5, "\x20\x06\x00\x00\x03\x21\x00\x00", NC_EPROTO, "Receive Maximum 0");
    BAD(NC_MQTT_V5, "\x20\x05\x00\x00\x02\x24\x02", NC_EPROTO, "Maximum QoS has the value 2");
    BAD(NC_MQTT_V5, "\x20\x04\x00\x00\x01\x7f", NC_EPROTO, "property 0x7f");
    BAD(NC_MQTT_V5, "\x20\x05\x00\x00\x05\x21\x00", NC_EPROTO, "run past the end");
    BAD(NC_MQTT_V5, "\x20\x05\x00\x00\x02\x21\x00", NC_EPROTO, "runs past the end of the properties");
    BAD(NC_MQTT_V5, "\x20\x06\x00\x00\x03\x15\x00\x00", NC_EPROTO, "enhanced authentication");
    BAD(NC_MQTT_V5, "\x30\x07\x00\x01t\x03\x23\x00\x01", NC_EPROTO, "Topic Alias");
    BAD(NC_MQTT_V5, "\x30\x09\x00\x01t\x05\x08\x00\x02#a", NC_EPROTO, "Response Topic is not a topic name");
    BAD(NC_MQTT_V5, "\x30\x07\x00\x01t\x03\x26\x00\x00", NC_EPROTO, "user property value runs past");
    BAD(NC_MQTT_V5, "\x30\x0a\x00\x01t\x06\x26\x00\x01\xff\x00\x00", NC_EPROTO,
        "user property name is not well-formed UTF-8");
    BAD(NC_MQTT_V5, "\x30\x05\x00\x01t\x01\x0b", NC_EPROTO, "malformed Subscription Identifier");
    BAD(NC_MQTT_V5, "\x30\x06\x00\x01t\x02\x0b\x00", NC_EPROTO, "Subscription Identifier 0");
    BAD(NC_MQTT_V5, "\x40\x03\x00\x01\x05", NC_EPROTO, "PUBACK: unknown reason code 0x05");
    BAD(NC_MQTT_V5, "\x70\x03\x00\x01\x10", NC_EPROTO, "PUBCOMP: unknown reason code 0x10");
    BAD(NC_MQTT_V5, "\xe0\x01\x03", NC_EPROTO, "DISCONNECT: unknown reason code 0x03");
    BAD(NC_MQTT_V5, "\x20\x04\x00\x00\x80\x00", NC_EPROTO, "malformed property length"); /* not minimal */
    BAD(NC_MQTT_V5, "\x20\x04\x00\x00\x00\x00", NC_EPROTO, "1 bytes after the properties");
}

static void test_v5_short_forms_and_properties(void **st) {
    (void)st;
    char why[200];
    /* PUBACK without reason and properties; with a reason; with a reason string */
    static const char acks[] = "\x40\x02\x00\x01\x50\x03\x00\x02\x10\x40\x0b\x00\x03\x80\x07\x1f\x00\x04nope"
                               "\xe0\x00\xe0\x01\x8b";
    nc_mqtt_parser p;
    nc_mqtt_parser_init(&p, NC_MQTT_V5, 0);
    seen s = {0};
    assert_int_equal(nc_mqtt_feed(&p, acks, LEN(acks), collect, &s, why, sizeof why), 0);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.text[0], "PUBACK id=1 r=0 sp=0 q=0 rt=0 d=0");
    assert_string_equal(s.text[1], "PUBREC id=2 r=16 sp=0 q=0 rt=0 d=0");
    assert_string_equal(s.text[2], "PUBACK id=3 r=128 sp=0 q=0 rt=0 d=0");
    assert_string_equal(s.text[3], "DISCONNECT id=0 r=0 sp=0 q=0 rt=0 d=0");
    assert_string_equal(s.text[4], "DISCONNECT id=0 r=139 sp=0 q=0 rt=0 d=0");
    nc_mqtt_parser_free(&p);
    /* a 3.1.1-only broker refuses a v5 CONNECT with a 3.1.1 CONNACK */
    assert_int_equal(feed_one(NC_MQTT_V5, "\x20\x02\x00\x01", 4, 0, why), 0);
    assert_string_equal(nc_mqtt_reason_text(NC_MQTT_V311, 1), "unacceptable protocol version");
    assert_string_equal(nc_mqtt_reason_text(NC_MQTT_V5, 0x86), "Bad User Name or Password");
}

static int grab_props(void *user, const nc_mqtt_pkt *m) {
    *(nc_mqtt_pkt *)user = *m;
    return 0;
}

static void test_publish_properties(void **st) {
    (void)st;
    /* every PUBLISH property a client reads, and user properties with a repeated name, in wire order */
    nc_buf b = NC_BUF_INIT;
    nc_header up[3] = {{"k", 1, "1", 1}, {"j", 1, "2", 1}, {"k", 1, "3", 1}};
    nc_mqtt_pub_props pp = {.has_payload_format = 1,
                            .payload_format = 1,
                            .has_message_expiry = 1,
                            .message_expiry = 60,
                            .content_type = "text/plain",
                            .content_type_len = 10,
                            .response_topic = "r/t",
                            .response_topic_len = 3,
                            .correlation = "\x00\x01",
                            .correlation_len = 2,
                            .user = up,
                            .n_user = 3};
    nc_mqtt_publish m = {"a/b", 3, "hi", 2, 2, 1, 1, 65535, &pp};
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V5, &m), 0);
    assert_int_equal(nc_mqtt_publish_size(NC_MQTT_V5, &m), b.len);
    nc_mqtt_parser p;
    nc_mqtt_parser_init(&p, NC_MQTT_V5, 0);
    nc_mqtt_pkt got;
    char why[200];
    assert_int_equal(nc_mqtt_feed(&p, b.data, b.len, grab_props, &got, why, sizeof why), 0);
    assert_int_equal(got.qos, 2);
    assert_int_equal(got.retain, 1);
    assert_int_equal(got.dup, 1);
    assert_int_equal(got.id, 65535);
    assert_int_equal(got.props.payload_format, 1);
    assert_int_equal(got.props.message_expiry, 60);
    assert_memory_equal(got.props.content_type.p, "text/plain", 10);
    assert_memory_equal(got.props.response_topic.p, "r/t", 3);
    assert_int_equal(got.props.correlation.n, 2);
    assert_memory_equal(got.props.correlation.p, "\x00\x01", 2);
    assert_int_equal(got.props.n_user, 3);
    nc_header h[3];
    assert_int_equal(nc_mqtt_user_props(&got.props, h, 2), 3); /* count beyond cap */
    assert_int_equal(nc_mqtt_user_props(&got.props, h, 3), 3);
    assert_memory_equal(h[0].name, "k", 1);
    assert_memory_equal(h[0].value, "1", 1);
    assert_memory_equal(h[1].name, "j", 1);
    assert_memory_equal(h[2].name, "k", 1);
    assert_memory_equal(h[2].value, "3", 1);
    assert_memory_equal(got.payload.p, "hi", 2);
    nc_mqtt_parser_free(&p);
    nc_buf_free(&b);
}

static void test_caps(void **st) {
    (void)st;
    char why[200];
    /* a PUBLISH over the maximum packet size is refused from its fixed header, before its body arrives */
    assert_int_equal(feed_one(NC_MQTT_V311, "\x30\xe8\x07", 3, 1000, why), NC_ETOOBIG);
    assert_non_null(strstr(why, "a PUBLISH of 1003 bytes is over the limit of 1000"));
    assert_int_equal(feed_one(NC_MQTT_V311, "\x30\xe5\x07", 3, 1000, why), 0); /* exactly 1000: waits */
    /* property caps */
    nc_buf b = NC_BUF_INIT;
    nc_header up[65];
    for (int i = 0; i < 65; i++) up[i] = (nc_header){"k", 1, "v", 1};
    nc_mqtt_pub_props pp = {.user = up, .n_user = 65};
    nc_mqtt_publish m = {"t", 1, "", 0, 0, 0, 0, 0, &pp};
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V5, &m), 0);
    nc_mqtt_parser p;
    nc_mqtt_parser_init(&p, NC_MQTT_V5, 0);
    seen s = {0};
    assert_int_equal(nc_mqtt_feed(&p, b.data, b.len, collect, &s, why, sizeof why), NC_ETOOBIG);
    assert_non_null(strstr(why, "more than 64 properties"));
    nc_mqtt_parser_free(&p);
    nc_mqtt_parser_init(&p, NC_MQTT_V5, 0);
    p.max_props = 100;
    p.max_user_props = 10;
    assert_int_equal(nc_mqtt_feed(&p, b.data, b.len, collect, &s, why, sizeof why), NC_ETOOBIG);
    assert_non_null(strstr(why, "more than 10 user properties"));
    nc_mqtt_parser_free(&p);
    nc_buf_free(&b);
}

static void test_topics_and_filters(void **st) {
    (void)st;
#define M(f, t) nc_mqtt_topic_match(f, strlen(f), t, strlen(t))
    assert_true(M("sensors/+/temp", "sensors/kitchen/temp"));
    assert_false(M("sensors/+/temp", "sensors/kitchen/hall/temp"));
    assert_false(M("sensors/+/temp", "sensors/kitchen"));
    assert_true(M("alerts/#", "alerts/kitchen/smoke"));
    assert_true(M("alerts/#", "alerts")); /* '#' includes the parent level */
    assert_false(M("alerts/#", "alertsx"));
    assert_true(M("#", "a/b/c"));
    assert_true(M("+/+", "a/"));
    assert_true(M("a/+/b", "a//b")); /* an empty level is a level (NestJS's matcher says no) */
    assert_true(M("+", "a"));
    assert_false(M("+", "a/b"));
    assert_true(M("a/b", "a/b"));
    assert_false(M("a/b", "a/bc"));
    assert_false(M("a/bc", "a/b"));
    assert_true(M("{\"cmd\":\"sum\"}", "{\"cmd\":\"sum\"}"));
    assert_true(M("$share/g/sensors/+/temp", "sensors/kitchen/temp"));
    assert_false(M("$share/g/sensors/+/temp", "$share/g/sensors/kitchen/temp"));
    assert_false(M("#", "$SYS/broker/load"));
    assert_false(M("+/broker/load", "$SYS/broker/load"));
    assert_true(M("$SYS/#", "$SYS/broker/load"));
    assert_false(M("$share/g/#", "$SYS/x"));
    assert_true(M("a/+/#", "a/b"));
#undef M
#define F(f) nc_mqtt_filter_ok(f, strlen(f))
    assert_true(F("a/+/b"));
    assert_true(F("#"));
    assert_true(F("a/#"));
    assert_true(F("+"));
    assert_true(F("$share/g/a/#"));
    assert_false(F(""));
    assert_false(F("a+"));
    assert_false(F("a/#/b"));
    assert_false(F("a#"));
    assert_false(F("$share/g"));
    assert_false(F("$share//a"));
    assert_false(F("$share/g+/a"));
    assert_false(F("$share/g/"));
    assert_false(F("$share/g/a+"));
#undef F
    assert_true(nc_mqtt_topic_ok("a/b", 3));
    assert_false(nc_mqtt_topic_ok("a/+", 3));
    assert_false(nc_mqtt_topic_ok("", 0));
    assert_false(nc_mqtt_string_ok("\xed\xa0\x80", 3)); /* a surrogate is not UTF-8 */
    /* past the ASCII prefix: the same rules */
    assert_true(nc_mqtt_topic_ok("\xc3\xa9/a", 4));
    assert_false(nc_mqtt_topic_ok("\xc3\xa9/+", 4));
    assert_false(nc_mqtt_topic_ok("\xc3\xa9/#", 4));
    assert_false(nc_mqtt_topic_ok("\xc3\xa9\0", 3));
    assert_true(nc_mqtt_string_ok("\xc3\xa9+", 3));
    assert_false(nc_mqtt_string_ok("a\xc3", 2));
    assert_false(nc_mqtt_string_ok("abcdefghij\xff", 11));
    nc_mqtt_span u = nc_mqtt_filter_unshared("$share/grp/a/b", 14);
    assert_int_equal(u.n, 3);
    assert_memory_equal(u.p, "a/b", 3);
    u = nc_mqtt_filter_unshared("a/b", 3);
    assert_int_equal(u.n, 3);
}

/* ---- against a real mosquitto: every packet the codec writes is accepted, every one it reads parses ---- */

static void broker_exec(const broker *b, const char *port) {
    (void)b;
    FILE *f = fopen("mosquitto.conf", "w");
    if (!f) _exit(126);
    fprintf(f, "listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n", port);
    fclose(f);
    execlp("mosquitto", "mosquitto", "-c", "mosquitto.conf", (char *)NULL);
}

static int factor(void) {
    const char *e = getenv("NESTC_TEST_TIMEOUT_FACTOR");
    int f = e ? atoi(e) : 1;
    return f > 0 ? f : 1;
}

typedef struct live {
    int fd;
    nc_mqtt_parser p;
    nc_buf out;
    seen s;
} live;

static void live_send(live *l) {
    assert_int_equal(write(l->fd, l->out.data, l->out.len), (ssize_t)l->out.len);
    l->out.len = 0;
}

/* Reads until `want` packets have been seen in all (each read waits at most 10 s x the time factor). */
static void live_pump(live *l, int want) {
    char buf[4096], why[200];
    while (l->s.n < want) {
        ssize_t n = read(l->fd, buf, sizeof buf);
        assert_true(n > 0);
        int r = nc_mqtt_feed(&l->p, buf, (size_t)n, collect, &l->s, why, sizeof why);
        if (r) fail_msg("%s", why);
    }
}

static int live_find(const live *l, int from, const char *prefix) {
    for (int i = from; i < l->s.n; i++)
        if (strncmp(l->s.text[i], prefix, strlen(prefix)) == 0) return i;
    fail_msg("no packet starting \"%s\"", prefix);
    return -1;
}

static void live_open(live *l, const broker *b, int version) {
    memset(l, 0, sizeof *l);
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {10 * factor(), 0};
    setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)b->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(l->fd, (struct sockaddr *)&a, sizeof a), 0);
    nc_mqtt_parser_init(&l->p, version, 1 << 20);
}

static void live_close(live *l) {
    close(l->fd);
    nc_mqtt_parser_free(&l->p);
    nc_buf_free(&l->out);
}

static broker B; /* stopped by the teardown, so a failed assertion does not leave it running */

static int stop_broker(void **st) {
    (void)st;
    broker_free(&B);
    return 0;
}

static void test_mosquitto_sessions(void **st) {
    (void)st;
    if (system("command -v mosquitto >/dev/null 2>&1") != 0) skip();
    broker_start_with(&B, factor(), broker_exec);
    const broker *b = &B;
    live l;

    /* MQTT 5: CONNECT with properties and a will, SUBSCRIBE with options and an identifier, PUBLISH with
     * every property, QoS 2 both ways of the handshake, a shared subscription, PING, UNSUBSCRIBE */
    live_open(&l, b, NC_MQTT_V5);
    nc_header up[2] = {{"x-version", 9, "1.0.0", 5}, {"x-version", 9, "2", 1}};
    nc_mqtt_pub_props wp = {
        .has_payload_format = 1, .payload_format = 1, .has_message_expiry = 1, .message_expiry = 10};
    nc_mqtt_connect c = {.version = NC_MQTT_V5,
                         .client_id = "nestc-test",
                         .client_id_len = 10,
                         .clean = 1,
                         .keepalive = 30,
                         .session_expiry = 60,
                         .receive_maximum = 10,
                         .maximum_packet_size = 1 << 20,
                         .user = up,
                         .n_user = 2,
                         .will_topic = "will/t",
                         .will_topic_len = 6,
                         .will_payload = "bye",
                         .will_payload_len = 3,
                         .will_qos = 1,
                         .will_props = &wp};
    assert_int_equal(nc_mqtt_write_connect(&l.out, &c), 0);
    live_send(&l);
    live_pump(&l, 1);
    assert_string_equal(l.s.text[0], "CONNACK id=0 r=0 sp=0 q=0 rt=0 d=0 rm=20 tam=10"); /* mosquitto's */
    nc_mqtt_sub subs[3] = {
        {"sensors/+/temp", 14, 2, 0, 1, 0}, {"alerts/#", 8, 2, 1, 0, 2}, {"$share/g/jobs/+", 15, 1, 0, 0, 0}};
    assert_int_equal(nc_mqtt_write_subscribe(&l.out, NC_MQTT_V5, 7, subs, 3, 42), 0);
    live_send(&l);
    live_pump(&l, 2);
    assert_string_equal(l.s.text[1], "SUBACK id=7 r=0 sp=0 q=0 rt=0 d=0 c2 c2 c1");
    nc_mqtt_pub_props pp = {.has_payload_format = 1,
                            .payload_format = 1,
                            .has_message_expiry = 1,
                            .message_expiry = 100,
                            .content_type = "application/json",
                            .content_type_len = 16,
                            .response_topic = "r/t",
                            .response_topic_len = 3,
                            .correlation = "\x01\x02",
                            .correlation_len = 2,
                            .user = up,
                            .n_user = 2};
    nc_mqtt_publish m = {"sensors/kitchen/temp", 20, "{\"temp\":21}", 11, 1, 0, 0, 8, &pp};
    assert_int_equal(nc_mqtt_write_publish(&l.out, NC_MQTT_V5, &m), 0);
    live_send(&l);
    live_pump(&l, 4); /* its PUBACK, and the message back through sensors/+/temp */
    live_find(&l, 2, "PUBACK id=8 r=0");
    int i = live_find(&l, 2, "PUBLISH");
    assert_non_null(strstr(l.s.text[i],
                           " q=1 rt=0 d=0 sensors/kitchen/temp|{\"temp\":21} ct=application/json "
                           "x-version=1.0.0 x-version=2"));
    nc_mqtt_publish m2 = {"jobs/a", 6, "w", 1, 2, 1, 0, 9, NULL};
    assert_int_equal(nc_mqtt_write_publish(&l.out, NC_MQTT_V5, &m2), 0);
    live_send(&l);
    live_pump(&l, 5);
    assert_string_equal(l.s.text[4], "PUBREC id=9 r=0 sp=0 q=0 rt=0 d=0");
    assert_int_equal(nc_mqtt_write_ack(&l.out, NC_MQTT_V5, NC_MQTT_PUBREL, 9, 0), 0);
    live_send(&l);
    live_pump(&l, 7); /* PUBCOMP, and the message through the shared subscription (retain cleared) */
    live_find(&l, 5, "PUBCOMP id=9 r=0");
    i = live_find(&l, 5, "PUBLISH");
    assert_non_null(strstr(l.s.text[i], " q=1 rt=0 d=0 jobs/a|w"));
    unsigned id = 0;
    assert_int_equal(sscanf(l.s.text[i], "PUBLISH id=%u", &id), 1);
    assert_int_equal(nc_mqtt_write_ack(&l.out, NC_MQTT_V5, NC_MQTT_PUBACK, (uint16_t)id, 0), 0);
    live_send(&l);
    /* QoS 2 out and in: a PUBLISH to alerts/x is not delivered back (No Local on alerts/#), one to
     * sensors/y/temp comes back at QoS 2 through sensors/+/temp */
    nc_mqtt_publish m4 = {"alerts/x", 8, "a", 1, 2, 0, 0, 11, NULL};
    nc_mqtt_publish m5 = {"sensors/y/temp", 14, "b", 1, 2, 0, 0, 12, NULL};
    assert_int_equal(nc_mqtt_write_publish(&l.out, NC_MQTT_V5, &m4), 0);
    assert_int_equal(nc_mqtt_write_publish(&l.out, NC_MQTT_V5, &m5), 0);
    live_send(&l);
    live_pump(&l, 9);
    live_find(&l, 7, "PUBREC id=11 r=0");
    live_find(&l, 7, "PUBREC id=12 r=0");
    assert_int_equal(nc_mqtt_write_ack(&l.out, NC_MQTT_V5, NC_MQTT_PUBREL, 11, 0), 0);
    assert_int_equal(nc_mqtt_write_ack(&l.out, NC_MQTT_V5, NC_MQTT_PUBREL, 12, 0), 0);
    live_send(&l);
    live_pump(&l, 12); /* two PUBCOMPs and the QoS 2 PUBLISH */
    live_find(&l, 9, "PUBCOMP id=11 r=0");
    live_find(&l, 9, "PUBCOMP id=12 r=0");
    i = live_find(&l, 9, "PUBLISH");
    assert_non_null(strstr(l.s.text[i], " q=2 rt=0 d=0 sensors/y/temp|b"));
    assert_int_equal(sscanf(l.s.text[i], "PUBLISH id=%u", &id), 1);
    assert_int_equal(nc_mqtt_write_ack(&l.out, NC_MQTT_V5, NC_MQTT_PUBREC, (uint16_t)id, 0), 0);
    live_send(&l);
    live_pump(&l, 13);
    char want[64];
    snprintf(want, sizeof want, "PUBREL id=%u r=0", id);
    live_find(&l, 12, want);
    assert_int_equal(nc_mqtt_write_ack(&l.out, NC_MQTT_V5, NC_MQTT_PUBCOMP, (uint16_t)id, 0), 0);
    assert_int_equal(nc_mqtt_write_pingreq(&l.out), 0);
    live_send(&l);
    live_pump(&l, 14);
    assert_int_equal(l.s.types[13], NC_MQTT_PINGRESP);
    assert_int_equal(nc_mqtt_write_unsubscribe(&l.out, NC_MQTT_V5, 10, subs, 3), 0);
    live_send(&l);
    live_pump(&l, 15);
    assert_string_equal(l.s.text[14], "UNSUBACK id=10 r=0 sp=0 q=0 rt=0 d=0 c0 c0 c0");
    for (int k = 0; k < l.s.n; k++) assert_null(strstr(l.s.text[k], " alerts/x|")); /* No Local held */
    assert_int_equal(nc_mqtt_write_disconnect(&l.out, NC_MQTT_V5, 0), 0);
    live_send(&l);
    live_close(&l);

    /* MQTT 3.1.1: the NestJS session's shape, QoS 1 to itself */
    live_open(&l, b, NC_MQTT_V311);
    nc_mqtt_connect c3 = {.version = NC_MQTT_V311,
                          .client_id = "nestc-test-3",
                          .client_id_len = 12,
                          .clean = 1,
                          .keepalive = 60,
                          .username = "u",
                          .username_len = 1,
                          .password = "p",
                          .password_len = 1};
    assert_int_equal(nc_mqtt_write_connect(&l.out, &c3), 0);
    nc_mqtt_sub s3 = {"{\"cmd\":\"sum\"}", 13, 1, 0, 0, 0};
    assert_int_equal(nc_mqtt_write_subscribe(&l.out, NC_MQTT_V311, 9171, &s3, 1, 0), 0);
    live_send(&l);
    live_pump(&l, 2);
    assert_string_equal(l.s.text[0], "CONNACK id=0 r=0 sp=0 q=0 rt=0 d=0");
    assert_string_equal(l.s.text[1], "SUBACK id=9171 r=0 sp=0 q=0 rt=0 d=0 c1");
    nc_mqtt_publish m3 = {"{\"cmd\":\"sum\"}", 13, "{}", 2, 1, 0, 0, 1, NULL};
    assert_int_equal(nc_mqtt_write_publish(&l.out, NC_MQTT_V311, &m3), 0);
    live_send(&l);
    live_pump(&l, 4);
    live_find(&l, 2, "PUBACK id=1 r=0");
    i = live_find(&l, 2, "PUBLISH");
    assert_non_null(strstr(l.s.text[i], " q=1 rt=0 d=0 {\"cmd\":\"sum\"}|{}"));
    assert_int_equal(nc_mqtt_write_disconnect(&l.out, NC_MQTT_V311, 0), 0);
    live_send(&l);
    live_close(&l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_every_split),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_writers_match_vectors),
        cmocka_unit_test(test_write_connect_and_subscribe_options),
        cmocka_unit_test(test_write_connect_will_311),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_v5_short_forms_and_properties),
        cmocka_unit_test(test_publish_properties),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_topics_and_filters),
        cmocka_unit_test_teardown(test_mosquitto_sessions, stop_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
