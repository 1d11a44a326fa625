/* Transport options (nestc/options.h): validation against a table (unknown, misplaced, bad value), URL
 * parameters through the same table, precedence (option > URL parameter > default, handler > server),
 * typed getters, every transport's table, and the struct_size rule of the option structs. No broker:
 * servers and clients are created, never connected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "core/options.h"
#include "core/url.h"
#include "nestc/nestc.h"

/* ---- log capture ---------------------------------------------------------------------------------- */

static char last_log[512];
static int nlogs;

static void capture(void *u, nc_log_level level, const char *component, const char *message) {
    (void)u;
    (void)component;
    if (level < NC_LOG_ERROR) return;
    nlogs++;
    snprintf(last_log, sizeof last_log, "%s", message);
}

static void log_reset(void) {
    last_log[0] = '\0';
    nlogs = 0;
}

static const nc_logger test_log = {capture, NULL, NC_LOG_DEBUG, 0, 0};

/* ---- a table of every type ------------------------------------------------------------------------- */

static const char *const modes[] = {"fast", "safe", NULL};
static const nc_option_spec table[] = {
    {.name = "group", .type = NC_OPT_STRING, .levels = NC_OPT_SERVER | NC_OPT_HANDLER, .help = "g"},
    {.name = "prefetch",
     .type = NC_OPT_INT,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "p",
     .def = "10",
     .min = 1,
     .max = 1000},
    {.name = "noack", .type = NC_OPT_BOOL, .levels = NC_OPT_SERVER, .help = "n", .def = "true"},
    {.name = "linger", .type = NC_OPT_DURATION, .levels = NC_OPT_CALL, .help = "l", .def = "250"},
    {.name = "mode",
     .type = NC_OPT_ENUM,
     .levels = NC_OPT_CLIENT,
     .help = "m",
     .def = "safe",
     .choices = modes},
    {.name = NULL},
};

static nc_optctx ctx(unsigned level) {
    return (nc_optctx){level, "x", &test_log, "Test"};
}

static int build(nc_optset *s, unsigned level, const char *url, const nc_option *o, size_t n) {
    nc_url u;
    char err[128];
    if (url) assert_int_equal(nc_url_parse(&u, url, err, sizeof err), 0);
    nc_optctx cx = ctx(level);
    int r = nc_optset_build(s, table, &cx, url ? &u : NULL, o, n);
    if (url) nc_url_free(&u);
    return r;
}

