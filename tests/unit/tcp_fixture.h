/* A TCP server and a client of it, both on the loop of loop_fixture.h, and a recorder of one call's values
 * and end: what the unit tests of the public API over TCP share. Everything is static; included by one test
 * file each. A test with a call recorder of its own defines TCP_FIXTURE_OWN_CALL before including this. */
#ifndef NESTC_TEST_TCP_FIXTURE_H
#define NESTC_TEST_TCP_FIXTURE_H

#include "loop_fixture.h"

/* ---- a TCP server and its client on the loop ---------------------------------------------------------- */

static nc_server *srv;
static nc_client *cli;
static char url[64];

/* The server on a free loopback port (so: its options or NULL; the loop is always ours). The caller adds
 * its routes, then calls tcp_listen_connect. */
static inline void tcp_server_new(const nc_server_opts *so) {
    nc_server_opts o = so ? *so : (nc_server_opts){0};
    o.loop = &loop;
    assert_int_equal(nc_server_new(&srv, "tcp://127.0.0.1:0", &o), 0);
}

/* Listens, then makes the client of it (url: the server's address). */
static inline void tcp_listen_connect(void) {
    assert_int_equal(nc_server_listen(srv), 0);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", nc_server_port(srv));
    nc_client_opts co = {.loop = &loop};
    assert_int_equal(nc_client_new(&cli, url, &co), 0);
}

/* Frees both: the client first, so the server sees its peer go before it closes. */
static inline void tcp_free(void) {
    nc_client_free(cli);
    nc_server_free(srv);
}

/* ---- one call's values and end ------------------------------------------------------------------------- */

#ifndef TCP_FIXTURE_OWN_CALL
typedef struct call {
    json_t *values; /* every value, in order */
    int err, done;  /* on_done's err; how often on_done ran */
    json_t *error;  /* on_done's error value (a reference), or NULL */
} call;

static inline void on_value(void *u, json_t *v) {
    json_array_append(((call *)u)->values, v);
}
static inline void on_done(void *u, int err, json_t *e) {
    call *c = u;
    c->err = err;
    c->error = e ? json_incref(e) : NULL;
    c->done++;
}
static inline call call_new(void) {
    return (call){json_array(), 0, 0, NULL};
}
static inline void call_free(call *c) {
    json_decref(c->values);
    json_decref(c->error);
}
#endif

#endif
