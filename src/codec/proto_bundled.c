/* The well-known types as protobufjs 7 bundles them (src/common.js): the same messages and field numbers.
 * descriptor.proto is here only so that files declaring custom options load: its messages are not
 * defined (extend blocks are skipped by the parser, so nothing refers to them). */
#include "codec/proto_bundled.h"

#include <string.h>

static const struct {
    const char *name;
    const char *text;
} bundled[] = {
    {"google/protobuf/any.proto", "syntax = \"proto3\"; package google.protobuf;"
                                  "message Any { string type_url = 1; bytes value = 2; }"},
    {"google/protobuf/duration.proto", "syntax = \"proto3\"; package google.protobuf;"
                                       "message Duration { int64 seconds = 1; int32 nanos = 2; }"},
    {"google/protobuf/empty.proto", "syntax = \"proto3\"; package google.protobuf; message Empty {}"},
    {"google/protobuf/field_mask.proto", "syntax = \"proto3\"; package google.protobuf;"
                                         "message FieldMask { repeated string paths = 1; }"},
    {"google/protobuf/struct.proto",
     "syntax = \"proto3\"; package google.protobuf;"
     "message Struct { map<string, Value> fields = 1; }"
     "message Value { oneof kind { NullValue null_value = 1; double number_value = 2; string string_value = "
     "3;"
     " bool bool_value = 4; Struct struct_value = 5; ListValue list_value = 6; } }"
     "enum NullValue { NULL_VALUE = 0; }"
     "message ListValue { repeated Value values = 1; }"},
    {"google/protobuf/timestamp.proto", "syntax = \"proto3\"; package google.protobuf;"
                                        "message Timestamp { int64 seconds = 1; int32 nanos = 2; }"},
    {"google/protobuf/wrappers.proto",
     "syntax = \"proto3\"; package google.protobuf;"
     "message DoubleValue { double value = 1; } message FloatValue { float value = 1; }"
     "message Int64Value { int64 value = 1; } message UInt64Value { uint64 value = 1; }"
     "message Int32Value { int32 value = 1; } message UInt32Value { uint32 value = 1; }"
     "message BoolValue { bool value = 1; } message StringValue { string value = 1; }"
     "message BytesValue { bytes value = 1; }"},
    {"google/protobuf/descriptor.proto", "syntax = \"proto2\"; package google.protobuf;"},
};

const char *nc_proto_bundled(const char *import_name) {
    /* protobufjs: whatever precedes "google/protobuf/" in the import is ignored */
    const char *k = NULL, *p = import_name;
    while ((p = strstr(p, "google/protobuf/")) != NULL) k = p++;
    if (!k) return NULL;
    for (size_t i = 0; i < sizeof bundled / sizeof bundled[0]; i++)
        if (strcmp(bundled[i].name, k) == 0) return bundled[i].text;
    return NULL;
}
