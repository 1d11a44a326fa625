/* libuv error -> nc_err mapping, below io/ so the I/O layer can use it without the core. */
#include "util/errmap.h"

#include <uv.h>

#include "nestc/error.h"

int nc_err_from_uv(int e) {
    switch (e) {
    case 0:
        return NC_OK;
    case UV_ENOMEM:
        return NC_ENOMEM;
    case UV_ETIMEDOUT:
        return NC_ETIMEDOUT;
    case UV_ECONNREFUSED:
        return NC_ECONNREFUSED;
    case UV_ECONNRESET:
    case UV_EPIPE:
    case UV_EOF:
    case UV_ECONNABORTED:
        return NC_ECONNCLOSED;
    case UV_EADDRINUSE:
        return NC_EADDRINUSE;
    case UV_EINVAL:
    case UV_EADDRNOTAVAIL:
        return NC_EINVAL;
    case UV_ECANCELED:
        return NC_ECANCELED;
    case UV_EAI_NONAME:
    case UV_EAI_AGAIN:
    case UV_EAI_FAIL:
    case UV_EAI_NODATA:
        return NC_ERESOLVE;
    default:
        return NC_EIO;
    }
}
