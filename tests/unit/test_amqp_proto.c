/* The AMQP 0-9-1 codec (codec/amqp_proto.c, codec/amqp_table.c): parser, writers and field tables checked
 * against the frames of ../shared/spec/vectors/rmq/ (session.txt, wildcards-record.txt, noack-false.txt).
 * Those vectors are decoded frames; the bytes below are their encodings, built field by field from the
 * 0-9-1 layouts by the small byte builder of this file (not by the codec's own method table). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/amqp_proto.h"
#include "nestc/error.h"

/* ---- a byte builder for frames, independent of the codec ---- */

typedef struct bb {
    unsigned char d[16384];
    size_t n;
} bb;

static void u8(bb *b, unsigned v) {
    b->d[b->n++] = (unsigned char)v;
}
static void u16(bb *b, unsigned v) {
    u8(b, v >> 8);
    u8(b, v);
}
static void u32(bb *b, uint32_t v) {
    u16(b, v >> 16);
    u16(b, v & 0xFFFF);
}
static void u64(bb *b, uint64_t v) {
    u32(b, (uint32_t)(v >> 32));
    u32(b, (uint32_t)v);
}
static void raw(bb *b, const void *p, size_t n) {
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void sstr(bb *b, const char *s) {
    u8(b, (unsigned)strlen(s));
    raw(b, s, strlen(s));
}
static void lstr(bb *b, const char *s) {
    u32(b, (uint32_t)strlen(s));
    raw(b, s, strlen(s));
}
/* Opens a frame; frame_end patches its size and appends 0xCE. */
static size_t frame_begin(bb *b, int type, unsigned ch) {
    size_t at = b->n;
    u8(b, (unsigned)type);
    u16(b, ch);
    u32(b, 0);
    return at;
}
static void frame_end(bb *b, size_t at) {
    uint32_t n = (uint32_t)(b->n - at - 7);
    b->d[at + 3] = (unsigned char)(n >> 24);
    b->d[at + 4] = (unsigned char)(n >> 16);
    b->d[at + 5] = (unsigned char)(n >> 8);
    b->d[at + 6] = (unsigned char)n;
    u8(b, 0xCE);
}
static size_t method_begin(bb *b, unsigned ch, unsigned cls, unsigned mid) {
    size_t at = frame_begin(b, 1, ch);
    u16(b, cls);
    u16(b, mid);
    return at;
}

/* ---- recording what the parser reports ---- */

typedef struct ev_copy {
    int kind;
    uint16_t channel;
    uint32_t id;
    uint32_t flags;
    uint64_t delivery_tag;
    uint32_t message_count, consumer_count, frame_max;
    uint16_t reply_code, channel_max, heartbeat;
    char queue[300], exchange[300], routing_key[300], consumer_tag[300], text[300];
    char *table; /* JSON text */
    uint16_t pflags;
    uint8_t delivery_mode, priority;
    uint64_t timestamp;
    char correlation_id[300], reply_to[300], content_type[300], message_id[300];
    char *headers;
    char *body;
    size_t body_n;
    int body_in_place; /* not used by the checks: the parser's choice */
} ev_copy;

typedef struct rec {
    ev_copy ev[32];
    size_t n;
} rec;

static void cpy(char *dst, nc_amqp_span s) {
    memcpy(dst, s.p ? s.p : "", s.n);
    dst[s.n] = 0;
}

static char *dump(const json_t *j) {
    return j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

static int on_ev(void *user, const nc_amqp_event *e) {
    rec *r = user;
    assert_true(r->n < 32);
    ev_copy *c = &r->ev[r->n++];
    memset(c, 0, sizeof *c);
    c->kind = e->kind;
    c->channel = e->channel;
    c->id = e->m.id;
    c->flags = e->m.flags;
    c->delivery_tag = e->m.delivery_tag;
    c->message_count = e->m.message_count;
    c->consumer_count = e->m.consumer_count;
    c->frame_max = e->m.frame_max;
    c->reply_code = e->m.reply_code;
    c->channel_max = e->m.channel_max;
    c->heartbeat = e->m.heartbeat;
    cpy(c->queue, e->m.queue);
    cpy(c->exchange, e->m.exchange);
    cpy(c->routing_key, e->m.routing_key);
    cpy(c->consumer_tag, e->m.consumer_tag);
    cpy(c->text, e->m.text);
    c->table = dump(e->m.table);
    if (e->kind == NC_AMQP_EV_MESSAGE) {
        c->pflags = e->props.flags;
        c->delivery_mode = e->props.delivery_mode;
        c->priority = e->props.priority;
        c->timestamp = e->props.timestamp;
        cpy(c->correlation_id, e->props.correlation_id);
        cpy(c->reply_to, e->props.reply_to);
        cpy(c->content_type, e->props.content_type);
        cpy(c->message_id, e->props.message_id);
        c->headers = dump(e->props.headers);
        c->body = malloc(e->body.n + 1);
        memcpy(c->body, e->body.p, e->body.n);
        c->body[e->body.n] = 0;
        c->body_n = e->body.n;
    }
    return 0;
}

static void rec_free(rec *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->ev[i].table);
        free(r->ev[i].headers);
        free(r->ev[i].body);
    }
    r->n = 0;
}

static char why[256];

static int contains(const char *hay, size_t n, const char *needle, size_t k) {
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k)) return 1;
    return 0;
}

/* Feeds bytes to a fresh parser whole (step 0) or `step` bytes at a time; returns the feed's result. */
static int feed(int role, const void *data, size_t n, size_t step, rec *r) {
    nc_amqp_parser p;
    nc_amqp_parser_init(&p, role);
    why[0] = 0;
    int rc = 0;
    const char *d = data;
    if (!step) step = n ? n : 1;
    for (size_t off = 0; off < n && !rc; off += step)
        rc = nc_amqp_feed(&p, d + off, n - off < step ? n - off : step, on_ev, r, why, sizeof why);
    if (!rc) assert_int_equal(nc_amqp_pending_bytes(&p), 0);
    nc_amqp_parser_free(&p);
    return rc;
}

static void same_events(const rec *a, const rec *b) {
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const ev_copy *x = &a->ev[i], *y = &b->ev[i];
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->id, y->id);
        assert_int_equal(x->channel, y->channel);
        assert_int_equal(x->flags, y->flags);
        assert_int_equal(x->delivery_tag, y->delivery_tag);
        assert_string_equal(x->routing_key, y->routing_key);
        assert_int_equal(x->body_n, y->body_n);
        if (x->body_n) assert_memory_equal(x->body, y->body, x->body_n);
        if (x->headers || y->headers) assert_string_equal(x->headers, y->headers);
        if (x->table || y->table) assert_string_equal(x->table, y->table);
    }
}

/* ---- the vectors ---- */

#define WILD_BODY                                                                                            \
    "{\"pattern\":\"sensors.kitchen.temp\",\"data\":{\"temp\":21},\"id\":\"35ae5c55c2ff1457fecf3\"}"

/* wildcards-record.txt, ServerRMQ s2c: BasicDeliver ch1 + BasicProperties + BODY. */
static void wild_deliver(bb *b) {
    size_t at = method_begin(b, 1, 60, 60);
    sstr(b, "amq.ctag-yLJzZE_Ccf5DZVpW4qIxaw");
    u64(b, 1);
    u8(b, 0); /* redelivered */
    sstr(b, "wild_queue");
    sstr(b, "sensors.kitchen.temp");
    frame_end(b, at);
    at = frame_begin(b, 2, 1);
    u16(b, 60);
    u16(b, 0);
    u64(b, strlen(WILD_BODY));
    u16(b, 1u << 13 | 1u << 12 | 1u << 11 | 1u << 10 | 1u << 9);
    bb t = {.n = 0};
    sstr(&t, "x-version");
    u8(&t, 'S');
    lstr(&t, "1.0.0");
    sstr(&t, "x-trace");
    u8(&t, 'S');
    lstr(&t, "t-1");
    u32(b, (uint32_t)t.n);
    raw(b, t.d, t.n);
    u8(b, 2);
    u8(b, 3);
    sstr(b, "35ae5c55c2ff1457fecf3");
    sstr(b, "amq.rabbitmq.reply-to.<opaque>");
    frame_end(b, at);
    at = frame_begin(b, 3, 1);
    raw(b, WILD_BODY, strlen(WILD_BODY));
    frame_end(b, at);
}

