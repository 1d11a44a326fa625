/* The blocking helpers nc_client_send_sync and nc_client_emit_sync: the last value of a reply stream,
 * none, a remote error, a timeout, a refused connection, an event taken by the transport; a client on its
 * own loop (the server on another thread) and one sharing the server's loop; refusal (NC_ESTATE) from
 * inside a callback of a loop the library is running, and NC_EINVAL for bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "nestc/nestc.h"
#include "tcp_fixture.h"

/* ---- handlers --------------------------------------------------------------------------------------- */

static atomic_int events_seen;

static void h_sum(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    json_int_t s = 0;
    size_t i;
    json_t *v;
    json_array_foreach(nc_msg_data(m), i, v) s += json_integer_value(v);
    nc_reply(req, json_integer(s));
}
static void h_stream(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    for (int i = 1; i <= 3; i++) nc_reply_next(req, json_integer(i));
    nc_reply_end(req);
}
static void h_empty(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    nc_reply_end(req);
}
static void h_fail(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    nc_reply_error_msg(req, "bad input");
}
static void h_never(nc_request *req, const nc_msg *m, void *u) {
    (void)req; /* never answered: the server's free cancels it */
    (void)m;
    (void)u;
}
static void h_count(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    nc_reply(req, json_integer(atomic_load(&events_seen)));
}
static void e_tick(const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    atomic_fetch_add(&events_seen, 1);
}

/* A handler calling a blocking helper on a client of its own loop: refused, the code replied. */
static nc_client *inner;
static void h_nested(nc_request *req, const nc_msg *m, void *u) {
    (void)m;
    (void)u;
    nc_reply(req, json_integer(nc_client_send_sync(inner, "sum", NULL, NULL, NULL, NULL)));
}

static void add_routes(nc_server *s) {
    assert_int_equal(nc_server_message(s, "nested", h_nested, NULL), 0);
    assert_int_equal(nc_server_message(s, "sum", h_sum, NULL), 0);
    assert_int_equal(nc_server_message(s, "stream", h_stream, NULL), 0);
    assert_int_equal(nc_server_message(s, "empty", h_empty, NULL), 0);
    assert_int_equal(nc_server_message(s, "fail", h_fail, NULL), 0);
    assert_int_equal(nc_server_message(s, "never", h_never, NULL), 0);
    assert_int_equal(nc_server_message(s, "count", h_count, NULL), 0);
    assert_int_equal(nc_server_event(s, "tick", e_tick, NULL), 0);
}

/* ---- a server on its own loop and thread; the client on its own loop ------------------------------------
 */

static nc_server *tsrv;
static pthread_t tsrv_thread;
static char turl[64];

static void *serve(void *arg) {
    (void)arg;
    nc_server_run(tsrv);
    return NULL;
}

static int thread_setup(void **st) {
    (void)st;
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    if (nc_server_new(&tsrv, "tcp://127.0.0.1:0", NULL)) return -1;
    add_routes(tsrv);
    if (nc_server_listen(tsrv)) return -1;
    snprintf(turl, sizeof turl, "tcp://127.0.0.1:%d", nc_server_port(tsrv));
    nc_client_opts co = {.loop = nc_server_loop(tsrv)};
    if (nc_client_new(&inner, turl, &co)) return -1;
    return pthread_create(&tsrv_thread, NULL, serve, NULL);
}

static int thread_teardown(void **st) {
    (void)st;
    nc_server_close_threadsafe(tsrv);
    pthread_join(tsrv_thread, NULL);
    nc_client_free(inner);
    nc_server_free(tsrv);
    return 0;
}

static void last_value_of_the_stream(void **st) {
    (void)st;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, turl, NULL), 0);
    json_t *data = json_pack("[i,i,i]", 1, 2, 3), *reply = NULL, *error = NULL;
    assert_int_equal(nc_client_send_sync(c, "sum", data, NULL, &reply, &error), 0);
    assert_true(json_is_integer(reply));
    assert_int_equal(json_integer_value(reply), 6);
    assert_null(error);
    json_decref(reply);

    /* several values: the last one, as lastValueFrom */
    assert_int_equal(nc_client_send_sync(c, "stream", NULL, NULL, &reply, &error), 0);
    assert_int_equal(json_integer_value(reply), 3);
    json_decref(reply);

    /* no value: 0 and NULL (JavaScript undefined) */
    reply = json_true();
    assert_int_equal(nc_client_send_sync(c, "empty", NULL, NULL, &reply, &error), 0);
    assert_null(reply);
    assert_null(error);

    /* results not wanted: released inside */
    assert_int_equal(nc_client_send_sync(c, "sum", data, NULL, NULL, NULL), 0);
    assert_int_equal(nc_client_send_sync(c, "fail", NULL, NULL, NULL, NULL), NC_EREMOTE);
    json_decref(data);
    nc_client_free(c);
}

