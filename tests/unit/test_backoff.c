/* Unit tests for the broker transports' reconnect policy (src/util/backoff.[ch]): the schedule with a
 * fixed seed, the cap, the attempt limit, reset after a good connection, and the rate limit of the log
 * lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "util/backoff.h"

static nc_backoff make(int base, int cap, int limit, double jitter, uint64_t seed) {
    nc_backoff b;
    nc_backoff_cfg c = {.base_ms = base, .cap_ms = cap, .limit = limit, .first_at_once = 1, .jitter = jitter};
    nc_backoff_init(&b, &c, seed);
    return b;
}

/* Without jitter: at once, then base, doubling, up to the cap (8 × base by default). */
static void test_schedule_plain(void **st) {
    (void)st;
    nc_backoff b = make(100, 0, 0, 0, 1);
    static const int want[] = {0, 100, 200, 400, 800, 800, 800};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) assert_int_equal(nc_backoff_next(&b), want[i]);
    assert_int_equal(b.attempts, 7);
    /* not at once: the first attempt waits base */
    nc_backoff_cfg c = {.base_ms = 50, .cap_ms = 120};
    nc_backoff_init(&b, &c, 1);
    assert_int_equal(nc_backoff_next(&b), 50);
    assert_int_equal(nc_backoff_next(&b), 100);
    assert_int_equal(nc_backoff_next(&b), 120);
    assert_int_equal(nc_backoff_next(&b), 120);
}

/* The default cap is 8 × base, at most 30 s, never below base; base <= 0 means 1 s. */
static void test_cap_defaults(void **st) {
    (void)st;
    nc_backoff b = make(1000, 0, 0, 0, 1);
    assert_int_equal(b.cfg.cap_ms, 8000);
    b = make(5000, 0, 0, 0, 1);
    assert_int_equal(b.cfg.cap_ms, 30000);
    b = make(60000, 0, 0, 0, 1);
    assert_int_equal(b.cfg.cap_ms, 60000);
    b = make(0, 0, 0, 0, 1);
    assert_int_equal(b.cfg.base_ms, 1000);
    /* a long outage does not overflow */
    b = make(2000000000, 0, 0, 0, 1);
    for (int i = 0; i < 100; i++) assert_true(nc_backoff_next(&b) <= 2000000000);
    assert_int_equal(nc_backoff_nominal(&b, 1000000), 2000000000);
}

/* With jitter: the same seed gives the same delays; each lies in [(1 - j) d, d]; another seed differs. */
static void test_schedule_jitter_seeded(void **st) {
    (void)st;
    nc_backoff a = make(1000, 0, 0, 0.5, 42), b = make(1000, 0, 0, 0.5, 42), c = make(1000, 0, 0, 0.5, 43);
    int differ = 0;
    for (int i = 1; i <= 20; i++) {
        int da = nc_backoff_next(&a), db = nc_backoff_next(&b), dc = nc_backoff_next(&c);
        int nominal = nc_backoff_nominal(&a, i);
        assert_int_equal(da, db);
        assert_true(da <= nominal && da >= nominal / 2);
        if (i == 1) assert_int_equal(da, 0);
        differ += da != dc;
    }
    assert_true(differ > 10);
    /* the fixed schedule of seed 42, so a change to the PRNG or the formula is seen */
    nc_backoff d = make(100, 0, 0, 0.5, 42);
    static const int want[] = {0, 63, 185, 345, 663, 785};
    for (int i = 0; i < 6; i++) assert_int_equal(nc_backoff_next(&d), want[i]);
    /* full jitter spans [0, d] */
    nc_backoff f = make(1000, 1000, 0, 1.0, 7);
    int lo = 1000, hi = 0;
    nc_backoff_next(&f);
    for (int i = 0; i < 2000; i++) {
        int v = nc_backoff_next(&f);
        assert_true(v >= 0 && v <= 1000);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(lo < 50 && hi > 950);
}

/* limit: attempts 1..limit get a delay, the next gives up, and keeps giving up until reset. */
static void test_limit_and_reset(void **st) {
    (void)st;
    nc_backoff b = make(100, 0, 3, 0, 1);
    assert_int_equal(nc_backoff_next(&b), 0);
    assert_int_equal(nc_backoff_next(&b), 100);
    assert_int_equal(nc_backoff_next(&b), 200);
    assert_int_equal(nc_backoff_next(&b), -1);
    assert_int_equal(nc_backoff_next(&b), -1);
    nc_backoff_reset(&b);
    assert_int_equal(b.attempts, 0);
    assert_int_equal(nc_backoff_next(&b), 0); /* a new outage starts over */
    assert_int_equal(nc_backoff_next(&b), 100);
    /* 0 = unlimited */
    b = make(100, 0, 0, 0, 1);
    for (int i = 0; i < 10000; i++) assert_true(nc_backoff_next(&b) >= 0);
}

/* A broker down for a minute, one attempt every 800 ms: attempts 1-3 are logged, then one line per 10 s
 * that counts the ones not logged; after a reset the first three are logged again. */
static void test_log_rate_limit(void **st) {
    (void)st;
    nc_backoff b = make(100, 800, 0, 0, 1);
    uint64_t now = 1000000;
    int lines = 0;
    unsigned total_skipped = 0, skipped;
    int attempts = 0;
    for (uint64_t t = 0; t < 60000; attempts++) {
        int d = nc_backoff_next(&b);
        skipped = 12345;
        if (nc_backoff_should_log(&b, now + t, &skipped)) {
            if (attempts < 3) assert_int_equal(skipped, 0);
            total_skipped += skipped;
            lines++;
        } else {
            assert_int_equal(skipped, 12345); /* untouched */
            assert_true(attempts >= 3);
        }
        t += (uint64_t)d + 5; /* the attempt itself fails after 5 ms */
    }
    assert_true(attempts > 70);
    assert_true(lines >= 8 && lines <= 10);
    assert_int_equal(total_skipped + (unsigned)lines + b.suppressed, (unsigned)attempts);
    nc_backoff_reset(&b);
    for (int i = 0; i < 3; i++) {
        nc_backoff_next(&b);
        assert_true(nc_backoff_should_log(&b, now + 60001 + (uint64_t)i, &skipped));
        assert_int_equal(skipped, 0);
    }
    char note[64];
    assert_string_equal(nc_backoff_suppressed_note(0, note, sizeof note), "");
    assert_string_equal(nc_backoff_suppressed_note(1, note, sizeof note), " (1 more attempt not logged)");
    assert_string_equal(nc_backoff_suppressed_note(12, note, sizeof note), " (12 more attempts not logged)");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_plain),         cmocka_unit_test(test_cap_defaults),
        cmocka_unit_test(test_schedule_jitter_seeded), cmocka_unit_test(test_limit_and_reset),
        cmocka_unit_test(test_log_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
