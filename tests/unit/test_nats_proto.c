/* The NATS protocol parser and writers (codec/nats_proto.c), with the byte sequences of
 * ../shared/spec/vectors/nats/ (session.txt, headers-and-queue.txt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "codec/nats_proto.h"
#include "nestc/error.h"

#define BODY "{\"pattern\":\"ctx\",\"data\":{\"a\":1},\"id\":\"eb91cd9e2e4f6c260d578\"}"
#define HDRS "NATS/1.0\r\nx-trace: t-1\r\nx-version: 1.0.0\r\n\r\n"

static const char STREAM[] =
    "INFO {\"server_id\":\"x\",\"version\":\"2.9.10\",\"headers\":true,\"max_payload\":1048576} \r\n"
    "PING\r\n"
    "MSG {\"cmd\":\"sum\"} 1 _INBOX.DhiXt0umFDNMUcnQmeafZl 69\r\n"
    "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"846d38438cd29717da7cf\"}\r\n"
    "HMSG ctx 3 _INBOX.WDbht6izZf1sTRaznhtzNA 44 105\r\n" HDRS BODY "\r\n"
    "HMSG _INBOX.x 10 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    "msg user_created 2 48\r\n{\"pattern\":\"user_created\",\"data\":{\"name\":\"Ann\"}}\r\n"
    "+OK\r\n"
    "-ERR 'Stale Connection'\r\n"
    "PONG\r\n";

typedef struct seen {
    int n;
    int kinds[16];
    char text[16][256];
} seen;

static int collect(void *user, const nc_nats_op *op) {
    seen *s = user;
    assert_true(s->n < 16);
    s->kinds[s->n] = op->kind;
    char *t = s->text[s->n];
    if (op->kind == NC_NATS_MSG)
        snprintf(t, 256, "%.*s|%llu|%.*s|%zu|%.*s", (int)op->subject_len, op->subject,
                 (unsigned long long)op->sid, (int)op->reply_len, op->reply ? op->reply : "", op->hdr_len,
                 (int)op->payload_len, op->payload);
    else if (op->arg)
        snprintf(t, 256, "%.*s", (int)op->arg_len, op->arg);
    else
        t[0] = '\0';
    s->n++;
    return 0;
}

static void check_stream(const seen *s) {
    assert_int_equal(s->n, 9);
    assert_int_equal(s->kinds[0], NC_NATS_INFO);
    assert_non_null(strstr(s->text[0], "\"max_payload\":1048576"));
    assert_int_equal(s->kinds[1], NC_NATS_PING);
    assert_string_equal(s->text[2],
                        "{\"cmd\":\"sum\"}|1|_INBOX.DhiXt0umFDNMUcnQmeafZl|0|"
                        "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"846d38438cd29717da7cf\"}");
    assert_string_equal(s->text[3], "ctx|3|_INBOX.WDbht6izZf1sTRaznhtzNA|44|" BODY);
    assert_string_equal(s->text[4], "_INBOX.x|10||16|"); /* no responders: headers only */
    assert_string_equal(s->text[5],
                        "user_created|2||0|{\"pattern\":\"user_created\",\"data\":{\"name\":\"Ann\"}}");
    assert_int_equal(s->kinds[6], NC_NATS_OK);
    assert_int_equal(s->kinds[7], NC_NATS_ERR);
    assert_string_equal(s->text[7], "Stale Connection");
    assert_int_equal(s->kinds[8], NC_NATS_PONG);
}

static void test_stream_whole_and_every_split(void **st) {
    size_t len = sizeof STREAM - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        nc_nats_parser p;
        nc_nats_parser_init(&p, 1 << 20);
        seen s = {0};
        char why[200];
        assert_int_equal(nc_nats_feed(&p, STREAM, cut, collect, &s, why, sizeof why), 0);
        assert_int_equal(nc_nats_feed(&p, STREAM + cut, len - cut, collect, &s, why, sizeof why), 0);
        check_stream(&s);
        assert_int_equal(nc_nats_pending(&p), 0);
        nc_nats_parser_free(&p);
    }
    /* one byte at a time */
    nc_nats_parser p;
    nc_nats_parser_init(&p, 1 << 20);
    seen s = {0};
    char why[200];
    for (size_t i = 0; i < len; i++)
        assert_int_equal(nc_nats_feed(&p, STREAM + i, 1, collect, &s, why, sizeof why), 0);
    check_stream(&s);
    nc_nats_parser_free(&p);
}

static int feed_all(const char *text, size_t max_payload, char *why) {
    nc_nats_parser p;
    nc_nats_parser_init(&p, max_payload);
    seen s = {0};
    int r = nc_nats_feed(&p, text, strlen(text), collect, &s, why, 200);
    nc_nats_parser_free(&p);
    return r;
}

