/* The benchmark service written with the public nestc API only: the same four handlers as
 * bench/nest-server.mjs, as an application author would write them.
 *
 *   nestc-server [--port P] [--host H] [--workers N]      (P 0 = any free port)
 *   nestc-server --url redis://HOST:PORT                   (the same service over a Redis broker)
 *   nestc-server --url nats://HOST:PORT                    (the same service over a NATS server)
 *   nestc-server --url mqtt://HOST:PORT[?qos=1]            (the same service over an MQTT broker)
 *   nestc-server --url kafka://H:P[,H:P...] --topic-prefix T (over Kafka: the handlers also under the string
 *                                                            routes Tsum, Techo, Ttick, Tticks)
 *   ... --hooks N       installs N hook sets whose every server callback does nothing (the cost of hooks)
 *   ... --metrics       serves the admin endpoint on a free loopback port: the metrics hook set counts every
 *                       message (docs/observability.md, the cost of metrics)
 *   ... --trace         installs the tracing hook set (W3C trace context; spans exported only when
 *                       OTEL_EXPORTER_OTLP_ENDPOINT is set): the cost of tracing
 *
 * Over TCP it prints "listening on port N" once it accepts connections. With --url (any URL nc_server_new
 * takes; tcp:// URLs print the same line) it prints "connected to URL" once the server reports the status
 * "connected" (for redis://: both connections up and every channel's subscription confirmed; for nats://:
 * every handler's SUB confirmed by a PING round trip; for mqtt://: every handler's SUBSCRIBE acknowledged by
 * its SUBACK; for kafka://: the consumer's first partition assignment). Other status changes go to stderr.
 * SIGINT/SIGTERM close it gracefully.
 *
 * --topic-prefix T: Kafka routes are topics, and a topic cannot be named {"cmd":"sum"} (the transport leaves
 * such routes unsubscribed), so the same handlers are registered again under plain names. The prefix gives
 * each server of a benchmark run topics of its own, which it can read from the beginning without meeting
 * another server's requests.
 *
 *   {"cmd":"sum"}    array of numbers → their sum (JavaScript number semantics), read without a DOM
 *   {"cmd":"echo"}   anything → the same value, as text
 *   {"cmd":"sumDom"}, {"cmd":"echoDom"}   the same two with jansson values
 *   {"cmd":"tick"}   event: increments a counter
 *   {"cmd":"ticks"}  → the counter
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nestc/nestc.h>

/* With --workers N the handlers run on N threads at once. */
static atomic_llong ticks;

/* JavaScript addition: every number is a double. Integral sums within the exactly representable range
 * go back as integers so that they print as NestJS prints them ("6", not "6.0"). */
static json_t *js_sum_value(double s, int all_int) {
    if (all_int && s >= -9007199254740992.0 && s <= 9007199254740992.0) return json_integer((json_int_t)s);
    return json_real(s);
}

/* {"cmd":"sum"}: the payload read as text with the pull reader, no jansson value built (the way the README
 * recommends reading large payloads). */
static void on_sum(nc_request *req, const nc_msg *msg, void *user) {
    (void)user;
    size_t n;
    const char *text = nc_msg_data_json(msg, &n);
    nc_json_reader r;
    nc_json_reader_init(&r, text, n);
    double s = 0;
    int depth = 0;
    for (nc_json_tok t; (t = nc_json_next(&r)) != NC_JSON_END && t != NC_JSON_ERROR;) {
        if (t == NC_JSON_NUMBER && depth == 1)
            s += r.number;
        else if (t == NC_JSON_ARRAY_BEGIN || t == NC_JSON_OBJECT_BEGIN)
            depth++;
        else if (t == NC_JSON_ARRAY_END || t == NC_JSON_OBJECT_END)
            depth--;
    }
    nc_reply(req, json_real(s)); /* the writer prints integral doubles as JavaScript does: 6, not 6.0 */
}

