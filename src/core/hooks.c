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
#include "util/clock.h"

/* Records kept per table for reuse: the hooked path allocates nothing once warm. */
#define REC_POOL_MAX 256

/* ids are unique per process, so an id never names a set of another server or an older set. */
static atomic_int next_id;

/* ---- sets and tables ----------------------------------------------------------------------------- */

/* The callback of point p in a set, NULL when it has none. */
static void *cb_of(const nc_hook_set *h, int p) {
    const nc_server_hooks *s = &h->s;
    const nc_client_hooks *c = &h->c;
    int srv = h->side == NC_HOOK_SERVER;
    switch (p) {
    case NC_HP_DISPATCH:
        return srv ? (void *)s->on_dispatch : NULL;
    case NC_HP_BEFORE:
        return srv ? (void *)s->before_handler : NULL;
    case NC_HP_START:
        return srv ? (void *)s->on_handler_start : NULL;
    case NC_HP_RETURN:
        return srv ? (void *)s->on_handler_return : NULL;
    case NC_HP_REPLY:
        return srv ? (void *)s->on_reply : NULL;
    case NC_HP_SETTLE:
        return srv ? (void *)s->on_settle : NULL;
    case NC_HP_FINISH:
        return srv ? (void *)s->on_finish : NULL;
    case NC_HP_SUBMIT:
        return srv ? NULL : (void *)c->on_submit;
    case NC_HP_CREPLY:
        return srv ? NULL : (void *)c->on_reply;
    case NC_HP_RETRY:
        return srv ? NULL : (void *)c->should_retry;
    default:
        return srv ? NULL : (void *)c->on_call_end;
    }
}

/* Closing points run the sets in the reverse of the order they were added. */
static int closing(int p) {
    return p == NC_HP_RETURN || p == NC_HP_FINISH || p == NC_HP_END;
}

