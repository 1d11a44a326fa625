#include "transport/common/reconnect.h"

void nc_reconnect_init(nc_backoff *b, int retry_delay_ms, int default_ms, int limit, const void *owner) {
    nc_backoff_cfg c = {.base_ms = retry_delay_ms > 0 ? retry_delay_ms : default_ms,
                        .limit = limit > 0 ? limit : 0,
                        .first_at_once = 1,
                        .jitter = 0.5};
    nc_backoff_init(b, &c, uv_hrtime() ^ (uint64_t)(uintptr_t)owner);
}

int nc_reconnect_next(nc_backoff *b, uv_loop_t *loop, nc_log_level loud, nc_log_level *level, char *note,
                      size_t len) {
    note[0] = '\0';
    int delay = nc_backoff_next(b);
    if (delay < 0) return -1;
    unsigned skipped = 0;
    *level = nc_backoff_should_log(b, uv_now(loop), &skipped) ? loud : NC_LOG_DEBUG;
    nc_backoff_suppressed_note(skipped, note, len);
    return delay;
}
