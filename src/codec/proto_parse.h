/* .proto files → descriptors, the way @grpc/proto-loader 0.8 (protobufjs 7) reads them for NestJS's gRPC
 * transport (docs/grpc.md §3). Private.
 *
 * Sans-I/O: the parser never opens a file. It asks a callback for the text of each file it needs (the
 * root file, then every import, each once), so unit tests and the fuzzer feed it text directly and the
 * transport decides where files come from. Caps on file size, file count, nesting and definitions bound
 * what a hostile or broken file can make it allocate.
 *
 * Understood: syntax "proto2" / "proto3" (no syntax line: proto2, as protoc and protobufjs), package,
 * import (plain, public, weak), message (nested messages and enums), fields with labels (optional,
 * required, repeated; proto3 "optional" as a one-member oneof "_name", as protobufjs builds it), map<K,V>,
 * oneof, enum, service with rpc and stream, reserved and extensions ranges (skipped), option statements
 * and [field options] (only `packed` is read; everything else is skipped, aggregate values included),
 * extend blocks (skipped: extensions are not mapped), // and block comments.
 * Refused with an error: editions (`edition = "2023"`), groups, unresolved type names, duplicate field
 * numbers or names, field numbers outside 1..2^29-1. */
#ifndef NC_CODEC_PROTO_PARSE_H
#define NC_CODEC_PROTO_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Field types, numbered as in descriptor.proto's FieldDescriptorProto.Type. */
typedef enum nc_pb_type {
    NC_PB_DOUBLE = 1,
    NC_PB_FLOAT = 2,
    NC_PB_INT64 = 3,
    NC_PB_UINT64 = 4,
    NC_PB_INT32 = 5,
    NC_PB_FIXED64 = 6,
    NC_PB_FIXED32 = 7,
    NC_PB_BOOL = 8,
    NC_PB_STRING = 9,
    NC_PB_MESSAGE = 11,
    NC_PB_BYTES = 12,
    NC_PB_UINT32 = 13,
    NC_PB_ENUM = 14,
    NC_PB_SFIXED32 = 15,
    NC_PB_SFIXED64 = 16,
    NC_PB_SINT32 = 17,
    NC_PB_SINT64 = 18,
} nc_pb_type;

typedef enum nc_pb_label { NC_PB_OPTIONAL = 1, NC_PB_REQUIRED = 2, NC_PB_REPEATED = 3 } nc_pb_label;

typedef struct nc_pb_msg nc_pb_msg;
typedef struct nc_pb_enum nc_pb_enum;

typedef struct nc_pb_field {
    const char *name;  /* as written in the .proto (proto-loader keepCase: true) */
    const char *camel; /* protobufjs's util.camelCase of it (keepCase: false, NestJS's default) */
    uint32_t number;
    uint8_t type;          /* nc_pb_type; for a map: the value's type */
    uint8_t label;         /* nc_pb_label; a map is NC_PB_REPEATED with is_map */
    uint8_t packed;        /* repeated scalar written packed (proto3 unless [packed=false]; proto2 if true) */
    uint8_t is_map;        /* map<key_type, type> */
    uint8_t key_type;      /* nc_pb_type of a map's key */
    int oneof;             /* index into the message's oneofs, -1 when none */
    const nc_pb_msg *msg;  /* NC_PB_MESSAGE: the resolved type */
    const nc_pb_enum *en;  /* NC_PB_ENUM: the resolved type */
    const char *type_name; /* the reference as written (for messages in errors) */
} nc_pb_field;

typedef struct nc_pb_oneof {
    const char *name;  /* as written; "_field" for a proto3 optional field */
    const char *camel; /* camelCase form ("_" + camelCase(field) for proto3 optional) */
} nc_pb_oneof;

struct nc_pb_msg {
    const char *full_name; /* "pkg.Outer.Inner" (no leading dot) */
    nc_pb_field *fields;   /* sorted by number */
    size_t nfields;
    nc_pb_oneof *oneofs;
    size_t noneofs;
    /* fields by name, for JSON → bytes: indexes into fields sorted by name / by camel */
    uint32_t *by_name;
    uint32_t *by_camel;
    uint32_t file; /* index of the file that declares it (nc_proto_file_at) */
};

typedef struct nc_pb_enum_value {
    const char *name;
    int32_t number;
} nc_pb_enum_value;

