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

#endif
