/* The gRPC layer above HTTP/2 (gRPC's PROTOCOL-HTTP2.md), independent of the HTTP/2 library: the
 * length-prefixed messages of a stream's DATA, `grpc-timeout`, `grpc-message` percent-encoding, binary
 * metadata and the status names. Private; sans-I/O: the reader is fed the DATA bytes of one stream and
 * hands back whole messages (pull style: feed, then next until it says "more"). */
#ifndef NC_CODEC_GRPC_WIRE_H
#define NC_CODEC_GRPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* grpc-js's default for received messages (and NestJS's, which sets none): 4 MiB. */
#define NC_GRPC_DEFAULT_MAX_MESSAGE (4u << 20)

typedef struct nc_grpc_reader {
    nc_buf buf;   /* bytes fed and not yet handed out */
    size_t off;   /* start of the first message not handed out */
    uint32_t max; /* largest message accepted */
} nc_grpc_reader;

typedef struct nc_grpc_msg {
    const char *data; /* into the reader: valid until the next feed, next or free */
    size_t len;
    int compressed; /* the Compressed-Flag: the bytes are in the stream's grpc-encoding */
} nc_grpc_msg;

/* max 0: NC_GRPC_DEFAULT_MAX_MESSAGE. */
void nc_grpc_reader_init(nc_grpc_reader *r, uint32_t max);
void nc_grpc_reader_free(nc_grpc_reader *r);

/* Appends DATA bytes. Returns 0 or NC_ENOMEM. */
int nc_grpc_reader_feed(nc_grpc_reader *r, const void *p, size_t n);

/* The next whole message: returns 1 and fills *m, 0 when more bytes are needed, NC_EPROTO for a
 * Compressed-Flag other than 0 or 1, NC_ETOOBIG for a message longer than max (gRPC's
 * RESOURCE_EXHAUSTED; the length is read from the prefix, so nothing of it is buffered first). An error
 * is final: the stream must be reset. */
int nc_grpc_reader_next(nc_grpc_reader *r, nc_grpc_msg *m);

/* Bytes of an incomplete message still held: at the end of the stream anything but 0 is a truncated
 * message (gRPC: INTERNAL). */
size_t nc_grpc_reader_pending(const nc_grpc_reader *r);

/* Writes the 5-byte prefix of a message of len bytes. Returns 0, or NC_ETOOBIG past 2^32 - 1. */
int nc_grpc_prefix(uint8_t out[5], int compressed, size_t len);

/* `grpc-timeout`: 1 to 8 digits and a unit (H hours, M minutes, S seconds, m milliseconds, u micro-, n
 * nanoseconds). Returns 0 with the timeout in milliseconds rounded up (a nonzero timeout never becomes 0;
 * capped at INT64_MAX), or NC_EINVAL. */
int nc_grpc_timeout_parse(const char *s, size_t n, int64_t *ms);

/* The shortest exact `grpc-timeout` for ms (>= 0) within 8 digits, e.g. 5000 → "5S", 1500 → "1500m",
 * beyond 99,999,999 ms in coarser units rounded up. Writes a NUL-terminated string; returns its length. */
size_t nc_grpc_timeout_format(int64_t ms, char out[16]);

/* `grpc-message`: bytes outside 0x20..0x7E and '%' itself as %XX (uppercase hex). */
int nc_grpc_percent_encode(nc_buf *out, const char *s, size_t n);
/* The reverse, leniently as the spec asks: a '%' not followed by two hex digits stays as it is. */
int nc_grpc_percent_decode(nc_buf *out, const char *s, size_t n);

/* 1 when a metadata name is binary ("-bin" suffix): its value travels base64-encoded. */
int nc_grpc_is_bin(const char *name, size_t n);
/* A binary metadata value from the wire: base64, padded or not (the spec's receivers accept both).
 * Returns 0, NC_EPROTO, NC_ENOMEM. */
int nc_grpc_bin_decode(nc_buf *out, const char *s, size_t n);

/* "OK", "CANCELLED", … "UNAUTHENTICATED" for 0..16; NULL otherwise. */
const char *nc_grpc_status_name(int code);

#endif
