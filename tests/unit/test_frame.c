/* Unit tests for the NestJS TCP frame codec (src/codec/frame.[ch]); vectors in tests/vectors/tcp/. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/frame.h"
#include "nestc/error.h"

#ifndef NESTC_VECTORS_DIR
#error "NESTC_VECTORS_DIR must point at tests/vectors"
#endif

/* ---------------------------------------------------------------------------------------------------- */
/* Helpers                                                                                               */

/* Frames collected by the callback. Also records whether each frame's text pointed into the chunk being
 * fed (zero copy) and can stop the feed at a chosen frame. */
typedef struct frames {
    char **v;
    size_t *len;
    size_t n, cap;
    const char *chunk; /* chunk being fed, for the zero-copy check */
    size_t chunk_len;
    size_t in_chunk; /* frames whose text lay inside `chunk` */
    size_t stop_at;  /* 1-based frame number at which to return stop_rc; 0 = never */
    int stop_rc;
} frames;

static int on_frame(void *user, const char *json, size_t len) {
    frames *fr = user;
    assert_true(len >= 1);
    if (fr->n == fr->cap) {
        fr->cap = fr->cap ? fr->cap * 2 : 16;
        fr->v = realloc(fr->v, fr->cap * sizeof *fr->v);
        fr->len = realloc(fr->len, fr->cap * sizeof *fr->len);
        assert_non_null(fr->v);
        assert_non_null(fr->len);
    }
    fr->v[fr->n] = malloc(len + 1);
    assert_non_null(fr->v[fr->n]);
    memcpy(fr->v[fr->n], json, len);
    fr->v[fr->n][len] = '\0';
    fr->len[fr->n] = len;
    fr->n++;
    if (fr->chunk && json >= fr->chunk && json + len <= fr->chunk + fr->chunk_len) fr->in_chunk++;
    if (fr->stop_at && fr->n == fr->stop_at) return fr->stop_rc;
    return 0;
}

static void frames_free(frames *fr) {
    for (size_t i = 0; i < fr->n; i++) free(fr->v[i]);
    free(fr->v);
    free(fr->len);
    memset(fr, 0, sizeof *fr);
}

static int feed(nc_framer *f, frames *fr, const char *d, size_t n) {
    fr->chunk = d;
    fr->chunk_len = n;
    int rc = nc_framer_feed(f, d, n, on_frame, fr);
    fr->chunk = NULL;
    return rc;
}

static int feed_str(nc_framer *f, frames *fr, const char *s) {
    return feed(f, fr, s, strlen(s));
}

/* Feeds d[0..n) in chunks of `step` bytes; returns the first nonzero result. Each chunk is copied into
 * its own allocation so that ASan catches any read past a chunk. */
static int feed_steps(nc_framer *f, frames *fr, const char *d, size_t n, size_t step) {
    for (size_t i = 0; i < n; i += step) {
        size_t k = n - i < step ? n - i : step;
        char *c = malloc(k);
        assert_non_null(c);
        memcpy(c, d + i, k);
        int rc = feed(f, fr, c, k);
        free(c);
        if (rc) return rc;
    }
    return 0;
}

/* Feeds d[0..n) cut at the sorted offsets cuts[0..ncuts). */
static int feed_cuts(nc_framer *f, frames *fr, const char *d, size_t n, const size_t *cuts, size_t ncuts) {
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        char *c = malloc(to - at + 1);
        assert_non_null(c);
        memcpy(c, d + at, to - at);
        int rc = feed(f, fr, c, to - at);
        free(c);
        if (rc) return rc;
        at = to;
    }
    return 0;
}

static uint64_t rnd(uint64_t *s) { /* xorshift64*, deterministic */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static char *read_vector(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tcp/%s", NESTC_VECTORS_DIR, name);
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, fp), (size_t)sz);
    b[sz] = '\0';
    fclose(fp);
    *len = (size_t)sz;
    return b;
}

/* The frame lines of session.txt for one direction ("C>S " or "S>C "), in order. */
typedef struct lines {
    char *v[64];
    size_t n;
    char *text;
} lines;

static void session_lines(lines *l, const char *dir) {
    size_t len;
    memset(l, 0, sizeof *l);
    l->text = read_vector("session.txt", &len);
    for (char *s = l->text; s && *s;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        if (strncmp(s, dir, 4) == 0) {
            assert_true(l->n < 64);
            l->v[l->n++] = s + 4;
        }
        s = nl ? nl + 1 : NULL;
    }
    assert_true(l->n > 0);
}

/* Every collected frame, re-framed with its UTF-16 length, must equal the vector line. */
static void check_session(const frames *fr, const lines *l) {
    assert_int_equal(fr->n, l->n);
    for (size_t i = 0; i < l->n; i++) {
        char pre[24];
        size_t pl = nc_frame_prefix(pre, nc_utf16_units(fr->v[i], fr->len[i]));
        assert_int_equal(pl + fr->len[i], strlen(l->v[i]));
        assert_memory_equal(pre, l->v[i], pl);
        assert_string_equal(fr->v[i], l->v[i] + pl);
    }
}

static const char *const session_dirs[2][2] = {{"C>S ", "session.client-to-server.bin"},
                                               {"S>C ", "session.server-to-client.bin"}};

/* Reference count: one unit per character, two for a 4-byte one. */
static size_t ref_units(const char *s, size_t n) {
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) != 0x80) u += c >= 0xF0 ? 2 : 1;
    }
    return u;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static uint32_t rand_cp(uint64_t *s) {
    switch (rnd(s) % 6) {
    case 0:
    case 1:
    case 2:
        return 1 + (uint32_t)(rnd(s) % 0x7F);
    case 3:
        return 0x80 + (uint32_t)(rnd(s) % (0x800 - 0x80));
    case 4: {
        uint32_t cp = 0x800 + (uint32_t)(rnd(s) % (0x10000 - 0x800 - 0x800));
        return cp >= 0xD800 ? cp + 0x800 : cp; /* skip the surrogates */
    }
    default:
        return 0x10000 + (uint32_t)(rnd(s) % 0x100000);
    }
}

