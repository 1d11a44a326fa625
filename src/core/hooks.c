/* Hooks: installed sets, per-message records, and the hook points the server and client cores call
 * (hooks_internal.h). Nothing here runs unless a set is installed. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/client_internal.h"
#include "core/hooks_internal.h"
#include "core/server_internal.h"
#include "nestc/error.h"
#include "util/abi.h"

/* Records kept per table for reuse: the hooked path allocates nothing once warm. */
#define REC_POOL_MAX 256

/* ids are unique per process, so an id never names a set of another server or an older set. */
static atomic_int next_id;

/* ---- sets and tables ----------------------------------------------------------------------------- */

static unsigned bits_of(const nc_hook_set *h) {
    unsigned b = 0;
    if (h->side == NC_HOOK_SERVER) {
        const nc_server_hooks *s = &h->s;
        b |= s->on_dispatch ? NC_HK_DISPATCH : 0;
        b |= s->before_handler ? NC_HK_BEFORE : 0;
        b |= s->on_handler_start ? NC_HK_START : 0;
        b |= s->on_handler_return ? NC_HK_RETURN : 0;
        b |= s->on_reply ? NC_HK_REPLY : 0;
        b |= s->on_settle ? NC_HK_SETTLE : 0;
        b |= s->on_finish ? NC_HK_FINISH : 0;
    } else {
        const nc_client_hooks *c = &h->c;
        b |= c->on_submit ? NC_HK_SUBMIT : 0;
        b |= c->on_reply ? NC_HK_CREPLY : 0;
        b |= c->should_retry ? NC_HK_RETRY : 0;
        b |= c->on_call_end ? NC_HK_END : 0;
    }
    return b;
}

static void set_unref(nc_hook_set *h) {
    if (--h->refs > 0) return;
    void (*release)(void *) = h->side == NC_HOOK_SERVER ? h->s.release : h->c.release;
    if (release && h->primary) release(h->user);
    free(h);
}

static void table_unref(nc_hook_table *t) {
    if (--t->refs > 0) return;
    for (int i = 0; i < t->n; i++) set_unref(t->sets[i]);
    while (t->pool) {
        nc_hook_rec *r = t->pool;
        t->pool = r->next;
        free(r);
    }
    free(t);
}

/* A new table holding the sets of `old` (may be NULL) but `skip`, plus `add` (may be NULL). */
static nc_hook_table *table_build(const nc_hook_table *old, const nc_hook_set *skip, nc_hook_set *add) {
    nc_hook_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->refs = 1;
    for (int i = 0; old && i < old->n; i++)
        if (old->sets[i] != skip) t->sets[t->n++] = old->sets[i];
    if (add) t->sets[t->n++] = add;
    for (int i = 0; i < t->n; i++) {
        t->sets[i]->refs++;
        t->any |= bits_of(t->sets[i]);
    }
    return t;
}

/* Installs `t` as the owner's table (NULL when it is empty), dropping the owner's reference to the old. */
static void table_swap(nc_hook_table **tp, nc_hook_table *t) {
    nc_hook_table *old = *tp;
    if (t && t->n == 0) {
        table_unref(t);
        t = NULL;
    }
    *tp = t;
    if (old) table_unref(old);
}

/* The first layouts (util/abi.h): struct_size 0 means these; a later header that appends callbacks
 * replaces sizeof by offsetof(the struct, the first new field). */
#define NC_SERVER_HOOKS_BASE sizeof(nc_server_hooks)
#define NC_CLIENT_HOOKS_BASE sizeof(nc_client_hooks)

static nc_hook_set *set_new(nc_hook_side side, const void *hooks, void *user, int primary, int *err) {
    size_t given = *(const size_t *)hooks; /* both structs begin with struct_size */
    nc_hook_set *h = calloc(1, sizeof *h);
    *err = NC_ENOMEM;
    if (!h) return NULL;
    h->side = side;
    h->user = user;
    h->primary = primary;
    /* a struct from an older header is shorter: the callbacks it lacks stay NULL */
    if (side == NC_HOOK_SERVER) {
        *err = nc_abi_copy_in(&h->s, sizeof h->s, hooks, given, NC_SERVER_HOOKS_BASE);
        h->s.struct_size = sizeof h->s; /* what the copy holds (worker copies read it again) */
    } else {
        *err = nc_abi_copy_in(&h->c, sizeof h->c, hooks, given, NC_CLIENT_HOOKS_BASE);
        h->c.struct_size = sizeof h->c;
    }
    if (*err) {
        free(h);
        return NULL;
    }
    return h;
}

