/* The cost of nestc's descriptor-driven protobuf codec (src/codec/proto_*.c) on the conformance Echo
 * message of tests/vectors/grpc/codec.json: JSON → bytes and bytes → JSON per call, and the parse of
 * conformance.proto, for docs/grpc.md. proto-codec-bench.mjs measures protobufjs on the same message.
 * Usage: proto-codec-bench PATH/TO/conformance.proto [iterations] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/json_write.h"
#include "codec/proto_codec.h"
#include "codec/proto_parse.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int read_file(void *user, const char *path, char **text, size_t *len) {
    (void)user;
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *text = malloc((size_t)n + 1);
    *len = fread(*text, 1, (size_t)n, f);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int n = argc > 2 ? atoi(argv[2]) : 200000;
    nc_pb_pool *pool = NULL;
    char err[256];
    double t = now();
    for (int i = 0; i < 1000; i++) {
        nc_proto_free(pool);
        if (nc_proto_load(&pool, argv[1], NULL, 0, read_file, NULL, NULL, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    }
    double parse_us = (now() - t) / 1000 * 1e6;
    const nc_pb_msg *m = nc_proto_message(pool, "nestc.conformance.EchoMessage");
    const char *text =
        "{\"text\":\"hi\",\"big\":\"9007199254740993\",\"flag\":true,\"numbers\":[1,2,3],"
        "\"nested\":{\"name\":\"n\",\"value\":1,\"children\":[{\"name\":\"c\"}]},\"blob\":\"AQID\","
        "\"color\":\"BLUE\",\"choice_nested\":{\"name\":\"x\"},\"ratio\":0.25,"
        "\"ubig\":\"18446744073709551615\",\"small\":-5,\"tags\":[\"a\",\"b\"],"
        "\"counts\":{\"one\":1,\"two\":2},\"items\":[{\"name\":\"i\"}]}";
    json_t *v;
    if (nc_json_parse(text, strlen(text), &v, err, sizeof err)) return 1;
    nc_pb_json_opts o = {.keep_case = 1, .longs_string = 1, .enums_string = 1, .oneofs = 1, .json = 1};
    nc_buf b = NC_BUF_INIT;
    t = now();
    for (int i = 0; i < n; i++) {
        b.len = 0;
        if (nc_pb_encode(m, v, &o, &b, err, sizeof err)) return 1;
    }
    double enc_ns = (now() - t) / n * 1e9;
    t = now();
    for (int i = 0; i < n; i++) {
        json_t *out;
        if (nc_pb_decode(m, b.data, b.len, &o, &out, err, sizeof err)) return 1;
        json_decref(out);
    }
    double dec_ns = (now() - t) / n * 1e9;
    printf(
        "{\"codec\":\"nestc\",\"bytes\":%zu,\"encode_ns\":%.0f,\"decode_ns\":%.0f,\"parse_proto_us\":%.1f}\n",
        b.len, enc_ns, dec_ns, parse_us);
    nc_buf_free(&b);
    json_decref(v);
    nc_proto_free(pool);
    return 0;
}
