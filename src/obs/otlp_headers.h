/* OTEL_EXPORTER_OTLP_HEADERS (docs/observability.md "Trace context"): "key1=value1,key2=value2", the
 * OpenTelemetry environment format (W3C baggage list members without properties; values percent-encoded),
 * turned into HTTP header lines for the exporter's request. Sans-I/O, no allocation. Private; fuzzed
 * (tests/fuzz/fuzz_trace.c). */
#ifndef NC_OBS_OTLP_HEADERS_H
#define NC_OBS_OTLP_HEADERS_H

#include <stddef.h>

/* Writes "Key: value\r\n" per member of in[0..n) to out (NUL-terminated; "" for no members; empty members
 * and spaces around keys and values are skipped) and returns 0. Returns NC_EINVAL, out "" , when a member
 * has no '=', its key is empty or not an HTTP token, a '%' is not followed by two hex digits, a decoded
 * value holds a control character (CR, LF, NUL, DEL...: no header injection) or a key names a header the
 * exporter writes itself (Host, Content-Type, Content-Length, Connection, Transfer-Encoding); NC_ETOOBIG
 * when the lines do not fit in outlen. */
int nc_otlp_headers_parse(const char *in, size_t n, char *out, size_t outlen);

#endif
