#include "codec/json_build.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/frame.h"
#include "nestc/message.h"
#include "util/buf.h"
#include "util/utf8.h"

/* One open container. A container is attached to its parent when it opens, so only the innermost
 * object can have a key pending: one key buffer serves every level. */
typedef struct frame {
    json_t *v;
} frame;

typedef struct parser {
    const unsigned char *p, *end, *start;
    char *tmp; /* unescaping scratch, grown as needed */
    size_t tmpcap;
    char *keys; /* the pending key (the scratch buffer is reused by the value) */
    size_t klen, kcap;
    frame *st; /* open containers */
    size_t depth, stcap;
    frame inl[32];
    nc_json_perr *e;
    const char *why;
    const unsigned char *at;
    int nomem;
} parser;

/* Bytes copied as they are in the common case: printable ASCII but '"' and '\\'. */
#define P16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char plain[256] = {
    [0x20] = 1, 1,   0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2F: not '"' */
    P16,        P16,                                           /* 0x30-0x4F */
    1,          1,   1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50-0x5F: not '\\' */
    P16,        P16,                                           /* 0x60-0x7F (DEL is plain in JSON) */
};
#undef P16

static int fail(parser *ps, const unsigned char *at, const char *why) {
    if (!ps->why) {
        ps->why = why;
        ps->at = at;
    }
    return -1;
}

static int oom(parser *ps) {
    ps->nomem = 1;
    return fail(ps, ps->p, "out of memory");
}

