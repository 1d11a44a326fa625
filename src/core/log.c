#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* stderr may be a pipe whose reader is gone (`server 2>&1 | head`): a write to it raises SIGPIPE, whose
 * default action would kill the host program on a log line. Sockets have MSG_NOSIGNAL (io/stream.c);
 * for a pipe the POSIX way is to block SIGPIPE in this thread around the write and consume the signal
 * the write raised, unless one was already pending before (then it is not ours). */
static void write_stderr(const char *p, size_t n) {
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    while (n) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w;
        n -= (size_t)w;
    }
    if (!was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            static const struct timespec now = {0, 0};
            sigtimedwait(&pipe_set, NULL, &now);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void stderr_log(void *user, nc_log_level level, const char *component, const char *message) {
    static const char *names[] = {"DEBUG", "LOG", "WARN", "ERROR"};
    char line[1200];
    int n =
        snprintf(line, sizeof line, "[nestc] %s [%s] %s\n", names[level < 4 ? level : 3], component, message);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    write_stderr(line, (size_t)n);
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
