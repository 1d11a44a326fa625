/* libFuzzer: the AMQP 0-9-1 codec (codec/amqp_proto.c, codec/amqp_table.c). The first byte picks the
 * parser's role (a client reading a broker, or the server role reading a client), a frame_max, a table
 * depth and a message cap; the rest is fed whole and again in pieces whose sizes come from the input:
 * both runs must report the same events and the same outcome. Every method reported is written again by
 * the writer and read back the same (tables included); every message of the server role (basic.publish)
 * is written again by nc_amqp_write_publish, body split at a small frame_max, and read back the same. The
 * input is also decoded as a bare field table: one accepted is written and reads back equal (a whole real
 * as the integer amqplib would write for it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/amqp_proto.h"
#include "nestc/error.h"

typedef struct tally {
    uint64_t hash;
    size_t n;
    int role, depth;
} tally;

static void mix(tally *t, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) t->hash = (t->hash ^ b[i]) * 1099511628211ULL;
}

static void mix_span(tally *t, nc_amqp_span s) {
    mix(t, &s.n, sizeof s.n);
    if (s.n) mix(t, s.p, s.n);
}

/* A copy with every whole real made an integer: the table writer sends a number as amqplib sends a JS
 * number (3.0 is the integer 3), so a table reads back equal up to that. */
static json_t *whole(const json_t *j) {
    if (json_is_real(j)) {
        double d = json_real_value(j);
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (double)(json_int_t)d == d)
            return json_integer((json_int_t)d);
    }
    if (json_is_object(j)) {
        json_t *o = json_object(), *v;
        const char *k;
        json_object_foreach((json_t *)j, k, v) json_object_set_new(o, k, whole(v));
        return o;
    }
    if (json_is_array(j)) {
        json_t *a = json_array(), *v;
        size_t i;
        json_array_foreach((json_t *)j, i, v) json_array_append_new(a, whole(v));
        return a;
    }
    return json_deep_copy(j);
}

static void mix_json(tally *t, const json_t *j) {
    if (!j) return mix(t, "-", 1);
    json_t *w = whole(j);
    char *s = json_dumps(w, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(w);
    if (!s) abort();
    mix(t, s, strlen(s));
    free(s);
}

/* Everything an event carries, folded into the hash. */
static void mix_event(tally *t, const nc_amqp_event *e) {
    const nc_amqp_method *m = &e->m;
    mix(t, &e->kind, sizeof e->kind);
    mix(t, &e->channel, sizeof e->channel);
    uint64_t nums[] = {m->id,
                       m->flags,
                       m->version_major,
                       m->version_minor,
                       m->reply_code,
                       m->failing_class,
                       m->failing_method,
                       m->channel_max,
                       m->heartbeat,
                       m->frame_max,
                       m->prefetch_size,
                       m->prefetch_count,
                       m->message_count,
                       m->consumer_count,
                       m->delivery_tag};
    mix(t, nums, sizeof nums);
    const nc_amqp_span sp[] = {m->text,       m->queue,   m->exchange, m->routing_key, m->consumer_tag,
                               m->source,     m->type,    m->vhost,    m->mechanism,   m->locale,
                               m->mechanisms, m->locales, m->blob};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) mix_span(t, sp[i]);
    mix_json(t, m->table);
    if (e->kind != NC_AMQP_EV_MESSAGE) return;
    const nc_amqp_props *p = &e->props;
    uint64_t pn[] = {p->flags, p->delivery_mode, p->priority, p->timestamp};
    mix(t, pn, sizeof pn);
    const nc_amqp_span ps[] = {p->content_type, p->content_encoding, p->correlation_id, p->reply_to,
                               p->expiration,   p->message_id,       p->type,           p->user_id,
                               p->app_id,       p->cluster_id};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) mix_span(t, ps[i]);
    mix_json(t, p->headers);
    mix_span(t, e->body);
}

static int count(void *user, const nc_amqp_event *e) {
    tally *t = user;
    t->n++;
    mix_event(t, e);
    return 0;
}

typedef struct again {
    uint64_t want;
    size_t n;
    int depth;
} again;

static int reread(void *user, const nc_amqp_event *e) {
    again *a = user;
    tally t = {14695981039346656037ULL, 0, 0, 0};
    mix_event(&t, e);
    if (t.hash != a->want) abort();
    a->n++;
    return 0;
}

/* Writes the event again and reads it back with a parser of the same role: the same event. */
static int check_rewrite(void *user, const nc_amqp_event *e) {
    tally *me = user;
    if (e->kind == NC_AMQP_EV_HEARTBEAT) return 0;
    nc_buf out = NC_BUF_INIT;
    int rc;
    if (e->kind == NC_AMQP_EV_MESSAGE) {
        if (e->m.id != NC_AMQP_BASIC_PUBLISH) return 0; /* the writer sends only publish with content */
        rc = nc_amqp_write_publish(&out, &e->m, &e->props, e->body.p, e->body.n, 4096);
        if (rc == NC_EINVAL) /* a header over 4096 bytes once its table is written with RabbitMQ's types */
            rc = nc_amqp_write_publish(&out, &e->m, &e->props, e->body.p, e->body.n, UINT32_MAX);
    } else {
        rc = nc_amqp_write_method(&out, &e->m);
    }
    if (rc) abort(); /* what was read within the caps can be written */
    tally t = {14695981039346656037ULL, 0, 0, 0};
    mix_event(&t, e);
    again a = {t.hash, 0, me->depth};
    nc_amqp_parser p;
    nc_amqp_parser_init(&p, me->role);
    p.max_depth = me->depth;
    char why[256];
    p.frame_max = UINT32_MAX;
    if (nc_amqp_feed(&p, out.data, out.len, reread, &a, why, sizeof why) || a.n != 1 ||
        nc_amqp_pending_bytes(&p))
        abort();
    nc_amqp_parser_free(&p);
    nc_buf_free(&out);
    return 0;
}

static void setup(nc_amqp_parser *p, uint8_t c) {
    nc_amqp_parser_init(p, c & 1);
    static const uint32_t fm[4] = {4096, 8192, 131072, 0};
    nc_amqp_parser_set_frame_max(p, fm[(c >> 1) & 3]);
    p->max_depth = (c >> 3) & 7;
    p->max_message = (c & 0x40) ? 64 : 1u << 20;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    uint8_t c = data[0];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    char why1[256], why2[256];

    nc_amqp_parser p;
    setup(&p, c);
    tally a = {14695981039346656037ULL, 0, c & 1, p.max_depth};
    int r1 = nc_amqp_feed(&p, in, n, count, &a, why1, sizeof why1);
    nc_amqp_parser_free(&p);

    /* in pieces: sizes taken from the input's bytes, 1..16 */
    setup(&p, c);
    tally b = {14695981039346656037ULL, 0, c & 1, p.max_depth};
    int r2 = 0;
    for (size_t off = 0, k = 0; off < n && !r2; k++) {
        size_t step = 1 + (size_t)(data[1 + k % n] & 15);
        if (step > n - off) step = n - off;
        r2 = nc_amqp_feed(&p, in + off, step, count, &b, why2, sizeof why2);
        off += step;
    }
    nc_amqp_parser_free(&p);
    if (r1 != r2 || a.n != b.n || a.hash != b.hash) abort();
    if (r1 && (!why1[0] || strcmp(why1, why2))) abort();

    /* each event written again and read back */
    setup(&p, c);
    tally w = {0, 0, c & 1, p.max_depth};
    nc_amqp_feed(&p, in, n, check_rewrite, &w, why1, sizeof why1);
    nc_amqp_parser_free(&p);

    /* the input as a bare field table */
    json_t *j = NULL;
    if (nc_amqp_table_decode(in, n, 8, &j, why1, sizeof why1) == 0) {
        nc_buf out = NC_BUF_INIT;
        if (nc_amqp_table_write(&out, j, 8)) abort();
        json_t *k = NULL;
        if (nc_amqp_table_decode(out.data + 4, out.len - 4, 8, &k, why1, sizeof why1)) abort();
        json_t *wj = whole(j);
        if (!json_equal(wj, k)) abort();
        json_decref(wj);
        json_decref(k);
        nc_buf_free(&out);
        json_decref(j);
    }
    return 0;
}
