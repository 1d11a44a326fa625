/* The RabbitMQ transport against hostile fake brokers, written here with plain libuv on the test's loop and
 * the codec's own writers and server-role parser: one that answers the protocol header with garbage, one
 * that never answers it (the connect timeout), one that announces a 2 GB frame, one whose Tune asks for a
 * frame_max under the protocol's minimum, ones whose Tune says 0 (no limit) or 2^32-1 and then send a
 * frame over what the client asked for, one that completes the handshake and then goes silent (heartbeat
 * loss). In every case the connection fails once with a clear code and words, quickly, and the process
 * does not grow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/amqp_proto.h"
#include "nestc/nestc.h"

#include "loop_fixture.h"

enum {
    M_GARBAGE,
    M_SILENT,
    M_HUGE_FRAME,
    M_TUNE_SMALL,
    M_TUNE_ZERO,
    M_TUNE_HUGE,
    M_HEARTBEAT_LOSS,
    M_NO_CONFIRM /* a working broker that never confirms a publish */
};

typedef struct fake {
    uv_tcp_t lst;
    int port, mode;
    int open;
    int hellos; /* protocol headers received */
} fake;

typedef struct peer {
    uv_tcp_t h;
    fake *f;
    int greeted;
    nc_amqp_parser parser;
} peer;

#define AMQP_FIXTURE_FAKE
#include "amqp_fixture.h"

static void peer_closed(uv_handle_t *h) {
    peer *p = h->data;
    p->f->open--;
    nc_amqp_parser_free(&p->parser);
    free(p);
}

/* What the client sends after the protocol header, answered as a broker would (as far as the mode goes). */
static int on_client(void *user, const nc_amqp_event *ev) {
    peer *p = user;
    const nc_amqp_method *m = &ev->m;
    if (ev->kind != NC_AMQP_EV_METHOD) return 0;
    nc_amqp_method a = {.channel = m->channel};
    switch (m->id) {
    case NC_AMQP_CONNECTION_START_OK:
        a.id = NC_AMQP_CONNECTION_TUNE;
        a.channel_max = 2047;
        a.frame_max = p->f->mode == M_TUNE_SMALL  ? 100
                      : p->f->mode == M_TUNE_ZERO ? 0
                      : p->f->mode == M_TUNE_HUGE ? 0xFFFFFFFFu
                                                  : 131072;
        a.heartbeat = p->f->mode == M_HEARTBEAT_LOSS ? 1 : 60;
        say_method(p, &a);
        break;
    case NC_AMQP_CONNECTION_OPEN:
        a.id = NC_AMQP_CONNECTION_OPEN_OK;
        say_method(p, &a);
        break;
    case NC_AMQP_CHANNEL_OPEN:
        a.id = NC_AMQP_CHANNEL_OPEN_OK;
        say_method(p, &a);
        break;
    case NC_AMQP_CONFIRM_SELECT:
        a.id = NC_AMQP_CONFIRM_SELECT_OK;
        say_method(p, &a);
        break;
    case NC_AMQP_QUEUE_DECLARE:
        a.id = NC_AMQP_QUEUE_DECLARE_OK;
        a.queue = m->queue;
        say_method(p, &a);
        break;
    case NC_AMQP_BASIC_CONSUME:
        a.id = NC_AMQP_BASIC_CONSUME_OK;
        a.consumer_tag = (nc_amqp_span){"ctag-1", 6};
        say_method(p, &a);
        if (p->f->mode == M_TUNE_ZERO || p->f->mode == M_TUNE_HUGE) {
            /* a frame over the 131,072 bytes the client asked for: header only, the size is what counts */
            say(p, "\x01\x00\x01\x00\x03\x00\x00", 7);
        }
        break;
    default: /* M_HEARTBEAT_LOSS: silent from now on (no heartbeats either) */
        break;
    }
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    peer *p = s->data;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, peer_closed);
        return;
    }
    if (n == 0) return;
    const char *data = b->base;
    size_t len = (size_t)n;
    if (!p->greeted) {
        if (len < NC_AMQP_PROTOCOL_HEADER_LEN) return; /* arrives whole in practice */
        p->greeted = 1;
        p->f->hellos++;
        data += NC_AMQP_PROTOCOL_HEADER_LEN;
        len -= NC_AMQP_PROTOCOL_HEADER_LEN;
        switch (p->f->mode) {
        case M_GARBAGE:
            say(p, "HTTP/1.1 400 Bad Request\r\n\r\n", 28);
            return;
        case M_SILENT:
            return;
        case M_HUGE_FRAME: /* a method frame of 2 GB announced */
            say(p, "\x01\x00\x00\x7f\xff\xff\xff\x00\x0a", 9);
            return;
        default:
            say_start(p);
            break;
        }
    }
    if (p->f->mode == M_GARBAGE || p->f->mode == M_SILENT || p->f->mode == M_HUGE_FRAME) return;
    char why[200];
    nc_amqp_feed(&p->parser, data, len, on_client, p, why, sizeof why);
}

