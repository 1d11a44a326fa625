/* The MqttRecord and MqttOptions features beyond QoS and retain, against a real mosquitto (started here on a
 * free loopback port in a temporary directory, stopped by PID): the MQTT 5 PUBLISH properties contentType,
 * messageExpiryInterval and payloadFormatIndicator per call and per client as the handler's context (and
 * dropped on MQTT 3.1.1), the will message of a client killed without DISCONNECT, and sessionExpiryInterval
 * with clean=false. Skipped when mosquitto is not installed. */
/* the harness's NATS/Redis service is not used here */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "broker_harness.h"

#include <poll.h>

#define MQTT_FIXTURE_NAME "test_mqtt_record"
#include "mqtt_fixture.h"

/* The MQTT 5 properties a handler sees in its context, as a JSON object (absent keys left out). */
static json_t *ctx_props(const nc_msg *m) {
    json_t *o = json_object();
    size_t n;
    const char *v;
    int64_t x;
    if ((v = nc_msg_ctx_str(m, NC_CTX_CONTENT_TYPE, &n)))
        json_object_set_new(o, "content_type", json_stringn(v, n));
    if (!nc_msg_ctx_int(m, NC_CTX_MESSAGE_EXPIRY, &x)) json_object_set_new(o, "expiry", json_integer(x));
    if (!nc_msg_ctx_int(m, NC_CTX_PAYLOAD_FORMAT, &x)) json_object_set_new(o, "format", json_integer(x));
    if (!nc_msg_ctx_int(m, NC_CTX_REDELIVERED, &x)) json_object_set_new(o, "dup", json_integer(x));
    return o;
}

static void h_props(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, ctx_props(m));
}

static int got_events;
static json_t *last_event;
static void ev_keep(const nc_msg *m, void *u) {
    got_events++;
    json_decref(last_event);
    last_event = json_incref(nc_msg_data(m));
}

static void emitted(void *u, int err, json_t *e) {
    call *k = u;
    k->done = 1;
    k->err = err;
}

static void emit_qos1(nc_client *c, const char *route, const char *text) {
    nc_option q1[] = {{"qos", "1"}};
    nc_call_opts o = NC_CALL_OPTS_INIT;
    o.options = q1;
    o.noptions = 1;
    call k = {0};
    json_t *d = json_string(text);
    assert_int_equal(nc_client_emit(c, route, d, &o, emitted, &k), 0);
    json_decref(d);
    assert_true(run_until_ms(&k.done, 1, 5000)); /* the broker's PUBACK: it has the message */
    assert_int_equal(k.err, 0);
}

static const char *str_of(json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

/* MQTT 5: per call, contentType, messageExpiryInterval and payloadFormatIndicator reach the handler's
 * context; the client's own values are every call's default, a call's override them. dup=true at QoS 1 is
 * accepted (the broker does not forward DUP: the subscriber's flag is its own, 0 on a first delivery). */
static void test_v5_properties(void **st) {
    int conn = 0;
    nc_server *srv = server_new(url5, &conn);
    assert_int_equal(nc_server_message(srv, "rec/props", h_props, NULL), 0);
    listen_until_connected(srv, &conn);
    char curl[260];
    snprintf(curl, sizeof curl, "%s&contentType=text%%2Fplain", url5);
    nc_client *c = client_new(curl, 0, NULL);
    json_t *r = ask(c, "rec/props", NULL); /* the client's default only */
    assert_string_equal(str_of(r, "content_type"), "text/plain");
    assert_null(json_object_get(r, "expiry"));
    assert_null(json_object_get(r, "format"));
    assert_int_equal(json_integer_value(json_object_get(r, "dup")), 0);
    json_decref(r);
    nc_option po[] = {{"contentType", "application/json"},
                      {"messageExpiryInterval", "60"},
                      {"payloadFormatIndicator", "true"},
                      {"qos", "1"},
                      {"dup", "true"}};
    nc_call_opts o = NC_CALL_OPTS_INIT;
    o.options = po;
    o.noptions = 5;
    r = ask(c, "rec/props", &o);
    assert_string_equal(str_of(r, "content_type"), "application/json");
    json_int_t left = json_integer_value(json_object_get(r, "expiry"));
    assert_true(left > 0 && left <= 60); /* the broker sends what is left of it */
    assert_int_equal(json_integer_value(json_object_get(r, "format")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "dup")), 0);
    json_decref(r);
    /* an invalid content type (not UTF-8) is refused before anything is sent */
    nc_option bad[] = {{"contentType", "\xff"}};
    o.options = bad;
    o.noptions = 1;
    call k = {0};
    int r0 = nc_client_send(c, "rec/props", NULL, &o, on_value, on_done, &k);
    if (!r0) {
        assert_true(run_until_ms(&k.done, 1, 5000));
        r0 = k.err;
    }
    assert_int_equal(r0, NC_EINVAL);
    call_clear(&k);
    nc_client_free(c);
    nc_server_free(srv);
}

