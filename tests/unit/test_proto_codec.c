/* The .proto parser (codec/proto_parse.c) and the protobuf ⇄ JSON codec (codec/proto_encode.c,
 * proto_decode.c) against @grpc/proto-loader: every vector of tests/vectors/grpc/codec.json (written by
 * gen-vectors.mjs through proto-loader's own serializers) is replayed, JSON → bytes compared byte for
 * byte and bytes → JSON compared as values, under the loader options recorded with it. Then the parser's
 * rules and errors one by one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_write.h"
#include "codec/proto_codec.h"
#include "codec/proto_parse.h"

#include "json_value_equal.h"

#ifndef NESTC_VECTORS_DIR
#error "NESTC_VECTORS_DIR must point at tests/vectors"
#endif
#define GRPC_DIR NESTC_VECTORS_DIR "/grpc"

/* ---- helpers ---------------------------------------------------------------------------------------- */

static int read_disk(void *user, const char *path, char **text, size_t *len) {
    (void)user;
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    nc_buf b = NC_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (nc_buf_append(&b, chunk, n)) break;
    fclose(f);
    *len = b.len;
    *text = nc_buf_steal(&b, NULL);
    return *text ? 0 : NC_ENOMEM;
}

/* Files held in memory: name → text, for the parser's own cases. */
typedef struct mem_fs {
    const char *const *names;
    const char *const *texts;
    size_t n;
    int reads;
} mem_fs;

static int read_mem(void *user, const char *path, char **text, size_t *len) {
    mem_fs *fs = user;
    fs->reads++;
    for (size_t i = 0; i < fs->n; i++)
        if (!strcmp(fs->names[i], path)) {
            *len = strlen(fs->texts[i]);
            *text = strdup(fs->texts[i]);
            return *text ? 0 : NC_ENOMEM;
        }
    return 1;
}

static nc_pb_pool *load_text(const char *text, char *err, size_t errlen, int *rc) {
    const char *names[] = {"t.proto"}, *texts[] = {text};
    mem_fs fs = {names, texts, 1, 0};
    nc_pb_pool *pool = NULL;
    *rc = nc_proto_load(&pool, "t.proto", NULL, 0, read_mem, &fs, NULL, err, errlen);
    return pool;
}

static nc_pb_pool *load_vector_proto(const char *name) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s", GRPC_DIR, name);
    const char *dirs[] = {GRPC_DIR, GRPC_DIR "/inc"};
    nc_pb_pool *pool = NULL;
    int rc = nc_proto_load(&pool, path, dirs, 2, read_disk, NULL, NULL, err, sizeof err);
    if (rc) fail_msg("%s: %d %s", name, rc, err);
    return pool;
}

static void opts_from(const json_t *set, nc_pb_json_opts *o) {
    memset(o, 0, sizeof *o);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)set, k, v) {
        int t = json_is_true(v);
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (!strcmp(k, "keepCase"))
            o->keep_case = (uint8_t)t;
        else if (!strcmp(k, "longs"))
            o->longs_string = !strcmp(s, "String");
        else if (!strcmp(k, "enums"))
            o->enums_string = !strcmp(s, "String");
        else if (!strcmp(k, "bytes"))
            o->bytes_array = !strcmp(s, "Array");
        else if (!strcmp(k, "defaults"))
            o->defaults = (uint8_t)t;
        else if (!strcmp(k, "arrays"))
            o->arrays = (uint8_t)t;
        else if (!strcmp(k, "objects"))
            o->objects = (uint8_t)t;
        else if (!strcmp(k, "oneofs"))
            o->oneofs = (uint8_t)t;
        else if (!strcmp(k, "json"))
            o->json = (uint8_t)t;
        else
            fail_msg("unknown loader option %s", k);
    }
}

static char *text_of(const json_t *v) {
    nc_buf b = NC_BUF_INIT;
    if (nc_json_write(&b, v)) return strdup("?");
    return nc_buf_steal(&b, NULL);
}

