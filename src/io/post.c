#include "io/post.h"

#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"

typedef struct post_item {
    nc_post_fn fn;
    void *arg;
} post_item;

struct nc_post {
    uv_async_t async;
    uv_mutex_t lock;
    post_item *items; /* what the posting threads fill */
    size_t len, cap;
    post_item *spare; /* the array the loop drained last, kept to swap back in */
    size_t spare_cap;
    int closing;
};

static void post_closed(uv_handle_t *h) {
    nc_post *q = h->data;
    uv_mutex_destroy(&q->lock);
    free(q->items);
    free(q->spare);
    free(q);
}

/* Takes everything queued at once (the posting threads keep going into the spare array meanwhile). */
static void drain(nc_post *q, int cancelled) {
    uv_mutex_lock(&q->lock);
    post_item *batch = q->items;
    size_t n = q->len, cap = q->cap;
    q->items = q->spare;
    q->cap = q->spare_cap;
    q->len = 0;
    q->spare = NULL;
    q->spare_cap = 0;
    uv_mutex_unlock(&q->lock);
    for (size_t i = 0; i < n; i++) batch[i].fn(batch[i].arg, cancelled);
    uv_mutex_lock(&q->lock);
    if (!q->spare) {
        q->spare = batch;
        q->spare_cap = cap;
        batch = NULL;
    }
    uv_mutex_unlock(&q->lock);
    free(batch);
}

static void on_async(uv_async_t *a) {
    nc_post *q = a->data;
    if (!q->closing) drain(q, 0);
}

int nc_post_new(nc_post **out, uv_loop_t *loop) {
    nc_post *q = calloc(1, sizeof *q);
    if (!q) return NC_ENOMEM;
    if (uv_mutex_init(&q->lock)) {
        free(q);
        return NC_EIO;
    }
    if (uv_async_init(loop, &q->async, on_async)) {
        uv_mutex_destroy(&q->lock);
        free(q);
        return NC_EIO;
    }
    q->async.data = q;
    *out = q;
    return 0;
}

int nc_post_push(nc_post *q, nc_post_fn fn, void *arg) {
    uv_mutex_lock(&q->lock);
    if (q->closing) {
        uv_mutex_unlock(&q->lock);
        return NC_ECLOSED;
    }
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 64;
        post_item *p = realloc(q->items, ncap * sizeof *p);
        if (!p) {
            uv_mutex_unlock(&q->lock);
            return NC_ENOMEM;
        }
        q->items = p;
        q->cap = ncap;
    }
    q->items[q->len++] = (post_item){fn, arg};
    /* under the lock: nc_post_free cannot close the handle between the check above and this */
    uv_async_send(&q->async);
    uv_mutex_unlock(&q->lock);
    return 0;
}

void nc_post_free(nc_post *q) {
    if (!q) return;
    uv_mutex_lock(&q->lock);
    q->closing = 1;
    uv_mutex_unlock(&q->lock);
    /* drain() takes the lock itself; nothing is added any more */
    drain(q, 1);
    uv_close((uv_handle_t *)&q->async, post_closed);
}

/* ---- uv_poll adapter ------------------------------------------------------------------------------ */

struct nc_poll {
    uv_poll_t h;
    nc_poll_fn cb;
    void *arg;
    int events;
};

static void poll_closed(uv_handle_t *h) {
    free(h->data);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    nc_poll *p = h->data;
    if (status < 0) {
        uv_poll_stop(&p->h);
        p->events = 0;
    }
    if (p->cb) p->cb(p, status, events & (UV_READABLE | UV_WRITABLE), p->arg);
}

int nc_poll_new(nc_poll **out, uv_loop_t *loop, uv_os_sock_t fd, nc_poll_fn cb, void *arg) {
    nc_poll *p = calloc(1, sizeof *p);
    if (!p) return NC_ENOMEM;
    if (uv_poll_init_socket(loop, &p->h, fd)) {
        free(p);
        return NC_EIO;
    }
    p->h.data = p;
    p->cb = cb;
    p->arg = arg;
    *out = p;
    return 0;
}

int nc_poll_want(nc_poll *p, int events) {
    events &= UV_READABLE | UV_WRITABLE;
    if (events == p->events) return 0;
    int r = events ? uv_poll_start(&p->h, events, on_poll) : uv_poll_stop(&p->h);
    if (r) return NC_EIO;
    p->events = events;
    return 0;
}

int nc_poll_wanted(const nc_poll *p) {
    return p->events;
}

void nc_poll_free(nc_poll *p) {
    if (!p) return;
    p->cb = NULL;
    uv_poll_stop(&p->h);
    uv_close((uv_handle_t *)&p->h, poll_closed);
}
