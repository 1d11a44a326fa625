/* The services every grpc:// server carries beside the user's (NestJS has none of them built in): the
 * standard health service grpc.health.v1.Health (Check, Watch, List) and server reflection
 * grpc.reflection.v1.ServerReflection and grpc.reflection.v1alpha.ServerReflection. Their calls are
 * answered here, without the core: no handler is registered for them. Private. */
#ifndef NC_GRPC_BUILTIN_H
#define NC_GRPC_BUILTIN_H

#include "codec/proto_parse.h"
#include "transport/grpc/grpc_conn.h"
#include "transport/grpc/grpc_methods.h"

typedef enum nc_grpc_builtin_kind {
    NC_GB_NONE = 0,
    NC_GB_CHECK,   /* Health/Check: unary */
    NC_GB_WATCH,   /* Health/Watch: server streaming, held open */
    NC_GB_LIST,    /* Health/List: unary */
    NC_GB_REFLECT, /* ServerReflectionInfo (v1 or v1alpha): bidi, one response per request */
} nc_grpc_builtin_kind;

typedef struct nc_grpc_watcher {
    nc_grpc_call *call; /* retained */
    char *service;
    int last; /* the status last sent */
} nc_grpc_watcher;

typedef struct nc_grpc_builtin {
    nc_pb_pool **pools; /* health.proto, reflection v1, reflection v1alpha */
    const nc_grpc_methods *methods;
    int health, reflection; /* each on unless turned off (options healthCheck, reflection) */
    int serving;            /* 1 while serving; 0 once the server stops accepting (graceful shutdown) */
    nc_grpc_watcher *watch;
    size_t nwatch, capwatch;
    /* statuses the application set (nc_server_set_health): a name, its status; they win over the default */
    struct nc_grpc_health_set {
        char *service;
        int status;
    } * set;
    size_t nset;
} nc_grpc_builtin;

/* Loads the bundled .proto files. Returns 0 or an nc_err with a reason in err. */
int nc_grpc_builtin_init(nc_grpc_builtin *b, const nc_grpc_methods *methods, int health, int reflection,
                         char *err, size_t errlen);
void nc_grpc_builtin_free(nc_grpc_builtin *b);
/* The built-in method at path (NC_GB_NONE: none, or turned off). */
nc_grpc_builtin_kind nc_grpc_builtin_find(const nc_grpc_builtin *b, const char *path);
/* A unary or server-streaming call's one request message (at the client's half-close): answered. */
void nc_grpc_builtin_request(nc_grpc_builtin *b, nc_grpc_call *call, nc_grpc_builtin_kind k, const char *data,
                             size_t len);
/* One message of a reflection stream: answered at once. */
void nc_grpc_builtin_reflect(nc_grpc_builtin *b, nc_grpc_call *call, const char *data, size_t len);
/* A Watch call ended (cancelled, or its connection went): no more updates for it. */
void nc_grpc_builtin_forget(nc_grpc_builtin *b, nc_grpc_call *call);
/* The server stops serving (graceful shutdown): every status becomes NOT_SERVING and watchers are told. */
void nc_grpc_builtin_not_serving(nc_grpc_builtin *b);
/* The application sets a service's status (1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN; "" = the
 * server): watchers of that name are told. Returns 0, NC_EUNSUPPORTED (health turned off), NC_ENOMEM. */
int nc_grpc_builtin_set_health(nc_grpc_builtin *b, const char *service, int status);
/* The server ends its connections: open Watch calls end with status 14 UNAVAILABLE. */
void nc_grpc_builtin_end_watches(nc_grpc_builtin *b);

#endif
