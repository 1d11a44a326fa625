/* libFuzzer: the .proto parser (codec/proto_parse.c). The input is the root file; every import it names
 * is served the same bytes again (under its own path), so imports, cycles and the file cap are reached.
 * Whatever loads must be usable: every message encodes {} and decodes the bytes it wrote, every
 * method's types are resolved. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/proto_codec.h"
#include "codec/proto_parse.h"

typedef struct input {
    const uint8_t *p;
    size_t n;
} input;

static int read_input(void *user, const char *path, char **text, size_t *len) {
    const input *in = user;
    (void)path;
    *text = malloc(in->n ? in->n : 1);
    if (!*text) return NC_ENOMEM;
    if (in->n) memcpy(*text, in->p, in->n);
    *len = in->n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    input in = {data, size};
    const char *dirs[] = {"a", "b/c"};
    nc_proto_limits lim = {.max_file_bytes = 1 << 16, .max_files = 8, .max_depth = 32, .max_defs = 20000};
    nc_pb_pool *pool = NULL;
    char err[128];
    int rc = nc_proto_load(&pool, "root.proto", dirs, 2, read_input, &in, &lim, err, sizeof err);
    if (rc) {
        if (pool || !memchr(err, 0, sizeof err)) abort();
        return 0;
    }
    for (size_t i = 0; nc_proto_service_at(pool, i); i++) {
        const nc_pb_service *s = nc_proto_service_at(pool, i);
        if (nc_proto_service(pool, s->full_name) != s) abort();
        for (size_t j = 0; j < s->nmethods; j++)
            if (!s->methods[j].input || !s->methods[j].output ||
                nc_proto_method(s, s->methods[j].name) == NULL)
                abort();
    }
    /* every message type reachable from a method: {} encodes, and the bytes decode */
    for (size_t i = 0; nc_proto_service_at(pool, i); i++) {
        const nc_pb_service *s = nc_proto_service_at(pool, i);
        for (size_t j = 0; j < s->nmethods; j++) {
            const nc_pb_msg *m = s->methods[j].input;
            json_t *o = json_object(), *back = NULL;
            nc_buf b = NC_BUF_INIT;
            nc_pb_json_opts opts = {.defaults = 1, .oneofs = 1};
            if (nc_pb_encode(m, o, &opts, &b, err, sizeof err) == 0 &&
                nc_pb_decode(m, b.data, b.len, &opts, &back, err, sizeof err) == NC_ENOMEM)
                abort();
            json_decref(back);
            json_decref(o);
            nc_buf_free(&b);
        }
    }
    nc_proto_free(pool);
    return 0;
}
