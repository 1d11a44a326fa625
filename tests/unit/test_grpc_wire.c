/* The gRPC layer above HTTP/2 (codec/grpc_wire.c): length-prefixed messages fed whole and at every
 * split, the size cap, grpc-timeout both ways, grpc-message percent-encoding, binary metadata and the
 * status names, against gRPC's PROTOCOL-HTTP2.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "codec/grpc_wire.h"

/* Three messages: "abc", an empty one, "hello" compressed. */
static const uint8_t stream[] = {0, 0, 0, 0, 3, 'a', 'b', 'c', 0,   0,   0,  0,
                                 0, 1, 0, 0, 0, 5,   'h', 'e', 'l', 'l', 'o'};

static void read_all(const uint8_t *p, size_t n, size_t split, int *count) {
    nc_grpc_reader r;
    nc_grpc_reader_init(&r, 0);
    static const char *want[] = {"abc", "", "hello"};
    *count = 0;
    for (size_t at = 0; at < n;) {
        size_t k = split && at + split < n ? split : n - at;
        assert_int_equal(nc_grpc_reader_feed(&r, p + at, k), 0);
        at += k;
        nc_grpc_msg m;
        int rc;
        while ((rc = nc_grpc_reader_next(&r, &m)) == 1) {
            assert_int_equal(m.len, strlen(want[*count]));
            assert_memory_equal(m.data, want[*count], m.len);
            assert_int_equal(m.compressed, *count == 2);
            ++*count;
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(nc_grpc_reader_pending(&r), 0);
    nc_grpc_reader_free(&r);
}

static void test_reader_splits(void **state) {
    (void)state;
    for (size_t split = 0; split <= sizeof stream; split++) {
        int count;
        read_all(stream, sizeof stream, split, &count);
        assert_int_equal(count, 3);
    }
}

static void test_reader_errors(void **state) {
    (void)state;
    nc_grpc_reader r;
    nc_grpc_msg m;
    nc_grpc_reader_init(&r, 4);
    const uint8_t big[] = {0, 0, 0, 0, 5}; /* refused from the prefix alone */
    assert_int_equal(nc_grpc_reader_feed(&r, big, sizeof big), 0);
    assert_int_equal(nc_grpc_reader_next(&r, &m), NC_ETOOBIG);
    nc_grpc_reader_free(&r);
    nc_grpc_reader_init(&r, 0);
    assert_int_equal(r.max, NC_GRPC_DEFAULT_MAX_MESSAGE);
    const uint8_t flag[] = {2, 0, 0, 0, 0};
    assert_int_equal(nc_grpc_reader_feed(&r, flag, sizeof flag), 0);
    assert_int_equal(nc_grpc_reader_next(&r, &m), NC_EPROTO);
    nc_grpc_reader_free(&r);
    nc_grpc_reader_init(&r, 0);
    const uint8_t part[] = {0, 0, 0, 0, 4, 'a'}; /* the stream ended inside a message */
    assert_int_equal(nc_grpc_reader_feed(&r, part, sizeof part), 0);
    assert_int_equal(nc_grpc_reader_next(&r, &m), 0);
    assert_int_equal(nc_grpc_reader_pending(&r), 6);
    nc_grpc_reader_free(&r);
}

static void test_prefix(void **state) {
    (void)state;
    uint8_t h[5];
    assert_int_equal(nc_grpc_prefix(h, 0, 0x01020304), 0);
    assert_memory_equal(h, "\x00\x01\x02\x03\x04", 5);
    assert_int_equal(nc_grpc_prefix(h, 1, 5), 0);
    assert_memory_equal(h, "\x01\x00\x00\x00\x05", 5);
}

static void test_timeout(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } in[] = {{"1H", 3600000},
              {"2M", 120000},
              {"5S", 5000},
              {"1500m", 1500},
              {"1u", 1},
              {"1000u", 1},
              {"1001u", 2},
              {"999999n", 1},
              {"0n", 0},
              {"99999999H", 99999999LL * 3600000},
              {"00000001S", 1000},
              {"000000001S", -1},
              {"S", -1},
              {"5s", -1},
              {"-5S", -1},
              {"5 S", -1},
              {"", -1}};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        int64_t ms = -2;
        int rc = nc_grpc_timeout_parse(in[i].text, strlen(in[i].text), &ms);
        if (in[i].ms < 0)
            assert_int_equal(rc, NC_EINVAL);
        else {
            assert_int_equal(rc, 0);
            assert_int_equal(ms, in[i].ms);
        }
    }
    static const struct {
        int64_t ms;
        const char *text;
    } out[] = {{0, "0m"},
               {5000, "5S"},
               {1500, "1500m"},
               {120000, "2M"},
               {7200000, "2H"},
               {99999999, "99999999m"},
               {100000001, "100001S"},
               {-3, "0m"}};
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        char buf[16];
        size_t n = nc_grpc_timeout_format(out[i].ms, buf);
        assert_string_equal(buf, out[i].text);
        assert_int_equal(n, strlen(out[i].text));
        int64_t back;
        assert_int_equal(nc_grpc_timeout_parse(buf, n, &back), 0);
        assert_true(back >= (out[i].ms < 0 ? 0 : out[i].ms)); /* never shorter than asked */
    }
}

