/* nestc bench: latency histogram. Exists because a load generator doing millions of responses a second
 * cannot keep samples: it counts them into fixed log-linear buckets (HdrHistogram's layout), with no
 * allocation and a few instructions per sample.
 *
 * Values are nanoseconds. Values below 256 ns have their own bucket; above, every power of two is split
 * into 128 buckets, so a reported percentile is within 0.8 % of the true sample (at 1 ms: 8 µs), up to
 * 2^40 ns (about 18 minutes; larger values are clamped). The exact maximum is kept apart. */
#ifndef NESTC_CLI_BENCH_HIST_H
#define NESTC_CLI_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 7 /* 128 buckets per power of two */
#define BENCH_HIST_MAX_NS ((uint64_t)1 << 40)
#define BENCH_HIST_BUCKETS ((40 - BENCH_HIST_SUB_BITS + 1) * (1 << BENCH_HIST_SUB_BITS))

typedef struct bench_hist {
    uint64_t count;
    uint64_t max;
    uint64_t buckets[BENCH_HIST_BUCKETS];
} bench_hist;

static inline unsigned bench_hist_index(uint64_t v) {
    const unsigned half = 1u << BENCH_HIST_SUB_BITS; /* 128 */
    if (v < 2 * half) return (unsigned)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - BENCH_HIST_SUB_BITS; /* >= 1 */
    return shift * half + (unsigned)(v >> shift);
}

static inline void bench_hist_add(bench_hist *h, uint64_t ns) {
    if (ns >= BENCH_HIST_MAX_NS) ns = BENCH_HIST_MAX_NS - 1;
    h->buckets[bench_hist_index(ns)]++;
    h->count++;
    if (ns > h->max) h->max = ns;
}

void bench_hist_reset(bench_hist *h);

/* The value at percentile p (0 < p <= 100): the highest value of the bucket holding the sample of rank
 * ceil(p/100 * count), never above the maximum. 0 when the histogram is empty. */
uint64_t bench_hist_percentile(const bench_hist *h, double p);

#endif
