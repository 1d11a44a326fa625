/* The fixture of the MQTT tests against a real mosquitto (test_mqtt_transport, test_mqtt_record): one broker
 * of the binary's own on a free loopback port in a temporary directory (stopped by PID), its 3.1.1 and 5
 * URLs, a child process a test may fork (kid_pid: killed by the teardown when a test failed with it alive),
 * a time limit that stops both before ctest would kill the binary, and a teardown that cannot hang on what a
 * failed test left open. Include after broker_harness.h; define MQTT_FIXTURE_NAME (the binary's name). */
#ifndef NESTC_TEST_MQTT_FIXTURE_H
#define NESTC_TEST_MQTT_FIXTURE_H

static void broker_exec(const broker *b, const char *port) {
    broker_exec_mosquitto(b, port);
}

static char url[128], url5[160];
static broker B;
static pid_t kid_pid; /* a test's child process while it lives */

static void kid_kill(void) {
    if (kid_pid <= 0) return;
    kill(kid_pid, SIGKILL);
    waitpid(kid_pid, NULL, 0);
    kid_pid = 0;
}

/* A server on this loop, quiet, retrying fast; *connected counts its "connected" status events. */
static void on_srv_status(void *u, const char *status, int err) {
    if (!strcmp(status, "connected")) (*(int *)u)++;
}

static nc_server *server_new(const char *u, int *connected) {
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.retry_delay_ms = 100;
    o.shutdown_timeout_ms = 200;
    nc_server *srv;
    assert_int_equal(nc_server_new(&srv, u, &o), 0);
    nc_server_on_status(srv, on_srv_status, connected);
    return srv;
}

static void listen_until_connected(nc_server *srv, int *connected) {
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(connected, 1, 5000));
}

static json_t *ask(nc_client *c, const char *route, const nc_call_opts *o) {
    call k = {0};
    assert_int_equal(nc_client_send(c, route, NULL, o, on_value, on_done, &k), 0);
    assert_true(run_until_ms(&k.done, 1, 5000));
    assert_int_equal(k.err, 0);
    json_t *v = json_incref(k.last);
    call_clear(&k);
    return v;
}

/* A test that hangs (a wait without a limit) ends the binary: the broker and a child stopped first. */
static void mqtt_fixture_alarm(int sig) {
    (void)sig;
    if (kid_pid > 0) kill(kid_pid, SIGKILL);
    if (B.pid > 0) kill(B.pid, SIGTERM);
    static const char msg[] = MQTT_FIXTURE_NAME ": time limit reached, stopped\n";
    if (write(2, msg, sizeof msg - 1)) {
    }
    _exit(1);
}

static int mqtt_fixture_setup(void **st) {
    (void)st;
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    uv_loop_init(&loop);
    broker_start(&B);
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", B.port);
    snprintf(url5, sizeof url5, "mqtt://127.0.0.1:%d?protocolVersion=5", B.port);
    return 0;
}

static int mqtt_fixture_teardown(void **st) {
    (void)st;
    kid_kill();
    broker_free(&B);
    /* close callbacks of what the tests freed; bounded: a failed test leaves its servers and clients
     * open (the loop would never run dry), and the binary must then fail, not hang */
    int never = 0;
    for (int i = 0; i < 300 && uv_loop_alive(&loop); i++) run_until_ms(&never, 1, 10);
    int r = uv_loop_close(&loop);
    if (r) uv_print_all_handles(&loop, stderr);
    return r;
}

/* Runs the tests (skipped when mosquitto is not installed) within limit_s seconds × the time factor. */
#define MQTT_FIXTURE_RUN(tests, limit_s)                                                                     \
    do {                                                                                                     \
        if (system("command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto") != 0) {            \
            printf("mosquitto not installed: skipped\n");                                                    \
            return 0;                                                                                        \
        }                                                                                                    \
        signal(SIGALRM, mqtt_fixture_alarm);                                                                 \
        alarm((limit_s) * (unsigned)time_factor());                                                          \
        return cmocka_run_group_tests(tests, mqtt_fixture_setup, mqtt_fixture_teardown);                     \
    } while (0)

#endif
