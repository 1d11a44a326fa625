/* What a server transport may see of the core: the options and the calls it makes into the core. The
 * server's own structs stay in core/server_internal.h. Private. */
#ifndef NC_CORE_SERVER_TRANSPORT_H
#define NC_CORE_SERVER_TRANSPORT_H

#include "core/log.h"
#include "io/ioctx.h"
#include "nestc/server.h"
#include "core/options.h"
#include "transport/transport.h"

/* Options with defaults applied and strings copied. */
typedef struct nc_server_cfg {
    long long max_buffer_size;      /* 0 = off */
    long long max_send_buffer_size; /* 0 = off */
    int incomplete_timeout_ms;      /* 0 = off */
    int shutdown_timeout_ms;
    int handshake_timeout_ms; /* TLS, 0 = off */
    int retry_attempts, retry_delay_ms;
    int has_tls;
    nc_tls_opts tls; /* owned copies */
    int has_codec;
    nc_codec codec;
    int workers;   /* loops in all (1 = just this one) */
    int reuseport; /* listen with SO_REUSEPORT: this server is one of several workers */
} nc_server_cfg;

/* ---- calls for transports ----------------------------------------------------------------------- */
/* Accessors (server.c): cheap, but transports that need one per message keep the pointer they return
 * (it is stable for the server's life). */
const nc_server_cfg *nc_server__cfg(nc_server *s);
nc_ioctx *nc_server__io(nc_server *s);
const nc_logger *nc_server__log(nc_server *s);
const char *nc_server__scheme(nc_server *s);
/* The server's validated transport options (URL parameters and nc_server_opts.options). */
const nc_optset *nc_server__opts(nc_server *s);

/* Decodes one body (the JSON text of a packet; ignored when in->parts is set) and dispatches it. Returns
 * 0, or NC_EPROTO when the body is not JSON and NC_IN_JSON_OR_STRING is not set (`why` gets the reason;
 * TCP then closes the connection as NestJS does). *in->outcome (if set) receives what happened; a
 * delivery (in->delivery.set) that reached no handler (NC_DISPATCH_FAILED, NC_DISPATCH_NO_HANDLER) is
 * settled with NC_SETTLE_REJECT before this returns, any other is settled once later (settle.c). */
int nc_server__dispatch(nc_server *s, const char *body, size_t len, const nc_inbound *in, char *why,
                        size_t whylen);
void nc_server__status(nc_server *s, const char *status, int err);
/* The transport finished closing every handle (after drain() or close()). */
void nc_server__closed(nc_server *s);
/* A reply sink went away for good (a TCP/TLS connection closed): the requests that answer to it are
 * cancelled (nc_request_on_cancel). */
void nc_server__peer_gone(nc_server *s, void *peer);
/* Feed a request's inbound stream (token from nc_inbound.stream_token): one value's JSON text, then the
 * end (err 0: the caller ended its side). Values after the request finished are dropped: NC_ESTATE. */
/* A watched peer's pending reply bytes went down (nc_peer_ops.watch): requests on it whose handler saw
 * "not writable" and whose bytes are now at or under their low-water mark get their drain callback. From a
 * loop callback of the transport's (a read, a write completion), never from inside nc_peer_ops.reply. */
void nc_server__peer_writable(nc_server *s, void *peer);
int nc_server__stream_value(nc_server *s, uint64_t token, const char *json, size_t len);
int nc_server__stream_end(nc_server *s, uint64_t token, int err);

#endif
