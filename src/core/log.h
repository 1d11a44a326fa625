/* Logging plumbing. Private. */
#ifndef NC_CORE_LOG_H
#define NC_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "nestc/log.h"

typedef struct nc_logger {
    nc_log_fn fn;
    void *user;
    nc_log_level min;
    /* The owner hands its errors to a callback the program installed (nc_client_on_error): on the
     * process default sink, its ERROR records are then written at DEBUG (docs/logging.md). */
    int errors_delivered;
    /* 1 + the owner's worker index on a multi-worker server (1 = the primary), 0 when not one. */
    int worker;
} nc_logger;

/* What a record is about, beyond its text: the structured fields of the JSON format and of
 * nc_log_fields_current (nestc/log.h). Every member may be NULL; the texts are borrowed for the call and
 * may be peer text (escaped when written). */
typedef struct nc_log_ctx {
    const char *peer; /* the peer's address, "ip:port" */
    const char *request_id;
    size_t request_id_len;
    const char *trace_id; /* 32 hex digits (W3C trace context) */
    size_t trace_id_len;
} nc_log_ctx;

/* Fills a logger from options (fn NULL = the process default). */
void nc_logger_init(nc_logger *lg, nc_log_fn fn, void *user, nc_log_level min);

/* Marks (on = 1) or unmarks the logger's owner as delivering its errors to a program's callback. */
void nc_logger_errors_delivered(nc_logger *lg, int on);

/* Parses a NESTC_LOG_LEVEL value (off, error, warn, info, debug; case-insensitive). Returns the level,
 * or -1 when `s` is none of them. */
int nc_log_level_parse(const char *s);
void nc_logf(const nc_logger *lg, nc_log_level level, const char *component, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* The same with the record's structured fields (ctx may be NULL). */
void nc_logf_ctx(const nc_logger *lg, nc_log_level level, const char *component, const nc_log_ctx *ctx,
                 const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Parses a NESTC_LOG_FORMAT value (text, json; case-insensitive): 0 text, 1 JSON, -1 neither. */
int nc_log_format_parse(const char *s);

/* The trace id (32 hex digits) of a W3C `traceparent` value ("00-<trace id>-<parent id>-<flags>"), or NULL
 * when the value is not one. Points into `tp`. */
const char *nc_log_traceparent_id(const char *tp, size_t len);

/* ---- rate limiting (docs/logging.md "Repeated records") ------------------------------------------------
 * Records of INFO and up are limited per component and message template (the text with its numbers
 * folded): the first NC_LOG_BURST pass, then
 * one after 1 s, 2 s, 4 s ... (at most one a minute), each saying how many were dropped since the last
 * one shown; a template quiet for NC_LOG_QUIET_MS starts afresh. DEBUG records are never limited. */
#define NC_LOG_BURST 5
#define NC_LOG_FIRST_GAP_MS 1000
#define NC_LOG_MAX_GAP_MS 60000
#define NC_LOG_QUIET_MS 60000

/* Tests: the clock the limiter reads (ms, monotonic; NULL = the system's), and forgetting its state. */
void nc_log__set_clock(uint64_t (*now_ms)(void));
void nc_log__reset_limits(void);

#endif
