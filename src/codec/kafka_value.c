/* Kafka values, keys and headers as NestJS writes and reads them; see kafka_value.h. */
#include "codec/kafka_value.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_build.h"
#include "codec/json_write.h"

static int bytes_set(nc_kafka_bytes *b, const void *p, size_t n) {
    b->p = malloc(n + 1);
    if (!b->p) return NC_ENOMEM;
    if (n) memcpy(b->p, p, n);
    b->p[n] = '\0';
    b->n = n;
    return 0;
}

/* A string as Buffer.from(string) writes it: nestc holds a lone surrogate as WTF-8 (json_build.h), which
 * JavaScript's UTF-8 encoder writes as U+FFFD; a high and a low surrogate held one after the other are one
 * character, written as its 4-byte form. Other text is UTF-8 already and copied as is. */
static int bytes_set_utf8(nc_kafka_bytes *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i + 2 < n && !(p[i] == 0xED && p[i + 1] >= 0xA0)) i++;
    if (i + 2 >= n) return bytes_set(b, s, n);
    nc_buf o = NC_BUF_INIT;
    int rc = nc_buf_append(&o, s, i);
    while (!rc && i < n) {
        if (i + 2 < n && p[i] == 0xED && p[i + 1] >= 0xA0) {
            unsigned hi = 0xD000u | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
            if (hi < 0xDC00 && i + 5 < n && p[i + 3] == 0xED && p[i + 4] >= 0xB0) {
                unsigned lo = 0xD000u | ((p[i + 4] & 0x3Fu) << 6) | (p[i + 5] & 0x3Fu);
                unsigned cp = 0x10000u + ((hi - 0xD800u) << 10) + (lo - 0xDC00u);
                unsigned char u[4] = {
                    (unsigned char)(0xF0 | (cp >> 18)), (unsigned char)(0x80 | ((cp >> 12) & 0x3F)),
                    (unsigned char)(0x80 | ((cp >> 6) & 0x3F)), (unsigned char)(0x80 | (cp & 0x3F))};
                rc = nc_buf_append(&o, u, 4);
                i += 6;
            } else {
                rc = nc_buf_append(&o, "\xEF\xBF\xBD", 3); /* U+FFFD */
                i += 3;
            }
        } else {
            rc = nc_buf_append(&o, p + i, 1);
            i++;
        }
    }
    if (!rc) rc = bytes_set(b, o.data ? o.data : "", o.len);
    nc_buf_free(&o);
    return rc;
}

int nc_kafka_encode_value(const json_t *v, nc_kafka_bytes *out) {
    out->p = NULL;
    out->n = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) return bytes_set_utf8(out, json_string_value(v), json_string_length(v));
    if (json_is_true(v)) return bytes_set(out, "true", 4);
    if (json_is_false(v)) return bytes_set(out, "false", 5);
    nc_buf b = NC_BUF_INIT;
    /* String(n) is the text JSON.stringify writes for a finite number; a js_infinity real (only a parsed
     * 1e400 can be one) reads "Infinity" in JavaScript where JSON.stringify would write null */
    if (json_is_real(v) && isinf(json_real_value(v)))
        return json_real_value(v) > 0 ? bytes_set(out, "Infinity", 8) : bytes_set(out, "-Infinity", 9);
    int rc = nc_json_write(&b, v);
    if (rc == 0) rc = bytes_set(out, b.data ? b.data : "", b.len);
    nc_buf_free(&b);
    return rc;
}

int nc_kafka_msg_add_header(nc_kafka_msg *m, const char *name, const void *value, size_t n) {
    nc_kafka_header *h = realloc(m->headers, (m->nheaders + 1) * sizeof *h);
    if (!h) return NC_ENOMEM;
    m->headers = h;
    h += m->nheaders;
    h->name = strdup(name);
    if (!h->name) return NC_ENOMEM;
    if (bytes_set(&h->value, value ? value : "", n)) {
        free(h->name);
        return NC_ENOMEM;
    }
    m->nheaders++;
    return 0;
}

const nc_kafka_header *nc_kafka_msg_header(const nc_kafka_msg *m, const char *name) {
    for (size_t i = 0; i < m->nheaders; i++)
        if (strcmp(m->headers[i].name, name) == 0) return &m->headers[i];
    return NULL;
}

void nc_kafka_msg_free(nc_kafka_msg *m) {
    if (!m) return;
    free(m->value.p);
    free(m->key.p);
    for (size_t i = 0; i < m->nheaders; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value.p);
    }
    free(m->headers);
    memset(m, 0, sizeof *m);
}

/* A header name as a C string: names with NUL bytes cannot be Kafka header names through librdkafka. */
static int add_encoded_header(nc_kafka_msg *m, const char *name, const json_t *v) {
    nc_kafka_bytes b;
    int rc = nc_kafka_encode_value(v, &b);
    if (rc) return rc;
    if (!b.p) return 0; /* null/undefined header values: KafkaJS cannot write them, Nest would fail */
    rc = nc_kafka_msg_add_header(m, name, b.p, b.n);
    free(b.p);
    return rc;
}

