/* nestc — hooks: observers and interceptors around every message a server handles and every call a
 * client makes. The place where metrics, trace propagation, bulkheads, rate limits, retries and circuit
 * breakers live (docs/hooks.md), on every transport alike.
 *
 *   static int bulkhead(void *user, nc_hook_info *i) {
 *       return ++inflight > 100 ? NC_EREFUSED : 0;      // refused: the caller gets an error reply
 *   }
 *   static void done(void *user, nc_hook_info *i, int outcome) {
 *       inflight--;                                     // runs for every message on_dispatch saw
 *       record(i->route, outcome, i->now_ns - i->start_ns); // duration in ns
 *   }
 *   nc_server_hooks h = {.struct_size = sizeof h, .before_handler = bulkhead, .on_finish = done};
 *   int id = nc_server_add_hooks(srv, &h, NULL);
 *
 * Life of a server message, for each installed hook set (a struct with its user pointer):
 *   on_dispatch          the message is decoded and its route looked up (handler or not)
 *   before_handler       interceptor: 0 runs the handler; an nc_err refuses the message
 *   on_handler_start     just before the handler (request handler, or the chain of event handlers)
 *   on_handler_return    the handler function returned (a request may still be unfinished), or the
 *                        handler finished the request before returning: then at that moment
 *   on_reply             each reply packet written: a value, an error, the end of the stream
 *   on_settle            the message is acknowledged, negatively acknowledged or rejected (only on
 *                        transports that settle)
 *   on_finish            exactly once per on_dispatch: the request finished (and settled, when its
 *                        handler settles it), or the event's handlers returned (a kept event: once it
 *                        is settled), with the outcome
 * Life of a client call:
 *   on_submit            the call is made, before it is encoded: may add headers and metadata, or
 *                        refuse the call (circuit open, rate limited)
 *   on_reply             each reply value received
 *   should_retry         interceptor: the call failed; ask for the same request (same id, same bytes)
 *                        to be sent again after a delay
 *   on_call_end          exactly once per on_submit, with the final outcome
 *
 * Order: several hook sets may be installed; opening callbacks (on_dispatch, before_handler,
 * on_handler_start, on_submit) run in the order the sets were added, closing ones (on_handler_return,
 * on_finish, on_call_end) in the reverse order, so sets nest like scopes; the others in added order.
 * Every interceptor of every set runs, even after one refused (a bulkhead counts what it admitted, and
 * each set sees its own callbacks balanced); the first refusal in added order wins.
 * Every callback of a message goes to the sets installed when the message was dispatched (the call
 * submitted): a set added later sees only later messages, a set removed still sees the end of the
 * messages it saw begin.
 *
 * Threads: callbacks run on the loop thread of the server or client (with workers > 1: on each worker's
 * thread, concurrently; the sets installed before nc_server_listen/run are copied to every worker). They must
 * not block. They may call the public API (adding or removing hooks included: that applies to later
 * messages), but must not free the server or client, nor finish the request they observe.
 *
 * Cost: with no hook installed, each hook point is one test of a pointer. With hooks, a message takes one
 * pooled record (no allocation once warm), two monotonic clock reads (its start and its end), and one
 * indirect call per callback set. */
#ifndef NESTC_HOOKS_H
#define NESTC_HOOKS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "nestc/client.h"
#include "nestc/export.h"
#include "nestc/message.h"
#include "nestc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hook sets a server or client holds at most. */
#define NC_HOOKS_MAX 8

/* Whether a hook sees a server message or a client call (nc_hook_info.side). */
typedef enum nc_hook_side {
    NC_HOOK_SERVER = 0,
    NC_HOOK_CLIENT = 1,
} nc_hook_side;

/* What a server reply packet carried (on_reply). */
typedef enum nc_hook_reply {
    NC_HOOK_REPLY_VALUE = 0, /* a value (a stream value, or the only value) */
    NC_HOOK_REPLY_ERROR = 1, /* an error value: the request failed */
    NC_HOOK_REPLY_END = 2,   /* the end of the stream, without a value */
} nc_hook_reply;

/* One message or call, as the hooks see it. Owned by the library; valid during each callback (the same
 * pointer for every callback of one message, from on_dispatch or on_submit until on_finish or
 * on_call_end). Read-only, except *state. Fields may be added at the end (struct_size says how many are
 * there). */
