/* gzip for the OTLP exporter's request bodies (otlp_gzip.h). */
#include "obs/otlp_gzip.h"

#include <stdint.h>
#include <stdlib.h>

#include "nestc/error.h"

#ifdef NESTC_HAVE_ZLIB
#include <zlib.h>

int nc_otlp_gzip_available(void) {
    return 1;
}

int nc_otlp_gzip(const char *in, size_t n, char **out, size_t *outn) {
    *out = NULL;
    *outn = 0;
    if (n > (uInt)-1) return NC_ENOMEM; /* one deflate call; a batch is far smaller */
    z_stream z = {0};
    /* 15 + 16: a gzip header and trailer around the deflate data, as Content-Encoding: gzip means */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NC_ENOMEM;
    uLong cap = deflateBound(&z, (uLong)n);
    char *b = malloc(cap);
    if (!b) {
        deflateEnd(&z);
        return NC_ENOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)b;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH); /* deflateBound makes one call enough */
    size_t len = z.total_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) {
        free(b);
        return NC_ENOMEM;
    }
    *out = b;
    *outn = len;
    return 0;
}
#else
int nc_otlp_gzip_available(void) {
    return 0;
}

int nc_otlp_gzip(const char *in, size_t n, char **out, size_t *outn) {
    (void)in, (void)n;
    *out = NULL;
    *outn = 0;
    return NC_EUNSUPPORTED;
}
#endif
