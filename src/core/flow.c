/* Write backpressure for reply streams: whether a request can take more replies now (the transport's
 * queued bytes against the handler's high-water mark) and the drain callback once they went down. The
 * state lives on the request's reply metadata, so requests whose handler never asks carry nothing and the
 * reply path does no extra work; the core asks the transport through nc_peer_ops (pending, watch) and never
 * looks at which transport it is. */
#include <stdlib.h>

#include "core/server_internal.h"
#include "nestc/error.h"

struct nc_rflow {
    nc_req *r;
    size_t high;
    nc_drain_fn fn;
    void *arg;
    int blocked;  /* nc_reply_writable said 0: drain is due once the bytes go down */
    int watching; /* the peer is watched (nc_peer_ops.watch on) */
    void *peer;   /* the peer watched (the request may lose its own at its end) */
    const nc_peer_ops *pops;
    struct nc_rflow *prev, *next; /* the server's list (nc_server.flows) */
};

static size_t pending_of(const nc_req *r) {
    return r->peer && !r->peer_dead && r->pops->pending ? r->pops->pending(r->peer) : 0;
}

/* The watch of a request, made on first use. NULL and *err when the request cannot have one. */
static struct nc_rflow *flow_of(nc_request *h, int *err) {
    nc_req *r = nc_request__meta_req(h, err);
    if (!r) return NULL;
    struct nc_rflow **slot = nc_request__flow_slot(r);
    if (*slot) return *slot;
    struct nc_rflow *f = calloc(1, sizeof *f);
    if (!f) {
        *err = NC_ENOMEM;
        return NULL;
    }
    f->r = r;
    f->high = NC_REPLY_HIGH_WATER_DEFAULT;
    nc_server *s = r->srv;
    f->next = s->flows;
    if (s->flows) s->flows->prev = f;
    s->flows = f;
    if (r->peer && r->pops->pending && r->pops->watch) {
        f->peer = r->peer;
        f->pops = r->pops;
        f->watching = 1;
        r->pops->retain(r->peer); /* a cancelled request lets its peer go before the watch ends */
        r->pops->watch(r->peer, 1);
    }
    *slot = f;
    return f;
}

void nc_request__flow_free(struct nc_rflow *f) {
    nc_server *s = f->r->srv;
    if (f->prev)
        f->prev->next = f->next;
    else
        s->flows = f->next;
    if (f->next) f->next->prev = f->prev;
    if (f->watching) {
        f->pops->watch(f->peer, 0);
        f->pops->release(f->peer);
    }
    free(f);
}

int nc_reply_writable(nc_request *h) {
    int err;
    struct nc_rflow *f = flow_of(h, &err);
    if (!f) return err;
    nc_req *r = f->r;
    if (r->cancelled || r->discard || !r->peer || r->peer_dead) return 1; /* replies go nowhere */
    if (pending_of(r) < f->high) return 1;
    f->blocked = 1;
    return 0;
}

int nc_reply_buffered(nc_request *h, size_t *bytes) {
    nc_req *r = h ? nc_handle_get(nc_hid_from_ptr(h)) : NULL;
    if (!bytes) return NC_EINVAL;
    *bytes = 0;
    if (!r || r->replied) return h ? NC_ESTATE : NC_EINVAL;
    *bytes = pending_of(r);
    return 0;
}

int nc_request_on_drain(nc_request *h, size_t high_water, nc_drain_fn fn, void *arg) {
    int err;
    struct nc_rflow *f = flow_of(h, &err);
    if (!f) return err;
    f->high = high_water ? high_water : NC_REPLY_HIGH_WATER_DEFAULT;
    f->fn = fn;
    f->arg = arg;
    return 0;
}

/* The next blocked watch on `peer` whose bytes are down to its low-water mark, or NULL. */
static struct nc_rflow *next_due(nc_server *s, void *peer) {
    for (struct nc_rflow *f = s->flows; f; f = f->next) {
        if (!f->blocked || f->r->peer != peer) continue;
        if (pending_of(f->r) <= f->high / 2) return f;
    }
    return NULL;
}

void nc_server__peer_writable(nc_server *s, void *peer) {
    if (s->freeing) return;
    /* a callback may finish requests or set new watches: look again from the start after each; every
     * round clears one blocked flag, so this ends */
    struct nc_rflow *f;
    while ((f = next_due(s, peer))) {
        f->blocked = 0;
        if (f->fn) f->fn(nc_req__handle(f->r), f->arg);
    }
}
