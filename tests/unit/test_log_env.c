/* Logging defaults (docs/logging.md): the stderr logger at WARN when nothing is configured, level names as
 * printed matching nc_log_level, NESTC_LOG_LEVEL (case-insensitive, read once, one warning when invalid)
 * over the program's level for the stderr logger but not over a sink of the program's own, and a client
 * with an error callback not printing its errors a second time.
 * The level state is per process and the variable is read once, so each case runs in a forked child whose
 * stderr is captured (the rate-limit cases log in this process, to a sink of their own). Also the JSON line
 * format (NESTC_LOG_FORMAT), the structured fields, and the rate limit on an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "nestc/nestc.h"

static char out[16384];          /* the child's stderr */
static const char *child_format; /* NESTC_LOG_FORMAT in the child (NULL: unset) */

/* Runs `scenario` in a child with NESTC_LOG_LEVEL set to `env` (NULL: unset); its stderr lands in `out`. */
static void run_child(const char *env, void (*scenario)(void)) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        close(p[1]);
        if (env)
            setenv("NESTC_LOG_LEVEL", env, 1);
        else
            unsetenv("NESTC_LOG_LEVEL");
        if (child_format)
            setenv("NESTC_LOG_FORMAT", child_format, 1);
        else
            unsetenv("NESTC_LOG_FORMAT");
        scenario();
        fflush(NULL);
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(p[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)r;
    out[n] = '\0';
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int count(const char *needle) {
    int n = 0;
    for (const char *p = out; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* ---- scenarios (run in the child) -----------------------------------------------------------------------
 */

static void log_each_level(void) {
    nc_logger lg;
    nc_logger_init(&lg, NULL, NULL, NC_LOG_DEBUG); /* no sink of its own: the process default */
    nc_logf(&lg, NC_LOG_DEBUG, "T", "m-debug");
    nc_logf(&lg, NC_LOG_INFO, "T", "m-info");
    nc_logf(&lg, NC_LOG_WARN, "T", "m-warn");
    nc_logf(&lg, NC_LOG_ERROR, "T", "m-error");
}

static void program_level_debug(void) {
    nc_log_set_default(NULL, NULL, NC_LOG_DEBUG);
    log_each_level();
}

static void program_level_off(void) {
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    log_each_level();
}

static void to_stderr_sink(void *user, nc_log_level level, const char *component, const char *message) {
    fprintf(stderr, "SINK %s %d %s %s\n", (const char *)user, (int)level, component, message);
}

static void program_sink_error(void) {
    nc_log_set_default(to_stderr_sink, "default", NC_LOG_ERROR);
    log_each_level();
}

static void object_sink_info(void) {
    nc_logger lg;
    nc_logger_init(&lg, to_stderr_sink, "object", NC_LOG_INFO);
    nc_logf(&lg, NC_LOG_DEBUG, "T", "m-debug");
    nc_logf(&lg, NC_LOG_INFO, "T", "m-info");
    nc_logf(&lg, NC_LOG_ERROR, "T", "m-error");
}

static void read_once(void) {
    nc_logger lg;
    nc_logger_init(&lg, NULL, NULL, NC_LOG_DEBUG); /* the first logger made reads the variable */
    setenv("NESTC_LOG_LEVEL", "debug", 1);
    nc_log_set_default(NULL, NULL, NC_LOG_WARN);
    log_each_level();
}

static void invalid_many_uses(void) {
    nc_log_set_default(NULL, NULL, NC_LOG_WARN);
    log_each_level();
    log_each_level();
}

static void delivered_errors(void) {
    nc_logger lg;
    nc_logger_init(&lg, NULL, NULL, NC_LOG_DEBUG);
    nc_logger_errors_delivered(&lg, 1);
    nc_logf(&lg, NC_LOG_WARN, "T", "m-warn");
    nc_logf(&lg, NC_LOG_ERROR, "T", "m-error");
    nc_logger own;
    nc_logger_init(&own, to_stderr_sink, "object", NC_LOG_DEBUG);
    nc_logger_errors_delivered(&own, 1);
    nc_logf(&own, NC_LOG_ERROR, "T", "m-own"); /* the program's sink asked for every record: unchanged */
}

/* A real client to a port that refuses (bound, not listening), with or without an error callback. */
static void on_error(void *user, int err, const char *message) {
    (void)user;
    fprintf(stderr, "CALLBACK %s %s\n", nc_err_name(err), message);
}
static void client_refused(int with_callback) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len))
        _exit(3);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    nc_client *cli;
    if (nc_client_new(&cli, url, NULL)) _exit(4);
    if (with_callback) nc_client_on_error(cli, on_error, NULL);
    json_t *err = NULL;
    int r = nc_client_send_sync(cli, "x", NULL, NULL, NULL, &err);
    fprintf(stderr, "RESULT %s\n", nc_err_name(r));
    json_decref(err);
    nc_client_free(cli);
    close(fd);
}
static void client_with_callback(void) {
    client_refused(1);
}
static void client_without_callback(void) {
    client_refused(0);
}

