/* Replays tests/fuzz/nest-oracle/vectors.json, NestJS's accept rule as recorded from Node.js (UTF-8
 * decoding, JSON.parse, JSON.stringify; see record.mjs), through nestc: the framer's UTF-8 decoding, the DOM
 * parser, the scanner + builder, the pull reader and the writer. Accept/refuse and the written bytes must
 * be NestJS's, except for the differences listed in `known` below, each documented where nestc decides
 * it. Also checks the fuzzing oracle (tests/fuzz/nest_oracle.h) against the same vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../fuzz/nest_oracle.h"
#include "codec/frame.h"
#include "codec/json_build.h"
#include "codec/json_scan.h"
#include "codec/json_write.h"
#include "nestc/json_reader.h"
#include "util/buf.h"

/* Where nestc knowingly differs from NestJS. */
static const struct {
    const char *name, *why;
} known[] = {
    /* json_build.h NC_JSON_MAX_DEPTH: the message is dropped with a log line, the connection kept */
    {"deep arrays 10001", "nesting beyond NC_JSON_MAX_DEPTH (10000) is refused"},
    {"deep arrays 100000", "nesting beyond NC_JSON_MAX_DEPTH (10000) is refused"},
    /* json_write.h: JavaScript objects list integer-like keys first */
    {"keys integer-like after others", "members are written in the received order"},
};

static const char *known_why(const char *name) {
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(known[i].name, name) == 0) return known[i].why;
    return NULL;
}

static char *vector_bytes(json_t *v, size_t *n) {
    json_t *hex = json_object_get(v, "input_hex");
    if (hex) {
        const char *h = json_string_value(hex);
        *n = strlen(h) / 2;
        char *b = malloc(*n + 1);
        assert_non_null(b);
        for (size_t i = 0; i < *n; i++) {
            unsigned x;
            assert_int_equal(sscanf(h + 2 * i, "%2x", &x), 1);
            b[i] = (char)x;
        }
        return b;
    }
    json_t *d = json_object_get(v, "deep");
    assert_non_null(d);
    const char *pre = json_string_value(json_object_get(d, "prefix")),
               *suf = json_string_value(json_object_get(d, "suffix"));
    const char *open = json_string_value(json_object_get(d, "open")),
               *inner = json_string_value(json_object_get(d, "inner")),
               *close = json_string_value(json_object_get(d, "close"));
    size_t reps = (size_t)json_integer_value(json_object_get(d, "n"));
    nc_buf b = NC_BUF_INIT;
    if (pre) assert_int_equal(nc_buf_append_str(&b, pre), 0);
    for (size_t i = 0; i < reps; i++) assert_int_equal(nc_buf_append_str(&b, open), 0);
    assert_int_equal(nc_buf_append_str(&b, inner), 0);
    for (size_t i = 0; i < reps; i++) assert_int_equal(nc_buf_append_str(&b, close), 0);
    if (suf) assert_int_equal(nc_buf_append_str(&b, suf), 0);
    return nc_buf_steal(&b, n);
}

/* The frame text the framer hands out for the JSON text t[0..n) sent as one frame whose length is what
 * NestJS counts (its UTF-16 length once decoded, ill-formed bytes as U+FFFD). */
static int keep_frame(void *user, const char *json, size_t len) {
    nc_buf *b = user;
    assert_int_equal(b->len, 0);
    assert_int_equal(nc_buf_append(b, json, len), 0);
    return 0;
}

static char *through_framer(const char *t, size_t n, size_t *out_len) {
    json_t *decoded = nc_json_string_js(t, n, 0);
    assert_non_null(decoded);
    char pre[24];
    size_t pl = nc_frame_prefix(pre, nc_utf16_units(json_string_value(decoded), json_string_length(decoded)));
    json_decref(decoded);
    nc_buf got = NC_BUF_INIT;
    nc_framer f;
    nc_framer_init(&f, NULL);
    assert_int_equal(nc_framer_feed(&f, pre, pl, keep_frame, &got), 0);
    assert_int_equal(nc_framer_feed(&f, t, n, keep_frame, &got), 0);
    /* bytes StringDecoder keeps back at the end of a chunk are counted when the next byte arrives */
    assert_int_equal(nc_framer_feed(&f, " ", 1, keep_frame, &got), 0);
    nc_framer_free(&f);
    assert_true(got.len > 0);
    assert_int_equal(nc_utf8_validate(got.data, got.len, NULL), 0);
    return nc_buf_steal(&got, out_len);
}

