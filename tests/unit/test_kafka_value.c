/* The Kafka value codec (codec/kafka_value.c) against the records NestJS 12.1.1 asked KafkaJS to write
 * (tests/vectors/kafka/records-fake-kafkajs.txt): every request and reply record is rebuilt from the data
 * and compared field by field (value, key, headers in order, partition), and every value the Nest client
 * reported is what decoding the reply records gives. Plus the encoding and decoding rules one by one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_write.h"
#include "codec/kafka_value.h"

#ifndef NESTC_VECTORS_DIR
#error "NESTC_VECTORS_DIR must point at tests/vectors"
#endif

/* ---- helpers ---------------------------------------------------------------------------------------- */

static char *js_text(const json_t *v) { /* JSON.stringify text, caller frees */
    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_json_write(&b, v), 0);
    return nc_buf_steal(&b, NULL);
}

static void assert_json_eq(const json_t *got, const json_t *want) {
    char *g = js_text(got), *w = js_text(want);
    if (strcmp(g, w)) fail_msg("got %s, want %s", g, w);
    free(g);
    free(w);
}

static void assert_bytes(const nc_kafka_bytes *b, const char *want, size_t n) {
    if (!want) {
        if (b->p) fail_msg("want null, got '%.*s'", (int)b->n, b->p);
        return;
    }
    assert_non_null(b->p);
    if (b->n != n || memcmp(b->p, want, n)) fail_msg("got '%.*s' want '%.*s'", (int)b->n, b->p, (int)n, want);
}

static json_t *J(const char *text) {
    json_t *v = NULL;
    assert_int_equal(nc_json_parse(text, strlen(text), &v, NULL, 0), 0);
    return v;
}

static void enc(const char *json, const char *want) {
    json_t *v = J(json);
    nc_kafka_bytes b;
    assert_int_equal(nc_kafka_encode_value(v, &b), 0);
    assert_bytes(&b, want, want ? strlen(want) : 0);
    free(b.p);
    json_decref(v);
}

static void dec(const char *p, size_t n, const char *want_json) {
    json_t *v = nc_kafka_decode(p, n);
    assert_non_null(v);
    char *g = js_text(v);
    if (strcmp(g, want_json)) fail_msg("decode '%.*s': got %s, want %s", (int)n, p ? p : "", g, want_json);
    free(g);
    json_decref(v);
}

/* A record value or header value as the vector file shows it: a JSON string is its UTF-8 bytes,
 * "<Buffer hex>" a Buffer, null null. Returns malloc'd bytes (NULL for null). */
static char *vec_bytes(const json_t *v, size_t *n) {
    *n = 0;
    if (!v || json_is_null(v)) return NULL;
    assert_true(json_is_string(v));
    const char *s = json_string_value(v);
    if (strncmp(s, "<Buffer", 7) == 0) {
        char *out = malloc(strlen(s) / 2 + 1);
        const char *h = s + 7;
        while (*h == ' ') h++;
        while (h[0] && h[0] != '>') {
            unsigned x;
            assert_int_equal(sscanf(h, "%2x", &x), 1);
            out[(*n)++] = (char)x;
            h += 2;
        }
        return out;
    }
    *n = json_string_length(v);
    char *out = malloc(*n + 1);
    memcpy(out, s, *n + 1);
    return out;
}

/* Compares a built message with the recorded one ({key?, value, headers, partition?}). */
static void assert_record(const nc_kafka_msg *m, const json_t *rec) {
    size_t n;
    char *want = vec_bytes(json_object_get(rec, "value"), &n);
    assert_bytes(&m->value, want, n);
    free(want);
    want = vec_bytes(json_object_get(rec, "key"), &n);
    assert_bytes(&m->key, want, n);
    free(want);
    const json_t *hs = json_object_get(rec, "headers");
    assert_int_equal(m->nheaders, json_object_size(hs));
    size_t i = 0;
    const char *name;
    json_t *hv;
    json_object_foreach((json_t *)hs, name, hv) {
        assert_string_equal(m->headers[i].name, name);
        want = vec_bytes(hv, &n);
        assert_bytes(&m->headers[i].value, want, n);
        free(want);
        i++;
    }
}

/* ---- the recorded session ---------------------------------------------------------------------------- */

typedef struct rec_section {
    json_t *request;  /* the client's record (first message) */
    json_t *replies;  /* array of the server's records (first message each) */
    json_t *observed; /* the "->" line */
} rec_section;

