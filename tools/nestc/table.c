/* The command and option table of nestc (see table.h). To add an option: one entry here, then read it
 * in args.c (store_value) and use it in the command. */
#include <stdio.h>
#include <string.h>

#include "nestc/nestc.h"
#include "table.h"

#define MS_MAX 1e9 /* about 11.5 days: any larger time in milliseconds is a typo */
#define BIG 9007199254740992.0
/* --workers: one loop per thread; far above any core count this machine class has, and low enough that
 * a typo (--workers 100000) is refused instead of starting a hundred thousand threads. */
#define WORKERS_MAX 1024

#define SEND_EMIT (CMD_SEND | CMD_EMIT)
#define CLIENTS (CMD_SEND | CMD_EMIT | CMD_BENCH)

const cli_opt cli_opts[] = {
    {O_HELP, "--help", 'h', V_NONE, NULL, CMD_ALL, 0, 0, 0, NULL, "print this help and exit"},
    {O_VERBOSE, "--verbose", 'v', V_NONE, NULL, CLIENTS, 0, 0, 0, NULL,
     "log the library's debug output on stderr"},
    {O_VERBOSE, "--verbose", 'v', V_NONE, NULL, CMD_CONFORMANCE, 0, 0, 0, NULL, "log debug output on stderr"},
    {O_QUIET, "--quiet", 'q', V_NONE, NULL, CMD_CONFORMANCE, 0, 0, 0, NULL, "log errors only"},
    {O_TIMEOUT, "--timeout", 0, V_INT, "MS", SEND_EMIT, 0, 0, MS_MAX, NULL,
     "timeout of the reply (send) or of the transport accepting the event (emit), connecting included "
     "(default 5000; 0 = none)"},
    {O_TIMEOUT, "--timeout", 0, V_INT, "MS", CMD_BENCH, 0, 0, MS_MAX, NULL,
     "client engine: per-request timeout (default 5000; 0 = none)"},
    {O_CONNECT_TIMEOUT, "--connect-timeout", 0, V_INT, "MS", SEND_EMIT, 0, 1, MS_MAX, NULL,
     "bound on connecting, TLS handshake included (default: --timeout, 5000 when it is 0)"},
    {O_CONNECT_TIMEOUT, "--connect-timeout", 0, V_INT, "MS", CMD_BENCH, 0, 1, MS_MAX, NULL,
     "client engine: bound on connecting, TLS handshake included (default 5000)"},
    {O_CA, "--ca", 0, V_FILE, "FILE", CLIENTS, 0, 0, 0, NULL,
     "trust this CA (tls://, rediss://, mqtts://, amqps://, NATS TLS) instead of the system store"},
    {O_CA, "--ca", 0, V_FILE, "FILE", CMD_CONFORMANCE, 0, 0, 0, NULL,
     "tls://: require client certificates signed by this CA; rediss://, mqtts://, amqps://: the CA to trust"},
    {O_CERT, "--cert", 0, V_FILE, "FILE", CLIENTS, 0, 0, 0, NULL,
     "client certificate (mutual TLS), with --key"},
    {O_CERT, "--cert", 0, V_FILE, "FILE", CMD_CONFORMANCE, 0, 0, 0, NULL,
     "server certificate (required for tls://), with --key"},
    {O_KEY, "--key", 0, V_FILE, "FILE", CMD_ALL, 0, 0, 0, NULL, "the private key of --cert"},
    {O_SERVERNAME, "--servername", 0, V_TEXT, "NAME", CMD_ALL, 0, 0, 0, NULL,
     "TLS name to verify and send as SNI (default: the URL host)"},
    {O_INSECURE, "--insecure", 0, V_NONE, NULL, CLIENTS, 0, 0, 0, NULL,
     "TLS (tls, rediss, mqtts, amqps, grpcs, grpc, nats, kafka): do not verify the server's certificate "
     "(tests "
     "only; warns)"},
    {O_METADATA, "--metadata", 0, V_TEXT, "K=V", CLIENTS, 1, 0, 0, NULL,
     "packet metadata (NestJS 12), repeatable"},
    {O_HEADER, "--header", 0, V_TEXT, "K=V", SEND_EMIT, 1, 0, 0, NULL,
     "transport headers (NATS; gRPC metadata, -bin names take base64), repeatable; a name given twice keeps "
     "its last value"},
    {O_OPT, "--opt", 0, V_TEXT, "NAME=VALUE", CMD_ALL, 1, 0, 0, NULL,
     "transport option, repeatable (nestc options <scheme>); wins over ?name=value"},
    {O_QUEUE, "--queue", 0, V_TEXT, "Q", CMD_ALL, 0, 0, 0, NULL, "the same as --opt queue=Q (NATS servers)"},
    {O_PROTO, "--proto", 0, V_FILE, "FILE", CMD_CONFORMANCE, 0, 0, 0, NULL,
     "grpc://: the .proto file to serve (the same as --opt protoPath=FILE)"},
    {O_PROTO, "--proto", 0, V_FILE, "FILE", CLIENTS, 0, 0, 0, NULL,
     "grpc://, grpcs://: the .proto file of the method (the same as --opt protoPath=FILE)"},
    {O_STREAM, "--stream", 0, V_NONE, NULL, CMD_SEND, 0, 0, 0, NULL,
     "[data] holds several JSON values (default @-), sent as a client stream"},
    {O_DATA_FILE, "--data-file", 0, V_FILE, "FILE", CMD_BENCH, 0, 0, 0, NULL,
     "the request data read from a JSON file (the same as [data] @FILE)"},
    {O_WORKERS, "--workers", 0, V_INT, "N", CMD_CONFORMANCE, 0, 0, WORKERS_MAX, NULL,
     "serve on N loops / threads sharing the port (default 1, at most 1024; tcp, tls, grpc)"},
    {O_MAX_BUFFER, "--max-buffer-size", 0, V_INT, "N", CMD_CONFORMANCE, 0, 0, BIG, NULL,
     "per-connection receive limit in UTF-16 units (default 134217728; 0 = none)"},
    {O_MAX_SEND_BUFFER, "--max-send-buffer-size", 0, V_INT, "N", CMD_CONFORMANCE, 0, 0, BIG, NULL,
     "unsent reply bytes before a peer that does not read is dropped (default 134217728)"},
    {O_INCOMPLETE_TIMEOUT, "--incomplete-timeout", 0, V_INT, "MS", CMD_CONFORMANCE, 0, 0, MS_MAX, NULL,
     "close a peer stalled in the middle of a frame (default 30000; 0 = never)"},
    {O_SHUTDOWN_TIMEOUT, "--shutdown-timeout", 0, V_INT, "MS", CMD_CONFORMANCE, 0, 0, MS_MAX, NULL,
     "at shutdown, time for in-flight requests and their replies (default 10000)"},
    {O_HANDSHAKE_TIMEOUT, "--handshake-timeout", 0, V_INT, "MS", CMD_CONFORMANCE, 0, 0, MS_MAX, NULL,
     "tls://: close a connection whose handshake is not done in this time (default 10000; 0 = never)"},
    {O_EVENTS_HISTORY, "--events-history", 0, V_INT, "N", CMD_CONFORMANCE, 0, 0, 1e9, NULL,
     "event payloads kept per pattern for `events` (default 1000; 0 keeps none)"},
    {O_CONNECTIONS, "--connections", 0, V_INT, "C", CMD_BENCH, 0, 1, 100000, NULL, "connections (default 1)"},
    {O_INFLIGHT, "--inflight", 0, V_INT, "N", CMD_BENCH, 0, 1, 1000000, NULL,
     "requests pending per connection (default 1)"},
    {O_DURATION, "--duration", 0, V_NUM, "S", CMD_BENCH, 0, 1e-9, 1e9, NULL,
     "counting window in seconds, fractions allowed (default 5)"},
    {O_WARMUP, "--warmup", 0, V_NUM, "S", CMD_BENCH, 0, 0, 1e9, NULL,
     "traffic before the window, not counted (default 1)"},
    {O_EVENTS, "--events", 0, V_INT, "K", CMD_BENCH, 0, 0, 1000000, NULL,
     "send K events before every request (needs --event-pattern)"},
    {O_EVENT_PATTERN, "--event-pattern", 0, V_TEXT, "EP", CMD_BENCH, 0, 0, 0, NULL, "the events' pattern"},
    {O_EVENT_DATA, "--event-data", 0, V_TEXT, "JSON", CMD_BENCH, 0, 0, 0, NULL,
     "the events' data (default: the request data)"},
    {O_SERVER_PID, "--server-pid", 0, V_INT, "PID", CMD_BENCH, 0, 1, 2147483647.0, NULL,
     "also report the server's CPU time over the window (/proc/PID/stat)"},
    {O_ENGINE, "--engine", 0, V_CHOICE, "ENGINE", CMD_BENCH, 0, 0, 0, "raw|client",
     "raw: built-in epoll generator (default for tcp://); client: the nestc client library"},
    /* observability (docs/observability.md) */
    {O_ADMIN, "--admin", 0, V_TEXT, "HOST:PORT", CMD_CONFORMANCE, 0, 0, 0, NULL,
     "serve /metrics (Prometheus) and /health/live, /health/ready over HTTP on HOST:PORT"},
    {O_TRACE, "--trace", 0, V_NONE, NULL, SEND_EMIT, 0, 0, 0, NULL,
     "send W3C trace context (traceparent) and print the trace id used on stderr; spans go to "
     "OTEL_EXPORTER_OTLP_ENDPOINT when it is set"},
    {O_TRACE, "--trace", 0, V_NONE, NULL, CMD_CONFORMANCE, 0, 0, 0, NULL,
     "W3C trace context: continue incoming traces (traceparent), export spans to "
     "OTEL_EXPORTER_OTLP_ENDPOINT when it is set"},
    /* resilience (docs/resilience.md); events are never retried, so send only */
    {O_MAX_IN_FLIGHT, "--max-in-flight", 0, V_INT, "N", CMD_CONFORMANCE, 0, 1, 1e9, NULL,
     "bulkhead: at most N messages in their handlers at once (all workers together); one more gets the "
     "error reply (default: no limit)"},
    {O_RATE_LIMIT, "--rate-limit", 0, V_TEXT, "N[/BURST]", CMD_CONFORMANCE, 0, 0, 0, NULL,
     "rate limiter: at most N messages a second (fractions allowed), BURST at once after a quiet time "
     "(default: N rounded up), all workers together; one more gets the error reply (default: no limit)"},
    {O_RETRIES, "--retries", 0, V_INT, "N", CMD_SEND, 0, 0, 100, NULL,
     "retry the request up to N times when it cannot have reached a handler (connection refused, broker "
     "reconnecting), with exponential backoff and full jitter; each attempt gets a fresh --timeout "
     "(default 0)"},
};
const size_t cli_nopts = sizeof cli_opts / sizeof cli_opts[0];

