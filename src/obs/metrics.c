/* The metrics registry and the hook sets that fill it (nestc/metrics.h, docs/observability.md).
 *
 * A series is a (side, transport, route). Its counters live in per-thread shards, each allocated the
 * first time a thread counts in it, so that workers on several threads do not bounce one cache line:
 * every update is a relaxed atomic add on the calling thread's shard (uncontended, a few cycles), and a
 * reader sums the shards. Series are found through an open-addressed table that is only ever added to:
 * readers probe it without a lock (acquire loads of published entries); insertions take the mutex.
 * The number of distinct routes is capped: a peer sending random patterns reaches the "(no handler)"
 * series (no handler matches them), and routes past the cap share "(other)", so memory stays bounded. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/hooks_internal.h" /* nc_hooks__route_id */
#include "core/obs_support.h"
#include "core/server_transport.h" /* nc_server__scheme */
#include "obs/metrics_internal.h"
#include "util/abi.h"

/* Counter indices in a shard. The outcomes come first: a reader sums them before the begun messages, so
 * it sees no message ended that it does not also see begun (in flight is begun minus ended). */
enum {
    C_OUT0,
    C_REQ = C_OUT0 + NC_OUTCOME_COUNT,
    C_EVT,
    C_RVAL,
    C_RERR,
    C_BIN,
    C_BOUT,
    C_RETRY,
    C_B0,
    C_DSUM = C_B0 + NC_METRICS_BUCKETS,
    C_N
};

#define SHARDS 16
#define ROUTES_DEFAULT 256
#define ROUTES_MAX 4096
/* Series that do not count against the route cap: per side and transport, "(no handler)", "(other)"
 * and the client's route "" */
#define SPECIAL_SLOTS 96

typedef struct shard {
    _Atomic uint64_t c[C_N];
} shard;

typedef struct mseries {
    nc_hook_side side;
    char *transport, *route;
    uint64_t hash;
    _Atomic(shard *) shards[SHARDS];
} mseries;

struct nc_metrics {
    _Atomic int refs;
    uint64_t gen; /* unique per registry made: a thread's cached series is checked against it */
    uv_mutex_t lock;
    int max_routes, nroutes;
    size_t mask;               /* table size - 1 (a power of two) */
    _Atomic(mseries *) *table; /* open addressing, entries published once */
    mseries **list;            /* creation order, `listcap` long */
    size_t listcap;
    _Atomic size_t nlist;
    _Atomic uint64_t overflowed;
    nc_obs_wire *wire; /* connections and wire bytes of what is watched (wire_metrics.c) */
};

static const double bounds[NC_METRICS_BUCKETS - 1] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const uint64_t bounds_ns[NC_METRICS_BUCKETS - 1] = {
    100000ULL,     250000ULL,     500000ULL,     1000000ULL,    2500000ULL,   5000000ULL,
    10000000ULL,   25000000ULL,   50000000ULL,   100000000ULL,  250000000ULL, 500000000ULL,
    1000000000ULL, 2500000000ULL, 5000000000ULL, 10000000000ULL};

const double *nc_metrics_bucket_bounds(void) {
    return bounds;
}

static const char *const outcome_names[NC_OUTCOME_COUNT] = {
    "ok",           "remote_error", "no_handler", "timeout", "conn_refused", "conn_lost",
    "hook_refused", "canceled",     "closed",     "other",   "circuit_open"};

const char *nc_metrics_outcome_name(nc_metrics_outcome o) {
    return (unsigned)o < NC_OUTCOME_COUNT ? outcome_names[o] : "other";
}

