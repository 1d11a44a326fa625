/* rabbitmq-c (librabbitmq 0.11) against nestc's own AMQP 0-9-1 codec (docs/amqp.md, "Why our own codec"),
 * the same workload through one local rabbitmq-server: connect, declare a queue, publish N messages to it
 * (basic.publish + content header + body: a NestJS request body, correlation-id, reply-to, delivery-mode and
 * a headers table of two strings), wait until the queue holds them (a passive queue.declare), then consume
 * the N deliveries, with no-ack or acknowledging each one (basic.ack). Each phase reports CPU (getrusage,
 * user + sys), wall time and allocations (malloc/calloc/realloc interposed: library calls included) per
 * message; the process reports peak RSS and the heap still in use after the run.
 *
 *   rmq-vs-codec own|rmq|rmqin|rmqinj noack|ack PORT N
 *   rmq-vs-codec nest own|rmq DEPTH     a hostile connection.start (nested tables), see nest_probe
 *
 * own: the codec (src/codec/amqp_proto.c) with a minimal blocking socket driver, bench code and not the
 * transport: the bytes of many frames batched into one write (as nestc's streams batch a loop iteration's
 * writes), each read fed whole to the parser, the acks of one read written together. rmq: rabbitmq-c's
 * own API as its documentation and examples use it (amqp_basic_publish, amqp_consume_message,
 * amqp_basic_ack, amqp_maybe_release_buffers), on its own TCP socket. rmqin: the only way rabbitmq-c could
 * run on nestc's streams: the own side's driver, but publishes encoded with its public encoders
 * (amqp_encode_method, amqp_encode_properties; the frames around them built here as amqp_basic_publish does)
 * and deliveries decoded with amqp_handle_input, its public byte-fed frame decoder (the message assembled
 * here as amqp_read_message does). rmqinj: the same, plus what nestc would add on top: the headers table
 * built from the caller's JSON headers for each publish, and each delivery's headers table turned into the
 * JSON object a handler is given (the own codec does both itself). The handshake and queue setup use the
 * own codec in all but rmq mode.
 *
 * Under callgrind (compare.sh: --collect-atstart=no) BENCH_COLLECT=pub or BENCH_COLLECT=recv switches the
 * instruction count on for that phase only. Built and run by compare.sh. */
#define _GNU_SOURCE
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_TOGGLE_COLLECT ((void)0) /* without valgrind's headers: no per-phase instruction counts */
#endif

#include "codec/amqp_proto.h"

/* ---- malloc counting (interposes for the shared libraries too) ---- */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static unsigned long n_alloc;
void *malloc(size_t n) {
    n_alloc++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    n_alloc++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    n_alloc++;
    return __libc_realloc(p, n);
}
void free(void *p) {
    __libc_free(p);
}

static void die(const char *what) {
    fprintf(stderr, "rmq-vs-codec: %s\n", what);
    exit(1);
}

/* ---- phase measurement ---- */
typedef struct phase {
    struct rusage ru;
    struct timespec t;
    unsigned long alloc;
} phase;
typedef struct result {
    double cpu_us, wall_us, allocs;
} result;
static const char *collect; /* BENCH_COLLECT */

static void phase_begin(phase *p, const char *name) {
    if (collect && !strcmp(collect, name)) CALLGRIND_TOGGLE_COLLECT;
    getrusage(RUSAGE_SELF, &p->ru);
    clock_gettime(CLOCK_MONOTONIC, &p->t);
    p->alloc = n_alloc;
}
static result phase_end(const phase *p, const char *name, long n) {
    struct rusage r;
    struct timespec t;
    unsigned long a = n_alloc;
    clock_gettime(CLOCK_MONOTONIC, &t);
    getrusage(RUSAGE_SELF, &r);
    if (collect && !strcmp(collect, name)) CALLGRIND_TOGGLE_COLLECT;
    double cpu =
        (r.ru_utime.tv_sec - p->ru.ru_utime.tv_sec) * 1e6 + (r.ru_utime.tv_usec - p->ru.ru_utime.tv_usec) +
        (r.ru_stime.tv_sec - p->ru.ru_stime.tv_sec) * 1e6 + (r.ru_stime.tv_usec - p->ru.ru_stime.tv_usec);
    double wall = (t.tv_sec - p->t.tv_sec) * 1e6 + (t.tv_nsec - p->t.tv_nsec) / 1e3;
    return (result){cpu / n, wall / n, (double)(a - p->alloc) / n};
}

