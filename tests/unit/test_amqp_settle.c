/* Settling with noAck=false, proved with the broker's own counters (rabbitmqctl list_queues
 * messages_ready messages_unacknowledged) against a real rabbitmq-server (started here, or ctest's shared
 * one through NESTC_RMQ_ENV / NESTC_RMQ_URL): a handler that acks late (a kept event and a request settled
 * manually, acked from a timer after the reply) is unacknowledged until then; prefetchCount bounds the
 * unacknowledged deliveries exactly; a server process killed while it holds unacknowledged messages loses
 * none: another server gets each of them once, redelivered; a reject and a nack without requeue dead-letter
 * the message (a policy of the test's own names the dead-letter queue). What test_amqp_transport covers
 * (nack with requeue, prefetch seen from the handlers) is not repeated. Skipped when rabbitmq-server is not
 * installed; the cases that need rabbitmqctl are skipped when it is unknown (NESTC_RMQ_URL set by hand). */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <poll.h>
#include <sys/prctl.h>

#include "broker_harness.h"
#include "rabbit_harness.h"

#define AMQP_FIXTURE_NAME "test_amqp_settle"
#include "amqp_fixture.h"

static pid_t holder_pid; /* the server process of test_killed_server, killed at the time limit too */
/* this binary, for the holder (from /proc/self/exe, which valgrind answers with the test, not itself) */
static char self_exe[4096];

/* A queue name of this run: tests and runs sharing a broker never meet. */
static const char *qname(char *buf, size_t len, const char *tag) {
    snprintf(buf, len, "nestc_settle_%s_%d_%u", tag, (int)getpid(), (unsigned)(uv_hrtime() & 0xffffff));
    return buf;
}

static const char *qurl(char *buf, size_t len, const char *q, const char *extra) {
    snprintf(buf, len, "%s%squeue=%s%s%s", R.url, strchr(R.url, '?') ? "&" : "?", q,
             extra && *extra ? "&" : "", extra ? extra : "");
    return buf;
}

/* ---- the broker's counters ------------------------------------------------------------------------------
 */

/* messages_ready and messages_unacknowledged of queue q, as the broker counts them. 0, or -1 (no such queue,
 * or rabbitmqctl failed). The loop runs while rabbitmqctl does (it takes seconds on a loaded machine): a loop
 * blocked for two heartbeat periods would have the broker close the connections and redeliver. */
static int rmq_counts(const char *q, long *ready, long *unacked) {
    char cmd[400], out[16384];
    snprintf(cmd, sizeof cmd,
             "'%s' list_queues -q --no-table-headers name messages_ready messages_unacknowledged 2>/dev/null",
             R.ctl);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int fd = fileno(p);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, out + n, sizeof out - 1 - n);
        if (k > 0) {
            n += (size_t)k;
            if (n == sizeof out - 1) break;
        } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
            break;
        } else {
            run_ms(20);
        }
    }
    out[n] = 0;
    pclose(p);
    int found = -1;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char name[256];
        long r, u;
        if (sscanf(line, "%255s %ld %ld", name, &r, &u) == 3 && !strcmp(name, q)) {
            *ready = r;
            *unacked = u;
            found = 0;
        }
    }
    return found;
}

/* Waits (the loop running between looks) until the broker counts ready/unacked for q; each look is one
 * rabbitmqctl run (about a second). */
static int wait_counts(const char *q, long ready, long unacked) {
    long r = -1, u = -1;
    uv_update_time(&loop);
    uint64_t end = uv_now(&loop) + 20000u * (uint64_t)time_factor();
    for (;;) {
        if (rmq_counts(q, &r, &u) == 0 && r == ready && u == unacked) return 1;
        uv_update_time(&loop);
        if (uv_now(&loop) >= end) break;
        run_ms(50);
    }
    fprintf(stderr, "%s: broker counts ready %ld unacked %ld, wanted %ld %ld\n", q, r, u, ready, unacked);
    return 0;
}

/* rabbitmqctl ARGS, the loop running meanwhile (as rmq_counts); its exit status. */
static int ctl_run(const char *args) {
    char cmd[1200], buf[512];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", R.ctl, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int fd = fileno(p);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        ssize_t k = read(fd, buf, sizeof buf);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) break;
        if (k < 0) run_ms(20);
    }
    return pclose(p);
}

/* ---- servers --------------------------------------------------------------------------------------------
 */

