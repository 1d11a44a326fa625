/* Growable byte buffer used by encoders and stream writers. Private. */
#ifndef NC_UTIL_BUF_H
#define NC_UTIL_BUF_H

#include <stddef.h>
#include <string.h>

#include "nestc/error.h"

typedef struct nc_buf {
    char *data; /* owned; NUL-terminated when len < cap (nc_buf_cstr guarantees it) */
    size_t len;
    size_t cap;
} nc_buf;

#define NC_BUF_INIT                                                                                          \
    { NULL, 0, 0 }

/* Grows the buffer for `extra` more bytes (the slow part of nc_buf_reserve). Returns 0 or NC_ENOMEM. */
int nc_buf_grow(nc_buf *b, size_t extra);

/* Ensure room for `extra` more bytes. Returns 0 or NC_ENOMEM. Inline: encoders call these per token. */
static inline int nc_buf_reserve(nc_buf *b, size_t extra) {
    if (b->data && extra < b->cap - b->len) return 0;
    return nc_buf_grow(b, extra);
}

static inline int nc_buf_append(nc_buf *b, const void *p, size_t n) {
    if (nc_buf_reserve(b, n)) return NC_ENOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int nc_buf_append_char(nc_buf *b, char c) {
    if (nc_buf_reserve(b, 1)) return NC_ENOMEM;
    b->data[b->len++] = c;
    return 0;
}

int nc_buf_append_str(nc_buf *b, const char *s);
int nc_buf_append_char(nc_buf *b, char c);
/* printf-style append. */
int nc_buf_appendf(nc_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* NUL-terminates and returns data (never NULL on success; "" for an empty buffer). NULL on ENOMEM. */
const char *nc_buf_cstr(nc_buf *b);
/* Hands the bytes to the caller (free() them) and resets the buffer. */
char *nc_buf_steal(nc_buf *b, size_t *len);
void nc_buf_reset(nc_buf *b); /* len = 0, keeps memory */
/* A queue read from the front: copies up to `max` bytes from b at *off into dst, advances *off, and empties
 * b (memory kept) once everything is taken. Returns the bytes copied, 0 when none are queued. */
size_t nc_buf_take(nc_buf *b, size_t *off, void *dst, size_t max);
void nc_buf_free(nc_buf *b);

#endif
