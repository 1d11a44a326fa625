/* The public pull reader (nestc/json_reader.h): token sequences, numbers as JavaScript reads them,
 * strings and keys, and malformed or truncated input ending in NC_JSON_ERROR without reading past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nestc/nestc.h"

/* Tokens of `text` as a compact string: [ ] { } k(key) s(string) n(number) 0(null) t f, E = error. */
static void tokens(const char *text, char *out, size_t cap) {
    nc_json_reader r;
    nc_json_reader_init(&r, text, strlen(text));
    size_t n = 0;
    for (;;) {
        nc_json_tok t = nc_json_next(&r);
        static const char map[] = {'.', 'E', '0', 't', 'f', 'n', 's', 'k', '[', ']', '{', '}'};
        assert_true(n + 1 < cap);
        out[n++] = map[t];
        if (t == NC_JSON_END || t == NC_JSON_ERROR) break;
    }
    out[n] = '\0';
}

static void test_tokens(void **st) {
    char b[64];
    tokens("[1,2,3]", b, sizeof b);
    assert_string_equal(b, "[nnn].");
    tokens(" {\"a\" : [true,false,null], \"b\":{\"c\":\"x\"}} ", b, sizeof b);
    assert_string_equal(b, "{k[tf0]k{ks}}.");
    tokens("", b, sizeof b);
    assert_string_equal(b, ".");
    tokens("\"just a string\"", b, sizeof b);
    assert_string_equal(b, "s.");
}

static void test_numbers(void **st) {
    const char *cases[] = {"0",
                           "-0",
                           "42",
                           "-17",
                           "3.25",
                           "1e3",
                           "-2.5E-3",
                           "123456789012345",
                           "9007199254740993",
                           "1.7976931348623157e308"};
    double want[] = {
        0, -0.0, 42, -17, 3.25, 1000, -0.0025, 123456789012345.0, 9007199254740992.0, 1.7976931348623157e308};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nc_json_reader r;
        nc_json_reader_init(&r, cases[i], strlen(cases[i]));
        assert_int_equal(nc_json_next(&r), NC_JSON_NUMBER);
        assert_true(r.number == want[i]);
        assert_int_equal(nc_json_next(&r), NC_JSON_END);
    }
}

static void test_strings(void **st) {
    const char *t = "{\"k\\\"ey\":\"v\\u00e9\",\"plain\":\"h\xc3\xa9llo\"}";
    nc_json_reader r;
    nc_json_reader_init(&r, t, strlen(t));
    assert_int_equal(nc_json_next(&r), NC_JSON_OBJECT_BEGIN);
    assert_int_equal(nc_json_next(&r), NC_JSON_KEY);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.text, "k\\\"ey", 5);
    assert_true(r.escaped);
    assert_int_equal(nc_json_next(&r), NC_JSON_STRING);
    assert_true(r.escaped);
    assert_int_equal(nc_json_next(&r), NC_JSON_KEY);
    assert_false(r.escaped);
    assert_int_equal(nc_json_next(&r), NC_JSON_STRING);
    assert_int_equal(r.len, 6);
    assert_memory_equal(r.text, "h\xc3\xa9llo", 6);
    assert_int_equal(nc_json_next(&r), NC_JSON_OBJECT_END);
    assert_int_equal(nc_json_next(&r), NC_JSON_END);
}

static void test_sum_large(void **st) {
    /* the reason the reader exists: 100,000 numbers without a DOM */
    size_t cap = 1 << 20, n = 0;
    char *t = malloc(cap);
    t[n++] = '[';
    for (int i = 0; i < 100000; i++) n += (size_t)snprintf(t + n, cap - n, "%s%d", i ? "," : "", i);
    t[n++] = ']';
    nc_json_reader r;
    nc_json_reader_init(&r, t, n);
    double sum = 0;
    nc_json_tok tok;
    while ((tok = nc_json_next(&r)) != NC_JSON_END && tok != NC_JSON_ERROR)
        if (tok == NC_JSON_NUMBER) sum += r.number;
    assert_int_equal(tok, NC_JSON_END);
    assert_true(sum == 4999950000.0);
    free(t);
}

static void test_malformed(void **st) {
    const char *bad[] = {"[1,tru]", "\"unterminated", "[-]", "{\"a\":nul", "@", "[1.2.3e]", "\"\\"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        /* copy into an exact-size heap block: ASan catches any read past the end */
        size_t n = strlen(bad[i]);
        char *t = malloc(n);
        memcpy(t, bad[i], n);
        nc_json_reader r;
        nc_json_reader_init(&r, t, n);
        nc_json_tok tok;
        int steps = 0;
        while ((tok = nc_json_next(&r)) != NC_JSON_END && tok != NC_JSON_ERROR) assert_true(++steps < 100);
        assert_int_equal(tok, NC_JSON_ERROR);
        assert_int_equal(nc_json_next(&r), NC_JSON_ERROR); /* sticky */
        free(t);
    }
    /* every prefix of a valid document: no crash, no read past the end */
    const char *doc = "{\"a\":[1,-2.5e3,\"x\\\"y\",true,false,null,{}],\"b\":\"\xc3\xa9\"}";
    for (size_t cut = 0; cut <= strlen(doc); cut++) {
        char *t = malloc(cut ? cut : 1);
        memcpy(t, doc, cut);
        nc_json_reader r;
        nc_json_reader_init(&r, t, cut);
        int steps = 0;
        nc_json_tok tok;
        while ((tok = nc_json_next(&r)) != NC_JSON_END && tok != NC_JSON_ERROR) assert_true(++steps < 100);
        free(t);
    }
    nc_json_reader r;
    nc_json_reader_init(&r, NULL, 0);
    assert_int_equal(nc_json_next(&r), NC_JSON_END);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),    cmocka_unit_test(test_numbers),   cmocka_unit_test(test_strings),
        cmocka_unit_test(test_sum_large), cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