static void test_vector_deliver(void **state) {
    (void)state;
    bb b = {.n = 0};
    wild_deliver(&b);
    rec r = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b.d, b.n, 0, &r), 0);
    assert_int_equal(r.n, 1);
    ev_copy *e = &r.ev[0];
    assert_int_equal(e->kind, NC_AMQP_EV_MESSAGE);
    assert_int_equal(e->id, NC_AMQP_BASIC_DELIVER);
    assert_int_equal(e->channel, 1);
    assert_string_equal(e->consumer_tag, "amq.ctag-yLJzZE_Ccf5DZVpW4qIxaw");
    assert_int_equal(e->delivery_tag, 1);
    assert_false(e->flags & NC_AMQP_F_REDELIVERED);
    assert_string_equal(e->exchange, "wild_queue");
    assert_string_equal(e->routing_key, "sensors.kitchen.temp");
    assert_string_equal(e->headers, "{\"x-trace\":\"t-1\",\"x-version\":\"1.0.0\"}");
    assert_int_equal(e->delivery_mode, 2);
    assert_int_equal(e->priority, 3);
    assert_string_equal(e->correlation_id, "35ae5c55c2ff1457fecf3");
    assert_string_equal(e->reply_to, "amq.rabbitmq.reply-to.<opaque>");
    assert_false(e->pflags & NC_AMQP_P_CONTENT_TYPE);
    assert_string_equal(e->body, WILD_BODY);
    /* one byte at a time, and in 5-byte pieces: the same message */
    rec r1 = {.n = 0}, r5 = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b.d, b.n, 1, &r1), 0);
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b.d, b.n, 5, &r5), 0);
    same_events(&r, &r1);
    same_events(&r, &r5);
    rec_free(&r);
    rec_free(&r1);
    rec_free(&r5);
}

/* The broker's methods of the vectors, then noack-false.txt's delivery with an empty exchange and a body
 * in two frames, and a heartbeat. */
static void test_vector_s2c_methods(void **state) {
    (void)state;
    bb b = {.n = 0};
    size_t at = method_begin(&b, 1, 85, 11); /* ConfirmSelectOk ch1 {} */
    frame_end(&b, at);
    at = method_begin(&b, 1, 50,
                      11); /* QueueDeclareOk {"queue":"wild_queue","messageCount":0,"consumerCount":1} */
    sstr(&b, "wild_queue");
    u32(&b, 0);
    u32(&b, 1);
    frame_end(&b, at);
    at = method_begin(&b, 1, 40, 11); /* ExchangeDeclareOk */
    frame_end(&b, at);
    at = method_begin(&b, 1, 50, 21); /* QueueBindOk */
    frame_end(&b, at);
    at = method_begin(&b, 1, 60, 11); /* BasicQosOk */
    frame_end(&b, at);
    at = method_begin(&b, 2, 60, 21); /* BasicConsumeOk ch2 */
    sstr(&b, "amq.ctag-7Q74C_N-KJHG6b5EwWTKvQ");
    frame_end(&b, at);
    at = method_begin(&b, 2, 60, 80); /* BasicAck ch2 {"deliveryTag":1,"multiple":false} */
    u64(&b, 1);
    u8(&b, 0);
    frame_end(&b, at);
    at = frame_begin(&b, 8, 0); /* heartbeat */
    frame_end(&b, at);
    /* noack-false.txt: BasicDeliver {"deliveryTag":1,"exchange":"","routingKey":"noack_queue"} */
    const char *body = "{\"pattern\":\"nope\",\"data\":1,\"id\":\"0f6526bb13790a06a77a8\"}";
    at = method_begin(&b, 1, 60, 60);
    sstr(&b, "amq.ctag-NAvSAYvkZT0ss8livfeXPg");
    u64(&b, 1);
    u8(&b, 0);
    sstr(&b, "");
    sstr(&b, "noack_queue");
    frame_end(&b, at);
    at = frame_begin(&b, 2, 1);
    u16(&b, 60);
    u16(&b, 0);
    u64(&b, strlen(body));
    u16(&b, 1u << 13 | 1u << 12 | 1u << 10 | 1u << 9);
    u32(&b, 0); /* headers {} */
    u8(&b, 1);
    sstr(&b, "0f6526bb13790a06a77a8");
    sstr(&b, "amq.rabbitmq.reply-to.<opaque>");
    frame_end(&b, at);
    at = frame_begin(&b, 3, 1);
    raw(&b, body, 20);
    frame_end(&b, at);
    at = frame_begin(&b, 3, 1);
    raw(&b, body + 20, strlen(body) - 20);
    frame_end(&b, at);
    /* a server-sent basic.nack (publisher confirm) and basic.cancel (consumer cancel notify) */
    at = method_begin(&b, 1, 60, 120);
    u64(&b, 7);
    u8(&b, 3); /* multiple, requeue */
    frame_end(&b, at);
    at = method_begin(&b, 1, 60, 30);
    sstr(&b, "amq.ctag-NAvSAYvkZT0ss8livfeXPg");
    u8(&b, 1);
    frame_end(&b, at);

    rec r = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b.d, b.n, 0, &r), 0);
    assert_int_equal(r.n, 11);
    assert_int_equal(r.ev[0].id, NC_AMQP_CONFIRM_SELECT_OK);
    assert_int_equal(r.ev[1].id, NC_AMQP_QUEUE_DECLARE_OK);
    assert_string_equal(r.ev[1].queue, "wild_queue");
    assert_int_equal(r.ev[1].message_count, 0);
    assert_int_equal(r.ev[1].consumer_count, 1);
    assert_int_equal(r.ev[2].id, NC_AMQP_EXCHANGE_DECLARE_OK);
    assert_int_equal(r.ev[3].id, NC_AMQP_QUEUE_BIND_OK);
    assert_int_equal(r.ev[4].id, NC_AMQP_BASIC_QOS_OK);
    assert_int_equal(r.ev[5].id, NC_AMQP_BASIC_CONSUME_OK);
    assert_int_equal(r.ev[5].channel, 2);
    assert_string_equal(r.ev[5].consumer_tag, "amq.ctag-7Q74C_N-KJHG6b5EwWTKvQ");
    assert_int_equal(r.ev[6].id, NC_AMQP_BASIC_ACK);
    assert_int_equal(r.ev[6].delivery_tag, 1);
    assert_false(r.ev[6].flags & NC_AMQP_F_MULTIPLE);
    assert_int_equal(r.ev[7].kind, NC_AMQP_EV_HEARTBEAT);
    assert_int_equal(r.ev[8].kind, NC_AMQP_EV_MESSAGE);
    assert_string_equal(r.ev[8].exchange, "");
    assert_string_equal(r.ev[8].routing_key, "noack_queue");
    assert_string_equal(r.ev[8].headers, "{}");
    assert_int_equal(r.ev[8].delivery_mode, 1);
    assert_string_equal(r.ev[8].body, body);
    assert_int_equal(r.ev[9].id, NC_AMQP_BASIC_NACK);
    assert_int_equal(r.ev[9].delivery_tag, 7);
    assert_int_equal(r.ev[9].flags, NC_AMQP_F_MULTIPLE | NC_AMQP_F_REQUEUE);
    assert_int_equal(r.ev[10].id, NC_AMQP_BASIC_CANCEL);
    assert_int_equal(r.ev[10].flags, NC_AMQP_F_NOWAIT);
    for (size_t i = 0; i < r.n; i++)
        if (r.ev[i].kind == NC_AMQP_EV_METHOD) assert_true(r.ev[i].kind == NC_AMQP_EV_METHOD);
    rec r1 = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b.d, b.n, 1, &r1), 0);
    same_events(&r, &r1);
    rec_free(&r);
    rec_free(&r1);
}

/* A RabbitMQ connection.start and tune as the broker sends them (server-properties with a nested
 * capabilities table), then connection.close with its reply. */
