/* The hook points' clock: the TSC scaled and anchored to CLOCK_MONOTONIC (clock.h says why and how). */
#include "util/clock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#if NC_CLOCK_TSC
#include <cpuid.h>
#endif

nc_clock_anchor nc_clock__anchor;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#if NC_CLOCK_TSC

#define MEASURE_NS 10000000ULL /* the first rate measurement: 10 ms */
#define RENEW_NS 1000000000ULL /* the anchor's life: 1 s */
#define SKEW_NS 1000000ULL     /* a counter this far behind the anchor is another CPU's skew, not a jump */
#define RATE_TOLERANCE 100     /* a renewal's rate may differ from the last by 1/100 */
#define PAIR_TICKS 100000      /* a pair read further apart (30-50 us at 2-3 GHz) was interrupted */
#define RETRY_NS 1000000ULL    /* after an interrupted pair, the next try: 1 ms later */

static _Atomic int eligible = -1;    /* -1: not decided yet, 0: clock_gettime only, 1: TSC */
static _Atomic int busy;             /* one thread measures or renews at a time */
static _Atomic uint64_t next_try_ns; /* before this, the slow path does not try to measure */
static uint64_t meas_tsc, meas_ns;   /* the start of the rate measurement (under busy) */
static int measuring;

static int decide(void) {
    const char *e = getenv("NESTC_CLOCK");
    unsigned a, b, c, d;
    int ok = !(e && !strcmp(e, "monotonic")) && __get_cpuid(0x80000007, &a, &b, &c, &d) && ((d >> 8) & 1);
    int want = -1;
    atomic_compare_exchange_strong(&eligible, &want, ok); /* the first decision stands */
    return atomic_load(&eligible);
}

/* A (counter, CLOCK_MONOTONIC) pair read close together: of three tries, the one with the fewest ticks
 * around the clock_gettime call (an interruption between the two reads would skew the pair). 0 when even
 * that one was interrupted (a busy machine, or valgrind running another thread at the system call): the
 * pair is not used. */
static int read_pair(uint64_t *tsc, uint64_t *ns) {
    uint64_t best = UINT64_MAX;
    for (int k = 0; k < 3; k++) {
        uint64_t t1 = __rdtsc();
        uint64_t n = mono_ns();
        uint64_t t2 = __rdtsc();
        if (t2 - t1 < best) {
            best = t2 - t1;
            *tsc = t1 + (t2 - t1) / 2;
            *ns = n;
        }
    }
    return best <= PAIR_TICKS;
}

/* Nanoseconds per tick << 32 over a window; 0 when implausible (a counter below 50 MHz or above 20 GHz). */
static uint64_t rate_of(uint64_t ticks, uint64_t ns) {
    if (!ticks) return 0;
    unsigned __int128 m = ((unsigned __int128)ns << 32) / ticks;
    return m < ((unsigned __int128)1 << 32) / 20 || m > ((unsigned __int128)20 << 32) ? 0 : (uint64_t)m;
}

static void publish(uint64_t tsc, uint64_t ns, uint64_t mult, int on) {
    nc_clock_anchor *a = &nc_clock__anchor;
    uint32_t s = atomic_load_explicit(&a->seq, memory_order_relaxed);
    atomic_store_explicit(&a->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&a->tsc0, tsc, memory_order_relaxed);
    atomic_store_explicit(&a->ns0, ns, memory_order_relaxed);
    atomic_store_explicit(&a->mult, mult, memory_order_relaxed);
    atomic_store_explicit(&a->renew, on ? (uint64_t)(((unsigned __int128)RENEW_NS << 32) / mult) : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&a->on, (uint32_t)on, memory_order_relaxed);
    atomic_store_explicit(&a->seq, s + 2, memory_order_release);
}

/* Starts (or starts over) the rate measurement on clock_gettime. Under busy. */
static void measure_from(uint64_t tsc, uint64_t ns) {
    if (atomic_load_explicit(&nc_clock__anchor.on, memory_order_relaxed)) publish(0, 0, 0, 0);
    meas_tsc = tsc;
    meas_ns = ns;
    measuring = 1;
    atomic_store_explicit(&next_try_ns, ns + MEASURE_NS, memory_order_relaxed);
}

/* Under busy: the measurement's end, or the anchor's renewal. */
static void step(void) {
    uint64_t t = 0, ns = 0;
    if (!read_pair(&t, &ns)) {
        atomic_store_explicit(&next_try_ns, mono_ns() + RETRY_NS, memory_order_relaxed);
        return;
    }
    nc_clock_anchor *a = &nc_clock__anchor;
    if (!atomic_load_explicit(&a->on, memory_order_relaxed)) {
        if (!measuring || t <= meas_tsc || ns < meas_ns) {
            measure_from(t, ns);
        } else if (ns - meas_ns >= MEASURE_NS) {
            uint64_t m = rate_of(t - meas_tsc, ns - meas_ns);
            if (m) {
                measuring = 0;
                publish(t, ns, m, 1);
            } else {
                measure_from(t, ns);
            }
        }
        return;
    }
    uint64_t t0 = atomic_load_explicit(&a->tsc0, memory_order_relaxed);
    uint64_t n0 = atomic_load_explicit(&a->ns0, memory_order_relaxed);
    uint64_t m0 = atomic_load_explicit(&a->mult, memory_order_relaxed);
    uint64_t renew = atomic_load_explicit(&a->renew, memory_order_relaxed);
    if (t < t0) {
        /* behind the anchor: another CPU's counter a little behind (nothing to do), or a jump back */
        if ((uint64_t)(((unsigned __int128)(t0 - t) * m0) >> 32) > SKEW_NS) measure_from(t, ns);
        return;
    }
    if (t - t0 < renew) return; /* another thread renewed it meanwhile */
    uint64_t m = ns > n0 ? rate_of(t - t0, ns - n0) : 0;
    uint64_t diff = m > m0 ? m - m0 : m0 - m;
    if (m && diff <= m0 / RATE_TOLERANCE)
        publish(t, ns, m, 1);
    else
        measure_from(t, ns); /* paused, moved, or the counter jumped: measure again */
}

uint64_t nc_clock__slow(void) {
    uint64_t now = mono_ns();
    int el = atomic_load_explicit(&eligible, memory_order_relaxed);
    if (el < 0) el = decide();
    if (!el || now < atomic_load_explicit(&next_try_ns, memory_order_relaxed)) return now;
    int idle = 0;
    if (!atomic_compare_exchange_strong_explicit(&busy, &idle, 1, memory_order_acquire, memory_order_relaxed))
        return now; /* another thread is at it: this read is clock_gettime's */
    step();
    atomic_store_explicit(&busy, 0, memory_order_release);
    return now;
}

#else

uint64_t nc_clock__slow(void) {
    return mono_ns();
}

#endif

const char *nc_clock_source(void) {
    return atomic_load(&nc_clock__anchor.on) ? "tsc" : "monotonic";
}
