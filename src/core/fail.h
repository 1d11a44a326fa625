/* A failure the caller should be able to read: logged, and kept as the thread's nc_last_error. Private. */
#ifndef NC_CORE_FAIL_H
#define NC_CORE_FAIL_H

#include "core/log.h"

/* Formats the reason once, logs it at NC_LOG_ERROR under `component` and records it for nc_last_error.
 * Returns `err`. */
int nc_fail(const nc_logger *lg, const char *component, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif
