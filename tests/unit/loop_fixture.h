/* What the unit tests that drive the library on one libuv loop share: the loop, the time factor, waits on a
 * counter, cmocka group setup/teardown. Everything is static; included by one test file each (directly, or
 * through tcp_fixture.h or broker_harness.h). */
#ifndef NESTC_TEST_LOOP_FIXTURE_H
#define NESTC_TEST_LOOP_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include <uv.h>

#include "nestc/nestc.h"

static uv_loop_t loop;

/* Every time limit is multiplied by NESTC_TEST_TIMEOUT_FACTOR (set by CMake; default 1): a slow or loaded
 * machine (valgrind, sanitizers) makes the tests slower, not red. */
static inline int time_factor(void) {
    static int f;
    if (!f) {
        const char *v = getenv("NESTC_TEST_TIMEOUT_FACTOR");
        f = v && atoi(v) > 0 ? atoi(v) : 1;
    }
    return f;
}

/* Runs the loop until *flag reaches value. No limit of its own: what is awaited is sure to come (a reply, a
 * close), and ctest's TIMEOUT ends a hang. */
static inline void run_until(int *flag, int value) {
    while (*flag < value) uv_run(&loop, UV_RUN_ONCE);
}

static inline void loop_fixture_on_tick(uv_timer_t *t) {
    *(int *)t->data = 1;
}

/* Runs until *flag >= want or ms × the time factor pass; returns whether it got there. For waits on
 * something that may never come (a broker): a timer wakes the loop every 10 ms to look at the clock. */
static inline int run_until_ms(const int *flag, int want, int ms) {
    uv_update_time(&loop);
    uint64_t end = uv_now(&loop) + (uint64_t)ms * (uint64_t)time_factor();
    while (*flag < want && uv_now(&loop) < end) {
        uv_timer_t t;
        int fired = 0;
        uv_timer_init(&loop, &t);
        t.data = &fired;
        uv_timer_start(&t, loop_fixture_on_tick, 10, 0);
        while (!fired && *flag < want) uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    return *flag >= want;
}

/* cmocka group setup/teardown: logs off, the loop made; then the loop run dry (closes finish) and closed. */
static inline int loop_setup(void **st) {
    (void)st;
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    return uv_loop_init(&loop);
}
static inline void loop_close_left(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}
static inline int loop_teardown(void **st) {
    (void)st;
    uv_run(&loop, UV_RUN_NOWAIT);
    /* a case that failed half-way leaves its servers and clients open: close what is left, so that the group
     * teardown ends (the memory is then reported as leaked) instead of running the loop forever */
    uv_walk(&loop, loop_close_left, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop);
}

#endif
