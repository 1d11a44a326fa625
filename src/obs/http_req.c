/* HTTP/1.x request heads for the admin endpoint (http_req.h). Strict where laxness would let a request be
 * read two ways (obsolete line folding, whitespace before a header's colon, a body's length given
 * oddly): those are refused with 400, as RFC 9112 allows, since a probe or scraper never sends them. */
#include <string.h>

#include "obs/http_req.h"

#define TARGET_MAX 2048

/* RFC 9110 tchar */
static int tchar(unsigned char c) {
    if (c >= '0' && c <= '9') return 1;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int ieq(const char *a, size_t n, const char *lit) {
    size_t m = strlen(lit);
    if (n != m) return 0;
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = lit[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x + 32);
        if (x != y) return 0;
    }
    return 1;
}

/* Whether the comma-separated list v[0..n) has the token `tok` (case-insensitive). */
static int has_token(const char *v, size_t n, const char *tok) {
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e > s && ieq(v + s, e - s, tok)) return 1;
    }
    return 0;
}

/* The end of the line starting at p (its '\n'), or NULL before `end`. */
static const char *eol(const char *p, const char *end) {
    return memchr(p, '\n', (size_t)(end - p));
}

int nc_http_req_parse(const char *buf, size_t len, nc_http_req *out) {
    memset(out, 0, sizeof *out);
    size_t scan = len < NC_HTTP_HEAD_MAX ? len : NC_HTTP_HEAD_MAX;
    /* the head ends at an empty line (CRLF CRLF, or bare LFs, which RFC 9112 lets a server accept) */
    size_t head = 0;
    for (size_t i = 0; i < scan; i++) {
        if (buf[i] != '\n') continue;
        if (i >= 1 && buf[i - 1] == '\n') {
            head = i + 1;
            break;
        }
        if (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n') {
            head = i + 1;
            break;
        }
    }
    if (!head) return len >= NC_HTTP_HEAD_MAX ? 431 : 1;
    const char *p = buf, *end = buf + head;

    /* request line: method SP target SP HTTP/1.x */
    const char *nl = eol(p, end);
    const char *le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
    const char *q = p;
    while (q < le && tchar((unsigned char)*q)) q++;
    if (q == p || q >= le || *q != ' ') return 400;
    out->method = p;
    out->method_len = (size_t)(q - p);
    const char *t = ++q;
    while (q < le && (unsigned char)*q > ' ' && *q != 0x7f) q++;
    if (q >= le || *q != ' ' || q == t) return 400;
    if ((size_t)(q - t) > TARGET_MAX) return 414;
    if (*t != '/') return 400;
    out->path = t;
    const char *qm = memchr(t, '?', (size_t)(q - t));
    out->path_len = (size_t)((qm ? qm : q) - t);
    const char *v = q + 1;
    if (le - v != 8 || memcmp(v, "HTTP/", 5) || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' ||
        v[7] > '9')
        return 400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) return 505;
    out->minor = v[7] - '0';
    out->keep_alive = out->minor == 1;

    /* header lines up to the empty one */
    int nheaders = 0, saw_length = 0;
    for (p = nl + 1; p < end;) {
        nl = eol(p, end);
        le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (le == p) break;                      /* the empty line */
        if (*p == ' ' || *p == '\t') return 400; /* obsolete line folding */
        if (++nheaders > NC_HTTP_HEADERS_MAX) return 431;
        const char *n = p;
        while (n < le && tchar((unsigned char)*n)) n++;
        if (n == p || n >= le || *n != ':') return 400;
        size_t nlen = (size_t)(n - p);
        const char *val = n + 1;
        while (val < le && (*val == ' ' || *val == '\t')) val++;
        const char *ve = le;
        while (ve > val && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        for (const char *c = val; c < ve; c++)
            if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f) return 400;
        size_t vlen = (size_t)(ve - val);
        if (ieq(p, nlen, "content-length")) {
            if (saw_length++ || vlen == 0) return 400;
            int nonzero = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (val[i] < '0' || val[i] > '9') return 400;
                nonzero |= val[i] != '0';
            }
            if (nonzero) return 413;
        } else if (ieq(p, nlen, "transfer-encoding")) {
            return 413;
        } else if (ieq(p, nlen, "connection")) {
            if (has_token(val, vlen, "close")) out->keep_alive = 0;
            if (out->minor == 0 && has_token(val, vlen, "keep-alive")) out->keep_alive = 1;
        }
        p = nl + 1;
    }
    out->head_len = head;
    return 0;
}
