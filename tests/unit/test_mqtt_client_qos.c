/* The MQTT client's QoS 1/2 PUBLISHes against a real mosquitto (started here on a free loopback port in a
 * temporary directory, paused, killed and restarted by PID): nothing published at QoS 1 is lost when the
 * broker dies with it unacknowledged (events and a request are resent after the reconnection, with a kept
 * client session or a new one), an emit completes only on the broker's acknowledgement and fails when the
 * client gives up, and the broker's Receive Maximum (mosquitto's max_inflight_messages, announced in the
 * MQTT 5 CONNACK) is respected. Skipped when mosquitto is not installed. */
/* the harness's NATS/Redis service is not used here */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <signal.h>

#include "broker_harness.h"

enum { KIND_PERSIST, KIND_INFLIGHT2 };

/* KIND_PERSIST: the database is saved after every change (a subscription, a queued message), so a broker
 * killed with SIGKILL comes back with the subscriber's kept session. KIND_INFLIGHT2: Receive Maximum 2. */
static void broker_exec(const broker *b, const char *port) {
    FILE *f = fopen("mosquitto.conf", "w");
    if (!f) _exit(125);
    fprintf(f, "listener %s 127.0.0.1\nallow_anonymous true\n", port);
    if (b->kind == KIND_PERSIST)
        fprintf(f,
                "persistence true\npersistence_location ./\nautosave_on_changes true\nautosave_interval 1\n");
    else
        fprintf(f, "persistence false\nmax_inflight_messages 2\n");
    if (getuid() == 0) fprintf(f, "user root\n"); /* else it switches to a user that cannot read this dir */
    fclose(f);
    const char *argv[] = {"mosquitto", "-c", "mosquitto.conf", NULL};
    execvp("mosquitto", (char **)argv);
    execv("/usr/sbin/mosquitto", (char **)argv);
}

static broker B, B2; /* KIND_PERSIST, KIND_INFLIGHT2 */
static char url[128], url2[160];

static broker *paused; /* the broker a test paused and has not killed yet */

/* Pauses a broker: it reads nothing and acknowledges nothing until it is killed. */
static void broker_pause(broker *b) {
    kill(b->pid, SIGSTOP);
    paused = b;
}

/* Kills a broker with SIGKILL (no goodbye, nothing saved beyond what it already saved). */
static void broker_kill(broker *b) {
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
    if (paused == b) paused = NULL;
}

/* After each test: a broker a failed test left paused or dead is running again for the next one. */
static int brokers_ready(void **st) {
    (void)st;
    if (paused) broker_kill(paused);
    if (!B.pid) broker_start(&B);
    if (!B2.pid) broker_start(&B2);
    return 0;
}

/* ---- a subscriber and emits --------------------------------------------------------------------------- */

enum { MAXV = 64 };
static int seen[MAXV]; /* deliveries per value */
static int distinct;   /* values seen at least once */
static int deliveries; /* all deliveries */

static void ev_seen(const nc_msg *m, void *u) {
    (void)u;
    json_int_t v = json_integer_value(json_object_get(nc_msg_data(m), "v"));
    deliveries++;
    if (v >= 0 && v < MAXV && seen[v]++ == 0) distinct++;
}

