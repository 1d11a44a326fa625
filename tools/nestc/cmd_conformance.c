/* nestc conformance — the conformance service of DESIGN.md §4, served on any transport. Every handler is
 * registered twice: under {"cmd":"<name>"} and under the plain string <name>. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "args.h"
#include "commands.h"
#include "codec/json_build.h"
#include "core/route.h"

/* ---- request handlers ---------------------------------------------------------------------------- */

static json_t *sum_of(const json_t *data) {
    /* JavaScript semantics: numbers add as doubles; the writer prints integral doubles without ".0". */
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
    if (!isfinite(s)) return json_null(); /* JSON.stringify writes Infinity and NaN as null */
    if (all_int && s >= -9007199254740992.0 && s <= 9007199254740992.0) return json_integer((json_int_t)s);
    return json_real(s);
}

static void h_sum(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, sum_of(nc_msg_data(m)));
}

typedef struct later {
    uv_timer_t timer;
    nc_request *req;
    json_t *value;
} later;

static void later_closed(uv_handle_t *h) {
    free(h->data);
}

static void later_fire(uv_timer_t *t) {
    later *l = t->data;
    nc_reply(l->req, l->value); /* stolen */
    uv_close((uv_handle_t *)&l->timer, later_closed);
}

/* The caller left or the server's shutdown deadline passed: stop the timer (it would keep the loop, and
 * the process, alive for up to an hour) and release the request; its reply goes nowhere. */
static void later_cancel(nc_request *req, void *arg) {
    later *l = arg;
    uv_timer_stop(&l->timer);
    json_decref(l->value);
    uv_close((uv_handle_t *)&l->timer, later_closed);
    nc_reply_end(req);
}

/* Replies `value` after `ms` from the loop, never inside the handler call. */
static void reply_later(nc_request *req, json_t *value, uint64_t ms, void *loop) {
    later *l = malloc(sizeof *l);
    if (!l) {
        json_decref(value);
        nc_reply_error_msg(req, "out of memory");
        return;
    }
    l->req = req;
    l->value = value;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, later_fire, ms, 0);
    nc_request_on_cancel(req, later_cancel, l);
}

static void h_async_sum(nc_request *req, const nc_msg *m, void *u) {
    reply_later(req, sum_of(nc_msg_data(m)), 0, nc_request_loop(req));
}

static void h_stream_sum(nc_request *req, const nc_msg *m, void *u) {
    nc_reply_next(req, sum_of(nc_msg_data(m)));
    nc_reply_end(req);
}

static void h_streaming(nc_request *req, const nc_msg *m, void *u) {
    json_t *data = nc_msg_data(m);
    size_t i;
    json_t *v;
    if (json_is_array(data)) json_array_foreach(data, i, v) nc_reply_next(req, json_incref(v));
    nc_reply_end(req);
}

static void h_exception(nc_request *req, const nc_msg *m, void *u) {
    /* RpcException(data): an object or an array (JavaScript objects both) is the error itself, anything
     * else becomes {status, message}. */
    json_t *data = nc_msg_data(m);
    if (json_is_object(data) || json_is_array(data))
        nc_reply_error(req, json_incref(data));
    else
        nc_reply_error(req, json_pack("{s:s,s:O}", "status", "error", "message", data));
}

static void h_echo(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_incref(nc_msg_data(m)));
}

static void h_sleep(nc_request *req, const nc_msg *m, void *u) {
    json_t *data = nc_msg_data(m);
    double ms = json_number_value(data);
    /* Kafka delivers scalars as strings (its KafkaParser): "100" */
    if (json_is_string(data)) ms = strtod(json_string_value(data), NULL);
    if (ms < 0) ms = 0;
    if (ms > 3600000) ms = 3600000;
    reply_later(req, json_incref(data), (uint64_t)ms, nc_request_loop(req));
}

