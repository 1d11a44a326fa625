/* The client core: lazy connection, request ids and correlation, reply streams (spec README §4.3),
 * timeouts, connection retries, and failing what is pending when the connection goes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/envelope.h"
#include "codec/json_build.h"
#include "codec/json_scan.h"
#include "codec/json_write.h"
#include "core/client_internal.h"
#include "core/obs_support.h"
#include "core/hooks_internal.h"
#include "core/route.h"
#include "core/fail.h"
#include "util/abi.h"
#include "util/last_error.h"
#include "io/tls.h"
#include "nestc/error.h"
#include "util/buf.h"
#include "util/handle.h"
#include "util/u64map.h"
#include "util/utf8.h"

enum { DISCONNECTED = 0, CONNECTING, CONNECTED };

/* Reply metadata of a call made with nc_client_call: allocated on the first reply that has any. */
typedef struct cmeta {
    nc_header *h, *t; /* headers, trailers: each one block, the bytes after the array */
    size_t nh, nt;
    int has_status, code;
    char *msg;
} cmeta;

/* A call. The public nc_call is a handle (util/handle.h) to one of these, for calls made with
 * nc_client_call; the simple forms (send, emit) get none. */
typedef struct ccall {
    struct ccall *qnext;         /* waiting for the connection */
    struct ccall *tprev, *tnext; /* in its deadline list */
    int tl;                      /* 1 + index of that list, 0 = no deadline */
    uint64_t at;                 /* deadline (loop time, ms) */
    char id[24];                 /* "" for events */
    uint64_t serial;
    const char *route; /* the pattern cache's, or own_route */
    char *own_route;
    const char *wire; /* JSON text of the pattern as given: the pattern cache's, or own_wire */
    char *own_wire;
    /* The encoded packet, kept until the call ends (so it can be sent again); its memory stays with the
     * pooled call, so the hot path allocates nothing for it. */
    nc_buf body;
    json_t *headers; /* transport headers (a copy), NULL when none */
    nc_optset *opts; /* the call's transport options (parent: the client's), NULL when none */
    int queued, sent;
    int finishing; /* call_done has begun: the handle refuses everything but the accessors */
    int ended;     /* nc_call_end called: no more writes */
    nc_buf wq;     /* request-stream values written while the call was queued ([u32 len][JSON]...): they
                      follow the request once it is out, counted in queued_bytes meanwhile */
    nc_hid hid;    /* 0 for the simple forms */
    cmeta *meta;
    nc_value_fn on_value;
    nc_done_fn on_done;
    void (*on_headers)(void *user, nc_call *call);
    void *user;
    nc_client *cli;
    struct nc_hook_rec *hk; /* the hooks' record of this call, NULL when no hook is installed */
    int tmo;                /* the timeout (ms, 0 = none), started again by a resend */
    int retry_due;          /* in its deadline list for a resend (hooks' should_retry), not a timeout */
    /* An event whose deadline passed while the transport held it: its caller got NC_ETIMEDOUT, and the
     * call waits (in the client's `expired` list, linked by tprev/tnext) for the transport's accepted or
     * refused, which then only frees it (transport.h: the core keeps the call until the transport let go). */
    int expired;
    /* Held by a hook (nc_hook_hold: a bulkhead's queue, a rate limiter's wait): HELD in the client's
     * `held` list until resumed, then READY in its `ready` list until the deadline timer lets it go (or
     * fails it). Encoded and pending meanwhile, but neither sent nor queued for the connection. */
    int hstate;
    struct ccall *hprev, *hnext;
} ccall;

enum { NOT_HELD = 0, HELD, READY };

/* A list of held or ready calls (linked by hprev/hnext), in the order they joined it. */
typedef struct hlist {
    ccall *head, *tail;
} hlist;

#define BODY_POOL_MAX 1024 /* a pooled call keeps a body buffer up to this size */

/* Calls with the same timeout expire in the order they were made: one list per distinct timeout keeps
 * deadlines sorted with O(1) insert and removal (usually there is just one list). */
typedef struct tlist {
    int tmo;
    ccall *head, *tail;
} tlist;

/* What a pattern text means, computed once per distinct text (NestJS route, wire forms). */
typedef struct pinfo {
    char *route;
    char *wire; /* JSON text of the pattern value */
    size_t wire_len;
    char *ev_wire; /* JSON text of the route as a string (events on transports that send routes) */
    size_t ev_wire_len;
} pinfo;

#define PCACHE_MAX 1024
#define CALL_POOL_MAX 4096
#define ID_PREFIX_LEN 8
#define ID_SERIAL_LEN 13

struct nc_client {
    nc_ioctx io;
    nc_url url;
    nc_client_cfg cfg;
    nc_optset opts; /* transport options, level client: URL parameters and nc_client_opts.options */
    nc_logger log;
    const nc_client_transport *tp;
    void *tps;
    int state;
    int tp_open; /* the transport has a connection (or attempt) to close */
    int attempts;
    /* (the connect timeout is the transport's: the timer of its connection attempt, io/dial.h) */
    uv_timer_t retry_timer, deadline_timer;
    nc_u64map pending; /* serial → ccall (requests awaiting replies) */
    ccall *qhead, *qtail;
    size_t queued_bytes; /* encoded bytes of the queued calls (capped by max_send_buffer_size) */
    size_t nevents;      /* events not yet accepted */
    ccall *expired;      /* events past their deadline still held by the transport (ccall.expired) */
    tlist *tlists;
    int ntlists;
    uint64_t timer_at; /* when the deadline timer fires, if active */
    nc_map pcache;     /* pattern text → pinfo */
    ccall *pool;       /* finished calls kept for reuse */
    size_t npool;
    ccall *sending; /* the call inside tp->send (cleared if it completes meanwhile) */
    nc_buf orphan;  /* the body of a call that completed inside tp->send, freed once send() returns */
    nc_buf enc;     /* the largest body buffer seen: lent to each new call, given back when it ends */
    uint64_t next_serial;
    char id_prefix[ID_PREFIX_LEN + 1];
    nc_buf ptext; /* JSON text of a pattern given as a value (cache key) */
    nc_done_fn connect_done;
    void *connect_user;
    nc_status_fn status_fn;
    void *status_user;
    nc_error_fn error_fn;
    void *error_user;
    const char *last_status;
    int freeing;
    int in_cb; /* inside this client's on_done/on_value/on_headers (the loop's clock is fresh enough) */
    int open_timers;
    struct nc_hook_table *hooks; /* installed hooks (hooks.c), NULL when none */
    hlist held, ready;           /* calls held by a hook, and those resumed (ccall.hstate) */
};

const nc_optset *nc_client__opts(nc_client *c) {
    return &c->opts;
}

struct nc_hook_table **nc_client__hooks(nc_client *c) {
    return &c->hooks;
}

const nc_client_cfg *nc_client__cfg(nc_client *c) {
    return &c->cfg;
}
const char *nc_client__scheme(nc_client *c) {
    return c->url.scheme;
}

nc_ioctx *nc_client__io(nc_client *c) {
    return &c->io;
}
const nc_logger *nc_client__log(nc_client *c) {
    return &c->log;
}

/* ---- deadlines: one libuv timer for all requests, lists of calls per timeout ------------------- */

static void on_deadline(uv_timer_t *t);

static void arm_at(nc_client *c, uint64_t at) {
    if (uv_is_active((uv_handle_t *)&c->deadline_timer) && c->timer_at <= at) return;
    uint64_t now = uv_now(c->io.loop);
    c->timer_at = at;
    uv_timer_start(&c->deadline_timer, on_deadline, at > now ? at - now : 0, 0);
}

static int deadline_add(nc_client *c, ccall *k, int tmo) {
    /* The loop's clock is read when an iteration starts: a call made outside the loop's callbacks (after
     * the program did other work, or the loop sat idle between blocking calls, as before each blocking
     * helper's call) would measure its timeout from a time already past and fire that much early. Inside
     * the library's own loop runs (nc_client_run, nc_server_run, the blocking helpers) and inside this
     * client's callbacks (a call made from on_done: the pipelined hot path) the clock is the iteration's,
     * and the clock read (a system call on some hosts, ~100 ns) is spared. */
    /* A big call (its encoding took far longer than the read) always reads it: a callback that makes
     * many of them would otherwise date the last ones from before the first was encoded. */
    if (k->body.len >= 16384 || (!c->in_cb && !nc_loop_running_here(c->io.loop))) uv_update_time(c->io.loop);
    int i = 0;
    while (i < c->ntlists && c->tlists[i].tmo != tmo) i++;
    if (i == c->ntlists) {
        tlist *l = realloc(c->tlists, (size_t)(c->ntlists + 1) * sizeof *l);
        if (!l) return NC_ENOMEM;
        c->tlists = l;
        l[c->ntlists++] = (tlist){tmo, NULL, NULL};
    }
    tlist *l = &c->tlists[i];
    k->tl = i + 1;
    k->at = uv_now(c->io.loop) + (uint64_t)tmo;
    k->tprev = l->tail;
    k->tnext = NULL;
    if (l->tail)
        l->tail->tnext = k;
    else
        l->head = k;
    l->tail = k;
    arm_at(c, k->at); /* only restarts the timer when this deadline is earlier than the armed one */
    return 0;
}

