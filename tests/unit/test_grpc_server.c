/* The grpc:// server against a hand-driven HTTP/2 client (nghttp2's client session on the test's loop):
 * a unary call with metadata and a deadline, the error → status mapping, UNIMPLEMENTED, and bad input —
 * not HTTP/2 at all, a malformed frame, an oversize message — each answered cleanly while the server goes
 * on serving. */
#include <string.h>

#include <nghttp2/nghttp2.h>
#include <zlib.h>

#include "codec/json_build.h"
#include "codec/proto_codec.h"
#include "loop_fixture.h"
#include "transport/grpc/grpc_descriptor.h"
#include "util/buf.h"

#ifndef NESTC_VECTORS_DIR
#error "NESTC_VECTORS_DIR must point at tests/vectors"
#endif
#define PROTO NESTC_VECTORS_DIR "/grpc/conformance.proto"
#define SVC "/nestc.conformance.Conformance/"

static nc_server *srv;

/* ---- handlers ------------------------------------------------------------------------------------------ */

static int64_t seen_timeout;
static char seen_header[64];

static void h_sum(nc_request *req, const nc_msg *m, void *u) {
    size_t n;
    const char *v = nc_msg_header(m, "x-k", &n);
    snprintf(seen_header, sizeof seen_header, "%.*s", v ? (int)n : 0, v ? v : "");
    if (nc_msg_ctx_int(m, NC_CTX_TIMEOUT_MS, &seen_timeout)) seen_timeout = -1;
    double s = 0;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(nc_msg_data(m), "numbers"), i, x) s += json_number_value(x);
    nc_reply(req, json_pack("{s:o}", "sum", nc_json_number(s)));
}

static void h_exception(nc_request *req, const nc_msg *m, void *u) {
    json_t *d = nc_msg_data(m);
    json_int_t code = json_integer_value(json_object_get(d, "code"));
    nc_reply_header(req, "X-Reply", "h", 1); /* uppercase: sent lowercase, as HTTP/2 wants */
    nc_reply_trailer(req, "X-T", "t", 1);
    if (code)
        nc_reply_error(req, json_pack("{s:I,s:s}", "code", code, "message", "coded"));
    else
        nc_reply_error_msg(req, "plain 100%");
}

/* Echo replies what EchoMessage cannot be: a list given as a number. */
static void h_bad_echo(nc_request *req, const nc_msg *m, void *u) {
    nc_reply(req, json_pack("{s:i}", "numbers", 5));
}

/* Sleep never answers by itself: it ends when cancelled (the client's RST_STREAM, its deadline). */
static int cancelled;
static void on_cancelled(nc_request *req, void *arg) {
    cancelled++;
    nc_reply_end(req);
}
static void h_sleep(nc_request *req, const nc_msg *m, void *u) {
    nc_request_on_cancel(req, on_cancelled, NULL);
}

/* Streaming floods: 64 messages of 64 KiB at once, more than the server's 1 MiB send bound. */
static void h_flood(nc_request *req, const nc_msg *m, void *u) {
    char *v = malloc(65536);
    memset(v, 'f', 65535);
    v[65535] = '\0';
    for (int i = 0; i < 64; i++) nc_reply_next(req, json_pack("{s:i,s:s}", "index", i, "value", v));
    nc_reply_end(req);
    free(v);
}

/* Pump (BidiEcho): 400 EchoMessages of 4 KB (text, and their index as `big`), 1.6 MB in all, more than the
 * server's 1 MiB send bound, written only while nc_reply_writable says so and resumed from the drain
 * callback: a client that reads slowly slows the handler down instead of getting its connection closed. */
#define PUMP_N 400
#define PUMP_SIZE 4000
static struct {
    int next, blocked, drains, ended;
    size_t max_buffered;
    char value[PUMP_SIZE + 1];
} pump;

static void pump_run(nc_request *req) {
    while (pump.next < PUMP_N) {
        if (!nc_reply_writable(req)) {
            pump.blocked++;
            return;
        }
        nc_reply_next(req, json_pack("{s:i,s:s}", "big", pump.next++, "text", pump.value));
        size_t b = 0;
        assert_int_equal(nc_reply_buffered(req, &b), 0);
        if (b > pump.max_buffered) pump.max_buffered = b;
    }
    nc_reply_end(req);
    pump.ended = 1;
}
static void on_pump_drain(nc_request *req, void *arg) {
    pump.drains++;
    pump_run(req);
}
static void h_pump(nc_request *req, const nc_msg *m, void *u) {
    assert_int_equal(nc_request_on_drain(req, 0, on_pump_drain, NULL), 0);
    pump_run(req);
}

/* ---- the client ---------------------------------------------------------------------------------------- */

typedef struct h2c {
    uv_tcp_t tcp;
    uv_connect_t creq;
    nghttp2_session *s;
    int connected, eof, closed;
    nc_buf raw;  /* every byte received */
    int streams; /* streams closed */
    int status;  /* grpc-status of the last stream, -1 = none */
    char message[128];
    char x_reply[32], x_t[32]; /* a response header and a trailer the handler set */
    nc_buf data;               /* DATA of the last stream */
    const char *body;
    size_t body_len, body_off;
    int no_ping_ack;      /* the client never answers PING (c_open_with) */
    int manual_window;    /* the client opens its windows itself (nghttp2_session_consume): a slow reader */
    int pings;            /* PINGs received (not ACKs) */
    int goaway_code;      /* the last GOAWAY's error code, -1 = none */
    char goaway_data[32]; /* and its debug data */
} h2c;

static void c_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    static char buf[65536];
    *b = uv_buf_init(buf, sizeof buf);
}

