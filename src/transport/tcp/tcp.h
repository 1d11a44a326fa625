/* The TCP and TLS transports' ops tables (tcp:// and tls://). Private. */
#ifndef NC_TRANSPORT_TCP_H
#define NC_TRANSPORT_TCP_H

#include "transport/transport.h"

extern const nc_server_transport nc_tcp_server_transport;
extern const nc_client_transport nc_tcp_client_transport;

#endif
