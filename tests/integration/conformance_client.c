/* The conformance cases (DESIGN.md §4) driven by the nestc C library, against any conformance server:
 * `nestc conformance` (integration) or the NestJS conformance service (interop).
 * The server's URL comes from $URL (set by tests/interop/with-server.sh); $NESTC_CA names the CA file
 * for tls:// and rediss:// URLs, and turns TLS on for nats:// (NATS has one scheme for both). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "nestc/nestc.h"

static const char *url;
static nc_tls_opts tls;
static nc_client *cli;

static int on_nats(void) {
    return strncmp(url, "nats:", 5) == 0;
}

/* mqtt:// and mqtts:// */
static int on_mqtt(void) {
    return strncmp(url, "mqtt:", 5) == 0 || strncmp(url, "mqtts:", 6) == 0;
}

/* MQTT 5 (`?protocolVersion=5`): user properties are the message's headers */
static int on_mqtt5(void) {
    return on_mqtt() && strstr(url, "protocolVersion=5") != NULL;
}

/* Kafka (spec kafka.md): string routes only (an object pattern is not a topic name NestJS's Kafka server
 * subscribes to); numbers and booleans travel as their string form, so a NestJS server's scalar reply
 * arrives as a string; a stream may end with a terminal-only record, which the client delivers as null. */
static int on_kafka(void) {
    return strncmp(url, "kafka:", 6) == 0;
}

/* The object pattern {"cmd":name}, or on Kafka the string route name (buf holds it). */
static const char *obj_or_str(char *buf, size_t n, const char *name) {
    if (on_kafka())
        snprintf(buf, n, "%s", name);
    else
        snprintf(buf, n, "{\"cmd\":\"%s\"}", name);
    return buf;
}

/* The values a call gets for the expected values `want` (an array): on Kafka each number or boolean as
 * its JavaScript string form (what the NestJS server writes, spec kafka.md §4). New reference. */
static json_t *wire_values(json_t *want) {
    if (!on_kafka()) return json_incref(want);
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(want, i, v) {
        if (json_is_number(v) || json_is_boolean(v)) {
            char *t = json_dumps(v, JSON_ENCODE_ANY);
            json_array_append_new(out, json_string(t));
            free(t);
        } else {
            json_array_append(out, v);
        }
    }
    return out;
}

/* ---- a synchronous call on top of the callback API --------------------------------------------- */

typedef struct result {
    json_t *values; /* array */
    int err;
    json_t *error;
    int done;
} result;

static void on_value(void *u, json_t *v) {
    json_array_append((json_t *)((result *)u)->values, v);
}

static void on_done(void *u, int err, json_t *error) {
    result *r = u;
    r->err = err;
    r->error = error ? json_incref(error) : NULL;
    r->done = 1;
}

static void result_free(result *r) {
    json_decref(r->values);
    json_decref(r->error);
}

static result call_opts(const char *pattern, json_t *data, int timeout_ms) {
    result r = {json_array(), 0, NULL, 0};
    nc_call_opts o = {.timeout_ms = timeout_ms};
    int rc = nc_client_send(cli, pattern, data, &o, on_value, on_done, &r);
    json_decref(data);
    assert_int_equal(rc, 0);
    while (!r.done) uv_run(nc_client_loop(cli), UV_RUN_ONCE);
    return r;
}

static result call(const char *pattern, json_t *data) {
    return call_opts(pattern, data, 0);
}

static json_t *J(const char *text) {
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (!v) fail_msg("bad JSON in test: %s", text);
    return v;
}

