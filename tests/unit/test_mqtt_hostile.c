/* The MQTT transport against hostile fake brokers, written here with plain libuv on the test's loop: one
 * that answers CONNECT with garbage, one that never answers it, one that accepts and then goes silent
 * (the keep-alive must notice), one that disconnects in the middle of a PUBLISH, one that announces a
 * 256 MB PUBLISH. In every case the calls fail once with a clear code, in about the time the settings
 * say, the process does not grow, and the server side survives the same brokers. A scripted one sends
 * QoS 1 and 2 PUBLISHes and reads what the server answers: a PUBACK only once the handler finished, a DUP
 * QoS 2 copy acknowledged but not dispatched twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/nestc.h"

#include "loop_fixture.h"

enum { M_GARBAGE, M_SILENT, M_STALL_AFTER_ACK, M_HALF_THEN_CLOSE, M_HUGE, M_V5_LIMITED, M_SCRIPT };

typedef struct peer peer;

typedef struct fake {
    uv_tcp_t lst;
    int port, mode;
    int connects;  /* CONNECT packets seen */
    int open;      /* peers not yet closed */
    int got_after; /* a packet came after CONNECT; first_after is its first byte */
    int first_after;
    peer *last;    /* M_SCRIPT: the connection the test speaks on */
    char in[8192]; /* M_SCRIPT: every byte received after CONNECT */
    size_t nin;
} fake;

struct peer {
    uv_tcp_t h;
    fake *f;
    int greeted;
};

static char rbuf[65536];
static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void peer_closed(uv_handle_t *h) {
    peer *p = h->data;
    p->f->open--;
    if (p->f->last == p) p->f->last = NULL;
    free(p);
}

static void on_written(uv_write_t *w, int status) {
    free(w);
}

static void say(peer *p, const char *bytes, size_t n) {
    uv_write_t *w = malloc(sizeof *w + n);
    memcpy((char *)(w + 1), bytes, n);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)n);
    uv_write(w, (uv_stream_t *)&p->h, &b, 1, on_written);
}

static void on_shutdown(uv_shutdown_t *s, int status) {
    uv_handle_t *h = (uv_handle_t *)s->handle;
    if (!uv_is_closing(h)) uv_close(h, peer_closed);
    free(s);
}

static const char CONNACK[] = {0x20, 0x02, 0x00, 0x00};

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    peer *p = s->data;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, peer_closed);
        return;
    }
    if (n > 0 && p->greeted && !p->f->got_after) {
        p->f->first_after = (unsigned char)b->base[0];
        p->f->got_after = 1;
    }
    if (n > 0 && p->greeted && p->f->mode == M_SCRIPT && p->f->nin + (size_t)n <= sizeof p->f->in) {
        memcpy(p->f->in + p->f->nin, b->base, (size_t)n);
        p->f->nin += (size_t)n;
    }
    if (n == 0 || p->greeted) return; /* later packets (SUBSCRIBE, PINGREQ): never answered */
    p->greeted = 1;
    p->f->connects++;
    switch (p->f->mode) {
    case M_GARBAGE:
        say(p, "\x00\x05garbage, not MQTT", 19);
        break;
    case M_SILENT:
        break;
    case M_STALL_AFTER_ACK:
        say(p, CONNACK, 4);
        break;
    case M_HALF_THEN_CLOSE: {
        say(p, CONNACK, 4);
        say(p, "\x30\x20\x00\x05top", 7); /* a PUBLISH of 32 bytes, 5 of them sent */
        uv_shutdown_t *sd = malloc(sizeof *sd);
        uv_shutdown(sd, s, on_shutdown);
        break;
    }
    case M_V5_LIMITED: /* MQTT 5 CONNACK: Maximum QoS 0, Retain Available 0 */
        say(p, "\x20\x07\x00\x00\x04\x24\x00\x25\x00", 9);
        break;
    case M_SCRIPT: /* the test says the rest (SUBSCRIBEs are never answered: not needed to deliver) */
        say(p, CONNACK, 4);
        p->f->last = p;
        break;
    case M_HUGE:
        say(p, CONNACK, 4);
        say(p, "\x30\xff\xff\xff\x7f\x00\x05topic", 12); /* 268,435,455 bytes announced */
        break;
    }
}

