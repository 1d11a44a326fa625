/* The OTLP protobuf request body (otlp_proto.h). A nested message is written into a buffer of its own and
 * then appended behind its tag and length: the bodies are small (512 spans at most), and no length has to
 * be known ahead. */
#include "obs/otlp_proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"

enum { VARINT = 0, FIXED64 = 1, LEN = 2 };

static int varint(nc_buf *b, uint64_t v) {
    char t[10];
    int n = 0;
    do {
        t[n++] = (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return nc_buf_append(b, t, (size_t)n);
}

static int tag(nc_buf *b, int field, int type) {
    return varint(b, (uint64_t)field << 3 | (uint64_t)type);
}

static int bytes(nc_buf *b, int field, const void *p, size_t n) {
    return tag(b, field, LEN) || varint(b, n) || nc_buf_append(b, p, n);
}

static int str(nc_buf *b, int field, const char *s) {
    return s ? bytes(b, field, s, strlen(s)) : 0;
}

static int u64(nc_buf *b, int field, uint64_t v) {
    return tag(b, field, VARINT) || varint(b, v);
}

static int fixed64(nc_buf *b, int field, uint64_t v) {
    char t[8];
    for (int k = 0; k < 8; k++) t[k] = (char)(v >> (8 * k)); /* little-endian */
    return tag(b, field, FIXED64) || nc_buf_append(b, t, 8);
}

/* a sub-message: its bytes behind the tag and length, then freed */
static int msg(nc_buf *b, int field, nc_buf *sub) {
    int r = bytes(b, field, sub->data ? sub->data : "", sub->len);
    nc_buf_free(sub);
    return r;
}

/* lowercase hex (as otlp.c writes ids) into bytes; 0 when not n bytes of it */
static int unhex(const char *h, uint8_t *out, size_t n) {
    if (!h || strlen(h) != 2 * n) return 0;
    for (size_t k = 0; k < 2 * n; k++) {
        char c = h[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        if (k & 1)
            out[k / 2] = (uint8_t)(out[k / 2] | d);
        else
            out[k / 2] = (uint8_t)(d << 4);
    }
    return 1;
}

/* KeyValue { key = 1; AnyValue value = 2 { string_value = 1; int_value = 3 } } */
static int key_value(nc_buf *b, int field, const char *key, json_t *v) {
    nc_buf kv = NC_BUF_INIT, any = NC_BUF_INIT;
    json_t *s = json_object_get(v, "stringValue"), *i = json_object_get(v, "intValue");
    int r = 0;
    if (json_is_string(s))
        r = bytes(&any, 1, json_string_value(s), json_string_length(s));
    else if (json_is_integer(i))
        r = u64(&any, 3, (uint64_t)json_integer_value(i)); /* int64: two's complement, as protobuf says */
    if (r || str(&kv, 1, key) || msg(&kv, 2, &any) || msg(b, field, &kv)) {
        nc_buf_free(&any);
        nc_buf_free(&kv);
        return NC_ENOMEM;
    }
    return 0;
}

static int attributes(nc_buf *b, int field, json_t *arr) {
    size_t k;
    json_t *a;
    json_array_foreach(arr, k, a) {
        if (key_value(b, field, json_string_value(json_object_get(a, "key")), json_object_get(a, "value")))
            return NC_ENOMEM;
    }
    return 0;
}

/* Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6, start 7, end 8,
 * attributes 9, status 15 { message 2, code 3 } */
static int span(nc_buf *b, json_t *o) {
    nc_buf sp = NC_BUF_INIT, st = NC_BUF_INIT;
    uint8_t tid[16], sid[8], pid[8];
    int ok = unhex(json_string_value(json_object_get(o, "traceId")), tid, 16) &&
             unhex(json_string_value(json_object_get(o, "spanId")), sid, 8);
    if (!ok) return 0; /* not a span otlp.c wrote: left out */
    const char *parent = json_string_value(json_object_get(o, "parentSpanId"));
    json_t *status = json_object_get(o, "status"), *code = json_object_get(status, "code");
    int r = bytes(&sp, 1, tid, 16) || bytes(&sp, 2, sid, 8) ||
            str(&sp, 3, json_string_value(json_object_get(o, "traceState"))) ||
            (unhex(parent, pid, 8) && bytes(&sp, 4, pid, 8)) ||
            str(&sp, 5, json_string_value(json_object_get(o, "name"))) ||
            u64(&sp, 6, (uint64_t)json_integer_value(json_object_get(o, "kind"))) ||
            fixed64(&sp, 7, strtoull(json_string_value(json_object_get(o, "startTimeUnixNano")), NULL, 10)) ||
            fixed64(&sp, 8, strtoull(json_string_value(json_object_get(o, "endTimeUnixNano")), NULL, 10)) ||
            attributes(&sp, 9, json_object_get(o, "attributes")) ||
            (json_is_integer(code) && (str(&st, 2, json_string_value(json_object_get(status, "message"))) ||
                                       u64(&st, 3, (uint64_t)json_integer_value(code)))) ||
            msg(&sp, 15, &st) || msg(b, 2, &sp);
    nc_buf_free(&st);
    nc_buf_free(&sp);
    return r ? NC_ENOMEM : 0;
}

/* ExportTraceServiceRequest { ResourceSpans resource_spans = 1 { Resource resource = 1 { attributes 1 },
 * ScopeSpans scope_spans = 2 { InstrumentationScope scope = 1 { name 1 }, Span spans = 2 } } } */
int nc_otlp_proto_request(nc_buf *out, const char *service, json_t *spans) {
    nc_buf rs = NC_BUF_INIT, res = NC_BUF_INIT, ss = NC_BUF_INIT, scope = NC_BUF_INIT;
    json_t *svc = json_pack("{s:s}", "stringValue", service);
    int r = !svc || key_value(&res, 1, "service.name", svc) || msg(&rs, 1, &res) || str(&scope, 1, "nestc") ||
            msg(&ss, 1, &scope);
    json_decref(svc);
    size_t k;
    json_t *o;
    json_array_foreach(spans, k, o) {
        if (r) break;
        r = span(&ss, o);
    }
    r = r || msg(&rs, 2, &ss) || msg(out, 1, &rs);
    nc_buf_free(&res);
    nc_buf_free(&scope);
    nc_buf_free(&ss);
    nc_buf_free(&rs);
    return r ? NC_ENOMEM : 0;
}