/* Random valid UTF-8 text of `chars` characters into o (room for 4 * chars); returns bytes, *units set. */
static size_t rand_text(uint64_t *s, char *o, size_t chars, size_t *units) {
    size_t n = 0, u = 0;
    for (size_t i = 0; i < chars; i++) {
        uint32_t cp = rand_cp(s);
        u += cp >= 0x10000 ? 2 : 1;
        n += put_utf8(o + n, cp);
    }
    *units = u;
    return n;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Session vectors                                                                                       */

static void test_limits_default(void **state) {
    (void)state;
    nc_framer_limits l;
    nc_framer_limits_default(&l);
    assert_int_equal(l.max_buffer_units, 134217728);
    assert_int_equal(l.max_prefix_bytes, 64);
    nc_framer f;
    nc_framer_init(&f, NULL);
    assert_int_equal(nc_framer_pending(&f), 0);
    assert_string_equal(f.error, "");
    nc_framer_free(&f);
}

static void test_session_whole(void **state) {
    (void)state;
    for (int d = 0; d < 2; d++) {
        lines l;
        session_lines(&l, session_dirs[d][0]);
        size_t n;
        char *bin = read_vector(session_dirs[d][1], &n);
        nc_framer f;
        frames fr = {0};
        nc_framer_init(&f, NULL);
        assert_int_equal(feed(&f, &fr, bin, n), 0);
        assert_int_equal(nc_framer_pending(&f), 0);
        check_session(&fr, &l);
        assert_int_equal(fr.in_chunk, fr.n); /* all zero copy */
        frames_free(&fr);
        nc_framer_free(&f);
        free(bin);
        free(l.text);
    }
}

static void test_session_split_sizes(void **state) {
    (void)state;
    for (int d = 0; d < 2; d++) {
        lines l;
        session_lines(&l, session_dirs[d][0]);
        size_t n;
        char *bin = read_vector(session_dirs[d][1], &n);
        for (size_t step = 1; step <= 64; step++) {
            nc_framer f;
            frames fr = {0};
            nc_framer_init(&f, NULL);
            assert_int_equal(feed_steps(&f, &fr, bin, n, step), 0);
            assert_int_equal(nc_framer_pending(&f), 0);
            check_session(&fr, &l);
            frames_free(&fr);
            nc_framer_free(&f);
        }
        free(bin);
        free(l.text);
    }
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void test_session_random_splits(void **state) {
    (void)state;
    uint64_t seed = UINT64_C(0x9E3779B97F4A7C15);
    for (int d = 0; d < 2; d++) {
        lines l;
        session_lines(&l, session_dirs[d][0]);
        size_t n;
        char *bin = read_vector(session_dirs[d][1], &n);
        for (int iter = 0; iter < 500; iter++) {
            size_t cuts[40];
            size_t nc = 1 + rnd(&seed) % 40;
            for (size_t i = 0; i < nc; i++) cuts[i] = rnd(&seed) % (n + 1);
            qsort(cuts, nc, sizeof cuts[0], cmp_size);
            nc_framer f;
            frames fr = {0};
            nc_framer_init(&f, NULL);
            assert_int_equal(feed_cuts(&f, &fr, bin, n, cuts, nc), 0);
            check_session(&fr, &l);
            frames_free(&fr);
            nc_framer_free(&f);
        }
        free(bin);
        free(l.text);
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* unicode.txt                                                                                           */

typedef struct uvec {
    char text[256]; /* frame text */
    unsigned prefix, units, bytes, frame_bytes;
    unsigned char hex[256];
    size_t nhex;
} uvec;

static size_t unicode_vectors(uvec *v, size_t max) {
    size_t len, n = 0;
    char *t = read_vector("unicode.txt", &len);
    for (char *s = t; s && *s;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = '\0';
        char *p;
        if ((p = strstr(s, "text : ")) != NULL) {
            assert_true(n < max);
            memset(&v[n], 0, sizeof v[n]);
            snprintf(v[n].text, sizeof v[n].text, "%s", p + 7);
            n++;
        } else if ((p = strstr(s, "prefix:")) != NULL) {
            assert_true(n > 0);
            assert_int_equal(
                sscanf(p, "prefix: %u JSON UTF-16 length: %u JSON UTF-8 bytes: %u frame bytes: %u",
                       &v[n - 1].prefix, &v[n - 1].units, &v[n - 1].bytes, &v[n - 1].frame_bytes),
                4);
        } else if ((p = strstr(s, "hex   : ")) != NULL) {
            assert_true(n > 0);
            p += 8;
            unsigned b;
            int used;
            while (sscanf(p, "%2x%n", &b, &used) == 1) {
                v[n - 1].hex[v[n - 1].nhex++] = (unsigned char)b;
                p += used;
                while (*p == ' ') p++;
            }
        }
        s = nl ? nl + 1 : NULL;
    }
    free(t);
    return n;
}

static void test_unicode_vectors(void **state) {
    (void)state;
    uvec v[4];
    size_t n = unicode_vectors(v, 4);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].prefix, 65);
    assert_int_equal(v[1].prefix, 70);
    for (size_t i = 0; i < n; i++) {
        /* the hex dump is the text, byte for byte */
        assert_int_equal(v[i].nhex, strlen(v[i].text));
        assert_memory_equal(v[i].hex, v[i].text, v[i].nhex);
        assert_int_equal(v[i].nhex, v[i].frame_bytes);

        nc_framer f;
        frames fr = {0};
        nc_framer_init(&f, NULL);
        assert_int_equal(feed(&f, &fr, (const char *)v[i].hex, v[i].nhex), 0);
        assert_int_equal(fr.n, 1);
        assert_int_equal(fr.len[0], v[i].bytes);
        assert_int_equal(nc_utf16_units(fr.v[0], fr.len[0]), v[i].units);
        assert_int_equal(v[i].units, v[i].prefix);
        assert_string_equal(fr.v[0], strchr(v[i].text, '#') + 1);

        /* the writer reproduces the wire bytes */
        nc_buf b = NC_BUF_INIT;
        assert_int_equal(nc_frame_append(&b, fr.v[0], fr.len[0]), 0);
        assert_int_equal(b.len, v[i].nhex);
        assert_memory_equal(b.data, v[i].hex, b.len);
        nc_buf_free(&b);
        frames_free(&fr);
        nc_framer_free(&f);
    }
}

/* Both unicode frames back to back, cut at every pair of points (so inside é and inside every byte of the
 * 4-byte emoji, in two and three pieces). */
static void test_unicode_every_split(void **state) {
    (void)state;
    uvec v[4];
    assert_int_equal(unicode_vectors(v, 4), 2);
    char stream[512];
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        memcpy(stream + n, v[i].hex, v[i].nhex);
        n += v[i].nhex;
    }
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            size_t cuts[2] = {a, b};
            nc_framer f;
            frames fr = {0};
            nc_framer_init(&f, NULL);
            assert_int_equal(feed_cuts(&f, &fr, stream, n, cuts, 2), 0);
            assert_int_equal(fr.n, 2);
            for (int i = 0; i < 2; i++) assert_string_equal(fr.v[i], strchr(v[i].text, '#') + 1);
            frames_free(&fr);
            nc_framer_free(&f);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------- */
/* Volume, zero copy                                                                                     */

static void test_many_frames_one_feed(void **state) {
    (void)state;
    nc_buf b = NC_BUF_INIT;
    char json[96];
    for (int i = 0; i < 12000; i++) {
        int k = snprintf(json, sizeof json, "{\"pattern\":\"p\",\"data\":%d,\"id\":\"%d\"}", i, i);
        assert_int_equal(nc_frame_append(&b, json, (size_t)k), 0);
    }
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed(&f, &fr, b.data, b.len), 0);
    assert_int_equal(fr.n, 12000);
    assert_int_equal(fr.in_chunk, 12000);
    for (int i = 0; i < 12000; i++) {
        snprintf(json, sizeof json, "{\"pattern\":\"p\",\"data\":%d,\"id\":\"%d\"}", i, i);
        assert_string_equal(fr.v[i], json);
    }
    assert_int_equal(nc_framer_pending(&f), 0);
    frames_free(&fr);
    nc_framer_free(&f);
    nc_buf_free(&b);
}

static void test_zero_copy(void **state) {
    (void)state;
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    /* whole frames in one chunk: pointers into it */
    assert_int_equal(feed_str(&f, &fr, "2#{}3#[1]"), 0);
    assert_int_equal(fr.n, 2);
    assert_int_equal(fr.in_chunk, 2);
    /* prefix split from the body: the body is still whole in the second chunk */
    assert_int_equal(feed_str(&f, &fr, "2#"), 0);
    assert_int_equal(feed_str(&f, &fr, "{}"), 0);
    assert_int_equal(fr.n, 3);
    assert_int_equal(fr.in_chunk, 3);
    /* body split: assembled in the framer's buffer */
    assert_int_equal(feed_str(&f, &fr, "2#{"), 0);
    assert_int_equal(feed_str(&f, &fr, "}"), 0);
    assert_int_equal(fr.n, 4);
    assert_int_equal(fr.in_chunk, 3);
    assert_string_equal(fr.v[3], "{}");
    frames_free(&fr);
    nc_framer_free(&f);
}

/* ---------------------------------------------------------------------------------------------------- */
/* framing-probes.txt                                                                                    */

static void test_probe_pipelined(void **state) {
    (void)state;
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    const char *s = "41#{\"response\":1,\"isDisposed\":true,\"id\":\"a\"}"
                    "41#{\"response\":2,\"isDisposed\":true,\"id\":\"b\"}";
    assert_int_equal(feed_str(&f, &fr, s), 0);
    assert_int_equal(fr.n, 2);
    assert_string_equal(fr.v[0], "{\"response\":1,\"isDisposed\":true,\"id\":\"a\"}");
    assert_string_equal(fr.v[1], "{\"response\":2,\"isDisposed\":true,\"id\":\"b\"}");
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_probe_split_mid_utf8(void **state) {
    (void)state;
    /* 45#{"response":"é😀",...}: split inside é and inside the emoji */
    const char *s = "45#{\"response\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"isDisposed\":true,\"id\":\"u\"}";
    size_t n = strlen(s);
    const char *e = strchr(s, '\xc3');
    size_t cuts[3] = {(size_t)(e - s) + 1, (size_t)(e - s) + 3, (size_t)(e - s) + 5};
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_cuts(&f, &fr, s, n, cuts, 3), 0);
    assert_int_equal(fr.n, 1);
    assert_string_equal(fr.v[0], s + 3);
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_probe_lenient_prefix(void **state) {
    (void)state;
    char s[128] = "  +63xyz#{\"pattern\":\"sum\",\"data\":[1,2],\"id\":\"lenient\"}";
    size_t body = strlen(s) - 9;
    while (body < 63) s[9 + body++] = ' '; /* JSON padded with trailing spaces to 63 units, as in the probe */
    s[9 + body] = '\0';
    strcat(s, "2#{}");
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, s), 0);
    assert_int_equal(fr.n, 2);
    assert_int_equal(fr.len[0], 63);
    assert_memory_equal(fr.v[0], "{\"pattern\":\"sum\"", 16);
    assert_string_equal(fr.v[1], "{}");
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_probe_leading_whitespace(void **state) {
    (void)state;
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    const char *json = "{\"pattern\":\"sum\",\"data\":[1],\"id\":\"ws\"}    "; /* 42 units, as probed */
    char s[128];
    snprintf(s, sizeof s, "\n%zu#%s", strlen(json), json);
    assert_memory_equal(s, "\n42#", 4);
    assert_int_equal(feed_str(&f, &fr, s), 0);
    assert_int_equal(fr.n, 1);
    assert_string_equal(fr.v[0], json);
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_probe_corrupt_length(void **state) {
    (void)state;
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, "abc#{}2#{}"), NC_EPROTO);
    assert_string_equal(f.error, "Corrupted length value \"abc\" supplied in a packet");
    assert_int_equal(fr.n, 0);
    assert_int_equal(nc_framer_pending(&f), 0);
    /* the garbage frame seen by a Nest client (client-behaviour.txt) */
    nc_framer_reset(&f);
    assert_int_equal(feed_str(&f, &fr, "xx#{}"), NC_EPROTO);
    assert_string_equal(f.error, "Corrupted length value \"xx\" supplied in a packet");
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_probe_zero_negative_length(void **state) {
    (void)state;
    static const char *const cases[][2] = {{"0#2#{}", "0"},
                                           {"-3#abc2#{}", "-3"},
                                           {"-0#", "-0"},
                                           {"+0#", "+0"},
                                           {"0x10#", "0x10"},
                                           {"000#", "000"},
                                           {"-99999999999999999999999999#", "-99999999999999999999999999"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nc_framer f;
        frames fr = {0};
        char want[200];
        nc_framer_init(&f, NULL);
        assert_int_equal(feed_str(&f, &fr, cases[i][0]), NC_EPROTO);
        snprintf(
            want, sizeof want,
            "Invalid length value \"%s\" supplied in a packet (a packet holds at least 1 unit of JSON text)",
            cases[i][1]);
        assert_string_equal(f.error, want);
        assert_int_equal(fr.n, 0);
        frames_free(&fr);
        nc_framer_free(&f);
    }
}

/* Byte count instead of UTF-16 units: the frame swallows the start of the next one, then the rest of the
 * next one is read as a prefix and fails (Nest closes the connection). */
static void test_probe_byte_count_prefix(void **state) {
    (void)state;
    const char *json = "{\"pattern\":\"echo\",\"data\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"id\":\"u\"}";
    const char *next = "{\"pattern\":\"echo\",\"data\":\"plain ascii payload here\",\"id\":\"next-frame\"}";
    size_t jb = strlen(json);
    assert_int_equal(nc_utf16_units(json, jb), jb - 3);
    char s[512];
    int k = snprintf(s, sizeof s, "%zu#%s%zu#%s", jb, json, strlen(next), next);
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed(&f, &fr, s, (size_t)k), NC_EPROTO);
    assert_int_equal(fr.n, 1);
    assert_int_equal(fr.len[0], jb + 3);
    assert_memory_equal(fr.v[0], json, jb);
    assert_string_equal(fr.v[0] + jb, "70#"); /* the next frame's prefix */
    assert_memory_equal(f.error, "Corrupted length value \"{\\\"pattern\\\"", 34);
    frames_free(&fr);
    nc_framer_free(&f);
}

/* JSON validity is the next layer's business: the framer delivers these. */
static void test_probe_bodies_passed_on(void **state) {
    (void)state;
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, "5#{abc}4#null2#{}"), 0);
    assert_int_equal(fr.n, 3);
    assert_string_equal(fr.v[0], "{abc}");
    assert_string_equal(fr.v[1], "null");
    assert_string_equal(fr.v[2], "{}");
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_probe_incomplete_pending(void **state) {
    (void)state;
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, "50#{\"pattern\""), 0);
    assert_int_equal(fr.n, 0);
    assert_int_equal(nc_framer_pending(&f), 13);
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_probe_oversize(void **state) {
    (void)state;
    nc_framer_limits lim = {200, 0};
    char body[400];
    memset(body, 'x', 330);
    body[0] = '"';
    body[329] = '"';
    char s[512];
    int k = snprintf(s, sizeof s, "330#%.*s", 330, body);
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, &lim);
    assert_int_equal(feed(&f, &fr, s, (size_t)k), NC_ETOOBIG);
    assert_string_equal(f.error, "The packet length (334) exceeds the maximum allowed length");
    /* rejected as soon as the '#' arrives, without waiting for the body */
    nc_framer_reset(&f);
    assert_int_equal(feed_str(&f, &fr, "33"), 0);
    assert_int_equal(feed_str(&f, &fr, "0#"), NC_ETOOBIG);
    assert_int_equal(nc_framer_pending(&f), 0);
    assert_int_equal(fr.n, 0);
    frames_free(&fr);
    nc_framer_free(&f);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Limits                                                                                                */