static size_t unhex(const char *h, uint8_t *out) {
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void hex_of(const char *p, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", (unsigned char)p[i]);
    out[2 * n] = 0;
}

/* Where nestc deliberately differs from protobufjs (docs/grpc.md §4.5): the vector's name, and what nestc
 * gives instead (JSON text, or NULL: an error where protobufjs succeeds). */
static const struct {
    const char *name;
    const char *ours; /* with the "proto" option set */
} divergences[] = {
    /* protobufjs: toObject(null) throws on a message map value missing from its entry; nestc: an empty
     * message, as protoc-generated code reads it */
    {"maps.msg-entry-without-value", "{\"m_msg\":{\"x\":{}}}"},
    /* protobufjs's BufferReader.string clamps a string's length to the bytes left (a truncated message
     * passes); nestc refuses a length beyond the end for strings as for every other field */
    {"error.truncated-length", NULL},
};

static int divergence(const char *name, const char **ours) {
    for (size_t i = 0; i < sizeof divergences / sizeof divergences[0]; i++)
        if (!strcmp(divergences[i].name, name)) {
            *ours = divergences[i].ours;
            return 1;
        }
    return 0;
}

/* ---- the vectors ------------------------------------------------------------------------------------ */

typedef struct vec_ctx {
    json_t *root;
    nc_pb_pool *types, *conformance, *legacy;
} vec_ctx;

static int vec_setup(void **state) {
    static vec_ctx c;
    char *text, err[256];
    size_t len;
    /* nc_json_parse: integers beyond int64 (JavaScript numbers) become doubles instead of failing */
    if (read_disk(NULL, GRPC_DIR "/codec.json", &text, &len)) fail_msg("codec.json: cannot read");
    if (nc_json_parse(text, len, &c.root, err, sizeof err)) fail_msg("codec.json: %s", err);
    free(text);
    c.types = load_vector_proto("types.proto");
    c.conformance = load_vector_proto("conformance.proto");
    c.legacy = load_vector_proto("legacy.proto");
    *state = &c;
    return 0;
}

static int vec_teardown(void **state) {
    vec_ctx *c = *state;
    json_decref(c->root);
    nc_proto_free(c->types);
    nc_proto_free(c->conformance);
    nc_proto_free(c->legacy);
    return 0;
}

static const nc_pb_msg *vec_type(vec_ctx *c, const json_t *v) {
    const char *proto = json_string_value(json_object_get(v, "proto"));
    nc_pb_pool *pool = !strcmp(proto, "types.proto")         ? c->types
                       : !strcmp(proto, "conformance.proto") ? c->conformance
                                                             : c->legacy;
    const nc_pb_msg *m = nc_proto_message(pool, json_string_value(json_object_get(v, "type")));
    assert_non_null(m);
    return m;
}

static void test_encode_vectors(void **state) {
    vec_ctx *c = *state;
    json_t *sets = json_object_get(c->root, "option_sets"), *v;
    size_t i, checked = 0;
    json_array_foreach(json_object_get(c->root, "encode"), i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *text = json_string_value(json_object_get(v, "json_text"));
        nc_pb_json_opts o;
        opts_from(json_object_get(sets, json_string_value(json_object_get(v, "opts"))), &o);
        json_t *in;
        char err[256];
        assert_int_equal(nc_json_parse(text, strlen(text), &in, err, sizeof err), 0);
        nc_buf out = NC_BUF_INIT;
        int rc = nc_pb_encode(vec_type(c, v), in, &o, &out, err, sizeof err);
        const char *want = json_string_value(json_object_get(v, "hex"));
        if (!want) {
            if (rc == 0)
                fail_msg("%s: protobufjs refuses it (%s), nestc encoded it", name,
                         json_string_value(json_object_get(v, "error")));
            assert_int_equal(rc, NC_EINVAL);
            assert_int_equal(out.len, 0);
        } else {
            if (rc) fail_msg("%s: %d %s", name, rc, err);
            char *got = malloc(out.len * 2 + 1);
            hex_of(out.data ? out.data : "", out.len, got);
            if (strcmp(got, want)) fail_msg("%s:\n  want %s\n  got  %s", name, want, got);
            free(got);
        }
        nc_buf_free(&out);
        json_decref(in);
        checked++;
    }
    assert_true(checked >= 40);
}

static void test_decode_vectors(void **state) {
    vec_ctx *c = *state;
    json_t *sets = json_object_get(c->root, "option_sets"), *v;
    size_t i, checked = 0;
    json_array_foreach(json_object_get(c->root, "decode"), i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *set = json_string_value(json_object_get(v, "opts"));
        const char *hex = json_string_value(json_object_get(v, "hex"));
        nc_pb_json_opts o;
        opts_from(json_object_get(sets, set), &o);
        uint8_t *bytes = malloc(strlen(hex) / 2 + 1);
        size_t n = unhex(hex, bytes);
        json_t *got = NULL;
        char err[256];
        int rc = nc_pb_decode(vec_type(c, v), bytes, n, &o, &got, err, sizeof err);
        json_t *want = json_object_get(v, "json");
        const char *ours;
        if (divergence(name, &ours)) {
            if (!ours)
                assert_int_equal(rc, NC_EPROTO);
            else if (!strcmp(set, "proto")) {
                json_t *w;
                assert_int_equal(nc_json_parse(ours, strlen(ours), &w, NULL, 0), 0);
                if (rc || !json_value_equal(got, w)) fail_msg("%s: the documented divergence changed", name);
                json_decref(w);
            }
        } else if (!want) {
            if (rc == 0) {
                char *t = text_of(got);
                fail_msg("%s [%s]: protobufjs refuses it (%s), nestc gave %s", name, set,
                         json_string_value(json_object_get(v, "error")), t);
            }
            assert_int_equal(rc, NC_EPROTO);
        } else {
            if (rc) fail_msg("%s [%s]: %d %s", name, set, rc, err);
            if (!json_value_equal(got, want)) {
                char *a = text_of(want), *b = text_of(got);
                fail_msg("%s [%s]:\n  want %s\n  got  %s", name, set, a, b);
            }
        }
        json_decref(got);
        free(bytes);
        checked++;
    }
    assert_true(checked >= 300);
}

/* Decoding what was encoded gives the input back (for inputs already in the canonical JSON form). */
static void test_round_trip(void **state) {
    vec_ctx *c = *state;
    const nc_pb_msg *m = nc_proto_message(c->conformance, "nestc.conformance.EchoMessage");
    assert_non_null(m);
    const char *text =
        "{\"text\":\"t\",\"big\":\"-5\",\"flag\":true,\"numbers\":[1,2],\"nested\":{\"name\":\"n\"},"
        "\"blob\":\"AAE=\",\"color\":\"GREEN\",\"choice_number\":\"7\",\"ratio\":0.5,"
        "\"ubig\":\"18446744073709551615\",\"small\":-3,\"tags\":[\"x\"],\"counts\":{\"a\":1},"
        "\"items\":[{\"value\":2}],\"choice\":\"choice_number\"}";
    nc_pb_json_opts o = {.keep_case = 1, .longs_string = 1, .enums_string = 1, .oneofs = 1, .strict = 1};
    json_t *in, *back;
    assert_int_equal(nc_json_parse(text, strlen(text), &in, NULL, 0), 0);
    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_pb_encode(m, in, &o, &b, NULL, 0), 0);
    assert_int_equal(nc_pb_decode(m, b.data, b.len, &o, &back, NULL, 0), 0);
    assert_true(json_value_equal(in, back));
    json_decref(in);
    json_decref(back);
    nc_buf_free(&b);
}