static inline void ws(parser *ps) {
    const unsigned char *p = ps->p;
    while (p < ps->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    ps->p = p;
}

static int hex4(const unsigned char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        int h = c >= '0' && c <= '9'                     ? (int)(c - '0')
                : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (int)((c | 0x20) - 'a' + 10)
                                                         : -1;
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static char *put_cp(char *o, unsigned v) {
    if (v < 0x80) {
        *o++ = (char)v;
    } else if (v < 0x800) {
        *o++ = (char)(0xC0 | (v >> 6));
        *o++ = (char)(0x80 | (v & 0x3F));
    } else if (v < 0x10000) { /* a lone surrogate too: WTF-8 */
        *o++ = (char)(0xE0 | (v >> 12));
        *o++ = (char)(0x80 | ((v >> 6) & 0x3F));
        *o++ = (char)(0x80 | (v & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (v >> 18));
        *o++ = (char)(0x80 | ((v >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((v >> 6) & 0x3F));
        *o++ = (char)(0x80 | (v & 0x3F));
    }
    return o;
}

/* A string token at ps->p: its decoded bytes in *s and *n (pointing into the text when it has neither
 * escape nor non-ASCII byte, else into the scratch buffer). */
static int string_tok(parser *ps, const char **s, size_t *n) {
    const unsigned char *start = ps->p + 1, *q = start, *end = ps->end;
    while (q < end && plain[*q]) q++;
    if (q < end && *q == '"') {
        *s = (const char *)start;
        *n = (size_t)(q - start);
        ps->p = q + 1;
        return 0;
    }
    /* the closing quote bounds the decoded length: escapes and UTF-8 never grow */
    const unsigned char *close = q;
    while (close < end && *close != '"') close += *close == '\\' ? 2 : 1;
    if (close >= end) return fail(ps, end, "premature end of input in a string");
    size_t need = (size_t)(close - start);
    if (need > ps->tmpcap) {
        char *t = realloc(ps->tmp, need);
        if (!t) return oom(ps);
        ps->tmp = t;
        ps->tmpcap = need;
    }
    memcpy(ps->tmp, start, (size_t)(q - start));
    char *o = ps->tmp + (q - start);
    for (const unsigned char *r = q; r < close;) {
        unsigned c = *r;
        if (c >= 0x20 && c < 0x80 && c != '\\') {
            *o++ = (char)c;
            r++;
            continue;
        }
        if (c < 0x20) return fail(ps, r, "control character in a string");
        if (c >= 0x80) {
            size_t k = nc_utf8_seq_len(r, close);
            if (!k) return fail(ps, r, "invalid UTF-8 in a string");
            memcpy(o, r, k);
            o += k;
            r += k;
            continue;
        }
        unsigned char x = r[1];
        r += 2;
        switch (x) {
        case '"':
        case '\\':
        case '/':
            *o++ = (char)x;
            break;
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
            int v = close - r >= 4 ? hex4(r) : -1;
            if (v < 0) return fail(ps, r - 2, "invalid \\u escape");
            r += 4;
            if (v >= 0xD800 && v <= 0xDBFF && close - r >= 6 && r[0] == '\\' && r[1] == 'u') {
                int lo = hex4(r + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) { /* a pair: one supplementary character */
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                    r += 6;
                }
            }
            o = put_cp(o, (unsigned)v); /* a lone surrogate stays one, as in JavaScript: WTF-8 */
            break;
        }
        default:
            return fail(ps, r - 2, "invalid escape");
        }
    }
    *s = ps->tmp;
    *n = (size_t)(o - ps->tmp);
    ps->p = close + 1;
    return 0;
}

/* JSON.parse's Infinity (a number beyond the double range): a jansson real holding ±HUGE_VAL, so that a
 * handler adds it as JavaScript would and the writer writes it as null like JSON.stringify. json_real()
 * refuses non-finite values, but a jansson real is a json_t followed by its double (json_real_t in
 * jansson_private.h, the same since 2.0): the slot is checked on a finite value before it is written. If
 * the layout ever differs, JSON null (what JSON.stringify writes for Infinity anyway). */
static json_t *js_infinity(int neg) {
    struct real_layout {
        json_t json;
        double value;
    };
    json_t *r = json_real(1.5);
    if (!r) return NULL;
    double *slot = (double *)((char *)r + offsetof(struct real_layout, value));
    if (*slot != 1.5 || json_real_value(r) != 1.5) {
        json_decref(r);
        return json_null();
    }
    *slot = neg ? -HUGE_VAL : HUGE_VAL;
    if (!isinf(json_real_value(r))) { /* the accessor reads elsewhere after all */
        json_decref(r);
        return json_null();
    }
    return r;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? as JSON.parse reads it. */
static json_t *number(parser *ps) {
    const unsigned char *start = ps->p, *p = start, *end = ps->end;
    int neg = p < end && *p == '-';
    p += neg;
    if (p >= end || *p < '0' || *p > '9') {
        fail(ps, p, "invalid token");
        return NULL;
    }
    const unsigned char *d = p;
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9') p++;
    size_t nd = (size_t)(p - d);
    int real = 0;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') {
            fail(ps, p, "invalid number");
            return NULL;
        }
        while (p < end && *p >= '0' && *p <= '9') p++;
        real = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') {
            fail(ps, p, "invalid number");
            return NULL;
        }
        while (p < end && *p >= '0' && *p <= '9') p++;
        real = 1;
    }
    ps->p = p;
    if (!real && nd <= 19) {
        uint64_t u = 0;
        for (size_t i = 0; i < nd; i++) u = u * 10 + (uint64_t)(d[i] - '0'); /* 19 digits fit in uint64 */
        if (u <= (uint64_t)INT64_MAX) return json_integer(neg ? -(json_int_t)u : (json_int_t)u);
        if (neg && u == (uint64_t)INT64_MAX + 1) return json_integer(INT64_MIN);
    }
    /* reals, and integers beyond int64 (JavaScript holds every number as a double) */
    size_t n = (size_t)(p - start);
    char buf[64], *tmp = n < sizeof buf ? buf : malloc(n + 1);
    if (!tmp) return NULL;
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    double v = strtod(tmp, NULL); /* correctly rounded; overflow gives ±HUGE_VAL, underflow ±0 */
    if (tmp != buf) free(tmp);
    if (isinf(v)) return js_infinity(v < 0);
    return json_real(v);
}

static json_t *literal(parser *ps, const char *lit, size_t n, json_t *v) {
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0) {
        fail(ps, ps->p, "invalid token");
        return NULL;
    }
    ps->p += n;
    return v;
}

static int push(parser *ps, json_t *v) {
    if (ps->depth >= NC_JSON_MAX_DEPTH) return fail(ps, ps->p, "maximum nesting depth reached");
    if (ps->depth == ps->stcap) {
        size_t cap = ps->stcap * 2;
        frame *st = ps->st == ps->inl ? malloc(cap * sizeof *st) : realloc(ps->st, cap * sizeof *st);
        if (!st) return oom(ps);
        if (ps->st == ps->inl) memcpy(st, ps->inl, sizeof ps->inl);
        ps->st = st;
        ps->stcap = cap;
    }
    ps->st[ps->depth++] = (frame){v};
    return 0;
}

/* Reads a key at ps->p (after '{' or ',') into the key arena, then the ':'. */
static int key(parser *ps) {
    if (ps->p >= ps->end || *ps->p != '"') return fail(ps, ps->p, "string or '}' expected");
    const char *k;
    size_t kn;
    if (string_tok(ps, &k, &kn)) return -1;
    if (kn > ps->kcap) {
        size_t cap = ps->kcap ? ps->kcap : 256;
        while (cap < kn) cap *= 2;
        char *t = realloc(ps->keys, cap);
        if (!t) return oom(ps);
        ps->keys = t;
        ps->kcap = cap;
    }
    if (kn) memcpy(ps->keys, k, kn); /* an empty key: maybe no buffer yet */
    ps->klen = kn;
    ws(ps);
    if (ps->p >= ps->end || *ps->p != ':') return fail(ps, ps->p, "':' expected");
    ps->p++;
    return 0;
}

/* Attaches v (a new reference, stolen) to the innermost open container, if any. */
static int attach(parser *ps, json_t *v) {
    frame *f = &ps->st[ps->depth - 1];
    int r;
    if (json_is_array(f->v)) {
        r = json_array_append_new(f->v, v);
    } else {
        r = json_object_setn_new_nocheck(f->v, ps->keys ? ps->keys : "", ps->klen, v);
    }
    return r ? oom(ps) : 0;
}

/* The value loop: containers are attached to their parent when opened, so on any error freeing the
 * root frees everything built. */
static json_t *parse(parser *ps) {
    json_t *root = NULL;
    for (;;) {
        ws(ps);
        if (ps->p >= ps->end) {
            fail(ps, ps->p, "premature end of input");
            break;
        }
        json_t *v;
        unsigned c = *ps->p;
        int open = c == '{' || c == '[';
        switch (c) {
        case '{':
            v = json_object();
            break;
        case '[':
            v = json_array();
            break;
        case '"': {
            const char *s;
            size_t n;
            if (string_tok(ps, &s, &n)) goto out;
            v = json_stringn_nocheck(s, n); /* UTF-8 (or WTF-8 for lone surrogates) checked above */
            break;
        }
        case 't':
            v = literal(ps, "true", 4, json_true());
            break;
        case 'f':
            v = literal(ps, "false", 5, json_false());
            break;
        case 'n':
            v = literal(ps, "null", 4, json_null());
            break;
        default:
            v = number(ps);
            break;
        }
        if (!v) {
            if (!ps->why) oom(ps);
            break;
        }
        if (!root)
            root = v;
        else if (attach(ps, v))
            break;
        if (open) {
            unsigned char close = c == '{' ? '}' : ']';
            ps->p++;
            if (push(ps, v)) break;
            ws(ps);
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                ps->depth--;
            } else {
                if (close == '}' && key(ps)) break;
                continue; /* its first value */
            }
        }
        /* after a value: ',' continues the innermost container, a closer ends it (maybe several) */
        for (;;) {
            if (ps->depth == 0) goto out;
            ws(ps);
            if (ps->p >= ps->end) {
                fail(ps, ps->p, "premature end of input");
                goto out;
            }
            int arr = json_is_array(ps->st[ps->depth - 1].v);
            c = *ps->p++;
            if (c == ',') {
                if (!arr) {
                    ws(ps);
                    if (key(ps)) goto out;
                }
                break;
            }
            if (c != (arr ? ']' : '}')) {
                fail(ps, ps->p - 1, arr ? "',' or ']' expected" : "',' or '}' expected");
                goto out;
            }
            ps->depth--;
        }
    }
out:
    if (ps->why) {
        nc_json_free(root);
        return NULL;
    }
    return root;
}

