/* The OTLP/HTTP (JSON or protobuf) span exporter of the tracer (docs/observability.md "Trace context"): spans
 * are queued from any loop thread (bounded: a full queue drops and counts), and sent in batches from one loop
 * as POST <path> (ExportTraceServiceRequest, protobuf JSON or binary encoding, gzip or not) over the io
 * layer, one request at a time, retried when the collector says so; a collector that is slow or down
 * costs dropped spans, never memory or a blocked loop. Private. */
#ifndef NC_OBS_OTLP_H
#define NC_OBS_OTLP_H

#include <stdint.h>
#include <uv.h>

#include "nestc/trace.h"

typedef struct nc_otlp nc_otlp;

typedef struct nc_otlp_cfg {
    const char *endpoint; /* "http[s]://host[:port][/path]" (port 4318; an empty path becomes /v1/traces) */
    const char *service;  /* resource service.name (NULL: "nestc") */
    int queue_max;        /* 0: 2048 */
    int batch_ms;         /* 0: 1000 */
    int exchange_timeout_ms; /* one request, connect to status line (0: 5000) */
    int flush_timeout_ms;    /* nc_otlp_close: sending what is queued, as a whole (0: nothing is sent) */
    const char *headers;     /* OTEL_EXPORTER_OTLP_HEADERS text, or NULL */
    const char *ca_file, *cert_file, *key_file; /* https: trust, client certificate (PEM files) */
    const char *compression;                    /* "gzip", "none" or NULL (none) */
    const char *protocol; /* "http/json" (or NULL), "http/protobuf"; "grpc" is refused (NC_EUNSUPPORTED) */
    /* A batch refused with 429/502/503/504, or not answered (no connection, timed out), is sent again:
     * after its Retry-After, else after retry_initial_ms (0: 1000) × 1.5 per attempt, at most
     * retry_max_backoff_ms (0: 5000), ±20 % jitter; retry_max_attempts requests in all (0: 5; 1 or < 0: no
     * retry), within retry_total_ms of the first (0: 30000). */
    int retry_max_attempts, retry_initial_ms, retry_max_backoff_ms, retry_total_ms;
} nc_otlp_cfg;

/* A new exporter on `loop`. Returns 0, NC_EINVAL (not such a URL, bad headers, unknown compression),
 * NC_EUNSUPPORTED (gzip without zlib), NC_ETLS (the certificate files), NC_ENOMEM; `why` says what was
 * wrong. */
int nc_otlp_new(nc_otlp **out, uv_loop_t *loop, const nc_otlp_cfg *cfg, char *why, size_t whylen);

/* The endpoint to use: `given` when set, else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else
 * OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces"; NULL when none. Writes into buf. */
const char *nc_otlp_endpoint(const char *given, char *buf, size_t len);

/* Queues a finished span (any thread). */
void nc_otlp_push(nc_otlp *x, const nc_span *s);

/* Counters: spans exported (the collector answered 2xx), dropped (the queue was full), failed (their
 * request failed for good: its retries spent, or an answer not worth one, or cut at close). Any
 * thread. */
void nc_otlp_stats(nc_otlp *x, uint64_t *exported, uint64_t *dropped, uint64_t *failed);

/* Retries scheduled so far (a batch waiting for its next attempt). Any thread. */
uint64_t nc_otlp_retries(nc_otlp *x);

/* Loop thread: sends what is still queued on a private loop (so it may be called from inside `loop`'s
 * callbacks too), blocking for flush_timeout_ms at most; cuts a request in flight on `loop`, then frees
 * itself once its handles on `loop` are closed (the owner runs its loop on, as nc_server_free and
 * nc_client_free do). */
void nc_otlp_close(nc_otlp *x);

#endif