nc_metrics_outcome nc_metrics_outcome_of(int err) {
    switch (err) {
    case 0:
        return NC_OUTCOME_OK;
    case NC_EREMOTE:
        return NC_OUTCOME_REMOTE_ERROR;
    case NC_ENOHANDLER:
        return NC_OUTCOME_NO_HANDLER;
    case NC_ETIMEDOUT:
        return NC_OUTCOME_TIMEOUT;
    case NC_ECONNREFUSED:
    case NC_ERESOLVE:
    case NC_ETLS:
    case NC_EAUTH:
        return NC_OUTCOME_CONN_REFUSED;
    case NC_ECONNCLOSED:
    case NC_ECONNLOST:
    case NC_ESTALLED:
        return NC_OUTCOME_CONN_LOST;
    case NC_EREFUSED:
        return NC_OUTCOME_HOOK_REFUSED;
    case NC_ECIRCUITOPEN:
        return NC_OUTCOME_CIRCUIT_OPEN;
    case NC_ECANCELED:
        return NC_OUTCOME_CANCELED;
    case NC_ECLOSED:
        return NC_OUTCOME_CLOSED;
    default:
        return NC_OUTCOME_OTHER;
    }
}

/* ---- registry --------------------------------------------------------------------------------------- */

int nc_metrics_new(nc_metrics **out, const nc_metrics_opts *user_o) {
    if (!out) return NC_EINVAL;
    *out = NULL;
    nc_metrics_opts o = {0};
    if (user_o && nc_abi_copy_in(&o, sizeof o, user_o, user_o->struct_size, sizeof o)) return NC_EINVAL;
    if (o.max_routes < 0 || o.max_routes > ROUTES_MAX) return NC_EINVAL;
    nc_metrics *m = calloc(1, sizeof *m);
    if (!m) return NC_ENOMEM;
    m->max_routes = o.max_routes ? o.max_routes : ROUTES_DEFAULT;
    m->listcap = (size_t)m->max_routes + SPECIAL_SLOTS;
    size_t size = 16;
    while (size < 2 * m->listcap) size *= 2; /* at most half full: short probes */
    m->mask = size - 1;
    m->table = calloc(size, sizeof *m->table);
    m->list = calloc(m->listcap, sizeof *m->list);
    m->wire = nc_obs_wire_new();
    if (!m->table || !m->list || !m->wire) {
        nc_obs_wire_free(m->wire);
        free(m->table);
        free(m->list);
        free(m);
        return NC_ENOMEM;
    }
    uv_mutex_init(&m->lock);
    atomic_init(&m->refs, 1);
    static _Atomic uint64_t next_gen = 1;
    m->gen = atomic_fetch_add(&next_gen, 1);
    *out = m;
    return 0;
}

static void metrics_destroy(nc_metrics *m) {
    size_t n = atomic_load(&m->nlist);
    for (size_t i = 0; i < n; i++) {
        mseries *s = m->list[i];
        for (int k = 0; k < SHARDS; k++) free(atomic_load(&s->shards[k]));
        free(s->transport);
        free(s->route);
        free(s);
    }
    uv_mutex_destroy(&m->lock);
    nc_obs_wire_free(m->wire);
    free(m->table);
    free(m->list);
    free(m);
}

nc_obs_wire *nc_metrics__wire(nc_metrics *m) {
    return m->wire;
}

static void metrics_ref(nc_metrics *m) {
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void nc_metrics_free(nc_metrics *m) {
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) metrics_destroy(m);
}

uint64_t nc_metrics_routes_overflowed(nc_metrics *m) {
    return m ? atomic_load_explicit(&m->overflowed, memory_order_relaxed) : 0;
}