static void c_flush(h2c *c) {
    if (!c->s) return;
    const uint8_t *d;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c->s, &d)) > 0) {
        uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
        assert_int_equal(uv_try_write((uv_stream_t *)&c->tcp, &b, 1), n); /* small writes on loopback */
    }
}

static void c_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    h2c *c = st->data;
    if (n < 0) {
        c->eof = 1;
        return;
    }
    nc_buf_append(&c->raw, b->base, (size_t)n);
    if (c->s && nghttp2_session_mem_recv(c->s, (const uint8_t *)b->base, (size_t)n) >= 0) c_flush(c);
}

static void c_connected(uv_connect_t *r, int status) {
    h2c *c = r->data;
    assert_int_equal(status, 0);
    c->connected = 1;
    uv_tcp_nodelay(&c->tcp, 1); /* frames go in several writes: Nagle would hold each call ~40 ms */
    uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
}

static int c_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl, const uint8_t *v,
                    size_t vl, uint8_t fl, void *u) {
    h2c *c = u;
    if (nl == 11 && !memcmp(n, "grpc-status", 11)) c->status = atoi((const char *)v);
    if (nl == 12 && !memcmp(n, "grpc-message", 12))
        snprintf(c->message, sizeof c->message, "%.*s", (int)vl, v);
    if (nl == 7 && !memcmp(n, "x-reply", 7)) snprintf(c->x_reply, sizeof c->x_reply, "%.*s", (int)vl, v);
    if (nl == 3 && !memcmp(n, "x-t", 3)) snprintf(c->x_t, sizeof c->x_t, "%.*s", (int)vl, v);
    return 0;
}

static int c_data(nghttp2_session *s, uint8_t fl, int32_t id, const uint8_t *d, size_t n, void *u) {
    nc_buf_append(&((h2c *)u)->data, d, n);
    return 0;
}

static int c_close(nghttp2_session *s, int32_t id, uint32_t code, void *u) {
    ((h2c *)u)->streams++;
    return 0;
}

static ssize_t c_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *u) {
    h2c *c = u;
    size_t n = c->body_len - c->body_off < len ? c->body_len - c->body_off : len;
    memcpy(buf, c->body + c->body_off, n);
    c->body_off += n;
    if (c->body_off == c->body_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int c_frame(nghttp2_session *s, const nghttp2_frame *f, void *u) {
    h2c *c = u;
    if (f->hd.type == NGHTTP2_PING && !(f->hd.flags & NGHTTP2_FLAG_ACK)) c->pings++;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway_code = (int)f->goaway.error_code;
        snprintf(c->goaway_data, sizeof c->goaway_data, "%.*s", (int)f->goaway.opaque_data_len,
                 f->goaway.opaque_data ? (const char *)f->goaway.opaque_data : "");
    }
    return 0;
}

static void c_closed(uv_handle_t *h) {
    ((h2c *)h->data)->closed = 1;
}

/* Connects; with h2, starts an HTTP/2 client session (preface and SETTINGS sent); no_ack: a client that
 * never answers PING. (It used to read that flag from *c before clearing it: an uninitialised read for
 * callers with the h2c on the stack, which valgrind reported.) */
static int c_manual_window; /* the next c_open_with opens a slow reader */
static void c_open_with(h2c *c, int h2, int no_ack) {
    memset(c, 0, sizeof *c);
    c->no_ping_ack = no_ack;
    c->manual_window = c_manual_window;
    c->goaway_code = -1;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", nc_server_port(srv), &a);
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    assert_int_equal(uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&a, c_connected), 0);
    run_until(&c->connected, 1);
    if (!h2) return;
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    if (no_ack) nghttp2_option_set_no_auto_ping_ack(opt, 1);
    if (c->manual_window) nghttp2_option_set_no_auto_window_update(opt, 1);
    assert_int_equal(nghttp2_session_client_new2(&c->s, cb, c, opt), 0);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, NULL, 0);
    c_flush(c);
}
static void c_open(h2c *c, int h2) {
    c_open_with(c, h2, 0);
}

static void c_free(h2c *c) {
    if (c->s) nghttp2_session_del(c->s);
    c->s = NULL;
    uv_close((uv_handle_t *)&c->tcp, c_closed);
    run_until(&c->closed, 1);
    nc_buf_free(&c->raw);
    nc_buf_free(&c->data);
}

#define NV(n, v)                                                                                             \
    { (uint8_t *)n, (uint8_t *)v, sizeof n - 1, sizeof v - 1, NGHTTP2_NV_FLAG_NONE }

/* One call: the message bytes (prefix included) as the body; waits for the stream's end. */
static const char *call_timeout = "5S";
static const char *call_encoding = "identity";
static const char *call_xk = "v";

