/* URL scheme → transport ops table. Adding a transport = one line in each table. */
#include <string.h>

#include "transport/nats/nats.h"
#include "transport/redis/redis.h"
#include "transport/tcp/tcp.h"
#include "transport/transport.h"
#include "nestc/error.h"

static const nc_server_transport *const servers[] = {
    &nc_tcp_server_transport,    &nc_tls_server_transport,  &nc_redis_server_transport,
    &nc_rediss_server_transport, &nc_nats_server_transport,
};

static const nc_client_transport *const clients[] = {
    &nc_tcp_client_transport,    &nc_tls_client_transport,  &nc_redis_client_transport,
    &nc_rediss_client_transport, &nc_nats_client_transport,
};

/* Registered at run time (tests): looked up after the built-in ones. */
#define EXTRA_MAX 4
static const nc_server_transport *extra_servers[EXTRA_MAX];
static size_t nextra_servers;

int nc_transport_register_server(const nc_server_transport *tp) {
    if (nextra_servers == EXTRA_MAX) return NC_ENOMEM;
    extra_servers[nextra_servers++] = tp;
    return 0;
}

const nc_server_transport *nc_server_transport_find(const char *scheme) {
    for (size_t i = 0; i < sizeof servers / sizeof *servers; i++)
        if (strcmp(servers[i]->scheme, scheme) == 0) return servers[i];
    for (size_t i = 0; i < nextra_servers; i++)
        if (strcmp(extra_servers[i]->scheme, scheme) == 0) return extra_servers[i];
    return NULL;
}

const nc_client_transport *nc_client_transport_find(const char *scheme) {
    for (size_t i = 0; i < sizeof clients / sizeof *clients; i++)
        if (strcmp(clients[i]->scheme, scheme) == 0) return clients[i];
    return NULL;
}
