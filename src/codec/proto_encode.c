/* JSON → protobuf bytes (proto_codec.h), as protobufjs's fromObject converter followed by its generated
 * encoder (src/converter.js, src/encoder.js in protobufjs 7.6): fields written in field-number order;
 * every member present and not null is written, a proto3 scalar at its default value included; lists
 * empty or falsy write nothing; scalar lists packed unless the .proto says otherwise; map entries in
 * JavaScript's property order with key and value always written. Values are converted as the generated
 * fromObject converts them (Number(), `|0`, `>>>0`, Boolean(), String(), Long.fromValue()). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_write.h"
#include "codec/proto_codec.h"
#include "codec/proto_wire.h"
#include "util/base64.h"

typedef struct enc {
    const nc_pb_json_opts *o;
    nc_buf *out;
    char *err;
    size_t errlen;
} enc;

static int fail(enc *e, const nc_pb_msg *m, const nc_pb_field *f, const char *what) {
    if (e->err && e->errlen)
        snprintf(e->err, e->errlen, "%s%s%s: %s", m ? m->full_name : "", f ? "." : "", f ? f->name : "",
                 what);
    return NC_EINVAL;
}

static int put_varint(enc *e, uint64_t v) {
    if (nc_buf_reserve(e->out, 10)) return NC_ENOMEM;
    e->out->len += nc_pb_put_varint((uint8_t *)e->out->data + e->out->len, v);
    return 0;
}

static int put_tag(enc *e, uint32_t num, int wt) {
    return put_varint(e, (uint64_t)num << 3 | (unsigned)wt);
}

static int put_le(enc *e, uint64_t v, int n) {
    if (nc_buf_reserve(e->out, 8)) return NC_ENOMEM;
    for (int i = 0; i < n; i++) e->out->data[e->out->len++] = (char)(v >> (8 * i));
    return 0;
}

/* Inserts the length of out[start..len) as a varint before it (the submessage was written in place). */
static int close_len(enc *e, size_t start) {
    uint8_t v[10];
    size_t body = e->out->len - start, k = nc_pb_put_varint(v, body);
    if (nc_buf_reserve(e->out, k)) return NC_ENOMEM;
    memmove(e->out->data + start + k, e->out->data + start, body);
    memcpy(e->out->data + start, v, k);
    e->out->len += k;
    return 0;
}

/* ---- JavaScript conversions ------------------------------------------------------------------------- */

/* Number(string): whitespace trimmed, "" is 0, decimal, Infinity, 0x/0o/0b integers, else NaN. */
static double js_string_number(const char *s, size_t n) {
    while (n && (*s == ' ' || (*s >= '\t' && *s <= '\r'))) s++, n--;
    while (n && (s[n - 1] == ' ' || (s[n - 1] >= '\t' && s[n - 1] <= '\r'))) n--;
    if (!n) return 0;
    char buf[512];
    if (n >= sizeof buf) return NAN;
    memcpy(buf, s, n);
    buf[n] = 0;
    const char *b = buf;
    int sign = 1;
    if (*b == '+' || *b == '-') sign = *b++ == '-' ? -1 : 1;
    if (!strcmp(b, "Infinity")) return sign * INFINITY;
    if (b == buf && b[0] == '0' &&
        (b[1] == 'x' || b[1] == 'X' || b[1] == 'o' || b[1] == 'O' || b[1] == 'b' || b[1] == 'B')) {
        int base = (b[1] | 32) == 'x' ? 16 : (b[1] | 32) == 'o' ? 8 : 2;
        if (!b[2]) return NAN;
        double v = 0;
        for (const char *c = b + 2; *c; c++) {
            int d = *c >= '0' && *c <= '9'                 ? *c - '0'
                    : (*c | 32) >= 'a' && (*c | 32) <= 'f' ? (*c | 32) - 'a' + 10
                                                           : 99;
            if (d >= base) return NAN;
            v = v * base + d;
        }
        return v;
    }
    /* a StrDecimalLiteral: digits, one dot, exponent; nothing strtod would take beyond that (inf, nan, hex)
     */
    const char *c = b;
    int digits = 0;
    while (*c >= '0' && *c <= '9') c++, digits++;
    if (*c == '.') {
        c++;
        while (*c >= '0' && *c <= '9') c++, digits++;
    }
    if (!digits) return NAN;
    if (*c == 'e' || *c == 'E') {
        c++;
        if (*c == '+' || *c == '-') c++;
        if (!(*c >= '0' && *c <= '9')) return NAN;
        while (*c >= '0' && *c <= '9') c++;
    }
    if (*c) return NAN;
    return strtod(buf, NULL);
}

