/* libFuzzer: the NATS protocol parser and header parser (codec/nats_proto.c). The input is fed whole and
 * again in pieces whose sizes come from the input itself; both runs must report the same operations, and
 * every reported span must lie inside what was fed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/nats_proto.h"

typedef struct tally {
    uint64_t hash;
    size_t n;
} tally;

static void mix(tally *t, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) t->hash = (t->hash ^ b[i]) * 1099511628211ULL;
}

static int on_op(void *user, const nc_nats_op *op) {
    tally *t = user;
    t->n++;
    mix(t, &op->kind, sizeof op->kind);
    if (op->arg) mix(t, op->arg, op->arg_len);
    if (op->kind == NC_NATS_MSG) {
        mix(t, op->subject, op->subject_len);
        if (op->reply) mix(t, op->reply, op->reply_len);
        mix(t, &op->sid, sizeof op->sid);
        mix(t, op->payload, op->payload_len);
        if (op->hdr) {
            mix(t, op->hdr, op->hdr_len);
            int status;
            json_t *h = NULL;
            if (nc_nats_headers_parse(op->hdr, op->hdr_len, &status, &h) == 0) json_decref(h);
        }
    }
    return 0;
}

static int run(const uint8_t *data, size_t size, int split, tally *t) {
    nc_nats_parser p;
    nc_nats_parser_init(&p, 1 << 20);
    char why[200];
    int r = 0;
    size_t at = 0, step = 1;
    while (at < size && !r) {
        size_t n = split ? step : size - at;
        if (n > size - at) n = size - at;
        r = nc_nats_feed(&p, (const char *)data + at, n, on_op, t, why, sizeof why);
        at += n;
        step = (step * 7 + data[at % size]) % 97 + 1;
    }
    nc_nats_parser_free(&p);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    tally a = {1469598103934665603ULL, 0}, b = {1469598103934665603ULL, 0};
    int ra = run(data, size, 0, &a);
    int rb = run(data, size, 1, &b);
    /* the same operations either way; an error may come earlier than the whole-feed run only if the bad
     * bytes arrive in an earlier piece, so compare only clean runs */
    if (ra == 0 && rb == 0 && (a.n != b.n || a.hash != b.hash)) abort();
    /* the writers accept anything the parser produced */
    nc_buf out = NC_BUF_INIT;
    json_t *h = json_pack("{s:s}", "k", "v");
    nc_nats_write_pub(&out, (const char *)data, size < 64 ? size : 64, "r", h, (const char *)data, size);
    json_decref(h);
    nc_buf_free(&out);
    return 0;
}
