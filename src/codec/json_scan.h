/* A single-pass JSON scanner for the hot path: it validates a packet and locates the top-level values that
 * matter (pattern, data, id, metadata of a request; id, response, err, isDisposed of a reply) without
 * building a DOM. Sans-I/O; input must already be valid UTF-8 (the framer checks it).
 *
 * It is deliberately conservative: it only ACCEPTS input that the DOM parser (nc_json_parse, which
 * accepts what JSON.parse accepts, see json_build.h) accepts and would read the same way. Anything
 * unusual — a syntax error, an escape in a key, a \u0000 escape, an exponent or a long number (overflow
 * rules), nesting deeper than NC_SCAN_MAX_DEPTH — makes it answer NC_SCAN_SLOW, and the caller takes the
 * DOM path, which decides (and words the error). Surrogate escapes, paired or lone, are accepted: JSON.parse
 * takes them, and the builder keeps a lone one as WTF-8. Private. */
#ifndef NC_CODEC_JSON_SCAN_H
#define NC_CODEC_JSON_SCAN_H

#include <stddef.h>

#define NC_SCAN_OK 0
#define NC_SCAN_SLOW 1

#define NC_SCAN_MAX_DEPTH 64

/* Flags describing a value's text. */
#define NC_SPAN_WS 1u  /* whitespace between its tokens: not compact */
#define NC_SPAN_ESC 2u /* a string inside it has a backslash escape */

typedef struct nc_span {
    const char *p; /* NULL when the key is absent */
    size_t len;
    unsigned flags;
} nc_span;

/* The top-level keys of a request/event packet (NestJS ReadPacket). */
typedef struct nc_env {
    nc_span pattern, data, id, metadata;
    int other_keys; /* keys other than these four were present */
} nc_env;

/* The top-level keys of a reply packet (NestJS WritePacket). */
typedef struct nc_reply_env {
    nc_span id, response, err, disposed, status;
    int other_keys; /* a key outside {id, response, err, isDisposed, status}: a foreign reply */
    int nkeys;
} nc_reply_env;

/* Scans a whole text that must be one JSON value (surrounding whitespace allowed). */
int nc_json_scan_value(const char *text, size_t len, nc_span *out);

/* Scans a packet that must be a JSON object; fills the spans of the known keys (last occurrence wins,
 * as with JSON.parse). Returns NC_SCAN_OK or NC_SCAN_SLOW (not an object, or see above). */
int nc_env_scan(const char *text, size_t len, nc_env *out);
int nc_reply_env_scan(const char *text, size_t len, nc_reply_env *out);

/* JavaScript truthiness of a scanned value's text (false, null, 0, -0, 0.0, "" are falsy). */
int nc_span_truthy(const nc_span *s);

#endif