/* ---- tests ----------------------------------------------------------------------------------------------
 */

static void default_is_warn(void **st) {
    (void)st;
    run_child(NULL, log_each_level);
    assert_string_equal(out, "[nestc] WARN [T] m-warn\n[nestc] ERROR [T] m-error\n");
}

static void env_levels_case_insensitive(void **st) {
    (void)st;
    run_child("DeBuG", log_each_level);
    /* the printed names are nc_log_level's (NC_LOG_INFO prints INFO) and NESTC_LOG_LEVEL's values */
    assert_string_equal(out, "[nestc] DEBUG [T] m-debug\n[nestc] INFO [T] m-info\n[nestc] WARN [T] m-warn\n"
                             "[nestc] ERROR [T] m-error\n");
    run_child("info", log_each_level);
    assert_int_equal(count("m-debug"), 0);
    assert_int_equal(count("[nestc] INFO [T] m-info\n"), 1);
    run_child("Error", log_each_level);
    assert_string_equal(out, "[nestc] ERROR [T] m-error\n");
    run_child("OFF", log_each_level);
    assert_string_equal(out, "");
}

/* The operator's variable wins over the program's level for the stderr logger, both ways. */
static void env_over_program_level(void **st) {
    (void)st;
    run_child(NULL, program_level_debug);
    assert_int_equal(count("m-debug"), 1);
    run_child("error", program_level_debug);
    assert_string_equal(out, "[nestc] ERROR [T] m-error\n");
    run_child(NULL, program_level_off);
    assert_string_equal(out, "");
    run_child("warn", program_level_off);
    assert_string_equal(out, "[nestc] WARN [T] m-warn\n[nestc] ERROR [T] m-error\n");
}

/* ... but not over a sink of the program's own, process-wide or per object. */
static void env_leaves_program_sinks(void **st) {
    (void)st;
    run_child("debug", program_sink_error);
    assert_string_equal(out, "SINK default 3 T m-error\n");
    run_child("off", object_sink_info);
    assert_string_equal(out, "SINK object 1 T m-info\nSINK object 3 T m-error\n");
}

static void env_read_once(void **st) {
    (void)st;
    run_child("error", read_once); /* changed to debug after the first use: not read again */
    assert_string_equal(out, "[nestc] ERROR [T] m-error\n");
}

static void env_invalid_warns_once(void **st) {
    (void)st;
    run_child("verbose\n", invalid_many_uses);
    assert_int_equal(count("NESTC_LOG_LEVEL"), 1);
    assert_int_equal(count("[nestc] WARN [Log] NESTC_LOG_LEVEL=\"verbose\\x0a\" is not one of"), 1);
    /* then the level it would have had */
    assert_int_equal(count("m-info"), 0);
    assert_int_equal(count("[nestc] WARN [T] m-warn\n"), 2);
    assert_int_equal(count("[nestc] ERROR [T] m-error\n"), 2);
}

static void delivered_errors_are_debug(void **st) {
    (void)st;
    run_child(NULL, delivered_errors);
    assert_string_equal(out, "[nestc] WARN [T] m-warn\nSINK object 3 T m-own\n");
    run_child("debug", delivered_errors);
    assert_string_equal(out, "[nestc] WARN [T] m-warn\n[nestc] DEBUG [T] m-error\nSINK object 3 T m-own\n");
}

/* The reported case: a client with an error callback printed each error on stderr too. */
static void client_error_once(void **st) {
    (void)st;
    run_child(NULL, client_with_callback);
    assert_int_equal(count("RESULT NC_ECONNREFUSED"), 1);
    assert_int_equal(count("CALLBACK NC_ECONNREFUSED"), 1);
    assert_int_equal(count("[nestc]"), 0);
    run_child(NULL, client_without_callback);
    assert_int_equal(count("RESULT NC_ECONNREFUSED"), 1);
    assert_int_equal(count("[nestc] ERROR [Client] connect ECONNREFUSED"), 1);
    assert_int_equal(count("[nestc]"), 1);
}

