/* .proto text → descriptors (proto_parse.h). One pass per file with a one-token lookahead; imports are
 * queued and read after the file that names them, and type names are resolved once every file is in, so
 * declaration order never matters (as in protobufjs, which resolves on resolveAll()). */
#include "codec/proto_parse.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/proto_bundled.h"
#include "nestc/error.h"

#define PB_MAX_NUMBER 536870911u /* 2^29 - 1 */

struct nc_pb_pool {
    void **allocs; /* every block the pool owns */
    size_t nallocs, capallocs;
    nc_pb_msg **msgs;
    size_t nmsgs, capmsgs;
    nc_pb_enum **enums;
    size_t nenums, capenums;
    nc_pb_service **svcs;
    size_t nsvcs, capsvcs;
    nc_pb_service **svcs_sorted;
    char **files; /* paths loaded, to read each once */
    size_t nfiles, capfiles;
    nc_pb_file *finfo; /* per file, as files */
    size_t capfinfo;
    size_t ndefs;
    nc_proto_limits lim;
};

/* ---- pool memory ------------------------------------------------------------------------------------ */

static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, nc * elem);
    if (!p) return NC_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static void *pool_own(nc_pb_pool *pl, void *p) {
    if (!p) return NULL;
    if (grow((void **)&pl->allocs, &pl->capallocs, pl->nallocs, sizeof(void *))) {
        free(p);
        return NULL;
    }
    pl->allocs[pl->nallocs++] = p;
    return p;
}

static void *pool_zalloc(nc_pb_pool *pl, size_t n) {
    return pool_own(pl, calloc(1, n ? n : 1));
}

static char *pool_strndup(nc_pb_pool *pl, const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return pool_own(pl, d);
}

static char *pool_join(nc_pb_pool *pl, const char *a, const char *b) { /* "a.b", or b when a is "" */
    size_t na = strlen(a), nb = strlen(b);
    char *d = malloc(na + nb + 2);
    if (!d) return NULL;
    if (na) {
        memcpy(d, a, na);
        d[na++] = '.';
    }
    memcpy(d + na, b, nb + 1);
    return pool_own(pl, d);
}

/* protobufjs util.camelCase: the first character kept, then every "_x" (x in a-z) becomes "X". */
static char *camel_case(nc_pb_pool *pl, const char *s) {
    size_t n = strlen(s), j = 0;
    char *d = malloc(n + 1);
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && s[i] == '_' && s[i + 1] >= 'a' && s[i + 1] <= 'z') {
            d[j++] = (char)(s[i + 1] - 'a' + 'A');
            i++;
        } else
            d[j++] = s[i];
    }
    d[j] = 0;
    return pool_own(pl, d);
}

void nc_proto_free(nc_pb_pool *pl) {
    if (!pl) return;
    for (size_t i = 0; i < pl->nmsgs; i++) {
        free(pl->msgs[i]->fields);
        free(pl->msgs[i]->oneofs);
        free(pl->msgs[i]->by_name);
        free(pl->msgs[i]->by_camel);
    }
    for (size_t i = 0; i < pl->nenums; i++) free(pl->enums[i]->values);
    for (size_t i = 0; i < pl->nsvcs; i++) free(pl->svcs[i]->methods);
    for (size_t i = 0; i < pl->nfiles; i++) {
        free(pl->files[i]);
        free(pl->finfo[i].deps);
    }
    free(pl->finfo);
    for (size_t i = 0; i < pl->nallocs; i++) free(pl->allocs[i]); /* the structs above live here */
    free(pl->allocs);
    free(pl->msgs);
    free(pl->enums);
    free(pl->svcs);
    free(pl->svcs_sorted);
    free(pl->files);
    free(pl);
}

/* ---- tokenizer -------------------------------------------------------------------------------------- */

enum { T_EOF, T_IDENT, T_NUM, T_STR, T_PUNCT };

typedef struct parser {
    nc_pb_pool *pool;
    const char *file;
    const char *p, *end;
    int line;
    const char *line_start;
    char *err;
    size_t errlen;
    int rc;          /* first error */
    const char *pkg; /* "" or "a.b" */
    int proto3;
    size_t depth;
    /* the lookahead token */
    int tok;
    const char *ts;
    size_t tn;
    char *str; /* decoded string literal (owned by the parser) */
    size_t strn;
    int tline, tcol;
    /* imports named by this file, for the loader */
    char **imports;
    size_t nimports, capimports;
} parser;