static void deadline_remove(nc_client *c, ccall *k) {
    if (!k->tl) return;
    tlist *l = &c->tlists[k->tl - 1];
    if (k->tprev)
        k->tprev->tnext = k->tnext;
    else
        l->head = k->tnext;
    if (k->tnext)
        k->tnext->tprev = k->tprev;
    else
        l->tail = k->tprev;
    k->tl = 0;
}

/* ---- calls held by hooks ------------------------------------------------------------------------- */

static void hlist_add(hlist *l, ccall *k) {
    k->hnext = NULL;
    k->hprev = l->tail;
    if (l->tail)
        l->tail->hnext = k;
    else
        l->head = k;
    l->tail = k;
}

static void hlist_del(hlist *l, ccall *k) {
    if (k->hprev)
        k->hprev->hnext = k->hnext;
    else
        l->head = k->hnext;
    if (k->hnext)
        k->hnext->hprev = k->hprev;
    else
        l->tail = k->hprev;
    k->hprev = k->hnext = NULL;
}

static void hold_unlink(nc_client *c, ccall *k) {
    if (k->hstate == HELD) hlist_del(&c->held, k);
    if (k->hstate == READY) hlist_del(&c->ready, k);
    k->hstate = NOT_HELD;
}

void nc_client__resume(nc_client *c, void *call) {
    ccall *k = call;
    if (!k || k->hstate != HELD) return;
    hlist_del(&c->held, k);
    k->hstate = READY;
    hlist_add(&c->ready, k);
    /* never inside the caller's callback (a hook of another call, mid-way through its end): from the
     * deadline timer, at once */
    arm_at(c, uv_now(c->io.loop));
}

/* ---- call lifecycle ------------------------------------------------------------------------------- */

static ccall *call_new(nc_client *c) {
    ccall *k = c->pool;
    if (k) {
        c->pool = k->qnext;
        c->npool--;
    } else if (!(k = malloc(sizeof *k))) {
        return NULL;
    } else {
        k->body = (nc_buf)NC_BUF_INIT;
    }
    nc_buf body = k->body; /* a pooled call's buffer is kept (see BODY_POOL_MAX) */
    memset(k, 0, sizeof *k);
    k->body = body;
    k->body.len = 0;
    k->cli = c;
    return k;
}

static void meta_free(cmeta *m) {
    if (!m) return;
    free(m->h);
    free(m->t);
    free(m->msg);
    free(m);
}

static void call_free(ccall *k) {
    nc_client *c = k->cli;
    if (k->hk) nc_hooks__call_end(k->hk, NC_ENOMEM);
    k->hk = NULL;
    free(k->own_route);
    free(k->own_wire);
    json_decref(k->headers);
    k->headers = NULL;
    nc_buf_free(&k->wq);
    if (k->opts) {
        nc_optset_free(k->opts);
        free(k->opts);
        k->opts = NULL;
    }
    if (k->meta) {
        meta_free(k->meta);
        k->meta = NULL;
    }
    if (k->body.cap > c->enc.cap) { /* the encoder keeps the largest buffer: big payloads reuse it */
        nc_buf t = c->enc;
        c->enc = k->body;
        k->body = t;
    }
    if (k->body.cap > BODY_POOL_MAX) nc_buf_free(&k->body);
    if (c->npool < CALL_POOL_MAX && !c->freeing) {
        k->qnext = c->pool;
        c->pool = k;
        c->npool++;
    } else {
        nc_buf_free(&k->body);
        free(k);
    }
}

static void unqueue(nc_client *c, ccall *k) {
    ccall *prev = NULL;
    for (ccall *it = c->qhead; it; prev = it, it = it->qnext) {
        if (it != k) continue;
        if (prev)
            prev->qnext = it->qnext;
        else
            c->qhead = it->qnext;
        if (c->qtail == it) c->qtail = prev;
        c->queued_bytes -= k->body.len + k->wq.len;
        break;
    }
    k->queued = 0;
}

static int retry(nc_client *c, ccall *k, int err);

/* Completes a call: removes it from every table, then tells the application. */
static void call_done(ccall *k, int err, json_t *error) {
    nc_client *c = k->cli;
    if (k->hk && err && !k->hstate && retry(c, k, err)) return; /* a held call was never sent */
    k->finishing = 1;
    if (k->hstate) hold_unlink(c, k);
    if (c->sending == k) {
        /* inside tp->send: the transport may still read the body until it returns */
        c->sending = NULL;
        c->orphan = k->body;
        k->body = (nc_buf)NC_BUF_INIT;
    }
    if (k->queued) unqueue(c, k);
    deadline_remove(c, k);
    if (k->id[0]) {
        nc_u64map_del(&c->pending, k->serial);
        if (c->tp->forget && k->sent) c->tp->forget(c->tps, k->route, k->id);
    } else {
        c->nevents--;
    }
    if (k->hk) {
        nc_hooks__call_end(k->hk, err);
        k->hk = NULL;
    }
    if (k->on_done) {
        c->in_cb++;
        k->on_done(k->user, err, error);
        c->in_cb--;
    }
    if (k->hid) nc_handle_free(k->hid); /* the handle was valid until on_done returned */
    call_free(k);
}

static void call_fail(ccall *k, int err, const char *msg) {
    const char *t = msg ? msg : nc_strerror(err);
    json_t *e = nc_json_string_js(t, strlen(t), 1); /* may quote peer text: json_string() could refuse it */
    call_done(k, err, e);
    json_decref(e);
}

static int send_body(nc_client *c, ccall *k);
static void enqueue(nc_client *c, ccall *k);

/* A retry hook asked for the request again (should_retry): it waits its delay in a deadline list, then
 * is sent again with the same id and bytes, its timeout started again. Returns 1 when the call goes on. */
static int retry(nc_client *c, ccall *k, int err) {
    int delay = 0;
    if (c->freeing || err == NC_ECLOSED || err == NC_ECANCELED || !k->id[0] ||
        !nc_hooks__should_retry(k->hk, err, &delay))
        return 0;
    if (c->sending == k) c->sending = NULL; /* failed inside send(): send_body must not fail it again */
    if (k->queued) unqueue(c, k);
    deadline_remove(c, k);
    k->retry_due = 1;
    return deadline_add(c, k, delay) == 0;
}

static void resend_due(nc_client *c, ccall *k) {
    deadline_remove(c, k);
    k->retry_due = 0;
    if (k->tmo > 0 && deadline_add(c, k, k->tmo)) {
        call_fail(k, NC_ENOMEM, NULL);
        return;
    }
    if (c->state == CONNECTED && !c->qhead)
        send_body(c, k);
    else
        enqueue(c, k);
}

/* The request timeout fired: RxJS's words (NestJS's TimeoutError), then which phase it was in. A call
 * still queued never reached the peer: connecting (or waiting to retry it) took the whole time. */
static void event_expire(nc_client *c, ccall *k, const char *msg);

static void call_timed_out(nc_client *c, ccall *k) {
    char msg[400];
    if (k->hstate) { /* never sent: a hook held it (a bulkhead's queue, a rate limiter) all that time */
        snprintf(msg, sizeof msg,
                 "Timeout has occurred: held by a client policy (bulkhead queue or rate limit) for the "
                 "whole timeout of %d ms",
                 k->tmo);
        call_fail(k, NC_ETIMEDOUT, msg);
        return;
    }
    if (!k->id[0] && !k->queued) {
        snprintf(msg, sizeof msg,
                 "Timeout has occurred: the event was not accepted by the transport within %d ms (%s)",
                 k->tmo, c->url.text);
        event_expire(c, k, msg);
        return;
    }
    if (!k->id[0])
        snprintf(msg, sizeof msg,
                 "Timeout has occurred: not connected to %s within the event timeout of %d ms", c->url.text,
                 k->tmo);
    else if (k->queued)
        snprintf(msg, sizeof msg,
                 "Timeout has occurred: not connected to %s within the request timeout of %d ms", c->url.text,
                 k->tmo);
    else
        snprintf(msg, sizeof msg, "Timeout has occurred: no reply within %d ms", k->tmo);
    call_fail(k, NC_ETIMEDOUT, msg);
}

