/* A minimal HTTP/1.x request-head parser for the admin endpoint: sans-I/O, no allocation, bounded. It
 * accepts what a health probe or a Prometheus scrape sends (a request line and headers, no body) and
 * refuses the rest with the status to answer. Private; fuzzed (tests/fuzz/fuzz_http_req.c). */
#ifndef NC_OBS_HTTP_REQ_H
#define NC_OBS_HTTP_REQ_H

#include <stddef.h>

/* Bytes of a request head (request line + headers + blank line) at most: larger heads get 431. */
#define NC_HTTP_HEAD_MAX 8192
/* Header lines at most: more get 431. */
#define NC_HTTP_HEADERS_MAX 64

typedef struct nc_http_req {
    const char *method; /* spans of the input, not NUL-terminated */
    size_t method_len;
    const char *path; /* the target up to '?' (origin form: starts with '/') */
    size_t path_len;
    int minor;       /* HTTP/1.<minor> (0 or 1) */
    int keep_alive;  /* the client did not ask to close (1.1 default, 1.0 only with keep-alive) */
    size_t head_len; /* bytes of the head, blank line included */
} nc_http_req;

/* Parses the head at the start of buf[0..len). Returns:
 *   0      complete: *out filled;
 *   1      incomplete: read more (len < NC_HTTP_HEAD_MAX);
 *   an HTTP status >= 400 to answer before closing: 400 (malformed), 413 (a body: Content-Length > 0
 *          or Transfer-Encoding), 414 (target longer than 2048 bytes), 431 (head or header count too
 *          large), 505 (not HTTP/1.0 or 1.1). */
int nc_http_req_parse(const char *buf, size_t len, nc_http_req *out);

#endif
