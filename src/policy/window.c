/* The rolling window of the resilience policies (policy/window.h). */
#include "policy/window.h"

#include <string.h>

void nc_window_init(nc_window *w, int window_ms) {
    memset(w, 0, sizeof *w);
    uint64_t ns = (uint64_t)(window_ms > 0 ? window_ms : 1) * 1000000ULL;
    w->slot_ns = ns / NC_WINDOW_SLOTS ? ns / NC_WINDOW_SLOTS : 1;
}

void nc_window_reset(nc_window *w) {
    uint64_t slot = w->slot_ns;
    memset(w, 0, sizeof *w);
    w->slot_ns = slot;
}

void nc_window_add(nc_window *w, uint64_t now_ns, uint64_t da, uint64_t db) {
    uint64_t t = now_ns / w->slot_ns + 1;
    unsigned i = (unsigned)(t % NC_WINDOW_SLOTS);
    if (w->tick[i] != t) { /* the slot held an older slot-time: start it again */
        w->tick[i] = t;
        w->a[i] = w->b[i] = 0;
    }
    w->a[i] += da;
    w->b[i] += db;
}

void nc_window_sum(const nc_window *w, uint64_t now_ns, uint64_t *a, uint64_t *b) {
    uint64_t t = now_ns / w->slot_ns + 1, sa = 0, sb = 0;
    for (unsigned i = 0; i < NC_WINDOW_SLOTS; i++)
        if (w->tick[i] && w->tick[i] + NC_WINDOW_SLOTS > t && w->tick[i] <= t) {
            sa += w->a[i];
            sb += w->b[i];
        }
    *a = sa;
    *b = sb;
}
