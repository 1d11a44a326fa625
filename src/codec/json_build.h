/* The JSON parser of the DOM path: JSON text -> jansson value, accepting exactly what JavaScript's
 * JSON.parse accepts (what a NestJS peer accepts), not what jansson's parser accepts. Private.
 *
 * Differences from jansson's json_loadb, each one a text NestJS answers:
 * - lone UTF-16 surrogate escapes ("ab\ud83d", what JavaScript writes for a string cut inside an emoji)
 *   are kept as WTF-8: the surrogate's code point encoded like any other BMP code point (3 bytes,
 *   ED A0..BF 80..BF). A paired escape ("\ud83d\ude00") is one 4-byte UTF-8 character as before. The
 *   writer (json_write.h) writes such bytes back as "\udxxx", as JSON.stringify does.
 * - nesting up to NC_JSON_MAX_DEPTH levels (jansson stops at 2048), parsed with an explicit stack:
 *   no recursion on the depth a peer chooses;
 * - numbers beyond the double range (1e400) are JSON.parse's Infinity: a jansson real holding ±HUGE_VAL
 *   (json_real() cannot make one; see js_infinity), which the writer writes as null like JSON.stringify
 *   and which adds, compares and is truthy as in JavaScript. Integers beyond int64 are doubles, as in
 *   JavaScript; numbers below the double range are 0;
 * - "\u0000" in keys too.
 * Input must be UTF-8 (ill-formed UTF-8 inside a string is refused; raw surrogate bytes are ill-formed).
 * Duplicate keys: the last value wins, at the first key's position (JSON.parse). */
#ifndef NC_CODEC_JSON_BUILD_H
#define NC_CODEC_JSON_BUILD_H

#include <jansson.h>
#include <stddef.h>

/* Deepest nesting accepted (parser and writer). JSON.parse has no fixed limit (V8 parses iteratively);
 * NestJS answers well past jansson's 2048. Beyond this a text is refused with a clear error and the
 * connection is kept. Memory for the parser's stack: 16 bytes a level. */
#define NC_JSON_MAX_DEPTH 10000

typedef struct nc_json_perr {
    size_t pos;      /* byte offset of the error */
    int line, col;   /* 1-based */
    const char *why; /* static text */
    int nomem;       /* out of memory rather than bad text */
    int js_accepts;  /* JSON.parse would accept the text (only: nesting beyond NC_JSON_MAX_DEPTH) */
} nc_json_perr;

/* Parses text[0..len) (one JSON value, surrounding whitespace allowed). Returns a new reference, or NULL
 * with *e filled (when e is not NULL). */
json_t *nc_json_parse_text(const char *text, size_t len, nc_json_perr *e);

/* The same for text the scanner accepted (nc_msg_data, reply values on the client). NULL on failure. */
json_t *nc_json_build(const char *text, size_t len);

/* A jansson string of s[0..n) as Node would see those bytes: ill-formed UTF-8 replaced by U+FFFD as
 * Node's decoder does; with keep_surrogates, WTF-8 lone surrogates (peer text nestc already decoded, such
 * as a route) are kept, else replaced too (raw bytes from the network, such as a Redis channel). Never
 * refuses text, unlike json_string(); NULL only when out of memory. */
json_t *nc_json_string_js(const char *s, size_t n, int keep_surrogates);

/* json_decref without recursion: jansson frees nested values recursively, so a 10,000-level value would
 * cost stack in proportion to a depth the peer chose. Use it for values built from peer text. */
void nc_json_free(json_t *v);

#endif