static void release_ready(nc_client *c) {
    ccall *k;
    while ((k = c->ready.head)) {
        hold_unlink(c, k);
        int err = k->hk ? k->hk->hold_err : 0;
        if (err)
            call_fail(k, err, NULL);
        else if (c->state == CONNECTED && !c->qhead)
            send_body(c, k);
        else
            enqueue(c, k);
    }
}

static void on_deadline(uv_timer_t *t) {
    nc_client *c = t->data;
    if (c->ready.head) release_ready(c);
    uint64_t now = uv_now(c->io.loop), next = UINT64_MAX;
    for (int i = 0; i < c->ntlists; i++) {
        ccall *k;
        while ((k = c->tlists[i].head) && k->at <= now) {
            if (k->retry_due)
                resend_due(c, k);
            else
                call_timed_out(c, k);
        }
    }
    for (int i = 0; i < c->ntlists; i++)
        if (c->tlists[i].head && c->tlists[i].head->at < next) next = c->tlists[i].head->at;
    if (next != UINT64_MAX) arm_at(c, next);
}

/* Fails every call: queued ones and, when `pending_too`, those awaiting replies. */
static void fail_all(nc_client *c, int err, const char *msg, int pending_too) {
    /* held calls were never sent: only closing the client ends them (first, so that a bulkhead does not
     * hand a freed slot to one of them while the others end) */
    while (err == NC_ECLOSED && (c->held.head || c->ready.head))
        call_fail(c->held.head ? c->held.head : c->ready.head, err, msg);
    while (c->qhead) call_fail(c->qhead, err, msg);
    if (!pending_too) return;
    /* by serial, looked up again before each: an on_done may cancel (complete) another call meanwhile */
    uint64_t *list = NULL;
    size_t n = 0, it = 0;
    void *v;
    if (c->pending.len) {
        list = malloc(c->pending.len * sizeof *list);
        if (!list) return;
        while (nc_u64map_next(&c->pending, &it, &v)) list[n++] = ((ccall *)v)->serial;
    }
    for (size_t i = 0; i < n; i++) {
        ccall *k = nc_u64map_get(&c->pending, list[i]);
        /* a request a retry hook took back (the queue sweep above may just have) waits for its resend, on
         * no connection: a lost connection is not its failure (it would be asked to retry twice); closing
         * the client still ends it */
        if (k && ((!k->retry_due && !k->hstate) || err == NC_ECLOSED)) call_fail(k, err, msg);
    }
    free(list);
}

/* ---- status ------------------------------------------------------------------------------------- */

static void set_status(nc_client *c, const char *status, int err) {
    if (c->last_status && strcmp(c->last_status, status) == 0) return;
    c->last_status = status;
    if (c->status_fn) c->status_fn(c->status_user, status, err);
}

static ccall *call_by_id(nc_client *c, const char *id, size_t len);

void nc_client__fail_call(nc_client *c, const char *id, int err, const char *msg) {
    ccall *k = call_by_id(c, id, strlen(id));
    if (k) call_fail(k, err, msg);
}

void nc_client__status(nc_client *c, const char *status, int err) {
    set_status(c, status, err);
}

void nc_client_on_status(nc_client *c, nc_status_fn fn, void *user) {
    c->status_fn = fn;
    c->status_user = user;
}

void nc_client_on_error(nc_client *c, nc_error_fn fn, void *user) {
    c->error_fn = fn;
    c->error_user = user;
    nc_logger_errors_delivered(&c->log, fn != NULL); /* not printed twice: docs/logging.md */
}

void nc_client__error(nc_client *c, int err, const char *msg) {
    if (c->error_fn) c->error_fn(c->error_user, err, msg);
}

/* ---- connection --------------------------------------------------------------------------------- */

static int start_connect(nc_client *c) {
    c->state = CONNECTING;
    c->tp_open = 1;
    int r = c->tp->connect(c->tps);
    if (r) {
        c->state = DISCONNECTED;
        c->tp_open = 0;
        return r;
    }
    return 0;
}

static int send_body(nc_client *c, ccall *k);

void nc_client__connected(nc_client *c) {
    c->state = CONNECTED;
    c->attempts = 0;
    set_status(c, "connected", 0);
    if (c->connect_done) {
        nc_done_fn fn = c->connect_done;
        c->connect_done = NULL;
        fn(c->connect_user, 0, NULL);
    }
    while (c->qhead && c->state == CONNECTED) {
        ccall *k = c->qhead;
        unqueue(c, k);
        send_body(c, k);
    }
}

static void on_retry(uv_timer_t *t) {
    nc_client *c = t->data;
    if (c->state != DISCONNECTED || c->freeing) return;
    int r = start_connect(c);
    if (r) nc_client__disconnected(c, r, "connect failed");
}

void nc_client__disconnected(nc_client *c, int err, const char *msg) {
    int was = c->state;
    c->state = DISCONNECTED;
    c->tp_open = 0;
    set_status(c, "disconnected", err);
    char text[256];
    snprintf(text, sizeof text, "%s", msg && *msg ? msg : nc_strerror(err));
    if (was == CONNECTING) {
        if (err == 0) err = NC_ECONNCLOSED;
        nc_client__error(c, err, text);
        if (c->attempts < c->cfg.retry_attempts && !c->freeing) {
            c->attempts++;
            nc_logf(&c->log, NC_LOG_WARN, "Client", "%s; retrying in %d ms (attempt %d of %d)", text,
                    c->cfg.retry_delay_ms, c->attempts, c->cfg.retry_attempts);
            uv_timer_start(&c->retry_timer, on_retry, (uint64_t)c->cfg.retry_delay_ms, 0);
            return;
        }
        c->attempts = 0;
        if (c->connect_done) {
            nc_done_fn fn = c->connect_done;
            c->connect_done = NULL;
            json_t *e = nc_json_string_js(text, strlen(text), 1); /* may quote the peer */
            fn(c->connect_user, err, e);
            json_decref(e);
        }
        fail_all(c, err, text, 1);
        return;
    }
    if (err && err != NC_ECLOSED) nc_client__error(c, err, text);
    /* A connection that failed for a reason that says what to fix — a TLS failure after the handshake
     * (TLS 1.3: the server refuses our certificate only after our handshake is done, with an alert), a
     * reply that is not valid JSON or over max_buffer_size, a peer that stalled mid-frame or does not
     * read — fails the calls with that reason. Otherwise (the peer closed or reset it), as NestJS:
     * "Connection closed"; the next call reconnects. */
    if (err == NC_ETLS || err == NC_EPROTO || err == NC_ETOOBIG || err == NC_ESTALLED ||
        err == NC_ETIMEDOUT || err == NC_ENOMEM || err == NC_EAUTH)
        fail_all(c, err, text, 1);
    else if (err == NC_ECONNCLOSED && !strncmp(text, "Connection closed", 17))
        fail_all(c, err, text, 1); /* NestJS's words, with what the transport could add */
    else
        fail_all(c, err == NC_ECLOSED ? NC_ECLOSED : NC_ECONNCLOSED, "Connection closed", 1);
}

int nc_client_connect(nc_client *c, nc_done_fn done, void *user) {
    if (!c) return NC_EINVAL;
    if (c->state == CONNECTED) {
        if (done) done(user, 0, NULL);
        return 0;
    }
    c->connect_done = done;
    c->connect_user = user;
    if (c->state == CONNECTING || uv_is_active((uv_handle_t *)&c->retry_timer)) return 0;
    c->attempts = 0;
    return start_connect(c);
}

/* ---- replies ------------------------------------------------------------------------------------ */

/* The serial inside one of our ids ("<8 hex prefix><13 hex serial>"), or 0 for any other id. */
static uint64_t serial_of(const nc_client *c, const char *id, size_t len) {
    if (len != ID_PREFIX_LEN + ID_SERIAL_LEN || memcmp(id, c->id_prefix, ID_PREFIX_LEN) != 0) return 0;
    uint64_t v = 0;
    for (size_t i = ID_PREFIX_LEN; i < len; i++) {
        unsigned ch = (unsigned char)id[i];
        unsigned d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : 16;
        if (d == 16) return 0;
        v = v * 16 + d;
    }
    return v;
}

