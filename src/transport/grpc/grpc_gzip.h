/* gzip-compressed gRPC messages (grpc-encoding: gzip, the Compressed-Flag set). Private. */
#ifndef NC_GRPC_GZIP_H
#define NC_GRPC_GZIP_H

#include <stddef.h>

#include "util/buf.h"

/* Decompresses one gzip member p[0..n) into out (appended). Returns 0, NC_ETOOBIG when the result would
 * pass max bytes (checked while inflating: a small bomb never takes more than max), NC_EPROTO on data that
 * is not gzip or is cut, NC_ENOMEM. */
int nc_grpc_gunzip(const void *p, size_t n, size_t max, nc_buf *out);
/* A deflate state kept between messages: zlib allocates about 300 KiB per state, far more than a small
 * message costs to compress, so a server keeps one per loop and resets it for each message. */
typedef struct nc_grpc_deflater nc_grpc_deflater;

/* Compresses p[0..n) as one gzip member appended to out (responses, when the client accepts gzip), with
 * *d (created on first use; NULL d: a state for this call only). Returns 0 or NC_ENOMEM. */
int nc_grpc_gzip(nc_grpc_deflater **d, const void *p, size_t n, nc_buf *out);
void nc_grpc_deflater_free(nc_grpc_deflater *d);

#endif