static void test_oversize_boundary(void **state) {
    (void)state;
    nc_framer_limits lim = {200, 0};
    char s[512];
    /* "196#" is 4 units: 4 + 196 = 200 is the most a frame may hold */
    int k = snprintf(s, sizeof s, "196#\"%0194d\"", 0);
    assert_int_equal(k, 200);
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, &lim);
    assert_int_equal(feed(&f, &fr, s, (size_t)k), 0);
    assert_int_equal(fr.n, 1);
    assert_int_equal(feed_str(&f, &fr, "197#"), NC_ETOOBIG);
    assert_string_equal(f.error, "The packet length (201) exceeds the maximum allowed length");
    frames_free(&fr);
    nc_framer_free(&f);

    /* defaults: 134217718 + "134217718#" (10 units) = 134217728 is accepted and allocates nothing big */
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, "134217718#{"), 0);
    assert_int_equal(nc_framer_pending(&f), 11);
    assert_true(f.buf.cap < 4096);
    nc_framer_reset(&f);
    assert_int_equal(feed_str(&f, &fr, "134217719#"), NC_ETOOBIG);
    assert_string_equal(f.error, "The packet length (134217729) exceeds the maximum allowed length");
    nc_framer_reset(&f);
    assert_int_equal(feed_str(&f, &fr, "99999999999999999999999999#"), NC_ETOOBIG);
    assert_string_equal(f.error,
                        "The packet length (99999999999999999999999999) exceeds the maximum allowed length");
    frames_free(&fr);
    nc_framer_free(&f);
}

