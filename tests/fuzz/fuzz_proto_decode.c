/* libFuzzer: the protobuf wire decoder and encoder (codec/proto_decode.c, proto_encode.c) on a .proto
 * with every field kind (tests/vectors/grpc/types.proto, inlined). The first byte picks the message type
 * and the loader options, the rest is the message. Whatever decodes must encode again, and decoding
 * those bytes must give the same JSON (64-bit integers as text, non-finite numbers as text, so that no
 * value is rounded or dropped on the way). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/proto_codec.h"
#include "codec/proto_parse.h"

#include "../unit/json_value_equal.h"

static const char proto[] =
    "syntax = \"proto3\"; package t; import \"google/protobuf/timestamp.proto\";"
    "enum Kind { option allow_alias = true; K0 = 0; K1 = 1; K2 = 2; KB = 2; KN = -1; }"
    "message Scalars { double f_double = 1; float f_float = 2; int64 f_int64 = 3; uint64 f_uint64 = 4;"
    " int32 f_int32 = 5; fixed64 f_fixed64 = 6; fixed32 f_fixed32 = 7; bool f_bool = 8; string f_string = 9;"
    " bytes f_bytes = 10; uint32 f_uint32 = 11; sfixed32 f_sfixed32 = 12; sfixed64 f_sfixed64 = 13;"
    " sint32 f_sint32 = 14; sint64 f_sint64 = 15; Kind f_enum = 16; }"
    "message Lists { repeated double r_double = 1; repeated float r_float = 2; repeated int64 r_int64 = 3;"
    " repeated uint64 r_uint64 = 4; repeated int32 r_int32 = 5; repeated fixed64 r_fixed64 = 6;"
    " repeated fixed32 r_fixed32 = 7; repeated bool r_bool = 8; repeated string r_string = 9;"
    " repeated bytes r_bytes = 10; repeated uint32 r_uint32 = 11; repeated sfixed32 r_sfixed32 = 12;"
    " repeated sfixed64 r_sfixed64 = 13; repeated sint32 r_sint32 = 14; repeated sint64 r_sint64 = 15;"
    " repeated Kind r_enum = 16; repeated Scalars r_msg = 17; repeated int32 r_unpacked = 18 [packed = "
    "false]; }"
    "message Maps { map<string, string> m_str = 1; map<int32, int64> m_int = 2; map<uint32, Kind> m_enum = 3;"
    " map<string, Scalars> m_msg = 4; map<sint32, bytes> m_bytes = 5; map<fixed32, double> m_fixed = 6;"
    " map<bool, string> m_bool = 7; map<int64, string> m_long = 8; map<uint64, int32> m_ulong = 9; }"
    "message Outer { message Inner { string camel_case_name = 1; Inner next = 2; } Inner inner = 1;"
    " oneof pick { string pick_text = 2; Inner pick_inner = 3; int64 pick_long = 4; } optional int32 maybe = "
    "5;"
    " google.protobuf.Timestamp when = 6; Lists lists = 7; Maps maps = 8; repeated Outer children = 11; }";

static const char proto2[] =
    "syntax = \"proto2\"; package t2; enum C { RED = 1; GREEN = 2; }"
    "message R { required int32 id = 1; optional C c = 2; repeated int32 p = 3 [packed=true]; }";

static int read_one(void *user, const char *path, char **text, size_t *len) {
    const char *t = strcmp(path, "t2.proto") == 0 ? proto2 : proto;
    (void)user;
    *len = strlen(t);
    *text = strdup(t);
    return *text ? 0 : NC_ENOMEM;
}

static nc_pb_pool *pool, *pool2;
static const nc_pb_msg *types[6];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (nc_proto_load(&pool, "t.proto", NULL, 0, read_one, NULL, NULL, NULL, 0) ||
        nc_proto_load(&pool2, "t2.proto", NULL, 0, read_one, NULL, NULL, NULL, 0))
        abort();
    const char *names[] = {"t.Scalars", "t.Lists", "t.Maps", "t.Outer", "t.Outer.Inner"};
    for (int i = 0; i < 5; i++)
        if (!(types[i] = nc_proto_message(pool, names[i]))) abort();
    if (!(types[5] = nc_proto_message(pool2, "t2.R"))) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    const nc_pb_msg *m = types[data[0] % 6];
    unsigned f = data[0] / 6;
    nc_pb_json_opts o = {.keep_case = f & 1,
                         .longs_string = 1,
                         .enums_string = (f >> 1) & 1,
                         .bytes_array = (f >> 2) & 1,
                         .defaults = (f >> 3) & 1,
                         .arrays = (f >> 4) & 1,
                         .oneofs = (f >> 5) & 1,
                         .json = 1};
    json_t *v = NULL, *again = NULL;
    char err[128];
    int rc = nc_pb_decode(m, data + 1, size - 1, &o, &v, err, sizeof err);
    if (rc) {
        if (v || (rc != NC_EPROTO && rc != NC_ENOMEM)) abort();
        return 0;
    }
    nc_buf b = NC_BUF_INIT;
    o.strict = 1; /* what the decoder writes names only fields and oneofs */
    if (nc_pb_encode(m, v, &o, &b, err, sizeof err)) abort();
    if (nc_pb_decode(m, b.data, b.len, &o, &again, err, sizeof err)) abort();
    if (!json_value_equal(v, again)) abort();
    json_decref(v);
    json_decref(again);
    nc_buf_free(&b);
    return 0;
}
