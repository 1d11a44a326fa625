/* Connection settings and topology of an AMQP URL and the options, shared by the server and the client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
     .help = "with wildcards: the exchange (default: the queue's name)"},
    {.name = "exchangeType",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "with wildcards: the exchange's type (default topic)"},
    {.name = "routingKey",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER,
     .help = "with wildcards: one more binding key for the server's queue"},
    {.name = "connectTimeout",
     .type = NC_OPT_DURATION,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "ms to wait for the connection to be open (TCP, TLS, the AMQP handshake and the channel)"},
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

int nc_amqp_target_init(nc_amqp_target *t, const nc_url *url, const nc_optset *opts, const nc_tls_opts *tls,
                        const nc_logger *log, const char *component) {
    memset(t, 0, sizeof *t);
    int tls_on = !strcmp(url->scheme, "amqps");
    int r = nc_broker_target_init(&t->b, url, tls_on ? 5671 : 5672);
    if (r) return r;
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
    t->heartbeat_s = (int)nc_opts_int(opts, "heartbeat");
    t->frame_max = (uint32_t)nc_opts_int(opts, "frameMax");
    t->max_attempts = (int)nc_opts_int(opts, "maxConnectionAttempts");
    if (tls_on && (r = nc_broker_target_tls(&t->b, tls, log, component))) {
        nc_amqp_target_free(t);
        return r;
    }
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
