/* nestc — servers (NestJS microservice: ServerTCP, ServerRedis, ...).
 *
 *   nc_server *srv;
 *   nc_server_new(&srv, "tcp://0.0.0.0:3000", NULL);
 *   nc_server_message(srv, "{\"cmd\":\"sum\"}", on_sum, NULL);
 *   nc_server_event(srv, "user_created", on_user, NULL);
 *   nc_server_handle_signals(srv);      // SIGINT/SIGTERM → graceful close
 *   nc_server_run(srv);                 // returns once closed
 *   nc_server_free(srv);
 *
 * Threads: every call is for the loop thread (the thread running the server's loop, or the caller
 * before the loop runs), except the *_threadsafe calls. Handlers and callbacks run on the loop thread. */
#ifndef NESTC_SERVER_H
#define NESTC_SERVER_H

#include <stddef.h>
#include <jansson.h>

#include "nestc/codec.h"
#include "nestc/export.h"
#include "nestc/log.h"
#include "nestc/message.h"
#include "nestc/options.h"
#include "nestc/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

struct uv_loop_s;
/* A server (NestJS microservice). Opaque; created by nc_server_new, freed by nc_server_free. */
typedef struct nc_server nc_server;

/* Zero-initialised options are the defaults. For the limits: 0 = default, NC_LIMIT_OFF = no limit.
 *
 * Structs that grow: nc_server_opts, nc_client_opts, nc_handler_opts, nc_call_opts and nc_tls_opts start
 * with `struct_size` and gain fields only at their end. 0 (what `{0}` and designated initialisers give)
 * means the layout of the release that introduced struct_size, this one; that layout is frozen, so a
 * program that passes 0 keeps working, unchanged, with every later library. To use fields added later,
 * initialise with the *_INIT macro (it sets struct_size to the sizeof of the header compiled against).
 * A struct_size larger than the library knows is accepted when the unknown tail is all zero, else
 * NC_EINVAL. Chosen over setter functions because every existing caller builds these structs on the
 * stack with `{0}` or designated initialisers, which keep compiling and meaning the same. */
#define NC_LIMIT_OFF (-1)

/* Options of nc_server_new (copied; NULL or zero-initialised = the defaults). */
typedef struct nc_server_opts {
    size_t struct_size;                /* 0 or sizeof(nc_server_opts): see above */
    struct uv_loop_s *loop;            /* borrowed; NULL = the server creates and owns its loop */
    const nc_tls_opts *tls;            /* copied; required for tls:// URLs */
    const nc_codec *codec;             /* copied; NULL = NestJS's default JSON envelope */
    long long max_buffer_size;         /* UTF-16 units buffered per connection; default 134217728 */
    long long max_send_buffer_size;    /* unsent reply bytes per connection; default 134217728 */
    int incomplete_message_timeout_ms; /* default 30000 */
    int shutdown_timeout_ms;           /* at close: for in-flight requests and their replies; default 10000 */
    int retry_attempts;                /* re-listen after the listener fails (NestJS retryAttempts) */
    /* delay between those attempts; broker transports use it as the first reconnection delay, doubled
     * on each failure up to 8x (at most 30 s), jittered: README "Broker reconnect" */
    int retry_delay_ms;
    nc_log_fn log; /* NULL = the default logger */
    void *log_user;
    nc_log_level log_level; /* minimum level when `log` is set; default NC_LOG_DEBUG */
    /* Loops serving this server (0 or 1 = one loop). With N > 1, nc_server_run runs N loops on N threads
     * (the calling thread is one of them), each with its own listener on the same port (SO_REUSEPORT),
     * so the kernel spreads connections over them; handlers then run concurrently on N threads and must
     * be thread-safe. Only for transports that listen (tcp, tls); requires `loop` NULL. */
    int workers;
    /* tls://: a connection whose TLS handshake is not complete this long after it was accepted is closed
     * (logged at WARN with the peer's address). Default 10000; NC_LIMIT_OFF = wait forever. Node waits
     * 120 s; a real client finishes in a few round trips, and each stalled handshake holds a descriptor
     * and its buffers, so 10 s bounds what peers that connect and stall can hold. */
    int handshake_timeout_ms;
    /* Transport options (nestc/options.h), level NC_OPT_SERVER: override the URL's query parameters.
     * Borrowed during nc_server_new (copied). */
    const nc_option *options;
    size_t noptions;
    /* The admin HTTP endpoint (docs/observability.md): "host:port" ("[::1]:9464"; port 0 = any free
     * port, nc_server_admin_port) serving /metrics (Prometheus text), /health/live and /health/ready on the
     * server's own loop, with workers the aggregate of all. Copied. NULL = none (the default). */
    const char *admin;
} nc_server_opts;

#define NC_SERVER_OPTS_INIT                                                                                  \
    { .struct_size = sizeof(nc_server_opts) }

/* Status changes ("connected" when listening, "disconnected" when closed or on a listen error, plus the
 * transport's own values, spec §8). `err` is 0 or the error that caused the change. Loop thread. */
typedef void (*nc_status_fn)(void *user, const char *status, int err);

/* Creates a server for `url` (tcp://host:port, tls://host:port; port 0 = any free port). Nothing is
 * opened until nc_server_listen/nc_server_run. On success *out owns everything; free with
 * nc_server_free. Returns NC_EINVAL (bad URL or options: an unknown or misplaced transport option or URL
 * parameter, logged with its name), NC_EUNSUPPORTED (scheme), NC_ETLS (TLS files). */
NC_API int nc_server_new(nc_server **out, const char *url, const nc_server_opts *opts);

