/* Logging defaults (docs/logging.md): the stderr logger at WARN when nothing is configured, level names as
 * printed matching nc_log_level, NESTC_LOG_LEVEL (case-insensitive, read once, one warning when invalid)
 * over the program's level for the stderr logger but not over a sink of the program's own, and a client
 * with an error callback not printing its errors a second time.
 * The level state is per process and the variable is read once, so each case runs in a forked child whose
 * stderr is captured; this process never logs. */
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

static char out[16384]; /* the child's stderr */

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