static void test_strict_and_any_case(void **state) {
    vec_ctx *c = *state;
    const nc_pb_msg *m = nc_proto_message(c->types, "nestc.types.Outer");
    nc_pb_json_opts o = {.keep_case = 1, .strict = 1};
    char err[128];
    nc_buf b = NC_BUF_INIT;
    json_t *v = json_pack("{s:s}", "snakeFieldName", "x");
    assert_int_equal(nc_pb_encode(m, v, &o, &b, err, sizeof err), NC_EINVAL);
    assert_non_null(strstr(err, "unknown field 'snakeFieldName'"));
    o.any_case = 1; /* the CLI: proto names or lowerCamelCase */
    assert_int_equal(nc_pb_encode(m, v, &o, &b, err, sizeof err), 0);
    assert_int_equal(b.len, 3); /* 4a 01 78 */
    json_decref(v);
    nc_buf_free(&b);
}

static void test_depth_cap(void **state) {
    vec_ctx *c = *state;
    const nc_pb_msg *m = nc_proto_message(c->types, "nestc.types.Outer.Inner");
    /* 150 nested `next` fields: 0a len (0a len (...)), lengths as varints */
    size_t depth = 150;
    uint8_t w[1024];
    size_t wn = 0;
    size_t lens[200];
    lens[depth] = 0;
    for (size_t i = depth; i-- > 0;) lens[i] = lens[i + 1] + 1 + (lens[i + 1] < 128 ? 1 : 2);
    for (size_t i = 0; i < depth; i++) {
        w[wn++] = 0x12;
        size_t l = lens[i + 1];
        if (l < 128)
            w[wn++] = (uint8_t)l;
        else {
            w[wn++] = (uint8_t)(l | 0x80);
            w[wn++] = (uint8_t)(l >> 7);
        }
    }
    json_t *out = NULL;
    nc_pb_json_opts o = {0};
    assert_int_equal(nc_pb_decode(m, w, wn, &o, &out, NULL, 0), NC_EPROTO);
    assert_null(out);
}