/* Asserts the call produced exactly `expected` (JSON array text) and completed. */
static void expect_values(const char *pattern, json_t *data, const char *expected) {
    result r = call(pattern, data);
    if (r.err)
        fail_msg("%s failed: %s %s", pattern, nc_err_name(r.err), json_dumps(r.error, JSON_ENCODE_ANY));
    json_t *expected_v = J(expected);
    json_t *want = wire_values(expected_v);
    json_decref(expected_v);
    /* Kafka: NestJS's server may end a stream with a terminal-only record one loop turn after its last
     * value (spec kafka.md §8), which arrives as a trailing null */
    if (on_kafka() && json_array_size(r.values) == json_array_size(want) + 1 &&
        json_is_null(json_array_get(r.values, json_array_size(want))))
        json_array_remove(r.values, json_array_size(want));
    if (!json_equal(r.values, want)) {
        char *got = json_dumps(r.values, JSON_ENCODE_ANY);
        fail_msg("%s: got %.200s, want %.200s", pattern, got, expected);
    }
    json_decref(want);
    result_free(&r);
}

/* Asserts the call failed with `code` and the error value `expected_err` (JSON text). */
static void expect_error_code(const char *pattern, json_t *data, int code, const char *expected_err) {
    result r = call(pattern, data);
    assert_int_equal(r.err, code);
    json_t *want = J(expected_err);
    if (!json_equal(r.error, want)) fail_msg("%s: error %s", pattern, json_dumps(r.error, JSON_ENCODE_ANY));
    json_decref(want);
    result_free(&r);
}

static void expect_error(const char *pattern, json_t *data, const char *expected_err) {
    expect_error_code(pattern, data, NC_EREMOTE, expected_err);
}

/* ---- cases -------------------------------------------------------------------------------------- */

static const char *forms[][2] = {{"{\"cmd\":\"%s\"}", "obj"}, {"%s", "str"}};

static void pattern_of(char *buf, size_t n, int form, const char *name) {
    snprintf(buf, n, forms[form][0], name);
}

static void test_sum(void **st) {
    char p[64];
    for (int f = on_kafka(); f < 2; f++) {
        pattern_of(p, sizeof p, f, "sum");
        expect_values(p, J("[1,2,3]"), "[6]");
        pattern_of(p, sizeof p, f, "asyncSum");
        expect_values(p, J("[4,5]"), "[9]");
        pattern_of(p, sizeof p, f, "streamSum");
        expect_values(p, J("[1,2,3,4]"), "[10]");
    }
    expect_values(obj_or_str(p, sizeof p, "sum"), J("[0.5,0.25]"), "[0.75]");
}

static void test_streaming(void **st) {
    char p[64];
    for (int f = on_kafka(); f < 2; f++) {
        pattern_of(p, sizeof p, f, "streaming");
        expect_values(p, J("[1,\"two\",{\"three\":3}]"), "[1,\"two\",{\"three\":3}]");
        expect_values(p, J("[]"), "[]");
    }
}

static void test_exception(void **st) {
    char p[64];
    for (int f = on_kafka(); f < 2; f++) {
        pattern_of(p, sizeof p, f, "exception");
        expect_error(p, J("\"bad\""), "{\"status\":\"error\",\"message\":\"bad\"}");
        expect_error(p, J("{\"code\":42,\"message\":\"x\",\"extra\":[1]}"),
                     "{\"code\":42,\"message\":\"x\",\"extra\":[1]}");
    }
}

static void test_echo_unicode(void **st) {
    char p[64];
    expect_values("echo", J("\"h\\u00e9llo w\\u00f6rld \\u2713 \\u65e5\\u672c\\u8a9e\""),
                  "[\"h\\u00e9llo w\\u00f6rld \\u2713 \\u65e5\\u672c\\u8a9e\"]");
    expect_values(obj_or_str(p, sizeof p, "echo"), J("\"\\ud83d\\ude00\\ud83c\\udf89\""),
                  "[\"\\ud83d\\ude00\\ud83c\\udf89\"]");
    expect_values("echo", J("{\"nested\":{\"a\":[1,2,{\"b\":null}],\"t\":true}}"),
                  "[{\"nested\":{\"a\":[1,2,{\"b\":null}],\"t\":true}}]");
}

