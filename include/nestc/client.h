/* nestc — clients (NestJS ClientProxy: send and emit).
 *
 *   nc_client *cli;
 *   nc_client_new(&cli, "tcp://127.0.0.1:3000", NULL);
 *   nc_client_send(cli, "{\"cmd\":\"sum\"}", data, NULL, on_value, on_done, NULL);
 *   nc_client_run(cli);        // runs the loop until no call is pending (and the client is closed)
 *
 * Threads: every call is for the loop thread; callbacks run on it. */
#ifndef NESTC_CLIENT_H
#define NESTC_CLIENT_H

#include <stddef.h>
#include <jansson.h>

#include "nestc/codec.h"
#include "nestc/export.h"
#include "nestc/log.h"
#include "nestc/server.h"
#include "nestc/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A client (NestJS ClientProxy). Opaque; created by nc_client_new, freed by nc_client_free. */
typedef struct nc_client nc_client;

/* Structs that grow (struct_size, *_INIT): see nestc/server.h. */
typedef struct nc_client_opts {
    size_t struct_size;     /* 0 or sizeof(nc_client_opts) */
    struct uv_loop_s *loop; /* borrowed; NULL = the client creates and owns its loop */
    const nc_tls_opts *tls; /* copied; tls:// URLs verify against the system store without it */
    const nc_codec *codec;  /* copied */
    /* default per-call timeout of requests (until the reply stream ends) and events (until the transport
     * accepted the event, nc_client_emit): 0 = 5000 ms, NC_LIMIT_OFF = none */
    int timeout_ms;
    /* each connection attempt, TLS and the broker's handshake included: 0 = 5000 ms, also when timeout_ms
     * is NC_LIMIT_OFF; NC_LIMIT_OFF = none (the kernel's SYN retries, about 2 minutes, end it). The
     * request timeout still bounds a request waiting for the connection. */
    int connect_timeout_ms;
    int retry_attempts; /* extra connection attempts after a failed connect (default 0) */
    /* the first delay between attempts (default 1000 when retry_attempts > 0); broker transports (redis,
     * nats) double it on each failed reconnection up to 8x (at most 30 s), jittered: README "Broker
     * reconnect" */
    int retry_delay_ms;
    long long max_buffer_size;
    long long max_send_buffer_size;
    int incomplete_message_timeout_ms;
    nc_log_fn log;
    void *log_user;
    nc_log_level log_level;
    /* borrowed (copied); transport headers added to every request and event unless the call sets the same
     * name (NestJS ClientNats `headers`). An object of strings. */
    const json_t *headers;
    /* Transport options (nestc/options.h), level NC_OPT_CLIENT: override the URL's query parameters.
     * Borrowed during nc_client_new (copied). */
    const nc_option *options;
    size_t noptions;
} nc_client_opts;

#define NC_CLIENT_OPTS_INIT                                                                                  \
    { .struct_size = sizeof(nc_client_opts) }

/* Per-call options; NULL = defaults. */
typedef struct nc_call_opts {
    size_t struct_size;     /* 0 or sizeof(nc_call_opts) */
    int timeout_ms;         /* requests and events: 0 = the client's default, NC_LIMIT_OFF = none */
    const json_t *metadata; /* borrowed; sent as the packet `metadata` object (NestJS 12) */
    /* borrowed (copied by the call); transport headers, an object of strings: NATS message headers (like
     * a NatsRecord's). Transports without headers ignore them. */
    const json_t *headers;
    /* Transport options (nestc/options.h), level NC_OPT_CALL; for a name not given here the client's
     * value applies. Borrowed during the call (copied when kept). An option the transport does not take
     * per call fails the call with NC_EINVAL at once (logged with its name). */
    const nc_option *options;
    size_t noptions;
} nc_call_opts;

#define NC_CALL_OPTS_INIT                                                                                    \
    { .struct_size = sizeof(nc_call_opts) }

/* One reply value (borrowed: valid during the call; json_incref to keep it). Never NULL. */
typedef void (*nc_value_fn)(void *user, json_t *value);