/* {"cmd":"echo"}: the payload text straight back. */
static void on_echo(nc_request *req, const nc_msg *msg, void *user) {
    (void)user;
    size_t n;
    const char *text = nc_msg_data_json(msg, &n);
    nc_reply_json(req, text, n);
}

/* {"cmd":"sumDom"} and {"cmd":"echoDom"}: the same with jansson values (nc_msg_data), the plainest way to
 * write a handler; bench/run.sh measures both styles. */
static void on_sum_dom(nc_request *req, const nc_msg *msg, void *user) {
    (void)user;
    const json_t *data = nc_msg_data(msg);
    double s = 0;
    int all_int = 1;
    size_t i;
    json_t *v;
    if (json_is_array(data)) {
        json_array_foreach(data, i, v) {
            s += json_number_value(v);
            if (!json_is_integer(v)) all_int = 0;
        }
    }
    nc_reply(req, js_sum_value(s, all_int));
}

static void on_echo_dom(nc_request *req, const nc_msg *msg, void *user) {
    (void)user;
    nc_reply(req, json_incref(nc_msg_data(msg)));
}

static void on_tick(const nc_msg *msg, void *user) {
    (void)msg;
    (void)user;
    atomic_fetch_add_explicit(&ticks, 1, memory_order_relaxed);
}

static void on_ticks(nc_request *req, const nc_msg *msg, void *user) {
    (void)msg;
    (void)user;
    nc_reply(req, json_integer(atomic_load_explicit(&ticks, memory_order_relaxed)));
}

/* --hooks: every server hook point calls into a set that does nothing, to measure what hooks cost. */
static void noop_info(void *user, nc_hook_info *i) {
    (void)user;
    (void)i;
}
static int noop_before(void *user, nc_hook_info *i) {
    (void)user;
    (void)i;
    return 0;
}
static void noop_reply(void *user, nc_hook_info *i, nc_hook_reply kind, const char *json, size_t len,
                       int final) {
    (void)user;
    (void)i;
    (void)kind;
    (void)json;
    (void)len;
    (void) final;
}
static void noop_finish(void *user, nc_hook_info *i, int outcome) {
    (void)user;
    (void)i;
    (void)outcome;
}
static const nc_server_hooks noop_hooks = {
    .struct_size = sizeof(nc_server_hooks),
    .on_dispatch = noop_info,
    .before_handler = noop_before,
    .on_handler_start = noop_info,
    .on_handler_return = noop_info,
    .on_reply = noop_reply,
    .on_finish = noop_finish,
};

/* --topic-prefix: the handlers again under PREFIXsum, PREFIXecho, PREFIXtick, PREFIXticks. */
static int named_routes(nc_server *srv, const char *prefix) {
    char r[4][200];
    const char *names[4] = {"sum", "echo", "tick", "ticks"};
    for (int i = 0; i < 4; i++)
        if (snprintf(r[i], sizeof r[i], "%s%s", prefix, names[i]) >= (int)sizeof r[i]) return NC_EINVAL;
    int rc;
    if ((rc = nc_server_message(srv, r[0], on_sum, NULL)) ||
        (rc = nc_server_message(srv, r[1], on_echo, NULL)) ||
        (rc = nc_server_event(srv, r[2], on_tick, NULL)) ||
        (rc = nc_server_message(srv, r[3], on_ticks, NULL)))
        return rc;
    return 0;
}

static int usage(void) {
    fprintf(
        stderr,
        "usage: nestc-server [--port P] [--host H] [--workers N] [--hooks N] [--metrics] [--trace] | --url "
        "URL [--workers N] [--hooks N] [--metrics] [--trace] [--topic-prefix T]\n");
    return 2;
}

/* The harness waits for the "connected to" line: over a broker, requests published before the server's
 * subscriptions are confirmed would be lost. */
