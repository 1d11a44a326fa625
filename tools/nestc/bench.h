/* nestc bench: what the command (cmd_bench.c) hands to its two engines and what they hand back.
 *
 * The engines (bench_raw.c: epoll and pre-encoded frames; bench_client.c: the nestc client library) share
 * one contract: connect every connection, run traffic through a warmup, open the counting window
 * (bench_window_open), count into bench_stats while st->counting, close it (bench_window_close), then
 * drain what is still in flight. Everything else (arguments, CPU accounting, the JSON line) lives in
 * cmd_bench.c and bench_window.c. */
#ifndef NESTC_CLI_BENCH_H
#define NESTC_CLI_BENCH_H

#include <stdint.h>

#include <jansson.h>

#include "bench_hist.h"
#include "nestc/nestc.h"

typedef struct bench_cfg {
    const char *url;
    const json_t *pattern;       /* the request pattern value, as `nestc send` reads it */
    const json_t *data;          /* the request data */
    const json_t *event_pattern; /* the event pattern value, NULL when events == 0 */
    const json_t *event_data;    /* the event data */
    const json_t *metadata;      /* --metadata object or NULL */
    const nc_option *options;    /* --opt: the client's transport options (client engine) */
    size_t noptions;
    const nc_option *call_options; /* --opt: those the transport takes per call */
    size_t ncall_options;
    int events; /* events sent before each request on the same connection */
    int connections, inflight;
    double warmup_s, duration_s;
    int timeout_ms;         /* client engine: per-request timeout, 0 = none */
    int connect_timeout_ms; /* client engine: --connect-timeout, 0 = not given */
    const nc_tls_opts *tls;
    int verbose;
} bench_cfg;

/* CPU time at one edge of the window. */
typedef struct bench_cpu {
    double self_s;   /* getrusage(RUSAGE_SELF) user + system */
    double server_s; /* /proc/<pid>/stat utime + stime */
    int server_ok;   /* server_s could be read */
} bench_cpu;

typedef struct bench_stats {
    /* counted only while `counting` (the window) */
    uint64_t requests;  /* requests completed with a final packet (error replies included) */
    uint64_t errors;    /* error replies */
    uint64_t events;    /* events proven handled: K per counted request */
    uint64_t bytes_out; /* bytes written to the sockets */
    uint64_t bytes_in;  /* bytes read from the sockets */
    bench_hist hist;    /* latency of the counted requests, ns */
    /* counted during the whole run, never reset */
    uint64_t failures; /* requests that failed locally: connection lost, timed out, unanswered at the end */
    int counting;
    int opened, closed;
    uint64_t t_open_ns, t_close_ns;
    int server_pid; /* 0 = none */
    bench_cpu cpu_open, cpu_close;
} bench_stats;

/* Monotonic clock in nanoseconds. */
uint64_t bench_now_ns(void);

/* Opens the counting window at `now`: resets the counters and takes the CPU snapshot. */
void bench_window_open(bench_stats *st, uint64_t now);
/* Closes it at `now` (opening an empty one first if it never opened): takes the second CPU snapshot and
 * stops counting. */
void bench_window_close(bench_stats *st, uint64_t now);
/* Reads the CPU time used so far by process `pid` (all its threads). Returns 0 or -1. */
int bench_proc_cpu(int pid, double *seconds);

/* The engines. Return 0 when the run happened (errors are in `st`), 2 when they could not start (bad URL,
 * cannot connect: a message is printed on stderr). */
int bench_run_raw(const bench_cfg *cfg, bench_stats *st);
int bench_run_client(const bench_cfg *cfg, bench_stats *st);

#endif
