/* Sans-I/O codec for the NestJS TCP framing: `<decimal length>#<JSON text>` (spec tcp.md §2, §2.1, §3).
 *
 * The length counts UTF-16 code units of the JSON text (JavaScript `string.length`): a code point below
 * U+10000 counts 1, one at or above U+10000 counts 2. The bytes on the wire are UTF-8. The prefix and the
 * '#' are not counted.
 *
 * The reader (nc_framer) does no I/O, uses no globals and never allocates according to a declared length:
 * it is shared by the server, the client, the tests and the fuzzers. Private to the library. */
#ifndef NC_CODEC_FRAME_H
#define NC_CODEC_FRAME_H

#include <stddef.h>

#include "util/buf.h"
#include "util/utf8.h"

/* ---------------------------------------------------------------------------------------------------- */
/* Limits                                                                                                */

#define NC_FRAMER_DEFAULT_MAX_BUFFER_UNITS ((size_t)134217728) /* NestJS maxBufferSize default */
#define NC_FRAMER_DEFAULT_MAX_PREFIX_BYTES ((size_t)64)

typedef struct nc_framer_limits {
    /* NestJS maxBufferSize, in UTF-16 units. Applies to one frame's text, length prefix and '#' included
     * (Nest counts its whole receive buffer; this reader never keeps complete frames buffered, so the frame
     * being assembled is all there is to count). A frame whose prefix + '#' + declared length exceeds it
     * is rejected as soon as its '#' arrives (stricter than Nest on purpose: no waiting for a frame that
     * can never be accepted); a prefix still waiting for its '#' is rejected once it exceeds it.
     * 0 means the default, 134217728. Memory held is at most about 3 bytes per unit (UTF-8). */
    size_t max_buffer_units;
    /* Longest text accepted before the '#', in bytes (leading whitespace, sign and junk included).
     * Beyond it: NC_EPROTO "Corrupted length value ...". 0 means the default, 64. */
    size_t max_prefix_bytes;
} nc_framer_limits;

/* Fills `l` with the defaults above. */
void nc_framer_limits_default(nc_framer_limits *l);

/* ---------------------------------------------------------------------------------------------------- */
/* Reader                                                                                                */

/* The framer. Public so that it can be embedded; only `error` may be read by callers, the other fields are
 * private. Not thread-safe: one framer per byte stream, used by one thread at a time. */
typedef struct nc_framer {
    char error[160]; /* NUL-terminated reason for the last framing error ("" when none) */

    /* private */
    nc_framer_limits lim;
    nc_buf buf;        /* the incomplete tail: prefix text (state PREFIX) or body bytes so far (state BODY) */
    int state;         /* NC_FRAMER_S_* in frame.c */
    size_t want;       /* declared length of the frame being read, in units */
    size_t prefix_len; /* bytes of its prefix, '#' included */
    nc_utf8_scan scan; /* state of the body scan (units counted so far, partial character) */
    int lossy;         /* the frame being read has ill-formed UTF-8: read byte by byte, as Node decodes it */
    size_t dec;        /* lossy: body bytes decoded and counted; buf[dec..] (<= 3 bytes) awaits more bytes */
} nc_framer;

/* Initializes `f` with the limits `lim` (NULL: defaults; zero fields: their defaults). Allocates nothing.
 * Every initialized framer must be released with nc_framer_free. */
void nc_framer_init(nc_framer *f, const nc_framer_limits *lim);

/* Frees the internal buffer. `f` may be initialized again afterwards. Safe in every state, including after
 * an error or after a callback stopped a feed. */
void nc_framer_free(nc_framer *f);

/* Called once per complete frame, in stream order. `json`/`len` is the frame's JSON text (valid UTF-8,
 * len >= 1, NOT NUL-terminated): ill-formed UTF-8 from the peer has been replaced by U+FFFD, as NestJS's
 * socket decoding (Node's StringDecoder) replaces it, before the frame's length was counted. It points into
 * the caller's data when the JSON text lay entirely inside the fed chunk (zero copy; the prefix may have come
 * earlier), else into the framer's buffer; either way it is valid only during the call, so copy what must
 * outlive it. The text has not been parsed as JSON (that is the caller's job, including Nest's rules that a
 * failed parse is a protocol error and that `null` means `{}`).
 *
 * Return 0 to go on, nonzero to stop: nc_framer_feed then returns that value at once, the rest of the
 * chunk is discarded and the framer refuses input (NC_ESTATE) until nc_framer_reset; the caller is
 * expected to close the connection. The callback must not feed, reset or free the framer. */
