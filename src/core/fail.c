#include "core/fail.h"

#include <stdarg.h>
#include <stdio.h>

#include "util/last_error.h"

int nc_fail(const nc_logger *lg, const char *component, int err, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    nc_logf(lg, NC_LOG_ERROR, component, "%s", text);
    return nc_set_last_error(err, "%s", text);
}