static void check_section(const char *name, rec_section *s) {
    if (!s->observed || !s->request) return;
    const char *kind = json_string_value(json_array_get(s->observed, 1));
    json_t *req_headers = json_object_get(s->request, "headers");
    const char *id = json_string_value(json_object_get(req_headers, NC_KAFKA_H_CORRELATION));
    assert_non_null(id);

    /* the request: decode what the server handler sees, encode it again: the same record */
    size_t n;
    char *val = vec_bytes(json_object_get(s->request, "value"), &n);
    json_t *data = nc_kafka_decode(val, n);
    free(val);
    json_t *sent = data;
    if (json_object_get(s->request, "key")) { /* the keyed echo: data was a ready-made message */
        sent = json_pack("{s:O,s:O,s:{s:s}}", "key", json_object_get(s->request, "key"), "value", data,
                         "headers", "x-trace", "t-1");
    }
    nc_kafka_msg m;
    assert_int_equal(nc_kafka_msg_from_json(sent, &m), 0);
    assert_int_equal(nc_kafka_add_request_headers(
                         &m, id, json_string_value(json_object_get(req_headers, NC_KAFKA_H_REPLY_TOPIC)), 0),
                     0);
    assert_record(&m, s->request);
    nc_kafka_msg_free(&m);
    if (sent != data) json_decref(sent);
    json_decref(data);

    /* the replies: what the client observed is their decoded values; rebuilding them gives the records */
    json_t *values = json_array_get(s->observed, 2);
    size_t nr = json_array_size(s->replies);
    if (strcmp(kind, "VALUES") == 0) {
        assert_int_equal(nr, json_array_size(values));
    } else if (json_is_string(values)) { /* the unknown topic: no reply at all, the Nest client timed out */
        assert_int_equal(nr, 0);
    } else {
        assert_int_equal(nr, 1);
    }
    for (size_t i = 0; i < nr; i++) {
        json_t *r = json_array_get(s->replies, i);
        json_t *hs = json_object_get(r, "headers");
        size_t cn;
        char *cid = vec_bytes(json_object_get(hs, NC_KAFKA_H_CORRELATION), &cn);
        assert_int_equal(cn, strlen(id));
        assert_memory_equal(cid, id, cn);
        free(cid);
        assert_int_equal(json_integer_value(json_object_get(r, "partition")),
                         nc_kafka_parse_partition("0", 1));
        val = vec_bytes(json_object_get(r, "value"), &n);
        json_t *got = nc_kafka_decode(val, n);
        free(val);
        int disposed = json_object_get(hs, NC_KAFKA_H_DISPOSED) != NULL;
        assert_int_equal(disposed, i + 1 == nr);
        json_t *err = NULL;
        if (strcmp(kind, "VALUES") == 0) {
            assert_json_eq(got, json_array_get(values, i));
        } else {
            size_t en;
            char *e = vec_bytes(json_object_get(hs, NC_KAFKA_H_ERR), &en);
            err = nc_kafka_decode(e, en);
            free(e);
            assert_json_eq(err, values);
        }
        /* rebuild: a null reply value is a terminal-only message (undefined result) */
        assert_int_equal(
            nc_kafka_reply_msg(json_is_null(got) ? NULL : got, err, disposed, id, strlen(id), &m), 0);
        assert_record(&m, r);
        nc_kafka_msg_free(&m);
        json_decref(err);
        json_decref(got);
    }
    (void)name;
}

