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