static void test_echo_large(void **st) {
    /* a 1.5 MB string with multi-byte characters, and a large array */
    size_t n = 500000;
    char *s = malloc(n * 3 + 1);
    for (size_t i = 0; i < n; i++) memcpy(s + i * 3, "\xc3\xa9x", 3);
    s[n * 3] = '\0';
    json_t *str = json_string(s);
    result r = call("echo", json_incref(str));
    assert_int_equal(r.err, 0);
    assert_int_equal(json_array_size(r.values), 1);
    assert_true(json_equal(json_array_get(r.values, 0), str));
    result_free(&r);
    json_decref(str);
    free(s);
    json_t *arr = json_array();
    for (int i = 0; i < 200000; i++) json_array_append_new(arr, json_integer(i));
    char p[64];
    r = call(obj_or_str(p, sizeof p, "echo"), json_incref(arr));
    assert_int_equal(r.err, 0);
    assert_true(json_equal(json_array_get(r.values, 0), arr));
    result_free(&r);
    json_decref(arr);
}

typedef struct many {
    int done, bad;
    int order[200];
    int norder;
} many;

typedef struct one {
    many *m;
    int want;
    int got;
} one;

static void one_value(void *u, json_t *v) {
    /* Kafka: the number as its string form, perhaps followed by a terminal-only record (null) */
    if (on_kafka() && json_is_null(v)) return;
    ((one *)u)->got = json_is_string(v) ? atoi(json_string_value(v)) : (int)json_integer_value(v);
}
static void one_done(void *u, int err, json_t *e) {
    one *o = u;
    if (err || o->got != o->want) {
        o->m->bad++;
        print_message("sleep %d: got %d, %s\n", o->want, o->got, err ? nc_err_name(err) : "no error");
    }
    o->m->order[o->m->norder++] = o->want;
    o->m->done++;
}

static void test_concurrent_out_of_order(void **st) {
    /* Kafka: a NestJS server handles one record of a partition at a time until its first reply value (spec
     * kafka.md §7), so requests queue per partition: as many as the Node suite sends at once (50) */
    int n = on_kafka() ? 50 : 200;
    many m = {0};
    one ones[200];
    char p[64];
    obj_or_str(p, sizeof p, "sleep");
    for (int i = 0; i < n; i++) {
        ones[i] = (one){&m, (i * 37) % 51, -1};
        json_t *d = json_integer(ones[i].want);
        assert_int_equal(nc_client_send(cli, i % 2 ? "sleep" : p, d, NULL, one_value, one_done, &ones[i]), 0);
        json_decref(d);
    }
    while (m.done < n) uv_run(nc_client_loop(cli), UV_RUN_ONCE);
    assert_int_equal(m.bad, 0);
    /* replies came back in completion order, not send order */
    int sorted_like_send = 1;
    for (int i = 0; i < n; i++)
        if (m.order[i] != ones[i].want) sorted_like_send = 0;
    assert_false(sorted_like_send);
    /* a slow request sent first finishes after a fast one sent second */
    many m2 = {0};
    one slow = {&m2, 300, -1}, fast = {&m2, 10, -1};
    json_t *d1 = json_integer(300), *d2 = json_integer(10);
    nc_client_send(cli, "sleep", d1, NULL, one_value, one_done, &slow);
    nc_client_send(cli, "sleep", d2, NULL, one_value, one_done, &fast);
    json_decref(d1);
    json_decref(d2);
    while (m2.done < 2) uv_run(nc_client_loop(cli), UV_RUN_ONCE);
    assert_int_equal(m2.bad, 0);
    assert_int_equal(m2.order[0], 10);
    assert_int_equal(m2.order[1], 300);
}

