/* libFuzzer target: the TCP frame parser (sans-I/O). The input is fed whole, split at a point chosen by
 * its first byte, and one byte at a time; all must yield the same frames and the same outcome. Every frame
 * handed out must be valid UTF-8 (ill-formed input bytes become U+FFFD, as NestJS decodes them), and for
 * streams with plain digit prefixes the frames must be those of a plain model of NestJS's JsonSocket. */
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

/* ---- reference: NestJS's JsonSocket over the whole input, written out plainly ---------------------- */

/* Node's UTF-8 decoder at d[0..n): the bytes of one character or of one maximal ill-formed subpart
 * (*units = 0 for the latter: it becomes U+FFFD). Unicode 15 table 3-7, one row per lead byte range. */
static size_t ref_char(const uint8_t *d, size_t n, size_t *units) {
    static const struct {
        uint8_t lead_lo, lead_hi, len, lo, hi; /* second byte's range; further bytes 80..BF */
    } rows[] = {
        {0x00, 0x7F, 1, 0, 0},       {0xC2, 0xDF, 2, 0x80, 0xBF}, {0xE0, 0xE0, 3, 0xA0, 0xBF},
        {0xE1, 0xEC, 3, 0x80, 0xBF}, {0xED, 0xED, 3, 0x80, 0x9F}, {0xEE, 0xEF, 3, 0x80, 0xBF},
        {0xF0, 0xF0, 4, 0x90, 0xBF}, {0xF1, 0xF3, 4, 0x80, 0xBF}, {0xF4, 0xF4, 4, 0x80, 0x8F},
    };
    *units = 0;
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        if (d[0] < rows[r].lead_lo || d[0] > rows[r].lead_hi) continue;
        size_t k = 1;
        for (; k < rows[r].len && k < n; k++) {
            uint8_t lo = k == 1 ? rows[r].lo : 0x80, hi = k == 1 ? rows[r].hi : 0xBF;
            if (d[k] < lo || d[k] > hi) break;
        }
        if (k == rows[r].len) *units = k == 4 ? 2 : 1;
        return k;
    }
    return 1;
}

/* The frames NestJS reads from d[0..n) in one read, for streams whose prefixes are plain digits (1 to 6);
 * appends them to out as on_frame does. Returns 1 when the whole stream was understood (then nestc must
 * read exactly these frames), 0 when it met something else (then nestc's frames must begin with them). */
static int ref_frames(const uint8_t *d, size_t n, seen *out) {
    /* StringDecoder keeps back a short tail that starts with 110xxxxx, 1110xxxx or 11110xxx */
    size_t m = n;
    for (size_t b = 1; b <= 3 && b <= n; b++) {
        uint8_t c = d[n - b];
        if ((c & 0xC0) == 0x80) continue;
        size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len > b) m = n - b;
        break;
    }
    size_t i = 0;
    while (i < m) {
        size_t j = i, v = 0;
        while (j < m && j - i < 6 && d[j] >= '0' && d[j] <= '9') v = v * 10 + (size_t)(d[j++] - '0');
        if (j == m) return 1; /* a prefix still arriving */
        if (j == i || d[j] != '#' || v == 0) return 0;
        size_t k = ++j, units = 0;
        nc_buf text = NC_BUF_INIT;
        while (k < m && units < v) {
            size_t u, len = ref_char(d + k, m - k, &u);
            if (units + (u ? u : 1) > v) { /* the length ends inside a surrogate pair */
                nc_buf_free(&text);
                return 0;
            }
            units += u ? u : 1;
            nc_buf_append(&text, u ? (const char *)d + k : "\xEF\xBF\xBD", u ? len : 3);
            k += len;
        }
        if (units < v) {
            nc_buf_free(&text);
            return 1; /* a body still arriving */
        }
        on_frame(out, text.data, text.len);
        nc_buf_free(&text);
        i = k;
    }
    return 1;
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
    /* what NestJS reads: these frames, and nothing more when the reference understood the whole stream */
    seen r = {NC_BUF_INIT, 0};
    int whole = ref_frames(data + 1, size - 1, &r);
    if (whole ? (ra != 0 || !same(&a, &r))
              : (a.n < r.n || a.all.len < r.all.len ||
                 (r.all.len && memcmp(a.all.data, r.all.data, r.all.len))))
        abort();
    nc_buf_free(&r.all);
    nc_buf_free(&a.all);
    nc_buf_free(&b.all);
    nc_buf_free(&c.all);
    return 0;
}