static double js_number(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        return (double)json_integer_value(v);
    case JSON_REAL:
        return json_real_value(v);
    case JSON_TRUE:
        return 1;
    case JSON_FALSE:
    case JSON_NULL:
        return 0;
    case JSON_STRING:
        return js_string_number(json_string_value(v), json_string_length(v));
    default:
        return NAN; /* objects and arrays: grpc.md */
    }
}

/* ToUint32 (`>>>0`); `|0` is the same bits read signed. The truncated value modulo 2^32 is taken from the
 * double's bits (mantissa shifted by the exponent), so an exact integer and a huge double both reduce
 * exactly, without libm. */
static uint32_t js_uint32(const json_t *v) {
    if (json_is_integer(v)) return (uint32_t)(uint64_t)json_integer_value(v);
    double d = js_number(v);
    if (!isfinite(d) || d == 0) return 0;
    uint64_t bits;
    memcpy(&bits, &d, 8);
    int exp = (int)((bits >> 52) & 0x7FF) - 1075; /* d = mant * 2^exp */
    uint64_t mant = (bits & ((1ull << 52) - 1)) | (exp > -1075 ? 1ull << 52 : 0);
    if (exp == -1075) exp = -1074; /* subnormal */
    uint32_t low = exp >= 32   ? 0
                   : exp >= 0  ? (uint32_t)(mant << exp)
                   : exp > -64 ? (uint32_t)(mant >> -exp)
                               : 0;
    return d < 0 ? 0u - low : low;
}

static int js_truthy(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0 && !isnan(json_real_value(v));
    case JSON_STRING:
        return json_string_length(v) != 0;
    default:
        return 1;
    }
}

/* Long.fromValue(v, unsigned): a number truncated and clamped (Long.fromNumber), a decimal string read
 * modulo 2^64 (Long.fromString), {low, high}. Other strings are refused (Long would make up a value). */
static int js_long(const json_t *v, int is_unsigned, uint64_t *out) {
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        *out = is_unsigned && x < 0 ? 0 : (uint64_t)x;
        return 0;
    }
    if (json_is_real(v) || json_is_boolean(v)) {
        double d = json_is_real(v) ? json_real_value(v) : 0; /* Long.fromValue(true) reads true.low: 0 */
        if (isnan(d))
            *out = 0;
        else if (is_unsigned)
            *out = d < 0 ? 0 : d >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)d;
        else
            *out = d <= -9223372036854775808.0      ? (uint64_t)INT64_MIN
                   : d + 1 >= 9223372036854775808.0 ? (uint64_t)INT64_MAX
                                                    : (uint64_t)(int64_t)d;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), i = 0;
        int neg = 0;
        if (n && s[0] == '-') neg = 1, i = 1;
        if (i == n) return -1;
        uint64_t x = 0;
        for (; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') return -1;
            x = x * 10 + (uint64_t)(s[i] - '0');
        }
        *out = neg ? 0 - x : x;
        return 0;
    }
    if (json_is_object(v)) {
        json_t *lo = json_object_get(v, "low"), *hi = json_object_get(v, "high");
        *out = (uint64_t)js_uint32(hi ? hi : json_null()) << 32 | js_uint32(lo ? lo : json_null());
        return 0;
    }
    return -1;
}