static void h_context(nc_request *req, const nc_msg *m, void *u) {
    json_t *o = json_object();
    json_object_set_new(o, "transport", json_string(nc_msg_transport(m)));
    /* peer text: a route may hold a lone surrogate as WTF-8, which json_string() refuses */
    const char *route = nc_msg_route(m), *ch = nc_msg_channel(m);
    json_object_set_new(o, "pattern", nc_json_string_js(route, strlen(route), 1));
    if (ch) json_object_set_new(o, "channel", nc_json_string_js(ch, strlen(ch), 1));
    /* AMQP: NestJS clients always send a headers table, often empty; the service reports none then, as the
     * NestJS conformance service does (absent when empty, DESIGN §5b) */
    json_t *hdrs = nc_msg_headers(m);
    int amqp = strncmp(nc_msg_transport(m), "amqp", 4) == 0;
    if (hdrs && !(amqp && json_object_size(hdrs) == 0)) json_object_set(o, "headers", hdrs);
    if (nc_msg_metadata(m)) json_object_set(o, "metadata", nc_msg_metadata(m));
    if (!strcmp(nc_msg_transport(m), "kafka")) { /* DESIGN §5b: the record key; not `key` (kafka.md §4) */
        size_t kn;
        const char *k = nc_msg_ctx_str(m, NC_CTX_KEY, &kn);
        json_object_set_new(o, "messageKey", k ? nc_json_string_js(k, kn, 0) : json_null());
    }
    nc_reply(req, o);
}

/* Extension (DESIGN.md §4): the message's properties from its transport context, under amqplib's names, so a
 * RabbitMQ request's reply reads like a NestJS handler's ctx.getMessage().properties: the RmqRecord options
 * a client sent (absent ones left out; `timestamp` in seconds as AMQP has it, `headers` the table). Other
 * transports report the same keys they fill (MQTT 5: contentType, messageId). */
static void h_properties(nc_request *req, const nc_msg *m, void *u) {
    static const struct {
        nc_ctx_key key;
        const char *name;
    } strs[] =
        {
            {NC_CTX_CONTENT_TYPE, "contentType"},
            {NC_CTX_CONTENT_ENCODING, "contentEncoding"},
            {NC_CTX_CORRELATION_ID, "correlationId"},
            {NC_CTX_REPLY_TO, "replyTo"},
            {NC_CTX_EXPIRATION, "expiration"},
            {NC_CTX_MESSAGE_ID, "messageId"},
            {NC_CTX_TYPE, "type"},
            {NC_CTX_USER_ID, "userId"},
            {NC_CTX_APP_ID, "appId"},
        },
      nums[] = {
          {NC_CTX_DELIVERY_MODE, "deliveryMode"},
          {NC_CTX_PRIORITY, "priority"},
      };
    json_t *o = json_object();
    size_t n;
    const char *v;
    int64_t x;
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if ((v = nc_msg_ctx_str(m, strs[i].key, &n)))
            json_object_set_new(o, strs[i].name, nc_json_string_js(v, n, 1));
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++)
        if (!nc_msg_ctx_int(m, nums[i].key, &x)) json_object_set_new(o, nums[i].name, json_integer(x));
    if (!strncmp(nc_msg_transport(m), "amqp", 4) && !nc_msg_ctx_int(m, NC_CTX_TIMESTAMP_MS, &x))
        json_object_set_new(o, "timestamp", json_integer(x / 1000));
    json_t *hdrs = nc_msg_headers(m);
    if (hdrs) json_object_set(o, "headers", hdrs);
    nc_reply(req, o);
}

/* ---- events -------------------------------------------------------------------------------------- */

/* Per event route: an exact count and the most recent payloads (a ring of at most events_history), so a
 * benchmark pointed at this service does not grow it without bound. */
typedef struct ev_log {
    struct ev_log *next;
    char *route;
    long long count;
    json_t **ring;
    size_t cap, start, len; /* ring[(start + i) % cap], i < len, oldest first */
} ev_log;

