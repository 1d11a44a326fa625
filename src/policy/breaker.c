/* The circuit breaker (nestc/policy.h, docs/resilience.md): a client hook set. on_submit fails a call at
 * once with NC_ECIRCUITOPEN while the breaker is open, and lets a few probes through once the cool-down
 * is over (half-open); on_call_end counts each admitted call's outcome, and opens the breaker on N
 * failures in a row or on a failure ratio over a rolling window (with a minimum of calls, so that two
 * failures out of three do not stop a quiet client).
 *
 * The cool-down ends lazily, at the next call: no timer, so an idle client costs nothing. Only the calls
 * admitted while closed feed the counts, and only probes decide a half-open breaker: a slow call made
 * before the breaker opened does not close it again when it finally fails or succeeds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/client_internal.h"
#include "nestc/error.h"
#include "nestc/policy.h"
#include "policy/window.h"
#include "util/abi.h"
#include "util/clock.h"
#include "util/map.h"

typedef struct brk {
    nc_breaker_state state;
    int consec;         /* failures in a row while closed */
    int probes_out;     /* probes admitted and not ended, while half-open */
    uint64_t opened_ns; /* when it last opened */
    nc_window win;      /* a: calls counted, b: failures */
    uint64_t opened, rejected;
} brk;

struct nc_breaker {
    nc_breaker_opts o;
    uint64_t open_ns;
    brk all;       /* the client's breaker, or that of routes past max_routes */
    nc_map routes; /* per_route: route -> brk * */
    int nroutes;
};

/* The per-call marks in *i->state: the breaker pointer, its low bit set for a probe (brk is aligned). */
#define PROBE ((uintptr_t)1)

enum { NEUTRAL, SUCCESS, FAILURE };

static int verdict(const nc_breaker *b, int err) {
    switch (err) {
    case 0:
    case NC_ENOHANDLER: /* the peer is up and answered */
        return SUCCESS;
    case NC_EREMOTE:
        return b->o.count_remote_errors ? FAILURE : SUCCESS;
    case NC_ETIMEDOUT:
    case NC_ECONNREFUSED:
    case NC_ECONNCLOSED:
    case NC_ECONNLOST:
    case NC_ERESOLVE:
    case NC_ESTALLED:
    case NC_ETLS:
    case NC_EIO:
        return FAILURE;
    default: /* canceled, refused by a hook, closed, a bad call: says nothing about the peer */
        return NEUTRAL;
    }
}

static const char *label(const char *route) {
    return route && *route ? route : "every route";
}

static void reset_counts(nc_breaker *b, brk *k) {
    (void)b;
    k->consec = 0;
    nc_window_reset(&k->win);
}

static void trip(nc_breaker *b, brk *k, nc_hook_info *i, uint64_t now, const char *why) {
    int from_half = k->state == NC_BREAKER_HALF_OPEN;
    k->state = NC_BREAKER_OPEN;
    k->opened_ns = now;
    k->opened++;
    reset_counts(b, k);
    nc_logf(nc_client__log(i->client), NC_LOG_WARN, "CircuitBreaker",
            "circuit open for %s (%s%s): calls fail at once for %d ms",
            label(b->o.per_route ? i->route : NULL), from_half ? "the probe failed: " : "", why,
            b->o.open_ms);
}

static brk *brk_of(nc_breaker *b, const char *route) {
    if (!b->o.per_route) return &b->all;
    if (!route) route = "";
    size_t n = strlen(route);
    brk *k = nc_map_get(&b->routes, route, n);
    if (k) return k;
    if (b->nroutes >= b->o.max_routes || !(k = calloc(1, sizeof *k))) return &b->all;
    nc_window_init(&k->win, b->o.window_ms);
    if (nc_map_put(&b->routes, route, n, k, NULL)) {
        free(k);
        return &b->all;
    }
    b->nroutes++;
    return k;
}

static int on_submit(void *user, nc_hook_info *i) {
    nc_breaker *b = user;
    brk *k = brk_of(b, i->route);
    uint64_t now = i->now_ns;
    if (k->state == NC_BREAKER_OPEN) {
        if (now - k->opened_ns < b->open_ns) {
            k->rejected++;
            return NC_ECIRCUITOPEN;
        }
        k->state = NC_BREAKER_HALF_OPEN;
        k->probes_out = 0;
        nc_logf(nc_client__log(i->client), NC_LOG_INFO, "CircuitBreaker",
                "circuit half-open for %s: letting %d probe call(s) through",
                label(b->o.per_route ? i->route : NULL), b->o.half_open_probes);
    }
    if (k->state == NC_BREAKER_HALF_OPEN) {
        if (k->probes_out >= b->o.half_open_probes) {
            k->rejected++;
            return NC_ECIRCUITOPEN;
        }
        k->probes_out++;
        *i->state = (void *)((uintptr_t)k | PROBE);
        return 0;
    }
    *i->state = k;
    return 0;
}

