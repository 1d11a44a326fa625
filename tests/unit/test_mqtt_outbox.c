/* The MQTT client's outgoing QoS 1/2 state (transport/mqtt/mqtt_outbox.h), driven without a socket: send
 * order, the Receive Maximum window, PUBACK / PUBREC / PUBCOMP, the resend after a reconnection (DUP when
 * the session was kept, PUBREL for a QoS 2 PUBLISH that had its PUBREC), packet identifiers never
 * colliding, the byte cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "codec/mqtt_proto.h"
#include "nestc/error.h"
#include "transport/mqtt/mqtt_outbox.h"

/* What the write callback saw: each packet's first byte, type and packet id. */
typedef struct wlog {
    int n;
    uint8_t first[64];
    uint16_t id[64];
    char topic[64][16];
    int fail_after; /* -1: never fails */
} wlog;

static int rec(void *arg, const char *p, size_t n) {
    wlog *w = arg;
    if (w->fail_after >= 0 && w->n >= w->fail_after) return NC_ESTALLED;
    assert_true(w->n < 64);
    /* the fixed header, then (PUBLISH) the topic, then the packet identifier */
    const unsigned char *u = (const unsigned char *)p;
    w->first[w->n] = u[0];
    size_t at = 1;
    while (u[at] & 0x80) at++;
    at++;
    if ((u[0] >> 4) == NC_MQTT_PUBLISH) {
        size_t tl = (size_t)u[at] << 8 | u[at + 1];
        snprintf(w->topic[w->n], sizeof w->topic[0], "%.*s", (int)tl, p + at + 2);
        at += 2 + tl;
    } else {
        w->topic[w->n][0] = 0;
    }
    w->id[w->n] = (uint16_t)(u[at] << 8 | u[at + 1]);
    assert_true(at + 2 <= n);
    w->n++;
    return 0;
}

/* An encoded PUBLISH of the given QoS on topic t (id 1: the outbox gives the real one). */
static void pub(nc_buf *b, const char *t, int qos) {
    b->len = 0;
    nc_mqtt_publish m = {
        .topic = t, .topic_len = strlen(t), .payload = "{}", .payload_len = 2, .qos = (uint8_t)qos, .id = 1};
    assert_int_equal(nc_mqtt_write_publish(b, NC_MQTT_V311, &m), 0);
}

static int users[32];

static uint16_t add(nc_mqtt_outbox *ob, const char *t, int qos, int u) {
    nc_buf b = NC_BUF_INIT;
    pub(&b, t, qos);
    uint16_t id = 0;
    assert_int_equal(nc_mqtt_outbox_add(ob, b.data, b.len, &users[u], NULL, NULL, &id), 0);
    nc_buf_free(&b);
    assert_int_not_equal(id, 0);
    return id;
}

/* Order, DUP on resend with a kept session, none without, and QoS 1 completion by PUBACK. */
static void test_order_and_dup(void **st) {
    (void)st;
    nc_mqtt_outbox ob;
    nc_mqtt_outbox_init(&ob, 0, 100);
    wlog w = {.fail_after = -1};
    uint16_t a = add(&ob, "a", 1, 0), b = add(&ob, "b", 1, 1), c = add(&ob, "c", 2, 2);
    assert_int_equal(a, 101);
    assert_int_equal(b, 102);
    assert_int_equal(c, 103);
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 3);
    assert_string_equal(w.topic[0], "a");
    assert_string_equal(w.topic[2], "c");
    assert_int_equal(w.id[1], b);
    assert_int_equal(w.first[0] & 8, 0);                    /* first send: no DUP */
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 0); /* nothing due */
    int done = 0;
    assert_ptr_equal(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBACK, b, 0, &done), &users[1]);
    assert_int_equal(done, 1);
    assert_null(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBACK, b, 0, &done)); /* twice: ignored */
    assert_null(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBACK, c, 0, &done)); /* QoS 2 wants PUBREC */
    assert_null(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBACK, 999, 0, &done));
    /* the connection is lost; the broker kept the session: a, c again, in order, with DUP */
    nc_mqtt_outbox_reconnect(&ob, 1, 0);
    assert_null(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBACK, a, 0, &done)); /* not yet resent */
    w.n = 0;
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 2);
    assert_string_equal(w.topic[0], "a");
    assert_string_equal(w.topic[1], "c");
    assert_int_equal(w.id[0], a);
    assert_int_equal(w.first[0] & 8, 8);
    assert_int_equal(w.first[1] & 8, 8);
    assert_int_equal((w.first[1] >> 1) & 3, 2);
    /* lost again, session not kept: the same packets as new publishes, DUP cleared */
    nc_mqtt_outbox_reconnect(&ob, 0, 0);
    w.n = 0;
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 2);
    assert_int_equal(w.first[0] & 8, 0);
    assert_int_equal(w.first[1] & 8, 0);
    assert_int_equal(ob.count, 2);
    assert_ptr_equal(nc_mqtt_outbox_pop(&ob), &users[0]);
    assert_ptr_equal(nc_mqtt_outbox_pop(&ob), &users[2]);
    assert_null(nc_mqtt_outbox_pop(&ob));
    assert_int_equal(ob.bytes, 0);
    nc_mqtt_outbox_free(&ob);
}