typedef struct nc_hook_info {
    size_t struct_size;
    nc_hook_side side;
    nc_server *server;     /* NC_HOOK_SERVER: the server (with workers: the worker's), else NULL */
    nc_client *client;     /* NC_HOOK_CLIENT: the client, else NULL */
    const char *transport; /* the scheme: "tcp", "tls", "redis", "nats", ... */
    const char *route;     /* NestJS route of the pattern ({"cmd":"sum"}); "" when there is none */
    const char *pattern;   /* server: the pattern as received (nc_msg_pattern); client: as given */
    int is_event;          /* 1: an event (no reply), 0: a request */
    int has_handler;       /* server: a handler matches the route */
    /* server: the message (nc_msg_data, nc_msg_headers, nc_msg_metadata ...: trace context is read
     * here); valid until on_finish returns. */
    const nc_msg *msg;
    /* server: the request's handle (message.h); NULL for an event. Do not finish it from a hook. */
    nc_request *request;
    /* client: the call's handle when it was made with nc_client_call (NULL for send/emit, and in
     * on_submit); valid until on_call_end returns. */
    struct nc_call *call;
    /* The request id as it travels (server: its JSON text; client: the id this client sent), not
     * NUL-terminated; NULL for an event. */
    const char *id;
    size_t id_len;
    /* client: the call's outgoing transport headers and packet metadata (borrowed, NULL when none);
     * in on_submit change them with nc_hook_set_header / nc_hook_set_metadata. */
    const json_t *headers;
    const json_t *metadata;
    /* Monotonic nanoseconds: CLOCK_MONOTONIC's (uv_hrtime's) to within a few microseconds (on x86-64
     * with an invariant TSC they are read from the TSC, scaled and re-anchored every second; the
     * environment variable NESTC_CLOCK=monotonic makes every read clock_gettime). Durations are
     * differences of two of them. start_ns: when the message was dispatched / the call
     * submitted. now_ns: this hook point's time in on_dispatch and on_submit (= start_ns), on_finish and
     * on_call_end (so now_ns - start_ns is the duration); in the other callbacks call nc_hook_now(i),
     * which reads the clock once per hook point, for all sets (a clock read costs as much as a hook point
     * itself, so it is taken only when asked for). */
    uint64_t start_ns;
    uint64_t now_ns;
    int attempt; /* client: 1 for the first send, 2 for the first retry, ... */
    /* This hook set's own per-message pointer: NULL at on_dispatch/on_submit, kept as the set leaves it
     * between callbacks (a span, a permit), read and freed by the set at on_finish/on_call_end. Each
     * set sees its own slot here. */
    void **state;
    void *priv_; /* the library's */
} nc_hook_info;

/* ---- server hooks ------------------------------------------------------------------------------- */

/* A set of server hooks. Any callback may be NULL. struct_size = sizeof(nc_server_hooks), or 0 for the
 * first layout (this one): a struct from an older header gets NULL for the callbacks it lacks; one from a
 * newer header is accepted when the callbacks this library does not know are NULL (else NC_EINVAL), as
 * for the option structs. Copied by nc_server_add_hooks. */
typedef struct nc_server_hooks {
    size_t struct_size;
    void (*on_dispatch)(void *user, nc_hook_info *i);
    /* Interceptor. Returns 0 to run the handler, or an nc_err (NC_EREFUSED when a bulkhead is full or a
     * rate limit is reached) to refuse the message: the handler does not run, a request fails with the
     * error reply {"status":"error","message":nc_strerror(err)}, an event is negatively acknowledged
     * (not requeued) where the transport settles, and on_finish gets the code. Not called when no
     * handler matches. */
    int (*before_handler)(void *user, nc_hook_info *i);
    void (*on_handler_start)(void *user, nc_hook_info *i);
    /* The handler function returned, or (whichever comes first) it finished the request: a reply that
     * ends the stream made inside the handler brings on_handler_return, then on_finish, before the
     * reply call returns, so on_finish is always the last callback and i->msg is still valid in both.
     * With on_handler_start it brackets the handler's synchronous part: where a tracer makes the
     * message's span the current one. */
    void (*on_handler_return)(void *user, nc_hook_info *i);
    /* One reply packet: `json` is the value's JSON text as sent (NULL for the end of a stream or an
     * `undefined` value), `final` is 1 on the packet that ends the stream. Not called when the reply goes
     * nowhere (the caller is gone, an event routed to a request handler). */
    void (*on_reply)(void *user, nc_hook_info *i, nc_hook_reply kind, const char *json, size_t len,
                     int final);
    void (*on_settle)(void *user, nc_hook_info *i, nc_settle how); /* message.h */
    /* The message is done: `outcome` is 0 (answered, or an event's handlers ran), NC_EREMOTE (the
     * handler replied with an error), NC_ENOHANDLER, NC_ECANCELED (the caller went away or the
     * server's shutdown deadline passed), NC_ECLOSED (the server was freed with the request
     * unfinished), or a refusing interceptor's code. Duration: i->now_ns - i->start_ns. */
    void (*on_finish)(void *user, nc_hook_info *i, int outcome);
    /* The set was removed (or its server freed) and no message it saw is in flight any more: free
     * `user` here if it is yours. With workers it runs once, for the primary server. */
    void (*release)(void *user);
} nc_server_hooks;

/* Installs a hook set; `user` is passed to its callbacks. Loop thread (or before the server runs). With
 * workers > 1, every worker gets a copy of the sets installed before nc_server_run (or listen), and the
 * sets cannot change once the workers run (NC_ESTATE). Returns an id > 0 for nc_server_remove_hooks, or
 * NC_EINVAL (srv or hooks NULL, a struct_size it cannot read), NC_ETOOBIG (NC_HOOKS_MAX sets installed),
 * NC_ENOMEM. */
