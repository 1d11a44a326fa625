/* nestc bench: percentiles of the latency histogram (the recording side is inline in bench_hist.h). */
#include <string.h>

#include "bench_hist.h"

void bench_hist_reset(bench_hist *h) {
    memset(h, 0, sizeof *h);
}

/* Highest value that falls into bucket `i` (inverse of bench_hist_index). */
static uint64_t bucket_high(unsigned i) {
    const unsigned half = 1u << BENCH_HIST_SUB_BITS;
    if (i < 2 * half) return i;
    unsigned shift = i / half - 1;
    uint64_t m = i - shift * half; /* in [half, 2 * half) */
    return ((m + 1) << shift) - 1;
}

uint64_t bench_hist_percentile(const bench_hist *h, double p) {
    if (!h->count) return 0;
    if (p > 100) p = 100;
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want) rank++; /* ceil, without libm */
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}