/* MQTT 3.1.1 has no properties: the options are accepted and dropped, as mqtt.js drops them (an MQTT 5
 * server sees none). */
static void test_v311_properties_dropped(void **st) {
    int conn = 0;
    nc_server *srv = server_new(url5, &conn);
    assert_int_equal(nc_server_message(srv, "rec/old", h_props, NULL), 0);
    listen_until_connected(srv, &conn);
    char curl[260];
    snprintf(curl, sizeof curl, "%s?contentType=text%%2Fplain&messageExpiryInterval=30", url);
    nc_client *c = client_new(curl, 0, NULL);
    nc_option po[] = {{"payloadFormatIndicator", "true"}, {"contentType", "a/b"}};
    nc_call_opts o = NC_CALL_OPTS_INIT;
    o.options = po;
    o.noptions = 2;
    json_t *r = ask(c, "rec/old", &o);
    assert_null(json_object_get(r, "content_type"));
    assert_null(json_object_get(r, "expiry"));
    assert_null(json_object_get(r, "format"));
    json_decref(r);
    nc_client_free(c);
    nc_server_free(srv);
}

static void kid_status(void *u, const char *status, int err) {
    if (!strcmp(status, "connected") && write(*(int *)u, "R", 1) != 1) _exit(3);
}

/* A client process connected with willurl (its own loop); 'R' on the returned pipe once connected. */
static int kid_start(const char *willurl) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    kid_pid = fork();
    assert_true(kid_pid >= 0);
    if (kid_pid == 0) {
        close(p[0]);
        uv_loop_t kl; /* a loop of its own: the parent's is not touched here */
        if (uv_loop_init(&kl)) _exit(3);
        nc_client_opts o = {0};
        o.loop = &kl;
        o.log_level = NC_LOG_OFF;
        nc_client *c;
        if (nc_client_new(&c, willurl, &o)) _exit(3);
        nc_client_on_status(c, kid_status, &p[1]);
        if (nc_client_connect(c, NULL, NULL)) _exit(3);
        uv_run(&kl, UV_RUN_DEFAULT);
        _exit(4);
    }
    close(p[1]);
    return p[0];
}

static char kid_read(int fd) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    char ch = 0;
    if (poll(&pf, 1, 5000 * time_factor()) == 1 && read(fd, &ch, 1) != 1) ch = 0;
    return ch;
}

/* The will (NestJS `will`): a client closed normally (DISCONNECT) leaves no will; one killed (SIGKILL: the
 * socket closes without DISCONNECT) makes the broker publish it, and a server subscribed to its topic
 * handles it as an event. A marker shows the first will is not coming late. */
