/* Handles: ids with generations for objects handed to users (requests, kept events, client calls), so a
 * handle used after its object finished is recognised and refused (NC_ESTATE) instead of reaching freed
 * or reused memory. As nng does for its sockets, with the id carried in a pointer-sized value so the
 * public types stay opaque pointers (nc_request *, nc_event *, nc_call *) that are never dereferenced.
 *
 * One process-wide table of slots: an id is (generation << 32 | slot index + 1). Lookups take no lock
 * (slots never move: the table grows by whole chunks that are never freed); allocating and freeing use a
 * small per-thread cache of free slots and take a lock only to refill or return a batch. Thread-safe.
 * Private. */
#ifndef NC_UTIL_HANDLE_H
#define NC_UTIL_HANDLE_H

#include <stdatomic.h>
#include <stdint.h>

typedef uint64_t nc_hid; /* 0 = no handle */

/* A new id for `obj` (not NULL), with `owner` recorded beside it (e.g. the server, for calls that come
 * from another thread and need to know whose loop to wake). Returns 0 or NC_ENOMEM. */
int nc_handle_alloc(void *obj, void *owner, nc_hid *out);

/* The table, for the inline lookups below (handle.c owns it). */
#define NC_HANDLE_CHUNK_BITS 10
#define NC_HANDLE_MAX_CHUNKS 4096u /* 4 Mi live handles */
/* On a 32-bit build an id still has to fit a pointer: 22 bits of index, 10 of generation. */
#if UINTPTR_MAX > 0xffffffffu
#define NC_HANDLE_GEN_SHIFT 32
#define NC_HANDLE_GEN_MASK 0xffffffffu
#else
#define NC_HANDLE_GEN_SHIFT 22
#define NC_HANDLE_GEN_MASK 0x3ffu
#endif

typedef struct nc_handle_slot {
    _Atomic uint32_t gen; /* the live generation; odd = in use, even = free or retired */
    void *_Atomic obj;
    void *_Atomic owner;
    uint32_t next_free; /* global free list (under the lock): index + 1, 0 = end */
} nc_handle_slot;

extern nc_handle_slot *_Atomic nc_handle__chunks[NC_HANDLE_MAX_CHUNKS];

static inline nc_handle_slot *nc_handle__slot(uint32_t idx) {
    nc_handle_slot *c =
        atomic_load_explicit(&nc_handle__chunks[idx >> NC_HANDLE_CHUNK_BITS], memory_order_acquire);
    return c ? &c[idx & ((1u << NC_HANDLE_CHUNK_BITS) - 1)] : (nc_handle_slot *)0;
}

static inline int nc_handle__split(nc_hid id, uint32_t *idx, uint32_t *gen) {
    uint64_t low = id & ((UINT64_C(1) << NC_HANDLE_GEN_SHIFT) - 1);
    if (!low) return -1;
    *idx = (uint32_t)(low - 1);
    *gen = (uint32_t)(id >> NC_HANDLE_GEN_SHIFT) & NC_HANDLE_GEN_MASK;
    return *idx < (NC_HANDLE_MAX_CHUNKS << NC_HANDLE_CHUNK_BITS) ? 0 : -1;
}

static inline nc_handle_slot *nc_handle__live(nc_hid id) {
    uint32_t idx, gen;
    if (nc_handle__split(id, &idx, &gen)) return (nc_handle_slot *)0;
    nc_handle_slot *s = nc_handle__slot(idx);
    if (!s || atomic_load_explicit(&s->gen, memory_order_acquire) != gen || !(gen & 1))
        return (nc_handle_slot *)0;
    return s;
}

/* The object of a live id, or NULL when the id is 0, was never issued, or has been freed or retired. A
 * thread other than the object's own may look up only to learn the owner (the object may be freed
 * meanwhile). Inline: it is on every handle call. */
static inline void *nc_handle_get(nc_hid id) {
    nc_handle_slot *s = nc_handle__live(id);
    return s ? atomic_load_explicit(&s->obj, memory_order_relaxed) : (void *)0;
}

/* The owner recorded with a live id, or NULL (same rules). */
static inline void *nc_handle_owner(nc_hid id) {
    nc_handle_slot *s = nc_handle__live(id);
    return s ? atomic_load_explicit(&s->owner, memory_order_relaxed) : (void *)0;
}

/* Retires the id: later lookups of it return NULL; the slot is reused under a new generation. */
void nc_handle_free(nc_hid id);

/* Objects that are pooled for reuse (requests) keep their slot across uses, which costs two stores per
 * use instead of a trip through the free list: nc_handle_retire() makes the id stale (lookups return
 * NULL) but keeps the slot with the caller; nc_handle_renew() issues a new id on the caller's slot (or a
 * fresh one when *id is 0) for the object's next use; nc_handle_release() gives a slot back to the table
 * when the object itself is freed. Only the slot's holder may call these for it. */
void nc_handle_retire(nc_hid id);
/* The same two steps for a holder that keeps the slot (nc_handle_slot_of) of an object that stays the
 * same object with the same owner across uses: one load and one store each, inline. */
static inline nc_handle_slot *nc_handle_slot_of(nc_hid id) {
    uint32_t idx, gen;
    return nc_handle__split(id, &idx, &gen) ? (nc_handle_slot *)0 : nc_handle__slot(idx);
}
static inline void nc_handle_retire_slot(nc_handle_slot *s) {
    uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
    atomic_store_explicit(&s->gen, (gen + 1) & NC_HANDLE_GEN_MASK, memory_order_release);
}
/* `old` is the slot's last id (retired): the next odd generation, same slot. */
static inline nc_hid nc_handle_revive_slot(nc_handle_slot *s, nc_hid old) {
    uint32_t gen = (atomic_load_explicit(&s->gen, memory_order_relaxed) + 1) & NC_HANDLE_GEN_MASK;
    atomic_store_explicit(&s->gen, gen, memory_order_release);
    return ((nc_hid)gen << NC_HANDLE_GEN_SHIFT) | (old & ((UINT64_C(1) << NC_HANDLE_GEN_SHIFT) - 1));
}
int nc_handle_renew(nc_hid *id, void *obj, void *owner);
void nc_handle_release(nc_hid id);

/* Conversions to and from the public opaque pointer types. */
static inline void *nc_hid_to_ptr(nc_hid id) {
    return (void *)(uintptr_t)id;
}
static inline nc_hid nc_hid_from_ptr(const void *p) {
    return (nc_hid)(uintptr_t)p;
}

#endif