static void on_srv_status(void *u, const char *status, int err) {
    (void)err;
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

typedef struct emitted_t {
    int done, err;
} emitted_t;
static emitted_t ems[MAXV];
static int ndone; /* emits completed */

static void on_emitted(void *u, int err, json_t *e) {
    (void)e;
    emitted_t *k = u;
    k->done++;
    k->err = err;
    ndone++;
}

static void emit_v(nc_client *c, const char *route, int v) {
    json_t *d = json_pack("{s:i}", "v", v);
    assert_int_equal(nc_client_emit(c, route, d, NULL, on_emitted, &ems[v]), 0);
    json_decref(d);
}

static void reset_counts(void) {
    memset(seen, 0, sizeof seen);
    memset(ems, 0, sizeof ems);
    distinct = deliveries = ndone = 0;
}

/* ---- the tests ---------------------------------------------------------------------------------------- */

enum { N = 10 };

/* QoS 1 events published while the broker is paused (no PUBACK can come: none completes), then the broker
 * is killed and started again on the same port: the client resends them after reconnecting, each emit
 * completes once (on its PUBACK), and the subscriber (a kept session) gets every event at least once.
 * client_clean 0: the client's own session is kept too (resent with DUP, same ids). */
static void events_survive_restart(int client_clean) {
    reset_counts();
    char surl[300], curl[300];
    snprintf(surl, sizeof surl, "%s?clean=false&clientId=nestc-qos-sub-%d&qos=1", url, client_clean);
    snprintf(curl, sizeof curl, "%s?qos=1%s", url, client_clean ? "" : "&clean=false&clientId=nestc-qos-pub");
    int conn = 0;
    nc_server *srv = server_new(surl, &conn);
    assert_int_equal(nc_server_event(srv, "qos/ev", ev_seen, NULL), 0);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&conn, 1, 5000));
    cli_status cs = {0};
    nc_client *c = client_new(curl, 0, &cs);
    emit_v(c, "qos/ev", 0);
    assert_true(run_until_ms(&ems[0].done, 1, 5000));
    assert_int_equal(ems[0].err, 0);
    assert_true(run_until_ms(&distinct, 1, 5000));

    broker_pause(&B);
    for (int i = 1; i <= N; i++) emit_v(c, "qos/ev", i);
    run_ms(300); /* what is tested is that nothing completes meanwhile: no PUBACK */
    assert_int_equal(ndone, 1);
    assert_int_equal(distinct, 1);
    broker_kill(&B);
    broker_start(&B);

    assert_true(run_until_ms(&ndone, N + 1, 20000));
    for (int i = 0; i <= N; i++) {
        assert_int_equal(ems[i].done, 1);
        assert_int_equal(ems[i].err, 0);
    }
    assert_true(run_until_ms(&distinct, N + 1, 20000));
    assert_true(deliveries >= N + 1);
    assert_true(cs.reconnecting >= 1);
    nc_client_free(c);
    nc_server_free(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_events_resent_new_session(void **st) {
    (void)st;
    events_survive_restart(1);
}

static void test_events_resent_kept_session(void **st) {
    (void)st;
    events_survive_restart(0);
}

/* A QoS 1 request published while the broker is paused (its reply topic already subscribed by an earlier
 * request that is still waiting) reaches the server after the broker is killed and restarted, and both
 * requests get their replies (the reply topic is subscribed again before the resend). */
static nc_request *held[8];
static json_int_t held_v[8];
static int nheld, got_second; /* requests received; the second request (data 2) among them */

/* Keeps the requests (a broker restarted from its saved database may deliver the first one again). */
static void h_hold(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    if (nheld == 8) return;
    held_v[nheld] = json_integer_value(nc_msg_data(m));
    if (held_v[nheld] == 2) got_second = 1;
    held[nheld++] = req;
}

static void test_request_resent(void **st) {
    (void)st;
    nheld = got_second = 0;
    char surl[300], curl[300];
    snprintf(surl, sizeof surl, "%s?clean=false&clientId=nestc-qos-rsrv&qos=1", url);
    snprintf(curl, sizeof curl, "%s?qos=1", url);
    int conn = 0;
    nc_server *srv = server_new(surl, &conn);
    assert_int_equal(nc_server_message(srv, "qos/req", h_hold, NULL), 0);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&conn, 1, 5000));
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.timeout_ms = 30000 * time_factor();
    o.retry_delay_ms = 100;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, curl, &o), 0);
    call a = {0}, b = {0};
    json_t *d = json_integer(1);
    assert_int_equal(nc_client_send(c, "qos/req", d, NULL, on_value, on_done, &a), 0);
    json_decref(d);
    assert_true(run_until_ms(&nheld, 1, 5000));

    broker_pause(&B);
    d = json_integer(2);
    assert_int_equal(nc_client_send(c, "qos/req", d, NULL, on_value, on_done, &b), 0);
    json_decref(d);
    run_ms(100); /* written to the paused broker's socket */
    broker_kill(&B);
    broker_start(&B);

    assert_true(run_until_ms(&got_second, 1, 20000));
    for (int i = 0; i < nheld; i++) nc_reply(held[i], json_integer(held_v[i]));
    assert_true(run_until_ms(&b.done, 1, 20000));
    assert_true(run_until_ms(&a.done, 1, 20000));
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_int_equal(json_integer_value(a.last), 1);
    assert_int_equal(json_integer_value(b.last), 2);
    call_clear(&a);
    call_clear(&b);
    nc_client_free(c);
    nc_server_free(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* MQTT 5 against a broker with Receive Maximum 2 (max_inflight_messages 2; mosquitto announces it in the
 * CONNACK): 30 QoS 2 events emitted at once all complete without error and all arrive, and the connection
 * is never lost. Without the window mosquitto refuses the excess with PUBREC 0x97 (Quota exceeded). */
static void test_receive_maximum(void **st) {
    (void)st;
    reset_counts();
    char surl[300], curl[300];
    snprintf(surl, sizeof surl, "%s&qos=2", url2);
    snprintf(curl, sizeof curl, "%s&qos=2", url2);
    int conn = 0;
    nc_server *srv = server_new(surl, &conn);
    assert_int_equal(nc_server_event(srv, "qos/rm", ev_seen, NULL), 0);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&conn, 1, 5000));
    cli_status cs = {0};
    nc_client *c = client_new(curl, 0, &cs);
    enum { M = 30 };
    for (int i = 0; i < M; i++) emit_v(c, "qos/rm", i);
    assert_true(run_until_ms(&ndone, M, 20000));
    for (int i = 0; i < M; i++) assert_int_equal(ems[i].err, 0);
    assert_true(run_until_ms(&distinct, M, 20000));
    assert_int_equal(cs.reconnecting, 0);
    nc_client_free(c);
    nc_server_free(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* Emits the broker never acknowledged fail when the client gives up reconnecting (retry_attempts 1, the
 * broker gone). */
static void test_pending_emits_fail(void **st) {
    (void)st;
    reset_counts();
    char curl[300];
    snprintf(curl, sizeof curl, "%s&qos=1", url2);
    cli_status cs = {0};
    nc_client *c = client_new(curl, 1, &cs);
    emit_v(c, "qos/gone", 0);
    assert_true(run_until_ms(&ndone, 1, 5000));
    assert_int_equal(ems[0].err, 0);
    broker_pause(&B2);
    for (int i = 1; i <= 3; i++) emit_v(c, "qos/gone", i);
    run_ms(100);
    assert_int_equal(ndone, 1);
    broker_kill(&B2);
    assert_true(run_until_ms(&ndone, 4, 20000));
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(ems[i].done, 1);
        assert_int_not_equal(ems[i].err, 0);
    }
    nc_client_free(c);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static int setup(void **st) {
    (void)st;
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    uv_loop_init(&loop);
    B.kind = KIND_PERSIST;
    B2.kind = KIND_INFLIGHT2;
    broker_start(&B);
    broker_start(&B2);
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", B.port);
    snprintf(url2, sizeof url2, "mqtt://127.0.0.1:%d?protocolVersion=5", B2.port);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks of what the tests freed */
    broker_free(&B);
    broker_free(&B2);
    int r = uv_loop_close(&loop);
    if (r) uv_print_all_handles(&loop, stderr);
    return r;
}

int main(void) {
    if (system("command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto") != 0) {
        printf("mosquitto not installed: skipped\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_events_resent_new_session, brokers_ready),
        cmocka_unit_test_teardown(test_events_resent_kept_session, brokers_ready),
        cmocka_unit_test_teardown(test_request_resent, brokers_ready),
        cmocka_unit_test_teardown(test_receive_maximum, brokers_ready),
        cmocka_unit_test_teardown(test_pending_emits_fail, brokers_ready),
    };
    if (getenv("NESTC_TEST_FILTER")) cmocka_set_test_filter(getenv("NESTC_TEST_FILTER")); /* one test */
    return cmocka_run_group_tests(tests, setup, teardown);
}