/* A prefix still waiting for its '#' counts against the limit too (limit below the prefix limit). */
static void test_oversize_buffered_prefix(void **state) {
    (void)state;
    nc_framer_limits lim = {200, 1000};
    char sp[256];
    memset(sp, ' ', sizeof sp);
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        nc_framer f;
        frames fr = {0};
        nc_framer_init(&f, &lim);
        int rc = bytewise ? feed_steps(&f, &fr, sp, 200, 1) : feed(&f, &fr, sp, 200);
        assert_int_equal(rc, 0);
        assert_int_equal(nc_framer_pending(&f), 200);
        assert_int_equal(feed(&f, &fr, sp, 1), NC_ETOOBIG);
        assert_string_equal(f.error, "The packet length (201) exceeds the maximum allowed length");
        frames_free(&fr);
        nc_framer_free(&f);
    }
    /* with its '#', a 200-unit prefix leaves no room even for the '#' */
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, &lim);
    assert_int_equal(feed(&f, &fr, sp, 199), 0);
    assert_int_equal(feed_str(&f, &fr, "1#"), NC_ETOOBIG);
    assert_string_equal(f.error, "The packet length (201) exceeds the maximum allowed length");
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_overlong_prefix(void **state) {
    (void)state;
    char s[128];
    /* 64 bytes before '#' are accepted */
    memset(s, ' ', 61);
    memcpy(s + 61, "2xy#{}", 7);
    assert_int_equal(strchr(s, '#') - s, 64);
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, s), 0);
    assert_int_equal(fr.n, 1);
    assert_string_equal(fr.v[0], "{}");
    /* 65 are not, whether or not a '#' follows, whole or byte by byte */
    memset(s, '1', 65);
    s[65] = '\0';
    for (int mode = 0; mode < 3; mode++) {
        nc_framer_reset(&f);
        int rc = mode == 0   ? feed_str(&f, &fr, s)
                 : mode == 1 ? feed_steps(&f, &fr, s, 65, 1)
                             : feed_steps(&f, &fr,
                                          "1111111111111111111111111111111111111111111111111111111111111111"
                                          "1#{}",
                                          68, 7);
        assert_int_equal(rc, NC_EPROTO);
        assert_memory_equal(f.error, "Corrupted length value \"1111", 28);
    }
    /* the message is shortened, not overflowed */
    nc_framer_limits lim = {0, 1000};
    nc_framer_free(&f);
    nc_framer_init(&f, &lim);
    char big[1100];
    memset(big, 'z', 1001);
    assert_int_equal(feed(&f, &fr, big, 1001), NC_EPROTO);
    assert_true(strlen(f.error) < sizeof f.error);
    assert_non_null(strstr(f.error, "zzz...\" supplied in a packet"));
    frames_free(&fr);
    nc_framer_free(&f);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Prefix grammar (parseInt)                                                                             */

