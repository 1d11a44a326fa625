/* Write backpressure over TCP (an Observable's replies): the writable signal is the connection's write queue.
 * A client that does not read makes the handler pause at the high-water mark; once the client reads, the
 * drain callback resumes it and every value arrives in order, while the server never holds more than the
 * mark and a value or two, far under its 1 MiB send bound (which would close the connection otherwise).
 * Also the API's edges: a stale handle, a request/reply request that never asks (writable, nothing counted).
 */
#include <string.h>
#include <sys/socket.h>

#include "loop_fixture.h"
#include "util/buf.h"

#define N 512
#define VALUE_SIZE 16000
#define HIGH (32 * 1024)

static nc_server *srv;

static struct {
    int next, blocked, drains, ended;
    size_t max_buffered;
    char value[VALUE_SIZE + 1];
} pump;

static void pump_run(nc_request *req) {
    while (pump.next < N) {
        if (!nc_reply_writable(req)) {
            pump.blocked++;
            return;
        }
        nc_reply_next(req, json_pack("{s:i,s:s}", "i", pump.next++, "v", pump.value));
        size_t b = 0;
        assert_int_equal(nc_reply_buffered(req, &b), 0);
        if (b > pump.max_buffered) pump.max_buffered = b;
    }
    nc_reply_end(req);
    pump.ended = 1;
}
static void on_drain(nc_request *req, void *arg) {
    pump.drains++;
    pump_run(req);
}
static void h_pump(nc_request *req, const nc_msg *m, void *u) {
    assert_int_equal(nc_request_on_drain(req, HIGH, on_drain, NULL), 0);
    pump_run(req);
}

static nc_request *kept;
static int plain_writable = -1;
static void h_plain(nc_request *req, const nc_msg *m, void *u) {
    size_t b = 1;
    assert_int_equal(nc_reply_buffered(req, &b), 0);
    plain_writable = nc_reply_writable(req);
    kept = req;
    nc_reply(req, json_integer(1));
}

/* ---- a raw client: reads only when told ---------------------------------------------------------------- */

static uv_tcp_t tcp;
static uv_connect_t creq;
static int connected, closed, eof;
static nc_buf in;

static void c_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
    static char buf[65536];
    *b = uv_buf_init(buf, sizeof buf);
}
static void c_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    if (n < 0) {
        eof = 1;
        return;
    }
    nc_buf_append(&in, b->base, (size_t)n);
}
static void c_connected(uv_connect_t *r, int status) {
    assert_int_equal(status, 0);
    connected = 1;
}
static void c_closed(uv_handle_t *h) {
    closed = 1;
}

static void c_open(void) {
    connected = closed = eof = 0;
    nc_buf_reset(&in);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", nc_server_port(srv), &a);
    uv_tcp_init(&loop, &tcp);
    /* a small receive buffer (no autotuning): what the kernels hold for a client that does not read stays
     * near the server's send buffer (at most tcp_wmem's 4 MiB), under the 8 MB the handler streams */
    int fd = socket(AF_INET, SOCK_STREAM, 0), rcv = 16384;
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv), 0);
    assert_int_equal(uv_tcp_open(&tcp, fd), 0);
    assert_int_equal(uv_tcp_connect(&creq, &tcp, (struct sockaddr *)&a, c_connected), 0);
    run_until(&connected, 1);
}
static void c_send(const char *json) {
    char frame[256];
    int n = snprintf(frame, sizeof frame, "%zu#%s", strlen(json), json);
    uv_buf_t b = uv_buf_init(frame, (unsigned)n);
    assert_int_equal(uv_try_write((uv_stream_t *)&tcp, &b, 1), n);
}
static void c_close(void) {
    uv_close((uv_handle_t *)&tcp, c_closed);
    run_until(&closed, 1);
}

/* Checks the whole frames received since the last call (values in order, counted in *count, *off the bytes
 * done); returns whether one of them ended the stream. */
