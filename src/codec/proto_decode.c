/* Protobuf bytes → JSON (proto_codec.h), as protobufjs's generated decoder followed by its toObject
 * converter (src/decoder.js, src/converter.js in protobufjs 7.6). The decoder keeps what decode() keeps:
 * every field present on the wire (a proto3 scalar sent at its default value is present), the last value
 * of a singular field (a message field too: replaced, not merged, as decode() assigns it), every element
 * of a list whether packed or not; unknown fields are skipped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/proto_codec.h"
#include "codec/proto_wire.h"
#include "util/base64.h"
#include "util/utf8.h"

typedef struct dec {
    const nc_pb_json_opts *o;
    char *err;
    size_t errlen;
} dec;

static int bad(dec *d, const char *fmt, const char *a, const char *b) {
    if (d->err && d->errlen) snprintf(d->err, d->errlen, fmt, a, b);
    return NC_EPROTO;
}

static const char *key_of(const dec *d, const nc_pb_field *f) {
    return d->o->keep_case ? f->name : f->camel;
}

/* A 64-bit value as toObject writes it: String → decimal text; Number → LongBits.toNumber, held here as
 * an exact JSON integer when it fits int64 (JavaScript would round beyond 2^53: grpc.md). */
static json_t *long_json(const dec *d, uint64_t bits, int is_unsigned) {
    if (d->o->longs_string) {
        char buf[24];
        if (is_unsigned)
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)bits);
        else
            snprintf(buf, sizeof buf, "%lld", (long long)(int64_t)bits);
        return json_string(buf);
    }
    if (is_unsigned && bits > (uint64_t)INT64_MAX) return json_real((double)bits);
    return json_integer((json_int_t)(int64_t)bits);
}

/* An enum value: by name under enums: String (protobufjs's valuesById keeps the first name declared for
 * a number: Enum.add ignores later aliases), its number otherwise and when no name has it. */
static json_t *enum_json(const dec *d, const nc_pb_enum *en, int32_t v) {
    if (d->o->enums_string)
        for (size_t i = 0; i < en->nvalues; i++)
            if (en->values[i].number == v) return json_string(en->values[i].name);
    return json_integer(v);
}

static json_t *double_json(const dec *d, double v) {
    if (isfinite(v)) return json_real(v);
    if (!d->o->json) return json_null(); /* JSON.stringify writes NaN and infinities as null */
    return json_string(isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
}

/* Node's Buffer.toString('utf8'): each ill-formed sequence becomes one U+FFFD (WHATWG). */
static json_t *string_json(const uint8_t *p, size_t n) {
    if (nc_utf8_validate((const char *)p, n, NULL) == 0) return json_stringn((const char *)p, n);
    nc_buf b = NC_BUF_INIT;
    const uint8_t *end = p + n;
    while (p < end) {
        size_t k = *p < 0x80 ? 1 : nc_utf8_char_len(p, end);
        if (k) {
            if (nc_buf_append(&b, p, k)) goto oom;
            p += k;
        } else {
            if (nc_buf_append(&b, "\xEF\xBF\xBD", 3)) goto oom;
            p += nc_utf8_bad_len(p, end);
        }
    }
    json_t *s = json_stringn(b.data ? b.data : "", b.len);
    nc_buf_free(&b);
    return s;
oom:
    nc_buf_free(&b);
    return NULL;
}

static json_t *bytes_json(const dec *d, const uint8_t *p, size_t n) {
    if (d->o->bytes_array) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
            if (json_array_append_new(a, json_integer(p[i]))) {
                json_decref(a);
                return NULL;
            }
        return a;
    }
    nc_buf b = NC_BUF_INIT;
    if (nc_base64_encode(&b, p, n)) return NULL;
    json_t *s = json_stringn(b.data ? b.data : "", b.len);
    nc_buf_free(&b);
    return s;
}

static int dec_msg(dec *d, const nc_pb_msg *m, const uint8_t *p, const uint8_t *end, int depth, json_t **out);

