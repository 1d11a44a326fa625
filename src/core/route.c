#include "core/route.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dlfcn.h>
#include <stdio.h>
#include <unicode/ucol.h>
#include <unicode/uvernum.h>

#include "codec/json_write.h"
#include "core/log.h"
#include "nestc/error.h"
#include "util/buf.h"
#include "util/utf8.h"

/* transformPatternToRoute's DEFAULT_MAX_DEPTH and DEFAULT_MAX_KEYS. */
#define ROUTE_MAX_DEPTH 5
#define ROUTE_MAX_KEYS 20

/* ---- collation ----------------------------------------------------------------------------------- */

/* Primary rank, in ICU root collation (CLDR root = DUCET order with non-ignorable punctuation), of each
 * printable ASCII character 0x20..0x7E; upper- and lower-case letters share a rank and differ only at the
 * tertiary level (lower first). Secondary weights are all equal in this range, and none of these
 * characters expands or contracts, so comparing primaries over the whole string and then case over the
 * whole string is exactly what UCA does. Generated with Node 20 (ICU 78):
 *   sorted = chars 0x20..0x7E sorted by (a, b) => a.localeCompare(b);
 *   rank increments whenever new Intl.Collator(undefined, {sensitivity: "base"}).compare(prev, c) != 0.
 * Resulting order: space _ - , ; : ! ? . ' " ( ) [ ] { } @ * / \ & # % ` ^ + < = > | ~ $ 0-9 aA..zZ. */
static const unsigned char ascii_primary[95] = {
    1,  7,  11, 23, 33, 24, 22, 10, 12, 13, 19, 27, 4,  3,  9,  20, /* 0x20 ' ' .. '/' */
    34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 6,  5,  28, 29, 30, 8,  /* 0x30 '0' .. '?' */
    18, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, /* 0x40 '@' .. 'O' */
    59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 14, 21, 15, 26, 2,  /* 0x50 'P' .. '_' */
    25, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, /* 0x60 '`' .. 'o' */
    59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 16, 31, 17, 32,     /* 0x70 'p' .. '~' */
};

static int is_printable_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] - 0x20u > 0x7Eu - 0x20u) return 0;
    return 1;
}

static int ascii_collate(const char *a, size_t alen, const char *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        unsigned pa = ascii_primary[(unsigned char)a[i] - 0x20],
                 pb = ascii_primary[(unsigned char)b[i] - 0x20];
        if (pa != pb) return pa < pb ? -1 : 1;
    }
    if (alen != blen) return alen < blen ? -1 : 1;
    /* Same letters ignoring case: the first case difference decides, lower case first. */
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return a[i] >= 'a' ? -1 : 1;
    return 0;
}

/* Without ICU: printable ASCII in the table's order (so ASCII-only comparisons are unchanged), then every
 * other code point in code-point order; case decides last, as in ascii_collate. UTF-8 byte order is
 * code-point order, so ranking bytes is enough: this is a total order (distinct strings never compare
 * equal), so a sort gives the same route whatever the keys' insertion order. It differs from NestJS only
 * where a key holds a character outside printable ASCII. */
static unsigned fallback_rank(unsigned char c) {
    return (unsigned)(c - 0x20u) <= 0x7Eu - 0x20u ? ascii_primary[c - 0x20] : 0x100u + c;
}

static int fallback_collate(const char *a, size_t alen, const char *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        unsigned pa = fallback_rank((unsigned char)a[i]), pb = fallback_rank((unsigned char)b[i]);
        if (pa != pb) return pa < pb ? -1 : 1;
    }
    if (alen != blen) return alen < blen ? -1 : 1;
    for (size_t i = 0; i < n; i++) /* equal ranks: only the case of a letter can differ */
        if (a[i] != b[i]) return a[i] >= 'a' ? -1 : 1;
    return 0;
}

/* ICU is loaded on first use (dlopen), not linked: only non-ASCII pattern keys need it, and loading ICU
 * and the C++ runtime it pulls in would cost every process about 2.5 MiB of resident memory. ICU's
 * symbols carry its major version (ucol_open_72); the headers we build against name them. */
#define NC_STR2(x) #x
#define NC_STR(x) NC_STR2(x)
#define ICU_LIB "libicui18n.so." NC_STR(U_ICU_VERSION_MAJOR_NUM)

