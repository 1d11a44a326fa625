/* Unit tests for the 64-bit-key hash map (src/util/u64map.[ch]): open addressing with linear probing and
 * backward-shift deletion. Besides the plain operations, the tests build keys that all hash to one home
 * slot (or to the last slots, so runs wrap around the table end) to stress the deletion shift, and run a
 * long random sequence of operations against a trivially correct reference model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/u64map.h"

/* ---------------------------------------------------------------------------------------------------- */
/* Helpers                                                                                               */

static uint64_t rnd(uint64_t *s) { /* xorshift64*, deterministic */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* The multiplicative constant of the map's hash and its inverse modulo 2^64. The map's slot for key k is
 * ((k * C) >> 17) & mask: keys k = Cinv * (x << 17) therefore land at x & mask. This is only a way to make
 * colliding keys; the tests check where the keys really land through the public slot array. */
#define HASH_C UINT64_C(0x9E3779B97F4A7C15)

static uint64_t inverse(uint64_t c) {
    uint64_t x = c; /* Newton: each step doubles the correct low bits (c odd: x = c is right to 3 bits) */
    for (int i = 0; i < 6; i++) x *= 2 - c * x;
    return x;
}

/* A key whose home slot is `home` in every table of at most 2^20 slots whose mask covers `home`, made
 * unique by `salt` (bits above the 20 that matter). */
static uint64_t key_at(uint64_t home, uint64_t salt) {
    return inverse(HASH_C) * ((home << 17) | (salt << 37));
}

/* Index of `key` in the slot array, or (size_t)-1. */
static size_t slot_index(const nc_u64map *m, uint64_t key) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key == key) return i;
    return (size_t)-1;
}

/* Structural invariants: cap a power of two (or 0), load at most one half, len = occupied slots. */
static void check_shape(const nc_u64map *m) {
    if (!m->cap) {
        assert_int_equal(m->len, 0);
        return;
    }
    assert_non_null(m->slots);
    assert_int_equal(m->cap & (m->cap - 1), 0);
    assert_true(m->len * 2 <= m->cap);
    size_t used = 0;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key)
            used++;
        else
            assert_null(m->slots[i].val);
    }
    assert_int_equal(used, m->len);
}

/* Values are addresses inside this array: value of key index i is &vals[i]. */
static char *vals;

static void *val_of(size_t i) {
    return &vals[i];
}

/* ---------------------------------------------------------------------------------------------------- */
/* Tests                                                                                                 */

static void test_inverse_helper(void **state) {
    (void)state;
    assert_int_equal(HASH_C * inverse(HASH_C), 1);
    /* keys made by key_at really land at their home (checked on an otherwise empty table) */
    for (uint64_t home = 0; home < 64; home++) {
        nc_u64map m = NC_U64MAP_INIT;
        uint64_t k = key_at(home, 1 + home);
        assert_int_equal(nc_u64map_put(&m, k, &m), 0);
        assert_int_equal(m.cap, 64);
        assert_int_equal(slot_index(&m, k), home);
        nc_u64map_free(&m);
    }
}

static void test_empty(void **state) {
    (void)state;
    nc_u64map m = NC_U64MAP_INIT;
    assert_null(nc_u64map_get(&m, 1));
    assert_null(nc_u64map_get(&m, UINT64_MAX));
    assert_null(nc_u64map_del(&m, 1));
    size_t it = 0;
    void *v = NULL;
    assert_false(nc_u64map_next(&m, &it, &v));
    check_shape(&m);
    nc_u64map_free(&m);
    nc_u64map_free(&m); /* twice is harmless */
    assert_null(m.slots);
    assert_int_equal(m.cap, 0);
    assert_int_equal(m.len, 0);
}