/* Registers a request handler for `pattern`, written as NestJS would: a plain string ("sum"), a number
 * ("42") or a JSON object ("{\"cmd\":\"sum\"}"); routes are computed exactly as NestJS computes them. A
 * second registration for the same route replaces the first (as in NestJS). May be called at any time. */
NC_API int nc_server_message(nc_server *srv, const char *pattern, nc_request_fn fn, void *user);

/* Registers an event handler; several per pattern are allowed and all run, in registration order. */
NC_API int nc_server_event(nc_server *srv, const char *pattern, nc_event_fn fn, void *user);

/* Per-handler options (NestJS's handler `extras`). Zero-initialised = none. A route's options are those
 * of its first registration that has any (the transport subscribes once per route: give them at the
 * route's first registration, a running server subscribes then); later ones are ignored with a warning. */
typedef struct nc_handler_opts {
    size_t struct_size; /* 0 or sizeof(nc_handler_opts) */
    /* Deprecated: the option `queue` ({"queue", q} in `options`, which wins when both are given). Kept
     * as it was: applied where the transport has a handler option `queue` (NATS: this route's queue
     * group, instead of the server's; NestJS `@MessagePattern('x', {queue: 'q'})`), ignored elsewhere. */
    const char *queue;
    /* Transport options (nestc/options.h), level NC_OPT_HANDLER; for a name not given here the server's
     * value applies. Borrowed during the call (copied). */
    const nc_option *options;
    size_t noptions;
} nc_handler_opts;

#define NC_HANDLER_OPTS_INIT                                                                                 \
    { .struct_size = sizeof(nc_handler_opts) }

/* nc_server_message / nc_server_event with handler options (may be NULL). NC_EINVAL for an option the
 * transport does not take at handler level (logged with its name). */
NC_API int nc_server_message_opts(nc_server *srv, const char *pattern, const nc_handler_opts *opts,
                                  nc_request_fn fn, void *user);
NC_API int nc_server_event_opts(nc_server *srv, const char *pattern, const nc_handler_opts *opts,
                                nc_event_fn fn, void *user);

/* The same with the pattern as a JSON value (borrowed). */
NC_API int nc_server_message_json(nc_server *srv, const json_t *pattern, nc_request_fn fn, void *user);
NC_API int nc_server_event_json(nc_server *srv, const json_t *pattern, nc_event_fn fn, void *user);

/* Starts listening (nonblocking). Returns NC_EADDRINUSE, NC_EINVAL, NC_EIO ... on failure. */
NC_API int nc_server_listen(nc_server *srv);

/* Listens if not yet listening, then runs the server's loop until the server is closed (with workers:
 * until every worker is closed). It returns then even if handlers left timers or sockets open on the
 * loop (nc_server_free closes those on the server's own loop). Returns 0 or the listen error. */
NC_API int nc_server_run(nc_server *srv);

/* The bound port (after listen), or 0. */
NC_API int nc_server_port(const nc_server *srv);

/* Health statuses a transport serves to health checkers (gRPC: grpc.health.v1.Health Check, Watch and
 * List), numbered as grpc.health.v1's ServingStatus. */
typedef enum nc_health {
    NC_HEALTH_SERVING = 1,
    NC_HEALTH_NOT_SERVING = 2,
    NC_HEALTH_SERVICE_UNKNOWN = 3, /* as if the service were not there (Check: NOT_FOUND) */
} nc_health;

/* Sets the health status of `service` ("" = the server as a whole) on transports with a health service;
 * open watches see the change. Any name may be given (a name the server does not serve becomes known).
 * At graceful shutdown every status becomes NOT_SERVING whatever was set. The server's own status ("")
 * other than SERVING also makes nc_server_health_get's `ready` (the admin endpoint's /health/ready) false.
 * Loop thread, before or after
 * listen. Returns 0, NC_EINVAL (bad arguments), NC_EUNSUPPORTED (the transport has no health service, or
 * it is turned off, or the server has workers: each loop has its own), NC_ENOMEM. */
NC_API int nc_server_set_health(nc_server *srv, const char *service, nc_health status);

/* Graceful shutdown, bounded by shutdown_timeout_ms: stop accepting (brokers: unsubscribe); once no
 * request is in flight, write every reply produced and end each connection after its last byte; at the
 * deadline, cancel the requests still unfinished (nc_request_on_cancel) and close every connection at
 * once. Idempotent. `done` (may be NULL) runs on the loop thread once closed. */
NC_API void nc_server_close(nc_server *srv, void (*done)(void *user), void *user);

/* Thread-safe and async-signal-safe request for nc_server_close (e.g. from another thread). */
NC_API void nc_server_close_threadsafe(nc_server *srv);

/* Installs SIGINT and SIGTERM handlers on the server's loop that start a graceful close. */
NC_API int nc_server_handle_signals(nc_server *srv);

/* Status and error callbacks (replace any previous one; fn NULL removes it). */
NC_API void nc_server_on_status(nc_server *srv, nc_status_fn fn, void *user);

/* The loop the server runs on (borrowed). */
NC_API struct uv_loop_s *nc_server_loop(nc_server *srv);

/* Frees the server. If it is still open it is closed at once (no grace period: unfinished requests are
 * cancelled) and its loop is run until its handles are closed; on the server's own loop, handles that
 * handlers left open are closed too (their close callbacks do not run). Requests not yet finished are
 * freed: handlers must not use them afterwards. */
NC_API void nc_server_free(nc_server *srv);

#ifdef __cplusplus
}
#endif
#endif