/* Reads one value of `type` with wire type wt at *pp. *out NULL with 0 returned means "no value" (never
 * for well-formed input). */
static int dec_value(dec *d, const nc_pb_field *f, int type, int wt, const uint8_t **pp, const uint8_t *end,
                     int depth, json_t **out) {
    const uint8_t *p = *pp;
    uint64_t v = 0;
    *out = NULL;
    switch (wt) {
    case NC_WT_VARINT: {
        size_t k = nc_pb_get_varint(p, end, &v);
        if (!k) return bad(d, "%s%s: truncated varint", f->name, "");
        p += k;
        break;
    }
    case NC_WT_I64:
        if (end - p < 8) return bad(d, "%s%s: truncated fixed64", f->name, "");
        v = nc_pb_le64(p);
        p += 8;
        break;
    case NC_WT_I32:
        if (end - p < 4) return bad(d, "%s%s: truncated fixed32", f->name, "");
        v = nc_pb_le32(p);
        p += 4;
        break;
    case NC_WT_LEN: {
        size_t k = nc_pb_get_varint(p, end, &v);
        if (!k || v > (uint64_t)(end - p - (ptrdiff_t)k))
            return bad(d, "%s%s: length out of range", f->name, "");
        p += k;
        const uint8_t *s = p;
        p += v;
        if (type == NC_PB_STRING)
            *out = string_json(s, (size_t)v);
        else if (type == NC_PB_BYTES)
            *out = bytes_json(d, s, (size_t)v);
        else {
            int rc = dec_msg(d, f->msg, s, p, depth + 1, out);
            if (rc) return rc;
        }
        *pp = p;
        return *out ? 0 : NC_ENOMEM;
    }
    default:
        return bad(d, "%s%s: bad wire type", f->name, "");
    }
    *pp = p;
    switch (type) {
    case NC_PB_INT32:
    case NC_PB_SFIXED32:
        *out = json_integer((int32_t)(uint32_t)v);
        break;
    case NC_PB_UINT32:
    case NC_PB_FIXED32:
        *out = json_integer((uint32_t)v);
        break;
    case NC_PB_SINT32:
        *out = json_integer(nc_pb_unzigzag32((uint32_t)v));
        break;
    case NC_PB_INT64:
    case NC_PB_SFIXED64:
        *out = long_json(d, v, 0);
        break;
    case NC_PB_UINT64:
    case NC_PB_FIXED64:
        *out = long_json(d, v, 1);
        break;
    case NC_PB_SINT64:
        *out = long_json(d, (uint64_t)nc_pb_unzigzag64(v), 0);
        break;
    case NC_PB_BOOL:
        *out = json_boolean((uint32_t)v != 0);
        break; /* Reader.bool reads 32 bits */
    case NC_PB_ENUM:
        *out = enum_json(d, f->en, (int32_t)(uint32_t)v);
        break;
    case NC_PB_FLOAT: {
        uint32_t b = (uint32_t)v;
        float x;
        memcpy(&x, &b, 4);
        *out = double_json(d, x);
        break;
    }
    case NC_PB_DOUBLE: {
        double x;
        memcpy(&x, &v, 8);
        *out = double_json(d, x);
        break;
    }
    default:
        return bad(d, "%s%s: bad wire type", f->name, "");
    }
    return *out ? 0 : NC_ENOMEM;
}