static void test_basic(void **state) {
    (void)state;
    nc_u64map m = NC_U64MAP_INIT;
    int a, b, c;
    assert_int_equal(nc_u64map_put(&m, 7, &a), 0);
    assert_int_equal(nc_u64map_put(&m, UINT64_MAX, &b), 0);
    assert_int_equal(nc_u64map_put(&m, UINT64_C(1) << 63, &c), 0);
    assert_int_equal(m.len, 3);
    assert_ptr_equal(nc_u64map_get(&m, 7), &a);
    assert_ptr_equal(nc_u64map_get(&m, UINT64_MAX), &b);
    assert_ptr_equal(nc_u64map_get(&m, UINT64_C(1) << 63), &c);
    assert_null(nc_u64map_get(&m, 8));
    assert_null(nc_u64map_get(&m, UINT64_MAX - 1));
    check_shape(&m);

    /* deleting an absent key changes nothing */
    assert_null(nc_u64map_del(&m, 8));
    assert_int_equal(m.len, 3);

    assert_ptr_equal(nc_u64map_del(&m, 7), &a);
    assert_int_equal(m.len, 2);
    assert_null(nc_u64map_get(&m, 7));
    assert_null(nc_u64map_del(&m, 7));
    assert_ptr_equal(nc_u64map_get(&m, UINT64_MAX), &b);

    /* a deleted key can be inserted again, with another value */
    assert_int_equal(nc_u64map_put(&m, 7, &c), 0);
    assert_ptr_equal(nc_u64map_get(&m, 7), &c);
    assert_int_equal(m.len, 3);
    check_shape(&m);

    assert_ptr_equal(nc_u64map_del(&m, UINT64_MAX), &b);
    assert_ptr_equal(nc_u64map_del(&m, UINT64_C(1) << 63), &c);
    assert_ptr_equal(nc_u64map_del(&m, 7), &c);
    assert_int_equal(m.len, 0);
    size_t it = 0;
    void *v;
    assert_false(nc_u64map_next(&m, &it, &v));
    check_shape(&m);
    nc_u64map_free(&m);
}

static void test_growth(void **state) {
    (void)state;
    nc_u64map m = NC_U64MAP_INIT;
    size_t last_cap = 0, grows = 0;
    for (size_t i = 1; i <= 5000; i++) {
        assert_int_equal(nc_u64map_put(&m, i, val_of(i)), 0);
        assert_int_equal(m.len, i);
        assert_true(m.len * 2 <= m.cap);
        if (m.cap != last_cap) {
            assert_true(m.cap > last_cap);
            last_cap = m.cap;
            grows++;
            /* nothing lost in the rehash */
            for (size_t j = 1; j <= i; j++) assert_ptr_equal(nc_u64map_get(&m, j), val_of(j));
        }
    }
    assert_true(grows >= 7); /* 64 ... 16384 */
    check_shape(&m);
    nc_u64map_free(&m);
}

/* 100k sequential keys (client serials), every other one deleted. */
static void test_sequential_delete_every_other(void **state) {
    (void)state;
    enum { N = 100000 };
    nc_u64map m = NC_U64MAP_INIT;
    for (size_t i = 1; i <= N; i++) assert_int_equal(nc_u64map_put(&m, i, val_of(i)), 0);
    assert_int_equal(m.len, N);
    check_shape(&m);
    for (size_t i = 1; i <= N; i++) assert_ptr_equal(nc_u64map_get(&m, i), val_of(i));
    assert_null(nc_u64map_get(&m, N + 1));

    for (size_t i = 2; i <= N; i += 2) assert_ptr_equal(nc_u64map_del(&m, i), val_of(i));
    assert_int_equal(m.len, N / 2);
    check_shape(&m);
    for (size_t i = 1; i <= N; i++) {
        if (i % 2)
            assert_ptr_equal(nc_u64map_get(&m, i), val_of(i));
        else
            assert_null(nc_u64map_get(&m, i));
    }
    /* deleting them again finds nothing */
    for (size_t i = 2; i <= N; i += 2) assert_null(nc_u64map_del(&m, i));
    assert_int_equal(m.len, N / 2);

    /* put the even ones back with other values, then remove the odd ones */
    for (size_t i = 2; i <= N; i += 2) assert_int_equal(nc_u64map_put(&m, i, val_of(i + 1)), 0);
    for (size_t i = 1; i <= N; i += 2) assert_ptr_equal(nc_u64map_del(&m, i), val_of(i));
    assert_int_equal(m.len, N / 2);
    for (size_t i = 1; i <= N; i++) {
        if (i % 2)
            assert_null(nc_u64map_get(&m, i));
        else
            assert_ptr_equal(nc_u64map_get(&m, i), val_of(i + 1));
    }
    /* and then all of them, from the top down */
    for (size_t i = N; i >= 2; i -= 2) assert_ptr_equal(nc_u64map_del(&m, i), val_of(i + 1));
    assert_int_equal(m.len, 0);
    check_shape(&m);
    size_t it = 0;
    void *v;
    assert_false(nc_u64map_next(&m, &it, &v));
    nc_u64map_free(&m);
}

