/* Sans-I/O NestJS TCP frame codec. Contracts in frame.h; wire format in spec tcp.md §2. */
#include "codec/frame.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"

enum {
    NC_FRAMER_S_PREFIX = 0, /* at a frame boundary or inside a prefix (its bytes so far in buf) */
    NC_FRAMER_S_BODY,       /* '#' seen; buf holds the body bytes of an incomplete frame */
    NC_FRAMER_S_FAILED,     /* framing error: refuse input until reset */
    NC_FRAMER_S_STOPPED,    /* the callback stopped a feed: refuse input until reset */
};

/* A buffer that grew past this for one big frame is released afterwards, so that a single large message
 * does not pin memory on a long-lived connection. */
#define NC_FRAMER_KEEP_BYTES ((size_t)64 * 1024)

#define HI8 UINT64_C(0x8080808080808080)
#define LO8 UINT64_C(0x0101010101010101)

void nc_framer_limits_default(nc_framer_limits *l) {
    l->max_buffer_units = NC_FRAMER_DEFAULT_MAX_BUFFER_UNITS;
    l->max_prefix_bytes = NC_FRAMER_DEFAULT_MAX_PREFIX_BYTES;
}

static void scan_reset(nc_utf8_scan *s) {
    s->units = 0;
    s->seq_start = 0;
    s->need = 0;
    s->lo = 0x80;
    s->hi = 0xBF;
}

void nc_framer_init(nc_framer *f, const nc_framer_limits *lim) {
    memset(f, 0, sizeof *f);
    nc_framer_limits_default(&f->lim);
    if (lim) {
        if (lim->max_buffer_units) f->lim.max_buffer_units = lim->max_buffer_units;
        if (lim->max_prefix_bytes) f->lim.max_prefix_bytes = lim->max_prefix_bytes;
    }
    f->buf = (nc_buf)NC_BUF_INIT;
    f->state = NC_FRAMER_S_PREFIX;
    scan_reset(&f->scan);
}

void nc_framer_free(nc_framer *f) {
    nc_buf_free(&f->buf);
    f->state = NC_FRAMER_S_PREFIX;
}

static void release_if_big(nc_framer *f) {
    f->buf.len = 0;
    if (f->buf.cap > NC_FRAMER_KEEP_BYTES) nc_buf_free(&f->buf);
}

void nc_framer_reset(nc_framer *f) {
    release_if_big(f);
    f->state = NC_FRAMER_S_PREFIX;
    f->want = 0;
    f->prefix_len = 0;
    f->error[0] = '\0';
    scan_reset(&f->scan);
}