static ccall *call_by_id(nc_client *c, const char *id, size_t len) {
    uint64_t serial = serial_of(c, id, len);
    return serial ? nc_u64map_get(&c->pending, serial) : NULL;
}

/* The pending call a reply answers, by its id whatever carried it: JSON text from a body (a string
 * without escapes: ours are hex, so an escaped one is not ours), or raw bytes from a property/header. */
static ccall *call_of_reply(nc_client *c, const nc_reply_in *r) {
    const char *id = r->id;
    size_t len = r->id_len;
    if (!id) return NULL;
    if (r->id_is_json) {
        if (len < 2 || id[0] != '"' || id[len - 1] != '"' || memchr(id, '\\', len)) return NULL;
        id++;
        len -= 2;
    }
    return call_by_id(c, id, len);
}

/* One block: the array, then each name and value NUL-terminated. NULL when out of memory. */
static nc_header *headers_copy(const nc_header *h, size_t n) {
    size_t bytes = n * sizeof *h;
    for (size_t i = 0; i < n; i++) bytes += h[i].name_len + h[i].value_len + 2;
    nc_header *out = malloc(bytes ? bytes : 1);
    if (!out) return NULL;
    char *p = (char *)(out + n);
    for (size_t i = 0; i < n; i++) {
        out[i].name = p;
        out[i].name_len = h[i].name_len;
        if (h[i].name_len) memcpy(p, h[i].name, h[i].name_len);
        p[h[i].name_len] = '\0';
        p += h[i].name_len + 1;
        out[i].value = p;
        out[i].value_len = h[i].value_len;
        if (h[i].value_len) memcpy(p, h[i].value, h[i].value_len);
        p[h[i].value_len] = '\0';
        p += h[i].value_len + 1;
    }
    return out;
}

/* Keeps what the reply carried beside its value for the accessors (calls with a handle only: nobody else
 * can read it). Returns 1 when these are the call's first headers (on_headers is due). */
static int keep_meta(ccall *k, const nc_reply_in *r) {
    if (!k->hid || !(r->nheaders || r->ntrailers || r->has_status)) return 0;
    if (!k->meta && !(k->meta = calloc(1, sizeof *k->meta))) return 0;
    cmeta *m = k->meta;
    int first = 0;
    if (r->nheaders && !m->h && (m->h = headers_copy(r->headers, r->nheaders))) {
        m->nh = r->nheaders;
        first = 1;
    }
    if (r->ntrailers) {
        free(m->t);
        m->nt = (m->t = headers_copy(r->trailers, r->ntrailers)) ? r->ntrailers : 0;
    }
    if (r->has_status) {
        char *msg = malloc(r->status_msg_len + 1);
        if (msg) {
            if (r->status_msg_len) memcpy(msg, r->status_msg, r->status_msg_len);
            msg[r->status_msg_len] = '\0';
            free(m->msg);
            m->msg = msg;
            m->has_status = 1;
            m->code = r->status_code;
        }
    }
    return first;
}

/* A NestJS server (and ours) answers a pattern it has no handler for with exactly this error string: the
 * caller sees NC_ENOHANDLER, as with NATS's no-responders, and still gets the value as received. */
static int is_no_handler(const json_t *err) {
    static const char text[] = "There is no matching message handler defined in the remote service.";
    return json_is_string(err) && json_string_length(err) == sizeof text - 1 &&
           !memcmp(json_string_value(err), text, sizeof text - 1);
}

/* Delivers one reply packet to its call (spec README §4.3). value NULL = undefined. `r` (may be NULL)
 * brings headers, status and trailers. */
static void deliver(nc_client *c, ccall *k, json_t *value, json_t *err, int final, const nc_reply_in *r) {
    uint64_t serial = k->serial;
    if (r && keep_meta(k, r) && k->on_headers) {
        c->in_cb++;
        k->on_headers(k->user, nc_hid_to_ptr(k->hid));
        c->in_cb--;
        /* on_headers may have cancelled the call or closed the client */
        if (nc_u64map_get(&c->pending, serial) != k) return;
    }
    if (k->hk && !err && (value || !final)) nc_hooks__client_reply(k->hk, value ? value : json_null(), final);
    if (err) {
        call_done(k, is_no_handler(err) ? NC_ENOHANDLER : NC_EREMOTE, err);
    } else if (final) {
        if (value && k->on_value) {
            c->in_cb++;
            k->on_value(k->user, value);
            c->in_cb--;
        }
        /* on_value may have cancelled the call or closed the client, which completes the call */
        if (nc_u64map_get(&c->pending, serial) == k) call_done(k, 0, NULL);
    } else if (k->on_value) {
        c->in_cb++;
        k->on_value(k->user, value ? value : json_null());
        c->in_cb--;
    }
}

static void unknown_id(nc_client *c) {
    /* Unknown (finished, timed out, or someone else's): dropped, as NestJS does. */
    nc_logf(&c->log, NC_LOG_DEBUG, "Client", "reply for an unknown request id dropped");
}

/* Builds a reply's values from their JSON texts and delivers them to k. `scanned`: the texts were
 * checked by the scanner. `meta` (may be NULL) brings headers, status and trailers. */
static void reply_texts(nc_client *c, ccall *k, const char *etext, size_t elen, const char *vtext,
                        size_t vlen, int final, const nc_reply_in *meta, int scanned) {
    json_t *err = NULL, *value = NULL;
    if (etext) err = scanned ? nc_json_build(etext, elen) : nc_json_parse_text(etext, elen, NULL);
    if (!err && vtext) value = scanned ? nc_json_build(vtext, vlen) : nc_json_parse_text(vtext, vlen, NULL);
    if ((etext && !err) || (vtext && !err && !value)) {
        nc_json_free(err);
        nc_logf(&c->log, NC_LOG_ERROR, "Client", "reply dropped: its value is not JSON");
        return;
    }
    deliver(c, k, value, err, err || final, meta);
    nc_json_free(err);
    nc_json_free(value);
}

void nc_client__on_reply(nc_client *c, const nc_reply_in *r) {
    ccall *k = call_of_reply(c, r);
    if (!k) {
        unknown_id(c);
        return;
    }
    const nc_reply_in *meta = r->nheaders || r->ntrailers || r->has_status ? r : NULL;
    reply_texts(c, k, r->err, r->err_len, r->value, r->value_len, r->final, meta, 0);
}

/* The common case: a NestJS reply packet, scanned without a DOM (what on_reply does, with the
 * scanner's knowledge of the id: no second look at it). Returns 0 when handled. */
static int on_body_scan(nc_client *c, const char *body, size_t len, const nc_reply_in *extra) {
    nc_reply_env e;
    if (nc_reply_env_scan(body, len, &e) != NC_SCAN_OK || e.other_keys || e.nkeys == 0) return -1;
    ccall *k = NULL;
    if (e.id.p && e.id.p[0] == '"' && !(e.id.flags & NC_SPAN_ESC))
        k = call_by_id(c, e.id.p + 1, e.id.len - 2);
    if (!k) {
        unknown_id(c);
        return 0;
    }
    int err = nc_span_truthy(&e.err);
    reply_texts(c, k, err ? e.err.p : NULL, e.err.len, e.response.p, e.response.len,
                nc_span_truthy(&e.disposed), extra, 1);
    return 0;
}

int nc_client__on_body_ex(nc_client *c, const char *body, size_t len, const nc_reply_in *extra, char *why,
                          size_t whylen) {
    if (!(c->cfg.has_codec && c->cfg.codec.deserialize) && on_body_scan(c, body, len, extra) == 0) return 0;
    json_t *root = NULL;
    int js_accepts = 0;
    int pr = nc_json_parse_js(body, len, &root, why, whylen, &js_accepts);
    if (pr && js_accepts) {
        /* JSON to NestJS, but deeper than we hold (json_build.h): the reply is dropped (its call ends by
         * its timeout), the connection and the other calls on it are kept */
        nc_logf(&c->log, NC_LOG_ERROR, "Client", "reply dropped: nested deeper than %d levels",
                NC_JSON_MAX_DEPTH);
        return 0;
    }
    if (pr) return NC_EPROTO;
    if (c->cfg.has_codec && c->cfg.codec.deserialize) {
        json_t *x = c->cfg.codec.deserialize(c->cfg.codec.user, root);
        nc_json_free(root);
        if (!x) return 0;
        root = x;
    }
    nc_response resp;
    nc_envelope_read_response(root, &resp);
    nc_reply_in r;
    if (extra)
        r = *extra;
    else
        memset(&r, 0, sizeof r);
    r.id = json_is_string(resp.id) ? json_string_value(resp.id) : NULL; /* the raw text */
    r.id_len = r.id ? json_string_length(resp.id) : 0;
    r.id_is_json = 0;
    ccall *k = call_of_reply(c, &r);
    if (!k)
        unknown_id(c);
    else
        deliver(c, k, resp.response, resp.err, resp.final, extra);
    nc_json_free(root);
    return 0;
}

