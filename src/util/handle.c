/* Handle table (handle.h). */
#include "util/handle.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "nestc/error.h"

#define CHUNK_BITS NC_HANDLE_CHUNK_BITS
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_CHUNKS NC_HANDLE_MAX_CHUNKS
#define CACHE_MAX 64 /* free slots a thread keeps before returning half */

#define GEN_SHIFT NC_HANDLE_GEN_SHIFT
#define GEN_MASK NC_HANDLE_GEN_MASK

nc_handle_slot *_Atomic nc_handle__chunks[NC_HANDLE_MAX_CHUNKS];
static uv_mutex_t lock;
static uv_once_t lock_once = UV_ONCE_INIT;
static uint32_t nslots;    /* slots created (under the lock) */
static uint32_t free_head; /* index + 1 */

static _Thread_local uint32_t cache[CACHE_MAX];
static _Thread_local unsigned ncache;

static void lock_init(void) {
    uv_mutex_init(&lock);
}

static nc_handle_slot *slot_at(uint32_t idx) {
    return nc_handle__slot(idx);
}

/* Refills this thread's cache with up to half of CACHE_MAX free slots. Returns 0 or NC_ENOMEM. */
static int refill(void) {
    uv_once(&lock_once, lock_init);
    uv_mutex_lock(&lock);
    while (ncache < CACHE_MAX / 2) {
        if (free_head) {
            uint32_t idx = free_head - 1;
            free_head = slot_at(idx)->next_free;
            cache[ncache++] = idx;
            continue;
        }
        if (nslots >> CHUNK_BITS >= MAX_CHUNKS) break;
        if ((nslots & (CHUNK_SLOTS - 1)) == 0) {
            nc_handle_slot *c = calloc(CHUNK_SLOTS, sizeof *c);
            if (!c) break;
            atomic_store_explicit(&nc_handle__chunks[nslots >> CHUNK_BITS], c, memory_order_release);
        }
        cache[ncache++] = nslots++;
    }
    uv_mutex_unlock(&lock);
    return ncache ? 0 : NC_ENOMEM;
}

static void give_back(unsigned n) {
    uv_once(&lock_once, lock_init);
    uv_mutex_lock(&lock);
    while (n-- && ncache) {
        uint32_t idx = cache[--ncache];
        slot_at(idx)->next_free = free_head;
        free_head = idx + 1;
    }
    uv_mutex_unlock(&lock);
}

int nc_handle_alloc(void *obj, void *owner, nc_hid *out) {
    if (!ncache && refill()) return NC_ENOMEM;
    uint32_t idx = cache[--ncache];
    nc_handle_slot *s = slot_at(idx);
    /* free generations are even; the next odd one is this use's (wrapping within the mask) */
    uint32_t gen = (atomic_load_explicit(&s->gen, memory_order_relaxed) + 1) & GEN_MASK;
    if (!(gen & 1)) gen = (gen + 1) & GEN_MASK;
    atomic_store_explicit(&s->obj, obj, memory_order_relaxed);
    atomic_store_explicit(&s->owner, owner, memory_order_relaxed);
    atomic_store_explicit(&s->gen, gen, memory_order_release);
    *out = ((nc_hid)gen << GEN_SHIFT) | ((nc_hid)idx + 1);
    return 0;
}

void nc_handle_free(nc_hid id) {
    nc_handle_slot *s = nc_handle__live(id);
    if (!s) return;
    uint32_t idx = (uint32_t)((id & ((UINT64_C(1) << GEN_SHIFT) - 1)) - 1);
    atomic_store_explicit(&s->obj, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->gen, (atomic_load_explicit(&s->gen, memory_order_relaxed) + 1) & GEN_MASK,
                          memory_order_release);
    if (ncache == CACHE_MAX) give_back(CACHE_MAX / 2);
    cache[ncache++] = idx;
}

/* Pooled objects keep their slot while pooled (handle.h). */
void nc_handle_retire(nc_hid id) {
    nc_handle_slot *s = nc_handle__live(id);
    if (!s) return;
    atomic_store_explicit(&s->gen, (atomic_load_explicit(&s->gen, memory_order_relaxed) + 1) & GEN_MASK,
                          memory_order_release);
}

int nc_handle_renew(nc_hid *id, void *obj, void *owner) {
    if (!*id) return nc_handle_alloc(obj, owner, id);
    uint32_t idx = (uint32_t)((*id & ((UINT64_C(1) << GEN_SHIFT) - 1)) - 1);
    nc_handle_slot *s = slot_at(idx);
    uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
    if (gen & 1) gen++; /* still live: retire it first */
    gen = (gen + 1) & GEN_MASK;
    atomic_store_explicit(&s->obj, obj, memory_order_relaxed);
    atomic_store_explicit(&s->owner, owner, memory_order_relaxed);
    atomic_store_explicit(&s->gen, gen, memory_order_release);
    *id = ((nc_hid)gen << GEN_SHIFT) | ((nc_hid)idx + 1);
    return 0;
}

void nc_handle_release(nc_hid id) {
    if (!id) return;
    nc_handle_retire(id); /* a live id is retired first; a retired one stays so */
    uint32_t idx = (uint32_t)((id & ((UINT64_C(1) << GEN_SHIFT) - 1)) - 1);
    nc_handle_slot *s = slot_at(idx);
    atomic_store_explicit(&s->obj, NULL, memory_order_relaxed);
    if (ncache == CACHE_MAX) give_back(CACHE_MAX / 2);
    cache[ncache++] = idx;
}