json_t *nc_json_parse_text(const char *text, size_t len, nc_json_perr *e) {
    parser ps; /* fields set one by one: the inline stack need not be zeroed, it is written before read */
    ps.tmp = ps.keys = NULL;
    ps.tmpcap = ps.klen = ps.kcap = ps.depth = 0;
    ps.e = NULL;
    ps.why = NULL;
    ps.at = NULL;
    ps.nomem = 0;
    ps.start = ps.p = (const unsigned char *)(text ? text : "");
    ps.end = ps.p + (text ? len : 0);
    ps.st = ps.inl;
    ps.stcap = sizeof ps.inl / sizeof *ps.inl;
    json_t *v = parse(&ps);
    if (v) {
        ws(&ps);
        if (ps.p != ps.end) {
            fail(&ps, ps.p, "end of input expected");
            nc_json_free(v);
            v = NULL;
        }
    }
    free(ps.tmp);
    free(ps.keys);
    if (ps.st != ps.inl) free(ps.st);
    if (!v && e) {
        memset(e, 0, sizeof *e);
        e->why = ps.why ? ps.why : "out of memory";
        e->nomem = ps.nomem || !ps.why;
        e->js_accepts = ps.why && strcmp(ps.why, "maximum nesting depth reached") == 0;
        const unsigned char *at = ps.at ? ps.at : ps.start;
        e->pos = (size_t)(at - ps.start);
        e->line = 1;
        const unsigned char *ls = ps.start;
        for (const unsigned char *q = ps.start; q < at; q++)
            if (*q == '\n') {
                e->line++;
                ls = q + 1;
            }
        e->col = (int)(at - ls) + 1;
    }
    return v;
}

