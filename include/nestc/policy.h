/* nestc — resilience policies: retries with backoff and a retry budget, circuit breakers, bulkheads (the
 * client's may queue) and token-bucket rate limiters, built in, each a hook set (nestc/hooks.h) installed
 * by one call, on every transport alike (docs/resilience.md).
 *
 *   nc_retry_opts r = {.struct_size = sizeof r};          // zero = the defaults below
 *   nc_client_use_retry(cli, &r, NULL);                    // refused connections are retried
 *   nc_breaker_opts b = {.struct_size = sizeof b};
 *   nc_breaker *br;
 *   nc_client_use_breaker(cli, &b, &br);                   // calls fail with NC_ECIRCUITOPEN while open
 *   nc_bulkhead_opts k = {.struct_size = sizeof k, .max_in_flight = 100};
 *   nc_server_use_bulkhead(srv, &k, NULL);                 // before nc_server_run (workers get it)
 *
 * One call per policy, not one struct for all: each policy is a hook set of its own, so a program takes
 * the ones it wants, installs them in the order it wants (hook sets nest like scopes: install the breaker
 * before the retry policy and a call the breaker refuses is never retried; the metrics set first and it
 * sees every outcome), and removes one with nc_client_remove_hooks / nc_server_remove_hooks and the id
 * returned. Option structs are versioned by struct_size like the other public structs (0 or
 * sizeof(struct)); every zero field takes its default.
 *
 * Ownership: the policy's state belongs to the hook set; the optional `out` handle is borrowed, valid
 * until the set is released (the client or server freed, or the set removed and its last call ended).
 * Threads: a client's policies run and are read on the client's loop thread (the getters that say "any
 * thread" excepted). A server bulkhead or rate limiter is shared by all the server's workers (one limit
 * for the server; its counters are atomic) and may be read from any thread. */
#ifndef NESTC_POLICY_H
#define NESTC_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "nestc/client.h"
#include "nestc/export.h"
#include "nestc/hooks.h"
#include "nestc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- retry with backoff -------------------------------------------------------------------------- */

/* Which failures a retry policy retries (nc_retry_opts.retry_on, a bit set). Events are never retried. */
enum {
    /* The request cannot have reached a handler: the connection was refused (NC_ECONNREFUSED), the host
     * not resolved (NC_ERESOLVE), or the broker connection is being re-established (NC_ECONNLOST: the
     * call was not published; but on RabbitMQ a request pending on direct reply-to when the connection
     * drops fails with it too, after it was published: docs/resilience.md). The default. */
    NC_RETRY_ON_UNSENT = 1u << 0,
    /* The connection closed while the request was pending (NC_ECONNCLOSED): it may have run. */
    NC_RETRY_ON_CONN_CLOSED = 1u << 1,
    /* The request timed out (NC_ETIMEDOUT): it may have run, or still be running. */
    NC_RETRY_ON_TIMEOUT = 1u << 2,
    /* The handler replied with an error (NC_EREMOTE): it ran. */
    NC_RETRY_ON_REMOTE = 1u << 3,
};

/* Options of nc_client_use_retry. Copied. */
typedef struct nc_retry_opts {
    size_t struct_size; /* 0 or sizeof(nc_retry_opts) */
    int max_attempts;   /* sends in all, the first included: 0 = 3; 1 = never retry */
    int base_delay_ms;  /* the backoff before the first retry: 0 = 100 */
    int max_delay_ms;   /* the backoff's cap: 0 = 5000 */
    double multiplier;  /* backoff n = base * multiplier^(n-1), capped: 0 = 2 (at least 1) */
    int no_jitter;      /* 0: full jitter, the delay is uniform in [0, backoff n]; 1: backoff n itself */
    unsigned retry_on;  /* NC_RETRY_ON_* bits: 0 = NC_RETRY_ON_UNSENT */
    /* The retry budget (as Finagle's RetryBudget): over the last budget_window_ms, retries may be at most
     * budget_min_per_sec × the window in seconds + budget_ratio × the requests made, so that in an outage
     * retries add at most that share of load. budget_ratio: 0 = 0.1, < 0 = no budget at all;
     * budget_min_per_sec: 0 = 10, < 0 = none; budget_window_ms: 0 = 10000. */
    double budget_ratio;
    int budget_min_per_sec;
    int budget_window_ms;
} nc_retry_opts;

/* A retry policy installed on a client (opaque; borrowed, see above). */
typedef struct nc_retry nc_retry;

/* What a retry policy did since it was installed. */
typedef struct nc_retry_stats {
    uint64_t requests;      /* requests it saw made */
    uint64_t retries;       /* resends it asked for */
    uint64_t budget_denied; /* retries it would have made, refused by the budget */
    uint64_t exhausted;     /* requests that failed with a retriable error after max_attempts sends */
} nc_retry_stats;

/* Installs a retry policy on `cli` (a hook set with should_retry: a retried request is sent again with
 * the same id and bytes after the delay, with a fresh timeout). opts NULL = the defaults. *out (may be
 * NULL) gets the policy's handle. Loop thread. Returns the hook id (> 0), or NC_EINVAL (cli NULL, an
 * option out of range or a struct_size it cannot read), NC_ETOOBIG (NC_HOOKS_MAX sets), NC_ENOMEM. */
