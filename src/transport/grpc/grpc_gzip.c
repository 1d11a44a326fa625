/* gzip and deflate for request and response messages, through zlib. */
#include <stdlib.h>
#include <zlib.h>

#include "nestc/error.h"
#include "transport/grpc/grpc_gzip.h"

/* zlib's windowBits for an algorithm: 16 + 15 reads and writes gzip framing only, 15 the zlib format. */
static int wbits(int algo) {
    return algo == NC_GRPC_GZIP ? 16 + MAX_WBITS : MAX_WBITS;
}

int nc_grpc_gunzip(const void *p, size_t n, size_t max, nc_buf *out) {
    return nc_grpc_inflate(p, n, max, NC_GRPC_GZIP, out);
}

int nc_grpc_inflate(const void *p, size_t n, size_t max, int algo, nc_buf *out) {
    z_stream z = {0};
    if (inflateInit2(&z, wbits(algo)) != Z_OK) return NC_ENOMEM;
    size_t start = out->len;
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    int r = Z_OK;
    while (r == Z_OK) {
        if (out->len - start > max) {
            r = Z_BUF_ERROR;
            break;
        }
        if (nc_buf_reserve(out, 16384)) {
            inflateEnd(&z);
            out->len = start;
            return NC_ENOMEM;
        }
        size_t room = out->cap - out->len, left = max - (out->len - start);
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)(room < left + 1 ? room : left + 1); /* one byte past max tells a bomb */
        r = inflate(&z, Z_NO_FLUSH);
        out->len = (size_t)((char *)z.next_out - out->data);
        if (r == Z_BUF_ERROR && z.avail_in == 0) break; /* input ended before the stream did */
    }
    inflateEnd(&z);
    if (r == Z_STREAM_END && out->len - start <= max && z.avail_in == 0) return 0;
    int err = out->len - start > max ? NC_ETOOBIG : NC_EPROTO;
    out->len = start;
    return err;
}

struct nc_grpc_deflater {
    z_stream z;
    int algo;
};

static nc_grpc_deflater *deflater_new(int algo) {
    nc_grpc_deflater *d = calloc(1, sizeof *d);
    if (d) d->algo = algo;
    if (d &&
        deflateInit2(&d->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, wbits(algo), 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(d);
        d = NULL;
    }
    return d;
}

void nc_grpc_deflater_free(nc_grpc_deflater *d) {
    if (!d) return;
    deflateEnd(&d->z);
    free(d);
}

int nc_grpc_compress(nc_grpc_deflater **dp, int algo, const void *p, size_t n, nc_buf *out) {
    nc_grpc_deflater *own = NULL, *d = dp ? *dp : NULL;
    if (d && d->algo != algo) {
        nc_grpc_deflater_free(d);
        *dp = d = NULL;
    }
    if (!d && !(d = deflater_new(algo))) return NC_ENOMEM;
    if (dp)
        *dp = d;
    else
        own = d;
    z_stream *z = &d->z;
    deflateReset(z);
    size_t bound = deflateBound(z, (uLong)n);
    int r = Z_MEM_ERROR;
    if (!nc_buf_reserve(out, bound)) {
        z->next_in = (Bytef *)p;
        z->avail_in = (uInt)n;
        z->next_out = (Bytef *)out->data + out->len;
        z->avail_out = (uInt)bound;
        r = deflate(z, Z_FINISH);
        if (r == Z_STREAM_END) out->len += bound - z->avail_out;
    }
    nc_grpc_deflater_free(own);
    return r == Z_STREAM_END ? 0 : NC_ENOMEM;
}