/* Emits n events {"id": first+i} of pattern and waits for the broker's confirms: they are in the queue. */
static void emit_confirmed(nc_client *c, const char *pattern, int first, int n) {
    call e[16];
    assert_true(n <= 16);
    memset(e, 0, sizeof e);
    for (int i = 0; i < n; i++) {
        json_t *d = json_pack("{s:i}", "id", first + i);
        assert_int_equal(nc_client_emit(c, pattern, d, NULL, on_done, &e[i]), 0);
        json_decref(d);
    }
    for (int i = 0; i < n; i++) {
        assert_true(run_until_ms(&e[i].done, 1, 10000));
        assert_int_equal(e[i].err, 0);
        call_clear(&e[i]);
    }
}

/* ---- a late ack ------------------------------------------------------------------------------------------
 */

enum { MAX_KEPT = 16 };
static nc_event *kept[MAX_KEPT];
static int nkept, auto_ack;
static nc_request *held_req;
static int nreq;

/* keeps the event; the test acks it later (auto_ack: at once) */
static void ev_keep(const nc_msg *m, void *u) {
    (void)u;
    nc_event *e = nc_event_keep(m);
    assert_non_null(e);
    if (auto_ack)
        assert_int_equal(nc_event_ack(e), 0);
    else
        kept[nkept % MAX_KEPT] = e;
    nkept++;
}

/* answers at once, settles later */
static void h_hold(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    assert_int_equal(nc_request_settle_manually(req), 0);
    held_req = req;
    nreq++;
    nc_reply(req, json_true());
}

/* The async work ends: everything held is acked from the loop, outside any handler. */
static int late_acked;
static void on_ack_timer(uv_timer_t *t) {
    for (int i = 0; i < MAX_KEPT; i++)
        if (kept[i]) assert_int_equal(nc_event_ack(kept[i]), 0), kept[i] = NULL;
    if (held_req) {
        assert_int_equal(nc_request_ack(held_req), 0); /* finished and settled: the request is gone */
        held_req = NULL;
    }
    late_acked = 1;
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void ack_later(void) {
    uv_timer_t *t = malloc(sizeof *t);
    assert_non_null(t);
    uv_timer_init(&loop, t);
    late_acked = 0;
    uv_timer_start(t, on_ack_timer, 1, 0);
    assert_true(run_until_ms(&late_acked, 1, 5000));
}

static void reset_held(void) {
    memset(kept, 0, sizeof kept);
    nkept = auto_ack = nreq = 0;
    held_req = NULL;
}

/* A kept event and a request answered at once but settled manually stay unacknowledged at the broker until
 * a timer acks them; then the queue is empty and nothing is redelivered. */
static void test_ack_late(void **st) {
    (void)st;
    if (!R.ctl[0]) {
        skip();
        return;
    }
    reset_held();
    char q[128], u[400];
    qname(q, sizeof q, "late");
    qurl(u, sizeof u, q, "noAck=false&prefetchCount=10");
    srv_st ss = {0};
    nc_server *srv = server_new(u, &ss);
    assert_int_equal(nc_server_event(srv, "late", ev_keep, NULL), 0);
    assert_int_equal(nc_server_message(srv, "hold", h_hold, NULL), 0);
    listen_until_connected(srv, &ss);
    nc_client *c = client_new(u, 0, NULL);
    emit_confirmed(c, "late", 1, 1);
    call k = {0};
    call_wait(c, "hold", &k); /* the caller has its answer … */
    assert_int_equal(k.err, 0);
    call_clear(&k);
    assert_true(run_until_ms(&nkept, 1, 10000));
    assert_int_equal(nreq, 1);
    assert_true(wait_counts(q, 0, 2)); /* … and the broker still holds both */
    ack_later();
    assert_true(wait_counts(q, 0, 0));
    assert_int_equal(nkept, 1); /* not redelivered */
    assert_int_equal(nreq, 1);
    nc_client_free(c);
    nc_server_free(srv);
}

/* prefetchCount=3, 7 events held by their handler: the broker counts exactly 3 unacknowledged and 4 ready;
 * once they are acked the rest come and the queue empties. */
static void test_prefetch_counters(void **st) {
    (void)st;
    if (!R.ctl[0]) {
        skip();
        return;
    }
    reset_held();
    char q[128], u[400];
    qname(q, sizeof q, "prefetch");
    qurl(u, sizeof u, q, "noAck=false&prefetchCount=3");
    srv_st ss = {0};
    nc_server *srv = server_new(u, &ss);
    assert_int_equal(nc_server_event(srv, "job", ev_keep, NULL), 0);
    listen_until_connected(srv, &ss);
    nc_client *c = client_new(u, 0, NULL);
    emit_confirmed(c, "job", 1, 7);
    assert_true(run_until_ms(&nkept, 3, 10000));
    assert_true(wait_counts(q, 4, 3));
    assert_int_equal(nkept, 3); /* the broker sent no fourth one */
    auto_ack = 1;
    ack_later();
    assert_true(run_until_ms(&nkept, 7, 10000));
    assert_true(wait_counts(q, 0, 0));
    assert_int_equal(nkept, 7);
    nc_client_free(c);
    nc_server_free(srv);
}

/* ---- a server killed with unacknowledged messages -------------------------------------------------------
 */

/* The holder process (this binary run as `--hold URL FD`): a server whose handler keeps every "job" event
 * and never settles it; writes 'c' on FD once connected and 'm' per delivery. */
static int hold_fd;
static void hold_ev(const nc_msg *m, void *u) {
    (void)u;
    if (!nc_event_keep(m)) _exit(3);
    if (write(hold_fd, "m", 1) != 1) _exit(4);
}
static void hold_status(void *u, const char *status, int err) {
    (void)u;
    (void)err;
    if (!strcmp(status, "connected") && write(hold_fd, "c", 1) != 1) _exit(4);
}
static int hold_main(const char *url, int fd) {
    hold_fd = fd;
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    uv_loop_init(&loop);
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    nc_server *srv;
    if (nc_server_new(&srv, url, &o) || nc_server_event(srv, "job", hold_ev, NULL)) return 2;
    nc_server_on_status(srv, hold_status, NULL);
    if (nc_server_listen(srv)) return 2;
    uv_run(&loop, UV_RUN_DEFAULT); /* until SIGKILL */
    return 0;
}

/* Reads n bytes equal to c from fd within 10 s × the time factor. */
static int read_marks(int fd, char c, int n) {
    for (int got = 0; got < n;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000 * time_factor()) != 1) return got;
        char b;
        if (read(fd, &b, 1) != 1) return got;
        if (b == c) got++;
    }
    return n;
}