NC_API int nc_client_use_retry(nc_client *cli, const nc_retry_opts *opts, nc_retry **out);

/* Fills *out. Loop thread of the client. Returns 0 or NC_EINVAL. */
NC_API int nc_retry_get_stats(const nc_retry *r, nc_retry_stats *out);

/* ---- circuit breaker ----------------------------------------------------------------------------- */

/* The state of a circuit breaker (nc_breaker_info.state; docs/resilience.md has the transitions). */
typedef enum nc_breaker_state {
    NC_BREAKER_CLOSED = 0,    /* calls go through; failures are counted */
    NC_BREAKER_OPEN = 1,      /* calls fail at once with NC_ECIRCUITOPEN until the cool-down ends */
    NC_BREAKER_HALF_OPEN = 2, /* a few probe calls go through; the rest fail with NC_ECIRCUITOPEN */
} nc_breaker_state;

/* Options of nc_client_use_breaker. Copied. A call counts as a failure when it ends with a timeout
 * (NC_ETIMEDOUT), a connection failure (NC_ECONNREFUSED, NC_ECONNCLOSED, NC_ECONNLOST, NC_ERESOLVE,
 * NC_ESTALLED, NC_ETLS, NC_EIO), or, with count_remote_errors, NC_EREMOTE; as a success when it got its
 * reply (an error reply too, without count_remote_errors; NC_ENOHANDLER: the peer answered); other ends
 * (canceled, refused locally, closed, bad arguments) are not counted. */
typedef struct nc_breaker_opts {
    size_t struct_size;       /* 0 or sizeof(nc_breaker_opts) */
    int consecutive_failures; /* opens after this many failures in a row: 0 = 5, < 0 = not this rule */
    /* ... or when failures / calls over the last window_ms reach failure_ratio, with at least min_calls
     * calls in the window: failure_ratio 0 = 0.5, < 0 = not this rule; window_ms 0 = 10000; min_calls 0
     * = 20. */
    double failure_ratio;
    int window_ms;
    int min_calls;
    int open_ms;             /* how long it stays open before probing: 0 = 5000 */
    int half_open_probes;    /* calls let through at once while half-open: 0 = 1 */
    int count_remote_errors; /* 1: an error reply (NC_EREMOTE) is a failure too */
    /* 1: one breaker per route (pattern), so a failing route does not stop the others; routes past
     * max_routes share one breaker. 0: one breaker for the whole client. */
    int per_route;
    int max_routes; /* 0 = 256 */
} nc_breaker_opts;

typedef struct nc_breaker nc_breaker; /* opaque; borrowed, see above */

/* What a breaker (or one route's breaker) shows. */
typedef struct nc_breaker_info {
    nc_breaker_state state;
    int consecutive_failures;               /* failures in a row, while closed */
    uint64_t window_calls, window_failures; /* counted calls and failures in the rolling window */
    uint64_t opened;                        /* times it opened (from closed or from half-open) */
    uint64_t rejected;                      /* calls it failed with NC_ECIRCUITOPEN */
} nc_breaker_info;

/* Installs a circuit breaker on `cli` (a hook set: on_submit refuses with NC_ECIRCUITOPEN while open,
 * on_call_end counts). State changes are logged (component "CircuitBreaker": WARN when it opens, INFO when
 * it half-opens or closes; rate-limited like every record). Loop thread. Returns the hook id or an error
 * as nc_client_use_retry. */
NC_API int nc_client_use_breaker(nc_client *cli, const nc_breaker_opts *opts, nc_breaker **out);

/* The state of the breaker of `route` (per_route; NULL or "" with a client-wide breaker, or for the
 * breaker of routes past max_routes), as the next call would find it (an open breaker whose cool-down
 * is over reads half-open). Loop thread of the client. Returns 0, NC_EINVAL, or NC_ENOENT (per_route and
 * no call of that route was made yet: it is closed). */
NC_API int nc_breaker_get_info(nc_breaker *b, const char *route, nc_breaker_info *out);

/* ---- bulkhead ------------------------------------------------------------------------------------ */

/* Options of nc_client_use_bulkhead and nc_server_use_bulkhead. Copied. */
typedef struct nc_bulkhead_opts {
    size_t struct_size; /* 0 or sizeof(nc_bulkhead_opts) */
    /* Messages in flight at most (client: calls made and not ended; server: messages admitted to their
     * handler and not finished, all workers together); one more is refused at once with NC_EREFUSED.
     * Required: >= 1. */
    int max_in_flight;
    int requests_only; /* 1: events are neither counted nor refused */
    /* Client only (a server's must be 0): calls beyond max_in_flight wait in a FIFO queue of at most
     * max_queue calls (0 = no queue: refused at once), each at most max_wait_ms (0 = 1000; NC_LIMIT_OFF =
     * no bound but the call's own timeout), and run as slots free. A call finding the queue full, or
     * waiting longer, fails with NC_EREFUSED. The wait counts in the call's timeout. */
    int max_queue;
    int max_wait_ms;
} nc_bulkhead_opts;

