/* libFuzzer target: the TCP frame parser (sans-I/O). The input is fed whole, split at a point chosen by
 * its first byte, and one byte at a time; all must yield the same frames and the same outcome. Every frame
 * handed out must be valid UTF-8 (ill-formed input bytes become U+FFFD, as NestJS decodes them). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/frame.h"
#include "util/buf.h"

typedef struct seen {
    nc_buf all; /* frames joined with a separator, to compare the two feeds */
    size_t n;
} seen;

static int on_frame(void *user, const char *json, size_t len) {
    seen *s = user;
    if (nc_utf8_validate(json, len, NULL) != 0) abort();
    nc_buf_append(&s->all, json, len);
    nc_buf_append_char(&s->all, '\n');
    s->n++;
    return 0;
}

/* Feeds d[0..n) split at `cut`, or one byte at a time when bytewise. */
static int feed(const uint8_t *d, size_t n, size_t cut, int bytewise, seen *s) {
    nc_framer_limits lim;
    nc_framer_limits_default(&lim);
    lim.max_buffer_units = 1 << 20; /* keep memory bounded while fuzzing */
    nc_framer f;
    nc_framer_init(&f, &lim);
    int r = 0;
    if (bytewise) {
        for (size_t i = 0; i < n && r >= 0; i++) {
            uint8_t b = d[i]; /* a separate 1-byte object, so that ASan sees any read past it */
            r = nc_framer_feed(&f, (const char *)&b, 1, on_frame, s);
        }
    } else {
        r = nc_framer_feed(&f, (const char *)d, cut, on_frame, s);
        if (r >= 0) r = nc_framer_feed(&f, (const char *)d + cut, n - cut, on_frame, s);
    }
    nc_framer_free(&f);
    return r < 0 ? r : 0;
}

static int same(const seen *a, const seen *b) {
    return a->n == b->n && a->all.len == b->all.len &&
           (!a->all.len || !memcmp(a->all.data, b->all.data, a->all.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    size_t cut = data[0] % size;
    seen a = {NC_BUF_INIT, 0}, b = {NC_BUF_INIT, 0}, c = {NC_BUF_INIT, 0};
    int ra = feed(data + 1, size - 1, 0, 0, &a);
    int rb = feed(data + 1, size - 1, cut > size - 1 ? size - 1 : cut, 0, &b);
    int rc = size <= 4096 ? feed(data + 1, size - 1, 0, 1, &c) : ra;
    /* splitting must not change what is read, nor whether the stream is refused: ill-formed UTF-8 that
     * Node's StringDecoder keeps back at the end of a read waits, and is read the same way after */
    if (ra != rb || !same(&a, &b)) abort();
    if (size <= 4096 && (rc != ra || !same(&a, &c))) abort();
    nc_buf_free(&a.all);
    nc_buf_free(&b.all);
    nc_buf_free(&c.all);
    return 0;
}
