/* Handle table: ids with generations (util/handle.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <uv.h>

#include "nestc/error.h"
#include "util/handle.h"

static void test_stale_ids_are_refused(void **st) {
    (void)st;
    int a, b, owner;
    nc_hid x, y;
    assert_int_equal(nc_handle_alloc(&a, &owner, &x), 0);
    assert_ptr_equal(nc_handle_get(x), &a);
    assert_ptr_equal(nc_handle_owner(x), &owner);
    nc_handle_free(x);
    assert_null(nc_handle_get(x));
    assert_null(nc_handle_owner(x));
    nc_handle_free(x); /* twice: nothing */
    /* the slot comes back (per-thread cache, last in first out) under a new generation */
    assert_int_equal(nc_handle_alloc(&b, NULL, &y), 0);
    assert_int_not_equal(x, y);
    assert_null(nc_handle_get(x));
    assert_ptr_equal(nc_handle_get(y), &b);
    nc_handle_free(y);
    assert_null(nc_handle_get(0));
    assert_null(nc_handle_get(UINT64_MAX));
    assert_null(nc_handle_get(12345));
}

static void test_many_live(void **st) {
    (void)st;
    enum { N = 5000 };
    static nc_hid ids[N];
    static int objs[N];
    for (int i = 0; i < N; i++) assert_int_equal(nc_handle_alloc(&objs[i], NULL, &ids[i]), 0);
    for (int i = 0; i < N; i++) assert_ptr_equal(nc_handle_get(ids[i]), &objs[i]);
    for (int i = 0; i < N; i += 2) nc_handle_free(ids[i]);
    for (int i = 0; i < N; i++) {
        if (i % 2)
            assert_ptr_equal(nc_handle_get(ids[i]), &objs[i]);
        else
            assert_null(nc_handle_get(ids[i]));
    }
    for (int i = 1; i < N; i += 2) nc_handle_free(ids[i]);
}

/* Slots move between threads through the shared free list: no id is ever live twice. */
static void churn(void *arg) {
    int *bad = arg;
    int obj;
    nc_hid keep[100];
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 100; i++)
            if (nc_handle_alloc(&obj, NULL, &keep[i])) ++*bad;
        for (int i = 0; i < 100; i++) {
            if (nc_handle_get(keep[i]) != &obj) ++*bad;
            nc_handle_free(keep[i]);
            if (nc_handle_get(keep[i])) ++*bad;
        }
    }
}

static void test_threads(void **st) {
    (void)st;
    uv_thread_t t[4];
    int bad[4] = {0};
    for (int i = 0; i < 4; i++) assert_int_equal(uv_thread_create(&t[i], churn, &bad[i]), 0);
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&t[i]);
        assert_int_equal(bad[i], 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_ids_are_refused),
        cmocka_unit_test(test_many_live),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