static void test_connection_start_tune_close(void **state) {
    (void)state;
    bb b = {.n = 0};
    size_t at = method_begin(&b, 0, 10, 10);
    u8(&b, 0);
    u8(&b, 9);
    bb caps = {.n = 0};
    sstr(&caps, "publisher_confirms");
    u8(&caps, 't');
    u8(&caps, 1);
    sstr(&caps, "basic.nack");
    u8(&caps, 't');
    u8(&caps, 1);
    bb t = {.n = 0};
    sstr(&t, "capabilities");
    u8(&t, 'F');
    u32(&t, (uint32_t)caps.n);
    raw(&t, caps.d, caps.n);
    sstr(&t, "product");
    u8(&t, 'S');
    lstr(&t, "RabbitMQ");
    sstr(&t, "version");
    u8(&t, 'S');
    lstr(&t, "3.10.8");
    u32(&b, (uint32_t)t.n);
    raw(&b, t.d, t.n);
    lstr(&b, "AMQPLAIN PLAIN");
    lstr(&b, "en_US");
    frame_end(&b, at);
    at = method_begin(&b, 0, 10, 30);
    u16(&b, 2047);
    u32(&b, 131072);
    u16(&b, 60);
    frame_end(&b, at);
    at = method_begin(&b, 0, 10, 41);
    sstr(&b, "");
    frame_end(&b, at);
    at = method_begin(&b, 0, 10, 60);
    sstr(&b, "low on memory");
    frame_end(&b, at);
    at = method_begin(&b, 0, 10, 50);
    u16(&b, 320);
    sstr(&b, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'");
    u16(&b, 0);
    u16(&b, 0);
    frame_end(&b, at);
    rec r = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b.d, b.n, 0, &r), 0);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.ev[0].id, NC_AMQP_CONNECTION_START);
    assert_string_equal(r.ev[0].table, "{\"capabilities\":{\"basic.nack\":true,\"publisher_confirms\":true},"
                                       "\"product\":\"RabbitMQ\",\"version\":\"3.10.8\"}");
    assert_int_equal(r.ev[1].id, NC_AMQP_CONNECTION_TUNE);
    assert_int_equal(r.ev[1].channel_max, 2047);
    assert_int_equal(r.ev[1].frame_max, 131072);
    assert_int_equal(r.ev[1].heartbeat, 60);
    assert_int_equal(r.ev[2].id, NC_AMQP_CONNECTION_OPEN_OK);
    assert_int_equal(r.ev[3].id, NC_AMQP_CONNECTION_BLOCKED);
    assert_string_equal(r.ev[3].text, "low on memory");
    assert_int_equal(r.ev[4].id, NC_AMQP_CONNECTION_CLOSE);
    assert_int_equal(r.ev[4].reply_code, 320);
    rec_free(&r);

    /* the writers' replies, byte for byte */
    nc_buf out = NC_BUF_INIT;
    nc_amqp_method m = {
        .id = NC_AMQP_CONNECTION_TUNE_OK, .channel_max = 2047, .frame_max = 131072, .heartbeat = 60};
    assert_int_equal(nc_amqp_write_method(&out, &m), 0);
    bb w = {.n = 0};
    at = method_begin(&w, 0, 10, 31);
    u16(&w, 2047);
    u32(&w, 131072);
    u16(&w, 60);
    frame_end(&w, at);
    assert_int_equal(out.len, w.n);
    assert_memory_equal(out.data, w.d, w.n);
    nc_buf_free(&out);
}

/* The client's frames of the vectors, written by the writers, byte for byte. */
static void test_vector_c2s_bytes(void **state) {
    (void)state;
    nc_buf out = NC_BUF_INIT;
    bb w = {.n = 0};
    /* QueueDeclare ch1 {"queue":"math_queue", all false, "arguments":{}} */
    json_t *args = json_object();
    nc_amqp_method m = {
        .id = NC_AMQP_QUEUE_DECLARE, .channel = 1, .queue = {"math_queue", 10}, .table = args};
    assert_int_equal(nc_amqp_write_method(&out, &m), 0);
    size_t at = method_begin(&w, 1, 50, 10);
    u16(&w, 0);
    sstr(&w, "math_queue");
    u8(&w, 0);
    u32(&w, 0);
    frame_end(&w, at);
    /* BasicQos ch1 {"prefetchSize":0,"prefetchCount":0,"global":false} */
    m = (nc_amqp_method){.id = NC_AMQP_BASIC_QOS, .channel = 1};
    assert_int_equal(nc_amqp_write_method(&out, &m), 0);
    at = method_begin(&w, 1, 60, 10);
    u32(&w, 0);
    u16(&w, 0);
    u8(&w, 0);
    frame_end(&w, at);
    /* BasicConsume ch1 {"queue":"amq.rabbitmq.reply-to","consumerTag":"","noAck":true,...} */
    m = (nc_amqp_method){.id = NC_AMQP_BASIC_CONSUME,
                         .channel = 1,
                         .queue = {"amq.rabbitmq.reply-to", 21},
                         .flags = NC_AMQP_F_NO_ACK};
    assert_int_equal(nc_amqp_write_method(&out, &m), 0);
    at = method_begin(&w, 1, 60, 20);
    u16(&w, 0);
    sstr(&w, "amq.rabbitmq.reply-to");
    sstr(&w, "");
    u8(&w, 2); /* no-local, no-ack, exclusive, no-wait: bit 1 */
    u32(&w, 0);
    frame_end(&w, at);
    /* ConfirmSelect ch2 {"nowait":false} */
    m = (nc_amqp_method){.id = NC_AMQP_CONFIRM_SELECT, .channel = 2};
    assert_int_equal(nc_amqp_write_method(&out, &m), 0);
    at = method_begin(&w, 2, 85, 10);
    u8(&w, 0);
    frame_end(&w, at);
    /* noack-false.txt: BasicNack ch1 {"deliveryTag":3,"multiple":false,"requeue":false} */
    m = (nc_amqp_method){.id = NC_AMQP_BASIC_NACK, .channel = 1, .delivery_tag = 3};
    assert_int_equal(nc_amqp_write_method(&out, &m), 0);
    at = method_begin(&w, 1, 60, 120);
    u64(&w, 3);
    u8(&w, 0);
    frame_end(&w, at);
    /* session.txt: BasicPublish ch2 {"exchange":"","routingKey":"math_queue"} + BasicProperties
     * {"headers":{},"deliveryMode":1,"correlationId":"77ac5305d4b716356d474","replyTo":"amq.rabbitmq.reply-to",
     * "bodySize":69} + BODY */
    const char *body = "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"77ac5305d4b716356d474\"}";
    m = (nc_amqp_method){.id = NC_AMQP_BASIC_PUBLISH, .channel = 2, .routing_key = {"math_queue", 10}};
    nc_amqp_props pr = {.flags = NC_AMQP_P_HEADERS | NC_AMQP_P_DELIVERY_MODE | NC_AMQP_P_CORRELATION_ID |
                                 NC_AMQP_P_REPLY_TO,
                        .headers = args,
                        .delivery_mode = 1,
                        .correlation_id = {"77ac5305d4b716356d474", 21},
                        .reply_to = {"amq.rabbitmq.reply-to", 21}};
    assert_int_equal(nc_amqp_write_publish(&out, &m, &pr, body, strlen(body), 131072), 0);
    at = method_begin(&w, 2, 60, 40);
    u16(&w, 0);
    sstr(&w, "");
    sstr(&w, "math_queue");
    u8(&w, 0);
    frame_end(&w, at);
    at = frame_begin(&w, 2, 2);
    u16(&w, 60);
    u16(&w, 0);
    u64(&w, 69);
    u16(&w, 0x3600);
    u32(&w, 0);
    u8(&w, 1);
    sstr(&w, "77ac5305d4b716356d474");
    sstr(&w, "amq.rabbitmq.reply-to");
    frame_end(&w, at);
    at = frame_begin(&w, 3, 2);
    raw(&w, body, 69);
    frame_end(&w, at);
    assert_int_equal(out.len, w.n);
    assert_memory_equal(out.data, w.d, w.n);
    nc_buf_free(&out);
    json_decref(args);
}