static void on_conn(uv_stream_t *l, int status) {
    (void)status;
    fake_accept(l, peer_closed, on_read);
}

static void fake_start(fake *f, int mode) {
    memset(f, 0, sizeof *f);
    f->mode = mode;
    fake_listen(f, on_conn);
}

static void close_peer(uv_handle_t *h, void *arg) {
    if (h->type == UV_TCP && h->data && h->data != arg && !uv_is_closing(h) && ((peer *)h->data)->f == arg)
        uv_close(h, peer_closed);
}

static void fake_stop(fake *f) {
    uv_walk(&loop, close_peer, f);
    uv_close((uv_handle_t *)&f->lst, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    for (int i = 0; i < 100 && f->open; i++) uv_run(&loop, UV_RUN_ONCE);
}

/* ---- a client against a fake broker ------------------------------------------------------------------- */

typedef struct conn_result {
    int done, err, reconnecting;
    char msg[300];
} conn_result;

static void on_done(void *u, int err, json_t *e) {
    conn_result *c = u;
    c->done++;
    c->err = err;
    if (json_is_string(e)) snprintf(c->msg, sizeof c->msg, "%s", json_string_value(e));
}

static void on_status(void *u, const char *status, int err) {
    (void)err;
    if (!strcmp(status, "reconnecting")) ((conn_result *)u)->reconnecting++;
}

static nc_client *fake_client(fake *f, conn_result *c) {
    char url[160];
    snprintf(url, sizeof url, "amqp://127.0.0.1:%d?queue=q", f->port);
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.timeout_ms = 20000 * time_factor();
    o.connect_timeout_ms = 300 * time_factor();
    o.retry_attempts = 1;
    o.retry_delay_ms = 50;
    nc_client *cli;
    assert_int_equal(nc_client_new(&cli, url, &o), 0);
    nc_client_on_status(cli, on_status, c);
    return cli;
}

/* Connects to a fake broker in `mode`; returns the ms until the attempt failed. */
static uint64_t connect_fails(int mode, conn_result *c) {
    fake f;
    fake_start(&f, mode);
    nc_client *cli = fake_client(&f, c);
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(nc_client_connect(cli, on_done, c), 0);
    assert_true(run_until_ms(&c->done, 1, 5000));
    uint64_t took = uv_now(&loop) - t0;
    assert_int_equal(c->done, 1);
    assert_int_not_equal(c->err, 0);
    nc_client_free(cli);
    fake_stop(&f);
    return took;
}

static void test_garbage(void **st) {
    (void)st;
    conn_result c = {0};
    connect_fails(M_GARBAGE, &c);
    assert_int_equal(c.err, NC_EPROTO);
    assert_non_null(strstr(c.msg, "not an AMQP 0-9-1 broker"));
}

static void test_silent(void **st) {
    (void)st;
    conn_result c = {0};
    uint64_t took = connect_fails(M_SILENT, &c);
    assert_int_equal(c.err, NC_ETIMEDOUT);
    assert_non_null(strstr(c.msg, "AMQP handshake did not finish"));
    assert_true(took < 2000u * (unsigned)time_factor());
}

static void test_huge_frame(void **st) {
    (void)st;
    conn_result c = {0};
    struct mallinfo2 before = mallinfo2();
    connect_fails(M_HUGE_FRAME, &c);
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(c.err, NC_EPROTO);
    /* refused on its header: nothing near 2 GB was allocated */
    assert_true(after.arena + after.hblkhd < before.arena + before.hblkhd + (64u << 20));
}

static void test_tune_small(void **st) {
    (void)st;
    conn_result c = {0};
    connect_fails(M_TUNE_SMALL, &c);
    assert_int_equal(c.err, NC_EPROTO);
    assert_non_null(strstr(c.msg, "frame_max 100"));
}

/* Tune's frame_max 0 (no limit) and 2^32-1: the client keeps its own bound and refuses a bigger frame. */
static void tune_unbounded(int mode) {
    conn_result c = {0};
    fake f;
    fake_start(&f, mode);
    nc_client *cli = fake_client(&f, &c);
    assert_int_equal(nc_client_connect(cli, on_done, &c), 0);
    assert_true(run_until_ms(&c.done, 1, 5000));
    assert_int_equal(c.err, 0); /* connected: the oversize frame follows consume-ok */
    assert_true(run_until_ms(&c.reconnecting, 1, 5000));
    nc_client_free(cli);
    fake_stop(&f);
}

static void test_tune_zero(void **st) {
    (void)st;
    tune_unbounded(M_TUNE_ZERO);
}

static void test_tune_huge(void **st) {
    (void)st;
    tune_unbounded(M_TUNE_HUGE);
}

/* Heartbeat 1 s negotiated, then silence: the connection is lost within about two periods. */
static void test_heartbeat_loss(void **st) {
    (void)st;
    conn_result c = {0};
    fake f;
    fake_start(&f, M_HEARTBEAT_LOSS);
    nc_client *cli = fake_client(&f, &c);
    assert_int_equal(nc_client_connect(cli, on_done, &c), 0);
    assert_true(run_until_ms(&c.done, 1, 5000));
    assert_int_equal(c.err, 0);
    uint64_t t0 = uv_now(&loop);
    assert_true(run_until_ms(&c.reconnecting, 1, 6000));
    uint64_t took = uv_now(&loop) - t0;
    assert_true(took >= 1500 && took < 4000u * (unsigned)time_factor());
    nc_client_free(cli);
    fake_stop(&f);
}

/* An event the broker never confirms (publisher confirms on, no Basic.Ack) ends at the call's timeout
 * with NC_ETIMEDOUT; the client lets go of the publish when freed, and the caller hears of it once. */
static void test_event_unconfirmed_deadline(void **st) {
    (void)st;
    conn_result c = {0}, e = {0};
    fake f;
    fake_start(&f, M_NO_CONFIRM);
    nc_client *cli = fake_client(&f, &c);
    assert_int_equal(nc_client_connect(cli, on_done, &c), 0);
    assert_true(run_until_ms(&c.done, 1, 5000));
    assert_int_equal(c.err, 0);
    nc_call_opts co = {.timeout_ms = 400 * time_factor()};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(nc_client_emit(cli, "ev", json_true(), &co, on_done, &e), 0);
    assert_true(run_until_ms(&e.done, 1, 5000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(e.err, NC_ETIMEDOUT);
    assert_non_null(strstr(e.msg, "not accepted by the transport within"));
    assert_true(ms >= 390u * (unsigned)time_factor());
    assert_int_equal(nc_client_pending(cli), 0);
    nc_client_free(cli);
    assert_int_equal(e.done, 1);
    fake_stop(&f);
}

static int setup(void **st) {
    (void)st;
    amqp_loop_begin();
    return 0;
}

static int teardown(void **st) {
    (void)st;
    return amqp_loop_end();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage),        cmocka_unit_test(test_silent),
        cmocka_unit_test(test_huge_frame),     cmocka_unit_test(test_tune_small),
        cmocka_unit_test(test_tune_zero),      cmocka_unit_test(test_tune_huge),
        cmocka_unit_test(test_heartbeat_loss), cmocka_unit_test(test_event_unconfirmed_deadline),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
