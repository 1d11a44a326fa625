/* Unit tests for src/io/post.[ch]: the queue that posts work from foreign threads onto a loop (complete and
 * in per-thread order under 4 threads × 10,000 items; freeing with items pending drops them through their
 * callbacks, leaking nothing), and the uv_poll adapter (readability on a socketpair, stop, free). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "io/post.h"
#include "nestc/error.h"

#define NTHREADS 4
#define PER_THREAD 10000

static int time_factor(void) {
    const char *f = getenv("NESTC_TEST_TIMEOUT_FACTOR");
    int n = f ? atoi(f) : 1;
    return n > 0 ? n : 1;
}

/* Runs the loop until *flag >= value or ms (scaled) passed. */
static int run_until(uv_loop_t *loop, const int *flag, int value, int ms) {
    uint64_t end = uv_hrtime() + (uint64_t)ms * (uint64_t)time_factor() * 1000000u;
    while (*flag < value && uv_hrtime() < end) uv_run(loop, UV_RUN_ONCE);
    return *flag >= value;
}

/* ---- posting from threads ----------------------------------------------------------------------- */

typedef struct tally {
    int next[NTHREADS]; /* the sequence number expected next from each thread */
    int received, out_of_order, cancelled;
    uv_thread_t loop_thread;
    int wrong_thread;
} tally;

static tally T;

typedef struct producer {
    nc_post *q;
    int index;
    int failures;
} producer;

static void on_item(void *arg, int cancelled) {
    uintptr_t v = (uintptr_t)arg;
    int thread = (int)(v >> 24), seq = (int)(v & 0xffffff);
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &T.loop_thread)) T.wrong_thread++;
    if (cancelled) T.cancelled++;
    if (seq != T.next[thread]) T.out_of_order++;
    T.next[thread] = seq + 1;
    T.received++;
}

static void produce(void *arg) {
    producer *p = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        uintptr_t v = ((uintptr_t)p->index << 24) | (uintptr_t)i;
        if (nc_post_push(p->q, on_item, (void *)v)) p->failures++;
    }
}

static void test_post_from_threads(void **st) {
    (void)st;
    memset(&T, 0, sizeof T);
    T.loop_thread = uv_thread_self();
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    nc_post *q;
    assert_int_equal(nc_post_new(&q, &loop), 0);
    producer p[NTHREADS];
    uv_thread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        p[i] = (producer){q, i, 0};
        assert_int_equal(uv_thread_create(&th[i], produce, &p[i]), 0);
    }
    /* the loop drains while the threads post */
    assert_true(run_until(&loop, &T.received, NTHREADS * PER_THREAD, 20000));
    for (int i = 0; i < NTHREADS; i++) {
        uv_thread_join(&th[i]);
        assert_int_equal(p[i].failures, 0);
        assert_int_equal(T.next[i], PER_THREAD);
    }
    assert_int_equal(T.received, NTHREADS * PER_THREAD);
    assert_int_equal(T.out_of_order, 0);
    assert_int_equal(T.wrong_thread, 0);
    assert_int_equal(T.cancelled, 0);
    nc_post_free(q);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- freeing with items pending --------------------------------------------------------------------- */

typedef struct owned {
    int *ran, *dropped;
    char *payload; /* leaks unless the callback frees it */
} owned;

static void on_owned(void *arg, int cancelled) {
    owned *o = arg;
    if (cancelled)
        (*o->dropped)++;
    else
        (*o->ran)++;
    free(o->payload);
    free(o);
}

static void post_owned(nc_post *q, int *ran, int *dropped) {
    owned *o = malloc(sizeof *o);
    assert_non_null(o);
    o->ran = ran;
    o->dropped = dropped;
    o->payload = malloc(100);
    assert_int_equal(nc_post_push(q, on_owned, o), 0);
}

static void test_free_with_pending(void **st) {
    (void)st;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    nc_post *q;
    assert_int_equal(nc_post_new(&q, &loop), 0);
    int ran = 0, dropped = 0;
    /* some run ... */
    for (int i = 0; i < 10; i++) post_owned(q, &ran, &dropped);
    assert_true(run_until(&loop, &ran, 10, 5000));
    /* ... the rest is still queued when the queue goes: dropped through their callbacks, in order */
    for (int i = 0; i < 1000; i++) post_owned(q, &ran, &dropped);
    nc_post_free(q);
    assert_int_equal(ran, 10);
    assert_int_equal(dropped, 1000);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* the close callback frees the queue */
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* nc_post_push after nc_post_free started (from a callback run by the free itself) is refused. */
static nc_post *refuse_q;
static int refused_with;

static void on_refuse(void *arg, int cancelled) {
    (void)arg;
    if (cancelled) refused_with = nc_post_push(refuse_q, on_refuse, NULL);
}

static void test_push_while_freeing(void **st) {
    (void)st;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(nc_post_new(&refuse_q, &loop), 0);
    assert_int_equal(nc_post_push(refuse_q, on_refuse, NULL), 0);
    nc_post_free(refuse_q);
    assert_int_equal(refused_with, NC_ECLOSED);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- the uv_poll adapter ---------------------------------------------------------------------------- */

typedef struct pstate {
    int fd;
    int readable, writable, calls;
    char got[16];
} pstate;

static void on_poll(nc_poll *p, int status, int events, void *arg) {
    pstate *s = arg;
    s->calls++;
    assert_int_equal(status, 0);
    if (events & UV_READABLE) {
        ssize_t n = read(s->fd, s->got, sizeof s->got - 1);
        if (n > 0) s->got[n] = '\0';
        s->readable++;
        nc_poll_want(p, nc_poll_wanted(p) & ~UV_READABLE); /* as a library would once it has read */
    }
    if (events & UV_WRITABLE) {
        s->writable++;
        nc_poll_want(p, nc_poll_wanted(p) & ~UV_WRITABLE);
    }
}

static void test_poll_socketpair(void **st) {
    (void)st;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pstate s = {.fd = sv[0]};
    nc_poll *p;
    assert_int_equal(nc_poll_new(&p, &loop, sv[0], on_poll, &s), 0);
    /* nothing watched yet: the loop has nothing to wait for */
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(s.calls, 0);
    /* writable at once */
    assert_int_equal(nc_poll_want(p, UV_WRITABLE), 0);
    assert_true(run_until(&loop, &s.writable, 1, 2000));
    assert_int_equal(nc_poll_wanted(p), 0);
    /* readable once the peer writes */
    assert_int_equal(nc_poll_want(p, UV_READABLE), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 1); /* watching, nothing yet */
    assert_int_equal(s.readable, 0);
    assert_int_equal(write(sv[1], "ping", 4), 4);
    assert_true(run_until(&loop, &s.readable, 1, 2000));
    assert_string_equal(s.got, "ping");
    /* watching again, then freed with data waiting: no callback after the free */
    assert_int_equal(nc_poll_want(p, UV_READABLE), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    int calls = s.calls;
    nc_poll_free(p);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(s.calls, calls);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_from_threads),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_push_while_freeing),
        cmocka_unit_test(test_poll_socketpair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