int nc_client__on_body(nc_client *c, const char *body, size_t len, char *why, size_t whylen) {
    return nc_client__on_body_ex(c, body, len, NULL, why, whylen);
}

/* ---- send / emit -------------------------------------------------------------------------------- */

/* An event's deadline passed while the transport holds it: the caller hears NC_ETIMEDOUT now, as from
 * call_done, but the call object stays (off every table but `expired`) until the transport's accepted
 * or refused arrives, so the `arg` it holds never dangles. */
static void event_expire(nc_client *c, ccall *k, const char *msg) {
    k->finishing = 1;
    deadline_remove(c, k);
    c->nevents--;
    k->expired = 1;
    k->tprev = NULL;
    k->tnext = c->expired;
    if (c->expired) c->expired->tprev = k;
    c->expired = k;
    if (k->hk) {
        nc_hooks__call_end(k->hk, NC_ETIMEDOUT);
        k->hk = NULL;
    }
    json_t *e = nc_json_string_js(msg, strlen(msg), 1);
    if (k->on_done) {
        c->in_cb++;
        k->on_done(k->user, NC_ETIMEDOUT, e);
        c->in_cb--;
    }
    json_decref(e);
    if (k->hid) nc_handle_free(k->hid);
    k->hid = 0;
}

/* The transport let go of an expired event: its outcome is nobody's any more. */
static void expired_release(nc_client *c, ccall *k) {
    if (k->tprev)
        k->tprev->tnext = k->tnext;
    else
        c->expired = k->tnext;
    if (k->tnext) k->tnext->tprev = k->tprev;
    k->expired = 0;
    call_free(k);
}

static void event_accepted(void *arg, int err) {
    ccall *k = arg;
    if (k->expired) {
        expired_release(k->cli, k);
        return;
    }
    if (err)
        call_fail(k, err, "the event could not be written");
    else
        call_done(k, 0, NULL);
}

static void event_refused(void *arg, int err, const char *msg) {
    ccall *k = arg;
    if (k->expired) {
        expired_release(k->cli, k);
        return;
    }
    call_fail(k, err, msg);
}

static int stream_out(nc_client *c, ccall *k, const char *text, size_t len);

/* The values written while the call waited for the connection, in order, then its end if it was ended
 * meanwhile. A write the transport refuses fails the call (its caller was told 0 when it queued). */
static void send_queued_writes(nc_client *c, ccall *k) {
    nc_buf q = k->wq;
    k->wq = (nc_buf)NC_BUF_INIT;
    uint64_t serial = k->serial;
    int r = 0;
    for (size_t off = 0; off + 4 <= q.len && !r;) {
        uint32_t n;
        memcpy(&n, q.data + off, 4);
        r = stream_out(c, k, q.data + off + 4, n);
        off += 4 + n + 1;
        if (nc_u64map_get(&c->pending, serial) != k) r = NC_ESTATE; /* it ended meanwhile */
    }
    if (!r && k->ended && c->tp->end) r = stream_out(c, k, NULL, 0);
    nc_buf_free(&q);
    if (r && r != NC_ESTATE && nc_u64map_get(&c->pending, serial) == k) call_fail(k, r, nc_strerror(r));
}

/* Hands the call's encoded packet to the transport. The call may complete inside (the connection
 * failing): its body then waits in c->orphan until send() has returned. Returns 0 or the error the call
 * failed with. */
static int send_body(nc_client *c, ccall *k) {
    nc_outbound out = {.route = k->route,
                       .pattern_json = k->wire,
                       .body = k->body.data,
                       .len = k->body.len,
                       .id = k->id[0] ? k->id : NULL,
                       .headers = k->headers,
                       .opts = k->opts,
                       .writable = k->hid != 0 && (!k->ended || k->wq.len)};
    if (!k->id[0]) {
        out.accepted = event_accepted;
        out.refused = event_refused;
        out.arg = k;
    } else if (k->tl) {
        uint64_t now = uv_now(c->io.loop);
        out.deadline_ms = k->at > now ? (uint32_t)(k->at - now) : 1;
    }
    int was_sent = k->sent;
    k->sent = 1;
    c->sending = k;
    int r = c->tp->send(c->tps, &out);
    int alive = c->sending == k;
    c->sending = NULL;
    if (c->orphan.data) nc_buf_free(&c->orphan);
    if (r && alive) {
        k->sent = was_sent; /* the transport did not take it: nothing (new) to forget */
        call_fail(k, r, out.why[0] ? out.why : r == NC_ECONNCLOSED ? "Connection closed" : nc_strerror(r));
    }
    if (!r && alive && k->wq.len) send_queued_writes(c, k);
    return r;
}

static void pinfo_free(pinfo *pi) {
    free(pi->route);
    free(pi->wire);
    free(pi->ev_wire);
}

static char *json_text(const json_t *v, size_t *len) {
    nc_buf b = NC_BUF_INIT;
    if (nc_json_write(&b, v)) {
        nc_buf_free(&b);
        return NULL;
    }
    char *t = nc_buf_steal(&b, len);
    if (!t) nc_buf_free(&b);
    return t;
}

/* Route and wire forms of a pattern value. Returns 0, NC_EINVAL (null/boolean) or NC_ENOMEM. */
static int pinfo_compute(nc_client *c, const json_t *pattern, pinfo *pi) {
    memset(pi, 0, sizeof *pi);
    if (json_is_null(pattern) || json_is_boolean(pattern)) {
        return nc_fail(&c->log, "Client", NC_EINVAL, "The invalid data or message pattern (undefined/null)");
    }
    int r = nc_route_from_value(pattern, &pi->route);
    if (r) return r;
    json_t *rs = json_stringn_nocheck(pi->route, strlen(pi->route)); /* a lone surrogate is WTF-8 */
    pi->wire = json_text(pattern, &pi->wire_len);
    pi->ev_wire = rs ? json_text(rs, &pi->ev_wire_len) : NULL;
    json_decref(rs);
    if (!pi->wire || !pi->ev_wire) {
        pinfo_free(pi);
        return NC_ENOMEM;
    }
    return 0;
}

/* The cached info of a pattern text, or computed into *tmp (which the caller frees) when the cache is
 * full. NULL with *err set on failure. */
static const pinfo *pinfo_of_text(nc_client *c, const char *text, pinfo *tmp, int *err) {
    size_t n = strlen(text);
    pinfo *pi = nc_map_get(&c->pcache, text, n);
    if (pi) return pi;
    json_t *p = nc_pattern_from_text(text);
    /* NULL: out of memory, or text that is no UTF-8 (which no pattern can be) */
    *err = p ? pinfo_compute(c, p, tmp) : nc_wtf8_valid(text, n) ? NC_ENOMEM : NC_EINVAL;
    json_decref(p);
    if (*err) return NULL;
    if (c->pcache.len >= PCACHE_MAX || !(pi = malloc(sizeof *pi))) return tmp;
    *pi = *tmp;
    if (nc_map_put(&c->pcache, text, n, pi, NULL)) {
        free(pi);
        return tmp;
    }
    return pi;
}

static int encode(nc_client *c, nc_buf *out, const pinfo *pi, int is_event, const json_t *data,
                  const json_t *metadata, const char *id) {
    nc_buf_reset(out);
    const char *w = is_event && c->tp->event_pattern_is_route ? pi->ev_wire : pi->wire;
    size_t wl = is_event && c->tp->event_pattern_is_route ? pi->ev_wire_len : pi->wire_len;
    if (!(c->cfg.has_codec && c->cfg.codec.serialize))
        return nc_envelope_write_request_text(out, w, wl, data, metadata, id);
    json_t *pattern = NULL;
    char why[8];
    if (nc_json_parse(w, wl, &pattern, why, sizeof why)) return NC_ENOMEM;
    int r = nc_envelope_write_request(out, pattern, data, metadata, id, &c->cfg.codec);
    json_decref(pattern);
    return r;
}

