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

#include "nestc/trace.h"
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

/* The fields of the record being logged on this thread (nc_log_fields_current), NULL between records. */
static _Thread_local const nc_log_fields *cur_fields;

const nc_log_fields *nc_log_fields_current(void) {
    return cur_fields;
}

static void stderr_log(void *user, nc_log_level level, const char *component, const char *message) {
    (void)user;
    char line[1200], wtag[32] = "";
    if (cur_fields && cur_fields->worker >= 0)
        snprintf(wtag, sizeof wtag, "[worker %d] ", cur_fields->worker);
    int n = snprintf(line, sizeof line, "[nestc] %s [%s] %s%s\n", level_names[level < 4 ? level : 3],
                     component, wtag, message);
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
static int env_json; /* NESTC_LOG_FORMAT=json: the stderr logger writes JSON lines */
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

int nc_log_format_parse(const char *s) {
    if (!s) return -1;
    if (!strcasecmp(s, "text")) return 0;
    if (!strcasecmp(s, "json")) return 1;
    return -1;
}

int nc_log_level_parse(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < 5; i++)
        if (!strcasecmp(s, level_names[i])) return i;
    return -1;
}

static void env_warn(const char *name, const char *v, const char *choices) {
    char val[128], line[300];
    sanitize(val, sizeof val, v);
    int n = snprintf(line, sizeof line, "[nestc] WARN [Log] %s=\"%s\" is not one of %s: ignored\n", name, val,
                     choices);
    if (n > 0) write_stderr(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void read_env(void) {
    const char *f = getenv("NESTC_LOG_FORMAT");
    if (f && *f) {
        int j = nc_log_format_parse(f);
        if (j < 0)
            env_warn("NESTC_LOG_FORMAT", f, "text, json");
        else
            env_json = j;
    }
    const char *v = getenv("NESTC_LOG_LEVEL");
    if (!v || !*v) return;
    env_min = nc_log_level_parse(v);
    if (env_min < 0) env_warn("NESTC_LOG_LEVEL", v, "off, error, warn, info, debug");
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
    lg->worker = 0;
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

/* ---- rate limiting ---------------------------------------------------------------------------------- */

/* One template's state. The table is small and direct-mapped: a template evicted by another with the same
 * slot starts afresh, which at worst lets a few more lines through. */
typedef struct rl_slot {
    uint64_t key;    /* 0 = free */
    uint64_t last;   /* when the last record of it came */
    uint64_t shown;  /* when the last one shown was */
    uint64_t next;   /* the next one shown may come from then on */
    uint32_t gap;    /* ms between shown lines once past the burst */
    uint32_t passed; /* shown in this run (up to the burst) */
    unsigned long dropped;
} rl_slot;

#define RL_SLOTS 128
static rl_slot rl_table[RL_SLOTS];
static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t system_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
static uint64_t (*rl_clock)(void) = system_ms;

void nc_log__set_clock(uint64_t (*now_ms)(void)) {
    rl_clock = now_ms ? now_ms : system_ms;
}

void nc_log__reset_limits(void) {
    pthread_mutex_lock(&rl_lock);
    memset(rl_table, 0, sizeof rl_table);
    pthread_mutex_unlock(&rl_lock);
}

static uint64_t fnv(uint64_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211u;
    return h;
}

/* The template of a record: its component and text with every run of digits folded, so that "connection
 * to 10.0.0.7:51234 lost; reconnecting in 37 ms" and the same from another port, after another delay, are
 * one template, while two complaints through one format string about different subjects (a Redis
 * server's pub and sub connections, two patterns) are two. */
static uint64_t template_key(const char *component, const char *text) {
    uint64_t h = fnv(14695981039346656037u, component, strlen(component));
    h = fnv(h, "\0", 1);
    int in_digits = 0;
    for (const char *p = text; *p; p++) {
        int d = *p >= '0' && *p <= '9';
        if (d && in_digits) continue;
        in_digits = d;
        h = fnv(h, d ? "#" : p, 1);
    }
    return h ? h : 1;
}

/* Whether a record of `key` is shown: 1 (with *dropped and *over_ms the count since the last one shown,
 * and *last_of_burst set on the burst's last line), or 0. */
static int rl_admit(uint64_t key, unsigned long *dropped, unsigned long *over_ms, int *last_of_burst) {
    uint64_t now = rl_clock();
    int show = 1;
    pthread_mutex_lock(&rl_lock);
    rl_slot *sl = &rl_table[key % RL_SLOTS];
    if (sl->key != key || now - sl->last >= NC_LOG_QUIET_MS) {
        memset(sl, 0, sizeof *sl);
        sl->key = key;
    }
    sl->last = now;
    if (sl->passed < NC_LOG_BURST) {
        sl->passed++;
        sl->shown = now;
        if (sl->passed == NC_LOG_BURST) {
            *last_of_burst = 1;
            sl->gap = NC_LOG_FIRST_GAP_MS;
            sl->next = now + sl->gap;
        }
    } else if (now >= sl->next) {
        *dropped = sl->dropped;
        *over_ms = (unsigned long)(now - sl->shown);
        sl->dropped = 0;
        sl->shown = now;
        sl->gap = sl->gap * 2 > NC_LOG_MAX_GAP_MS ? NC_LOG_MAX_GAP_MS : sl->gap * 2;
        sl->next = now + sl->gap;
    } else {
        sl->dropped++;
        show = 0;
    }
    pthread_mutex_unlock(&rl_lock);
    return show;
}

/* ---- JSON lines -----------------------------------------------------------------------------------------
 */

typedef struct jline {
    char *p;
    size_t n, cap;
} jline;

static void jraw(jline *j, const char *s, size_t n) {
    if (j->n + n >= j->cap) n = j->cap - j->n - 1;
    memcpy(j->p + j->n, s, n);
    j->n += n;
}

/* A JSON string of `s` (already sanitized: printable UTF-8, \xNN for the rest), escaped; cut whole. */
static void jstr(jline *j, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (j->n + 2 >= j->cap) return;
    j->p[j->n++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t k = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            k = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
        } else {
            esc[0] = (char)c;
        }
        if (j->n + k + 2 >= j->cap) break; /* room for the closing quote */
        memcpy(j->p + j->n, esc, k);
        j->n += k;
    }
    j->p[j->n++] = '"';
}

static void jfield(jline *j, const char *name, const char *s, size_t n) {
    jraw(j, ",\"", 2);
    jraw(j, name, strlen(name));
    jraw(j, "\":", 2);
    jstr(j, s, n);
}

static void jnum(jline *j, const char *name, unsigned long long v) {
    char b[64];
    int n = snprintf(b, sizeof b, ",\"%s\":%llu", name, v);
    if (n > 0) jraw(j, b, (size_t)n);
}

/* Peer text for a JSON field: sanitized as messages are (a string of a few hundred bytes at most). */
static void jfield_peer(jline *j, const char *name, const char *s, size_t n) {
    char raw[512], clean[512];
    if (n >= sizeof raw) n = sizeof raw - 1;
    memcpy(raw, s, n);
    raw[n] = '\0';
    sanitize(clean, sizeof clean, raw);
    jfield(j, name, clean, strlen(clean));
}

static void json_line(nc_log_level level, const char *component, const char *msg, const nc_log_ctx *ctx,
                      const nc_log_fields *f) {
    char buf[8192], ts[40]; /* the worst case (every byte of every text escaped) fits: a line is never cut */
    jline j = {buf, 0, sizeof buf - 1}; /* one byte kept for the newline */
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t tn = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tn, sizeof ts - tn, ".%03ldZ", now.tv_nsec / 1000000);
    jraw(&j, "{\"timestamp\":", 13);
    jstr(&j, ts, strlen(ts));
    jfield(&j, "level", level_names[level < 4 ? level : 3], strlen(level_names[level < 4 ? level : 3]));
    jfield(&j, "component", component, strlen(component));
    jfield(&j, "message", msg, strlen(msg));
    if (f->worker >= 0) jnum(&j, "worker", (unsigned long long)f->worker);
    if (ctx && ctx->peer) jfield_peer(&j, "peer", ctx->peer, strlen(ctx->peer));
    if (ctx && ctx->request_id) jfield_peer(&j, "request_id", ctx->request_id, ctx->request_id_len);
    if (ctx && ctx->trace_id) jfield_peer(&j, "trace_id", ctx->trace_id, ctx->trace_id_len);
    if (f->repeated) {
        jnum(&j, "repeated", f->repeated);
        jnum(&j, "repeated_ms", f->repeated_ms);
    }
    jraw(&j, "}", 1);
    buf[j.n++] = '\n';
    write_stderr(buf, j.n);
}

const char *nc_log_traceparent_id(const char *tp, size_t len) {
    /* validated as the tracer validates it (core/trace_ctx.c): a log line names the trace the tracer
     * continues, or none */
    nc_trace_ctx c;
    return nc_trace_parse(tp, len, &c) == 0 ? tp + 3 : NULL;
}

/* ---- the record -----------------------------------------------------------------------------------------
 */

static void vlog(const nc_logger *lg, nc_log_level level, const char *component, const nc_log_ctx *ctx,
                 const char *fmt, va_list ap) {
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
    char raw[1024], msg[1100];
    vsnprintf(raw, sizeof raw, fmt, ap);
    unsigned long dropped = 0, over_ms = 0;
    int last_of_burst = 0;
    if (level >= NC_LOG_INFO && !rl_admit(template_key(component, raw), &dropped, &over_ms, &last_of_burst))
        return;
    sanitize(msg, 1024, raw);
    nc_log_fields f = {.worker = lg ? lg->worker - 1 : -1, .repeated = dropped, .repeated_ms = over_ms};
    char rid[256], tid[40];
    if (ctx) {
        f.peer = ctx->peer;
        if (ctx->request_id) {
            size_t n = ctx->request_id_len < sizeof rid ? ctx->request_id_len : sizeof rid - 1;
            memcpy(rid, ctx->request_id, n);
            rid[n] = '\0';
            f.request_id = rid;
        }
        if (ctx->trace_id) {
            size_t n = ctx->trace_id_len < sizeof tid ? ctx->trace_id_len : sizeof tid - 1;
            memcpy(tid, ctx->trace_id, n);
            tid[n] = '\0';
            f.trace_id = tid;
        }
    }
    const nc_log_fields *outer = cur_fields; /* a sink that logs (it should not) gets its own record */
    cur_fields = &f;
    if (fn == stderr_log && env_json) {
        json_line(level, component, msg, ctx, &f);
    } else {
        /* the text says what the JSON fields say */
        size_t n = strlen(msg);
        if (dropped)
            snprintf(msg + n, sizeof msg - n, " (repeated %lu more times in the last %lu s)", dropped,
                     (over_ms + 500) / 1000);
        else if (last_of_burst)
            snprintf(msg + n, sizeof msg - n, " (more like this are rate-limited)");
        fn(user, level, component, msg);
    }
    cur_fields = outer;
}

void nc_logf(const nc_logger *lg, nc_log_level level, const char *component, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(lg, level, component, NULL, fmt, ap);
    va_end(ap);
}

void nc_logf_ctx(const nc_logger *lg, nc_log_level level, const char *component, const nc_log_ctx *ctx,
                 const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(lg, level, component, ctx, fmt, ap);
    va_end(ap);
}