/* String(v) for the values that have a plain JSON form; objects and arrays are refused. */
static int js_string(const json_t *v, const char **s, size_t *n, char buf[32]) {
    switch (json_typeof(v)) {
    case JSON_STRING:
        *s = json_string_value(v);
        *n = json_string_length(v);
        return 0;
    case JSON_INTEGER:
        *n = (size_t)snprintf(buf, 32, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        *n = nc_js_number(json_real_value(v), buf);
        break;
    case JSON_TRUE:
        *n = (size_t)snprintf(buf, 32, "true");
        break;
    case JSON_FALSE:
        *n = (size_t)snprintf(buf, 32, "false");
        break;
    case JSON_NULL:
        *n = (size_t)snprintf(buf, 32, "null");
        break;
    default:
        return -1;
    }
    *s = buf;
    return 0;
}

/* ---- values ----------------------------------------------------------------------------------------- */

enum { WROTE = 0, SKIP = 1 };

/* The number an enum member converts to: a name, or any number (open enums). *skip when protobufjs
 * leaves the field unset (unknown name; in a list it takes the default value instead). */
static int enum_value(const nc_pb_field *f, const json_t *v, int in_list, int32_t *out) {
    if (json_is_string(v)) {
        for (size_t i = 0; i < f->en->nvalues; i++)
            if (!strcmp(f->en->values[i].name, json_string_value(v))) {
                *out = f->en->values[i].number;
                return WROTE;
            }
    } else if (json_is_number(v)) {
        *out = (int32_t)js_uint32(v);
        return WROTE;
    }
    if (in_list) {
        *out = f->en->values[0].number;
        return WROTE;
    }
    return SKIP;
}

static int enc_msg(enc *e, const nc_pb_msg *m, const json_t *v, int depth);

/* The payload of one value of `type` (no tag). SKIP: nothing to write (protobufjs leaves it unset). */
static int put_value(enc *e, const nc_pb_msg *m, const nc_pb_field *f, int type, const json_t *v, int in_list,
                     int depth) {
    uint64_t u;
    switch (type) {
    case NC_PB_INT32:
    case NC_PB_ENUM: {
        int32_t x;
        if (type == NC_PB_ENUM) {
            if (enum_value(f, v, in_list, &x) == SKIP) return SKIP;
        } else
            x = (int32_t)js_uint32(v);
        return put_varint(e, (uint64_t)(int64_t)x); /* negative: ten bytes, sign-extended */
    }
    case NC_PB_UINT32:
        return put_varint(e, js_uint32(v));
    case NC_PB_SINT32:
        return put_varint(e, nc_pb_zigzag32((int32_t)js_uint32(v)));
    case NC_PB_FIXED32:
    case NC_PB_SFIXED32:
        return put_le(e, js_uint32(v), 4);
    case NC_PB_INT64:
    case NC_PB_UINT64:
    case NC_PB_SINT64:
    case NC_PB_FIXED64:
    case NC_PB_SFIXED64:
        if (js_long(v, nc_pb_is_unsigned(type), &u)) return fail(e, m, f, "64-bit integer expected");
        if (type == NC_PB_SINT64) return put_varint(e, nc_pb_zigzag64((int64_t)u));
        if (type == NC_PB_FIXED64 || type == NC_PB_SFIXED64) return put_le(e, u, 8);
        return put_varint(e, u);
    case NC_PB_BOOL:
        return put_varint(e, (uint64_t)js_truthy(v));
    case NC_PB_DOUBLE: {
        double d = js_number(v);
        memcpy(&u, &d, 8);
        return put_le(e, u, 8);
    }
    case NC_PB_FLOAT: {
        float x = (float)js_number(v);
        uint32_t b;
        memcpy(&b, &x, 4);
        return put_le(e, b, 4);
    }
    case NC_PB_STRING: {
        const char *s;
        size_t n;
        char buf[32];
        if (js_string(v, &s, &n, buf)) return fail(e, m, f, "string expected");
        if (put_varint(e, n)) return NC_ENOMEM;
        return nc_buf_append(e->out, s, n);
    }
    case NC_PB_BYTES: {
        if (json_is_string(v)) {
            nc_buf b = NC_BUF_INIT;
            int rc = nc_base64_decode(&b, json_string_value(v), json_string_length(v));
            if (!rc && !(rc = put_varint(e, b.len))) rc = nc_buf_append(e->out, b.data ? b.data : "", b.len);
            nc_buf_free(&b);
            return rc == NC_EPROTO ? fail(e, m, f, "invalid base64") : rc;
        }
        if (json_is_array(v)) { /* a Buffer-like list: each element as a Uint8Array stores it */
            size_t n = json_array_size(v);
            if (put_varint(e, n) || nc_buf_reserve(e->out, n)) return NC_ENOMEM;
            for (size_t i = 0; i < n; i++)
                e->out->data[e->out->len++] = (char)js_uint32(json_array_get(v, i));
            return 0;
        }
        if (in_list) return fail(e, m, f, "bytes expected");
        return SKIP; /* protobufjs: `d.x.length >= 0` fails, the field stays unset */
    }
    case NC_PB_MESSAGE: {
        if (!json_is_object(v) && !json_is_array(v)) return fail(e, m, f, "object expected");
        size_t start = e->out->len;
        int rc = enc_msg(e, f->msg, json_is_object(v) ? v : NULL, depth + 1);
        return rc ? rc : close_len(e, start);
    }
    default:
        return fail(e, m, f, "unsupported type");
    }
}

/* tag + value; the tag is taken back when the value turns out to be skipped */
static int put_field(enc *e, const nc_pb_msg *m, const nc_pb_field *f, const json_t *v, int in_list,
                     int depth) {
    size_t mark = e->out->len;
    if (put_tag(e, f->number, nc_pb_wire_type(f->type))) return NC_ENOMEM;
    int rc = put_value(e, m, f, f->type, v, in_list, depth);
    if (rc == SKIP) e->out->len = mark, rc = 0;
    return rc;
}

/* ---- maps ------------------------------------------------------------------------------------------- */

/* JavaScript's own-property order: integer-like keys ("0".."4294967294", no leading zeros) ascending,
 * then the others in insertion order. */
static int array_index(const char *k, uint32_t *out) {
    size_t n = strlen(k);
    if (!n || n > 10 || (n > 1 && k[0] == '0')) return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9') return 0;
        x = x * 10 + (uint64_t)(k[i] - '0');
    }
    if (x >= 4294967295u) return 0;
    *out = (uint32_t)x;
    return 1;
}

