/* Sans-I/O NestJS TCP frame codec. Contracts in frame.h; wire format in spec tcp.md §2. */
#include "codec/frame.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"
#include "util/utf8.h"

enum {
    NC_FRAMER_S_PREFIX = 0, /* at a frame boundary or inside a prefix (its bytes so far in buf) */
    NC_FRAMER_S_BODY,       /* '#' seen; buf holds the body bytes of an incomplete frame */
    NC_FRAMER_S_FAILED,     /* framing error: refuse input until reset */
    NC_FRAMER_S_STOPPED,    /* the callback stopped a feed: refuse input until reset */
};

/* A buffer that grew past this for one big frame is released afterwards, so that a single large message
 * does not pin memory on a long-lived connection. */
#define NC_FRAMER_KEEP_BYTES ((size_t)64 * 1024)

/* The ill-formed UTF-8 path is kept out of line, so that the valid path stays as it was. */
#if defined(__GNUC__)
#define NC_COLD __attribute__((cold, noinline))
#else
#define NC_COLD
#endif

void nc_framer_limits_default(nc_framer_limits *l) {
    l->max_buffer_units = NC_FRAMER_DEFAULT_MAX_BUFFER_UNITS;
    l->max_prefix_bytes = NC_FRAMER_DEFAULT_MAX_PREFIX_BYTES;
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
    nc_utf8_scan_reset(&f->scan);
    f->lossy = 0;
    f->dec = 0;
}

void nc_framer_free(nc_framer *f) {
    nc_buf_free(&f->buf);
    f->state = NC_FRAMER_S_PREFIX;
    f->lossy = 0;
    f->dec = 0;
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
    nc_utf8_scan_reset(&f->scan);
    f->lossy = 0;
    f->dec = 0;
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

/* The scan itself is nc_utf8_scan_run (util/utf8.c); SCAN_SPLIT is the lossy reader's own result. */
enum { SCAN_MORE = NC_UTF8_MORE, SCAN_DONE = NC_UTF8_DONE, SCAN_BAD = NC_UTF8_BAD, SCAN_SPLIT = -2 };

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
    nc_utf8_scan_reset(&f->scan);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Ill-formed UTF-8, read as NestJS reads it                                                             */

/* Length of the sequence at q[0..n) (n >= 1) as Node's UTF-8 decoder reads it: a valid character (*ok = 1)
 * or the maximal ill-formed subpart it replaces with one U+FFFD (*ok = 0); a sequence cut by n is
 * ill-formed. */
static size_t seq_len(const unsigned char *q, size_t n, int *ok) {
    unsigned c = q[0], lo = 0x80, hi = 0xBF;
    size_t len;
    *ok = 1;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *ok = 0;
        return 1;
    }
    size_t k = 1;
    while (k < len && k < n && q[k] >= lo && q[k] <= hi) {
        k++;
        lo = 0x80, hi = 0xBF;
    }
    if (k < len) *ok = 0;
    return k;
}

/* Byte k of carry[0..clen) followed by p. */
static unsigned qbyte(const unsigned char *carry, size_t clen, const unsigned char *p, size_t k) {
    return k < clen ? carry[k] : p[k - clen];
}

/* Bytes that Node's StringDecoder keeps back at the end of a chunk (src/string_decoder.cc): the tail that
 * starts at the last byte of the form 110xxxxx, 1110xxxx or 11110xxx among the last four, when fewer
 * bytes than that form announces follow it; whether they can still be valid is not looked at. */
static size_t node_hold(const unsigned char *carry, size_t clen, const unsigned char *p, size_t m) {
    size_t b = 0;
    for (size_t i = m; i-- > 0;) {
        unsigned c = qbyte(carry, clen, p, i);
        b++;
        if ((c & 0xC0) == 0x80) {
            if (b >= 4 || i == 0) return 0;
            continue;
        }
        size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        return len > b ? b : 0;
    }
    return 0;
}

/* Counts a frame body that has ill-formed UTF-8, one sequence at a time: the bytes buf[dec..] held from the
 * last feed (at most 3), then p[0..avail). Returns SCAN_MORE (*used = avail, the bytes Node would hold are
 * kept for the next feed), SCAN_DONE (*used = bytes of p in the frame, *left = held bytes that are not:
 * they begin the next frame) or SCAN_SPLIT (*used = text offset of the supplementary character that
 * straddles the declared length). */