/* ---- the workload, the same for both ---- */
static const char *reply_to = "amq.gen-JzTY20BRgKO-HjmUJj0wLg"; /* a server-named reply queue */
static char body[160], corr[40];
static int body_len, corr_len, corr_at; /* corr_at: where the id is in body */
/* A NestJS request: a uuid-like correlation id and the packet with the same id. The templates are formatted
 * once; each message rewrites only the id's last 12 hex digits, so the workload costs next to nothing of its
 * own and the counts are the libraries'. */
static void make_message(long i) {
    if (!body_len) {
        corr_len = snprintf(corr, sizeof corr, "%08lx-0000-4000-8000-000000000000",
                            (unsigned long)getpid() & 0xffffffffu);
        body_len = snprintf(body, sizeof body,
                            "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"%s\"}", corr);
        corr_at = (int)(strstr(body, corr) - body);
    }
    static const char hex[] = "0123456789abcdef";
    unsigned long v = (unsigned long)i;
    for (int k = 0; k < 12; k++, v >>= 4) corr[corr_len - 1 - k] = hex[v & 15];
    memcpy(body + corr_at + corr_len - 12, corr + corr_len - 12, 12);
}
static size_t heap_after_recv; /* heap in use once the N messages are consumed, before closing */
static long checksum;          /* every received message is looked at, so neither side skips decoding work */

/* ======================= own codec + a blocking socket driver ======================= */
typedef struct own {
    int fd;
    nc_amqp_parser p;
    nc_buf out;
    uint32_t frame_max;
    /* what the callback saw */
    uint32_t want;         /* a method id to stop at (0: none) */
    nc_amqp_method got;    /* its scalar fields (spans are not kept) */
    long received, target; /* deliveries */
    int ack;
    char why[256];
    /* rmqin: rabbitmq-c's public codec functions instead of nestc's codec on the same driver */
    int rmqin;
    amqp_connection_state_t rs; /* only its frame decoder (amqp_handle_input) and pools are used */
    uint64_t r_tag, r_size, r_got;
    int r_in_msg;
} own;

static void own_flush(own *c) {
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("own: send failed");
        off += (size_t)w;
    }
    c->out.len = 0;
}

static int own_event(void *user, const nc_amqp_event *ev) {
    own *c = user;
    if (ev->kind == NC_AMQP_EV_MESSAGE) {
        checksum += (long)ev->body.n + (long)ev->props.correlation_id.n + (long)ev->props.reply_to.n +
                    (long)json_object_size(ev->props.headers);
        c->received++;
        if (c->ack) {
            nc_amqp_method a = {.id = NC_AMQP_BASIC_ACK, .channel = 1, .delivery_tag = ev->m.delivery_tag};
            if (nc_amqp_write_method(&c->out, &a)) die("own: write ack");
        }
        return 0;
    }
    if (ev->kind == NC_AMQP_EV_METHOD) {
        if (ev->m.id == NC_AMQP_CONNECTION_CLOSE || ev->m.id == NC_AMQP_CHANNEL_CLOSE) {
            fprintf(stderr, "own: %s %u %.*s\n", nc_amqp_method_name(ev->m.id), ev->m.reply_code,
                    (int)ev->m.text.n, ev->m.text.p);
            exit(1);
        }
        if (ev->m.id == c->want) {
            c->got = ev->m;
            c->got.table = NULL;
            c->want = 0;
            return 1;
        }
    }
    return 0;
}

/* rmqin: frames the bytes with amqp_handle_input (frame by frame, each copied into its channel pool) and
 * assembles a delivery as amqp_read_message would, without a socket. */
