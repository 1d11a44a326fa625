/* The methods a gRPC server serves: the .proto files loaded at start (NestJS protoPath, package, the
 * loader's includeDirs) and, for each method, its path and the handler keys NestJS would look it up by.
 * Private. */
#ifndef NC_GRPC_METHODS_H
#define NC_GRPC_METHODS_H

#include <stddef.h>

#include "codec/proto_parse.h"
#include "util/map.h"

typedef struct nc_grpc_method {
    char *path; /* "/pkg.Service/Method" */
    const nc_pb_method *m;
    /* The routes of NestJS's handler key {service, rpc, streaming} (server-grpc.js): the service named
     * relative to its package, then fully qualified (tried second, as NestJS does). streaming is
     * "rx_stream" for a method whose request is a stream, else "no_stream". */
    char *route_rel;
    char *route_full;
} nc_grpc_method;

typedef struct nc_grpc_methods {
    nc_pb_pool **pools; /* one per protoPath */
    size_t npools;
    nc_grpc_method *v;
    size_t n;
    nc_map by_path; /* path -> nc_grpc_method * */
} nc_grpc_methods;

/* Loads every file of proto_paths (comma-separated) with include_dirs (comma-separated, may be NULL) and
 * registers the services under each package of `packages` (comma-separated; NULL: every service, named
 * relative to its own package). A package with no service is an error, as NestJS's "invalid gRPC
 * package". Returns 0 or an nc_err with a reason in err. */
int nc_grpc_methods_load(nc_grpc_methods *t, const char *proto_paths, const char *packages,
                         const char *include_dirs, char *err, size_t errlen);
void nc_grpc_methods_free(nc_grpc_methods *t);
/* The method at path, or NULL. */
const nc_grpc_method *nc_grpc_methods_find(const nc_grpc_methods *t, const char *path, size_t len);

#endif
