/* Unit tests for the hot-path JSON scanner (src/codec/json_scan.[ch]) and the DOM builder that reads what
 * it accepted (src/codec/json_build.[ch]).
 *
 * The scanner's contract is one-sided: it may answer NC_SCAN_SLOW for anything, but when it answers
 * NC_SCAN_OK the DOM parser nc_json_parse (JSON.parse's accept rule, json_build.h) must accept the same
 * text, and nc_json_build must produce the same value (same types, same numbers, same strings, same member
 * order). Most tests here are therefore differential: every input goes through the scanner, and whatever
 * it accepts is checked against the DOM parser; and whatever jansson's own parser accepts, the DOM parser
 * must accept and read as the same value (jansson refuses more: lone surrogates, deep nesting, 1e400).
 * A few tables also pin the documented fast/slow decisions (plain JSON and surrogate escapes fast;
 * exponents, long numbers, \u0000, escaped keys, deep nesting slow). Every input is copied into a buffer
 * of its exact length first, so that the sanitizer build catches any read past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec/frame.h"
#include "codec/json_build.h"
#include "codec/json_scan.h"
#include "codec/json_write.h"

#ifndef NESTC_VECTORS_DIR
#error "NESTC_VECTORS_DIR must point at tests/vectors"
#endif

/* ---------------------------------------------------------------------------------------------------- */
/* Helpers                                                                                               */

#define LIT(s) s, sizeof(s) - 1

