/* libFuzzer: the HTTP/2 side of a grpc:// server connection (transport/grpc/grpc_conn.c) without a socket:
 * any bytes fed to a server session (after a good client preface, or raw), cut in pieces, with calls that
 * echo every request message back, end with a status at the half-close, and fail when the path says so;
 * responses gzip- or deflate-compressed or not, client PINGs policed or not, a small send bound or none (the
 * first byte picks). Whatever comes in, the connection ends cleanly and frees everything (ASan checks the
 * rest). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/ioctx.h"
#include "transport/grpc/grpc_conn.h"
#include "transport/grpc/grpc_gzip.h"

static uv_loop_t loop;
static nc_ioctx io;
static int freed;
static nc_grpc_deflater *deflater; /* kept across inputs, as a server keeps its own */

static void on_call(nc_grpc_call *call) {
    nc_grpc_call_add_header(call, "X-Echo", 6, "1", 1);
    size_t n = call->path.len;
    if (n >= 5 && !memcmp(call->path.data + n - 5, "/Fail", 5))
        nc_grpc_call_finish(call, 3, "failed 100%", NULL, 0);
}

static void on_message(nc_grpc_call *call, const char *data, size_t len, int compressed) {
    nc_grpc_call_send(call, data, len);
}

static void on_half_close(nc_grpc_call *call) {
    nc_header t = {"x-t", 3, "v", 1};
    nc_grpc_call_finish(call, 0, NULL, &t, 1);
}

static void on_cancel(nc_grpc_call *call) {}
static void on_call_free(nc_grpc_call *call) {}
static void on_end(nc_grpc_conn *c, int err, const char *msg) {}
static void on_free(nc_grpc_conn *c) {
    freed = 1;
}

static const nc_grpc_conn_cbs cbs = {on_call,      on_message, on_half_close, on_cancel,
                                     on_call_free, on_end,     on_free,       NULL};

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n) {
    static int init;
    if (!init) {
        uv_loop_init(&loop);
        nc_ioctx_init(&io, &loop);
        init = 1;
    }
    if (n < 2) return 0;
    unsigned flags = p[0], piece = p[1] ? p[1] : 256;
    p += 2, n -= 2;
    nc_grpc_conn *c = nc_grpc_conn_new(&io, NULL, 1 << 16, 4096, &cbs, NULL, NULL);
    if (!c) return 0;
    c->compress = flags & 2 ? (flags & 16 ? NC_GRPC_DEFLATE : NC_GRPC_GZIP) : NC_GRPC_IDENTITY;
    c->deflater = &deflater;
    if (flags & 4) c->ka = (nc_grpc_keepalive){.min_ping_ms = 1000, .max_strikes = 1, .timeout_ms = 1};
    c->max_send = flags & 8 ? 1000 : 0;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 1);
    freed = 0;
    if (flags & 1) {
        static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
        nc_grpc_conn_feed(c, preface, sizeof preface - 1);
    }
    for (size_t off = 0; off < n && !c->ended; off += piece)
        nc_grpc_conn_feed(c, (const char *)p + off, n - off < piece ? n - off : piece);
    nc_grpc_conn_close(c, 0, "done");
    while (!freed) uv_run(&loop, UV_RUN_ONCE);
    return 0;
}
