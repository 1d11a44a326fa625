/* The Kafka transport under faults, on librdkafka's mock cluster (in-process, three brokers) and its
 * error injection (rdkafka_mock.h):
 *
 * - the leader of every partition in use goes down and comes back: calls pending across the outage
 *   complete, events emitted with acks=-1 all arrive, new calls work after;
 * - leaders move mid-traffic: every request answered, every event handled (duplicates counted);
 * - produce errors: retriable ones (NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT) are retried and the
 *   calls complete; non-retriable ones fail the emit or the request with the broker's error named, and a
 *   server whose reply cannot be produced tells the caller so instead of leaving it to its timeout;
 * - a group member killed (SIGKILL, a child process running this binary) with records it had not
 *   settled: the other member handles every one of them;
 * - a client closing while its reply-topic look-up waits for an unreachable cluster returns at once.
 *
 * One group join (3 s in the mock) per server; the cases share the cluster, each with its own topics and
 * group. Without librdkafka the test does nothing.
 *
 * The binary has two more modes, as a server for others: `--kill-child URL GROUP` (the member killed in
 * test_member_killed) and `--poison-server …` (the nestc server of interop.kafka.dead_letter, whose NestJS
 * client and KafkaJS reader are in tests/interop/kafka-dead-letter.mjs). */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "broker_harness.h"

static void broker_exec(const broker *b, const char *port) {
    (void)b;
    (void)port;
}

#ifdef NESTC_HAVE_RDKAFKA
#include <signal.h>
#include <unistd.h>

#include "kafka_fixture.h"

static char group[64];

static void topic(const char *name, int partitions) {
    mock_topic(name, partitions, 3);
}

/* Every partition of a topic led by broker b. */
static void lead(const char *name, int partitions, int b) {
    for (int p = 0; p < partitions; p++)
        assert_int_equal(rd_kafka_mock_partition_set_leader(mock, name, p, b), 0);
}

static int setup(void **st) {
    loop_setup(st);
    mock_start();
    snprintf(group, sizeof group, "faults-%d", (int)getpid());
    return 0;
}

static int teardown(void **st) {
    mock_stop();
    /* every handle gone, including one a look-up thread held past its client's close */
    assert_int_equal(rd_kafka_wait_destroyed(20000 * time_factor()), 0);
    return loop_teardown(st);
}

/* Quick reconnects after a broker comes back (librdkafka's backoff grows to 10 s by default). */
#define FAST_OPTS                                                                                            \
    {"kafka.reconnect.backoff.max.ms", "300"}, {                                                             \
        "kafka.log_level", "0"                                                                               \
    }

static nc_server *server_up(srv_st *st, const char *grp, void (*add)(nc_server *), const nc_option *extra,
                            size_t nextra) {
    nc_option opts[16] = {{"fromBeginning", "true"},
                          {"heartbeatInterval", "100"},
                          {"sessionTimeout", "3000"},
                          {"groupId", grp},
                          FAST_OPTS};
    size_t n = 6;
    for (size_t i = 0; i < nextra; i++) opts[n++] = extra[i];
    nc_server *srv = kafka_server_start(st, opts, n, add);
    assert_true(run_until_ms(&st->connected, 1, 30000));
    return srv;
}

static nc_client *client_up(const char *u, int timeout_ms) {
    static const nc_option co[] = {FAST_OPTS};
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.timeout_ms = timeout_ms * time_factor();
    o.options = co;
    o.noptions = 2;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, u, &o), 0);
    return c;
}

/* A failed call's error value as text (the message names the broker's error). */
static void on_done_text(void *u, int err, json_t *e) {
    call *c = u;
    c->done = 1;
    c->err = err;
    const char *m =
        json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    if (m) snprintf(c->msg, sizeof c->msg, "%s", m);
}

static int send_call(nc_client *c, const char *route, json_t *data, call *k) {
    int rc = nc_client_send(c, route, data, NULL, on_value, on_done_text, k);
    json_decref(data);
    return rc;
}

static int emit_call(nc_client *c, const char *route, json_t *data, call *k) {
    int rc = nc_client_emit(c, route, data, NULL, on_done_text, k);
    json_decref(data);
    return rc;
}

