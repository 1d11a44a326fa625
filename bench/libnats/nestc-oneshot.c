/* The nestc side of libnats-bench --oneshot: connect, one request, close, twice, with the public nestc client
 * API, timing each phase. Prints one JSON line with the same members as libnats-bench --oneshot.
 *
 *   nestc-oneshot nats://H:P
 *
 * connect: nc_client_new + nc_client_connect until its callback (name resolution on libuv's thread pool, TCP
 * connect, INFO, CONNECT, PING/PONG); request: nc_client_send of {"cmd":"sum"} [1,2,3] until the reply (SUB
 * inbox + PUB, the reply, UNSUB); close: nc_client_free (closes the connection and its handles, frees the
 * client and its loop). The second cycle is a connection alone: the process's one-time costs (libuv starts
 * its thread pool on the first name resolution) are paid by the first. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nestc/nestc.h>
#include <uv.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int threads_now(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Threads:", 8)) n = atoi(line + 8);
    fclose(f);
    return n;
}

typedef struct state {
    nc_client *cli;
    int err, done;
    double value;
} state;

static void on_connected(void *user, int err, json_t *error) {
    (void)error;
    state *s = user;
    s->err = err;
    s->done = 1;
    uv_stop(nc_client_loop(s->cli));
}

static void on_value(void *user, json_t *value) {
    state *s = user;
    s->value = json_number_value(value);
}

static void on_done(void *user, int err, json_t *error) {
    (void)error;
    state *s = user;
    s->err = err;
    s->done = 1;
    uv_stop(nc_client_loop(s->cli));
}

/* One cycle; the phases' times in µs. Returns 0 if the reply was right. */
static int cycle(const char *url, double *connect_us, double *request_us, double *close_us, int *threads) {
    state s = {0};
    long long t0 = now_ns();
    int r = nc_client_new(&s.cli, url, NULL);
    if (r) {
        fprintf(stderr, "nestc-oneshot: %s: %s\n", url, nc_strerror(r));
        return 1;
    }
    r = nc_client_connect(s.cli, on_connected, &s);
    if (!r) {
        uv_run(nc_client_loop(s.cli), UV_RUN_DEFAULT);
        r = s.done ? s.err : NC_ECLOSED;
    }
    long long t1 = now_ns();
    if (!r) {
        json_t *data = json_pack("[iii]", 1, 2, 3);
        s.done = 0;
        r = nc_client_send(s.cli, "{\"cmd\":\"sum\"}", data, NULL, on_value, on_done, &s);
        json_decref(data);
        if (!r) {
            uv_run(nc_client_loop(s.cli), UV_RUN_DEFAULT);
            r = s.done ? s.err : NC_ECLOSED;
        }
    }
    long long t2 = now_ns();
    *threads = threads_now();
    nc_client_free(s.cli);
    long long t3 = now_ns();
    if (r) {
        fprintf(stderr, "nestc-oneshot: %s\n", nc_strerror(r));
        return 1;
    }
    *connect_us = (t1 - t0) / 1e3, *request_us = (t2 - t1) / 1e3, *close_us = (t3 - t2) / 1e3;
    return s.value == 6 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: nestc-oneshot nats://H:P\n");
        return 2;
    }
    double c1, r1, k1, c2, r2, k2;
    int threads, threads2;
    long long t0 = now_ns();
    if (cycle(argv[1], &c1, &r1, &k1, &threads) || cycle(argv[1], &c2, &r2, &k2, &threads2)) return 1;
    long long t1 = now_ns();
    printf("{\"client\":\"nestc\",\"ok\":true,\"lib_init_us\":0,\"connect_us\":%.1f,\"request_us\":%.1f,"
           "\"close_us\":%.1f,\"connect2_us\":%.1f,\"request2_us\":%.1f,\"close2_us\":%.1f,\"lib_close_us\":0,"
           "\"total_us\":%.1f,\"threads_connected\":%d}\n",
           c1, r1, k1, c2, r2, k2, (t1 - t0) / 1e3, threads);
    return 0;
}