static void test_recorded_session(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/kafka/records-fake-kafkajs.txt", NESTC_VECTORS_DIR);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s", path);
    char line[8192], name[128] = "";
    rec_section s = {0};
    int sections = 0, events = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "===== ", 6) == 0) {
            check_section(name, &s);
            sections += s.observed != NULL;
            json_decref(s.request);
            json_decref(s.replies);
            json_decref(s.observed);
            memset(&s, 0, sizeof s);
            snprintf(name, sizeof name, "%.100s", line + 6);
            s.replies = json_array();
            continue;
        }
        if (strncmp(line, "  -> ", 5) == 0) {
            s.observed = json_loads(line + 5, 0, NULL);
            assert_non_null(s.observed);
            continue;
        }
        if (line[0] != '{') continue;
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        const char *who = json_string_value(json_object_get(o, "who"));
        const char *op = json_string_value(json_object_get(o, "op"));
        json_t *rec = json_object_get(o, "record");
        json_t *msg = rec ? json_array_get(json_object_get(rec, "messages"), 0) : NULL;
        if (msg && strcmp(op, "producer.send") == 0) {
            if (strcmp(who, "client") == 0 && !s.request)
                s.request = json_incref(msg);
            else if (strcmp(who, "server") == 0)
                json_array_append(s.replies, msg);
            if (strcmp(who, "client") == 0 && json_object_size(json_object_get(msg, "headers")) == 0 &&
                strcmp(json_string_value(json_object_get(rec, "topic")), "user.created") == 0) {
                /* the event: encoding {name:'Ann'} gives the record, decoding it what the handler saw */
                json_t *data = J("{\"name\":\"Ann\"}");
                nc_kafka_msg m;
                assert_int_equal(nc_kafka_msg_from_json(data, &m), 0);
                assert_record(&m, msg);
                json_t *got = nc_kafka_decode(m.value.p, m.value.n);
                nc_kafka_msg_free(&m);
                assert_json_eq(got, data);
                json_decref(got);
                json_decref(data);
                events++;
            }
        }
        json_decref(o);
    }
    check_section(name, &s);
    json_decref(s.request);
    json_decref(s.replies);
    json_decref(s.observed);
    fclose(fp);
    assert_true(sections >= 10); /* sum, sumObj, stream, streamLate, fail, failObj, 3 echos, nothing */
    assert_int_equal(events, 1);
}

/* ---- the rules one by one ----------------------------------------------------------------------------- */

static void test_encode_rules(void **state) {
    (void)state;
    enc("\"h\\u00e9llo\"", "h\xc3\xa9llo"); /* strings raw, not quoted */
    enc("\"\"", "");
    enc("{\"a\":[1,\"x\"]}", "{\"a\":[1,\"x\"]}");
    enc("[1,2,3]", "[1,2,3]");
    enc("5", "5");
    enc("-0.5", "-0.5");
    enc("1e21", "1e+21");
    enc("true", "true");
    enc("false", "false");
    enc("null", NULL);
    nc_kafka_bytes b;
    assert_int_equal(nc_kafka_encode_value(NULL, &b), 0); /* undefined */
    assert_null(b.p);
}

/* Strings go out as Buffer.from(string) writes them: a lone surrogate (held as WTF-8) as U+FFFD, two
 * halves held one after the other as the one character; inside JSON text the halves stay \udxxx escapes,
 * as JSON.stringify writes them. Keys and header values are encoded the same way. */
static void test_encode_surrogates(void **state) {
    (void)state;
    enc("\"ab\\ud83d\"", "ab\xef\xbf\xbd");
    enc("\"\\ude00x\"", "\xef\xbf\xbdx");
    enc("\"\\ude00\\ud83d\"", "\xef\xbf\xbd\xef\xbf\xbd");
    enc("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80");
    enc("[\"ab\\ud83d\",{\"\\ud800\":\"\\udfff\"}]", "[\"ab\\ud83d\",{\"\\ud800\":\"\\udfff\"}]");
    json_t *pair = json_stringn_nocheck("a\xed\xa0\xbd\xed\xb8\x80\xed\xa0\xbd", 10); /* halves apart */
    nc_kafka_bytes b;
    assert_int_equal(nc_kafka_encode_value(pair, &b), 0);
    assert_bytes(&b, "a\xf0\x9f\x98\x80\xef\xbf\xbd", 8);
    free(b.p);
    json_decref(pair);
    nc_kafka_msg m;
    json_t *rm = J("{\"key\":\"k\\udfff\",\"value\":\"v\",\"headers\":{\"h\":\"\\ud800\"}}");
    assert_int_equal(nc_kafka_msg_from_json(rm, &m), 0);
    assert_bytes(&m.key, "k\xef\xbf\xbd", 4);
    assert_bytes(&m.headers[0].value, "\xef\xbf\xbd", 3);
    nc_kafka_msg_free(&m);
    json_decref(rm);
}