static struct {
    UCollator *(*open)(const char *loc, UErrorCode *st);
    void (*close)(UCollator *c);
    void (*set_attribute)(UCollator *c, UColAttribute a, UColAttributeValue v, UErrorCode *st);
    UCollationResult (*strcoll_utf8)(const UCollator *c, const char *a, int32_t alen, const char *b,
                                     int32_t blen, UErrorCode *st);
} icu;

static pthread_once_t collator_once = PTHREAD_ONCE_INIT;
static UCollator *collator_root; /* opened once, never closed; ucol_strcoll on it is thread-safe */

/* The library to load: NESTC_ICU_LIBRARY names another (a path or soname; tests name one that does not
 * exist to run without ICU), read once, when the first non-ASCII key is compared. */
static const char *icu_name(void) {
    const char *e = getenv("NESTC_ICU_LIBRARY");
    return e && *e ? e : ICU_LIB;
}

static void icu_missing(const char *why) {
    nc_logf(NULL, NC_LOG_WARN, "Route",
            "ICU unavailable (%s): object pattern keys with characters outside printable ASCII are "
            "ordered by code point, not by ICU collation as NestJS orders them; only routes of patterns with "
            "such keys can differ from NestJS's (install ICU %d, Debian package libicu%d)",
            why, U_ICU_VERSION_MAJOR_NUM, U_ICU_VERSION_MAJOR_NUM);
}

static void collator_open(void) {
    const char *name = icu_name();
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL); /* kept for the life of the process */
    if (!h) {
        const char *e = dlerror();
        icu_missing(e ? e : name); /* dlerror names the library */
        return;
    }
    *(void **)&icu.open = dlsym(h, NC_STR(ucol_open));
    *(void **)&icu.close = dlsym(h, NC_STR(ucol_close));
    *(void **)&icu.set_attribute = dlsym(h, NC_STR(ucol_setAttribute));
    *(void **)&icu.strcoll_utf8 = dlsym(h, NC_STR(ucol_strcollUTF8));
    if (!icu.open || !icu.close || !icu.set_attribute || !icu.strcoll_utf8) {
        char why[512];
        snprintf(why, sizeof why, "%s has no " NC_STR(ucol_open) " and friends", name);
        icu_missing(why);
        return;
    }
    UErrorCode st = U_ZERO_ERROR;
    UCollator *c = icu.open("", &st); /* "" = root */
    /* V8 turns normalisation on for its collators; root leaves it off (only non-FCD input differs). */
    if (U_SUCCESS(st)) icu.set_attribute(c, UCOL_NORMALIZATION_MODE, UCOL_ON, &st);
    if (U_FAILURE(st)) {
        if (c) icu.close(c);
        icu_missing("ICU cannot open its root collator");
        return;
    }
    collator_root = c;
}

static const UCollator *collator(void) {
    pthread_once(&collator_once, collator_open);
    return collator_root;
}

int nc_route_icu_available(void) {
    return collator() != NULL;
}

int nc_route_collate_icu(const char *a, size_t alen, const char *b, size_t blen) {
    const UCollator *c = collator();
    if (!c || alen > INT32_MAX || blen > INT32_MAX) return fallback_collate(a, alen, b, blen);
    UErrorCode st = U_ZERO_ERROR;
    UCollationResult r = icu.strcoll_utf8(c, a, (int32_t)alen, b, (int32_t)blen, &st);
    if (U_FAILURE(st)) return fallback_collate(a, alen, b, blen);
    return r == UCOL_LESS ? -1 : r == UCOL_GREATER;
}

int nc_route_collate(const char *a, size_t alen, const char *b, size_t blen) {
    if (is_printable_ascii(a, alen) && is_printable_ascii(b, blen)) return ascii_collate(a, alen, b, blen);
    return nc_route_collate_icu(a, alen, b, blen);
}

/* ---- normalisation ------------------------------------------------------------------------------- */

typedef struct route_entry {
    const char *key;
    size_t klen;
    const json_t *val;
    /* Array.prototype.sort is stable and keys that collate equal keep Object.keys order: integer-index
     * keys ("0".."4294967294") first in numeric order, then the others in insertion order. */
    uint64_t js_order;
    int ascii;
} route_entry;