static ev_log *ev_logs;
static size_t events_history = 1000; /* --events-history */
static uv_mutex_t events_lock;       /* with --workers, event handlers run on several threads */

static ev_log *ev_find(const char *route) {
    for (ev_log *l = ev_logs; l; l = l->next)
        if (!strcmp(l->route, route)) return l;
    return NULL;
}

static void ev_record(ev_log *l, json_t *data) {
    if (!events_history) return;
    if (l->len == l->cap && l->cap < events_history) { /* grow (and straighten) until the limit */
        size_t cap = l->cap ? l->cap * 2 : 16;
        if (cap > events_history) cap = events_history;
        json_t **r = malloc(cap * sizeof *r);
        if (!r) return;
        for (size_t i = 0; i < l->len; i++) r[i] = l->ring[(l->start + i) % l->cap];
        free(l->ring);
        l->ring = r, l->cap = cap, l->start = 0;
    }
    if (l->len < l->cap) {
        l->ring[(l->start + l->len++) % l->cap] = json_incref(data);
    } else { /* full: the oldest goes */
        json_decref(l->ring[l->start]);
        l->ring[l->start] = json_incref(data);
        l->start = (l->start + 1) % l->cap;
    }
}

static void count_event(const nc_msg *m, int record) {
    const char *route = nc_msg_route(m);
    uv_mutex_lock(&events_lock);
    ev_log *l = ev_find(route);
    if (!l && (l = calloc(1, sizeof *l))) { /* routes with an event handler only: a bounded set */
        if ((l->route = strdup(route))) {
            l->next = ev_logs;
            ev_logs = l;
        } else {
            free(l);
            l = NULL;
        }
    }
    if (l) {
        l->count++;
        if (record) ev_record(l, nc_msg_data(m));
    }
    uv_mutex_unlock(&events_lock);
}

static void ev_logs_free(void) {
    while (ev_logs) {
        ev_log *l = ev_logs;
        ev_logs = l->next;
        for (size_t i = 0; i < l->len; i++) json_decref(l->ring[(l->start + i) % l->cap]);
        free(l->ring);
        free(l->route);
        free(l);
    }
}

static void ev_first(const nc_msg *m, void *u) {
    count_event(m, 1);
}
static void ev_second(const nc_msg *m, void *u) {
    count_event(m, 0);
}

static void h_events(nc_request *req, const nc_msg *m, void *u) {
    json_t *data = nc_msg_data(m);
    char *route = NULL;
    if (!json_is_string(data) || nc_route_from_user(json_string_value(data), &route)) {
        nc_reply_error_msg(req, "events expects an event pattern string");
        return;
    }
    json_t *payloads = json_array();
    long long count = 0;
    uv_mutex_lock(&events_lock);
    ev_log *l = ev_find(route); /* a query never creates a log: only events do */
    if (l) {
        count = l->count;
        for (size_t i = 0; i < l->len; i++) json_array_append(payloads, l->ring[(l->start + i) % l->cap]);
    }
    uv_mutex_unlock(&events_lock);
    free(route);
    nc_reply(req, json_pack("{s:I,s:o}", "count", (json_int_t)count, "payloads", payloads));
}

/* ---- registration -------------------------------------------------------------------------------- */

static void both_message(nc_server *s, const char *name, nc_request_fn fn, void *user) {
    char obj[128];
    snprintf(obj, sizeof obj, "{\"cmd\":\"%s\"}", name);
    nc_server_message(s, obj, fn, user);
    nc_server_message(s, name, fn, user);
}

static void both_event(nc_server *s, const char *name, nc_event_fn fn) {
    char obj[128];
    snprintf(obj, sizeof obj, "{\"cmd\":\"%s\"}", name);
    nc_server_event(s, obj, fn, NULL);
    nc_server_event(s, name, fn, NULL);
}

static void usage(FILE *f) {
    cli_usage(f, "conformance");
}