static void test_ready_made(void **state) {
    (void)state;
    nc_kafka_msg m;
    /* a 'value' member alone makes it a message; a null key is no key */
    json_t *v = J("{\"value\":7,\"key\":null,\"partition\":2,\"timestamp\":\"1700000000000\"}");
    assert_int_equal(nc_kafka_msg_from_json(v, &m), 0);
    assert_bytes(&m.value, "7", 1);
    assert_null(m.key.p);
    assert_true(m.has_partition);
    assert_int_equal(m.partition, 2);
    assert_true(m.has_timestamp);
    assert_int_equal(m.timestamp, 1700000000000LL);
    nc_kafka_msg_free(&m);
    json_decref(v);
    /* a 'key' alone: the value is undefined -> null; object keys are JSON; header values encoded */
    v = J("{\"key\":{\"id\":1},\"headers\":{\"n\":5,\"s\":\"x\",\"z\":null}}");
    assert_int_equal(nc_kafka_msg_from_json(v, &m), 0);
    assert_null(m.value.p);
    assert_bytes(&m.key, "{\"id\":1}", 8);
    assert_int_equal(m.nheaders, 2);
    assert_string_equal(m.headers[0].name, "n");
    assert_bytes(&m.headers[0].value, "5", 1);
    assert_non_null(nc_kafka_msg_header(&m, "s"));
    assert_null(nc_kafka_msg_header(&m, "z"));
    nc_kafka_msg_free(&m);
    json_decref(v);
    /* neither: the whole object is the value */
    v = J("{\"keys\":1}");
    assert_int_equal(nc_kafka_msg_from_json(v, &m), 0);
    assert_bytes(&m.value, "{\"keys\":1}", 10);
    assert_int_equal(m.nheaders, 0);
    nc_kafka_msg_free(&m);
    json_decref(v);
}

static void test_reply_headers(void **state) {
    (void)state;
    nc_kafka_msg m;
    json_t *err = json_string("boom");
    assert_int_equal(nc_kafka_reply_msg(NULL, err, 1, "abc", 3, &m), 0);
    assert_null(m.value.p);
    assert_int_equal(m.nheaders, 3);
    assert_string_equal(m.headers[0].name, NC_KAFKA_H_CORRELATION);
    assert_string_equal(m.headers[1].name, NC_KAFKA_H_ERR);
    assert_bytes(&m.headers[1].value, "boom", 4);
    assert_string_equal(m.headers[2].name, NC_KAFKA_H_DISPOSED);
    assert_bytes(&m.headers[2].value, "\0", 1);
    nc_kafka_msg_free(&m);
    json_decref(err);
    json_t *r = json_integer(6);
    assert_int_equal(nc_kafka_reply_msg(r, NULL, 0, "abc", 3, &m), 0);
    assert_bytes(&m.value, "6", 1);
    assert_int_equal(m.nheaders, 1);
    nc_kafka_msg_free(&m);
    json_decref(r);
}

static void test_decode_rules(void **state) {
    (void)state;
    dec(NULL, 0, "null");
    dec("", 0, "\"\"");
    dec("5", 1, "\"5\""); /* scalars stay strings */
    dec("true", 4, "\"true\"");
    dec("null", 4, "\"null\"");
    dec("\"q\"", 3, "\"\\\"q\\\"\"");
    dec("{\"a\":1}", 7, "{\"a\":1}");
    dec("[1,2]", 5, "[1,2]");
    dec("{oops", 5, "\"{oops\"");               /* not JSON: kept as text */
    dec(" {\"a\":1}", 8, "\" {\\\"a\\\":1}\""); /* only a leading brace counts */
    dec("\x00\x01\xff", 3, "{\"type\":\"Buffer\",\"data\":[0,1,255]}");
    dec("a\xffz", 3, "\"a\xef\xbf\xbdz\""); /* ill-formed UTF-8 -> U+FFFD */
    dec("[\"\xff\"]", 5, "[\"\xef\xbf\xbd\"]");
    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_kafka_decode_text("7", 1, &b), 0);
    assert_string_equal(nc_buf_cstr(&b), "\"7\"");
    nc_buf_free(&b);
}

static void test_partition(void **state) {
    (void)state;
    assert_int_equal(nc_kafka_parse_partition("0", 1), 0);
    assert_int_equal(nc_kafka_parse_partition(" 12 ", 4), 12);
    assert_int_equal(nc_kafka_parse_partition("2147483647", 10), INT32_MAX);
    assert_int_equal(nc_kafka_parse_partition("2147483648", 10), -1);
    assert_int_equal(nc_kafka_parse_partition("-1", 2), -1);
    assert_int_equal(nc_kafka_parse_partition("1x", 2), -1);
    assert_int_equal(nc_kafka_parse_partition("", 0), -1);
    assert_int_equal(nc_kafka_parse_partition(NULL, 0), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_session),  cmocka_unit_test(test_encode_rules),
        cmocka_unit_test(test_ready_made),        cmocka_unit_test(test_reply_headers),
        cmocka_unit_test(test_decode_rules),      cmocka_unit_test(test_partition),
        cmocka_unit_test(test_encode_surrogates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
