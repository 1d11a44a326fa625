/* The status line of an HTTP/1.x response (http_status.h). */
#include <string.h>

#include "obs/http_status.h"

int nc_http_status_parse(const char *buf, size_t len) {
    static const char proto[] = "HTTP/1.";
    /* a prefix that already differs is refused at once, before the line is complete */
    size_t k = len < 7 ? len : 7;
    if (memcmp(buf, proto, k)) return -1;
    const char *nl = memchr(buf, '\n', len);
    if (!nl) return len >= NC_HTTP_STATUS_LINE_MAX ? -1 : 0;
    size_t n = (size_t)(nl - buf);
    if (n > NC_HTTP_STATUS_LINE_MAX) return -1;
    if (n && buf[n - 1] == '\r') n--;
    /* "HTTP/1.x NNN" then end of line or a space and a reason */
    if (n < 12 || (buf[7] != '0' && buf[7] != '1') || buf[8] != ' ') return -1;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') return -1;
        code = code * 10 + (buf[i] - '0');
    }
    if (n > 12 && buf[12] != ' ') return -1;
    for (size_t i = 12; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 && buf[i] != '\t') return -1;
    return code >= 100 && code <= 599 ? code : -1;
}

/* "Retry-After:" (any case) at the start of a header line */
static int is_retry_after(const char *l, size_t n) {
    static const char name[] = "retry-after:";
    if (n < sizeof name - 1) return 0;
    for (size_t i = 0; i < sizeof name - 1; i++) {
        char c = l[i] >= 'A' && l[i] <= 'Z' ? (char)(l[i] + 32) : l[i];
        if (c != name[i]) return 0;
    }
    return 1;
}

/* delta-seconds between optional spaces and tabs, capped; -1 when the value is anything else */
static int delta_seconds(const char *v, size_t n) {
    size_t a = 0, b = n;
    while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
    if (a == b) return -1;
    long s = 0;
    for (size_t i = a; i < b; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        s = s * 10 + (v[i] - '0');
        if (s > NC_HTTP_RETRY_AFTER_MAX) s = NC_HTTP_RETRY_AFTER_MAX; /* no overflow however long */
    }
    return (int)s;
}

int nc_http_retry_after(const char *buf, size_t len) {
    const char *p = memchr(buf, '\n', len); /* past the status line */
    if (!p) return -2;
    int found = -1;
    for (size_t at = (size_t)(p + 1 - buf); at < len;) {
        const char *nl = memchr(buf + at, '\n', len - at);
        if (!nl) return -2;
        size_t n = (size_t)(nl - (buf + at));
        if (n && buf[at + n - 1] == '\r') n--;
        if (!n) return found; /* the blank line: the head is complete */
        if (found < 0 && is_retry_after(buf + at, n)) found = delta_seconds(buf + at + 12, n - 12);
        at = (size_t)(nl + 1 - buf);
    }
    return -2;
}