static void test_context(void **st) {
    char p[64];
    result r = call(obj_or_str(p, sizeof p, "context"), J("1"));
    assert_int_equal(r.err, 0);
    json_t *ctx = json_array_get(r.values, 0);
    char scheme[16];
    snprintf(scheme, sizeof scheme, "%.*s", (int)strcspn(url, ":"), url);
    assert_string_equal(json_string_value(json_object_get(ctx, "transport")), scheme);
    assert_string_equal(json_string_value(json_object_get(ctx, "pattern")), p);
    /* brokers: the concrete channel/subject/topic */
    if (strncmp(scheme, "redis", 5) == 0 || on_nats() || on_mqtt() || on_kafka())
        assert_string_equal(json_string_value(json_object_get(ctx, "channel")), p);
    result_free(&r);
    r = call("context", J("1"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.values, 0), "pattern")),
                        "context");
    result_free(&r);
}

/* NATS message headers, MQTT 5 user properties and Kafka record headers (nc_call_opts.headers) reach the
 * handler: `context` reports them as {name: value}; without headers it reports none (Kafka: Nest's own
 * request headers only, checked there as a subset). Other transports have no headers. */
static void test_headers(void **st) {
    if (!on_nats() && !on_mqtt5() && !on_kafka()) return;
    result r = call("context", J("1"));
    assert_int_equal(r.err, 0);
    if (!on_kafka()) assert_null(json_object_get(json_array_get(r.values, 0), "headers"));
    result_free(&r);
    json_t *h = J("{\"x-trace\":\"t-1\",\"x-version\":\"1.0.0\"}");
    r = (result){json_array(), 0, NULL, 0};
    nc_call_opts o = {.headers = h};
    json_t *d = J("1");
    char p[64];
    assert_int_equal(nc_client_send(cli, obj_or_str(p, sizeof p, "context"), d, &o, on_value, on_done, &r),
                     0);
    json_decref(d);
    json_decref(h);
    while (!r.done) uv_run(nc_client_loop(cli), UV_RUN_ONCE);
    if (r.err)
        fail_msg("context with headers: %s %s", nc_err_name(r.err), json_dumps(r.error, JSON_ENCODE_ANY));
    json_t *got = json_object_get(json_array_get(r.values, 0), "headers");
    json_t *want = J("{\"x-trace\":\"t-1\",\"x-version\":\"1.0.0\"}");
    if (on_kafka() && json_is_object(got)) { /* Nest's kafka_* headers besides: compare those two */
        json_t *two = json_object();
        json_object_set(two, "x-trace", json_object_get(got, "x-trace"));
        json_object_set(two, "x-version", json_object_get(got, "x-version"));
        got = two;
        json_array_append_new(r.values, two); /* freed with the result */
    }
    if (!json_equal(got, want)) fail_msg("headers: got %s", json_dumps(got, JSON_ENCODE_ANY));
    json_decref(want);
    result_free(&r);
}

static int emitted;
static void emit_done(void *u, int err, json_t *e) {
    assert_int_equal(err, 0);
    emitted++;
}

static json_int_t event_count(const char *name, json_t **payloads) {
    char data[64];
    snprintf(data, sizeof data, "\"%s\"", name);
    result r = call("events", J(data));
    assert_int_equal(r.err, 0);
    json_t *o = json_array_get(r.values, 0);
    json_int_t n = json_integer_value(json_object_get(o, "count"));
    if (payloads) *payloads = json_incref(json_object_get(o, "payloads"));
    result_free(&r);
    return n;
}