/* Every method a client sends, written and read back by a server-role parser with every argument set. */
static void test_round_trip_client_methods(void **state) {
    (void)state;
    json_t *args = json_pack("{s:i,s:s,s:b,s:n,s:f,s:{s:[i,s]}}", "x-max-priority", 10, "x-queue-type",
                             "quorum", "flag", 1, "none", "ratio", 0.5, "nested", "list", 1, "two");
    static const uint32_t ids[] = {NC_AMQP_CONNECTION_START_OK,
                                   NC_AMQP_CONNECTION_SECURE_OK,
                                   NC_AMQP_CONNECTION_TUNE_OK,
                                   NC_AMQP_CONNECTION_OPEN,
                                   NC_AMQP_CONNECTION_CLOSE,
                                   NC_AMQP_CONNECTION_CLOSE_OK,
                                   NC_AMQP_CONNECTION_UPDATE_SECRET_OK,
                                   NC_AMQP_CHANNEL_OPEN,
                                   NC_AMQP_CHANNEL_CLOSE,
                                   NC_AMQP_CHANNEL_CLOSE_OK,
                                   NC_AMQP_CHANNEL_FLOW_OK,
                                   NC_AMQP_EXCHANGE_DECLARE,
                                   NC_AMQP_EXCHANGE_BIND,
                                   NC_AMQP_QUEUE_DECLARE,
                                   NC_AMQP_QUEUE_BIND,
                                   NC_AMQP_QUEUE_PURGE,
                                   NC_AMQP_QUEUE_DELETE,
                                   NC_AMQP_BASIC_QOS,
                                   NC_AMQP_BASIC_CONSUME,
                                   NC_AMQP_BASIC_CANCEL,
                                   NC_AMQP_BASIC_ACK,
                                   NC_AMQP_BASIC_NACK,
                                   NC_AMQP_BASIC_REJECT,
                                   NC_AMQP_BASIC_RECOVER,
                                   NC_AMQP_CONFIRM_SELECT};
    size_t nids = sizeof ids / sizeof ids[0];
    /* each flag set one at a time and all together: bits must not bleed into each other */
    for (int pass = 0; pass < 18; pass++) {
        uint32_t flags = pass == 17 ? 0x1FFFFu : 1u << pass;
        nc_buf out = NC_BUF_INIT;
        for (size_t i = 0; i < nids; i++) {
            uint16_t ch = (ids[i] >> 16) == 10 ? 0 : 5;
            nc_amqp_method m = {.id = ids[i],
                                .channel = ch,
                                .flags = flags,
                                .reply_code = 406,
                                .failing_class = 60,
                                .failing_method = 40,
                                .channel_max = 2047,
                                .heartbeat = 30,
                                .frame_max = 131072,
                                .prefetch_size = 0,
                                .prefetch_count = 50,
                                .delivery_tag = 0x123456789abcdefULL,
                                .text = {"PRECONDITION_FAILED", 19},
                                .queue = {"jobs", 4},
                                .exchange = {"ex", 2},
                                .routing_key = {"a.b", 3},
                                .consumer_tag = {"ctag-1", 6},
                                .source = {"src", 3},
                                .type = {"topic", 5},
                                .vhost = {"/", 1},
                                .mechanism = {"PLAIN", 5},
                                .locale = {"en_US", 5},
                                .blob = {"\0u\0p", 4},
                                .table = args};
            assert_int_equal(nc_amqp_write_method(&out, &m), 0);
        }
        nc_amqp_parser p;
        nc_amqp_parser_init(&p, NC_AMQP_ROLE_SERVER);
        rec r = {.n = 0};
        assert_int_equal(nc_amqp_feed(&p, out.data, out.len, on_ev, &r, why, sizeof why), 0);
        nc_amqp_parser_free(&p);
        assert_int_equal(r.n, nids);
        char *targs = dump(args);
        for (size_t i = 0; i < nids; i++) {
            ev_copy *e = &r.ev[i];
            assert_int_equal(e->id, ids[i]);
            assert_int_equal(e->kind, NC_AMQP_EV_METHOD);
            /* the flags a method has come back; those it has not are not invented */
            uint32_t has = 0;
            switch (ids[i]) {
            case NC_AMQP_CHANNEL_FLOW_OK:
                has = NC_AMQP_F_ACTIVE;
                break;
            case NC_AMQP_EXCHANGE_DECLARE:
                has = NC_AMQP_F_PASSIVE | NC_AMQP_F_DURABLE | NC_AMQP_F_AUTO_DELETE | NC_AMQP_F_INTERNAL |
                      NC_AMQP_F_NOWAIT;
                break;
            case NC_AMQP_EXCHANGE_BIND:
            case NC_AMQP_QUEUE_BIND:
            case NC_AMQP_QUEUE_PURGE:
            case NC_AMQP_BASIC_CANCEL:
            case NC_AMQP_CONFIRM_SELECT:
                has = NC_AMQP_F_NOWAIT;
                break;
            case NC_AMQP_QUEUE_DECLARE:
                has = NC_AMQP_F_PASSIVE | NC_AMQP_F_DURABLE | NC_AMQP_F_EXCLUSIVE | NC_AMQP_F_AUTO_DELETE |
                      NC_AMQP_F_NOWAIT;
                break;
            case NC_AMQP_QUEUE_DELETE:
                has = NC_AMQP_F_IF_UNUSED | NC_AMQP_F_IF_EMPTY | NC_AMQP_F_NOWAIT;
                break;
            case NC_AMQP_BASIC_QOS:
                has = NC_AMQP_F_GLOBAL;
                break;
            case NC_AMQP_BASIC_CONSUME:
                has = NC_AMQP_F_NO_LOCAL | NC_AMQP_F_NO_ACK | NC_AMQP_F_EXCLUSIVE | NC_AMQP_F_NOWAIT;
                break;
            case NC_AMQP_BASIC_ACK:
                has = NC_AMQP_F_MULTIPLE;
                break;
            case NC_AMQP_BASIC_NACK:
                has = NC_AMQP_F_MULTIPLE | NC_AMQP_F_REQUEUE;
                break;
            case NC_AMQP_BASIC_REJECT:
            case NC_AMQP_BASIC_RECOVER:
                has = NC_AMQP_F_REQUEUE;
                break;
            }
            assert_int_equal(e->flags, flags & has);
            switch (ids[i]) {
            case NC_AMQP_CONNECTION_START_OK:
            case NC_AMQP_EXCHANGE_DECLARE:
            case NC_AMQP_EXCHANGE_BIND:
            case NC_AMQP_QUEUE_DECLARE:
            case NC_AMQP_QUEUE_BIND:
            case NC_AMQP_BASIC_CONSUME:
                assert_string_equal(e->table, targs);
                break;
            case NC_AMQP_CONNECTION_TUNE_OK:
                assert_int_equal(e->channel_max, 2047);
                assert_int_equal(e->frame_max, 131072);
                assert_int_equal(e->heartbeat, 30);
                break;
            case NC_AMQP_CONNECTION_CLOSE:
            case NC_AMQP_CHANNEL_CLOSE:
                assert_int_equal(e->reply_code, 406);
                assert_string_equal(e->text, "PRECONDITION_FAILED");
                break;
            case NC_AMQP_BASIC_ACK:
            case NC_AMQP_BASIC_NACK:
            case NC_AMQP_BASIC_REJECT:
                assert_int_equal(e->delivery_tag, 0x123456789abcdefULL);
                break;
            }
            if (ids[i] == NC_AMQP_QUEUE_BIND) {
                assert_string_equal(e->queue, "jobs");
                assert_string_equal(e->exchange, "ex");
                assert_string_equal(e->routing_key, "a.b");
            }
            if (ids[i] == NC_AMQP_BASIC_CONSUME) assert_string_equal(e->consumer_tag, "ctag-1");
        }
        free(targs);
        rec_free(&r);
        nc_buf_free(&out);
    }
    json_decref(args);
}

