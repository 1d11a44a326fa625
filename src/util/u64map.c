#include "util/u64map.h"

#include <stdlib.h>

#include "nestc/error.h"

static inline size_t slot_of(uint64_t k, size_t mask) {
    /* serials are sequential: a multiplicative mix spreads neighbours (Fibonacci hashing) */
    return (size_t)((k * 0x9E3779B97F4A7C15ULL) >> 17) & mask;
}

void *nc_u64map_get(const nc_u64map *m, uint64_t key) {
    if (!m->cap || !key) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (m->slots[i].key == key) return m->slots[i].val;
        if (!m->slots[i].key) return NULL;
    }
}

static void insert(nc_u64map_slot *slots, size_t mask, uint64_t key, void *val) {
    size_t i = slot_of(key, mask);
    while (slots[i].key) i = (i + 1) & mask;
    slots[i].key = key;
    slots[i].val = val;
}

int nc_u64map_put(nc_u64map *m, uint64_t key, void *val) {
    if (!key) return NC_EINVAL;
    if ((m->len + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        nc_u64map_slot *s = calloc(cap, sizeof *s);
        if (!s) return NC_ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key) insert(s, cap - 1, m->slots[i].key, m->slots[i].val);
        free(m->slots);
        m->slots = s;
        m->cap = cap;
    }
    insert(m->slots, m->cap - 1, key, val);
    m->len++;
    return 0;
}

void *nc_u64map_del(nc_u64map *m, uint64_t key) {
    if (!m->cap || !key) return NULL; /* 0 marks empty slots: never a key */
    size_t mask = m->cap - 1, i = slot_of(key, mask);
    while (m->slots[i].key != key) {
        if (!m->slots[i].key) return NULL;
        i = (i + 1) & mask;
    }
    void *val = m->slots[i].val;
    m->len--;
    /* backward shift: move later entries of the run into the hole when their home allows it */
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m->slots[j].key, mask);
        /* can the entry at j live at i? only if its home is not in (i, j] (cyclically) */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = 0;
    m->slots[i].val = NULL;
    return val;
}

int nc_u64map_next(const nc_u64map *m, size_t *iter, void **val) {
    while (*iter < m->cap) {
        nc_u64map_slot *s = &m->slots[(*iter)++];
        if (s->key) {
            if (val) *val = s->val;
            return 1;
        }
    }
    return 0;
}

void nc_u64map_free(nc_u64map *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}
