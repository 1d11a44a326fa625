/* libFuzzer: gzip-compressed gRPC messages (transport/grpc/grpc_gzip.c). The input read as a gzip member
 * under a cap the first byte picks: it inflates within the cap or is refused, never more; and the input
 * compressed by zlib must inflate back to itself (under a cap of its size, exactly). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "nestc/error.h"
#include "transport/grpc/grpc_gzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n) {
    if (n < 1) return 0;
    size_t cap = (size_t)p[0] * 1024 + 1;
    nc_buf out = NC_BUF_INIT;
    int r = nc_grpc_gunzip(p + 1, n - 1, cap, &out);
    if (r == 0 && out.len > cap) abort();
    if (r && out.len) abort(); /* a refusal leaves nothing behind */
    if (r && r != NC_ETOOBIG && r != NC_EPROTO && r != NC_ENOMEM) abort();
    nc_buf_free(&out);

    /* round trip */
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
    uLong bound = deflateBound(&z, (uLong)n);
    Bytef *gz = malloc(bound);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = gz;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    size_t gzlen = z.total_out;
    deflateEnd(&z);
    nc_buf back = NC_BUF_INIT;
    if (nc_grpc_gunzip(gz, gzlen, n, &back) || back.len != n || (n && memcmp(back.data, p, n))) abort();
    if (n && nc_grpc_gunzip(gz, gzlen, n - 1, &out) != NC_ETOOBIG) abort(); /* one byte short: refused */
    nc_buf_free(&back);
    nc_buf_free(&out);
    free(gz);
    return 0;
}