/* Fills the per-point lists from t->sets. */
static void table_index(nc_hook_table *t) {
    for (int p = 0; p < NC_HP_COUNT; p++) {
        t->np[p] = 0;
        for (int j = 0; j < t->n; j++) {
            int k = closing(p) ? t->n - 1 - j : j;
            if (cb_of(t->sets[k], p)) t->pt[p][t->np[p]++] = (nc_hook_call){t->sets[k], k};
        }
    }
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
    for (int i = 0; i < t->n; i++) t->sets[i]->refs++;
    table_index(t);
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

/* What a silenced set's callbacks become (the tables list a set by its callbacks, so they stay set). */
static void q_info(void *u, nc_hook_info *i) {
    (void)u, (void)i;
}
static int q_intercept(void *u, nc_hook_info *i) {
    (void)u, (void)i;
    return 0;
}
static void q_reply(void *u, nc_hook_info *i, nc_hook_reply k, const char *j, size_t l, int f) {
    (void)u, (void)i, (void)k, (void)j, (void)l, (void)f;
}
static void q_settle(void *u, nc_hook_info *i, nc_settle how) {
    (void)u, (void)i, (void)how;
}
static void q_done(void *u, nc_hook_info *i, int e) {
    (void)u, (void)i, (void)e;
}
static void q_creply(void *u, nc_hook_info *i, const json_t *v, int f) {
    (void)u, (void)i, (void)v, (void)f;
}
static int q_retry(void *u, nc_hook_info *i, int e, int *d) {
    (void)u, (void)i, (void)e, (void)d;
    return 0;
}

static void silence(nc_hook_set *h) {
    nc_server_hooks *s = &h->s;
    nc_client_hooks *c = &h->c;
#define Q(f, q) f = f ? q : NULL
    Q(s->on_dispatch, q_info);
    Q(s->before_handler, q_intercept);
    Q(s->on_handler_start, q_info);
    Q(s->on_handler_return, q_info);
    Q(s->on_reply, q_reply);
    Q(s->on_settle, q_settle);
    Q(s->on_finish, q_done);
    Q(c->on_submit, q_intercept);
    Q(c->on_reply, q_creply);
    Q(c->should_retry, q_retry);
    Q(c->on_call_end, q_done);
#undef Q
    s->release = NULL;
    c->release = NULL;
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
        silence(h);
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
    table_index(t);
    *dst = t;
    return 0;
}

/* ---- records ------------------------------------------------------------------------------------- */

/* Monotonic nanoseconds: CLOCK_MONOTONIC's (uv_hrtime's), read from the TSC where it can be
 * (util/clock.h): a hook point's clock read costs about 10 ns instead of clock_gettime's 25-35. */
static inline uint64_t clock_ns(void) {
    return nc_clock_ns();
}

/* A record with its flags clear; the caller fills info. */
static inline nc_hook_rec *rec_new(nc_hook_table *t) {
    nc_hook_rec *r = t->pool;
    if (r) {
        t->pool = r->next;
        t->npool--;
    } else if (!(r = malloc(sizeof *r))) {
        return NULL;
    }
    r->t = t;
    t->refs++;
    r->refusal = r->err_replied = r->delivered = r->in_submit = r->holds = r->hold_err = 0;
    r->owner = NULL;
    r->in_handler = r->returned = r->finished = 0;
    r->now_valid = 1;
    r->headers = NULL;
    r->metadata = NULL;
    memset(r->slot, 0, sizeof r->slot); /* a constant size: a few vector stores, no call */
    return r;
}

static void nc_hooks__rec_free(nc_hook_rec *r) {
    nc_hook_table *t = r->t;
    if (r->metadata) json_decref(r->metadata);
    if (t->npool < REC_POOL_MAX) {
        r->next = t->pool;
        t->pool = r;
        t->npool++;
    } else {
        free(r);
    }
    table_unref(t);
}

/* Runs point p's callbacks: `call` is the callback's invocation, with h the set and i the info; each
 * sees its own state slot. */
#define EACH(r, p, call)                                                                                     \
    do {                                                                                                     \
        const nc_hook_call *e_ = (r)->t->pt[p], *end_ = e_ + (r)->t->np[p];                                  \
        for (; e_ < end_; e_++) {                                                                            \
            nc_hook_set *h = e_->h;                                                                          \
            nc_hook_info *i = &(r)->info;                                                                    \
            i->state = &(r)->slot[e_->k];                                                                    \
            call;                                                                                            \
        }                                                                                                    \
    } while (0)

uint64_t nc_hook_now(nc_hook_info *i) {
    nc_hook_rec *r = i->priv_;
    if (!r->now_valid) {
        i->now_ns = clock_ns();
        r->now_valid = 1;
    }
    return i->now_ns;
}

/* ---- server -------------------------------------------------------------------------------------- */

nc_hook_rec *nc_hooks__dispatch(nc_hook_table *t, nc_server *s, const nc_msg *m, nc_request *req,
                                const char *id, size_t id_len, uint64_t route_id) {
    nc_hook_rec *r = rec_new(t);
    if (!r) return NULL;
    uint64_t now = clock_ns();
    int ev = m->is_event;
    /* the fields, not the accessors; the server reads headers from the message (nc_msg_header) */
    nc_hook_info *f = &r->info; /* every field stored once, no temporary: this runs for every message */
    f->struct_size = sizeof *f;
    f->side = NC_HOOK_SERVER;
    f->server = s;
    f->client = NULL;
    f->transport = m->transport;
    f->route = m->route ? m->route : "";
    f->pattern = m->pattern_text;
    f->is_event = ev;
    f->has_handler = route_id != 0;
    r->route_id = route_id;
    f->msg = m;
    f->request = ev ? NULL : req;
    f->call = NULL;
    f->id = ev ? NULL : id;
    f->id_len = ev ? 0 : id_len;
    f->headers = NULL;
    f->metadata = NULL;
    f->start_ns = f->now_ns = now;
    f->attempt = 1;
    f->priv_ = r;
    EACH(r, NC_HP_DISPATCH, h->s.on_dispatch(h->user, i));
    return r;
}

/* A hook point other than the first and the last: the clock is read only if a hook asks (nc_hook_now),
 * since a clock read costs as much as the rest of a hook point. */
int nc_hooks__run_before(nc_hook_rec *r) {
    r->now_valid = 0;
    EACH(r, NC_HP_BEFORE, {
        int e = h->s.before_handler(h->user, i);
        if (e && !r->refusal) r->refusal = e > 0 ? NC_EREFUSED : e; /* a positive return is no nc_err */
    });
    return r->refusal;
}

static void nc_hooks__run_start(nc_hook_rec *r) {
    r->now_valid = 0;
    EACH(r, NC_HP_START, h->s.on_handler_start(h->user, i));
}

static void nc_hooks__run_return(nc_hook_rec *r) {
    r->returned = 1;
    if (!r->t->np[NC_HP_RETURN]) return;
    r->now_valid = 0;
    EACH(r, NC_HP_RETURN, h->s.on_handler_return(h->user, i));
}

void nc_hooks__handler_start(nc_hook_rec *r) {
    r->in_handler = 1;
    if (r->t->np[NC_HP_START]) nc_hooks__run_start(r);
}

void nc_hooks__handler_return(nc_hook_rec *r) {
    r->in_handler = 0;
    if (r->finished)
        nc_hooks__rec_free(r); /* finished inside the handler: on_handler_return and on_finish have run */
    else if (!r->returned && r->t->np[NC_HP_RETURN])
        nc_hooks__run_return(r); /* (r->returned is read only inside the handler: not set here) */
}

void nc_hooks__run_reply(nc_hook_rec *r, nc_hook_reply kind, const char *json, size_t len, int final) {
    r->now_valid = 0;
    EACH(r, NC_HP_REPLY, h->s.on_reply(h->user, i, kind, json, len, final));
}

void nc_hooks__settle(nc_hook_rec *r, nc_settle how) {
    if (!r->t->np[NC_HP_SETTLE]) return;
    r->now_valid = 0;
    EACH(r, NC_HP_SETTLE, h->s.on_settle(h->user, i, how));
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
    if (r->in_handler && !r->returned) nc_hooks__run_return(r);
    if (r->t->np[NC_HP_FINISH]) {
        r->info.now_ns = clock_ns(); /* the end of the message: durations need it */
        r->now_valid = 1;
        EACH(r, NC_HP_FINISH, h->s.on_finish(h->user, i, outcome));
    }
    /* the message is gone: nothing may read it from here on */
    r->info.msg = NULL;
    r->info.request = NULL;
    if (r->in_handler)
        r->finished = 1; /* handler_return, still to come, releases r */
    else
        nc_hooks__rec_free(r);
}

/* ---- client -------------------------------------------------------------------------------------- */

int nc_hooks__submit(nc_hook_table *t, nc_hook_rec **out, nc_client *c, const char *transport,
                     const char *route, const char *pattern, int is_event, const char *id, size_t id_len,
                     json_t **headers, const json_t *metadata) {
    nc_hook_rec *r = *out = rec_new(t);
    if (!r) return 0;
    uint64_t now = clock_ns();
    r->info = (nc_hook_info){.struct_size = sizeof r->info,
                             .side = NC_HOOK_CLIENT,
                             .client = c,
                             .transport = transport,
                             .route = route ? route : "",
                             .pattern = pattern,
                             .is_event = is_event,
                             .id = is_event ? NULL : id,
                             .id_len = is_event ? 0 : id_len,
                             .headers = *headers,
                             .metadata = metadata,
                             .start_ns = now,
                             .now_ns = now,
                             .attempt = 1,
                             .priv_ = r};
    r->headers = headers;
    if (!t->np[NC_HP_SUBMIT]) return 0;
    r->in_submit = 1;
    EACH(r, NC_HP_SUBMIT, {
        int e = h->c.on_submit(h->user, i);
        if (e && !r->refusal) r->refusal = e > 0 ? NC_EREFUSED : e;
    });
    r->in_submit = 0;
    return r->refusal;
}

void nc_hooks__client_reply(nc_hook_rec *r, const json_t *value, int final) {
    r->delivered = 1;
    if (!r->t->np[NC_HP_CREPLY]) return;
    r->now_valid = 0;
    EACH(r, NC_HP_CREPLY, h->c.on_reply(h->user, i, value, final));
}

int nc_hooks__should_retry(nc_hook_rec *r, int err, int *delay_ms) {
    /* a call a hold failed (hold_err) was never sent: a resend would bypass the set that held it */
    if (!r->t->np[NC_HP_RETRY] || r->delivered || r->info.is_event || r->refusal || r->hold_err) return 0;
    r->now_valid = 0;
    EACH(r, NC_HP_RETRY, {
        int d = 0;
        if (h->c.should_retry(h->user, i, err, &d)) {
            *delay_ms = d > 0 ? d : 0;
            r->info.attempt++;
            return 1;
        }
    });
    return 0;
}

void nc_hooks__call_end(nc_hook_rec *r, int err) {
    if (r->t->np[NC_HP_END]) {
        r->info.now_ns = clock_ns();
        r->now_valid = 1;
        EACH(r, NC_HP_END, h->c.on_call_end(h->user, i, err));
    }
    nc_hooks__rec_free(r);
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

/* ---- holding a call (bulkhead queues, rate limiters) ---------------------------------------------- */

int nc_hook_hold(nc_hook_info *i) {
    nc_hook_rec *r = submitting(i);
    if (!r) return NC_EINVAL;
    r->holds++;
    return 0;
}

int nc_hook_resume(nc_hook_info *i, int err) {
    nc_hook_rec *r = i ? i->priv_ : NULL;
    if (!r || r->info.side != NC_HOOK_CLIENT || r->holds <= 0) return NC_ESTATE;
    r->holds--;
    if (err && !r->hold_err) r->hold_err = err > 0 ? NC_EREFUSED : err;
    /* inside on_submit the core reads holds and hold_err when the interceptors are done */
    if (!r->in_submit && (r->holds == 0 || r->hold_err)) nc_client__resume(r->info.client, r->owner);
    return 0;
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
