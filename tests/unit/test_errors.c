/* nc_last_error (nestc/error.h): a constructor or call that fails at once leaves its specific reason on
 * the calling thread; a reason from a lower layer (TLS, options, URL) is not replaced by a general one;
 * another thread does not see it. No network: the failures happen before any connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "nestc/nestc.h"

static void quiet(void *u, nc_log_level level, const char *component, const char *message) {
    (void)u;
    (void)level;
    (void)component;
    (void)message;
}

static nc_client_opts quiet_client(void) {
    nc_client_opts o = {.struct_size = sizeof o, .log = quiet};
    return o;
}

static nc_server_opts quiet_server(void) {
    nc_server_opts o = {.struct_size = sizeof o, .log = quiet};
    return o;
}

#define assert_contains(hay, needle)                                                                         \
    do {                                                                                                     \
        if (!strstr((hay), (needle))) fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));           \
    } while (0)

static void client_fails(const char *url, const nc_client_opts *o, int want, const char *reason) {
    nc_client *c = NULL;
    int r = nc_client_new(&c, url, o);
    if (c) nc_client_free(c);
    assert_int_equal(r, want);
    assert_contains(nc_last_error(), reason);
}

static void server_fails(const char *url, const nc_server_opts *o, int want, const char *reason) {
    nc_server *s = NULL;
    int r = nc_server_new(&s, url, o);
    if (s) nc_server_free(s);
    assert_int_equal(r, want);
    assert_contains(nc_last_error(), reason);
}

static void test_never_null(void **state) {
    (void)state;
    assert_non_null(nc_last_error());
}

static void test_url_without_scheme(void **state) {
    (void)state;
    nc_client_opts o = quiet_client();
    client_fails("127.0.0.1:3300", &o, NC_EINVAL,
                 "invalid URL \"127.0.0.1:3300\": expected scheme://host:port");
    nc_server_opts so = quiet_server();
    server_fails("localhost", &so, NC_EINVAL, "invalid URL \"localhost\": expected scheme://host:port");
}

static void test_unsupported_scheme(void **state) {
    (void)state;
    nc_client_opts o = quiet_client();
    client_fails("sqs://127.0.0.1:9092", &o, NC_EUNSUPPORTED, "unsupported transport \"sqs\"");
}

static void test_unknown_option(void **state) {
    (void)state;
    nc_client_opts o = quiet_client();
    client_fails("tcp://127.0.0.1:1?bogus=1", &o, NC_EINVAL, "unknown URL parameter 'bogus' for tcp://");
    nc_option opt = {"bogus", "1"};
    o.options = &opt;
    o.noptions = 1;
    client_fails("redis://127.0.0.1:1", &o, NC_EINVAL, "unknown option 'bogus' for redis://");
    nc_server_opts so = quiet_server();
    so.options = &opt;
    so.noptions = 1;
    server_fails("nats://127.0.0.1:1", &so, NC_EINVAL, "unknown option 'bogus' for nats://");
}

static void test_ca_file_missing(void **state) {
    (void)state;
    nc_tls_opts t = {.struct_size = sizeof t, .ca_file = "/nope/ca.pem"};
    nc_client_opts o = quiet_client();
    o.tls = &t;
    client_fails("tls://127.0.0.1:1", &o, NC_ETLS, "cannot load the CA file /nope/ca.pem: No such file");
    /* the broker transports build their TLS context the same way */
    client_fails("rediss://127.0.0.1:1", &o, NC_ETLS, "cannot load the CA file /nope/ca.pem: No such file");
}

static void test_tls_server_needs_cert(void **state) {
    (void)state;
    nc_server_opts so = quiet_server();
    server_fails("tls://127.0.0.1:0", &so, NC_EINVAL,
                 "a tls:// server needs TLS options (certificate and key)");
}

static void test_bad_struct_size(void **state) {
    (void)state;
    nc_client_opts o = quiet_client();
    o.struct_size = 3;
    client_fails("tcp://127.0.0.1:1", &o, NC_EINVAL, "nc_client_opts.struct_size 3");
}

static void test_success_keeps_reason(void **state) {
    (void)state;
    nc_client_opts o = quiet_client();
    client_fails("nope", &o, NC_EINVAL, "invalid URL \"nope\"");
    nc_client *c = NULL;
    assert_int_equal(nc_client_new(&c, "tcp://127.0.0.1:1", &o), 0);
    nc_client_free(c);
    assert_contains(nc_last_error(), "invalid URL \"nope\"");
}