size_t nc_framer_pending(const nc_framer *f) {
    switch (f->state) {
    case NC_FRAMER_S_PREFIX:
        return f->buf.len;
    case NC_FRAMER_S_BODY:
        return f->prefix_len + f->buf.len;
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* UTF-8 scanning                                                                                        */

enum { SCAN_MORE = 0, SCAN_DONE = 1, SCAN_BAD = -1, SCAN_SPLIT = -2 };

/* Validates and counts p[0..n) until `want` units have been counted and the last character is complete.
 * `base` is the offset of p[0] in the text (for error offsets). The state in `s` carries a character
 * split across calls, so no byte is ever looked at twice.
 * Returns SCAN_DONE (*pos = bytes of p that complete the text), SCAN_MORE (all n bytes taken, *pos = n),
 * SCAN_BAD (*pos = text offset of the ill-formed sequence) or SCAN_SPLIT (a supplementary character would
 * straddle `want`; *pos = text offset of its lead byte). Valid-sequence table: Unicode 15 table 3-7. */
static int utf8_scan(nc_utf8_scan *s, const unsigned char *p, size_t n, size_t base, size_t want,
                     size_t *pos) {
    size_t units = s->units, i = 0;
    unsigned need = s->need;
    unsigned lo = s->lo, hi = s->hi;
    int rc = SCAN_MORE;

    while (i < n) {
        if (need == 0) {
            /* ASCII fast path, bounded so that it cannot run past the end of the text. */
            size_t room = want - units;
            size_t stop = (n - i <= room) ? n : i + room;
            size_t j = i;
            while (stop - j >= 8) {
                uint64_t w;
                memcpy(&w, p + j, 8);
                if (w & HI8) break;
                j += 8;
            }
            while (j < stop && p[j] < 0x80) j++;
            units += j - i;
            i = j;
            if (units == want) {
                rc = SCAN_DONE;
                break;
            }
            if (i == n) break;

            unsigned c = p[i];
            s->seq_start = base + i;
            if (c < 0xC2) { /* continuation byte without a lead, or overlong 2-byte lead C0/C1 */
                *pos = base + i;
                return SCAN_BAD;
            } else if (c < 0xE0) {
                need = 1;
                lo = 0x80, hi = 0xBF;
                units += 1;
            } else if (c < 0xF0) {
                need = 2;
                lo = c == 0xE0 ? 0xA0 : 0x80; /* E0 80..9F would be overlong */
                hi = c == 0xED ? 0x9F : 0xBF; /* ED A0..BF would be a surrogate */
                units += 1;
            } else if (c < 0xF5) {
                need = 3;
                lo = c == 0xF0 ? 0x90 : 0x80; /* F0 80..8F would be overlong */
                hi = c == 0xF4 ? 0x8F : 0xBF; /* F4 90.. would be above U+10FFFF */
                units += 2;                   /* a surrogate pair in UTF-16 */
                if (units > want) {
                    *pos = base + i;
                    return SCAN_SPLIT;
                }
            } else {
                *pos = base + i;
                return SCAN_BAD;
            }
            i++;
        } else {
            unsigned c = p[i];
            if (c < lo || c > hi) {
                *pos = s->seq_start;
                return SCAN_BAD;
            }
            lo = 0x80, hi = 0xBF;
            i++;
            if (--need == 0 && units == want) {
                rc = SCAN_DONE;
                break;
            }
        }
    }
    s->units = units;
    s->need = need;
    s->lo = (unsigned char)lo;
    s->hi = (unsigned char)hi;
    *pos = i;
    return rc;
}

int nc_utf8_validate(const char *s, size_t len, size_t *bad_at) {
    nc_utf8_scan sc;
    size_t pos;
    scan_reset(&sc);
    /* want = SIZE_MAX never completes, so this only validates. */
    int rc = utf8_scan(&sc, (const unsigned char *)s, len, 0, SIZE_MAX, &pos);
    if (rc == SCAN_BAD || sc.need) {
        if (bad_at) *bad_at = rc == SCAN_BAD ? pos : sc.seq_start;
        return NC_EPROTO;
    }
    return 0;
}

size_t nc_utf16_units(const char *utf8, size_t len) {
    const unsigned char *p = (const unsigned char *)utf8;
    size_t units = len, i = 0;
    /* units = bytes - continuation bytes + 4-byte lead bytes, counted 8 bytes at a time (SWAR): a byte's
     * bit 7 in (w & ~(w << 1)) is "10xxxxxx", in (w & w<<1 & w<<2 & w<<3) it is "1111xxxx" (valid UTF-8
     * has no F8..FF). The multiply sums the 0/1 bytes into the top byte. */
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (!(w & HI8)) continue;
        uint64_t cont = (w & ~(w << 1) & HI8) >> 7;
        uint64_t four = (w & (w << 1) & (w << 2) & (w << 3) & HI8) >> 7;
        units -= (size_t)((cont * LO8) >> 56);
        units += (size_t)((four * LO8) >> 56);
    }
    for (; i < len; i++) {
        if ((p[i] & 0xC0) == 0x80)
            units--;
        else if (p[i] >= 0xF0)
            units++;
    }
    return units;
}

size_t nc_frame_prefix(char out[24], size_t units) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + units % 10);
        units /= 10;
    } while (units);
    for (size_t k = 0; k < n; k++) out[k] = tmp[n - 1 - k];
    out[n++] = '#';
    out[n] = '\0';
    return n;
}