static void remote_error(void **st) {
    (void)st;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, turl, NULL), 0);
    json_t *reply = json_true(), *error = NULL;
    assert_int_equal(nc_client_send_sync(c, "fail", NULL, NULL, &reply, &error), NC_EREMOTE);
    assert_null(reply);
    assert_non_null(error);
    assert_string_equal(json_string_value(json_object_get(error, "message")), "bad input");
    assert_string_equal(json_string_value(json_object_get(error, "status")), "error");
    json_decref(error);

    /* no handler: NestJS's message (NC_EREMOTE today; NC_ENOHANDLER where the transport tells) */
    int r = nc_client_send_sync(c, "nope", NULL, NULL, &reply, &error);
    assert_true(r == NC_EREMOTE || r == NC_ENOHANDLER);
    assert_true(json_is_string(error));
    assert_non_null(strstr(json_string_value(error), "no matching message handler"));
    json_decref(error);
    nc_client_free(c);
}

static void times_out(void **st) {
    (void)st;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, turl, NULL), 0);
    nc_call_opts o = NC_CALL_OPTS_INIT;
    o.timeout_ms = 100 * time_factor();
    json_t *reply = NULL, *error = NULL;
    assert_int_equal(nc_client_send_sync(c, "never", NULL, &o, &reply, &error), NC_ETIMEDOUT);
    assert_null(reply);
    assert_true(json_is_string(error));
    json_decref(error);
    /* the client is still usable */
    assert_int_equal(nc_client_send_sync(c, "stream", NULL, NULL, &reply, NULL), 0);
    assert_int_equal(json_integer_value(reply), 3);
    json_decref(reply);
    nc_client_free(c);
}

static void refused(void **st) {
    (void)st;
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* bound, not listening: connections are refused */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char u[64];
    snprintf(u, sizeof u, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    nc_client *c;
    assert_int_equal(nc_client_new(&c, u, NULL), 0);
    json_t *reply = NULL, *error = NULL;
    assert_int_equal(nc_client_send_sync(c, "sum", NULL, NULL, &reply, &error), NC_ECONNREFUSED);
    assert_null(reply);
    assert_non_null(strstr(json_string_value(error), "ECONNREFUSED"));
    json_decref(error);
    assert_int_equal(nc_client_emit_sync(c, "tick", NULL, NULL, &error), NC_ECONNREFUSED);
    assert_true(json_is_string(error));
    json_decref(error);
    nc_client_free(c);
    close(fd);
}

static void emit_then_send(void **st) {
    (void)st;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, turl, NULL), 0);
    int before = atomic_load(&events_seen);
    json_t *error = json_true();
    assert_int_equal(nc_client_emit_sync(c, "tick", NULL, NULL, &error), 0);
    assert_null(error);
    assert_int_equal(nc_client_emit_sync(c, "tick", NULL, NULL, NULL), 0);
    /* one connection, read in order: the request after the events sees them handled */
    json_t *reply = NULL;
    assert_int_equal(nc_client_send_sync(c, "count", NULL, NULL, &reply, NULL), 0);
    assert_int_equal(json_integer_value(reply), before + 2);
    json_decref(reply);
    nc_client_free(c);
}

/* The same defect in nc_client_run: a second event on a connected client was written (and done) by the
 * loop's prepare-phase flush, then the iteration blocked waiting for I/O that never came. */
static void run_returns_after_event(void **st) {
    (void)st;
    nc_client *c;
    assert_int_equal(nc_client_new(&c, turl, NULL), 0);
    int done[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        call k = call_new();
        assert_int_equal(nc_client_emit(c, "tick", NULL, NULL, on_done, &k), 0);
        assert_int_equal(nc_client_run(c), 0);
        done[i] = k.done;
        call_free(&k);
    }
    assert_int_equal(done[0], 1);
    assert_int_equal(done[1], 1);
    nc_client_free(c);
}

