/* URL scheme → transport ops table. Adding a transport = one line in each table. */
#include <string.h>

#include "transport/amqp/amqp.h"
#ifdef NESTC_HAVE_NGHTTP2
#include "transport/grpc/grpc.h"
#endif
#ifdef NESTC_HAVE_RDKAFKA
#include "transport/kafka/kafka.h"
#endif
#include "transport/mqtt/mqtt.h"
#include "transport/nats/nats.h"
#include "transport/redis/redis.h"
#include "transport/tcp/tcp.h"
#include "transport/transport.h"
#include "nestc/error.h"

static const nc_server_transport *const servers[] = {
    &nc_tcp_server_transport,   &nc_redis_server_transport, &nc_nats_server_transport,
    &nc_mqtt_server_transport,  &nc_amqp_server_transport,
#ifdef NESTC_HAVE_RDKAFKA
    &nc_kafka_server_transport,
#endif
#ifdef NESTC_HAVE_NGHTTP2
    &nc_grpc_server_transport,
#endif
};

static const nc_client_transport *const clients[] = {
    &nc_tcp_client_transport,   &nc_redis_client_transport, &nc_nats_client_transport,
    &nc_mqtt_client_transport,  &nc_amqp_client_transport,
#ifdef NESTC_HAVE_RDKAFKA
    &nc_kafka_client_transport,
#endif
#ifdef NESTC_HAVE_NGHTTP2
    &nc_grpc_client_transport,
#endif
};

/* 1 when scheme is in the NULL-terminated list. */
static int serves(const char *const *schemes, const char *scheme) {
    for (; *schemes; schemes++)
        if (strcmp(*schemes, scheme) == 0) return 1;
    return 0;
}

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
        if (serves(servers[i]->schemes, scheme)) return servers[i];
    for (size_t i = 0; i < nextra_servers; i++)
        if (serves(extra_servers[i]->schemes, scheme)) return extra_servers[i];
    return NULL;
}

const nc_client_transport *nc_client_transport_find(const char *scheme) {
    for (size_t i = 0; i < sizeof clients / sizeof *clients; i++)
        if (serves(clients[i]->schemes, scheme)) return clients[i];
    return NULL;
}
