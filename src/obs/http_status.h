/* The status line of an HTTP/1.x response, for the OTLP exporter: sans-I/O, no allocation. Only the
 * status line is read (the exporter sends "Connection: close" and needs nothing else of the answer).
 * Private; tested in tests/unit/test_trace.c. */
#ifndef NC_OBS_HTTP_STATUS_H
#define NC_OBS_HTTP_STATUS_H

#include <stddef.h>

/* Bytes of a status line at most: a longer one is malformed. */
#define NC_HTTP_STATUS_LINE_MAX 1024

/* Parses "HTTP/1.x NNN[ reason]\r\n" (or bare LF) at the start of buf[0..len). Returns the status code
 * (100..599) once the line is complete, 0 when more bytes are needed, -1 when it is not a status line. */
int nc_http_status_parse(const char *buf, size_t len);

#endif
