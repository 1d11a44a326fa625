/* The OTLP span exporter's retries and gzip (docs/observability.md "Trace context", Export): a collector
 * on a thread of its own answers each request from a script (503 then 200, 429 with Retry-After, 400,
 * down then up), and the batch arrives once, the counters right; the flush at close retries within its
 * bound; gzip bodies inflate to the same JSON. The Retry-After parser's cases too. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "loop_fixture.h"
#include "../common/http_post.h"
#include "obs/http_status.h"
#include "obs/otlp.h"
#include "obs/otlp_gzip.h"
#ifdef NESTC_HAVE_ZLIB
#include <zlib.h>
#endif

#define POSTS_MAX 16

/* A collector on a thread (plain sockets): request k gets script[k], the last one repeating. */
typedef struct scoll {
    int fd, port, listening;
    _Atomic int stop, posts;
    uv_thread_t th;
    uv_mutex_t lock;
    const char *const *script;
    int nscript;
    uint64_t at[POSTS_MAX]; /* when each request was in (ms) */
    char head[POSTS_MAX][1024];
    char *body[POSTS_MAX];
    size_t body_len[POSTS_MAX];
} scoll;

static uint64_t ms_now(void) {
    return uv_hrtime() / 1000000;
}

static void scoll_serve(void *arg) {
    scoll *c = arg;
    while (!c->stop) {
        struct pollfd p = {c->fd, POLLIN, 0};
        if (!c->listening || poll(&p, 1, 20) <= 0) {
            if (!c->listening) usleep(5000);
            continue;
        }
        int s = accept(c->fd, NULL, NULL);
        if (s < 0) continue;
        static char buf[1 << 17];
        size_t n = 0;
        long body = http_post_read(s, buf, sizeof buf, &n);
        if (body >= 0) {
            const char *end = buf + body - 4;
            int k = c->posts;
            const char *answer = c->script[k < c->nscript ? k : c->nscript - 1];
            if (k < POSTS_MAX) {
                uv_mutex_lock(&c->lock);
                c->at[k] = ms_now();
                size_t hl =
                    (size_t)(end - buf) < sizeof c->head[k] - 1 ? (size_t)(end - buf) : sizeof c->head[k] - 1;
                memcpy(c->head[k], buf, hl);
                c->head[k][hl] = 0;
                c->body_len[k] = n - (size_t)(end + 4 - buf);
                c->body[k] = malloc(c->body_len[k] + 1);
                memcpy(c->body[k], end + 4, c->body_len[k]);
                c->body[k][c->body_len[k]] = 0;
                uv_mutex_unlock(&c->lock);
            }
            c->posts++;
            if (write(s, answer, strlen(answer)) < 0) {
                /* the exporter gave up: it sees the connection close */
            }
        }
        close(s);
    }
}

/* listening now, or bound only (connections refused) until scoll_listen */
static void scoll_start(scoll *c, const char *const *script, int nscript, int listening) {
    memset(c, 0, sizeof *c);
    c->script = script;
    c->nscript = nscript;
    c->fd = http_post_bind(&c->port);
    assert_true(c->fd >= 0);
    uv_mutex_init(&c->lock);
    if (listening) {
        assert_int_equal(listen(c->fd, 16), 0);
        c->listening = 1;
    }
    assert_int_equal(uv_thread_create(&c->th, scoll_serve, c), 0);
}

static void scoll_listen(scoll *c) {
    assert_int_equal(listen(c->fd, 16), 0);
    c->listening = 1;
}

static void scoll_stop(scoll *c) {
    c->stop = 1;
    uv_thread_join(&c->th);
    close(c->fd);
    uv_mutex_destroy(&c->lock);
    for (int k = 0; k < POSTS_MAX; k++) free(c->body[k]);
}