int nc_frame_append(nc_buf *out, const char *json, size_t len) {
    if (len == 0) return NC_EINVAL;
    char pre[24];
    size_t pl = nc_frame_prefix(pre, nc_utf16_units(json, len));
    if (nc_buf_reserve(out, pl + len)) return NC_ENOMEM;
    memcpy(out->data + out->len, pre, pl);
    memcpy(out->data + out->len + pl, json, len);
    out->len += pl + len;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Errors                                                                                                */

/* Records a framing error: the reason in f->error, then the framer refuses input until reset. */
static int fail(nc_framer *f, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int fail(nc_framer *f, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->error, sizeof f->error, fmt, ap);
    va_end(ap);
    f->state = NC_FRAMER_S_FAILED;
    release_if_big(f);
    return code;
}

/* Copies t[0..n) into out (cap >= 8) for an error message: printable ASCII as is, other bytes escaped (so
 * the message stays valid, printable UTF-8 whatever the peer sent), "..." when it does not fit. */
static void quote_text(char *out, size_t cap, const unsigned char *t, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char e[5];
        size_t el;
        unsigned c = t[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            e[0] = (char)c, el = 1;
        } else if (c == '"' || c == '\\') {
            e[0] = '\\', e[1] = (char)c, el = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            e[0] = '\\', e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't', el = 2;
        } else {
            e[0] = '\\', e[1] = 'x', e[2] = hex[c >> 4], e[3] = hex[c & 15], el = 4;
        }
        if (o + el + 3 + 1 > cap && (i + 1 < n || o + el + 1 > cap)) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, e, el);
        o += el;
    }
    out[o] = '\0';
}

/* ---------------------------------------------------------------------------------------------------- */
/* Prefix                                                                                                */

/* Byte length of the JavaScript white space (StrWhiteSpaceChar) at p, or 0. */
static size_t js_space(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return 1;
    if (c < 0x80) return 0;
    if (c == 0xC2) return n >= 2 && p[1] == 0xA0 ? 2 : 0; /* U+00A0 */
    if (c < 0xE1 || c > 0xEF || n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    unsigned cp = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
        cp == 0x205F || cp == 0x3000 || cp == 0xFEFF)
        return 3;
    return 0;
}

static int fail_toobig(nc_framer *f, size_t units) {
    return fail(f, NC_ETOOBIG, "The packet length (%zu) exceeds the maximum allowed length", units);
}

static int fail_corrupted(nc_framer *f, const unsigned char *t, size_t n) {
    char q[104];
    quote_text(q, sizeof q, t, n);
    return fail(f, NC_EPROTO, "Corrupted length value \"%s\" supplied in a packet", q);
}

