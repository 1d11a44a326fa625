/* limit_driver URL — a nestc client with the built-in queueing bulkhead and rate limiter (nestc/policy.h)
 * against a NestJS conformance server (nest-server.mjs). Prints one line per step; exits 0 when every step
 * went as expected, 1 otherwise.
 *   - bulkhead, 1 in flight and a queue of 2: `sleep` goes, two `sum`s wait in the queue (the server sees
 *     nothing of them until `sleep` is answered: they end after it), a fourth call is refused at once
 *     with NC_EREFUSED; the queued ones get NestJS's answers;
 *   - rate limiter, 10 a second, burst 1, waits up to 450 ms: of six `sum`s made at once, five are
 *     answered (the first at once, the others a token interval apart), the sixth (due in 500 ms) is
 *     refused at once. */
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "nestc/nestc.h"

typedef struct res {
    int done, err, order;
    long long value;
    uint64_t at_ms;
} res;

static int finished;
static uint64_t t0;

static void on_value(void *u, json_t *v) {
    ((res *)u)->value = json_integer_value(v);
}
static void on_done(void *u, int err, json_t *e) {
    (void)e;
    res *r = u;
    r->err = err;
    r->done = 1;
    r->order = ++finished;
    r->at_ms = (uv_hrtime() - t0) / 1000000u;
}

static int failed;
static void expect(const char *what, int ok) {
    printf("%-60s %s\n", what, ok ? "ok" : "FAILED");
    if (!ok) failed = 1;
}

static void run_until_done(uv_loop_t *loop, res *r, int n) {
    for (int i = 0; i < n; i++)
        while (!r[i].done) uv_run(loop, UV_RUN_ONCE);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: limit_driver URL\n");
        return 2;
    }
    const char *f = getenv("NESTC_TEST_TIMEOUT_FACTOR");
    int factor = f && atoi(f) > 0 ? atoi(f) : 1;
    uv_loop_t *loop = uv_default_loop();
    nc_client_opts co = {.loop = loop, .timeout_ms = 10000 * factor};
    nc_client *cli;
    if (nc_client_new(&cli, argv[1], &co)) return 2;

    /* the queueing bulkhead */
    nc_bulkhead_opts bo = {
        .struct_size = sizeof bo, .max_in_flight = 1, .max_queue = 2, .max_wait_ms = 10000 * factor};
    nc_bulkhead *b;
    int id = nc_client_use_bulkhead(cli, &bo, &b);
    if (id < 0) return 2;
    res r[4] = {{0}};
    t0 = uv_hrtime();
    json_t *ms = json_integer(300), *one_two = json_pack("[i,i]", 1, 2);
    nc_client_send(cli, "sleep", ms, NULL, on_value, on_done, &r[0]);
    nc_client_send(cli, "{\"cmd\":\"sum\"}", one_two, NULL, on_value, on_done, &r[1]);
    nc_client_send(cli, "{\"cmd\":\"sum\"}", one_two, NULL, on_value, on_done, &r[2]);
    nc_client_send(cli, "{\"cmd\":\"sum\"}", one_two, NULL, on_value, on_done, &r[3]);
    expect("bulkhead: the call past the queue is refused at once", r[3].done && r[3].err == NC_EREFUSED);
    expect("  two calls wait in its queue", nc_bulkhead_queued(b) == 2);
    run_until_done(loop, r, 3);
    expect("  sleep is answered first", r[0].err == 0 && r[0].value == 300 && r[0].order == 2);
    expect("  then the queued sums, with NestJS's answers", r[1].err == 0 && r[1].value == 3 &&
                                                                r[2].err == 0 && r[2].value == 3 &&
                                                                r[1].order == 3 && r[2].order == 4);
    expect("  none refused after waiting", nc_bulkhead_expired(b) == 0 && nc_bulkhead_queued(b) == 0);
    nc_client_remove_hooks(cli, id);

    /* the rate limiter */
    /* × the time factor: the calls are made a little apart, more so on a slow machine */
    nc_rate_limit_opts ro = {
        .struct_size = sizeof ro, .rate = 10.0 / factor, .burst = 1, .max_wait_ms = 450 * factor};
    nc_rate_limiter *l;
    if (nc_client_use_rate_limit(cli, &ro, &l) < 0) return 2;
    res s[6] = {{0}};
    finished = 0;
    t0 = uv_hrtime();
    for (int i = 0; i < 6; i++)
        nc_client_send(cli, "{\"cmd\":\"sum\"}", one_two, NULL, on_value, on_done, &s[i]);
    expect("rate limit: the sixth call (due in 500 ms) is refused at once",
           s[5].done && s[5].err == NC_EREFUSED);
    run_until_done(loop, s, 5);
    int all = 1, spaced = 1;
    for (int i = 0; i < 5; i++) {
        all &= s[i].err == 0 && s[i].value == 3;
        spaced &= s[i].at_ms + 5 >= (uint64_t)(i * 100 * factor); /* a token interval after the one before */
        printf("  sum %d answered after %llu ms\n", i + 1, (unsigned long long)s[i].at_ms);
    }
    expect("  five are answered by NestJS", all);
    expect("  a token interval apart", spaced);
    nc_rate_limit_info in;
    nc_rate_limit_get_info(l, NULL, &in);
    expect("  counted: 1 at once, 4 after waiting, 1 refused",
           in.admitted == 1 && in.delayed == 4 && in.refused == 1 && in.waiting == 0);
    json_decref(ms);
    json_decref(one_two);
    nc_client_free(cli);
    uv_run(loop, UV_RUN_DEFAULT);
    printf("%s\n", failed ? "FAILED" : "all ok");
    return failed;
}