/* Feeds `in` whole and byte by byte; expects one frame `frame`, or (frame NULL) Corrupted length. */
static void check_prefix_case(const char *in, const char *frame) {
    for (size_t step = 1; step <= 2; step++) {
        nc_framer f;
        frames fr = {0};
        nc_framer_init(&f, NULL);
        int rc = feed_steps(&f, &fr, in, strlen(in), step == 1 ? 1 : 100);
        if (frame) {
            assert_int_equal(rc, 0);
            assert_int_equal(fr.n, 1);
            assert_string_equal(fr.v[0], frame);
            assert_int_equal(nc_framer_pending(&f), 0);
        } else {
            assert_int_equal(rc, NC_EPROTO);
            assert_memory_equal(f.error, "Corrupted length value \"", 24);
            assert_int_equal(fr.n, 0);
        }
        frames_free(&fr);
        nc_framer_free(&f);
    }
}

static void test_prefix_parseint(void **state) {
    (void)state;
    /* JavaScript white space (StrWhiteSpaceChar) before the digits is skipped ... */
    static const char *const spaces[] = {
        "\t\v\f\r\n ",
        "\xc2\xa0" /* U+00A0 */,
        "\xe1\x9a\x80" /* U+1680 */,
        "\xe2\x80\x80" /* U+2000 */,
        "\xe2\x80\x8a" /* U+200A */,
        "\xe2\x80\xa8\xe2\x80\xa9" /* U+2028 U+2029 */,
        "\xe2\x80\xaf" /* U+202F */,
        "\xe2\x81\x9f" /* U+205F */,
        "\xe3\x80\x80" /* U+3000 */,
        "\xef\xbb\xbf" /* U+FEFF */,
    };
    /* ... other characters are not */
    static const char *const not_spaces[] = {
        "\xe2\x80\x8b" /* U+200B */,
        "\xc2\xa1" /* U+00A1 */,
        "\xe2\x80\x8c" /* U+200C */,
        "\xff",
        "\xc2",
        "x",
        "+-",
        "--",
        ".",
        "Infinity",
        "x0",
    };
    char in[64];
    for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++) {
        snprintf(in, sizeof in, "%s2#{}", spaces[i]);
        check_prefix_case(in, "{}");
        snprintf(in, sizeof in, "%s%s-0#{}", spaces[i], spaces[i]);
        nc_framer f;
        frames fr = {0};
        nc_framer_init(&f, NULL);
        assert_int_equal(feed_str(&f, &fr, in), NC_EPROTO); /* white space, sign, zero: Invalid length */
        assert_memory_equal(f.error, "Invalid length value", 20);
        frames_free(&fr);
        nc_framer_free(&f);
    }
    for (size_t i = 0; i < sizeof not_spaces / sizeof not_spaces[0]; i++) {
        snprintf(in, sizeof in, "%s2#{}", not_spaces[i]);
        check_prefix_case(in, NULL);
    }
    /* sign, then digits up to the first non-digit; the rest is ignored */
    check_prefix_case("+2#{}", "{}");
    check_prefix_case("00002#{}", "{}");
    check_prefix_case("2.5#{}", "{}");
    check_prefix_case("1e3#7", "7");
    check_prefix_case("12 34#[1,2,3,4,56]", "[1,2,3,4,56]");
    check_prefix_case("2\xff\xfe#{}", "{}"); /* even invalid UTF-8 after the digits */
    check_prefix_case("+#{}", NULL);
    check_prefix_case("-#{}", NULL);
    check_prefix_case(" #{}", NULL);
    check_prefix_case("#{}", NULL);
}

static void test_error_text_escaped(void **state) {
    (void)state;
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, "\x01\"\\\xc3\xa9\t#"), NC_EPROTO);
    assert_string_equal(f.error,
                        "Corrupted length value \"\\x01\\\"\\\\\\xc3\\xa9\\t\" supplied in a packet");
    frames_free(&fr);
    nc_framer_free(&f);
}

/* ---------------------------------------------------------------------------------------------------- */
/* UTF-8 in bodies                                                                                       */

#include "frame_lossy_vectors.h"

/* The frames of one vector, and how many had completed after each chunk, as NestJS frames them. */
static void check_lossy_frames(const struct lossy_vec *v, const frames *fr) {
    size_t want = 0;
    while (want < 3 && v->frames[want]) want++;
    assert_int_equal(fr->n, want);
    for (size_t i = 0; i < want; i++) {
        assert_int_equal(fr->len[i], v->flen[i]);
        assert_memory_equal(fr->v[i], v->frames[i], v->flen[i]);
        assert_int_equal(nc_utf8_validate(fr->v[i], fr->len[i], NULL), 0);
    }
}