/* Completion. err = 0: the reply stream ended. err = NC_EREMOTE: the remote handler failed and `error`
 * is its error value exactly as received (object or string). err = NC_ENOHANDLER: no handler serves the
 * pattern, wherever the transport can tell: TCP/TLS, the server's error value as received (NestJS's
 * string "There is no matching message handler defined in the remote service."); NATS, the broker's
 * no-responders answer, `error` NestJS ClientNats's words "Empty response. There are no subscribers
 * listening to that message ("<route>")"; Redis, PUBLISH reached no subscriber, `error` "There are no
 * subscribers listening to that message ("<route>")", at once (NestJS's ClientRedis waits instead).
 * Any other code: a local failure and `error` a JSON string saying why, e.g. NC_ETIMEDOUT "Timeout has
 * occurred: no reply within 5000 ms" or "...: not connected to tcp://h:1 within the request timeout of
 * 5000 ms", NC_ECONNREFUSED "connect ECONNREFUSED 127.0.0.1:3000 (...)", NC_ETLS "TLS handshake failed:
 * ...", NC_EPROTO "the peer closed the connection after sending data that is not a NestJS packet:
 * "HTTP/1.1 400 ..."", NC_ECONNCLOSED "Connection closed" (NestJS's words). The client's error
 * callback (nc_client_on_error) gets the same reasons for the connection. `error` is borrowed. Called
 * exactly once per accepted call. */
typedef void (*nc_done_fn)(void *user, int err, json_t *error);

/* Creates a client for `url`. Nothing is connected until the first call or nc_client_connect.
 * Free with nc_client_free. */
NC_API int nc_client_new(nc_client **out, const char *url, const nc_client_opts *opts);

/* Connects now instead of lazily. `done` (may be NULL) gets 0 or the connect error. */
NC_API int nc_client_connect(nc_client *cli, nc_done_fn done, void *user);

/* Sends a request (NestJS send(pattern, data) subscribed once). `pattern` is written as for
 * nc_server_message; `data` is borrowed and serialised before the call returns (NULL = JSON null).
 * `on_value` runs for each reply value, then `on_done` once. Returns 0 (the callbacks will run) or an
 * error (NC_EINVAL, NC_ECLOSED, NC_ENOMEM; the callbacks will not run). */
NC_API int nc_client_send(nc_client *cli, const char *pattern, const json_t *data, const nc_call_opts *opts,
                          nc_value_fn on_value, nc_done_fn on_done, void *user);
NC_API int nc_client_send_json(nc_client *cli, const json_t *pattern, const json_t *data,
                               const nc_call_opts *opts, nc_value_fn on_value, nc_done_fn on_done,
                               void *user);

/* ---- calls: a request as an object -----------------------------------------------------------------
 *
 * nc_client_send is the simple form: one value out, reply values and done back. nc_client_call makes the
 * same request and hands back a call that can also send more values (nc_call_write), half-close the
 * caller's side (nc_call_end), cancel (nc_call_cancel), and show the reply's headers, status and trailers
 * where the transport carries them:
 *
 *   nc_call *call;
 *   nc_call_cbs cbs = {.on_value = on_value, .on_done = on_done};
 *   nc_client_call(cli, "{\"cmd\":\"sum\"}", data, NULL, &cbs, user, &call);
 *   ...
 *   nc_call_cancel(call);   // on_done runs once with NC_ECANCELED
 *
 * An nc_call is a handle, not memory: it stays valid until on_done has returned; after that every
 * nc_call_* function returns NC_ESTATE (accessors return NC_ESTATE / NULL), even if the handle is kept.
 * Threads: loop thread only, like the rest of the client. */
typedef struct nc_call nc_call;

/* The callbacks of an nc_client_call (copied by the call). */
typedef struct nc_call_cbs {
    nc_value_fn on_value; /* each reply value; may be NULL */
    nc_done_fn on_done;   /* exactly once, as for nc_client_send; may be NULL */
    /* Optional: the first reply packet that carried headers arrived (before its value is delivered);
     * read them with nc_call_header / nc_call_header_at. */
    void (*on_headers)(void *user, nc_call *call);
} nc_call_cbs;

/* Sends a request as nc_client_send does and returns its call in *out (may be NULL). `cbs` is copied.
 * Returns 0 (on_done will run) or an error (nothing runs, *out is NULL). */