/* ---- the parser ------------------------------------------------------------------------------------- */

static void test_parse_conformance_service(void **state) {
    vec_ctx *c = *state;
    const nc_pb_service *s = nc_proto_service(c->conformance, "nestc.conformance.Conformance");
    assert_non_null(s);
    assert_int_equal(s->nmethods, 9);
    const nc_pb_method *m = nc_proto_method(s, "BidiEcho");
    assert_true(m && m->client_stream && m->server_stream);
    m = nc_proto_method(s, "Streaming");
    assert_true(m && !m->client_stream && m->server_stream);
    assert_string_equal(m->output->full_name, "nestc.conformance.StreamItem");
    m = nc_proto_method(s, "ClientSum");
    assert_true(m && m->client_stream && !m->server_stream);
    assert_null(nc_proto_method(s, "Nope"));
    assert_ptr_equal(nc_proto_service_at(c->conformance, 0), s);
    assert_null(nc_proto_service_at(c->conformance, 1));
    const nc_pb_msg *e = nc_proto_message(c->conformance, "nestc.conformance.EchoMessage");
    assert_int_equal(e->noneofs, 1);
    assert_string_equal(e->oneofs[0].name, "choice");
}

static void test_parse_types(void **state) {
    vec_ctx *c = *state;
    const nc_pb_msg *l = nc_proto_message(c->types, "nestc.types.Lists");
    assert_int_equal(l->nfields, 18);
    assert_true(l->fields[4].packed);                      /* r_int32: proto3 default */
    assert_false(l->fields[8].packed);                     /* r_string: not packable */
    assert_false(l->fields[17].packed);                    /* r_unpacked: [packed = false] */
    assert_true(l->fields[15].packed && l->fields[15].en); /* r_enum */
    const nc_pb_msg *o = nc_proto_message(c->types, "nestc.types.Outer");
    assert_string_equal(o->fields[8].camel, "snakeFieldName");
    assert_string_equal(o->fields[7].msg->full_name, "nestc.types.Outer.Inner");   /* absolute */
    assert_string_equal(o->fields[5].msg->full_name, "google.protobuf.Timestamp"); /* bundled */
    assert_string_equal(o->fields[6].msg->full_name, "common.Shared");             /* include dir */
    assert_string_equal(o->fields[9].en->full_name, "nestc.types.Outer.Inner.Level");
    assert_int_equal(o->noneofs, 2); /* pick, and _maybe for the proto3 optional field */
    assert_string_equal(o->oneofs[1].name, "_maybe");
    assert_int_equal(o->fields[4].oneof, 1);
    const nc_pb_msg *mp = nc_proto_message(c->types, "nestc.types.Maps");
    assert_true(mp->fields[0].is_map && mp->fields[0].key_type == NC_PB_STRING);
    assert_true(mp->fields[3].msg != NULL);
    const nc_pb_msg *r = nc_proto_message(c->legacy, "nestc.legacy.Record");
    assert_int_equal(r->fields[0].label, NC_PB_REQUIRED);
    assert_false(r->fields[2].packed); /* proto2 default */
    assert_true(r->fields[3].packed);
}