static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
static const char unavailable[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";

static nc_otlp *exporter(const scoll *c, nc_otlp_cfg *cfg) {
    static char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", c->port);
    cfg->endpoint = ep;
    if (!cfg->batch_ms) cfg->batch_ms = 10;
    if (!cfg->retry_initial_ms) cfg->retry_initial_ms = 50;
    nc_otlp *x;
    char why[256];
    assert_int_equal(nc_otlp_new(&x, &loop, cfg, why, sizeof why), 0);
    return x;
}

static void push(nc_otlp *x, int n, const char *name) {
    nc_span s = {0};
    nc_trace_new_root(&s.ctx);
    s.name = name;
    s.transport = "tcp";
    s.kind = NC_SPAN_SERVER;
    for (int k = 0; k < n; k++) nc_otlp_push(x, &s);
}

enum { EXPORTED, DROPPED, FAILED, RETRIES };

static uint64_t counter(nc_otlp *x, int which) {
    uint64_t v[4];
    nc_otlp_stats(x, &v[0], &v[1], &v[2]);
    v[3] = nc_otlp_retries(x);
    return v[which];
}

/* runs the loop until the counter reaches want, ms × the time factor at most */
static int run_until_stat(nc_otlp *x, int which, uint64_t want, int ms) {
    uint64_t end = ms_now() + (uint64_t)ms * (uint64_t)time_factor();
    int never = 0;
    while (counter(x, which) < want && ms_now() < end) run_until_ms(&never, 1, 10);
    return counter(x, which) >= want;
}

static void run_for(int ms) {
    int never = 0;
    run_until_ms(&never, 1, ms);
}

/* runs the loop for ms of real time, unscaled: a window shorter than a Retry-After */
static void run_for_real(int ms) {
    uint64_t end = ms_now() + (uint64_t)ms;
    int never = 0;
    while (ms_now() < end) run_until_ms(&never, 1, 1);
}

static void close_exporter(nc_otlp *x) {
    nc_otlp_close(x);
    uv_run(&loop, UV_RUN_DEFAULT); /* ends: nothing of the exporter is left open */
}

/* 503, then 200: the batch is sent again, the same bytes, and counts once as exported. */
static void test_retry_503_then_200(void **st) {
    (void)st;
    static const char *const script[] = {unavailable, ok};
    scoll c;
    scoll_start(&c, script, 2, 1);
    nc_otlp_cfg cfg = {0};
    nc_otlp *x = exporter(&c, &cfg);
    push(x, 3, "a");
    assert_true(run_until_stat(x, EXPORTED, 3, 5000));
    assert_int_equal(c.posts, 2);
    assert_int_equal(counter(x, RETRIES), 1);
    assert_int_equal(counter(x, FAILED), 0);
    assert_int_equal(counter(x, DROPPED), 0);
    uv_mutex_lock(&c.lock);
    assert_int_equal(c.body_len[0], c.body_len[1]);
    assert_memory_equal(c.body[0], c.body[1], c.body_len[0]);
    assert_non_null(strstr(c.body[1], "\"name\":\"a\""));
    uv_mutex_unlock(&c.lock);
    close_exporter(x);
    scoll_stop(&c);
}

/* 429 with Retry-After: 1: the next attempt waits that second, not the 50 ms backoff. */
static void test_retry_after_429(void **st) {
    (void)st;
    static const char *const script[] = {
        "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nretry-after:  1 \r\n\r\n", ok};
    scoll c;
    scoll_start(&c, script, 2, 1);
    nc_otlp_cfg cfg = {0};
    nc_otlp *x = exporter(&c, &cfg);
    push(x, 2, "b");
    assert_true(run_until_stat(x, EXPORTED, 2, 5000));
    assert_int_equal(c.posts, 2);
    uint64_t gap = c.at[1] - c.at[0];
    assert_true(gap >= 950);
    assert_true(gap < 1000 + 1000 * (uint64_t)time_factor());
    assert_int_equal(counter(x, FAILED), 0);
    close_exporter(x);
    scoll_stop(&c);
}

/* 400 is not retried: failed at once, one request. */
static void test_no_retry_400(void **st) {
    (void)st;
    static const char *const script[] = {"HTTP/1.1 400 Bad Request\r\nRetry-After: 0\r\n\r\n", ok};
    scoll c;
    scoll_start(&c, script, 2, 1);
    nc_otlp_cfg cfg = {0};
    nc_otlp *x = exporter(&c, &cfg);
    push(x, 3, "c");
    assert_true(run_until_stat(x, FAILED, 3, 5000));
    run_for(300); /* six times the backoff: a retry would have come */
    assert_int_equal(c.posts, 1);
    assert_int_equal(counter(x, RETRIES), 0);
    assert_int_equal(counter(x, EXPORTED), 0);
    close_exporter(x);
    scoll_stop(&c);
}

/* A collector that is down (connections refused), then up: the batch arrives once it is. */
static void test_down_then_up(void **st) {
    (void)st;
    static const char *const script[] = {ok};
    scoll c;
    scoll_start(&c, script, 1, 0);
    nc_otlp_cfg cfg = {.retry_initial_ms = 100};
    nc_otlp *x = exporter(&c, &cfg);
    push(x, 2, "d");
    assert_true(run_until_stat(x, RETRIES, 1, 5000)); /* refused once at least */
    scoll_listen(&c);
    assert_true(run_until_stat(x, EXPORTED, 2, 5000));
    assert_int_equal(c.posts, 1);
    assert_int_equal(counter(x, FAILED), 0);
    close_exporter(x);
    scoll_stop(&c);
}

/* Bounded: retry_max_attempts requests in all, then failed; a Retry-After past the total bound fails at
 * once; while a batch waits, no other is taken and the queue stays capped (what is pushed beyond it drops).
 */
static void test_retry_bounds(void **st) {
    (void)st;
    static const char *const down[] = {unavailable};
    scoll c;
    scoll_start(&c, down, 1, 1);
    nc_otlp_cfg cfg = {.retry_max_attempts = 3, .retry_initial_ms = 20};
    nc_otlp *x = exporter(&c, &cfg);
    push(x, 2, "e");
    assert_true(run_until_stat(x, FAILED, 2, 5000));
    assert_int_equal(c.posts, 3);
    assert_int_equal(counter(x, RETRIES), 2);
    close_exporter(x);
    scoll_stop(&c);

    static const char *const later[] = {"HTTP/1.1 503 x\r\nRetry-After: 60\r\n\r\n"};
    scoll_start(&c, later, 1, 1);
    nc_otlp_cfg cfg2 = {.retry_total_ms = 10000};
    x = exporter(&c, &cfg2);
    push(x, 1, "f");
    assert_true(run_until_stat(x, FAILED, 1, 5000));
    assert_int_equal(c.posts, 1);
    close_exporter(x);
    scoll_stop(&c);

    static const char *const slow[] = {"HTTP/1.1 503 x\r\nRetry-After: 2\r\n\r\n", ok};
    scoll_start(&c, slow, 2, 1);
    nc_otlp_cfg cfg3 = {.queue_max = 4};
    x = exporter(&c, &cfg3);
    push(x, 4, "g");
    assert_true(run_until_stat(x, RETRIES, 1, 5000)); /* the 4 wait for their retry, out of the queue */
    push(x, 10, "h");                                 /* 4 fit, 6 drop */
    assert_int_equal(counter(x, DROPPED), 6);
    run_for_real(300);
    assert_int_equal(c.posts, 1); /* nothing else sent while the batch waits (2 s) */
    assert_true(run_until_stat(x, EXPORTED, 8, 5000));
    assert_int_equal(c.posts, 3);
    assert_int_equal(counter(x, FAILED), 0);
    close_exporter(x);
    scoll_stop(&c);
}

/* At close: the flush retries a 503 within its bound and the batch arrives; a collector that answers 503
 * for ever costs the bound, not more, and the batch counts as failed. */
static void test_flush_retries(void **st) {
    (void)st;
    static const char *const script[] = {unavailable, ok};
    scoll c;
    scoll_start(&c, script, 2, 1);
    nc_otlp_cfg cfg = {.batch_ms = 600000, .flush_timeout_ms = 2000};
    nc_otlp *x = exporter(&c, &cfg);
    push(x, 3, "i");
    nc_trace_counters before, after;
    nc_trace_export_counters(&before);
    close_exporter(x);
    nc_trace_export_counters(&after);
    assert_int_equal(c.posts, 2);
    assert_int_equal(after.exported - before.exported, 3);
    assert_int_equal(after.failed - before.failed, 0);
    scoll_stop(&c);

    static const char *const down[] = {unavailable};
    scoll_start(&c, down, 1, 1);
    nc_otlp_cfg cfg2 = {.batch_ms = 600000, .flush_timeout_ms = 300, .retry_initial_ms = 60};
    x = exporter(&c, &cfg2);
    push(x, 2, "j");
    nc_trace_export_counters(&before);
    uint64_t t0 = ms_now();
    close_exporter(x);
    uint64_t took = ms_now() - t0;
    nc_trace_export_counters(&after);
    assert_true(took < 300 + 500 * (uint64_t)time_factor());
    assert_true(c.posts >= 2); /* retried within the bound */
    assert_int_equal(after.failed - before.failed, 2);
    assert_int_equal(after.exported - before.exported, 0);
    scoll_stop(&c);
}

/* gzip: Content-Encoding: gzip and a body that inflates to the spans; an unknown compression is refused,
 * and so is a user header that would say the encoding. */
static void test_gzip(void **st) {
    (void)st;
    nc_otlp *x;
    char why[256];
    nc_otlp_cfg bad = {.endpoint = "http://h", .compression = "br"};
    assert_int_equal(nc_otlp_new(&x, &loop, &bad, why, sizeof why), NC_EINVAL);
    assert_non_null(strstr(why, "br"));
    bad.compression = "none";
    bad.headers = "Content-Encoding=gzip";
    assert_int_equal(nc_otlp_new(&x, &loop, &bad, why, sizeof why), NC_EINVAL);
    if (!nc_otlp_gzip_available()) {
        bad.headers = NULL;
        bad.compression = "gzip";
        assert_int_equal(nc_otlp_new(&x, &loop, &bad, why, sizeof why), NC_EUNSUPPORTED);
        skip();
    }
#ifdef NESTC_HAVE_ZLIB
    static const char *const script[] = {ok};
    scoll c;
    scoll_start(&c, script, 1, 1);
    nc_otlp_cfg cfg = {.compression = "gzip"};
    x = exporter(&c, &cfg);
    push(x, 40, "compressed_span_name");
    assert_true(run_until_stat(x, EXPORTED, 40, 5000));
    uv_mutex_lock(&c.lock);
    assert_non_null(strstr(c.head[0], "\r\nContent-Encoding: gzip\r\n"));
    assert_true(c.body_len[0] > 2 && (unsigned char)c.body[0][0] == 0x1f &&
                (unsigned char)c.body[0][1] == 0x8b);
    static char plain[1 << 17];
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)c.body[0];
    z.avail_in = (uInt)c.body_len[0];
    z.next_out = (Bytef *)plain;
    z.avail_out = sizeof plain - 1;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    plain[z.total_out] = 0;
    assert_true(z.total_out > c.body_len[0]); /* smaller on the wire */
    inflateEnd(&z);
    uv_mutex_unlock(&c.lock);
    json_t *body = json_loads(plain, 0, NULL);
    assert_non_null(body);
    json_t *spans = json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(body, "resourceSpans"), 0), "scopeSpans"), 0),
        "spans");
    assert_int_equal(json_array_size(spans), 40);
    assert_string_equal(json_string_value(json_object_get(json_array_get(spans, 0), "name")),
                        "compressed_span_name");
    json_decref(body);
    close_exporter(x);
    scoll_stop(&c);
