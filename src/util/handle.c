/* Handle table (handle.h). */
#include "util/handle.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "nestc/error.h"

#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_CHUNKS 4096u /* 4 Mi live handles */
#define CACHE_MAX 64     /* free slots a thread keeps before returning half */

/* On a 32-bit build an id still has to fit a pointer: 22 bits of index, 10 of generation. */
#if UINTPTR_MAX > 0xffffffffu
#define GEN_SHIFT 32
#define GEN_MASK 0xffffffffu
#else
#define GEN_SHIFT 22
#define GEN_MASK 0x3ffu
#endif

typedef struct slot {
    _Atomic uint32_t gen; /* the live generation; odd = in use, even = free */
    void *_Atomic obj;
    void *_Atomic owner;
    uint32_t next_free; /* global free list (under the lock): index + 1, 0 = end */
} slot;

static slot *_Atomic chunks[MAX_CHUNKS];
static uv_mutex_t lock;
static uv_once_t lock_once = UV_ONCE_INIT;
static uint32_t nslots;    /* slots created (under the lock) */
static uint32_t free_head; /* index + 1 */

static _Thread_local uint32_t cache[CACHE_MAX];
static _Thread_local unsigned ncache;

static void lock_init(void) {
    uv_mutex_init(&lock);
}

static slot *slot_at(uint32_t idx) {
    slot *c = atomic_load_explicit(&chunks[idx >> CHUNK_BITS], memory_order_acquire);
    return c ? &c[idx & (CHUNK_SLOTS - 1)] : NULL;
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
            slot *c = calloc(CHUNK_SLOTS, sizeof *c);
            if (!c) break;
            atomic_store_explicit(&chunks[nslots >> CHUNK_BITS], c, memory_order_release);
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

static int split(nc_hid id, uint32_t *idx, uint32_t *gen) {
    uint64_t low = id & ((UINT64_C(1) << GEN_SHIFT) - 1);
    if (!low) return -1;
    *idx = (uint32_t)(low - 1);
    *gen = (uint32_t)(id >> GEN_SHIFT) & GEN_MASK;
    return *idx < (MAX_CHUNKS << CHUNK_BITS) ? 0 : -1;
}

int nc_handle_alloc(void *obj, void *owner, nc_hid *out) {
    if (!ncache && refill()) return NC_ENOMEM;
    uint32_t idx = cache[--ncache];
    slot *s = slot_at(idx);
    /* free generations are even; the next odd one is this use's (wrapping within the mask) */
    uint32_t gen = (atomic_load_explicit(&s->gen, memory_order_relaxed) + 1) & GEN_MASK;
    if (!(gen & 1)) gen = (gen + 1) & GEN_MASK;
    atomic_store_explicit(&s->obj, obj, memory_order_relaxed);
    atomic_store_explicit(&s->owner, owner, memory_order_relaxed);
    atomic_store_explicit(&s->gen, gen, memory_order_release);
    *out = ((nc_hid)gen << GEN_SHIFT) | ((nc_hid)idx + 1);
    return 0;
}

static inline slot *live(nc_hid id) {
    uint32_t idx, gen;
    if (split(id, &idx, &gen)) return NULL;
    slot *s = slot_at(idx);
    if (!s || atomic_load_explicit(&s->gen, memory_order_acquire) != gen || !(gen & 1)) return NULL;
    return s;
}

void *nc_handle_get(nc_hid id) {
    slot *s = live(id);
    return s ? atomic_load_explicit(&s->obj, memory_order_relaxed) : NULL;
}

void *nc_handle_owner(nc_hid id) {
    slot *s = live(id);
    return s ? atomic_load_explicit(&s->owner, memory_order_relaxed) : NULL;
}

void nc_handle_free(nc_hid id) {
    slot *s = live(id);
    if (!s) return;
    uint32_t idx = (uint32_t)((id & ((UINT64_C(1) << GEN_SHIFT) - 1)) - 1);
    atomic_store_explicit(&s->obj, NULL, memory_order_relaxed);
    atomic_store_explicit(&s->gen, (atomic_load_explicit(&s->gen, memory_order_relaxed) + 1) & GEN_MASK,
                          memory_order_release);
    if (ncache == CACHE_MAX) give_back(CACHE_MAX / 2);
    cache[ncache++] = idx;
}