typedef int (*nc_frame_cb)(void *user, const char *json, size_t len);

/* Feeds `len` bytes of the stream (data may be NULL when len is 0). Frames, prefixes and multi-byte
 * characters may be split across any number of feeds at any byte. `cb` is called for every frame that
 * completes, in order, iteratively (any number of frames per feed). Only the incomplete tail of a chunk is
 * copied; bytes already scanned are never scanned again.
 *
 * Returns:
 *   0           all bytes consumed (the last frame may be incomplete: see nc_framer_pending);
 *   nonzero     the value the callback returned to stop (return a positive value to keep it apart from the
 *               codes below);
 *   NC_EPROTO   a framing error, reason in f->error (Nest's wording where Nest has one):
 *     - no digit in the prefix (after whitespace and an optional sign), or more than max_prefix_bytes
 *       before '#': `Corrupted length value "<text>" supplied in a packet` (<text> shown escaped and
 *       possibly shortened);
 *     - a length of 0 or below (Nest fails to parse the empty JSON text):
 *       `Invalid length value "<text>" supplied in a packet (a packet holds at least 1 unit of JSON text)`;
 *     - the declared length ends between the two UTF-16 units of a supplementary character (Nest would cut
 *       the surrogate pair and fail to parse): `The packet length (<n>) ends inside a character at byte <k>`;
 *   NC_ETOOBIG  the frame (prefix + '#' + declared length) or a prefix awaiting its '#' exceeds
 *               max_buffer_units: `The packet length (<n>) exceeds the maximum allowed length`, n = those
 *               units (the digits as written when they do not fit a size_t);
 *   NC_ENOMEM   the incomplete tail could not be buffered;
 *   NC_ESTATE   the framer had failed or been stopped before this call (nothing is consumed).
 * The prefix is read like JavaScript parseInt(text, 10) (spec §2.1): leading JS whitespace (the ASCII
 * set \t \n \v \f \r and space, plus U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000, U+FEFF) is skipped, then an optional '+' or '-', then decimal digits up to the first non-digit;
 * whatever follows before '#' is ignored, even ill-formed UTF-8 (Nest ignores it too).
 * Ill-formed UTF-8 in the JSON text is read as NestJS reads it (its socket bytes go through Node's
 * StringDecoder): each maximal ill-formed subpart (Unicode 15 §3.9, the WHATWG decoder) is one U+FFFD,
 * counted as 1 unit. As StringDecoder does, bytes at the end of a chunk that start with a byte of the
 * form 110xxxxx, 1110xxxx or 11110xxx and are fewer than that form announces wait for the next chunk
 * before they are counted, even when they can no longer be valid (E0 80): a frame that they would
 * complete completes only when more bytes arrive, as NestJS's does. Such frames are read byte by byte
 * and copied (at most about 6 bytes per unit held while the callback runs); valid text is not.
 * After any error the framer refuses further input (NC_ESTATE) until nc_framer_reset; f->error keeps the
 * reason. */
int nc_framer_feed(nc_framer *f, const char *data, size_t len, nc_frame_cb cb, void *user);

/* Back to the initial state (at a frame boundary, no error); keeps the limits. Drops any partial frame. */
void nc_framer_reset(nc_framer *f);

/* Bytes held of an incomplete frame (its prefix bytes, '#' included, plus body bytes so far); 0 exactly
 * when the framer is at a frame boundary, and once it has failed or been stopped. The transport arms its
 * incomplete-message timer while this is nonzero (spec §3: a partial length prefix counts too). */
size_t nc_framer_pending(const nc_framer *f);

/* ---------------------------------------------------------------------------------------------------- */
/* Writer                                                                                                */

/* Writes "<units>#" (ASCII digits, no sign or padding) and a NUL into `out`; returns its length (without
 * the NUL, at most 21). */
size_t nc_frame_prefix(char out[24], size_t units);

/* Appends one frame (prefix + json) to `out`. `json` must be valid UTF-8 (it is not checked: the caller's
 * serializer produces it) and non-empty. Returns 0, NC_EINVAL (len 0: Nest rejects empty frames), or
 * NC_ENOMEM (out is then unchanged in content, though it may have grown). */
int nc_frame_append(nc_buf *out, const char *json, size_t len);

#endif