static void rmqin_frame_bytes(own *c, uint8_t type, uint16_t ch, const void *payload, size_t n);
static void rmqin_feed(own *c, const char *data, size_t len) {
    while (len) {
        amqp_frame_t f;
        int used = amqp_handle_input(c->rs, (amqp_bytes_t){len, (void *)data}, &f);
        if (used < 0) die(amqp_error_string2(used));
        data += used;
        len -= (size_t)used;
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
            amqp_basic_deliver_t *d = f.payload.method.decoded;
            c->r_tag = d->delivery_tag;
            c->r_in_msg = 1;
        } else if (f.frame_type == AMQP_FRAME_METHOD) {
            if (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
                f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD)
                die("rmqin: the broker closed");
        } else if (f.frame_type == AMQP_FRAME_HEADER && c->r_in_msg) {
            amqp_basic_properties_t *pr = f.payload.properties.decoded;
            c->r_size = f.payload.properties.body_size;
            c->r_got = 0;
            checksum += (long)pr->correlation_id.len + (long)pr->reply_to.len + pr->headers.num_entries;
            if (c->rmqin == 2) { /* rmqinj: the headers as the JSON object a nestc handler is given */
                json_t *o = json_object();
                for (int i = 0; i < pr->headers.num_entries; i++) {
                    amqp_table_entry_t *e = &pr->headers.entries[i];
                    if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
                        continue;
                    char key[256];
                    size_t kn = e->key.len < 255 ? e->key.len : 255;
                    memcpy(key, e->key.bytes, kn);
                    key[kn] = 0;
                    json_object_set_new(o, key,
                                        json_stringn(e->value.value.bytes.bytes, e->value.value.bytes.len));
                }
                checksum += (long)json_object_size(o);
                json_decref(o);
            }
        } else if (f.frame_type == AMQP_FRAME_BODY && c->r_in_msg) {
            c->r_got += f.payload.body_fragment.len;
        }
        if (c->r_in_msg && f.frame_type != AMQP_FRAME_METHOD && f.frame_type && c->r_got >= c->r_size) {
            checksum += (long)c->r_got;
            c->r_in_msg = 0;
            c->received++;
            if (c->ack) {
                amqp_basic_ack_t a = {.delivery_tag = c->r_tag, .multiple = 0};
                char m[64];
                int k = amqp_encode_method(AMQP_BASIC_ACK_METHOD, &a, (amqp_bytes_t){sizeof m - 4, m + 4});
                if (k < 0) die("rmqin: encode ack");
                uint32_t id = htonl(AMQP_BASIC_ACK_METHOD);
                memcpy(m, &id, 4);
                rmqin_frame_bytes(c, AMQP_FRAME_METHOD, 1, m, (size_t)k + 4);
            }
            amqp_maybe_release_buffers(c->rs); /* the pool pages go back for the next message */
        }
    }
}

/* Reads and feeds until the wanted method arrived (want != 0) or `target` deliveries were counted. */
static void own_wait(own *c, uint32_t want) {
    static char rb[65536];
    c->want = want;
    /* whatever is still buffered first */
    if (nc_amqp_feed(&c->p, NULL, 0, own_event, c, c->why, sizeof c->why)) die(c->why);
    for (;;) {
        if (c->out.len) own_flush(c);
        if (want ? c->want == 0 : c->received >= c->target) return;
        ssize_t r = recv(c->fd, rb, sizeof rb, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("own: the broker closed the connection");
        if (c->rmqin && !want)
            rmqin_feed(c, rb, (size_t)r);
        else if (nc_amqp_feed(&c->p, rb, (size_t)r, own_event, c, c->why, sizeof c->why))
            die(c->why);
    }
}

/* A frame around a payload, appended to the output. */
static void rmqin_frame_bytes(own *c, uint8_t type, uint16_t ch, const void *payload, size_t n) {
    char h[7];
    h[0] = (char)type;
    h[1] = (char)(ch >> 8);
    h[2] = (char)ch;
    uint32_t len = htonl((uint32_t)n);
    memcpy(h + 3, &len, 4);
    char end = (char)0xCE;
    if (nc_buf_append(&c->out, h, 7) || nc_buf_append(&c->out, payload, n) || nc_buf_append(&c->out, &end, 1))
        die("rmqin: out of memory");
}

/* basic.publish + content header + one body frame (the body is under frame_max) with rabbitmq-c's encoders,
 * the frames built as amqp_basic_publish builds them, into the driver's batched output. */
static void rmqin_publish(own *c, amqp_bytes_t q, amqp_basic_properties_t *pr, amqp_bytes_t b) {
    char m[1024];
    amqp_basic_publish_t pm;
    memset(&pm, 0, sizeof pm);
    pm.exchange = amqp_empty_bytes;
    pm.routing_key = q;
    int k = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &pm, (amqp_bytes_t){sizeof m - 4, m + 4});
    if (k < 0) die("rmqin: encode publish");
    uint32_t id = htonl(AMQP_BASIC_PUBLISH_METHOD);
    memcpy(m, &id, 4);
    rmqin_frame_bytes(c, AMQP_FRAME_METHOD, 1, m, (size_t)k + 4);
    /* class (2), weight (2), body size (8), then the properties */
    m[0] = 0, m[1] = 60, m[2] = 0, m[3] = 0;
    uint64_t bs = b.len;
    for (int i = 0; i < 8; i++) m[4 + i] = (char)(bs >> (56 - 8 * i));
    k = amqp_encode_properties(AMQP_BASIC_CLASS, pr, (amqp_bytes_t){sizeof m - 12, m + 12});
    if (k < 0) die("rmqin: encode properties");
    rmqin_frame_bytes(c, AMQP_FRAME_HEADER, 1, m, (size_t)k + 12);
    rmqin_frame_bytes(c, AMQP_FRAME_BODY, 1, b.bytes, b.len);
}

