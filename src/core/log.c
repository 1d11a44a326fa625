#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "codec/json_build.h"
#include "util/utf8.h"

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

/* The level names as printed: the enum's names (NC_LOG_INFO prints INFO) and NESTC_LOG_LEVEL's values. */
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

static void stderr_log(void *user, nc_log_level level, const char *component, const char *message) {
    (void)user;
    char line[1200];
    int n = snprintf(line, sizeof line, "[nestc] %s [%s] %s\n", level_names[level < 4 ? level : 3], component,
                     message);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    write_stderr(line, (size_t)n);
}

static void sanitize(char *out, size_t cap, const char *in);

/* Without any choice made: warnings and errors. A library should not print what went well (INFO, DEBUG)
 * in the program that embeds it, but a server has no other channel for a failed handler or a dropped
 * connection, so those stay visible; docs/logging.md. */
#define NC_LOG_DEFAULT_LEVEL NC_LOG_WARN

static nc_log_fn default_fn = stderr_log;
static void *default_user;
static nc_log_level program_min = NC_LOG_DEFAULT_LEVEL; /* the program's level for the default sink */

/* NESTC_LOG_LEVEL, read once per process (the first logger made, level set or record written): -1 when
 * unset or invalid. The operator's word: it sets the stderr logger's level over the program's. */
static int env_min = -1;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

int nc_log_level_parse(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < 5; i++)
        if (!strcasecmp(s, level_names[i])) return i;
    return -1;
}

static void read_env(void) {
    const char *v = getenv("NESTC_LOG_LEVEL");
    if (!v || !*v) return;
    env_min = nc_log_level_parse(v);
    if (env_min >= 0) return;
    char val[128], line[300];
    sanitize(val, sizeof val, v);
    int n = snprintf(line, sizeof line,
                     "[nestc] WARN [Log] NESTC_LOG_LEVEL=\"%s\" is not one of off, error, warn, info, debug: "
                     "ignored\n",
                     val);
    if (n > 0) write_stderr(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static nc_log_level default_min(void) {
    pthread_once(&env_once, read_env);
    return default_fn == stderr_log && env_min >= 0 ? (nc_log_level)env_min : program_min;
}

void nc_log_set_default(nc_log_fn fn, void *user, nc_log_level min_level) {
    pthread_once(&env_once, read_env);
    default_fn = fn ? fn : stderr_log;
    default_user = fn ? user : NULL;
    program_min = min_level;
}

void nc_logger_init(nc_logger *lg, nc_log_fn fn, void *user, nc_log_level min) {
    pthread_once(&env_once, read_env);
    lg->fn = fn; /* NULL: resolved at call time, so nc_log_set_default applies to existing objects */
    lg->user = fn ? user : NULL;
    lg->min = min;
    lg->errors_delivered = 0;
}

void nc_logger_errors_delivered(nc_logger *lg, int on) {
    lg->errors_delivered = on != 0;
}

/* Log lines quote peer text (patterns, channels, ids, reasons): a hostile peer could put a newline in one
 * to forge a log line, or an escape sequence to drive the terminal reading the log. So every byte that is
 * a control character (C0, DEL, and C1 as UTF-8: some terminals take U+009B as CSI) or not part of
 * well-formed UTF-8 (a WTF-8 lone surrogate included) is written as \xNN. Well-formed printable text (é,
 * emoji) is kept, backslashes too (patterns are JSON text, quoted as received). Cut to fit `cap`. */
static void sanitize(char *out, size_t cap, const char *in) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)in, *end = p + strlen(in);
    size_t o = 0;
    while (p < end) {
        size_t k = *p >= 0x80 ? nc_utf8_char_len(p, end) : 1;
        int bad = !k || *p < 0x20 || *p == 0x7F || (p[0] == 0xC2 && k == 2 && p[1] < 0xA0);
        if (bad) {
            k = 1;
            if (o + 4 >= cap) break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            if (o + k >= cap) break;
            memcpy(out + o, p, k);
            o += k;
        }
        p += k;
    }
    out[o] = '\0';
}

void nc_logf(const nc_logger *lg, nc_log_level level, const char *component, const char *fmt, ...) {
    nc_log_fn fn;
    void *user;
    nc_log_level min;
    if (lg && lg->fn) {
        fn = lg->fn;
        user = lg->user;
        min = lg->min;
    } else {
        fn = default_fn;
        user = default_user;
        min = default_min();
        /* the program gets this error through its callback already: printing it too would say it twice */
        if (lg && lg->errors_delivered && level == NC_LOG_ERROR) level = NC_LOG_DEBUG;
    }
    if (level < min || min >= NC_LOG_OFF) return;
    char raw[1024], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    sanitize(msg, sizeof msg, raw);
    fn(user, level, component, msg);
}