static void test_unknown_misplaced_bad(void **st) {
    (void)st;
    nc_optset s;
    log_reset();
    nc_option unknown[] = {{"foo", "1"}};
    assert_int_equal(build(&s, NC_OPT_SERVER, NULL, unknown, 1), NC_EINVAL);
    assert_non_null(strstr(last_log, "unknown option 'foo' for x://"));
    assert_non_null(strstr(last_log, "group, prefetch, noack, linger, mode")); /* what it could have been */
    assert_int_equal(s.n, 0);

    log_reset();
    nc_option misplaced[] = {{"group", "g1"}};
    assert_int_equal(build(&s, NC_OPT_CALL, NULL, misplaced, 1), NC_EINVAL);
    assert_non_null(strstr(last_log, "option 'group' is not valid for a call"));
    assert_non_null(strstr(last_log, "server, handler"));
    log_reset();
    assert_int_equal(build(&s, NC_OPT_CLIENT, NULL, misplaced, 1), NC_EINVAL);
    assert_non_null(strstr(last_log, "not valid for a client"));

    struct {
        const char *name, *value, *words;
        unsigned level;
    } bad[] = {
        {"prefetch", "0", "from 1 to 1000", NC_OPT_CLIENT},
        {"prefetch", "1001", "from 1 to 1000", NC_OPT_CLIENT},
        {"prefetch", "12x", "an integer", NC_OPT_CLIENT},
        {"prefetch", "", "an integer", NC_OPT_CLIENT},
        {"noack", "maybe", "a bool", NC_OPT_SERVER},
        {"linger", "-1", "milliseconds", NC_OPT_CALL},
        {"linger", "1.5", "milliseconds", NC_OPT_CALL},
        {"mode", "slow", "one of fast, safe", NC_OPT_CLIENT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        log_reset();
        nc_option o[] = {{bad[i].name, bad[i].value}};
        assert_int_equal(build(&s, bad[i].level, NULL, o, 1), NC_EINVAL);
        assert_non_null(strstr(last_log, bad[i].name));
        assert_non_null(strstr(last_log, bad[i].words));
    }
    /* a list without a name, or a count without a list */
    nc_option noname[] = {{NULL, "1"}};
    assert_int_equal(build(&s, NC_OPT_SERVER, NULL, noname, 1), NC_EINVAL);
    assert_int_equal(build(&s, NC_OPT_SERVER, NULL, NULL, 2), NC_EINVAL);
}

static void test_types_and_defaults(void **st) {
    (void)st;
    nc_optset s;
    /* nothing given: the defaults */
    assert_int_equal(build(&s, NC_OPT_CLIENT, NULL, NULL, 0), 0);
    assert_int_equal(nc_opts_int(&s, "prefetch"), 10);
    assert_string_equal(nc_opts_str(&s, "mode"), "safe");
    assert_int_equal(nc_opts_int(&s, "mode"), 1);
    assert_true(nc_opts_bool(&s, "noack"));
    assert_null(nc_opts_str(&s, "group"));
    assert_null(nc_opts_find(&s, "prefetch"));
    nc_optset_free(&s);
    nc_option o[] = {{"prefetch", "1000"}, {"mode", "fast"}};
    assert_int_equal(build(&s, NC_OPT_CLIENT, NULL, o, 2), 0);
    assert_int_equal(nc_opts_int(&s, "prefetch"), 1000);
    assert_int_equal(nc_opts_int(&s, "mode"), 0);
    assert_string_equal(nc_opts_str(&s, "prefetch"), "1000");
    nc_optset_free(&s);
    const char *yes[] = {"true", "1", "yes", ""}, *no[] = {"false", "0", "no"};
    for (size_t i = 0; i < 4; i++) {
        nc_option b[] = {{"noack", yes[i]}};
        assert_int_equal(build(&s, NC_OPT_SERVER, NULL, b, 1), 0);
        assert_true(nc_opts_bool(&s, "noack"));
        nc_optset_free(&s);
    }
    for (size_t i = 0; i < 3; i++) {
        nc_option b[] = {{"noack", no[i]}};
        assert_int_equal(build(&s, NC_OPT_SERVER, NULL, b, 1), 0);
        assert_false(nc_opts_bool(&s, "noack"));
        nc_optset_free(&s);
    }
}

static void test_url_parameters_and_precedence(void **st) {
    (void)st;
    nc_optset s;
    /* a URL parameter goes through the same table */
    log_reset();
    assert_int_equal(build(&s, NC_OPT_SERVER, "x://h:1?group=u&noack=false", NULL, 0), 0);
    assert_string_equal(nc_opts_str(&s, "group"), "u");
    assert_false(nc_opts_bool(&s, "noack"));
    nc_optset_free(&s);
    assert_int_equal(build(&s, NC_OPT_SERVER, "x://h:1?bogus=1", NULL, 0), NC_EINVAL);
    assert_non_null(strstr(last_log, "unknown URL parameter 'bogus' for x://"));
    log_reset();
    assert_int_equal(build(&s, NC_OPT_CLIENT, "x://h:1?group=u", NULL, 0), NC_EINVAL);
    assert_non_null(strstr(last_log, "URL parameter 'group' is not valid for a client"));
    log_reset();
    assert_int_equal(build(&s, NC_OPT_SERVER, "x://h:1?noack=perhaps", NULL, 0), NC_EINVAL);
    assert_non_null(strstr(last_log, "URL parameter 'noack'"));
    /* `?noack` alone is true (as it was for ?wildcards) */
    assert_int_equal(build(&s, NC_OPT_SERVER, "x://h:1?noack=false&noack", NULL, 0), 0);
    assert_true(nc_opts_bool(&s, "noack"));
    nc_optset_free(&s);
    /* option > URL parameter > default */
    nc_option o[] = {{"group", "opt"}};
    assert_int_equal(build(&s, NC_OPT_SERVER, "x://h:1?group=url", o, 1), 0);
    assert_string_equal(nc_opts_str(&s, "group"), "opt");
    nc_optset_free(&s);
    /* the last of a name given twice counts */
    nc_option twice[] = {{"group", "a"}, {"group", "b"}};
    assert_int_equal(build(&s, NC_OPT_SERVER, NULL, twice, 2), 0);
    assert_string_equal(nc_opts_str(&s, "group"), "b");
    assert_int_equal(s.n, 1);
    /* a handler's set: its own values, else its server's (parent), else the default */
    nc_optset h, h2;
    nc_option ho[] = {{"group", "mine"}};
    assert_int_equal(build(&h, NC_OPT_HANDLER, NULL, ho, 1), 0);
    h.parent = &s;
    assert_string_equal(nc_opts_str(&h, "group"), "mine");
    assert_true(nc_opts_bool(&h, "noack")); /* the default, through the parent */
    assert_int_equal(build(&h2, NC_OPT_HANDLER, NULL, NULL, 0), 0);
    h2.parent = &s;
    assert_string_equal(nc_opts_str(&h2, "group"), "b");
    /* copies keep values, take a new parent */
    nc_optset c;
    assert_int_equal(nc_optset_copy(&c, &h, NULL), 0);
    assert_string_equal(nc_opts_str(&c, "group"), "mine");
    nc_option *list;
    size_t n;
    assert_int_equal(nc_optset_list(&s, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "group");
    assert_string_equal(list[0].value, "b");
    free(list);
    nc_optset_free(&c);
    nc_optset_free(&h);
    nc_optset_free(&h2);
    nc_optset_free(&s);
}

/* Every transport's table: unique names, a level, help, and defaults that are valid values. */
static void test_transport_tables(void **st) {
    (void)st;
    const char *schemes[] = {"tcp", "tls", "redis", "rediss", "nats"};
    for (size_t k = 0; k < sizeof schemes / sizeof *schemes; k++) {
        const nc_option_spec *o;
        for (size_t i = 0; (o = nc_transport_option(schemes[k], i)); i++) {
            assert_non_null(o->help);
            assert_true(o->levels != 0);
            for (size_t j = 0; j < i; j++)
                assert_string_not_equal(nc_transport_option(schemes[k], j)->name, o->name);
            if (o->def) {
                nc_option d[] = {{o->name, o->def}};
                unsigned level = o->levels & -o->levels; /* its first level */
                char err[256];
                assert_int_equal(nc_options_check(schemes[k], level, d, 1, err, sizeof err), 0);
            }
        }
    }
    assert_null(nc_transport_option("nats", 99));
    assert_null(nc_transport_option("nope", 0));
    assert_null(nc_transport_option("tcp", 0)); /* tcp declares none */
    char err[256];
    nc_option q[] = {{"queue", "q"}};
    assert_int_equal(nc_options_check("nats", NC_OPT_SERVER, q, 1, err, sizeof err), 0);
    assert_int_equal(nc_options_check("nats", NC_OPT_HANDLER, q, 1, err, sizeof err), 0);
    assert_int_equal(nc_options_check("nats", NC_OPT_CLIENT, q, 1, err, sizeof err), NC_EINVAL);
    assert_non_null(strstr(err, "option 'queue' is not valid for a client"));
    assert_int_equal(nc_options_check("redis", NC_OPT_SERVER, q, 1, err, sizeof err), NC_EINVAL);
    assert_non_null(strstr(err, "unknown option 'queue' for redis://"));
    assert_int_equal(nc_options_check("nope", NC_OPT_SERVER, q, 1, err, sizeof err), NC_EUNSUPPORTED);
    char lv[64];
    assert_string_equal(nc_option_levels_text(NC_OPT_SERVER | NC_OPT_CALL, lv, sizeof lv), "server, call");
}

static void h_noop(nc_request *req, const nc_msg *m, void *u) {
    (void)req;
    (void)m;
    (void)u;
}
static void ev_noop(const nc_msg *m, void *u) {
    (void)m;
    (void)u;
}

/* The public objects refuse what their transport does not take, naming it, and take what it does. */
static void test_servers_and_clients(void **st) {
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    nc_server *s;
    nc_client *c;
    nc_server_opts so = {0};
    so.loop = &loop;
    so.log = capture;
    so.log_level = NC_LOG_DEBUG;
    nc_client_opts co = {0};
    co.loop = &loop;
    co.log = capture;
    co.log_level = NC_LOG_DEBUG;

    /* URL parameters nobody declares (they used to be ignored) */
    log_reset();
    assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0?nodelay=1", &so), NC_EINVAL);
    assert_non_null(strstr(last_log, "unknown URL parameter 'nodelay' for tcp://"));
    log_reset();
    assert_int_equal(nc_client_new(&c, "nats://127.0.0.1:4222?queue=q", &co), NC_EINVAL);
    assert_non_null(strstr(last_log, "URL parameter 'queue' is not valid for a client"));
    log_reset();
    assert_int_equal(nc_server_new(&s, "redis://127.0.0.1:6379?wildcards=maybe", &so), NC_EINVAL);
    assert_non_null(strstr(last_log, "'wildcards'"));
    /* the parameters NestJS-style URLs carry today stay valid */
    assert_int_equal(nc_server_new(&s, "redis://127.0.0.1:6379?wildcards=true", &so), 0);
    nc_server_free(s);
    assert_int_equal(nc_server_new(&s, "nats://127.0.0.1:4222?queue=q&name=n&tls=false", &so), 0);
    nc_server_free(s);
    assert_int_equal(nc_client_new(&c, "nats://127.0.0.1:4222?name=n", &co), 0);
    nc_client_free(c);

    /* options in the structs */
    nc_option q[] = {{"queue", "q"}};
    log_reset();
    co.options = q;
    co.noptions = 1;
    assert_int_equal(nc_client_new(&c, "nats://127.0.0.1:4222", &co), NC_EINVAL);
    assert_non_null(strstr(last_log, "option 'queue' is not valid for a client"));
    co.options = NULL;
    co.noptions = 0;
    so.options = q;
    so.noptions = 1;
    log_reset();
    assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0", &so), NC_EINVAL);
    assert_non_null(strstr(last_log, "unknown option 'queue' for tcp://"));
    assert_int_equal(nc_server_new(&s, "nats://127.0.0.1:4222", &so), 0);

    /* handler level */
    nc_option name[] = {{"name", "x"}};
    nc_handler_opts ho = {0};
    ho.options = name;
    ho.noptions = 1;
    log_reset();
    assert_int_equal(nc_server_message_opts(s, "a", &ho, NULL, NULL), NC_EINVAL); /* no handler */
    assert_int_equal(nc_server_message_opts(s, "a", &ho, h_noop, NULL), NC_EINVAL);
    assert_non_null(strstr(last_log, "option 'name' is not valid for a handler"));
    ho.options = q;
    assert_int_equal(nc_server_message_opts(s, "a", &ho, h_noop, NULL), 0);
    nc_handler_opts legacy = {.queue = "old"};
    assert_int_equal(nc_server_event_opts(s, "b", &legacy, ev_noop, NULL), 0);
    nc_server_free(s);
    /* the deprecated field stays ignored where the transport has no handler option `queue` */
    so.options = NULL;
    so.noptions = 0;
    assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0", &so), 0);
    assert_int_equal(nc_server_message_opts(s, "a", &legacy, h_noop, NULL), 0);
    log_reset();
    assert_int_equal(nc_server_message_opts(s, "b", &ho, h_noop, NULL), NC_EINVAL);
    assert_non_null(strstr(last_log, "unknown option 'queue' for tcp://"));
    nc_server_free(s);

    /* call level: refused at once, nothing pending */
    assert_int_equal(nc_client_new(&c, "nats://127.0.0.1:4222", &co), 0);
    nc_call_opts call = {0};
    call.options = name;
    call.noptions = 1;
    log_reset();
    assert_int_equal(nc_client_send(c, "x", NULL, &call, NULL, NULL, NULL), NC_EINVAL);
    assert_non_null(strstr(last_log, "option 'name' is not valid for a call"));
    assert_int_equal(nc_client_emit(c, "x", NULL, &call, NULL, NULL), NC_EINVAL);
    assert_int_equal(nc_client_pending(c), 0);
    nc_client_free(c);
    uv_loop_close(&loop);
}

/* struct_size: 0 and sizeof work; a newer caller's zero tail is accepted; anything else is refused. */
static void test_struct_size(void **st) {
    (void)st;
    uv_loop_t loop;
    uv_loop_init(&loop);
    nc_server *s;
    nc_client *c;
    struct {
        nc_server_opts o;
        char tail[16];
    } newer;
    memset(&newer, 0, sizeof newer);
    newer.o.loop = &loop;
    newer.o.log = capture;
    newer.o.struct_size = sizeof newer;
    assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0", &newer.o), 0);
    nc_server_free(s);
    newer.tail[3] = 1; /* a field this library does not know, set */
    log_reset();
    assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0", &newer.o), NC_EINVAL);
    assert_non_null(strstr(last_log, "struct_size"));
    newer.tail[3] = 0;
    newer.o.struct_size = 4; /* smaller than any layout */
    assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0", &newer.o), NC_EINVAL);
    nc_server_opts init = NC_SERVER_OPTS_INIT;
    assert_int_equal(init.struct_size, sizeof(nc_server_opts));
    init.loop = &loop;
    assert_int_equal(nc_server_new(&s, "tcp://127.0.0.1:0", &init), 0);
    nc_server_free(s);

    nc_client_opts co = NC_CLIENT_OPTS_INIT;
    co.loop = &loop;
    co.log = capture;
    nc_tls_opts tls = NC_TLS_OPTS_INIT;
    co.tls = &tls;
    assert_int_equal(nc_client_new(&c, "tls://127.0.0.1:1", &co), 0);
    nc_call_opts call = NC_CALL_OPTS_INIT;
    call.struct_size = 2;
    assert_int_equal(nc_client_send(c, "x", NULL, &call, NULL, NULL, NULL), NC_EINVAL);
    nc_client_free(c);
    tls.struct_size = 1;
    assert_int_equal(nc_client_new(&c, "tls://127.0.0.1:1", &co), NC_EINVAL);
    nc_handler_opts ho = NC_HANDLER_OPTS_INIT;
    assert_int_equal(ho.struct_size, sizeof ho);
    uv_loop_close(&loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_misplaced_bad),         cmocka_unit_test(test_types_and_defaults),
        cmocka_unit_test(test_url_parameters_and_precedence), cmocka_unit_test(test_transport_tables),
        cmocka_unit_test(test_servers_and_clients),           cmocka_unit_test(test_struct_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