static void own_method(own *c, nc_amqp_method m) {
    if (nc_amqp_write_method(&c->out, &m)) die("own: write method");
}
#define SPAN(s) ((nc_amqp_span){(s), strlen(s)})

static void rmq_headers(amqp_table_entry_t hent[2]);
static void rmq_props(amqp_basic_properties_t *pr, amqp_table_entry_t *hent);

static void run_own(int port, long n, int ack, int rmqin, const char *queue, result *rpub, result *rrecv) {
    own c;
    memset(&c, 0, sizeof c);
    c.rmqin = rmqin;
    amqp_table_entry_t hent[2];
    rmq_headers(hent);
    if (rmqin) c.rs = amqp_new_connection();
    nc_amqp_parser_init(&c.p, NC_AMQP_ROLE_CLIENT);
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c.fd, (struct sockaddr *)&sa, sizeof sa)) die("own: connect failed");
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    /* handshake */
    nc_amqp_write_protocol_header(&c.out);
    own_wait(&c, NC_AMQP_CONNECTION_START);
    if (nc_amqp_write_start_ok(&c.out, NULL, NC_AMQP_MECH_PLAIN, "guest", "guest", NULL))
        die("own: start-ok");
    own_wait(&c, NC_AMQP_CONNECTION_TUNE);
    c.frame_max = c.got.frame_max ? c.got.frame_max : 131072;
    nc_amqp_parser_set_frame_max(&c.p, c.frame_max);
    own_method(&c, (nc_amqp_method){.id = NC_AMQP_CONNECTION_TUNE_OK,
                                    .channel_max = c.got.channel_max,
                                    .frame_max = c.frame_max,
                                    .heartbeat = 0});
    own_method(&c, (nc_amqp_method){.id = NC_AMQP_CONNECTION_OPEN, .vhost = SPAN("/")});
    own_wait(&c, NC_AMQP_CONNECTION_OPEN_OK);
    own_method(&c, (nc_amqp_method){.id = NC_AMQP_CHANNEL_OPEN, .channel = 1});
    own_wait(&c, NC_AMQP_CHANNEL_OPEN_OK);
    own_method(&c, (nc_amqp_method){.id = NC_AMQP_QUEUE_DECLARE,
                                    .channel = 1,
                                    .queue = SPAN(queue),
                                    .flags = NC_AMQP_F_EXCLUSIVE | NC_AMQP_F_AUTO_DELETE});
    own_wait(&c, NC_AMQP_QUEUE_DECLARE_OK);

    /* publish N; the headers object is built once, as a client's static `headers` option would be */
    json_t *headers = json_pack("{s:s,s:s}", "x-trace-id", "4bf92f3577b34da6", "x-tenant", "acme");
    nc_amqp_method pm = {.id = NC_AMQP_BASIC_PUBLISH, .channel = 1, .routing_key = SPAN(queue)};
    phase ph;
    phase_begin(&ph, "pub");
    for (long i = 0; i < n && rmqin; i++) {
        make_message(i);
        amqp_basic_properties_t pr;
        rmq_props(&pr, hent);
        amqp_table_entry_t jent[8];
        if (rmqin == 2) { /* rmqinj: the table built from the caller's JSON headers, as a transport would */
            const char *k;
            json_t *v;
            int ne = 0;
            json_object_foreach(headers, k, v) {
                if (ne == 8 || !json_is_string(v)) continue;
                jent[ne].key = amqp_cstring_bytes(k);
                jent[ne].value.kind = AMQP_FIELD_KIND_UTF8;
                jent[ne].value.value.bytes =
                    (amqp_bytes_t){json_string_length(v), (void *)json_string_value(v)};
                ne++;
            }
            pr.headers.num_entries = ne;
            pr.headers.entries = jent;
        }
        rmqin_publish(&c, amqp_cstring_bytes(queue), &pr, (amqp_bytes_t){(size_t)body_len, body});
        if (c.out.len >= 65536) own_flush(&c);
    }
    for (long i = 0; i < n && !rmqin; i++) {
        make_message(i);
        nc_amqp_props pr = {.flags = NC_AMQP_P_HEADERS | NC_AMQP_P_DELIVERY_MODE | NC_AMQP_P_CORRELATION_ID |
                                     NC_AMQP_P_REPLY_TO,
                            .headers = headers,
                            .delivery_mode = 2,
                            .correlation_id = {corr, (size_t)corr_len},
                            .reply_to = SPAN(reply_to)};
        if (nc_amqp_write_publish(&c.out, &pm, &pr, body, (size_t)body_len, c.frame_max)) die("own: publish");
        if (c.out.len >= 65536) own_flush(&c);
    }
    for (;;) { /* the broker has them all when a passive declare counts them */
        own_method(&c, (nc_amqp_method){.id = NC_AMQP_QUEUE_DECLARE,
                                        .channel = 1,
                                        .queue = SPAN(queue),
                                        .flags = NC_AMQP_F_PASSIVE});
        own_wait(&c, NC_AMQP_QUEUE_DECLARE_OK);
        if (c.got.message_count >= (uint32_t)n) break;
        usleep(1000);
    }
    *rpub = phase_end(&ph, "pub", n);
    json_decref(headers);

    /* consume N */
    c.ack = ack;
    c.target = n;
    phase_begin(&ph, "recv");
    own_method(&c, (nc_amqp_method){.id = NC_AMQP_BASIC_CONSUME,
                                    .channel = 1,
                                    .queue = SPAN(queue),
                                    .consumer_tag = SPAN("bench"),
                                    .flags = ack ? 0 : NC_AMQP_F_NO_ACK});
    own_wait(&c, 0);
    own_flush(&c);
    *rrecv = phase_end(&ph, "recv", n);
    heap_after_recv = mallinfo2().uordblks;

    own_method(&c, (nc_amqp_method){.id = NC_AMQP_CONNECTION_CLOSE, .reply_code = 200, .text = SPAN("bye")});
    c.ack = 0;
    own_wait(&c, NC_AMQP_CONNECTION_CLOSE_OK);
    close(c.fd);
    if (rmqin) amqp_destroy_connection(c.rs);
    nc_amqp_parser_free(&c.p);
    nc_buf_free(&c.out);
}