/* Checks that exactly the keys with present[i] set are found, with their values, and that iteration
 * yields exactly their values, once each. */
static void check_all(const nc_u64map *m, const uint64_t *keys, const unsigned char *present, size_t n) {
    unsigned char *seen = calloc(n ? n : 1, 1);
    assert_non_null(seen);
    size_t it = 0, visits = 0;
    void *v;
    while (nc_u64map_next(m, &it, &v)) {
        size_t i = (size_t)((char *)v - vals);
        if (i >= n || !present[i] || seen[i]) fail_msg("iteration yields value #%zu wrongly", i);
        seen[i] = 1;
        visits++;
    }
    assert_int_equal(visits, m->len);
    free(seen);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        void *got = nc_u64map_get(m, keys[i]);
        if (present[i]) {
            if (got != val_of(i)) fail_msg("key #%zu (%#llx) lost", i, (unsigned long long)keys[i]);
            count++;
        } else if (got) {
            fail_msg("key #%zu (%#llx) still found", i, (unsigned long long)keys[i]);
        }
    }
    assert_int_equal(m->len, count);
}

/* Deletes keys in the given order from a table where they all collide, checking everything after each. */
static void collide_run(const uint64_t *keys, size_t n, const size_t *order, size_t check_every) {
    nc_u64map m = NC_U64MAP_INIT;
    unsigned char *present = calloc(n, 1);
    assert_non_null(present);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(nc_u64map_put(&m, keys[i], val_of(i)), 0);
        present[i] = 1;
    }
    check_all(&m, keys, present, n);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        assert_ptr_equal(nc_u64map_del(&m, keys[i]), val_of(i));
        present[i] = 0;
        if (k % check_every == 0 || k + 1 == n) {
            check_all(&m, keys, present, n);
            check_shape(&m);
        }
    }
    assert_int_equal(m.len, 0);
    free(present);
    nc_u64map_free(&m);
}

static void orders(size_t n, size_t *fwd, size_t *rev, size_t *evens_first, size_t *shuffled, uint64_t *r) {
    for (size_t i = 0; i < n; i++) {
        fwd[i] = i;
        rev[i] = n - 1 - i;
        shuffled[i] = i;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i += 2) evens_first[k++] = i;
    for (size_t i = 1; i < n; i += 2) evens_first[k++] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rnd(r) % i), t = shuffled[i - 1];
        shuffled[i - 1] = shuffled[j];
        shuffled[j] = t;
    }
}

