/* Standard base64 (RFC 4648 §4, '+' '/', '=' padding), as protobufjs's @protobufjs/base64 writes and
 * reads it for bytes fields, and as gRPC metadata carries "-bin" values. Private. */
#ifndef NC_UTIL_BASE64_H
#define NC_UTIL_BASE64_H

#include <stddef.h>

#include "util/buf.h"

/* Appends the base64 text of p[0..n) with padding. Returns 0 or NC_ENOMEM. */
int nc_base64_encode(nc_buf *out, const void *p, size_t n);

/* Appends the bytes of base64 text s[0..n): standard alphabet, read up to the first '=' (what follows it
 * is ignored, as protobufjs does); missing padding is accepted. Returns 0, NC_EPROTO on a character
 * outside the alphabet or a dangling sixth bit group, NC_ENOMEM. */
int nc_base64_decode(nc_buf *out, const char *s, size_t n);

#endif