static const char *const index_keys[ROUTE_MAX_KEYS] = {"0",  "1",  "2",  "3",  "4",  "5",  "6",
                                                       "7",  "8",  "9",  "10", "11", "12", "13",
                                                       "14", "15", "16", "17", "18", "19"};

/* The JS property order of a key: its value for an array index, else 2^32 + insertion position. */
static uint64_t js_order(const char *k, size_t n, size_t pos) {
    uint64_t idx = 0;
    if (n == 0 || n > 10 || (k[0] == '0' && n > 1)) return (1ull << 32) + pos;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9') return (1ull << 32) + pos;
        idx = idx * 10 + (uint64_t)(k[i] - '0');
    }
    return idx <= 4294967294ull ? idx : (1ull << 32) + pos;
}

static int entry_cmp(const route_entry *x, const route_entry *y) {
    int c = x->ascii && y->ascii ? ascii_collate(x->key, x->klen, y->key, y->klen)
                                 : nc_route_collate_icu(x->key, x->klen, y->key, y->klen);
    if (c) return c;
    return x->js_order < y->js_order ? -1 : x->js_order > y->js_order;
}

/* `"` + esc(s) + `"` (+ `tail` if not NUL), esc doubling `\` and escaping `"` and nothing else. Route strings
 * are short: reserving the worst case once keeps the copy loop free of checks. */
static int put_quoted(nc_buf *b, const char *s, size_t n, char tail) {
    if (n > (SIZE_MAX - 4) / 2 || nc_buf_reserve(b, 2 * n + 3)) return NC_ENOMEM;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"' || c == '\\')
            *o++ = '\\';
        else if (c == '\0')
            return NC_EINVAL; /* a C string cannot carry this route */
        *o++ = c;
    }
    *o++ = '"';
    if (tail) *o++ = tail;
    b->len = (size_t)(o - b->data);
    return 0;
}

/* A number as String(number) (JSON.parse's Infinity from 1e400 is "Infinity", where JSON.stringify would
 * write null), true/false/null as words. */
static int put_number_or_word(nc_buf *b, const json_t *v) {
    if (!json_is_real(v)) return nc_json_write(b, v);
    char tmp[32];
    size_t n = nc_js_number(json_real_value(v), tmp);
    return nc_buf_append(b, tmp, n);
}

static int put_object(nc_buf *b, const json_t *o, int depth) {
    if (depth > ROUTE_MAX_DEPTH) return nc_buf_append_str(b, "[MAX_DEPTH_REACHED]");
    size_t n = json_is_array(o) ? json_array_size(o) : json_object_size(o);
    if (n > ROUTE_MAX_KEYS) return nc_buf_append_str(b, "[TOO_MANY_KEYS]");

    route_entry e[ROUTE_MAX_KEYS];
    if (json_is_array(o)) {
        for (size_t i = 0; i < n; i++)
            e[i] = (route_entry){index_keys[i], strlen(index_keys[i]), json_array_get(o, i), i, 1};
    } else {
        json_t *obj = (json_t *)o; /* the iterator API is not const-qualified; nothing is modified */
        size_t i = 0;
        for (void *it = json_object_iter(obj); it && i < n; it = json_object_iter_next(obj, it), i++) {
            const char *k = json_object_iter_key(it);
            size_t kl = json_object_iter_key_len(it);
            e[i] = (route_entry){k, kl, json_object_iter_value(it), js_order(k, kl, i),
                                 is_printable_ascii(k, kl)};
        }
        n = i;
    }
    /* At most 20 entries: a stable insertion sort needs no memory and few comparisons. */
    for (size_t i = 1; i < n; i++) {
        route_entry t = e[i];
        size_t j = i;
        for (; j > 0 && entry_cmp(&e[j - 1], &t) > 0; j--) e[j] = e[j - 1];
        e[j] = t;
    }

    if (nc_buf_append_char(b, '{')) return NC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = i ? nc_buf_append_char(b, ',') : 0;
        if (!rc) rc = put_quoted(b, e[i].key, e[i].klen, ':');
        if (rc) return rc;
        const json_t *v = e[i].val;
        switch (json_typeof(v)) {
        case JSON_OBJECT:
        case JSON_ARRAY:
            rc = put_object(b, v, depth + 1);
            break;
        case JSON_STRING:
            rc = put_quoted(b, json_string_value(v), json_string_length(v), '\0');
            break;
        default: /* numbers as JS text, true/false/null as words: what JSON.stringify writes too */
            rc = put_number_or_word(b, v);
            break;
        }
        if (rc) return rc;
    }
    return nc_buf_append_char(b, '}');
}