/* Every key with the same home slot: one long run that the deletions must keep contiguous. */
static void test_heavy_collisions(void **state) {
    (void)state;
    enum { N = 3000, SMALL = 300 };
    uint64_t *keys = malloc(N * sizeof *keys);
    size_t *o[4];
    for (int i = 0; i < 4; i++) o[i] = malloc(N * sizeof(size_t));
    uint64_t r = 12345;
    for (size_t i = 0; i < N; i++) keys[i] = key_at(0, i + 1);
    /* a long run (checked now and then: each full check costs n^2/2 probes) */
    orders(N, o[0], o[1], o[2], o[3], &r);
    for (int i = 0; i < 4; i++) collide_run(keys, N, o[i], 500);
    /* a shorter one, checked after every deletion */
    orders(SMALL, o[0], o[1], o[2], o[3], &r);
    for (int i = 0; i < 4; i++) collide_run(keys, SMALL, o[i], 1);

    /* two interleaved clusters with neighbouring homes, so runs merge: keys of home 5 sit behind keys of
     * home 4, and deleting home-4 keys must pull home-5 keys back only as far as their home */
    for (size_t i = 0; i < N; i++) keys[i] = key_at(4 + i % 2, i + 1);
    orders(N, o[0], o[1], o[2], o[3], &r);
    for (int i = 0; i < 4; i++) collide_run(keys, N, o[i], 500);
    orders(SMALL, o[0], o[1], o[2], o[3], &r);
    for (int i = 0; i < 4; i++) collide_run(keys, SMALL, o[i], 1);

    /* keys with homes spread over a few slots, some colliding, in a small table */
    for (size_t i = 0; i < 30; i++) keys[i] = key_at(i % 7 * 3, i + 1);
    orders(30, o[0], o[1], o[2], o[3], &r);
    for (int i = 0; i < 4; i++) collide_run(keys, 30, o[i], 1);

    for (int i = 0; i < 4; i++) free(o[i]);
    free(keys);
}

/* A run that wraps around the end of the table: homes 62 and 63 in a 64-slot table spill into slots 0,
 * 1, ..., where keys of home 0 and 1 also live. The deletion shift must move entries across the wrap and
 * must not move a home-0 entry back to slot 63. */
static void test_wraparound(void **state) {
    (void)state;
    enum { N = 32 }; /* 32 keys stay in a 64-slot table */
    uint64_t keys[N], home_of[N];
    size_t o[4][N];
    uint64_t r = 777;
    static const uint64_t homes[] = {62, 63, 0, 1, 63, 62, 0, 2};
    for (int variant = 0; variant < 3; variant++) {
        for (size_t i = 0; i < N; i++) {
            uint64_t home = variant == 0 ? homes[i % 8] : variant == 1 ? 63 : (i < N / 2 ? 63 : 0);
            keys[i] = key_at(home, i + 1);
            home_of[i] = home;
        }
        orders(N, o[0], o[1], o[2], o[3], &r);
        for (int i = 0; i < 4; i++) {
            /* the table really wraps: some home-62/63 key sits at a low slot */
            nc_u64map m = NC_U64MAP_INIT;
            for (size_t k = 0; k < N; k++) assert_int_equal(nc_u64map_put(&m, keys[k], val_of(k)), 0);
            assert_int_equal(m.cap, 64);
            int wrapped = 0;
            for (size_t k = 0; k < N; k++) wrapped |= home_of[k] >= 62 && slot_index(&m, keys[k]) < 32;
            assert_true(wrapped);
            nc_u64map_free(&m);
            collide_run(keys, N, o[i], 1);
        }
        /* and many random deletion orders */
        for (int t = 0; t < 200; t++) {
            orders(N, o[0], o[1], o[2], o[3], &r);
            collide_run(keys, N, o[3], 1);
        }
    }
}