/* Ill-formed UTF-8 in a body is read as NestJS reads it (Node's StringDecoder, U+FFFD per maximal
 * ill-formed subpart, each 1 unit), whole, byte by byte and split at every byte: the frames, their text,
 * and when each completes (bytes StringDecoder keeps back at the end of a chunk, such as E0 80, wait) are
 * those NestJS's own JsonSocket gives (gen_frame_lossy.mjs). */
static void test_invalid_utf8(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof lossy_vecs / sizeof lossy_vecs[0]; i++) {
        const struct lossy_vec *v = &lossy_vecs[i];
        nc_framer f;
        frames fr = {0};
        nc_framer_init(&f, NULL);
        assert_int_equal(feed(&f, &fr, v->in, v->len), 0);
        check_lossy_frames(v, &fr);
        frames_free(&fr);
        nc_framer_free(&f);

        nc_framer_init(&f, NULL);
        for (size_t k = 0; k < v->len; k++) {
            char c = v->in[k];
            assert_int_equal(feed(&f, &fr, &c, 1), 0);
            assert_int_equal(fr.n, (size_t)(v->per_byte[k] - '0'));
        }
        check_lossy_frames(v, &fr);
        frames_free(&fr);
        nc_framer_free(&f);

        for (size_t k = 1; k < v->len; k++) {
            char *a = malloc(k), *b = malloc(v->len - k); /* exact sizes, for ASan */
            assert_non_null(a);
            assert_non_null(b);
            memcpy(a, v->in, k);
            memcpy(b, v->in + k, v->len - k);
            nc_framer_init(&f, NULL);
            assert_int_equal(feed(&f, &fr, a, k), 0);
            assert_int_equal(fr.n, (size_t)(v->split[k - 1] - '0'));
            assert_int_equal(feed(&f, &fr, b, v->len - k), 0);
            check_lossy_frames(v, &fr);
            frames_free(&fr);
            nc_framer_free(&f);
            free(a);
            free(b);
        }
    }
    /* a sequence cut by the end of the chunk is not an error yet */
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, "3#\"\xe2\x82"), 0);
    assert_int_equal(nc_framer_pending(&f), 5);
    assert_int_equal(feed_str(&f, &fr, "\xac\"2#{}"), 0);
    assert_int_equal(fr.n, 2);
    assert_string_equal(fr.v[0], "\"\xe2\x82\xac\"");
    frames_free(&fr);
    /* nor when StringDecoder keeps it back although it can no longer be valid: E0 80 waits, counted as 2
     * units when the next byte arrives */
    assert_int_equal(feed_str(&f, &fr, "4#\"x\xe0\x80"), 0);
    assert_int_equal(fr.n, 0);
    assert_int_equal(nc_framer_pending(&f), 6);
    assert_int_equal(feed_str(&f, &fr, "2#{}"), 0);
    assert_int_equal(fr.n, 2);
    assert_string_equal(fr.v[0], "\"x\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(fr.v[1], "{}");
    frames_free(&fr);
    /* a 4-byte lead where one unit is left: 2 units if valid (the length ends inside it), 1 if not */
    assert_int_equal(feed_str(&f, &fr, "2#\"\xf0\x9f\x98\x41"), 0);
    assert_int_equal(fr.n, 1);
    assert_string_equal(fr.v[0], "\"\xef\xbf\xbd");
    frames_free(&fr);
    nc_framer_reset(&f);
    assert_int_equal(feed_str(&f, &fr, "2#\"\xf0\x9f\x98\x80"), NC_EPROTO);
    assert_string_equal(f.error, "The packet length (2) ends inside a character at byte 1");
    frames_free(&fr);
    nc_framer_free(&f);

    static const struct {
        const char *bytes;
        size_t at; /* offset of the first ill-formed sequence */
    } bad[] = {
        {"\"x\x80", 2},
        {"\"x\xc0\xaf", 2},
        {"\"x\xe0\x9f\xbf", 2},
        {"\"x\xed\xa0\x80", 2},
        {"\"x\xf4\x90\x80", 2},
        {"\"x\xc3\xc3\xa9", 2},
        {"\"x\xc3\xa9\x80", 4},
        {"\"x\xf8", 2},
        {"\"x\xe2\x82\x41", 2},
        {"\"x\xff", 2},
        {"ab\xf0\x9f\x98\x80\xe2\x82\xac\xed\xa0\x80", 9},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t at;
        assert_int_equal(nc_utf8_validate(bad[i].bytes, strlen(bad[i].bytes), &at), NC_EPROTO);
        assert_int_equal(at, bad[i].at);
    }
}

static void test_valid_utf8_edges(void **state) {
    (void)state;
    /* U+0080 U+07FF U+0800 U+D7FF U+E000 U+FFFD U+FFFF U+10000 U+10FFFF */
    const char *json = "[\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd\xef\xbf\xbf"
                       "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"]";
    size_t jl = strlen(json);
    assert_int_equal(nc_utf16_units(json, jl), 4 + 7 + 4);
    assert_int_equal(nc_utf8_validate(json, jl, NULL), 0);
    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_frame_append(&b, json, jl), 0);
    assert_memory_equal(b.data, "15#", 3);
    for (size_t step = 1; step <= b.len; step++) {
        nc_framer f;
        frames fr = {0};
        nc_framer_init(&f, NULL);
        assert_int_equal(feed_steps(&f, &fr, b.data, b.len, step), 0);
        assert_int_equal(fr.n, 1);
        assert_string_equal(fr.v[0], json);
        frames_free(&fr);
        nc_framer_free(&f);
    }
    nc_buf_free(&b);
}

