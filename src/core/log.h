/* Logging plumbing. Private. */
#ifndef NC_CORE_LOG_H
#define NC_CORE_LOG_H

#include "nestc/log.h"

typedef struct nc_logger {
    nc_log_fn fn;
    void *user;
    nc_log_level min;
    /* The owner hands its errors to a callback the program installed (nc_client_on_error): on the
     * process default sink, its ERROR records are then written at DEBUG (docs/logging.md). */
    int errors_delivered;
} nc_logger;

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

#endif