/* ======================= rabbitmq-c ======================= */
static void rmq_check(amqp_rpc_reply_t r, const char *what) {
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "rmq: %s failed (reply type %d, library error %d)\n", what, (int)r.reply_type,
                r.library_error);
        exit(1);
    }
}

/* The same headers table and properties as the own side's. */
static void rmq_headers(amqp_table_entry_t hent[2]) {
    hent[0].key = amqp_cstring_bytes("x-trace-id");
    hent[0].value.kind = AMQP_FIELD_KIND_UTF8;
    hent[0].value.value.bytes = amqp_cstring_bytes("4bf92f3577b34da6");
    hent[1].key = amqp_cstring_bytes("x-tenant");
    hent[1].value.kind = AMQP_FIELD_KIND_UTF8;
    hent[1].value.value.bytes = amqp_cstring_bytes("acme");
}
static void rmq_props(amqp_basic_properties_t *pr, amqp_table_entry_t *hent) {
    memset(pr, 0, sizeof *pr);
    pr->_flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                 AMQP_BASIC_REPLY_TO_FLAG;
    pr->headers.num_entries = 2;
    pr->headers.entries = hent;
    pr->delivery_mode = 2;
    pr->correlation_id = (amqp_bytes_t){(size_t)corr_len, corr};
    pr->reply_to = amqp_cstring_bytes(reply_to);
}

