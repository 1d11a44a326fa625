/* A message's ordered headers and transport context: accessors, the lazily built JSON object of
 * nc_msg_headers, and the copies a message makes when it outlives its packet (requests, kept events). */
#include <stdlib.h>
#include <string.h>

#include "codec/frame.h"
#include "codec/json_build.h"
#include "core/server_internal.h"
#include "nestc/error.h"

int nc_msg__copy_extras(nc_msg *m, const nc_header *h, size_t nh, int has_hdrs, const nc_ctx_item *c,
                        size_t nc) {
    m->has_hdrs = has_hdrs || nh;
    if (!nh && !nc) return 0;
    size_t bytes = nh * sizeof *h + nc * sizeof *c;
    for (size_t i = 0; i < nh; i++) bytes += h[i].name_len + h[i].value_len;
    for (size_t i = 0; i < nc; i++) bytes += c[i].str ? c[i].len : 0;
    char *block = malloc(bytes ? bytes : 1);
    if (!block) return NC_ENOMEM;
    /* the arrays first (aligned by malloc: nc_ctx_item's alignment divides nc_header's size) */
    nc_header *hh = (nc_header *)block;
    nc_ctx_item *cc = (nc_ctx_item *)(block + nh * sizeof *h);
    char *at = block + nh * sizeof *h + nc * sizeof *c;
    for (size_t i = 0; i < nh; i++) {
        hh[i].name = memcpy(at, h[i].name, h[i].name_len);
        hh[i].name_len = h[i].name_len;
        at += h[i].name_len;
        hh[i].value = memcpy(at, h[i].value, h[i].value_len);
        hh[i].value_len = h[i].value_len;
        at += h[i].value_len;
    }
    for (size_t i = 0; i < nc; i++) {
        cc[i] = c[i];
        if (c[i].str) {
            cc[i].str = memcpy(at, c[i].str, c[i].len);
            at += c[i].len;
        }
    }
    m->own_extras = block;
    m->hdrs = nh ? hh : NULL;
    m->nhdrs = nh;
    m->ctx = nc ? cc : NULL;
    m->nctx = nc;
    return 0;
}

static char *dup_n(const char *p, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

int nc_msg__copy(nc_msg *d, const nc_msg *m) {
    memset(d, 0, sizeof *d);
    d->transport = m->transport;
    d->is_event = m->is_event;
    d->scanned = m->scanned;
    d->data_compact = m->data_compact;
    d->meta_done = m->meta_done;
    d->data_json_len = m->data_json_len;
    d->meta_json_len = m->meta_json_len;
    if (m->root) { /* DOM: data and metadata are borrowed from the root, which we share */
        d->root = json_incref(m->root);
        d->data = m->data;
        d->metadata = m->metadata;
    } else {
        if (m->data) d->data = json_incref(m->data), d->data_owned = 1;
        if (m->meta_done && m->metadata) d->metadata = json_incref(m->metadata);
    }
    if (m->route && !(d->route = d->own_route = strdup(m->route))) goto nomem;
    if (m->pattern_text && !(d->pattern_text = d->own_pattern = strdup(m->pattern_text))) goto nomem;
    if (m->channel && !(d->channel = strdup(m->channel))) goto nomem;
    if (m->data_json && !(d->data_json = d->own_data_json = dup_n(m->data_json, m->data_json_len)))
        goto nomem;
    if (m->meta_json) {
        if (!(d->arena = dup_n(m->meta_json, m->meta_json_len))) goto nomem;
        d->arena_heap = 1;
        d->meta_json = d->arena;
    }
    if (nc_msg__copy_extras(d, m->hdrs, m->nhdrs, m->has_hdrs, m->ctx, m->nctx)) goto nomem;
    return 0;
nomem:
    nc_msg__clear(d);
    return NC_ENOMEM;
}

/* ---- accessors ------------------------------------------------------------------------------------ */

size_t nc_msg_header_count(const nc_msg *m) {
    return m ? m->nhdrs : 0;
}

int nc_msg_header_at(const nc_msg *m, size_t i, const char **name, size_t *name_len, const char **value,
                     size_t *value_len) {
    if (!m || i >= m->nhdrs) return NC_ENOENT;
    const nc_header *h = &m->hdrs[i];
    if (name) *name = h->name;
    if (name_len) *name_len = h->name_len;
    if (value) *value = h->value;
    if (value_len) *value_len = h->value_len;
    return 0;
}

const char *nc_msg_header(const nc_msg *m, const char *name, size_t *len) {
    if (!m || !name) return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i < m->nhdrs; i++) {
        const nc_header *h = &m->hdrs[i];
        if (h->name_len == n && memcmp(h->name, name, n) == 0) {
            if (len) *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

json_t *nc_msg_headers(const nc_msg *m) {
    nc_msg *mm = (nc_msg *)m; /* built on first use */
    if (!mm->has_hdrs || mm->headers_done) return mm->headers;
    mm->headers_done = 1;
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < mm->nhdrs; i++) {
        const nc_header *h = &mm->hdrs[i];
        /* as nats.js decodes them: the first value of a repeated name, U+FFFD for ill-formed bytes; a
         * name that is not UTF-8 (or holds a NUL) is left out, since jansson refuses such keys */
        if (nc_utf8_validate(h->name, h->name_len, NULL) || memchr(h->name, 0, h->name_len)) continue;
        char *name = dup_n(h->name, h->name_len);
        if (name && !json_object_get(obj, name)) {
            json_t *v = nc_json_string_js(h->value, h->value_len, 0);
            if (v) json_object_set_new(obj, name, v);
        }
        free(name);
    }
    mm->headers = obj;
    return obj;
}

static const nc_ctx_item *ctx_find(const nc_msg *m, nc_ctx_key key) {
    for (size_t i = 0; m && i < m->nctx; i++)
        if (m->ctx[i].key == (int)key) return &m->ctx[i];
    return NULL;
}

int nc_msg_ctx_int(const nc_msg *m, nc_ctx_key key, int64_t *out) {
    const nc_ctx_item *c = ctx_find(m, key);
    if (!c || c->str) return NC_ENOENT;
    if (out) *out = c->num;
    return 0;
}

const char *nc_msg_ctx_str(const nc_msg *m, nc_ctx_key key, size_t *len) {
    const nc_ctx_item *c = ctx_find(m, key);
    if (!c || !c->str) return NULL;
    if (len) *len = c->len;
    return c->str;
}