/* command line: not given → the default (0 in the API), 0 → off, n → n */
static long long cli_limit(long long v) {
    return v == -2 ? 0 : v == 0 ? NC_LIMIT_OFF : v;
}

static const char *serving_url;
static int start_failed;

/* The readiness line scripts wait for: a port for listening transports; for brokers, the URL once every
 * subscription is confirmed. Later status changes (a broker restart) are logged on stderr. A broker that
 * refuses the server before it is ready (a wrong password, every subscription refused) ends it: exit 2. */
static void on_status(void *user, const char *status, int err) {
    nc_server *s = user;
    static int ready;
    if (!strcmp(status, "disconnected") && err && !ready && !start_failed) {
        start_failed = 1;
        fprintf(stderr, "nestc: cannot serve %s: %s\n", serving_url, nc_strerror(err));
        nc_server_close(s, NULL, NULL);
    } else if (!strcmp(status, "connected") && !ready) {
        ready = 1;
        if (nc_server_port(s) > 0)
            printf("nestc conformance listening on port %d\n", nc_server_port(s));
        else
            printf("nestc conformance listening on %s\n", serving_url);
        if (nc_server_admin_port(s) > 0)
            printf("nestc conformance admin on port %d\n", nc_server_admin_port(s));
        fflush(stdout);
    } else if (ready) {
        fprintf(stderr, "nestc conformance: %s%s%s\n", status, err ? ": " : "", err ? nc_strerror(err) : "");
    }
}

