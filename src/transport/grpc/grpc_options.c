/* The options of grpc://: NestJS's GrpcOptions names (protoPath, package, loader.*, maxReceiveMessageLength),
 * flattened because nestc options are name=value pairs. */
#include <string.h>

#include "codec/grpc_wire.h"
#include "transport/grpc/grpc.h"
#include "transport/grpc/grpc_gzip.h"

static const char *const longs_choices[] = {"String", "Number", NULL};
static const char *const enums_choices[] = {"Number", "String", NULL};
static const char *const bytes_choices[] = {"String", "Array", NULL};
static const char *const compression_choices[] = {"identity", "deflate", "gzip", NULL};

/* the .proto and loader options are the client's too (grpc_client.c) */
#define PROTO_LEVELS (NC_OPT_SERVER | NC_OPT_CLIENT)

#define LOADER_BOOL(n, h)                                                                                    \
    { .name = n, .type = NC_OPT_BOOL, .levels = PROTO_LEVELS, .help = h, .def = "false" }

const nc_option_spec nc_grpc_options[] = {
    {.name = "protoPath",
     .type = NC_OPT_STRING,
     .levels = PROTO_LEVELS,
     .help = "the .proto file(s) to serve or to call, comma-separated (required)",
     .def = NULL},
    {.name = "package",
     .type = NC_OPT_STRING,
     .levels = PROTO_LEVELS,
     .help =
         "the package(s) whose services are served, comma-separated (default: every service, named in its "
         "own package)",
     .def = NULL},
    {.name = "includeDirs",
     .type = NC_OPT_STRING,
     .levels = PROTO_LEVELS,
     .help = "directories searched for imports, comma-separated (loader.includeDirs)",
     .def = NULL},
    LOADER_BOOL("keepCase", "field names as written in the .proto (loader.keepCase); default camelCase"),
    {.name = "longs",
     .type = NC_OPT_ENUM,
     .levels = PROTO_LEVELS,
     .help = "64-bit integers as decimal strings or exact JSON numbers (loader.longs)",
     .def = "String",
     .choices = longs_choices},
    {.name = "enums",
     .type = NC_OPT_ENUM,
     .levels = PROTO_LEVELS,
     .help = "enum values as numbers or names (loader.enums)",
     .def = "Number",
     .choices = enums_choices},
    {.name = "bytes",
     .type = NC_OPT_ENUM,
     .levels = PROTO_LEVELS,
     .help = "bytes fields as base64 strings or arrays of numbers (loader.bytes)",
     .def = "String",
     .choices = bytes_choices},
    LOADER_BOOL("defaults", "absent fields get their default value (loader.defaults)"),
    LOADER_BOOL("arrays", "absent repeated fields as [] (loader.arrays)"),
    LOADER_BOOL("objects", "absent maps as {} (loader.objects)"),
    LOADER_BOOL("oneofs", "a member per oneof naming its set field (loader.oneofs)"),
    LOADER_BOOL("json", "NaN and infinities as strings (loader.json)"),
    {.name = "maxReceiveMessageLength",
     .type = NC_OPT_INT,
     .levels = PROTO_LEVELS,
     .help = "largest request message in bytes (larger: status 8 RESOURCE_EXHAUSTED)",
     .def = "4194304",
     .min = 1,
     .max = 2147483647},
    {.name = "maxMetadataSize",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help =
         "largest request metadata in bytes, names and values, pseudo-headers included (larger: the stream "
         "is reset)",
     .def = "8192",
     .min = 1,
     .max = 2147483647},
    {.name = "maxSendMessageLength",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help = "largest response message in bytes, -1 for no limit (larger: the call ends with status 8 "
             "RESOURCE_EXHAUSTED)",
     .def = "-1",
     .min = -1,
     .max = 2147483647},
    {.name = "defaultCompressionAlgorithm",
     .type = NC_OPT_ENUM,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "server: compress responses with gzip or deflate for clients that accept it; client: compress "
             "every request message (channelOptions grpc.default_compression_algorithm); default identity",
     .def = "identity",
     .choices = compression_choices},
    /* NestJS's keepalive object, flattened; maxConnectionIdleMs is channelOptions grpc.max_connection_idle_ms
     */
    {.name = "keepaliveTimeMs",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "send a PING after this many ms (from the last ACK; a client only while calls are open, unless "
             "keepalivePermitWithoutCalls); 0: never (keepalive.keepaliveTimeMs, grpc.keepalive_time_ms)",
     .def = "0",
     .min = 0,
     .max = 2147483647},
    {.name = "keepaliveTimeoutMs",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help =
         "close the connection when a PING is not acknowledged within this many ms (a client's calls then "
         "fail with 14 UNAVAILABLE) (keepalive.keepaliveTimeoutMs)",
     .def = "20000",
     .min = 1,
     .max = 2147483647},
    {.name = "keepalivePermitWithoutCalls",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "server: client PINGs on a connection without calls are policed by "
             "http2MinPingIntervalWithoutDataMs rather than two hours; client: keepalive PINGs also without "
             "calls "
             "(keepalive.keepalivePermitWithoutCalls)",
     .def = "false"},
    {.name = "http2MinPingIntervalWithoutDataMs",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help = "client PINGs sooner than this after the previous one, with nothing sent since, are strikes; 0: "
             "not policed, as grpc-js (keepalive.http2MinPingIntervalWithoutDataMs)",
     .def = "0",
     .min = 0,
     .max = 2147483647},
    {.name = "http2MaxPingStrikes",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help =
         "strikes allowed before GOAWAY ENHANCE_YOUR_CALM \"too_many_pings\" (keepalive.http2MaxPingStrikes)",
     .def = "2",
     .min = 0,
     .max = 2147483647},
    {.name = "maxConnectionIdleMs",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help = "a connection without calls for this many ms gets GOAWAY and ends; 0: never "
             "(grpc.max_connection_idle_ms)",
     .def = "0",
     .min = 0,
     .max = 2147483647},
    {.name = "maxConnectionAgeMs",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help =
         "a connection gets GOAWAY this many ms (+-10 %) after it opened; calls in flight go on; 0: never "
         "(grpc.max_connection_age_ms)",
     .def = "0",
     .min = 0,
     .max = 2147483647},
    {.name = "maxConnectionAgeGraceMs",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help = "after the age GOAWAY, calls still open this many ms later are cut (the connection closed); 0: "
             "they finish (grpc.max_connection_age_grace_ms)",
     .def = "0",
     .min = 0,
     .max = 2147483647},
    /* beyond NestJS: the standard health and reflection services, built in */
    {.name = "healthCheck",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER,
     .help = "serve grpc.health.v1.Health (Check, Watch, List): SERVING while serving, NOT_SERVING when "
             "shutting down",
     .def = "true"},
    {.name = "reflection",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER,
     .help = "serve gRPC server reflection (grpc.reflection.v1 and v1alpha): the services and their .proto "
             "descriptors",
     .def = "true"},
    {.name = NULL},
};