static int lossy_scan(nc_framer *f, const unsigned char *p, size_t avail, size_t *used, size_t *left) {
    const unsigned char *carry = f->buf.data ? (const unsigned char *)f->buf.data + f->dec : p;
    size_t clen = f->buf.len - f->dec, m = clen + avail;
    size_t limit = m - node_hold(carry, clen, p, m);
    unsigned char tmp[8]; /* the held bytes and what follows, for a sequence that starts in them */
    size_t tl = clen + (avail < 4 ? avail : 4);
    if (clen) memcpy(tmp, carry, clen);
    if (tl > clen) memcpy(tmp + clen, p, tl - clen);
    size_t units = f->scan.units, i = 0;
    while (i < limit && units < f->want) {
        int ok;
        size_t k;
        if (i < clen)
            k = seq_len(tmp + i, (limit < tl ? limit : tl) - i, &ok);
        else
            k = seq_len(p + (i - clen), limit - i, &ok);
        if (ok && k == 4) {
            if (units + 2 > f->want) {
                *used = f->dec + i;
                return SCAN_SPLIT;
            }
            units += 2;
        } else {
            units += 1; /* a BMP character, or U+FFFD */
        }
        i += k;
    }
    f->scan.units = units;
    if (units == f->want) {
        *used = i > clen ? i - clen : 0;
        *left = i < clen ? clen - i : 0;
        return SCAN_DONE;
    }
    *used = avail;
    f->dec += limit;
    return SCAN_MORE;
}

/* Appends t[0..n) to out with each maximal ill-formed subpart replaced by U+FFFD (EF BF BD). */
static int replace_ill_formed(nc_buf *out, const unsigned char *t, size_t n) {
    size_t i = 0, run = 0;
    while (i < n) {
        int ok;
        size_t k = seq_len(t + i, n - i, &ok);
        if (!ok) {
            if (nc_buf_append(out, t + run, i - run) || nc_buf_append(out, "\xEF\xBF\xBD", 3))
                return NC_ENOMEM;
            run = i + k;
        }
        i += k;
    }
    return nc_buf_append(out, t + run, n - run) ? NC_ENOMEM : 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Feed                                                                                                  */

/* The BODY state of a frame with ill-formed UTF-8 (f->lossy): counts *pp..end, and when the frame
 * completes hands its text with U+FFFD in place of the ill-formed bytes to cb. Advances *pp. Returns 0 or
 * what nc_framer_feed returns. */
/* From text offset `at` on, the frame is read as Node decodes it: the bytes before it in p are kept (they
 * are counted), those from it on are read again by lossy_frame. */
NC_COLD static int enter_lossy(nc_framer *f, const unsigned char **pp, size_t at) {
    size_t take = at > f->buf.len ? at - f->buf.len : 0;
    if (nc_buf_append(&f->buf, *pp, take)) return NC_ENOMEM;
    *pp += take;
    f->dec = at;
    f->lossy = 1;
    return 0;
}

NC_COLD static int lossy_frame(nc_framer *f, const unsigned char **pp, const unsigned char *end,
                               nc_frame_cb cb, void *user) {
    const unsigned char *p = *pp;
    size_t used = 0, left = 0;
    int sr = lossy_scan(f, p, (size_t)(end - p), &used, &left);
    if (sr == SCAN_SPLIT)
        return fail(f, NC_EPROTO, "The packet length (%zu) ends inside a character at byte %zu", f->want,
                    used);
    if (nc_buf_append(&f->buf, p, used)) return fail(f, NC_ENOMEM, "Out of memory");
    *pp = p + used;
    if (sr == SCAN_MORE) return 0;

    unsigned char next[4]; /* held bytes that begin the next frame (at most 3) */
    f->buf.len -= left;
    memcpy(next, f->buf.data + f->buf.len, left);
    nc_buf text = NC_BUF_INIT;
    if (replace_ill_formed(&text, (const unsigned char *)f->buf.data, f->buf.len)) {
        nc_buf_free(&text);
        return fail(f, NC_ENOMEM, "Out of memory");
    }
    f->state = NC_FRAMER_S_PREFIX;
    f->prefix_len = 0;
    f->lossy = 0;
    f->dec = 0;
    nc_utf8_scan_reset(&f->scan);
    release_if_big(f);
    int r = cb(user, text.data, text.len);
    nc_buf_free(&text);
    if (r) {
        f->state = NC_FRAMER_S_STOPPED;
        f->buf.len = 0;
        return r;
    }
    return left ? nc_framer_feed(f, (const char *)next, left, cb, user) : 0;
}

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

        if (f->lossy) {
            int r = lossy_frame(f, &p, end, cb, user);
            if (r) return r;
            continue;
        }

        /* BODY: buf.len body bytes are already scanned and counted in f->scan. */
        size_t used;
        int sr = nc_utf8_scan_run(&f->scan, p, avail, f->buf.len, f->want, &used);
        if (sr == SCAN_BAD) {
            if (enter_lossy(f, &p, used)) return fail(f, NC_ENOMEM, "Out of memory");
            continue;
        }
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