static void test_parse_camel_case(void **state) {
    (void)state;
    char err[256];
    int rc;
    nc_pb_pool *p = load_text("syntax='proto3'; message M { int32 a_b_c = 1; int32 _x = 2; int32 a__b = 3; "
                              "int32 a_1 = 4; int32 ab_C = 5; }",
                              err, sizeof err, &rc);
    assert_int_equal(rc, 0);
    const nc_pb_msg *m = nc_proto_message(p, "M");
    assert_string_equal(m->fields[0].camel, "aBC");
    assert_string_equal(m->fields[1].camel, "_x"); /* the first character is kept */
    assert_string_equal(m->fields[2].camel, "a_B");
    assert_string_equal(m->fields[3].camel, "a_1");
    assert_string_equal(m->fields[4].camel, "ab_C");
    nc_proto_free(p);
}

static void test_parse_comments_options_and_scopes(void **state) {
    (void)state;
    char err[256];
    int rc;
    nc_pb_pool *p = load_text(
        "/* block\n comment */ syntax = \"proto3\"; // line\n"
        "package a.b;\n"
        "option (my.opt) = { x: 1 y: [1, 2] nested { z: \"}\" } };\n"
        "message Out { message In { enum E { option allow_alias = true; Z = 0; } E e = 1; } In in = 1;"
        "  In.E e = 2 [json_name = \"q\", (x.y).z = -inf, packed = true];"
        "  reserved 5, 9 to max; reserved \"old\"; extensions 100 to 200;"
        "  oneof o { option (z) = 1; string s = 3; }"
        "  ;"
        "}\n"
        "service S { option deprecated = true; rpc M (Out) returns (stream .a.b.Out.In) { option "
        "idempotency_level = "
        "NO_SIDE_EFFECTS; }; rpc N (stream Out) returns (Out); }",
        err, sizeof err, &rc);
    if (rc) fail_msg("%s", err);
    const nc_pb_msg *o = nc_proto_message(p, "a.b.Out");
    assert_non_null(o);
    assert_string_equal(o->fields[1].en->full_name, "a.b.Out.In.E");
    const nc_pb_service *s = nc_proto_service(p, "a.b.S");
    assert_non_null(s);
    assert_string_equal(s->methods[0].output->full_name, "a.b.Out.In");
    assert_true(s->methods[1].client_stream);
    nc_proto_free(p);
}

static void expect_error(const char *text, int want_rc, const char *want_msg) {
    char err[256];
    int rc;
    nc_pb_pool *p = load_text(text, err, sizeof err, &rc);
    assert_null(p);
    if (rc != want_rc) fail_msg("%s: rc %d, want %d (%s)", text, rc, want_rc, err);
    if (!strstr(err, want_msg)) fail_msg("%s: error '%s', want '%s'", text, err, want_msg);
}

