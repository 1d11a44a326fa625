/* The grpc:// server's state, shared by its listener (grpc_server.c) and its calls (grpc_calls.c). Private.
 */
#ifndef NC_GRPC_SERVER_H
#define NC_GRPC_SERVER_H

#include "codec/proto_codec.h"
#include "core/server_transport.h"
#include "transport/grpc/grpc_builtin.h"
#include "transport/grpc/grpc_conn.h"
#include "transport/grpc/grpc_methods.h"
#include "util/map.h"

typedef struct nc_grpc_server {
    nc_server *srv;
    SSL_CTX *ssl;
    char *host;
    int port, bound_port;
    uv_tcp_t listener;
    int listener_open;
    int closing;
    nc_grpc_conn *conns;
    nc_grpc_methods methods;
    nc_pb_json_opts jo;
    uint32_t max_message, max_metadata;
    long long max_send_message;        /* maxSendMessageLength, -1: none */
    int compress;                      /* defaultCompressionAlgorithm gzip */
    struct nc_grpc_deflater *deflater; /* for every connection's gzip responses (created on first use) */
    nc_grpc_keepalive ka;              /* each connection's */
    nc_map handled;                    /* routes that have a handler (route_added) */
    nc_grpc_builtin builtin;           /* health and reflection */
} nc_grpc_server;

/* The call side of nc_grpc_conn_cbs (grpc_calls.c): a call's headers, messages, half-close and end
 * become a request of the core, and the core's replies its messages and status. */
void nc_grpc_on_call(nc_grpc_call *call);
void nc_grpc_on_message(nc_grpc_call *call, const char *data, size_t len, int compressed);
void nc_grpc_on_half_close(nc_grpc_call *call);
void nc_grpc_on_cancel(nc_grpc_call *call);
void nc_grpc_on_call_free(nc_grpc_call *call);
/* A watched call's pending bytes went down: the core runs the drain callbacks that are due. */
void nc_grpc_on_writable(nc_grpc_call *call);

#endif