/* ---- the served routes ------------------------------------------------------------------------------- */

#define NIDS 64
static int ev_seen[NIDS], ev_total; /* events handled per id */
static int rq_seen[NIDS];           /* requests handled per id */

static int id_of(const nc_msg *m) {
    const char *s = json_string_value(nc_msg_data(m));
    int i = s ? atoi(s) : -1;
    return i >= 0 && i < NIDS ? i : 0;
}

static void h_echo(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    rq_seen[id_of(m)]++;
    nc_reply(req, json_incref(nc_msg_data(m)));
}

static void ev_count(const nc_msg *m, void *u) {
    (void)u;
    ev_seen[id_of(m)]++;
    ev_total++;
}

/* Its reply cannot be produced: the broker refuses the next Produce request (the reply's). */
static void h_refused_reply(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    rd_kafka_mock_push_request_errors(mock, 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    nc_reply(req, json_string("never seen"));
}

/* Held until slow_release(): test_broker_faults answers them while the broker is down. (A fixed delay was
 * not enough: under valgrind the first one could answer before the last one had started.) */
static int slow_started;
static nc_request *slow_held[4];
static void h_slow(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    if (slow_started < 4) slow_held[slow_started] = req;
    slow_started++;
}
static void slow_release(void) {
    for (int i = 0; i < slow_started && i < 4; i++) nc_reply(slow_held[i], json_string("late"));
}

static void add_routes(nc_server *srv) {
    assert_int_equal(nc_server_message(srv, "fa.slow", h_slow, NULL), 0);
    assert_int_equal(nc_server_message(srv, "fa.echo", h_echo, NULL), 0);
    assert_int_equal(nc_server_event(srv, "fa.evt", ev_count, NULL), 0);
    assert_int_equal(nc_server_message(srv, "fa.refused", h_refused_reply, NULL), 0);
}

static void reset_counts(void) {
    memset(ev_seen, 0, sizeof ev_seen);
    memset(rq_seen, 0, sizeof rq_seen);
    ev_total = 0;
}

/* n requests (ids from..from+n-1) and n events; returns when all were handed to the client. */
static void traffic(nc_client *c, call *rq, call *ev, int from, int n) {
    for (int i = 0; i < n; i++) {
        assert_int_equal(send_call(c, "fa.echo", json_integer(from + i), &rq[i]), 0);
        assert_int_equal(emit_call(c, "fa.evt", json_integer(from + i), &ev[i]), 0);
    }
}

/* Every request answered with its own id, every event accepted and handled at least once. Returns the
 * events handled more than once. */
static int check_traffic(call *rq, call *ev, int from, int n) {
    for (int i = 0; i < n; i++) {
        assert_true(run_until_ms(&rq[i].done, 1, 30000));
        if (rq[i].err) fail_msg("request %d: %d %s", from + i, rq[i].err, rq[i].msg);
        char want[16];
        snprintf(want, sizeof want, "%d", from + i);
        assert_string_equal(json_string_value(rq[i].last), want);
        assert_true(run_until_ms(&ev[i].done, 1, 30000));
        if (ev[i].err) fail_msg("event %d: %d %s", from + i, ev[i].err, ev[i].msg);
    }
    int dups = 0;
    for (int i = 0; i < n; i++) {
        assert_true(run_until_ms(&ev_seen[from + i], 1, 30000));
        dups += ev_seen[from + i] - 1;
    }
    for (int i = 0; i < n; i++) {
        call_clear(&rq[i]);
        call_clear(&ev[i]);
    }
    return dups;
}

/* ---- cases -------------------------------------------------------------------------------------------- */

/* 1-3: one server, one client; a broker down and up, leaders moving, produce errors. */
static void test_broker_faults(void **st) {
    (void)st;
    topic("fa.echo", 2);
    topic("fa.echo.reply", 1);
    topic("fa.evt", 2);
    topic("fa.refused", 1);
    topic("fa.refused.reply", 1);
    topic("fa.slow", 1);
    topic("fa.slow.reply", 1);
    const char *ts[] = {"fa.echo", "fa.echo.reply", "fa.evt", "fa.slow", "fa.slow.reply"};
    const int np[] = {2, 1, 2, 1, 1};
    for (int i = 0; i < 5; i++) lead(ts[i], np[i], 1);
    char grp[96];
    snprintf(grp, sizeof grp, "%s-b", group);
    srv_st ss = {0};
    /* the three slow requests share one partition: let them be in their handler at once. The session
     * timeout scales with the time factor here: under valgrind beside another valgrind run, librdkafka's
     * heartbeats missed an unscaled 3 s and the server never reported connected (test_member_killed keeps
     * 3 s: it waits for a killed member's session to expire) */
    static char session[16];
    snprintf(session, sizeof session, "%d", 3000 * time_factor());
    const nc_option conc[] = {{"partitionConcurrency", "4"}, {"sessionTimeout", session}};
    nc_server *srv = server_up(&ss, grp, add_routes, conc, 2);
    nc_client *c = client_up(url, 20000);
    static call rq[16], ev[16]; /* their calls outlive a failed assertion: keep them off the stack */
    memset(rq, 0, sizeof rq);
    memset(ev, 0, sizeof ev);
    reset_counts();
    /* warm: the reply topic looked up, both sides connected to the leader */
    traffic(c, rq, ev, 0, 1);
    assert_int_equal(check_traffic(rq, ev, 0, 1), 0);

    /* 1. the leader of every partition in use goes down: the calls made meanwhile wait (none fails),
     * and all complete once it is back; so do requests the server is handling (their replies are
     * produced while it is down) */
    static call slow[3];
    memset(slow, 0, sizeof slow);
    slow_started = 0;
    for (int i = 0; i < 3; i++) assert_int_equal(send_call(c, "fa.slow", json_integer(i), &slow[i]), 0);
    assert_true(run_until_ms(&slow_started, 3, 30000));
    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
    slow_release(); /* their replies are produced while the broker is down */
    traffic(c, rq, ev, 1, 10);
    run_ms(1500);
    for (int i = 0; i < 10; i++)
        if (rq[i].done || ev[i].done)
            fail_msg("%s %d done during the outage: %d %s", rq[i].done ? "request" : "event", i + 1,
                     rq[i].done ? rq[i].err : ev[i].err, rq[i].done ? rq[i].msg : ev[i].msg);
    for (int i = 0; i < 3; i++)
        if (slow[i].done)
            fail_msg("slow request %d done during the outage: %d %s", i, slow[i].err, slow[i].msg);
    assert_int_equal(rd_kafka_mock_broker_set_up(mock, 1), 0);
    for (int i = 0; i < 3; i++) {
        assert_true(run_until_ms(&slow[i].done, 1, 30000));
        if (slow[i].err) fail_msg("slow request %d: %d %s", i, slow[i].err, slow[i].msg);
        assert_string_equal(json_string_value(slow[i].last), "late");
        call_clear(&slow[i]);
    }
    int dups = check_traffic(rq, ev, 1, 10);
    print_message(
        "broker down/up: 3 requests in the handler, 10 requests, 10 events pending across the outage, all "
        "done; %d events twice\n",
        dups);
    traffic(c, rq, ev, 11, 2); /* and new calls after */
    dups += check_traffic(rq, ev, 11, 2);

    /* 2. leaders move to broker 2 mid-traffic */
    traffic(c, rq, ev, 13, 8);
    for (int i = 0; i < 5; i++) lead(ts[i], np[i], 2);
    static call rq2[8], ev2[8];
    memset(rq2, 0, sizeof rq2);
    memset(ev2, 0, sizeof ev2);
    traffic(c, rq2, ev2, 21, 8);
    int d2 = check_traffic(rq, ev, 13, 8) + check_traffic(rq2, ev2, 21, 8);
    int rq_dups = 0;
    for (int i = 0; i < 29; i++) rq_dups += rq_seen[i] - 1;
    print_message("leader change: 16 requests, 16 events, all done; %d events, %d requests handled twice\n",
                  d2, rq_dups);

    /* 3a. retriable produce errors: retried by librdkafka, the calls complete */
    rd_kafka_mock_push_request_errors(mock, 0, 2, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    assert_int_equal(emit_call(c, "fa.evt", json_integer(40), &ev[0]), 0);
    assert_true(run_until_ms(&ev[0].done, 1, 30000));
    assert_int_equal(ev[0].err, 0);
    assert_true(run_until_ms(&ev_seen[40], 1, 30000));
    call_clear(&ev[0]);
    rd_kafka_mock_push_request_errors(mock, 0, 2, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
    assert_int_equal(send_call(c, "fa.echo", json_integer(41), &rq[0]), 0);
    assert_true(run_until_ms(&rq[0].done, 1, 30000));
    assert_int_equal(rq[0].err, 0);
    assert_string_equal(json_string_value(rq[0].last), "41");
    call_clear(&rq[0]);

    /* 3b. non-retriable: the emit and the request fail with the broker's error named */
    rd_kafka_mock_push_request_errors(mock, 0, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    assert_int_equal(emit_call(c, "fa.evt", json_integer(42), &ev[0]), 0);
    assert_true(run_until_ms(&ev[0].done, 1, 30000));
    assert_int_equal(ev[0].err, NC_ETOOBIG);
    if (!strstr(ev[0].msg, "MSG_SIZE_TOO_LARGE")) fail_msg("emit: %s", ev[0].msg);
    call_clear(&ev[0]);
    rd_kafka_mock_push_request_errors(mock, 0, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    assert_int_equal(send_call(c, "fa.echo", json_integer(43), &rq[0]), 0);
    assert_true(run_until_ms(&rq[0].done, 1, 15000));
    assert_int_equal(rq[0].err, NC_EAUTH);
    if (!strstr(rq[0].msg, "TOPIC_AUTHORIZATION_FAILED")) fail_msg("send: %s", rq[0].msg);
    call_clear(&rq[0]);
    assert_int_equal(rq_seen[43], 0);

    /* 3c. the server's reply is refused by the broker: the caller hears it at once, with the error */
    assert_int_equal(send_call(c, "fa.refused", json_integer(44), &rq[0]), 0);
    assert_true(run_until_ms(&rq[0].done, 1, 15000));
    assert_int_equal(rq[0].err, NC_EREMOTE);
    if (!strstr(rq[0].msg, "MSG_SIZE_TOO_LARGE")) fail_msg("refused reply: %s", rq[0].msg);
    call_clear(&rq[0]);

    /* and everything still flows */
    traffic(c, rq, ev, 45, 2);
    check_traffic(rq, ev, 45, 2);
    nc_client_free(c);
    nc_server_free(srv);
}

/* 6. A client closing while its reply-topic look-up waits for a cluster that does not answer: the close
 * returns at once, the pending call fails as closed, the look-up thread lets go of the handle when it
 * returns (teardown checks that every librdkafka handle is gone). */
static void test_close_unreachable(void **st) {
    (void)st;
    for (int b = 1; b <= 3; b++) assert_int_equal(rd_kafka_mock_broker_set_down(mock, b), 0);
    nc_client *c = client_up(url, 20000);
    call k = {0};
    assert_int_equal(send_call(c, "fa.nowhere", json_integer(1), &k), 0);
    run_ms(200); /* the look-up is under way */
    uv_update_time(&loop);
    uint64_t t0 = uv_hrtime();
    nc_client_free(c);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    print_message("client close with a look-up waiting on an unreachable cluster: %llu ms\n",
                  (unsigned long long)ms);
    assert_true(k.done);
    assert_true(k.err == NC_ECONNCLOSED || k.err == NC_ECLOSED);
    assert_true(ms < 1000u * (unsigned)time_factor());
    for (int b = 1; b <= 3; b++) assert_int_equal(rd_kafka_mock_broker_set_up(mock, b), 0);
    call_clear(&k);
}

/* An event no broker can take (the whole cluster down: no delivery report for message.timeout.ms, five
 * minutes) ends at the call's timeout with NC_ETIMEDOUT; the report that comes at the client's close
 * (the purge) is dropped. */
static void test_emit_deadline_cluster_down(void **st) {
    (void)st;
    for (int b = 1; b <= 3; b++) assert_int_equal(rd_kafka_mock_broker_set_down(mock, b), 0);
    nc_client *c = client_up(url, 20000);
    call k = {0};
    nc_call_opts co = {.timeout_ms = 400 * time_factor()};
    uint64_t t0 = uv_hrtime();
    json_t *d = json_integer(1);
    assert_int_equal(nc_client_emit(c, "fa.down", d, &co, on_done_text, &k), 0);
    json_decref(d);
    assert_true(run_until_ms(&k.done, 1, 5000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    print_message("emit with the cluster down: %s after %llu ms: %s\n", nc_err_name(k.err),
                  (unsigned long long)ms, k.msg);
    assert_int_equal(k.err, NC_ETIMEDOUT);
    assert_non_null(strstr(k.msg, "not accepted by the transport within"));
    assert_true(ms >= 390u * (unsigned)time_factor());
    assert_int_equal(nc_client_pending(c), 0);
    k.done = 0;
    nc_client_free(c); /* purges the event: its delivery report is the transport letting go */
    assert_int_equal(k.done, 0);
    for (int b = 1; b <= 3; b++) assert_int_equal(rd_kafka_mock_broker_set_up(mock, b), 0);
    call_clear(&k);
}

/* ---- 4. a member killed with records it had not settled ---------------------------------------------- */

#define NKILL 40

/* The child: a server of the group that keeps every odd record (never settled) and acks the even ones,
 * telling the parent on stdout ("ready", then "got N" / "done N"). */
static void child_ev(const nc_msg *m, void *u) {
    (void)u;
    int i = id_of(m);
    nc_event *e = nc_event_keep(m);
    if (i % 2 == 0) {
        nc_event_ack(e);
        printf("done %d\n", i);
    } else {
        printf("got %d\n", i);
    }
    fflush(stdout);
}
static void add_child(nc_server *srv) {
    assert_int_equal(nc_server_event(srv, "fa.kill", child_ev, NULL), 0);
}

static int stdin_done;
static void stdin_alloc(uv_handle_t *h, size_t want, uv_buf_t *b) {
    (void)h;
    (void)want;
    static char buf[256];
    *b = uv_buf_init(buf, sizeof buf);
}
static void stdin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    (void)b;
    if (n < 0) {
        uv_read_stop(s);
        stdin_done = 1;
    }
}

/* Runs the loop until standard input ends: the parent closed it, or died (a failed test leaves no
 * server behind). */
static void serve_until_stdin_ends(void) {
    static uv_pipe_t in; /* closed after we return */
    uv_pipe_init(&loop, &in, 0);
    uv_pipe_open(&in, 0);
    uv_read_start((uv_stream_t *)&in, stdin_alloc, stdin_read);
    run_until(&stdin_done, 1);
    uv_close((uv_handle_t *)&in, NULL);
}

static int child_main(const char *u, const char *grp) {
    snprintf(url, sizeof url, "%s", u);
    loop_setup(NULL);
    srv_st ss = {0};
    /* the child keeps its odd records unsettled and must go on with the next ones: records of a partition
     * are otherwise dispatched one after the other (partitionConcurrency 1, as NestJS) */
    const nc_option x[] = {{"kafka.auto.commit.interval.ms", "100"}, {"partitionConcurrency", "1000"}};
    nc_server *srv = server_up(&ss, grp, add_child, x, 2);
    (void)srv;
    printf("ready\n");
    fflush(stdout);
    serve_until_stdin_ends(); /* killed before */
    nc_server_free(srv);
    return loop_teardown(NULL);
}

static int sv_seen[NKILL], sv_total;
static void survivor_ev(const nc_msg *m, void *u) {
    (void)u;
    sv_seen[id_of(m)]++;
    sv_total++;
}
static void add_survivor(nc_server *srv) {
    assert_int_equal(nc_server_event(srv, "fa.kill", survivor_ev, NULL), 0);
}

typedef struct child {
    uv_process_t proc;
    uv_pipe_t in, out;
    char buf[4096];
    size_t len;
    int ready, got[NKILL], done[NKILL], held, exited;
} child;

static void child_alloc(uv_handle_t *h, size_t want, uv_buf_t *b) {
    (void)want;
    child *ch = h->data;
    *b = uv_buf_init(ch->buf + ch->len, (unsigned)(sizeof ch->buf - ch->len - 1));
}

static void child_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    (void)b;
    child *ch = s->data;
    if (n <= 0) return;
    ch->len += (size_t)n;
    ch->buf[ch->len] = '\0';
    char *nl;
    while ((nl = strchr(ch->buf, '\n'))) {
        *nl = '\0';
        int i;
        if (!strcmp(ch->buf, "ready"))
            ch->ready = 1;
        else if (sscanf(ch->buf, "got %d", &i) == 1 && i >= 0 && i < NKILL)
            ch->got[i]++, ch->held++;
        else if (sscanf(ch->buf, "done %d", &i) == 1 && i >= 0 && i < NKILL)
            ch->done[i]++, ch->held++;
        size_t rest = ch->len - (size_t)(nl + 1 - ch->buf);
        memmove(ch->buf, nl + 1, rest + 1);
        ch->len = rest;
    }
}

static void child_exit(uv_process_t *p, int64_t status, int sig) {
    (void)status;
    (void)sig;
    ((child *)p->data)->exited = 1;
}

static void test_member_killed(void **st) {
    (void)st;
    topic("fa.kill", 4);
    char grp[96];
    snprintf(grp, sizeof grp, "%s-k", group);
    srv_st ss = {0};
    nc_server *srv = server_up(&ss, grp, add_survivor, NULL, 0);

    static child ch;
    memset(&ch, 0, sizeof ch);
    char exe[1024];
    size_t exelen = sizeof exe;
    assert_int_equal(uv_exepath(exe, &exelen), 0);
    char *args[] = {exe, "--kill-child", url, grp, NULL};
    uv_pipe_init(&loop, &ch.in, 0);
    uv_pipe_init(&loop, &ch.out, 0);
    ch.out.data = ch.proc.data = &ch;
    uv_stdio_container_t io[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&ch.in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&ch.out},
        {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t po = {
        .file = exe, .args = args, .exit_cb = child_exit, .stdio = io, .stdio_count = 3};
    assert_int_equal(uv_spawn(&loop, &ch.proc, &po), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&ch.out, child_alloc, child_read), 0);
    assert_true(run_until_ms(&ch.ready, 1, 30000));

    /* keyed records over the four partitions; both members must hold some before the kill */
    nc_client *c = client_up(url, 20000);
    static call ev[NKILL]; /* outlives a failed assertion: keep it off the stack */
    memset(ev, 0, sizeof ev);
    for (int i = 0; i < NKILL; i++) {
        char key[16];
        snprintf(key, sizeof key, "key-%d", i);
        assert_int_equal(emit_call(c, "fa.kill", json_pack("{s:s,s:i}", "key", key, "value", i), &ev[i]), 0);
    }
    for (int i = 0; i < NKILL; i++) {
        assert_true(run_until_ms(&ev[i].done, 1, 30000));
        assert_int_equal(ev[i].err, 0);
    }
    /* everything reached one member or the other (a rebalance while they flow may hand some to both) */
    int reached = 0;
    for (int spins = 0; spins < 300 * time_factor(); spins++) {
        reached = 0;
        for (int i = 0; i < NKILL; i++) reached += ch.got[i] + ch.done[i] + sv_seen[i] > 0;
        if (reached == NKILL) break;
        run_ms(100);
    }
    assert_int_equal(reached, NKILL);
    int sv_before[NKILL], held = ch.held, before = sv_total, kept = 0, twice = ch.held + sv_total - NKILL;
    memcpy(sv_before, sv_seen, sizeof sv_before);
    for (int i = 0; i < NKILL; i++) kept += ch.got[i] > 0;
    assert_true(held > 0 && before > 0);

    assert_int_equal(uv_process_kill(&ch.proc, SIGKILL), 0);
    assert_true(run_until_ms(&ch.exited, 1, 10000));
    uv_close((uv_handle_t *)&ch.proc, NULL);
    uv_close((uv_handle_t *)&ch.out, NULL);
    uv_close((uv_handle_t *)&ch.in, NULL);

    /* the survivor takes the partitions over once the group notices the death (its session timeout):
     * every record the child kept unsettled comes to it */
    for (int spins = 0; spins < 300 * time_factor(); spins++) {
        int missing = 0;
        for (int i = 0; i < NKILL; i++) missing += ch.got[i] && sv_seen[i] == sv_before[i];
        if (!missing) break;
        run_ms(100);
    }
    run_ms(300); /* nothing more arrives */
    int redelivered_done = 0, own_again = 0;
    for (int i = 0; i < NKILL; i++) {
        int after = sv_seen[i] - sv_before[i];
        /* (one the survivor took before the kill, in a rebalance while the records flowed, may be done) */
        if (ch.got[i] && after != 1 && !(sv_before[i] && !after))
            fail_msg("record %d kept by the killed member: the survivor handled it %d times after", i, after);
        redelivered_done += ch.done[i] ? after : 0;
        /* settled by the survivor and handled by it again: its offsets stored since the last background
         * commit (auto.commit.interval.ms) are fetched again after the rebalance (at-least-once) */
        own_again += !ch.got[i] && !ch.done[i] ? after : 0;
    }
    print_message(
        "member killed: %d records held by it (%d kept unsettled), %d handled by the survivor before "
        "(%d by both before the kill); after: every unsettled one handled once by the survivor, %d "
        "acked ones again, %d of the survivor's own again\n",
        held, kept, before, twice, redelivered_done, own_again);
    nc_client_free(c);
    nc_server_free(srv);
}

/* ---- 5. the poison-record server of interop.kafka.dead_letter ------------------------------------------ */

/* A server whose handler of the poison route always fails (nack with requeue) and whose handler of the
 * after route takes everything, with maxAttempts and deadLetterTopic: tells each delivery on stdout
 * ("ready", "poison <delivery count> <key>", "after <data>") for the NestJS side of the test. */
static void poison_ev(const nc_msg *m, void *u) {
    (void)u;
    int64_t n = 0;
    size_t kl = 0;
    nc_msg_ctx_int(m, NC_CTX_DELIVERY_COUNT, &n);
    const char *k = nc_msg_ctx_str(m, NC_CTX_KEY, &kl);
    printf("poison %lld %.*s\n", (long long)n, k ? (int)kl : 0, k ? k : "");
    fflush(stdout);
    nc_event_nack(nc_event_keep(m), true);
}
static void after_ev(const nc_msg *m, void *u) {
    (void)u;
    const char *s = json_string_value(nc_msg_data(m));
    printf("after %s\n", s ? s : "?");
    fflush(stdout);
}
static const char *poison_route, *after_route;
static void add_poison(nc_server *srv) {
    assert_int_equal(nc_server_event(srv, poison_route, poison_ev, NULL), 0);
    assert_int_equal(nc_server_event(srv, after_route, after_ev, NULL), 0);
}

static int poison_main(char **a) {
    snprintf(url, sizeof url, "%s", a[0]);
    poison_route = a[2];
    after_route = a[3];
    loop_setup(NULL);
    srv_st ss = {0};
    const nc_option x[] = {{"deadLetterTopic", a[4]}, {"maxAttempts", a[5]}};
    nc_server *srv = server_up(&ss, a[1], add_poison, x, 2);
    printf("ready\n");
    fflush(stdout);
    serve_until_stdin_ends(); /* the test is over */
    nc_server_free(srv);
    return loop_teardown(NULL);
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--kill-child")) return child_main(argv[2], argv[3]);
    /* --poison-server URL GROUP POISON_ROUTE AFTER_ROUTE DEAD_LETTER_TOPIC MAX_ATTEMPTS */
    if (argc == 8 && !strcmp(argv[1], "--poison-server")) return poison_main(argv + 2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_unreachable),
        cmocka_unit_test(test_emit_deadline_cluster_down),
        cmocka_unit_test(test_broker_faults),
        cmocka_unit_test(test_member_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else
int main(void) {
    printf("librdkafka not found at build time: nothing to test\n");
    return 0;
}
#endif