static void on_conn(uv_stream_t *l, int status) {
    fake *f = l->data;
    peer *p = calloc(1, sizeof *p);
    p->f = f;
    uv_tcp_init(&loop, &p->h);
    p->h.data = p;
    f->open++;
    if (uv_accept(l, (uv_stream_t *)&p->h)) {
        uv_close((uv_handle_t *)&p->h, peer_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&p->h, on_alloc, on_read);
}

static void fake_start(fake *f, int mode) {
    memset(f, 0, sizeof *f);
    f->mode = mode;
    uv_tcp_init(&loop, &f->lst);
    f->lst.data = f;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&f->lst, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->lst, 16, on_conn), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&f->lst, (struct sockaddr *)&got, &len);
    f->port = ntohs(got.sin_port);
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

/* ---- a call against a fake broker ---------------------------------------------------------------------- */

typedef struct call {
    int done, err, reconnecting;
    char msg[300];
} call;

static void on_value(void *u, json_t *v) {}
static void on_done(void *u, int err, json_t *e) {
    call *c = u;
    c->done++;
    c->err = err;
    if (json_is_string(e)) snprintf(c->msg, sizeof c->msg, "%s", json_string_value(e));
}
static void on_status(void *u, const char *status, int err) {
    if (!strcmp(status, "reconnecting")) ((call *)u)->reconnecting++;
}

static void print_log(void *u, nc_log_level level, const char *component, const char *message) {
    fprintf(stderr, "  log: %s: %s\n", component, message);
}

/* One request on a client of the fake broker. reconnects > 0: wait until the broker saw that many
 * CONNECTs (the client came back after losing the connection), then free the client (the call fails
 * with it). Returns the ms the call took. */
static uint64_t one_call_ex(fake *f, const char *params, call *c, int reconnects) {
    char url[160];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d%s", f->port, params);
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = getenv("MQTT_DEBUG") ? NC_LOG_DEBUG : NC_LOG_OFF;
    o.log = print_log;
    o.timeout_ms = 20000 * time_factor(); /* far: the transport must end the call itself */
    o.connect_timeout_ms = 300 * time_factor();
    o.retry_attempts = 1;
    o.retry_delay_ms = 50;
    o.max_buffer_size = 1 << 20;
    nc_client *cli;
    assert_int_equal(nc_client_new(&cli, url, &o), 0);
    nc_client_on_status(cli, on_status, c);
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(nc_client_send(cli, "route", json_true(), NULL, on_value, on_done, c), 0);
    if (reconnects) {
        assert_true(run_until_ms(&f->connects, reconnects, 5000));
        assert_int_equal(c->done, 0); /* still pending while the client reconnects, as mqtt.js's */
        nc_client_free(cli);
        assert_true(run_until_ms(&c->done, 1, 5000));
    } else {
        assert_true(run_until_ms(&c->done, 1, 10000));
        nc_client_free(cli);
    }
    uint64_t took = uv_now(&loop) - t0;
    assert_int_equal(c->done, 1);
    assert_true(c->msg[0] != '\0');
    uv_run(&loop, UV_RUN_NOWAIT);
    return took;
}

static uint64_t one_call(fake *f, const char *params, call *c) {
    return one_call_ex(f, params, c, 0);
}

static void test_garbage_connack(void **st) {
    fake f;
    fake_start(&f, M_GARBAGE);
    call c = {0};
    one_call(&f, "", &c);
    assert_int_equal(c.err, NC_EPROTO);
    assert_non_null(strstr(c.msg, "not an MQTT broker"));
    fake_stop(&f);
}

static void test_silent_broker(void **st) {
    fake f;
    fake_start(&f, M_SILENT);
    call c = {0};
    uint64_t took = one_call(&f, "", &c);
    assert_int_equal(c.err, NC_ETIMEDOUT); /* the connect timeout (300 ms), not the call's 20 s */
    assert_true(took < 3000u * (unsigned)time_factor());
    assert_non_null(strstr(c.msg, "CONNACK"));
    fake_stop(&f);
}

/* Accepted, then silent: no SUBACK, no PINGRESP. The keep-alive (1 s) finds the connection dead within
 * two periods and the client connects again (and again: each new connection is accepted). */
static void test_keepalive_dead_broker(void **st) {
    fake f;
    fake_start(&f, M_STALL_AFTER_ACK);
    call c = {0};
    uint64_t took = one_call_ex(&f, "?keepalive=1", &c, 2);
    assert_true(c.reconnecting >= 1);
    assert_true(took < 5000u * (unsigned)time_factor());
    fake_stop(&f);
}