int nc_grpc_compression_opt(const nc_optset *o) {
    const char *alg = nc_opts_str(o, "defaultCompressionAlgorithm");
    return !strcmp(alg, "gzip") ? NC_GRPC_GZIP : !strcmp(alg, "deflate") ? NC_GRPC_DEFLATE : NC_GRPC_IDENTITY;
}

void nc_grpc_json_opts(const nc_optset *o, nc_pb_json_opts *out) {
    memset(out, 0, sizeof *out);
    out->keep_case = (uint8_t)nc_opts_bool(o, "keepCase");
    out->longs_string = !strcmp(nc_opts_str(o, "longs"), "String");
    out->enums_string = !strcmp(nc_opts_str(o, "enums"), "String");
    out->bytes_array = !strcmp(nc_opts_str(o, "bytes"), "Array");
    out->defaults = (uint8_t)nc_opts_bool(o, "defaults");
    out->arrays = (uint8_t)nc_opts_bool(o, "arrays");
    out->objects = (uint8_t)nc_opts_bool(o, "objects");
    out->oneofs = (uint8_t)nc_opts_bool(o, "oneofs");
    out->json = (uint8_t)nc_opts_bool(o, "json");
    /* replies are read as a handler wrote them: either spelling of a field name */
    out->any_case = 1;
}
