/* Non-finite numbers, as JavaScript writes them: nc_json_number gives null for NaN and ±Infinity (where
 * json_real() gives NULL, which nc_reply sends as undefined), the JSON writer never writes a `nan`, `inf`,
 * `NaN` or `Infinity` token, and a handler replying nc_json_number(INFINITY) gives its caller one value,
 * null, like a NestJS handler returning Infinity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "codec/json_write.h"
#include "nestc/nestc.h"
#include "tcp_fixture.h"

/* The writer's text for `v` (stolen), NUL-terminated, in a static buffer. */
static const char *written(json_t *v) {
    static char text[256];
    nc_buf b = {0};
    assert_non_null(v);
    assert_int_equal(nc_json_write(&b, v), 0);
    assert_true(b.len < sizeof text);
    memcpy(text, b.data, b.len);
    text[b.len] = '\0';
    nc_buf_free(&b);
    json_decref(v);
    return text;
}

/* No token of a non-finite number, in any case ("nan", "inf", "NaN", "Infinity"). */
static int has_nonfinite_token(const char *s) {
    for (const char *p = s; *p; p++)
        if (!strncasecmp(p, "nan", 3) || !strncasecmp(p, "inf", 3)) return 1;
    return 0;
}

static void nonfinite_is_null(void **st) {
    (void)st;
    double bad[] = {NAN, -NAN, INFINITY, -INFINITY, HUGE_VAL, -HUGE_VAL};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(json_real(bad[i])); /* why the helper exists: jansson's NULL is undefined once replied */
        json_t *v = nc_json_number(bad[i]);
        assert_non_null(v);
        assert_true(json_is_null(v));
        assert_string_equal(written(v), "null");
    }
}

static void finite_numbers(void **st) {
    (void)st;
    json_t *v = nc_json_number(5.0);
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), 5);
    assert_string_equal(written(v), "5");
    v = nc_json_number(-0.0);
    assert_true(json_is_integer(v));
    assert_string_equal(written(v), "0"); /* JSON.stringify(-0) */
    v = nc_json_number(9007199254740992.0);
    assert_true(json_is_integer(v));
    assert_string_equal(written(v), "9007199254740992");
    v = nc_json_number(-9007199254740992.0);
    assert_true(json_is_integer(v));
    assert_string_equal(written(v), "-9007199254740992");
    v = nc_json_number(18014398509481984.0); /* 2^54: integral but beyond what an integer holds exactly */
    assert_true(json_is_real(v));
    assert_string_equal(written(v), "18014398509481984");
    v = nc_json_number(0.1);
    assert_true(json_is_real(v));
    assert_string_equal(written(v), "0.1");
    v = nc_json_number(-1.5e-7);
    assert_string_equal(written(v), "-1.5e-7");
    v = nc_json_number(1e300);
    assert_string_equal(written(v), "1e+300");
}

/* Every double the writer may meet, finite or not, bare or nested: never a non-JSON token. */
static void writer_never_writes_nonfinite_tokens(void **st) {
    (void)st;
    double ds[] = {0,       -0.0,     1,    -1,   0.5, DBL_MAX,  -DBL_MAX,
                   DBL_MIN, 4.9e-324, 1e21, 1e-7, NAN, INFINITY, -INFINITY};
    json_t *arr = json_array();
    for (size_t i = 0; i < sizeof ds / sizeof *ds; i++) {
        json_t *v = nc_json_number(ds[i]);
        json_array_append(arr, v);
        assert_false(has_nonfinite_token(written(v)));
    }
    json_t *obj = json_object();
    json_object_set_new(obj, "a", arr);
    const char *t = written(obj);
    assert_false(has_nonfinite_token(t));
    assert_non_null(strstr(t, "null,null,null]"));
}

/* JSON.parse's Infinity (a number beyond the double range) is held as a real holding ±infinity so that
 * handlers compute with it as JavaScript does; written back, it is null, as JSON.stringify writes it. */
static void parsed_infinity_writes_null(void **st) {
    (void)st;
    json_t *v = NULL;
    const char *text = "[1e400,{\"a\":-1e400},2]";
    assert_int_equal(nc_json_parse(text, strlen(text), &v, NULL, 0), 0);
    assert_true(isinf(json_number_value(json_array_get(v, 0))));
    assert_string_equal(written(v), "[null,{\"a\":null},2]");
}

/* ---- end to end: a handler replies nc_json_number(INFINITY) -------------------------------------------- */

static void h_infinity(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    nc_reply(req, nc_json_number(INFINITY));
}
static void h_json_real_infinity(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    nc_reply(req, json_real(INFINITY)); /* NULL: undefined, what the helper avoids */
}

static void reply_infinity_is_null(void **st) {
    (void)st;
    tcp_server_new(NULL);
    assert_int_equal(nc_server_message(srv, "inf", h_infinity, NULL), 0);
    assert_int_equal(nc_server_message(srv, "raw", h_json_real_infinity, NULL), 0);
    tcp_listen_connect();

    call c = call_new();
    assert_int_equal(nc_client_send(cli, "inf", NULL, NULL, on_value, on_done, &c), 0);
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    assert_int_equal(json_array_size(c.values), 1); /* one value: NestJS's lastValueFrom gets null */
    assert_true(json_is_null(json_array_get(c.values, 0)));
    call_free(&c);

    /* json_real(INFINITY) is NULL: the stream ends with no value (EmptyError for a NestJS caller) */
    c = call_new();
    assert_int_equal(nc_client_send(cli, "raw", NULL, NULL, on_value, on_done, &c), 0);
    run_until(&c.done, 1);
    assert_int_equal(c.err, 0);
    assert_int_equal(json_array_size(c.values), 0);
    call_free(&c);
    tcp_free();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nonfinite_is_null),
        cmocka_unit_test(finite_numbers),
        cmocka_unit_test(writer_never_writes_nonfinite_tokens),
        cmocka_unit_test(parsed_infinity_writes_null),
        cmocka_unit_test(reply_infinity_is_null),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
