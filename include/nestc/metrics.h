/* nestc — metrics: the golden signals of servers and clients (traffic, errors, latency, saturation), per
 * route and transport, counted by a hook set (nestc/hooks.h) so every transport has them alike
 * (docs/observability.md).
 *
 *   nc_metrics *m;
 *   nc_metrics_new(&m, NULL);
 *   nc_metrics_watch_server(m, srv);        // before nc_server_run: workers get the set too
 *   nc_metrics_watch_client(m, cli);        // one registry may watch many servers and clients
 *   ...
 *   nc_metrics_series t;
 *   nc_metrics_totals(m, NC_HOOK_SERVER, &t);   // or nc_metrics_foreach, nc_metrics_prometheus
 *   nc_metrics_free(m);                     // the watched servers and clients keep it until they go
 *
 * Or, with nc_server_opts.admin set, the server makes its own registry and serves it over HTTP
 * (/metrics, /health/live, /health/ready); nc_server_metrics returns it.
 *
 * Threads: the counters are updated on the loop threads of what is watched (with workers > 1: on every
 * worker's thread) with relaxed atomic additions on per-thread shards; reading (totals, foreach,
 * prometheus) is allowed from any thread at any time and sums the shards: each figure is exact once the
 * traffic stops, and never torn, but two figures read together during traffic may be a few messages
 * apart. */
#ifndef NESTC_METRICS_H
#define NESTC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "nestc/client.h"
#include "nestc/export.h"
#include "nestc/hooks.h"
#include "nestc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A registry of series. Opaque; reference-counted: nc_metrics_new gives the caller one reference, each
 * watched server or client holds one until it is freed (its hook set released). */
typedef struct nc_metrics nc_metrics;

/* How a message or call ended (the `outcome` label). */
typedef enum nc_metrics_outcome {
    NC_OUTCOME_OK = 0,       /* answered / the event's handlers ran / the call got its reply */
    NC_OUTCOME_REMOTE_ERROR, /* NC_EREMOTE: the handler replied with an error */
    NC_OUTCOME_NO_HANDLER,   /* NC_ENOHANDLER */
    NC_OUTCOME_TIMEOUT,      /* NC_ETIMEDOUT (client) */
    NC_OUTCOME_CONN_REFUSED, /* NC_ECONNREFUSED, NC_ERESOLVE, NC_ETLS, NC_EAUTH: could not connect */
    NC_OUTCOME_CONN_LOST,    /* NC_ECONNCLOSED, NC_ECONNLOST, NC_ESTALLED: the connection went away */
    NC_OUTCOME_HOOK_REFUSED, /* NC_EREFUSED: a hook refused (bulkhead full, rate limited) */
    NC_OUTCOME_CANCELED,     /* NC_ECANCELED: caller gone, shutdown deadline, nc_call_cancel */
    NC_OUTCOME_CLOSED,       /* NC_ECLOSED: the server or client was closed with it unfinished */
    NC_OUTCOME_OTHER,        /* any other code */
    NC_OUTCOME_CIRCUIT_OPEN, /* NC_ECIRCUITOPEN: a circuit breaker failed the call at once (nestc/policy.h) */
    NC_OUTCOME_COUNT
} nc_metrics_outcome;

/* The outcome of an nc_err code (0 = ok), and its label text ("ok", "remote_error", ...). */
NC_API nc_metrics_outcome nc_metrics_outcome_of(int err);
NC_API const char *nc_metrics_outcome_name(nc_metrics_outcome o);

/* Duration histogram: upper bounds in seconds of the buckets (Prometheus `le`), the last one +Inf. */
#define NC_METRICS_BUCKETS 17
NC_API const double *nc_metrics_bucket_bounds(void); /* NC_METRICS_BUCKETS - 1 finite bounds */

/* The route label of messages whose pattern has no handler (one series, whatever the patterns: a peer
 * sending random patterns cannot add series), and of routes past the registry's route cap. */
#define NC_METRICS_ROUTE_NO_HANDLER "(no handler)"
#define NC_METRICS_ROUTE_OTHER "(other)"

/* One series: a side, a transport and a route; every figure since the registry was made. */
typedef struct nc_metrics_series {
    nc_hook_side side;     /* NC_HOOK_SERVER or NC_HOOK_CLIENT */
    const char *transport; /* "tcp", "redis", ... (valid while the registry lives) */
    const char *route;     /* NestJS route, NC_METRICS_ROUTE_NO_HANDLER, NC_METRICS_ROUTE_OTHER, or "" */
    uint64_t requests;     /* server: requests dispatched; client: requests made (each send, not retry) */
    uint64_t events;       /* server: events dispatched; client: events emitted */
    int64_t in_flight;     /* requests and events begun and not yet finished */
    uint64_t outcomes[NC_OUTCOME_COUNT]; /* finished messages / ended calls, by outcome */
    /* server: value packets written (stream values included), error replies written;
     * client: reply values received, 0 */
    uint64_t reply_values, reply_errors;
    /* server: payload bytes received (the `data` JSON text, where the packet was scanned) and reply value
     * bytes sent (JSON text); client: 0, 0. Not wire bytes: framing, TLS and broker protocol are not
     * counted (docs/observability.md). */
    uint64_t bytes_in, bytes_out;
    uint64_t retries; /* client: sends past the first (should_retry) */
    /* Server: dispatch to finish; client: call to its end. Counts per bucket (not cumulative), the last
     * is above every bound. */
    uint64_t duration_buckets[NC_METRICS_BUCKETS];
    uint64_t duration_count;
    uint64_t duration_sum_ns;
} nc_metrics_series;