NC_API int nc_client_call(nc_client *cli, const char *pattern, const json_t *data, const nc_call_opts *opts,
                          const nc_call_cbs *cbs, void *user, nc_call **out);
NC_API int nc_client_call_json(nc_client *cli, const json_t *pattern, const json_t *data,
                               const nc_call_opts *opts, const nc_call_cbs *cbs, void *user, nc_call **out);

/* Sends one more value of the request stream (client-streaming and bidirectional calls; `value` is
 * borrowed and serialised before the call returns). NC_EUNSUPPORTED on transports without request
 * streams: TCP, TLS, Redis and NATS (NestJS has none there); NC_ESTATE after nc_call_end or once done. */
NC_API int nc_call_write(nc_call *call, const json_t *value);

/* Half-closes the caller's side: no more writes; replies keep coming. On a transport without request
 * streams the request was the whole stream already, so this returns 0 and changes nothing. NC_ESTATE when
 * already ended or done. */
NC_API int nc_call_end(nc_call *call);

/* Ends the call locally: on_done runs once, at once, with NC_ECANCELED, and the transport is told where
 * it can tell the peer (NestJS transports cannot: the handler runs to its end and its reply is dropped).
 * Safe from inside on_value and on_headers. Returns 0, or NC_ESTATE when the call is already done. */
NC_API int nc_call_cancel(nc_call *call);

/* Reply metadata, valid until on_done returns (borrowed; values are bytes, not NUL-terminated, with
 * their length in *len). Headers are those of the first reply packet that had any (NATS message headers;
 * gRPC initial metadata). The name lookup is case-sensitive and returns the first match; NULL when
 * absent or the handle is stale. */
NC_API const char *nc_call_header(const nc_call *call, const char *name, size_t *len);
/* The i-th header in wire order (repeated names included): 0 with *name, *value and lengths set, or
 * NC_EINVAL past the end, NC_ESTATE for a stale handle. */
NC_API int nc_call_header_at(const nc_call *call, size_t i, const char **name, size_t *name_len,
                             const char **value, size_t *value_len);
NC_API size_t nc_call_header_count(const nc_call *call);
/* Trailers of the final reply packet (gRPC), same rules as nc_call_header. */
NC_API const char *nc_call_trailer(const nc_call *call, const char *name, size_t *len);
/* The final status where the transport has one (gRPC): 1 with *code and *msg (NUL-terminated, borrowed;
 * either pointer may be NULL), 0 when none was received, NC_ESTATE for a stale handle. */
NC_API int nc_call_status(const nc_call *call, int *code, const char **msg);

/* Publishes an event (NestJS emit). `on_done` (may be NULL) runs once the transport accepted it (TCP:
 * written to the socket; MQTT QoS 1/2: the broker's acknowledgement; Kafka: the delivery report; AMQP:
 * the publisher confirm) or failed. The call's timeout (nc_call_opts.timeout_ms, else the client's, 5000
 * ms by default) bounds that wait: when it passes, on_done gets NC_ETIMEDOUT ("Timeout has occurred: the
 * event was not accepted by the transport within N ms (url)", or "...: not connected to url within the
 * event timeout of N ms" when it never left the client). The transport may still deliver the event
 * later; its late outcome is dropped. */
NC_API int nc_client_emit(nc_client *cli, const char *pattern, const json_t *data, const nc_call_opts *opts,
                          nc_done_fn on_done, void *user);
NC_API int nc_client_emit_json(nc_client *cli, const json_t *pattern, const json_t *data,
                               const nc_call_opts *opts, nc_done_fn on_done, void *user);

/* Fails every pending call with NC_ECLOSED ("Connection closed") and closes the connection. A later
 * send/emit reconnects (as NestJS's ClientProxy.close()). */
NC_API void nc_client_close(nc_client *cli);

/* Runs the client's loop until nothing is pending and the connection is closed (or the loop stops). */
NC_API int nc_client_run(nc_client *cli);

/* Number of requests and events not yet completed. */
NC_API size_t nc_client_pending(const nc_client *cli);

/* Status changes: "connected", "disconnected", and the transport's own values. */
NC_API void nc_client_on_status(nc_client *cli, nc_status_fn fn, void *user);

/* Error events (connection errors, protocol errors); `message` valid during the call. */
typedef void (*nc_error_fn)(void *user, int err, const char *message);
NC_API void nc_client_on_error(nc_client *cli, nc_error_fn fn, void *user);