/* "<prefix><13 lowercase hex digits of serial>" */
static void write_id(char *out, const char *prefix, uint64_t serial) {
    static const char hex[] = "0123456789abcdef";
    memcpy(out, prefix, ID_PREFIX_LEN);
    for (int i = ID_PREFIX_LEN + ID_SERIAL_LEN - 1; i >= ID_PREFIX_LEN; i--) {
        out[i] = hex[serial & 15];
        serial >>= 4;
    }
    out[ID_PREFIX_LEN + ID_SERIAL_LEN] = '\0';
}

/* A call's transport options as a set whose parent is the client's. */
static int call_optset(nc_client *c, const nc_call_opts *o, nc_optset **out) {
    *out = NULL;
    if (!o->options) {
        return nc_fail(&c->log, "Client", NC_EINVAL, "nc_call_opts.noptions is %zu but options is NULL",
                       o->noptions);
    }
    nc_optset *set = malloc(sizeof *set);
    if (!set) return NC_ENOMEM;
    const nc_optctx cx = {NC_OPT_CALL, c->url.scheme, &c->log, "Client"};
    int r = nc_optset_build(set, c->tp->options, &cx, NULL, o->options, o->noptions);
    if (r) {
        free(set);
        return r;
    }
    set->parent = &c->opts;
    *out = set;
    return 0;
}

/* Queues a call for the connection (starting it if need be). The call may fail inside. */
static void enqueue(nc_client *c, ccall *k) {
    if (c->cfg.max_send_buffer_size > 0 &&
        (long long)(c->queued_bytes + k->body.len + k->wq.len) > c->cfg.max_send_buffer_size) {
        /* waiting for the connection: the queue is bounded like a connection's unsent bytes */
        call_fail(k, NC_ESTALLED, "the send queue is full (max_send_buffer_size) while connecting");
        return;
    }
    k->queued = 1;
    k->qnext = NULL;
    c->queued_bytes += k->body.len + k->wq.len; /* writes kept while queued (a retried call's too) */
    if (c->qtail)
        c->qtail->qnext = k;
    else
        c->qhead = k;
    c->qtail = k;
    if (c->state == DISCONNECTED && !uv_is_active((uv_handle_t *)&c->retry_timer)) {
        c->attempts = 0;
        int r = start_connect(c);
        if (r) {
            /* could not even start: fail this call through its callback, as NestJS errors the Observable */
            char msg[128];
            snprintf(msg, sizeof msg, "cannot connect to %s: %s", c->url.text, nc_strerror(r));
            call_fail(k, r, msg);
        }
    }
}

/* What a submit is for: the callbacks, and where nc_client_call wants its handle (NULL: no handle). */
typedef struct sub_cb {
    nc_call_cbs cbs;
    void *user;
    nc_call **out;
} sub_cb;

static int submit(nc_client *c, const pinfo *pi, const json_t *data, const nc_call_opts *o, int is_event,
                  const sub_cb *cb, int own_route) {
    nc_call_opts own;
    nc_optset *copts = NULL;
    if (o) {
        /* read in place unless the caller's layout differs from ours (one compare for {0}) */
        if (!nc_abi_ok(o, o->struct_size, sizeof *o, NC_CALL_OPTS_BASE)) {
            if (nc_abi_copy_in(&own, sizeof own, o, o->struct_size, NC_CALL_OPTS_BASE)) {
                return nc_fail(&c->log, "Client", NC_EINVAL,
                               "nc_call_opts.struct_size %zu: not a layout this library knows",
                               o->struct_size);
            }
            o = &own;
        }
        if (o->noptions) {
            int r = call_optset(c, o, &copts);
            if (r) return r;
        }
    }
    ccall *k = call_new(c);
    if (!k) {
        if (copts) {
            nc_optset_free(copts);
            free(copts);
        }
        return NC_ENOMEM;
    }
    k->opts = copts;
    k->on_value = cb->cbs.on_value;
    k->on_done = cb->cbs.on_done;
    k->on_headers = cb->cbs.on_headers;
    k->user = cb->user;
    if (own_route) {
        if (!(k->own_route = strdup(pi->route)) || !(k->own_wire = strdup(pi->wire))) goto nomem;
        k->route = k->own_route;
        k->wire = k->own_wire;
    } else {
        k->route = pi->route;
        k->wire = pi->wire;
    }
    if (!is_event) {
        k->serial = ++c->next_serial;
        write_id(k->id, c->id_prefix, k->serial);
    }
    if (o && o->headers && json_object_size(o->headers) && !(k->headers = json_deep_copy(o->headers)))
        goto nomem;
    if (c->cfg.headers) { /* the client's headers, unless the call has the same name (NestJS ClientNats) */
        if (!k->headers && !(k->headers = json_object())) goto nomem;
        if (json_object_update_missing(k->headers, c->cfg.headers)) goto nomem;
    }
    /* the call encodes into the encoder's buffer (the largest: no regrowing for big payloads) and leaves
     * its own pooled one to the encoder */
    nc_buf lent = c->enc;
    c->enc = k->body;
    k->body = lent;
    const json_t *md = o ? o->metadata : NULL;
    int refused = 0;
    if (c->hooks) { /* may add headers and metadata, or refuse the call */
        refused = nc_hooks__submit(c->hooks, &k->hk, c, c->url.scheme, k->route, NULL, is_event, k->id,
                                   strlen(k->id), &k->headers, md);
        if (k->hk) md = k->hk->info.metadata;
    }
    int r = encode(c, &k->body, pi, is_event, data ? data : json_null(), md, is_event ? NULL : k->id);
    if (r) {
        call_free(k);
        return r;
    }
    if (cb->out) {
        if (nc_handle_alloc(k, c, &k->hid)) goto nomem;
        *cb->out = nc_hid_to_ptr(k->hid);
        if (k->hk) k->hk->info.call = *cb->out;
    }
    /* requests and events alike: an event's deadline bounds its wait for the transport to accept it */
    int tmo = o && o->timeout_ms ? (o->timeout_ms < 0 ? 0 : o->timeout_ms) : c->cfg.timeout_ms;
    k->tmo = tmo;
    if (!is_event && nc_u64map_put(&c->pending, k->serial, k)) goto nomem;
    if (tmo > 0 && deadline_add(c, k, tmo)) {
        if (!is_event) nc_u64map_del(&c->pending, k->serial);
        goto nomem;
    }
    if (is_event) c->nevents++;
    if (k->hk) {
        k->hk->owner = k;
        if (!refused) refused = k->hk->hold_err; /* held and failed inside on_submit */
    }
    if (refused) {
        call_fail(k, refused, NULL); /* on_done runs now, with the hook's code */
        return 0;
    }
    if (k->hk && k->hk->holds) { /* a hook holds it until nc_hook_resume */
        k->hstate = HELD;
        hlist_add(&c->held, k);
        return 0;
    }
    if (c->state == CONNECTED && !c->qhead) {
        send_body(c, k);
        return 0;
    }
    enqueue(c, k);
    return 0;
nomem:
    if (k->hid) {
        nc_handle_free(k->hid);
        *cb->out = NULL;
    }
    call_free(k);
    return NC_ENOMEM;
}

static int submit_text(nc_client *c, const char *pattern, const json_t *data, const nc_call_opts *o,
                       int is_event, const sub_cb *cb) {
    if (!c || !pattern || c->freeing) return c && c->freeing ? NC_ECLOSED : NC_EINVAL;
    pinfo tmp;
    int err = 0;
    const pinfo *pi = pinfo_of_text(c, pattern, &tmp, &err);
    if (!pi) return err;
    int r = submit(c, pi, data, o, is_event, cb, pi == &tmp);
    if (pi == &tmp) pinfo_free(&tmp);
    return r;
}

static int submit_json(nc_client *c, const json_t *pattern, const json_t *data, const nc_call_opts *o,
                       int is_event, const sub_cb *cb) {
    if (!c || !pattern || c->freeing) return c && c->freeing ? NC_ECLOSED : NC_EINVAL;
    if (json_is_string(pattern)) {
        /* the same as the text form, and cached like it (a string that reads as JSON stays a string) */
        json_t *probe = NULL;
        char why[8];
        int looks_json = nc_json_parse(json_string_value(pattern), json_string_length(pattern), &probe, why,
                                       sizeof why) == 0 &&
                         (json_is_object(probe) || json_is_number(probe));
        json_decref(probe);
        if (!looks_json && strlen(json_string_value(pattern)) == json_string_length(pattern))
            return submit_text(c, json_string_value(pattern), data, o, is_event, cb);
    } else if (json_is_object(pattern) || json_is_number(pattern)) {
        /* its JSON text reads back as the same value: use the text cache */
        nc_buf_reset(&c->ptext);
        if (nc_json_write(&c->ptext, pattern) == 0 && nc_buf_cstr(&c->ptext))
            return submit_text(c, c->ptext.data, data, o, is_event, cb);
    }
    pinfo pi;
    int r = pinfo_compute(c, pattern, &pi);
    if (r) return r;
    r = submit(c, &pi, data, o, is_event, cb, 1);
    pinfo_free(&pi);
    return r;
}

