/* Acknowledgements batched by the RabbitMQ server (noAck=false), seen as the broker sees them: a fake
 * broker (plain libuv on the test's loop, the codec's own writers and server-role parser) does the
 * handshake, sends deliveries several at a time, and records every basic.ack / basic.nack / basic.reject
 * the nestc server writes. Consecutive acks of one loop iteration become one basic.ack with multiple=true
 * for the highest tag of the run, and never cover a delivery that is still unsettled: a delivery held by
 * its handler splits the run, the acks after it are written one by one, and its own ack comes when it is
 * settled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/amqp_proto.h"
#include "nestc/nestc.h"

#include "loop_fixture.h"

typedef struct settle_frame {
    int id; /* NC_AMQP_BASIC_ACK / _NACK / _REJECT */
    uint64_t tag;
    int multiple;
} settle_frame;

typedef struct fake {
    uv_tcp_t lst;
    int port, open, consuming;
    struct peer *peer;
    settle_frame got[64];
    int ngot;
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
    if (p->f->peer == p) p->f->peer = NULL;
    nc_amqp_parser_free(&p->parser);
    free(p);
}

/* Deliveries first..last in ONE write (so the server reads them in one loop iteration), each an event
 * {"pattern":"job","data":TAG}. A basic.deliver is a basic.publish's frames with another method frame. */
static void deliver(fake *f, uint64_t first, uint64_t last) {
    nc_buf all = NC_BUF_INIT, b = NC_BUF_INIT;
    for (uint64_t t = first; t <= last; t++) {
        char body[64];
        int n = snprintf(body, sizeof body, "{\"pattern\":\"job\",\"data\":%llu}", (unsigned long long)t);
        nc_amqp_method pub = {.id = NC_AMQP_BASIC_PUBLISH, .channel = 1};
        pub.routing_key = (nc_amqp_span){"q", 1};
        nc_amqp_props props = {0};
        nc_buf_reset(&b);
        assert_int_equal(nc_amqp_write_publish(&b, &pub, &props, body, (size_t)n, 131072), 0);
        size_t mlen = 7 +
                      (((size_t)(unsigned char)b.data[3] << 24) | ((size_t)(unsigned char)b.data[4] << 16) |
                       ((size_t)(unsigned char)b.data[5] << 8) | (size_t)(unsigned char)b.data[6]) +
                      1;
        nc_amqp_method d = {.id = NC_AMQP_BASIC_DELIVER, .channel = 1, .delivery_tag = t};
        d.consumer_tag = (nc_amqp_span){"ctag-1", 6};
        d.routing_key = (nc_amqp_span){"q", 1};
        assert_int_equal(nc_amqp_write_method(&all, &d), 0);
        assert_int_equal(nc_buf_append(&all, b.data + mlen, b.len - mlen), 0);
    }
    say(f->peer, all.data, all.len);
    nc_buf_free(&all);
    nc_buf_free(&b);
}

static int on_client(void *user, const nc_amqp_event *ev) {
    peer *p = user;
    const nc_amqp_method *m = &ev->m;
    if (ev->kind != NC_AMQP_EV_METHOD) return 0;
    nc_amqp_method a = {.channel = m->channel};
    switch (m->id) {
    case NC_AMQP_CONNECTION_START_OK:
        a.id = NC_AMQP_CONNECTION_TUNE;
        a.channel_max = 2047;
        a.frame_max = 131072;
        a.heartbeat = 60;
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
    case NC_AMQP_QUEUE_DECLARE:
        a.id = NC_AMQP_QUEUE_DECLARE_OK;
        a.queue = m->queue;
        say_method(p, &a);
        break;
    case NC_AMQP_BASIC_QOS:
        a.id = NC_AMQP_BASIC_QOS_OK;
        say_method(p, &a);
        break;
    case NC_AMQP_BASIC_CONSUME:
        a.id = NC_AMQP_BASIC_CONSUME_OK;
        a.consumer_tag = (nc_amqp_span){"ctag-1", 6};
        say_method(p, &a);
        p->f->consuming = 1;
        break;
    case NC_AMQP_BASIC_ACK:
    case NC_AMQP_BASIC_NACK:
    case NC_AMQP_BASIC_REJECT:
        if (p->f->ngot < 64)
            p->f->got[p->f->ngot++] =
                (settle_frame){(int)m->id, m->delivery_tag, (m->flags & NC_AMQP_F_MULTIPLE) != 0};
        break;
    case NC_AMQP_CONNECTION_CLOSE:
        a.id = NC_AMQP_CONNECTION_CLOSE_OK;
        say_method(p, &a);
        break;
    case NC_AMQP_CHANNEL_CLOSE:
        a.id = NC_AMQP_CHANNEL_CLOSE_OK;
        say_method(p, &a);
        break;
    case NC_AMQP_BASIC_CANCEL:
        a.id = NC_AMQP_BASIC_CANCEL_OK;
        a.consumer_tag = m->consumer_tag;
        say_method(p, &a);
        break;
    default:
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
        data += NC_AMQP_PROTOCOL_HEADER_LEN;
        len -= NC_AMQP_PROTOCOL_HEADER_LEN;
        say_start(p);
    }
    char why[200];
    nc_amqp_feed(&p->parser, data, len, on_client, p, why, sizeof why);
}

static void on_conn(uv_stream_t *l, int status) {
    (void)status;
    peer *p = fake_accept(l, peer_closed, on_read);
    if (p) ((fake *)l->data)->peer = p;
}

static void fake_start(fake *f) {
    memset(f, 0, sizeof *f);
    fake_listen(f, on_conn);
}