NC_API int nc_server_add_hooks(nc_server *srv, const nc_server_hooks *hooks, void *user);

/* Removes a hook set: later messages do not see it; those in flight still get their callbacks, and
 * `release` runs after the last of them (at once when none is in flight). Loop thread; allowed inside a
 * hook callback. Returns 0, NC_EINVAL (no such id) or NC_ESTATE (workers running). */
NC_API int nc_server_remove_hooks(nc_server *srv, int id);

/* ---- client hooks ------------------------------------------------------------------------------- */

/* A set of client hooks: as nc_server_hooks (struct_size, NULL callbacks, copied), for calls. */
typedef struct nc_client_hooks {
    size_t struct_size;
    /* Interceptor and observer. Returns 0 to let the call go, or an nc_err (NC_ECIRCUITOPEN: a circuit
     * breaker is open; NC_EREFUSED: a bulkhead is full) to fail it at once: it is not sent, its on_done
     * runs with that code (and the error text nc_strerror(err)) before nc_client_send/emit returns, and
     * on_call_end follows. */
    int (*on_submit)(void *user, nc_hook_info *i);
    /* One reply value (borrowed); `final` is 1 when the stream ends with it. */
    void (*on_reply)(void *user, nc_hook_info *i, const json_t *value, int final);
    /* Interceptor: the request failed with `err` (a local failure such as NC_ETIMEDOUT or
     * NC_ECONNCLOSED, or NC_EREMOTE) after i->attempt sends. Return 1 and set *delay_ms (>= 0) to send
     * the same request again, with the same id and bytes, after that delay (its timeout starts again);
     * return 0 to let it fail. The first set that returns 1 decides. Asked only for requests, only
     * before any reply value was delivered, and never when the client is being closed or freed. */
    int (*should_retry)(void *user, nc_hook_info *i, int err, int *delay_ms);
    /* The call is done: err as its on_done gets it (0, NC_EREMOTE, NC_ETIMEDOUT, a refusal ...).
     * Duration: i->now_ns - i->start_ns; i->attempt sends were made. */
    void (*on_call_end)(void *user, nc_hook_info *i, int err);
    void (*release)(void *user); /* as for nc_server_hooks */
} nc_client_hooks;

/* As nc_server_add_hooks / nc_server_remove_hooks, for a client (loop thread). */
NC_API int nc_client_add_hooks(nc_client *cli, const nc_client_hooks *hooks, void *user);
NC_API int nc_client_remove_hooks(nc_client *cli, int id);

/* This hook point's time (monotonic ns, the clock of start_ns): the clock is read at the first call in a hook
 * point and the same value returned to every set after. Loop thread, inside a callback. */
NC_API uint64_t nc_hook_now(nc_hook_info *i);

/* In on_submit only: holds the call instead of letting it go: it is encoded and counted as pending (its
 * timeout runs, nc_client_run waits for it, nc_call_cancel and nc_client_close end it) but is neither
 * sent nor queued for the connection until the set calls nc_hook_resume. How a bulkhead queues a call
 * until a slot frees, or a rate limiter until its token is due. Each nc_hook_hold needs one
 * nc_hook_resume; the call goes once every hold is resumed. An interceptor that refuses wins over a
 * hold (the call fails at once). Returns 0, or NC_EINVAL (not in on_submit). */
NC_API int nc_hook_hold(nc_hook_info *i);

/* Resumes a call this set held: err 0 lets it go (sent, or queued for the connection), an nc_err fails it
 * with that code and the text nc_strerror(err) (NC_EREFUSED: a queue's wait expired). Asynchronous: the
 * call goes, or fails, from the client's loop right after the current callback returns, never inside
 * this call, so it may be called from any client hook callback (a bulkhead's on_call_end of another
 * call) or from a timer. `i` is the info the set saw in on_submit; it is valid until on_call_end returns
 * for that call, which runs for a held call too (cancelled, timed out, client closed): a set drops its
 * reference there. Loop thread of the client. Returns 0, or NC_ESTATE (the call is not held). */
NC_API int nc_hook_resume(nc_hook_info *i, int err);

/* In on_submit only: sets the outgoing transport header `name` (replacing one of that name) to `value`;
 * both copied. Transports without headers ignore them (as nc_call_opts.headers). Returns 0, NC_EINVAL
 * (not in on_submit, bad arguments), NC_ENOMEM. */
NC_API int nc_hook_set_header(nc_hook_info *i, const char *name, const char *value);

/* In on_submit only: sets `key` in the packet metadata object (NestJS 12 metadata; how W3C trace context
 * travels on TCP and Redis). `value` is stolen. Returns 0, NC_EINVAL, NC_ENOMEM. */
NC_API int nc_hook_set_metadata(nc_hook_info *i, const char *key, json_t *value);

#ifdef __cplusplus
}
#endif
#endif