static void test_vectors(void **state) {
    (void)state;
    json_error_t je;
    json_t *doc = json_load_file(NESTC_SOURCE_DIR "/tests/fuzz/nest-oracle/vectors.json", 0, &je);
    if (!doc) fail_msg("vectors.json: %s", je.text);
    json_t *vs = json_object_get(doc, "vectors");
    assert_true(json_array_size(vs) >= 100);
    size_t i, same = 0, differ = 0, not_utf8 = 0;
    json_t *v;
    json_array_foreach(vs, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        int js = json_is_true(json_object_get(v, "accept"));
        size_t n;
        char *text = vector_bytes(v, &n);
        const char *want =
            json_object_get(v, "output_is_input") ? text : json_string_value(json_object_get(v, "output"));
        size_t want_len = want == text ? n : want ? strlen(want) : 0;

        if (nc_utf8_validate(text, n, NULL) != 0) {
            /* frame.h: the framer reads ill-formed UTF-8 as NestJS's socket decoding does (U+FFFD), and the
             * frame's length counts the replacements: what it hands out is what is compared below */
            char *framed = through_framer(text, n, &n);
            free(text);
            text = framed;
            want = json_string_value(json_object_get(v, "output"));
            want_len = want ? strlen(want) : 0;
            not_utf8++;
        }
        size_t depth;
        if (oracle_accepts(text, n, &depth) != js)
            fail_msg("%s: the fuzzing oracle disagrees with Node.js", name);

        if (js && n && (text[0] == '"' || text[0] == ' ') && json_object_get(v, "output")) {
            /* the oracle's JSON.stringify model for strings agrees with Node.js */
            json_t *probe = NULL;
            if (nc_json_parse(text, n, &probe, NULL, 0) == 0 && json_is_string(probe)) {
                size_t on;
                char *o = oracle_stringify_string(text, n, &on);
                if (on != want_len || memcmp(o, want, on) != 0)
                    fail_msg("%s: the oracle's stringify differs", name);
                free(o);
            }
            json_decref(probe);
        }

        json_t *val = NULL;
        char err[160];
        int ours = nc_json_parse(text, n, &val, err, sizeof err) == 0;
        nc_buf out = NC_BUF_INIT;
        if (ours) assert_int_equal(nc_json_write(&out, val), 0);
        /* JSON.stringify recurses and throws past a few thousand levels (NestJS then sends no reply);
         * nestc writes what it accepted: only accept/refuse is compared there */
        int no_output = json_object_get(v, "stringify_error") != NULL;
        int match = ours == js &&
                    (!js || no_output || (out.len == want_len && memcmp(out.data, want, want_len) == 0));
        const char *why = known_why(name);
        if (why) {
            if (match) fail_msg("%s: listed as a known difference (%s) but nestc now matches", name, why);
            print_message("known difference: %s: %s\n", name, why);
            differ++;
        } else if (!match) {
            fail_msg("%s: NestJS %s%.*s, nestc %s%.*s%s", name, js ? "accepts, writes " : "refuses",
                     js ? (int)(want_len > 200 ? 200 : want_len) : 0, js ? want : "",
                     ours ? "accepts, writes " : "refuses: ", ours ? (int)(out.len > 200 ? 200 : out.len) : 0,
                     ours ? out.data : "", ours ? "" : err);
        } else {
            same++;
        }

        if (ours) {
            /* the fast path reads it the same way, or leaves it to the DOM path */
            nc_span sp;
            if (nc_json_scan_value(text, n, &sp) == NC_SCAN_OK) {
                json_t *b = nc_json_build(sp.p, sp.len);
                nc_buf bo = NC_BUF_INIT;
                assert_non_null(b);
                assert_int_equal(nc_json_write(&bo, b), 0);
                assert_int_equal(bo.len, out.len);
                assert_memory_equal(bo.data, out.data, out.len);
                nc_buf_free(&bo);
                nc_json_free(b);
            }
            /* the pull reader walks it to the end */
            nc_json_reader r;
            nc_json_reader_init(&r, text, n);
            nc_json_tok t;
            while ((t = nc_json_next(&r)) != NC_JSON_END) assert_int_not_equal(t, NC_JSON_ERROR);
        } else {
            nc_span sp;
            assert_int_equal(nc_json_scan_value(text, n, &sp), NC_SCAN_SLOW);
        }
        nc_json_free(val);
        nc_buf_free(&out);
        free(text);
    }
    print_message(
        "oracle: %zu vectors as NestJS (%zu of them ill-formed UTF-8, read through the framer), %zu "
        "known differences\n",
        same, not_utf8, differ);
    assert_true(not_utf8 >= 5);
    json_decref(doc);
}

/* The pull reader gives JavaScript's numbers for what the DOM cannot hold exactly, and keeps surrogate
 * escapes as raw text. */
static void test_reader(void **state) {
    (void)state;
    static const char text[] = "[1e400,-1e400,123456789012345678901,\"ab\\ud83d\"]";
    nc_json_reader r;
    nc_json_reader_init(&r, text, sizeof text - 1);
    assert_int_equal(nc_json_next(&r), NC_JSON_ARRAY_BEGIN);
    assert_int_equal(nc_json_next(&r), NC_JSON_NUMBER);
    assert_true(r.number == HUGE_VAL);
    assert_int_equal(nc_json_next(&r), NC_JSON_NUMBER);
    assert_true(r.number == -HUGE_VAL);
    assert_int_equal(nc_json_next(&r), NC_JSON_NUMBER);
    assert_true(r.number == 123456789012345678901.0);
    assert_int_equal(nc_json_next(&r), NC_JSON_STRING);
    assert_int_equal(r.len, 8);
    assert_memory_equal(r.text, "ab\\ud83d", 8);
    assert_true(r.escaped);
    assert_int_equal(nc_json_next(&r), NC_JSON_ARRAY_END);
    assert_int_equal(nc_json_next(&r), NC_JSON_END);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
