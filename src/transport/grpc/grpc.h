/* The gRPC transport's ops tables and options (grpc://). Private. */
#ifndef NC_TRANSPORT_GRPC_H
#define NC_TRANSPORT_GRPC_H

#include "codec/proto_codec.h"
#include "core/options.h"
#include "transport/transport.h"

extern const nc_server_transport nc_grpc_server_transport;
extern const nc_option_spec nc_grpc_options[];
/* grpc:// and grpcs:// (grpc_client.c) */
extern const nc_client_transport nc_grpc_client_transport;

/* The loader options (proto-loader's names) of an option set, as the codec takes them. */
void nc_grpc_json_opts(const nc_optset *o, nc_pb_json_opts *out);
/* defaultCompressionAlgorithm as the message codings of grpc_gzip.h (NC_GRPC_IDENTITY when unset). */
int nc_grpc_compression_opt(const nc_optset *o);

#endif