static uint64_t rnd(uint64_t *s) { /* xorshift64*, deterministic */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static size_t rnd_below(uint64_t *s, size_t n) {
    return (size_t)(rnd(s) % n);
}

/* A growable byte string. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}
static void sb_putc(sbuf *b, char c) {
    sb_put(b, &c, 1);
}

/* Writes `s` as a C string literal to stderr (for failure reports). */
static void show(const char *what, const char *s, size_t n) {
    fprintf(stderr, "  %s (%zu bytes): \"", what, n);
    for (size_t i = 0; i < n && i < 400; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, n > 400 ? "\"...\n" : "\"\n");
}

static void show_json(const char *what, const json_t *v) {
    char *s = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    fprintf(stderr, "  %s: %s\n", what, s ? s : "(NULL)");
    free(s);
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Strict structural equality: same types (integer vs real matters), bit-identical reals, same string bytes,
 * same member order. */
static int same_value(const json_t *a, const json_t *b) {
    if (!a || !b) return a == b;
    if (json_typeof(a) != json_typeof(b)) return 0;
    switch (json_typeof(a)) {
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_value(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return 0;
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        for (; ia && ib;
             ia = json_object_iter_next((json_t *)a, ia), ib = json_object_iter_next((json_t *)b, ib)) {
            if (strcmp(json_object_iter_key(ia), json_object_iter_key(ib)) != 0) return 0;
            if (!same_value(json_object_iter_value(ia), json_object_iter_value(ib))) return 0;
        }
        return !ia && !ib;
    }
    default:
        return 1; /* true, false, null: the type says it all */
    }
}

/* The flags a span of valid JSON text must carry: NC_SPAN_ESC when a backslash occurs (only possible
 * inside strings), NC_SPAN_WS when whitespace occurs outside strings. */
static unsigned expected_flags(const char *p, size_t n) {
    unsigned f = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\') {
                f |= NC_SPAN_ESC;
                i++;
            } else if (c == '"') {
                in_str = 0;
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (is_ws(c)) {
            f |= NC_SPAN_WS;
        }
    }
    return f;
}

/* Tallies of a differential run. */
typedef struct diff_stats {
    size_t inputs, not_utf8, scan_ok, env_ok, reply_ok, failures;
} diff_stats;

#define DIFF_FAIL(st, text, len, ...)                                                                        \
    do {                                                                                                     \
        fprintf(stderr, "differential mismatch: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                                 \
        show("input", text, len);                                                                            \
        (st)->failures++;                                                                                    \
    } while (0)

/* Checks one span of an accepted text: inside the text, no surrounding whitespace, right flags, and
 * readable on its own (scanner OK again, builder equal to `dom`). */
static int check_span(diff_stats *st, const char *text, size_t len, const nc_span *sp, const json_t *dom,
                      const char *name) {
    if (!dom) {
        if (sp->p) {
            DIFF_FAIL(st, text, len, "key %s absent from the DOM but span set", name);
            return 0;
        }
        return 1;
    }
    if (!sp->p) {
        DIFF_FAIL(st, text, len, "key %s present in the DOM but span unset", name);
        return 0;
    }
    if (sp->p < text || sp->p + sp->len > text + len || sp->len == 0) {
        DIFF_FAIL(st, text, len, "span %s outside the text", name);
        return 0;
    }
    if (is_ws(sp->p[0]) || is_ws(sp->p[sp->len - 1])) {
        DIFF_FAIL(st, text, len, "span %s includes surrounding whitespace", name);
        show("span", sp->p, sp->len);
        return 0;
    }
    unsigned want = expected_flags(sp->p, sp->len);
    if (sp->flags != want) {
        DIFF_FAIL(st, text, len, "span %s flags %u, expected %u", name, sp->flags, want);
        show("span", sp->p, sp->len);
        return 0;
    }
    json_t *built = nc_json_build(sp->p, sp->len);
    int ok = built && same_value(built, dom) && json_equal(built, (json_t *)dom);
    if (!ok) {
        DIFF_FAIL(st, text, len, "span %s builds a different value", name);
        show("span", sp->p, sp->len);
        show_json("jansson", dom);
        show_json("built", built);
    }
    json_decref(built);
    return ok;
}

/* Runs one input through every scanner entry point and checks each acceptance against jansson. Returns the
 * nc_json_scan_value result (or -1 when the input was skipped as invalid UTF-8, the scanner's
 * precondition). */
static int differential(diff_stats *st, const char *src, size_t len) {
    st->inputs++;
    if (nc_utf8_validate(src, len, NULL) != 0) {
        st->not_utf8++;
        return -1;
    }
    char *text = malloc(len ? len : 1); /* exact size: reads past the end are caught by ASan */
    assert_non_null(text);
    if (len) memcpy(text, src, len);

    json_t *dom = NULL;
    char err[160];
    int prc = nc_json_parse(text, len, &dom, err, sizeof err);
    /* jansson is the independent reference: what it reads, the DOM parser reads the same way */
    json_error_t je;
    json_t *jv = memchr(text, '\0', len) ? NULL /* jansson stops at a raw NUL; JSON.parse refuses it */
                                         : json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (jv && (prc != 0 || !json_equal(jv, dom))) {
        DIFF_FAIL(st, text, len, "jansson read it, nc_json_parse %s", prc ? "refused it" : "differs");
        show_json("jansson", jv);
        show_json("nc_json_parse", dom);
    }
    json_decref(jv);

    nc_span sp;
    memset(&sp, 0xAB, sizeof sp);
    int rc = nc_json_scan_value(text, len, &sp);
    assert_true(rc == NC_SCAN_OK || rc == NC_SCAN_SLOW);
    if (rc == NC_SCAN_OK) {
        st->scan_ok++;
        if (prc != 0) {
            DIFF_FAIL(st, text, len, "scanner accepted, jansson rejected (%s)", err);
        } else {
            /* the span is the value with the surrounding whitespace excluded */
            size_t pre = (size_t)(sp.p - text);
            int ws_ok = sp.p >= text && sp.len > 0 && pre + sp.len <= len;
            for (size_t i = 0; ws_ok && i < pre; i++) ws_ok = is_ws(text[i]);
            for (size_t i = pre + sp.len; ws_ok && i < len; i++) ws_ok = is_ws(text[i]);
            if (!ws_ok)
                DIFF_FAIL(st, text, len, "value span is not the text minus surrounding whitespace");
            else
                check_span(st, text, len, &sp, dom, "(value)");
            /* the builder also accepts the whole text, leading whitespace included */
            json_t *whole = nc_json_build(text, len);
            if (!whole || !same_value(whole, dom) || !json_equal(whole, dom)) {
                DIFF_FAIL(st, text, len, "nc_json_build(text) differs from jansson");
                show_json("jansson", dom);
                show_json("built", whole);
            }
            json_decref(whole);
        }
    }

    nc_env env;
    memset(&env, 0xAB, sizeof env);
    if (nc_env_scan(text, len, &env) == NC_SCAN_OK) {
        st->env_ok++;
        if (prc != 0 || !json_is_object(dom)) {
            DIFF_FAIL(st, text, len, "nc_env_scan accepted what jansson does not read as an object");
        } else {
            check_span(st, text, len, &env.pattern, json_object_get(dom, "pattern"), "pattern");
            check_span(st, text, len, &env.data, json_object_get(dom, "data"), "data");
            check_span(st, text, len, &env.id, json_object_get(dom, "id"), "id");
            check_span(st, text, len, &env.metadata, json_object_get(dom, "metadata"), "metadata");
            int other = 0;
            const char *k;
            json_t *v;
            json_object_foreach(dom, k, v) {
                if (strcmp(k, "pattern") && strcmp(k, "data") && strcmp(k, "id") && strcmp(k, "metadata"))
                    other = 1;
            }
            if (env.other_keys != other)
                DIFF_FAIL(st, text, len, "env other_keys %d, expected %d", env.other_keys, other);
        }
    }

    nc_reply_env re;
    memset(&re, 0xAB, sizeof re);
    if (nc_reply_env_scan(text, len, &re) == NC_SCAN_OK) {
        st->reply_ok++;
        if (prc != 0 || !json_is_object(dom)) {
            DIFF_FAIL(st, text, len, "nc_reply_env_scan accepted what jansson does not read as an object");
        } else {
            check_span(st, text, len, &re.id, json_object_get(dom, "id"), "id");
            check_span(st, text, len, &re.response, json_object_get(dom, "response"), "response");
            check_span(st, text, len, &re.err, json_object_get(dom, "err"), "err");
            check_span(st, text, len, &re.disposed, json_object_get(dom, "isDisposed"), "isDisposed");
            check_span(st, text, len, &re.status, json_object_get(dom, "status"), "status");
            int other = 0;
            const char *k;
            json_t *v;
            json_object_foreach(dom, k, v) {
                if (strcmp(k, "id") && strcmp(k, "response") && strcmp(k, "err") && strcmp(k, "isDisposed") &&
                    strcmp(k, "status"))
                    other = 1;
            }
            if (re.other_keys != other)
                DIFF_FAIL(st, text, len, "reply other_keys %d, expected %d", re.other_keys, other);
            /* nkeys counts key occurrences (duplicates included), so at least the distinct keys */
            size_t distinct = json_object_size(dom);
            if (re.nkeys < 0 || (size_t)re.nkeys < distinct || ((re.nkeys == 0) != (distinct == 0)))
                DIFF_FAIL(st, text, len, "reply nkeys %d with %zu distinct keys", re.nkeys, distinct);
        }
    }

    json_decref(dom);
    free(text);
    return rc;
}

/* An input and what the scanner is documented to answer for it. */
enum { ANY = -1, OK = NC_SCAN_OK, SLOW = NC_SCAN_SLOW };

typedef struct scan_case {
    const char *text;
    size_t len;
    int expect; /* OK, SLOW or ANY (only the differential requirement) */
} scan_case;

static void run_cases(const scan_case *cases, size_t n, diff_stats *st) {
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = differential(st, cases[i].text, cases[i].len);
        if (cases[i].expect != ANY && rc != cases[i].expect) {
            fprintf(stderr, "case %zu: scanner answered %d, documented %d\n", i, rc, cases[i].expect);
            show("input", cases[i].text, cases[i].len);
            wrong++;
        }
    }
    assert_int_equal(wrong, 0);
    assert_int_equal(st->failures, 0);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Hand-written edge cases                                                                               */

static const scan_case literal_cases[] = {{LIT(""), SLOW},
                                          {LIT(" "), SLOW},
                                          {LIT(" \t\r\n"), SLOW},
                                          {LIT("null"), OK},
                                          {LIT("true"), OK},
                                          {LIT("false"), OK},
                                          {LIT(" \n\ttrue\r\n "), OK},
                                          {LIT("nul"), SLOW},
                                          {LIT("tru"), SLOW},
                                          {LIT("fals"), SLOW},
                                          {LIT("n"), SLOW},
                                          {LIT("nulll"), SLOW},
                                          {LIT("truex"), SLOW},
                                          {LIT("True"), SLOW},
                                          {LIT("NULL"), SLOW},
                                          {LIT("FALSE"), SLOW},
                                          {LIT("true false"), SLOW},
                                          {LIT("null,"), SLOW},
                                          {LIT("undefined"), SLOW},
                                          {LIT("NaN"), SLOW},
                                          {LIT("Infinity"), SLOW},
                                          {LIT("-Infinity"), SLOW},
                                          {LIT("\f1"), SLOW},       /* form feed is not JSON whitespace */
                                          {LIT("\v1"), SLOW},       /* nor is vertical tab */
                                          {LIT("\302\2401"), SLOW}, /* nor NBSP (octal escapes: C2 A0 '1') */
                                          {LIT("\357\273\2771"), SLOW}, /* BOM */
                                          {LIT("1\0"), SLOW},
                                          {LIT("\0"), SLOW},
                                          {LIT("\0001"), SLOW},
                                          {LIT("1 x"), SLOW},
                                          {LIT("{} []"), SLOW},
                                          {LIT("[]{}"), SLOW},
                                          {LIT("\"a\"\"b\""), SLOW},
                                          {LIT("/* c */ 1"), SLOW},
                                          {LIT("1 // c"), SLOW}};

static const scan_case number_cases[] = {{LIT("0"), OK},
                                         {LIT("-0"), OK},
                                         {LIT("1"), OK},
                                         {LIT("-1"), OK},
                                         {LIT("42"), OK},
                                         {LIT("0.5"), OK},
                                         {LIT("-0.5"), OK},
                                         {LIT("0.0"), OK},
                                         {LIT("-0.0"), OK},
                                         {LIT("1.0"), OK},
                                         {LIT("-0.000"), OK},
                                         {LIT("3.14159"), OK},
                                         {LIT("100.25"), OK},
                                         {LIT("123456789012345"), OK},   /* 15 characters */
                                         {LIT("-12345678901234"), OK},   /* 15 characters */
                                         {LIT("0.1234567890123"), OK},   /* 15 characters */
                                         {LIT("1234567890123456"), ANY}, /* longer numbers may go slow */
                                         {LIT("-123456789012345"), ANY},
                                         {LIT("9007199254740993"), ANY},
                                         {LIT("9223372036854775807"), ANY},
                                         {LIT("-9223372036854775808"), ANY},
                                         {LIT("9223372036854775808"), ANY},
                                         {LIT("99999999999999999999999999999999"), ANY},
                                         {LIT("0.30000000000000004"), ANY},
                                         {LIT("1.00000000000000000000001"), ANY},
                                         {LIT("1e5"), SLOW},
                                         {LIT("1E5"), SLOW},
                                         {LIT("1e+5"), SLOW},
                                         {LIT("1e-5"), SLOW},
                                         {LIT("-1.5e3"), SLOW},
                                         {LIT("1e400"), SLOW},
                                         {LIT("1e-400"), SLOW},
                                         {LIT("0e0"), SLOW},
                                         {LIT("1e"), SLOW},
                                         {LIT("1e+"), SLOW},
                                         {LIT("01"), SLOW},
                                         {LIT("00"), SLOW},
                                         {LIT("-01"), SLOW},
                                         {LIT("1."), SLOW},
                                         {LIT("-1."), SLOW},
                                         {LIT("1.e5"), SLOW},
                                         {LIT(".5"), SLOW},
                                         {LIT("-.5"), SLOW},
                                         {LIT("-"), SLOW},
                                         {LIT("--1"), SLOW},
                                         {LIT("+1"), SLOW},
                                         {LIT("- 1"), SLOW},
                                         {LIT("1 2"), SLOW},
                                         {LIT("0x10"), SLOW},
                                         {LIT("1.2.3"), SLOW},
                                         {LIT("1_000"), SLOW},
                                         {LIT("[01]"), SLOW},
                                         {LIT("[1.]"), SLOW},
                                         {LIT("[-]"), SLOW},
                                         {LIT("[-0,0.5,-0.0,7]"), OK},
                                         {LIT("[1e5]"), SLOW},
                                         {LIT("{\"a\":1e5}"), SLOW},
                                         {LIT("{\"a\":01}"), SLOW},
                                         {LIT("[1true]"), SLOW},
                                         {LIT("[1\"a\"]"), SLOW}};

static const scan_case string_cases[] = {
    {LIT("\"\""), OK},
    {LIT("\"abc\""), OK},
    {LIT("\"\\\"\""), OK},
    {LIT("\"\\\\\""), OK},
    {LIT("\"\\/\""), OK},
    {LIT("\"\\b\\f\\n\\r\\t\""), OK},
    {LIT("\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\""), OK},
    {LIT("\"\\u0041\""), OK},
    {LIT("\"\\u00e9\""), OK},
    {LIT("\"\\u00E9\""), OK},
    {LIT("\"\\u0001\\u001f\\u007f\""), OK},
    {LIT("\"\\u0080\\u07ff\\u0800\\uffff\\uFFFD\""), OK},
    {LIT("\"\\u2028\\u2029\""), OK},
    {LIT("\"\\uabcd\\uABCD\\uAbCd\""), OK},
    {LIT("\"\\u0000\""), SLOW},
    {LIT("\"a\\u0000b\""), SLOW},
    {LIT("\"\\ud83d\\ude00\""), OK},
    {LIT("\"\\uD83D\\uDE00\""), OK},
    {LIT("\"\\ud83d\""), OK},
    {LIT("\"\\ude00\""), OK},
    {LIT("\"\\udbff\\udfff\""), OK},
    {LIT("\"\\ud800x\""), OK},
    {LIT("\"\\ude00\\ud83d\""), OK},
    {LIT("\"\\u12\""), SLOW},
    {LIT("\"\\u12g4\""), SLOW},
    {LIT("\"\\u\""), SLOW},
    {LIT("\"\\U0041\""), SLOW},
    {LIT("\"\\x41\""), SLOW},
    {LIT("\"\\'\""), SLOW},
    {LIT("\"\\a\""), SLOW},
    {LIT("\"\\0\""), SLOW},
    {LIT("\"\\ \""), SLOW},
    {LIT("\"\\"), SLOW},
    {LIT("\"\\\""), SLOW},
    {LIT("\"abc"), SLOW},
    {LIT("\""), SLOW},
    {LIT("'abc'"), SLOW},
    {LIT("\"a\tb\""), SLOW},
    {LIT("\"a\nb\""), SLOW},
    {LIT("\"a\rb\""), SLOW},
    {LIT("\"\0\""), SLOW},
    {LIT("\"\x01\""), SLOW},
    {LIT("\"\x1f\""), SLOW},
    {LIT("\"\x7f\""), OK}, /* DEL is not a control character for JSON */
    {LIT("\" \""), OK},
    {LIT("\"h\xc3\xa9llo \xf0\x9f\x98\x80\""), OK},
    {LIT("\"\xe2\x80\xa8\xe2\x80\xa9\""), OK},
    {LIT("\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\""), OK},
    {LIT("\"\xe4\xb8\xad\xe6\x96\x87\\n\xd0\xba\xd0\xb8\xd1\x80\""), OK},
    {LIT("\"0123456789abcdef0123456789abcdef0123456789\\\"0123456789abcdef\""), OK}};

static const scan_case structure_cases[] = {
    {LIT("[]"), OK},
    {LIT("[ ]"), OK},
    {LIT(" [ \n ] "), OK},
    {LIT("{}"), OK},
    {LIT("{ }"), OK},
    {LIT("[1,2,3]"), OK},
    {LIT("[ 1 , 2 , 3 ]"), OK},
    {LIT("[[],[[]],{}]"), OK},
    {LIT("{\"a\":1}"), OK},
    {LIT("{ \"a\" : 1 , \"b\" : [ true , null , { \"c\" : \"d\" } ] }"), OK},
    {LIT("{\"\":1}"), OK},
    {LIT("{\"h\xc3\xa9\":\"\xf0\x9f\x98\x80\"}"), OK},
    {LIT("{\"a\":1,\"a\":2}"), OK},
    {LIT("{\"a\":1,\"b\":2,\"a\":3}"), OK},
    {LIT("{\"a\":{\"x\":1},\"a\":[2]}"), OK},
    {LIT("{\"a\":\"\\n\",\"b\":\"\\u00e9\"}"), OK},
    {LIT("{\"\\u0041\":1}"), SLOW},
    {LIT("{\"\\\"\":1}"), SLOW},
    {LIT("{\"\\u0000\":1}"), SLOW},
    {LIT("{\"a\":{\"\\n\":1}}"), SLOW},
    {LIT("[{\"\\/\":1}]"), SLOW},
    {LIT("[1,]"), SLOW},
    {LIT("[,1]"), SLOW},
    {LIT("[,]"), SLOW},
    {LIT("[1,,2]"), SLOW},
    {LIT("[1 2]"), SLOW},
    {LIT("[1"), SLOW},
    {LIT("[1,"), SLOW},
    {LIT("["), SLOW},
    {LIT("]"), SLOW},
    {LIT("[1]]"), SLOW},
    {LIT("[[1]"), SLOW},
    {LIT("[}"), SLOW},
    {LIT("{]"), SLOW},
    {LIT("{"), SLOW},
    {LIT("}"), SLOW},
    {LIT("{\"a\":1,}"), SLOW},
    {LIT("{,}"), SLOW},
    {LIT("{\"a\"}"), SLOW},
    {LIT("{\"a\":}"), SLOW},
    {LIT("{\"a\" 1}"), SLOW},
    {LIT("{\"a\"::1}"), SLOW},
    {LIT("{a:1}"), SLOW},
    {LIT("{'a':1}"), SLOW},
    {LIT("{1:1}"), SLOW},
    {LIT("{null:1}"), SLOW},
    {LIT("{\"a\":1 \"b\":2}"), SLOW},
    {LIT("{\"a\":1}}"), SLOW},
    {LIT("{\"a\":1"), SLOW},
    {LIT("{\"a\":1,"), SLOW},
    {LIT("{\"a\""), SLOW},
    {LIT("{\"a"), SLOW},
    {LIT("{\"a\":1}{\"b\":2}"), SLOW},
    {LIT("[\"a\":1]"), SLOW},
    {LIT("{\"a\",1}"), SLOW},
    {LIT("{\"a\":1;\"b\":2}"), SLOW},
    {LIT("{\"a\":\x01}"), SLOW},
    {LIT("{\"a\x01\":1}"), SLOW},
    {LIT("{\"a\":1}\0"), SLOW}};

static void test_literals(void **state) {
    (void)state;
    diff_stats st = {0};
    run_cases(literal_cases, sizeof literal_cases / sizeof *literal_cases, &st);
}

static void test_numbers(void **state) {
    (void)state;
    diff_stats st = {0};
    run_cases(number_cases, sizeof number_cases / sizeof *number_cases, &st);

    /* integers stay integers, reals stay reals, -0 is the integer 0 */
    static const struct {
        const char *text;
        json_type type;
        json_int_t i;
        double d;
    } typed[] = {
        {"0", JSON_INTEGER, 0, 0},
        {"-0", JSON_INTEGER, 0, 0},
        {"17", JSON_INTEGER, 17, 0},
        {"-17", JSON_INTEGER, -17, 0},
        {"123456789012345", JSON_INTEGER, 123456789012345, 0},
        {"0.5", JSON_REAL, 0, 0.5},
        {"-0.5", JSON_REAL, 0, -0.5},
        {"1.0", JSON_REAL, 0, 1.0},
        {"0.0", JSON_REAL, 0, 0.0},
        {"100.25", JSON_REAL, 0, 100.25},
    };
    for (size_t i = 0; i < sizeof typed / sizeof *typed; i++) {
        nc_span sp;
        assert_int_equal(nc_json_scan_value(typed[i].text, strlen(typed[i].text), &sp), NC_SCAN_OK);
        json_t *v = nc_json_build(sp.p, sp.len);
        assert_non_null(v);
        assert_int_equal(json_typeof(v), typed[i].type);
        if (typed[i].type == JSON_INTEGER)
            assert_true(json_integer_value(v) == typed[i].i);
        else
            assert_true(json_real_value(v) == typed[i].d);
        json_decref(v);
    }
    /* -0.0 keeps its sign, exactly as jansson reads it */
    json_t *v = nc_json_build(LIT("-0.0"));
    assert_non_null(v);
    assert_true(json_is_real(v));
    double d = json_real_value(v), mz = -0.0;
    assert_memory_equal(&d, &mz, sizeof d);
    json_decref(v);
}

static void test_strings(void **state) {
    (void)state;
    diff_stats st = {0};
    run_cases(string_cases, sizeof string_cases / sizeof *string_cases, &st);

    /* the decoded bytes of every escape */
    static const struct {
        const char *text, *bytes;
        size_t n;
    } dec[] = {
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", LIT("\"\\/\b\f\n\r\t")},
        {"\"\\u0041\"", LIT("A")},
        {"\"\\u00e9\"", LIT("\xc3\xa9")},
        {"\"\\u07FF\"", LIT("\xdf\xbf")},
        {"\"\\u0800\"", LIT("\xe0\xa0\x80")},
        {"\"\\u20ac\"", LIT("\xe2\x82\xac")},
        {"\"\\uffff\"", LIT("\xef\xbf\xbf")},
        {"\"x\\u0001y\"", LIT("x\x01y")},
        {"\"\\u007f\"", LIT("\x7f")},
        {"\"h\xc3\xa9llo \xf0\x9f\x98\x80\"", LIT("h\xc3\xa9llo \xf0\x9f\x98\x80")},
    };
    for (size_t i = 0; i < sizeof dec / sizeof *dec; i++) {
        nc_span sp;
        assert_int_equal(nc_json_scan_value(dec[i].text, strlen(dec[i].text), &sp), NC_SCAN_OK);
        json_t *v = nc_json_build(sp.p, sp.len);
        assert_non_null(v);
        assert_true(json_is_string(v));
        assert_int_equal(json_string_length(v), dec[i].n);
        assert_memory_equal(json_string_value(v), dec[i].bytes, dec[i].n);
        json_decref(v);
    }

    /* The SWAR string loop works on 8-byte words: put each special byte at every position of strings of
     * lengths around the word size, so every in-word offset and the tail loop are exercised. */
    /* (the multi-byte characters carry bytes that equal '"', '\\' or a control character once their
     * high bit is cleared: 0xA2, 0xDC, 0x9C, 0x80, 0x9F) */
    static const char *specials[] = {"\"",           "\\n",      "\\u00e9",  "\\u0000",  "\x01",
                                     "\x1f",         "\x7f",     " ",        "\xc3\xa9", "\xf0\x9f\x98\x80",
                                     "\\",           "\\ud83d",  "\xc2\xa2", "\xdc\x9c", "\xdc\xa2",
                                     "\xe2\x80\x9c", "\xc2\x80", "\xc2\x9f"};
    for (size_t s = 0; s < sizeof specials / sizeof *specials; s++) {
        for (size_t n = 0; n <= 34; n++) {
            for (size_t at = 0; at <= n; at++) {
                sbuf b = {0};
                sb_putc(&b, '"');
                for (size_t i = 0; i < at; i++) sb_putc(&b, (char)('a' + i % 26));
                sb_puts(&b, specials[s]);
                for (size_t i = at; i < n; i++) sb_putc(&b, (char)('A' + i % 26));
                sb_putc(&b, '"');
                differential(&st, b.p, b.len);
                /* and unterminated: the scanner must not run off the end */
                differential(&st, b.p, b.len - 1);
                free(b.p);
            }
        }
    }
    assert_int_equal(st.failures, 0);
}

static void test_structures(void **state) {
    (void)state;
    diff_stats st = {0};
    run_cases(structure_cases, sizeof structure_cases / sizeof *structure_cases, &st);

    /* duplicate keys: the last one wins, in the builder as in jansson */
    json_t *v = nc_json_build(LIT("{\"a\":1,\"b\":2,\"a\":\"three\"}"));
    assert_non_null(v);
    assert_int_equal(json_object_size(v), 2);
    assert_string_equal(json_string_value(json_object_get(v, "a")), "three");
    json_decref(v);
}

/* Long tokens: keys around the builder's 128-byte key buffer, escaped strings that make its scratch
 * buffer grow (and shrink back in use), long arrays, objects and whitespace runs. */
static void test_long_tokens(void **state) {
    (void)state;
    diff_stats st = {0};
    static const size_t klens[] = {0, 1, 126, 127, 128, 129, 255, 256, 1000, 5000};
    for (size_t i = 0; i < sizeof klens / sizeof *klens; i++) {
        sbuf b = {0};
        sb_puts(&b, "{\"");
        for (size_t k = 0; k < klens[i]; k++) sb_putc(&b, (char)('a' + k % 26));
        sb_puts(&b, "\":\"v\\n\",\"");
        for (size_t k = 0; k < klens[i]; k++) sb_putc(&b, (char)('A' + k % 26));
        sb_puts(&b, "\":[1,\"\\u00e9\"]}");
        assert_int_equal(differential(&st, b.p, b.len), NC_SCAN_OK);
        free(b.p);
    }
    /* escaped strings of growing, then shrinking, then growing sizes in one document */
    static const size_t slens[] = {1, 10, 1000, 3, 20000, 2, 7, 50000, 0, 5};
    sbuf b = {0};
    sb_putc(&b, '[');
    for (size_t i = 0; i < sizeof slens / sizeof *slens; i++) {
        if (i) sb_putc(&b, ',');
        sb_puts(&b, "{\"k\":\"");
        for (size_t k = 0; k < slens[i]; k++) sb_puts(&b, k % 3 == 0 ? "\\\"" : k % 3 == 1 ? "\\u20ac" : "x");
        sb_puts(&b, "\"}");
    }
    sb_putc(&b, ']');
    assert_int_equal(differential(&st, b.p, b.len), NC_SCAN_OK);
    /* long arrays and objects, long whitespace runs */
    b.len = 0;
    sb_puts(&b, "   \n\t");
    sb_putc(&b, '[');
    for (int i = 0; i < 20000; i++) {
        char num[32];
        snprintf(num, sizeof num, i % 2 ? "%d" : "-%d.25", i);
        if (i) sb_puts(&b, i % 100 ? "," : " ,\n\r\t ");
        sb_puts(&b, num);
    }
    sb_putc(&b, ']');
    for (int i = 0; i < 1000; i++) sb_putc(&b, ' ');
    assert_int_equal(differential(&st, b.p, b.len), NC_SCAN_OK);
    b.len = 0;
    sb_putc(&b, '{');
    for (int i = 0; i < 5000; i++) {
        char kv[64];
        snprintf(kv, sizeof kv, "%s\"key%d\":%d", i ? "," : "", i % 4000, i); /* some duplicates */
        sb_puts(&b, kv);
    }
    sb_puts(&b, ",\"pattern\":\"p\",\"data\":{\"x\":[]}}");
    assert_int_equal(differential(&st, b.p, b.len), NC_SCAN_OK);
    free(b.p);
    assert_int_equal(st.failures, 0);
}

/* Nested arrays / objects / mixtures of depth d (the number of containers around the innermost value). */
static void nested(sbuf *b, int kind, int d) {
    for (int i = 0; i < d; i++) {
        int obj = kind == 1 || (kind == 2 && i % 2);
        sb_puts(b, obj ? "{\"k\":" : "[");
    }
    sb_puts(b, kind == 3 ? "[]" : "1");
    for (int i = d - 1; i >= 0; i--) {
        int obj = kind == 1 || (kind == 2 && i % 2);
        sb_puts(b, obj ? "}" : "]");
    }
}

static void test_depth(void **state) {
    (void)state;
    diff_stats st = {0};
    static const int depths[] = {1, 2, 10, 62, 63, 64, 65, 66, 100, 500, 2047, 2048, 2049, 3000};
    for (int kind = 0; kind < 4; kind++) {
        for (size_t i = 0; i < sizeof depths / sizeof *depths; i++) {
            int d = depths[i];
            sbuf b = {0};
            nested(&b, kind, d);
            int rc = differential(&st, b.p, b.len);
            /* NC_SCAN_MAX_DEPTH counts the values on the path from the root down to the innermost one, that
             * one included: d containers around a scalar (kinds 0-2) make d + 1 levels, and kind 3 puts one
             * more (empty) array inside, also d + 1 levels. Deeper texts are left to jansson. */
            int depth = d + 1;
            if (depth <= NC_SCAN_MAX_DEPTH) assert_int_equal(rc, NC_SCAN_OK);
            if (depth > NC_SCAN_MAX_DEPTH) assert_int_equal(rc, NC_SCAN_SLOW);
            /* the same inside a packet */
            sbuf e = {0};
            sb_puts(&e, "{\"pattern\":\"p\",\"data\":");
            sb_put(&e, b.p, b.len);
            sb_puts(&e, ",\"id\":\"x\"}");
            differential(&st, e.p, e.len);
            free(e.p);
            free(b.p);
        }
    }
    /* the boundary, exactly: 63 arrays around a scalar and 64 nested empty arrays are fast; one more level
     * is not */
    sbuf b = {0};
    nc_span sp;
    nested(&b, 0, 63);
    assert_int_equal(nc_json_scan_value(b.p, b.len, &sp), NC_SCAN_OK);
    b.len = 0;
    nested(&b, 0, 64);
    assert_int_equal(nc_json_scan_value(b.p, b.len, &sp), NC_SCAN_SLOW);
    b.len = 0;
    nested(&b, 3, 63);
    assert_int_equal(nc_json_scan_value(b.p, b.len, &sp), NC_SCAN_OK);
    b.len = 0;
    nested(&b, 3, 64);
    assert_int_equal(nc_json_scan_value(b.p, b.len, &sp), NC_SCAN_SLOW);
    free(b.p);
    /* inside a packet the top-level object is not counted: its values have the same budget */
    const char *t = "{\"data\":[[1]]}";
    nc_env e;
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_int_equal(st.failures, 0);
}

/* Every prefix of a few valid documents (and every suffix, for good measure). */
static void test_truncations(void **state) {
    (void)state;
    static const char *docs[] = {
        "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"291ba06e633af2f60b9e9\"}",
        "{ \"response\" : { \"a\" : [ -0.5 , true , false , null , \"\\u00e9\\n\" ] } , \"err\" : 0 }",
        "[\"h\xc3\xa9llo \xf0\x9f\x98\x80\",{\"k\":{\"\":[]}},-12.25,0,\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
        "\"abcdefghijklmnopqrstuvwxyz \\u0041\\u00e9\\u20ac\"",
        "12345.5",
        "{\"a\":null,\"b\":true,\"c\":false,\"d\":\"\",\"e\":{},\"f\":[]}",
    };
    diff_stats st = {0};
    for (size_t d = 0; d < sizeof docs / sizeof *docs; d++) {
        size_t n = strlen(docs[d]);
        assert_int_equal(differential(&st, docs[d], n), NC_SCAN_OK);
        for (size_t k = 0; k < n; k++) differential(&st, docs[d], k);
        for (size_t k = 1; k < n; k++) differential(&st, docs[d] + k, n - k);
    }
    assert_int_equal(st.failures, 0);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Random documents, mutated                                                                             */

static const char *const key_pool[] = {"pattern",    "data",   "id", "metadata", "response",  "err",
                                       "isDisposed", "status", "a",  "",         "h\xc3\xa9", "cmd"};

static void gen_ws(uint64_t *r, sbuf *b) {
    if (rnd_below(r, 5) == 0) {
        static const char ws[] = " \t\n\r";
        size_t n = 1 + rnd_below(r, 3);
        for (size_t i = 0; i < n; i++) sb_putc(b, ws[rnd_below(r, 4)]);
    }
}

static void gen_string(uint64_t *r, sbuf *b) {
    static const char *const parts[] = {"a",
                                        "b",
                                        "Z",
                                        " ",
                                        "0",
                                        "longer text",
                                        "\\n",
                                        "\\\"",
                                        "\\\\",
                                        "\\/",
                                        "\\t",
                                        "\\b",
                                        "\\f",
                                        "\\r",
                                        "\\u0041",
                                        "\\u00e9",
                                        "\\u20AC",
                                        "\\u2028",
                                        "\xc3\xa9",
                                        "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80",
                                        "\x7f",
                                        "\\u0000",
                                        "\\ud83d\\ude00",
                                        "\\uDBFF\\uDFFF"};
    size_t n = rnd_below(r, 12);
    sb_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        size_t k = rnd_below(r, sizeof parts / sizeof *parts);
        /* the slow-path escapes (the last three) are rare */
        if (k + 3 >= sizeof parts / sizeof *parts && rnd_below(r, 4)) k = 0;
        sb_puts(b, parts[k]);
    }
    sb_putc(b, '"');
}

static void gen_number(uint64_t *r, sbuf *b) {
    static const char *const nums[] = {"0",
                                       "-0",
                                       "1",
                                       "-1",
                                       "42",
                                       "0.5",
                                       "-0.5",
                                       "100.25",
                                       "-0.0",
                                       "7.0",
                                       "123456789012345",
                                       "999",
                                       "-12",
                                       "3.14159",
                                       "1e5",
                                       "2E-3",
                                       "12345678901234567890",
                                       "0.30000000000000004"};
    size_t k = rnd_below(r, sizeof nums / sizeof *nums);
    if (k >= 14 && rnd_below(r, 3)) k = rnd_below(r, 14);
    sb_puts(b, nums[k]);
}

static void gen_value(uint64_t *r, sbuf *b, int depth) {
    size_t kind = rnd_below(r, depth > 4 ? 6 : 9);
    switch (kind) {
    case 0:
        sb_puts(b, "null");
        break;
    case 1:
        sb_puts(b, "true");
        break;
    case 2:
        sb_puts(b, "false");
        break;
    case 3:
    case 4:
        gen_number(r, b);
        break;
    case 5:
        gen_string(r, b);
        break;
    case 6:
    case 7: {
        sb_putc(b, '{');
        gen_ws(r, b);
        size_t n = rnd_below(r, 5);
        for (size_t i = 0; i < n; i++) {
            if (i) {
                sb_putc(b, ',');
                gen_ws(r, b);
            }
            if (rnd_below(r, 30) == 0) {
                sb_puts(b, "\"\\u0061\""); /* an escaped key */
            } else {
                sb_putc(b, '"');
                sb_puts(b, key_pool[rnd_below(r, sizeof key_pool / sizeof *key_pool)]);
                sb_putc(b, '"');
            }
            gen_ws(r, b);
            sb_putc(b, ':');
            gen_ws(r, b);
            gen_value(r, b, depth + 1);
            gen_ws(r, b);
        }
        sb_putc(b, '}');
        break;
    }
    default: {
        sb_putc(b, '[');
        gen_ws(r, b);
        size_t n = rnd_below(r, 5);
        for (size_t i = 0; i < n; i++) {
            if (i) {
                sb_putc(b, ',');
                gen_ws(r, b);
            }
            gen_value(r, b, depth + 1);
            gen_ws(r, b);
        }
        sb_putc(b, ']');
        break;
    }
    }
}

/* A packet-like document: a top-level object whose keys come mostly from the envelope names. */
static void gen_packet(uint64_t *r, sbuf *b) {
    gen_ws(r, b);
    sb_putc(b, '{');
    size_t n = rnd_below(r, 6);
    for (size_t i = 0; i < n; i++) {
        if (i) sb_putc(b, ',');
        gen_ws(r, b);
        sb_putc(b, '"');
        sb_puts(b, key_pool[rnd_below(r, 8 + (rnd_below(r, 4) == 0) * 4)]);
        sb_putc(b, '"');
        gen_ws(r, b);
        sb_putc(b, ':');
        gen_ws(r, b);
        gen_value(r, b, 1);
        gen_ws(r, b);
    }
    sb_putc(b, '}');
    gen_ws(r, b);
}

static void mutate(uint64_t *r, sbuf *b) {
    static const char *const ins[] = {"{", "}",   "[",        "]",    "\"",   ":",    ",",  "\\",
                                      " ", "\t",  "\n",       "0",    "1",    "9",    "-",  "+",
                                      ".", "e",   "E",        "t",    "n",    "f",    "u",  "x",
                                      "/", "\\u", "\xc3\xa9", "\x01", "\x1f", "\x7f", "\0", "\"\""};
    switch (rnd_below(r, 7)) {
    case 0: /* delete a byte */
        if (b->len) {
            size_t at = rnd_below(r, b->len);
            memmove(b->p + at, b->p + at + 1, b->len - at - 1);
            b->len--;
        }
        break;
    case 1:   /* insert a token-ish piece */
    case 2: { /* (twice as likely) */
        const char *s = ins[rnd_below(r, sizeof ins / sizeof *ins)];
        size_t n = *s ? strlen(s) : 1, at = rnd_below(r, b->len + 1);
        sbuf t = {0};
        sb_put(&t, b->p, at);
        sb_put(&t, s, n);
        sb_put(&t, b->p + at, b->len - at);
        free(b->p);
        *b = t;
        break;
    }
    case 3: /* replace a byte */
        if (b->len) b->p[rnd_below(r, b->len)] = ins[rnd_below(r, 25)][0];
        break;
    case 4: /* truncate */
        b->len = rnd_below(r, b->len + 1);
        break;
    case 5: /* delete a range */
        if (b->len) {
            size_t at = rnd_below(r, b->len), n = 1 + rnd_below(r, b->len - at);
            memmove(b->p + at, b->p + at + n, b->len - at - n);
            b->len -= n;
        }
        break;
    default: /* duplicate a range somewhere else */
        if (b->len) {
            size_t at = rnd_below(r, b->len), n = 1 + rnd_below(r, b->len - at),
                   to = rnd_below(r, b->len + 1);
            sbuf t = {0};
            sb_put(&t, b->p, to);
            sb_put(&t, b->p + at, n);
            sb_put(&t, b->p + to, b->len - to);
            free(b->p);
            *b = t;
        }
        break;
    }
}

static void test_random_differential(void **state) {
    (void)state;
    uint64_t r = UINT64_C(0x9E3779B97F4A7C15);
    diff_stats st = {0};
    size_t valid_ok = 0, valid = 0;
    for (int i = 0; i < 6000; i++) {
        sbuf b = {0};
        if (i % 2)
            gen_packet(&r, &b);
        else
            gen_value(&r, &b, 0);
        /* the document itself: valid JSON, so jansson must accept it */
        json_t *dom = NULL;
        assert_int_equal(nc_json_parse(b.p, b.len, &dom, NULL, 0), 0);
        json_decref(dom);
        valid++;
        if (differential(&st, b.p, b.len) == NC_SCAN_OK) valid_ok++;
        /* and mutants of it */
        for (int m = 0; m < 3; m++) {
            sbuf c = {0};
            sb_put(&c, b.p, b.len);
            size_t nmut = 1 + rnd_below(&r, 3);
            for (size_t k = 0; k < nmut; k++) mutate(&r, &c);
            differential(&st, c.p, c.len);
            free(c.p);
        }
        free(b.p);
    }
    fprintf(stderr,
            "random: %zu inputs (%zu not UTF-8, skipped), scanner OK %zu, env OK %zu, reply OK %zu; "
            "%zu of %zu unmutated documents fast\n",
            st.inputs, st.not_utf8, st.scan_ok, st.env_ok, st.reply_ok, valid_ok, valid);
    assert_int_equal(st.failures, 0);
    /* the differential must actually exercise the accepting path */
    assert_true(valid_ok > valid / 3);
    assert_true(st.scan_ok > 3000);
    assert_true(st.env_ok > 1000);
    assert_true(st.reply_ok > 1000);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Envelopes                                                                                             */

static void assert_span(const nc_span *sp, const char *text, const char *want, unsigned flags) {
    if (!want) {
        assert_null(sp->p);
        return;
    }
    assert_non_null(sp->p);
    assert_true(sp->p >= text && sp->p + sp->len <= text + strlen(text));
    if (sp->len != strlen(want) || memcmp(sp->p, want, sp->len) != 0) {
        show("span", sp->p, sp->len);
        fail_msg("span is not \"%s\"", want);
    }
    assert_int_equal(sp->flags, flags);
}

static void test_env_scan(void **state) {
    (void)state;
    nc_env e;
    const char *t;

    t = "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"291ba06e633af2f60b9e9\"}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.pattern, t, "{\"cmd\":\"sum\"}", 0);
    assert_span(&e.data, t, "[1,2,3]", 0);
    assert_span(&e.id, t, "\"291ba06e633af2f60b9e9\"", 0);
    assert_span(&e.metadata, t, NULL, 0);
    assert_int_equal(e.other_keys, 0);

    /* whitespace around values (and around the object) is excluded and does not flag the value;
     * whitespace inside a value does */
    t = " \n{ \"pattern\" :\t{ \"cmd\" : \"sum\" } ,\r\n \"data\" : 1 , \"metadata\" : {\"a\":[ ]} } \n";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.pattern, t, "{ \"cmd\" : \"sum\" }", NC_SPAN_WS);
    assert_span(&e.data, t, "1", 0);
    assert_span(&e.metadata, t, "{\"a\":[ ]}", NC_SPAN_WS);
    assert_span(&e.id, t, NULL, 0);
    assert_int_equal(e.other_keys, 0);

    /* escapes inside values, at any depth */
    t = "{\"pattern\":\"{\\\"a\\\":1}\",\"data\":{\"x\":[\"\\u00e9\"]},\"id\":\"plain\",\"metadata\":"
        "\"\\n\"}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.pattern, t, "\"{\\\"a\\\":1}\"", NC_SPAN_ESC);
    assert_span(&e.data, t, "{\"x\":[\"\\u00e9\"]}", NC_SPAN_ESC);
    assert_span(&e.id, t, "\"plain\"", 0);
    assert_span(&e.metadata, t, "\"\\n\"", NC_SPAN_ESC);

    /* both flags */
    t = "{\"data\":[ \"\\t\" ]}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.data, t, "[ \"\\t\" ]", NC_SPAN_WS | NC_SPAN_ESC);
    /* a space inside a string is not whitespace between tokens */
    t = "{\"data\":\"a b\",\"id\":\"\\\\ \"}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.data, t, "\"a b\"", 0);
    assert_span(&e.id, t, "\"\\\\ \"", NC_SPAN_ESC);

    /* the last duplicate wins, flags included */
    t = "{\"id\":\"\\n\",\"data\":[ 1 ],\"id\":2,\"data\":3,\"pattern\":null,\"id\":\"three\"}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.id, t, "\"three\"", 0);
    assert_span(&e.data, t, "3", 0);
    assert_span(&e.pattern, t, "null", 0);
    assert_int_equal(e.other_keys, 0);

    /* other keys: exact, case-sensitive names only */
    t = "{\"pattern\":\"a\",\"x\":1}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.pattern, t, "\"a\"", 0);
    assert_int_equal(e.other_keys, 1);
    t = "{\"Pattern\":1,\"pat\":2,\"patterns\":3,\"ids\":4,\"i\":5,\"\":6,\"meta\":7,\"dat\":8}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_null(e.pattern.p);
    assert_null(e.data.p);
    assert_null(e.id.p);
    assert_null(e.metadata.p);
    assert_int_equal(e.other_keys, 1);
    t = "{\"response\":1}"; /* a reply key is foreign to a request */
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_int_equal(e.other_keys, 1);
    t = "{}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_null(e.pattern.p);
    assert_null(e.data.p);
    assert_null(e.id.p);
    assert_null(e.metadata.p);
    assert_int_equal(e.other_keys, 0);
    t = " { } ";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);

    /* the output is reset on every call */
    t = "{\"pattern\":1,\"z\":0}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    t = "{\"data\":2}";
    assert_int_equal(nc_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_null(e.pattern.p);
    assert_int_equal(e.other_keys, 0);

    /* not an object, or not only one: slow */
    static const char *const slow[] = {
        "", " ", "null", "[]", "[{\"pattern\":1}]", "\"s\"", "1", "true", "{", "{\"pattern\":1",
        "{\"pattern\":1,}", "{\"pattern\":}", "{\"pattern\" 1}", "{pattern:1}", "{\"pattern\":1}x",
        "{\"pattern\":1}{}", "{\"pattern\":1} []",
        /* an escaped top-level key, even one that decodes to a known name */
        "{\"p\\u0061ttern\":\"x\"}", "{\"\\u0070attern\":\"x\"}", "{\"data\":1,\"\\\"\":2}",
        "{\"\\u0000\":1}",
        /* escaped keys below the top level too */
        "{\"data\":{\"\\n\":1}}",
        /* values the scanner leaves to the DOM */
        "{\"data\":1e5}", "{\"data\":\"\\u0000\"}", "{\"id\":12345678901234567890}", "{\"data\":01}"};
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++) {
        if (nc_env_scan(slow[i], strlen(slow[i]), &e) != NC_SCAN_SLOW) fail_msg("accepted: %s", slow[i]);
    }
    /* a raw NUL after the object */
    assert_int_equal(nc_env_scan(LIT("{}\0"), &e), NC_SCAN_SLOW);
}