static void test_disconnect_mid_packet(void **st) {
    fake f;
    fake_start(&f, M_HALF_THEN_CLOSE);
    call c = {0};
    one_call_ex(&f, "", &c, 2);
    assert_true(c.reconnecting >= 1);
    fake_stop(&f);
}

/* A PUBLISH of 256 MB announced: refused from its header (the limit is max_buffer_size plus room for the
 * topic), nothing of it buffered. */
static void test_huge_publish(void **st) {
    fake f;
    fake_start(&f, M_HUGE);
    struct mallinfo2 before = mallinfo2();
    call c = {0};
    one_call(&f, "", &c);
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(c.err, NC_ETOOBIG);
    assert_true(after.uordblks < before.uordblks + (8u << 20));
    fake_stop(&f);
}

/* A QoS 1 event to a broker that never sends its PUBACK ends at the call's timeout with NC_ETIMEDOUT. The
 * client keeps the PUBLISH across its reconnects (the keep-alive finds the broker dead) and lets go of it
 * only when freed: the caller hears of it once. */
static void test_qos1_event_deadline(void **st) {
    fake f;
    fake_start(&f, M_STALL_AFTER_ACK);
    char url[160];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d?qos=1&keepalive=1", f.port);
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.timeout_ms = 400 * time_factor();
    nc_client *cli;
    assert_int_equal(nc_client_new(&cli, url, &o), 0);
    call c = {0};
    nc_client_on_status(cli, on_status, &c);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(nc_client_emit(cli, "ev", json_true(), NULL, on_done, &c), 0);
    assert_true(run_until_ms(&c.done, 1, 5000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(c.err, NC_ETIMEDOUT);
    assert_non_null(strstr(c.msg, "not accepted by the transport within"));
    assert_true(ms >= 390u * (unsigned)time_factor());
    assert_int_equal(nc_client_pending(cli), 0);
    assert_true(run_until_ms(&f.connects, 2, 10000)); /* reconnected, the PUBLISH still held */
    nc_client_free(cli);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(c.done, 1);
    fake_stop(&f);
}

static void h_nothing(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_null());
}

/* An MQTT 5 broker that takes QoS 0 only and no retained messages: an event asked with qos=1 and
 * retain=true is published as QoS 0 without retain (the broker would disconnect a client sending more). */
static void test_v5_broker_limits(void **st) {
    fake f;
    fake_start(&f, M_V5_LIMITED);
    char url[160];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d?protocolVersion=5&qos=1&retain=true", f.port);
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    o.connect_timeout_ms = 2000 * time_factor();
    nc_client *cli;
    assert_int_equal(nc_client_new(&cli, url, &o), 0);
    call c = {0};
    assert_int_equal(nc_client_emit(cli, "ev", json_true(), NULL, on_done, &c), 0);
    assert_true(run_until_ms(&c.done, 1, 5000));
    assert_int_equal(c.err, 0);
    assert_true(run_until_ms(&f.got_after, 1, 5000));
    assert_int_equal(f.first_after, 0x30); /* PUBLISH, QoS 0, retain 0 (not 0x33) */
    nc_client_free(cli);
    uv_run(&loop, UV_RUN_NOWAIT);
    fake_stop(&f);
}

/* A server of each of those brokers keeps retrying without crashing or leaking, and is freed cleanly. */
static void test_server_survives(void **st) {
    for (int mode = M_GARBAGE; mode <= M_HUGE; mode++) { /* (not M_V5_LIMITED: that one behaves) */
        fake f;
        fake_start(&f, mode);
        char url[160];
        snprintf(url, sizeof url, "mqtt://127.0.0.1:%d?keepalive=1&connectTimeout=300", f.port);
        nc_server_opts o = {0};
        o.loop = &loop;
        o.log_level = NC_LOG_OFF;
        o.retry_delay_ms = 20;
        o.shutdown_timeout_ms = 100;
        o.max_buffer_size = 1 << 20;
        nc_server *srv;
        assert_int_equal(nc_server_new(&srv, url, &o), 0);
        assert_int_equal(nc_server_message(srv, "route", h_nothing, NULL), 0);
        assert_int_equal(nc_server_listen(srv), 0);
        int want = 2;
        assert_true(run_until_ms(&f.connects, want, 5000)); /* it came back after the first failure */
        nc_server_free(srv);
        uv_run(&loop, UV_RUN_NOWAIT);
        fake_stop(&f);
    }
}

/* ---- acknowledgements of incoming QoS 1 and 2 PUBLISHes (M_SCRIPT) ------------------------------------ */

/* Packets of a type (the fixed header's high nibble) for a packet id among what the server sent. */
static int sent_count(const fake *f, int type, unsigned id) {
    int n = 0;
    size_t i = 0;
    while (i < f->nin) {
        int t = (unsigned char)f->in[i] >> 4;
        size_t len = 0, j = i + 1;
        for (int shift = 0; j < f->nin && shift <= 21; shift += 7, j++) {
            len |= (size_t)((unsigned char)f->in[j] & 0x7f) << shift;
            if (!((unsigned char)f->in[j] & 0x80)) break;
        }
        j++;
        if (j + len > f->nin) break;
        unsigned pid = len >= 2 ? ((unsigned)(unsigned char)f->in[j] << 8) | (unsigned char)f->in[j + 1] : 0;
        if (t == type && len >= 2 && pid == id) n++;
        i = j + len;
    }
    return n;
}

static int until_sent(fake *f, int type, unsigned id, int want) {
    uint64_t end = uv_now(&loop) + 5000u * (unsigned)time_factor();
    while (sent_count(f, type, id) < want && uv_now(&loop) < end) {
        uv_timer_t t; /* a tick, so the wait ends even if nothing happens */
        int fired = 0;
        uv_timer_init(&loop, &t);
        t.data = &fired;
        uv_timer_start(&t, loop_fixture_on_tick, 10, 0);
        uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    return sent_count(f, type, id) >= want;
}

/* A 3.1.1 PUBLISH of payload to topic (flags: the fixed header's low nibble: DUP 8, QoS << 1). */
static void publish(fake *f, int flags, unsigned id, const char *topic, const char *payload) {
    char b[256];
    size_t tl = strlen(topic), pl = strlen(payload), n = 0;
    size_t rem = 2 + tl + ((flags & 6) ? 2 : 0) + pl;
    b[n++] = (char)(0x30 | flags);
    b[n++] = (char)rem;
    b[n++] = 0;
    b[n++] = (char)tl;
    memcpy(b + n, topic, tl), n += tl;
    if (flags & 6) b[n++] = (char)(id >> 8), b[n++] = (char)id;
    memcpy(b + n, payload, pl), n += pl;
    say(f->last, b, n);
}

static nc_server *script_server(fake *f) {
    char url[160];
    snprintf(url, sizeof url, "mqtt://127.0.0.1:%d?keepalive=0", f->port);
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log_level = getenv("MQTT_DEBUG") ? NC_LOG_DEBUG : NC_LOG_OFF;
    o.log = print_log;
    o.shutdown_timeout_ms = 100;
    nc_server *srv;
    assert_int_equal(nc_server_new(&srv, url, &o), 0);
    return srv;
}

static void ev_counter(const nc_msg *m, void *u) {
    (*(int *)u)++;
}

/* QoS 2, exactly once: a DUP copy of a PUBLISH not yet released is acknowledged again (PUBREC) but not
 * dispatched a second time; PUBREL is answered with PUBCOMP and frees the id, so a new PUBLISH with it is
 * a new message. */
static void test_qos2_dup_once(void **st) {
    fake f;
    fake_start(&f, M_SCRIPT);
    nc_server *srv = script_server(&f);
    int seen = 0;
    assert_int_equal(nc_server_event(srv, "q2", ev_counter, &seen), 0);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&f.connects, 1, 5000));
    assert_non_null(f.last);
    const char *ev = "{\"pattern\":\"q2\",\"data\":1}";
    publish(&f, 4, 7, "q2", ev);
    assert_true(until_sent(&f, 5 /* PUBREC */, 7, 1));
    assert_int_equal(seen, 1);
    publish(&f, 8 | 4, 7, "q2", ev); /* the broker did not get our PUBREC: DUP */
    assert_true(until_sent(&f, 5, 7, 2));
    assert_int_equal(seen, 1);          /* not dispatched again */
    say(f.last, "\x62\x02\x00\x07", 4); /* PUBREL 7 */
    assert_true(until_sent(&f, 7 /* PUBCOMP */, 7, 1));
    publish(&f, 4, 7, "q2", ev); /* id 7 released: a new message */
    assert_true(until_sent(&f, 5, 7, 3));
    assert_int_equal(seen, 2);
    nc_server_free(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    fake_stop(&f);
}

static nc_request *held;
static void h_hold(nc_request *req, const nc_msg *m, void *u) {
    held = req;
}

/* QoS 1 with an asynchronous handler: the PUBACK goes out once the handler replied, not at dispatch. A
 * later message whose handler finished at once is acknowledged first (settle order). */
static void test_qos1_ack_after_reply(void **st) {
    fake f;
    fake_start(&f, M_SCRIPT);
    nc_server *srv = script_server(&f);
    int seen = 0;
    held = NULL;
    assert_int_equal(nc_server_message(srv, "slow", h_hold, NULL), 0);
    assert_int_equal(nc_server_event(srv, "fast", ev_counter, &seen), 0);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&f.connects, 1, 5000));
    publish(&f, 2, 9, "slow", "{\"pattern\":\"slow\",\"data\":1,\"id\":\"r1\"}");
    publish(&f, 2, 10, "fast", "{\"pattern\":\"fast\",\"data\":2}");
    assert_true(until_sent(&f, 4 /* PUBACK */, 10, 1));
    assert_non_null(held);
    assert_int_equal(seen, 1);
    assert_int_equal(sent_count(&f, 4, 9), 0); /* the handler has not replied: not acknowledged */
    nc_reply(held, json_true());
    assert_true(until_sent(&f, 4, 9, 1));
    nc_server_free(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    fake_stop(&f);
}

