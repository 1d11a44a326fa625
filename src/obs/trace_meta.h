/* The tracer's reading of a message's metadata text: the string values of the top-level keys traceparent
 * and tracestate, found in one pass without building the object. Sans-I/O, no allocation. Private; fuzzed
 * against jansson (tests/fuzz/fuzz_trace.c). */
#ifndef NC_OBS_TRACE_META_H
#define NC_OBS_TRACE_META_H

#include <stddef.h>

/* "traceparent", "tracestate" */
extern const char *const nc_trace_keys[2];

/* A key's string value: r = 1 found (v, vl: the characters between the quotes, no escape among them),
 * 0 absent, -1 undecided (present with escapes or not as a string, or the text could not be read this
 * way: ask the metadata object). */
typedef struct nc_trace_found {
    const char *v;
    size_t vl;
    int r;
} nc_trace_found;

/* Scans the JSON object text t[0..n) (well-formed: the packet parsed) for both keys, f[0] traceparent,
 * f[1] tracestate. */
void nc_trace_meta_scan(const char *t, size_t n, nc_trace_found f[2]);

#endif