static void test_events(void **st) {
    json_int_t before = event_count("notification", NULL);
    json_int_t before_u = event_count("user_created", NULL);
    emitted = 0;
    char tag[64];
    snprintf(tag, sizeof tag, "c-%d", rand());
    for (int i = 0; i < 3; i++) {
        json_t *d = json_pack("{s:s,s:i}", "tag", tag, "i", i);
        assert_int_equal(nc_client_emit(cli, "notification", d, NULL, emit_done, NULL), 0);
        json_decref(d);
    }
    json_t *d = json_pack("{s:s}", "tag", tag);
    nc_client_emit(cli, "user_created", d, NULL, emit_done, NULL);
    json_decref(d);
    while (emitted < 4) uv_run(nc_client_loop(cli), UV_RUN_ONCE);
    json_t *payloads;
    if (on_kafka()) {
        /* Kafka: events and the query go to different topics, consumed each on its own: ask until the
         * events were handled (bounded), and they may come in any order (records without a key are
         * spread over the topic's partitions, ordered within one only) */
        uint64_t until = uv_hrtime() + 20000000000ull;
        json_int_t c;
        while ((c = event_count("notification", NULL)) < before + 6 && uv_hrtime() < until) {
        }
        while (event_count("user_created", NULL) < before_u + 1 && uv_hrtime() < until) {
        }
        assert_int_equal(c, before + 6);
        event_count("notification", &payloads);
        int seen[3] = {0};
        size_t i;
        json_t *x;
        json_array_foreach(payloads, i, x) {
            const char *t = json_string_value(json_object_get(x, "tag"));
            json_int_t k = json_integer_value(json_object_get(x, "i"));
            if (t && !strcmp(t, tag) && k >= 0 && k < 3) seen[k]++;
        }
        json_decref(payloads);
        for (int k = 0; k < 3; k++) assert_int_equal(seen[k], 1);
        assert_int_equal(event_count("user_created", NULL), before_u + 1);
        return;
    }
    /* events and requests travel on one connection, in order: the query sees all three */
    assert_int_equal(event_count("notification", &payloads), before + 6); /* two handlers each */
    size_t n = json_array_size(payloads);
    assert_true(n >= 3);
    for (int i = 0; i < 3; i++) {
        json_t *p = json_array_get(payloads, n - 3 + (size_t)i);
        assert_string_equal(json_string_value(json_object_get(p, "tag")), tag);
        assert_int_equal(json_integer_value(json_object_get(p, "i")), i);
    }
    json_decref(payloads);
    assert_int_equal(event_count("user_created", NULL), before_u + 1);
}

static void test_unknown_pattern(void **st) {
    if (strncmp(url, "redis", 5) == 0) {
        /* Redis: nobody subscribes to the channel, and PUBLISH says so (0 receivers): NC_ENOHANDLER at
         * once (NestJS's ClientRedis would wait for its timeout) */
        result r = call_opts("no-such-thing", J("1"), 5000);
        assert_int_equal(r.err, NC_ENOHANDLER);
        assert_non_null(strstr(json_string_value(r.error), "no subscribers"));
        assert_int_equal(json_array_size(r.values), 0);
        result_free(&r);
        return;
    }
    if (on_nats()) {
        /* NATS: nobody subscribes to the subject, and the broker says so at once (no-responders status,
         * spec nats.md §4): a local failure that names it, not an error reply and not a timeout */
        const char *patterns[] = {"no-such-thing", "{\"cmd\":\"no-such-thing\"}"};
        for (int i = 0; i < 2; i++) {
            result r = call_opts(patterns[i], J("1"), 5000);
            if (r.err != NC_ENOHANDLER)
                fail_msg("%s: %s %s, want a local no-subscribers failure", patterns[i], nc_err_name(r.err),
                         json_dumps(r.error, JSON_ENCODE_ANY));
            assert_int_equal(json_array_size(r.values), 0);
            const char *why = json_string_value(r.error);
            if (!why || !strstr(why, "no subscribers"))
                fail_msg("%s: the failure does not say \"no subscribers\": %s", patterns[i],
                         json_dumps(r.error, JSON_ENCODE_ANY));
            result_free(&r);
        }
        return;
    }
    if (on_kafka()) {
        /* Kafka: the request goes to a topic (created on first use) that no server consumes: nobody
         * replies, and the call ends with its own timeout, as NestJS's ClientKafka waits for its own; a
         * local no-handler failure would do too. Never a value. String routes only. */
        result r = call_opts("no-such-thing", J("1"), 500);
        if (r.err != NC_ETIMEDOUT && r.err != NC_ENOHANDLER)
            fail_msg("no-such-thing: %s %s, want the call's own timeout", nc_err_name(r.err),
                     json_dumps(r.error, JSON_ENCODE_ANY));
        assert_int_equal(json_array_size(r.values), 0);
        result_free(&r);
        return;
    }
    if (on_mqtt()) {
        /* MQTT (spec mqtt.md §3): nobody subscribes to the topic and a QoS 0 PUBLISH does not say so (nor
         * does MQTT 3.1.1 at all): the request is lost and the call ends with its own timeout, as NestJS's
         * ClientMqtt does. No value, no error reply. The limit is short: the timeout is what is expected. */
        const char *patterns[] = {"no-such-thing", "{\"cmd\":\"no-such-thing\"}"};
        for (int i = 0; i < 2; i++) {
            result r = call_opts(patterns[i], J("1"), 500);
            if (r.err != NC_ETIMEDOUT)
                fail_msg("%s: %s %s, want the call's own timeout", patterns[i], nc_err_name(r.err),
                         json_dumps(r.error, JSON_ENCODE_ANY));
            assert_int_equal(json_array_size(r.values), 0);
            result_free(&r);
        }
        return;
    }
    /* TCP/TLS: the server's no-handler answer, as NC_ENOHANDLER with its value as received */
    expect_error_code("{\"cmd\":\"no-such-thing\"}", J("1"), NC_ENOHANDLER,
                      "\"There is no matching message handler defined in the remote service.\"");
    expect_error_code("no-such-thing", J("1"), NC_ENOHANDLER,
                      "\"There is no matching message handler defined in the remote service.\"");
}

