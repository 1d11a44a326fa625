/* The OTLP/HTTP protobuf body (ExportTraceServiceRequest, opentelemetry/proto/collector/trace/v1) of a batch
 * of spans the exporter encoded as protobuf JSON (otlp.c): written by hand, the few messages and fields
 * nestc fills, no parser. Private; decoded by the OpenTelemetry JS receiver in interop.obs.otlp_trace. */
#ifndef NC_OBS_OTLP_PROTO_H
#define NC_OBS_OTLP_PROTO_H

#include <jansson.h>

#include "util/buf.h"

/* Appends the request for `spans` (an array of span objects as otlp.c encodes them) of resource
 * service.name = service, scope "nestc". Returns 0 or NC_ENOMEM. */
int nc_otlp_proto_request(nc_buf *out, const char *service, json_t *spans);

#endif
