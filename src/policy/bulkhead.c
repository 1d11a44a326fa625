/* Bulkheads (nestc/policy.h, docs/resilience.md): a limit on messages in flight, as a client hook set
 * (on_submit admits, on_call_end gives back) and as a server hook set (before_handler admits, on_finish
 * gives back). The count is one atomic for all of a server's workers: the limit protects what the
 * handlers share (a database pool, memory), which does not grow with the number of loops.
 *
 * Refused at once rather than queued: a hook can only let a call go or fail it, and a queue would spend
 * the caller's deadline waiting where the caller cannot see it; a refusal tells it to shed load now. */
#include <stdatomic.h>
#include <stdlib.h>

#include "nestc/error.h"
#include "nestc/policy.h"
#include "util/abi.h"

struct nc_bulkhead {
    int max;
    int requests_only;
    atomic_int in_flight;
    _Atomic uint64_t refused;
};

/* The marker in *i->state of a message this set admitted (on_finish gives its permit back). */
static char admitted;

static int admit(void *user, nc_hook_info *i) {
    nc_bulkhead *b = user;
    if (b->requests_only && i->is_event) return 0;
    if (atomic_fetch_add_explicit(&b->in_flight, 1, memory_order_relaxed) >= b->max) {
        atomic_fetch_sub_explicit(&b->in_flight, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->refused, 1, memory_order_relaxed);
        return NC_EREFUSED;
    }
    *i->state = &admitted;
    return 0;
}

static void srv_finish(void *user, nc_hook_info *i, int outcome) {
    (void)outcome;
    if (*i->state != &admitted) return;
    *i->state = NULL;
    atomic_fetch_sub_explicit(&((nc_bulkhead *)user)->in_flight, 1, memory_order_relaxed);
}

static void cli_end(void *user, nc_hook_info *i, int err) {
    srv_finish(user, i, err);
}

static void release(void *user) {
    free(user);
}

/* A bulkhead from the caller's options: 0, NC_EINVAL (no limit given, a struct_size it cannot read) or
 * NC_ENOMEM. */
static int make(const nc_bulkhead_opts *user_o, nc_bulkhead **out) {
    nc_bulkhead_opts o = {0};
    if (!user_o || nc_abi_copy_in(&o, sizeof o, user_o, user_o->struct_size, sizeof o) || o.max_in_flight < 1)
        return NC_EINVAL;
    nc_bulkhead *b = calloc(1, sizeof *b);
    if (!b) return NC_ENOMEM;
    b->max = o.max_in_flight;
    b->requests_only = o.requests_only;
    *out = b;
    return 0;
}

int nc_client_use_bulkhead(nc_client *cli, const nc_bulkhead_opts *opts, nc_bulkhead **out) {
    if (out) *out = NULL;
    nc_bulkhead *b = NULL;
    int r = cli ? make(opts, &b) : NC_EINVAL;
    if (r) return r;
    nc_client_hooks h = {
        .struct_size = sizeof h, .on_submit = admit, .on_call_end = cli_end, .release = release};
    int id = nc_client_add_hooks(cli, &h, b);
    if (id < 0) {
        free(b);
        return id;
    }
    if (out) *out = b;
    return id;
}

int nc_server_use_bulkhead(nc_server *srv, const nc_bulkhead_opts *opts, nc_bulkhead **out) {
    if (out) *out = NULL;
    nc_bulkhead *b = NULL;
    int r = srv ? make(opts, &b) : NC_EINVAL;
    if (r) return r;
    nc_server_hooks h = {
        .struct_size = sizeof h, .before_handler = admit, .on_finish = srv_finish, .release = release};
    int id = nc_server_add_hooks(srv, &h, b);
    if (id < 0) {
        free(b);
        return id;
    }
    if (out) *out = b;
    return id;
}

int nc_bulkhead_in_flight(const nc_bulkhead *b) {
    return b ? atomic_load_explicit(&((nc_bulkhead *)b)->in_flight, memory_order_relaxed) : 0;
}

uint64_t nc_bulkhead_refused(const nc_bulkhead *b) {
    return b ? atomic_load_explicit(&((nc_bulkhead *)b)->refused, memory_order_relaxed) : 0;
}