/* Settling by the handler: an event nacked with requeue is left unacknowledged (a kept session gets it
 * again on the next connection), one rejected or nacked without requeue is acknowledged (the broker drops
 * it). The PUBACK of a later message that was acked shows the server's answers are all in. */
static void ev_settle_by_data(const nc_msg *m, void *u) {
    nc_event *ev = nc_event_keep(m);
    int how = (int)json_integer_value(nc_msg_data(m));
    if (how == 0) nc_event_nack(ev, true);
    if (how == 1) nc_event_reject(ev);
    if (how == 2) nc_event_nack(ev, false);
    if (how == 3) nc_event_ack(ev);
    (*(int *)u)++;
}

static void test_qos1_nack_reject(void **st) {
    fake f;
    fake_start(&f, M_SCRIPT);
    nc_server *srv = script_server(&f);
    int seen = 0;
    assert_int_equal(nc_server_event(srv, "st", ev_settle_by_data, &seen), 0);
    assert_int_equal(nc_server_listen(srv), 0);
    assert_true(run_until_ms(&f.connects, 1, 5000));
    publish(&f, 2, 20, "st", "{\"pattern\":\"st\",\"data\":0}");
    publish(&f, 2, 21, "st", "{\"pattern\":\"st\",\"data\":1}");
    publish(&f, 2, 22, "st", "{\"pattern\":\"st\",\"data\":2}");
    publish(&f, 2, 23, "st", "{\"pattern\":\"st\",\"data\":3}");
    assert_true(until_sent(&f, 4, 23, 1));
    assert_int_equal(seen, 4);
    assert_int_equal(sent_count(&f, 4, 20), 0); /* nack with requeue: left for the next connection */
    assert_int_equal(sent_count(&f, 4, 21), 1); /* reject */
    assert_int_equal(sent_count(&f, 4, 22), 1); /* nack */
    nc_server_free(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    fake_stop(&f);
}

static int teardown(void **st) {
    /* bounded: a failed test leaves its server or client open, and the binary must then fail, not hang */
    int never = 0;
    for (int i = 0; i < 300 && uv_loop_alive(&loop); i++) run_until_ms(&never, 1, 10);
    int r = uv_loop_close(&loop);
    if (r) uv_print_all_handles(&loop, stderr);
    return r;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_connack),       cmocka_unit_test(test_silent_broker),
        cmocka_unit_test(test_keepalive_dead_broker), cmocka_unit_test(test_disconnect_mid_packet),
        cmocka_unit_test(test_huge_publish),          cmocka_unit_test(test_server_survives),
        cmocka_unit_test(test_v5_broker_limits),      cmocka_unit_test(test_qos2_dup_once),
        cmocka_unit_test(test_qos1_ack_after_reply),  cmocka_unit_test(test_qos1_nack_reject),
        cmocka_unit_test(test_qos1_event_deadline),
    };
    return cmocka_run_group_tests(tests, loop_setup, teardown);
}
