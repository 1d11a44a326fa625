/* The retry policy (nestc/policy.h, docs/resilience.md): a client hook set whose should_retry decides
 * from the error, the attempt and a retry budget, and returns an exponential backoff with full jitter.
 *
 * Why a budget and not only an attempt cap: with max_attempts 3, an outage triples the load on whatever
 * is left of the peer. The budget (Finagle's RetryBudget, the same idea as gRPC's retry throttling) caps
 * retries at a share of the requests over a rolling window plus a small floor, so a healthy client still
 * retries a rare failure while a failing peer sees at most that share more traffic. */
#include <math.h>
#include <stdlib.h>
#include <uv.h>

#include "nestc/error.h"
#include "nestc/policy.h"
#include "policy/window.h"
#include "util/abi.h"

struct nc_retry {
    nc_retry_opts o;
    nc_window win;       /* a: requests made, b: retries asked for */
    double budget_floor; /* budget_min_per_sec × the window in seconds */
    uint64_t rng;
    nc_retry_stats st;
};

/* xorshift64*: jitter needs spread, not secrecy */
static uint64_t next_rand(nc_retry *r) {
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 2685821657736338717ULL;
}

/* The NC_RETRY_ON_* bit an error falls under, 0 for one never retried. */
static unsigned class_of(int err) {
    switch (err) {
    case NC_ECONNREFUSED:
    case NC_ERESOLVE:
    case NC_ECONNLOST:
        return NC_RETRY_ON_UNSENT;
    case NC_ECONNCLOSED:
        return NC_RETRY_ON_CONN_CLOSED;
    case NC_ETIMEDOUT:
        return NC_RETRY_ON_TIMEOUT;
    case NC_EREMOTE:
        return NC_RETRY_ON_REMOTE;
    default:
        return 0;
    }
}

static int on_submit(void *user, nc_hook_info *i) {
    nc_retry *r = user;
    if (i->is_event) return 0;
    r->st.requests++;
    nc_window_add(&r->win, i->now_ns, 1, 0);
    return 0;
}

static int should_retry(void *user, nc_hook_info *i, int err, int *delay_ms) {
    nc_retry *r = user;
    if (i->is_event || !(class_of(err) & r->o.retry_on)) return 0;
    if (i->attempt >= r->o.max_attempts) {
        r->st.exhausted++;
        return 0;
    }
    uint64_t now = nc_hook_now(i);
    if (r->o.budget_ratio >= 0) {
        uint64_t reqs, retries;
        nc_window_sum(&r->win, now, &reqs, &retries);
        if ((double)(retries + 1) > r->budget_floor + r->o.budget_ratio * (double)reqs) {
            r->st.budget_denied++;
            return 0;
        }
    }
    double backoff = r->o.base_delay_ms;
    for (int n = 1; n < i->attempt && backoff < r->o.max_delay_ms; n++) backoff *= r->o.multiplier;
    if (backoff > r->o.max_delay_ms) backoff = r->o.max_delay_ms;
    if (!r->o.no_jitter) backoff *= (double)(next_rand(r) >> 11) / (double)(1ULL << 53); /* [0, 1) */
    *delay_ms = (int)backoff;
    nc_window_add(&r->win, now, 0, 1);
    r->st.retries++;
    return 1;
}

static void release(void *user) {
    free(user);
}

int nc_client_use_retry(nc_client *cli, const nc_retry_opts *user_o, nc_retry **out) {
    if (out) *out = NULL;
    nc_retry_opts o = {0};
    if (!cli || (user_o && nc_abi_copy_in(&o, sizeof o, user_o, user_o->struct_size, sizeof o)))
        return NC_EINVAL;
    if (o.max_attempts < 0 || o.base_delay_ms < 0 || o.max_delay_ms < 0 || o.multiplier < 0 ||
        o.budget_window_ms < 0 || isnan(o.multiplier) || isnan(o.budget_ratio))
        return NC_EINVAL;
    if (!o.max_attempts) o.max_attempts = 3;
    if (!o.base_delay_ms) o.base_delay_ms = 100;
    if (!o.max_delay_ms) o.max_delay_ms = 5000;
    if (o.multiplier == 0) o.multiplier = 2;
    if (o.multiplier < 1) o.multiplier = 1;
    if (!o.retry_on) o.retry_on = NC_RETRY_ON_UNSENT;
    if (o.budget_ratio == 0) o.budget_ratio = 0.1;
    if (!o.budget_min_per_sec) o.budget_min_per_sec = 10;
    if (!o.budget_window_ms) o.budget_window_ms = 10000;
    nc_retry *r = calloc(1, sizeof *r);
    if (!r) return NC_ENOMEM;
    r->o = o;
    nc_window_init(&r->win, o.budget_window_ms);
    r->budget_floor = o.budget_min_per_sec > 0 ? o.budget_min_per_sec * (o.budget_window_ms / 1000.0) : 0;
    r->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ULL;
    if (!r->rng) r->rng = 1;
    nc_client_hooks h = {
        .struct_size = sizeof h, .on_submit = on_submit, .should_retry = should_retry, .release = release};
    int id = nc_client_add_hooks(cli, &h, r);
    if (id < 0) {
        free(r);
        return id;
    }
    if (out) *out = r;
    return id;
}

int nc_retry_get_stats(const nc_retry *r, nc_retry_stats *out) {
    if (!r || !out) return NC_EINVAL;
    *out = r->st;
    return 0;
}
