/* The OTLP/HTTP JSON span exporter of the tracer (docs/observability.md "Trace context"): spans are
 * queued from any loop thread (bounded: a full queue drops and counts), and sent in batches from one loop
 * as POST <path> (ExportTraceServiceRequest, protobuf JSON encoding) over the io layer, one request at a
 * time; a collector that is slow or down costs dropped spans, never memory or a blocked loop. Private. */
#ifndef NC_OBS_OTLP_H
#define NC_OBS_OTLP_H

#include <stdint.h>
#include <uv.h>

#include "nestc/trace.h"

typedef struct nc_otlp nc_otlp;

/* Parses an endpoint "http://host[:port][/path]" (port 4318 by default; an empty path becomes
 * /v1/traces) into a new exporter on `loop`. Returns 0, NC_EINVAL (not such a URL), NC_EUNSUPPORTED
 * (https), NC_ENOMEM. */
int nc_otlp_new(nc_otlp **out, uv_loop_t *loop, const char *endpoint, const char *service, int queue_max,
                int batch_ms);

/* The endpoint to use: `given` when set, else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else
 * OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces"; NULL when none. Writes into buf. */
const char *nc_otlp_endpoint(const char *given, char *buf, size_t len);

/* Queues a finished span (any thread). */
void nc_otlp_push(nc_otlp *x, const nc_span *s);

/* Counters: spans exported (the collector answered 2xx), dropped (queue full, or the batch failed). */
void nc_otlp_stats(nc_otlp *x, uint64_t *exported, uint64_t *dropped);

/* Loop thread: sends what is queued one last time (the loop must run for it), then frees itself once its
 * handles are closed. */
void nc_otlp_close(nc_otlp *x);

#endif