struct nc_pb_enum {
    const char *full_name;
    nc_pb_enum_value *values; /* declaration order; values[0] is the default (protobufjs typeDefault) */
    size_t nvalues;
    uint32_t file; /* index of the file that declares it */
};

typedef struct nc_pb_method {
    const char *name;
    const nc_pb_msg *input;
    const nc_pb_msg *output;
    uint8_t client_stream;
    uint8_t server_stream;
    const char *in_name, *out_name; /* the type references as written, resolved in the service's package */
} nc_pb_method;

typedef struct nc_pb_service {
    const char *full_name; /* "pkg.Service" */
    const char *package;   /* the package its file declared ("" for none) */
    nc_pb_method *methods;
    size_t nmethods;
    uint32_t file; /* index of the file that declares it */
} nc_pb_service;

/* One file of a pool, for what needs the files themselves (server reflection's FileDescriptorProtos). */
typedef struct nc_pb_file {
    const char *name;    /* the root path as given, or the import as written that first reached the file */
    const char *package; /* "" for none */
    uint8_t proto3;
    const char **deps; /* the names (nc_pb_file.name) of the files it imports, in import order; a weak import
                          that was not found is left out */
    size_t ndeps;
} nc_pb_file;

/* Everything loaded from one root file and its imports. Read-only once nc_proto_load returns: it may be
 * shared by threads. */
typedef struct nc_pb_pool nc_pb_pool;

/* Hands the parser the text of a file. `path` is the root path as given to nc_proto_load, or an import
 * joined to an include directory ("dir/a/b.proto") or to the importing file's directory. On success store
 * a malloc'ed buffer in *text (the parser frees it) and its length in *len and return 0; return 1 when
 * there is no such file (the next candidate is tried), or a negative nestc error to stop loading. */
typedef int (*nc_proto_read_fn)(void *user, const char *path, char **text, size_t *len);

typedef struct nc_proto_limits {
    size_t max_file_bytes; /* one file; 0: 4 MiB */
    size_t max_files;      /* root + imports; 0: 256 */
    size_t max_depth;      /* nested messages and blocks, and the import chain; 0: 64 */
    size_t max_defs;       /* messages + enums + services + fields + values in all; 0: 1,000,000 */
} nc_proto_limits;

/* Loads `path` and, recursively, its imports. `include_dirs` are tried in order for each import, as
 * proto-loader's includeDirs option does; an import found in none (or with no include dirs) is read
 * relative to the directory of the file that imports it (protobufjs's own rule). google/protobuf/X.proto
 * imports that the callback does not find come from the copies protobufjs bundles (empty, timestamp,
 * duration, wrappers, struct, any, field_mask).
 * Returns 0 with *out set (free with nc_proto_free), NC_EINVAL on a syntax or resolution error (with a
 * "file:line:col: reason" message in err), NC_ENOENT when a file is found nowhere, NC_ETOOBIG when a cap
 * is hit, NC_ENOMEM, or what the callback returned. lim may be NULL (defaults). */
int nc_proto_load(nc_pb_pool **out, const char *path, const char *const *include_dirs, size_t ndirs,
                  nc_proto_read_fn read, void *user, const nc_proto_limits *lim, char *err, size_t errlen);

void nc_proto_free(nc_pb_pool *pool);

/* Lookups by fully qualified name without the leading dot ("nestc.conformance.EchoMessage"); NULL if
 * absent. */
const nc_pb_msg *nc_proto_message(const nc_pb_pool *pool, const char *full_name);
const nc_pb_enum *nc_proto_enum(const nc_pb_pool *pool, const char *full_name);
const nc_pb_service *nc_proto_service(const nc_pb_pool *pool, const char *full_name);
/* The services in load order (index < count); NULL past the end. */
const nc_pb_service *nc_proto_service_at(const nc_pb_pool *pool, size_t i);
/* The files in load order (the root first), the messages and enums in name order (index < count); NULL past
 * the end. */
const nc_pb_file *nc_proto_file_at(const nc_pb_pool *pool, size_t i);
const nc_pb_msg *nc_proto_message_at(const nc_pb_pool *pool, size_t i);
const nc_pb_enum *nc_proto_enum_at(const nc_pb_pool *pool, size_t i);
/* A method of a service by name; NULL if absent. */
const nc_pb_method *nc_proto_method(const nc_pb_service *svc, const char *name);

#endif
