/* AMQP 0-9-1 field tables and arrays to and from JSON, with the field types RabbitMQ uses (its errata to
 * the 0-9-1 spec: 's' is a signed 16-bit, 'l' a signed 64-bit, 'x' a byte array). The spec's 'U' and 'L'
 * are read with the spec's meaning; neither is written. Numbers are written as amqplib writes a JS number. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/amqp_proto.h"
#include "nestc/error.h"

typedef struct rd {
    const unsigned char *p;
    size_t n, at;
    char *why;
    size_t whylen;
} rd;

static int bad(rd *r, const char *msg) {
    snprintf(r->why, r->whylen, "field table: %s", msg);
    return NC_EPROTO;
}

static int need(rd *r, size_t k, const char *what) {
    if (r->n - r->at >= k) return 0;
    snprintf(r->why, r->whylen, "field table: truncated %s (%zu bytes needed, %zu left)", what, k,
             r->n - r->at);
    return NC_EPROTO;
}

static uint64_t be(const unsigned char *p, int k) {
    uint64_t v = 0;
    for (int i = 0; i < k; i++) v = v << 8 | p[i];
    return v;
}

/* The length of the well-formed UTF-8 sequence at u[i] (1 to 4), or 0 when it is ill-formed. */
static size_t utf8_seq(const unsigned char *u, size_t i, size_t n) {
    unsigned c = u[i];
    if (c < 0x80) return 1;
    size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || len > n - i) return 0;
    uint32_t cp = c & (0x7Fu >> len);
    for (size_t t = 1; t < len; t++) {
        if ((u[i + t] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (u[i + t] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    return cp >= min[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF) ? len : 0;
}

static int utf8_ok(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_seq(u, i, n))) return 0;
    return 1;
}

/* A JSON string of bytes that may be ill-formed UTF-8: each ill-formed byte becomes U+FFFD (checked here
 * once, so jansson is not asked to check again). */
static json_t *lossy_string(const char *s, size_t n) {
    if (utf8_ok(s, n)) return json_stringn_nocheck(s, n);
    char *o = malloc(n * 3 + 1);
    if (!o) return NULL;
    size_t k = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(u, i, n);
        if (len) {
            memcpy(o + k, u + i, len);
            k += len;
            i += len;
        } else {
            memcpy(o + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        }
    }
    json_t *j = json_stringn_nocheck(o, k);
    free(o);
    return j;
}

static int value(rd *r, int depth, json_t **out);

static int table(rd *r, size_t end, int depth, json_t **out) {
    json_t *obj = json_object();
    if (!obj) return NC_ENOMEM;
    size_t save = r->n;
    r->n = end;
    int rc = 0;
    while (r->at < r->n) {
        if ((rc = need(r, 1, "field name length"))) break;
        size_t kl = r->p[r->at++];
        if ((rc = need(r, kl, "field name"))) break;
        char key[256];
        memcpy(key, r->p + r->at, kl);
        key[kl] = 0;
        r->at += kl;
        /* jansson keys are C strings in UTF-8: a name holding NUL or ill-formed bytes cannot be kept */
        if (memchr(key, 0, kl) || !utf8_ok(key, kl)) {
            rc = bad(r, "a field name that is not UTF-8 text");
            break;
        }
        json_t *v = NULL;
        if ((rc = value(r, depth, &v))) break;
        if (json_object_set_new_nocheck(obj, key, v)) {
            rc = NC_ENOMEM;
            break;
        }
    }
    r->n = save;
    if (rc) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

static int array(rd *r, size_t end, int depth, json_t **out) {
    json_t *arr = json_array();
    if (!arr) return NC_ENOMEM;
    size_t save = r->n;
    r->n = end;
    int rc = 0;
    while (r->at < r->n) {
        json_t *v = NULL;
        if ((rc = value(r, depth, &v))) break;
        if (json_array_append_new(arr, v)) {
            rc = NC_ENOMEM;
            break;
        }
    }
    r->n = save;
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

/* One field value (its type octet first). depth: levels of tables/arrays still allowed. */
static int value(rd *r, int depth, json_t **out) {
    int rc;
    if ((rc = need(r, 1, "field type"))) return rc;
    unsigned char t = r->p[r->at++];
    const unsigned char *q = r->p + r->at;
    static const char sizes[][2] = {{'t', 1}, {'b', 1}, {'B', 1}, {'s', 2}, {'U', 2},
                                    {'u', 2}, {'I', 4}, {'i', 4}, {'l', 8}, {'L', 8},
                                    {'f', 4}, {'d', 8}, {'D', 5}, {'T', 8}, {'V', 0}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        if (sizes[k][0] != t) continue;
        char what[32];
        snprintf(what, sizeof what, "'%c' value", t);
        if ((rc = need(r, (size_t)sizes[k][1], what))) return rc;
        r->at += (size_t)sizes[k][1];
        json_t *v = NULL;
        uint64_t u = be(q, sizes[k][1]);
        switch (t) {
        case 't':
            v = json_boolean(u != 0);
            break;
        case 'b':
            v = json_integer((int8_t)u);
            break;
        case 'B':
            v = json_integer((json_int_t)u);
            break;
        case 's':
        case 'U':
            v = json_integer((int16_t)u);
            break;
        case 'u':
            v = json_integer((json_int_t)u);
            break;
        case 'I':
            v = json_integer((int32_t)u);
            break;
        case 'i':
            v = json_integer((json_int_t)u);
            break;
        case 'l': /* RabbitMQ's signed 64-bit (the spec's unsigned) */
        case 'L': /* the spec's signed 64-bit */
            v = json_integer((json_int_t)(int64_t)u);
            break;
        case 'T':
            v = u > INT64_MAX ? json_real((double)u) : json_integer((json_int_t)u);
            break;
        case 'f': {
            uint32_t w = (uint32_t)u;
            float f;
            memcpy(&f, &w, 4);
            if (!isfinite(f)) return bad(r, "a float that is not a finite number");
            v = json_real(f);
            break;
        }
        case 'd': {
            double d;
            memcpy(&d, &u, 8);
            if (!isfinite(d)) return bad(r, "a double that is not a finite number");
            v = json_real(d);
            break;
        }
        case 'D': { /* scale: decimal places (no libm: the library does not link it) */
            double d = (double)(uint32_t)be(q + 1, 4);
            for (int s = 0; s < q[0]; s++) d /= 10;
            v = json_real(d);
            break;
        }
        default:
            v = json_null();
            break;
        }
        if (!v) return NC_ENOMEM;
        *out = v;
        return 0;
    }
    if (t == 'S' || t == 'x' || t == 'F' || t == 'A') {
        if ((rc = need(r, 4, t == 'F' ? "table length" : t == 'A' ? "array length" : "string length")))
            return rc;
        size_t len = (size_t)be(q, 4);
        r->at += 4;
        if ((rc = need(r, len, t == 'F' ? "nested table" : t == 'A' ? "array" : "string"))) return rc;
        if (t == 'S' || t == 'x') {
            json_t *v = lossy_string((const char *)r->p + r->at, len);
            if (!v) return NC_ENOMEM;
            r->at += len;
            *out = v;
            return 0;
        }
        if (depth <= 0) return bad(r, "tables and arrays nested deeper than the limit");
        return t == 'F' ? table(r, r->at + len, depth - 1, out) : array(r, r->at + len, depth - 1, out);
    }
    char m[64];
    if (t >= 0x21 && t < 0x7F)
        snprintf(m, sizeof m, "unknown field type '%c'", t);
    else
        snprintf(m, sizeof m, "unknown field type 0x%02x", t);
    return bad(r, m);
}

int nc_amqp_table_decode(const char *p, size_t n, int max_depth, json_t **out, char *why, size_t whylen) {
    rd r = {(const unsigned char *)p, n, 0, why, whylen};
    return table(&r, n, max_depth, out);
}

/* ---- writing ---- */

static int put_be(nc_buf *b, uint64_t v, int k) {
    char t[8];
    for (int i = 0; i < k; i++) t[i] = (char)(v >> (8 * (k - 1 - i)));
    return nc_buf_append(b, t, (size_t)k);
}

static int wvalue(nc_buf *b, const json_t *v, int depth);

/* Items of an object (pairs) or an array, after a 4-byte length patched at the end. */
static int wcontainer(nc_buf *b, const json_t *c, int depth) {
    if (depth < 0) return NC_EINVAL;
    size_t at = b->len;
    if (put_be(b, 0, 4)) return NC_ENOMEM;
    int rc;
    if (json_is_object(c)) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)c, key, v) {
            size_t kl = strlen(key);
            if (kl > 255) return NC_EINVAL;
            if (nc_buf_append_char(b, (char)kl) || nc_buf_append(b, key, kl)) return NC_ENOMEM;
            if ((rc = wvalue(b, v, depth))) return rc;
        }
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(c, i, v) {
            if ((rc = wvalue(b, v, depth))) return rc;
        }
    }
    size_t len = b->len - at - 4;
    if (len > UINT32_MAX) return NC_EINVAL;
    for (int i = 0; i < 4; i++) b->data[at + (size_t)i] = (char)(len >> (8 * (3 - i)));
    return 0;
}

