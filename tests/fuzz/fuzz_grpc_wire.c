/* libFuzzer: the gRPC layer above HTTP/2 (codec/grpc_wire.c). The input is the DATA of a stream, read
 * whole and in pieces of a size the first byte picks, with a message cap the second byte picks: both
 * readings must give the same messages and the same outcome. The input is also a grpc-timeout (what
 * parses formats back to a timeout no shorter), a grpc-message (percent-encoding round trips) and a
 * binary metadata value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/grpc_wire.h"

typedef struct reading {
    nc_buf msgs; /* each message as: compressed byte, 4-byte length, bytes */
    int rc;
    size_t pending;
} reading;

static void read_stream(const uint8_t *p, size_t n, size_t piece, uint32_t max, reading *out) {
    nc_grpc_reader r;
    nc_grpc_reader_init(&r, max);
    memset(out, 0, sizeof *out);
    for (size_t at = 0; at < n && out->rc == 0;) {
        size_t k = piece && piece < n - at ? piece : n - at;
        if (nc_grpc_reader_feed(&r, p + at, k)) abort();
        at += k;
        nc_grpc_msg m;
        int rc;
        while ((rc = nc_grpc_reader_next(&r, &m)) == 1) {
            uint8_t h[5];
            if (nc_grpc_prefix(h, m.compressed, m.len) || m.len > max) abort();
            if (nc_buf_append(&out->msgs, h, 5) || nc_buf_append(&out->msgs, m.data, m.len)) abort();
        }
        if (rc < 0) out->rc = rc;
    }
    out->pending = nc_grpc_reader_pending(&r);
    nc_grpc_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t piece = data[0] % 17;
    uint32_t max = data[1] ? data[1] * 16u : 1;
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    reading a, b;
    read_stream(p, n, 0, max, &a);
    read_stream(p, n, piece, max, &b);
    if (a.rc != b.rc || a.msgs.len != b.msgs.len ||
        (a.msgs.len && memcmp(a.msgs.data, b.msgs.data, a.msgs.len)))
        abort();
    /* without an error, the messages and what is left are the input again */
    if (!a.rc && a.msgs.len + a.pending != n) abort();
    if (!a.rc && a.msgs.len && memcmp(a.msgs.data, p, a.msgs.len)) abort();
    nc_buf_free(&a.msgs);
    nc_buf_free(&b.msgs);

    int64_t ms;
    if (nc_grpc_timeout_parse((const char *)p, n, &ms) == 0) {
        char t[16];
        int64_t back;
        size_t k = nc_grpc_timeout_format(ms, t);
        if (nc_grpc_timeout_parse(t, k, &back) || back < ms) abort();
    }
    nc_buf e = NC_BUF_INIT, d = NC_BUF_INIT;
    if (nc_grpc_percent_encode(&e, (const char *)p, n) || nc_grpc_percent_decode(&d, e.data, e.len)) abort();
    if (d.len != n || (n && memcmp(d.data, p, n))) abort();
    nc_buf_reset(&d);
    if (nc_grpc_bin_decode(&d, (const char *)p, n) == NC_ENOMEM) abort();
    nc_buf_free(&e);
    nc_buf_free(&d);
    return 0;
}
