/* The contract between the core and a transport. Each transport folder exports one server ops table and
 * one client ops table, registered by URL scheme in registry.c; the core never looks at a scheme.
 * All calls happen on the loop thread. Private. */
#ifndef NC_TRANSPORT_H
#define NC_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "codec/reply_pkt.h"
#include "core/options.h"
#include "core/url.h"
#include "nestc/message.h"
#include "util/header.h"

typedef struct nc_server nc_server;
typedef struct nc_client nc_client;

/* ---- replies: how the core answers one incoming request -------------------------------------------- */

/* The reply sink of an incoming request: usually the connection or the reply channel. */
typedef struct nc_peer_ops {
    /* Queues one packet for sending (nonblocking; batched per loop iteration). Returns 0, or an error if the
     * peer is gone (the core then drops the rest of that reply stream silently). */
    int (*reply)(void *peer, const nc_reply_pkt *pkt);
    /* The core holds the peer while a request on it is unfinished. */
    void (*retain)(void *peer);
    void (*release)(void *peer);
    /* Optional (NULL): the peer's address, "ip:port" (nc_request_peer: trace attributes). */
    const char *(*addr)(void *peer);
    /* Optional (NULL: the peer reports "always writable"): bytes of this peer's replies queued and not yet
     * handed to the kernel, what a streaming handler's writable signal compares with its high-water mark
     * (core/flow.c): a gRPC call's messages HTTP/2 flow control holds back plus its connection's unsent
     * bytes, a TCP connection's write queue. Cheap: called when a handler asks. */
    size_t (*pending)(void *peer);
    /* Optional (with pending): the core starts (on 1) or stops (on 0) watching the peer, counted (as many
     * 0s as 1s). While watched, the transport calls nc_server__peer_writable(srv, peer) after the peer's
     * pending bytes went down (bytes taken by the socket or by HTTP/2 flow control), from a loop callback of
     * its own, never from inside the reply op. */
    void (*watch)(void *peer, int on);
} nc_peer_ops;

/* What dispatch did with a message, for transports that act on it (a broker may dead-letter it). */
typedef enum nc_dispatch_outcome {
    NC_DISPATCH_HANDLED = 0,    /* a handler ran (or a request was answered) */
    NC_DISPATCH_NO_HANDLER = 1, /* no handler matched (requests got NestJS's "no handler" reply) */
    NC_DISPATCH_FAILED = 2,     /* not dispatched: not JSON, out of memory, dropped by a codec or depth */
} nc_dispatch_outcome;

/* One item of the transport context (nc_ctx_key in message.h): text (str/len) and/or a number (num).
 * Borrowed for the dispatch call; the core copies what outlives it. */
typedef struct nc_ctx_item {
    int key;         /* nc_ctx_key */
    const char *str; /* NULL when the item is a number */
    size_t len;
    int64_t num;
} nc_ctx_item;

/* A message handed as parts instead of an envelope body (AMQP properties, Kafka record headers, gRPC
 * paths): the core builds the message from these as it would from the envelope's keys. */
typedef struct nc_inbound_parts {
    const char *pattern; /* NUL-terminated pattern as received (e.g. the topic); NULL = the route */
    const char *id;      /* the request id or correlation id; NULL = an event (or is_event) */
    size_t id_len;
    int id_is_json;   /* id is JSON text (echoed as is); else raw bytes echoed as a JSON string */
    const char *data; /* the payload; NULL = undefined */
    size_t data_len;
    int data_is_json;     /* JSON text; else raw bytes given to handlers as a JSON string value */
    const char *reply_to; /* where replies go (informative: the peer sends them), or NULL */
    size_t reply_to_len;
    int is_event;
} nc_inbound_parts;

/* The token of one delivery for the transport's settle op. Copied by the core and kept until the
 * message is settled, possibly long after the dispatch call: `conn` lets the transport recognise a
 * token from a connection (or channel) it has since replaced, and ignore it. */
typedef struct nc_delivery {
    uint64_t tag;
    uint32_t conn;
    uint32_t set; /* nonzero: the message awaits settling (0: nothing to settle, e.g. auto-ack) */
} nc_delivery;

/* nc_inbound.flags */
/* NestJS's rule for foreign bodies: a body that is not JSON is the raw string (an event whose data is the
 * body as a JSON string), instead of a protocol error (MQTT, Redis foreign publishers). */
#define NC_IN_JSON_OR_STRING 0x1u
/* NestJS's rule for bodies it decodes like Node before JSON.parse (NATS: msg.json()): ill-formed UTF-8
 * becomes U+FFFD per ill-formed sequence, then the text is parsed; a falsy JSON body (null, false, 0, "") is
 * kept as the data of an event, not replaced by {}; a body that is still not JSON is refused (logged, no
 * string fallback). NC_IN_JSON_OR_STRING implies all of this and adds the string fallback. */
#define NC_IN_JSON_NODE_DECODED 0x2u