enum { KILLED_K = 5 };
static int got_id[KILLED_K + 1], got_total, got_not_redelivered;
static void ev_count(const nc_msg *m, void *u) {
    (void)u;
    json_int_t id = json_integer_value(json_object_get(nc_msg_data(m), "id"));
    if (id >= 1 && id <= KILLED_K) got_id[id]++;
    int64_t red = 0;
    nc_msg_ctx_int(m, NC_CTX_REDELIVERED, &red);
    if (!red) got_not_redelivered++;
    got_total++;
}

/* A server process holding K unacknowledged messages is SIGKILLed: a second server gets all K, each once
 * (counted by id), each with `redelivered` in its context; the queue ends empty. */
static void test_killed_server(void **st) {
    (void)st;
    if (!R.ctl[0]) {
        skip();
        return;
    }
    char q[128], u[400];
    qname(q, sizeof q, "killed");
    qurl(u, sizeof u, q, "noAck=false&prefetchCount=20");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", fds[1]);
    holder_pid = fork();
    assert_true(holder_pid >= 0);
    if (holder_pid == 0) { /* a process of its own: exec'd, it shares nothing with this loop */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        const char *argv[] = {"test_amqp_settle", "--hold", u, fd, NULL};
        execv(self_exe, (char **)argv);
        _exit(127);
    }
    close(fds[1]);
    assert_int_equal(read_marks(fds[0], 'c', 1), 1);
    nc_client *c = client_new(u, 0, NULL);
    emit_confirmed(c, "job", 1, KILLED_K);
    assert_int_equal(read_marks(fds[0], 'm', KILLED_K), KILLED_K);
    assert_true(wait_counts(q, 0, KILLED_K));
    kill(holder_pid, SIGKILL);
    waitpid(holder_pid, NULL, 0);
    holder_pid = 0;
    close(fds[0]);
    srv_st ss = {0};
    nc_server *srv = server_new(u, &ss);
    assert_int_equal(nc_server_event(srv, "job", ev_count, NULL), 0);
    listen_until_connected(srv, &ss);
    assert_true(run_until_ms(&got_total, KILLED_K, 10000));
    assert_true(wait_counts(q, 0, 0)); /* acked, nothing left */
    assert_int_equal(got_total, KILLED_K);
    for (int i = 1; i <= KILLED_K; i++) assert_int_equal(got_id[i], 1);
    assert_int_equal(got_not_redelivered, 0);
    nc_client_free(c);
    nc_server_free(srv);
}

/* ---- dead-lettering ------------------------------------------------------------------------------------ */