json_t *nc_json_build(const char *text, size_t len) {
    return nc_json_parse_text(text, len, NULL);
}

json_t *nc_json_string_js(const char *s, size_t n, int keep_surrogates) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    if (keep_surrogates ? nc_wtf8_valid(s, n) : nc_utf8_validate(s, n, NULL) == 0)
        return json_stringn_nocheck(s, n);
    nc_buf b = NC_BUF_INIT;
    int r = 0;
    while (p < end && !r) {
        size_t k = nc_utf8_char_len(p, end);
        if (!k && keep_surrogates && end - p >= 3 && p[0] == 0xED && p[1] >= 0xA0 && (p[2] & 0xC0) == 0x80)
            k = 3;
        if (k) {
            r = nc_buf_append(&b, p, k);
            p += k;
        } else {
            r = nc_buf_append(&b, "\xEF\xBF\xBD", 3); /* U+FFFD */
            p += nc_utf8_bad_len(p, end);
        }
    }
    json_t *v = r ? NULL : json_stringn_nocheck(b.data ? b.data : "", b.len);
    nc_buf_free(&b);
    return v;
}

/* ---- freeing without recursion ------------------------------------------------------------------- */

static int nonempty_container(const json_t *v) {
    return (json_is_array(v) && json_array_size(v)) || (json_is_object(v) && json_object_size(v));
}

/* No nested container below v: jansson's own free goes one level deep only. The common payload. */
static int flat(json_t *v) {
    size_t i;
    const char *k;
    json_t *c;
    if (json_is_array(v)) {
        json_array_foreach(v, i, c) if (json_is_array(c) || json_is_object(c)) return 0;
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, c) if (json_is_array(c) || json_is_object(c)) return 0;
    }
    return 1;
}

/* The pending containers of nc_json_free: 64 inline, then on the heap. */
typedef struct free_stack {
    json_t *inl[64], **st;
    size_t n, cap;
} free_stack;

/* Moves c onto the stack with a reference of its own when it is a non-empty container held only by its
 * parent; -1 when out of memory (the caller stops moving: jansson frees the rest, recursively). */
static int free_stack_take(free_stack *s, json_t *c) {
    if (c->refcount != 1 || !nonempty_container(c)) return 0;
    if (s->n == s->cap) {
        json_t **t =
            s->st == s->inl ? malloc(s->cap * 2 * sizeof *t) : realloc(s->st, s->cap * 2 * sizeof *t);
        if (!t) return -1;
        if (s->st == s->inl) memcpy(t, s->inl, sizeof s->inl);
        s->st = t;
        s->cap *= 2;
    }
    s->st[s->n++] = json_incref(c);
    return 0;
}

void nc_json_free(json_t *v) {
    if (!v) return;
    if (v->refcount != 1 || !nonempty_container(v) || flat(v)) {
        json_decref(v);
        return;
    }
    /* Pending containers, each the last reference to it: empty them first (their container children
     * moved onto this stack with a reference of their own), so that json_decref never nests. */
    free_stack s;
    s.st = s.inl;
    s.cap = 64;
    s.n = 0;
    s.st[s.n++] = v;
    while (s.n) {
        json_t *x = s.st[--s.n];
        if (x->refcount == 1 && nonempty_container(x)) {
            size_t i;
            const char *k;
            json_t *c;
            if (json_is_array(x)) {
                json_array_foreach(x, i, c) if (free_stack_take(&s, c)) break;
                json_array_clear(x);
            } else {
                json_object_foreach(x, k, c) if (free_stack_take(&s, c)) break;
                json_object_clear(x);
            }
        }
        json_decref(x);
    }
    if (s.st != s.inl) free(s.st);
}

/* nestc/message.h. JSON.stringify(NaN) and JSON.stringify(Infinity) are "null"; json_real() refuses
 * them (returns NULL), which nc_reply would send as undefined. Integral doubles within 2^53 become
 * integers, exact in both worlds, so a C reader sees json_is_integer and json_dumps prints "5", not
 * "5.0" (our own writer prints either as "5"). */
json_t *nc_json_number(double d) {
    if (!isfinite(d)) return json_null();
    if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(json_int_t)d)
        return json_integer((json_int_t)d); /* -0.0 compares equal to 0 and becomes 0 */
    return json_real(d);
}
