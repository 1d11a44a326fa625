/* Rate limiters (nestc/policy.h, docs/resilience.md): a token bucket as a client hook set (on_submit
 * takes a token, or holds the call until its token is due) and as a server hook set (before_handler
 * takes one or refuses the message).
 *
 * The bucket is kept as GCRA keeps it (the generic cell rate algorithm of ATM networks, the form most
 * limiters take): one number, the theoretical arrival time `tat` of the next message if the bucket were
 * drained at the rate. A message at time t goes when tat - t <= tau, where tau = (burst - 1) / rate is
 * how far ahead of the rate a burst may run, and moves tat to max(tat, t) + 1 / rate. It is the same as a
 * bucket of `burst` tokens refilled at `rate`, with no refill step, no floating point and no lock: one
 * compare-and-swap, so a server's workers share one budget at the cost of one atomic.
 *
 * Waiting (client): a call that would find tat - t > tau reserves its token anyway when it is due within
 * max_wait_ms (tat still moves on, so the calls after it wait their turn) and is held until then. The
 * due times grow with tat, so the waiting calls of one bucket are in due order; a list kept sorted
 * (inserted from its tail) and one timer on its head serve all buckets. A call that ends while it waits
 * (cancelled, timed out, the client closed) gives its token back. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "nestc/error.h"
#include "nestc/policy.h"
#include "util/abi.h"
#include "util/map.h"

typedef struct bucket {
    _Atomic uint64_t tat; /* monotonic ns; 0: never used (full) */
} bucket;

typedef struct waiter {
    struct waiter *prev, *next;
    nc_hook_info *info;
    void **slot;
    uint64_t due_ns;
    bucket *k;
} waiter;

struct nc_rate_limiter {
    uint64_t t_ns;    /* the emission interval: 1 s / rate */
    uint64_t tau_ns;  /* (burst - 1) × t_ns */
    uint64_t wait_ns; /* the longest wait for a token (client), 0 = none */
    int burst;
    int requests_only, per_route, max_routes;
    bucket all;      /* the limiter's bucket, or that of the routes past max_routes */
    uv_mutex_t lock; /* per_route: the route table (workers and the getter read it) */
    nc_map routes;   /* route -> bucket * */
    int nroutes;
    _Atomic uint64_t admitted, delayed, refused;
    atomic_int waiting;
    /* client: the waiting calls, by due time (loop thread) */
    waiter *head, *tail;
    int has_timer;
    uv_timer_t timer;
};

static bucket *bucket_of(nc_rate_limiter *l, const char *route) {
    if (!l->per_route) return &l->all;
    size_t n = strlen(route);
    uv_mutex_lock(&l->lock);
    bucket *k = nc_map_get(&l->routes, route, n);
    if (!k && l->nroutes < l->max_routes && (k = calloc(1, sizeof *k))) {
        if (nc_map_put(&l->routes, route, n, k, NULL)) {
            free(k);
            k = NULL;
        } else {
            l->nroutes++;
        }
    }
    uv_mutex_unlock(&l->lock);
    return k ? k : &l->all;
}

/* Takes a token at `now`: 0 and *wait (ns until it is due; 0 = now), or -1 when it would be due later
 * than max_wait. */