static void test_reply_env_scan(void **state) {
    (void)state;
    nc_reply_env e;
    const char *t;

    t = "{\"response\":6,\"isDisposed\":true,\"id\":\"291ba06e633af2f60b9e9\"}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.response, t, "6", 0);
    assert_span(&e.disposed, t, "true", 0);
    assert_span(&e.id, t, "\"291ba06e633af2f60b9e9\"", 0);
    assert_span(&e.err, t, NULL, 0);
    assert_span(&e.status, t, NULL, 0);
    assert_int_equal(e.other_keys, 0);
    assert_int_equal(e.nkeys, 3);

    t = "{\"id\":\"f6\",\"status\":\"error\",\"err\":\"There is no matching message handler defined in the "
        "remote "
        "service.\"}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.id, t, "\"f6\"", 0);
    assert_span(&e.status, t, "\"error\"", 0);
    assert_span(&e.err, t, "\"There is no matching message handler defined in the remote service.\"", 0);
    assert_span(&e.response, t, NULL, 0);
    assert_span(&e.disposed, t, NULL, 0);
    assert_int_equal(e.other_keys, 0);
    assert_int_equal(e.nkeys, 3);

    t = "{ \"err\" : { \"code\" : 42 , \"message\" : \"bad\\tthing\" } , \"isDisposed\" : true , \"id\" : 7 "
        "}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.err, t, "{ \"code\" : 42 , \"message\" : \"bad\\tthing\" }", NC_SPAN_WS | NC_SPAN_ESC);
    assert_span(&e.disposed, t, "true", 0);
    assert_span(&e.id, t, "7", 0);
    assert_int_equal(e.nkeys, 3);

    /* a foreign key makes the reply foreign (NestJS then delivers the whole object as the response) */
    t = "{\"id\":\"d7\",\"response\":5,\"isDisposed\":true,\"extra\":1}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.response, t, "5", 0);
    assert_int_equal(e.other_keys, 1);
    assert_int_equal(e.nkeys, 4);
    t = "{\"pattern\":\"x\",\"data\":1}"; /* a request is foreign to a client */
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_int_equal(e.other_keys, 1);
    assert_int_equal(e.nkeys, 2);
    t = "{\"Response\":1,\"disposed\":true}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_null(e.response.p);
    assert_null(e.disposed.p);
    assert_int_equal(e.other_keys, 1);
    assert_int_equal(e.nkeys, 2);

    /* every known key, null/false values */
    t = "{\"err\":null,\"response\":1,\"isDisposed\":false,\"status\":null,\"id\":null}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.err, t, "null", 0);
    assert_span(&e.response, t, "1", 0);
    assert_span(&e.disposed, t, "false", 0);
    assert_span(&e.status, t, "null", 0);
    assert_span(&e.id, t, "null", 0);
    assert_int_equal(e.other_keys, 0);
    assert_int_equal(e.nkeys, 5);

    /* the empty object: no keys */
    t = "{}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_int_equal(e.nkeys, 0);
    assert_int_equal(e.other_keys, 0);
    assert_null(e.id.p);

    /* duplicates: the last one wins; nkeys counts occurrences */
    t = "{\"response\":1,\"response\":[2],\"id\":\"a\"}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_span(&e.response, t, "[2]", 0);
    assert_int_equal(e.nkeys, 3);

    /* reset between calls */
    t = "{\"x\":1}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_int_equal(e.other_keys, 1);
    t = "{\"id\":1}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_int_equal(e.other_keys, 0);
    assert_int_equal(e.nkeys, 1);

    static const char *const slow[] = {"",
                                       "null",
                                       "[]",
                                       "6",
                                       "{\"id\":1",
                                       "{\"id\":1}1",
                                       "{\"\\u0069d\":1}",
                                       "{\"response\":1e3}",
                                       "{\"err\":\"\\u0000\"}"};
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++) {
        if (nc_reply_env_scan(slow[i], strlen(slow[i]), &e) != NC_SCAN_SLOW)
            fail_msg("accepted: %s", slow[i]);
    }
}

