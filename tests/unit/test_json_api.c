/* JSON that NestJS accepts, through the public API with both ends on one loop: a lone UTF-16 surrogate
 * (WTF-8 in jansson values, see include/nestc/message.h) in data, in a pattern and in an error; deep
 * values; JSON.parse's Infinity. Each with another call in flight on the same connection, which must not
 * be failed by it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>
#include <uv.h>

#include "codec/json_build.h"
#include "codec/json_write.h"
#include "nestc/nestc.h"

#include "tcp_fixture.h"

static void h_echo(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_incref(nc_msg_data(m)));
}
static void h_fail(nc_request *req, const nc_msg *m, void *u) {
    nc_reply_error(req, json_incref(nc_msg_data(m)));
}
static void h_raw_echo(nc_request *req, const nc_msg *m, void *u) {
    size_t n;
    const char *t = nc_msg_data_json(m, &n);
    nc_reply_json(req, t, n);
}
/* The sum as JavaScript computes it: Infinity stays Infinity (a real), written null. */
static void h_add(nc_request *req, const nc_msg *m, void *u) {
    double s = 0;
    size_t i;
    json_t *v;
    json_array_foreach(nc_msg_data(m), i, v) s += json_number_value(v);
    nc_reply(req, isinf(s) ? json_string(s > 0 ? "Infinity" : "-Infinity") : json_real(s));
}

#define LONE "\xed\xa0\xbd" /* WTF-8 of the lone high surrogate U+D83D */

/* What nc_msg_data_json gave the last "dataJson" request. */
static char data_json_seen[256];
static int data_json_calls;
static void h_data_json(nc_request *req, const nc_msg *m, void *u) {
    size_t n;
    const char *t = nc_msg_data_json(m, &n);
    snprintf(data_json_seen, sizeof data_json_seen, "%.*s", (int)n, t);
    data_json_calls++;
    nc_reply(req, json_true());
}

static void start(void) {
    uv_loop_init(&loop);
    tcp_server_new(NULL);
    nc_server_message(srv, "echo", h_echo, NULL);
    nc_server_message(srv, "fail", h_fail, NULL);
    nc_server_message(srv, "rawEcho", h_raw_echo, NULL);
    nc_server_message(srv, "add", h_add, NULL);
    nc_server_message(srv, "dataJson", h_data_json, NULL);
    nc_server_message(srv, "cut" LONE, h_echo, NULL); /* a string pattern with a lone surrogate */
    tcp_listen_connect();
}

static void stop(void) {
    tcp_free();
    while (uv_run(&loop, UV_RUN_NOWAIT)) {
    }
    uv_loop_close(&loop);
}

/* Runs the loop until each of the n calls is done. */
static void run_until_all(call *c, int n) {
    for (int i = 0; i < n; i++)
        while (!c[i].done) uv_run(&loop, UV_RUN_ONCE);
}

static void test_lone_surrogates(void **st) {
    start();
    call c[5];
    for (int i = 0; i < 5; i++) c[i] = (call){json_array(), 0, 0, NULL};
    json_t *data =
        json_pack("[o,o,o]", json_stringn_nocheck("ab" LONE, 5), json_stringn_nocheck("\xed\xb8\x80x", 4),
                  json_stringn_nocheck("\xf0\x9f\x98\x80", 4));
    json_t *cut = json_stringn_nocheck("cut" LONE, 6);
    json_t *bad = json_pack("{s:o}", "message", json_stringn_nocheck(LONE, 3));
    json_t *seven = json_integer(7); /* send borrows its data */
    assert_int_equal(nc_client_send(cli, "echo", seven, NULL, on_value, on_done, &c[0]), 0);
    json_decref(seven);
    assert_int_equal(nc_client_send(cli, "echo", data, NULL, on_value, on_done, &c[1]), 0);
    assert_int_equal(nc_client_send_json(cli, cut, data, NULL, on_value, on_done, &c[2]), 0);
    assert_int_equal(nc_client_send(cli, "fail", bad, NULL, on_value, on_done, &c[3]), 0);
    assert_int_equal(nc_client_send(cli, "rawEcho", data, NULL, on_value, on_done, &c[4]), 0);
    run_until_all(c, 5);
    assert_int_equal(c[0].err, 0);
    assert_int_equal(json_integer_value(json_array_get(c[0].values, 0)), 7);
    for (int i = 1; i < 5; i++) {
        if (i == 3) continue;
        assert_int_equal(c[i].err, 0);
        json_t *got = json_array_get(c[i].values, 0);
        assert_true(json_equal(got, data)); /* the same bytes back: WTF-8 stays WTF-8 */
        assert_memory_equal(json_string_value(json_array_get(got, 0)), "ab" LONE, 6);
    }
    assert_int_equal(c[3].err, NC_EREMOTE);
    assert_true(json_equal(c[3].error, bad));
    for (int i = 0; i < 5; i++) {
        json_decref(c[i].values);
        json_decref(c[i].error);
    }
    json_decref(data);
    json_decref(cut);
    json_decref(bad);
    stop();
}