/* start-ok: PLAIN's response, EXTERNAL's empty one, the capabilities table. */
static void test_start_ok(void **state) {
    (void)state;
    nc_buf out = NC_BUF_INIT;
    json_t *props = json_pack("{s:s}", "product", "nestc");
    assert_int_equal(nc_amqp_write_start_ok(&out, props, NC_AMQP_MECH_PLAIN, "guest", "secret", NULL), 0);
    assert_int_equal(nc_amqp_write_start_ok(&out, NULL, NC_AMQP_MECH_EXTERNAL, NULL, NULL, "en_US"), 0);
    assert_int_equal(json_object_size(props), 1); /* the caller's object is not changed */
    nc_amqp_parser p;
    nc_amqp_parser_init(&p, NC_AMQP_ROLE_SERVER);
    rec r = {.n = 0};
    assert_int_equal(nc_amqp_feed(&p, out.data, out.len, on_ev, &r, why, sizeof why), 0);
    nc_amqp_parser_free(&p);
    assert_int_equal(r.n, 2);
    const char *caps =
        "{\"authentication_failure_close\":true,\"basic.nack\":true,\"connection.blocked\":true,"
        "\"consumer_cancel_notify\":true,\"exchange_exchange_bindings\":true,"
        "\"publisher_confirms\":true}";
    char want[512];
    snprintf(want, sizeof want, "{\"capabilities\":%s,\"product\":\"nestc\"}", caps);
    assert_string_equal(r.ev[0].table, want);
    snprintf(want, sizeof want, "{\"capabilities\":%s}", caps);
    assert_string_equal(r.ev[1].table, want);
    /* the responses: find them in the bytes */
    assert_true(contains(out.data, out.len,
                         "\x05PLAIN\x00\x00\x00\x0d\x00guest\x00secret\x05"
                         "en_US",
                         25));
    assert_true(contains(out.data, out.len,
                         "\x08"
                         "EXTERNAL\x00\x00\x00\x00\x05"
                         "en_US",
                         19));
    rec_free(&r);
    nc_buf_free(&out);
    json_decref(props);
}

/* publish: every property written and read back; the body split at frame_max and reassembled. */
static void test_publish_split(void **state) {
    (void)state;
    static char body[10000];
    for (size_t i = 0; i < sizeof body; i++) body[i] = (char)('a' + i % 26);
    json_t *headers = json_pack("{s:s,s:I}", "x-trace", "t-1", "x-death-count", (json_int_t)3);
    nc_amqp_method m = {.id = NC_AMQP_BASIC_PUBLISH,
                        .channel = 3,
                        .exchange = {"amq.topic", 9},
                        .routing_key = {"a.b", 3},
                        .flags = NC_AMQP_F_MANDATORY};
    nc_amqp_props pr = {.flags = 0xFFFC,
                        .content_type = {"application/json", 16},
                        .content_encoding = {"utf-8", 5},
                        .headers = headers,
                        .delivery_mode = 2,
                        .priority = 9,
                        .correlation_id = {"c1", 2},
                        .reply_to = {"amq.rabbitmq.reply-to", 21},
                        .expiration = {"60000", 5},
                        .message_id = {"m1", 2},
                        .timestamp = 1700000000,
                        .type = {"t", 1},
                        .user_id = {"guest", 5},
                        .app_id = {"nestc", 5},
                        .cluster_id = {"c", 1}};
    nc_buf out = NC_BUF_INIT;
    assert_int_equal(nc_amqp_write_publish(&out, &m, &pr, body, sizeof body, 4096), 0);
    /* method, header, then ceil(10000 / 4088) = 3 body frames */
    size_t frames = 0;
    for (size_t at = 0; at < out.len; frames++) {
        uint32_t n =
            (uint32_t)((unsigned char)out.data[at + 3] << 24 | (unsigned char)out.data[at + 4] << 16 |
                       (unsigned char)out.data[at + 5] << 8 | (unsigned char)out.data[at + 6]);
        assert_true(n + 8 <= 4096);
        at += n + 8;
    }
    assert_int_equal(frames, 5);
    for (size_t step = 0; step < 3; step++) {
        rec r = {.n = 0};
        assert_int_equal(feed(NC_AMQP_ROLE_SERVER, out.data, out.len,
                              step == 0   ? 0
                              : step == 1 ? 1
                                          : 4095,
                              &r),
                         0);
        assert_int_equal(r.n, 1);
        ev_copy *e = &r.ev[0];
        assert_int_equal(e->id, NC_AMQP_BASIC_PUBLISH);
        assert_int_equal(e->flags, NC_AMQP_F_MANDATORY);
        assert_string_equal(e->exchange, "amq.topic");
        assert_int_equal(e->pflags, 0xFFFC);
        assert_string_equal(e->content_type, "application/json");
        assert_string_equal(e->headers, "{\"x-death-count\":3,\"x-trace\":\"t-1\"}");
        assert_int_equal(e->delivery_mode, 2);
        assert_int_equal(e->priority, 9);
        assert_int_equal(e->timestamp, 1700000000);
        assert_string_equal(e->message_id, "m1");
        assert_int_equal(e->body_n, sizeof body);
        assert_memory_equal(e->body, body, sizeof body);
        rec_free(&r);
    }
    /* an empty body: method and header only, reported at once */
    nc_buf_reset(&out);
    assert_int_equal(nc_amqp_write_publish(&out, &m, NULL, "", 0, 0), 0);
    rec r = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_SERVER, out.data, out.len, 0, &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ev[0].body_n, 0);
    rec_free(&r);
    nc_buf_free(&out);
    json_decref(headers);
}

/* Every field type RabbitMQ reads, decoded from bytes; JSON written and read back. */
static void test_field_tables(void **state) {
    (void)state;
    bb t = {.n = 0};
    sstr(&t, "t");
    u8(&t, 't');
    u8(&t, 1);
    sstr(&t, "b");
    u8(&t, 'b');
    u8(&t, 0xFE); /* -2 */
    sstr(&t, "B");
    u8(&t, 'B');
    u8(&t, 0xFE); /* 254 */
    sstr(&t, "s");
    u8(&t, 's');
    u16(&t, 0xFFFD); /* -3: RabbitMQ's signed short */
    sstr(&t, "U");
    u8(&t, 'U');
    u16(&t, 0xFFFC); /* -4: the spec's signed short */
    sstr(&t, "u");
    u8(&t, 'u');
    u16(&t, 0xFFFD);
    sstr(&t, "I");
    u8(&t, 'I');
    u32(&t, 0xFFFFFFFB); /* -5 */
    sstr(&t, "i");
    u8(&t, 'i');
    u32(&t, 0xFFFFFFFB);
    sstr(&t, "l");
    u8(&t, 'l');
    u64(&t, (uint64_t)-7);
    sstr(&t, "L");
    u8(&t, 'L');
    u64(&t, (uint64_t)-9);
    sstr(&t, "f");
    u8(&t, 'f');
    u32(&t, 0x3FC00000); /* 1.5f */
    sstr(&t, "d");
    u8(&t, 'd');
    u64(&t, 0x4004000000000000ULL); /* 2.5 */
    sstr(&t, "D");
    u8(&t, 'D');
    u8(&t, 2);
    u32(&t, 12345); /* 123.45 */
    sstr(&t, "S");
    u8(&t, 'S');
    lstr(&t, "h\xc3\xa9llo");
    sstr(&t, "x");
    u8(&t, 'x');
    u32(&t, 2);
    u8(&t, 'o');
    u8(&t, 0xFF); /* not UTF-8: U+FFFD */
    sstr(&t, "T");
    u8(&t, 'T');
    u64(&t, 1700000000);
    sstr(&t, "V");
    u8(&t, 'V');
    sstr(&t, "A");
    u8(&t, 'A');
    u32(&t, 2 + 5);
    u8(&t, 't');
    u8(&t, 0);
    u8(&t, 'I');
    u32(&t, 9);
    sstr(&t, "F");
    u8(&t, 'F');
    u32(&t, 0);
    json_t *j = NULL;
    assert_int_equal(nc_amqp_table_decode((const char *)t.d, t.n, 8, &j, why, sizeof why), 0);
    char *s = dump(j);
    assert_string_equal(
        s, "{\"A\":[false,9],\"B\":254,\"D\":123.45,\"F\":{},\"I\":-5,\"L\":-9,\"S\":\"h\xc3\xa9llo\","
           "\"T\":1700000000,\"U\":-4,\"V\":null,\"b\":-2,\"d\":2.5,\"f\":1.5,\"i\":4294967291,\"l\":-7,"
           "\"s\":-3,\"t\":true,\"u\":65533,\"x\":\"o\xef\xbf\xbd\"}");
    /* written back (as RabbitMQ's types l d S t V F A) and read again: the same JSON */
    nc_buf out = NC_BUF_INIT;
    assert_int_equal(nc_amqp_table_write(&out, j, 8), 0);
    json_t *k = NULL;
    assert_int_equal(nc_amqp_table_decode(out.data + 4, out.len - 4, 8, &k, why, sizeof why), 0);
    assert_true(json_equal(j, k));
    free(s);
    json_decref(j);
    json_decref(k);
    /* a key over 255 bytes, a non-object, nesting past the cap: refused, out unchanged */
    char key[300];
    memset(key, 'k', 299);
    key[299] = 0;
    nc_buf_reset(&out);
    j = json_pack("{s:i}", key, 1);
    assert_int_equal(nc_amqp_table_write(&out, j, 8), NC_EINVAL);
    assert_int_equal(out.len, 0);
    json_decref(j);
    j = json_array();
    assert_int_equal(nc_amqp_table_write(&out, j, 8), NC_EINVAL);
    json_decref(j);
    j = json_pack("{s:{s:{s:{}}}}", "a", "b", "c");
    assert_int_equal(nc_amqp_table_write(&out, j, 2), NC_EINVAL);
    assert_int_equal(out.len, 0);
    assert_int_equal(nc_amqp_table_write(&out, j, 3), 0);
    json_decref(j);
    nc_buf_free(&out);
    /* a short string over 255 bytes in a method: NC_EINVAL, nothing written */
    nc_amqp_method m = {.id = NC_AMQP_QUEUE_DECLARE, .channel = 1, .queue = {key, 256}};
    assert_int_equal(nc_amqp_write_method(&out, &m), NC_EINVAL);
    assert_int_equal(out.len, 0);
    m.queue.n = 255;
    assert_int_equal(nc_amqp_write_method(&out, &m), 0);
    nc_buf_free(&out);
}