int nc_hooks__add(nc_hook_table **tp, nc_hook_side side, const void *hooks, void *user) {
    if (!tp || !hooks) return NC_EINVAL;
    if (*tp && (*tp)->n >= NC_HOOKS_MAX) return NC_ETOOBIG;
    int err;
    nc_hook_set *h = set_new(side, hooks, user, 1, &err);
    if (!h) return err;
    h->id = atomic_fetch_add(&next_id, 1) + 1;
    nc_hook_table *t = table_build(*tp, NULL, h);
    if (!t) {
        free(h);
        return NC_ENOMEM;
    }
    table_swap(tp, t);
    return h->id;
}

int nc_hooks__remove(nc_hook_table **tp, int id) {
    nc_hook_table *old = tp ? *tp : NULL;
    nc_hook_set *h = NULL;
    for (int i = 0; old && i < old->n && !h; i++)
        if (old->sets[i]->id == id) h = old->sets[i];
    if (!h) return NC_EINVAL;
    nc_hook_table *t = table_build(old, h, NULL);
    if (!t) {
        /* out of memory: the set stays installed but silent, so removal still means "no new calls" */
        memset(&h->s, 0, sizeof h->s);
        memset(&h->c, 0, sizeof h->c);
        return 0;
    }
    table_swap(tp, t);
    return 0;
}

void nc_hooks__drop(nc_hook_table **tp) {
    if (tp && *tp) table_swap(tp, NULL);
}

int nc_hooks__copy(nc_hook_table **dst, const nc_hook_table *src) {
    if (!src) return 0;
    nc_hook_table *t = calloc(1, sizeof *t);
    if (!t) return NC_ENOMEM;
    t->refs = 1;
    t->any = src->any;
    for (int i = 0; i < src->n; i++) {
        const nc_hook_set *o = src->sets[i];
        int err;
        nc_hook_set *h = set_new(
            o->side, o->side == NC_HOOK_SERVER ? (const void *)&o->s : (const void *)&o->c, o->user, 0, &err);
        if (!h) {
            table_unref(t);
            return NC_ENOMEM;
        }
        h->id = o->id; /* the primary's id: nc_server_remove_hooks on a worker names the same set */
        h->refs = 1;
        t->sets[t->n++] = h;
    }
    *dst = t;
    return 0;
}

/* ---- records ------------------------------------------------------------------------------------- */

static nc_hook_rec *rec_new(nc_hook_table *t, nc_hook_side side) {
    nc_hook_rec *r = t->pool;
    if (r) {
        t->pool = r->next;
        t->npool--;
    } else if (!(r = malloc(sizeof *r))) {
        return NULL;
    }
    memset(r, 0, offsetof(nc_hook_rec, slot));
    memset(r->slot, 0, (size_t)t->n * sizeof r->slot[0]);
    r->t = t;
    t->refs++;
    r->info.struct_size = sizeof r->info;
    r->info.side = side;
    r->info.priv_ = r;
    r->info.start_ns = r->info.now_ns = uv_hrtime();
    r->now_valid = 1;
    return r;
}

static void rec_free(nc_hook_rec *r) {
    nc_hook_table *t = r->t;
    json_decref(r->metadata);
    if (t->npool < REC_POOL_MAX) {
        r->next = t->pool;
        t->pool = r;
        t->npool++;
    } else {
        free(r);
    }
    table_unref(t);
}

/* Points info.state at set i's slot and returns the set. */
static inline nc_hook_set *at(nc_hook_rec *r, int i) {
    r->info.state = &r->slot[i];
    return r->t->sets[i];
}

/* A hook point other than the first and the last: the clock is read only if a hook asks (nc_hook_now),
 * since a clock read costs as much as the rest of a hook point (about 25 ns, 90 ns on a VM's kvm-clock). */
static inline void stamp(nc_hook_rec *r) {
    r->now_valid = 0;
}

/* The first and last points: durations need these. */
static inline void stamp_now(nc_hook_rec *r) {
    r->info.now_ns = uv_hrtime();
    r->now_valid = 1;
}

uint64_t nc_hook_now(nc_hook_info *i) {
    nc_hook_rec *r = i->priv_;
    if (!r->now_valid) {
        i->now_ns = uv_hrtime();
        r->now_valid = 1;
    }
    return i->now_ns;
}

/* ---- server -------------------------------------------------------------------------------------- */

nc_hook_rec *nc_hooks__dispatch(nc_hook_table *t, nc_server *s, const nc_msg *m, nc_request *req,
                                const char *id, size_t id_len, int has_handler) {
    nc_hook_rec *r = rec_new(t, NC_HOOK_SERVER);
    if (!r) return NULL;
    nc_hook_info *i = &r->info;
    i->server = s;
    i->msg = m;
    /* the fields, not the accessors: this runs for every message */
    i->transport = m->transport;
    i->route = m->route ? m->route : "";
    i->pattern = m->pattern_text;
    i->is_event = m->is_event;
    i->has_handler = has_handler;
    i->request = i->is_event ? NULL : req;
    i->id = i->is_event ? NULL : id;
    i->id_len = i->is_event ? 0 : id_len;
    i->headers = NULL; /* the server reads headers from the message: nc_msg_header(i->msg, ...) */
    i->attempt = 1;
    if (t->any & NC_HK_DISPATCH)
        for (int k = 0; k < t->n; k++) {
            nc_hook_set *h = at(r, k);
            if (h->s.on_dispatch) h->s.on_dispatch(h->user, i);
        }
    return r;
}

