/* nestc bench — the load generator of DESIGN.md §5: reads the arguments, picks an engine (bench_raw.c or
 * bench_client.c), and prints the result as one JSON line. The measuring itself is in the engines and
 * bench_window.c; the documentation is docs/bench-cli.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "args.h"
#include "bench.h"
#include "codec/json_write.h"
#include "commands.h"
#include "core/route.h"

#define MAX_CONNECTIONS 100000
#define MAX_INFLIGHT 1000000
#define MAX_SLOTS 10000000 /* connections * inflight */

static void usage(FILE *f) {
    cli_usage(f, "bench");
    fputs("See docs/bench-cli.md for every field of the JSON line.\n", f);
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static long nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return -1;
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

static void print_per(FILE *f, const char *key, double total_s, uint64_t n) {
    if (n)
        fprintf(f, ",\"%s\":%.3f", key, total_s * 1e6 / (double)n);
    else
        fprintf(f, ",\"%s\":null", key);
}

static void print_result(const bench_cfg *cfg, const bench_stats *st, const char *engine) {
    double secs = (double)(st->t_close_ns - st->t_open_ns) / 1e9;
    double per_s = secs > 0 ? 1.0 / secs : 0;
    const bench_hist *h = &st->hist;
    uint64_t work = st->requests + st->events;
    FILE *f = stdout;
    fprintf(f, "{\"requests\":%llu,\"errors\":%llu,\"rps\":%.1f", (unsigned long long)st->requests,
            (unsigned long long)(st->errors + st->failures), (double)st->requests * per_s);
    fprintf(f, ",\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f", bench_hist_percentile(h, 50) / 1e3,
            bench_hist_percentile(h, 99) / 1e3, h->max / 1e3);
    fprintf(f, ",\"events\":%llu,\"eps\":%.1f", (unsigned long long)st->events, (double)st->events * per_s);
    fprintf(f, ",\"mb_per_s\":%.3f,\"bytes_out\":%llu,\"bytes_in\":%llu",
            (double)(st->bytes_out + st->bytes_in) * per_s / 1e6, (unsigned long long)st->bytes_out,
            (unsigned long long)st->bytes_in);
    fprintf(f, ",\"connections\":%d,\"inflight\":%d,\"duration_s\":%.3f,\"engine\":\"%s\"", cfg->connections,
            cfg->inflight, secs, engine);
    double self_s = st->cpu_close.self_s - st->cpu_open.self_s;
    print_per(f, "client_cpu_us_per_resp", self_s, work);
    if (st->server_pid > 0) {
        if (st->cpu_open.server_ok && st->cpu_close.server_ok) {
            double srv_s = st->cpu_close.server_s - st->cpu_open.server_s;
            fprintf(f, ",\"server_cpu_s\":%.3f", srv_s);
            print_per(f, "server_cpu_us_per_resp", srv_s, work);
        } else {
            fprintf(f, ",\"server_cpu_s\":null,\"server_cpu_us_per_resp\":null");
        }
    }
    fprintf(f, ",\"p90_us\":%.1f,\"p999_us\":%.1f,\"warmup_s\":%.3f,\"client_cpu_s\":%.3f",
            bench_hist_percentile(h, 90) / 1e3, bench_hist_percentile(h, 99.9) / 1e3, cfg->warmup_s, self_s);
    fprintf(f, ",\"error_replies\":%llu,\"failed\":%llu,\"events_per_request\":%d}\n",
            (unsigned long long)st->errors, (unsigned long long)st->failures, cfg->events);
    fflush(f);
}

/* A run in which no request succeeded is a failed run: say why on stderr. 1 when the server answered
 * every request with an error (as `send` exits 1 on an error reply), 2 when they failed locally. */
static int all_failed(const bench_stats *st) {
    if (st->requests > st->errors || (!st->errors && !st->failures)) return 0;
    if (st->errors) {
        fprintf(stderr,
                "nestc bench: every reply was an error reply (%llu error replies, %llu local failures)\n",
                (unsigned long long)st->errors, (unsigned long long)st->failures);
        return 1;
    }
    fprintf(stderr, "nestc bench: no request succeeded (%llu local failures: timeouts, lost connections)\n",
            (unsigned long long)st->failures);
    return 2;
}

/* Checks the arguments and fills what the engines need; returns 0 or 2 after a message. */
static int setup(cli_args *a, bench_cfg *cfg, const char **engine, json_t **owned) {
    if (a->npos < 2 || a->npos > 3) {
        if (a->npos) fprintf(stderr, "nestc bench: expected <url> <pattern> [data]\n");
        usage(stderr);
        return 2;
    }
    if (a->connections < 1 || a->connections > MAX_CONNECTIONS || a->inflight < 1 ||
        a->inflight > MAX_INFLIGHT || (long long)a->connections * a->inflight > MAX_SLOTS) {
        fprintf(stderr,
                "nestc bench: need 1 <= --connections <= %d, 1 <= --inflight <= %d and at most %d "
                "requests in flight in all\n",
                MAX_CONNECTIONS, MAX_INFLIGHT, MAX_SLOTS);
        return 2;
    }
    if (!(a->duration_s > 0)) {
        fprintf(stderr, "nestc bench: --duration must be above 0\n");
        return 2;
    }
    if ((a->events > 0) != (a->event_pattern != NULL) || (a->event_data && !a->event_pattern)) {
        fprintf(stderr,
                "nestc bench: --events K and --event-pattern EP go together (--event-data needs them)\n");
        return 2;
    }
    const char *url = a->pos[0];
    int is_tcp = !strncmp(url, "tcp://", 6);
    if (!a->engine) {
        *engine = is_tcp ? "raw" : "client";
    } else if (!strcmp(a->engine, "client")) {
        *engine = "client";
    } else if (!strcmp(a->engine, "raw")) {
        if (!strncmp(url, "tls://", 6)) fprintf(stderr, "nestc bench: tls:// uses the client engine\n");
        *engine = strncmp(url, "tls://", 6) ? "raw" : "client";
    } else {
        fprintf(stderr, "nestc bench: --engine is raw or client, not \"%s\"\n", a->engine);
        return 2;
    }
    if (cli_load_data(a, a->npos == 3 ? a->pos[2] : NULL, &owned[0])) return 2;
    if (!(owned[1] = nc_pattern_from_text(a->pos[1]))) return 2;
    cfg->url = url;
    cfg->data = owned[0];
    cfg->pattern = owned[1];
    if (a->event_pattern) {
        if (!(owned[2] = nc_pattern_from_text(a->event_pattern))) return 2;
        cfg->event_pattern = owned[2];
        cfg->event_data = owned[0];
        if (a->event_data) {
            char err[200];
            if (nc_json_parse(a->event_data, strlen(a->event_data), &owned[3], err, sizeof err)) {
                fprintf(stderr, "nestc bench: --event-data is not valid JSON: %s\n", err);
                return 2;
            }
            cfg->event_data = owned[3];
        }
    }
    static nc_option conn_opts[CLI_MAX_OPTS], call_opts[CLI_MAX_OPTS];
    if (cli_split_opts(a, url, NC_OPT_CLIENT, 1, conn_opts, &cfg->noptions, call_opts, &cfg->ncall_options))
        return 2;
    if ((cfg->noptions || cfg->ncall_options) && !strcmp(*engine, "raw")) {
        fprintf(stderr, "nestc bench: transport options need --engine client\n");
        return 2;
    }
    cfg->options = conn_opts;
    cfg->call_options = call_opts;
    cfg->metadata = a->metadata;
    cfg->events = a->events;
    cfg->connections = a->connections;
    cfg->inflight = a->inflight;
    cfg->warmup_s = a->warmup_s;
    cfg->duration_s = a->duration_s;
    cfg->timeout_ms = a->timeout_ms;
    cfg->connect_timeout_ms = a->connect_timeout_ms;
    int rc;
    cfg->tls = cli_client_tls(a, url, &rc);
    if (rc) return rc;
    cfg->verbose = a->verbose;
    return 0;
}

int cmd_bench(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, argc, argv, 2)) return 2; /* the message names the option */
    if (a.help) {
        usage(stdout);
        cli_args_free(&a);
        return 0;
    }
    nc_log_set_default(NULL, NULL, a.verbose ? NC_LOG_DEBUG : NC_LOG_OFF);
    bench_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *engine = "raw";
    json_t *owned[4] = {NULL, NULL, NULL, NULL};
    int rc = setup(&a, &cfg, &engine, owned);
    static bench_stats st; /* the histogram is large */
    memset(&st, 0, sizeof st);
    st.server_pid = a.server_pid;
    double cpu;
    if (!rc && a.server_pid > 0 && bench_proc_cpu(a.server_pid, &cpu)) {
        fprintf(stderr, "nestc bench: cannot read the CPU time of process %d (/proc/%d/stat)\n", a.server_pid,
                a.server_pid);
        rc = 2;
    }
    if (!rc) {
        /* no SIGPIPE handling: the raw engine sends with MSG_NOSIGNAL and the library never raises it */
        raise_nofile();
        long lim = nofile_limit();
        if (lim >= 0 && lim < (long)cfg.connections + 32) {
            fprintf(stderr, "nestc bench: %d connections need more open files than the limit (%ld)\n",
                    cfg.connections, lim);
            rc = 2;
        }
    }
    if (!rc) {
        rc = !strcmp(engine, "raw") ? bench_run_raw(&cfg, &st) : bench_run_client(&cfg, &st);
        if (!rc) {
            print_result(&cfg, &st, engine);
            rc = all_failed(&st);
        }
    }
    for (int i = 0; i < 4; i++) json_decref(owned[i]);
    cli_args_free(&a);
    return rc;
}