static void test_span_truthy(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int truthy;
    } cases[] = {{"false", 0},     {"null", 0},      {"0", 0},        {"-0", 0},          {"0.0", 0},
                 {"-0.0", 0},      {"-0.000", 0},    {"0.000000", 0}, {"\"\"", 0},        {" 0 ", 0},
                 {"true", 1},      {"1", 1},         {"-1", 1},       {"0.1", 1},         {"-0.001", 1},
                 {"10", 1},        {"100.00", 1},    {"0.5", 1},      {"\"a\"", 1},       {"\"0\"", 1},
                 {"\"false\"", 1}, {"\" \"", 1},     {"\"\\n\"", 1},  {"{}", 1},          {"[]", 1},
                 {"[0]", 1},       {"{\"a\":0}", 1}, {"[false]", 1},  {"\"\xc3\xa9\"", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nc_span sp;
        assert_int_equal(nc_json_scan_value(cases[i].text, strlen(cases[i].text), &sp), NC_SCAN_OK);
        if (!!nc_span_truthy(&sp) != cases[i].truthy)
            fail_msg("%s: truthy %d, expected %d", cases[i].text, nc_span_truthy(&sp), cases[i].truthy);
    }
    /* an absent key (undefined) is falsy */
    nc_span none = {NULL, 0, 0};
    assert_false(nc_span_truthy(&none));

    /* through the reply scanner, the way the client reads err and isDisposed */
    nc_reply_env e;
    const char *t = "{\"err\":0,\"response\":4,\"isDisposed\":\"\"}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_false(nc_span_truthy(&e.err));
    assert_false(nc_span_truthy(&e.disposed));
    assert_true(nc_span_truthy(&e.response));
    assert_false(nc_span_truthy(&e.status));
    t = "{\"err\":{\"message\":\"E\"},\"isDisposed\":1}";
    assert_int_equal(nc_reply_env_scan(t, strlen(t), &e), NC_SCAN_OK);
    assert_true(nc_span_truthy(&e.err));
    assert_true(nc_span_truthy(&e.disposed));
}

