#include "codec/json_scan.h"

#include <stdint.h>
#include <string.h>

typedef struct scanner {
    const unsigned char *p, *end;
    unsigned flags;
} scanner;

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* SWAR: a byte of w equal to b / below b (b <= 0x80), without branches per byte. */
static inline uint64_t has_byte(uint64_t w, unsigned char b) {
    uint64_t x = w ^ (ONES * b);
    return (x - ONES) & ~x & HIGHS;
}
static inline uint64_t has_below(uint64_t w, unsigned char b) {
    return (w - ONES * b) & ~w & HIGHS;
}

static inline int is_ws(unsigned c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Skips whitespace; flags it when `mark` (whitespace between tokens of a value). */
static inline void skip_ws(scanner *s, int mark) {
    const unsigned char *p = s->p;
    while (p < s->end && is_ws(*p)) p++;
    if (mark && p != s->p) s->flags |= NC_SPAN_WS;
    s->p = p;
}

static inline int hexval(unsigned c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    return -1;
}

/* s->p at the opening quote. Leaves s->p after the closing quote. */
static int scan_string(scanner *s) {
    const unsigned char *p = s->p + 1, *end = s->end;
    for (;;) {
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            uint64_t m = has_byte(w, '"') | has_byte(w, '\\') | has_below(w, 0x20);
            if (m) {
                /* the lowest flagged byte is exact (little-endian): jump straight to it */
                p += (size_t)__builtin_ctzll(m) >> 3;
                break;
            }
            p += 8;
        }
        if (p >= end) return NC_SCAN_SLOW;
        unsigned c = *p;
        if (c == '"') {
            s->p = p + 1;
            return NC_SCAN_OK;
        }
        if (c < 0x20) return NC_SCAN_SLOW; /* raw control character: invalid JSON */
        if (c != '\\') {
            p++;
            continue;
        }
        s->flags |= NC_SPAN_ESC;
        if (end - p < 2) return NC_SCAN_SLOW;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            break;
        case 'u': {
            if (end - p < 6) return NC_SCAN_SLOW;
            int v = 0;
            for (int i = 2; i < 6; i++) {
                int h = hexval(p[i]);
                if (h < 0) return NC_SCAN_SLOW;
                v = v * 16 + h;
            }
            /* \u0000 is left to the DOM path; surrogates, paired or lone, are JSON to JSON.parse and the
             * builder reads them the same way (json_build.h) */
            if (v == 0) return NC_SCAN_SLOW;
            p += 6;
            break;
        }
        default:
            return NC_SCAN_SLOW;
        }
    }
}

static int scan_number(scanner *s) {
    const unsigned char *p = s->p, *end = s->end, *start = p;
    if (p < end && *p == '-') p++;
    if (p >= end) return NC_SCAN_SLOW;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        return NC_SCAN_SLOW;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') return NC_SCAN_SLOW;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    /* Exponents and long numbers: overflow handling differs between parsers; let the DOM path decide. */
    if (p < end && (*p == 'e' || *p == 'E')) return NC_SCAN_SLOW;
    if (p - start > 15) return NC_SCAN_SLOW;
    s->p = p;
    return NC_SCAN_OK;
}

static int scan_lit(scanner *s, const char *lit, size_t n) {
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return NC_SCAN_SLOW;
    s->p += n;
    return NC_SCAN_OK;
}

static int scan_value(scanner *s, int depth);

static int scan_object(scanner *s, int depth) {
    s->p++; /* '{' */
    skip_ws(s, 1);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return NC_SCAN_OK;
    }
    for (;;) {
        if (s->p >= s->end || *s->p != '"') return NC_SCAN_SLOW;
        unsigned before = s->flags;
        s->flags &= ~NC_SPAN_ESC;
        if (scan_string(s)) return NC_SCAN_SLOW;
        /* an escaped key may hide \u0000 (jansson refuses it in keys): DOM path */
        if (s->flags & NC_SPAN_ESC) return NC_SCAN_SLOW;
        s->flags |= before;
        skip_ws(s, 1);
        if (s->p >= s->end || *s->p != ':') return NC_SCAN_SLOW;
        s->p++;
        skip_ws(s, 1);
        if (scan_value(s, depth + 1)) return NC_SCAN_SLOW;
        skip_ws(s, 1);
        if (s->p >= s->end) return NC_SCAN_SLOW;
        if (*s->p == ',') {
            s->p++;
            skip_ws(s, 1);
            continue;
        }
        if (*s->p != '}') return NC_SCAN_SLOW;
        s->p++;
        return NC_SCAN_OK;
    }
}

static int scan_array(scanner *s, int depth) {
    s->p++; /* '[' */
    skip_ws(s, 1);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return NC_SCAN_OK;
    }
    for (;;) {
        /* numbers are the usual array elements: straight to them */
        if (s->p >= s->end) return NC_SCAN_SLOW;
        unsigned c = *s->p;
        int num = (c - '0' < 10 || c == '-') && depth < NC_SCAN_MAX_DEPTH; /* same depth rule as scan_value */
        if (num && c - '1' < 9) {
            /* a plain integer ended by ',' or ']': the common element of a numeric array */
            const unsigned char *q = s->p + 1, *lim = s->end - s->p > 15 ? s->p + 15 : s->end;
            while (q < lim && (unsigned)(*q - '0') < 10u) q++;
            if (q < s->end && (*q == ',' || *q == ']')) {
                s->p = q;
                goto separator;
            }
        }
        if (num ? scan_number(s) : scan_value(s, depth + 1)) return NC_SCAN_SLOW;
    separator:
        if (s->p < s->end && is_ws(*s->p)) skip_ws(s, 1);
        if (s->p >= s->end) return NC_SCAN_SLOW;
        if (*s->p == ',') {
            s->p++;
            if (s->p < s->end && is_ws(*s->p)) skip_ws(s, 1);
            if (s->p >= s->end) return NC_SCAN_SLOW;
            continue;
        }
        if (*s->p != ']') return NC_SCAN_SLOW;
        s->p++;
        return NC_SCAN_OK;
    }
}

