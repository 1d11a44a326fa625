/* nc_last_error: a per-thread buffer holding why the last failing call failed. */
#include "util/last_error.h"

#include <stdarg.h>
#include <stdio.h>

#include "nestc/error.h"

/* 256 bytes covers a URL, a file name and an OpenSSL reason; longer text is cut, never overflowed. */
static _Thread_local char last[256];
static _Thread_local unsigned count; /* reasons recorded on this thread: see nc_last_error_mark */

static void vset(int err, const char *fmt, va_list ap) {
    count++;
    int n = vsnprintf(last, sizeof last, fmt, ap);
    /* an empty reason would read as "no failure": fall back on the code's text */
    if (n <= 0) snprintf(last, sizeof last, "%s", nc_strerror(err));
}

int nc_set_last_error(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset(err, fmt, ap);
    va_end(ap);
    return err;
}

unsigned nc_last_error_mark(void) {
    return count;
}

int nc_set_last_error_since(unsigned mark, int err, const char *fmt, ...) {
    if (count != mark) return err;
    va_list ap;
    va_start(ap, fmt);
    vset(err, fmt, ap);
    va_end(ap);
    return err;
}

const char *nc_last_error(void) {
    return last;
}