/* Feeds bytes to a client parser and expects `rc` with `phrase` in the sentence. */
static void expect_fail(const bb *b, int rc, const char *phrase) {
    rec r = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b->d, b->n, 0, &r), rc);
    if (!strstr(why, phrase)) fail_msg("\"%s\" not in \"%s\"", phrase, why);
    rec_free(&r);
    /* one byte at a time: the same outcome */
    why[0] = 0;
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b->d, b->n, 1, &r), rc);
    if (!strstr(why, phrase)) fail_msg("\"%s\" not in \"%s\" (split)", phrase, why);
    rec_free(&r);
}

/* Numbers are written as amqplib 2.3.1 writes a JS number (lib/codec.js encodeFieldValue): a whole one in
 * the narrowest signed type that holds it ('b' int8, 's' int16, 'I' int32, else 'l' int64), one with a
 * fraction as 'd'; a whole real (3.0, which JSON.parse makes 3) is whole. The expected bytes are amqplib's
 * codec.encodeTable output for the same object (the interop test rmq.table_bytes checks that live). */
static void hexof(const nc_buf *b, char *out) {
    for (size_t i = 0; i < b->len; i++) sprintf(out + 2 * i, "%02x", (unsigned char)b->data[i]);
    out[2 * b->len] = 0;
}

static void test_table_number_types(void **state) {
    (void)state;
    json_error_t e;
    json_t *j = json_loads("{\"a\":3,\"b\":300,\"c\":70000,\"d\":1099511627776,\"e\":1.5,\"f\":true,"
                           "\"g\":\"s\",\"h\":-129,\"i\":-2147483649,\"j\":[127,128,-32769]}",
                           0, &e);
    assert_non_null(j);
    nc_buf out = NC_BUF_INIT;
    assert_int_equal(nc_amqp_table_write(&out, j, 8), 0);
    char hex[512];
    hexof(&out, hex);
    assert_string_equal(hex,
                        "0000005301616203016273012c0163490001117001646c00000100000000000165643ff8000000000000"
                        "016674010167530000000173016873ff7f01696cffffffff7fffffff016a410000000a627f73008049"
                        "ffff7fff");
    json_decref(j);
    /* whole reals: 3.0 -> 'b', -0.0 -> 'b' 0, 2^40 -> 'l', -2^63 -> 'l'; 2^63 and 0.5 stay 'd' */
    j = json_pack("{s:f,s:f,s:f,s:f,s:f,s:f}", "a", 3.0, "b", -0.0, "c", 1099511627776.0, "d",
                  -9223372036854775808.0, "e", 9223372036854775808.0, "f", 0.5);
    nc_buf_reset(&out);
    assert_int_equal(nc_amqp_table_write(&out, j, 8), 0);
    hexof(&out, hex);
    assert_string_equal(hex, "00000034016162030162620001636c000001000000000001646c8000000000000000016564"
                             "43e00000000000000166643fe0000000000000");
    json_decref(j);
    nc_buf_free(&out);
}

static void test_malformed(void **state) {
    (void)state;
    bb b = {.n = 0};
    size_t at;
    /* bad frame-end */
    at = method_begin(&b, 1, 60, 11);
    frame_end(&b, at);
    b.d[b.n - 1] = 0xCD;
    expect_fail(&b, NC_EPROTO, "not the frame-end 0xCE");
    /* oversize frame (over the default frame_max of 131072) */
    b.n = 0;
    u8(&b, 3);
    u16(&b, 1);
    u32(&b, 131072);
    expect_fail(&b, NC_EPROTO, "a body frame on channel 1 of 131080 bytes (frame_max is 131072)");
    /* unknown frame type */
    b.n = 0;
    u8(&b, 4);
    u16(&b, 0);
    u32(&b, 0);
    expect_fail(&b, NC_EPROTO, "unknown type 4");
    /* unknown method, and a client's method sent by the broker */
    b.n = 0;
    at = method_begin(&b, 1, 60, 99);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "unknown method 60.99 on channel 1");
    b.n = 0;
    at = method_begin(&b, 1, 60, 10);
    u32(&b, 0);
    u16(&b, 0);
    u8(&b, 0);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "method basic.qos on channel 1, which a broker does not send");
    /* a channel method on channel 0 */
    b.n = 0;
    at = method_begin(&b, 0, 60, 11);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "basic.qos-ok on channel 0");
    /* truncated arguments, bytes after them */
    b.n = 0;
    at = method_begin(&b, 1, 50, 11);
    sstr(&b, "q");
    u32(&b, 0);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "queue.declare-ok on channel 1: arguments truncated");
    b.n = 0;
    at = method_begin(&b, 1, 60, 11);
    u8(&b, 0);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "basic.qos-ok on channel 1: 1 bytes after its arguments");
    /* truncated table, bad field type, deep nesting (connection.start's server-properties) */
    for (int k = 0; k < 3; k++) {
        b.n = 0;
        at = method_begin(&b, 0, 10, 10);
        u8(&b, 0);
        u8(&b, 9);
        bb t = {.n = 0};
        if (k == 0) {
            sstr(&t, "product");
            u8(&t, 'S');
            u32(&t, 100);
            raw(&t, "RabbitMQ", 8);
        } else if (k == 1) {
            sstr(&t, "product");
            u8(&t, 'Q');
        } else {
            /* 40 nested arrays: past the default depth of 32 */
            unsigned char nest[200];
            size_t n = 0;
            sstr(&t, "deep");
            for (int d = 0; d < 40; d++) {
                nest[n++] = 'A';
                uint32_t len = (uint32_t)(5 * (39 - d));
                nest[n++] = (unsigned char)(len >> 24);
                nest[n++] = (unsigned char)(len >> 16);
                nest[n++] = (unsigned char)(len >> 8);
                nest[n++] = (unsigned char)len;
            }
            raw(&t, nest, n);
        }
        u32(&b, (uint32_t)t.n);
        raw(&b, t.d, t.n);
        lstr(&b, "PLAIN");
        lstr(&b, "en_US");
        frame_end(&b, at);
        expect_fail(&b, NC_EPROTO,
                    k == 0   ? "connection.start on channel 0: field table: truncated string"
                    : k == 1 ? "connection.start on channel 0: field table: unknown field type 'Q'"
                             : "nested deeper than the limit");
    }
    /* content header on a channel without a pending method; body without one */
    b.n = 0;
    at = frame_begin(&b, 2, 1);
    u16(&b, 60);
    u16(&b, 0);
    u64(&b, 0);
    u16(&b, 0);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "a content header frame on channel 1 without a pending basic.deliver");
    b.n = 0;
    at = frame_begin(&b, 3, 1);
    u8(&b, 'x');
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "a body frame on channel 1 without a pending message");
    /* body longer than announced */
    bb d = {.n = 0};
    wild_deliver(&d);
    b = d;
    /* announce one byte less: the header's body size is at a fixed place after the method frame */
    size_t method_frame = 7 + 4 + 1 + 31 + 8 + 1 + 1 + 10 + 1 + 20 + 1;
    b.d[method_frame + 7 + 4 + 7] = (unsigned char)(strlen(WILD_BODY) - 1);
    expect_fail(&b, NC_EPROTO, "a body frame on channel 1 past the body size announced (81 bytes)");
    /* a method while the content is incomplete */
    b.n = method_frame;
    at = method_begin(&b, 1, 60, 11);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "a method frame on channel 1 while a message's content is incomplete");
    /* heartbeat on channel 3 */
    b.n = 0;
    at = frame_begin(&b, 8, 3);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "a heartbeat frame on channel 3");
    /* the broker refusing the protocol version */
    b.n = 0;
    raw(&b, "AMQP\0\0\x09\x00", 8);
    expect_fail(&b, NC_EPROTO, "protocol header AMQP 0-0-9-0");
    /* a content header announcing more than the message cap */
    b = d;
    b.n = method_frame;
    at = frame_begin(&b, 2, 1);
    u16(&b, 60);
    u16(&b, 0);
    u64(&b, 1ULL << 40);
    u16(&b, 0);
    frame_end(&b, at);
    expect_fail(&b, NC_ETOOBIG, "a message of 1099511627776 bytes on channel 1 (limit 134217728)");
    /* content header of another class */
    b.n = method_frame;
    at = frame_begin(&b, 2, 1);
    u16(&b, 50);
    u16(&b, 0);
    u64(&b, 0);
    u16(&b, 0);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "class 50 and weight 0 (60 and 0 expected)");
}

/* set_frame_max after Tune: a frame over the new size is refused, one under it passes. */
static void test_frame_max(void **state) {
    (void)state;
    bb b = {.n = 0};
    size_t at = frame_begin(&b, 8, 0);
    raw(&b, memset((char[5000]){0}, 'x', 5000), 5000);
    frame_end(&b, at);
    nc_amqp_parser p;
    nc_amqp_parser_init(&p, NC_AMQP_ROLE_CLIENT);
    nc_amqp_parser_set_frame_max(&p, 4096);
    rec r = {.n = 0};
    assert_int_equal(nc_amqp_feed(&p, (const char *)b.d, b.n, on_ev, &r, why, sizeof why), NC_EPROTO);
    assert_non_null(strstr(why, "a heartbeat frame on channel 0 of 5008 bytes (frame_max is 4096)"));
    nc_amqp_parser_free(&p);
    nc_amqp_parser_init(&p, NC_AMQP_ROLE_CLIENT);
    nc_amqp_parser_set_frame_max(&p, 5008);
    assert_int_equal(nc_amqp_feed(&p, (const char *)b.d, b.n, on_ev, &r, why, sizeof why), 0);
    assert_int_equal(r.n, 1);
    nc_amqp_parser_free(&p);
    rec_free(&r);
}

/* The callback stopping: the rest stays buffered and comes with the next feed. */
static int stop_first(void *user, const nc_amqp_event *e) {
    (void)e;
    (*(int *)user)++;
    return 1;
}

static void test_stop(void **state) {
    (void)state;
    nc_buf out = NC_BUF_INIT;
    for (int i = 0; i < 3; i++) nc_amqp_write_heartbeat(&out);
    nc_amqp_parser p;
    nc_amqp_parser_init(&p, NC_AMQP_ROLE_CLIENT);
    int n = 0;
    assert_int_equal(nc_amqp_feed(&p, out.data, out.len, stop_first, &n, why, sizeof why), 0);
    assert_int_equal(n, 1);
    assert_int_equal(nc_amqp_pending_bytes(&p), 16);
    assert_int_equal(nc_amqp_feed(&p, NULL, 0, stop_first, &n, why, sizeof why), 0);
    assert_int_equal(nc_amqp_feed(&p, NULL, 0, stop_first, &n, why, sizeof why), 0);
    assert_int_equal(n, 3);
    assert_int_equal(nc_amqp_pending_bytes(&p), 0);
    nc_amqp_parser_free(&p);
    nc_buf_reset(&out);
    nc_amqp_write_protocol_header(&out);
    assert_int_equal(out.len, 8);
    assert_memory_equal(out.data, "AMQP\0\0\x09\x01", 8);
    nc_buf_free(&out);
    assert_string_equal(nc_amqp_method_name(NC_AMQP_BASIC_DELIVER), "basic.deliver");
    assert_string_equal(nc_amqp_method_name(0), "unknown");
}

/* Two channels' messages interleaved frame by frame; then the caps on messages in assembly. */
static void deliver_begin(bb *b, unsigned ch, uint64_t tag, size_t body_size) {
    size_t at = method_begin(b, ch, 60, 60);
    sstr(b, "ctag");
    u64(b, tag);
    u8(b, 0);
    sstr(b, "");
    sstr(b, "q");
    frame_end(b, at);
    at = frame_begin(b, 2, ch);
    u16(b, 60);
    u16(b, 0);
    u64(b, body_size);
    u16(b, 0);
    frame_end(b, at);
}

static void body_frame(bb *b, unsigned ch, const char *s, size_t n) {
    size_t at = frame_begin(b, 3, ch);
    raw(b, s, n);
    frame_end(b, at);
}

static void test_interleaved_channels(void **state) {
    (void)state;
    bb b = {.n = 0};
    deliver_begin(&b, 1, 11, 80);
    deliver_begin(&b, 2, 22, 80);
    char x[80], y[80];
    memset(x, 'x', 80);
    memset(y, 'y', 80);
    body_frame(&b, 2, y, 40);
    body_frame(&b, 1, x, 40);
    body_frame(&b, 1, x + 40, 40);
    body_frame(&b, 2, y + 40, 40);
    rec r = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b.d, b.n, 0, &r), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.ev[0].channel, 1);
    assert_int_equal(r.ev[0].delivery_tag, 11);
    assert_memory_equal(r.ev[0].body, x, 80);
    assert_int_equal(r.ev[1].channel, 2);
    assert_int_equal(r.ev[1].delivery_tag, 22);
    assert_memory_equal(r.ev[1].body, y, 80);
    rec_free(&r);
    /* max_message 100: each message fits, both in assembly together do not */
    nc_amqp_parser p;
    nc_amqp_parser_init(&p, NC_AMQP_ROLE_CLIENT);
    p.max_message = 100;
    bb c = b;
    c.n = b.n - 8 - 40; /* without the last body frame */
    assert_int_equal(nc_amqp_feed(&p, (const char *)c.d, c.n, on_ev, &r, why, sizeof why), NC_ETOOBIG);
    assert_non_null(strstr(why, "a body frame on channel 1: messages in assembly hold over 100 bytes"));
    nc_amqp_parser_free(&p);
    rec_free(&r);
    /* max_pending 1: a second channel's message while one is in assembly */
    nc_amqp_parser_init(&p, NC_AMQP_ROLE_CLIENT);
    p.max_pending = 1;
    assert_int_equal(nc_amqp_feed(&p, (const char *)b.d, b.n, on_ev, &r, why, sizeof why), NC_ETOOBIG);
    assert_non_null(strstr(why, "basic.deliver on channel 2: more than 1 messages in assembly at once"));
    nc_amqp_parser_free(&p);
    rec_free(&r);
}

/* The rest of what a broker sends, each built by hand and checked field by field. */
static void test_other_broker_methods(void **state) {
    (void)state;
    bb b = {.n = 0};
    size_t at = method_begin(&b, 0, 10, 20); /* connection.secure */
    lstr(&b, "challenge");
    frame_end(&b, at);
    at = method_begin(&b, 0, 10, 51); /* connection.close-ok */
    frame_end(&b, at);
    at = method_begin(&b, 0, 10, 61); /* connection.unblocked */
    frame_end(&b, at);
    at = method_begin(&b, 0, 10, 70); /* connection.update-secret */
    lstr(&b, "new-token");
    sstr(&b, "expiring");
    frame_end(&b, at);
    at = method_begin(&b, 4, 20, 11); /* channel.open-ok */
    lstr(&b, "");
    frame_end(&b, at);
    at = method_begin(&b, 4, 20, 20); /* channel.flow active */
    u8(&b, 1);
    frame_end(&b, at);
    at = method_begin(&b, 4, 20, 21); /* channel.flow-ok inactive */
    u8(&b, 0);
    frame_end(&b, at);
    at = method_begin(&b, 4, 20, 40); /* channel.close */
    u16(&b, 404);
    sstr(&b, "NOT_FOUND - no queue 'q'");
    u16(&b, 50);
    u16(&b, 10);
    frame_end(&b, at);
    at = method_begin(&b, 4, 20, 41); /* channel.close-ok */
    frame_end(&b, at);
    at = method_begin(&b, 4, 40, 31); /* exchange.bind-ok */
    frame_end(&b, at);
    at = method_begin(&b, 4, 50, 31); /* queue.purge-ok */
    u32(&b, 12);
    frame_end(&b, at);
    at = method_begin(&b, 4, 50, 41); /* queue.delete-ok */
    u32(&b, 3);
    frame_end(&b, at);
    at = method_begin(&b, 4, 60, 31); /* basic.cancel-ok */
    sstr(&b, "ctag-9");
    frame_end(&b, at);
    at = method_begin(&b, 4, 60, 72); /* basic.get-empty */
    sstr(&b, "");
    frame_end(&b, at);
    at = method_begin(&b, 4, 60, 111); /* basic.recover-ok */
    frame_end(&b, at);
    at = method_begin(&b, 4, 60, 50); /* basic.return (mandatory, unroutable) + header + body */
    u16(&b, 312);
    sstr(&b, "NO_ROUTE");
    sstr(&b, "ex");
    sstr(&b, "nowhere");
    frame_end(&b, at);
    at = frame_begin(&b, 2, 4);
    u16(&b, 60);
    u16(&b, 0);
    u64(&b, 2);
    u16(&b, 1u << 15 | 1u << 7 | 1u << 6); /* content-type, message-id, timestamp */
    sstr(&b, "text/plain");
    sstr(&b, "m-1");
    u64(&b, 1700000000);
    frame_end(&b, at);
    at = frame_begin(&b, 3, 4);
    raw(&b, "hi", 2);
    frame_end(&b, at);
    at = method_begin(&b, 4, 60, 71); /* basic.get-ok, redelivered, body of 0 bytes */
    u64(&b, 5);
    u8(&b, 1);
    sstr(&b, "");
    sstr(&b, "jobs");
    u32(&b, 7);
    frame_end(&b, at);
    at = frame_begin(&b, 2, 4);
    u16(&b, 60);
    u16(&b, 0);
    u64(&b, 0);
    u16(&b, 0);
    frame_end(&b, at);

    rec r = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b.d, b.n, 0, &r), 0);
    static const uint32_t want[] = {NC_AMQP_CONNECTION_SECURE,    NC_AMQP_CONNECTION_CLOSE_OK,
                                    NC_AMQP_CONNECTION_UNBLOCKED, NC_AMQP_CONNECTION_UPDATE_SECRET,
                                    NC_AMQP_CHANNEL_OPEN_OK,      NC_AMQP_CHANNEL_FLOW,
                                    NC_AMQP_CHANNEL_FLOW_OK,      NC_AMQP_CHANNEL_CLOSE,
                                    NC_AMQP_CHANNEL_CLOSE_OK,     NC_AMQP_EXCHANGE_BIND_OK,
                                    NC_AMQP_QUEUE_PURGE_OK,       NC_AMQP_QUEUE_DELETE_OK,
                                    NC_AMQP_BASIC_CANCEL_OK,      NC_AMQP_BASIC_GET_EMPTY,
                                    NC_AMQP_BASIC_RECOVER_OK,     NC_AMQP_BASIC_RETURN,
                                    NC_AMQP_BASIC_GET_OK};
    assert_int_equal(r.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < r.n; i++) {
        assert_int_equal(r.ev[i].id, want[i]);
        assert_string_equal(nc_amqp_method_name(r.ev[i].id) + 0, nc_amqp_method_name(want[i]));
    }
    assert_string_equal(r.ev[3].text, "expiring");
    assert_int_equal(r.ev[5].flags, NC_AMQP_F_ACTIVE);
    assert_int_equal(r.ev[6].flags, 0);
    assert_int_equal(r.ev[7].reply_code, 404);
    assert_string_equal(r.ev[7].text, "NOT_FOUND - no queue 'q'");
    assert_int_equal(r.ev[10].message_count, 12);
    assert_int_equal(r.ev[11].message_count, 3);
    assert_string_equal(r.ev[12].consumer_tag, "ctag-9");
    ev_copy *ret = &r.ev[15], *get = &r.ev[16];
    assert_int_equal(ret->kind, NC_AMQP_EV_MESSAGE);
    assert_int_equal(ret->reply_code, 312);
    assert_string_equal(ret->text, "NO_ROUTE");
    assert_string_equal(ret->exchange, "ex");
    assert_string_equal(ret->routing_key, "nowhere");
    assert_int_equal(ret->pflags, NC_AMQP_P_CONTENT_TYPE | NC_AMQP_P_MESSAGE_ID | NC_AMQP_P_TIMESTAMP);
    assert_string_equal(ret->content_type, "text/plain");
    assert_string_equal(ret->message_id, "m-1");
    assert_int_equal(ret->timestamp, 1700000000);
    assert_null(ret->headers);
    assert_string_equal(ret->body, "hi");
    assert_int_equal(get->kind, NC_AMQP_EV_MESSAGE);
    assert_int_equal(get->delivery_tag, 5);
    assert_int_equal(get->flags, NC_AMQP_F_REDELIVERED);
    assert_string_equal(get->routing_key, "jobs");
    assert_int_equal(get->message_count, 7);
    assert_int_equal(get->body_n, 0);
    rec r1 = {.n = 0};
    assert_int_equal(feed(NC_AMQP_ROLE_CLIENT, b.d, b.n, 1, &r1), 0);
    same_events(&r, &r1);
    rec_free(&r);
    rec_free(&r1);

    /* property flags using the bits basic does not have; a publish whose header is over frame_max */
    b.n = 0;
    at = method_begin(&b, 4, 60, 71);
    u64(&b, 5);
    u8(&b, 0);
    sstr(&b, "");
    sstr(&b, "jobs");
    u32(&b, 0);
    frame_end(&b, at);
    at = frame_begin(&b, 2, 4);
    u16(&b, 60);
    u16(&b, 0);
    u64(&b, 0);
    u16(&b, 1);
    frame_end(&b, at);
    expect_fail(&b, NC_EPROTO, "property flags 0x0001 (bits 0-1 unused by basic)");
    char big[255];
    memset(big, 'h', sizeof big);
    json_t *h = json_object();
    for (int i = 0; i < 20; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        json_object_set_new(h, k, json_stringn(big, sizeof big));
    }
    nc_amqp_method m = {.id = NC_AMQP_BASIC_PUBLISH, .channel = 1};
    nc_amqp_props pr = {.flags = NC_AMQP_P_HEADERS, .headers = h};
    nc_buf out = NC_BUF_INIT;
    assert_int_equal(nc_amqp_write_publish(&out, &m, &pr, "x", 1, 4096), NC_EINVAL);
    assert_int_equal(out.len, 0);
    assert_int_equal(nc_amqp_write_publish(&out, &m, &pr, "x", 1, 8192), 0);
    m.channel = 0;
    nc_buf_reset(&out);
    assert_int_equal(nc_amqp_write_publish(&out, &m, &pr, "x", 1, 8192), NC_EINVAL);
    nc_buf_free(&out);
    json_decref(h);
    /* frame_max 0 is "no limit"; under 4096 is raised to 4096 */
    nc_amqp_parser p;
    nc_amqp_parser_init(&p, NC_AMQP_ROLE_CLIENT);
    nc_amqp_parser_set_frame_max(&p, 0);
    assert_int_equal(p.frame_max, UINT32_MAX);
    nc_amqp_parser_set_frame_max(&p, 100);
    assert_int_equal(p.frame_max, 4096);
    nc_amqp_parser_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_deliver),
        cmocka_unit_test(test_vector_s2c_methods),
        cmocka_unit_test(test_connection_start_tune_close),
        cmocka_unit_test(test_vector_c2s_bytes),
        cmocka_unit_test(test_round_trip_client_methods),
        cmocka_unit_test(test_start_ok),
        cmocka_unit_test(test_publish_split),
        cmocka_unit_test(test_field_tables),
        cmocka_unit_test(test_table_number_types),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_frame_max),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_interleaved_channels),
        cmocka_unit_test(test_other_broker_methods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
