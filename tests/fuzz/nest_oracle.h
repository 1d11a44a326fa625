/* NestJS's accept rule for JSON text, written straight from the grammar JSON.parse implements (ECMA-404 /
 * ECMA-262 JSON.parse): no depth limit, lone surrogate escapes allowed, any number that matches the
 * grammar (1e400 is Infinity). Deliberately independent of nestc's parser and of jansson: it is the
 * oracle of fuzz_nest_oracle, checked against the recorded NestJS vectors by test_json_oracle.
 * Input: valid UTF-8 (NestJS turns ill-formed bytes into U+FFFD before JSON.parse; nestc's framer refuses
 * them: a documented difference checked elsewhere). Header-only, for tests. */
#ifndef NESTC_TEST_NEST_ORACLE_H
#define NESTC_TEST_NEST_ORACLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct oracle {
    const unsigned char *p, *end;
} oracle;

static inline int oracle_ws(unsigned c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline void oracle_skip(oracle *o) {
    while (o->p < o->end && oracle_ws(*o->p)) o->p++;
}

static inline int oracle_hex(unsigned c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline int oracle_string(oracle *o) {
    o->p++;
    while (o->p < o->end) {
        unsigned c = *o->p++;
        if (c == '"') return 1;
        if (c < 0x20) return 0;
        if (c != '\\') continue;
        if (o->p >= o->end) return 0;
        c = *o->p++;
        if (c == 'u') {
            for (int i = 0; i < 4; i++)
                if (o->p >= o->end || !oracle_hex(*o->p++)) return 0;
        } else if (!strchr("\"\\/bfnrt", (int)c) || c == 0) {
            return 0;
        }
    }
    return 0;
}

static inline int oracle_digits(oracle *o) {
    const unsigned char *s = o->p;
    while (o->p < o->end && *o->p >= '0' && *o->p <= '9') o->p++;
    return o->p > s;
}

static inline int oracle_number(oracle *o) {
    if (o->p < o->end && *o->p == '-') o->p++;
    if (o->p >= o->end) return 0;
    if (*o->p == '0')
        o->p++;
    else if (!(*o->p >= '1' && *o->p <= '9') || !oracle_digits(o))
        return 0;
    if (o->p < o->end && *o->p == '.') {
        o->p++;
        if (!oracle_digits(o)) return 0;
    }
    if (o->p < o->end && (*o->p == 'e' || *o->p == 'E')) {
        o->p++;
        if (o->p < o->end && (*o->p == '+' || *o->p == '-')) o->p++;
        if (!oracle_digits(o)) return 0;
    }
    return 1;
}

static inline int oracle_word(oracle *o, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(o->end - o->p) < n || memcmp(o->p, w, n) != 0) return 0;
    o->p += n;
    return 1;
}

/* 1 when JSON.parse accepts text[0..len); *depth receives the deepest nesting (containers). */
static inline int oracle_accepts(const char *text, size_t len, size_t *depth) {
    oracle o = {(const unsigned char *)text, (const unsigned char *)text + len};
    char *stack = malloc(len + 1); /* '[' or '{' per open container */
    size_t d = 0, maxd = 0;
    int ok = 0;
    if (!stack) abort();
    for (;;) {
        /* a value */
        oracle_skip(&o);
        if (o.p >= o.end) goto out;
        unsigned c = *o.p;
        if (c == '[' || c == '{') {
            o.p++;
            stack[d++] = (char)c;
            if (d > maxd) maxd = d;
            oracle_skip(&o);
            if (o.p < o.end && *o.p == (c == '[' ? ']' : '}')) {
                o.p++;
                d--;
            } else {
                if (c == '{') {
                    if (o.p >= o.end || *o.p != '"' || !oracle_string(&o)) goto out;
                    oracle_skip(&o);
                    if (o.p >= o.end || *o.p++ != ':') goto out;
                }
                continue;
            }
        } else if (c == '"') {
            if (!oracle_string(&o)) goto out;
        } else if (c == 't' || c == 'f' || c == 'n') {
            if (!oracle_word(&o, c == 't' ? "true" : c == 'f' ? "false" : "null")) goto out;
        } else if (!oracle_number(&o)) {
            goto out;
        }
        /* after a value */
        for (;;) {
            oracle_skip(&o);
            if (d == 0) {
                ok = o.p == o.end;
                goto out;
            }
            if (o.p >= o.end) goto out;
            c = *o.p++;
            if (c == ',') {
                if (stack[d - 1] == '{') {
                    oracle_skip(&o);
                    if (o.p >= o.end || *o.p != '"' || !oracle_string(&o)) goto out;
                    oracle_skip(&o);
                    if (o.p >= o.end || *o.p++ != ':') goto out;
                }
                break;
            }
            if (c != (stack[d - 1] == '[' ? ']' : '}')) goto out;
            d--;
        }
    }
out:
    free(stack);
    if (depth) *depth = maxd;
    return ok;
}

/* For a text that is one JSON string (JSON.parse accepted it): what JSON.stringify writes for it, computed
 * over UTF-16 code units as JavaScript holds the string (a lone surrogate escaped as \udxxx, lowercase;
 * a pair written as its character). Returns a malloc'd NUL-terminated text, *n its length. */
static inline char *oracle_stringify_string(const char *text, size_t len, size_t *n) {
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    while (p < end && oracle_ws(*p)) p++;
    uint16_t *u = malloc((len + 1) * sizeof *u);
    size_t k = 0;
    if (!u) abort();
    for (p++; *p != '"';) {
        unsigned c = *p;
        if (c == '\\') {
            unsigned e = p[1];
            p += 2;
            if (e == 'u') {
                char h[5] = {(char)p[0], (char)p[1], (char)p[2], (char)p[3], 0};
                u[k++] = (uint16_t)strtoul(h, NULL, 16);
                p += 4;
            } else {
                const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
                u[k++] = (uint16_t)(unsigned char)to[strchr(from, (int)e) - from];
            }
            continue;
        }
        unsigned cp;
        int nb = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        cp = nb == 1 ? c : nb == 2 ? c & 0x1F : nb == 3 ? c & 0x0F : c & 0x07;
        for (int i = 1; i < nb; i++) cp = (cp << 6) | (p[i] & 0x3F);
        p += nb;
        if (cp >= 0x10000) {
            u[k++] = (uint16_t)(0xD800 + ((cp - 0x10000) >> 10));
            u[k++] = (uint16_t)(0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            u[k++] = (uint16_t)cp;
        }
    }
    char *out = malloc(6 * k + 3), *o = out;
    if (!out) abort();
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    for (size_t i = 0; i < k; i++) {
        unsigned c = u[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < k && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
            unsigned cp = 0x10000 + ((c - 0xD800) << 10) + (u[i + 1] - 0xDC00u);
            i++;
            *o++ = (char)(0xF0 | (cp >> 18));
            *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else if ((c >= 0xD800 && c <= 0xDFFF) || c < 0x20) {
            const char *named = c == '\b'   ? "b"
                                : c == '\f' ? "f"
                                : c == '\n' ? "n"
                                : c == '\r' ? "r"
                                : c == '\t' ? "t"
                                            : 0;
            *o++ = '\\';
            if (named) {
                *o++ = named[0];
            } else {
                *o++ = 'u';
                for (int s = 12; s >= 0; s -= 4) *o++ = hex[(c >> s) & 15];
            }
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x80) {
            *o++ = (char)c;
        } else if (c < 0x800) {
            *o++ = (char)(0xC0 | (c >> 6));
            *o++ = (char)(0x80 | (c & 0x3F));
        } else {
            *o++ = (char)(0xE0 | (c >> 12));
            *o++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *o++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *o++ = '"';
    *o = '\0';
    *n = (size_t)(o - out);
    free(u);
    return out;
}

#endif