/* ---------------------------------------------------------------------------------------------------- */
/* Recorded NestJS traffic                                                                               */

static char *read_vector(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tcp/%s", NESTC_VECTORS_DIR, name);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, fp), (size_t)sz);
    b[sz] = '\0';
    fclose(fp);
    *len = (size_t)sz;
    return b;
}

/* A packet body from the recordings: it must scan fast (NestJS writes plain compact JSON), agree with
 * jansson, and carry the keys the DOM has. `dir` is 'C' for a request/event, 'S' for a reply, 0 when
 * unknown (both envelope scanners are tried, neither is required to be fast). */
static void vector_body(diff_stats *st, const char *body, size_t len, char dir, size_t *nbodies) {
    (*nbodies)++;
    int rc = differential(st, body, len);
    if (dir == 0) return;
    if (rc != NC_SCAN_OK) {
        show("body", body, len);
        fail_msg("a recorded packet scans slow");
    }
    if (dir == 'C') {
        nc_env e;
        assert_int_equal(nc_env_scan(body, len, &e), NC_SCAN_OK);
        assert_non_null(e.pattern.p);
        assert_int_equal(e.other_keys, 0);
    } else {
        nc_reply_env e;
        assert_int_equal(nc_reply_env_scan(body, len, &e), NC_SCAN_OK);
        assert_non_null(e.id.p);
        assert_true(e.nkeys >= 2);
    }
}