/* The underlying handle (like NestJS unwrap()): for TCP/TLS the connected uv_tcp_t*, or NULL. Borrowed.
 * The library's guarantee that none of its writes raises SIGPIPE does not cover writes the caller makes
 * itself on this handle: uv_write and write(2) raise it when the peer has gone; use send(2) with
 * MSG_NOSIGNAL (SO_NOSIGPIPE where that flag is missing) or ignore SIGPIPE. */
NC_API void *nc_client_unwrap(nc_client *cli);

/* The loop the client runs on (borrowed). */
NC_API struct uv_loop_s *nc_client_loop(nc_client *cli);

/* Closes (failing pending calls with NC_ECLOSED), runs the loop until the client's handles are closed,
 * and frees the client. */
NC_API void nc_client_free(nc_client *cli);

/* ---- blocking calls ------------------------------------------------------------------------------------
 *
 * For simple tools that want one answer and nothing else, as redisCommand or natsConnection_Request are
 * used: the call is made and the client's loop is run on the calling thread until it ends.
 *
 *   json_t *sum = NULL, *err = NULL;
 *   int r = nc_client_send_sync(cli, "{\"cmd\":\"sum\"}", data, NULL, &sum, &err);
 *   if (r == 0) ... use sum (may be NULL: no value) ... else ... nc_err_name(r), err ...
 *   json_decref(sum);
 *   json_decref(err);
 *
 * The loop run is the client's: its own loop, or the borrowed one (opts.loop), which then also runs
 * everything else on it (servers, the program's timers) until the call ends. Bounded by the call's
 * timeout (nc_call_opts.timeout_ms, else the client's, 5000 ms by default); with no timeout it waits as
 * long as the connection lives. The client stays connected for the next call (nc_client_free closes it).
 *
 * Threads: the thread that runs the client's loop, and not from inside any of that loop's callbacks
 * (on_value, on_done, status or error callbacks, a server handler on the same loop): libuv's uv_run is
 * not reentrant. That is refused with NC_ESTATE when the library runs the loop at that moment
 * (nc_client_run, nc_server_run and its workers, another blocking call); a loop the program runs itself
 * (uv_run on a borrowed loop) cannot be detected (libuv cannot be asked), so do not call these from its
 * callbacks. Calls started
 * earlier with nc_client_send on the same client go on meanwhile and their callbacks run. */

/* Sends a request (as nc_client_send) and waits for its reply stream to end. Returns 0 and stores in
 * *reply the LAST value of the stream (as NestJS's lastValueFrom: a request answered with one value gets
 * that value; a stream's earlier values are dropped), or NULL when the stream ended without a value
 * (JavaScript undefined; lastValueFrom would reject with EmptyError). On failure returns the call's code
 * as on_done would get it: NC_EREMOTE with *error the remote error value exactly as received, or a local
 * code (NC_ETIMEDOUT, NC_ECONNREFUSED, NC_ECONNCLOSED ...) with *error a JSON string describing it; *reply
 * is then NULL. Refused before anything is sent: NC_EINVAL (cli NULL, bad pattern or options), NC_ESTATE
 * (see "Threads" above), NC_ENOMEM; *error is then NULL. `data` is borrowed (NULL = JSON null). *reply and
 * *error are new references the caller releases with json_decref; `reply` and `error` may be NULL when
 * not wanted (the value is then released here). */
NC_API int nc_client_send_sync(nc_client *cli, const char *pattern, const json_t *data,
                               const nc_call_opts *opts, json_t **reply, json_t **error);

/* Publishes an event (as nc_client_emit) and waits until the transport has taken it (TCP: written to the
 * socket; brokers: handed to the broker connection), at most the call's timeout (then NC_ETIMEDOUT, as
 * nc_client_emit's on_done gets it). Returns 0, or the code on_done would get with
 * *error (may be NULL) a new reference to a JSON string describing it; the same refusals as
 * nc_client_send_sync. */
NC_API int nc_client_emit_sync(nc_client *cli, const char *pattern, const json_t *data,
                               const nc_call_opts *opts, json_t **error);

#ifdef __cplusplus
}
#endif
#endif