/* A declared length that ends between the two units of a supplementary character. */
static void test_surrogate_split(void **state) {
    (void)state;
    static const struct {
        const char *in;
        const char *msg;
    } cases[] = {
        {"1#\xf0\x9f\x98\x80", "The packet length (1) ends inside a character at byte 0"},
        {"3#ab\xf0\x9f\x98\x80", "The packet length (3) ends inside a character at byte 2"},
    };
    for (size_t i = 0; i < 2; i++) {
        for (size_t step = 1; step <= 2; step++) {
            nc_framer f;
            frames fr = {0};
            nc_framer_init(&f, NULL);
            assert_int_equal(feed_steps(&f, &fr, cases[i].in, strlen(cases[i].in), step == 1 ? 1 : 64),
                             NC_EPROTO);
            assert_string_equal(f.error, cases[i].msg);
            assert_int_equal(fr.n, 0);
            frames_free(&fr);
            nc_framer_free(&f);
        }
    }
    /* one unit more and it fits */
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, "4#ab\xf0\x9f\x98\x80"), 0);
    assert_int_equal(fr.n, 1);
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_utf8_validate(void **state) {
    (void)state;
    size_t bad = 99;
    assert_int_equal(nc_utf8_validate("", 0, &bad), 0);
    assert_int_equal(nc_utf8_validate("plain ascii text, long enough", 29, &bad), 0);
    assert_int_equal(nc_utf8_validate("h\xc3\xa9llo \xf0\x9f\x98\x80", 11, &bad), 0);
    assert_int_equal(bad, 99);                                            /* untouched on success */
    assert_int_equal(nc_utf8_validate("ab\xe2\x82", 4, &bad), NC_EPROTO); /* truncated at the end */
    assert_int_equal(bad, 2);
    assert_int_equal(nc_utf8_validate("abcdefghij\xf0", 11, &bad), NC_EPROTO);
    assert_int_equal(bad, 10);
    assert_int_equal(nc_utf8_validate("a\0b", 3, NULL), 0); /* NUL is valid UTF-8 */
    assert_int_equal(nc_utf8_validate("\x80", 1, NULL), NC_EPROTO);
}

/* ---------------------------------------------------------------------------------------------------- */
/* State                                                                                                 */

static void test_pending_values(void **state) {
    (void)state;
    char json[64];
    int jl = snprintf(json, sizeof json, "{\"pattern\":\"abc\",\"data\":\"%023d\"}", 7);
    assert_int_equal(jl, 50);
    char s[128];
    int k = snprintf(s, sizeof s, "50#%s", json);
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    for (int i = 0; i < k; i++) {
        assert_int_equal(feed(&f, &fr, s + i, 1), 0);
        assert_int_equal(nc_framer_pending(&f), i + 1 < k ? (size_t)i + 1 : 0);
    }
    assert_int_equal(fr.n, 1);
    assert_string_equal(fr.v[0], json);
    /* several frames then a partial one in one chunk: only the partial one is pending */
    assert_int_equal(feed_str(&f, &fr, "2#{}2#[]9#[1,"), 0);
    assert_int_equal(nc_framer_pending(&f), 5);
    assert_int_equal(feed_str(&f, &fr, "2,3,4]"), 0);
    assert_int_equal(nc_framer_pending(&f), 0);
    assert_int_equal(fr.n, 4);
    assert_string_equal(fr.v[3], "[1,2,3,4]");
    /* empty feeds change nothing */
    assert_int_equal(nc_framer_feed(&f, NULL, 0, on_frame, &fr), 0);
    assert_int_equal(feed_str(&f, &fr, "1"), 0);
    assert_int_equal(nc_framer_feed(&f, "", 0, on_frame, &fr), 0);
    assert_int_equal(nc_framer_pending(&f), 1);
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_error_sticky_and_reset(void **state) {
    (void)state;
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, "2#{}abc#{}"), NC_EPROTO);
    assert_int_equal(fr.n, 1);
    assert_int_equal(feed_str(&f, &fr, "2#{}"), NC_ESTATE);
    assert_int_equal(fr.n, 1);
    assert_string_equal(f.error, "Corrupted length value \"abc\" supplied in a packet");
    nc_framer_reset(&f);
    assert_string_equal(f.error, "");
    assert_int_equal(feed_str(&f, &fr, "2#{}"), 0);
    assert_int_equal(fr.n, 2);
    /* reset drops a partial frame */
    assert_int_equal(feed_str(&f, &fr, "10#[1,"), 0);
    nc_framer_reset(&f);
    assert_int_equal(nc_framer_pending(&f), 0);
    assert_int_equal(feed_str(&f, &fr, "2#[]"), 0);
    assert_int_equal(fr.n, 3);
    assert_string_equal(fr.v[2], "[]");
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_callback_stop(void **state) {
    (void)state;
    nc_framer f;
    frames fr = {0};
    fr.stop_at = 2;
    fr.stop_rc = 7;
    nc_framer_init(&f, NULL);
    assert_int_equal(feed_str(&f, &fr, "2#{}2#[]2#{}"), 7);
    assert_int_equal(fr.n, 2);
    assert_int_equal(feed_str(&f, &fr, "2#{}"), NC_ESTATE);
    nc_framer_reset(&f);
    fr.stop_at = 0;
    assert_int_equal(feed_str(&f, &fr, "2#{}"), 0);
    assert_int_equal(fr.n, 3);
    /* stopping on a buffered frame, with a negative code */
    nc_framer_reset(&f);
    fr.stop_at = 4;
    fr.stop_rc = NC_ENOMEM;
    assert_int_equal(feed_str(&f, &fr, "2#{"), 0);
    assert_int_equal(feed_str(&f, &fr, "}2#{}"), NC_ENOMEM);
    assert_int_equal(fr.n, 4);
    frames_free(&fr);
    nc_framer_free(&f);
}

static void test_large_frame_chunks(void **state) {
    (void)state;
    size_t n = (size_t)1 << 20;
    char *json = malloc(n);
    assert_non_null(json);
    for (size_t i = 0; i < n; i++) json[i] = (char)('a' + i % 26);
    memcpy(json + 1000, "\xc3\xa9", 2);
    memcpy(json + 500000, "\xf0\x9f\x98\x80", 4);
    json[0] = '"';
    json[n - 1] = '"';
    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_frame_append(&b, json, n), 0);
    nc_framer f;
    frames fr = {0};
    nc_framer_init(&f, NULL);
    size_t fed = 0;
    while (fed < b.len) {
        size_t k = b.len - fed < 4093 ? b.len - fed : 4093;
        assert_int_equal(feed(&f, &fr, b.data + fed, k), 0);
        fed += k;
        assert_int_equal(nc_framer_pending(&f), fed < b.len ? fed : 0);
    }
    assert_int_equal(fr.n, 1);
    assert_int_equal(fr.len[0], n);
    assert_memory_equal(fr.v[0], json, n);
    assert_int_equal(f.buf.cap, 0); /* a big buffer is released after its frame */
    frames_free(&fr);
    nc_framer_free(&f);
    nc_buf_free(&b);
    free(json);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Writer                                                                                                */