static int take(const nc_rate_limiter *l, bucket *k, uint64_t now, uint64_t max_wait, uint64_t *wait) {
    uint64_t tat = atomic_load_explicit(&k->tat, memory_order_relaxed);
    for (;;) {
        uint64_t base = tat > now ? tat : now;
        uint64_t ahead = base - now, w = ahead > l->tau_ns ? ahead - l->tau_ns : 0;
        if (w > max_wait) return -1;
        if (atomic_compare_exchange_weak_explicit(&k->tat, &tat, base + l->t_ns, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *wait = w;
            return 0;
        }
    }
}

static void give_back(const nc_rate_limiter *l, bucket *k) {
    atomic_fetch_sub_explicit(&k->tat, l->t_ns, memory_order_relaxed);
}

static void count(_Atomic uint64_t *c) {
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static int srv_admit(void *user, nc_hook_info *i) {
    nc_rate_limiter *l = user;
    uint64_t wait;
    if (l->requests_only && i->is_event) return 0;
    /* the dispatch time: read a moment ago, and it spares a clock read per message */
    if (take(l, bucket_of(l, i->route), i->start_ns, 0, &wait)) {
        count(&l->refused);
        return NC_EREFUSED;
    }
    count(&l->admitted);
    return 0;
}

/* ---- client: waiting for a token ----------------------------------------------------------------- */

static void on_due(uv_timer_t *t);

static void arm(nc_rate_limiter *l) {
    if (!l->head) {
        uv_timer_stop(&l->timer);
        return;
    }
    uint64_t now = uv_hrtime(), d = l->head->due_ns;
    uv_timer_start(&l->timer, on_due, d > now ? (d - now + 999999) / 1000000 : 0, 0);
}

static void unlink_waiter(nc_rate_limiter *l, waiter *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    atomic_fetch_sub_explicit(&l->waiting, 1, memory_order_relaxed);
}

static void on_due(uv_timer_t *t) {
    nc_rate_limiter *l = t->data;
    uint64_t now = uv_hrtime();
    while (l->head && l->head->due_ns <= now) {
        waiter *w = l->head;
        unlink_waiter(l, w);
        *w->slot = NULL;
        count(&l->delayed);
        nc_hook_resume(w->info, 0);
        free(w);
    }
    arm(l);
}

static int cli_admit(void *user, nc_hook_info *i) {
    nc_rate_limiter *l = user;
    if (l->requests_only && i->is_event) return 0;
    bucket *k = bucket_of(l, i->route);
    uint64_t wait;
    if (take(l, k, i->now_ns, l->wait_ns, &wait)) {
        count(&l->refused);
        return NC_EREFUSED;
    }
    if (!wait) {
        count(&l->admitted);
        return 0;
    }
    waiter *w = malloc(sizeof *w);
    if (!w || nc_hook_hold(i)) {
        free(w);
        give_back(l, k);
        count(&l->refused);
        return NC_EREFUSED;
    }
    *w = (waiter){.info = i, .slot = i->state, .due_ns = i->now_ns + wait, .k = k};
    waiter *at = l->tail; /* insert after the last one due no later (the tail, but across routes) */
    while (at && at->due_ns > w->due_ns) at = at->prev;
    w->prev = at;
    w->next = at ? at->next : l->head;
    if (w->next)
        w->next->prev = w;
    else
        l->tail = w;
    if (at)
        at->next = w;
    else
        l->head = w;
    atomic_fetch_add_explicit(&l->waiting, 1, memory_order_relaxed);
    *i->state = w;
    if (l->head == w) arm(l);
    return 0;
}

static void cli_end(void *user, nc_hook_info *i, int err) {
    (void)err;
    nc_rate_limiter *l = user;
    waiter *w = *i->state;
    if (!w) return;
    /* ended while waiting: its token was not used */
    *i->state = NULL;
    int was_head = l->head == w;
    unlink_waiter(l, w);
    give_back(l, w->k);
    free(w);
    if (was_head) arm(l);
}

/* ---- life ---------------------------------------------------------------------------------------- */

static void destroy(nc_rate_limiter *l) {
    size_t it = 0;
    const char *key;
    void *v;
    while (nc_map_next(&l->routes, &it, &key, &v)) free(v);
    nc_map_free(&l->routes);
    uv_mutex_destroy(&l->lock);
    free(l);
}

static void free_closed(uv_handle_t *h) {
    destroy(h->data);
}

static void release(void *user) {
    nc_rate_limiter *l = user;
    if (l->has_timer)
        uv_close((uv_handle_t *)&l->timer, free_closed); /* no call waits: every call ended */
    else
        destroy(l);
}

static int make(const nc_rate_limit_opts *user_o, int client, nc_rate_limiter **out) {
    nc_rate_limit_opts o = {0};
    if (!user_o || nc_abi_copy_in(&o, sizeof o, user_o, user_o->struct_size, sizeof o)) return NC_EINVAL;
    if (!(o.rate >= 0.001 && o.rate <= 1e9) || o.burst < 0 || o.burst > 10000000 || o.max_wait_ms < 0 ||
        o.max_routes < 0 || (!client && o.max_wait_ms))
        return NC_EINVAL;
    nc_rate_limiter *l = calloc(1, sizeof *l);
    if (!l) return NC_ENOMEM;
    if (uv_mutex_init(&l->lock)) {
        free(l);
        return NC_ENOMEM;
    }
    l->burst = o.burst ? o.burst : o.rate < 1 ? 1 : (int)(o.rate + 0.999999);
    l->t_ns = (uint64_t)(1e9 / o.rate);
    if (!l->t_ns) l->t_ns = 1;
    l->tau_ns = (uint64_t)(l->burst - 1) * l->t_ns;
    l->wait_ns = (uint64_t)o.max_wait_ms * 1000000u;
    l->requests_only = o.requests_only;
    l->per_route = o.per_route;
    l->max_routes = o.max_routes ? o.max_routes : 256;
    l->routes = (nc_map)NC_MAP_INIT;
    *out = l;
    return 0;
}

int nc_client_use_rate_limit(nc_client *cli, const nc_rate_limit_opts *opts, nc_rate_limiter **out) {
    if (out) *out = NULL;
    nc_rate_limiter *l = NULL;
    int r = cli ? make(opts, 1, &l) : NC_EINVAL;
    if (r) return r;
    nc_client_hooks h = {.struct_size = sizeof h, .on_submit = cli_admit, .release = release};
    if (l->wait_ns) h.on_call_end = cli_end; /* only a waiting call has anything to give back */
    int id = nc_client_add_hooks(cli, &h, l);
    if (id < 0) {
        destroy(l);
        return id;
    }
    if (l->wait_ns) {
        uv_timer_init(nc_client_loop(cli), &l->timer);
        l->timer.data = l;
        l->has_timer = 1;
    }
    if (out) *out = l;
    return id;
}

int nc_server_use_rate_limit(nc_server *srv, const nc_rate_limit_opts *opts, nc_rate_limiter **out) {
    if (out) *out = NULL;
    nc_rate_limiter *l = NULL;
    int r = srv ? make(opts, 0, &l) : NC_EINVAL;
    if (r) return r;
    nc_server_hooks h = {.struct_size = sizeof h, .before_handler = srv_admit, .release = release};
    int id = nc_server_add_hooks(srv, &h, l);
    if (id < 0) {
        destroy(l);
        return id;
    }
    if (out) *out = l;
    return id;
}

int nc_rate_limit_get_info(nc_rate_limiter *l, const char *route, nc_rate_limit_info *out) {
    if (!l || !out) return NC_EINVAL;
    memset(out, 0, sizeof *out);
    bucket *k = &l->all;
    if (l->per_route && route && *route) {
        uv_mutex_lock(&l->lock);
        k = nc_map_get(&l->routes, route, strlen(route));
        int full = l->nroutes >= l->max_routes;
        uv_mutex_unlock(&l->lock);
        if (!k && !full) return NC_ENOENT;
        if (!k) k = &l->all;
    }
    uint64_t now = uv_hrtime(), tat = atomic_load_explicit(&k->tat, memory_order_relaxed);
    uint64_t ahead = tat > now ? tat - now : 0;
    out->tokens = ahead > l->tau_ns ? 0 : (double)(l->tau_ns - ahead) / (double)l->t_ns + 1;
    if (out->tokens > l->burst) out->tokens = l->burst;
    out->waiting = atomic_load_explicit(&l->waiting, memory_order_relaxed);
    out->admitted = atomic_load_explicit(&l->admitted, memory_order_relaxed);
    out->delayed = atomic_load_explicit(&l->delayed, memory_order_relaxed);
    out->refused = atomic_load_explicit(&l->refused, memory_order_relaxed);
    return 0;
}
