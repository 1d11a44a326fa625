#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static void stderr_log(void *user, nc_log_level level, const char *component, const char *message) {
    static const char *names[] = {"DEBUG", "LOG", "WARN", "ERROR"};
    fprintf(stderr, "[nestc] %s [%s] %s\n", names[level < 4 ? level : 3], component, message);
}

static nc_log_fn default_fn = stderr_log;
static void *default_user;
static nc_log_level default_min = NC_LOG_INFO;

void nc_log_set_default(nc_log_fn fn, void *user, nc_log_level min_level) {
    default_fn = fn ? fn : stderr_log;
    default_user = fn ? user : NULL;
    default_min = min_level;
}

void nc_logger_init(nc_logger *lg, nc_log_fn fn, void *user, nc_log_level min) {
    if (fn) {
        lg->fn = fn;
        lg->user = user;
        lg->min = min;
    } else {
        lg->fn = NULL; /* resolved at call time, so nc_log_set_default applies to existing objects */
        lg->user = NULL;
        lg->min = min;
    }
}

void nc_logf(const nc_logger *lg, nc_log_level level, const char *component, const char *fmt, ...) {
    nc_log_fn fn = lg && lg->fn ? lg->fn : default_fn;
    void *user = lg && lg->fn ? lg->user : default_user;
    nc_log_level min = lg && lg->fn ? lg->min : default_min;
    if (level < min || min >= NC_LOG_OFF) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(user, level, component, msg);
}
