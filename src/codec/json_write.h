/* JavaScript-compatible JSON text for jansson values. Private.
 *
 * NestJS peers produce every packet with JSON.stringify and read it with JSON.parse, and routes embed
 * numbers as JavaScript writes them, so nestc must write numbers, strings and escapes byte for byte like
 * V8 does (spec §2, §3.1). jansson's own json_dumps differs (it escapes '/' and U+2028/2029 on request,
 * writes reals with "%.17g", keeps int64 digits), hence this writer. */
#ifndef NC_CODEC_JSON_WRITE_H
#define NC_CODEC_JSON_WRITE_H

#include <stddef.h>

#include <jansson.h>

#include "codec/json_build.h"
#include "util/buf.h"

/* Appends to `out` exactly what JSON.stringify writes for the JavaScript value equivalent to `v`:
 * - no whitespace; object members in jansson's insertion order (note: JavaScript itself would move
 *   integer-like keys such as "1" in front of the others; we keep the order the caller built);
 * - strings escaped like JSON.stringify: `"` `\` and \b \f \n \r \t by name, the other bytes below 0x20 as
 *   \u00xx (lowercase hex), everything else (DEL, non-ASCII, U+2028/U+2029) as raw UTF-8; NUL bytes
 *   inside jansson strings (JSON_ALLOW_NUL) are written as \u0000; a lone surrogate held as WTF-8 (see
 *   json_build.h) as \udxxx (lowercase hex), as JSON.stringify does, and a WTF-8 high surrogate directly
 *   followed by a low one as the 4-byte UTF-8 character they pair into (JavaScript strings concatenate);
 *   other ill-formed UTF-8 (a json_stringn_nocheck() string) as U+FFFD per maximal ill-formed sequence,
 *   as Node's decoder would read those bytes;
 * - integers: decimal when |i| <= 2^53; beyond that JavaScript holds the nearest double, so they are
 *   written as nc_js_number((double)i) (9223372036854775807 -> 9223372036854776000);
 * - reals: nc_js_number; NaN and infinities (not creatable through jansson's API) as null, like JS;
 * - true, false, null.
 * Iterative (an explicit stack, on the heap past 32 levels): no recursion on a depth a peer chose.
 * Returns 0; NC_EINVAL if `out` or `v` is NULL, or nesting exceeds NC_JSON_MAX_DEPTH (json_build.h)
 * levels (also what a reference cycle turns into); NC_ENOMEM. On failure `out->len` is restored to its
 * value on entry (the bytes past it are unspecified). */
int nc_json_write(nc_buf *out, const json_t *v);

/* The JavaScript Number::toString(10) text of `v` (ECMA-262 6.1.6.1.20): the shortest digit string that
 * reads back as `v` (closest to `v` when several have that length), laid out in fixed notation when the
 * decimal exponent n (v = 0.d1d2... x 10^n) satisfies -6 < n <= 21, otherwise as d[.ddd]e+X / e-X.
 * Examples: 0.1 -> "0.1", 5.0 -> "5", -0.0 -> "0", 1e21 -> "1e+21", 1.5e-7 -> "1.5e-7",
 * 123456789012345680000 -> "123456789012345680000", NaN -> "NaN", -Inf -> "-Infinity".
 * Writes the text NUL-terminated into `buf` (at most 26 bytes + NUL) and returns its length. Thread-safe
 * (relies on the C library's snprintf/strtod, which use the "C" locale's '.' as required: nestc never
 * calls setlocale(LC_NUMERIC)). */
size_t nc_js_number(double v, char buf[32]);

/* Parses `len` bytes of JSON text the way JSON.parse would read them into a jansson value, with
 * nc_json_parse_text (json_build.h: any top-level value, \u0000 in strings and keys, lone surrogates as
 * WTF-8, nesting up to NC_JSON_MAX_DEPTH, integers beyond int64 as doubles, numbers beyond the double
 * range as null).
 * On success returns 0 and stores a new reference in *out (caller frees it, nc_json_free for peer text).
 * On failure returns NC_EPROTO (not JSON, or deeper than NC_JSON_MAX_DEPTH), NC_ENOMEM, NC_EINVAL (`out`
 * NULL, or `text` NULL with `len` > 0), sets *out to NULL and, when `err` is not NULL and `errlen` > 0,
 * writes a NUL-terminated message "Unexpected token at line L column C: <reason>" (truncated to errlen). */
int nc_json_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen);

/* nc_json_parse, and on failure also tells, through *js_accepts (if not NULL), whether JSON.parse would
 * nevertheless have accepted the text: 1 only when it is refused for nesting deeper than
 * NC_JSON_MAX_DEPTH, 0 when the text is not JSON. *js_accepts is 0 after a success. Used by route lookup,
 * where "not JSON" means "the raw text is the route" but "JSON we cannot hold" must not fall back to it. */
int nc_json_parse_js(const char *text, size_t len, json_t **out, char *err, size_t errlen, int *js_accepts);

#endif
