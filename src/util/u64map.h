/* Hash map from a 64-bit key to a pointer (open addressing, linear probing, backward-shift deletion, so
 * no tombstones and nothing allocated per entry). Holds the client's pending requests by serial. Private. */
#ifndef NC_UTIL_U64MAP_H
#define NC_UTIL_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct nc_u64map_slot {
    uint64_t key; /* 0 = empty: keys must not be 0 */
    void *val;
} nc_u64map_slot;

typedef struct nc_u64map {
    nc_u64map_slot *slots;
    size_t cap; /* power of two */
    size_t len;
} nc_u64map;

#define NC_U64MAP_INIT                                                                                       \
    { NULL, 0, 0 }

void *nc_u64map_get(const nc_u64map *m, uint64_t key);
/* Inserts (the key must not be present). Returns 0 or NC_ENOMEM. */
int nc_u64map_put(nc_u64map *m, uint64_t key, void *val);
/* Removes the key; returns its value or NULL. */
void *nc_u64map_del(nc_u64map *m, uint64_t key);
/* Iteration over values: for (size_t i = 0; nc_u64map_next(m, &i, &v);) ... (no changes meanwhile). */
int nc_u64map_next(const nc_u64map *m, size_t *iter, void **val);
void nc_u64map_free(nc_u64map *m);

#endif