#endif
}

/* http/protobuf: Content-Type application/x-protobuf, a binary ExportTraceServiceRequest (its first
 * field resource_spans = 1, length-delimited: 0x0a) holding the span's name and its raw 16-byte trace id
 * (interop.obs.otlp_trace decodes it whole); grpc and unknown protocols refused. */
static void test_protobuf(void **st) {
    (void)st;
    nc_otlp *x;
    char why[256];
    nc_otlp_cfg bad = {.endpoint = "http://h", .protocol = "grpc"};
    assert_int_equal(nc_otlp_new(&x, &loop, &bad, why, sizeof why), NC_EUNSUPPORTED);
    bad.protocol = "http/xml";
    assert_int_equal(nc_otlp_new(&x, &loop, &bad, why, sizeof why), NC_EINVAL);
    static const char *const script[] = {ok};
    scoll c;
    scoll_start(&c, script, 1, 1);
    nc_otlp_cfg cfg = {.protocol = "http/protobuf"};
    x = exporter(&c, &cfg);
    nc_span s = {0};
    nc_trace_new_root(&s.ctx);
    s.name = "pb_span";
    s.transport = "tcp";
    s.kind = NC_SPAN_CLIENT;
    s.has_parent = 1;
    s.outcome = NC_ETIMEDOUT;
    s.peer_address = "10.0.0.1";
    s.peer_port = 4000;
    nc_otlp_push(x, &s);
    assert_true(run_until_stat(x, EXPORTED, 1, 5000));
    uv_mutex_lock(&c.lock);
    assert_non_null(strstr(c.head[0], "\r\nContent-Type: application/x-protobuf\r\n"));
    assert_int_equal((unsigned char)c.body[0][0], 0x0a);
    assert_non_null(memmem(c.body[0], c.body_len[0], "pb_span", 7));
    assert_non_null(memmem(c.body[0], c.body_len[0], s.ctx.trace_id, 16));
    assert_non_null(memmem(c.body[0], c.body_len[0], "service.name", 12));
    uv_mutex_unlock(&c.lock);
    close_exporter(x);
    scoll_stop(&c);
}

