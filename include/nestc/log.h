/* nestc — logging. Servers and clients report what happened to connections and messages (a closed
 * connection and why, an unknown event, a failed handler) through a log sink. The default sink writes
 * one line per record to stderr: `[nestc] LEVEL [Component] message`, LEVEL being DEBUG, INFO, WARN or
 * ERROR (the names of nc_log_level below, and the values of NESTC_LOG_LEVEL).
 *
 * Defaults, and who decides (docs/logging.md has the why):
 * - Nothing configured: the stderr logger at NC_LOG_WARN. An embedded library should not print what
 *   went well, but a server has no other channel for a failed handler or a dropped connection.
 * - A client whose program installed an error callback (nc_client_on_error) gets its errors there: the
 *   default sink then writes that client's ERROR records at DEBUG, so no error is printed twice.
 * - nc_log_set_default(NULL, NULL, level): the program's level for the stderr logger.
 * - NESTC_LOG_LEVEL=off|error|warn|info|debug (case-insensitive), read once, when the first server,
 *   client or nc_log_set_default call is made: the operator's level for the stderr logger, over the
 *   program's (so a deployed program or the CLI can be made verbose, or silent, without a rebuild). An
 *   invalid value is ignored with one warning on stderr.
 * - A sink of the program's own (nc_log_set_default(fn, ...) or the options' `log`) gets records at the
 *   level the program gave with it; NESTC_LOG_LEVEL does not apply: the program's logging decides.
 * - NESTC_LOG_FORMAT=text|json (read with NESTC_LOG_LEVEL): the stderr logger writes each record as one
 *   JSON object per line instead: {"timestamp", "level", "component", "message", and when known "worker",
 *   "peer", "request_id", "trace_id", "repeated"}. A sink of the program's own reads those fields with
 *   nc_log_fields_current.
 * - Repeated records (the same component and message template, INFO and up) are rate-limited for every
 *   sink: the first 5 pass, then one after 1 s, 2 s, 4 s ... (at most one a minute), each saying how
 *   many like it were dropped since the last one shown (docs/logging.md). */
#ifndef NESTC_LOG_H
#define NESTC_LOG_H

#include "nestc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Severity, lowest first; a sink gets the records at or above its minimum. */
typedef enum nc_log_level {
    NC_LOG_DEBUG = 0, /* printed "DEBUG"; NESTC_LOG_LEVEL=debug */
    NC_LOG_INFO = 1,  /* printed "INFO" (NestJS's Logger.log); NESTC_LOG_LEVEL=info */
    NC_LOG_WARN = 2,  /* printed "WARN"; NESTC_LOG_LEVEL=warn (the default minimum) */
    NC_LOG_ERROR = 3, /* printed "ERROR"; NESTC_LOG_LEVEL=error */
    NC_LOG_OFF = 4,   /* as a minimum: nothing; NESTC_LOG_LEVEL=off */
} nc_log_level;

/* A log sink. `component` and `message` are valid only during the call. Called on the loop thread.
 * `message` is one line of printable UTF-8: messages quote peer text (patterns, channels, reasons), so
 * control characters (newline, ESC, C1) and bytes that are not well-formed UTF-8 (a lone surrogate
 * too) are written as \xNN, so that a peer cannot forge lines or drive a terminal. */
typedef void (*nc_log_fn)(void *user, nc_log_level level, const char *component, const char *message);

/* Sets the process-wide default sink and minimum level used by objects whose options name no logger
 * (also those already created). fn = NULL: the stderr logger, at `min_level` unless NESTC_LOG_LEVEL is
 * set (the environment wins, see above); fn set: `fn` gets every record at or above `min_level`, with
 * `user`, on the thread that logs (the loop thread; with workers, several). Not thread-safe: call
 * before creating servers/clients. */
NC_API void nc_log_set_default(nc_log_fn fn, void *user, nc_log_level min_level);

/* The structured fields of the record being logged. Members are NULL (worker: -1, repeated: 0) when not
 * known; the texts are as received from peers, not escaped. */
typedef struct nc_log_fields {
    const char *peer;       /* the peer's address, "ip:port" */
    const char *request_id; /* the request's id */
    const char *trace_id;   /* 32 hex digits, from the message's W3C traceparent */
    int worker;             /* the worker of a multi-worker server (0 = the primary), -1 otherwise */
    /* records like this one dropped by the rate limit since the last one shown, over repeated_ms */
    unsigned long repeated;
    unsigned long repeated_ms;
} nc_log_fields;

/* The fields of the record a sink is being called with: valid during that call, on its thread; NULL
 * outside a sink call. */
NC_API const nc_log_fields *nc_log_fields_current(void);

#ifdef __cplusplus
}
#endif
#endif