typedef struct js_key {
    const char *k;
    const json_t *v;
    uint32_t idx;
    int is_index;
    size_t pos;
} js_key;

static int cmp_js_key(const void *a, const void *b) {
    const js_key *x = a, *y = b;
    if (x->is_index != y->is_index) return x->is_index ? -1 : 1;
    if (x->is_index) return x->idx < y->idx ? -1 : x->idx > y->idx;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int put_map_key(enc *e, const nc_pb_msg *m, const nc_pb_field *f, const char *k) {
    json_t *kv = json_string(k);
    if (!kv) return NC_ENOMEM;
    nc_pb_field kf = *f;
    kf.type = f->key_type;
    int rc;
    if (f->key_type == NC_PB_BOOL) /* "true"/"false" as the booleans they came from (grpc.md) */
        rc = put_varint(e, strcmp(k, "false") != 0 && k[0]);
    else if (f->key_type == NC_PB_STRING || nc_pb_is_long(f->key_type))
        rc = put_value(e, m, &kf, kf.type, kv, 1, 0);
    else {
        double d = js_string_number(k, strlen(k));
        json_t *num = json_real(isfinite(d) ? d : 0); /* ToInt32/ToUint32 of NaN and infinities: 0 */
        rc = num ? put_value(e, m, &kf, kf.type, num, 1, 0) : NC_ENOMEM;
        json_decref(num);
    }
    json_decref(kv);
    return rc;
}

static int enc_map(enc *e, const nc_pb_msg *m, const nc_pb_field *f, const json_t *v, int depth) {
    size_t n = json_is_array(v) ? json_array_size(v) : json_object_size(v);
    if (!n) return 0;
    js_key *keys = calloc(n, sizeof *keys);
    char(*ibuf)[12] = json_is_array(v) ? calloc(n, 12) : NULL;
    if (!keys || (json_is_array(v) && !ibuf)) {
        free(keys);
        free(ibuf);
        return NC_ENOMEM;
    }
    size_t i = 0;
    if (json_is_array(v)) { /* an array is an object whose keys are its indexes */
        for (; i < n; i++) {
            snprintf(ibuf[i], 12, "%u", (unsigned)i);
            keys[i] = (js_key){ibuf[i], json_array_get(v, i), (uint32_t)i, 1, i};
        }
    } else {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            keys[i].k = k;
            keys[i].v = x;
            keys[i].pos = i;
            keys[i].is_index = array_index(k, &keys[i].idx);
            i++;
        }
    }
    qsort(keys, n, sizeof *keys, cmp_js_key);
    int rc = 0;
    for (i = 0; !rc && i < n; i++) {
        int32_t ev;
        if (f->type == NC_PB_ENUM && enum_value(f, keys[i].v, 0, &ev) == SKIP) continue; /* not set in m.x */
        if (f->type == NC_PB_MESSAGE && !json_is_object(keys[i].v) && !json_is_array(keys[i].v)) {
            rc = fail(e, m, f, "object expected");
            break;
        }
        size_t mark = e->out->len;
        if ((rc = put_tag(e, f->number, NC_WT_LEN))) break;
        size_t start = e->out->len;
        if ((rc = put_tag(e, 1, nc_pb_wire_type(f->key_type))) || (rc = put_map_key(e, m, f, keys[i].k)))
            break;
        if ((rc = put_tag(e, 2, nc_pb_wire_type(f->type)))) break;
        rc = put_value(e, m, f, f->type, keys[i].v, 1, depth);
        if (rc == SKIP) { /* bytes that are neither text nor a list: the entry is not written */
            e->out->len = mark;
            rc = 0;
            continue;
        }
        if (!rc) rc = close_len(e, start);
    }
    free(keys);
    free(ibuf);
    return rc;
}

/* ---- messages --------------------------------------------------------------------------------------- */

