/* The gRPC layer above HTTP/2 (grpc_wire.h). */
#include "codec/grpc_wire.h"

#include <string.h>

#include "util/base64.h"

void nc_grpc_reader_init(nc_grpc_reader *r, uint32_t max) {
    memset(r, 0, sizeof *r);
    r->max = max ? max : NC_GRPC_DEFAULT_MAX_MESSAGE;
}

void nc_grpc_reader_free(nc_grpc_reader *r) {
    nc_buf_free(&r->buf);
    r->off = 0;
}

int nc_grpc_reader_feed(nc_grpc_reader *r, const void *p, size_t n) {
    /* drop what was handed out before growing: messages handed out are invalid from here on */
    if (r->off) {
        memmove(r->buf.data, r->buf.data + r->off, r->buf.len - r->off);
        r->buf.len -= r->off;
        r->off = 0;
    }
    return nc_buf_append(&r->buf, p, n);
}

int nc_grpc_reader_next(nc_grpc_reader *r, nc_grpc_msg *m) {
    size_t avail = r->buf.len - r->off;
    if (avail < 5) return 0;
    const uint8_t *h = (const uint8_t *)r->buf.data + r->off;
    if (h[0] > 1) return NC_EPROTO;
    uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
    if (len > r->max) return NC_ETOOBIG;
    if (avail - 5 < len) return 0;
    m->compressed = h[0];
    m->data = (const char *)h + 5;
    m->len = len;
    r->off += 5 + (size_t)len;
    return 1;
}

size_t nc_grpc_reader_pending(const nc_grpc_reader *r) {
    return r->buf.len - r->off;
}

int nc_grpc_prefix(uint8_t out[5], int compressed, size_t len) {
    if (len > UINT32_MAX) return NC_ETOOBIG;
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
    return 0;
}

int nc_grpc_timeout_parse(const char *s, size_t n, int64_t *ms) {
    if (n < 2 || n > 9) return NC_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9') return NC_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    /* at most 99,999,999 units: hours times 3,600,000 stays far below INT64_MAX */
    switch (s[n - 1]) {
    case 'H':
        *ms = v * 3600000;
        break;
    case 'M':
        *ms = v * 60000;
        break;
    case 'S':
        *ms = v * 1000;
        break;
    case 'm':
        *ms = v;
        break;
    case 'u':
        *ms = (v + 999) / 1000;
        break;
    case 'n':
        *ms = (v + 999999) / 1000000;
        break;
    default:
        return NC_EINVAL;
    }
    return 0;
}

size_t nc_grpc_timeout_format(int64_t ms, char out[16]) {
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'m', 1}, {'S', 1000}, {'M', 60000}, {'H', 3600000}};
    if (ms < 0) ms = 0;
    size_t k = 0;
    if (ms == 0) goto write;
    /* the coarsest unit that holds ms exactly, else the finest that fits in 8 digits (rounded up) */
    for (size_t i = sizeof units / sizeof units[0]; i-- > 0;)
        if (ms % units[i].ms == 0 && ms / units[i].ms <= 99999999) {
            k = i;
            goto write;
        }
    for (k = 0; k < 3 && (ms + units[k].ms - 1) / units[k].ms > 99999999; k++) {
    }
write:;
    int64_t v = (ms + units[k].ms - 1) / units[k].ms;
    if (v > 99999999) v = 99999999;
    char digits[12];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = digits[n - 1 - i];
    out[n++] = units[k].unit;
    out[n] = 0;
    return n;
}

int nc_grpc_percent_encode(nc_buf *out, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c <= 0x7E && c != '%') {
            if (nc_buf_append_char(out, (char)c)) return NC_ENOMEM;
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            if (nc_buf_append(out, e, 3)) return NC_ENOMEM;
        }
    }
    return 0;
}

static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int nc_grpc_percent_decode(nc_buf *out, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
            c = (char)(hexv(s[i + 1]) << 4 | hexv(s[i + 2]));
            i += 2;
        }
        if (nc_buf_append_char(out, c)) return NC_ENOMEM;
    }
    return 0;
}

int nc_grpc_is_bin(const char *name, size_t n) {
    return n >= 4 && memcmp(name + n - 4, "-bin", 4) == 0;
}

int nc_grpc_bin_decode(nc_buf *out, const char *s, size_t n) {
    size_t mark = out->len;
    /* padding only at the end: "=" inside the value is refused, not read as the end */
    size_t body = n;
    while (body && s[body - 1] == '=') body--;
    if (n - body > 2 || memchr(s, '=', body)) return NC_EPROTO;
    int rc = nc_base64_decode(out, s, body);
    if (rc) out->len = mark;
    return rc;
}

const char *nc_grpc_status_name(int code) {
    static const char *const names[] = {
        "OK",        "CANCELLED",       "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS",  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED",   "OUT_OF_RANGE",    "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED",
    };
    return code >= 0 && code <= 16 ? names[code] : NULL;
}