static void run_rmq(int port, long n, int ack, const char *queue, result *rpub, result *rrecv) {
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    if (!sock || amqp_socket_open(sock, "127.0.0.1", port)) die("rmq: connect failed");
    rmq_check(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
    amqp_channel_open(conn, 1);
    rmq_check(amqp_get_rpc_reply(conn), "channel.open");
    amqp_bytes_t q = amqp_cstring_bytes(queue);
    amqp_queue_declare(conn, 1, q, 0, 0, 1, 1, amqp_empty_table);
    rmq_check(amqp_get_rpc_reply(conn), "queue.declare");

    amqp_table_entry_t hent[2];
    rmq_headers(hent);
    phase ph;
    phase_begin(&ph, "pub");
    for (long i = 0; i < n; i++) {
        make_message(i);
        amqp_basic_properties_t pr;
        rmq_props(&pr, hent);
        if (amqp_basic_publish(conn, 1, amqp_empty_bytes, q, 0, 0, &pr,
                               (amqp_bytes_t){(size_t)body_len, body}))
            die("rmq: publish failed");
    }
    for (;;) {
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, 1, q, 1, 0, 0, 0, amqp_empty_table);
        rmq_check(amqp_get_rpc_reply(conn), "passive queue.declare");
        if (ok->message_count >= (uint32_t)n) break;
        usleep(1000);
    }
    *rpub = phase_end(&ph, "pub", n);

    phase_begin(&ph, "recv");
    amqp_basic_consume(conn, 1, q, amqp_cstring_bytes("bench"), 0, ack ? 0 : 1, 0, amqp_empty_table);
    rmq_check(amqp_get_rpc_reply(conn), "basic.consume");
    for (long got = 0; got < n; got++) {
        amqp_envelope_t env;
        amqp_maybe_release_buffers(conn);
        rmq_check(amqp_consume_message(conn, &env, NULL, 0), "consume_message");
        checksum += (long)env.message.body.len + (long)env.message.properties.correlation_id.len +
                    (long)env.message.properties.reply_to.len + env.message.properties.headers.num_entries;
        if (ack && amqp_basic_ack(conn, 1, env.delivery_tag, 0)) die("rmq: basic.ack failed");
        amqp_destroy_envelope(&env);
    }
    *rrecv = phase_end(&ph, "recv", n);
    heap_after_recv = mallinfo2().uordblks;

    rmq_check(amqp_connection_close(conn, AMQP_REPLY_SUCCESS), "connection.close");
    amqp_destroy_connection(conn);
}

/* A hostile broker's connection.start whose server-properties table nests `depth` tables ("F" fields with
 * an empty key) inside each other, fed to each decoder on a thread with a 256 KiB stack (what a worker thread
 * might get). Prints what each decoder said; a crash of the process is the answer too. */