/* Iteration visits every value exactly once, at any fill and after deletions. */
static void test_iteration(void **state) {
    (void)state;
    enum { N = 20000 };
    nc_u64map m = NC_U64MAP_INIT;
    unsigned *seen = calloc(N + 1, sizeof *seen);
    assert_non_null(seen);
    uint64_t r = 99;
    uint64_t *keys = malloc((N + 1) * sizeof *keys);
    unsigned char *present = calloc(N + 1, 1);
    for (size_t i = 1; i <= N; i++) {
        /* mixed keys: sequential, colliding and random */
        keys[i] = i % 3 == 0 ? i : i % 3 == 1 ? key_at(i % 5, i) : (rnd(&r) | 1);
        assert_int_equal(nc_u64map_put(&m, keys[i], val_of(i)), 0);
        present[i] = 1;
    }
    for (int round = 0; round < 3; round++) {
        memset(seen, 0, (N + 1) * sizeof *seen);
        size_t it = 0, visits = 0;
        void *v;
        while (nc_u64map_next(&m, &it, &v)) {
            size_t i = (size_t)((char *)v - vals);
            assert_true(i >= 1 && i <= N);
            seen[i]++;
            visits++;
        }
        assert_int_equal(visits, m.len);
        for (size_t i = 1; i <= N; i++) assert_int_equal(seen[i], present[i]);
        /* the iterator stays exhausted */
        assert_false(nc_u64map_next(&m, &it, &v));
        /* remove a third, differently each round */
        for (size_t i = 1 + (size_t)round; i <= N; i += 3) {
            if (present[i]) {
                assert_ptr_equal(nc_u64map_del(&m, keys[i]), val_of(i));
                present[i] = 0;
            }
        }
    }
    free(keys);
    free(present);
    free(seen);
    nc_u64map_free(&m);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One million random operations against a reference model (an array of present flags over a fixed
 * universe of keys: sequential, colliding, and random 64-bit ones). */
static void test_random_model(void **state) {
    (void)state;
    enum { U = 6000, OPS = 1000000 };
    uint64_t *keys = malloc(U * sizeof *keys);
    unsigned char *present = calloc(U, 1);
    assert_non_null(keys);
    assert_non_null(present);
    uint64_t r = UINT64_C(0xC0FFEE);
    for (size_t i = 0; i < U; i++) {
        switch (i % 3) {
        case 0:
            keys[i] = 1 + i / 3;
            break; /* 1, 2, 3, ... */
        case 1:
            keys[i] = key_at((i / 3) % 11, i / 3 + 1);
            break; /* 11 crowded homes */
        default: {
            uint64_t k;
            do k = rnd(&r);
            while (k == 0 || k <= U);
            keys[i] = k;
        }
        }
    }
    /* the universe has no duplicates */
    uint64_t *sorted = malloc(U * sizeof *sorted);
    assert_non_null(sorted);
    memcpy(sorted, keys, U * sizeof *sorted);
    qsort(sorted, U, sizeof *sorted, cmp_u64);
    for (size_t i = 1; i < U; i++) assert_true(sorted[i - 1] != sorted[i]);
    free(sorted);

    nc_u64map m = NC_U64MAP_INIT;
    size_t len = 0, puts = 0, dels = 0, hits = 0;
    for (size_t op = 0; op < OPS; op++) {
        /* phases that fill up and drain, so the table goes through growth and long deletion stretches */
        unsigned put_pct = (op / 100000) % 2 ? 30 : 65;
        size_t i = (size_t)(rnd(&r) % U);
        unsigned roll = (unsigned)(rnd(&r) % 100);
        if (roll < put_pct) {
            if (present[i]) {
                assert_ptr_equal(nc_u64map_get(&m, keys[i]), val_of(i));
            } else {
                assert_int_equal(nc_u64map_put(&m, keys[i], val_of(i)), 0);
                present[i] = 1;
                len++;
                puts++;
            }
        } else if (roll < 90) {
            void *got = nc_u64map_del(&m, keys[i]);
            if (present[i]) {
                assert_ptr_equal(got, val_of(i));
                present[i] = 0;
                len--;
                dels++;
            } else {
                assert_null(got);
            }
        } else {
            void *got = nc_u64map_get(&m, keys[i]);
            if (present[i]) {
                assert_ptr_equal(got, val_of(i));
                hits++;
            } else {
                assert_null(got);
            }
        }
        assert_int_equal(m.len, len);
        if (op % 50000 == 49999) {
            check_all(&m, keys, present, U);
            check_shape(&m);
        }
    }
    check_all(&m, keys, present, U);
    assert_true(puts > 100000 && dels > 100000 && hits > 10000);
    free(keys);
    free(present);
    nc_u64map_free(&m);
}

static int setup(void **state) {
    (void)state;
    vals = calloc(200002, 1);
    return vals ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    free(vals);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inverse_helper),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_sequential_delete_every_other),
        cmocka_unit_test(test_heavy_collisions),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_iteration),
        cmocka_unit_test(test_random_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