static void bad_arguments(void **st) {
    (void)st;
    json_t *reply = json_true(), *error = json_true();
    assert_int_equal(nc_client_send_sync(NULL, "sum", NULL, NULL, &reply, &error), NC_EINVAL);
    assert_null(reply);
    assert_null(error);
    assert_int_equal(nc_client_emit_sync(NULL, "tick", NULL, NULL, &error), NC_EINVAL);
    nc_client *c;
    assert_int_equal(nc_client_new(&c, turl, NULL), 0);
    assert_int_equal(nc_client_send_sync(c, NULL, NULL, NULL, &reply, &error), NC_EINVAL);
    assert_null(error);
    nc_client_free(c);
}

/* From inside on_done of a call run by nc_client_run, and from the status callback during a blocking
 * call: the loop is running, a nested run would break it. */
typedef struct nested {
    nc_client *c;
    int rc, done;
} nested;

static void nested_done(void *u, int err, json_t *e) {
    (void)err;
    (void)e;
    nested *n = u;
    json_t *reply = json_true(), *error = json_true();
    n->rc = nc_client_send_sync(n->c, "sum", NULL, NULL, &reply, &error);
    assert_null(reply);
    assert_null(error);
    int erc = nc_client_emit_sync(n->c, "tick", NULL, NULL, NULL);
    assert_int_equal(erc, n->rc);
    n->done++;
}
static void nested_status(void *u, const char *status, int err) {
    (void)err;
    nested *n = u;
    if (strcmp(status, "connected") == 0) {
        n->rc = nc_client_send_sync(n->c, "sum", NULL, NULL, NULL, NULL);
        n->done++;
    }
}

static void refused_inside_callbacks(void **st) {
    (void)st;
    nested n = {0};
    assert_int_equal(nc_client_new(&n.c, turl, NULL), 0);
    assert_int_equal(nc_client_send(n.c, "stream", NULL, NULL, NULL, nested_done, &n), 0);
    assert_int_equal(nc_client_run(n.c), 0);
    assert_int_equal(n.done, 1);
    assert_int_equal(n.rc, NC_ESTATE);
    nc_client_free(n.c);

    nested s = {0};
    assert_int_equal(nc_client_new(&s.c, turl, NULL), 0);
    nc_client_on_status(s.c, nested_status, &s);
    json_t *reply = NULL;
    assert_int_equal(nc_client_send_sync(s.c, "stream", NULL, NULL, &reply, NULL), 0);
    assert_int_equal(json_integer_value(reply), 3);
    json_decref(reply);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.rc, NC_ESTATE);
    nc_client_free(s.c);

    /* from a server handler, the loop run by nc_server_run (on its thread) */
    nc_client *c;
    assert_int_equal(nc_client_new(&c, turl, NULL), 0);
    assert_int_equal(nc_client_send_sync(c, "nested", NULL, NULL, &reply, NULL), 0);
    assert_int_equal(json_integer_value(reply), NC_ESTATE);
    json_decref(reply);
    nc_client_free(c);
}

/* ---- the client on the server's loop (borrowed): the blocking call runs both -------------------------- */

static void shared_loop(void **st) {
    (void)st;
    assert_int_equal(uv_loop_init(&loop), 0);
    tcp_server_new(NULL);
    add_routes(srv);
    tcp_listen_connect();
    json_t *data = json_pack("[i,i]", 20, 22), *reply = NULL;
    assert_int_equal(nc_client_send_sync(cli, "sum", data, NULL, &reply, NULL), 0);
    assert_int_equal(json_integer_value(reply), 42);
    json_decref(reply);
    json_decref(data);
    /* an asynchronous call started before goes on meanwhile */
    call c = call_new();
    assert_int_equal(nc_client_send(cli, "stream", NULL, NULL, on_value, on_done, &c), 0);
    assert_int_equal(nc_client_send_sync(cli, "empty", NULL, NULL, &reply, NULL), 0);
    assert_null(reply);
    run_until(&c.done, 1);
    assert_int_equal(json_array_size(c.values), 3);
    call_free(&c);
    tcp_free();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(last_value_of_the_stream),
        cmocka_unit_test(remote_error),
        cmocka_unit_test(times_out),
        cmocka_unit_test(refused),
        cmocka_unit_test(emit_then_send),
        cmocka_unit_test(run_returns_after_event),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(refused_inside_callbacks),
        cmocka_unit_test(shared_loop),
    };
    return cmocka_run_group_tests(tests, thread_setup, thread_teardown);
}
