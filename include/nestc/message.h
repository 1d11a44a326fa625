/* nestc — incoming messages and replies (the handler side).
 *
 * A server calls a handler for every incoming message whose pattern matches:
 *   - a request handler (NestJS @MessagePattern) gets an nc_request to answer, now or later, once or
 *     as a stream;
 *   - an event handler (NestJS @EventPattern) gets only the message; nothing is sent back.
 * Handlers run on the server's loop thread. */
#ifndef NESTC_MESSAGE_H
#define NESTC_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "nestc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

struct uv_loop_s;

/* The incoming message and its context (NestJS's payload plus TcpContext/RedisContext/...).
 * For a request it lives until the request is finished; for an event, until the handler returns. */
typedef struct nc_msg nc_msg;

/* A request awaiting its reply stream. Owned by the server until it is finished.
 * An nc_request * is a handle, not a pointer to memory: it holds an id with a generation, and every call
 * taking one looks it up first. Once the request is finished (its stream ended, or its server freed it)
 * the handle is stale: calls return NC_ESTATE (accessors NULL/false) instead of touching freed or reused
 * memory, and a value passed to a refused call is still released (stolen). Never dereference it. */
typedef struct nc_request nc_request;

/* The payload (NestJS `data`). Borrowed: owned by the message, valid as long as the message. Never NULL
 * (JSON null is returned as a json_null()). Built on first call from the wire text. */
NC_API json_t *nc_msg_data(const nc_msg *m);

/* The payload as compact JSON text (not NUL-terminated), borrowed like nc_msg_data. *len receives the
 * length. Cheaper than nc_msg_data when the handler only forwards the payload. */
NC_API const char *nc_msg_data_json(const nc_msg *m, size_t *len);

/* The route string of the handler that matched (NestJS normalised pattern), e.g. {"cmd":"sum"}. */
NC_API const char *nc_msg_route(const nc_msg *m);

/* The pattern as received, as text: a received string as is, any other value as its JSON text in the
 * received key order (NestJS TcpContext.getPattern()). */
NC_API const char *nc_msg_pattern(const nc_msg *m);

/* The transport's scheme name: "tcp", "tls", "redis", ... */
NC_API const char *nc_msg_transport(const nc_msg *m);

/* The concrete channel / subject / topic / queue the message arrived on, or NULL (TCP has none). */
NC_API const char *nc_msg_channel(const nc_msg *m);

/* ---- headers -------------------------------------------------------------------------------------
 * Transport headers (NATS message headers today; AMQP/Kafka headers, gRPC metadata later) in the order
 * received, names and values as the bytes received (not NUL-terminated, values may hold any byte), a
 * name possibly repeated. Borrowed like the message. Loop thread. */

/* The number of headers (0 when the transport has none). */
NC_API size_t nc_msg_header_count(const nc_msg *m);

/* Header i (0-based): name and value with their lengths (any out pointer may be NULL). Returns 0, or
 * NC_ENOENT when i >= nc_msg_header_count(m). */
NC_API int nc_msg_header_at(const nc_msg *m, size_t i, const char **name, size_t *name_len,
                            const char **value, size_t *value_len);

/* The value of the first header named `name` (case-sensitive, as sent), *len its length; NULL if none. */
NC_API const char *nc_msg_header(const nc_msg *m, const char *name, size_t *len);

/* The headers as a JSON object (borrowed), or NULL when the transport has none; kept for compatibility,
 * built on first call from the list above: a repeated name keeps its first value, values are decoded as
 * Node decodes them (U+FFFD for ill-formed UTF-8), a name that is not UTF-8 is left out. */
NC_API json_t *nc_msg_headers(const nc_msg *m);

/* ---- transport context ----------------------------------------------------------------------------
 * What the transport knows about a message beyond its payload (NestJS's RmqContext, KafkaContext, ...),
 * read by key. Each key says which transports fill it; a key a transport does not fill is absent. */
typedef enum nc_ctx_key {
    NC_CTX_REPLY_TO = 1,        /* text: where replies go: NATS reply subject, RMQ replyTo, Kafka topic */
    NC_CTX_CORRELATION_ID = 2,  /* text: RMQ correlationId, Kafka/gRPC correlation, MQTT 5 Correlation Data
                                 * (bytes as sent: not necessarily UTF-8) */
    NC_CTX_KEY = 3,             /* text: Kafka record key */
    NC_CTX_EXCHANGE = 4,        /* text: RMQ exchange */
    NC_CTX_ROUTING_KEY = 5,     /* text: RMQ routing key */
    NC_CTX_CONSUMER_TAG = 6,    /* text: RMQ consumer tag */
    NC_CTX_SUBJECT = 7,         /* text: NATS subject the message was published to */
    NC_CTX_PARTITION = 8,       /* number: Kafka partition */
    NC_CTX_OFFSET = 9,          /* number: Kafka offset */
    NC_CTX_DELIVERY_TAG = 10,   /* number: RMQ delivery tag */
    NC_CTX_DELIVERY_COUNT = 11, /* number: deliveries so far, this one included (1 = first; JetStream;
                                 * RMQ: a quorum queue's x-delivery-count header + 1, else when not
                                 * redelivered 1 + the x-death counts naming the queue (a retry loop);
                                 * absent for a classic queue's redelivery: not counted) */
    NC_CTX_REDELIVERED = 12,    /* number 0/1: RMQ redelivered flag, MQTT DUP flag */
    NC_CTX_TIMESTAMP_MS = 13,   /* number: broker timestamp in ms since the epoch (Kafka, RMQ) */
    NC_CTX_QOS = 14,            /* number: MQTT QoS */
    NC_CTX_RETAIN = 15,         /* number 0/1: MQTT retain flag */
    NC_CTX_MESSAGE_ID = 16,     /* text: RMQ messageId, MQTT packet id as text */
    NC_CTX_CONTENT_TYPE = 17,   /* text: MQTT 5 Content Type, RMQ content-type */
    NC_CTX_MESSAGE_EXPIRY =
        18, /* number: MQTT 5 Message Expiry Interval, seconds left as the broker sent it */
    NC_CTX_PAYLOAD_FORMAT = 19, /* number 0/1: MQTT 5 Payload Format Indicator (1: UTF-8) */
    NC_CTX_RESPONSE_TOPIC = 20, /* text: MQTT 5 Response Topic of the PUBLISH (NestJS replies on
                                 * <topic>/reply, NC_CTX_REPLY_TO, whatever it says) */
    /* AMQP basic properties of a RabbitMQ delivery (what NestJS shows as ctx.getMessage().properties),
     * each present only when the publisher set it; RMQ also fills NC_CTX_CONTENT_TYPE, NC_CTX_MESSAGE_ID
     * and NC_CTX_TIMESTAMP_MS (the property's seconds * 1000) */
    NC_CTX_PRIORITY = 21,   /* number 0-255: RMQ priority */
    NC_CTX_EXPIRATION = 22, /* text: RMQ expiration, the per-message TTL in ms as the publisher wrote it */
    NC_CTX_TYPE = 23,       /* text: RMQ type */
    NC_CTX_APP_ID = 24,     /* text: RMQ app-id */
    NC_CTX_USER_ID = 25,    /* text: RMQ user-id (RabbitMQ checked it against the publisher's login) */
    NC_CTX_CONTENT_ENCODING = 26, /* text: RMQ content-encoding */
    NC_CTX_DELIVERY_MODE = 27,    /* number: RMQ delivery-mode (1 transient, 2 persistent) */
    NC_CTX_TIMEOUT_MS = 28,       /* number: the caller's deadline as sent, in ms from the request's
                                   * arrival (gRPC grpc-timeout, rounded up); the request is cancelled
                                   * when it passes */
} nc_ctx_key;

/* The numeric value of `key` into *out. Returns 0, or NC_ENOENT when the transport did not fill it (or it
 * is text only). */
NC_API int nc_msg_ctx_int(const nc_msg *m, nc_ctx_key key, int64_t *out);

/* The text value of `key` (borrowed like the message, not NUL-terminated; *len its length), or NULL when
 * absent. */
NC_API const char *nc_msg_ctx_str(const nc_msg *m, nc_ctx_key key, size_t *len);

/* The packet `metadata` object (NestJS 12 dispatch hook; trace ids ...), borrowed, or NULL. */
NC_API json_t *nc_msg_metadata(const nc_msg *m);

/* 1 when the message is an event (no reply expected), 0 for a request. */
NC_API int nc_msg_is_event(const nc_msg *m);

/* The loop the request is served on (borrowed): where to start timers or other async work that ends in
 * a reply. With several workers each has its own loop; use this rather than nc_server_loop. NULL once
 * the request is finished. */
NC_API struct uv_loop_s *nc_request_loop(const nc_request *req);

/* The message of a request (borrowed, valid until the request is finished). NULL once it is finished. */
NC_API const nc_msg *nc_request_msg(const nc_request *req);

/* The address of the peer that sent the request, "ip:port" (IPv6 without brackets), on transports with a
 * connection per client (TCP, TLS, gRPC); NULL on brokers (the peer is the broker), for an unknown peer or
 * once the request is finished. Borrowed: valid while the request is unfinished. Loop thread. */
NC_API const char *nc_request_peer(const nc_request *req);

/* ---- replying (loop thread) ---------------------------------------------------------------------
 * Every request must be finished exactly once: by nc_reply, nc_reply_end, nc_reply_error or
 * nc_reply_error_msg. After that the handle is stale: every call on it returns NC_ESTATE (a second
 * nc_reply included) and changes nothing. Values are STOLEN (like jansson's *_new functions), even by a
 * refused call: the library releases the reference, so `nc_reply(req, json_integer(6))` does not leak.
 * A NULL value means JavaScript `undefined` (a packet without `response`): a NestJS caller's
 * lastValueFrom() then fails with EmptyError. jansson's json_real() returns NULL for NaN and ±infinity,
 * so `nc_reply(req, json_real(x))` with a non-finite x replies undefined: build numbers from C doubles
 * with nc_json_number, which gives null for them, as JavaScript's JSON.stringify writes them.
 * If the peer has gone, replies are discarded silently; the request must still be finished.
 * Returns 0, NC_ESTATE if the request was already finished (NC_EINVAL for a NULL handle), NC_ENOMEM. */

/* One value, then the end of the stream (NestJS: returning a value or a resolved Promise). */
NC_API int nc_reply(nc_request *req, json_t *value);

/* nc_reply with the value given as JSON text (copied before the call returns): forwards a payload or a
 * prepared answer without building a jansson value, e.g. an echo:
 *   size_t n; const char *t = nc_msg_data_json(msg, &n); nc_reply_json(req, t, n);
 * Text that is not one JSON value (UTF-8) fails the request with "Internal server error" and returns
 * NC_EINVAL. */
NC_API int nc_reply_json(nc_request *req, const char *json, size_t len);

/* One value of a stream; more may follow (NestJS: an Observable emission). */
NC_API int nc_reply_next(nc_request *req, json_t *value);

/* The end of the stream (Observable completion). When it follows a value in the same loop iteration the
 * value and the end travel in one packet, exactly as NestJS does. */
NC_API int nc_reply_end(nc_request *req);

/* Fails the request with `err` as the error value (stolen), like throwing RpcException(object).
 * `err` NULL is treated as "Internal server error". */
NC_API int nc_reply_error(nc_request *req, json_t *err);

/* Fails the request like RpcException(message): the error value is {"status":"error","message":msg}. */
NC_API int nc_reply_error_msg(nc_request *req, const char *msg);

/* Encode non-finite numbers as JavaScript does: JSON.stringify writes NaN, Infinity and -Infinity as
 * null, so this returns json_null() for them, where json_real() would return NULL (undefined once
 * replied, see nc_reply). Otherwise a NEW reference: an integer when `d` is integral and exactly held
 * (|d| <= 2^53; -0 gives 0, as JSON.stringify(-0) is "0"), else a real. NULL only when out of memory.
 * For replies, request data, events and any value nestc writes. Any thread. */
NC_API json_t *nc_json_number(double d);

/* ---- replying from another thread ------------------------------------------------------------------
 * Thread-safe: queues the reply and wakes the loop, which applies it in order. Same ownership rules;
 * the value must not be touched by the caller afterwards. `kind` selects the call above.
 * A request already finished is refused at once (NC_ESTATE, the value released). A request that finishes
 * after the reply was queued but before its loop applies it (e.g. cancelled and ended by its cancel
 * callback) is looked up again by the loop: the queued reply is then dropped safely and its value
 * released. The request's server must not be freed while another thread may still call this. */
typedef enum nc_reply_kind {
    NC_REPLY_VALUE = 0, /* nc_reply */
    NC_REPLY_NEXT = 1,  /* nc_reply_next */
    NC_REPLY_END = 2,   /* nc_reply_end (value ignored, must be NULL) */
    NC_REPLY_ERROR = 3, /* nc_reply_error */
} nc_reply_kind;
NC_API int nc_reply_threadsafe(nc_request *req, nc_reply_kind kind, json_t *value);

/* ---- JSON from the peer: what a handler sees ------------------------------------------------------
 * nestc reads every payload as NestJS does (JSON.parse), so it answers what NestJS answers (docs/json.md).
 * In the jansson values it gives (nc_msg_data, nc_msg_metadata, reply values on a client):
 * - Strings are UTF-8, except that a lone UTF-16 surrogate — JSON.parse accepts "ab\ud83d", what
 *   JavaScript produces when a string is cut inside an emoji — is kept as WTF-8: the surrogate's code point
 *   in the 3-byte form (ED A0..BF 80..BF). Such a string is not valid UTF-8: json_string_value() and
 *   json_string_length() give it as is, jansson's json_string() would refuse it (build one with
 *   json_stringn_nocheck()). nestc writes it back as "\udxxx" (lowercase), as JSON.stringify does, so an
 *   echo is byte for byte NestJS's; a pair of escapes is one ordinary 4-byte UTF-8 character. Other bytes
 *   that are not UTF-8 in a string you build are written as U+FFFD, as the peer would decode them.
 * - A channel or subject (nc_msg_channel) that is not UTF-8 is given as Node decodes it: U+FFFD for each
 *   ill-formed sequence. So are ill-formed bytes in a TCP/TLS frame or a Redis message body: NestJS
 *   decodes the bytes before JSON.parse, so a string holding them is U+FFFD, never the raw bytes.
 * - Numbers beyond the double range (1e400) are JSON.parse's Infinity: a real holding +/-HUGE_VAL (it
 *   adds, compares and is truthy as in JavaScript), written back as null like JSON.stringify. Integers
 *   beyond int64 are reals (JavaScript numbers); integers beyond 2^53 are written as JavaScript would.
 * - Nesting goes up to 10,000 levels (NestJS answers at 2,100); a deeper message is dropped with a log
 *   line and the connection is kept. nestc parses, writes and frees such values without recursion, but
 *   jansson's own json_deep_copy(), json_equal() and a last json_decref() recurse once per level: fine
 *   on a default thread stack, not on a tiny one. (json_dumps() refuses more than 2048 levels; nc_reply
 *   writes them.)
 * - nc_msg_data_json() gives the payload's text in JSON.stringify's form whenever the received text had
 *   escapes or whitespace. */

/* Handler signatures. `user` is the pointer given at registration. */
typedef void (*nc_request_fn)(nc_request *req, const nc_msg *msg, void *user);
typedef void (*nc_event_fn)(const nc_msg *msg, void *user);

/* ---- settling (loop thread) ----------------------------------------------------------------------
 * Brokers that deliver "at least once" (RabbitMQ, JetStream, Kafka commits) want each message settled:
 * acknowledged, refused with or without requeue, or rejected (dead-lettered). Every message is settled
 * exactly once:
 * - by default the core does it: a request is acked when it finishes (its reply stream ended, or it
 *   failed with an error reply); an event is acked when its handlers return, unless one kept it
 *   (nc_event_keep); a message no handler matched is rejected (RabbitMQ: nack without requeue, as NestJS);
 * - a request handler takes over with nc_request_settle_manually, then calls nc_request_ack/nack/reject
 *   once, before or after replying (settling and replying are independent); a request so taken over is
 *   alive until it is both finished and settled. If its server frees it unsettled (close), the core nacks
 *   it with requeue, so the broker redelivers it.
 * - a kept event is settled with nc_event_ack/nack/reject (see nc_event_keep).
 * A second settle of one message returns NC_ESTATE. On transports that do not settle (TCP, TLS, Redis
 * pub/sub, core NATS) every settling call succeeds and does nothing, so a handler is written once. */
typedef enum nc_settle {
    NC_SETTLE_ACK = 0,          /* done with it */
    NC_SETTLE_NACK = 1,         /* failed: do not deliver again (RabbitMQ: nack, requeue false) */
    NC_SETTLE_NACK_REQUEUE = 2, /* failed: deliver again */
    NC_SETTLE_REJECT = 3,       /* refused as invalid: dead-letter it (RabbitMQ: reject) */
} nc_settle;

/* The handler settles this request itself (auto-ack off). Returns 0, NC_ESTATE (finished or already
 * settled). */
NC_API int nc_request_settle_manually(nc_request *req);
/* Settle the request's message (each implies nc_request_settle_manually). Returns 0 or NC_ESTATE (already
 * settled, or finished and settled). */
NC_API int nc_request_ack(nc_request *req);
NC_API int nc_request_nack(nc_request *req, bool requeue);
NC_API int nc_request_reject(nc_request *req);

/* ---- kept events (loop thread) ---------------------------------------------------------------------
 * An event's message lives until its handlers return. A handler that needs it longer (async work, then
 * settle) keeps it: nc_event_keep copies what the message borrows from the packet (only then: an event
 * nobody keeps costs no allocation) and returns a handle that owns the message until it is settled.
 * Several handlers of one event may each keep it (each gets its own handle); the delivery is settled
 * once, when every keeper settled and the handlers returned, with the strongest outcome asked: reject >
 * nack > nack with requeue > ack (ack only if every keeper acked). Each settling call finishes its
 * handle: later calls on it return NC_ESTATE (accessors NULL). Kept events do not hold up a graceful
 * close (nc_server_close); one still unsettled when its server is freed is nacked with requeue and its
 * handles become stale. */
typedef struct nc_event nc_event;

/* Inside an event handler, for the message it was given: keeps it. Returns the handle, or NULL (not an
 * event handler's message, or out of memory). */
NC_API nc_event *nc_event_keep(const nc_msg *msg);
/* The kept message (borrowed, valid until the handle is settled), or NULL once settled. */
NC_API const nc_msg *nc_event_msg(const nc_event *ev);
/* The loop the event was delivered on, or NULL once settled. */
NC_API struct uv_loop_s *nc_event_loop(const nc_event *ev);
/* Settle and release the handle. Return 0 or NC_ESTATE (already settled). */
NC_API int nc_event_ack(nc_event *ev);
NC_API int nc_event_nack(nc_event *ev, bool requeue);
NC_API int nc_event_reject(nc_event *ev);

/* ---- inbound streams (loop thread) -----------------------------------------------------------------
 * A request may carry a stream of values from the caller (client-streaming and bidirectional calls, on
 * transports that have them: gRPC later; none of today's). The handler subscribes once; values that
 * arrived before are buffered (at most 64 values or 1 MiB of text; beyond that the stream ends with
 * NC_ETOOBIG) and delivered at subscription, in order. `json` is the value's JSON text, borrowed for the
 * call. on_end runs once: err 0 when the caller ended its side, else the error (NC_ECANCELED when the
 * request was cancelled, NC_ETOOBIG). Nothing runs after the request finished. */
typedef void (*nc_stream_value_fn)(nc_request *req, const char *json, size_t len, void *arg);
typedef void (*nc_stream_end_fn)(nc_request *req, int err, void *arg);
/* Returns 0, NC_ESTATE (finished, or already subscribed), NC_EUNSUPPORTED (the request has no inbound
 * stream: a request/reply or server-streaming call). */
NC_API int nc_request_on_stream(nc_request *req, nc_stream_value_fn on_value, nc_stream_end_fn on_end,
                                void *arg);

/* ---- reply metadata, status and trailers (loop thread) ---------------------------------------------
 * Where the transport carries them (gRPC metadata, status and trailers; NATS message headers), a reply
 * may have headers (sent with the first packet), a final status and trailers (sent with the last).
 * Transports ignore what they cannot carry: TCP, TLS and Redis carry none; NATS carries the headers as
 * message headers on the first reply message, not the status or trailers. Names and values are copied;
 * a name may repeat. Return 0, NC_ESTATE (finished, or headers after the first packet went), NC_EINVAL,
 * NC_ENOMEM. */
NC_API int nc_reply_header(nc_request *req, const char *name, const char *value, size_t len);
NC_API int nc_reply_status(nc_request *req, int code, const char *message);
NC_API int nc_reply_trailer(nc_request *req, const char *name, const char *value, size_t len);

/* ---- write backpressure for reply streams (loop thread) -------------------------------------------
 * nc_reply_next never refuses a value: it queues it. A handler producing a stream (an Observable's
 * emissions, gRPC server-streaming and bidi) asks whether the peer keeps up, as a Node writable stream's
 * write() returning false and its 'drain' event tell:
 *   - nc_reply_writable: 1 while the request's queued reply bytes are under its high-water mark, 0 when at
 *     or over it (pause producing), negative on error;
 *   - nc_request_on_drain: a callback run when, after nc_reply_writable said 0, the queued bytes went down to
 *     the low-water mark (half the high-water mark): resume producing.
 * What "queued" counts is the transport's (nc_reply_buffered): gRPC, a call's messages HTTP/2 flow control
 * holds back (the client's stream and connection windows) plus its connection's bytes not yet written to the
 * socket; TCP and TLS, the connection's write queue (shared by the requests on that connection); Redis, NATS,
 * MQTT, RabbitMQ and Kafka report 0 (always writable: their replies go to a broker connection whose buffer
 * the transport bounds itself). The high-water mark is NC_REPLY_HIGH_WATER_DEFAULT unless the handler gives
 * one. Nothing is counted for a request whose handler never asks: plain request/reply pays nothing. */
#define NC_REPLY_HIGH_WATER_DEFAULT (64 * 1024)

/* 1 when more replies can be queued now, 0 when the queued bytes are at or over the high-water mark (the
 * drain callback, if set, will run once they went down), NC_ESTATE (finished) or NC_EINVAL (NULL). A
 * cancelled request is writable (its replies go nowhere). */
NC_API int nc_reply_writable(nc_request *req);

/* The request's reply bytes queued and not yet sent, as the transport counts them (0 where it cannot tell).
 * Returns 0, NC_ESTATE or NC_EINVAL. */
NC_API int nc_reply_buffered(nc_request *req, size_t *bytes);

/* Called on the loop thread, from a transport's I/O callback (never from inside a nestc call on `req`),
 * when the request's queued bytes went down to the low-water mark after nc_reply_writable returned 0.
 * Once per 0 returned. `req` is valid during the call. */
typedef void (*nc_drain_fn)(nc_request *req, void *arg);

/* Sets the request's high-water mark in bytes (0: NC_REPLY_HIGH_WATER_DEFAULT) and its drain callback (fn
 * NULL: none; a later call replaces both). `arg` is borrowed until fn runs or the request is finished.
 * Returns 0, NC_ESTATE (finished), NC_EINVAL (NULL), NC_ENOMEM. */
NC_API int nc_request_on_drain(nc_request *req, size_t high_water, nc_drain_fn fn, void *arg);

/* ---- cancellation (loop thread) ------------------------------------------------------------------
 * A request is cancelled when nobody can receive its reply any more: the caller's TCP/TLS connection
 * closed, the server's shutdown deadline passed with the request unfinished (nc_server_close), or the
 * caller's deadline passed (transports that carry one, e.g. gRPC's timeout; a timer runs only for a
 * request that has a deadline).
 * Cancellation tells the handler to stop its work (timers, queries); it does not finish the request.
 * From then on every reply is discarded, and the request must still be finished exactly once (any
 * nc_reply* call, e.g. nc_reply_end) to release it, usually from the cancel callback itself. A request
 * still unfinished when its server is freed is freed with it (nc_server_free): its handle is stale then,
 * and calls on it return NC_ESTATE. */

/* Called once, on the loop thread, when `req` is cancelled: at the end of the loop iteration in which
 * the caller's connection closed (never from inside a nestc call on the same request), or at the
 * shutdown deadline. `req` is valid during the call and until the handler finishes it. */
typedef void (*nc_cancel_fn)(nc_request *req, void *arg);

/* Sets the request's cancel callback (one per request; a later call replaces it, fn NULL removes it).
 * If the request is already cancelled, fn runs at once, before this returns. Loop thread only; `arg` is
 * borrowed (the handler keeps it alive until fn runs or the request is finished). Returns 0, NC_ESTATE
 * (finished) or NC_EINVAL. */
NC_API int nc_request_on_cancel(nc_request *req, nc_cancel_fn fn, void *arg);

/* true once the request is cancelled (its replies go nowhere); false for a finished handle. Loop thread
 * only. */
NC_API bool nc_request_is_cancelled(const nc_request *req);

#ifdef __cplusplus
}
#endif
#endif