static void test_listen_in_use(void **state) {
    (void)state;
    nc_server_opts so = quiet_server();
    nc_server *a = NULL, *b = NULL;
    assert_int_equal(nc_server_new(&a, "tcp://127.0.0.1:0", &so), 0);
    assert_int_equal(nc_server_listen(a), 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", nc_server_port(a));
    assert_int_equal(nc_server_new(&b, url, &so), 0);
    int r = nc_server_listen(b);
    assert_int_equal(r, NC_EADDRINUSE);
    assert_contains(nc_last_error(), url + 6);
    assert_contains(nc_last_error(), "in use");
    nc_server_free(b);
    nc_server_free(a);
}

/* What each scheme does with the parts of a URL it has no use for: refused with the reason, never ignored. */
static void test_url_parts(void **state) {
    (void)state;
    nc_client_opts o = quiet_client();
    nc_server_opts so = quiet_server();
    client_fails("tcp://127.0.0.1:1/x", &o, NC_EINVAL,
                 "invalid URL \"tcp://127.0.0.1:1/x\": tcp:// takes no path");
    server_fails("tcp://127.0.0.1:0/x", &so, NC_EINVAL, "tcp:// takes no path");
    client_fails("tls://u:p@127.0.0.1:1", &o, NC_EINVAL, "tls:// takes no user name or password");
    client_fails("nats://127.0.0.1:4222/x", &o, NC_EINVAL, "nats:// takes no path");
    server_fails("nats://127.0.0.1:4222/x", &so, NC_EINVAL, "nats:// takes no path");
    client_fails("tcp://127.0.0.1:0", &o, NC_EINVAL, "port 0: a client needs the port the server listens on");
    client_fails("redis://127.0.0.1:6379/abc", &o, NC_EINVAL, "invalid database number \"abc\"");
    client_fails("tcp://127.0.0.1:99999", &o, NC_EINVAL, "invalid port in URL \"tcp://127.0.0.1:99999\"");
    client_fails("tcp://127.0.0.1:1?x=1", &o, NC_EINVAL,
                 "unknown URL parameter 'x' for tcp:// (its options: none)");
    /* accepted: no port (the transport's default, as NestJS's), a lone trailing slash, redis's database,
     * nats's credentials */
    const char *ok[] = {"tcp://127.0.0.1",
                        "tcp://127.0.0.1:1/",
                        "redis://127.0.0.1/3",
                        "redis://:secret@127.0.0.1",
                        "nats://user:pw@127.0.0.1:4222",
                        "nats://token@127.0.0.1"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        nc_client *c = NULL;
        int r = nc_client_new(&c, ok[i], &o);
        if (r) fail_msg("%s: %s", ok[i], nc_last_error());
        nc_client_free(c);
    }
}

/* Calls refused before anything is sent leave their reason too. */
static void test_call_refused(void **state) {
    (void)state;
    nc_client_opts o = quiet_client();
    nc_client *c = NULL;
    assert_int_equal(nc_client_new(&c, "tcp://127.0.0.1:1", &o), 0);
    assert_int_equal(nc_client_send_json(c, json_null(), NULL, NULL, NULL, NULL, NULL), NC_EINVAL);
    assert_contains(nc_last_error(), "The invalid data or message pattern (undefined/null)");
    nc_option opt = {"nope", "1"};
    nc_call_opts co = {.struct_size = sizeof co, .options = &opt, .noptions = 1};
    assert_int_equal(nc_client_send(c, "x", NULL, &co, NULL, NULL, NULL), NC_EINVAL);
    assert_contains(nc_last_error(), "unknown option 'nope' for tcp://");
    nc_client_free(c);
}

static char other_thread_saw[300];

static void other_thread(void *arg) {
    (void)arg;
    snprintf(other_thread_saw, sizeof other_thread_saw, "%s", nc_last_error());
}

static void test_per_thread(void **state) {
    (void)state;
    nc_client_opts o = quiet_client();
    client_fails("nope", &o, NC_EINVAL, "invalid URL");
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, other_thread, NULL), 0);
    uv_thread_join(&t);
    assert_string_equal(other_thread_saw, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_null),
        cmocka_unit_test(test_per_thread),
        cmocka_unit_test(test_url_without_scheme),
        cmocka_unit_test(test_unsupported_scheme),
        cmocka_unit_test(test_unknown_option),
        cmocka_unit_test(test_ca_file_missing),
        cmocka_unit_test(test_tls_server_needs_cert),
        cmocka_unit_test(test_bad_struct_size),
        cmocka_unit_test(test_success_keeps_reason),
        cmocka_unit_test(test_listen_in_use),
        cmocka_unit_test(test_url_parts),
        cmocka_unit_test(test_call_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
