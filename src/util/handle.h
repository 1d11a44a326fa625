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

#include <stdint.h>

typedef uint64_t nc_hid; /* 0 = no handle */

/* A new id for `obj` (not NULL), with `owner` recorded beside it (e.g. the server, for calls that come
 * from another thread and need to know whose loop to wake). Returns 0 or NC_ENOMEM. */
int nc_handle_alloc(void *obj, void *owner, nc_hid *out);

/* The object of a live id, or NULL when the id is 0, was never issued, or has been freed. A thread other
 * than the object's own may look up only to learn the owner (the object may be freed meanwhile). */
void *nc_handle_get(nc_hid id);

/* The owner recorded with a live id, or NULL (same rules). */
void *nc_handle_owner(nc_hid id);

/* Retires the id: later lookups of it return NULL; the slot is reused under a new generation. */
void nc_handle_free(nc_hid id);

/* Conversions to and from the public opaque pointer types. */
static inline void *nc_hid_to_ptr(nc_hid id) {
    return (void *)(uintptr_t)id;
}
static inline nc_hid nc_hid_from_ptr(const void *p) {
    return (nc_hid)(uintptr_t)p;
}

#endif