/* An integer in the narrowest signed type that holds it, as amqplib writes a JS number that is whole:
 * 'b' int8, 's' int16, 'I' int32, else 'l' int64 (headers reach NestJS and other typed clients as sent). */
static int wint(nc_buf *b, int64_t i) {
    char t;
    int k;
    if (i >= -128 && i < 128)
        t = 'b', k = 1;
    else if (i >= -32768 && i < 32768)
        t = 's', k = 2;
    else if (i >= INT32_MIN && i <= INT32_MAX)
        t = 'I', k = 4;
    else
        t = 'l', k = 8;
    return nc_buf_append_char(b, t) || put_be(b, (uint64_t)i, k) ? NC_ENOMEM : 0;
}

/* A real as amqplib's isFloatingPoint decides for a JS number: 'd' when it has a fraction below 2^50 or
 * is at or past 2^63; otherwise it is whole (JSON.parse makes 3.0 the number 3) and written as an integer.
 * Where amqplib throws (a fraction between 2^50 and 2^52, or below -2^63) nestc keeps the double. */
static int wreal(nc_buf *b, double d) {
    const double p63 = 9223372036854775808.0;
    if (d >= -p63 && d < p63 && (double)(int64_t)d == d) return wint(b, (int64_t)d); /* -0.0 is 'b' 0 */
    uint64_t u;
    memcpy(&u, &d, 8);
    return nc_buf_append_char(b, 'd') || put_be(b, u, 8) ? NC_ENOMEM : 0;
}