int nc_client_send_json(nc_client *c, const json_t *pattern, const json_t *data, const nc_call_opts *o,
                        nc_value_fn on_value, nc_done_fn on_done, void *user) {
    sub_cb cb = {{on_value, on_done, NULL}, user, NULL};
    return submit_json(c, pattern, data, o, 0, &cb);
}

int nc_client_emit_json(nc_client *c, const json_t *pattern, const json_t *data, const nc_call_opts *o,
                        nc_done_fn on_done, void *user) {
    sub_cb cb = {{NULL, on_done, NULL}, user, NULL};
    return submit_json(c, pattern, data, o, 1, &cb);
}

int nc_client_send(nc_client *c, const char *pattern, const json_t *data, const nc_call_opts *o,
                   nc_value_fn on_value, nc_done_fn on_done, void *user) {
    sub_cb cb = {{on_value, on_done, NULL}, user, NULL};
    return submit_text(c, pattern, data, o, 0, &cb);
}

int nc_client_emit(nc_client *c, const char *pattern, const json_t *data, const nc_call_opts *o,
                   nc_done_fn on_done, void *user) {
    sub_cb cb = {{NULL, on_done, NULL}, user, NULL};
    return submit_text(c, pattern, data, o, 1, &cb);
}

/* ---- calls ---------------------------------------------------------------------------------------- */

static const nc_call_cbs no_cbs = {0};

int nc_client_call(nc_client *c, const char *pattern, const json_t *data, const nc_call_opts *o,
                   const nc_call_cbs *cbs, void *user, nc_call **out) {
    nc_call *dummy;
    sub_cb cb = {cbs ? *cbs : no_cbs, user, out ? out : &dummy};
    *cb.out = NULL;
    return submit_text(c, pattern, data, o, 0, &cb);
}

int nc_client_call_json(nc_client *c, const json_t *pattern, const json_t *data, const nc_call_opts *o,
                        const nc_call_cbs *cbs, void *user, nc_call **out) {
    nc_call *dummy;
    sub_cb cb = {cbs ? *cbs : no_cbs, user, out ? out : &dummy};
    *cb.out = NULL;
    return submit_json(c, pattern, data, o, 0, &cb);
}

/* The live call of a handle, or NULL. `any`: also while on_done runs (accessors). */
static ccall *call_of(const nc_call *call, int any) {
    ccall *k = nc_handle_get(nc_hid_from_ptr(call));
    return k && (any || !k->finishing) ? k : NULL;
}

/* One request-stream operation through the transport: text != NULL writes it (NUL-terminated), NULL
 * ends. */
static int stream_out(nc_client *c, ccall *k, const char *text, size_t len) {
    int (*op)(void *, nc_outbound *) = text ? c->tp->write : c->tp->end;
    nc_outbound out = {.route = k->route,
                       .pattern_json = k->wire,
                       .body = text,
                       .len = len,
                       .id = k->id,
                       .headers = k->headers};
    return op(c->tps, &out);
}

/* One request-stream operation: value != NULL writes it, NULL ends. A call still queued for the
 * connection keeps its writes (bounded with the queue by max_send_buffer_size) until it is out. */
static int stream_op(ccall *k, const json_t *value) {
    nc_client *c = k->cli;
    int (*op)(void *, nc_outbound *) = value ? c->tp->write : c->tp->end;
    if (!op) return NC_EUNSUPPORTED;
    int keep = k->queued || k->hstate; /* not sent yet: kept until it is */
    if (!keep && c->state != CONNECTED) return NC_ECONNCLOSED;
    nc_buf b = NC_BUF_INIT;
    if (value && (nc_json_write(&b, value) || !nc_buf_cstr(&b))) {
        nc_buf_free(&b);
        return NC_ENOMEM;
    }
    int r;
    if (keep) {
        uint32_t n = (uint32_t)b.len;
        size_t counted = k->queued ? c->queued_bytes : k->body.len + k->wq.len;
        if (c->cfg.max_send_buffer_size > 0 &&
            (long long)(counted + 4 + b.len + 1) > c->cfg.max_send_buffer_size)
            r = NC_ESTALLED; /* the same bound as the queued calls themselves */
        else if (nc_buf_append(&k->wq, &n, 4) || nc_buf_append(&k->wq, b.data ? b.data : "", b.len + 1))
            r = NC_ENOMEM; /* the text with its NUL: handed to the transport as a string later */
        else {
            if (k->queued) c->queued_bytes += 4 + b.len + 1; /* a held call's count when it is queued */
            r = 0;
        }
    } else {
        r = stream_out(c, k, b.data, b.len);
    }
    nc_buf_free(&b);
    return r;
}

int nc_call_write(nc_call *call, const json_t *value) {
    ccall *k = call_of(call, 0);
    if (!k || k->ended) return NC_ESTATE;
    if (!value) return NC_EINVAL;
    return stream_op(k, value);
}

int nc_call_end(nc_call *call) {
    ccall *k = call_of(call, 0);
    if (!k || k->ended) return NC_ESTATE;
    /* without request streams the request was the whole stream: ending it is already true; a call still
     * queued goes out ended (nc_outbound.writable 0: its data is the whole request) */
    int r = k->cli->tp->end && !k->queued && !k->hstate ? stream_op(k, NULL) : 0;
    if (r == 0) k->ended = 1;
    return r;
}

int nc_call_cancel(nc_call *call) {
    ccall *k = call_of(call, 0);
    if (!k) return NC_ESTATE;
    nc_client *c = k->cli;
    if (c->tp->cancel && k->sent) c->tp->cancel(c->tps, k->route, k->id);
    call_fail(k, NC_ECANCELED, "The call was cancelled");
    return 0;
}

int nc_call__resend(nc_call *call) {
    ccall *k = call_of(call, 0);
    if (!k || !k->id[0]) return NC_ESTATE;
    nc_client *c = k->cli;
    if (k->queued || k->hstate) return 0; /* not sent yet: it will be */
    /* brokers drop the first attempt's reply subscription (a late answer to it is dropped) before the
     * transport makes a new one for the same id */
    if (k->sent && c->tp->forget) c->tp->forget(c->tps, k->route, k->id);
    k->sent = 0;
    if (c->state == CONNECTED && !c->qhead) return send_body(c, k);
    enqueue(c, k);
    return 0;
}

const char *nc_call__id(const nc_call *call) {
    ccall *k = call_of(call, 1);
    return k ? k->id : NULL;
}

static const nc_header *find_header(const nc_header *h, size_t n, const char *name, size_t *len) {
    size_t nl = name ? strlen(name) : 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len == nl && memcmp(h[i].name, name, nl) == 0) {
            if (len) *len = h[i].value_len;
            return &h[i];
        }
    }
    return NULL;
}

const char *nc_call_header(const nc_call *call, const char *name, size_t *len) {
    ccall *k = call_of(call, 1);
    const nc_header *h = k && k->meta && name ? find_header(k->meta->h, k->meta->nh, name, len) : NULL;
    return h ? h->value : NULL;
}

const char *nc_call_trailer(const nc_call *call, const char *name, size_t *len) {
    ccall *k = call_of(call, 1);
    const nc_header *h = k && k->meta && name ? find_header(k->meta->t, k->meta->nt, name, len) : NULL;
    return h ? h->value : NULL;
}

size_t nc_call_header_count(const nc_call *call) {
    ccall *k = call_of(call, 1);
    return k && k->meta ? k->meta->nh : 0;
}

int nc_call_header_at(const nc_call *call, size_t i, const char **name, size_t *name_len, const char **value,
                      size_t *value_len) {
    ccall *k = call_of(call, 1);
    if (!k) return NC_ESTATE;
    if (!k->meta || i >= k->meta->nh) return NC_EINVAL;
    const nc_header *h = &k->meta->h[i];
    if (name) *name = h->name;
    if (name_len) *name_len = h->name_len;
    if (value) *value = h->value;
    if (value_len) *value_len = h->value_len;
    return 0;
}