static void test_utf16_units(void **state) {
    (void)state;
    assert_int_equal(nc_utf16_units("", 0), 0);
    assert_int_equal(nc_utf16_units("abc", 3), 3);
    assert_int_equal(nc_utf16_units("\xc3\xa9", 2), 1);
    assert_int_equal(nc_utf16_units("\xe2\x82\xac", 3), 1);
    assert_int_equal(nc_utf16_units("\xf0\x9f\x98\x80", 4), 2);
    assert_int_equal(nc_utf16_units("h\xc3\xa9llo \xf0\x9f\x98\x80", 11), 8);
    /* the word-at-a-time path against the reference at every alignment and length */
    uint64_t seed = 12345;
    char text[4 * 200];
    for (int iter = 0; iter < 200; iter++) {
        size_t u;
        size_t n = rand_text(&seed, text, 1 + rnd(&seed) % 200, &u);
        assert_int_equal(nc_utf16_units(text, n), u);
        for (size_t a = 0; a < 9 && a < n; a++)
            for (size_t len = 0; a + len <= n && len < 40; len++)
                assert_int_equal(nc_utf16_units(text + a, len), ref_units(text + a, len));
    }
}

static void test_frame_prefix(void **state) {
    (void)state;
    char out[24];
    assert_int_equal(nc_frame_prefix(out, 0), 2);
    assert_string_equal(out, "0#");
    assert_int_equal(nc_frame_prefix(out, 7), 2);
    assert_string_equal(out, "7#");
    assert_int_equal(nc_frame_prefix(out, 65), 3);
    assert_string_equal(out, "65#");
    assert_int_equal(nc_frame_prefix(out, 134217728), 10);
    assert_string_equal(out, "134217728#");
    char want[32];
    snprintf(want, sizeof want, "%zu#", (size_t)SIZE_MAX);
    assert_int_equal(nc_frame_prefix(out, SIZE_MAX), strlen(want));
    assert_string_equal(out, want);

    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_frame_append(&b, "", 0), NC_EINVAL);
    assert_int_equal(b.len, 0);
    assert_int_equal(nc_frame_append(&b, "{}", 2), 0);
    assert_int_equal(nc_frame_append(&b, "\"\xf0\x9f\x98\x80\"", 6), 0);
    assert_int_equal(b.len, 4 + 8);
    assert_memory_equal(b.data, "2#{}4#\"\xf0\x9f\x98\x80\"", 12);
    nc_buf_free(&b);
}

/* Random UTF-8 texts through nc_frame_append and back through the framer in random pieces. */
static void test_roundtrip_random(void **state) {
    (void)state;
    uint64_t seed = 777;
    for (int round = 0; round < 20; round++) {
        nc_buf b = NC_BUF_INIT;
        char *exp[300];
        size_t explen[300];
        size_t nf = 1 + rnd(&seed) % 300;
        for (size_t i = 0; i < nf; i++) {
            size_t u, chars = 1 + rnd(&seed) % (i % 10 == 0 ? 2000 : 60);
            exp[i] = malloc(4 * chars);
            assert_non_null(exp[i]);
            explen[i] = rand_text(&seed, exp[i], chars, &u);
            assert_int_equal(nc_utf16_units(exp[i], explen[i]), u);
            assert_int_equal(nc_frame_append(&b, exp[i], explen[i]), 0);
        }
        size_t cuts[64];
        size_t nc = rnd(&seed) % 64;
        for (size_t i = 0; i < nc; i++) cuts[i] = rnd(&seed) % (b.len + 1);
        qsort(cuts, nc, sizeof cuts[0], cmp_size);
        nc_framer f;
        frames fr = {0};
        nc_framer_init(&f, NULL);
        int rc = round % 4 == 0 ? feed_steps(&f, &fr, b.data, b.len, 1 + rnd(&seed) % 5)
                                : feed_cuts(&f, &fr, b.data, b.len, cuts, nc);
        assert_int_equal(rc, 0);
        assert_int_equal(nc_framer_pending(&f), 0);
        assert_int_equal(fr.n, nf);
        for (size_t i = 0; i < nf; i++) {
            assert_int_equal(fr.len[i], explen[i]);
            assert_memory_equal(fr.v[i], exp[i], explen[i]);
            free(exp[i]);
        }
        frames_free(&fr);
        nc_framer_free(&f);
        nc_buf_free(&b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_default),
        cmocka_unit_test(test_session_whole),
        cmocka_unit_test(test_session_split_sizes),
        cmocka_unit_test(test_session_random_splits),
        cmocka_unit_test(test_unicode_vectors),
        cmocka_unit_test(test_unicode_every_split),
        cmocka_unit_test(test_many_frames_one_feed),
        cmocka_unit_test(test_zero_copy),
        cmocka_unit_test(test_probe_pipelined),
        cmocka_unit_test(test_probe_split_mid_utf8),
        cmocka_unit_test(test_probe_lenient_prefix),
        cmocka_unit_test(test_probe_leading_whitespace),
        cmocka_unit_test(test_probe_corrupt_length),
        cmocka_unit_test(test_probe_zero_negative_length),
        cmocka_unit_test(test_probe_byte_count_prefix),
        cmocka_unit_test(test_probe_bodies_passed_on),
        cmocka_unit_test(test_probe_incomplete_pending),
        cmocka_unit_test(test_probe_oversize),
        cmocka_unit_test(test_oversize_boundary),
        cmocka_unit_test(test_oversize_buffered_prefix),
        cmocka_unit_test(test_overlong_prefix),
        cmocka_unit_test(test_prefix_parseint),
        cmocka_unit_test(test_error_text_escaped),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_valid_utf8_edges),
        cmocka_unit_test(test_surrogate_split),
        cmocka_unit_test(test_utf8_validate),
        cmocka_unit_test(test_pending_values),
        cmocka_unit_test(test_error_sticky_and_reset),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_large_frame_chunks),
        cmocka_unit_test(test_utf16_units),
        cmocka_unit_test(test_frame_prefix),
        cmocka_unit_test(test_roundtrip_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
