/* The broker transports' reconnect policy as seen from outside: a Redis or NATS server whose broker is
 * down keeps retrying with growing, jittered delays, and logs the first three attempts of each connection
 * at ERROR, the rest at DEBUG (at most one more ERROR line per 10 s) instead of one ERROR line per
 * attempt. No broker is needed: the URL names a port nothing listens on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "nestc/nestc.h"

static uv_loop_t loop;

typedef struct tally {
    int loud[2], quiet[2]; /* lines about reconnecting, per connection (Redis: pub, sub; NATS: [0]) */
    int max_delay, min_late_delay, attempts;
} tally;

static void on_log(void *u, nc_log_level level, const char *component, const char *message) {
    tally *t = u;
    const char *at = strstr(message, "reconnecting in ");
    if (!at) return;
    int sub = strstr(message, "Redis sub ") != NULL;
    if (level >= NC_LOG_ERROR)
        t->loud[sub]++;
    else
        t->quiet[sub]++;
    int d = atoi(at + strlen("reconnecting in "));
    if (d > t->max_delay) t->max_delay = d;
    t->attempts++;
}

static void h_none(nc_request *req, const nc_msg *msg, void *user) {
    (void)req, (void)msg, (void)user;
}

static int free_port(void) {
    uv_tcp_t h;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &h);
    assert_int_equal(uv_tcp_bind(&h, (const struct sockaddr *)&a, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&h, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&h, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return port; /* closed again: connecting to it is refused */
}

static void run_server(const char *scheme, int nconns) {
    char url[64];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d", scheme, free_port());
    tally t = {0};
    nc_server_opts o = {0};
    o.loop = &loop;
    o.log = on_log;
    o.log_user = &t;
    o.log_level = NC_LOG_DEBUG;
    o.retry_delay_ms = 5; /* nominal 0, 5, 10, 20, 40, 40, ... (cap 8 × 5) */
    o.shutdown_timeout_ms = 100;
    nc_server *s;
    assert_int_equal(nc_server_new(&s, url, &o), 0);
    assert_int_equal(nc_server_message(s, "x", h_none, NULL), 0);
    assert_int_equal(nc_server_listen(s), 0);
    const char *f = getenv("NESTC_TEST_TIMEOUT_FACTOR");
    uint64_t factor = f && atoi(f) > 0 ? (uint64_t)atoi(f) : 1;
    uint64_t start = uv_hrtime(), end = start + 20000000000ull * factor;
    while (t.attempts < 25 * nconns && uv_hrtime() < end) uv_run(&loop, UV_RUN_ONCE);
    int took_ms = (int)((uv_hrtime() - start) / 1000000);
    nc_server_free(s);
    assert_true(t.attempts >= 25 * nconns);
    for (int i = 0; i < nconns; i++) {
        int c = nconns == 2 ? i : 0;
        /* the first three of each connection, then one per 10 s (none when it took less, as it should) */
        assert_true(t.loud[c] >= 3 && t.loud[c] <= 3 + took_ms / 10000);
        assert_true(t.quiet[c] >= 15);
    }
    /* the delays grew to the cap and no further */
    assert_true(t.max_delay > 20 && t.max_delay <= 40);
}

static void test_redis_server_backoff_and_log(void **st) {
    (void)st;
    run_server("redis", 2);
}

static void test_nats_server_backoff_and_log(void **st) {
    (void)st;
    run_server("nats", 1);
}

int main(void) {
    uv_loop_init(&loop);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_server_backoff_and_log),
        cmocka_unit_test(test_nats_server_backoff_and_log),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return r;
}