static int wvalue(nc_buf *b, const json_t *v, int depth) {
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        return wint(b, (int64_t)json_integer_value(v));
    case JSON_REAL:
        return wreal(b, json_real_value(v));
    case JSON_STRING: {
        size_t n = json_string_length(v);
        if (n > UINT32_MAX) return NC_EINVAL;
        return nc_buf_append_char(b, 'S') || put_be(b, n, 4) || nc_buf_append(b, json_string_value(v), n)
                   ? NC_ENOMEM
                   : 0;
    }
    case JSON_TRUE:
    case JSON_FALSE:
        return nc_buf_append_char(b, 't') || nc_buf_append_char(b, json_is_true(v)) ? NC_ENOMEM : 0;
    case JSON_NULL:
        return nc_buf_append_char(b, 'V');
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (nc_buf_append_char(b, json_is_object(v) ? 'F' : 'A')) return NC_ENOMEM;
        return wcontainer(b, v, depth - 1);
    }
    return NC_EINVAL;
}

int nc_amqp_table_write(nc_buf *out, const json_t *obj, int max_depth) {
    size_t save = out->len;
    if (!obj) return put_be(out, 0, 4);
    if (!json_is_object(obj)) return NC_EINVAL;
    int rc = wcontainer(out, obj, max_depth);
    if (rc) out->len = save;
    return rc;
}