static const nc_pb_field *field_by_name(const nc_pb_msg *m, const char *k, int camel) {
    const uint32_t *idx = camel ? m->by_camel : m->by_name;
    size_t lo = 0, hi = m->nfields;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const nc_pb_field *f = &m->fields[idx[mid]];
        int c = strcmp(camel ? f->camel : f->name, k);
        if (!c) return f;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const json_t *member(const enc *e, const json_t *obj, const nc_pb_field *f) {
    const json_t *v = json_object_get(obj, e->o->keep_case ? f->name : f->camel);
    if (!v && e->o->any_case) v = json_object_get(obj, e->o->keep_case ? f->camel : f->name);
    return v;
}

static int check_members(enc *e, const nc_pb_msg *m, const json_t *obj) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)obj, k, x) {
        int camel = !e->o->keep_case;
        if (field_by_name(m, k, camel) || (e->o->any_case && field_by_name(m, k, !camel))) continue;
        int known = 0;
        for (size_t i = 0; !known && i < m->noneofs; i++)
            known = !strcmp(k, m->oneofs[i].name) || !strcmp(k, m->oneofs[i].camel);
        if (!known) {
            if (e->err && e->errlen) snprintf(e->err, e->errlen, "%s: unknown field '%s'", m->full_name, k);
            return NC_EINVAL;
        }
    }
    return 0;
}

/* obj NULL: an empty message (an array given for a message, whose indexes name no field). */
static int enc_msg(enc *e, const nc_pb_msg *m, const json_t *obj, int depth) {
    if (depth > NC_PB_MAX_DEPTH) return fail(e, m, NULL, "maximum nesting depth exceeded");
    if (!obj) return 0;
    if (e->o->strict) {
        int rc = check_members(e, m, obj);
        if (rc) return rc;
    }
    for (size_t i = 0; i < m->nfields; i++) {
        const nc_pb_field *f = &m->fields[i];
        const json_t *v = member(e, obj, f);
        int rc = 0;
        if (f->is_map) {
            if (!v || !js_truthy(v)) continue;
            if (!json_is_object(v) && !json_is_array(v)) return fail(e, m, f, "object expected");
            rc = enc_map(e, m, f, v, depth);
        } else if (f->label == NC_PB_REPEATED) {
            if (!v || !js_truthy(v)) continue;
            if (!json_is_array(v)) return fail(e, m, f, "array expected");
            size_t n = json_array_size(v);
            if (!n) continue;
            if (f->packed) {
                if ((rc = put_tag(e, f->number, NC_WT_LEN))) return rc;
                size_t start = e->out->len;
                for (size_t j = 0; !rc && j < n; j++)
                    rc = put_value(e, m, f, f->type, json_array_get(v, j), 1, depth);
                if (!rc) rc = close_len(e, start);
            } else
                for (size_t j = 0; !rc && j < n; j++) {
                    const json_t *x = json_array_get(v, j);
                    if (json_is_null(x) && f->type == NC_PB_MESSAGE) return fail(e, m, f, "object expected");
                    rc = put_field(e, m, f, x, 1, depth);
                }
        } else if (!v || json_is_null(v)) {
            if (f->label != NC_PB_REQUIRED) continue;
            /* proto2 required: encode() writes the prototype's default when fromObject left it unset */
            if (f->type == NC_PB_MESSAGE) return fail(e, m, f, "missing required field");
            json_t *z = f->type == NC_PB_STRING || f->type == NC_PB_BYTES ? json_string("") : json_integer(0);
            if (!z) return NC_ENOMEM;
            if (f->type == NC_PB_ENUM) json_integer_set(z, f->en->values[0].number);
            rc = put_field(e, m, f, z, 0, depth);
            json_decref(z);
        } else
            rc = put_field(e, m, f, v, 0, depth);
        if (rc) return rc;
    }
    return 0;
}

int nc_pb_encode(const nc_pb_msg *m, const json_t *v, const nc_pb_json_opts *o, nc_buf *out, char *err,
                 size_t errlen) {
    static const nc_pb_json_opts none;
    if (err && errlen) err[0] = 0;
    if (!m || !v || !out) return NC_EINVAL;
    enc e = {o ? o : &none, out, err, errlen};
    size_t mark = out->len;
    int rc;
    if (json_is_array(v)) /* proto-loader's serializer refuses arrays before protobufjs sees them */
        rc = fail(&e, m, NULL, "expected object, got array");
    else if (!m->nfields) /* fromObject of a type without fields accepts anything */
        rc = 0;
    else if (!json_is_object(v))
        rc = fail(&e, m, NULL, "object expected");
    else
        rc = enc_msg(&e, m, v, 0);
    if (rc) out->len = mark;
    return rc;
}