int cmd_conformance(int argc, char **argv) {
    cli_args a;
    if (cli_parse(&a, argc, argv, 2)) return 2; /* the message names the option */
    if (a.help) {
        usage(stdout);
        cli_args_free(&a);
        return 0;
    }
    if (a.npos != 1) {
        fprintf(stderr, "nestc conformance: expected <url>\n");
        usage(stderr);
        cli_args_free(&a);
        return 2;
    }
    cli_setup_logging(&a);
    nc_option opts[CLI_MAX_OPTS];
    size_t nopts;
    if (cli_split_opts(&a, a.pos[0], NC_OPT_SERVER, 0, opts, &nopts, NULL, NULL)) {
        cli_args_free(&a);
        return 2;
    }
    char scheme[16];
    int grpc = !strcmp(cli_scheme_of(a.pos[0], scheme, sizeof scheme), "grpc");
    /* gRPC: conformance.proto is read as the NestJS reference loads it (keepCase: true) */
    if (grpc && nopts < CLI_MAX_OPTS) {
        int given = 0;
        for (size_t i = 0; i < nopts; i++) given |= !strcmp(opts[i].name, "keepCase");
        if (!given) opts[nopts++] = (nc_option){"keepCase", "true"};
    }
    nc_server_opts so = {0};
    so.options = opts;
    so.noptions = nopts;
    so.tls = a.has_tls ? &a.tls : NULL;
    /* 0 on the command line means "off", as in NestJS; the API uses NC_LIMIT_OFF for that */
    so.max_buffer_size = cli_limit(a.max_buffer_size);
    so.max_send_buffer_size = cli_limit(a.max_send_buffer_size);
    so.incomplete_message_timeout_ms = (int)cli_limit(a.incomplete_timeout_ms);
    so.shutdown_timeout_ms = (int)cli_limit(a.shutdown_timeout_ms);
    so.handshake_timeout_ms = (int)cli_limit(a.handshake_timeout_ms);
    so.workers = a.workers;
    so.admin = a.admin;
    nc_server *s;
    int r = nc_server_new(&s, a.pos[0], &so);
    if (r) {
        fprintf(stderr, "nestc: cannot serve %s: %s\n", a.pos[0], cli_reason(r));
        cli_args_free(&a);
        return 2;
    }
    if (a.trace && (r = nc_trace_enable_server(s, NULL)) < 0) {
        fprintf(stderr, "nestc: --trace: %s\n", cli_reason(r));
        nc_server_free(s);
        cli_args_free(&a);
        return 2;
    }
    /* --max-in-flight: the library's server bulkhead, before run (every worker shares it) */
    if (a.max_in_flight > 0) {
        nc_bulkhead_opts bo = {.struct_size = sizeof bo, .max_in_flight = a.max_in_flight};
        if ((r = nc_server_use_bulkhead(s, &bo, NULL)) < 0) {
            fprintf(stderr, "nestc: --max-in-flight: %s\n", cli_reason(r));
            nc_server_free(s);
            cli_args_free(&a);
            return 2;
        }
    }
    /* --rate-limit N[/BURST]: the library's server rate limiter, shared by every worker like the bulkhead */
    if (a.rate_limit) {
        nc_rate_limit_opts ro = {.struct_size = sizeof ro};
        char *end;
        ro.rate = strtod(a.rate_limit, &end);
        if (*end == '/') {
            char *e2;
            long b = strtol(end + 1, &e2, 10);
            ro.burst = end[1] && !*e2 && b > 0 && b <= 10000000 ? (int)b : -1;
            end = e2;
        }
        if (*end || end == a.rate_limit || ro.burst < 0 || (r = nc_server_use_rate_limit(s, &ro, NULL)) < 0) {
            fprintf(stderr,
                    "nestc: --rate-limit %s: expected N[/BURST], N a rate a second (0.001 to 1e9), "
                    "BURST a whole number from 1\n",
                    a.rate_limit);
            nc_server_free(s);
            cli_args_free(&a);
            return 2;
        }
    }
    if (a.events_history != -2) events_history = (size_t)a.events_history;
    uv_mutex_init(&events_lock);
    if (grpc) { /* no pattern envelope on gRPC: the conformance.proto service instead (DESIGN.md §5a) */
        conformance_grpc_register(s);
        goto serve;
    }
    both_message(s, "sum", h_sum, NULL);
    both_message(s, "asyncSum", h_async_sum, NULL);
    both_message(s, "streamSum", h_stream_sum, NULL);
    both_message(s, "streaming", h_streaming, NULL);
    both_message(s, "exception", h_exception, NULL);
    both_message(s, "echo", h_echo, NULL);
    both_message(s, "sleep", h_sleep, NULL);
    both_message(s, "context", h_context, NULL);
    both_message(s, "events", h_events, NULL);
    /* extension: the message's properties (RabbitMQ only, as the NestJS service registers it) */
    if (!strncmp(a.pos[0], "amqp", 4)) both_message(s, "properties", h_properties, NULL);
    /* extension for broker wildcards (DESIGN.md §4): a Redis glob / NATS-style subject; elsewhere it is a
     * plain literal route. Replies like `context`, so the matched glob and the concrete channel show. */
    nc_server_message(s, "sensors.*", h_context, NULL);
    nc_server_message(s, "alerts.>", h_context, NULL); /* NATS's full wildcard */
    /* MQTT filters (DESIGN.md §5b): one level and the rest. `alerts/#` also receives this server's own
     * replies (`alerts/x/reply`); having an `id` but no `pattern`, they are dispatched as events (as NestJS
     * does), so they are never answered. Elsewhere literal routes. */
    nc_server_message(s, "sensors/+/temp", h_context, NULL);
    nc_server_message(s, "alerts/#", h_context, NULL);
    both_event(s, "notification", ev_first);
    both_event(s, "notification", ev_second);
    both_event(s, "user_created", ev_first);
serve:
    serving_url = a.pos[0];
    nc_server_on_status(s, on_status, s);
    nc_server_handle_signals(s);
    r = nc_server_run(s);
    if (r) fprintf(stderr, "nestc: cannot listen on %s: %s\n", a.pos[0], cli_reason(r));
    nc_server_free(s);
    ev_logs_free();
    uv_mutex_destroy(&events_lock);
    cli_args_free(&a);
    return r || start_failed ? 2 : 0;
}