/* QoS 2: PUBREC moves it to "PUBREL sent"; a reconnection resends the PUBREL (not the PUBLISH), whether
 * the session was kept or not; PUBCOMP completes it. A PUBREC with an error reason ends it at once. */
static void test_qos2_pubrel(void **st) {
    (void)st;
    nc_mqtt_outbox ob;
    nc_mqtt_outbox_init(&ob, 0, 0);
    wlog w = {.fail_after = -1};
    uint16_t x = add(&ob, "x", 2, 0), y = add(&ob, "y", 2, 1), z = add(&ob, "z", 2, 2);
    assert_int_equal(x, 1);
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 3);
    int done = 1;
    assert_ptr_equal(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBREC, x, 0, &done), &users[0]);
    assert_int_equal(done, 0);
    assert_null(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBREC, x, 0, &done));  /* a repeated PUBREC */
    assert_null(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBCOMP, y, 0, &done)); /* no PUBREC yet */
    assert_ptr_equal(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBREC, z, 0x87, &done), &users[2]);
    assert_int_equal(done, 1); /* refused: the exchange ends */
    for (int kept = 1; kept >= 0; kept--) {
        nc_mqtt_outbox_reconnect(&ob, kept, 0);
        w.n = 0;
        assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 2);
        assert_int_equal(w.first[0], NC_MQTT_PUBREL << 4 | 2); /* x: PUBREL */
        assert_int_equal(w.id[0], x);
        assert_int_equal(w.first[1] >> 4, NC_MQTT_PUBLISH); /* y: its PUBLISH */
        assert_int_equal(w.first[1] & 8, kept ? 8 : 0);
        assert_int_equal(w.id[1], y);
    }
    assert_ptr_equal(nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBCOMP, x, 0, &done), &users[0]);
    assert_int_equal(done, 1);
    assert_int_equal(ob.count, 1);
    nc_mqtt_outbox_free(&ob);
}

/* Receive Maximum: at most `window` unacknowledged; the rest wait in order and go as acks free slots;
 * PUBREL-state entries count until their PUBCOMP. */
static void test_window(void **st) {
    (void)st;
    nc_mqtt_outbox ob;
    nc_mqtt_outbox_init(&ob, 0, 0);
    nc_mqtt_outbox_reconnect(&ob, 0, 2); /* the CONNACK said Receive Maximum 2 */
    wlog w = {.fail_after = -1};
    uint16_t ids[5];
    ids[0] = add(&ob, "m0", 2, 0);
    for (int i = 1; i < 5; i++) {
        char t[8];
        snprintf(t, sizeof t, "m%d", i);
        ids[i] = add(&ob, t, 1, i);
    }
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 2);
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 0);
    int done;
    nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBREC, ids[0], 0, &done); /* still counts */
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 0);
    nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBACK, ids[1], 0, &done);
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 1);
    assert_string_equal(w.topic[2], "m2");
    nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBCOMP, ids[0], 0, &done);
    assert_int_equal(done, 1);
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 1);
    assert_string_equal(w.topic[3], "m3");
    /* a reconnection with a window of 1: m2 again first, then m3, then m4, one at a time */
    nc_mqtt_outbox_reconnect(&ob, 1, 1);
    w.n = 0;
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 1);
    assert_string_equal(w.topic[0], "m2");
    nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBACK, ids[2], 0, &done);
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 1);
    assert_string_equal(w.topic[1], "m3");
    /* a write that fails leaves the packet due: it goes at the next pump */
    nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBACK, ids[3], 0, &done);
    w.fail_after = w.n;
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 0);
    w.fail_after = -1;
    assert_int_equal(nc_mqtt_outbox_pump(&ob, rec, &w), 1);
    assert_string_equal(w.topic[2], "m4");
    assert_int_equal(ob.inflight, 1);
    nc_mqtt_outbox_free(&ob);
}

/* Packet identifiers skip 0, those kept and those the caller reports busy, wrap around, and run out. */
static int busy_odd(void *arg, uint16_t id) {
    (void)arg;
    return id & 1;
}

