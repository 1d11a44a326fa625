/* FileDescriptorProto bytes (google/protobuf/descriptor.proto) of the files nestc parsed itself, for server
 * reflection. Written field by field with a small protobuf writer: descriptor.proto is not one of the
 * files the codec loads, and only a handful of its fields carry what a reflection client needs to call a
 * method (names, numbers, labels, types, nesting, oneofs, map entries, services). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"
#include "transport/grpc/grpc_descriptor.h"

/* ---- a protobuf writer -------------------------------------------------------------------------------- */

static int w_varint(nc_buf *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return nc_buf_append(b, t, n);
}

static int w_tag(nc_buf *b, uint32_t field, int wt) {
    return w_varint(b, ((uint64_t)field << 3) | (uint64_t)wt);
}

static int w_int(nc_buf *b, uint32_t field, int64_t v) {
    return w_tag(b, field, 0) || w_varint(b, (uint64_t)v) ? NC_ENOMEM : 0;
}

static int w_bytes(nc_buf *b, uint32_t field, const void *p, size_t n) {
    return w_tag(b, field, 2) || w_varint(b, n) || nc_buf_append(b, p, n) ? NC_ENOMEM : 0;
}

static int w_str(nc_buf *b, uint32_t field, const char *s) {
    return w_bytes(b, field, s, strlen(s));
}

/* A nested message built in `sub`, written as field `field` of b; sub is freed. */
static int w_sub(nc_buf *b, uint32_t field, nc_buf *sub, int r) {
    if (!r) r = w_bytes(b, field, sub->data ? sub->data : "", sub->len);
    nc_buf_free(sub);
    return r;
}

/* ".pkg.Name": type references in descriptors are fully qualified with a leading dot. */
static int w_typename(nc_buf *b, uint32_t field, const char *full) {
    size_t n = strlen(full);
    char *t = malloc(n + 2);
    if (!t) return NC_ENOMEM;
    t[0] = '.';
    memcpy(t + 1, full, n + 1);
    int r = w_str(b, field, t);
    free(t);
    return r;
}

/* ---- descriptors ----------------------------------------------------------------------------------------
 */

static const char *last_part(const char *full) {
    const char *d = strrchr(full, '.');
    return d ? d + 1 : full;
}

/* Definitions are found by scope in the pool's tables, which are sorted by full name: the ones declared
 * in scope S are among the names that start with "S.", one contiguous range, found by binary search (a scan
 * per message was quadratic: 40,000 messages took minutes). */
typedef const char *(*name_at_fn)(const nc_pb_pool *pl, size_t i);

static const char *msg_name(const nc_pb_pool *pl, size_t i) {
    const nc_pb_msg *m = nc_proto_message_at(pl, i);
    return m ? m->full_name : NULL;
}

static const char *enum_name(const nc_pb_pool *pl, size_t i) {
    const nc_pb_enum *e = nc_proto_enum_at(pl, i);
    return e ? e->full_name : NULL;
}

