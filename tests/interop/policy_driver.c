/* policy_driver URL — a nestc client with the built-in circuit breaker and retry policy (nestc/policy.h)
 * against a NestJS conformance server (nest-server.mjs): an error reply (RpcException) leaves the breaker
 * closed (the peer answered); two timeouts of `sleep` open it; a call then fails at once with
 * NC_ECIRCUITOPEN; after the cool-down a probe `sum` gets NestJS's answer and closes it. Prints one line
 * per step; exits 0 when every step went as expected, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "nestc/nestc.h"

typedef struct res {
    int done, err;
    json_t *value;
} res;

static void on_value(void *u, json_t *v) {
    res *r = u;
    json_decref(r->value);
    r->value = json_incref(v);
}
static void on_done(void *u, int err, json_t *e) {
    (void)e;
    res *r = u;
    r->err = err;
    r->done = 1;
}

static uv_loop_t *loop;
static nc_client *cli;
static int failed;

static res call(const char *pattern, json_t *data, int timeout_ms) {
    res r = {0};
    nc_call_opts o = {.timeout_ms = timeout_ms};
    if (nc_client_send(cli, pattern, data, timeout_ms ? &o : NULL, on_value, on_done, &r)) r.done = 1;
    while (!r.done) uv_run(loop, UV_RUN_ONCE);
    json_decref(data);
    return r;
}

static void expect(const char *what, int got, int want) {
    printf("%-50s %s (%s)\n", what, got == want ? "ok" : "FAILED", nc_err_name(got));
    if (got != want) failed = 1;
}

static void expect_state(const char *what, nc_breaker_state got, nc_breaker_state want) {
    static const char *const names[] = {"closed", "open", "half-open"};
    printf("%-50s %s (%s)\n", what, got == want ? "ok" : "FAILED", names[got]);
    if (got != want) failed = 1;
}

static nc_breaker_state state(nc_breaker *b) {
    nc_breaker_info in;
    nc_breaker_get_info(b, NULL, &in);
    return in.state;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: policy_driver URL\n");
        return 2;
    }
    const char *f = getenv("NESTC_TEST_TIMEOUT_FACTOR");
    int factor = f && atoi(f) > 0 ? atoi(f) : 1;
    loop = uv_default_loop();
    nc_client_opts co = {.loop = loop};
    if (nc_client_new(&cli, argv[1], &co)) return 2;
    nc_breaker_opts bo = {.struct_size = sizeof bo, .consecutive_failures = 2, .open_ms = 100};
    nc_breaker *b;
    nc_retry_opts ro = {.struct_size = sizeof ro, .base_delay_ms = 10};
    if (nc_client_use_breaker(cli, &bo, &b) < 0 || nc_client_use_retry(cli, &ro, NULL) < 0) return 2;

    res r = call("{\"cmd\":\"sum\"}", json_pack("[i,i,i]", 1, 2, 3), 0);
    expect("sum [1,2,3] answered", r.err, 0);
    if (json_integer_value(r.value) != 6) failed = 1;
    json_decref(r.value);
    r = call("exception", json_pack("{s:s}", "message", "no"), 0);
    expect("an RpcException is NC_EREMOTE", r.err, NC_EREMOTE);
    expect_state("  and leaves the breaker closed", state(b), NC_BREAKER_CLOSED);
    json_decref(r.value);
    for (int i = 0; i < 2; i++) {
        r = call("sleep", json_integer(3000), 100 * factor);
        expect("sleep 3000 ms times out", r.err, NC_ETIMEDOUT);
        json_decref(r.value);
    }
    expect_state("two timeouts open the breaker", state(b), NC_BREAKER_OPEN);
    r = call("{\"cmd\":\"sum\"}", json_pack("[i]", 1), 0);
    expect("a call while open fails at once", r.err, NC_ECIRCUITOPEN);
    json_decref(r.value);
    while (state(b) != NC_BREAKER_HALF_OPEN) uv_run(loop, UV_RUN_NOWAIT); /* the 100 ms cool-down */
    r = call("{\"cmd\":\"sum\"}", json_pack("[i,i]", 20, 22), 0);
    expect("the half-open probe is answered", r.err, 0);
    if (json_integer_value(r.value) != 42) failed = 1;
    expect_state("  and closes the breaker", state(b), NC_BREAKER_CLOSED);
    json_decref(r.value);
    nc_client_free(cli);
    uv_run(loop, UV_RUN_DEFAULT);
    printf("%s\n", failed ? "FAILED" : "all ok");
    return failed;
}