static void on_call_end(void *user, nc_hook_info *i, int err) {
    nc_breaker *b = user;
    uintptr_t mark = (uintptr_t)*i->state;
    if (!mark) return; /* refused by this breaker */
    *i->state = NULL;
    brk *k = (brk *)(mark & ~PROBE);
    int v = verdict(b, err);
    uint64_t now = i->now_ns;
    if (mark & PROBE) {
        k->probes_out--;
        if (k->state != NC_BREAKER_HALF_OPEN || v == NEUTRAL) return;
        if (v == FAILURE) {
            trip(b, k, i, now, nc_err_name(err));
            return;
        }
        k->state = NC_BREAKER_CLOSED;
        reset_counts(b, k);
        nc_logf(nc_client__log(i->client), NC_LOG_INFO, "CircuitBreaker",
                "circuit closed for %s: the probe succeeded", label(b->o.per_route ? i->route : NULL));
        return;
    }
    if (k->state != NC_BREAKER_CLOSED || v == NEUTRAL) return;
    nc_window_add(&k->win, now, 1, v == FAILURE);
    if (v == SUCCESS) {
        k->consec = 0;
        return;
    }
    k->consec++;
    if (b->o.consecutive_failures > 0 && k->consec >= b->o.consecutive_failures) {
        trip(b, k, i, now, "failures in a row");
        return;
    }
    if (b->o.failure_ratio > 0) {
        uint64_t calls, fails;
        nc_window_sum(&k->win, now, &calls, &fails);
        if (calls >= (uint64_t)b->o.min_calls && (double)fails >= b->o.failure_ratio * (double)calls)
            trip(b, k, i, now, "failure ratio reached");
    }
}

static void release(void *user) {
    nc_breaker *b = user;
    size_t it = 0;
    const char *key;
    void *v;
    while (nc_map_next(&b->routes, &it, &key, &v)) free(v);
    nc_map_free(&b->routes);
    free(b);
}

int nc_client_use_breaker(nc_client *cli, const nc_breaker_opts *user_o, nc_breaker **out) {
    if (out) *out = NULL;
    nc_breaker_opts o = {0};
    if (!cli || (user_o && nc_abi_copy_in(&o, sizeof o, user_o, user_o->struct_size, sizeof o)))
        return NC_EINVAL;
    if (o.window_ms < 0 || o.min_calls < 0 || o.open_ms < 0 || o.half_open_probes < 0 || o.max_routes < 0 ||
        o.failure_ratio > 1 || o.failure_ratio != o.failure_ratio)
        return NC_EINVAL;
    if (!o.consecutive_failures) o.consecutive_failures = 5;
    if (o.failure_ratio == 0) o.failure_ratio = 0.5;
    if (!o.window_ms) o.window_ms = 10000;
    if (!o.min_calls) o.min_calls = 20;
    if (!o.open_ms) o.open_ms = 5000;
    if (!o.half_open_probes) o.half_open_probes = 1;
    if (!o.max_routes) o.max_routes = 256;
    nc_breaker *b = calloc(1, sizeof *b);
    if (!b) return NC_ENOMEM;
    b->o = o;
    b->open_ns = (uint64_t)o.open_ms * 1000000ULL;
    nc_window_init(&b->all.win, o.window_ms);
    b->routes = (nc_map)NC_MAP_INIT;
    nc_client_hooks h = {
        .struct_size = sizeof h, .on_submit = on_submit, .on_call_end = on_call_end, .release = release};
    int id = nc_client_add_hooks(cli, &h, b);
    if (id < 0) {
        release(b);
        return id;
    }
    if (out) *out = b;
    return id;
}

int nc_breaker_get_info(nc_breaker *b, const char *route, nc_breaker_info *out) {
    if (!b || !out) return NC_EINVAL;
    memset(out, 0, sizeof *out);
    const brk *k = &b->all;
    if (b->o.per_route && route && *route) {
        k = nc_map_get(&b->routes, route, strlen(route));
        if (!k) return b->nroutes >= b->o.max_routes ? nc_breaker_get_info(b, NULL, out) : NC_ENOENT;
    }
    uint64_t now = nc_clock_ns(); /* the hook points' clock, which i->now_ns comes from */
    out->state = k->state;
    if (k->state == NC_BREAKER_OPEN && now - k->opened_ns >= b->open_ns) out->state = NC_BREAKER_HALF_OPEN;
    out->consecutive_failures = k->consec;
    nc_window_sum(&k->win, now, &out->window_calls, &out->window_failures);
    out->opened = k->opened;
    out->rejected = k->rejected;
    return 0;
}
