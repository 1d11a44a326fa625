/* nestc — TLS options shared by servers and clients (OpenSSL 3). All paths are PEM files. */
#ifndef NESTC_TLS_H
#define NESTC_TLS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A struct that grows (struct_size, NC_TLS_OPTS_INIT): see nestc/server.h. */
typedef struct nc_tls_opts {
    size_t struct_size; /* 0 or sizeof(nc_tls_opts) */
    /* Server: its certificate chain and private key (required for a tls:// server).
     * Client: an optional client certificate and key (mutual TLS). */
    const char *cert_file;
    const char *key_file;
    /* Client: trust this CA bundle instead of the system store.
     * Server: when set, clients must present a certificate signed by it (mutual TLS). */
    const char *ca_file;
    /* Client: the name to verify and send as SNI; default the URL's host. */
    const char *server_name;
    /* Client: skip certificate verification (tests only; like Node's rejectUnauthorized:false). */
    int insecure_skip_verify;
} nc_tls_opts;

#define NC_TLS_OPTS_INIT                                                                                     \
    { .struct_size = sizeof(nc_tls_opts) }

#ifdef __cplusplus
}
#endif
#endif
