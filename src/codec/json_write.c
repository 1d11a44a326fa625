#include "codec/json_write.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_build.h"
#include "nestc/error.h"
#include "util/utf8.h"

/* 2^53: every integer up to this magnitude is exact in a double, so its JavaScript text is its decimal. */
#define NC_JS_SAFE_INT 9007199254740992LL

/* ---- numbers ------------------------------------------------------------------------------------- */

/* Decimal text of `u` into the end of `end` (writes backwards); returns the start. */
static char *u64_digits(uint64_t u, char *end) {
    do {
        *--end = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return end;
}

/* Digits and decimal exponent of `v` (> 0, finite) rounded to `p` + 1 significant digits. */
static int round_digits(double v, int p, char *digits, int *exp10) {
    char tmp[40];
    /* "%.*e" gives d.ddd...e±XX with correct rounding (glibc is exact). */
    int n = snprintf(tmp, sizeof tmp, "%.*e", p, v);
    if (n <= 0 || (size_t)n >= sizeof tmp) return 0;
    int k = 0;
    const char *s = tmp;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[k++] = *s;
    *exp10 = *s == 'e' ? atoi(s + 1) : 0;
    return k;
}

/* Does digits[0..k) x 10^(exp10 - k + 1) read back as exactly `v`? */
static int reads_back(const char *digits, int k, int exp10, double v) {
    char tmp[48];
    memcpy(tmp, digits, (size_t)k);
    snprintf(tmp + k, sizeof tmp - (size_t)k, "e%d", exp10 - k + 1);
    return strtod(tmp, NULL) == v;
}

/* Adds one unit in the last place of digits[0..k); a carry out of the first digit bumps the exponent. */
static void digits_increment(char *digits, int k, int *exp10) {
    int i = k - 1;
    while (i >= 0 && digits[i] == '9') digits[i--] = '0';
    if (i >= 0) {
        digits[i]++;
    } else {
        digits[0] = '1'; /* 99..9 + 1 = 100..0: same digit count after trailing zeros are dropped */
        (*exp10)++;
    }
}

/* The digits of a (p + 1)-significant-digit decimal that reads back as `v` (> 0, finite), if there is one
 * (returns their count, else 0). The correctly rounded one is the closest; when it fails, the only other
 * candidate is the next one up, and it can succeed only when v's lower neighbour is nearer than its upper one
 * (v is a power of two), which makes the interval of decimals that read back as v lopsided. */
static int try_digits(double v, int p, int pow2, char *digits, int *exp10) {
    int k = round_digits(v, p, digits, exp10);
    if (k == 0) return 0;
    if (reads_back(digits, k, *exp10, v)) return k;
    if (pow2) {
        char up[24];
        int e = *exp10;
        memcpy(up, digits, (size_t)k);
        digits_increment(up, k, &e);
        if (reads_back(up, k, e, v)) {
            memcpy(digits, up, (size_t)k);
            *exp10 = e;
            return k;
        }
    }
    return 0;
}

/* v == floor(v) for 0 <= v < 2^63, without libm (one dependency fewer to load into every process). */
static inline int is_integral(double v) {
    return v == (double)(uint64_t)v;
}

size_t nc_js_number(double v, char buf[32]) {
    if (isnan(v)) return (size_t)snprintf(buf, 32, "NaN");
    if (isinf(v)) return (size_t)snprintf(buf, 32, v < 0 ? "-Infinity" : "Infinity");
    if (v == 0) return (size_t)snprintf(buf, 32, "0"); /* also -0: String(-0) is "0" */

    char *o = buf;
    if (v < 0) {
        *o++ = '-';
        v = -v;
    }
    /* Integers up to 2^53 are the common case and their text is plain decimal. */
    if (v <= (double)NC_JS_SAFE_INT && is_integral(v)) {
        char tmp[24];
        char *s = u64_digits((uint64_t)v, tmp + sizeof tmp);
        size_t n = (size_t)(tmp + sizeof tmp - s);
        memcpy(o, s, n);
        o[n] = '\0';
        return (size_t)(o - buf) + n;
    }

    /* Short decimals (prices, 0.5, 19.99): if m = v x 10^j is an integer below 10^15 and m / 10^j gives v
     * back (both operations correctly rounded, 10^j exact), the decimal m x 10^-j reads back as v, and a
     * decimal of at most 15 digits that does is the shortest (see below). No snprintf/strtod needed. */
    static const double p10[] = {1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    if (v < 1e7) {
        for (int j = 0; j < 8; j++) {
            double m = v * p10[j];
            if (m >= 1e15) break;
            if (!is_integral(m) || m / p10[j] != v) continue;
            char tmp[24];
            char *d = u64_digits((uint64_t)m, tmp + sizeof tmp);
            int len = (int)(tmp + sizeof tmp - d), k = len, n = len - (j + 1); /* v = 0.d1..dk x 10^n */
            while (k > 1 && d[k - 1] == '0') k--;
            if (k <= n) { /* an integer: normally taken by the path above */
                memcpy(o, d, (size_t)k);
                o += k;
                for (int i = k; i < n; i++) *o++ = '0';
            } else if (n > 0) {
                memcpy(o, d, (size_t)n);
                o += n;
                *o++ = '.';
                memcpy(o, d + n, (size_t)(k - n));
                o += k - n;
            } else if (n > -6) {
                *o++ = '0';
                *o++ = '.';
                for (int i = 0; i < -n; i++) *o++ = '0';
                memcpy(o, d, (size_t)k);
                o += k;
            } else {
                break; /* exponent notation: leave it to the general path */
            }
            *o = '\0';
            return (size_t)(o - buf);
        }
    }

    int frexp_e;
    int normal = v >= DBL_MIN;
    int pow2 = normal && frexp(v, &frexp_e) == 0.5;
    char best[24];
    int best_e10 = 0, best_k = 0;
    if (normal) {
        /* For a normal double, the decimals that read back as v lie within 2^-53 v of it, while
         * 15-significant-digit decimals are more than 10^-15 v apart: if any decimal of at most 15 digits
         * reads back, it is the one "%.14e" gives, and dropping its trailing zeros yields the shortest.
         * Otherwise the answer has 16 or 17 digits. One to three probes instead of a search. */
        best_k = try_digits(v, 14, pow2, best, &best_e10);
        if (!best_k) best_k = try_digits(v, 15, pow2, best, &best_e10);
        if (!best_k) best_k = round_digits(v, 16, best, &best_e10);
    } else {
        /* Subnormals have fewer significant bits, so the argument above fails. Whether some decimal of
         * p + 1 digits reads back is monotonic in p (more digits is a superset) and 17 always suffice:
         * binary search for the smallest p. */
        char digits[24];
        int e10 = 0, best_p = -1;
        int lo = 0, hi = 16;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            int k = try_digits(v, mid, pow2, digits, &e10);
            if (k) {
                hi = mid;
                best_p = mid;
                memcpy(best, digits, (size_t)k);
                best_k = k;
                best_e10 = e10;
            } else {
                lo = mid + 1;
            }
        }
        if (best_p != lo) best_k = round_digits(v, 16, best, &best_e10); /* only p = 16 was left */
    }
    int k = best_k;
    while (k > 1 && best[k - 1] == '0') k--; /* from "%.14e", or a carry in try_digits */

    /* ECMA-262 Number::toString: v = 0.d1..dk x 10^n. */
    int n = best_e10 + 1;
    if (k <= n && n <= 21) {
        memcpy(o, best, (size_t)k);
        o += k;
        for (int i = k; i < n; i++) *o++ = '0';
    } else if (0 < n && n <= 21) {
        memcpy(o, best, (size_t)n);
        o += n;
        *o++ = '.';
        memcpy(o, best + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -n; i++) *o++ = '0';
        memcpy(o, best, (size_t)k);
        o += k;
    } else {
        *o++ = best[0];
        if (k > 1) {
            *o++ = '.';
            memcpy(o, best + 1, (size_t)(k - 1));
            o += k - 1;
        }
        *o++ = 'e';
        int x = n - 1;
        *o++ = x < 0 ? '-' : '+';
        char tmp[8];
        char *s = u64_digits((uint64_t)(x < 0 ? -x : x), tmp + sizeof tmp);
        memcpy(o, s, (size_t)(tmp + sizeof tmp - s));
        o += tmp + sizeof tmp - s;
    }
    *o = '\0';
    return (size_t)(o - buf);
}

/* ---- writer -------------------------------------------------------------------------------------- */

/* For each byte: 0 = copy as is, 'u' = \u00xx, 's' = maybe a WTF-8 surrogate (0xED lead byte), 'x' =
 * another non-ASCII byte (checked: a handler's json_stringn_nocheck() string may hold ill-formed UTF-8),
 * otherwise the letter written after a backslash. */
// clang-format off
#define X4 'x', 'x', 'x', 'x'
#define X16 X4, X4, X4, X4
static const char esc_tab[256] = {
    ['\0'] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u', [0x06] = 'u',
    [0x07] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [0x0b] = 'u', ['\f'] = 'f', ['\r'] = 'r',
    [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u', [0x11] = 'u', [0x12] = 'u', [0x13] = 'u', [0x14] = 'u',
    [0x15] = 'u', [0x16] = 'u', [0x17] = 'u', [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u',
    [0x1c] = 'u', [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u', ['"'] = '"', ['\\'] = '\\',
    [0x80] = X16, X16, X16, X16, X16, X16, X4, X4, X4, 'x', /* 0x80..0xEC: 109 */
    [0xED] = 's', X16, 'x', 'x',                             /* 0xEE..0xFF: 18 */
};
#undef X16
#undef X4
// clang-format on

/* The code point of the WTF-8 surrogate at s[i] (ED A0..BF 80..BF), or 0. */
static unsigned surrogate_at(const unsigned char *s, size_t i, size_t n) {
    if (n - i < 3 || s[i] != 0xED || s[i + 1] < 0xA0 || s[i + 1] > 0xBF || (s[i + 2] & 0xC0) != 0x80)
        return 0;
    return 0xD000u | ((unsigned)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3Fu);
}

static int write_string(nc_buf *out, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    /* Worst case is 6 bytes per input byte; reserving for the common case (nothing to escape) and
     * growing only when an escape appears keeps large strings to one reservation. */
    if (nc_buf_reserve(out, n + 2)) return NC_ENOMEM;
    out->data[out->len++] = '"';
    size_t run = 0; /* start of the pending run of bytes copied as is */
    for (size_t i = 0; i < n; i++) {
        char e = esc_tab[s[i]];
        if (!e) continue;
        char tmp[6] = {'\\', e};
        size_t tn = 2, skip = 1;
        if (e == 'u') {
            tmp[2] = '0';
            tmp[3] = '0';
            tmp[4] = hex[s[i] >> 4];
            tmp[5] = hex[s[i] & 15];
            tn = 6;
        } else if (e == 's') {
            /* A lone surrogate (held as WTF-8, see json_build.h): JSON.stringify writes it as \udxxx,
             * lowercase. A high one followed by a low one is a pair written as the character itself. */
            unsigned hi = surrogate_at(s, i, n);
            if (!hi) e = 'x'; /* an ordinary character U+D000..U+D7FF, or ill-formed */
            unsigned lo = hi && hi < 0xDC00 ? surrogate_at(s, i + 3, n) : 0;
            if (lo >= 0xDC00) {
                unsigned cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                tmp[0] = (char)(0xF0 | (cp >> 18));
                tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
                tmp[3] = (char)(0x80 | (cp & 0x3F));
                tn = 4;
                skip = 6;
            } else if (hi) {
                tmp[1] = 'u';
                for (int k = 0; k < 4; k++) tmp[2 + k] = hex[(hi >> (12 - 4 * k)) & 15];
                tn = 6;
                skip = 3;
            }
        }
        if (e == 'x') {
            /* Raw ill-formed bytes would reach the peer as they are, and Node's decoding turns them into
             * U+FFFD, after which the frame's length no longer matches: write U+FFFD ourselves. */
            size_t k = s[i] >= 0xC2 && s[i] <= 0xDF && n - i >= 2 && (s[i + 1] & 0xC0) == 0x80
                           ? 2 /* the common case inline: a 2-byte character */
                           : nc_utf8_char_len(s + i, s + n);
            if (k) {
                i += k - 1;
                continue;
            }
            memcpy(tmp, "\xEF\xBF\xBD", 3);
            tn = 3;
            skip = nc_utf8_bad_len(s + i, s + n);
        }
        if (nc_buf_append(out, s + run, i - run) || nc_buf_reserve(out, tn + (n - i) + 1)) return NC_ENOMEM;
        memcpy(out->data + out->len, tmp, tn);
        out->len += tn;
        i += skip - 1;
        run = i + 1;
    }
    if (nc_buf_append(out, s + run, n - run) || nc_buf_append_char(out, '"')) return NC_ENOMEM;
    return 0;
}

static int write_number(nc_buf *out, double d) {
    if (nc_buf_reserve(out, 32)) return NC_ENOMEM;
    char tmp[32];
    size_t n = nc_js_number(d, tmp);
    memcpy(out->data + out->len, tmp, n);
    out->len += n;
    return 0;
}

static int write_integer(nc_buf *out, json_int_t i) {
    if (i > NC_JS_SAFE_INT || i < -NC_JS_SAFE_INT) return write_number(out, (double)i);
    if (nc_buf_reserve(out, 24)) return NC_ENOMEM;
    char tmp[24];
    char *s = u64_digits(i < 0 ? (uint64_t)(-i) : (uint64_t)i, tmp + sizeof tmp);
    if (i < 0) *--s = '-';
    size_t n = (size_t)(tmp + sizeof tmp - s);
    memcpy(out->data + out->len, s, n);
    out->len += n;
    return 0;
}

/* A scalar, or an empty container. */
static int write_leaf(nc_buf *out, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return nc_buf_append(out, "{}", 2);
    case JSON_ARRAY:
        return nc_buf_append(out, "[]", 2);
    case JSON_STRING:
        return write_string(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return write_integer(out, json_integer_value(v));
    case JSON_REAL: {
        double d = json_real_value(v);
        if (!isfinite(d)) return nc_buf_append(out, "null", 4);
        return write_number(out, d);
    }
    case JSON_TRUE:
        return nc_buf_append(out, "true", 4);
    case JSON_FALSE:
        return nc_buf_append(out, "false", 5);
    case JSON_NULL:
        return nc_buf_append(out, "null", 4);
    }
    return NC_EINVAL;
}

/* An open container: the array and the next index, or the object and its iterator. */
typedef struct wframe {
    json_t *v;
    size_t i, n; /* array: next index, size (0 for an object) */
    void *it;
} wframe;

/* Writes an object member's key and ':' and returns its value. */
static inline json_t *member(nc_buf *out, void *it, int *rc) {
    *rc = write_string(out, json_object_iter_key(it), json_object_iter_key_len(it));
    if (!*rc) *rc = nc_buf_append_char(out, ':');
    return json_object_iter_value(it);
}

/* Iterative (an explicit stack): the depth of a value built from peer text is the peer's choice. */
static int write_value(nc_buf *out, const json_t *root) {
    wframe inl[32], *st = inl;
    size_t depth = 0, cap = sizeof inl / sizeof *inl;
    int rc = 0;
    /* jansson's iterator API takes a non-const object but does not modify it. */
    json_t *v = (json_t *)root;
    for (;;) {
        int arr = json_is_array(v), obj = !arr && json_is_object(v);
        size_t an = arr ? json_array_size(v) : 0;
        /* an empty container is a level too, as in the parser; a reference cycle ends here */
        if ((arr || obj) && depth >= NC_JSON_MAX_DEPTH) {
            rc = NC_EINVAL;
            break;
        }
        if (an || (obj && json_object_size(v))) {
            if (depth == cap) {
                wframe *t = st == inl ? malloc(2 * cap * sizeof *t) : realloc(st, 2 * cap * sizeof *t);
                if (!t) {
                    rc = NC_ENOMEM;
                    break;
                }
                if (st == inl) memcpy(t, inl, sizeof inl);
                st = t;
                cap *= 2;
            }
            if ((rc = nc_buf_append_char(out, arr ? '[' : '{'))) break;
            wframe *f = &st[depth++];
            f->v = v;
            f->n = an;
            if (arr) {
                f->i = 1;
                v = json_array_get(v, 0);
            } else {
                f->it = json_object_iter(v);
                v = member(out, f->it, &rc);
                if (rc) break;
            }
            continue;
        }
        if ((rc = write_leaf(out, v))) break;
        /* next sibling of the innermost open container, closing the finished ones */
        v = NULL;
        while (depth && !v) {
            wframe *f = &st[depth - 1];
            if (f->n) {
                if (f->i < f->n) {
                    if ((rc = nc_buf_append_char(out, ','))) break;
                    v = json_array_get(f->v, f->i++);
                    continue;
                }
            } else if ((f->it = json_object_iter_next(f->v, f->it))) {
                if ((rc = nc_buf_append_char(out, ','))) break;
                v = member(out, f->it, &rc);
                if (rc) break;
                continue;
            }
            if ((rc = nc_buf_append_char(out, f->n ? ']' : '}'))) break;
            depth--;
        }
        if (rc || !v) break;
    }
    if (st != inl) free(st);
    return rc;
}

int nc_json_write(nc_buf *out, const json_t *v) {
    if (!out || !v) return NC_EINVAL;
    size_t start = out->len;
    int rc = write_value(out, v);
    if (rc) out->len = start;
    return rc;
}

/* ---- parser ------------------------------------------------------------------------------------ */

int nc_json_parse_js(const char *text, size_t len, json_t **out, char *err, size_t errlen, int *js_accepts) {
    if (js_accepts) *js_accepts = 0;
    if (out) *out = NULL;
    if (!out || (!text && len)) {
        if (err && errlen) snprintf(err, errlen, "invalid argument");
        return NC_EINVAL;
    }
    nc_json_perr e;
    json_t *v = nc_json_parse_text(text, len, &e);
    if (v) {
        *out = v;
        return 0;
    }
    if (e.nomem) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NC_ENOMEM;
    }
    if (js_accepts) *js_accepts = e.js_accepts;
    if (err && errlen)
        snprintf(err, errlen, "Unexpected token at line %d column %d: %s", e.line, e.col, e.why);
    return NC_EPROTO;
}

int nc_json_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen) {
    return nc_json_parse_js(text, len, out, err, errlen, NULL);
}