/* ---- structured logs: NESTC_LOG_FORMAT, fields, rate limiting ------------------------------------------ */

/* Peer text with everything a log line must not carry raw: quotes, backslashes, a newline, ESC, a byte
 * that is not UTF-8. */
#define HOSTILE "a\"b\\c\nd\x1b[31m\xff"

static void log_with_fields(void) {
    nc_logger lg;
    nc_logger_init(&lg, NULL, NULL, NC_LOG_DEBUG);
    nc_log_ctx lc = {.peer = "10.0.0.7:" HOSTILE,
                     .request_id = "id\"1",
                     .request_id_len = 4,
                     .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                     .trace_id_len = 32};
    nc_logf_ctx(&lg, NC_LOG_WARN, "Server", &lc, "pattern %s failed", HOSTILE);
    lg.worker = 3; /* worker 2 of a multi-worker server */
    nc_logf(&lg, NC_LOG_ERROR, "Client", "plain");
}

/* One JSON object per line, with the fields; peer text escaped so that it reads back as the log's own
 * escaped form (\xNN), never as a raw control character. */
static void json_lines_valid(void **st) {
    (void)st;
    child_format = "JSON";
    run_child("debug", log_with_fields);
    child_format = NULL;
    int lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        if (!o) fail_msg("not JSON: %s (%s)", line, e.text);
        assert_true(json_is_object(o));
        const char *ts = json_string_value(json_object_get(o, "timestamp"));
        assert_non_null(ts);
        assert_int_equal(strlen(ts), 24); /* 2026-12-07T19:30:00.123Z */
        assert_int_equal(ts[10], 'T');
        assert_int_equal(ts[23], 'Z');
        if (lines == 0) {
            assert_string_equal(json_string_value(json_object_get(o, "level")), "WARN");
            assert_string_equal(json_string_value(json_object_get(o, "component")), "Server");
            assert_string_equal(json_string_value(json_object_get(o, "message")),
                                "pattern a\"b\\c\\x0ad\\x1b[31m\\xff failed");
            assert_string_equal(json_string_value(json_object_get(o, "peer")),
                                "10.0.0.7:a\"b\\c\\x0ad\\x1b[31m\\xff");
            assert_string_equal(json_string_value(json_object_get(o, "request_id")), "id\"1");
            assert_string_equal(json_string_value(json_object_get(o, "trace_id")),
                                "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_null(json_object_get(o, "worker"));
        } else {
            assert_string_equal(json_string_value(json_object_get(o, "message")), "plain");
            assert_int_equal(json_integer_value(json_object_get(o, "worker")), 2);
            assert_null(json_object_get(o, "peer"));
        }
        json_decref(o);
        lines++;
    }
    assert_int_equal(lines, 2);
}

/* The text format is unchanged but for the worker; an unknown format is warned about and ignored. */
static void format_env(void **st) {
    (void)st;
    child_format = "text";
    run_child(NULL, log_with_fields);
    assert_int_equal(count("[nestc] WARN [Server] pattern a\"b\\c\\x0ad\\x1b[31m\\xff failed\n"), 1);
    assert_int_equal(count("[nestc] ERROR [Client] [worker 2] plain\n"), 1);
    child_format = "yaml";
    run_child(NULL, log_each_level);
    child_format = NULL;
    assert_int_equal(
        count("[nestc] WARN [Log] NESTC_LOG_FORMAT=\"yaml\" is not one of text, json: ignored\n"), 1);
    assert_int_equal(count("[nestc] WARN [T] m-warn\n"), 1);
    assert_int_equal(nc_log_format_parse("Json"), 1);
    assert_int_equal(nc_log_format_parse("TEXT"), 0);
    assert_int_equal(nc_log_format_parse("jsonl"), -1);
    assert_int_equal(nc_log_format_parse(NULL), -1);
}

static void traceparent_ids(void **st) {
    (void)st;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_ptr_equal(nc_log_traceparent_id(tp, strlen(tp)), tp + 3);
    assert_null(nc_log_traceparent_id(tp, 20));
    const char *zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    assert_null(nc_log_traceparent_id(zero, strlen(zero)));
    const char *upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
    assert_null(nc_log_traceparent_id(upper, strlen(upper)));
    assert_null(nc_log_traceparent_id(NULL, 0));
}

