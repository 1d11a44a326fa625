/* descriptor.proto's FileDescriptorProto of a file nestc parsed (codec/proto_parse.h), for server
 * reflection (grpc_builtin.c). Private. */
#ifndef NC_GRPC_DESCRIPTOR_H
#define NC_GRPC_DESCRIPTOR_H

#include <stddef.h>

#include "codec/proto_parse.h"
#include "util/buf.h"

/* Appends the FileDescriptorProto of file `fi` of the pool to out: name, package, dependencies (by their
 * names), messages with nested messages and enums, fields (map fields as protoc writes them: a repeated
 * entry message with option map_entry), oneofs (proto3 optional ones flagged), enums, services, syntax.
 * Options other than packed, map_entry and allow_alias are not carried (the parser skips them). Returns 0,
 * NC_EINVAL (no such file) or NC_ENOMEM. */
int nc_grpc_file_descriptor(const nc_pb_pool *pool, size_t fi, nc_buf *out);
/* The index of the file that declares a symbol (message, enum, service, or "Service.Method"), or -1. */
long nc_grpc_symbol_file(const nc_pb_pool *pool, const char *symbol);

#endif
