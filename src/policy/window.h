/* A rolling window of two counters (calls and failures, requests and retries), in ten slots of a tenth
 * of the window each: a slot older than the window is cleared when its turn comes again, so the sums
 * cover the last window to within one slot, in constant memory and with no timer. Private; one loop
 * thread. */
#ifndef NC_POLICY_WINDOW_H
#define NC_POLICY_WINDOW_H

#include <stdint.h>

#define NC_WINDOW_SLOTS 10

typedef struct nc_window {
    uint64_t slot_ns;               /* window / NC_WINDOW_SLOTS, at least 1 */
    uint64_t tick[NC_WINDOW_SLOTS]; /* which slot-time each slot holds (now / slot_ns) + 1; 0 = empty */
    uint64_t a[NC_WINDOW_SLOTS], b[NC_WINDOW_SLOTS];
} nc_window;

/* An empty window `window_ms` long. */
void nc_window_init(nc_window *w, int window_ms);
/* Clears every count. */
void nc_window_reset(nc_window *w);
/* Adds da and db at time now_ns (monotonic ns). */
void nc_window_add(nc_window *w, uint64_t now_ns, uint64_t da, uint64_t db);
/* The sums over the window ending at now_ns. */
void nc_window_sum(const nc_window *w, uint64_t now_ns, uint64_t *a, uint64_t *b);

#endif
