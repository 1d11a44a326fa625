/* The reconnect policy (util/backoff.h) as the broker transports use it, so the settings and the log
 * rate limit live in one place: the first attempt at once (a restarted broker is usually back), then
 * from retry_delay_ms doubling to the cap, each delay jittered by up to half. Private. */
#ifndef NC_TRANSPORT_RECONNECT_H
#define NC_TRANSPORT_RECONNECT_H

#include <stddef.h>
#include <uv.h>

#include "nestc/log.h"
#include "util/backoff.h"

/* retry_delay_ms <= 0: default_ms. limit: attempts before giving up, 0 = unlimited. owner seeds the
 * jitter (with the clock), so two connections of one process do not draw the same delays. */
void nc_reconnect_init(nc_backoff *b, int retry_delay_ms, int default_ms, int limit, const void *owner);
/* A connection failed or was lost: the next attempt's delay in ms, or -1 to give up. *level is loud for
 * a line the rate limit lets through, else NC_LOG_DEBUG; note gets the tail " (N more attempts not
 * logged)" or "" (at least 48 bytes). */
int nc_reconnect_next(nc_backoff *b, uv_loop_t *loop, nc_log_level loud, nc_log_level *level, char *note,
                      size_t len);

#endif
