/* Connection settings and topology of an AMQP URL and the options, shared by the server and the client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/fail.h"
#include "nestc/error.h"
#include "transport/amqp/amqp.h"

/* NestJS RmqOptions names; queueOptions flattened (durable, exclusive, autoDelete), socketOptions'
 * heartbeatIntervalInSeconds as amqplib's URL parameter `heartbeat`. */
const nc_option_spec nc_amqp_options[] = {
    {.name = "queue",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "the work queue (NestJS queue; empty: a server consumes a server-named queue)",
     .def = ""},
    {.name = "durable",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queue.declare durable (NestJS queueOptions.durable; amqplib's default true)",
     .def = "true"},
    {.name = "exclusive",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queue.declare exclusive (queueOptions.exclusive)",
     .def = "false"},
    {.name = "autoDelete",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queue.declare auto-delete (queueOptions.autoDelete)",
     .def = "false"},
    {.name = "noAssert",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "do not declare the queue (NestJS noAssert / queueOptions.noAssert): it must exist",
     .def = "false"},
    {.name = "prefetchCount",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "basic.qos prefetch count: unacknowledged messages the broker sends before waiting (noAck "
             "false); 0 = no limit",
     .def = "0",
     .min = 0,
     .max = 65535},
    {.name = "isGlobalPrefetchCount",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "basic.qos global flag",
     .def = "false"},
    {.name = "noAck",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "server: consume without acknowledgements (NestJS default true); false: each message is "
             "acknowledged when settled (ack, nack, reject)",
     .def = "true"},
    {.name = "consumerTag",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER,
     .help = "the server's consumer tag (default: the broker's)"},
    {.name = "replyQueue",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_CLIENT,
     .help = "where replies come: the direct reply-to pseudo-queue (default) or an existing queue",
     .def = NC_AMQP_REPLY_TO},
    {.name = "persistent",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "publish requests and events with delivery mode 2 (persistent) instead of 1",
     .def = "false"},
    {.name = "heartbeat",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "heartbeat in seconds asked for in tune-ok (socketOptions.heartbeatIntervalInSeconds, "
             "amqp-connection-manager's default 5); the connection is lost after two silent periods; 0 = off",
     .def = "5",
     .min = 0,
     .max = 65535},
    {.name = "frameMax",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "largest frame asked for in tune-ok (the smaller of this and the broker's is used)",
     .def = "131072",
     .min = 4096,
     .max = 16777216},
    {.name = "maxConnectionAttempts",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "connection attempts before giving up (NestJS maxConnectionAttempts); -1 = unlimited, else "
             "it overrides retry_attempts",
     .def = "-1",
     .min = -1,
     .max = 1000000000},
    {.name = "wildcards",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "topic exchange mode (NestJS wildcards): the server binds its queue to `exchange` with every "
             "handler route, the client publishes to `exchange` with the pattern as routing key"},
    {.name = "exchange",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "the exchange (default: the queue's name): with wildcards or exchangeType fanout, else a server "
             "with it declares it and binds its queue (routingKey)"},
    {.name = "exchangeType",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "the exchange's type (default topic); fanout: the server binds its queue with an empty key, "
             "the client publishes to the exchange"},
    {.name = "routingKey",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "a binding key of the queue on `exchange` (server, with exchange or wildcards; client in "
             "default mode, with exchange)"},
    {.name = "connectTimeout",
     .type = NC_OPT_DURATION,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "ms to wait for the connection to be open (TCP, TLS, the AMQP handshake and the channel)"},
    /* SASL EXTERNAL (amqplib's credentials.external()); no NestJS name: RmqOptions passes amqplib's
     * socketOptions.credentials through */
    {.name = "authMechanism",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "SASL mechanism: PLAIN (the URL's user and password, default) or EXTERNAL (amqps:// with a "
             "client certificate, which names the user)",
     .def = "PLAIN"},
    /* ---- queue and exchange arguments (amqplib's assertQueue/assertExchange options) ---- */
    {.name = "messageTtl",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queueOptions.messageTtl: x-message-ttl of the queue declared, in ms",
     .min = 0,
     .max = 4294967295LL},
    {.name = "expires",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queueOptions.expires: x-expires (ms unused before the broker deletes the queue)",
     .min = 1,
     .max = 4294967295LL},
    {.name = "deadLetterExchange",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queueOptions.deadLetterExchange: x-dead-letter-exchange (where rejected, expired or over-limit "
             "messages go)"},
    {.name = "deadLetterRoutingKey",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queueOptions.deadLetterRoutingKey: x-dead-letter-routing-key"},
    {.name = "maxLength",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queueOptions.maxLength: x-max-length (messages)",
     .min = 0,
     .max = 4294967295LL},
    {.name = "maxPriority",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queueOptions.maxPriority: x-max-priority",
     .min = 0,
     .max = 255},
    {.name = "queueArguments",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "queueOptions.arguments as a JSON object, e.g. {\"x-queue-type\":\"quorum\"}; the named options "
             "above override its keys (amqplib)"},
    {.name = "exchangeArguments",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "the exchange declare's arguments as a JSON object (NestJS exchangeArguments)"},
    {.name = "maxDeliveries",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_HANDLER,
     .help = "noAck false: deliveries of one message before it is dead-lettered: its last nack with requeue "
             "becomes a reject, a delivery past it is rejected unseen (count: x-delivery-count of quorum "
             "queues, else x-death); 0 = no limit",
     .def = "0",
     .min = 0,
     .max = 1000000000},
    /* Message properties of a publish (NestJS RmqRecord options, amqplib's publish option names): per call,
     * or client-wide where one value for every message makes sense; a call's value wins. `persistent`
     * above is per call too. */
    {.name = "priority",
     .type = NC_OPT_INT,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "the message's priority property (queues declared with x-max-priority deliver higher first)",
     .min = 0,
     .max = 255},
    {.name = "expiration",
     .type = NC_OPT_DURATION,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "per-message TTL in ms (the expiration property, sent as its decimal text)",
     .min = 0,
     .max = 4294967295LL},
    {.name = "messageId",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_CALL,
     .help = "the message-id property (at most 255 bytes)"},
    {.name = "timestamp",
     .type = NC_OPT_INT,
     .levels = NC_OPT_CALL,
     .help = "the timestamp property, seconds since the epoch",
     .min = 0,
     .max = 9007199254740991LL},
    {.name = "type",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "the type property (at most 255 bytes)"},
    {.name = "contentType",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "the content-type property (at most 255 bytes; NestJS sends none)"},
    {.name = "contentEncoding",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "the content-encoding property (at most 255 bytes)"},
    {.name = "appId",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "the app-id property (at most 255 bytes)"},
    {.name = "userId",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "the user-id property: RabbitMQ closes the channel (406) unless it is the connection's user"},
    {.name = NULL},
};

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The vhost of a URL path: "" or "/" is "/", else the rest after the slash, %xx decoded (amqplib). */
static char *vhost_of(const char *path) {
    if (!path[0] || !strcmp(path, "/")) return strdup("/");
    const char *s = path + 1;
    char *v = malloc(strlen(s) + 1), *o = v;
    if (!v) return NULL;
    for (; *s; s++) {
        int h, l;
        if (*s == '%' && (h = hexval(s[1])) >= 0 && (l = hexval(s[2])) >= 0) {
            *o++ = (char)(h * 16 + l);
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return v;
}

static int dup_opt(char **dst, const nc_optset *opts, const char *name) {
    const char *s = nc_opts_str(opts, name);
    if (!s) return 0;
    return (*dst = strdup(s)) ? 0 : NC_ENOMEM;
}

static const char oom[] = "out of memory";

/* One entry of the authority's host list: host, [v6] or either with :port. Returns NULL or why not. */
static const char *host_entry(const char *e, size_t n, int def_port, char **host, int *port) {
    const char *hend = e + n, *rest;
    if (n && *e == '[') {
        const char *rb = memchr(e, ']', n);
        if (!rb) return "unterminated IPv6 address";
        *host = malloc((size_t)(rb - e));
        if (*host) snprintf(*host, (size_t)(rb - e), "%.*s", (int)(rb - e - 1), e + 1);
        rest = rb + 1;
    } else {
        const char *colon = memchr(e, ':', n);
        rest = colon ? colon : hend;
        *host = malloc((size_t)(rest - e) + 1);
        if (*host) snprintf(*host, (size_t)(rest - e) + 1, "%.*s", (int)(rest - e), e);
    }
    if (!*host) return oom;
    if (!**host) return "an empty host in the list";
    *port = def_port;
    if (rest == hend) return NULL;
    if (*rest != ':' || rest + 1 == hend) return "invalid port in the host list";
    long v = 0;
    for (const char *q = rest + 1; q < hend; q++) {
        if (*q < '0' || *q > '9' || (v = v * 10 + (*q - '0')) > 65535) return "invalid port in the host list";
    }
    if (v == 0) return "port 0 in the host list";
    *port = (int)v;
    return NULL;
}

static int host_list(nc_amqp_target *t, const nc_url *url, int def_port, const nc_logger *log,
                     const char *component) {
    int n = 1;
    for (const char *q = url->hosts; *q; q++) n += *q == ',';
    if (!(t->hosts = calloc((size_t)n, sizeof *t->hosts)) ||
        !(t->ports = calloc((size_t)n, sizeof *t->ports)))
        return NC_ENOMEM;
    t->nhosts = n;
    const char *e = url->hosts;
    for (int i = 0; i < n; i++) {
        size_t len = strcspn(e, ",");
        const char *why = host_entry(e, len, def_port, &t->hosts[i], &t->ports[i]);
        if (why == oom) return NC_ENOMEM;
        if (why) return nc_fail(log, component, NC_EINVAL, "invalid URL \"%s\": %s", url->text, why);
        e += len + (e[len] == ',');
    }
    return 0;
}

int nc_amqp_target_next(nc_amqp_target *t) {
    if (!t->nhosts) return 0;
    int i = t->next_host;
    t->next_host = (i + 1) % t->nhosts;
    char *h = strdup(t->hosts[i]);
    if (h) { /* out of memory: the owner's log lines name the last broker */
        free(t->b.host);
        t->b.host = h;
    }
    t->b.port = t->ports[i];
    return i;
}

/* A JSON object option (queueArguments, exchangeArguments), or NULL when not given. */
static int json_object_opt(const nc_optset *opts, const char *name, json_t **out, const nc_logger *log,
                           const char *component) {
    *out = NULL;
    const char *s = nc_opts_str(opts, name);
    if (!s) return 0;
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    if (!json_is_object(v)) {
        json_decref(v);
        return nc_fail(log, component, NC_EINVAL, "option %s: not a JSON object (%s)", name,
                       v ? "another JSON value" : e.text);
    }
    /* JSON.parse gives 3 for 3.0, and amqplib sends whole numbers below 2^63 as integers */
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        double d = json_is_real(x) ? json_real_value(x) : 0.5;
        if (d == (double)(long long)d && d > -9.2e18 && d < 9.2e18)
            json_object_set_new(v, k, json_integer((long long)d));
    }
    *out = v;
    return 0;
}

/* amqplib's Args.assertQueue: queueOptions.arguments, then each named option given sets its x-argument
 * over it. Integers go as table integers: amqplib picks the narrowest signed type (b, s, I, l), the
 * codec writes l; RabbitMQ compares integer arguments by value across those types, so both declarations
 * of one queue are equivalent. */
static int topology_args(nc_amqp_target *t, const nc_optset *opts, const nc_logger *log,
                         const char *component) {
    static const struct {
        const char *opt, *arg;
    } named[] = {{"expires", "x-expires"},
                 {"messageTtl", "x-message-ttl"},
                 {"deadLetterExchange", "x-dead-letter-exchange"},
                 {"deadLetterRoutingKey", "x-dead-letter-routing-key"},
                 {"maxLength", "x-max-length"},
                 {"maxPriority", "x-max-priority"}};
    int r = json_object_opt(opts, "queueArguments", &t->queue_args, log, component);
    if (r || (r = json_object_opt(opts, "exchangeArguments", &t->exchange_args, log, component))) return r;
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        const nc_optval *v = nc_opts_find(opts, named[i].opt);
        if (!v) continue;
        if (!t->queue_args && !(t->queue_args = json_object())) return NC_ENOMEM;
        json_t *j = v->spec->type == NC_OPT_STRING ? json_string(v->text) : json_integer(v->num);
        if (json_object_set_new(t->queue_args, named[i].arg, j)) return NC_ENOMEM;
    }
    return 0;
}

int nc_amqp_target_init(nc_amqp_target *t, const nc_url *url, const nc_optset *opts, const nc_tls_opts *tls,
                        const nc_logger *log, const char *component) {
    memset(t, 0, sizeof *t);
    int tls_on = !strcmp(url->scheme, "amqps");
    int r = nc_broker_target_init(&t->b, url, tls_on ? 5671 : 5672);
    if (r) return r;
    if (url->hosts && (r = host_list(t, url, tls_on ? 5671 : 5672, log, component))) {
        nc_amqp_target_free(t);
        return r;
    }
    if (!t->b.user && !(t->b.user = strdup("guest"))) goto nomem;
    if (!t->b.password && !(t->b.password = strdup("guest"))) goto nomem;
    if (!(t->vhost = vhost_of(url->path))) goto nomem;
    if (dup_opt(&t->queue, opts, "queue") || (!t->queue && !(t->queue = strdup("")))) goto nomem;
    if (strlen(t->queue) > 255) {
        nc_amqp_target_free(t);
        return nc_fail(log, component, NC_EINVAL, "queue name over 255 bytes");
    }
    t->durable = nc_opts_bool(opts, "durable");
    t->exclusive = nc_opts_bool(opts, "exclusive");
    t->auto_delete = nc_opts_bool(opts, "autoDelete");
    t->no_assert = nc_opts_bool(opts, "noAssert");
    t->prefetch_count = (int)nc_opts_int(opts, "prefetchCount");
    t->global_prefetch = nc_opts_bool(opts, "isGlobalPrefetchCount");
    t->no_ack = nc_opts_bool(opts, "noAck");
    if (dup_opt(&t->consumer_tag, opts, "consumerTag")) goto nomem;
    if (dup_opt(&t->reply_queue, opts, "replyQueue")) goto nomem;
    if (!t->reply_queue && !(t->reply_queue = strdup(NC_AMQP_REPLY_TO))) goto nomem;
    t->persistent = nc_opts_bool(opts, "persistent");
    t->wildcards = nc_opts_bool(opts, "wildcards");
    if (dup_opt(&t->exchange, opts, "exchange") || dup_opt(&t->exchange_type, opts, "exchangeType") ||
        dup_opt(&t->routing_key, opts, "routingKey"))
        goto nomem;
    if (!t->exchange && !(t->exchange = strdup(t->queue))) goto nomem; /* NestJS: named after the queue */
    if (!t->exchange_type && !(t->exchange_type = strdup("topic"))) goto nomem;
    t->exchange_given = nc_opts_find(opts, "exchange") != NULL;
    t->fanout = !strcmp(t->exchange_type, "fanout");
    t->max_deliveries = (int)nc_opts_int(opts, "maxDeliveries");
    if ((r = topology_args(t, opts, log, component))) {
        nc_amqp_target_free(t);
        return r;
    }
    t->heartbeat_s = (int)nc_opts_int(opts, "heartbeat");
    t->frame_max = (uint32_t)nc_opts_int(opts, "frameMax");
    t->max_attempts = (int)nc_opts_int(opts, "maxConnectionAttempts");
    const char *mech = nc_opts_str(opts, "authMechanism");
    t->external = mech && !strcasecmp(mech, "EXTERNAL");
    if (mech && !t->external && strcasecmp(mech, "PLAIN")) {
        nc_amqp_target_free(t);
        return nc_fail(log, component, NC_EINVAL, "authMechanism \"%s\": PLAIN or EXTERNAL", mech);
    }
    if (t->external && (!tls_on || !tls || !tls->cert_file)) {
        nc_amqp_target_free(t);
        return nc_fail(log, component, NC_EINVAL,
                       "authMechanism=EXTERNAL needs amqps:// and a client certificate (the TLS options' "
                       "cert_file and key_file): the certificate names the user");
    }
    if (tls_on && (r = nc_broker_target_tls(&t->b, tls, log, component))) {
        nc_amqp_target_free(t);
        return r;
    }
    t->own_name = !(tls && tls->server_name);
    nc_amqp_target_next(t); /* b.host names the first broker until a connection picks one */
    t->next_host = 0;
    return 0;
nomem:
    nc_amqp_target_free(t);
    return NC_ENOMEM;
}

void nc_amqp_target_free(nc_amqp_target *t) {
    nc_broker_target_free(&t->b);
    free(t->vhost);
    free(t->queue);
    free(t->consumer_tag);
    free(t->reply_queue);
    free(t->exchange);
    free(t->exchange_type);
    free(t->routing_key);
    for (int i = 0; i < t->nhosts; i++) free(t->hosts[i]);
    free(t->hosts);
    free(t->ports);
    json_decref(t->queue_args);
    json_decref(t->exchange_args);
    memset(t, 0, sizeof *t);
}

size_t nc_amqp_headers(const json_t *obj, nc_header *out, size_t cap, char **store) {
    size_t n = 0;
    const char *k;
    json_t *v;
    if (!json_is_object(obj)) return 0;
    json_object_foreach((json_t *)obj, k, v) {
        if (n == cap) break;
        out[n].name = k;
        out[n].name_len = strlen(k);
        if (json_is_string(v)) {
            out[n].value = json_string_value(v);
            out[n].value_len = json_string_length(v);
            store[n] = NULL;
        } else {
            store[n] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            out[n].value = store[n] ? store[n] : "";
            out[n].value_len = store[n] ? strlen(store[n]) : 0;
        }
        n++;
    }
    return n;
}
