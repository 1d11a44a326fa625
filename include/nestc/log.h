/* nestc — logging. Servers and clients report what happened to connections and messages (a closed
 * connection and why, an unknown event, a failed handler) through a log callback. The default logger
 * writes one line per record to stderr: `[nestc] LEVEL [Component] message`. */
#ifndef NESTC_LOG_H
#define NESTC_LOG_H

#include "nestc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Severity, lowest first; a sink gets the records at or above its minimum. */
typedef enum nc_log_level {
    NC_LOG_DEBUG = 0,
    NC_LOG_INFO = 1,
    NC_LOG_WARN = 2,
    NC_LOG_ERROR = 3,
    NC_LOG_OFF = 4,
} nc_log_level;

/* A log sink. `component` and `message` are valid only during the call. Called on the loop thread.
 * `message` is one line of printable UTF-8: messages quote peer text (patterns, channels, reasons), so
 * control characters (newline, ESC, C1) and bytes that are not well-formed UTF-8 (a lone surrogate
 * too) are written as \xNN, so that a peer cannot forge lines or drive a terminal. */
typedef void (*nc_log_fn)(void *user, nc_log_level level, const char *component, const char *message);

/* Sets the process-wide default sink and minimum level used by objects whose options name no logger.
 * Pass fn = NULL to restore the stderr logger. Not thread-safe: call before creating servers/clients. */
NC_API void nc_log_set_default(nc_log_fn fn, void *user, nc_log_level min_level);

#ifdef __cplusplus
}
#endif
#endif
