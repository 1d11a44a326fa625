/* Settling: every message a settling transport delivers is settled exactly once (message.h), by the
 * core's defaults or by the handler; and kept events, whose message outlives the handler call. */
#include <stdlib.h>
#include <string.h>

#include "core/hooks_internal.h"
#include "core/server_internal.h"
#include "nestc/error.h"

void nc_server__settle(nc_server *s, const nc_delivery *d, nc_settle how) {
    if (d->set && s->tp->settle) s->tp->settle(s->tps, d, how);
}

/* ---- requests ------------------------------------------------------------------------------------- */

void nc_request__settle(nc_req *r, nc_settle how) {
    if (r->settled) return;
    r->settled = 1;
    nc_server__settle(r->srv, &r->delivery, how);
    if (r->hk && r->delivery.set) nc_hooks__settle(r->hk, how);
}

/* The request of a live handle, replied or not (settling outlives the reply stream). */
static nc_req *resolve(nc_request *h) {
    return h ? nc_handle_get(nc_hid_from_ptr(h)) : NULL;
}

int nc_request_settle_manually(nc_request *h) {
    nc_req *r = resolve(h);
    if (!r) return h ? NC_ESTATE : NC_EINVAL;
    if (r->settled) return NC_ESTATE;
    r->settle_manual = 1;
    return 0;
}

static int settle_req(nc_request *h, nc_settle how) {
    nc_req *r = resolve(h);
    if (!r) return h ? NC_ESTATE : NC_EINVAL;
    if (r->settled) return NC_ESTATE;
    r->settle_manual = 1;
    nc_request__settle(r, how);
    /* finished earlier and waiting only for this: it goes now */
    if (r->replied) nc_request__free_unfinished(r);
    return 0;
}

int nc_request_ack(nc_request *h) {
    return settle_req(h, NC_SETTLE_ACK);
}
int nc_request_nack(nc_request *h, bool requeue) {
    return settle_req(h, requeue ? NC_SETTLE_NACK_REQUEUE : NC_SETTLE_NACK);
}
int nc_request_reject(nc_request *h) {
    return settle_req(h, NC_SETTLE_REJECT);
}

/* ---- kept events ---------------------------------------------------------------------------------- */

/* One kept event: the copied message and the delivery, shared by the handles of its keepers. */
struct nc_evd {
    nc_server *srv;
    nc_msg msg;
    nc_delivery delivery;
    nc_hid *hids; /* the keepers' handles, 0 once settled */
    size_t nhids;
    size_t open;            /* keepers not yet settled */
    int running;            /* the handlers have not all returned */
    int worst;              /* strongest outcome asked so far, -1 = none */
    struct nc_hook_rec *hk; /* the hooks' record of the event, NULL when no hook is installed */
    nc_evd *prev, *next;
};

/* reject > nack > nack with requeue > ack */
static int rank(nc_settle how) {
    switch (how) {
    case NC_SETTLE_REJECT:
        return 3;
    case NC_SETTLE_NACK:
        return 2;
    case NC_SETTLE_NACK_REQUEUE:
        return 1;
    default:
        return 0;
    }
}

static void evd_free(nc_evd *e) {
    nc_server *s = e->srv;
    if (e->prev)
        e->prev->next = e->next;
    else
        s->kept_events = e->next;
    if (e->next) e->next->prev = e->prev;
    if (e->hk) nc_hooks__finish(e->hk, s->freeing ? NC_ECLOSED : 0); /* the event is done */
    for (size_t i = 0; i < e->nhids; i++) nc_handle_free(e->hids[i]);
    free(e->hids);
    nc_msg__clear(&e->msg);
    free(e);
}

/* Settles the delivery once the handlers returned and every keeper settled. */
static void evd_maybe_done(nc_evd *e) {
    if (e->running || e->open) return;
    nc_settle how = e->worst < 0 ? NC_SETTLE_ACK : (nc_settle)e->worst;
    nc_server__settle(e->srv, &e->delivery, how);
    if (e->hk && e->delivery.set) nc_hooks__settle(e->hk, how);
    evd_free(e);
}

nc_event *nc_event_keep(const nc_msg *msg) {
    nc_evctx *ec = msg ? msg->evctx : NULL;
    if (!ec) return NULL;
    nc_evd *e = ec->kept;
    if (!e) {
        if (!(e = calloc(1, sizeof *e))) return NULL;
        if (nc_msg__copy(&e->msg, msg)) {
            free(e);
            return NULL;
        }
        e->srv = ec->srv;
        e->delivery = ec->in->delivery;
        e->running = 1;
        e->worst = -1;
        if ((e->hk = ec->hk)) nc_hooks__keep(e->hk, &e->msg); /* the hooks follow it until settled */
        ec->hk = NULL;
        e->next = ec->srv->kept_events;
        if (e->next) e->next->prev = e;
        ec->srv->kept_events = e;
        ec->kept = e;
    }
    nc_hid *h = realloc(e->hids, (e->nhids + 1) * sizeof *h);
    if (!h) return NULL;
    e->hids = h;
    if (nc_handle_alloc(e, e->srv, &h[e->nhids])) return NULL;
    e->open++;
    return nc_hid_to_ptr(h[e->nhids++]);
}

void nc_event__handlers_done(nc_evctx *ec, int matched) {
    if (ec->kept) {
        ec->kept->running = 0;
        evd_maybe_done(ec->kept);
    } else {
        nc_server__settle(ec->srv, &ec->in->delivery, matched ? NC_SETTLE_ACK : NC_SETTLE_REJECT);
    }
}

static nc_evd *ev_resolve(const nc_event *ev) {
    return ev ? nc_handle_get(nc_hid_from_ptr(ev)) : NULL;
}

const nc_msg *nc_event_msg(const nc_event *ev) {
    nc_evd *e = ev_resolve(ev);
    return e ? &e->msg : NULL;
}

struct uv_loop_s *nc_event_loop(const nc_event *ev) {
    nc_evd *e = ev_resolve(ev);
    return e ? e->srv->io.loop : NULL;
}

static int ev_settle(nc_event *ev, nc_settle how) {
    nc_evd *e = ev_resolve(ev);
    if (!e) return ev ? NC_ESTATE : NC_EINVAL;
    nc_hid id = nc_hid_from_ptr(ev);
    for (size_t i = 0; i < e->nhids; i++)
        if (e->hids[i] == id) e->hids[i] = 0;
    nc_handle_free(id);
    if (rank(how) > (e->worst < 0 ? -1 : rank((nc_settle)e->worst))) e->worst = (int)how;
    e->open--;
    evd_maybe_done(e);
    return 0;
}

int nc_event_ack(nc_event *ev) {
    return ev_settle(ev, NC_SETTLE_ACK);
}
int nc_event_nack(nc_event *ev, bool requeue) {
    return ev_settle(ev, requeue ? NC_SETTLE_NACK_REQUEUE : NC_SETTLE_NACK);
}
int nc_event_reject(nc_event *ev) {
    return ev_settle(ev, NC_SETTLE_REJECT);
}

void nc_event__free_all(nc_server *s) {
    while (s->kept_events) {
        nc_evd *e = s->kept_events;
        nc_server__settle(s, &e->delivery, NC_SETTLE_NACK_REQUEUE);
        if (e->hk && e->delivery.set) nc_hooks__settle(e->hk, NC_SETTLE_NACK_REQUEUE);
        evd_free(e);
    }
}