static void test_deep_and_infinity(void **st) {
    start();
    call c[3];
    for (int i = 0; i < 3; i++) c[i] = (call){json_array(), 0, 0, NULL};
    json_t *deep = json_array(), *cur = deep;
    for (int i = 1; i < 5000; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    json_array_append_new(cur, json_string("bottom"));
    json_t *inf = NULL;
    assert_int_equal(nc_json_parse("[1e400,1]", 9, &inf, NULL, 0), 0);
    assert_true(json_real_value(json_array_get(inf, 0)) == HUGE_VAL); /* JSON.parse's Infinity */
    assert_int_equal(nc_client_send(cli, "echo", deep, NULL, on_value, on_done, &c[0]), 0);
    assert_int_equal(nc_client_send(cli, "add", inf, NULL, on_value, on_done, &c[1]), 0);
    json_t *one = json_integer(1);
    assert_int_equal(nc_client_send(cli, "echo", one, NULL, on_value, on_done, &c[2]), 0);
    json_decref(one);
    run_until_all(c, 3);
    assert_int_equal(c[0].err, 0);
    assert_true(json_equal(json_array_get(c[0].values, 0), deep));
    /* the client writes Infinity as null, as JSON.stringify does: the handler adds [null,1] */
    assert_int_equal(c[1].err, 0);
    assert_true(json_number_value(json_array_get(c[1].values, 0)) == 1.0);
    assert_int_equal(c[2].err, 0);
    for (int i = 0; i < 3; i++) {
        nc_json_free(c[i].values);
        json_decref(c[i].error);
    }
    nc_json_free(deep);
    json_decref(inf);
    stop();
}

/* nc_msg_data_json gives the payload's text as JSON.stringify would write the value, not the bytes
 * received, whenever they had escapes or whitespace: "\uD83D" becomes "\ud83d" (lowercase), "\u00e9"
 * becomes é, whitespace goes. Text with neither is given as received. Raw texts: nestc's own client
 * would write them already in that form. */
static void test_data_json_rewritten(void **st) {
    start();
    static const struct {
        const char *sent, *seen;
    } cases[] = {
        {"\"\\uD83D\"", "\"\\ud83d\""},
        {"\"\\u00e9\"", "\"\xc3\xa9\""},
        {"[ \"\\ud83d\\ude00\" , {\"a\" : 1} ]", "[\"\xf0\x9f\x98\x80\",{\"a\":1}]"},
        {"[1.50,\"\\/\"]", "[1.5,\"/\"]"},
        {"{\"k\":\"plain \xc3\xa9\"}", "{\"k\":\"plain \xc3\xa9\"}"},
    };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)nc_server_port(srv))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0); /* the listener's backlog takes it */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[200], frame[220];
        int bn = snprintf(body, sizeof body, "{\"pattern\":\"dataJson\",\"data\":%s,\"id\":\"%zu\"}",
                          cases[i].sent, i);
        /* the prefix counts UTF-16 units: the one non-ASCII case has a 2-byte é, one unit */
        int units = bn - (strstr(cases[i].sent, "\xc3\xa9") ? 1 : 0);
        int fn = snprintf(frame, sizeof frame, "%d#%s", units, body);
        assert_int_equal(write(fd, frame, (size_t)fn), fn);
        int before = data_json_calls;
        while (data_json_calls == before) uv_run(&loop, UV_RUN_ONCE);
        assert_string_equal(data_json_seen, cases[i].seen);
    }
    close(fd);
    stop();
}

/* Log lines quote the peer's pattern: a newline in it must not start a forged line, an ESC must not reach
 * the terminal, and a lone surrogate (WTF-8) or other ill-formed bytes must not be written raw. */
static char logged[2048];
static int nlogged;
static void capture_log(void *u, nc_log_level level, const char *component, const char *message) {
    if (!strstr(message, "Event pattern")) return;
    snprintf(logged, sizeof logged, "%s", message);
    nlogged++;
}
static void test_log_quotes_peer_text(void **st) {
    nc_log_set_default(capture_log, NULL, NC_LOG_INFO);
    start();
    call c = {json_array(), 0, 0, NULL};
    static const char hostile[] = "x\n[nestc] ERROR forged\x1b[31m\xc2\x9b" LONE "\xc3\xa9\\";
    json_t *pat = json_stringn_nocheck(hostile, sizeof hostile - 1);
    assert_int_equal(nc_client_emit_json(cli, pat, NULL, NULL, on_done, &c), 0);
    while (!nlogged) uv_run(&loop, UV_RUN_ONCE);
    /* one line, controls and ill-formed bytes as \xNN, é and the backslash kept */
    assert_string_equal(logged,
                        "There is no matching event handler defined in the remote service. Event pattern: "
                        "x\\x0a[nestc] ERROR forged\\x1b[31m\\xc2\\x9b\\xed\\xa0\\xbd\xc3\xa9\\");
    run_until_all(&c, 1);
    json_decref(c.values);
    json_decref(pat);
    stop();
    nc_log_set_default(NULL, NULL, NC_LOG_INFO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lone_surrogates),
        cmocka_unit_test(test_deep_and_infinity),
        cmocka_unit_test(test_data_json_rewritten),
        cmocka_unit_test(test_log_quotes_peer_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