static void test_malformed_and_caps(void **st) {
    char why[200];
    assert_int_equal(feed_all("BOGUS x\r\n", 0, why), NC_EPROTO);
    assert_non_null(strstr(why, "unknown operation"));
    assert_int_equal(feed_all("MSG a\r\n", 0, why), NC_EPROTO);
    assert_int_equal(feed_all("MSG a b 3\r\nabc\r\n", 0, why), NC_EPROTO);    /* sid not a number */
    assert_int_equal(feed_all("MSG a 1 3\r\nabcd\r\n", 0, why), NC_EPROTO);   /* no CRLF after the payload */
    assert_int_equal(feed_all("HMSG a 1 9 3\r\nabc\r\n", 0, why), NC_EPROTO); /* headers larger than total */
    assert_int_equal(feed_all("MSG a 1 99999999999999999999\r\n", 0, why), NC_EPROTO);
    assert_int_equal(feed_all("MSG a 1 2000\r\n", 1000, why), NC_ETOOBIG); /* refused before it arrives */
    assert_non_null(strstr(why, "2000"));
    char longline[6000];
    memset(longline, 'x', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    memcpy(longline, "INFO ", 5);
    assert_int_equal(feed_all(longline, 0, why), NC_ETOOBIG); /* no newline yet, already too long */
    assert_int_equal(feed_all("\r\nPING\r\n", 0, why), 0);    /* stray empty line tolerated */
}

static void test_headers(void **st) {
    int status;
    json_t *h;
    assert_int_equal(nc_nats_headers_parse(HDRS, strlen(HDRS), &status, &h), 0);
    assert_int_equal(status, 0);
    assert_string_equal(json_string_value(json_object_get(h, "x-trace")), "t-1");
    assert_string_equal(json_string_value(json_object_get(h, "x-version")), "1.0.0");
    json_decref(h);
    const char *s503 = "NATS/1.0 503\r\n\r\n";
    assert_int_equal(nc_nats_headers_parse(s503, strlen(s503), &status, &h), 0);
    assert_int_equal(status, 503);
    assert_int_equal(json_object_size(h), 0);
    json_decref(h);
    const char *rep = "NATS/1.0\r\nA: 1\r\nA: 2\r\nB:  spaced  \r\nnocolon\r\n\r\n";
    assert_int_equal(nc_nats_headers_parse(rep, strlen(rep), &status, &h), 0);
    assert_string_equal(json_string_value(json_object_get(h, "A")), "1"); /* the first value */
    assert_string_equal(json_string_value(json_object_get(h, "B")), "spaced");
    json_decref(h);
    assert_int_equal(nc_nats_headers_parse("HTTP/1.1\r\n\r\n", 12, &status, NULL), NC_EPROTO);
}

/* The header block field by field: wire order, repeated names, trimmed values, lines that are not fields
 * skipped, the blank line ends it; a block that is not one yields nothing. */
static void test_header_fields(void **st) {
    const char *h =
        "NATS/1.0 100 Idle\r\nx-a: one\r\nbogus line\r\nx-b:\t two \t\r\nx-a:again\r\nempty:\r\n\r\n"
        "after: blank\r\n";
    size_t at = 0, nl, vl;
    const char *n, *v;
    const char *want[][2] = {{"x-a", "one"}, {"x-b", "two"}, {"x-a", "again"}, {"empty", ""}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(nc_nats_header_next(h, strlen(h), &at, &n, &nl, &v, &vl), 1);
        assert_int_equal(nl, strlen(want[i][0]));
        assert_memory_equal(n, want[i][0], nl);
        assert_int_equal(vl, strlen(want[i][1]));
        if (vl) assert_memory_equal(v, want[i][1], vl);
    }
    assert_int_equal(nc_nats_header_next(h, strlen(h), &at, &n, &nl, &v, &vl), 0);
    assert_int_equal(nc_nats_header_next(h, strlen(h), &at, &n, &nl, &v, &vl), 0);
    at = 0;
    assert_int_equal(nc_nats_header_next("HTTP/1.1\r\nx: y\r\n\r\n", 19, &at, &n, &nl, &v, &vl), 0);
    at = 0;
    assert_int_equal(nc_nats_header_next("NATS/1.0", 8, &at, &n, &nl, &v, &vl), 0);
    at = 0; /* no final blank line: the fields up to the end */
    assert_int_equal(nc_nats_header_next("NATS/1.0\r\nk: v", 14, &at, &n, &nl, &v, &vl), 1);
    assert_int_equal(vl, 1);
    assert_int_equal(nc_nats_header_next("NATS/1.0\r\nk: v", 14, &at, &n, &nl, &v, &vl), 0);
}

static void test_writers_match_vectors(void **st) {
    nc_buf b = NC_BUF_INIT;
    json_t *h = json_pack("{s:s,s:s}", "x-trace", "t-1", "x-version", "1.0.0");
    assert_int_equal(nc_nats_write_pub(&b, "ctx", 3, "_INBOX.WDbht6izZf1sTRaznhtzNA", h, BODY, strlen(BODY)),
                     0);
    assert_string_equal(nc_buf_cstr(&b),
                        "HPUB ctx _INBOX.WDbht6izZf1sTRaznhtzNA 44 105\r\n" HDRS BODY "\r\n");
    b.len = 0;
    const char *ev = "{\"pattern\":\"user_created\",\"data\":{\"name\":\"Ann\"}}";
    assert_int_equal(nc_nats_write_pub(&b, "user_created", 12, NULL, NULL, ev, strlen(ev)), 0);
    assert_string_equal(
        nc_buf_cstr(&b),
        "PUB user_created 48\r\n{\"pattern\":\"user_created\",\"data\":{\"name\":\"Ann\"}}\r\n");
    b.len = 0;
    /* header injection: a value with CRLF, a name with ':' are left out */
    json_t *bad = json_pack("{s:s,s:s,s:s}", "ok", "1", "x", "a\r\nInjected: 1", "a:b", "2");
    assert_int_equal(nc_nats_write_pub(&b, "s", 1, NULL, bad, "{}", 2), 0);
    assert_string_equal(nc_buf_cstr(&b), "HPUB s 19 21\r\nNATS/1.0\r\nok: 1\r\n\r\n{}\r\n");
    b.len = 0;
    assert_int_equal(nc_nats_write_sub(&b, "{\"cmd\":\"sum\"}", NULL, 1), 0);
    assert_int_equal(nc_nats_write_sub(&b, "sensors.*.temp", "q", 12), 0);
    assert_int_equal(nc_nats_write_unsub(&b, 7), 0);
    assert_string_equal(nc_buf_cstr(&b), "SUB {\"cmd\":\"sum\"} 1\r\nSUB sensors.*.temp q 12\r\nUNSUB 7\r\n");
    json_decref(h);
    json_decref(bad);
    nc_buf_free(&b);
}

/* Headers as an ordered list: order and repeated names kept, values as bytes; a field that would break
 * the block is left out; none: a plain PUB. */
static void test_write_pub_list(void **st) {
    nc_header h[] = {{"x-reply", 7, "r1", 2},
                     {"x-bad:name", 10, "v", 1},
                     {"x-reply", 7, "r2", 2},
                     {"x-crlf", 6, "a\r\nb", 4},
                     {"x-b", 3, "a: b", 4}};
    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_nats_write_pub_list(&b, "_INBOX.1", 8, NULL, h, 5, "{}", 2), 0);
    const char want[] =
        "HPUB _INBOX.1 49 51\r\nNATS/1.0\r\nx-reply: r1\r\nx-reply: r2\r\nx-b: a: b\r\n\r\n{}\r\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    /* the parser reads it back in order */
    const char *blk = strstr(b.data, "NATS/1.0");
    size_t at = 0, nl, vl;
    const char *n, *v;
    assert_int_equal(nc_nats_header_next(blk, 49, &at, &n, &nl, &v, &vl), 1);
    assert_memory_equal(v, "r1", 2);
    assert_int_equal(nc_nats_header_next(blk, 49, &at, &n, &nl, &v, &vl), 1);
    assert_memory_equal(v, "r2", 2);
    b.len = 0;
    assert_int_equal(nc_nats_write_pub_list(&b, "s", 1, "r", NULL, 0, "{}", 2), 0);
    assert_int_equal(b.len, strlen("PUB s r 2\r\n{}\r\n"));
    assert_memory_equal(b.data, "PUB s r 2\r\n{}\r\n", b.len);
    nc_buf_free(&b);
}

static void test_subjects(void **st) {
    assert_true(nc_nats_subject_ok("{\"cmd\":\"sum\"}", 13));
    assert_true(nc_nats_subject_ok("alerts.>", 8));
    assert_false(nc_nats_subject_ok("", 0));
    assert_false(nc_nats_subject_ok("a b", 3));
    assert_false(nc_nats_subject_ok("a..b", 4));
    assert_false(nc_nats_subject_ok("a.", 2));
    assert_false(nc_nats_subject_ok(".a", 2));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_whole_and_every_split),
        cmocka_unit_test(test_malformed_and_caps),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_writers_match_vectors),
        cmocka_unit_test(test_write_pub_list),
        cmocka_unit_test(test_subjects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