static void test_will(void **st) {
    int conn = 0;
    got_events = 0;
    nc_server *srv = server_new(url, &conn);
    assert_int_equal(nc_server_event(srv, "rec/will", ev_keep, NULL), 0);
    listen_until_connected(srv, &conn);
    char wurl[400];
    snprintf(wurl, sizeof wurl,
             "%s?willTopic=rec/will&willQos=1&willPayload=%%7B%%22pattern%%22%%3A%%22rec%%2Fwill%%22%%2C"
             "%%22data%%22%%3A%%22gone%%22%%7D",
             url);
    cli_status cs = {0};
    nc_client *g = client_new(wurl, 0, &cs);
    assert_int_equal(nc_client_connect(g, NULL, NULL), 0);
    assert_true(run_until_ms(&cs.connected, 1, 5000));
    nc_client_free(g); /* DISCONNECT: the broker discards the will */
    nc_client *c = client_new(url, 0, NULL);
    emit_qos1(c, "rec/will", "marker");
    assert_true(run_until_ms(&got_events, 1, 5000));
    assert_string_equal(json_string_value(last_event), "marker");
    int rfd = kid_start(wurl);
    assert_int_equal(kid_read(rfd), 'R');
    kid_kill();
    close(rfd);
    assert_true(run_until_ms(&got_events, 2, 5000));
    assert_string_equal(json_string_value(last_event), "gone");
    json_decref(last_event);
    last_event = NULL;
    nc_client_free(c);
    nc_server_free(srv);
}

/* A will option without willTopic, or a will topic with a wildcard, is refused when the client is made. */
static void test_will_refused(void **st) {
    char u[300];
    nc_client_opts o = {0};
    o.loop = &loop;
    o.log_level = NC_LOG_OFF;
    nc_client *c = NULL;
    snprintf(u, sizeof u, "%s?willPayload=x", url);
    assert_int_equal(nc_client_new(&c, u, &o), NC_EINVAL);
    snprintf(u, sizeof u, "%s?willTopic=a/%%23", url);
    assert_int_equal(nc_client_new(&c, u, &o), NC_EINVAL);
}

/* One away period of a clean=false MQTT 5 server with sessionExpiryInterval=expiry: it disconnects, a
 * QoS 1 event is published (the broker keeps it for the session), the server stays away 3 s, comes back,
 * and a marker is published. Returns how many events it got before the marker (the marker included). */
static int away_and_back(const char *id, const char *expiry) {
    char purl[300];
    snprintf(purl, sizeof purl, "%s&clean=false&clientId=%s&qos=1&sessionExpiryInterval=%s", url5, id,
             expiry);
    int conn = 0;
    got_events = 0;
    nc_server *a = server_new(purl, &conn);
    assert_int_equal(nc_server_event(a, "rec/sess", ev_keep, NULL), 0);
    listen_until_connected(a, &conn);
    nc_server_free(a);
    uv_run(&loop, UV_RUN_NOWAIT);
    nc_client *c = client_new(url5, 0, NULL);
    emit_qos1(c, "rec/sess", "while away");
    run_ms(3000); /* longer than 1 s: what is tested is the time away */
    conn = 0;
    a = server_new(purl, &conn);
    assert_int_equal(nc_server_event(a, "rec/sess", ev_keep, NULL), 0);
    listen_until_connected(a, &conn);
    emit_qos1(c, "rec/sess", "marker");
    int before = 0;
    assert_true(run_until_ms(&got_events, 1, 5000));
    while (strcmp(json_string_value(last_event), "marker")) {
        before++;
        assert_true(run_until_ms(&got_events, before + 1, 5000));
    }
    json_decref(last_event);
    last_event = NULL;
    nc_client_free(c);
    nc_server_free(a);
    return before;
}

/* sessionExpiryInterval=1: the session (and the event kept for it) is gone after 3 s away; 3600: the event
 * is delivered when the server comes back. */
static void test_session_expiry(void **st) {
    assert_int_equal(away_and_back("nestc-rec-short", "1"), 0);
    assert_int_equal(away_and_back("nestc-rec-long", "3600"), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v5_properties),  cmocka_unit_test(test_v311_properties_dropped),
        cmocka_unit_test(test_will),           cmocka_unit_test(test_will_refused),
        cmocka_unit_test(test_session_expiry),
    };
    MQTT_FIXTURE_RUN(tests, 120u);
}