static int check_frames(size_t *off, int *count) {
    while (*off < in.len) {
        char *hash = memchr(in.data + *off, '#', in.len - *off);
        if (!hash) return 0; /* a frame in the middle of its prefix: more to come */
        size_t len = strtoul(in.data + *off, NULL, 10), start = (size_t)(hash - in.data) + 1;
        if (start + len > in.len) return 0;
        json_t *f = json_loadb(in.data + start, len, 0, NULL);
        assert_non_null(f);
        json_t *r = json_object_get(f, "response");
        if (r) {
            assert_int_equal(json_integer_value(json_object_get(r, "i")), *count);
            assert_int_equal(strlen(json_string_value(json_object_get(r, "v"))), VALUE_SIZE);
            (*count)++;
        }
        int done = json_is_true(json_object_get(f, "isDisposed"));
        json_decref(f);
        *off = start + len;
        if (done) return 1;
    }
    return 0;
}

static void test_slow_reader(void **st) {
    memset(&pump, 0, sizeof pump);
    memset(pump.value, 'v', VALUE_SIZE);
    c_open();
    c_send("{\"pattern\":\"pump\",\"data\":null,\"id\":\"1\"}");
    /* the client reads nothing: the socket's buffers fill, then the queue, and the handler pauses for good.
     * A stall is the absence of progress, so it is seen over a window of time: the handler paused and wrote
     * nothing more for 200 ms (scaled); the loop returns as soon as that holds. */
    for (int last = -1; !(pump.blocked > pump.drains && pump.next == last);) {
        last = pump.next;
        int never = 0;
        run_until_ms(&never, 1, 200);
        assert_false(pump.ended);
    }
    assert_int_equal(in.len, 0);
    print_message("tcp backpressure: paused after %d of %d values\n", pump.next, N);
    /* now it reads: the handler resumes from each drain until the end */
    uv_read_start((uv_stream_t *)&tcp, c_alloc, c_read);
    int count = 0;
    size_t off = 0;
    while (!check_frames(&off, &count)) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(count, N);
    assert_true(pump.ended);
    assert_true(pump.drains >= pump.blocked - 1);
    assert_true(pump.max_buffered < HIGH + 2 * (VALUE_SIZE + 64));
    print_message("tcp backpressure: %d pauses, %d drains, at most %zu bytes buffered of %d\n", pump.blocked,
                  pump.drains, pump.max_buffered, N * VALUE_SIZE);
    c_close();
}

/* Request/reply: writable, nothing buffered; a finished handle is refused; NULL arguments too. */
static void test_edges(void **st) {
    c_open();
    uv_read_start((uv_stream_t *)&tcp, c_alloc, c_read);
    c_send("{\"pattern\":\"plain\",\"data\":null,\"id\":\"2\"}");
    run_until(&plain_writable, 1);
    size_t b;
    assert_int_equal(nc_reply_writable(kept), NC_ESTATE);
    assert_int_equal(nc_reply_buffered(kept, &b), NC_ESTATE);
    assert_int_equal(nc_request_on_drain(kept, 0, NULL, NULL), NC_ESTATE);
    assert_int_equal(nc_reply_writable(NULL), NC_EINVAL);
    assert_int_equal(nc_reply_buffered(NULL, &b), NC_EINVAL);
    c_close();
}

static int setup(void **st) {
    loop_setup(st);
    nc_server_opts so = {.loop = &loop, .max_send_buffer_size = 1 << 20};
    assert_int_equal(nc_server_new(&srv, "tcp://127.0.0.1:0", &so), 0);
    nc_server_message(srv, "pump", h_pump, NULL);
    nc_server_message(srv, "plain", h_plain, NULL);
    assert_int_equal(nc_server_listen(srv), 0);
    return 0;
}

static int teardown(void **st) {
    nc_server_free(srv);
    nc_buf_free(&in);
    return loop_teardown(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