typedef struct nc_bulkhead nc_bulkhead; /* opaque; borrowed, see above */

/* Client: a call beyond the limit fails at once (its on_done gets NC_EREFUSED before send/emit
 * returns), or with max_queue waits for a slot (held with nc_hook_hold: not sent meanwhile; cancelling
 * it, its timeout or closing/freeing the client takes it out of the queue, with no callback after).
 * Loop thread. Returns the hook id or an error as nc_client_use_retry. */
NC_API int nc_client_use_bulkhead(nc_client *cli, const nc_bulkhead_opts *opts, nc_bulkhead **out);

/* Server: a message beyond the limit does not run its handler: a request gets NestJS's error reply
 * {"status":"error","message":nc_strerror(NC_EREFUSED)}, an event is negatively acknowledged (not
 * requeued) where the transport settles. Loop thread, before nc_server_run/listen when workers > 1 (the
 * limit is then shared by every worker). Returns the hook id or an error as nc_server_add_hooks. */
NC_API int nc_server_use_bulkhead(nc_server *srv, const nc_bulkhead_opts *opts, nc_bulkhead **out);

/* Messages in flight now, and those refused since it was installed (queue full or wait expired
 * included). Any thread. */
NC_API int nc_bulkhead_in_flight(const nc_bulkhead *b);
NC_API uint64_t nc_bulkhead_refused(const nc_bulkhead *b);
/* Calls waiting in a client bulkhead's queue now, and those whose wait expired (NC_EREFUSED) since it
 * was installed. Loop thread of the client. */
NC_API int nc_bulkhead_queued(const nc_bulkhead *b);
NC_API uint64_t nc_bulkhead_expired(const nc_bulkhead *b);

/* ---- rate limiter -------------------------------------------------------------------------------- */

/* Options of nc_client_use_rate_limit and nc_server_use_rate_limit. Copied. A token bucket: `rate`
 * tokens a second, at most `burst` kept; each message takes one. */
typedef struct nc_rate_limit_opts {
    size_t struct_size; /* 0 or sizeof(nc_rate_limit_opts) */
    double rate;        /* tokens a second: required, > 0 (0.5 = one every two seconds) */
    int burst;          /* the bucket's size, the messages allowed at once after a quiet time: 0 = rate
                           rounded up (at least 1) */
    /* Client only (a server's must be 0): a call finding no token waits for one (held with nc_hook_hold,
     * in the order calls were made) when it is due within max_wait_ms; else, and with 0, it fails at once
     * with NC_EREFUSED. The wait counts in the call's timeout. */
    int max_wait_ms;
    int requests_only; /* 1: events are neither counted nor refused */
    /* 1: one bucket per route (pattern), each with rate and burst; routes past max_routes share one.
     * 0: one bucket for the whole client or server (all workers together). */
    int per_route;
    int max_routes; /* 0 = 256 */
} nc_rate_limit_opts;

typedef struct nc_rate_limiter nc_rate_limiter; /* opaque; borrowed, see above */

/* What a rate limiter (or one route's bucket) shows. */
typedef struct nc_rate_limit_info {
    double tokens;     /* tokens in the bucket now (fractional; 0 when calls wait for theirs) */
    int waiting;       /* client: calls waiting for their token now */
    uint64_t admitted; /* messages let through at once */
    uint64_t delayed;  /* client: calls let through after waiting for their token */
    uint64_t refused;  /* messages refused with NC_EREFUSED */
} nc_rate_limit_info;

/* Client: a call over the limit fails at once with NC_EREFUSED (on_done before send/emit returns), or
 * waits up to max_wait_ms for its token. Counts calls, not attempts: a retry's resend takes no token.
 * Loop thread. Returns the hook id or an error as nc_client_use_retry. */
NC_API int nc_client_use_rate_limit(nc_client *cli, const nc_rate_limit_opts *opts, nc_rate_limiter **out);

/* Server: a message over the limit does not run its handler, as with the bulkhead: a request gets
 * NestJS's error reply {"status":"error","message":nc_strerror(NC_EREFUSED)}, an event is negatively
 * acknowledged (not requeued) where the transport settles. One budget for all workers (lock-free
 * token bucket; per_route adds a lock around the route table). Loop thread, before nc_server_run/listen
 * when workers > 1. Returns the hook id or an error as nc_server_add_hooks. */
NC_API int nc_server_use_rate_limit(nc_server *srv, const nc_rate_limit_opts *opts, nc_rate_limiter **out);

/* The bucket of `route` (per_route; NULL or "" for the limiter's one bucket, or the bucket of routes
 * past max_routes); `admitted`, `delayed`, `refused` and `waiting` are the limiter's totals, all routes
 * together. Any thread. Returns 0, NC_EINVAL, or NC_ENOENT (per_route, and no message of that route
 * was seen yet: its bucket is full). */
NC_API int nc_rate_limit_get_info(nc_rate_limiter *l, const char *route, nc_rate_limit_info *out);

#ifdef __cplusplus
}
#endif
#endif
