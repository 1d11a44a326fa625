/* Hooks: the calls the server and client cores make at each hook point (include/nestc/hooks.h).
 * Private.
 *
 * The owner (a server or a client) holds one `nc_hook_table *`, NULL while no hook is installed: every
 * hook point in the hot path is `if (owner->hooks) nc_hooks__...(...)`, one predictable branch. A table is
 * immutable once built (adding or removing a set builds a new one), and every message records the table
 * it began under, so its callbacks go to the same sets from its first to its last, whatever is added or
 * removed meanwhile. Loop thread only: reference counts are plain ints (each worker has its own copies). */
#ifndef NC_CORE_HOOKS_INTERNAL_H
#define NC_CORE_HOOKS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nestc/hooks.h"

typedef struct nc_hook_set nc_hook_set;
typedef struct nc_hook_table nc_hook_table;
typedef struct nc_hook_rec nc_hook_rec;

/* The hook points. A table lists, for each, the sets that have its callback (opening points in added
 * order, closing ones in reverse), so a point no set uses costs one test and a set pays only for the
 * callbacks it has. */
enum {
    NC_HP_DISPATCH,
    NC_HP_BEFORE,
    NC_HP_START,
    NC_HP_RETURN,
    NC_HP_REPLY,
    NC_HP_SETTLE,
    NC_HP_FINISH,
    NC_HP_SUBMIT,
    NC_HP_CREPLY,
    NC_HP_RETRY,
    NC_HP_END,
    NC_HP_COUNT
};

struct nc_hook_set {
    int refs; /* tables listing it */
    int id;
    int primary; /* release() runs for it (worker copies share the user pointer and do not) */
    nc_hook_side side;
    nc_server_hooks s;
    nc_client_hooks c;
    void *user;
};

/* One callback of a hook point: the set (its callback is read at the call, so that a set silenced by a
 * removal that ran out of memory stops at once) and its index, which names its state slot. */
typedef struct nc_hook_call {
    nc_hook_set *h;
    int k;
} nc_hook_call;

struct nc_hook_table {
    int refs; /* the owner's pointer + each record begun under it */
    int n;
    nc_hook_rec *pool; /* finished records kept for reuse */
    size_t npool;
    unsigned char np[NC_HP_COUNT]; /* callbacks per point */
    nc_hook_set *sets[NC_HOOKS_MAX];
    nc_hook_call pt[NC_HP_COUNT][NC_HOOKS_MAX];
};

/* One message or call seen by the hooks. */
struct nc_hook_rec {
    nc_hook_info info;
    nc_hook_table *t;
    nc_hook_rec *next; /* in the pool */
    int refusal;       /* the first refusing interceptor's code, 0 = none */
    int err_replied;   /* server: an error packet was written */
    int delivered;     /* client: a reply value was delivered (no retry from then on) */
    int in_submit;     /* client: inside on_submit (the setters work) */
    int holds;         /* client: nc_hook_hold calls not yet resumed */
    int hold_err;      /* client: the first error a resume gave */
    void *owner;       /* client: the core's call (client.c) */
    int in_handler;    /* server: between handler_start and handler_return */
    int returned;      /* server: on_handler_return ran (early, when finished inside the handler) */
    int finished;      /* server: on_finish ran; handler_return releases the record */
    int now_valid;     /* info.now_ns is this hook point's time */
    uint64_t route_id; /* server: the matched route's id (nc_route_entry), 0 = no handler */
    json_t **headers;  /* client: the call's headers (its own copy), written by nc_hook_set_header */
    json_t *metadata;  /* client: a copy made by nc_hook_set_metadata, used instead of the caller's */
    void *slot[NC_HOOKS_MAX];
};

/* ---- owners -------------------------------------------------------------------------------------- */

/* Adds a set (hooks: nc_server_hooks or nc_client_hooks as `side` says) to *tp. Returns its id > 0 or
 * an nc_err. */
int nc_hooks__add(nc_hook_table **tp, nc_hook_side side, const void *hooks, void *user);
/* Removes the set `id` from *tp (NULL once empty). Returns 0 or NC_EINVAL. */
int nc_hooks__remove(nc_hook_table **tp, int id);
/* The owner lets go of its table (it is being freed); records still in flight keep theirs. */
void nc_hooks__drop(nc_hook_table **tp);
/* For a worker: a table with copies of src's sets (same callbacks and user; release() does not run for
 * them). *dst must be NULL. Returns 0 or NC_ENOMEM. */