/* Parses the prefix text t[0..n) (without '#') like parseInt(t, 10) and enters the BODY state. */
static int begin_body(nc_framer *f, const unsigned char *t, size_t n) {
    size_t max = f->lim.max_buffer_units;
    size_t pu = nc_utf16_units((const char *)t, n) + 1; /* units of prefix and '#' */
    /* Nest checks its buffer size before looking at the prefix; keep that order. */
    if (pu > max) return fail_toobig(f, pu);

    size_t i = 0, sp;
    while (i < n && (sp = js_space(t + i, n - i)) != 0) i += sp;
    int neg = 0;
    if (i < n && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
    size_t d0 = i, value = 0;
    int overflow = 0;
    for (; i < n && t[i] >= '0' && t[i] <= '9'; i++) {
        unsigned dg = t[i] - '0';
        if (value > (SIZE_MAX - dg) / 10)
            overflow = 1;
        else
            value = value * 10 + dg;
    }
    if (i == d0) return fail_corrupted(f, t, n);
    if (neg || (value == 0 && !overflow)) {
        char q[48];
        quote_text(q, sizeof q, t, n);
        return fail(f, NC_EPROTO,
                    "Invalid length value \"%s\" supplied in a packet (a packet holds at least 1 unit of "
                    "JSON text)",
                    q);
    }
    if (overflow || value > max - pu) {
        if (!overflow) return fail_toobig(f, pu + value);
        char q[48];
        quote_text(q, sizeof q, t + d0, i - d0);
        return fail(f, NC_ETOOBIG, "The packet length (%s) exceeds the maximum allowed length", q);
    }
    f->want = value;
    f->prefix_len = n + 1;
    f->state = NC_FRAMER_S_BODY;
    scan_reset(&f->scan);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Feed                                                                                                  */

int nc_framer_feed(nc_framer *f, const char *data, size_t len, nc_frame_cb cb, void *user) {
    if (f->state == NC_FRAMER_S_FAILED || f->state == NC_FRAMER_S_STOPPED) return NC_ESTATE;
    const unsigned char *p = (const unsigned char *)data;
    const unsigned char *end = p + len;

    while (p < end) {
        size_t avail = (size_t)(end - p);
        if (f->state == NC_FRAMER_S_PREFIX) {
            size_t have = f->buf.len; /* <= max_prefix_bytes: longer prefixes fail below */
            size_t room = f->lim.max_prefix_bytes + 1 - have;
            size_t win = avail < room ? avail : room;
            const unsigned char *h = memchr(p, '#', win);
            if (!h) {
                /* units <= bytes: count them only when the bytes exceed the limit */
                if (have + win > f->lim.max_buffer_units) {
                    size_t u = nc_utf16_units(f->buf.data, have) + nc_utf16_units((const char *)p, win);
                    if (u > f->lim.max_buffer_units) return fail_toobig(f, u);
                }
                if (nc_buf_append(&f->buf, p, win)) return fail(f, NC_ENOMEM, "Out of memory");
                if (win == room) return fail_corrupted(f, (const unsigned char *)f->buf.data, f->buf.len);
                return 0; /* the chunk ended inside the prefix */
            }
            int rc;
            if (have == 0) {
                rc = begin_body(f, p, (size_t)(h - p)); /* the common case: the prefix is in this chunk */
            } else {
                if (nc_buf_append(&f->buf, p, (size_t)(h - p))) return fail(f, NC_ENOMEM, "Out of memory");
                rc = begin_body(f, (const unsigned char *)f->buf.data, f->buf.len);
                f->buf.len = 0;
            }
            if (rc) return rc;
            p = h + 1;
            continue;
        }

        /* BODY: buf.len body bytes are already scanned and counted in f->scan. */
        size_t used;
        int sr = utf8_scan(&f->scan, p, avail, f->buf.len, f->want, &used);
        if (sr == SCAN_BAD) return fail(f, NC_EPROTO, "Invalid UTF-8 in packet at byte %zu", used);
        if (sr == SCAN_SPLIT)
            return fail(f, NC_EPROTO, "The packet length (%zu) ends inside a character at byte %zu", f->want,
                        used);
        if (sr == SCAN_MORE) {
            if (nc_buf_append(&f->buf, p, avail)) return fail(f, NC_ENOMEM, "Out of memory");
            return 0;
        }
        const char *json;
        size_t jl;
        int buffered = f->buf.len != 0;
        if (!buffered) { /* the whole body is in the caller's chunk: zero copy */
            json = (const char *)p;
            jl = used;
        } else {
            if (nc_buf_append(&f->buf, p, used)) return fail(f, NC_ENOMEM, "Out of memory");
            json = f->buf.data;
            jl = f->buf.len;
        }
        p += used;
        f->state = NC_FRAMER_S_PREFIX;
        f->prefix_len = 0;
        int r = cb(user, json, jl);
        if (buffered) release_if_big(f);
        if (r) {
            f->state = NC_FRAMER_S_STOPPED;
            f->buf.len = 0;
            return r;
        }
    }
    return 0;
}