/* The first index whose name starts with the scope's prefix ("S." or "" for the root scope). */
static size_t scope_start(const nc_pb_pool *pl, name_at_fn at, const char *prefix) {
    size_t hi = 1, lo = 0;
    while (at(pl, hi - 1)) hi *= 2; /* past the end: the count is below hi */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *n = at(pl, mid);
        if (n && strcmp(n, prefix) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* "S." for scope S, "" for the root; NULL when out of memory. */
static char *scope_prefix(const char *scope) {
    size_t n = strlen(scope);
    char *p = malloc(n + 2);
    if (!p) return NULL;
    memcpy(p, scope, n);
    p[n] = n ? '.' : '\0';
    p[n + 1] = '\0';
    return p;
}

/* protoc's name for a map field's entry message: the field name in CamelCase, then "Entry". */
static char *map_entry_name(const char *field) {
    size_t n = strlen(field);
    char *e = malloc(n + 6);
    if (!e) return NULL;
    size_t j = 0;
    int up = 1;
    for (size_t i = 0; i < n; i++) {
        if (field[i] == '_') {
            up = 1;
            continue;
        }
        e[j++] = (char)(up && field[i] >= 'a' && field[i] <= 'z' ? field[i] - 32 : field[i]);
        up = 0;
    }
    memcpy(e + j, "Entry", 6);
    return e;
}

/* Whether oneof k of m is the synthetic one of a proto3 optional field: "_" + the name of its one field. */
static int synthetic(const nc_pb_msg *m, int k, int proto3) {
    if (!proto3 || m->oneofs[k].name[0] != '_') return 0;
    int members = 0, named = 0;
    for (size_t i = 0; i < m->nfields; i++)
        if (m->fields[i].oneof == k) {
            members++;
            named = !strcmp(m->oneofs[k].name + 1, m->fields[i].name);
        }
    return members == 1 && named;
}

/* The index a oneof gets in the descriptor: the real ones first, then the synthetic ones (descriptor.proto
 * requires it: protoc and Go's protodesc refuse synthetic oneofs before real ones), each group in
 * declaration order. */
static int oneof_index(const nc_pb_msg *m, int k, int proto3) {
    int syn = synthetic(m, k, proto3), idx = 0;
    for (int j = 0; j < (int)m->noneofs; j++) {
        int sj = synthetic(m, j, proto3);
        if (syn ? (!sj || j < k) : (!sj && j < k)) idx++;
    }
    return idx;
}

/* One FieldDescriptorProto: type, type_name and label from the parsed field (a map as its entry). */
static int w_field(nc_buf *b, const nc_pb_msg *m, const nc_pb_field *f, int proto3) {
    nc_buf s = NC_BUF_INIT;
    int r = w_str(&s, 1, f->name) || w_int(&s, 3, f->number) || w_int(&s, 4, f->label);
    if (!r && f->is_map) {
        char *en = map_entry_name(f->name);
        size_t n = en ? strlen(m->full_name) + strlen(en) + 2 : 0;
        char *full = en ? malloc(n) : NULL;
        if (full) snprintf(full, n, "%s.%s", m->full_name, en);
        r = !full || w_int(&s, 5, NC_PB_MESSAGE) || w_typename(&s, 6, full) ? NC_ENOMEM : 0;
        free(en);
        free(full);
    } else if (!r) {
        r = w_int(&s, 5, f->type);
        if (!r && f->type == NC_PB_MESSAGE && f->msg) r = w_typename(&s, 6, f->msg->full_name);
        if (!r && f->type == NC_PB_ENUM && f->en) r = w_typename(&s, 6, f->en->full_name);
    }
    if (!r && f->oneof >= 0) r = w_int(&s, 9, oneof_index(m, f->oneof, proto3));
    /* FieldOptions.packed where it differs from the syntax's default */
    if (!r && f->label == NC_PB_REPEATED && !f->is_map && f->type != NC_PB_STRING && f->type != NC_PB_BYTES &&
        f->type != NC_PB_MESSAGE && f->packed != proto3) {
        nc_buf o = NC_BUF_INIT;
        r = w_sub(&s, 8, &o, w_int(&o, 2, f->packed));
    }
    /* proto3 optional: the field is the only member of its synthetic oneof "_name" */
    if (!r && f->oneof >= 0 && synthetic(m, f->oneof, proto3)) r = w_int(&s, 17, 1);
    return w_sub(b, 2, &s, r);
}

/* The entry message protoc makes of a map field: key = 1, value = 2, option map_entry = true. */
static int w_map_entry(nc_buf *b, const nc_pb_field *f) {
    nc_buf s = NC_BUF_INIT, k = NC_BUF_INIT, v = NC_BUF_INIT, o = NC_BUF_INIT;
    char *en = map_entry_name(f->name);
    if (!en) return NC_ENOMEM;
    int r = w_str(&s, 1, en);
    free(en);
    r = r || w_str(&k, 1, "key") || w_int(&k, 3, 1) || w_int(&k, 4, NC_PB_OPTIONAL) ||
        w_int(&k, 5, f->key_type);
    r = w_sub(&s, 2, &k, r);
    r = r || w_str(&v, 1, "value") || w_int(&v, 3, 2) || w_int(&v, 4, NC_PB_OPTIONAL) ||
        w_int(&v, 5, f->type);
    if (!r && f->type == NC_PB_MESSAGE && f->msg) r = w_typename(&v, 6, f->msg->full_name);
    if (!r && f->type == NC_PB_ENUM && f->en) r = w_typename(&v, 6, f->en->full_name);
    r = w_sub(&s, 2, &v, r);
    r = w_sub(&s, 7, &o, r || w_int(&o, 7, 1)); /* MessageOptions.map_entry */
    return w_sub(b, 3, &s, r ? NC_ENOMEM : 0);
}

static int w_enum(nc_buf *b, uint32_t field, const nc_pb_enum *e) {
    nc_buf s = NC_BUF_INIT;
    int r = w_str(&s, 1, last_part(e->full_name)), alias = 0;
    for (size_t i = 0; !r && i < e->nvalues; i++) {
        nc_buf v = NC_BUF_INIT;
        r = w_sub(&s, 2, &v, w_str(&v, 1, e->values[i].name) || w_int(&v, 2, e->values[i].number));
        for (size_t k = 0; k < i; k++)
            if (e->values[k].number == e->values[i].number) alias = 1;
    }
    if (!r && alias) { /* two names for one number: EnumOptions.allow_alias, or strict readers refuse it */
        nc_buf o = NC_BUF_INIT;
        r = w_sub(&s, 3, &o, w_int(&o, 2, 1));
    }
    return w_sub(b, field, &s, r);
}

static int w_message(nc_buf *b, uint32_t field, const nc_pb_pool *pl, const nc_pb_msg *m, int proto3);

/* The messages (field mfield) and enums (efield) declared directly in `scope` by file `file`. */
static int w_scope(nc_buf *b, const nc_pb_pool *pl, const char *scope, uint32_t file, uint32_t mfield,
                   uint32_t efield, int proto3) {
    char *prefix = scope_prefix(scope);
    if (!prefix) return NC_ENOMEM;
    size_t pn = strlen(prefix);
    int r = 0;
    const nc_pb_msg *n;
    for (size_t i = scope_start(pl, msg_name, prefix);
         !r && (n = nc_proto_message_at(pl, i)) && !strncmp(n->full_name, prefix, pn); i++)
        if (n->file == file && !strchr(n->full_name + pn, '.')) r = w_message(b, mfield, pl, n, proto3);
    const nc_pb_enum *e;
    for (size_t i = scope_start(pl, enum_name, prefix);
         !r && (e = nc_proto_enum_at(pl, i)) && !strncmp(e->full_name, prefix, pn); i++)
        if (e->file == file && !strchr(e->full_name + pn, '.')) r = w_enum(b, efield, e);
    free(prefix);
    return r;
}

static int w_message(nc_buf *b, uint32_t field, const nc_pb_pool *pl, const nc_pb_msg *m, int proto3) {
    nc_buf s = NC_BUF_INIT;
    int r = w_str(&s, 1, last_part(m->full_name));
    for (size_t i = 0; !r && i < m->nfields; i++) r = w_field(&s, m, &m->fields[i], proto3);
    for (size_t i = 0; !r && i < m->nfields; i++)
        if (m->fields[i].is_map) r = w_map_entry(&s, &m->fields[i]);
    if (!r) r = w_scope(&s, pl, m->full_name, m->file, 3, 4, proto3); /* nested messages and enums */
    for (int pass = 0; pass < 2; pass++) /* the real oneofs, then the synthetic ones (oneof_index) */
        for (size_t i = 0; !r && i < m->noneofs; i++) {
            if (synthetic(m, (int)i, proto3) != pass) continue;
            nc_buf o = NC_BUF_INIT;
            r = w_sub(&s, 8, &o, w_str(&o, 1, m->oneofs[i].name));
        }
    return w_sub(b, field, &s, r);
}

static int w_service(nc_buf *b, const nc_pb_service *svc) {
    nc_buf s = NC_BUF_INIT;
    int r = w_str(&s, 1, last_part(svc->full_name));
    for (size_t i = 0; !r && i < svc->nmethods; i++) {
        const nc_pb_method *m = &svc->methods[i];
        nc_buf x = NC_BUF_INIT;
        int q = w_str(&x, 1, m->name) || w_typename(&x, 2, m->input->full_name) ||
                w_typename(&x, 3, m->output->full_name);
        if (!q && m->client_stream) q = w_int(&x, 5, 1);
        if (!q && m->server_stream) q = w_int(&x, 6, 1);
        r = w_sub(&s, 2, &x, q ? NC_ENOMEM : 0);
    }
    return w_sub(b, 6, &s, r);
}

int nc_grpc_file_descriptor(const nc_pb_pool *pl, size_t fi, nc_buf *out) {
    const nc_pb_file *f = nc_proto_file_at(pl, fi);
    if (!f) return NC_EINVAL;
    int r = w_str(out, 1, f->name);
    if (!r && f->package[0]) r = w_str(out, 2, f->package);
    for (size_t i = 0; !r && i < f->ndeps; i++) r = w_str(out, 3, f->deps[i]);
    if (!r) r = w_scope(out, pl, f->package, (uint32_t)fi, 4, 5, f->proto3); /* top-level definitions */
    const nc_pb_service *s;
    for (size_t i = 0; !r && (s = nc_proto_service_at(pl, i)); i++)
        if (s->file == fi) r = w_service(out, s);
    if (!r) r = w_str(out, 12, f->proto3 ? "proto3" : "proto2");
    return r ? NC_ENOMEM : 0;
}

/* The file of a symbol: a service, a method ("pkg.Svc.Method"), a message (nested too) or an enum. */
long nc_grpc_symbol_file(const nc_pb_pool *pl, const char *sym) {
    if (sym[0] == '.') sym++;
    const nc_pb_msg *m = nc_proto_message(pl, sym);
    if (m) return m->file;
    const nc_pb_enum *e = nc_proto_enum(pl, sym);
    if (e) return e->file;
    const nc_pb_service *s = nc_proto_service(pl, sym);
    if (s) return s->file;
    const char *dot = strrchr(sym, '.');
    if (dot) {
        char *svc = strndup(sym, (size_t)(dot - sym));
        s = svc ? nc_proto_service(pl, svc) : NULL;
        free(svc);
        if (s && nc_proto_method(s, dot + 1)) return s->file;
    }
    return -1;
}
