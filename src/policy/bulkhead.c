/* Bulkheads (nestc/policy.h, docs/resilience.md): a limit on messages in flight, as a client hook set
 * (on_submit admits, on_call_end gives back) and as a server hook set (before_handler admits, on_finish
 * gives back). The count is one atomic for all of a server's workers: the limit protects what the
 * handlers share (a database pool, memory), which does not grow with the number of loops.
 *
 * Without a queue a call beyond the limit is refused at once: the caller sees the overload now. With
 * one (client only), it is held (nc_hook_hold) in a bounded FIFO, each for a bounded wait: a permit that
 * comes back in on_call_end goes straight to the queue's head (resumed, never counted down and up, so a
 * new call cannot overtake the queue), and one timer fails the calls whose wait is over. The waits are
 * all max_wait_ms long, so the queue's order is their expiry order: the head's deadline is the timer's. */
#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "nestc/error.h"
#include "nestc/policy.h"
#include "nestc/server.h"
#include "util/abi.h"

/* A call waiting for a slot: in the queue, and in its hook slot (*slot), until it is let go or ends. */
typedef struct waiter {
    struct waiter *prev, *next;
    nc_hook_info *info;
    void **slot;
    uint64_t deadline_ns; /* UINT64_MAX: none */
} waiter;

struct nc_bulkhead {
    int max;
    int requests_only;
    atomic_int in_flight;
    _Atomic uint64_t refused;
    /* client queue (loop thread) */
    int max_queue;
    uint64_t wait_ns; /* 0: no bound of its own */
    waiter *head, *tail;
    int queued;
    uint64_t expired;
    int has_timer;
    uv_timer_t timer;
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

static void unlink_waiter(nc_bulkhead *b, waiter *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        b->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        b->tail = w->prev;
    b->queued--;
}

static void on_expiry(uv_timer_t *t);

/* The timer follows the head's deadline (stopped when the queue is empty or the head has none). */
static void arm(nc_bulkhead *b) {
    if (!b->head || b->head->deadline_ns == UINT64_MAX) {
        uv_timer_stop(&b->timer);
        return;
    }
    uint64_t now = uv_hrtime(), d = b->head->deadline_ns;
    uint64_t ms = d > now ? (d - now + 999999) / 1000000 : 0;
    uv_timer_start(&b->timer, on_expiry, ms, 0);
}

static void on_expiry(uv_timer_t *t) {
    nc_bulkhead *b = t->data;
    uint64_t now = uv_hrtime();
    while (b->head && b->head->deadline_ns <= now) {
        waiter *w = b->head;
        unlink_waiter(b, w);
        *w->slot = NULL; /* its on_call_end has nothing to give back */
        b->expired++;
        atomic_fetch_add_explicit(&b->refused, 1, memory_order_relaxed);
        nc_hook_resume(w->info, NC_EREFUSED);
        free(w);
    }
    arm(b);
}

static int cli_admit(void *user, nc_hook_info *i) {
    nc_bulkhead *b = user;
    int r = admit(user, i);
    if (r != NC_EREFUSED || !b->max_queue) return r;
    if (b->queued >= b->max_queue) return r; /* counted as refused by admit */
    waiter *w = malloc(sizeof *w);
    if (!w || nc_hook_hold(i)) {
        free(w);
        return r;
    }
    atomic_fetch_sub_explicit(&b->refused, 1, memory_order_relaxed); /* not refused: queued */
    w->info = i;
    w->slot = i->state;
    w->deadline_ns = b->wait_ns ? i->now_ns + b->wait_ns : UINT64_MAX;
    w->next = NULL;
    w->prev = b->tail;
    if (b->tail)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
    b->queued++;
    *i->state = w;
    if (b->head == w) arm(b);
    return 0;
}

static void cli_end(void *user, nc_hook_info *i, int err) {
    nc_bulkhead *b = user;
    (void)err;
    void *st = *i->state;
    if (!st) return;
    *i->state = NULL;
    if (st != &admitted) { /* ended while queued: cancelled, timed out, the client closed */
        waiter *w = st;
        int was_head = b->head == w;
        unlink_waiter(b, w);
        free(w);
        if (was_head) arm(b);
        return;
    }
    waiter *w = b->head;
    if (!w) {
        atomic_fetch_sub_explicit(&b->in_flight, 1, memory_order_relaxed);
        return;
    }
    /* the permit goes to the queue's head as it is */
    unlink_waiter(b, w);
    *w->slot = &admitted;
    nc_hook_resume(w->info, 0);
    free(w);
    arm(b);
}

static void plain_end(void *user, nc_hook_info *i, int err) {
    srv_finish(user, i, err);
}

static void free_closed(uv_handle_t *h) {
    free(h->data);
}

static void release(void *user) {
    nc_bulkhead *b = user;
    if (b->has_timer)
        uv_close((uv_handle_t *)&b->timer, free_closed); /* the queue is empty: every call ended */
    else
        free(b);
}

/* A bulkhead from the caller's options: 0, NC_EINVAL (no limit given, a struct_size it cannot read, a
 * queue on a server) or NC_ENOMEM. */
static int make(const nc_bulkhead_opts *user_o, int client, nc_bulkhead **out) {
    nc_bulkhead_opts o = {0};
    if (!user_o ||
        nc_abi_copy_in(&o, sizeof o, user_o, user_o->struct_size, offsetof(nc_bulkhead_opts, max_queue)) ||
        o.max_in_flight < 1 || o.max_queue < 0 || o.max_wait_ms < NC_LIMIT_OFF || (!client && o.max_queue))
        return NC_EINVAL;
    nc_bulkhead *b = calloc(1, sizeof *b);
    if (!b) return NC_ENOMEM;
    b->max = o.max_in_flight;
    b->requests_only = o.requests_only;
    b->max_queue = o.max_queue;
    b->wait_ns =
        o.max_wait_ms == NC_LIMIT_OFF ? 0 : (uint64_t)(o.max_wait_ms ? o.max_wait_ms : 1000) * 1000000u;
    *out = b;
    return 0;
}

int nc_client_use_bulkhead(nc_client *cli, const nc_bulkhead_opts *opts, nc_bulkhead **out) {
    if (out) *out = NULL;
    nc_bulkhead *b = NULL;
    int r = cli ? make(opts, 1, &b) : NC_EINVAL;
    if (r) return r;
    /* without a queue, the plain admit and give-back: the queue's checks cost a bulkhead that never
     * queues about 30 instructions a call */
    nc_client_hooks h = {.struct_size = sizeof h,
                         .on_submit = b->max_queue ? cli_admit : admit,
                         .on_call_end = b->max_queue ? cli_end : plain_end,
                         .release = release};
    int id = nc_client_add_hooks(cli, &h, b);
    if (id < 0) {
        free(b);
        return id;
    }
    if (b->max_queue) {
        uv_timer_init(nc_client_loop(cli), &b->timer);
        b->timer.data = b;
        b->has_timer = 1;
    }
    if (out) *out = b;
    return id;
}

int nc_server_use_bulkhead(nc_server *srv, const nc_bulkhead_opts *opts, nc_bulkhead **out) {
    if (out) *out = NULL;
    nc_bulkhead *b = NULL;
    int r = srv ? make(opts, 0, &b) : NC_EINVAL;
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

int nc_bulkhead_queued(const nc_bulkhead *b) {
    return b ? b->queued : 0;
}

uint64_t nc_bulkhead_expired(const nc_bulkhead *b) {
    return b ? b->expired : 0;
}