static uint64_t hash_of(nc_hook_side side, const char *tp, const char *route) {
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)side;
    for (const unsigned char *p = (const unsigned char *)tp; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* separator: no byte of a text */
    for (const unsigned char *p = (const unsigned char *)route; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static int same(const mseries *s, uint64_t h, nc_hook_side side, const char *tp, const char *route) {
    return s->hash == h && s->side == side && !strcmp(s->route, route) && !strcmp(s->transport, tp);
}

/* The slot of (side, tp, route), or of the first empty one met. */
static size_t probe(nc_metrics *m, uint64_t h, nc_hook_side side, const char *tp, const char *route,
                    mseries **found) {
    for (size_t i = (size_t)h & m->mask;; i = (i + 1) & m->mask) {
        mseries *s = atomic_load_explicit(&m->table[i], memory_order_acquire);
        if (!s || same(s, h, side, tp, route)) {
            *found = s;
            return i;
        }
    }
}

static int is_special(const char *route) {
    return !*route || !strcmp(route, NC_METRICS_ROUTE_NO_HANDLER) || !strcmp(route, NC_METRICS_ROUTE_OTHER);
}

/* Under the lock. NULL when out of memory or of special slots (the message is then not counted). */
static mseries *insert_locked(nc_metrics *m, nc_hook_side side, const char *tp, const char *route) {
    uint64_t h = hash_of(side, tp, route);
    mseries *s;
    size_t slot = probe(m, h, side, tp, route, &s);
    if (s) return s;
    if (!is_special(route) && m->nroutes >= m->max_routes) {
        atomic_fetch_add_explicit(&m->overflowed, 1, memory_order_relaxed);
        return insert_locked(m, side, tp, NC_METRICS_ROUTE_OTHER);
    }
    size_t n = atomic_load_explicit(&m->nlist, memory_order_relaxed);
    if (n >= m->listcap) return NULL;
    if (!(s = calloc(1, sizeof *s))) return NULL;
    s->side = side;
    s->hash = h;
    s->transport = strdup(tp);
    s->route = strdup(route);
    if (!s->transport || !s->route) {
        free(s->transport);
        free(s->route);
        free(s);
        return NULL;
    }
    if (!is_special(route)) m->nroutes++;
    m->list[n] = s;
    atomic_store_explicit(&m->nlist, n + 1, memory_order_release);
    atomic_store_explicit(&m->table[slot], s, memory_order_release);
    return s;
}

static mseries *series_for(nc_metrics *m, nc_hook_side side, const char *tp, const char *route) {
    mseries *s;
    probe(m, hash_of(side, tp, route), side, tp, route, &s);
    if (s) return s;
    uv_mutex_lock(&m->lock);
    s = insert_locked(m, side, tp, route);
    uv_mutex_unlock(&m->lock);
    return s;
}

/* ---- counting (loop threads) ------------------------------------------------------------------------ */

static _Atomic unsigned next_thread;
/* The calling thread's shard number: threads 0 .. SHARDS-2 (in the order they first count) each own one
 * shard, which only they write, so their additions need no locked instruction (a relaxed load and store:
 * readers never see a torn value); every later thread shares the last shard with atomic additions. */
static _Thread_local int thread_shard = -1;
static _Thread_local int thread_owns;
/* the series this thread counted in last, and its registry: most messages repeat a route. last_route_id
 * is the server route it was found for (0: none, as for clients): the same id is the same server and
 * route, so the series is reused without comparing the texts */
static _Thread_local mseries *last_series;
static _Thread_local uint64_t last_route_id;
static _Thread_local nc_metrics *last_registry;
static _Thread_local uint64_t last_gen; /* a registry freed and another made at its address differ here */
static _Thread_local struct shard *last_shard; /* this thread's shard of last_series */

/* The calling thread's shard of s (allocated on its first use; NULL when out of memory). */
static shard *shard_of(mseries *s) {
    if (thread_shard < 0) {
        unsigned n = atomic_fetch_add_explicit(&next_thread, 1, memory_order_relaxed);
        thread_owns = n < SHARDS - 1;
        thread_shard = thread_owns ? (int)n : SHARDS - 1;
    }
    shard *sh = atomic_load_explicit(&s->shards[thread_shard], memory_order_acquire);
    if (sh) return sh;
    shard *fresh = calloc(1, sizeof *fresh);
    if (!fresh) return NULL;
    if (!atomic_compare_exchange_strong_explicit(&s->shards[thread_shard], &sh, fresh, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(fresh); /* another thread of the same shard number was first: share its block */
        return sh;
    }
    return fresh;
}

/* `own`: thread_owns, read once per callback by the caller (a thread-local read per counter added up) */
static inline void add(shard *sh, int own, int c, uint64_t v) {
    if (own)
        atomic_store_explicit(&sh->c[c], atomic_load_explicit(&sh->c[c], memory_order_relaxed) + v,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&sh->c[c], v, memory_order_relaxed);
}

static void begin(nc_hook_info *i, nc_metrics *m, const char *route, uint64_t route_id) {
    shard *sh = last_shard;
    if (last_registry != m || last_gen != m->gen || !route_id || route_id != last_route_id) {
        mseries *s = last_series;
        const char *tp = i->transport ? i->transport : "";
        if (last_registry != m || last_gen != m->gen || s->side != i->side || strcmp(s->route, route) ||
            strcmp(s->transport, tp)) {
            s = series_for(m, i->side, tp, route);
            last_series = s;
            last_registry = s ? m : NULL;
            last_gen = m->gen;
        }
        last_shard = sh = s ? shard_of(s) : NULL;
        /* not for a route counted under "(other)": each of its messages counts as overflowed */
        last_route_id = sh && !strcmp(s->route, route) ? route_id : 0;
    }
    *i->state = sh;
    if (!sh) return;
    int own = thread_owns;
    add(sh, own, i->is_event ? C_EVT : C_REQ, 1);
}

static void end(nc_hook_info *i, int err) {
    shard *sh = *i->state;
    if (!sh) return;
    *i->state = NULL;
    int own = thread_owns;
    add(sh, own, C_OUT0 + (int)nc_metrics_outcome_of(err), 1);
    uint64_t d = i->now_ns > i->start_ns ? i->now_ns - i->start_ns : 0;
    int b = 0;
    while (b < NC_METRICS_BUCKETS - 1 && d > bounds_ns[b]) b++;
    add(sh, own, C_B0 + b, 1); /* (the count is the buckets' sum) */
    add(sh, own, C_DSUM, d);
}

static void srv_dispatch(void *user, nc_hook_info *i) {
    begin(i, user, i->has_handler ? (i->route ? i->route : "") : NC_METRICS_ROUTE_NO_HANDLER,
          nc_hooks__route_id(i));
    shard *sh = *i->state;
    if (sh && i->msg) add(sh, thread_owns, C_BIN, nc_msg__data_len(i->msg));
}

static void srv_reply(void *user, nc_hook_info *i, nc_hook_reply kind, const char *json, size_t len,
                      int final) {
    (void)user, (void)json, (void) final;
    shard *sh = *i->state;
    if (!sh || kind == NC_HOOK_REPLY_END) return;
    int own = thread_owns;
    add(sh, own, kind == NC_HOOK_REPLY_ERROR ? C_RERR : C_RVAL, 1);
    add(sh, own, C_BOUT, len);
}

static void srv_finish(void *user, nc_hook_info *i, int outcome) {
    (void)user;
    end(i, outcome);
}

static int cli_submit(void *user, nc_hook_info *i) {
    begin(i, user, i->route ? i->route : "", 0);
    return 0;
}

static void cli_reply(void *user, nc_hook_info *i, const json_t *value, int final) {
    (void)user, (void)value, (void) final;
    shard *sh = *i->state;
    if (sh) add(sh, thread_owns, C_RVAL, 1);
}

static void cli_end(void *user, nc_hook_info *i, int err) {
    (void)user;
    shard *sh = *i->state;
    if (sh && i->attempt > 1) add(sh, thread_owns, C_RETRY, (uint64_t)(i->attempt - 1));
    end(i, err);
}

static void hooks_release(void *user) {
    nc_metrics_free(user);
}

int nc_metrics_watch_server(nc_metrics *m, nc_server *srv) {
    if (!m || !srv) return NC_EINVAL;
    nc_server_hooks h = {.struct_size = sizeof h,
                         .on_dispatch = srv_dispatch,
                         .on_reply = srv_reply,
                         .on_finish = srv_finish,
                         .release = hooks_release};
    metrics_ref(m);
    int id = nc_server_add_hooks(srv, &h, m);
    if (id < 0)
        nc_metrics_free(m);
    else if (nc_obs_wire_add(m->wire, NC_HOOK_SERVER, nc_server__scheme(srv), nc_server__wire(srv))) {
        nc_server_remove_hooks(srv, id);
        return NC_ENOMEM;
    }
    return id;
}

int nc_metrics_watch_client(nc_metrics *m, nc_client *cli) {
    if (!m || !cli) return NC_EINVAL;
    nc_client_hooks h = {.struct_size = sizeof h,
                         .on_submit = cli_submit,
                         .on_reply = cli_reply,
                         .on_call_end = cli_end,
                         .release = hooks_release};
    metrics_ref(m);
    int id = nc_client_add_hooks(cli, &h, m);
    if (id < 0)
        nc_metrics_free(m);
    else if (nc_obs_wire_add(m->wire, NC_HOOK_CLIENT, nc_client__scheme(cli), nc_client__wire(cli))) {
        nc_client_remove_hooks(cli, id);
        return NC_ENOMEM;
    }
    return id;
}

/* ---- reading (any thread) --------------------------------------------------------------------------- */

static void sum_into(const mseries *s, nc_metrics_series *o) {
    uint64_t c[C_N] = {0};
    for (int k = 0; k < SHARDS; k++) {
        shard *sh = atomic_load_explicit((_Atomic(shard *) *)&s->shards[k], memory_order_acquire);
        if (!sh) continue;
        for (int j = 0; j < C_N; j++) c[j] += atomic_load_explicit(&sh->c[j], memory_order_relaxed);
    }
    o->requests += c[C_REQ];
    o->events += c[C_EVT];
    /* in flight: begun and not ended (one counter fewer per message to keep; never below 0, should a
     * reader's loads be reordered) */
    uint64_t ended = 0;
    for (int j = 0; j < NC_OUTCOME_COUNT; j++) {
        o->outcomes[j] += c[C_OUT0 + j];
        ended += c[C_OUT0 + j];
    }
    uint64_t begun = c[C_REQ] + c[C_EVT];
    o->in_flight += begun > ended ? (int64_t)(begun - ended) : 0;
    o->reply_values += c[C_RVAL];
    o->reply_errors += c[C_RERR];
    o->bytes_in += c[C_BIN];
    o->bytes_out += c[C_BOUT];
    o->retries += c[C_RETRY];
    for (int j = 0; j < NC_METRICS_BUCKETS; j++) {
        o->duration_buckets[j] += c[C_B0 + j];
        o->duration_count += c[C_B0 + j];
    }
    o->duration_sum_ns += c[C_DSUM];
}

int nc_metrics_foreach(nc_metrics *m, int (*fn)(void *user, const nc_metrics_series *s), void *user) {
    if (!m || !fn) return NC_EINVAL;
    size_t n = atomic_load_explicit(&m->nlist, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        const mseries *s = m->list[i];
        nc_metrics_series o;
        memset(&o, 0, sizeof o);
        o.side = s->side;
        o.transport = s->transport;
        o.route = s->route;
        sum_into(s, &o);
        int r = fn(user, &o);
        if (r) return r;
    }
    return 0;
}

int nc_metrics_totals(nc_metrics *m, nc_hook_side side, nc_metrics_series *out) {
    if (!m || !out) return NC_EINVAL;
    memset(out, 0, sizeof *out);
    out->side = side;
    out->transport = out->route = "";
    size_t n = atomic_load_explicit(&m->nlist, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (m->list[i]->side == side) sum_into(m->list[i], out);
    return 0;
}

int nc_metrics_prometheus(nc_metrics *m, nc_server *srv, char **out, size_t *len) {
    if (!m || !out) return NC_EINVAL;
    nc_server_health h;
    int have_h = srv && !nc_server_health_get(srv, &h);
    nc_buf b = NC_BUF_INIT;
    if (nc_prom_write(&b, m, have_h ? &h : NULL) || nc_buf_append_char(&b, '\0')) {
        nc_buf_free(&b);
        return NC_ENOMEM;
    }
    size_t n;
    *out = nc_buf_steal(&b, &n);
    if (len) *len = n - 1;
    return 0;
}
