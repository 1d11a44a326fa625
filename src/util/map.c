#include "util/map.h"

#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"

static char tomb_marker;
#define TOMB (&tomb_marker)

static size_t hash_bytes(const char *s, size_t n) {
    /* FNV-1a: keys are short routes and ids. */
    size_t h = (size_t)1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= (size_t)1099511628211ULL;
    }
    return h;
}

static nc_map_slot *find(const nc_map *m, const char *key, size_t klen, size_t h) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        nc_map_slot *s = &m->slots[i];
        if (!s->key) return NULL;
        if (s->key != TOMB && s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0) return s;
    }
}

void *nc_map_get(const nc_map *m, const char *key, size_t klen) {
    nc_map_slot *s = find(m, key, klen, hash_bytes(key, klen));
    return s ? s->val : NULL;
}

static int grow(nc_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    if (m->len * 4 < m->cap) cap = m->cap; /* mostly tombstones: rehash at the same size */
    nc_map_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return NC_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        nc_map_slot *s = &m->slots[i];
        if (!s->key || s->key == TOMB) continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    m->used = m->len;
    return 0;
}

int nc_map_put(nc_map *m, const char *key, size_t klen, void *val, const char **stored_key) {
    size_t h = hash_bytes(key, klen);
    nc_map_slot *s = find(m, key, klen, h);
    if (s) {
        s->val = val;
        if (stored_key) *stored_key = s->key;
        return 0;
    }
    if ((m->used + 1) * 4 >= m->cap * 3 && grow(m)) return NC_ENOMEM;
    char *k = malloc(klen + 1);
    if (!k) return NC_ENOMEM;
    memcpy(k, key, klen);
    k[klen] = '\0';
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB) i = (i + 1) & mask;
    if (!m->slots[i].key) m->used++;
    m->slots[i] = (nc_map_slot){k, klen, h, val};
    m->len++;
    if (stored_key) *stored_key = k;
    return 0;
}

void *nc_map_del(nc_map *m, const char *key, size_t klen) {
    nc_map_slot *s = find(m, key, klen, hash_bytes(key, klen));
    if (!s) return NULL;
    void *v = s->val;
    free(s->key);
    s->key = TOMB;
    s->val = NULL;
    m->len--;
    return v;
}

int nc_map_next(const nc_map *m, size_t *iter, const char **key, void **val) {
    for (; *iter < m->cap; (*iter)++) {
        nc_map_slot *s = &m->slots[*iter];
        if (s->key && s->key != TOMB) {
            if (key) *key = s->key;
            if (val) *val = s->val;
            (*iter)++;
            return 1;
        }
    }
    return 0;
}

void nc_map_free(nc_map *m) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB) free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = m->used = 0;
}
