/* Where and how a broker transport connects, as read from its URL: the part every broker shares (host,
 * port, credentials, TLS, the bounds of one connection). Each broker embeds it in its own target and adds
 * its own bits (Redis: the database; NATS: the token, the client name, TLS on demand). Private. */
#ifndef NC_TRANSPORT_BROKER_TARGET_H
#define NC_TRANSPORT_BROKER_TARGET_H

#include <openssl/ssl.h>

#include "core/log.h"
#include "core/url.h"
#include "nestc/tls.h"

typedef struct nc_broker_target {
    char *host; /* default localhost */
    int port;
    char *user;             /* the URL's user name when not empty, else NULL */
    char *password;         /* the URL's password when one is given (even empty), else NULL */
    SSL_CTX *ssl;           /* the TLS client context, NULL for plain connections */
    char *verify_host;      /* the TLS name to verify (the TLS options' server_name, else host) */
    long long max_queue;    /* bytes of commands waiting for the connection or the socket (0 = off) */
    int connect_timeout_ms; /* each connection, TLS and the broker's handshake included (0 = none) */
} nc_broker_target;

/* Fills t's host, port (default_port when the URL has none), user and password. Returns 0 or NC_ENOMEM. */
int nc_broker_target_init(nc_broker_target *t, const nc_url *url, int default_port);
/* Builds the TLS client context from tls (NULL: the defaults, the system's trust store): towards the broker
 * a nestc server is a client too, so its TLS options name its client certificate and the CA it trusts.
 * Returns 0 or NC_ETLS / NC_ENOMEM (logged). */
int nc_broker_target_tls(nc_broker_target *t, const nc_tls_opts *tls, const nc_logger *log,
                         const char *component);
void nc_broker_target_free(nc_broker_target *t);

#endif