static void test_parse_errors(void **state) {
    (void)state;
    expect_error("syntax = \"proto3\";\nmessage M {\n  int32 a = 1\n}", NC_EINVAL,
                 "t.proto:4:1: ';' expected");
    expect_error("edition = \"2023\";", NC_EINVAL, "editions are not supported");
    expect_error("syntax = \"proto4\";", NC_EINVAL, "unsupported syntax");
    expect_error("syntax = \"proto3\"; message M { Nope a = 1; }", NC_EINVAL, "no such type 'Nope'");
    expect_error("syntax = \"proto3\"; message M { int32 a = 1; int32 b = 1; }", NC_EINVAL,
                 "duplicate field number 1");
    expect_error("syntax = \"proto3\"; message M { int32 a = 1; int32 a = 2; }", NC_EINVAL,
                 "duplicate field name");
    expect_error("syntax = \"proto3\"; message M {} message M {}", NC_EINVAL, "duplicate name 'M'");
    expect_error("syntax = \"proto3\"; message M { int32 a = 0; }", NC_EINVAL, "out of range");
    expect_error("syntax = \"proto3\"; message M { int32 a = 536870912; }", NC_EINVAL, "out of range");
    expect_error("syntax = \"proto3\"; message M { required int32 a = 1; }", NC_EINVAL, "required fields");
    expect_error("syntax = \"proto2\"; message M { optional group G = 1 { } }", NC_EINVAL,
                 "groups are not supported");
    expect_error("syntax = \"proto3\"; message M { map<double, int32> m = 1; }", NC_EINVAL, "map key type");
    expect_error("syntax = \"proto3\"; enum E {}", NC_EINVAL, "has no values");
    expect_error("syntax = \"proto3\"; message M { string s = 1; } /* open", NC_EINVAL,
                 "unterminated comment");
    expect_error("syntax = \"proto3\"; import \"missing.proto\";", NC_ENOENT,
                 "missing.proto: file not found");
    expect_error("syntax = \"proto3\"; service S { rpc M (Nope) returns (Nope); }", NC_EINVAL,
                 "no such message");
    expect_error("syntax = \"proto3\"; message M { string s = 1 }", NC_EINVAL, "';' expected");
    expect_error("syntax = 'proto3'; message M { string s = 1; ", NC_EINVAL, "'}' expected");
}

static void test_parse_caps(void **state) {
    (void)state;
    /* nesting: 100 messages deep, cap 64 */
    nc_buf b = NC_BUF_INIT;
    nc_buf_append_str(&b, "syntax = \"proto3\";");
    for (int i = 0; i < 100; i++) nc_buf_appendf(&b, "message M%d {", i);
    for (int i = 0; i < 100; i++) nc_buf_append_str(&b, "}");
    char err[256];
    int rc;
    nc_pb_pool *p = load_text(nc_buf_cstr(&b), err, sizeof err, &rc);
    assert_null(p);
    assert_int_equal(rc, NC_ETOOBIG);
    nc_buf_free(&b);
    /* an option aggregate nested deeper than the cap */
    nc_buf_append_str(&b, "option x = ");
    for (int i = 0; i < 100; i++) nc_buf_append_str(&b, "{a ");
    p = load_text(nc_buf_cstr(&b), err, sizeof err, &rc);
    assert_int_equal(rc, NC_ETOOBIG);
    nc_buf_free(&b);
    /* file size and definition count */
    const char *names[] = {"big.proto"},
               *texts[] = {"syntax = \"proto3\"; message A { int32 a = 1; int32 b = 2; }"};
    mem_fs fs = {names, texts, 1, 0};
    nc_proto_limits lim = {.max_file_bytes = 10};
    assert_int_equal(nc_proto_load(&p, "big.proto", NULL, 0, read_mem, &fs, &lim, err, sizeof err),
                     NC_ETOOBIG);
    lim = (nc_proto_limits){.max_defs = 2};
    assert_int_equal(nc_proto_load(&p, "big.proto", NULL, 0, read_mem, &fs, &lim, err, sizeof err),
                     NC_ETOOBIG);
}

