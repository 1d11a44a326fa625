/* Public option structs that grow (nestc/server.h and the README, "Structs that grow"): each starts with
 * `size_t struct_size`. 0 means the layout of the release that introduced struct_size (its BASE size below,
 * frozen from then on); a caller built against a newer header sets it to its sizeof. Private. */
#ifndef NC_UTIL_ABI_H
#define NC_UTIL_ABI_H

#include <stddef.h>
#include <string.h>

#include "nestc/client.h"
#include "nestc/error.h"
#include "nestc/server.h"
#include "nestc/tls.h"

/* The sizes of the first layouts. When a field is appended after a release, replace sizeof(...) here by
 * offsetof(the struct, the new field), so that callers passing 0 keep the layout they were built with. */
#define NC_SERVER_OPTS_BASE sizeof(nc_server_opts)
#define NC_CLIENT_OPTS_BASE sizeof(nc_client_opts)
#define NC_CALL_OPTS_BASE sizeof(nc_call_opts)
#define NC_HANDLER_OPTS_BASE sizeof(nc_handler_opts)
#define NC_TLS_OPTS_BASE sizeof(nc_tls_opts)

/* Copies the caller's struct (src, of `given` bytes; 0 = base) into dst (`known` bytes, ours), zeroing
 * the fields the caller does not have. A caller built against a newer header (given > known) is
 * accepted when everything past what we know is zero (it asked for nothing we cannot do); otherwise
 * NC_EINVAL, as is a size below the first layout. */
static inline int nc_abi_copy_in(void *dst, size_t known, const void *src, size_t given, size_t base) {
    if (given == 0) given = base;
    if (given < base) return NC_EINVAL;
    if (given > known) {
        const unsigned char *b = src;
        for (size_t i = known; i < given; i++)
            if (b[i]) return NC_EINVAL;
        given = known;
    }
    memcpy(dst, src, given);
    memset((char *)dst + given, 0, known - given);
    return 0;
}

/* The check alone, for structs read in place on the hot path (nc_call_opts): 1 when usable as is. */
static inline int nc_abi_ok(const void *src, size_t given, size_t known, size_t base) {
    if (given == 0 || given == known) return 1;
    if (given < base) return 0;
    if (given > known) {
        const unsigned char *b = src;
        for (size_t i = known; i < given; i++)
            if (b[i]) return 0;
    }
    return given >= known;
}

#endif
