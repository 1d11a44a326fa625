/* The google/protobuf files protobufjs carries inside itself (its common.js), so that a .proto
 * importing them loads without those files on disk, as it does under @grpc/proto-loader. Private. */
#ifndef NC_CODEC_PROTO_BUNDLED_H
#define NC_CODEC_PROTO_BUNDLED_H

/* The text of a bundled file for an import name ending in "google/protobuf/<file>.proto", or NULL. */
const char *nc_proto_bundled(const char *import_name);

#endif
