/* Unit tests for the hook points' clock (src/util/clock.[ch]): it reads CLOCK_MONOTONIC's time to within
 * microseconds through its first rate measurement and its renewals, from several threads at once, and
 * NESTC_CLOCK=monotonic keeps it on clock_gettime. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"

static uint64_t mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Off CLOCK_MONOTONIC by at most this much: the drift of one anchor's second at a rate measured over
 * 10 ms (microseconds), with room for a thread preempted between the reads (valgrind, a loaded machine). */
#define TOLERANCE_NS 2000000ULL

typedef struct run {
    uint64_t reads, worst_off, worst_back, tsc_reads;
    int ok;
} run;

/* Reads the clock for `ns` between two CLOCK_MONOTONIC reads each time, recording how far off and how far
 * back it ever was. */
static void sample(run *r, uint64_t ns) {
    uint64_t end = mono() + ns, last = 0;
    r->ok = 1;
    for (;;) {
        uint64_t a = mono(), c = nc_clock_ns(), b = mono();
        if (c + TOLERANCE_NS < a || c > b + TOLERANCE_NS) r->ok = 0;
        uint64_t off = c < a ? a - c : c > b ? c - b : 0;
        if (off > r->worst_off) r->worst_off = off;
        if (last > c && last - c > r->worst_back) r->worst_back = last - c;
        last = c;
        r->reads++;
        if (!strcmp(nc_clock_source(), "tsc")) r->tsc_reads++;
        if (b >= end) break;
    }
}

/* First, in a child that has not read the clock yet: the environment variable keeps it on clock_gettime
 * past the first rate measurement. */
static void test_env_monotonic(void **st) {
    (void)st;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("NESTC_CLOCK", "monotonic", 1);
        run r = {0};
        sample(&r, 50000000ULL); /* 50 ms: five times the measurement */
        _exit(r.ok && r.tsc_reads == 0 && !strcmp(nc_clock_source(), "monotonic") ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Past the first measurement (10 ms) and one renewal (1 s): the values stay CLOCK_MONOTONIC's. */
static void test_tracks_monotonic(void **st) {
    (void)st;
    run r = {0};
    sample(&r, 1300000000ULL);
    printf("# clock: %s; %llu reads (%llu on the TSC), at most %llu ns off CLOCK_MONOTONIC, %llu ns back\n",
           nc_clock_source(), (unsigned long long)r.reads, (unsigned long long)r.tsc_reads,
           (unsigned long long)r.worst_off, (unsigned long long)r.worst_back);
    assert_true(r.ok);
    assert_true(r.worst_back <= TOLERANCE_NS);
#if NC_CLOCK_TSC
    /* where the TSC is used at all, it is used after the measurement: most reads */
    if (r.tsc_reads) assert_true(r.tsc_reads * 2 > r.reads);
#endif
}

static void *thread_main(void *arg) {
    sample(arg, 1200000000ULL);
    return NULL;
}

/* Three threads read it across a renewal at once: none sees a torn anchor. */
static void test_threads(void **st) {
    (void)st;
    run r[3];
    memset(r, 0, sizeof r);
    pthread_t t[3];
    for (int k = 0; k < 3; k++) assert_int_equal(pthread_create(&t[k], NULL, thread_main, &r[k]), 0);
    for (int k = 0; k < 3; k++) {
        pthread_join(t[k], NULL);
        assert_true(r[k].ok);
        assert_true(r[k].worst_back <= TOLERANCE_NS);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_monotonic),
        cmocka_unit_test(test_tracks_monotonic),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