static void test_ids(void **st) {
    (void)st;
    nc_mqtt_outbox ob;
    nc_mqtt_outbox_init(&ob, 0, 65533);
    uint16_t a = add(&ob, "a", 1, 0);
    assert_int_equal(a, 65534);
    assert_int_equal(add(&ob, "b", 1, 1), 65535);
    assert_int_equal(add(&ob, "c", 1, 2), 1); /* 0 skipped */
    ob.next_id = 65533;                       /* around again: the kept ones are skipped */
    assert_int_equal(add(&ob, "d", 1, 3), 2);
    assert_int_equal(nc_mqtt_outbox_next_id(&ob, busy_odd, NULL), 4);
    nc_buf b = NC_BUF_INIT;
    pub(&b, "e", 1);
    uint16_t id = 0;
    assert_int_equal(nc_mqtt_outbox_add(&ob, b.data, b.len, NULL, busy_odd, NULL, &id), 0);
    assert_int_equal(id, 6);
    nc_mqtt_outbox_free(&ob);
    /* every identifier in use: NC_ESTALLED */
    nc_mqtt_outbox_init(&ob, 0, 0);
    for (unsigned i = 1; i <= 65535; i++)
        assert_int_equal(nc_mqtt_outbox_add(&ob, b.data, b.len, NULL, NULL, NULL, &id), 0);
    assert_int_equal(ob.count, 65535);
    assert_int_equal(nc_mqtt_outbox_add(&ob, b.data, b.len, NULL, NULL, NULL, &id), NC_ESTALLED);
    assert_int_equal(nc_mqtt_outbox_next_id(&ob, NULL, NULL), 0);
    nc_mqtt_outbox_free(&ob);
    nc_buf_free(&b);
}

/* The byte cap (what the kept copies take) and what is not a QoS 1/2 PUBLISH. */
static void test_caps(void **st) {
    (void)st;
    nc_buf b = NC_BUF_INIT;
    pub(&b, "cap", 1);
    nc_mqtt_outbox ob;
    nc_mqtt_outbox_init(&ob, 3 * b.len, 0);
    uint16_t id, first = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(nc_mqtt_outbox_add(&ob, b.data, b.len, NULL, NULL, NULL, i ? &id : &first), 0);
    assert_int_equal(nc_mqtt_outbox_add(&ob, b.data, b.len, NULL, NULL, NULL, &id), NC_ESTALLED);
    wlog w = {.fail_after = -1};
    nc_mqtt_outbox_pump(&ob, rec, &w);
    int done;
    nc_mqtt_outbox_ack(&ob, NC_MQTT_PUBACK, first, 0, &done); /* one completed: room for one more */
    assert_int_equal(nc_mqtt_outbox_add(&ob, b.data, b.len, NULL, NULL, NULL, &id), 0);
    assert_int_equal(ob.bytes, 3 * b.len);
    pub(&b, "q0", 0);
    assert_int_equal(nc_mqtt_outbox_add(&ob, b.data, b.len, NULL, NULL, NULL, &id), NC_EINVAL);
    assert_int_equal(nc_mqtt_outbox_add(&ob, "\x40\x02\x00\x01", 4, NULL, NULL, NULL, &id), NC_EINVAL);
    nc_mqtt_outbox_free(&ob);
    nc_buf_free(&b);
}

/* nc_mqtt_publish_patch: the identifier and DUP rewritten in place; the rest unchanged; v5 too. */
static void test_patch(void **st) {
    (void)st;
    nc_buf a = NC_BUF_INIT, b = NC_BUF_INIT;
    nc_mqtt_pub_props pp = {0};
    nc_mqtt_publish m = {.topic = "t/x",
                         .topic_len = 3,
                         .payload = "hello",
                         .payload_len = 5,
                         .qos = 2,
                         .id = 1,
                         .props = &pp};
    assert_int_equal(nc_mqtt_write_publish(&a, NC_MQTT_V5, &m), 0);
    m.id = 0xBEEF;
    m.dup = 1;
    assert_int_equal(nc_mqtt_write_publish(&b, NC_MQTT_V5, &m), 0);
    assert_int_equal(nc_mqtt_publish_patch(a.data, a.len, 0xBEEF, 1), 0);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(nc_mqtt_publish_patch(a.data, a.len, 0, 1), NC_EINVAL);
    assert_int_equal(nc_mqtt_publish_patch(a.data, a.len - 1, 5, 1), NC_EINVAL);
    nc_buf_free(&a);
    nc_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_dup), cmocka_unit_test(test_qos2_pubrel),
        cmocka_unit_test(test_window),        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_caps),          cmocka_unit_test(test_patch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
