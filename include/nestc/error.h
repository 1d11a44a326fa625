/* nestc — error codes.
 *
 * Every nestc function that can fail returns an `int`: 0 (NC_OK) on success or one of the negative
 * codes below. Operating-system and library errors are mapped onto these codes; the detail (the
 * OS message, the TLS verification failure, the remote error value) travels alongside: for a call
 * that fails at once (nc_client_new, nc_server_new, nc_server_listen, ...) in `nc_last_error()`,
 * for an asynchronous failure in the `error` text of the done callback (client.h, nc_done_fn) and
 * in the client's error callback. */
#ifndef NESTC_ERROR_H
#define NESTC_ERROR_H

#include "nestc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The error codes: 0 or negative, returned by every call that can fail. */
typedef enum nc_err {
    NC_OK = 0,
    NC_EINVAL = -1,        /* invalid argument, URL, pattern or option */
    NC_ENOMEM = -2,        /* out of memory */
    NC_ETIMEDOUT = -3,     /* the request timed out (no final reply in time) */
    NC_ECONNREFUSED = -4,  /* the peer refused the connection */
    NC_ECONNCLOSED = -5,   /* the connection closed while the request was pending ("Connection closed") */
    NC_ECLOSED = -6,       /* the server or client has been closed */
    NC_EPROTO = -7,        /* the peer broke the wire protocol (bad frame, bad JSON, bad UTF-8) */
    NC_ETOOBIG = -8,       /* a frame or buffer exceeded its configured limit */
    NC_ENOHANDLER = -9,    /* no handler matched the pattern */
    NC_ETLS = -10,         /* TLS failure: handshake, certificate verification, bad key or certificate file */
    NC_EADDRINUSE = -11,   /* the listen address is in use */
    NC_EUNSUPPORTED = -12, /* the URL scheme or feature is not supported by this build */
    NC_EIO = -13,          /* other I/O or operating-system error */
    NC_EREMOTE = -14,      /* the remote handler failed; the error value is delivered with the code */
    NC_ECANCELED = -15,    /* the operation was canceled */
    NC_ESTATE = -16,       /* the call is not valid in the object's current state (e.g. reply twice) */
    NC_ERESOLVE = -17,     /* the host name could not be resolved */
    NC_ESTALLED = -18,     /* the peer stalled (stopped mid-frame, or does not read what we send) */
    NC_ECONNLOST = -19,    /* the broker connection is lost and being re-established: try again later */
    NC_EAUTH = -20,        /* the broker refused the credentials (or the database) */
    NC_ENOENT = -21,       /* the item asked for is absent (a context key the transport did not fill) */
    NC_EREFUSED = -22,     /* refused locally by a hook: bulkhead full, rate limited */
    NC_ECIRCUITOPEN = -23, /* a circuit breaker is open: the call was not sent (nestc/policy.h) */
} nc_err;

/* A static, human-readable description of `err` (never NULL; unknown codes give "unknown error"). */
NC_API const char *nc_strerror(int err);

/* The symbolic name of `err`, e.g. "NC_ETIMEDOUT" (never NULL). */
NC_API const char *nc_err_name(int err);

/* Why the last nestc call that failed on the calling thread failed, as one line of text, e.g.
 * `invalid URL "127.0.0.1:3300": expected scheme://host:port` or
 * `cannot load the CA file /nope/ca.pem: ... No such file or directory` (the libc/OpenSSL wording).
 * Like errno (and hiredis's errstr, nats.c's nats_GetLastError): read it right after a call returned a
 * negative code; a later failure on the same thread overwrites it, a successful call leaves it as it
 * was. "" when no call has failed on this thread yet; never NULL. The text lives in a thread-local
 * buffer (up to 255 bytes, longer reasons are cut) owned by the library: valid until the thread's next
 * nestc call, copy it to keep it. Any thread. The same reason is also logged (log.h). Asynchronous
 * failures (a connection refused, a request timed out) are not reported here but to their callbacks. */
NC_API const char *nc_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
