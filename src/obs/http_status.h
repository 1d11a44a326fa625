/* The status line of an HTTP/1.x response, and its Retry-After header, for the OTLP exporter: sans-I/O,
 * no allocation. Only these are read (the exporter sends "Connection: close" and needs nothing else of
 * the answer). Private; tested in tests/unit/test_trace.c, fuzzed in tests/fuzz/fuzz_trace.c. */
#ifndef NC_OBS_HTTP_STATUS_H
#define NC_OBS_HTTP_STATUS_H

#include <stddef.h>

/* Bytes of a status line at most: a longer one is malformed. */
#define NC_HTTP_STATUS_LINE_MAX 1024

/* Parses "HTTP/1.x NNN[ reason]\r\n" (or bare LF) at the start of buf[0..len). Returns the status code
 * (100..599) once the line is complete, 0 when more bytes are needed, -1 when it is not a status line. */
int nc_http_status_parse(const char *buf, size_t len);

/* The head of a response (status line and header lines) at most, as the exporter reads it. */
#define NC_HTTP_HEAD_MAX 4096
/* A Retry-After longer than this (seconds) counts as this. */
#define NC_HTTP_RETRY_AFTER_MAX 86400

/* The Retry-After of a response head at the start of buf[0..len) (the status line first; lines end in
 * CRLF or LF): -2 while the blank line ending the head is not in yet, else the first Retry-After header's
 * delta-seconds (0..NC_HTTP_RETRY_AFTER_MAX), or -1 when there is none or its value is not delta-seconds
 * (an HTTP-date is not read). The header name must be followed by ':' at once, as RFC 9112 requires. */
int nc_http_retry_after(const char *buf, size_t len);

#endif
