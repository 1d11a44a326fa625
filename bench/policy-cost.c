/* policy-cost MODE N — the instructions a resilience policy adds per request, for docs/resilience.md
 * ("Cost"): a TCP server and client on one loop, 100 requests in flight, N requests in all. Run it under
 * callgrind twice (two N) and divide the difference of the totals by the difference of N: start-up and
 * shutdown cancel out.
 *   none        no policy
 *   bulkhead    the client bulkhead, 200 in flight (never full)
 *   queue       the client bulkhead, 50 in flight and a queue of 100 (half the calls wait for a slot)
 *   rate        the client rate limiter, 1e9 a second (every call takes a token at once)
 *   rate-wait   the client rate limiter, burst 1, waits up to 10 s, the rate set so that calls wait
 *   srv-rate    the server rate limiter, 1e9 a second
 * Public API only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "nestc/nestc.h"

static nc_client *cli;
static long left, done_n, inflight;

static void h_echo(nc_request *req, const nc_msg *m, void *u) {
    (void)u;
    nc_reply(req, json_incref(nc_msg_data(m)));
}

static void on_done(void *u, int err, json_t *e);

static void one(void) {
    if (left <= 0) return;
    left--;
    inflight++;
    nc_client_send(cli, "echo", json_true(), NULL, NULL, on_done, NULL);
}

static void on_done(void *u, int err, json_t *e) {
    (void)u, (void)e;
    if (err) {
        fprintf(stderr, "policy-cost: a call failed: %s\n", nc_err_name(err));
        exit(1);
    }
    inflight--;
    done_n++;
    one();
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: policy-cost none|bulkhead|queue|rate|rate-wait|srv-rate N\n");
        return 2;
    }
    const char *mode = argv[1];
    left = atol(argv[2]);
    long n = left;
    uv_loop_t *loop = uv_default_loop();
    nc_server *srv;
    nc_server_opts so = {.loop = loop};
    if (nc_server_new(&srv, "tcp://127.0.0.1:0", &so)) return 2;
    nc_server_message(srv, "echo", h_echo, NULL);
    if (!strcmp(mode, "srv-rate")) {
        nc_rate_limit_opts r = {.struct_size = sizeof r, .rate = 1e9};
        if (nc_server_use_rate_limit(srv, &r, NULL) < 0) return 2;
    }
    if (nc_server_listen(srv)) return 2;
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", nc_server_port(srv));
    nc_client_opts co = {.loop = loop, .timeout_ms = NC_LIMIT_OFF};
    if (nc_client_new(&cli, url, &co)) return 2;
    int r = 0;
    if (!strcmp(mode, "bulkhead")) {
        nc_bulkhead_opts b = {.struct_size = sizeof b, .max_in_flight = 200};
        r = nc_client_use_bulkhead(cli, &b, NULL);
    } else if (!strcmp(mode, "queue")) {
        nc_bulkhead_opts b = {
            .struct_size = sizeof b, .max_in_flight = 50, .max_queue = 100, .max_wait_ms = NC_LIMIT_OFF};
        r = nc_client_use_bulkhead(cli, &b, NULL);
    } else if (!strcmp(mode, "rate")) {
        nc_rate_limit_opts l = {.struct_size = sizeof l, .rate = 1e9};
        r = nc_client_use_rate_limit(cli, &l, NULL);
    } else if (!strcmp(mode, "rate-wait")) {
        nc_rate_limit_opts l = {.struct_size = sizeof l, .rate = 20000, .burst = 1, .max_wait_ms = 10000};
        r = nc_client_use_rate_limit(cli, &l, NULL);
    }
    if (r < 0) return 2;
    for (int i = 0; i < 100; i++) one();
    while (done_n < n) uv_run(loop, UV_RUN_ONCE);
    nc_client_free(cli);
    nc_server_free(srv);
    uv_run(loop, UV_RUN_DEFAULT);
    printf("%s: %ld requests\n", mode, done_n);
    return 0;
}
