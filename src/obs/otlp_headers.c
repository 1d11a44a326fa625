/* OTEL_EXPORTER_OTLP_HEADERS into HTTP header lines (otlp_headers.h). */
#include "obs/otlp_headers.h"

#include <string.h>
#include <strings.h>

#include "nestc/error.h"

/* RFC 9110 tchar */
static int tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hexd(unsigned char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int ows(char c) {
    return c == ' ' || c == '\t';
}

/* the headers every export request has: a user's copy would make the request ambiguous */
static int reserved(const char *k, size_t kl) {
    static const char *const own[] = {"host",       "content-type",      "content-length",
                                      "connection", "transfer-encoding", "content-encoding"};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        if (strlen(own[i]) == kl && !strncasecmp(k, own[i], kl)) return 1;
    return 0;
}

static int parse(const char *in, size_t n, char *out, size_t outlen, size_t *at) {
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && in[e] != ',') e++;
        size_t a = i, b = e; /* the member, trimmed */
        while (a < b && ows(in[a])) a++;
        while (b > a && ows(in[b - 1])) b--;
        i = e + 1;
        if (a == b) continue; /* an empty member ("a=1,,b=2", a trailing comma) */
        const char *eq = memchr(in + a, '=', b - a);
        if (!eq) return NC_EINVAL;
        size_t ka = a, kb = (size_t)(eq - in), va = kb + 1, vb = b;
        while (kb > ka && ows(in[kb - 1])) kb--;
        while (va < vb && ows(in[va])) va++;
        if (ka == kb || reserved(in + ka, kb - ka)) return NC_EINVAL;
        for (size_t k = ka; k < kb; k++)
            if (!tchar((unsigned char)in[k])) return NC_EINVAL;
        /* "Key: " */
        if (*at + (kb - ka) + 2 >= outlen) return NC_ETOOBIG;
        memcpy(out + *at, in + ka, kb - ka);
        *at += kb - ka;
        out[(*at)++] = ':';
        out[(*at)++] = ' ';
        for (size_t k = va; k < vb; k++) {
            unsigned char c = (unsigned char)in[k];
            if (c == '%') {
                if (k + 2 >= vb) return NC_EINVAL;
                int hi = hexd((unsigned char)in[k + 1]), lo = hexd((unsigned char)in[k + 2]);
                if (hi < 0 || lo < 0) return NC_EINVAL;
                c = (unsigned char)(hi << 4 | lo);
                k += 2;
            }
            /* field-value: visible ASCII, space, tab, and bytes >= 0x80 (obs-text); never CR, LF, NUL */
            if ((c < 0x20 && c != '\t') || c == 0x7f) return NC_EINVAL;
            if (*at + 1 >= outlen) return NC_ETOOBIG;
            out[(*at)++] = (char)c;
        }
        if (*at + 2 >= outlen) return NC_ETOOBIG;
        out[(*at)++] = '\r';
        out[(*at)++] = '\n';
    }
    return 0;
}

int nc_otlp_headers_parse(const char *in, size_t n, char *out, size_t outlen) {
    if (!outlen) return NC_ETOOBIG;
    size_t at = 0;
    int r = in ? parse(in, n, out, outlen, &at) : 0;
    out[r ? 0 : at] = 0;
    return r;
}
