#include "codec/json_build.h"

#include <stdlib.h>
#include <string.h>

#include "codec/json_write.h"

typedef struct builder {
    const char *p, *end;
    char *tmp; /* unescaping scratch, grown as needed */
    size_t tmpcap;
} builder;

static void ws(builder *b) {
    while (b->p < b->end && (*b->p == ' ' || *b->p == '\n' || *b->p == '\r' || *b->p == '\t')) b->p++;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = (unsigned char)p[i];
        int h = c >= '0' && c <= '9'                     ? (int)(c - '0')
                : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (int)((c | 0x20) - 'a' + 10)
                                                         : -1;
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* A string token at b->p: its decoded bytes in *s and *n (pointing into the text when it has no escape). */
static int string_tok(builder *b, const char **s, size_t *n) {
    const char *start = ++b->p, *q = start;
    while (q < b->end && *q != '"' && *q != '\\') q++;
    if (q < b->end && *q == '"') {
        *s = start;
        *n = (size_t)(q - start);
        b->p = q + 1;
        return 0;
    }
    /* escapes: decode into the scratch buffer (never longer than the text) */
    const char *close = q;
    while (close < b->end && *close != '"') close += *close == '\\' ? 2 : 1;
    if (close >= b->end) return -1;
    size_t need = (size_t)(close - start);
    if (need > b->tmpcap) {
        char *t = realloc(b->tmp, need ? need : 1);
        if (!t) return -1;
        b->tmp = t;
        b->tmpcap = need;
    }
    char *o = b->tmp;
    for (const char *r = start; r < close;) {
        if (*r != '\\') {
            *o++ = *r++;
            continue;
        }
        char e = r[1];
        r += 2;
        switch (e) {
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            /* the scanner let through only BMP code points outside the surrogates and not 0 */
            int v = hex4(r);
            if (v <= 0 || (v >= 0xD800 && v <= 0xDFFF)) return -1;
            r += 4;
            if (v < 0x80) {
                *o++ = (char)v;
            } else if (v < 0x800) {
                *o++ = (char)(0xC0 | (v >> 6));
                *o++ = (char)(0x80 | (v & 0x3F));
            } else {
                *o++ = (char)(0xE0 | (v >> 12));
                *o++ = (char)(0x80 | ((v >> 6) & 0x3F));
                *o++ = (char)(0x80 | (v & 0x3F));
            }
            break;
        }
        default:
            *o++ = e;
            break; /* " \ / */
        }
    }
    *s = b->tmp;
    *n = (size_t)(o - b->tmp);
    b->p = close + 1;
    return 0;
}

static json_t *number(builder *b) {
    const char *start = b->p;
    int real = 0;
    while (b->p < b->end) {
        char c = *b->p;
        if (c == '.' || c == 'e' || c == 'E' || c == '+')
            real = 1;
        else if (!(c == '-' || (c >= '0' && c <= '9')))
            break;
        b->p++;
    }
    size_t n = (size_t)(b->p - start);
    if (!real && n <= 18) {
        json_int_t v = 0;
        size_t i = start[0] == '-';
        for (; i < n; i++) v = v * 10 + (start[i] - '0');
        return json_integer(start[0] == '-' ? -v : v);
    }
    /* reals (and the rare long integer): let jansson convert, with its overflow rules */
    json_t *v = NULL;
    char why[8];
    nc_json_parse(start, n, &v, why, sizeof why);
    return v;
}

static json_t *value(builder *b, int depth);

static json_t *array(builder *b, int depth) {
    json_t *a = json_array();
    if (!a) return NULL;
    b->p++;
    ws(b);
    if (b->p < b->end && *b->p == ']') {
        b->p++;
        return a;
    }
    for (;;) {
        json_t *v = value(b, depth + 1);
        if (!v || json_array_append_new(a, v)) break;
        ws(b);
        if (b->p < b->end && *b->p == ',') {
            b->p++;
            ws(b);
            continue;
        }
        if (b->p < b->end && *b->p == ']') {
            b->p++;
            return a;
        }
        break;
    }
    json_decref(a);
    return NULL;
}

static json_t *object(builder *b, int depth) {
    json_t *o = json_object();
    if (!o) return NULL;
    b->p++;
    ws(b);
    if (b->p < b->end && *b->p == '}') {
        b->p++;
        return o;
    }
    for (;;) {
        const char *k;
        size_t kn;
        if (b->p >= b->end || *b->p != '"' || string_tok(b, &k, &kn)) break;
        /* the key may live in the scratch buffer, which the value can reuse: copy it first */
        char kbuf[128], *key = kn < sizeof kbuf ? kbuf : malloc(kn + 1);
        if (!key) break;
        memcpy(key, k, kn);
        key[kn] = '\0';
        ws(b);
        b->p++; /* ':' */
        ws(b);
        json_t *v = value(b, depth + 1);
        int bad = !v || json_object_setn_new_nocheck(o, key, kn, v);
        if (key != kbuf) free(key);
        if (bad) break;
        ws(b);
        if (b->p < b->end && *b->p == ',') {
            b->p++;
            ws(b);
            continue;
        }
        if (b->p < b->end && *b->p == '}') {
            b->p++;
            return o;
        }
        break;
    }
    json_decref(o);
    return NULL;
}

static json_t *value(builder *b, int depth) {
    if (b->p >= b->end || depth > 100000) return NULL;
    switch (*b->p) {
    case '{':
        return object(b, depth);
    case '[':
        return array(b, depth);
    case '"': {
        const char *s;
        size_t n;
        if (string_tok(b, &s, &n)) return NULL;
        return json_stringn_nocheck(s, n); /* UTF-8 was validated before scanning */
    }
    case 't':
        b->p += 4;
        return json_true();
    case 'f':
        b->p += 5;
        return json_false();
    case 'n':
        b->p += 4;
        return json_null();
    default:
        return number(b);
    }
}

json_t *nc_json_build(const char *text, size_t len) {
    builder b = {text, text + len, NULL, 0};
    ws(&b);
    json_t *v = value(&b, 0);
    free(b.tmp);
    return v;
}
