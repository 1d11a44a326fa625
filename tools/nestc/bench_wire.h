/* nestc bench, raw engine: the minimal reader of NestJS TCP reply frames.
 *
 * Exists because the raw engine must read millions of replies a second on one core: no JSON DOM, no
 * copy, no allocation. It cuts `<digits>#<json>` frames (the length in UTF-16 units, counted over UTF-8:
 * 4-byte sequences count 2, the others 1) and finds the TOP-LEVEL "id", "isDisposed" and "err" of a reply,
 * skipping nested values properly (strings with escapes, objects, arrays), whatever their size. It trusts
 * the peer's UTF-8 (a benchmark, not a validator) but never reads out of bounds. */
#ifndef NESTC_CLI_BENCH_WIRE_H
#define NESTC_CLI_BENCH_WIRE_H

#include <stddef.h>

/* Progress over the body of a frame that is not complete yet, so that a large frame arriving in many
 * reads is scanned once. Zero it for a new stream; the reader resets it after every frame. The offsets are
 * relative to the frame start, so the caller may move the buffered bytes between calls. */
typedef struct bw_progress {
    size_t scanned; /* body bytes already counted */
    size_t units;   /* UTF-16 units in them */
} bw_progress;

typedef struct bw_reply {
    const char *id; /* the id string's content (between the quotes, not unescaped), NULL when absent */
    size_t id_len;
    int final; /* isDisposed truthy or err truthy: the reply stream is over */
    int err;   /* err truthy */
} bw_reply;

/* Cuts the next frame from p[0..len).
 * Returns the frame's total size (prefix + '#' + body) when it is complete, with *body / *body_len set;
 * 0 when more bytes are needed, with *need set to a lower bound of the bytes the whole frame takes
 * (0 when the prefix itself is not complete); -1 on a malformed frame (bad prefix, length 0, a length
 * ending inside a character, a stray continuation byte where a character should start). */
long bw_next_frame(const char *p, size_t len, bw_progress *pg, const char **body, size_t *body_len,
                   size_t *need);

/* Reads the top-level keys of a reply body. Returns 0, or -1 when the body is not a JSON object. */
int bw_parse_reply(const char *body, size_t len, bw_reply *r);

#endif