static void on_status(void *user, const char *status, int err) {
    const char *url = user;
    if (!strcmp(status, "connected")) {
        printf("connected to %s\n", url);
        fflush(stdout);
    } else {
        fprintf(stderr, "nestc-server: %s: %s%s%s\n", url, status, err ? ": " : "",
                err ? nc_strerror(err) : "");
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *given_url = NULL, *prefix = NULL;
    long port = 0, workers = 1, hooks = 0;
    int metrics = 0, trace = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--metrics")) {
            metrics = 1;
            continue;
        }
        if (!strcmp(argv[i], "--trace")) {
            trace = 1;
            continue;
        }
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--host")) {
            host = argv[++i];
        } else if (!strcmp(argv[i], "--port")) {
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 0 || port > 65535) return usage();
        } else if (!strcmp(argv[i], "--url")) {
            given_url = argv[++i];
        } else if (!strcmp(argv[i], "--topic-prefix")) {
            prefix = argv[++i];
        } else if (!strcmp(argv[i], "--hooks")) {
            hooks = strtol(argv[++i], &end, 10);
            if (*end || hooks < 0 || hooks > NC_HOOKS_MAX) return usage();
        } else if (!strcmp(argv[i], "--workers")) {
            workers = strtol(argv[++i], &end, 10);
            if (*end || workers < 1 || workers > 1024) return usage();
        } else {
            return usage();
        }
    }

    char url[300];
    if (given_url)
        snprintf(url, sizeof url, "%s", given_url);
    else
        snprintf(url, sizeof url, "tcp://%s:%ld", host, port);
    int tcp = !strncmp(url, "tcp://", 6);
    nc_server_opts opts = {.workers = (int)workers};
    if (metrics) opts.admin = "127.0.0.1:0";
    nc_server *srv;
    int rc = nc_server_new(&srv, url, &opts);
    if (rc) {
        fprintf(stderr, "nestc-server: %s: %s\n", url, nc_strerror(rc));
        return 1;
    }
    if ((rc = nc_server_message(srv, "{\"cmd\":\"sum\"}", on_sum, NULL)) ||
        (rc = nc_server_message(srv, "{\"cmd\":\"echo\"}", on_echo, NULL)) ||
        (rc = nc_server_message(srv, "{\"cmd\":\"sumDom\"}", on_sum_dom, NULL)) ||
        (rc = nc_server_message(srv, "{\"cmd\":\"echoDom\"}", on_echo_dom, NULL)) ||
        (rc = nc_server_event(srv, "{\"cmd\":\"tick\"}", on_tick, NULL)) ||
        (rc = nc_server_message(srv, "{\"cmd\":\"ticks\"}", on_ticks, NULL)) ||
        (rc = nc_server_handle_signals(srv)) || (prefix && (rc = named_routes(srv, prefix)))) {
        fprintf(stderr, "nestc-server: %s\n", nc_strerror(rc));
        nc_server_free(srv);
        return 1;
    }
    if (trace && (rc = nc_trace_enable_server(srv, NULL)) < 0) {
        fprintf(stderr, "nestc-server: --trace: %s\n", nc_strerror(rc));
        nc_server_free(srv);
        return 1;
    }
    for (long i = 0; i < hooks; i++) {
        if ((rc = nc_server_add_hooks(srv, &noop_hooks, NULL)) > 0) continue;
        fprintf(stderr, "nestc-server: %s\n", nc_strerror(rc));
        nc_server_free(srv);
        return 1;
    }
    if (!tcp) nc_server_on_status(srv, on_status, url);
    if ((rc = nc_server_listen(srv))) {
        fprintf(stderr, "nestc-server: %s\n", nc_strerror(rc));
        nc_server_free(srv);
        return 1;
    }
    /* The harness reads this line to learn the port; stdout may be a pipe, so flush it now. */
    if (tcp) {
        printf("listening on port %d\n", nc_server_port(srv));
        fflush(stdout);
    }
    rc = nc_server_run(srv);
    nc_server_free(srv);
    if (rc) {
        fprintf(stderr, "nestc-server: %s\n", nc_strerror(rc));
        return 1;
    }
    return 0;
}