int nc_hooks__before_handler(nc_hook_rec *r) {
    if (!(r->t->any & NC_HK_BEFORE)) return 0;
    stamp(r);
    for (int k = 0; k < r->t->n; k++) {
        nc_hook_set *h = at(r, k);
        int e = h->s.before_handler ? h->s.before_handler(h->user, &r->info) : 0;
        if (e && !r->refusal) r->refusal = e > 0 ? NC_EREFUSED : e; /* a positive return is no nc_err */
    }
    return r->refusal;
}

void nc_hooks__handler_start(nc_hook_rec *r) {
    r->in_handler = 1;
    if (!(r->t->any & NC_HK_START)) return;
    stamp(r);
    for (int k = 0; k < r->t->n; k++) {
        nc_hook_set *h = at(r, k);
        if (h->s.on_handler_start) h->s.on_handler_start(h->user, &r->info);
    }
}

static void run_return(nc_hook_rec *r) {
    r->returned = 1;
    if (!(r->t->any & NC_HK_RETURN)) return;
    stamp(r);
    for (int k = r->t->n - 1; k >= 0; k--) {
        nc_hook_set *h = at(r, k);
        if (h->s.on_handler_return) h->s.on_handler_return(h->user, &r->info);
    }
}

void nc_hooks__handler_return(nc_hook_rec *r) {
    r->in_handler = 0;
    if (r->finished) {
        rec_free(r); /* finished inside the handler: on_handler_return and on_finish have run */
        return;
    }
    if (!r->returned) run_return(r);
}

void nc_hooks__reply(nc_hook_rec *r, nc_hook_reply kind, const char *json, size_t len, int final) {
    if (kind == NC_HOOK_REPLY_ERROR) r->err_replied = 1;
    if (!(r->t->any & NC_HK_REPLY)) return;
    stamp(r);
    for (int k = 0; k < r->t->n; k++) {
        nc_hook_set *h = at(r, k);
        if (h->s.on_reply) h->s.on_reply(h->user, &r->info, kind, json, len, final);
    }
}

void nc_hooks__settle(nc_hook_rec *r, nc_settle how) {
    if (!(r->t->any & NC_HK_SETTLE)) return;
    stamp(r);
    for (int k = 0; k < r->t->n; k++) {
        nc_hook_set *h = at(r, k);
        if (h->s.on_settle) h->s.on_settle(h->user, &r->info, how);
    }
}

void nc_hooks__event_done(nc_hook_rec *r, int settles, int matched) {
    if (settles) nc_hooks__settle(r, matched ? NC_SETTLE_ACK : NC_SETTLE_REJECT);
    nc_hooks__finish(r, 0);
}

void nc_hooks__keep(nc_hook_rec *r, const nc_msg *m) {
    /* the stack message and the packet it borrowed from go away when the handlers return */
    r->info.msg = m;
    r->info.route = m->route ? m->route : "";
    r->info.pattern = m->pattern_text;
    r->info.headers = NULL; /* built on demand from the message (nc_msg_headers) */
}

void nc_hooks__finish(nc_hook_rec *r, int why) {
    int outcome = r->refusal             ? r->refusal
                  : !r->info.has_handler ? NC_ENOHANDLER
                  : why                  ? why
                  : r->err_replied       ? NC_EREMOTE
                                         : 0;
    if (r->in_handler && !r->returned) run_return(r);
    if (r->t->any & NC_HK_FINISH) {
        stamp_now(r);
        for (int k = r->t->n - 1; k >= 0; k--) {
            nc_hook_set *h = at(r, k);
            if (h->s.on_finish) h->s.on_finish(h->user, &r->info, outcome);
        }
    }
    /* the message is gone: nothing may read it from here on */
    r->info.msg = NULL;
    r->info.request = NULL;
    if (r->in_handler)
        r->finished = 1; /* handler_return, still to come, releases r */
    else
        rec_free(r);
}

/* ---- client -------------------------------------------------------------------------------------- */