static void test_percent(void **state) {
    (void)state;
    nc_buf b = NC_BUF_INIT;
    const char msg[] = "failed after 2 items: 100% \xC3\xA9\n";
    assert_int_equal(nc_grpc_percent_encode(&b, msg, sizeof msg - 1), 0);
    assert_string_equal(nc_buf_cstr(&b), "failed after 2 items: 100%25 %C3%A9%0A");
    nc_buf d = NC_BUF_INIT;
    assert_int_equal(nc_grpc_percent_decode(&d, b.data, b.len), 0);
    assert_int_equal(d.len, sizeof msg - 1);
    assert_memory_equal(d.data, msg, d.len);
    nc_buf_reset(&d);
    assert_int_equal(nc_grpc_percent_decode(&d, "50% off %zz %4", 14), 0); /* lenient */
    assert_string_equal(nc_buf_cstr(&d), "50% off %zz %4");
    nc_buf_free(&b);
    nc_buf_free(&d);
}

static void test_bin(void **state) {
    (void)state;
    assert_true(nc_grpc_is_bin("trace-bin", 9));
    assert_false(nc_grpc_is_bin("bin", 3));
    assert_false(nc_grpc_is_bin("x-binary", 8));
    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_grpc_bin_decode(&b, "AAE=", 4), 0);
    assert_int_equal(b.len, 2);
    nc_buf_reset(&b);
    assert_int_equal(nc_grpc_bin_decode(&b, "AAE", 3), 0); /* unpadded */
    assert_int_equal(b.len, 2);
    nc_buf_reset(&b);
    assert_int_equal(nc_grpc_bin_decode(&b, "AA=E", 4), NC_EPROTO);
    assert_int_equal(nc_grpc_bin_decode(&b, "A", 1), NC_EPROTO);
    assert_int_equal(nc_grpc_bin_decode(&b, "AA===", 5), NC_EPROTO);
    assert_int_equal(b.len, 0);
    nc_buf_free(&b);
}

static void test_status_names(void **state) {
    (void)state;
    assert_string_equal(nc_grpc_status_name(0), "OK");
    assert_string_equal(nc_grpc_status_name(9), "FAILED_PRECONDITION");
    assert_string_equal(nc_grpc_status_name(12), "UNIMPLEMENTED");
    assert_string_equal(nc_grpc_status_name(16), "UNAUTHENTICATED");
    assert_null(nc_grpc_status_name(17));
    assert_null(nc_grpc_status_name(-1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_splits), cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_prefix),        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_percent),       cmocka_unit_test(test_bin),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