/* Skips an unknown field (groups by their end tag). */
static int skip_field(dec *d, int wt, uint32_t num, const uint8_t **pp, const uint8_t *end, int depth) {
    const uint8_t *p = *pp;
    uint64_t v;
    size_t k;
    switch (wt) {
    case NC_WT_VARINT:
        if (!(k = nc_pb_get_varint(p, end, &v))) return bad(d, "truncated varint%s%s", "", "");
        p += k;
        break;
    case NC_WT_I64:
        if (end - p < 8) return bad(d, "truncated fixed64%s%s", "", "");
        p += 8;
        break;
    case NC_WT_I32:
        if (end - p < 4) return bad(d, "truncated fixed32%s%s", "", "");
        p += 4;
        break;
    case NC_WT_LEN:
        if (!(k = nc_pb_get_varint(p, end, &v)) || v > (uint64_t)(end - p - (ptrdiff_t)k))
            return bad(d, "length out of range%s%s", "", "");
        p += k + v;
        break;
    case NC_WT_SGROUP:
        if (depth >= NC_PB_MAX_DEPTH) return bad(d, "groups nested too deep%s%s", "", "");
        for (;;) {
            uint64_t tag;
            if (!(k = nc_pb_get_varint(p, end, &tag))) return bad(d, "unterminated group%s%s", "", "");
            p += k;
            if ((tag & 7) == NC_WT_EGROUP) {
                if ((tag >> 3) != num) return bad(d, "mismatched end of group%s%s", "", "");
                break;
            }
            int rc = skip_field(d, (int)(tag & 7), (uint32_t)(tag >> 3), &p, end, depth + 1);
            if (rc) return rc;
        }
        break;
    default:
        return bad(d, "bad wire type%s%s", "", "");
    }
    *pp = p;
    return 0;
}

