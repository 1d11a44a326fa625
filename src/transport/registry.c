/* URL scheme → transport ops table. Adding a transport = one line in each table. */
#include <string.h>

#include "transport/nats/nats.h"
#include "transport/redis/redis.h"
#include "transport/tcp/tcp.h"
#include "transport/transport.h"

static const nc_server_transport *const servers[] = {
    &nc_tcp_server_transport,
    &nc_tls_server_transport,
    &nc_redis_server_transport,
    &nc_rediss_server_transport,
    &nc_nats_server_transport,
};

static const nc_client_transport *const clients[] = {
    &nc_tcp_client_transport,
    &nc_tls_client_transport,
    &nc_redis_client_transport,
    &nc_rediss_client_transport,
    &nc_nats_client_transport,
};

const nc_server_transport *nc_server_transport_find(const char *scheme) {
    for (size_t i = 0; i < sizeof servers / sizeof *servers; i++)
        if (strcmp(servers[i]->scheme, scheme) == 0) return servers[i];
    return NULL;
}

const nc_client_transport *nc_client_transport_find(const char *scheme) {
    for (size_t i = 0; i < sizeof clients / sizeof *clients; i++)
        if (strcmp(clients[i]->scheme, scheme) == 0) return clients[i];
    return NULL;
}
