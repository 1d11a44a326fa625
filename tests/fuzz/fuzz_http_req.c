/* libFuzzer: the admin endpoint's HTTP request-head parser (obs/http_req.c). Whatever the input, the
 * result is one of the documented codes; a complete head's spans lie inside it, its path starts with '/',
 * and the head parses the same when given alone, while one byte less of it is incomplete. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "obs/http_req.h"

static int inside(const char *p, size_t n, const char *base, size_t len) {
    return p >= base && p + n <= base + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    nc_http_req q;
    int r = nc_http_req_parse(buf, size, &q);
    if (r != 0 && r != 1 && r != 400 && r != 413 && r != 414 && r != 431 && r != 505) abort();
    if (r == 1 && size >= NC_HTTP_HEAD_MAX) abort(); /* a full buffer is never "read more" */
    if (r != 0) return 0;
    if (q.head_len == 0 || q.head_len > size || q.head_len > NC_HTTP_HEAD_MAX) abort();
    if (!q.method_len || !inside(q.method, q.method_len, buf, q.head_len)) abort();
    if (!q.path_len || !inside(q.path, q.path_len, buf, q.head_len) || q.path[0] != '/') abort();
    if (memchr(q.path, '?', q.path_len) || (q.minor != 0 && q.minor != 1)) abort();
    nc_http_req again;
    if (nc_http_req_parse(buf, q.head_len, &again) != 0 || again.head_len != q.head_len ||
        again.path != q.path || again.path_len != q.path_len || again.keep_alive != q.keep_alive)
        abort();
    if (nc_http_req_parse(buf, q.head_len - 1, &again) != 1) abort();
    return 0;
}