static const nc_pb_field *field_by_number(const nc_pb_msg *m, uint64_t num) {
    size_t lo = 0, hi = m->nfields;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->fields[mid].number == num) return &m->fields[mid];
        if (m->fields[mid].number < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* A map key as the JavaScript property name protobufjs stores it under. */
static json_t *map_key_text(const nc_pb_field *f, json_t *k, char *buf, size_t n, const char **s) {
    if (json_is_string(k)) {
        *s = json_string_value(k);
        return k;
    }
    if (json_is_boolean(k))
        snprintf(buf, n, "%s", json_is_true(k) ? "true" : "false");
    else if (json_is_integer(k))
        snprintf(buf, n, "%lld", (long long)json_integer_value(k));
    else
        snprintf(buf, n, "%.0f", json_real_value(k)); /* uint64 above 2^63 */
    (void)f;
    *s = buf;
    return k;
}

/* One map entry (a nested message {1: key, 2: value}) into obj[key]. Absent key or value: the type's
 * default, as the generated decoder presets them. */
static int dec_map_entry(dec *d, const nc_pb_field *f, const uint8_t *p, const uint8_t *end, int depth,
                         json_t *map) {
    json_t *k = NULL, *v = NULL;
    int rc = 0;
    nc_pb_field kf = *f, vf = *f;
    kf.type = f->key_type;
    while (!rc && p < end) {
        uint64_t tag;
        size_t n = nc_pb_get_varint(p, end, &tag);
        if (!n) return json_decref(k), json_decref(v), bad(d, "%s%s: truncated map entry", f->name, "");
        p += n;
        int wt = (int)(tag & 7);
        json_t *x = NULL;
        if ((tag >> 3) == 1 && wt == nc_pb_wire_type(kf.type)) {
            rc = dec_value(d, &kf, kf.type, wt, &p, end, depth, &x);
            json_decref(k);
            k = x;
        } else if ((tag >> 3) == 2 && wt == nc_pb_wire_type(vf.type)) {
            rc = dec_value(d, &vf, vf.type, wt, &p, end, depth, &x);
            json_decref(v);
            v = x;
        } else
            rc = skip_field(d, wt, (uint32_t)(tag >> 3), &p, end, depth);
    }
    if (!rc && !k) {
        static const uint8_t zero[1] = {0};
        const uint8_t *z = zero;
        if (kf.type == NC_PB_STRING)
            k = json_string("");
        else if (nc_pb_wire_type(kf.type) == NC_WT_VARINT)
            rc = dec_value(d, &kf, kf.type, NC_WT_VARINT, &z, zero + 1, depth, &k);
        else {
            static const uint8_t zeros[8] = {0};
            z = zeros;
            rc = dec_value(d, &kf, kf.type, nc_pb_wire_type(kf.type), &z, zeros + 8, depth, &k);
        }
        if (!rc && !k) rc = NC_ENOMEM;
    }
    if (!rc && !v) {
        static const uint8_t zeros[8] = {0};
        const uint8_t *z = zeros;
        if (vf.type == NC_PB_MESSAGE)
            rc = dec_msg(d, vf.msg, zeros, zeros, depth + 1, &v);
        else if (vf.type == NC_PB_STRING)
            v = json_string("");
        else if (vf.type == NC_PB_BYTES)
            v = bytes_json(d, zeros, 0);
        else {
            int wt = nc_pb_wire_type(vf.type);
            rc = dec_value(d, &vf, vf.type, wt, &z, zeros + (wt == NC_WT_VARINT ? 1 : 8), depth, &v);
        }
        if (!rc && !v) rc = NC_ENOMEM;
    }
    if (!rc) {
        char buf[32];
        const char *ks;
        map_key_text(f, k, buf, sizeof buf, &ks);
        rc = json_object_set(map, ks, v) ? NC_ENOMEM : 0;
    }
    json_decref(k);
    json_decref(v);
    return rc;
}

static json_t *default_json(dec *d, const nc_pb_field *f) {
    switch (f->type) {
    case NC_PB_MESSAGE:
        return json_null();
    case NC_PB_STRING:
        return json_string("");
    case NC_PB_BYTES:
        return bytes_json(d, (const uint8_t *)"", 0);
    case NC_PB_BOOL:
        return json_false();
    case NC_PB_ENUM:
        return enum_json(d, f->en, f->en->values[0].number);
    case NC_PB_DOUBLE:
    case NC_PB_FLOAT:
        return json_integer(0);
    default:
        return nc_pb_is_long(f->type) ? long_json(d, 0, 0) : json_integer(0);
    }
}

/* Fills in what toObject adds after the fields: defaults (arrays, objects, defaults options), the oneof
 * members (oneofs option); drops lists that came out empty (a zero-length packed run). Checks proto2
 * required fields, as the generated decoder does. */
static int finish(dec *d, const nc_pb_msg *m, json_t *obj) {
    for (size_t i = 0; i < m->nfields; i++) {
        const nc_pb_field *f = &m->fields[i];
        const char *k = key_of(d, f);
        json_t *v = json_object_get(obj, k);
        if (v && f->label == NC_PB_REPEATED && !f->is_map && json_array_size(v) == 0 && !d->o->arrays &&
            !d->o->defaults)
            json_object_del(obj, k), v = NULL;
        if (!v && f->label == NC_PB_REQUIRED) return bad(d, "missing required '%s'%s", f->name, "");
        if (v || f->oneof >= 0) continue;
        json_t *x = NULL;
        if (f->is_map) {
            if (d->o->objects || d->o->defaults)
                x = json_object();
            else
                continue;
        } else if (f->label == NC_PB_REPEATED) {
            if (d->o->arrays || d->o->defaults)
                x = json_array();
            else
                continue;
        } else if (d->o->defaults)
            x = default_json(d, f);
        else
            continue;
        if (!x || json_object_set_new(obj, k, x)) return NC_ENOMEM;
    }
    if (d->o->oneofs)
        for (size_t i = 0; i < m->nfields; i++) { /* by number: the last set member wins, as in toObject */
            const nc_pb_field *f = &m->fields[i];
            if (f->oneof < 0 || !json_object_get(obj, key_of(d, f))) continue;
            const nc_pb_oneof *on = &m->oneofs[f->oneof];
            if (json_object_set_new(obj, d->o->keep_case ? on->name : on->camel, json_string(key_of(d, f))))
                return NC_ENOMEM;
        }
    return 0;
}

static int dec_msg(dec *d, const nc_pb_msg *m, const uint8_t *p, const uint8_t *end, int depth,
                   json_t **out) {
    *out = NULL;
    if (depth > NC_PB_MAX_DEPTH) return bad(d, "%s%s: maximum nesting depth exceeded", m->full_name, "");
    json_t *obj = json_object();
    if (!obj) return NC_ENOMEM;
    int rc = 0;
    while (!rc && p < end) {
        uint64_t tag;
        size_t k = nc_pb_get_varint(p, end, &tag);
        if (!k) {
            rc = bad(d, "%s%s: truncated tag", m->full_name, "");
            break;
        }
        p += k;
        int wt = (int)(tag & 7);
        if ((tag >> 3) == 0 || (tag >> 3) > 536870911u) {
            rc = bad(d, "%s%s: invalid field number", m->full_name, "");
            break;
        }
        const nc_pb_field *f = field_by_number(m, tag >> 3);
        int want = f ? nc_pb_wire_type(f->type) : -1;
        if (f && f->is_map && wt == NC_WT_LEN) {
            uint64_t n;
            size_t kk = nc_pb_get_varint(p, end, &n);
            if (!kk || n > (uint64_t)(end - p - (ptrdiff_t)kk)) {
                rc = bad(d, "%s%s: length out of range", f->name, "");
                break;
            }
            p += kk;
            const char *key = key_of(d, f);
            json_t *map = json_object_get(obj, key);
            if (!map) {
                if (json_object_set_new(obj, key, map = json_object())) {
                    rc = NC_ENOMEM;
                    break;
                }
            }
            rc = dec_map_entry(d, f, p, p + n, depth, map);
            p += n;
        } else if (f && !f->is_map && f->label == NC_PB_REPEATED && wt == NC_WT_LEN && want != NC_WT_LEN) {
            /* a packed run; accepted whatever the field's [packed] says, as protobufjs does */
            uint64_t n;
            size_t kk = nc_pb_get_varint(p, end, &n);
            if (!kk || n > (uint64_t)(end - p - (ptrdiff_t)kk)) {
                rc = bad(d, "%s%s: length out of range", f->name, "");
                break;
            }
            p += kk;
            const uint8_t *e2 = p + n;
            const char *key = key_of(d, f);
            json_t *arr = json_object_get(obj, key);
            if (!arr && json_object_set_new(obj, key, arr = json_array())) {
                rc = NC_ENOMEM;
                break;
            }
            while (!rc && p < e2) {
                json_t *x;
                rc = dec_value(d, f, f->type, want, &p, e2, depth, &x);
                if (!rc && json_array_append_new(arr, x)) rc = NC_ENOMEM;
            }
        } else if (f && !f->is_map && wt == want) {
            json_t *x;
            rc = dec_value(d, f, f->type, wt, &p, end, depth, &x);
            if (rc) break;
            const char *key = key_of(d, f);
            if (f->label == NC_PB_REPEATED) {
                json_t *arr = json_object_get(obj, key);
                if (!arr && json_object_set_new(obj, key, arr = json_array())) {
                    json_decref(x);
                    rc = NC_ENOMEM;
                    break;
                }
                if (json_array_append_new(arr, x)) rc = NC_ENOMEM;
            } else if (json_object_set_new(obj, key, x))
                rc = NC_ENOMEM;
        } else /* unknown field, or a known one with another wire type: skipped (grpc.md) */
            rc = skip_field(d, wt, (uint32_t)(tag >> 3), &p, end, depth);
    }
    if (!rc) rc = finish(d, m, obj);
    if (rc) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

int nc_pb_decode(const nc_pb_msg *m, const void *p, size_t n, const nc_pb_json_opts *o, json_t **out,
                 char *err, size_t errlen) {
    static const nc_pb_json_opts none;
    if (err && errlen) err[0] = 0;
    if (!m || !out || (!p && n)) return NC_EINVAL;
    dec d = {o ? o : &none, err, errlen};
    const uint8_t *s = p ? p : (const uint8_t *)"";
    return dec_msg(&d, m, s, s + n, 0, out);
}
