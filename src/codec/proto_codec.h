/* Protobuf wire bytes ⇄ jansson values, driven by the descriptors of proto_parse.h and mapped the way
 * @grpc/proto-loader 0.8 (protobufjs 7.6) maps them for NestJS: bytes → JSON is proto-loader's deserializer
 * (Type.decode, then Type.toObject(message, loaderOptions)), JSON → bytes its serializer (Type.fromObject,
 * then Type.encode). Every rule, and where nestc deliberately differs, is in docs/grpc.md §4 with the
 * protobufjs source it follows. Private; sans-I/O.
 *
 * The options are proto-loader's `loader` options that change the JavaScript objects (NestJS passes
 * `loader` through untouched, so its defaults are proto-loader's: camelCase names, longs and bytes as
 * objects JSON cannot hold, enums as numbers). Longs and bytes therefore have JSON forms here: longs as
 * decimal strings (`longs: String`) or numbers (`longs: Number`), bytes as base64 (`bytes: String`) or
 * arrays of numbers (`bytes: Array`). */
#ifndef NC_CODEC_PROTO_CODEC_H
#define NC_CODEC_PROTO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "codec/proto_parse.h"
#include "util/buf.h"

/* protobufjs's recursion limit (util.recursionLimit): deeper messages are refused both ways. */
#define NC_PB_MAX_DEPTH 100

typedef struct nc_pb_json_opts {
    uint8_t keep_case; /* keepCase: field names as written; 0: protobufjs camelCase (proto-loader default) */
    uint8_t longs_string; /* longs: String (decimal text); 0: Number (an exact JSON integer, see grpc.md) */
    uint8_t enums_string; /* enums: String (the value's name, the number when unknown); 0: numbers */
    uint8_t bytes_array;  /* bytes: Array (numbers 0..255); 0: String (standard base64) */
    uint8_t defaults;     /* defaults: absent fields get their default (messages null, lists [], maps {}) */
    uint8_t arrays;       /* arrays: absent repeated fields as [] */
    uint8_t objects;      /* objects: absent maps as {} */
    uint8_t oneofs;       /* oneofs: a member named after each oneof holds the name of its set field */
    uint8_t json;         /* json: NaN and infinities as "NaN", "Infinity", "-Infinity" (else null) */
    /* JSON → bytes only (not proto-loader options): */
    uint8_t any_case; /* accept both the written and the camelCase name of every field */
    uint8_t strict;   /* a member that names no field (nor oneof) is an error (protobufjs ignores it) */
} nc_pb_json_opts;

/* Decodes one message of type m from p[0..n). On success returns 0 and a new object in *out (caller
 * json_decref's it). NC_EPROTO on malformed bytes (truncated varint or length, bad wire type, nesting
 * deeper than NC_PB_MAX_DEPTH, a proto2 required field missing), NC_ENOMEM. err gets a reason. */
int nc_pb_decode(const nc_pb_msg *m, const void *p, size_t n, const nc_pb_json_opts *o, json_t **out,
                 char *err, size_t errlen);

/* Encodes the JSON value v (an object) as a message of type m, appended to out. Returns 0, NC_EINVAL when
 * v cannot be the message (a list that is not an array, a message that is not an object, a 64-bit string
 * that is not decimal, bad base64, an unknown member under `strict`, nesting deeper than NC_PB_MAX_DEPTH;
 * err names the field), NC_ENOMEM. On failure out->len is restored. */
int nc_pb_encode(const nc_pb_msg *m, const json_t *v, const nc_pb_json_opts *o, nc_buf *out, char *err,
                 size_t errlen);

#endif