int nc_kafka_msg_from_json(const json_t *data, nc_kafka_msg *out) {
    memset(out, 0, sizeof *out);
    int rc;
    if (json_is_object(data) && (json_object_get(data, "key") || json_object_get(data, "value"))) {
        /* a ready-made message (KafkaRequestSerializer: isObject && ('key' in v || 'value' in v)) */
        rc = nc_kafka_encode_value(json_object_get(data, "value"), &out->value);
        if (!rc) rc = nc_kafka_encode_value(json_object_get(data, "key"), &out->key);
        const json_t *h = json_object_get(data, "headers");
        if (!rc && json_is_object(h)) {
            const char *name;
            json_t *hv;
            json_object_foreach((json_t *)h, name, hv) {
                if ((rc = add_encoded_header(out, name, hv))) break;
            }
        }
        const json_t *part = json_object_get(data, "partition");
        if (json_is_integer(part) && json_integer_value(part) >= 0 && json_integer_value(part) <= INT32_MAX)
            out->has_partition = 1, out->partition = (int32_t)json_integer_value(part);
        const json_t *ts = json_object_get(data, "timestamp");
        if (json_is_integer(ts))
            out->has_timestamp = 1, out->timestamp = json_integer_value(ts);
        else if (json_is_string(ts)) {
            char *end;
            errno = 0;
            long long t = strtoll(json_string_value(ts), &end, 10);
            if (!errno && end != json_string_value(ts) && !*end) out->has_timestamp = 1, out->timestamp = t;
        }
    } else {
        rc = nc_kafka_encode_value(data, &out->value);
    }
    if (rc) nc_kafka_msg_free(out);
    return rc;
}

int nc_kafka_add_request_headers(nc_kafka_msg *m, const char *id, const char *reply_topic,
                                 int32_t reply_partition) {
    int rc = nc_kafka_msg_add_header(m, NC_KAFKA_H_CORRELATION, id, strlen(id));
    if (!rc) rc = nc_kafka_msg_add_header(m, NC_KAFKA_H_REPLY_TOPIC, reply_topic, strlen(reply_topic));
    if (!rc && reply_partition >= 0) {
        char num[16];
        int n = snprintf(num, sizeof num, "%d", (int)reply_partition);
        rc = nc_kafka_msg_add_header(m, NC_KAFKA_H_REPLY_PARTITION, num, (size_t)n);
    }
    return rc;
}

int nc_kafka_reply_msg(const json_t *result, const json_t *err, int disposed, const char *id, size_t id_len,
                       nc_kafka_msg *out) {
    int rc = nc_kafka_msg_from_json(result, out);
    if (rc) return rc;
    /* the reply's own headers are Nest's only (a ready-made result's headers are kept before them) */
    rc = nc_kafka_msg_add_header(out, NC_KAFKA_H_CORRELATION, id, id_len);
    if (!rc && err) {
        nc_kafka_bytes e;
        rc = nc_kafka_encode_value(err, &e);
        if (!rc) rc = nc_kafka_msg_add_header(out, NC_KAFKA_H_ERR, e.p ? e.p : "null", e.p ? e.n : 4);
        free(e.p);
    }
    if (!rc && disposed) rc = nc_kafka_msg_add_header(out, NC_KAFKA_H_DISPOSED, "\0", 1);
    if (rc) nc_kafka_msg_free(out);
    return rc;
}

json_t *nc_kafka_decode(const char *p, size_t n) {
    if (!p) return json_null();
    if (n > 0 && p[0] == '\0') {
        /* Buffer kept (schema-registry framing); what JSON.stringify makes of it */
        json_t *arr = json_array();
        json_t *o = json_object();
        if (!arr || !o) goto nomem;
        for (size_t i = 0; i < n; i++)
            if (json_array_append_new(arr, json_integer((unsigned char)p[i]))) goto nomem;
        if (json_object_set_new(o, "type", json_string("Buffer"))) goto nomem;
        if (json_object_set_new(o, "data", arr)) {
            arr = NULL;
            goto nomem;
        }
        return o;
    nomem:
        json_decref(arr);
        json_decref(o);
        return NULL;
    }
    json_t *s = nc_json_string_js(p, n, 0); /* buffer.toString(): U+FFFD for ill-formed UTF-8 */
    if (!s) return NULL;
    const char *t = json_string_value(s);
    size_t tn = json_string_length(s);
    if (tn > 0 && (t[0] == '{' || t[0] == '[')) {
        json_t *v = NULL;
        if (nc_json_parse(t, tn, &v, NULL, 0) == 0) {
            json_decref(s);
            return v;
        }
        /* not JSON (or out of memory while parsing): the text, as Nest keeps it */
    }
    return s;
}

int nc_kafka_decode_text(const char *p, size_t n, nc_buf *out) {
    json_t *v = nc_kafka_decode(p, n);
    if (!v) return NC_ENOMEM;
    int rc = nc_json_write(out, v);
    nc_json_free(v);
    return rc;
}

int32_t nc_kafka_parse_partition(const char *p, size_t n) {
    if (!p) return -1;
    while (n && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
    if (n == 0 || n > 10) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v > INT32_MAX ? -1 : (int32_t)v;
}