static int fail(parser *P, int rc, const char *fmt, ...) {
    if (P->rc) return P->rc;
    P->rc = rc;
    if (P->err && P->errlen) {
        int k = snprintf(P->err, P->errlen, "%s:%d:%d: ", P->file, P->tline, P->tcol);
        if (k >= 0 && (size_t)k < P->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(P->err + k, P->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

static int syntax(parser *P, const char *what) {
    if (P->tok == T_EOF) return fail(P, NC_EINVAL, "%s expected, found end of file", what);
    return fail(P, NC_EINVAL, "%s expected, found '%.*s'", what, (int)(P->tn > 40 ? 40 : P->tn), P->ts);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int str_push(parser *P, size_t *cap, unsigned c) {
    if (P->strn + 1 >= *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        char *s = realloc(P->str, nc);
        if (!s) return NC_ENOMEM;
        P->str = s;
        *cap = nc;
    }
    P->str[P->strn++] = (char)c;
    P->str[P->strn] = 0;
    return 0;
}

/* One quoted string (escapes as protoc reads them) appended to P->str. */
static int lex_string(parser *P, size_t *cap) {
    char q = *P->p++;
    while (P->p < P->end && *P->p != q) {
        unsigned c = (unsigned char)*P->p++;
        if (c == '\n') return fail(P, NC_EINVAL, "newline in string");
        if (c == '\\' && P->p < P->end) {
            c = (unsigned char)*P->p++;
            switch (c) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case 'a':
                c = '\a';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'v':
                c = '\v';
                break;
            case 'x':
            case 'X': {
                unsigned v = 0;
                int k = 0;
                while (k < 2 && P->p < P->end && hexval(*P->p) >= 0)
                    v = v * 16 + (unsigned)hexval(*P->p++), k++;
                c = v;
                break;
            }
            default:
                if (c >= '0' && c <= '7') {
                    unsigned v = c - '0';
                    int k = 1;
                    while (k < 3 && P->p < P->end && *P->p >= '0' && *P->p <= '7')
                        v = v * 8 + (unsigned)(*P->p++ - '0'), k++;
                    c = v & 0xFF;
                }
                break; /* \\ \' \" \? and anything else: the character itself */
            }
        }
        if (str_push(P, cap, c)) return fail(P, NC_ENOMEM, "out of memory");
    }
    if (P->p >= P->end) return fail(P, NC_EINVAL, "unterminated string");
    P->p++;
    return 0;
}

static int is_ident_start(int c) {
    return isalpha(c) || c == '_';
}
static int is_ident_char(int c) {
    return isalnum(c) || c == '_' || c == '.';
}

/* Reads the next token into the lookahead. Comments and whitespace are skipped; adjacent string literals
 * are one token (as in protoc). */
static int next(parser *P) {
    for (;;) {
        while (P->p < P->end && isspace((unsigned char)*P->p)) {
            if (*P->p == '\n') P->line++, P->line_start = P->p + 1;
            P->p++;
        }
        if (P->p + 1 < P->end && P->p[0] == '/' && P->p[1] == '/') {
            while (P->p < P->end && *P->p != '\n') P->p++;
            continue;
        }
        if (P->p + 1 < P->end && P->p[0] == '/' && P->p[1] == '*') {
            P->p += 2;
            while (P->p + 1 < P->end && !(P->p[0] == '*' && P->p[1] == '/')) {
                if (*P->p == '\n') P->line++, P->line_start = P->p + 1;
                P->p++;
            }
            if (P->p + 1 >= P->end) {
                P->tline = P->line;
                P->tcol = 1;
                return fail(P, NC_EINVAL, "unterminated comment");
            }
            P->p += 2;
            continue;
        }
        break;
    }
    P->tline = P->line;
    P->tcol = (int)(P->p - P->line_start) + 1;
    P->ts = P->p;
    if (P->p >= P->end) {
        P->tok = T_EOF;
        P->tn = 0;
        return 0;
    }
    int c = (unsigned char)*P->p;
    if (c == '"' || c == '\'') {
        size_t cap = 0;
        free(P->str);
        P->str = NULL;
        P->strn = 0;
        if (str_push(P, &cap, 0)) return fail(P, NC_ENOMEM, "out of memory");
        P->strn = 0;
        for (;;) {
            if (lex_string(P, &cap)) return P->rc;
            const char *save = P->p;
            int sl = P->line;
            const char *sls = P->line_start;
            while (P->p < P->end && isspace((unsigned char)*P->p)) {
                if (*P->p == '\n') P->line++, P->line_start = P->p + 1;
                P->p++;
            }
            if (P->p < P->end && (*P->p == '"' || *P->p == '\'')) continue;
            P->p = save, P->line = sl, P->line_start = sls;
            break;
        }
        P->tok = T_STR;
        P->tn = (size_t)(P->p - P->ts);
        return 0;
    }
    if (is_ident_start(c) || (c == '.' && P->p + 1 < P->end && is_ident_start((unsigned char)P->p[1]))) {
        P->p++;
        while (P->p < P->end && is_ident_char((unsigned char)*P->p)) P->p++;
        P->tok = T_IDENT;
    } else if (isdigit(c) ||
               ((c == '-' || c == '+' || c == '.') && P->p + 1 < P->end &&
                (isdigit((unsigned char)P->p[1]) || P->p[1] == '.' || isalpha((unsigned char)P->p[1])))) {
        P->p++;
        while (P->p < P->end) {
            int d = (unsigned char)*P->p;
            if (isalnum(d) || d == '.' || d == '_' ||
                ((d == '+' || d == '-') && (P->p[-1] == 'e' || P->p[-1] == 'E') && P->ts[0] != '0'))
                P->p++;
            else
                break;
        }
        P->tok = T_NUM;
    } else {
        P->p++;
        P->tok = T_PUNCT;
    }
    P->tn = (size_t)(P->p - P->ts);
    return 0;
}

static int is(parser *P, const char *w) {
    size_t n = strlen(w);
    return P->tok != T_STR && P->tok != T_EOF && P->tn == n && memcmp(P->ts, w, n) == 0;
}

static int expect(parser *P, const char *w) {
    if (!is(P, w)) {
        char what[16];
        snprintf(what, sizeof what, "'%s'", w);
        return syntax(P, what);
    }
    return next(P);
}

/* A plain identifier (no dots) copied into the pool; advances. */
static const char *ident(parser *P, const char *what) {
    if (P->tok != T_IDENT || memchr(P->ts, '.', P->tn)) {
        syntax(P, what);
        return NULL;
    }
    const char *s = pool_strndup(P->pool, P->ts, P->tn);
    if (!s) {
        fail(P, NC_ENOMEM, "out of memory");
        return NULL;
    }
    if (next(P)) return NULL;
    return s;
}

/* An integer literal (decimal, 0x hex, 0 octal, optional sign) within [lo, hi]. */
static int integer(parser *P, long long lo, long long hi, long long *out) {
    if (P->tok != T_NUM && P->tok != T_IDENT) return syntax(P, "integer");
    char buf[40];
    if (P->tn >= sizeof buf) return fail(P, NC_EINVAL, "integer out of range");
    memcpy(buf, P->ts, P->tn);
    buf[P->tn] = 0;
    const char *s = buf;
    int neg = 0;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    if (!isdigit((unsigned char)*s)) return syntax(P, "integer");
    errno = 0;
    char *e;
    unsigned long long v = strtoull(s, &e, 0);
    if (*e || errno) return fail(P, NC_EINVAL, "invalid integer '%s'", buf);
    if (v > (unsigned long long)LLONG_MAX + (neg ? 1u : 0u))
        return fail(P, NC_EINVAL, "integer out of range");
    long long x = neg ? (long long)(0 - v) : (long long)v;
    if (x < lo || x > hi) return fail(P, NC_EINVAL, "integer %lld out of range", x);
    *out = x;
    return next(P);
}

/* Skips a balanced {…} (option aggregates, extend bodies). The lookahead is the '{'. */
static int skip_braces(parser *P) {
    size_t depth = 0;
    do {
        if (P->tok == T_EOF) return syntax(P, "'}'");
        if (is(P, "{")) {
            if (++depth > P->pool->lim.max_depth) return fail(P, NC_ETOOBIG, "nesting too deep");
        } else if (is(P, "}"))
            depth--;
        if (next(P)) return P->rc;
    } while (depth);
    return 0;
}

/* Skips an option value: one constant, or an aggregate in braces. */
static int skip_value(parser *P) {
    if (is(P, "{")) return skip_braces(P);
    if (P->tok == T_EOF) return syntax(P, "value");
    return next(P);
}

/* `option name = value;` after the keyword: ignored, as options do not change the mapping. */
static int skip_option_stmt(parser *P) {
    while (!is(P, "=")) {
        if (P->tok == T_EOF || is(P, ";") || is(P, "{") || is(P, "}")) return syntax(P, "'='");
        if (next(P)) return P->rc;
    }
    if (next(P) || skip_value(P)) return P->rc;
    return expect(P, ";");
}

/* `reserved …;` / `extensions …;` */
static int skip_stmt(parser *P) {
    while (!is(P, ";")) {
        if (P->tok == T_EOF || is(P, "{") || is(P, "}")) return syntax(P, "';'");
        if (next(P)) return P->rc;
    }
    return next(P);
}

/* `[name = value, …]` after a field: `packed` is read (*packed: -1 unset, 0, 1); the rest is skipped. */
static int field_options(parser *P, int *packed) {
    *packed = -1;
    if (!is(P, "[")) return 0;
    if (next(P)) return P->rc;
    for (;;) {
        int is_packed = is(P, "packed");
        int ntok = 0;
        while (!is(P, "=")) {
            if (P->tok == T_EOF || is(P, ";") || is(P, "]")) return syntax(P, "'='");
            if (next(P)) return P->rc;
            ntok++;
        }
        if (next(P)) return P->rc;
        if (is_packed && ntok == 1) {
            if (is(P, "true"))
                *packed = 1;
            else if (is(P, "false"))
                *packed = 0;
            else
                return syntax(P, "true or false");
        }
        if (skip_value(P)) return P->rc;
        if (is(P, "]")) break;
        if (expect(P, ",")) return P->rc;
    }
    return next(P);
}

/* ---- definitions ------------------------------------------------------------------------------------ */

static int count_def(parser *P) {
    if (++P->pool->ndefs > P->pool->lim.max_defs) return fail(P, NC_ETOOBIG, "too many definitions");
    return 0;
}

static const struct {
    const char *name;
    nc_pb_type type;
} scalars[] = {
    {"double", NC_PB_DOUBLE},     {"float", NC_PB_FLOAT},   {"int64", NC_PB_INT64},
    {"uint64", NC_PB_UINT64},     {"int32", NC_PB_INT32},   {"fixed64", NC_PB_FIXED64},
    {"fixed32", NC_PB_FIXED32},   {"bool", NC_PB_BOOL},     {"string", NC_PB_STRING},
    {"bytes", NC_PB_BYTES},       {"uint32", NC_PB_UINT32}, {"sfixed32", NC_PB_SFIXED32},
    {"sfixed64", NC_PB_SFIXED64}, {"sint32", NC_PB_SINT32}, {"sint64", NC_PB_SINT64},
};

static int scalar_type(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        if (strlen(scalars[i].name) == n && memcmp(scalars[i].name, s, n) == 0) return scalars[i].type;
    return 0;
}

static int packable(int type) {
    return type != NC_PB_STRING && type != NC_PB_BYTES && type != NC_PB_MESSAGE;
}

typedef struct msg_build {
    nc_pb_msg *m;
    size_t capfields, caponeofs;
} msg_build;

static nc_pb_field *add_field(parser *P, msg_build *b) {
    if (count_def(P)) return NULL;
    if (grow((void **)&b->m->fields, &b->capfields, b->m->nfields, sizeof(nc_pb_field))) {
        fail(P, NC_ENOMEM, "out of memory");
        return NULL;
    }
    nc_pb_field *f = &b->m->fields[b->m->nfields++];
    memset(f, 0, sizeof *f);
    f->oneof = -1;
    return f;
}

static int add_oneof(parser *P, msg_build *b, const char *name, const char *camel) {
    if (grow((void **)&b->m->oneofs, &b->caponeofs, b->m->noneofs, sizeof(nc_pb_oneof)))
        return fail(P, NC_ENOMEM, "out of memory");
    b->m->oneofs[b->m->noneofs].name = name;
    b->m->oneofs[b->m->noneofs].camel = camel;
    return (int)b->m->noneofs++;
}

/* The type of a field: a scalar keyword, or a reference left for resolution (type 0). */
static int field_type(parser *P, nc_pb_field *f) {
    if (P->tok != T_IDENT) return syntax(P, "type");
    int t = scalar_type(P->ts, P->tn);
    if (t)
        f->type = (uint8_t)t;
    else if (!(f->type_name = pool_strndup(P->pool, P->ts, P->tn)))
        return fail(P, NC_ENOMEM, "out of memory");
    return next(P);
}

/* `name = number [options];` after the type. */
static int field_rest(parser *P, nc_pb_field *f) {
    if (!(f->name = ident(P, "field name"))) return P->rc;
    if (!(f->camel = camel_case(P->pool, f->name))) return fail(P, NC_ENOMEM, "out of memory");
    if (expect(P, "=")) return P->rc;
    long long num;
    if (integer(P, 1, PB_MAX_NUMBER, &num)) return P->rc;
    f->number = (uint32_t)num;
    int packed;
    if (field_options(P, &packed)) return P->rc;
    if (f->label == NC_PB_REPEATED && !f->is_map) f->packed = (uint8_t)(packed >= 0 ? packed : P->proto3);
    return expect(P, ";");
}

static int parse_message(parser *P, const char *scope);
static int parse_enum(parser *P, const char *scope);

/* map<K, V> name = n; */
static int parse_map(parser *P, msg_build *b) {
    nc_pb_field *f = add_field(P, b);
    if (!f) return P->rc;
    f->is_map = 1;
    f->label = NC_PB_REPEATED;
    if (next(P) || expect(P, "<")) return P->rc;
    int kt = P->tok == T_IDENT ? scalar_type(P->ts, P->tn) : 0;
    if (!kt || kt == NC_PB_DOUBLE || kt == NC_PB_FLOAT || kt == NC_PB_BYTES) return syntax(P, "map key type");
    f->key_type = (uint8_t)kt;
    if (next(P) || expect(P, ",")) return P->rc;
    /* the fields array may move while the value type is read: only scalars and names are read here */
    size_t idx = (size_t)(f - b->m->fields);
    if (field_type(P, &b->m->fields[idx]) || expect(P, ">")) return P->rc;
    return field_rest(P, &b->m->fields[idx]);
}

/* `oneof name { fields }` */
static int parse_oneof(parser *P, msg_build *b) {
    if (next(P)) return P->rc;
    const char *name = ident(P, "oneof name");
    if (!name) return P->rc;
    const char *camel = camel_case(P->pool, name);
    if (!camel) return fail(P, NC_ENOMEM, "out of memory");
    int oi = add_oneof(P, b, name, camel);
    if (oi < 0) return P->rc;
    if (expect(P, "{")) return P->rc;
    while (!is(P, "}")) {
        if (is(P, "option")) {
            if (next(P) || skip_option_stmt(P)) return P->rc;
            continue;
        }
        if (is(P, ";")) {
            if (next(P)) return P->rc;
            continue;
        }
        if (is(P, "group")) return fail(P, NC_EINVAL, "groups are not supported");
        nc_pb_field *f = add_field(P, b);
        if (!f) return P->rc;
        f->label = NC_PB_OPTIONAL;
        f->oneof = oi;
        size_t idx = (size_t)(f - b->m->fields);
        if (field_type(P, &b->m->fields[idx]) || field_rest(P, &b->m->fields[idx])) return P->rc;
    }
    return next(P);
}

static int parse_field(parser *P, msg_build *b) {
    int label = 0;
    if (is(P, "optional"))
        label = NC_PB_OPTIONAL;
    else if (is(P, "required"))
        label = NC_PB_REQUIRED;
    else if (is(P, "repeated"))
        label = NC_PB_REPEATED;
    if (label && next(P)) return P->rc;
    if (label == NC_PB_REQUIRED && P->proto3)
        return fail(P, NC_EINVAL, "required fields are not allowed in proto3");
    if (is(P, "group")) return fail(P, NC_EINVAL, "groups are not supported");
    nc_pb_field *f = add_field(P, b);
    if (!f) return P->rc;
    f->label = (uint8_t)(label ? label : NC_PB_OPTIONAL);
    size_t idx = (size_t)(f - b->m->fields);
    if (field_type(P, &b->m->fields[idx]) || field_rest(P, &b->m->fields[idx])) return P->rc;
    f = &b->m->fields[idx];
    if (label == NC_PB_OPTIONAL && P->proto3) {
        /* protobufjs: a proto3 optional field is the only member of a oneof named "_" + its name */
        const char *on, *oc;
        size_t nn = strlen(f->name), nc = strlen(f->camel);
        char *a = malloc(nn + 2), *c = malloc(nc + 2);
        if (!a || !c) {
            free(a);
            free(c);
            return fail(P, NC_ENOMEM, "out of memory");
        }
        a[0] = c[0] = '_';
        memcpy(a + 1, f->name, nn + 1);
        memcpy(c + 1, f->camel, nc + 1);
        on = pool_own(P->pool, a);
        oc = pool_own(P->pool, c);
        if (!on || !oc) return fail(P, NC_ENOMEM, "out of memory");
        int oi = add_oneof(P, b, on, oc);
        if (oi < 0) return P->rc;
        b->m->fields[idx].oneof = oi;
    }
    return 0;
}

static int push_msg(parser *P, nc_pb_msg *m) {
    nc_pb_pool *pl = P->pool;
    if (grow((void **)&pl->msgs, &pl->capmsgs, pl->nmsgs, sizeof(void *))) {
        free(m->fields);
        free(m->oneofs);
        return fail(P, NC_ENOMEM, "out of memory");
    }
    pl->msgs[pl->nmsgs++] = m;
    return 0;
}

/* `message Name { … }` with the keyword as lookahead. */
static int parse_message(parser *P, const char *scope) {
    if (++P->depth > P->pool->lim.max_depth) return fail(P, NC_ETOOBIG, "messages nested too deep");
    if (next(P) || count_def(P)) return P->rc;
    const char *name = ident(P, "message name");
    if (!name) return P->rc;
    nc_pb_msg *m = pool_zalloc(P->pool, sizeof *m);
    if (!m || !(m->full_name = pool_join(P->pool, scope, name))) return fail(P, NC_ENOMEM, "out of memory");
    m->file = (uint32_t)(P->pool->nfiles - 1); /* the file being parsed is the last one loaded */
    msg_build b = {m, 0, 0};
    int rc = expect(P, "{");
    while (!rc && !is(P, "}")) {
        if (P->tok == T_EOF)
            rc = syntax(P, "'}'");
        else if (is(P, "message"))
            rc = parse_message(P, m->full_name);
        else if (is(P, "enum"))
            rc = parse_enum(P, m->full_name);
        else if (is(P, "oneof"))
            rc = parse_oneof(P, &b);
        else if (is(P, "map"))
            rc = parse_map(P, &b);
        else if (is(P, "option"))
            rc = next(P) ? P->rc : skip_option_stmt(P);
        else if (is(P, "reserved") || is(P, "extensions"))
            rc = skip_stmt(P);
        else if (is(P, "extend"))
            rc = (next(P) || next(P)) ? P->rc : skip_braces(P);
        else if (is(P, ";"))
            rc = next(P);
        else
            rc = parse_field(P, &b);
    }
    /* registered even on failure, so nc_proto_free releases its arrays */
    int prc = push_msg(P, m);
    if (rc || prc) return P->rc ? P->rc : (rc ? rc : prc);
    P->depth--;
    return next(P);
}

/* `enum Name { A = 0; … }` */
static int parse_enum(parser *P, const char *scope) {
    if (next(P) || count_def(P)) return P->rc;
    const char *name = ident(P, "enum name");
    if (!name) return P->rc;
    nc_pb_enum *e = pool_zalloc(P->pool, sizeof *e);
    nc_pb_pool *pl = P->pool;
    if (!e || !(e->full_name = pool_join(pl, scope, name))) return fail(P, NC_ENOMEM, "out of memory");
    e->file = (uint32_t)(pl->nfiles - 1);
    if (grow((void **)&pl->enums, &pl->capenums, pl->nenums, sizeof(void *)))
        return fail(P, NC_ENOMEM, "out of memory");
    pl->enums[pl->nenums++] = e;
    size_t cap = 0;
    if (expect(P, "{")) return P->rc;
    while (!is(P, "}")) {
        if (P->tok == T_EOF) return syntax(P, "'}'");
        if (is(P, "option")) {
            if (next(P) || skip_option_stmt(P)) return P->rc;
        } else if (is(P, "reserved")) {
            if (skip_stmt(P)) return P->rc;
        } else if (is(P, ";")) {
            if (next(P)) return P->rc;
        } else {
            const char *vn = ident(P, "enum value name");
            long long v;
            int packed;
            if (!vn || expect(P, "=") || integer(P, INT32_MIN, INT32_MAX, &v) || field_options(P, &packed) ||
                expect(P, ";") || count_def(P))
                return P->rc;
            if (grow((void **)&e->values, &cap, e->nvalues, sizeof *e->values))
                return fail(P, NC_ENOMEM, "out of memory");
            e->values[e->nvalues].name = vn;
            e->values[e->nvalues++].number = (int32_t)v;
        }
    }
    if (!e->nvalues) return fail(P, NC_EINVAL, "enum %s has no values", e->full_name);
    return next(P);
}

/* `( [stream] Type )` of an rpc */
static int rpc_type(parser *P, const char **name, uint8_t *stream) {
    if (expect(P, "(")) return P->rc;
    if (is(P, "stream")) {
        if (next(P)) return P->rc;
        if (is(P, ")")) return syntax(P, "type"); /* `stream` was the type's name: not supported */
        *stream = 1;
    }
    if (P->tok != T_IDENT) return syntax(P, "message type");
    if (!(*name = pool_strndup(P->pool, P->ts, P->tn))) return fail(P, NC_ENOMEM, "out of memory");
    if (next(P)) return P->rc;
    return expect(P, ")");
}

static int parse_service(parser *P) {
    if (next(P) || count_def(P)) return P->rc;
    const char *name = ident(P, "service name");
    if (!name) return P->rc;
    nc_pb_pool *pl = P->pool;
    nc_pb_service *s = pool_zalloc(pl, sizeof *s);
    if (!s || !(s->full_name = pool_join(pl, P->pkg, name))) return fail(P, NC_ENOMEM, "out of memory");
    s->package = P->pkg;
    s->file = (uint32_t)(pl->nfiles - 1);
    if (grow((void **)&pl->svcs, &pl->capsvcs, pl->nsvcs, sizeof(void *)))
        return fail(P, NC_ENOMEM, "out of memory");
    pl->svcs[pl->nsvcs++] = s;
    size_t cap = 0;
    if (expect(P, "{")) return P->rc;
    while (!is(P, "}")) {
        if (P->tok == T_EOF) return syntax(P, "'}'");
        if (is(P, "option")) {
            if (next(P) || skip_option_stmt(P)) return P->rc;
            continue;
        }
        if (is(P, ";")) {
            if (next(P)) return P->rc;
            continue;
        }
        if (!is(P, "rpc")) return syntax(P, "'rpc'");
        if (next(P) || count_def(P)) return P->rc;
        if (grow((void **)&s->methods, &cap, s->nmethods, sizeof *s->methods))
            return fail(P, NC_ENOMEM, "out of memory");
        nc_pb_method *m = &s->methods[s->nmethods++];
        memset(m, 0, sizeof *m);
        if (!(m->name = ident(P, "method name")) || rpc_type(P, &m->in_name, &m->client_stream) ||
            expect(P, "returns") || rpc_type(P, &m->out_name, &m->server_stream))
            return P->rc;
        if (is(P, "{")) {
            if (next(P)) return P->rc;
            while (!is(P, "}")) {
                if (is(P, "option")) {
                    if (next(P) || skip_option_stmt(P)) return P->rc;
                } else if (is(P, ";")) {
                    if (next(P)) return P->rc;
                } else
                    return syntax(P, "'option' or '}'");
            }
            if (next(P)) return P->rc;
            if (is(P, ";") && next(P)) return P->rc;
        } else if (expect(P, ";"))
            return P->rc;
    }
    return next(P);
}

static int parse_import(parser *P) {
    if (next(P)) return P->rc;
    int weak = is(P, "weak");
    if (is(P, "public") || weak)
        if (next(P)) return P->rc;
    if (P->tok != T_STR) return syntax(P, "file name");
    /* a weak import is marked by a leading \1: protobufjs ignores it when it cannot be found */
    char *s = malloc(P->strn + 2);
    if (!s || grow((void **)&P->imports, &P->capimports, P->nimports, sizeof(char *))) {
        free(s);
        return fail(P, NC_ENOMEM, "out of memory");
    }
    s[0] = '\1';
    memcpy(s + weak, P->str, P->strn + 1);
    P->imports[P->nimports++] = s;
    if (next(P)) return P->rc;
    return expect(P, ";");
}

static int parse_file(parser *P) {
    if (next(P)) return P->rc;
    if (is(P, "syntax")) {
        if (next(P) || expect(P, "=")) return P->rc;
        if (P->tok != T_STR) return syntax(P, "\"proto2\" or \"proto3\"");
        if (strcmp(P->str, "proto3") == 0)
            P->proto3 = 1;
        else if (strcmp(P->str, "proto2") != 0)
            return fail(P, NC_EINVAL, "unsupported syntax \"%s\"", P->str);
        if (next(P) || expect(P, ";")) return P->rc;
    } else if (is(P, "edition"))
        return fail(P, NC_EINVAL, "editions are not supported");
    while (P->tok != T_EOF) {
        int rc;
        if (is(P, "package")) {
            if (next(P)) return P->rc;
            if (P->tok != T_IDENT || P->ts[0] == '.') return syntax(P, "package name");
            if (!(P->pkg = pool_strndup(P->pool, P->ts, P->tn))) return fail(P, NC_ENOMEM, "out of memory");
            rc = next(P) ? P->rc : expect(P, ";");
        } else if (is(P, "import"))
            rc = parse_import(P);
        else if (is(P, "option"))
            rc = next(P) ? P->rc : skip_option_stmt(P);
        else if (is(P, "message"))
            rc = parse_message(P, P->pkg);
        else if (is(P, "enum"))
            rc = parse_enum(P, P->pkg);
        else if (is(P, "service"))
            rc = parse_service(P);
        else if (is(P, "extend"))
            rc = (next(P) || next(P)) ? P->rc : skip_braces(P);
        else if (is(P, ";"))
            rc = next(P);
        else
            rc = syntax(P, "a top-level definition");
        if (rc) return rc;
    }
    return 0;
}

/* ---- resolution ------------------------------------------------------------------------------------- */

static int cmp_msg(const void *a, const void *b) {
    return strcmp((*(nc_pb_msg *const *)a)->full_name, (*(nc_pb_msg *const *)b)->full_name);
}
static int cmp_enum(const void *a, const void *b) {
    return strcmp((*(nc_pb_enum *const *)a)->full_name, (*(nc_pb_enum *const *)b)->full_name);
}
static int cmp_svc(const void *a, const void *b) {
    return strcmp((*(nc_pb_service *const *)a)->full_name, (*(nc_pb_service *const *)b)->full_name);
}

/* The tables are sorted with the comparators above: bsearch with a key of the same type finds a name. */
const nc_pb_msg *nc_proto_message(const nc_pb_pool *pl, const char *name) {
    nc_pb_msg key = {.full_name = name}, *kp = &key;
    nc_pb_msg *const *r = pl->nmsgs ? bsearch(&kp, pl->msgs, pl->nmsgs, sizeof *pl->msgs, cmp_msg) : NULL;
    return r ? *r : NULL;
}

const nc_pb_enum *nc_proto_enum(const nc_pb_pool *pl, const char *name) {
    nc_pb_enum key = {.full_name = name}, *kp = &key;
    nc_pb_enum *const *r =
        pl->nenums ? bsearch(&kp, pl->enums, pl->nenums, sizeof *pl->enums, cmp_enum) : NULL;
    return r ? *r : NULL;
}

const nc_pb_service *nc_proto_service(const nc_pb_pool *pl, const char *name) {
    nc_pb_service key = {.full_name = name}, *kp = &key;
    nc_pb_service *const *r =
        pl->nsvcs ? bsearch(&kp, pl->svcs_sorted, pl->nsvcs, sizeof *pl->svcs_sorted, cmp_svc) : NULL;
    return r ? *r : NULL;
}

const nc_pb_service *nc_proto_service_at(const nc_pb_pool *pl, size_t i) {
    return i < pl->nsvcs ? pl->svcs[i] : NULL;
}

const nc_pb_file *nc_proto_file_at(const nc_pb_pool *pl, size_t i) {
    return i < pl->nfiles ? &pl->finfo[i] : NULL;
}

const nc_pb_msg *nc_proto_message_at(const nc_pb_pool *pl, size_t i) {
    return i < pl->nmsgs ? pl->msgs[i] : NULL;
}

const nc_pb_enum *nc_proto_enum_at(const nc_pb_pool *pl, size_t i) {
    return i < pl->nenums ? pl->enums[i] : NULL;
}

const nc_pb_method *nc_proto_method(const nc_pb_service *s, const char *name) {
    for (size_t i = 0; i < s->nmethods; i++)
        if (strcmp(s->methods[i].name, name) == 0) return &s->methods[i];
    return NULL;
}

/* Looks a type reference up from `scope` outwards, as protobufjs's Namespace.lookup does: "A.B" in
 * scope "p.M" is tried as p.M.A.B, p.A.B, A.B; a leading dot means fully qualified. */
static int lookup(const nc_pb_pool *pl, const char *scope, const char *ref, const nc_pb_msg **m,
                  const nc_pb_enum **e) {
    *m = NULL;
    *e = NULL;
    if (ref[0] == '.') {
        *m = nc_proto_message(pl, ref + 1);
        if (!*m) *e = nc_proto_enum(pl, ref + 1);
        return *m || *e ? 0 : -1;
    }
    size_t ns = strlen(scope), nr = strlen(ref);
    char *buf = malloc(ns + nr + 2);
    if (!buf) return NC_ENOMEM;
    for (;;) {
        size_t k = 0;
        if (ns) {
            memcpy(buf, scope, ns);
            buf[ns] = '.';
            k = ns + 1;
        }
        memcpy(buf + k, ref, nr + 1);
        if ((*m = nc_proto_message(pl, buf)) || (*e = nc_proto_enum(pl, buf))) break;
        if (!ns) break;
        while (ns && scope[ns - 1] != '.') ns--;
        if (ns) ns--; /* drop the dot */
    }
    free(buf);
    return *m || *e ? 0 : -1;
}

typedef struct name_idx {
    const char *k;
    uint32_t i;
} name_idx;
static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(((const name_idx *)a)->k, ((const name_idx *)b)->k);
}

/* idx[] = the field indexes of m sorted by name (camel: by camelCase name). tmp holds nfields entries. */
static void sort_names(const nc_pb_msg *m, int camel, name_idx *tmp, uint32_t *idx) {
    for (size_t j = 0; j < m->nfields; j++) {
        tmp[j].k = camel ? m->fields[j].camel : m->fields[j].name;
        tmp[j].i = (uint32_t)j;
    }
    qsort(tmp, m->nfields, sizeof *tmp, cmp_name_idx);
    for (size_t j = 0; j < m->nfields; j++) idx[j] = tmp[j].i;
}

static int cmp_field_num(const void *a, const void *b) {
    uint32_t x = ((const nc_pb_field *)a)->number, y = ((const nc_pb_field *)b)->number;
    return x < y ? -1 : x > y;
}

static int resolve_all(nc_pb_pool *pl, char *err, size_t errlen) {
    /* qsort is never handed a NULL array (an empty pool has none) */
    if (pl->nmsgs) qsort(pl->msgs, pl->nmsgs, sizeof(void *), cmp_msg);
    if (pl->nenums) qsort(pl->enums, pl->nenums, sizeof(void *), cmp_enum);
    if (pl->nsvcs) {
        if (!(pl->svcs_sorted = malloc(pl->nsvcs * sizeof(void *)))) return NC_ENOMEM;
        memcpy(pl->svcs_sorted, pl->svcs, pl->nsvcs * sizeof(void *));
        qsort(pl->svcs_sorted, pl->nsvcs, sizeof(void *), cmp_svc);
    }
    for (size_t i = 0; i + 1 < pl->nmsgs; i++)
        if (!strcmp(pl->msgs[i]->full_name, pl->msgs[i + 1]->full_name)) {
            snprintf(err, errlen, "duplicate name '%s'", pl->msgs[i]->full_name);
            return NC_EINVAL;
        }
    for (size_t i = 0; i + 1 < pl->nenums; i++)
        if (!strcmp(pl->enums[i]->full_name, pl->enums[i + 1]->full_name) ||
            nc_proto_message(pl, pl->enums[i]->full_name)) {
            snprintf(err, errlen, "duplicate name '%s'", pl->enums[i]->full_name);
            return NC_EINVAL;
        }
    for (size_t i = 0; i + 1 < pl->nsvcs; i++)
        if (!strcmp(pl->svcs_sorted[i]->full_name, pl->svcs_sorted[i + 1]->full_name)) {
            snprintf(err, errlen, "duplicate name '%s'", pl->svcs_sorted[i]->full_name);
            return NC_EINVAL;
        }
    for (size_t i = 0; i < pl->nmsgs; i++) {
        nc_pb_msg *m = pl->msgs[i];
        for (size_t j = 0; j < m->nfields; j++) {
            nc_pb_field *f = &m->fields[j];
            if (!f->type_name) continue;
            int rc = lookup(pl, m->full_name, f->type_name, &f->msg, &f->en);
            if (rc == NC_ENOMEM) return rc;
            if (rc) {
                snprintf(err, errlen, "%s.%s: no such type '%s'", m->full_name, f->name, f->type_name);
                return NC_EINVAL;
            }
            f->type = f->msg ? NC_PB_MESSAGE : NC_PB_ENUM;
            if (f->packed && !packable(f->type)) f->packed = 0;
        }
        for (size_t j = 0; j < m->nfields; j++)
            if (m->fields[j].packed && !packable(m->fields[j].type)) m->fields[j].packed = 0;
        if (m->nfields) qsort(m->fields, m->nfields, sizeof *m->fields, cmp_field_num);
        for (size_t j = 0; j + 1 < m->nfields; j++)
            if (m->fields[j].number == m->fields[j + 1].number) {
                snprintf(err, errlen, "%s: duplicate field number %u", m->full_name, m->fields[j].number);
                return NC_EINVAL;
            }
        m->by_name = malloc((m->nfields ? m->nfields : 1) * sizeof(uint32_t));
        m->by_camel = malloc((m->nfields ? m->nfields : 1) * sizeof(uint32_t));
        if (!m->by_name || !m->by_camel) return NC_ENOMEM;
        name_idx *tmp = malloc((m->nfields ? m->nfields : 1) * sizeof *tmp);
        if (!tmp) return NC_ENOMEM;
        sort_names(m, 0, tmp, m->by_name);
        sort_names(m, 1, tmp, m->by_camel);
        free(tmp);
        for (size_t j = 0; j + 1 < m->nfields; j++)
            if (!strcmp(m->fields[m->by_name[j]].name, m->fields[m->by_name[j + 1]].name)) {
                snprintf(err, errlen, "%s: duplicate field name '%s'", m->full_name,
                         m->fields[m->by_name[j]].name);
                return NC_EINVAL;
            }
    }
    for (size_t i = 0; i < pl->nsvcs; i++) {
        nc_pb_service *s = pl->svcs[i];
        for (size_t j = 0; j < s->nmethods; j++) {
            nc_pb_method *me = &s->methods[j];
            const nc_pb_enum *e;
            int rc = lookup(pl, s->package, me->in_name, &me->input, &e);
            if (!rc) rc = lookup(pl, s->package, me->out_name, &me->output, &e);
            if (rc == NC_ENOMEM) return rc;
            if (rc || !me->input || !me->output) {
                snprintf(err, errlen, "%s.%s: no such message type '%s'", s->full_name, me->name,
                         me->input ? me->out_name : me->in_name);
                return NC_EINVAL;
            }
        }
    }
    return 0;
}

/* ---- loading ---------------------------------------------------------------------------------------- */

typedef struct pending {
    char *name;     /* as written in the import (or the root path) */
    char *from_dir; /* the importing file's directory, "" for none */
    size_t depth;
    long from; /* the importing file's index, -1 for the root */
} pending;

static char *dir_of(const char *path) {
    const char *s = strrchr(path, '/');
    size_t n = s ? (size_t)(s - path) : 0;
    if (s && n == 0) n = 1; /* "/" */
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

/* Removes "." segments and folds "dir/.." (src into dst, both of strlen(src) + 1 bytes), as protobufjs's
 * util.path.normalize does, so that one file reached by two spellings is read once and relative imports
 * climb out of a folder. */
static void path_normalize(const char *src, char *dst) {
    int abs = src[0] == '/';
    char *out = dst;
    size_t kept = 0; /* segments in dst that ".." may remove */
    if (abs) *out++ = '/';
    char *base = out;
    const char *r = src + abs;
    while (*r) {
        const char *e = strchr(r, '/');
        size_t n = e ? (size_t)(e - r) : strlen(r);
        int dotdot = n == 2 && r[0] == '.' && r[1] == '.';
        if (n == 0 || (n == 1 && r[0] == '.') || (dotdot && !kept && abs)) {
            /* nothing: an empty or "." segment, or ".." above the root */
        } else if (dotdot && kept) {
            out--; /* back over the previous segment's slash, then the segment */
            while (out > base && out[-1] != '/') out--;
            kept--;
        } else {
            memcpy(out, r, n);
            out += n;
            *out++ = '/';
            if (!dotdot) kept++;
        }
        r += n + (e ? 1 : 0);
    }
    if (out > base) out--; /* the last slash */
    *out = 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t nd = strlen(dir), nn = strlen(name);
    char *d = malloc(nd + nn + 2);
    if (!d) return NULL;
    memcpy(d, dir, nd);
    if (nd && dir[nd - 1] != '/') d[nd++] = '/';
    memcpy(d + nd, name, nn + 1);
    char *n = malloc(nd + nn + 2);
    if (n) path_normalize(d, n);
    free(d);
    return n;
}

static int already_loaded(const nc_pb_pool *pl, const char *path) {
    for (size_t i = 0; i < pl->nfiles; i++)
        if (!strcmp(pl->files[i], path)) return 1;
    return 0;
}

/* Records that file `from` imports the file loaded from `path` (for nc_pb_file.deps). */
static int add_dep(nc_pb_pool *pl, long from, const char *path) {
    if (from < 0 || !path) return 0;
    for (size_t i = 0; i < pl->nfiles; i++)
        if (!strcmp(pl->files[i], path)) {
            nc_pb_file *f = &pl->finfo[from];
            for (size_t k = 0; k < f->ndeps; k++)
                if (f->deps[k] == pl->finfo[i].name) return 0;
            const char **d = realloc(f->deps, (f->ndeps + 1) * sizeof *d);
            if (!d) return NC_ENOMEM;
            f->deps = d;
            d[f->ndeps++] = pl->finfo[i].name;
            return 0;
        }
    return 0;
}

/* Reads one candidate path through the callback. 0 read, 1 absent, <0 error. */
static int try_read(nc_pb_pool *pl, nc_proto_read_fn read, void *user, const char *path, char **text,
                    size_t *len) {
    *text = NULL;
    *len = 0;
    int rc = read(user, path, text, len);
    if (rc) {
        free(*text);
        *text = NULL;
        return rc > 0 ? 1 : rc;
    }
    if (*len > pl->lim.max_file_bytes) {
        free(*text);
        *text = NULL;
        return NC_ETOOBIG;
    }
    return 0;
}

static int parse_text(nc_pb_pool *pl, const char *file, const char *text, size_t len, char *err,
                      size_t errlen, char ***imports, size_t *nimports, nc_pb_file *info) {
    parser P;
    memset(&P, 0, sizeof P);
    P.pool = pl;
    P.file = file;
    P.p = text;
    P.end = text + len;
    P.line = 1;
    P.line_start = text;
    P.err = err;
    P.errlen = errlen;
    P.pkg = "";
    int rc = parse_file(&P);
    if (!rc && P.rc) rc = P.rc;
    free(P.str);
    *imports = P.imports;
    *nimports = P.nimports;
    info->package = P.pkg;
    info->proto3 = (uint8_t)P.proto3;
    return rc;
}

int nc_proto_load(nc_pb_pool **out, const char *path, const char *const *dirs, size_t ndirs,
                  nc_proto_read_fn read, void *user, const nc_proto_limits *lim, char *err, size_t errlen) {
    char dummy[1];
    if (!err || !errlen) err = dummy, errlen = sizeof dummy;
    err[0] = 0;
    if (!out || !path || !read) return NC_EINVAL;
    *out = NULL;
    nc_pb_pool *pl = calloc(1, sizeof *pl);
    if (!pl) return NC_ENOMEM;
    pl->lim.max_file_bytes = lim && lim->max_file_bytes ? lim->max_file_bytes : 4u << 20;
    pl->lim.max_files = lim && lim->max_files ? lim->max_files : 256;
    pl->lim.max_depth = lim && lim->max_depth ? lim->max_depth : 64;
    pl->lim.max_defs = lim && lim->max_defs ? lim->max_defs : 1000000;

    pending *q = NULL;
    size_t nq = 0, capq = 0, head = 0;
    int rc = 0;
    if (grow((void **)&q, &capq, 0, sizeof *q) || !(q[0].name = strdup(path)) ||
        !(q[0].from_dir = strdup(""))) {
        rc = NC_ENOMEM;
        if (q) free(q[0].name);
        nq = 0;
        goto done;
    }
    q[0].depth = 0;
    q[0].from = -1;
    nq = 1;
    while (!rc && head < nq) {
        pending it = q[head++];
        int weak = it.name[0] == '\1';
        if (weak) memmove(it.name, it.name + 1, strlen(it.name));
        char *text = NULL, *found = NULL;
        size_t len = 0;
        const char *bundled = NULL;
        /* protobufjs serves its bundled google/protobuf files before looking on disk */
        if (head > 1) bundled = nc_proto_bundled(it.name);
        if (bundled) {
            if (!(found = strdup(it.name))) rc = NC_ENOMEM;
        } else if (head == 1 || it.name[0] == '/') {
            if (!(found = strdup(it.name)))
                rc = NC_ENOMEM;
            else if ((rc = try_read(pl, read, user, found, &text, &len)) == 1)
                rc = NC_ENOENT;
        } else {
            rc = 1;
            for (size_t d = 0; rc == 1 && d < ndirs; d++) {
                free(found);
                if (!(found = path_join(dirs[d], it.name)))
                    rc = NC_ENOMEM;
                else if (already_loaded(pl, found))
                    rc = 2;
                else
                    rc = try_read(pl, read, user, found, &text, &len);
            }
            if (rc == 1) {
                free(found);
                if (!(found = path_join(it.from_dir, it.name)))
                    rc = NC_ENOMEM;
                else if (already_loaded(pl, found))
                    rc = 2;
                else
                    rc = try_read(pl, read, user, found, &text, &len);
            }
            if (rc == 1) rc = NC_ENOENT;
        }
        if (rc == NC_ENOENT && weak) rc = 2; /* nothing to read */
        if (rc == NC_ENOENT) snprintf(err, errlen, "%s: file not found", it.name);
        if (rc == NC_ETOOBIG)
            snprintf(err, errlen, "%s: file larger than %zu bytes", found, pl->lim.max_file_bytes);
        if (rc == 2 || (!rc && already_loaded(pl, found))) { /* read already: nothing to do */
            rc = add_dep(pl, it.from, found);
            free(text);
        } else if (!rc) {
            if (pl->nfiles >= pl->lim.max_files) {
                snprintf(err, errlen, "%s: more than %zu files", found, pl->lim.max_files);
                rc = NC_ETOOBIG;
            } else if (it.depth > pl->lim.max_depth) {
                snprintf(err, errlen, "%s: imports nested too deep", found);
                rc = NC_ETOOBIG;
            } else if (grow((void **)&pl->files, &pl->capfiles, pl->nfiles, sizeof(char *)) ||
                       grow((void **)&pl->finfo, &pl->capfinfo, pl->nfiles, sizeof(nc_pb_file)))
                rc = NC_ENOMEM;
            else {
                nc_pb_file *info = &pl->finfo[pl->nfiles];
                memset(info, 0, sizeof *info);
                pl->files[pl->nfiles++] = found;
                found = NULL;
                const char *fname = pl->files[pl->nfiles - 1];
                if (!(info->name = pool_strndup(pl, it.name, strlen(it.name)))) rc = NC_ENOMEM;
                if (!rc) rc = add_dep(pl, it.from, fname);
                info = &pl->finfo[pl->nfiles - 1];
                char **imps = NULL;
                size_t nimps = 0;
                if (!rc)
                    rc = bundled ? parse_text(pl, fname, bundled, strlen(bundled), err, errlen, &imps, &nimps,
                                              info)
                                 : parse_text(pl, fname, text, len, err, errlen, &imps, &nimps, info);
                char *dir = dir_of(fname);
                if (!dir && !rc) rc = NC_ENOMEM;
                for (size_t i = 0; i < nimps; i++) {
                    if (!rc && grow((void **)&q, &capq, nq, sizeof *q)) rc = NC_ENOMEM;
                    if (!rc && !(q[nq].from_dir = strdup(dir))) rc = NC_ENOMEM;
                    if (!rc) {
                        q[nq].name = imps[i];
                        q[nq].from = (long)(pl->nfiles - 1); /* the file just parsed */
                        q[nq++].depth = it.depth + 1;
                    } else
                        free(imps[i]);
                }
                free(imps);
                free(dir);
            }
            free(text);
        }
        free(found);
    }
    if (!rc) rc = resolve_all(pl, err, errlen);
done:
    for (size_t i = 0; i < nq; i++) {
        free(q[i].name);
        free(q[i].from_dir);
    }
    free(q);
    if (rc) {
        if (rc == NC_ENOMEM && !err[0]) snprintf(err, errlen, "out of memory");
        nc_proto_free(pl);
        return rc;
    }
    *out = pl;
    return 0;
}