static void test_timeout(void **st) {
    result r = call_opts("sleep", J("2000"), 300);
    assert_int_equal(r.err, NC_ETIMEDOUT);
    assert_int_equal(json_array_size(r.values), 0);
    result_free(&r);
    /* the client stays usable, and the late reply is dropped */
    expect_values("sum", J("[1,1]"), "[2]");
}

static void test_refused(void **st) {
    /* Kafka: the client keeps trying the brokers in the background, as KafkaJS does: no refusal to see */
    if (on_kafka()) return;
    nc_client *c2;
    nc_client_opts o = {0};
    o.log_level = NC_LOG_OFF;
    o.log = NULL;
    char refused[64];
    snprintf(refused, sizeof refused, "%.*s://127.0.0.1:1", (int)strcspn(url, ":"), url);
    assert_int_equal(nc_client_new(&c2, refused, &o), 0);
    result r = {json_array(), 0, NULL, 0};
    assert_int_equal(nc_client_send(c2, "sum", NULL, NULL, on_value, on_done, &r), 0);
    nc_client_run(c2);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.err, NC_ECONNREFUSED);
    result_free(&r);
    nc_client_free(c2);
}

static int setup(void **st) {
    url = getenv("URL");
    if (!url) {
        fprintf(stderr, "conformance_client: set URL (e.g. tcp://127.0.0.1:3000)\n");
        return -1;
    }
    const char *ca = getenv("NESTC_CA");
    nc_client_opts o = {0};
    if (getenv("NESTC_WRAP")) { /* under valgrind both ends start and handshake many times slower */
        o.timeout_ms = 60000;
        o.connect_timeout_ms = 60000;
    }
    if (ca) {
        tls.ca_file = ca;
        o.tls = &tls;
    }
    return nc_client_new(&cli, url, &o);
}

static int teardown(void **st) {
    nc_client_free(cli);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum),        cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_exception),  cmocka_unit_test(test_echo_unicode),
        cmocka_unit_test(test_echo_large), cmocka_unit_test(test_concurrent_out_of_order),
        cmocka_unit_test(test_context),    cmocka_unit_test(test_headers),
        cmocka_unit_test(test_events),     cmocka_unit_test(test_unknown_pattern),
        cmocka_unit_test(test_timeout),    cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
