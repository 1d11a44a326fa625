/* The metrics registry's internals, shared by the hook set (metrics.c) and the exposition writer
 * (prom.c). Private. */
#ifndef NC_OBS_METRICS_INTERNAL_H
#define NC_OBS_METRICS_INTERNAL_H

#include "nestc/metrics.h"
#include "util/buf.h"

/* Writes the Prometheus text exposition of every series of `m` (and of `h` when not NULL) to `b`.
 * Returns 0 or NC_ENOMEM. */
int nc_prom_write(nc_buf *b, nc_metrics *m, const nc_server_health *h);

/* Appends `s` as a Prometheus label value: backslash, double quote and newline escaped. */
int nc_prom_label_value(nc_buf *b, const char *s);

/* The registry's wire sources (obs/wire_metrics.c): the blocks of the servers and clients it watches. */
typedef struct nc_obs_wire nc_obs_wire;
struct nc_wire_block;
nc_obs_wire *nc_obs_wire_new(void);
void nc_obs_wire_free(nc_obs_wire *w); /* NULL: no-op */
/* Adds a block (a reference is taken; a block already there is not added twice). Returns 0 or NC_ENOMEM. */
int nc_obs_wire_add(nc_obs_wire *w, nc_hook_side side, const char *transport, struct nc_wire_block *b);
/* The registry's wire sources (metrics.c). */
nc_obs_wire *nc_metrics__wire(nc_metrics *m);

#endif
