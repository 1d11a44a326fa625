/* Wire counters (io/wire.h). */
#include "io/wire.h"

#include <stdlib.h>
#include <string.h>

#define LINE 64

nc_wire_block *nc_wire_block_new(int nslots) {
    if (nslots < 1) nslots = 1;
    /* the slots start on a line boundary: two workers' slots never share a cache line */
    size_t head = (sizeof(nc_wire_block) + LINE - 1) / LINE * LINE;
    size_t size = head + (size_t)nslots * sizeof(nc_wire_slot);
    nc_wire_block *b = aligned_alloc(LINE, (size + LINE - 1) / LINE * LINE);
    if (!b) return NULL;
    memset(b, 0, size);
    b->slots = (nc_wire_slot *)((char *)b + head);
    atomic_init(&b->refs, 1);
    b->nslots = nslots;
    uv_mutex_init(&b->lock);
    return b;
}

void nc_wire_block_ref(nc_wire_block *b) {
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
}

void nc_wire_block_unref(nc_wire_block *b) {
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    uv_mutex_destroy(&b->lock);
    free(b);
}

/* `closed` is read before `opened` (acquire loads of release stores): a close seen implies its open is
 * seen, so opened - closed, the open connections, never goes below 0. */
static void add_slot(nc_wire_slot *s, nc_wire_counts *c) {
    c->closed_err += atomic_load_explicit(&s->closed_err, memory_order_acquire);
    c->closed += atomic_load_explicit(&s->closed, memory_order_acquire);
    c->opened += atomic_load_explicit(&s->opened, memory_order_acquire);
    c->in += atomic_load_explicit(&s->in, memory_order_relaxed);
    c->out += atomic_load_explicit(&s->out, memory_order_relaxed);
}

void nc_wire_block_read(nc_wire_block *b, nc_wire_counts *c) {
    *c = (nc_wire_counts){0};
    for (int i = 0; i < b->nslots; i++) add_slot(&b->slots[i], c);
    uv_mutex_lock(&b->lock);
    c->in += b->kept.in;
    c->out += b->kept.out;
    c->opened += b->kept.opened;
    c->closed += b->kept.closed;
    c->closed_err += b->kept.closed_err;
    if (b->probe) b->probe(b->probe_arg, c);
    uv_mutex_unlock(&b->lock);
}

void nc_wire_block_probe(nc_wire_block *b, nc_wire_probe_fn fn, void *arg) {
    uv_mutex_lock(&b->lock);
    if (b->probe && !fn) b->probe(b->probe_arg, &b->kept); /* adds its last figures */
    b->probe = fn;
    b->probe_arg = arg;
    uv_mutex_unlock(&b->lock);
}