/* The Retry-After of a response head. */
static void test_retry_after_parse(void **st) {
    (void)st;
#define RA(s) nc_http_retry_after(s, strlen(s))
    assert_int_equal(RA("HTTP/1.1 503 x\r\nRetry-After: 7\r\n\r\n"), 7);
    assert_int_equal(RA("HTTP/1.1 503 x\nA: b\nRETRY-AFTER:\t12\t\n\n"), 12);
    assert_int_equal(RA("HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n"), -1);
    assert_int_equal(RA("HTTP/1.1 503 x\r\nRetry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n\r\n"), -1);
    assert_int_equal(RA("HTTP/1.1 503 x\r\nRetry-After: -1\r\n\r\n"), -1);
    assert_int_equal(RA("HTTP/1.1 503 x\r\nRetry-After: \r\n\r\n"), -1);
    assert_int_equal(RA("HTTP/1.1 503 x\r\nRetry-After : 5\r\n\r\n"), -1); /* no space before ':' */
    assert_int_equal(RA("HTTP/1.1 503 x\r\nX-Retry-After: 5\r\n\r\n"), -1);
    assert_int_equal(RA("HTTP/1.1 503 x\r\nRetry-After: 99999999999999999999\r\n\r\n"),
                     NC_HTTP_RETRY_AFTER_MAX);
    assert_int_equal(RA("HTTP/1.1 503 x\r\nRetry-After: 3\r\nRetry-After: 4\r\n\r\n"), 3); /* the first */
    assert_int_equal(RA("HTTP/1.1 503 x\r\nRetry-After: 3\r\n"), -2);                      /* more to come */
    assert_int_equal(RA("HTTP/1.1 503 x\r\nRetry-Af"), -2);
    assert_int_equal(RA("HTTP/1.1 503"), -2);
    assert_int_equal(RA("HTTP/1.1 503 x\r\n\r\nRetry-After: 3\r\n\r\n"), -1); /* a body is not the head */
#undef RA
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after_parse), cmocka_unit_test(test_retry_503_then_200),
        cmocka_unit_test(test_retry_after_429),   cmocka_unit_test(test_no_retry_400),
        cmocka_unit_test(test_down_then_up),      cmocka_unit_test(test_retry_bounds),
        cmocka_unit_test(test_flush_retries),     cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_protobuf),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
