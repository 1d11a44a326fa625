/* nestc bench, raw engine: frame cutting and top-level key scan of replies (see bench_wire.h). */
#include <stdint.h>
#include <string.h>

#include "bench_wire.h"

#define MAX_PREFIX_DIGITS 15

long bw_next_frame(const char *p, size_t len, bw_progress *pg, const char **body, size_t *body_len,
                   size_t *need) {
    size_t i = 0, want = 0;
    *need = 0;
    while (i < len && p[i] >= '0' && p[i] <= '9') {
        if (i == MAX_PREFIX_DIGITS) return -1;
        want = want * 10 + (size_t)(p[i] - '0');
        i++;
    }
    if (i == len) return 0; /* the prefix goes on in the next read */
    if (p[i] != '#' || i == 0 || want == 0) return -1;
    size_t start = i + 1;
    const unsigned char *b = (const unsigned char *)p + start;
    size_t avail = len - start, j = pg->scanned, u = pg->units;
    while (u < want) {
        if (want - u >= 8 && j + 8 <= avail) { /* 8 ASCII bytes at once */
            uint64_t w;
            memcpy(&w, b + j, 8);
            if (!(w & 0x8080808080808080ull)) {
                j += 8;
                u += 8;
                continue;
            }
        }
        if (j >= avail) break;
        unsigned c = b[j];
        size_t n, units = 1;
        if (c < 0x80)
            n = 1;
        else if (c >= 0xC0 && c < 0xE0)
            n = 2;
        else if (c >= 0xE0 && c < 0xF0)
            n = 3;
        else if (c >= 0xF0 && c < 0xF8)
            n = 4, units = 2;
        else
            return -1; /* a continuation byte where a character starts */
        if (j + n > avail) break;
        if (u + units > want) return -1; /* the length ends between the two halves of a surrogate pair */
        j += n;
        u += units;
    }
    if (u < want) {
        pg->scanned = j;
        pg->units = u;
        *need = start + j + (want - u);
        return 0;
    }
    pg->scanned = pg->units = 0;
    *body = p + start;
    *body_len = j;
    return (long)(start + j);
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *e) {
    while (p < e && is_ws(*p)) p++;
    return p;
}

/* p at the opening quote; returns the position after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e) {
    p++;
    for (;;) {
        const char *q = memchr(p, '"', (size_t)(e - p));
        if (!q) return NULL;
        const char *b = q;
        while (b > p && b[-1] == '\\') b--;
        if (((q - b) & 1) == 0) return q + 1; /* an even run of backslashes escapes only itself */
        p = q + 1;
    }
}

/* p at the first byte of a value; returns the position after it, or NULL. */
static const char *skip_value(const char *p, const char *e) {
    if (p >= e) return NULL;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            char c = *p;
            if (c == '"') {
                p = skip_string(p, e);
                if (!p) return NULL;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && !is_ws(*p)) p++;
    return p;
}

/* JavaScript truthiness of a JSON value's text. */
static int truthy(const char *v, size_t n) {
    if (n == 0 || v[0] == 'n' || v[0] == 'f') return 0; /* null, false */
    if (v[0] == '"') return n > 2;                      /* "" is falsy */
    if (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) {  /* 0, -0, 0.0, 0e5 are falsy */
        for (size_t i = 0; i < n && v[i] != 'e' && v[i] != 'E'; i++)
            if (v[i] >= '1' && v[i] <= '9') return 1;
        return 0;
    }
    return 1; /* true, objects, arrays */
}

int bw_parse_reply(const char *body, size_t len, bw_reply *r) {
    const char *p = body, *e = body + len;
    int disposed = 0;
    r->id = NULL;
    r->id_len = 0;
    r->err = r->final = 0;
    p = skip_ws(p, e);
    if (p >= e || *p != '{') return -1;
    p++;
    for (;;) {
        p = skip_ws(p, e);
        if (p >= e) return -1;
        if (*p == '}') break;
        if (*p != '"') return -1;
        const char *ks = p + 1, *ke = skip_string(p, e);
        if (!ke) return -1;
        size_t kl = (size_t)(ke - 1 - ks);
        p = skip_ws(ke, e);
        if (p >= e || *p != ':') return -1;
        const char *vs = skip_ws(p + 1, e);
        p = skip_value(vs, e);
        if (!p) return -1;
        size_t vl = (size_t)(p - vs);
        /* JSON.parse keeps the last of duplicate keys: assign, do not accumulate */
        if (kl == 2 && ks[0] == 'i' && ks[1] == 'd') {
            r->id = *vs == '"' ? vs + 1 : NULL;
            r->id_len = *vs == '"' ? vl - 2 : 0;
        } else if (kl == 10 && !memcmp(ks, "isDisposed", 10)) {
            disposed = truthy(vs, vl);
        } else if (kl == 3 && !memcmp(ks, "err", 3)) {
            r->err = truthy(vs, vl);
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',') {
            p++;
            continue;
        }
        if (p < e && *p == '}') break;
        return -1;
    }
    r->final = disposed || r->err;
    return 0;
}