const cli_cmd cli_cmds[] = {
    {"send", CMD_SEND, "<url> <pattern> [data] [options]", "one request, print each reply value",
     "Sends one request (NestJS client.send) and prints each reply value as one line of compact JSON.\n"
     "Exit 0 when the reply stream ends; 1 on an error reply, \"no handler\" included on every\n"
     "transport (the error value as JSON on stderr: on TCP/TLS the server's error, on Redis and NATS a\n"
     "string saying nobody subscribes to the pattern); 2 on timeout, refused connection, TLS failure,\n"
     "--stream on a transport without client streams, or bad arguments (a message on stderr).",
     3, 1},
    {"emit", CMD_EMIT, "<url> <pattern> [data] [options]", "one event",
     "Publishes one event (NestJS client.emit). Exit 0 once the transport accepted it, 2 when it did not.", 3,
     1},
    {"conformance", CMD_CONFORMANCE, "<url> [options]", "serve the conformance service",
     "Serves the conformance service (sum, asyncSum, streamSum, streaming, exception, echo, sleep,\n"
     "context, events; events notification (two handlers) and user_created) until SIGINT/SIGTERM, then\n"
     "shuts down gracefully. Prints \"nestc conformance listening on ...\" once ready. Exit 0 after a\n"
     "clean shutdown, 2 when it cannot serve.",
     1, 1},
    {"bench", CMD_BENCH, "<url> <pattern> [data] [options]", "load generator, prints one JSON line",
     "Keeps --inflight requests pending on each of --connections connections for --warmup + --duration\n"
     "seconds and prints one JSON line: "
     "{\"requests\",\"errors\",\"rps\",\"p50_us\",\"p99_us\",\"max_us\",...}.\n"
     "Exit 0 when it ran; 1 when every reply was an error reply, 2 when no request succeeded for\n"
     "local failures (both said on stderr), on bad arguments or when it cannot connect.",
     3, 1},
    {"options", 0, "<scheme>", "the transport options of a scheme",
     "Lists the transport options of <scheme> (?name=value on the URL or --opt name=value).", 1, 0},
    {"help", 0, "[command | scheme | --man]", "help on a command or scheme; --man prints the man page",
     "Without an argument the overview; with a command its --help; with a scheme its options (as nestc\n"
     "options); --man prints nestc(1) in roff.",
     1, 0},
    {"completion", 0, "bash|zsh", "print a shell completion script",
     "Prints the completion script for bash or zsh: eval \"$(nestc completion bash)\", or install it as\n"
     "share/bash-completion/completions/nestc or share/zsh/site-functions/_nestc.",
     1, 0},
};
const size_t cli_ncmds = sizeof cli_cmds / sizeof cli_cmds[0];

