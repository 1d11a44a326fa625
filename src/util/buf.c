#include "util/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"

int nc_buf_grow(nc_buf *b, size_t extra) {
    size_t need = b->len + extra + 1; /* +1 keeps room for a NUL */
    if (need < b->len) return NC_ENOMEM;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) return NC_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int nc_buf_append_str(nc_buf *b, const char *s) {
    return nc_buf_append(b, s, strlen(s));
}

int nc_buf_appendf(nc_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || nc_buf_reserve(b, (size_t)n)) {
        va_end(ap2);
        return NC_ENOMEM;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return 0;
}

const char *nc_buf_cstr(nc_buf *b) {
    if (nc_buf_reserve(b, 0)) return NULL;
    b->data[b->len] = '\0';
    return b->data;
}

char *nc_buf_steal(nc_buf *b, size_t *len) {
    if (!nc_buf_cstr(b)) return NULL;
    char *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void nc_buf_reset(nc_buf *b) {
    b->len = 0;
}

void nc_buf_free(nc_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

size_t nc_buf_take(nc_buf *b, size_t *off, void *dst, size_t max) {
    size_t have = b->len - *off, n = have < max ? have : max;
    if (!n) return 0;
    memcpy(dst, b->data + *off, n);
    *off += n;
    if (*off == b->len) {
        nc_buf_reset(b);
        *off = 0;
    }
    return n;
}