static void test_parse_imports(void **state) {
    (void)state;
    /* include dirs are tried in order; an import found in none is read next to its importer; each file
     * once, even when imported twice or in a cycle */
    const char *names[] = {"root/main.proto", "inc2/x/a.proto", "inc1/b.proto", "inc1/x/c.proto"};
    const char *texts[] = {
        ("syntax = \"proto3\"; package m; import \"x/a.proto\"; import \"b.proto\"; import public "
         "\"x/c.proto\";"
         " message Main { a.A a = 1; b.B b = 2; c.C c = 3; google.protobuf.Empty e = 4; }"
         " import \"google/protobuf/empty.proto\";"),
        "syntax = \"proto3\"; package a; import \"b.proto\"; message A { b.B b = 1; }",
        ("syntax = \"proto3\"; package b; import weak \"absent.proto\"; import \"../root/main.proto\"; "
         "message B { int32 x = 1; }"),
        "syntax = \"proto3\"; package c; message C {}",
    };
    mem_fs fs = {names, texts, 4, 0};
    const char *dirs[] = {"inc1", "inc2/"};
    nc_pb_pool *p = NULL;
    char err[256];
    int rc = nc_proto_load(&p, "root/main.proto", dirs, 2, read_mem, &fs, NULL, err, sizeof err);
    if (rc) fail_msg("%s", err);
    const nc_pb_msg *m = nc_proto_message(p, "m.Main");
    assert_non_null(m);
    assert_string_equal(m->fields[0].msg->full_name, "a.A");
    assert_string_equal(m->fields[3].msg->full_name, "google.protobuf.Empty");
    assert_non_null(nc_proto_message(p, "b.B"));
    /* the files as reflection describes them: named as the root path and as each import was first written,
     * their imports by those names (a weak import not found left out, a cycle back to the root by its name),
     * each definition pointing at its file */
    const nc_pb_file *f = nc_proto_file_at(p, 0);
    assert_string_equal(f->name, "root/main.proto");
    assert_string_equal(f->package, "m");
    assert_int_equal(f->proto3, 1);
    assert_int_equal(f->ndeps, 4);
    assert_string_equal(f->deps[0], "x/a.proto");
    assert_string_equal(f->deps[1], "b.proto");
    assert_string_equal(f->deps[2], "x/c.proto");
    assert_string_equal(f->deps[3], "google/protobuf/empty.proto");
    assert_int_equal(m->file, 0);
    const nc_pb_file *fb = nc_proto_file_at(p, nc_proto_message(p, "b.B")->file);
    assert_string_equal(fb->name, "b.proto");
    assert_int_equal(fb->ndeps, 1);
    assert_string_equal(fb->deps[0], "root/main.proto");
    assert_string_equal(nc_proto_file_at(p, nc_proto_message(p, "a.A")->file)->deps[0], "b.proto");
    assert_string_equal(nc_proto_file_at(p, nc_proto_message(p, "google.protobuf.Empty")->file)->name,
                        "google/protobuf/empty.proto");
    assert_null(nc_proto_file_at(p, 5));
    nc_proto_free(p);
}

static void test_pb_errors(void **state) {
    vec_ctx *c = *state;
    const nc_pb_msg *m = nc_proto_message(c->types, "nestc.types.Scalars");
    nc_pb_json_opts o = {.keep_case = 1};
    char err[128];
    nc_buf b = NC_BUF_INIT;
    nc_buf_append(&b, "keep", 4);
    json_t *v = json_pack("{s:s}", "f_int64", "12x");
    assert_int_equal(nc_pb_encode(m, v, &o, &b, err, sizeof err), NC_EINVAL);
    assert_int_equal(b.len, 4); /* restored */
    assert_non_null(strstr(err, "f_int64"));
    json_decref(v);
    v = json_pack("{s:s}", "f_bytes", "a*b=");
    assert_int_equal(nc_pb_encode(m, v, &o, &b, err, sizeof err), NC_EINVAL);
    assert_non_null(strstr(err, "base64"));
    json_decref(v);
    v = json_pack("{s:[i]}", "f_string", 1);
    assert_int_equal(nc_pb_encode(m, v, &o, &b, err, sizeof err), NC_EINVAL);
    json_decref(v);
    v = json_integer(5);
    assert_int_equal(nc_pb_encode(m, v, &o, &b, err, sizeof err), NC_EINVAL);
    json_decref(v);
    nc_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_vectors),
        cmocka_unit_test(test_decode_vectors),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_strict_and_any_case),
        cmocka_unit_test(test_depth_cap),
        cmocka_unit_test(test_parse_conformance_service),
        cmocka_unit_test(test_parse_types),
        cmocka_unit_test(test_parse_camel_case),
        cmocka_unit_test(test_parse_comments_options_and_scopes),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_caps),
        cmocka_unit_test(test_parse_imports),
        cmocka_unit_test(test_pb_errors),
    };
    return cmocka_run_group_tests(tests, vec_setup, vec_teardown);
}
