/* A cheap monotonic clock for the hook points, which read it twice per message. Private.
 *
 * Why not clock_gettime(CLOCK_MONOTONIC) alone: through the vDSO it costs 25-35 ns on the VMs we measure,
 * and a whole message costs the server about 430 ns, so the two reads were half of what metrics added
 * (docs/observability.md, Cost). Reading the CPU's time-stamp counter costs about 10 ns.
 *
 * On x86-64 with an invariant TSC (CPUID says it ticks at a constant rate in every power state), the
 * counter is scaled to nanoseconds by a rate measured against CLOCK_MONOTONIC and anchored to it: the
 * first 10 ms after the first read use clock_gettime while the rate is measured, then the TSC is used, and
 * every second the anchor is renewed (the rate measured again over that second). So the values are
 * CLOCK_MONOTONIC's (uv_hrtime's) to within a few microseconds, and the clock follows the kernel's slewing.
 * A renewal whose rate differs from the last by more than 1 % (the VM was paused or moved, the counter
 * jumped) starts the measurement over on clock_gettime. Time can step back by the drift of one second
 * (microseconds) at a renewal: callers clamp durations at 0. Elsewhere (other CPUs, no invariant TSC), or
 * with NESTC_CLOCK=monotonic in the environment (read at the first call), every read is clock_gettime.
 *
 * Thread-safe; lock-free on the fast path (a sequence count guards the anchor while it is renewed). */
#ifndef NC_UTIL_CLOCK_H
#define NC_UTIL_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define NC_CLOCK_TSC 1
#include <x86intrin.h>
#else
#define NC_CLOCK_TSC 0
#endif

typedef struct nc_clock_anchor {
    _Atomic uint32_t seq;   /* odd while the anchor changes */
    _Atomic uint32_t on;    /* 1: the TSC path is in use */
    _Atomic uint64_t tsc0;  /* the anchor: counter value ... */
    _Atomic uint64_t ns0;   /* ... and CLOCK_MONOTONIC at that value */
    _Atomic uint64_t mult;  /* nanoseconds per tick, << 32 */
    _Atomic uint64_t renew; /* ticks after tsc0 at which the anchor is renewed (1 s) */
} nc_clock_anchor;

extern nc_clock_anchor nc_clock__anchor;

/* The slow path: clock_gettime, and the rate measurement and renewals. */
uint64_t nc_clock__slow(void);

/* Monotonic nanoseconds (CLOCK_MONOTONIC's, to within a few microseconds). */
static inline uint64_t nc_clock_ns(void) {
#if NC_CLOCK_TSC
    nc_clock_anchor *a = &nc_clock__anchor;
    uint32_t seq = atomic_load_explicit(&a->seq, memory_order_acquire);
    uint64_t d = __rdtsc() - atomic_load_explicit(&a->tsc0, memory_order_relaxed);
    uint64_t ns0 = atomic_load_explicit(&a->ns0, memory_order_relaxed);
    uint64_t mult = atomic_load_explicit(&a->mult, memory_order_relaxed);
    uint64_t renew = atomic_load_explicit(&a->renew, memory_order_relaxed); /* 0 while off */
    atomic_thread_fence(memory_order_acquire);
    /* d past the renewal, "negative" (a counter behind the anchor's), the TSC off, or the anchor
     * changing meanwhile (seq odd or moved on): the slow path */
    if (d < renew && atomic_load_explicit(&a->seq, memory_order_relaxed) == seq && !(seq & 1))
        return ns0 + (uint64_t)(((unsigned __int128)d * mult) >> 32);
#endif
    return nc_clock__slow();
}

/* "tsc" once the TSC path is in use, else "monotonic" (for tests and logs). */
const char *nc_clock_source(void);

#endif