/* Options of nc_metrics_new (NULL = defaults). */
typedef struct nc_metrics_opts {
    size_t struct_size; /* 0 or sizeof(nc_metrics_opts) */
    /* Distinct routes kept per registry (both sides together); messages of further routes count in the
     * series NC_METRICS_ROUTE_OTHER of their side and transport. 0 = 256; at most 4096. */
    int max_routes;
} nc_metrics_opts;

/* Creates an empty registry. Returns 0, NC_EINVAL (max_routes out of range), NC_ENOMEM. */
NC_API int nc_metrics_new(nc_metrics **out, const nc_metrics_opts *opts);

/* Drops the caller's reference (NULL: no-op); the registry is freed when no watched server or client
 * holds it any more. Any thread. */
NC_API void nc_metrics_free(nc_metrics *m);

/* Counts every message of `srv` (installs a hook set: nc_server_add_hooks, same rules: loop thread,
 * before nc_server_run for workers, whose figures add up in the same series). Returns the hook id
 * (nc_server_remove_hooks stops counting) or its error. */
NC_API int nc_metrics_watch_server(nc_metrics *m, nc_server *srv);

/* Counts every call of `cli` (nc_client_add_hooks). Returns the hook id or its error. */
NC_API int nc_metrics_watch_client(nc_metrics *m, nc_client *cli);

/* Calls fn for each series (side, transport, route), in creation order; fn returns 0 to go on. The
 * series is a summed copy, valid during the call. Returns 0 or fn's non-zero value. Any thread. */
NC_API int nc_metrics_foreach(nc_metrics *m, int (*fn)(void *user, const nc_metrics_series *s), void *user);

/* The sum over every route and transport of one side (route and transport: "" in *out). Any thread.
 * Returns 0 or NC_EINVAL. */
NC_API int nc_metrics_totals(nc_metrics *m, nc_hook_side side, nc_metrics_series *out);

/* Distinct routes that arrived after the route cap was reached (counted in NC_METRICS_ROUTE_OTHER). */
NC_API uint64_t nc_metrics_routes_overflowed(nc_metrics *m);

/* The state of a server as its readiness probe sees it. */
typedef struct nc_server_health {
    int listening;       /* nc_server_listen succeeded and the server is not closed */
    int connected;       /* the transport reported "connected" last (brokers: subscriptions confirmed) */
    int draining;        /* nc_server_close began (graceful shutdown): not ready any more */
    int ready;           /* listening && connected && !draining */
    uint64_t reconnects; /* "connected" reports after the first one (a broker connection re-established) */
    int workers;         /* loops serving it */
} nc_server_health;

/* Fills *out. Loop thread of the server (or when it does not run). Returns 0 or NC_EINVAL. */
NC_API int nc_server_health_get(nc_server *srv, nc_server_health *out);

/* The Prometheus text exposition (format 0.0.4) of every series, and, when srv is not NULL, of its health
 * (nestc_up, nestc_ready, broker reconnects; srv's loop thread). *out is malloc'd, NUL-terminated, owned
 * by the caller (free()). Returns 0 or NC_ENOMEM. */
NC_API int nc_metrics_prometheus(nc_metrics *m, nc_server *srv, char **out, size_t *len);

/* The registry the server's admin endpoint serves (nc_server_opts.admin), borrowed: valid until
 * nc_server_free. NULL when the server has no admin endpoint. Watch clients with it to serve their
 * figures on the same /metrics. */
NC_API nc_metrics *nc_server_metrics(nc_server *srv);

/* The bound port of the admin endpoint (after nc_server_listen), or 0. */
NC_API int nc_server_admin_port(const nc_server *srv);

/* ---- connections and wire bytes ------------------------------------------------------------------------
 * Counted in the io layer where every transport's sockets are read and written (bytes on the wire: framing,
 * TLS records and broker protocol included), not by the hook set: every watched server (all its workers)
 * and client has them from nc_metrics_watch_server / nc_metrics_watch_client on, zero included, and they
 * stay readable after it is freed. Servers count the connections they accept (tcp, tls, grpc) or make to
 * their broker; clients the connections they make. Kafka's connections are librdkafka's broker sockets
 * (docs/observability.md, "Connections and wire bytes"). Threads: counted on the loop threads without a
 * locked instruction, read from any thread (summed when read; exact once traffic stops). */
typedef struct nc_metrics_wire {
    nc_hook_side side;     /* NC_HOOK_SERVER or NC_HOOK_CLIENT */
    const char *transport; /* "tcp", "redis", ... ("" in nc_metrics_wire_totals); valid during the call */
    int64_t connections;   /* open now */
    uint64_t opened;       /* connections accepted (server) or established (client, broker) */
    uint64_t closed;       /* of those, closed (opened - closed = connections) */
    uint64_t closed_error; /* of the closed ones, closed for an error rather than an orderly end */
    uint64_t bytes_in;     /* bytes read from the sockets */
    uint64_t bytes_out;    /* bytes written to the sockets */
} nc_metrics_wire;

/* Calls fn once per side and transport watched (the servers or clients of one transport summed), in the
 * order they were first watched; fn returns 0 to go on. Returns 0, fn's non-zero value, NC_EINVAL or
 * NC_ENOMEM. Any thread. */
NC_API int nc_metrics_wire_foreach(nc_metrics *m, int (*fn)(void *user, const nc_metrics_wire *w),
                                   void *user);

/* The sum over every transport of one side (transport "" in *out). Returns 0 or NC_EINVAL. Any thread. */
NC_API int nc_metrics_wire_totals(nc_metrics *m, nc_hook_side side, nc_metrics_wire *out);

#ifdef __cplusplus
}
#endif
#endif