int nc_call_status(const nc_call *call, int *code, const char **msg) {
    ccall *k = call_of(call, 1);
    if (!k) return NC_ESTATE;
    if (!k->meta || !k->meta->has_status) return 0;
    if (code) *code = k->meta->code;
    if (msg) *msg = k->meta->msg;
    return 1;
}

/* ---- lifecycle ---------------------------------------------------------------------------------- */

static void random_prefix(char out[9]) {
    unsigned char b[4] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(b, 1, sizeof b, f) != sizeof b) {
        unsigned long long x = (unsigned long long)time(NULL) ^ (unsigned long long)(uintptr_t)out;
        memcpy(b, &x, sizeof b);
    }
    if (f) fclose(f);
    snprintf(out, 9, "%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
}

int nc_client_new(nc_client **out, const char *url, const nc_client_opts *user_o) {
    if (!out) return nc_set_last_error(NC_EINVAL, "nc_client_new: out is NULL");
    *out = NULL;
    unsigned mark = nc_last_error_mark();
    nc_client_opts own = {0};
    const nc_client_opts *o = &own;
    if (user_o && nc_abi_copy_in(&own, sizeof own, user_o, user_o->struct_size, NC_CLIENT_OPTS_BASE)) {
        nc_logger lg;
        nc_logger_init(&lg, user_o->log, user_o->log_user, user_o->log_level);
        return nc_fail(&lg, "Client", NC_EINVAL,
                       "nc_client_opts.struct_size %zu: not a layout this library knows",
                       user_o->struct_size);
    }
    nc_client *c = calloc(1, sizeof *c);
    if (!c) return nc_set_last_error(NC_ENOMEM, "out of memory");
    nc_logger_init(&c->log, o->log, o->log_user, o->log_level);
    char err[256];
    int r = nc_url_parse(&c->url, url, err, sizeof err);
    if (r) {
        nc_fail(&c->log, "Client", r, "%s", err);
        free(c);
        return r;
    }
    c->tp = nc_client_transport_find(c->url.scheme);
    if (!c->tp) {
        nc_fail(&c->log, "Client", NC_EUNSUPPORTED, "unsupported transport \"%s\" in %s", c->url.scheme, url);
        nc_url_free(&c->url);
        free(c);
        return NC_EUNSUPPORTED;
    }
    const nc_optctx cx = {NC_OPT_CLIENT, c->url.scheme, &c->log, "Client"};
    if ((r = nc_optset_build(&c->opts, c->tp->options, &cx, &c->url, o->options, o->noptions))) {
        nc_url_free(&c->url);
        free(c);
        return r;
    }
    nc_client_cfg *g = &c->cfg;
    g->timeout_ms = o->timeout_ms == 0 ? 5000 : o->timeout_ms < 0 ? 0 : o->timeout_ms;
    g->connect_timeout_ms = o->connect_timeout_ms == 0  ? 5000
                            : o->connect_timeout_ms < 0 ? 0
                                                        : o->connect_timeout_ms;
    g->retry_attempts = o->retry_attempts > 0 ? o->retry_attempts : 0;
    g->retry_delay_ms = o->retry_delay_ms > 0 ? o->retry_delay_ms : 1000;
    g->max_buffer_size = o->max_buffer_size == 0  ? 134217728LL
                         : o->max_buffer_size < 0 ? 0
                                                  : o->max_buffer_size;
    g->max_send_buffer_size = o->max_send_buffer_size == 0  ? 134217728LL
                              : o->max_send_buffer_size < 0 ? 0
                                                            : o->max_send_buffer_size;
    g->incomplete_timeout_ms = o->incomplete_message_timeout_ms == 0  ? 30000
                               : o->incomplete_message_timeout_ms < 0 ? 0
                                                                      : o->incomplete_message_timeout_ms;
    if (o->tls) {
        nc_tls_opts t;
        if (nc_abi_copy_in(&t, sizeof t, o->tls, o->tls->struct_size, NC_TLS_OPTS_BASE)) {
            r = nc_fail(&c->log, "Client", NC_EINVAL,
                        "nc_tls_opts.struct_size %zu: not a layout this library knows", o->tls->struct_size);
            goto fail;
        }
        t.struct_size = 0; /* our own layout from here on */
        g->has_tls = 1;
        nc_tls_opts_copy(&g->tls, &t);
    }
    if (o->codec) {
        g->has_codec = 1;
        g->codec = *o->codec;
    }
    if (o->headers && json_object_size(o->headers) && !(g->headers = json_deep_copy(o->headers))) {
        r = NC_ENOMEM;
        goto fail;
    }
    random_prefix(c->id_prefix);
    if ((r = nc_ioctx_init(&c->io, o->loop))) goto fail;
    if ((r = nc_ioctx_count_wire(&c->io, 1)) || (r = c->tp->create(c, &c->url, &c->tps))) {
        nc_ioctx_finish(&c->io);
        goto fail;
    }
    uv_timer_init(c->io.loop, &c->retry_timer);
    uv_timer_init(c->io.loop, &c->deadline_timer);
    c->retry_timer.data = c->deadline_timer.data = c;
    *out = c;
    return 0;
fail:
    nc_set_last_error_since(mark, r, "cannot create the client for %s: %s", c->url.text, nc_strerror(r));
    json_decref(g->headers);
    nc_tls_opts_free(&g->tls);
    nc_optset_free(&c->opts);
    nc_url_free(&c->url);
    free(c);
    return r;
}

void nc_client_close(nc_client *c) {
    if (!c) return;
    uv_timer_stop(&c->retry_timer);
    fail_all(c, NC_ECLOSED, "Connection closed", 1);
    if (c->tp_open) c->tp->close(c->tps);
}

size_t nc_client_pending(const nc_client *c) {
    return c ? c->pending.len + c->nevents : 0;
}

int nc_client_run(nc_client *c) {
    if (!c) return NC_EINVAL;
    /* what was sent before: out now, or the loop's prepare-phase flush may finish the last event and the
     * iteration then waits for I/O that never comes (an event has no reply) */
    nc_ioctx_flush(&c->io);
    while (nc_client_pending(c) > 0 && nc_loop_run(c->io.loop, UV_RUN_ONCE)) {
    }
    /* let completed writes and close callbacks land */
    nc_loop_run(c->io.loop, UV_RUN_NOWAIT);
    return 0;
}

void *nc_client_unwrap(nc_client *c) {
    return c && c->tp->unwrap ? c->tp->unwrap(c->tps) : NULL;
}

uv_loop_t *nc_client_loop(nc_client *c) {
    return c->io.loop;
}

static void timer_closed(uv_handle_t *h) {
    ((nc_client *)h->data)->open_timers--;
}

void nc_client_free(nc_client *c) {
    if (!c) return;
    nc_client_close(c);
    c->freeing = 1;
    nc_hooks__drop(&c->hooks);
    while (c->tp_open && uv_run(c->io.loop, UV_RUN_ONCE)) {
    }
    c->tp->destroy(c->tps);
    c->open_timers = 2;
    uv_close((uv_handle_t *)&c->retry_timer, timer_closed);
    uv_close((uv_handle_t *)&c->deadline_timer, timer_closed);
    nc_ioctx_wait_closed(c->io.loop, &c->open_timers);
    /* a transport lets go of every event once its handles closed (a stream's pending writes end in its
     * close callback, which runs in the waits above); one it did not let go is freed with the client */
    nc_ioctx_finish(&c->io);
    while (c->expired) expired_release(c, c->expired);
    nc_u64map_free(&c->pending);
    free(c->tlists);
    const char *pk;
    void *pv;
    size_t it = 0;
    while (nc_map_next(&c->pcache, &it, &pk, &pv)) {
        pinfo_free(pv);
        free(pv);
    }
    nc_map_free(&c->pcache);
    while (c->pool) {
        ccall *k = c->pool;
        c->pool = k->qnext;
        nc_buf_free(&k->body);
        free(k);
    }
    nc_buf_free(&c->orphan);
    nc_buf_free(&c->enc);
    nc_buf_free(&c->ptext);
    nc_tls_opts_free(&c->cfg.tls);
    json_decref(c->cfg.headers);
    nc_optset_free(&c->opts);
    nc_url_free(&c->url);
    free(c);
}

/* core/obs_support.h: the tracer's server.address */
const char *nc_client__url_host(const nc_client *c, int *port) {
    *port = c->url.port;
    return c->url.host;
}