#include <pthread.h>
static char *nest_frame;
static size_t nest_len;
static void *nest_rmq(void *arg) {
    amqp_connection_state_t st = amqp_new_connection();
    amqp_frame_t f;
    size_t off = 0;
    int rc = 0;
    while (off < nest_len && rc >= 0) {
        rc = amqp_handle_input(st, (amqp_bytes_t){nest_len - off, nest_frame + off}, &f);
        if (rc > 0) off += (size_t)rc;
    }
    printf("{\"probe\":\"nested-tables\",\"lib\":\"rmq\",\"result\":\"%s\"}\n",
           rc < 0 ? amqp_error_string2(rc) : "decoded");
    amqp_destroy_connection(st);
    return arg;
}
static int nest_ev(void *u, const nc_amqp_event *ev) {
    return 0;
}
static void *nest_own(void *arg) {
    nc_amqp_parser p;
    char why[256] = "";
    nc_amqp_parser_init(&p, NC_AMQP_ROLE_CLIENT);
    int rc = nc_amqp_feed(&p, nest_frame, nest_len, nest_ev, NULL, why, sizeof why);
    printf("{\"probe\":\"nested-tables\",\"lib\":\"own\",\"result\":\"%s\"}\n", rc ? why : "decoded");
    nc_amqp_parser_free(&p);
    return arg;
}
static int nest_probe(const char *lib, int depth) {
    /* method payload: class 10 method 10, version 0 9, server-properties table, mechanisms, locales */
    size_t cap = (size_t)depth * 6 + 64;
    char *b = calloc(1, cap);
    size_t at = 7;
    b[at++] = 0, b[at++] = 10, b[at++] = 0, b[at++] = 10, b[at++] = 0, b[at++] = 9;
    /* table lengths: level k (0 outermost) holds key-len(1) + 'F' + len(4) + inner table */
    size_t table_at = at;
    at += 4 + (size_t)depth * 6;
    for (int k = 0; k < depth; k++) {
        size_t pos = table_at + (size_t)k * 6;
        uint32_t inner = (uint32_t)((size_t)(depth - k) * 6); /* this table's content */
        uint32_t be = htonl(inner);
        memcpy(b + pos, &be, 4);
        b[pos + 4] = 0;   /* empty key */
        b[pos + 5] = 'F'; /* a nested table follows */
    }
    uint32_t zero = 0; /* the innermost table is empty */
    memcpy(b + table_at + (size_t)depth * 6, &zero, 4);
    uint32_t one = htonl(5);
    memcpy(b + at, &one, 4), memcpy(b + at + 4, "PLAIN", 5), at += 9;
    uint32_t five = htonl(5);
    memcpy(b + at, &five, 4), memcpy(b + at + 4, "en_US", 5), at += 9;
    uint32_t size = htonl((uint32_t)(at - 7));
    b[0] = 1, b[1] = 0, b[2] = 0;
    memcpy(b + 3, &size, 4);
    b[at++] = (char)0xCE;
    nest_frame = b, nest_len = at;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    pthread_t t;
    pthread_create(&t, &a, !strcmp(lib, "own") ? nest_own : nest_rmq, NULL);
    pthread_join(t, NULL);
    fflush(stdout);
    free(b);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "nest")) return nest_probe(argv[2], atoi(argv[3]));
    if (argc != 5) {
        fprintf(stderr, "usage: rmq-vs-codec own|rmq|rmqin|rmqinj noack|ack PORT N\n");
        return 2;
    }
    const char *lib = argv[1];
    int ack = !strcmp(argv[2], "ack");
    int port = atoi(argv[3]);
    long n = atol(argv[4]);
    collect = getenv("BENCH_COLLECT");
    char queue[64];
    snprintf(queue, sizeof queue, "bench-%s-%ld", lib, (long)getpid());
    result pub, rcv;
    if (!strcmp(lib, "own") || !strcmp(lib, "rmqin") || !strcmp(lib, "rmqinj"))
        run_own(port, n, ack, !strcmp(lib, "rmqin") ? 1 : !strcmp(lib, "rmqinj") ? 2 : 0, queue, &pub, &rcv);
    else if (!strcmp(lib, "rmq"))
        run_rmq(port, n, ack, queue, &pub, &rcv);
    else
        die("the library is own, rmq, rmqin or rmqinj");
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    printf("{\"lib\":\"%s\",\"mode\":\"%s\",\"n\":%ld,\"pub_cpu_us\":%.3f,\"pub_wall_us\":%.3f,"
           "\"pub_allocs\":%.3f,\"recv_cpu_us\":%.3f,\"recv_wall_us\":%.3f,\"recv_allocs\":%.3f,"
           "\"maxrss_kb\":%ld,\"heap_after_recv\":%zu,\"checksum\":%ld}\n",
           lib, ack ? "ack" : "noack", n, pub.cpu_us, pub.wall_us, pub.allocs, rcv.cpu_us, rcv.wall_us,
           rcv.allocs, r.ru_maxrss, heap_after_recv, checksum);
    return 0;
}
