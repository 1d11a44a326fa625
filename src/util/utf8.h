/* UTF-8 helpers: validation, UTF-16 unit counting, character lengths. Sans-I/O, no allocation, any
 * thread. Private. */
#ifndef NC_UTIL_UTF8_H
#define NC_UTIL_UTF8_H

#include <stddef.h>

/* Incremental UTF-8 validation and UTF-16 unit counting state. Private. */
typedef struct nc_utf8_scan {
    size_t units;     /* UTF-16 units counted so far (a character is counted at its lead byte) */
    size_t seq_start; /* offset of the lead byte of the character being completed (need > 0) */
    unsigned need;    /* continuation bytes still expected */
    unsigned char lo; /* accepted range of the next continuation byte */
    unsigned char hi;
} nc_utf8_scan;

enum { NC_UTF8_MORE = 0, NC_UTF8_DONE = 1, NC_UTF8_BAD = -1 };

/* Resets `s` to the start of a text. */
void nc_utf8_scan_reset(nc_utf8_scan *s);

/* Validates and counts p[0..n) until `want` units have been counted and the last character is complete.
 * `base` is the offset of p[0] in the text (for error offsets). The state in `s` carries a character
 * split across calls, so no byte is ever looked at twice.
 * Returns NC_UTF8_DONE (*pos = bytes of p that complete the text), NC_UTF8_MORE (all n bytes taken, *pos = n)
 * or NC_UTF8_BAD: an ill-formed sequence, or a 4-byte lead that would straddle `want` if it is valid (1 unit
 * if it is not); *pos = text offset of its first byte, s->units = units before it, s->need is stale.
 * Valid-sequence table: Unicode 15 table 3-7. */
int nc_utf8_scan_run(nc_utf8_scan *s, const unsigned char *p, size_t n, size_t base, size_t want,
                     size_t *pos);

/* Checks that s[0..len) is well-formed UTF-8 (Unicode table 3-7: no overlong forms, no surrogates, nothing
 * above U+10FFFF, no truncated sequence). Returns 0, or NC_EPROTO with *bad_at (if not NULL) set to the
 * offset of the first byte of the first ill-formed sequence. */
int nc_utf8_validate(const char *s, size_t len, size_t *bad_at);

/* UTF-16 units of the UTF-8 text s[0..len): the bytes that are not continuation bytes (10xxxxxx) plus
 * the 4-byte lead bytes (11110xxx). Exact for valid UTF-8; for other input it is merely some count. */
size_t nc_utf16_units(const char *utf8, size_t len);

/* 1 when s[0..n) is UTF-8 in which surrogate code points may appear (WTF-8, how nestc holds lone
 * surrogates): text the writer can write as JSON.stringify would. */
int nc_wtf8_valid(const char *s, size_t n);

/* Length of the well-formed UTF-8 character at p (p < end), 0 when ill-formed (a raw surrogate too). */
size_t nc_utf8_char_len(const unsigned char *p, const unsigned char *end);

/* Length (>= 1) of the ill-formed sequence at p that a WHATWG UTF-8 decoder (Node's Buffer.toString,
 * TextDecoder) replaces with one U+FFFD: the lead byte and the bytes that could still have completed it. */
size_t nc_utf8_bad_len(const unsigned char *p, const unsigned char *end);

/* nc_utf8_char_len without the ASCII case, inline for the JSON reader's string loop: the length of the
 * well-formed multi-byte character at p, 0 when ill-formed. */
static inline size_t nc_utf8_seq_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* raw surrogates are not UTF-8 */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return n;
}

#endif
