/* String-keyed hash map (open addressing, linear probing). Keys are copied; values are borrowed
 * pointers. Used for the handler table and the client's pending-request table. Private. */
#ifndef NC_UTIL_MAP_H
#define NC_UTIL_MAP_H

#include <stddef.h>

typedef struct nc_map_slot {
    char *key; /* NULL = empty; NC_MAP_TOMB = deleted */
    size_t klen;
    size_t hash;
    void *val;
} nc_map_slot;

typedef struct nc_map {
    nc_map_slot *slots;
    size_t cap; /* power of two */
    size_t len, used;
} nc_map;

#define NC_MAP_INIT                                                                                          \
    { NULL, 0, 0, 0 }

void *nc_map_get(const nc_map *m, const char *key, size_t klen);
/* Inserts or replaces. Returns 0 or NC_ENOMEM. If `stored_key` is not NULL it receives the map's copy. */
int nc_map_put(nc_map *m, const char *key, size_t klen, void *val, const char **stored_key);
/* Removes the key; returns the old value or NULL. */
void *nc_map_del(nc_map *m, const char *key, size_t klen);
/* Iteration: for (size_t i = 0; nc_map_next(m, &i, &k, &v);) ... */
int nc_map_next(const nc_map *m, size_t *iter, const char **key, void **val);
void nc_map_free(nc_map *m);

#endif
