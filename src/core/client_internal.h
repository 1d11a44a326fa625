/* Client internals and the calls client transports make into the core. Private. */
#ifndef NC_CORE_CLIENT_INTERNAL_H
#define NC_CORE_CLIENT_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include "core/log.h"
#include "core/loop_run.h" /* nc_client_run marks its loop running (blocking calls refuse it) */
#include "core/url.h"
#include "io/ioctx.h"
#include "nestc/client.h"
#include "transport/transport.h"
#include "util/map.h"

typedef struct nc_client_cfg {
    int timeout_ms; /* 0 = none */
    int connect_timeout_ms;
    int retry_attempts, retry_delay_ms;
    long long max_buffer_size, max_send_buffer_size;
    int incomplete_timeout_ms;
    json_t *headers; /* added to every call's headers (a copy), NULL when none */
    int has_tls;
    nc_tls_opts tls; /* owned copies */
    int has_codec;
    nc_codec codec;
} nc_client_cfg;

/* The installed hooks (hooks.c). */
struct nc_hook_table **nc_client__hooks(nc_client *c);

/* Accessors for transports (the struct stays private to client.c). */
const nc_client_cfg *nc_client__cfg(nc_client *c);
/* The client's validated transport options (URL parameters and nc_client_opts.options). */
const nc_optset *nc_client__opts(nc_client *c);
nc_ioctx *nc_client__io(nc_client *c);
const char *nc_client__scheme(nc_client *c); /* the URL scheme ("tcp", "redis", ...) */
const nc_logger *nc_client__log(nc_client *c);

/* The connection is open: queued calls are sent. */
void nc_client__connected(nc_client *c);
/* Connecting failed or the connection was lost/closed (err 0 = closed on request). */
void nc_client__disconnected(nc_client *c, int err, const char *msg);
/* One reply packet arrived, in parts (transport.h). The core correlates it by r->id whatever carried the
 * id, and delivers it to its call; a reply for no pending call is dropped. */
void nc_client__on_reply(nc_client *c, const nc_reply_in *r);
/* One reply envelope body arrived (TCP, TLS, Redis, NATS): split into an nc_reply_in (scanned without a
 * DOM or any allocation in the common case) and delivered as nc_client__on_reply does. Returns 0 or
 * NC_EPROTO (not JSON; `why` says why). */
int nc_client__on_body(nc_client *c, const char *body, size_t len, char *why, size_t whylen);
/* The same with what the transport carried beside the body: `extra`'s headers, status and trailers (its
 * id/value/err/final are ignored: the body has them). `extra` may be NULL. */
int nc_client__on_body_ex(nc_client *c, const char *body, size_t len, const nc_reply_in *extra, char *why,
                          size_t whylen);
/* Sends a pending request again, byte for byte (the encoded request is kept until the call ends): the
 * ground for retries. Queued for the connection when it is not connected. Returns 0, NC_ESTATE (stale
 * handle, finished call, or an event) or the transport's send error (the call then fails with it). */
int nc_call__resend(nc_call *call);
/* The request id of a live call (NUL-terminated, borrowed), or NULL. */
const char *nc_call__id(const nc_call *call);
/* A status event the transport knows of and the core does not: "reconnecting" while a broker
 * transport re-establishes its connections behind a connected client (pending calls are kept). */
void nc_client__status(nc_client *c, const char *status, int err);
/* Fails one pending request (by its id) with a local error: a transport-level answer such as NATS's "no
 * responders". Nothing happens if the request is no longer pending. */
void nc_client__fail_call(nc_client *c, const char *id, int err, const char *msg);
/* A hook resumed a held call (nc_hook_resume; `call` is the hook record's owner): it goes, or fails with
 * the record's hold_err, from the deadline timer right after the current callback. */
void nc_client__resume(nc_client *c, void *call);
/* An error event for the application's error callback. */
void nc_client__error(nc_client *c, int err, const char *msg);

#endif
