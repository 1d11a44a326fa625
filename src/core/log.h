/* Logging plumbing. Private. */
#ifndef NC_CORE_LOG_H
#define NC_CORE_LOG_H

#include "nestc/log.h"

typedef struct nc_logger {
    nc_log_fn fn;
    void *user;
    nc_log_level min;
} nc_logger;

/* Fills a logger from options (fn NULL = the process default). */
void nc_logger_init(nc_logger *lg, nc_log_fn fn, void *user, nc_log_level min);
void nc_logf(const nc_logger *lg, nc_log_level level, const char *component, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif
