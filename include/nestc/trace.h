/* nestc — W3C trace context (https://www.w3.org/TR/trace-context/) on every transport, as a hook set
 * (nestc/hooks.h, docs/observability.md "Trace context").
 *
 *   nc_trace_enable_server(srv, NULL);   // read traceparent/tracestate, open a SERVER span per message
 *   nc_trace_enable_client(cli, NULL);   // every call is a CLIENT span, child of the current span
 *
 *   static void handler(nc_request *req, const nc_msg *m, void *u) {
 *       nc_client_send(downstream, ...);   // inside the handler: a child of this message's span
 *       nc_trace_ctx here;
 *       nc_request_trace(req, &here);      // kept for later (async) calls:
 *   }
 *   ... later, on the loop thread:
 *   nc_trace_ctx saved = nc_trace_set_current(&here);
 *   nc_client_send(downstream, ...);       // a child of the request's span too
 *   nc_trace_set_current(&saved);
 *
 * Incoming: the `traceparent` (and `tracestate`) transport header (NATS headers, MQTT 5 user properties,
 * AMQP and Kafka headers, gRPC metadata), else the key of the packet `metadata` object (TCP, TLS, Redis:
 * NestJS 12 metadata). Validated strictly: version 00, 55 characters, lowercase hex, trace id and parent
 * id not all zero, flags two hex digits; an invalid one is ignored and the message starts a new trace.
 * Outgoing: a client call carries `traceparent` (and `tracestate` when there is one) both as a transport
 * header and as a packet metadata key; transports without one of the two ignore it.
 *
 * "Current" span: per thread. The server set makes a message's span current from on_handler_start to
 * on_handler_return (the handler's synchronous part); nc_trace_set_current sets it explicitly (async
 * work). A call made with no current span starts a new trace (sampled).
 *
 * Threads: the functions below that name a server or client run on its loop thread (or before it runs);
 * nc_trace_parse/format are pure; current-span functions act on the calling thread. */
#ifndef NESTC_TRACE_H
#define NESTC_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "nestc/client.h"
#include "nestc/error.h"
#include "nestc/export.h"
#include "nestc/message.h"
#include "nestc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The W3C limit on a propagated tracestate (longer ones are dropped, not cut). */
#define NC_TRACESTATE_MAX 512

#define NC_TRACE_SAMPLED 0x01

/* A span context: ids as bytes. Plain value, copy freely. */
typedef struct nc_trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];                     /* the span this context names: a child's parent */
    uint8_t flags;                          /* trace-flags; bit 0 (NC_TRACE_SAMPLED) is "sampled" */
    uint8_t valid;                          /* 1 when this holds a context, 0 for "none" */
    char tracestate[NC_TRACESTATE_MAX + 1]; /* as received, NUL-terminated; "" when none */
} nc_trace_ctx;

/* Parses a traceparent header value (exactly `len` bytes). Returns 0 (out filled, tracestate "") or
 * NC_EINVAL (out->valid = 0): not version 00, not 55 characters, not lowercase hex, an all-zero id, or
 * flags not hex. */
NC_API int nc_trace_parse(const char *traceparent, size_t len, nc_trace_ctx *out);

/* Writes the traceparent of ctx ("00-<32 hex>-<16 hex>-<2 hex>", 55 characters + NUL) to out[56]. */
NC_API void nc_trace_format(const nc_trace_ctx *ctx, char out[56]);

/* Writes the trace id as 32 lowercase hex digits + NUL to out[33]; the span id as 16 + NUL to out[17]. */
NC_API void nc_trace_id_hex(const nc_trace_ctx *ctx, char out[33]);
NC_API void nc_trace_span_hex(const nc_trace_ctx *ctx, char out[17]);

/* The trace context a message arrived with (header first, then metadata; tracestate too). Returns 0,
 * NC_ENOENT (none), or NC_EINVAL (one that fails validation); out->valid says whether it is filled. Does
 * not need tracing enabled. */
NC_API int nc_msg_trace(const nc_msg *m, nc_trace_ctx *out);

/* A fresh root context (random trace and span ids, sampled). */
NC_API void nc_trace_new_root(nc_trace_ctx *out);

/* A fresh trace without a span (random trace id, span id all zero, sampled): made current, the next
 * call's span is the trace's root (no parent) with this trace id, so a program can know (print, log) the
 * id before the call. Not a traceparent to send: its span id is zero, which receivers refuse. */
NC_API void nc_trace_new_trace(nc_trace_ctx *out);

/* ---- the hook sets ---------------------------------------------------------------------------------- */

/* What side of a message a span is (the OTLP SpanKind values, as exported). */
typedef enum nc_span_kind {
    NC_SPAN_SERVER = 2, /* OTLP SpanKind values */
    NC_SPAN_CLIENT = 3,
} nc_span_kind;

/* A finished span, as given to nc_trace_opts.on_span (borrowed, valid during the call). */
typedef struct nc_span {
    nc_trace_ctx ctx;     /* trace id, this span's id, flags, tracestate */
    uint8_t parent_id[8]; /* all zero for a root span */
    int has_parent;
    nc_span_kind kind;
    const char *name;      /* the route ("" when none: then the pattern) */
    const char *transport; /* the scheme: "tcp", "redis", "nats", ... */
    int is_event;
    int outcome; /* 0, or the nc_err the message or call ended with (status ERROR) */
    uint64_t start_unix_ns, end_unix_ns;
    /* The other side, when known (NULL / 0 when not). SERVER: the client's address (TCP, TLS, gRPC:
     * nc_request_peer; exported as client.address/port and network.peer.address/port). CLIENT: the host
     * and port of the client's URL (server.address/port). */
    const char *peer_address;
    int peer_port;
} nc_span;

/* Options of nc_trace_enable_server / nc_trace_enable_client (NULL or zero-initialised = propagation only,
 * or export as the environment says). */
typedef struct nc_trace_opts {
    size_t struct_size; /* 0 or sizeof(nc_trace_opts) */
    /* every finished span, on the loop thread that ended it (with workers: concurrently); may be NULL */
    void (*on_span)(void *user, const nc_span *span);
    void *user;
    /* OTLP/HTTP JSON collector: "http://host[:port][/path]" (port 4318 by default, path /v1/traces when
     * none is given); NULL = OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as it is), else
     * OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces", else no export (propagation only). Sampled spans are
     * sent in batches every OTEL_BSP_SCHEDULE_DELAY ms (default 1000), from the loop of the server (the
     * primary one with workers) or client; "https://" for TLS (port 4318 too). Copied. */
    const char *otlp_endpoint;
    const char *service_name; /* resource service.name; NULL = OTEL_SERVICE_NAME, else "nestc" */
    int otlp_queue_max;       /* spans waiting for export at most (0 = 2048); more are dropped and counted */
    /* Extra request headers, "key1=value1,key2=value2" (values percent-encoded, as the OpenTelemetry
     * environment writes them), e.g. "authorization=Bearer%20t0k"; NULL = OTEL_EXPORTER_OTLP_TRACES_HEADERS,
     * else OTEL_EXPORTER_OTLP_HEADERS. Refused (NC_EINVAL): a member without '=', a key that is not an
     * HTTP token, a control character (CR, LF...) in a value, Host/Content-Type/Content-Length/Connection/
     * Transfer-Encoding. Used while enabling (not kept). */
    const char *otlp_headers;
    /* https collectors, PEM files: the CA bundle to trust (NULL = OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE,
     * else OTEL_EXPORTER_OTLP_CERTIFICATE, else the system store) and a client certificate and key for
     * mutual TLS (NULL = OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE / _CLIENT_KEY). A file that cannot
     * be used fails the enable call (NC_ETLS). Used while enabling (not kept). */
    const char *otlp_ca_file, *otlp_cert_file, *otlp_key_file;
    /* When the server or client is freed, spans still queued are sent, for this long at most in all (ms;
     * 0 = OTEL_BSP_EXPORT_TIMEOUT, else 2000; NC_LIMIT_OFF or < 0: dropped). Retries (a 503, a collector
     * that is down) go on within this bound; a batch that fails for good ends it. */
    int otlp_flush_timeout_ms;
    /* The sampler, named as OTEL_TRACES_SAMPLER names it (NULL = that variable, else parentbased_always_on):
     * always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off,
     * parentbased_traceidratio; an unknown name is the default. traceidratio samples a trace when the last
     * 8 bytes of its id (big-endian) are below ratio × 2^64, so every service with the same ratio decides
     * alike; parentbased_* follow the incoming (or current) span's sampled flag and use the rest for new
     * traces only. The decision is the span's W3C sampled flag: it travels to children and decides export.
     * sampler_arg: the ratio, "0" to "1" (NULL = OTEL_TRACES_SAMPLER_ARG, else 1). */
    const char *sampler;
    const char *sampler_arg;
    /* The export requests' body encoding: "gzip" (Content-Encoding: gzip; needs zlib, which comes with the
     * gRPC transport: without it NC_EUNSUPPORTED) or "none"; NULL = OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
     * else OTEL_EXPORTER_OTLP_COMPRESSION, else none. Another value fails the enable call (NC_EINVAL).
     * Used while enabling (not kept). */
    const char *otlp_compression;
    /* The export requests' encoding: "http/json" (the default: an ExportTraceServiceRequest in the protobuf
     * JSON encoding) or "http/protobuf" (the binary encoding, Content-Type: application/x-protobuf); NULL =
     * OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/json. "grpc" fails
     * the enable call (NC_EUNSUPPORTED), another value too (NC_EINVAL). Used while enabling (not kept). */
    const char *otlp_protocol;
} nc_trace_opts;

/* The span exporters' counters, every exporter of the process together (also on the admin endpoint's
 * /metrics as nestc_trace_spans_{exported,dropped,failed}_total). */
typedef struct nc_trace_counters {
    uint64_t exported; /* the collector answered 2xx */
    uint64_t dropped;  /* never sent: the queue was full, or still queued when the flush at close ended */
    uint64_t failed;   /* sent in a request that failed: refused, timed out, cut at close, not 2xx */
} nc_trace_counters;

/* Reads the counters (monotonic; zero before any exporter). Any thread, any time. */
NC_API void nc_trace_export_counters(nc_trace_counters *out);

/* Installs the tracing hook set on a server (before nc_server_run for workers) or a client. opts may be
 * NULL (propagation only, or export as the environment says). Returns the hook set's id (> 0:
 * nc_server_remove_hooks / nc_client_remove_hooks turn it off), or an nc_err (NC_EINVAL: a bad
 * collector address or bad headers; NC_ETLS: the https certificate files). */
NC_API int nc_trace_enable_server(nc_server *srv, const nc_trace_opts *opts);
NC_API int nc_trace_enable_client(nc_client *cli, const nc_trace_opts *opts);

/* ---- the current span (this thread) ----------------------------------------------------------------- */

/* The current span on this thread (out->valid = 0 and NC_ENOENT when none). */
NC_API int nc_trace_current(nc_trace_ctx *out);

/* Makes ctx the current span on this thread (NULL or !ctx->valid: none); returns the one it replaces, so
 * that a caller can restore it. Calls made on this thread while it is current are its children. */
NC_API nc_trace_ctx nc_trace_set_current(const nc_trace_ctx *ctx);

/* The span of a request being handled by a server with tracing enabled (from the handler until it
 * finishes), for calls made later: returns 0, or NC_ENOENT. Loop thread. */
NC_API int nc_request_trace(const nc_request *req, nc_trace_ctx *out);

#ifdef __cplusplus
}
#endif
#endif
