/* The same unary round trip as grpc-core-unary.c on nghttp2's sans-I/O sessions, the way a nestc gRPC
 * transport would drive them from its loop: a client session and a server session in ONE thread, each
 * fed the bytes read from its non-blocking loopback TCP socket (nghttp2_session_mem_recv) and asked for
 * the bytes to write (nghttp2_session_mem_send); poll() stands in for libuv. gRPC framing (5-byte message
 * prefix, grpc-status trailers) is written by hand, as the transport would. Prints one JSON line. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char msg[] =
    "\x0a\x05hello\x10\x2a\x22\x03\x01\x02\x03"; /* the EchoMessage of grpc-core-unary */
#define MSG_LEN (sizeof msg - 1)

typedef struct side {
    nghttp2_session *s;
    int fd;
    /* server: the request body of the stream being served; client: the reply body and status */
    unsigned char body[256];
    size_t body_len;
    int32_t stream;
    int done;
    int status;
    size_t sent; /* data provider offset */
} side;

static side server_side, client_side;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}
static int threads(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* DATA of a message: 5-byte gRPC prefix (uncompressed, length) then the message. For the server, the
 * trailers follow the data (end of stream on the trailers, as gRPC requires). */
static ssize_t read_body(nghttp2_session *s, int32_t stream, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user) {
    side *sd = src->ptr;
    unsigned char frame[5 + MSG_LEN];
    frame[0] = 0;
    frame[1] = frame[2] = frame[3] = 0;
    frame[4] = (unsigned char)MSG_LEN;
    memcpy(frame + 5, msg, MSG_LEN);
    size_t n = sizeof frame - sd->sent;
    if (n > len) n = len;
    memcpy(buf, frame + sd->sent, n);
    sd->sent += n;
    if (sd->sent == sizeof frame) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (sd == &server_side) { /* the server ends its stream with the trailers */
            nghttp2_nv tr[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(s, stream, tr, 1)) return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }
    return (ssize_t)n;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream, const uint8_t *data, size_t len,
                   void *user) {
    side *sd = user;
    if (sd->body_len + len <= sizeof sd->body) memcpy(sd->body + sd->body_len, data, len);
    sd->body_len += len;
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user) {
    side *sd = user;
    if (nl == 11 && !memcmp(name, "grpc-status", 11)) sd->status = atoi((const char *)value);
    return 0;
}

/* The server answers when the request stream ends: headers, the echoed message, trailers. */
static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user) {
    side *sd = user;
    if (sd == &server_side && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS)) {
        if (sd->body_len != 5 + MSG_LEN) return NGHTTP2_ERR_CALLBACK_FAILURE;
        sd->body_len = 0;
        sd->sent = 0;
        nghttp2_nv hd[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
                           {(uint8_t *)"content-type", (uint8_t *)"application/grpc+proto", 12, 22, 0}};
        nghttp2_data_provider dp = {.source.ptr = sd, .read_callback = read_body};
        return nghttp2_submit_response(s, f->hd.stream_id, hd, 2, &dp);
    }
    return 0;
}

static int on_close(nghttp2_session *s, int32_t stream, uint32_t err, void *user) {
    side *sd = user;
    if (sd == &client_side) sd->done = 1;
    return 0;
}

static void pump_out(side *sd) {
    const uint8_t *p;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(sd->s, &p)) > 0) {
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(sd->fd, p + off, (size_t)(n - off));
            if (w < 0 && errno == EAGAIN) {
                struct pollfd pf = {sd->fd, POLLOUT, 0};
                poll(&pf, 1, -1);
                continue;
            }
            if (w < 0) exit(1);
            off += w;
        }
    }
}

static void pump_in(side *sd) {
    uint8_t buf[16384];
    ssize_t n = read(sd->fd, buf, sizeof buf);
    if (n > 0 && nghttp2_session_mem_recv(sd->s, buf, (size_t)n) != n) exit(1);
}

static void setup(side *sd, int server) {
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    if (server)
        nghttp2_session_server_new(&sd->s, cb, sd);
    else
        nghttp2_session_client_new(&sd->s, cb, sd);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(sd->s, NGHTTP2_FLAG_NONE, NULL, 0);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(ls, (struct sockaddr *)&a, sizeof a);
    listen(ls, 1);
    getsockname(ls, (struct sockaddr *)&a, &al);
    client_side.fd = socket(AF_INET, SOCK_STREAM, 0);
    connect(client_side.fd, (struct sockaddr *)&a, sizeof a);
    server_side.fd = accept(ls, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        int fd = i ? server_side.fd : client_side.fd;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, O_NONBLOCK);
    }
    setup(&server_side, 1);
    setup(&client_side, 0);
    double w0 = 0, c0 = 0;
    for (int i = 0; i < n + 100; i++) {
        if (i == 100) w0 = now(), c0 = cpu();
        nghttp2_nv hd[] = {
            {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
            {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
            {(uint8_t *)":path", (uint8_t *)"/nestc.conformance.Conformance/Echo", 5, 35, 0},
            {(uint8_t *)":authority", (uint8_t *)"127.0.0.1", 10, 9, 0},
            {(uint8_t *)"content-type", (uint8_t *)"application/grpc+proto", 12, 22, 0},
            {(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0},
        };
        client_side.done = 0;
        client_side.status = -1;
        client_side.body_len = 0;
        client_side.sent = 0;
        nghttp2_data_provider dp = {.source.ptr = &client_side, .read_callback = read_body};
        if (nghttp2_submit_request(client_side.s, NULL, hd, 6, &dp, &client_side) < 0) return 1;
        while (!client_side.done) {
            pump_out(&client_side);
            pump_out(&server_side);
            struct pollfd pf[2] = {{client_side.fd, POLLIN, 0}, {server_side.fd, POLLIN, 0}};
            poll(pf, 2, 1000);
            if (pf[1].revents & POLLIN) pump_in(&server_side);
            if (pf[0].revents & POLLIN) pump_in(&client_side);
        }
        if (client_side.status != 0 || client_side.body_len != 5 + MSG_LEN) {
            fprintf(stderr, "call failed: status %d, %zu bytes\n", client_side.status, client_side.body_len);
            return 1;
        }
    }
    double wall = now() - w0, c = cpu() - c0;
    printf("{\"stack\":\"nghttp2 "
           "%s\",\"calls\":%d,\"us_per_call\":%.1f,\"cpu_us_per_call\":%.1f,\"threads_running\":%d}\n",
           nghttp2_version(0)->version_str, n, wall / n * 1e6, c / n * 1e6, threads());
    nghttp2_session_del(client_side.s);
    nghttp2_session_del(server_side.s);
    return 0;
}
