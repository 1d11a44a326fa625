/* TLS contexts (OpenSSL 3) built from nc_tls_opts. Private. */
#ifndef NC_IO_TLS_H
#define NC_IO_TLS_H

#include <openssl/ssl.h>

#include "nestc/tls.h"

/* Builds a context. Server: certificate + key required; with ca_file, client certificates are required
 * and verified. Client: verifies the peer against ca_file or the system store (unless
 * insecure_skip_verify). TLS 1.2 minimum, as Node. Returns 0 or NC_ETLS/NC_EINVAL with a reason in err. */
int nc_tls_ctx_new(SSL_CTX **out, const nc_tls_opts *o, int is_server, char *err, size_t errlen);

/* The most useful description of the last TLS failure on `ssl` (verification result first, then the
 * OpenSSL error queue). `in_handshake`: the failure is the handshake's, said so ("TLS handshake failed:
 * ..."), and a peer that does not speak TLS at all (a plain TCP port, an HTTP server) is named as such
 * rather than by OpenSSL's record-layer words. Clears the error queue. */
void nc_tls_describe_error(SSL *ssl, char *out, size_t outlen, int in_handshake);

/* Deep copy of the option strings into *dst / their release. */
void nc_tls_opts_copy(nc_tls_opts *dst, const nc_tls_opts *src);
void nc_tls_opts_free(nc_tls_opts *o);

#endif