/* Splits a NestJS byte stream ("<utf16 units>#<json>"...) into bodies. */
static void vector_stream(diff_stats *st, const char *name, char dir, size_t *nbodies) {
    size_t len;
    char *s = read_vector(name, &len);
    size_t at = 0, frames = 0;
    while (at < len) {
        size_t units = 0;
        while (at < len && s[at] >= '0' && s[at] <= '9') units = units * 10 + (size_t)(s[at++] - '0');
        assert_true(at < len && s[at] == '#');
        size_t start = ++at, got = 0;
        while (at < len && got < units) {
            unsigned char c = (unsigned char)s[at++];
            got += (c & 0xC0) != 0x80;
            got += (c & 0xF8) == 0xF0;
            while (at < len && ((unsigned char)s[at] & 0xC0) == 0x80) at++;
        }
        assert_int_equal(got, units);
        vector_body(st, s + start, at - start, dir, nbodies);
        frames++;
    }
    assert_true(frames > 10);
    free(s);
}

static void test_vectors(void **state) {
    (void)state;
    diff_stats st = {0};
    size_t n = 0, len;

    /* session.txt: "C>S <n>#<json>" and "S>C <n>#<json>" lines */
    char *s = read_vector("session.txt", &len);
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "C>S ", 4) && strncmp(line, "S>C ", 4)) continue;
        char *body = strchr(line, '#');
        assert_non_null(body);
        body++;
        vector_body(&st, body, strlen(body), line[0], &n);
    }
    free(s);
    assert_true(n >= 40);

    /* unicode.txt: "<dir> text : <n>#<json>" */
    s = read_vector("unicode.txt", &len);
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        char *t = strstr(line, " text : ");
        if (!t) continue;
        char *body = strchr(t, '#');
        assert_non_null(body);
        body++;
        vector_body(&st, body, strlen(body), line[0], &n);
    }
    free(s);

    /* framing-probes.txt: DATA(...) "<n>#<json with \" escapes>" (replies of the server) */
    s = read_vector("framing-probes.txt", &len);
    size_t probes = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        char *d = strstr(line, "DATA(+");
        if (!d) continue;
        char *q = strchr(d, '"');
        assert_non_null(q);
        sbuf b = {0};
        for (q++; *q && *q != '"'; q++) {
            if (*q == '\\' && q[1]) q++;
            sb_putc(&b, *q);
        }
        char *body = strchr(b.p, '#');
        assert_non_null(body);
        body++;
        vector_body(&st, body, b.len - (size_t)(body - b.p), 'S', &n);
        probes++;
        free(b.p);
    }
    free(s);
    assert_true(probes >= 9);

    /* client-behaviour.txt: request bodies the client sent, and the values the Observable produced */
    s = read_vector("client-behaviour.txt", &len);
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        char *g = strstr(line, "fake server got ");
        if (g) {
            g += strlen("fake server got ");
            vector_body(&st, g, strlen(g), 'C', &n);
            continue;
        }
        char *v = strstr(line, "VALUES ");
        if (v) {
            v += strlen("VALUES ");
            vector_body(&st, v, strlen(v), 0, &n);
        }
    }
    free(s);

    /* the raw recorded byte streams */
    vector_stream(&st, "session.client-to-server.bin", 'C', &n);
    vector_stream(&st, "session.server-to-client.bin", 'S', &n);

    fprintf(stderr, "vectors: %zu bodies\n", n);
    assert_true(n >= 100);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.not_utf8, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),    cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),     cmocka_unit_test(test_structures),
        cmocka_unit_test(test_long_tokens), cmocka_unit_test(test_depth),
        cmocka_unit_test(test_truncations), cmocka_unit_test(test_random_differential),
        cmocka_unit_test(test_env_scan),    cmocka_unit_test(test_reply_env_scan),
        cmocka_unit_test(test_span_truthy), cmocka_unit_test(test_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