/* What a transport hands the core with each incoming message. Everything is borrowed for the call. */
typedef struct nc_inbound {
    const char *channel; /* concrete channel/subject/topic, or NULL */
    /* The route to dispatch on, or NULL to use the packet's `pattern` (TCP). Broker transports dispatch on
     * the subscription the message came through (a channel, or a wildcard pattern), as NestJS does. */
    const char *route;
    /* Ordered headers (byte values, names may repeat), or NULL. Non-NULL with nheaders 0 = an empty
     * header block (nc_msg_headers gives {} rather than NULL). */
    const nc_header *headers;
    size_t nheaders;
    const nc_ctx_item *ctx; /* transport context for nc_msg_ctx_*, or NULL */
    size_t nctx;
    const nc_inbound_parts *parts; /* non-NULL: the message as parts; the body is ignored */
    void *peer;                    /* reply sink; NULL = replies impossible (broadcast) */
    const nc_peer_ops *peer_ops;
    int utf8_valid;       /* the transport already checked the body is UTF-8 (the TCP framer does) */
    unsigned flags;       /* NC_IN_* */
    nc_delivery delivery; /* for the settle op; delivery.set 0 = nothing to settle */
    /* Requests: cancel the request this long after dispatch (a caller's deadline); 0 = none (no timer). */
    uint32_t deadline_ms;
    /* Requests with an inbound stream (client-streaming, bidi): *stream_token receives the token to feed
     * values with nc_server__stream_value/_end (0 if the message was not a request). */
    int stream_in;
    uint64_t *stream_token;
    nc_dispatch_outcome *outcome; /* if non-NULL, receives the outcome */
} nc_inbound;

/* ---- server side ---------------------------------------------------------------------------------- */

typedef struct nc_server_transport {
    /* The URL schemes this table serves, NULL-terminated ({"tcp", "tls", NULL}); create() reads which
     * one from the URL. */
    const char *const *schemes;
    /* The options this transport takes (nestc/options.h), ended by an entry with name NULL; NULL = none.
     * The core validates URL parameters and every level's options against it; the transport reads the
     * values with the nc_opts_* getters (the server's set: nc_server__opts). The client table of the
     * same scheme points to the same array, so a misplaced option is named as such. */
    const nc_option_spec *options;
    /* Several servers may listen on one address (SO_REUSEPORT), so nc_server_opts.workers works. */
    int supports_workers;
    /* Allocates the transport state from the URL and the server's options (nc_server_options(srv)).
     * Nothing is opened. Returns 0 or an nc_err with a log line. */
    int (*create)(nc_server *srv, const nc_url *url, void **state);
    /* The transport reports "connected" itself (nc_server__status) once it is really serving, e.g. when
     * its subscriptions are confirmed; otherwise the core reports it when listen() returns. */
    int reports_connected;
    /* Starts listening / subscribing (nonblocking where possible). */
    int (*listen)(void *state);
    /* A route got its first handler (broker transports subscribe to it). opts: the route's handler options
     * (validated against `options`; its parent is the server's set, so nc_opts_str(opts, "x") gives the
     * handler's value, else the server's, else the default). Never NULL. May be NULL. */
    int (*route_added)(void *state, const char *route, const nc_optset *opts);
    /* Graceful close, phase 1: stop taking new work (stop accepting, unsubscribe). */
    void (*stop_accepting)(void *state);
    /* Phase 2: close every connection and handle; call nc_server__closed(srv) once all are closed. */
    void (*close)(void *state);
    /* Frees the state (after close completed). */
    void (*destroy)(void *state);
    /* The bound port, or 0. May be NULL. */
    int (*port)(void *state);
    /* Graceful close, phase 2 when no request is in flight (nonblocking): send everything already
     * queued, then end each connection after its last byte (TCP: FIN, TLS: close_notify; brokers:
     * unsubscribed, queued publishes written, QUIT) and call nc_server__closed(srv) once all are closed.
     * close() may follow while this is under way (the shutdown deadline passed) and must then finish at
     * once. May be NULL: close() is used instead, and should then be graceful itself. */
    void (*drain)(void *state);
    /* Settles one delivery (d as given in nc_inbound.delivery). Called on the loop
     * thread, at most once per delivery, possibly after a reconnect (check d->conn). NULL: the transport
     * does not settle (TCP, TLS, Redis pub/sub, core NATS) and the settling calls are no-ops. */
    void (*settle)(void *state, const nc_delivery *d, nc_settle how);
    /* nc_server_set_health (status: nc_health's numbers): the transport's health service reports it. NULL:
     * no health service (nc_server_set_health gives NC_EUNSUPPORTED). */
    int (*set_health)(void *state, const char *service, int status);
} nc_server_transport;

/* ---- client side ---------------------------------------------------------------------------------- */

