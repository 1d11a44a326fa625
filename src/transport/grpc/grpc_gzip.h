/* Compressed gRPC messages (grpc-encoding gzip or deflate, the Compressed-Flag set), through zlib. Private.
 */
#ifndef NC_GRPC_GZIP_H
#define NC_GRPC_GZIP_H

#include <stddef.h>

#include "util/buf.h"

/* gRPC's compression algorithms, numbered as grpc.default_compression_algorithm numbers them. "deflate" is
 * the zlib format (RFC 1950), as grpc-js and grpc-core read and write it. */
enum { NC_GRPC_IDENTITY = 0, NC_GRPC_DEFLATE = 1, NC_GRPC_GZIP = 2 };

/* Decompresses one gzip member (algo NC_GRPC_GZIP) or zlib stream (NC_GRPC_DEFLATE) p[0..n) into out
 * (appended). Returns 0, NC_ETOOBIG when the result would pass max bytes (checked while inflating: a small
 * bomb never takes more than max), NC_EPROTO on data that is not in that format or is cut, NC_ENOMEM. */
int nc_grpc_inflate(const void *p, size_t n, size_t max, int algo, nc_buf *out);
/* nc_grpc_inflate with NC_GRPC_GZIP. */
int nc_grpc_gunzip(const void *p, size_t n, size_t max, nc_buf *out);

/* A deflate state kept between messages: zlib allocates about 300 KiB per state, far more than a small
 * message costs to compress, so a server keeps one per loop and resets it for each message. */
typedef struct nc_grpc_deflater nc_grpc_deflater;

/* Compresses p[0..n) in algo (gzip or deflate) appended to out (responses, when the client accepts it),
 * with *d (created on first use, or again for another algorithm; NULL d: a state for this call only).
 * Returns 0 or NC_ENOMEM. */
int nc_grpc_compress(nc_grpc_deflater **d, int algo, const void *p, size_t n, nc_buf *out);
void nc_grpc_deflater_free(nc_grpc_deflater *d);

#endif
