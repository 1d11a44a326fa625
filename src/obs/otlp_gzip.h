/* gzip for the OTLP exporter's request bodies (Content-Encoding: gzip), through zlib when the build has it
 * (it comes with the gRPC transport). Private. */
#ifndef NC_OBS_OTLP_GZIP_H
#define NC_OBS_OTLP_GZIP_H

#include <stddef.h>

/* 1 when this build can gzip. */
int nc_otlp_gzip_available(void);

/* in[0..n) as one gzip member into a new buffer (*out, the caller frees it), *outn bytes. Returns 0,
 * NC_ENOMEM, or NC_EUNSUPPORTED without zlib. */
int nc_otlp_gzip(const char *in, size_t n, char **out, size_t *outn);

#endif