/* One outgoing request or event, already encoded as a body. */
typedef struct nc_outbound {
    const char *route; /* the normalised pattern (channel on brokers) */
    /* JSON text of the pattern as the caller gave it (object keys in the caller's order), NUL-terminated:
     * NestJS's JSON.stringify(pattern), for transports that put that on the wire (RabbitMQ's routing key) */
    const char *pattern_json;
    const char *body; /* encoded packet */
    size_t len;
    const char *id; /* request id (NUL-terminated), NULL for events */
    /* A call made with nc_client_call (it has a handle, given to the caller or to on_headers): the caller may
     * write more request messages (nc_call_write) and ends the request with nc_call_end. 0 for nc_client_send
     * (and the sync send): the data is the whole request, a request stream of one message, then its end. */
    int writable;
    const json_t *headers; /* transport headers (object of strings), NULL when none; borrowed */
    /* The call's options (level NC_OPT_CALL, validated; parent: the client's set), NULL when none. */
    const nc_optset *opts;
    /* Requests: the time left before the call's timeout when it is handed over (ms, at least 1), for
     * transports that tell the peer (gRPC's grpc-timeout); 0 = the call has no timeout. */
    uint32_t deadline_ms;
    /* Events only: called once the transport accepted the event (err 0) or failed. The transport may hold
     * `arg` until then, even across a closing client, up to the close callbacks of its handles: the core
     * keeps the call until this (or refused) ran. An event whose timeout passed first has already told its
     * caller NC_ETIMEDOUT; the callback then only frees the call. */
    void (*accepted)(void *arg, int err);
    void *arg;
    /* Filled by send() when it fails for a reason worth more than the error's name (the call's message). */
    char why[200];
    /* Events only, instead of accepted(): the broker refused the event (err: NC_EAUTH for a permission,
     * else NC_EPROTO), msg its words. Set by the core; a transport that has no words calls accepted(). */
    void (*refused)(void *arg, int err, const char *msg);
} nc_outbound;

/* One reply packet as the transport read it, in parts, whatever carried them: an envelope body (TCP,
 * Redis, NATS: nc_client__on_body splits it), AMQP properties (correlationId), Kafka record headers, gRPC
 * frames. Everything is borrowed for the duration of nc_client__on_reply. */
typedef struct nc_reply_in {
    /* The request id this answers. id_is_json: it is JSON text as found in an envelope body (`"ab12"`,
     * or a number NestJS peers may send); else the raw bytes of a property or header (`ab12`). */
    const char *id;
    size_t id_len;
    int id_is_json;
    const char *value; /* JSON text of one reply value, or NULL (undefined: nothing to deliver) */
    size_t value_len;
    const char *err; /* JSON text of the error value (only when JavaScript-truthy), or NULL */
    size_t err_len;
    int final; /* isDisposed / the last record: the reply stream ends (an err is always final) */
    const nc_header *headers; /* reply headers/metadata, in wire order; NULL when none */
    size_t nheaders;
    int has_status; /* a final status (gRPC): code and message, else 0 */
    int status_code;
    const char *status_msg;
    size_t status_msg_len;
    const nc_header *trailers; /* with the final packet, where the transport has them */
    size_t ntrailers;
} nc_reply_in;

typedef struct nc_client_transport {
    const char *const *schemes; /* as in nc_server_transport */
    /* As nc_server_transport.options (the client's set: nc_client__opts). */
    const nc_option_spec *options;
    /* Events carry the normalised route string as their pattern (NestJS ClientTCP does this). */
    int event_pattern_is_route;
    int (*create)(nc_client *cli, const nc_url *url, void **state);
    /* Opens the connection (nonblocking). Reports with nc_client__connected / nc_client__disconnected. */
    int (*connect)(void *state);
    /* Sends one packet. Only called while connected. Returns 0 or an error (the call fails at once). */
    int (*send)(void *state, nc_outbound *out);
    /* A request ended locally (completed, timed out, failed): brokers drop reply subscriptions. May be NULL.
     */
    void (*forget)(void *state, const char *route, const char *id);
    /* Request streams (client-streaming and bidirectional calls). write() sends one more value of the
     * call's request stream: out->body is the value's JSON text, out->id and out->route the call's.
     * end() half-closes the caller's side (out->body NULL). Both NULL when the transport has no request
     * streams (TCP, TLS, Redis, NATS: NestJS has none there); nc_call_write then returns NC_EUNSUPPORTED. */
    int (*write)(void *state, nc_outbound *out);
    int (*end)(void *state, nc_outbound *out);
    /* The caller cancelled a request (nc_call_cancel): tell the peer where the transport can (gRPC
     * RST_STREAM). forget() follows as for any ended request. May be NULL. */
    void (*cancel)(void *state, const char *route, const char *id);
    /* Closes the connection; nc_client__disconnected follows once it is closed. */
    void (*close)(void *state);
    /* The underlying handle, or NULL. */
    void *(*unwrap)(void *state);
    /* Frees the state; only after the connection is closed. */
    void (*destroy)(void *state);
} nc_client_transport;

/* Scheme lookup (registry.c). NULL when unknown. */
const nc_server_transport *nc_server_transport_find(const char *scheme);
/* Adds a server transport at run time (tests register a transport of their own). Not thread-safe: call
 * before creating servers. Returns 0, or NC_ENOMEM when the extra slots are full. */
int nc_transport_register_server(const nc_server_transport *tp);
const nc_client_transport *nc_client_transport_find(const char *scheme);

#endif