static int32_t c_start(h2c *c, const char *path, const char *body, size_t len) {
    nghttp2_nv h[] = {NV(":method", "POST"),
                      NV(":scheme", "http"),
                      {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
                      NV(":authority", "localhost"),
                      NV("content-type", "application/grpc"),
                      NV("te", "trailers"),
                      {(uint8_t *)"grpc-timeout", (uint8_t *)call_timeout, 12, strlen(call_timeout), 0},
                      {(uint8_t *)"x-k", (uint8_t *)call_xk, 3, strlen(call_xk), 0},
                      {(uint8_t *)"grpc-encoding", (uint8_t *)call_encoding, 13, strlen(call_encoding), 0}};
    c->status = -1;
    c->message[0] = '\0';
    nc_buf_reset(&c->data);
    c->body = body, c->body_len = len, c->body_off = 0;
    nghttp2_data_provider prd = {.read_callback = c_body};
    int32_t id = nghttp2_submit_request(c->s, NULL, h, sizeof h / sizeof *h, &prd, NULL);
    assert_true(id > 0);
    c_flush(c);
    return id;
}

static void c_call(h2c *c, const char *path, const char *body, size_t len) {
    int before = c->streams;
    c_start(c, path, body, len);
    run_until(&c->streams, before + 1);
}

/* SumRequest {numbers: [1, 2]}: packed doubles, with the gRPC prefix */
static const char sum_req[] = "\0\0\0\0\x12\x0a\x10\0\0\0\0\0\0\xf0\x3f\0\0\0\0\0\0\0\x40";
/* SumReply {sum: 3} */
static const char sum_reply[] = "\0\0\0\0\x09\x09\0\0\0\0\0\0\x08\x40";

static void expect_sum(h2c *c) {
    c_call(c, SVC "Sum", sum_req, sizeof sum_req - 1);
    assert_int_equal(c->status, 0);
    assert_int_equal(c->data.len, sizeof sum_reply - 1);
    assert_memory_equal(c->data.data, sum_reply, sizeof sum_reply - 1);
}

/* ---- cases --------------------------------------------------------------------------------------------- */

static void test_unary(void **st) {
    h2c c;
    c_open(&c, 1);
    expect_sum(&c);
    assert_string_equal(seen_header, "v");
    assert_int_equal(seen_timeout, 5000);
    c_free(&c);
}

static void test_status_mapping(void **st) {
    h2c c;
    c_open(&c, 1);
    c_call(&c, SVC "Exception", "\0\0\0\0\x02\x08\x05", 7); /* code 5 */
    assert_int_equal(c.status, 5);
    assert_string_equal(c.message, "coded");
    assert_string_equal(c.x_reply, "h"); /* reply metadata and trailers reach the client */
    assert_string_equal(c.x_t, "t");
    c_call(&c, SVC "Exception", "\0\0\0\0\0", 5); /* code 0: RpcException(message) */
    assert_int_equal(c.status, 2);
    assert_string_equal(c.message, "plain 100%25");   /* percent-encoded on the wire */
    c_call(&c, SVC "Unimplemented", "\0\0\0\0\0", 5); /* declared, no handler: grpc-js's words */
    assert_int_equal(c.status, 12);
    assert_string_equal(c.message, "The server does not implement the method Unimplemented");
    c_call(&c, "/nope.Nope/Nope", "\0\0\0\0\0", 5);
    assert_int_equal(c.status, 12);
    assert_string_equal(c.message, "The server does not implement the method /nope.Nope/Nope");
    c_call(&c, SVC "Echo", "\0\0\0\0\0", 5); /* a reply that is no EchoMessage */
    assert_int_equal(c.status, 13);
    assert_non_null(strstr(c.message, "numbers"));
    c_call(&c, SVC "Sum", "\0\0\0\0\x02\x0a\x05", 7); /* truncated: does not decode */
    assert_int_equal(c.status, 13);
    c_call(&c, SVC "Sum", "", 0); /* no message for a unary method */
    assert_int_not_equal(c.status, 0);
    assert_int_not_equal(c.status, -1);
    expect_sum(&c);
    c_free(&c);
}

/* Bytes that are not HTTP/2: the server closes the connection, and serves the next one. */
static void test_not_http2(void **st) {
    h2c c;
    c_open(&c, 0);
    uv_buf_t b = uv_buf_init("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    assert_int_equal(uv_try_write((uv_stream_t *)&c.tcp, &b, 1), 27);
    run_until(&c.eof, 1);
    c_free(&c);
    c_open(&c, 1);
    expect_sum(&c);
    c_free(&c);
}

/* A malformed frame after a good preface (SETTINGS of 5 bytes: FRAME_SIZE_ERROR): GOAWAY, then the end of
 * the connection; the server serves the next one. */
static void test_bad_frame(void **st) {
    h2c c;
    c_open(&c, 0);
    static const char bad[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                              "\0\0\0\x04\0\0\0\0\0"         /* SETTINGS, empty */
                              "\0\0\x05\x04\0\0\0\0\0xxxxx"; /* SETTINGS of 5 bytes */
    uv_buf_t b = uv_buf_init((char *)bad, sizeof bad - 1);
    assert_int_equal(uv_try_write((uv_stream_t *)&c.tcp, &b, 1), (int)(sizeof bad - 1));
    run_until(&c.eof, 1);
    /* the server's SETTINGS, then a GOAWAY frame (type 7) somewhere after */
    int goaway = 0;
    for (size_t off = 0; off + 9 <= c.raw.len;) {
        const unsigned char *f = (const unsigned char *)c.raw.data + off;
        size_t len = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];
        if (f[3] == 7) goaway = 1;
        off += 9 + len;
    }
    assert_true(goaway);
    c_free(&c);
    c_open(&c, 1);
    expect_sum(&c);
    c_free(&c);
}

/* A message over the 4 MiB cap: status 8 from its prefix alone; the connection goes on serving. */
static void test_oversize(void **st) {
    h2c c;
    c_open(&c, 1);
    char big[5 + 100] = {0, 0, 0x50, 0, 0}; /* 5 MiB announced, 100 bytes sent */
    c_call(&c, SVC "Sum", big, sizeof big);
    assert_int_equal(c.status, 8);
    expect_sum(&c);
    c_free(&c);
}

/* The client resets its stream: the handler is cancelled. Then a deadline passes: the client gets status 4
 * DEADLINE_EXCEEDED and the handler is cancelled too. */
static void test_cancel(void **st) {
    h2c c;
    c_open(&c, 1);
    int32_t id = c_start(&c, SVC "Sleep", "\0\0\0\0\x02\x08\x01", 7);
    run_until_ms(&cancelled, 1, 100); /* the handler is running */
    nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    c_flush(&c);
    run_until(&cancelled, 1);
    call_timeout = "50m";
    c_call(&c, SVC "Sleep", "\0\0\0\0\x02\x08\x01", 7); /* ends with status 4 from the server */
    assert_int_equal(c.status, 4);
    run_until(&cancelled, 2);
    call_timeout = "5S";
    expect_sum(&c);
    c_free(&c);
}

/* n bytes of p gzip-compressed, behind a gRPC prefix with the Compressed-Flag set, into out. */
static void gz_message(const void *p, size_t n, nc_buf *out) {
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    uLong cap = deflateBound(&z, (uLong)n);
    nc_buf_reset(out);
    assert_int_equal(nc_buf_reserve(out, 5 + cap), 0);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data + 5;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = z.total_out;
    deflateEnd(&z);
    unsigned char pre[5] = {1, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    memcpy(out->data, pre, 5);
    out->len = 5 + len;
}

/* grpc-encoding gzip: a compressed request is served; a bomb past the message cap gets 8, bytes that are
 * not gzip 13, an encoding the server does not have 12. */
static void test_gzip(void **st) {
    h2c c;
    c_open(&c, 1);
    nc_buf m = NC_BUF_INIT;
    gz_message(sum_req + 5, sizeof sum_req - 1 - 5, &m);
    call_encoding = "gzip";
    c_call(&c, SVC "Sum", m.data, m.len);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.data.len, sizeof sum_reply - 1);
    assert_memory_equal(c.data.data, sum_reply, sizeof sum_reply - 1);
    char *zeros = calloc(1, 5u << 20); /* 5 MiB: a few KiB once compressed */
    gz_message(zeros, 5u << 20, &m);
    free(zeros);
    assert_true(m.len < 65536);
    c_call(&c, SVC "Sum", m.data, m.len);
    assert_int_equal(c.status, 8);
    c_call(&c, SVC "Sum",
           "\x01\0\0\0\x03"
           "abc",
           8);
    assert_int_equal(c.status, 13);
    call_encoding = "deflate"; /* the zlib format, as grpc-js reads and writes it */
    c_call(&c, SVC "Sum",
           "\x01\0\0\0\x03"
           "abc",
           8);
    assert_int_equal(c.status, 13);
    unsigned char z[64] = {1};
    uLongf zl = sizeof z - 5;
    assert_int_equal(compress2(z + 5, &zl, (const Bytef *)sum_req + 5, sizeof sum_req - 1 - 5, 6), Z_OK);
    z[4] = (unsigned char)zl;
    c_call(&c, SVC "Sum", (const char *)z, 5 + zl);
    assert_int_equal(c.status, 0);
    assert_memory_equal(c.data.data, sum_reply, sizeof sum_reply - 1);
    call_encoding = "snappy";
    c_call(&c, SVC "Sum",
           "\x01\0\0\0\x03"
           "abc",
           8);
    assert_int_equal(c.status, 12);
    call_encoding = "identity";
    expect_sum(&c);
    nc_buf_free(&m);
    c_free(&c);
}

/* Metadata past maxMetadataSize (8 KiB by default, grpc-js's): the stream is reset, nothing dispatched;
 * the connection serves the next call. */
static void test_big_metadata(void **st) {
    h2c c;
    c_open(&c, 1);
    char *big = malloc(10000);
    memset(big, 'm', 9999);
    big[9999] = '\0';
    call_xk = big;
    seen_header[0] = '\0';
    c_call(&c, SVC "Sum", sum_req, sizeof sum_req - 1);
    assert_int_equal(c.status, -1); /* no status: RST_STREAM */
    assert_string_equal(seen_header, "");
    call_xk = "v";
    free(big);
    expect_sum(&c);
    c_free(&c);
}

/* Responses queued past maxSendBufferSize (a client that cannot keep up): the connection is closed, as on
 * TCP; the server serves the next one. */
static void test_send_bound(void **st) {
    h2c c;
    c_open(&c, 1);
    c_start(&c, SVC "Streaming", "\0\0\0\0\0", 5);
    run_until(&c.eof, 1);
    assert_int_equal(c.status, -1);
    assert_true(c.data.len < (size_t)64 * 65536);
    c_free(&c);
    c_open(&c, 1);
    expect_sum(&c);
    c_free(&c);
}

/* Backpressure: the client's HTTP/2 windows (64 KiB, opened only as it reads) hold the server's messages;
 * the handler sees "not writable" once 64 KiB wait, stops, and its drain callback resumes it as the client
 * reads (nghttp2 takes more once the client's WINDOW_UPDATE comes, the socket takes it). Every item arrives,
 * in order; the server never holds more than the high-water mark and a message, and the connection outlives
 * the 1 MiB send bound that closes test_send_bound's. */
static void test_backpressure(void **st) {
    memset(&pump, 0, sizeof pump);
    memset(pump.value, 'p', PUMP_SIZE);
    h2c c;
    c_manual_window = 1;
    c_open(&c, 1);
    c_manual_window = 0;
    int before = c.streams;
    int32_t id = c_start(&c, SVC "BidiEcho", "\0\0\0\0\0", 5);
    /* the client reads nothing yet: the first 64 KiB fill its stream window and the socket takes them (one
     * drain), the next 64 KiB wait in the server, and the handler stays paused */
    run_until(&pump.blocked, 2);
    assert_int_equal(pump.drains, 1);
    assert_false(pump.ended);
    assert_true(c.data.len <= 65535);
    /* now read slowly: open the windows by at most 16 KiB per loop turn */
    size_t consumed = 0;
    while (c.streams == before) {
        if (c.data.len > consumed) {
            size_t n = c.data.len - consumed < 16384 ? c.data.len - consumed : 16384;
            assert_int_equal(nghttp2_session_consume(c.s, id, n), 0);
            consumed += n;
            c_flush(&c);
        }
        uv_run(&loop, c.data.len > consumed ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    }
    assert_int_equal(c.status, 0);
    assert_true(pump.ended);
    assert_true(pump.blocked > 1);
    assert_true(pump.drains >= pump.blocked - 1);
    assert_true(pump.max_buffered < NC_REPLY_HIGH_WATER_DEFAULT + 2 * (PUMP_SIZE + 64));
    /* every item, in order: [flag][len][0x0a len text][0x10 big (absent for 0)] */
    size_t off = 0;
    for (int i = 0; i < PUMP_N; i++) {
        assert_true(off + 5 <= c.data.len);
        const unsigned char *p = (const unsigned char *)c.data.data + off;
        size_t len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        const unsigned char *q = p + 5, *end = q + len;
        int index = 0;
        while (q < end) {
            unsigned tag = *q++;
            size_t v = 0;
            int shift = 0;
            do v |= (size_t)(*q & 0x7f) << shift, shift += 7;
            while (*q++ & 0x80);
            if (tag == 0x0a) q += v; /* the text */
            if (tag == 0x10) index = (int)v;
        }
        assert_int_equal(index, i);
        off += 5 + len;
    }
    assert_int_equal(off, c.data.len);
    print_message("backpressure: %d pauses, %d drains, at most %zu bytes buffered\n", pump.blocked,
                  pump.drains, pump.max_buffered);
    c_free(&c);
}

/* A connection that never sends its preface is closed after incompleteMessageTimeout (300 ms here); the
 * server serves the next one. */
static void test_silent_client(void **st) {
    h2c c;
    c_open(&c, 0);
    run_until(&c.eof, 1); /* the server's end: ctest's limit ends a hang */
    c_free(&c);
    c_open(&c, 1);
    expect_sum(&c);
    c_free(&c);
}

/* Random bytes after a good preface, on 100 connections (a fixed seed: the same bytes every run), some of
 * them shaped as frames of every type for stream 1 so that they reach the call code: whatever nghttp2 and
 * the server make of them, the connection ends or stays cleanly and the server goes on serving. */
static void test_random_frames(void **st) {
    uint32_t seed = 12345;
    for (int k = 0; k < 100; k++) {
        h2c c;
        c_open(&c, 0);
        char b[600];
        size_t n = 0;
        memcpy(b, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0", 33);
        n = 33;
        while (n < sizeof b - 64) {
            seed = seed * 1103515245u + 12345u;
            size_t len = (seed >> 16) % 40;
            unsigned type = (seed >> 8) % 10, flags = seed % 256;
            if (k % 2) { /* a frame header with random type, flags and payload */
                unsigned char h[9] = {
                    0, 0, (unsigned char)len, (unsigned char)type, (unsigned char)flags, 0, 0, 0, 1};
                memcpy(b + n, h, 9);
                n += 9;
            }
            for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245u + 12345u;
                b[n++] = (char)(seed >> 16);
            }
        }
        uv_buf_t ub = uv_buf_init(b, (unsigned)n);
        uv_try_write((uv_stream_t *)&c.tcp, &ub, 1);
        run_until_ms(&c.eof, 1, 10); /* the server may close it, or wait for more */
        c_free(&c);
    }
    /* then random request bodies on good calls (random prefixes, flags and protobuf bytes, half of them
     * behind a well-formed prefix): each call ends with a status, the same connection serves the next */
    h2c c;
    c_open(&c, 1);
    for (int k = 0; k < 200; k++) {
        char b[300];
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % sizeof b;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            b[i] = (char)(seed >> 16);
        }
        if (k % 2 && n >= 5) { /* uncompressed, its length right: the bytes reach the decoder */
            b[0] = 0;
            b[1] = b[2] = 0;
            b[3] = (char)((n - 5) >> 8);
            b[4] = (char)(n - 5);
        }
        call_encoding = k % 3 ? "identity" : "gzip";
        c_call(&c, k % 4 ? SVC "Sum" : SVC "Exception", b, n);
        assert_int_not_equal(c.status, -1);
    }
    call_encoding = "identity";
    expect_sum(&c);
    c_free(&c);
}

/* ---- keepalive and idle connections: each case on a server of its own, its options given ------------ */

static nc_server *with_options(const nc_option *extra, size_t n) {
    nc_option o[8] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    for (size_t i = 0; i < n; i++) o[2 + i] = extra[i];
    nc_server_opts so = {.loop = &loop, .options = o, .noptions = 2 + n};
    nc_server *s;
    assert_int_equal(nc_server_new(&s, "grpc://127.0.0.1:0", &so), 0);
    nc_server_message(s, "{\"service\":\"Conformance\",\"rpc\":\"Sum\",\"streaming\":\"no_stream\"}", h_sum,
                      NULL);
    nc_server_message(s, "{\"service\":\"Conformance\",\"rpc\":\"Sleep\",\"streaming\":\"no_stream\"}",
                      h_sleep, NULL);
    assert_int_equal(nc_server_listen(s), 0);
    return s;
}

static char ms_buf[4][16];
static const char *ms(int i, int v) { /* v ms scaled by the time factor, as option text */
    snprintf(ms_buf[i], sizeof ms_buf[i], "%d", v * time_factor());
    return ms_buf[i];
}

/* keepaliveTimeMs: a client that answers the server's PINGs stays connected through several of them and is
 * served; one that never answers is closed once keepaliveTimeoutMs passes after the first PING. */
static void test_keepalive(void **st) {
    nc_server *main_srv = srv;
    nc_option o[] = {{"keepaliveTimeMs", ms(0, 30)}, {"keepaliveTimeoutMs", ms(1, 100)}};
    srv = with_options(o, 2);
    h2c c = {0};
    c_open(&c, 1);
    run_until(&c.pings, 3); /* acknowledged by nghttp2 each time */
    assert_int_equal(c.eof, 0);
    expect_sum(&c);
    c_free(&c);
    c_open_with(&c, 1, 1);
    run_until(&c.eof, 1);
    assert_int_equal(c.pings, 1);
    c_free(&c);
    nc_server_free(srv);
    srv = main_srv;
}

/* A PING flood under http2MinPingIntervalWithoutDataMs: the third strike past http2MaxPingStrikes=2 gets
 * GOAWAY ENHANCE_YOUR_CALM "too_many_pings", then the connection ends; pings with responses between them
 * are no strikes. Without the minimum (the default, as grpc-js) a flood is answered and nothing more. */
static void test_ping_flood(void **st) {
    nc_server *main_srv = srv;
    nc_option o[] = {{"http2MinPingIntervalWithoutDataMs", "10000"},
                     {"http2MaxPingStrikes", "2"},
                     {"keepalivePermitWithoutCalls", "true"}};
    srv = with_options(o, 3);
    h2c c = {0};
    c_open(&c, 1);
    for (int i = 0; i < 3; i++) { /* a ping, then a call (its response resets the count), three times */
        nghttp2_submit_ping(c.s, NGHTTP2_FLAG_NONE, NULL);
        c_flush(&c);
        expect_sum(&c);
    }
    assert_int_equal(c.goaway_code, -1);
    for (int i = 0; i < 4; i++) nghttp2_submit_ping(c.s, NGHTTP2_FLAG_NONE, NULL);
    c_flush(&c);
    run_until(&c.eof, 1);
    assert_int_equal(c.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    assert_string_equal(c.goaway_data, "too_many_pings");
    c_free(&c);
    nc_server_free(srv);
    srv = main_srv;
    c_open(&c, 1); /* the suite's server: no policing */
    for (int i = 0; i < 20; i++) nghttp2_submit_ping(c.s, NGHTTP2_FLAG_NONE, NULL);
    c_flush(&c);
    expect_sum(&c);
    assert_int_equal(c.goaway_code, -1);
    c_free(&c);
}

/* maxConnectionIdleMs: a connection whose last call ended that long ago gets GOAWAY NO_ERROR and ends; a
 * call in flight keeps it (a Sleep ended by its 300 ms deadline, three times the idle time). */
static void test_idle(void **st) {
    nc_server *main_srv = srv;
    nc_option o[] = {{"maxConnectionIdleMs", ms(0, 100)}};
    srv = with_options(o, 1);
    h2c c = {0};
    c_open(&c, 1);
    expect_sum(&c);
    char t[16];
    snprintf(t, sizeof t, "%dm", 300 * time_factor());
    call_timeout = t;
    c_call(&c, SVC "Sleep", "\0\0\0\0\x02\x08\x01", 7);
    call_timeout = "5S";
    assert_int_equal(c.status, 4);
    assert_int_equal(c.goaway_code, -1); /* not while the call was in flight */
    run_until(&c.eof, 1);
    assert_int_equal(c.goaway_code, NGHTTP2_NO_ERROR);
    c_free(&c);
    nc_server_free(srv);
    srv = main_srv;
}

/* maxConnectionAgeMs: GOAWAY NO_ERROR about that long after the connection opened, even with a call in
 * flight, which goes on to its end there (a Sleep answered at its 300 ms deadline, not reset); then the
 * connection ends. With maxConnectionAgeGraceMs such a call is cut when the grace is over. */
static void test_age(void **st) {
    nc_server *main_srv = srv;
    nc_option o[] = {{"maxConnectionAgeMs", ms(0, 100)}};
    srv = with_options(o, 1);
    h2c c = {0};
    c_open(&c, 1);
    char t[16];
    snprintf(t, sizeof t, "%dm", 300 * time_factor());
    call_timeout = t;
    c_call(&c, SVC "Sleep", "\0\0\0\0\x02\x08\x01", 7);
    assert_int_equal(c.goaway_code, NGHTTP2_NO_ERROR); /* the GOAWAY came while the call was in flight */
    assert_int_equal(c.status, 4);                     /* and the call was answered to its end */
    run_until(&c.eof, 1);
    c_free(&c);
    nc_server_free(srv);
    nc_option g[] = {{"maxConnectionAgeMs", ms(0, 50)}, {"maxConnectionAgeGraceMs", ms(1, 50)}};
    srv = with_options(g, 2);
    c_open(&c, 1);
    c_start(&c, SVC "Sleep", "\0\0\0\0\x02\x08\x01", 7);
    call_timeout = "5S";
    run_until(&c.eof, 1); /* cut by the grace: the connection closed under the call */
    assert_int_equal(c.goaway_code, NGHTTP2_NO_ERROR);
    assert_int_equal(c.streams, 0); /* the call never ended on the wire */
    c_free(&c);
    nc_server_free(srv);
    srv = main_srv;
}

/* PINGs from a client that reads nothing, 200 at a time (nghttp2 closes a connection itself when one read
 * holds more than 1,000 ACKs to send): once the kernel's buffers are full the ACKs pile up unsent, past
 * max_send_buffer_size (1 MiB here) the connection is closed, as for responses (the client's writes then
 * fail); the server serves the next one. */
static int ping_write_failed;
static void write_done(uv_write_t *w, int status) {
    if (status) ping_write_failed = 1;
    free(w->data);
    free(w);
}

static void test_unread_pings(void **st) {
    h2c c;
    c_open(&c, 1);
    uv_read_stop((uv_stream_t *)&c.tcp);
    static const char ping[] = "\0\0\x08\x06\0\0\0\0\0"
                               "12345678";
    ping_write_failed = 0;
    for (int k = 0; k < 20000 && !ping_write_failed; k++) { /* up to 65 MiB of PINGs */
        char *b = malloc(200 * 17);
        for (int i = 0; i < 200; i++) memcpy(b + i * 17, ping, 17);
        uv_write_t *w = malloc(sizeof *w);
        w->data = b;
        uv_buf_t ub = uv_buf_init(b, 200 * 17);
        if (uv_write(w, (uv_stream_t *)&c.tcp, &ub, 1, write_done)) {
            free(b);
            free(w);
            ping_write_failed = 1;
        }
        while (uv_stream_get_write_queue_size((uv_stream_t *)&c.tcp) > 65536 && !ping_write_failed)
            uv_run(&loop, UV_RUN_ONCE); /* the server reads at its pace */
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_true(ping_write_failed);
    c_free(&c);
    c_open(&c, 1);
    expect_sum(&c);
    c_free(&c);
}

/* ---- reflection's FileDescriptorProto, read back with a subset of descriptor.proto ------------------- */

static const char *const desc_names[] = {"t.proto", "dep.proto", "d.proto"};
static const char *const desc_texts[] = {
    "syntax = \"proto3\"; package t; import \"dep.proto\";"
    "message M { optional int32 a = 1; oneof real { string b = 2; dep.D c = 3; }"
    " map<string, M> my_map = 4; repeated int32 packed = 5; repeated int32 loose = 6 [packed = false];"
    " message N { enum E { X = 0; Y = 1; Z = 1; } E e = 1; } N n = 7; }"
    "service S { rpc Get (M) returns (stream M); }",
    "syntax = \"proto2\"; package dep; message D { repeated int32 p = 1 [packed = true]; }",
    "syntax = \"proto2\"; package d;"
    "message File { optional string name = 1; optional string package = 2; repeated string dependency = 3;"
    " repeated Msg message_type = 4; repeated Svc service = 6; optional string syntax = 12; }"
    "message Msg { optional string name = 1; repeated Field field = 2; repeated Msg nested_type = 3;"
    " repeated Enum enum_type = 4; optional MsgOpt options = 7; repeated Oneof oneof_decl = 8; }"
    "message MsgOpt { optional bool map_entry = 7; }"
    "message Field { optional string name = 1; optional int32 number = 3; optional int32 label = 4;"
    " optional int32 type = 5; optional string type_name = 6; optional FieldOpt options = 8;"
    " optional int32 oneof_index = 9; optional bool proto3_optional = 17; }"
    "message FieldOpt { optional bool packed = 2; }"
    "message Oneof { optional string name = 1; }"
    "message Enum { optional string name = 1; repeated Value value = 2; optional EnumOpt options = 3; }"
    "message Value { optional string name = 1; optional int32 number = 2; }"
    "message EnumOpt { optional bool allow_alias = 2; }"
    "message Svc { optional string name = 1; repeated Method method = 2; }"
    "message Method { optional string name = 1; optional string input_type = 2; optional string output_type "
    "= 3;"
    " optional bool client_streaming = 5; optional bool server_streaming = 6; }",
};

static int desc_read(void *u, const char *path, char **text, size_t *len) {
    for (size_t i = 0; i < 3; i++)
        if (!strcmp(path, desc_names[i])) {
            *text = strdup(desc_texts[i]);
            *len = strlen(desc_texts[i]);
            return 0;
        }
    return 1;
}

/* The descriptor of a file with every construct reflection carries: the real oneof before the synthetic
 * one of a proto3 optional field (protoc refuses them the other way round), the map's entry message, packed
 * only where it differs from the syntax, an enum alias, a nested enum, a dependency, a server stream. */
static void test_descriptor(void **st) {
    nc_pb_pool *p, *d;
    char err[200];
    assert_int_equal(nc_proto_load(&p, "t.proto", NULL, 0, desc_read, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(nc_proto_load(&d, "d.proto", NULL, 0, desc_read, NULL, NULL, err, sizeof err), 0);
    nc_buf b = NC_BUF_INIT;
    assert_int_equal(nc_grpc_file_descriptor(p, 0, &b), 0);
    assert_int_equal(nc_grpc_symbol_file(p, "t.S.Get"), 0);
    assert_int_equal(nc_grpc_symbol_file(p, ".t.M.N.E"), 0);
    assert_int_equal(nc_grpc_symbol_file(p, "dep.D"), 1);
    assert_int_equal(nc_grpc_symbol_file(p, "t.S.Nope"), -1);
    nc_pb_json_opts o = {.keep_case = 1};
    json_t *got = NULL;
    assert_int_equal(nc_pb_decode(nc_proto_message(d, "d.File"), b.data, b.len, &o, &got, err, sizeof err),
                     0);
    static const char want[] =
        "{\"name\":\"t.proto\",\"package\":\"t\",\"dependency\":[\"dep.proto\"],\"message_type\":[{\"name\":"
        "\"M\","
        "\"field\":["
        "{\"name\":\"a\",\"number\":1,\"label\":1,\"type\":5,\"oneof_index\":1,\"proto3_optional\":true},"
        "{\"name\":\"b\",\"number\":2,\"label\":1,\"type\":9,\"oneof_index\":0},"
        "{\"name\":\"c\",\"number\":3,\"label\":1,\"type\":11,\"type_name\":\".dep.D\",\"oneof_index\":0},"
        "{\"name\":\"my_map\",\"number\":4,\"label\":3,\"type\":11,\"type_name\":\".t.M.MyMapEntry\"},"
        "{\"name\":\"packed\",\"number\":5,\"label\":3,\"type\":5},"
        "{\"name\":\"loose\",\"number\":6,\"label\":3,\"type\":5,\"options\":{\"packed\":false}},"
        "{\"name\":\"n\",\"number\":7,\"label\":1,\"type\":11,\"type_name\":\".t.M.N\"}],"
        "\"nested_type\":[{\"name\":\"MyMapEntry\",\"field\":["
        "{\"name\":\"key\",\"number\":1,\"label\":1,\"type\":9},"
        "{\"name\":\"value\",\"number\":2,\"label\":1,\"type\":11,\"type_name\":\".t.M\"}],"
        "\"options\":{\"map_entry\":true}},"
        "{\"name\":\"N\",\"field\":[{\"name\":\"e\",\"number\":1,\"label\":1,\"type\":14,\"type_name\":\".t."
        "M.N.E\"}],"
        "\"enum_type\":[{\"name\":\"E\",\"value\":[{\"name\":\"X\",\"number\":0},{\"name\":\"Y\",\"number\":"
        "1},"
        "{\"name\":\"Z\",\"number\":1}],\"options\":{\"allow_alias\":true}}]}],"
        "\"oneof_decl\":[{\"name\":\"real\"},{\"name\":\"_a\"}]}],"
        "\"service\":[{\"name\":\"S\",\"method\":[{\"name\":\"Get\",\"input_type\":\".t.M\",\"output_type\":"
        "\".t.M\","
        "\"server_streaming\":true}]}],\"syntax\":\"proto3\"}";
    json_t *w = nc_json_build(want, sizeof want - 1);
    assert_non_null(w);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fail_msg("descriptor:\n%s", g);
    }
    json_decref(w);
    json_decref(got);
    nc_buf_reset(&b); /* the proto2 dependency: packed = true written, proto2's default being unpacked */
    assert_int_equal(nc_grpc_file_descriptor(p, 1, &b), 0);
    assert_int_equal(nc_pb_decode(nc_proto_message(d, "d.File"), b.data, b.len, &o, &got, err, sizeof err),
                     0);
    w = nc_json_build(
        "{\"name\":\"dep.proto\",\"package\":\"dep\",\"message_type\":[{\"name\":\"D\",\"field\":"
        "[{\"name\":\"p\",\"number\":1,\"label\":3,\"type\":5,\"options\":{\"packed\":true}}]}],"
        "\"syntax\":\"proto2\"}",
        strlen("{\"name\":\"dep.proto\",\"package\":\"dep\",\"message_type\":[{\"name\":\"D\",\"field\":"
               "[{\"name\":\"p\",\"number\":1,\"label\":3,\"type\":5,\"options\":{\"packed\":true}}]}],"
               "\"syntax\":\"proto2\"}"));
    assert_true(json_equal(got, w));
    json_decref(w);
    json_decref(got);
    nc_buf_free(&b);
    nc_proto_free(p);
    nc_proto_free(d);
}

static int setup(void **st) {
    loop_setup(st);
    nc_option opts[] = {{"protoPath", PROTO}, {"keepCase", "true"}};
    nc_server_opts so = {.loop = &loop,
                         .options = opts,
                         .noptions = 2,
                         .max_send_buffer_size = 1 << 20,
                         .incomplete_message_timeout_ms = 300 * time_factor()};
    assert_int_equal(nc_server_new(&srv, "grpc://127.0.0.1:0", &so), 0);
    nc_server_message(srv, "{\"service\":\"Conformance\",\"rpc\":\"Sum\",\"streaming\":\"no_stream\"}", h_sum,
                      NULL);
    nc_server_message(srv, "{\"service\":\"Conformance\",\"rpc\":\"Exception\",\"streaming\":\"no_stream\"}",
                      h_exception, NULL);
    nc_server_message(srv, "{\"service\":\"Conformance\",\"rpc\":\"Sleep\",\"streaming\":\"no_stream\"}",
                      h_sleep, NULL);
    nc_server_message(srv, "{\"service\":\"Conformance\",\"rpc\":\"Streaming\",\"streaming\":\"no_stream\"}",
                      h_flood, NULL);
    nc_server_message(srv, "{\"service\":\"Conformance\",\"rpc\":\"Echo\",\"streaming\":\"no_stream\"}",
                      h_bad_echo, NULL);
    nc_server_message(srv, "{\"service\":\"Conformance\",\"rpc\":\"BidiEcho\",\"streaming\":\"rx_stream\"}",
                      h_pump, NULL);
    assert_int_equal(nc_server_listen(srv), 0);
    return 0;
}

static int teardown(void **st) {
    nc_server_free(srv);
    return loop_teardown(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary),         cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_not_http2),     cmocka_unit_test(test_bad_frame),
        cmocka_unit_test(test_oversize),      cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_gzip),          cmocka_unit_test(test_big_metadata),
        cmocka_unit_test(test_send_bound),    cmocka_unit_test(test_silent_client),
        cmocka_unit_test(test_random_frames), cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_ping_flood),    cmocka_unit_test(test_idle),
        cmocka_unit_test(test_age),           cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_unread_pings),  cmocka_unit_test(test_backpressure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