static void fake_stop(fake *f) {
    if (f->peer && !uv_is_closing((uv_handle_t *)&f->peer->h))
        uv_close((uv_handle_t *)&f->peer->h, peer_closed);
    uv_close((uv_handle_t *)&f->lst, NULL);
    for (int i = 0; i < 100 && f->open; i++) uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- the server's handlers ------------------------------------------------------------------------------
 */

static int handled;
static nc_event *held;
static int64_t hold_tag, nack_tag;

/* Every "job" event is acked when the handler returns, except: data == hold_tag is kept (settled later
 * by the test), data == nack_tag is nacked without requeue by the handler. */
static void on_job(const nc_msg *m, void *u) {
    (void)u;
    json_t *d = nc_msg_data(m);
    int64_t v = json_integer_value(d);
    if (v == hold_tag) {
        held = nc_event_keep(m);
        assert_non_null(held);
    } else if (v == nack_tag) {
        nc_event *e = nc_event_keep(m);
        assert_non_null(e);
        assert_int_equal(nc_event_nack(e, false), 0);
    }
    handled++;
}

static void expect(fake *f, int from, const settle_frame *want, int n) {
    assert_true(run_until_ms(&f->ngot, from + n, 5000));
    for (int i = 0; i < n; i++) {
        const settle_frame *g = &f->got[from + i];
        char gs[80], ws[80];
        snprintf(gs, sizeof gs, "%d tag %llu multiple %d", g->id, (unsigned long long)g->tag, g->multiple);
        snprintf(ws, sizeof ws, "%d tag %llu multiple %d", want[i].id, (unsigned long long)want[i].tag,
                 want[i].multiple);
        assert_string_equal(gs, ws);
    }
}

static int connected;
static void on_srv_status(void *u, const char *status, int err) {
    (void)u;
    (void)err;
    if (!strcmp(status, "connected")) connected++;
}

/* Tags 1..5 in one batch with 3 held: 4 and 5 one by one, at once (3 is below them), then 1-2 as one
 * multiple ack when the iteration's writes leave; 3 alone once settled. Then 6..10 in one batch with 8
 * nacked: the nack at once, then 6, 7, 9, 10 as one multiple ack for 10 (8 is settled before it on the wire).
 * Then 11 alone: a single ack. */
static void test_ack_runs(void **st) {
    (void)st;
    fake f;
    fake_start(&f);
    char url[200];
    snprintf(url, sizeof url, "amqp://127.0.0.1:%d?queue=q&noAck=false", f.port);
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.shutdown_timeout_ms = 500;
    nc_server *srv;
    assert_int_equal(nc_server_new(&srv, url, &o), 0);
    nc_server_on_status(srv, on_srv_status, NULL);
    assert_int_equal(nc_server_event(srv, "job", on_job, NULL), 0);
    handled = connected = 0;
    held = NULL;
    hold_tag = 3;
    nack_tag = 8;
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&connected, 1, 5000));
    assert_true(f.consuming);

    deliver(&f, 1, 5);
    assert_true(run_until_ms(&handled, 5, 5000));
    const settle_frame a1[] = {
        {NC_AMQP_BASIC_ACK, 4, 0}, {NC_AMQP_BASIC_ACK, 5, 0}, {NC_AMQP_BASIC_ACK, 2, 1}};
    expect(&f, 0, a1, 3);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(f.ngot, 3); /* nothing covers 3 while it is held */
    assert_non_null(held);
    assert_int_equal(nc_event_ack(held), 0);
    const settle_frame a2[] = {{NC_AMQP_BASIC_ACK, 3, 0}};
    expect(&f, 3, a2, 1);

    deliver(&f, 6, 10);
    const settle_frame a3[] = {{NC_AMQP_BASIC_NACK, 8, 0}, {NC_AMQP_BASIC_ACK, 10, 1}};
    expect(&f, 4, a3, 2);

    deliver(&f, 11, 11);
    const settle_frame a4[] = {{NC_AMQP_BASIC_ACK, 11, 0}};
    expect(&f, 6, a4, 1);
    assert_int_equal(handled, 11);

    nc_server_free(srv);
    fake_stop(&f);
}

/* A held delivery at the start of the batch: no run can form below it, every later ack is single; once
 * it is settled the floor passes all of them and the next batch is one multiple ack again. */
static void test_first_held(void **st) {
    (void)st;
    fake f;
    fake_start(&f);
    char url[200];
    snprintf(url, sizeof url, "amqp://127.0.0.1:%d?queue=q&noAck=false", f.port);
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.shutdown_timeout_ms = 500;
    nc_server *srv;
    assert_int_equal(nc_server_new(&srv, url, &o), 0);
    nc_server_on_status(srv, on_srv_status, NULL);
    assert_int_equal(nc_server_event(srv, "job", on_job, NULL), 0);
    handled = connected = 0;
    held = NULL;
    hold_tag = 1;
    nack_tag = -1;
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&connected, 1, 5000));

    deliver(&f, 1, 3);
    const settle_frame a1[] = {{NC_AMQP_BASIC_ACK, 2, 0}, {NC_AMQP_BASIC_ACK, 3, 0}};
    expect(&f, 0, a1, 2);
    assert_int_equal(nc_event_ack(held), 0);
    const settle_frame a2[] = {{NC_AMQP_BASIC_ACK, 1, 0}};
    expect(&f, 2, a2, 1);
    deliver(&f, 4, 6);
    const settle_frame a3[] = {{NC_AMQP_BASIC_ACK, 6, 1}};
    expect(&f, 3, a3, 1);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(f.ngot, 4);

    nc_server_free(srv);
    fake_stop(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ack_runs),
        cmocka_unit_test(test_first_held),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