static int scan_value(scanner *s, int depth) {
    if (s->p >= s->end || depth > NC_SCAN_MAX_DEPTH) return NC_SCAN_SLOW;
    switch (*s->p) {
    case '"':
        return scan_string(s);
    case '{':
        return scan_object(s, depth);
    case '[':
        return scan_array(s, depth);
    case 't':
        return scan_lit(s, "true", 4);
    case 'f':
        return scan_lit(s, "false", 5);
    case 'n':
        return scan_lit(s, "null", 4);
    default:
        return scan_number(s);
    }
}

/* Scans one value at s->p into *out (whitespace before it already skipped). */
static int scan_span(scanner *s, nc_span *out) {
    const unsigned char *start = s->p;
    s->flags = 0;
    if (scan_value(s, 1)) return NC_SCAN_SLOW;
    out->p = (const char *)start;
    out->len = (size_t)(s->p - start);
    out->flags = s->flags;
    return NC_SCAN_OK;
}

int nc_json_scan_value(const char *text, size_t len, nc_span *out) {
    scanner s = {(const unsigned char *)text, (const unsigned char *)text + len, 0};
    skip_ws(&s, 0);
    if (scan_span(&s, out)) return NC_SCAN_SLOW;
    skip_ws(&s, 0);
    return s.p == s.end ? NC_SCAN_OK : NC_SCAN_SLOW;
}

/* Walks a top-level object; for each key calls pick() to choose the span slot (or NULL to skip). */
typedef nc_span *(*pick_fn)(void *ctx, const char *key, size_t klen);

static int scan_top(const char *text, size_t len, pick_fn pick, void *ctx) {
    scanner s = {(const unsigned char *)text, (const unsigned char *)text + len, 0};
    skip_ws(&s, 0);
    if (s.p >= s.end || *s.p != '{') return NC_SCAN_SLOW;
    s.p++;
    skip_ws(&s, 0);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
    } else {
        for (;;) {
            if (s.p >= s.end || *s.p != '"') return NC_SCAN_SLOW;
            const unsigned char *k = s.p + 1;
            s.flags = 0;
            if (scan_string(&s) || (s.flags & NC_SPAN_ESC)) return NC_SCAN_SLOW;
            size_t klen = (size_t)(s.p - 1 - k);
            skip_ws(&s, 0);
            if (s.p >= s.end || *s.p != ':') return NC_SCAN_SLOW;
            s.p++;
            skip_ws(&s, 0);
            nc_span tmp, *slot = pick(ctx, (const char *)k, klen);
            if (scan_span(&s, slot ? slot : &tmp)) return NC_SCAN_SLOW;
            skip_ws(&s, 0);
            if (s.p >= s.end) return NC_SCAN_SLOW;
            if (*s.p == ',') {
                s.p++;
                skip_ws(&s, 0);
                continue;
            }
            if (*s.p != '}') return NC_SCAN_SLOW;
            s.p++;
            break;
        }
    }
    skip_ws(&s, 0);
    return s.p == s.end ? NC_SCAN_OK : NC_SCAN_SLOW;
}

#define KEY_IS(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

static nc_span *pick_env(void *ctx, const char *k, size_t n) {
    nc_env *e = ctx;
    if (KEY_IS(k, n, "pattern")) return &e->pattern;
    if (KEY_IS(k, n, "data")) return &e->data;
    if (KEY_IS(k, n, "id")) return &e->id;
    if (KEY_IS(k, n, "metadata")) return &e->metadata;
    e->other_keys = 1;
    return NULL;
}

int nc_env_scan(const char *text, size_t len, nc_env *out) {
    memset(out, 0, sizeof *out);
    return scan_top(text, len, pick_env, out);
}

static nc_span *pick_reply(void *ctx, const char *k, size_t n) {
    nc_reply_env *e = ctx;
    e->nkeys++;
    if (KEY_IS(k, n, "id")) return &e->id;
    if (KEY_IS(k, n, "response")) return &e->response;
    if (KEY_IS(k, n, "err")) return &e->err;
    if (KEY_IS(k, n, "isDisposed")) return &e->disposed;
    if (KEY_IS(k, n, "status")) return &e->status;
    e->other_keys = 1;
    return NULL;
}

int nc_reply_env_scan(const char *text, size_t len, nc_reply_env *out) {
    memset(out, 0, sizeof *out);
    return scan_top(text, len, pick_reply, out);
}

int nc_span_truthy(const nc_span *s) {
    if (!s->p || !s->len) return 0;
    switch (s->p[0]) {
    case 'f':
    case 'n':
        return 0;
    case '"':
        return s->len > 2;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        /* a number is falsy only when every digit is 0 (0, -0, 0.0, -0.000) */
        for (size_t i = 0; i < s->len; i++)
            if (s->p[i] >= '1' && s->p[i] <= '9') return 1;
        return 0;
    default:
        return 1; /* true, objects, arrays */
    }
}
