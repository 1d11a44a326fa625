/* The NATS transport (nats://, spec nats.md): ops tables and the connection settings read from the URL.
 * Private. */
#ifndef NC_TRANSPORT_NATS_H
#define NC_TRANSPORT_NATS_H

#include "core/log.h"
#include "core/url.h"
#include "nestc/tls.h"
#include "transport/nats/nats_conn.h"
#include "transport/transport.h"

extern const nc_server_transport nc_nats_server_transport;
extern const nc_client_transport nc_nats_client_transport;

/* The options of nats:// (queue, name, tls), shared by the server and client tables. */
extern const nc_option_spec nc_nats_options[];

/* Fills t from nats://[user:pass@|token@]host[:port] and the validated options (name, tls): host default
 * localhost, port 4222. TLS is required when tls options are given (tls != NULL) or the option tls is
 * true, and used whenever the server asks for it. Returns 0 or NC_ETLS / NC_ENOMEM (logged). */
int nc_nats_target_init(nc_nats_target *t, const nc_url *url, const nc_optset *opts, const nc_tls_opts *tls,
                        const nc_logger *log, const char *component);
void nc_nats_target_free(nc_nats_target *t);

#endif
