/* Base64 (base64.h). */
#include "util/base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int nc_base64_encode(nc_buf *out, const void *p, size_t n) {
    const unsigned char *s = p;
    if (nc_buf_reserve(out, (n + 2) / 3 * 4 + 1)) return NC_ENOMEM;
    char *d = out->data + out->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *d++ = alphabet[v >> 18];
        *d++ = alphabet[(v >> 12) & 63];
        *d++ = alphabet[(v >> 6) & 63];
        *d++ = alphabet[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        *d++ = alphabet[v >> 18];
        *d++ = alphabet[(v >> 12) & 63];
        *d++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        *d++ = '=';
    }
    out->len = (size_t)(d - out->data);
    return 0;
}

static int sextet(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int nc_base64_decode(nc_buf *out, const char *s, size_t n) {
    if (nc_buf_reserve(out, n / 4 * 3 + 3)) return NC_ENOMEM;
    unsigned acc = 0;
    int bits = 0, groups = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        int v = sextet((unsigned char)s[i]);
        if (v < 0) return NC_EPROTO;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        groups = (groups + 1) & 3;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (char)((acc >> bits) & 0xFF);
        }
    }
    if (groups == 1) return NC_EPROTO; /* one character of a group carries less than a byte */
    return 0;
}