static int dup_text(const char *s, size_t n, char **out) {
    if (memchr(s, '\0', n)) return NC_EINVAL;
    char *p = malloc(n + 1);
    if (!p) return NC_ENOMEM;
    memcpy(p, s, n);
    p[n] = '\0';
    *out = p;
    return 0;
}

int nc_route_from_value(const json_t *pattern, char **out) {
    if (!out) return NC_EINVAL;
    *out = NULL;
    if (!pattern) return NC_EINVAL;
    nc_buf b = NC_BUF_INIT;
    int rc;
    switch (json_typeof(pattern)) {
    case JSON_STRING:
        return dup_text(json_string_value(pattern), json_string_length(pattern), out);
    case JSON_INTEGER:
    case JSON_REAL:
        rc = put_number_or_word(&b, pattern);
        break;
    case JSON_OBJECT:
    case JSON_ARRAY:
        rc = nc_buf_reserve(&b, 63); /* one allocation for typical routes ({"cmd":"..."}) */
        if (!rc) rc = put_object(&b, pattern, 0);
        break;
    default: /* true, false, null: NestJS returns them unconverted; they match no handler */
        return NC_EINVAL;
    }
    if (!rc) {
        *out = nc_buf_steal(&b, NULL);
        if (!*out) rc = NC_ENOMEM;
    }
    if (rc) nc_buf_free(&b);
    return rc;
}

static int is_json_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int text_is(const char *s, size_t n, const char *lit) {
    return n == strlen(lit) && !memcmp(s, lit, n);
}

int nc_route_from_text(const char *text, size_t len, char **out) {
    if (!out) return NC_EINVAL;
    *out = NULL;
    if (!text && len) return NC_EINVAL;
    if (!text) text = "";

    /* JSON.parse can only succeed on text whose first non-blank character starts a JSON value; deciding
     * that up front keeps plain string patterns ("sum", "user_created") away from the parser. */
    size_t s = 0, end = len;
    while (s < end && is_json_ws(text[s])) s++;
    while (end > s && is_json_ws(text[end - 1])) end--;
    char c0 = s < end ? text[s] : '\0';
    if (c0 == 't' || c0 == 'f' || c0 == 'n') {
        /* true/false/null parse to values that are not routes (§3.3.3); any other word is no JSON. */
        const char *w = text + s;
        size_t wn = end - s;
        if (text_is(w, wn, "true") || text_is(w, wn, "false") || text_is(w, wn, "null")) return NC_EINVAL;
    } else if (c0 == '{' || c0 == '[' || c0 == '"' || c0 == '-' || (c0 >= '0' && c0 <= '9')) {
        json_t *v = NULL;
        int js_accepts = 0;
        int rc = nc_json_parse_js(text, len, &v, NULL, 0, &js_accepts);
        if (rc == 0) {
            rc = nc_route_from_value(v, out);
            nc_json_free(v);
            return rc;
        }
        if (rc == NC_ENOMEM) return rc;
        if (js_accepts) return NC_EINVAL;
    }
    return dup_text(text, len, out);
}

int nc_route_from_user(const char *pattern, char **out) {
    if (!pattern) {
        if (out) *out = NULL;
        return NC_EINVAL;
    }
    return nc_route_from_text(pattern, strlen(pattern), out);
}

json_t *nc_pattern_from_text(const char *p) {
    json_t *v = NULL;
    char err[8];
    if (nc_json_parse(p, strlen(p), &v, err, sizeof err) == 0) {
        if (json_is_object(v) || json_is_number(v)) return v;
        json_decref(v);
    }
    /* a lone surrogate is held as WTF-8 (json_build.h), which json_string() refuses */
    return nc_wtf8_valid(p, strlen(p)) ? json_stringn_nocheck(p, strlen(p)) : NULL;
}