int nc_hooks__submit(nc_hook_table *t, nc_hook_rec **out, nc_client *c, const char *transport,
                     const char *route, const char *pattern, int is_event, const char *id, size_t id_len,
                     json_t **headers, const json_t *metadata) {
    nc_hook_rec *r = *out = rec_new(t, NC_HOOK_CLIENT);
    if (!r) return 0;
    nc_hook_info *i = &r->info;
    i->client = c;
    i->transport = transport;
    i->route = route ? route : "";
    i->pattern = pattern;
    i->is_event = is_event;
    i->id = is_event ? NULL : id;
    i->id_len = is_event ? 0 : id_len;
    i->headers = *headers;
    i->metadata = metadata;
    i->attempt = 1;
    r->headers = headers;
    if (!(t->any & NC_HK_SUBMIT)) return 0;
    r->in_submit = 1;
    for (int k = 0; k < t->n; k++) {
        nc_hook_set *h = at(r, k);
        int e = h->c.on_submit ? h->c.on_submit(h->user, i) : 0;
        if (e && !r->refusal) r->refusal = e > 0 ? NC_EREFUSED : e;
    }
    r->in_submit = 0;
    return r->refusal;
}

void nc_hooks__client_reply(nc_hook_rec *r, const json_t *value, int final) {
    r->delivered = 1;
    if (!(r->t->any & NC_HK_CREPLY)) return;
    stamp(r);
    for (int k = 0; k < r->t->n; k++) {
        nc_hook_set *h = at(r, k);
        if (h->c.on_reply) h->c.on_reply(h->user, &r->info, value, final);
    }
}

int nc_hooks__should_retry(nc_hook_rec *r, int err, int *delay_ms) {
    if (!(r->t->any & NC_HK_RETRY) || r->delivered || r->info.is_event || r->refusal) return 0;
    stamp(r);
    for (int k = 0; k < r->t->n; k++) {
        nc_hook_set *h = at(r, k);
        int d = 0;
        if (h->c.should_retry && h->c.should_retry(h->user, &r->info, err, &d)) {
            *delay_ms = d > 0 ? d : 0;
            r->info.attempt++;
            return 1;
        }
    }
    return 0;
}

void nc_hooks__call_end(nc_hook_rec *r, int err) {
    if (r->t->any & NC_HK_END) {
        stamp_now(r);
        for (int k = r->t->n - 1; k >= 0; k--) {
            nc_hook_set *h = at(r, k);
            if (h->c.on_call_end) h->c.on_call_end(h->user, &r->info, err);
        }
    }
    rec_free(r);
}

/* ---- setters for on_submit ----------------------------------------------------------------------- */

static nc_hook_rec *submitting(nc_hook_info *i) {
    nc_hook_rec *r = i ? i->priv_ : NULL;
    return r && r->in_submit ? r : NULL;
}

int nc_hook_set_header(nc_hook_info *i, const char *name, const char *value) {
    nc_hook_rec *r = submitting(i);
    if (!r || !name || !value) return NC_EINVAL;
    if (!*r->headers && !(*r->headers = json_object())) return NC_ENOMEM;
    json_t *v = json_string(value); /* NULL: not UTF-8 */
    if (!v || json_object_set_new(*r->headers, name, v)) return NC_EINVAL;
    i->headers = *r->headers;
    return 0;
}

int nc_hook_set_metadata(nc_hook_info *i, const char *key, json_t *value) {
    nc_hook_rec *r = submitting(i);
    if (!r || !key || !value) {
        json_decref(value);
        return NC_EINVAL;
    }
    if (!r->metadata) {
        /* the caller's object is borrowed: a shallow copy takes the new key */
        r->metadata = json_is_object(i->metadata) ? json_copy((json_t *)i->metadata) : json_object();
        if (!r->metadata) {
            json_decref(value);
            return NC_ENOMEM;
        }
        i->metadata = r->metadata;
    }
    return json_object_set_new(r->metadata, key, value) ? NC_ENOMEM : 0;
}

/* ---- the public calls ---------------------------------------------------------------------------- */

int nc_server_add_hooks(nc_server *s, const nc_server_hooks *hooks, void *user) {
    if (!s || !hooks) return NC_EINVAL;
    if (s->nworkers) return NC_ESTATE; /* the workers run on their own threads with their copies */
    return nc_hooks__add(&s->hooks, NC_HOOK_SERVER, hooks, user);
}

int nc_server_remove_hooks(nc_server *s, int id) {
    if (!s) return NC_EINVAL;
    if (s->nworkers) return NC_ESTATE;
    return nc_hooks__remove(&s->hooks, id);
}

int nc_client_add_hooks(nc_client *c, const nc_client_hooks *hooks, void *user) {
    if (!c || !hooks) return NC_EINVAL;
    return nc_hooks__add(nc_client__hooks(c), NC_HOOK_CLIENT, hooks, user);
}

int nc_client_remove_hooks(nc_client *c, int id) {
    return c ? nc_hooks__remove(nc_client__hooks(c), id) : NC_EINVAL;
}