/* Rate limiting, on an injected clock and a sink of the test's own. */
static uint64_t fake_now;
static uint64_t fake_clock(void) {
    return fake_now;
}
static int shown;
static unsigned long shown_repeated, last_repeated;
static char last_msg[1200];
static void counting_sink(void *u, nc_log_level level, const char *component, const char *message) {
    (void)u;
    (void)level;
    (void)component;
    shown++;
    const nc_log_fields *f = nc_log_fields_current();
    assert_non_null(f);
    last_repeated = f->repeated;
    shown_repeated += f->repeated;
    snprintf(last_msg, sizeof last_msg, "%s", message);
}
static void limits_begin(nc_logger *lg) {
    nc_log__set_clock(fake_clock);
    nc_log__reset_limits();
    fake_now = 1000000;
    shown = 0;
    shown_repeated = 0;
    nc_logger_init(lg, counting_sink, NULL, NC_LOG_DEBUG);
}

/* A broker down for a minute, a failed attempt every 500 ms: a handful of lines, with the counts. */
static void rate_limit_broker_down(void **st) {
    (void)st;
    nc_logger lg;
    limits_begin(&lg);
    for (int i = 0; i < 120; i++) {
        nc_logf(&lg, NC_LOG_ERROR, "Client", "connection to 127.0.0.1:%d lost: %s", 6379, "ECONNREFUSED");
        fake_now += 500;
    }
    print_message("120 records in 60 s: %d lines shown\n", shown);
    assert_true(shown >= NC_LOG_BURST && shown <= NC_LOG_BURST + 7);
    /* everything is accounted for: shown, or counted in a later line, or after the last line shown */
    assert_true((unsigned long)shown + shown_repeated <= 120);
    assert_true((unsigned long)shown + shown_repeated >= 120 - 64); /* the last gap is at most 32 s */
    assert_non_null(strstr(last_msg, "more times in the last"));
    assert_true(last_repeated > 0);
    /* another template is not held back by this one */
    nc_logf(&lg, NC_LOG_ERROR, "Client", "a different complaint altogether");
    assert_non_null(strstr(last_msg, "a different complaint"));
    /* quiet for a minute: the template starts afresh */
    fake_now += NC_LOG_QUIET_MS;
    int before = shown;
    for (int i = 0; i < NC_LOG_BURST; i++)
        nc_logf(&lg, NC_LOG_ERROR, "Client", "connection to 127.0.0.1:%d lost: %s", 6379, "ECONNREFUSED");
    assert_int_equal(shown - before, NC_LOG_BURST);
    assert_non_null(strstr(last_msg, "(more like this are rate-limited)"));
    nc_log__set_clock(NULL);
}

/* The template is the text with its numbers folded; DEBUG is never limited. */
static void rate_limit_templates(void **st) {
    (void)st;
    nc_logger lg;
    limits_begin(&lg);
    for (int i = 0; i < 20; i++) nc_logf(&lg, NC_LOG_WARN, "Server", "%s", i % 2 ? "one thing" : "another");
    assert_int_equal(shown, 2 * NC_LOG_BURST);
    shown = 0;
    char m[64];
    for (int i = 0; i < 20; i++) {
        snprintf(m, sizeof m, "peer 10.0.0.%d:%d reset", i, 40000 + i);
        nc_logf(&lg, NC_LOG_WARN, "Server", "%s", m);
    }
    assert_int_equal(shown, NC_LOG_BURST);
    shown = 0;
    for (int i = 0; i < 20; i++) /* one format, two subjects: two templates */
        nc_logf(&lg, NC_LOG_ERROR, "Server", "Redis %s connection to %s:%d lost", i % 2 ? "pub" : "sub",
                "127.0.0.1", 6379);
    assert_int_equal(shown, 2 * NC_LOG_BURST);
    shown = 0;
    for (int i = 0; i < 20; i++) nc_logf(&lg, NC_LOG_DEBUG, "Server", "%s", "chatty");
    assert_int_equal(shown, 20);
    nc_log__set_clock(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_is_warn),
        cmocka_unit_test(env_levels_case_insensitive),
        cmocka_unit_test(env_over_program_level),
        cmocka_unit_test(env_leaves_program_sinks),
        cmocka_unit_test(env_read_once),
        cmocka_unit_test(env_invalid_warns_once),
        cmocka_unit_test(delivered_errors_are_debug),
        cmocka_unit_test(client_error_once),
        cmocka_unit_test(json_lines_valid),
        cmocka_unit_test(format_env),
        cmocka_unit_test(traceparent_ids),
        cmocka_unit_test(rate_limit_broker_down),
        cmocka_unit_test(rate_limit_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
