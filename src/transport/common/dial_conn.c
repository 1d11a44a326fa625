/* The end of a broker transport's self-owned connection (dial_conn.h). */
#include "transport/common/dial_conn.h"

#include <stdio.h>

#include "nestc/error.h"

void nc_dial_conn_stream_end(nc_dial *d, int err, const char *msg, const char *no_greeting,
                             const char *closed_in) {
    char why[300];
    if (d->end_err) {
        nc_dial_reason(d, &err, &msg);
        if (err == NC_ETIMEDOUT && no_greeting) {
            snprintf(why, sizeof why, "%s: %s", msg, no_greeting);
            msg = why;
        }
    } else if (closed_in) {
        snprintf(why, sizeof why, "%s (%s)", closed_in, msg ? msg : "closed");
        msg = why;
        if (!err) err = NC_ECONNCLOSED;
    }
    nc_dial_end(d, err, msg);
}

void nc_dial_conn_fail(nc_dial *d, int err, const char *msg, const nc_logger *log, const char *component,
                       const char *proto, const char *host, int port) {
    if (nc_dial_fail(d, err, msg))
        nc_logf(log, NC_LOG_ERROR, component, "%s connection to %s:%d: %s", proto, host, port, msg);
}