const cli_cmd *cli_cmd_find(const char *name) {
    for (size_t i = 0; i < cli_ncmds; i++)
        if (!strcmp(cli_cmds[i].name, name)) return &cli_cmds[i];
    return NULL;
}

const cli_opt *cli_opt_find(const char *name, unsigned cmd, int *exists) {
    int seen = 0;
    for (size_t i = 0; i < cli_nopts; i++) {
        const cli_opt *o = &cli_opts[i];
        int match = name[0] == '-' && name[1] != '-' ? (o->short_name && name[1] == o->short_name && !name[2])
                                                     : !strcmp(o->name, name);
        if (!match) continue;
        seen = 1;
        if (o->cmds & cmd) {
            if (exists) *exists = 1;
            return o;
        }
    }
    if (exists) *exists = seen;
    return NULL;
}

/* The schemes nestc knows of, in the order help lists them; only those the library supports in this
 * build are shown (nc_options_check answers NC_EUNSUPPORTED for the others). The library has no public
 * list of its transports, so names of transports it may gain are kept here too. */
static const char *const known_schemes[] = {"tcp",   "tls",  "redis", "rediss", "nats",  "grpc",
                                            "grpcs", "mqtt", "mqtts", "amqp",   "amqps", "kafka"};

const char *cli_scheme(size_t i) {
    for (size_t k = 0; k < sizeof known_schemes / sizeof known_schemes[0]; k++) {
        if (nc_options_check(known_schemes[k], NC_OPT_CLIENT, NULL, 0, NULL, 0) == NC_EUNSUPPORTED) continue;
        if (i-- == 0) return known_schemes[k];
    }
    return NULL;
}

const char *cli_schemes_text(char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    const char *s;
    for (size_t i = 0; (s = cli_scheme(i)) && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", s);
    return buf;
}