int nc_hooks__copy(nc_hook_table **dst, const nc_hook_table *src);

/* The message's route id (nc_hook_rec.route_id): a number that stands for the (server, route) pair, so a
 * set can cache what it derives from the route without comparing texts. */
static inline uint64_t nc_hooks__route_id(const nc_hook_info *i) {
    return ((const nc_hook_rec *)i->priv_)->route_id;
}

/* ---- server hook points ------------------------------------------------------------------------ */

/* A message was dispatched: a record for it (NULL when out of memory: then the message goes unseen).
 * req is NULL for events; id/id_len the request id's JSON text; route_id the matched route's id, 0 when
 * no handler matches (info.has_handler). Runs on_dispatch. */
nc_hook_rec *nc_hooks__dispatch(nc_hook_table *t, nc_server *s, const nc_msg *m, nc_request *req,
                                const char *id, size_t id_len, uint64_t route_id);
/* Runs the interceptors: 0, or the code of the first that refused (kept for on_finish). */
int nc_hooks__run_before(nc_hook_rec *r);
static inline int nc_hooks__before_handler(nc_hook_rec *r) {
    return r->t->np[NC_HP_BEFORE] ? nc_hooks__run_before(r) : 0;
}
/* Around the handler call. handler_return may release r (when the message finished inside the handler):
 * keep the record in a local, not in the request, across the handler call. */
void nc_hooks__handler_start(nc_hook_rec *r);
void nc_hooks__handler_return(nc_hook_rec *r);
/* (these two stay out of line: inline, they made dispatch.c's handler call too big to be inlined, which
 * cost the path without hooks a call) */
void nc_hooks__run_reply(nc_hook_rec *r, nc_hook_reply kind, const char *json, size_t len, int final);
static inline void nc_hooks__reply(nc_hook_rec *r, nc_hook_reply kind, const char *json, size_t len,
                                   int final) {
    if (kind == NC_HOOK_REPLY_ERROR) r->err_replied = 1;
    if (r->t->np[NC_HP_REPLY]) nc_hooks__run_reply(r, kind, json, len, final);
}
void nc_hooks__settle(nc_hook_rec *r, nc_settle how);
/* An event not kept: its handlers returned (and it was settled: ack, or reject when unmatched, where the
 * transport settles). Runs on_settle then on_finish, and releases r. */
void nc_hooks__event_done(nc_hook_rec *r, int settles, int matched);
/* nc_event_keep copied the event's message: the record follows the copy until the event is settled. */
void nc_hooks__keep(nc_hook_rec *r, const nc_msg *m);
/* The message is done: runs on_finish and releases r (inside the handler: runs on_handler_return first,
 * and the record lives until handler_return). `why` is 0, or NC_ECANCELED / NC_ECLOSED when
 * the caller knows the request ended that way; a refusal, a missing handler or an error reply written
 * decide the outcome otherwise (hooks.h). */
void nc_hooks__finish(nc_hook_rec *r, int why);

/* ---- client hook points ------------------------------------------------------------------------ */

/* A call is made: a record for it in *out (NULL when out of memory), on_submit run. `headers` is the
 * call's own headers object (may point to NULL; the setters create it), `metadata` the caller's
 * (borrowed): after this returns, encode with r->info.metadata. Returns 0, or the refusal. */
int nc_hooks__submit(nc_hook_table *t, nc_hook_rec **out, nc_client *c, const char *transport,
                     const char *route, const char *pattern, int is_event, const char *id, size_t id_len,
                     json_t **headers, const json_t *metadata);
void nc_hooks__client_reply(nc_hook_rec *r, const json_t *value, int final);
/* The request failed with err: 1 and *delay_ms when a set asks for a resend (r->info.attempt is
 * counted up), else 0. */
int nc_hooks__should_retry(nc_hook_rec *r, int err, int *delay_ms);
/* The call is done: runs on_call_end and releases r. */
void nc_hooks__call_end(nc_hook_rec *r, int err);

#endif