static int dl_ids[8], dl_total, dl_bad;
static char dl_work_q[128];
/* the dead-letter queue's consumer: each message's id, and the broker's account of why it is there */
static void ev_dead(const nc_msg *m, void *u) {
    (void)u;
    json_int_t id = json_integer_value(json_object_get(nc_msg_data(m), "id"));
    if (id >= 1 && id < 8) dl_ids[id]++;
    size_t n;
    const char *why = nc_msg_header(m, "x-first-death-reason", &n);
    const char *from = nc_msg_header(m, "x-first-death-queue", &n);
    if (!why || strncmp(why, "rejected", 8) || !from || strncmp(from, dl_work_q, strlen(dl_work_q))) dl_bad++;
    dl_total++;
}

/* the work queue's handler: id 1 rejected, id 2 nacked without requeue */
static int work_seen;
static void ev_refuse(const nc_msg *m, void *u) {
    (void)u;
    json_int_t id = json_integer_value(json_object_get(nc_msg_data(m), "id"));
    nc_event *e = nc_event_keep(m);
    assert_non_null(e);
    assert_int_equal(id == 1 ? nc_event_reject(e) : nc_event_nack(e, false), 0);
    work_seen++;
}

/* A policy of this test's own gives the work queue a dead-letter exchange (the default one) and routing key
 * (the dead-letter queue): a reject and a nack without requeue put the message there, where a server reads
 * it back with the broker's x-first-death-reason "rejected"; neither comes back to the work queue. */
static void test_dead_letter(void **st) {
    (void)st;
    if (!R.ctl[0]) {
        skip();
        return;
    }
    char dlq[128], policy[64], pattern[64], args[800];
    unsigned tag = (unsigned)(uv_hrtime() & 0xffffff);
    snprintf(pattern, sizeof pattern, "^nestc_settle_dlx_%d_%u$", (int)getpid(), tag);
    snprintf(dl_work_q, sizeof dl_work_q, "nestc_settle_dlx_%d_%u", (int)getpid(), tag);
    snprintf(policy, sizeof policy, "nestc-settle-dlx-%d-%u", (int)getpid(), tag);
    qname(dlq, sizeof dlq, "dlq");
    snprintf(args, sizeof args,
             "set_policy --apply-to queues %s '%s' "
             "'{\"dead-letter-exchange\":\"\",\"dead-letter-routing-key\":\"%s\"}'",
             policy, pattern, dlq);
    assert_int_equal(ctl_run(args), 0);
    char du[400], wu[400];
    qurl(du, sizeof du, dlq, NULL);
    qurl(wu, sizeof wu, dl_work_q, "noAck=false");
    srv_st ds = {0}, ws = {0};
    nc_server *dead = server_new(du, &ds); /* declares the dead-letter queue first */
    assert_int_equal(nc_server_event(dead, "job", ev_dead, NULL), 0);
    listen_until_connected(dead, &ds);
    nc_server *work = server_new(wu, &ws);
    assert_int_equal(nc_server_event(work, "job", ev_refuse, NULL), 0);
    listen_until_connected(work, &ws);
    nc_client *c = client_new(wu, 0, NULL);
    emit_confirmed(c, "job", 1, 2);
    assert_true(run_until_ms(&dl_total, 2, 10000));
    assert_int_equal(dl_ids[1], 1);
    assert_int_equal(dl_ids[2], 1);
    assert_int_equal(dl_bad, 0);
    assert_true(wait_counts(dl_work_q, 0, 0));
    assert_int_equal(work_seen, 2); /* not redelivered */
    nc_client_free(c);
    nc_server_free(work);
    nc_server_free(dead);
    snprintf(args, sizeof args, "clear_policy %s", policy);
    assert_int_equal(ctl_run(args), 0);
}

/* A test that hangs ends the binary: the holder stopped first, then the broker. */
static void kill_holder(void) {
    if (holder_pid > 0) kill(holder_pid, SIGKILL);
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--hold")) return hold_main(argv[2], atoi(argv[3]));
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n > 0)
        self_exe[n] = '\0';
    else
        snprintf(self_exe, sizeof self_exe, "%s", argv[0]);
    AMQP_FIXTURE_NEED_RABBIT();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_late),
        cmocka_unit_test(test_prefetch_counters),
        cmocka_unit_test(test_killed_server),
        cmocka_unit_test(test_dead_letter),
    };
    amqp_fixture_on_alarm = kill_holder;
    return amqp_fixture_run(tests, amqp_fixture_setup, amqp_fixture_teardown);
}
