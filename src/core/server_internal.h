/* Server internals shared by the core files; transports see only core/server_transport.h. Private. */
#ifndef NC_CORE_SERVER_INTERNAL_H
#define NC_CORE_SERVER_INTERNAL_H

#include <stdatomic.h>
#include <uv.h>

#include "core/log.h"
#include "core/loop_run.h" /* nc_server_run marks its loop running (blocking calls refuse it) */
#include "core/server_transport.h"
#include "core/url.h"
#include "io/ioctx.h"
#include "nestc/server.h"
#include "transport/transport.h"
#include "util/buf.h"
#include "util/handle.h"
#include "util/map.h"

typedef struct nc_event_handler {
    nc_event_fn fn;
    void *user;
} nc_event_handler;

typedef struct nc_route_entry {
    const char *route; /* the map's key */
    uint64_t id;       /* unique in the process: names (server, route) for the hooks' caches */
    nc_request_fn req_fn;
    void *req_user;
    nc_event_handler *events;
    size_t nevents;
    nc_optset *opts; /* the handlers' options (parent: the server's set), NULL = none given */
} nc_route_entry;

typedef struct nc_evd nc_evd;

/* On the stack while an event's handlers run, so nc_event_keep can find the server, the delivery and
 * the kept copy shared by several keepers (settle.c). */
typedef struct nc_evctx {
    nc_server *srv;
    const nc_inbound *in;
    nc_evd *kept;           /* created by the first nc_event_keep */
    struct nc_hook_rec *hk; /* the hooks' record of the event (NULL: no hooks); moves to `kept` */
} nc_evctx;

/* The message handed to handlers. Two ways to fill it (dispatch.c): the scan path (the packet text is
 * scanned once, values stay text and become jansson values only when a handler asks) and the DOM path
 * (codecs, foreign messages, anything unusual: the packet is decoded with jansson). */
struct nc_msg {
    json_t *root;          /* DOM path: the decoded packet (owned); NULL on the scan path */
    json_t *data;          /* DOM: borrowed from root; scan: built on first use (owned) */
    json_t *metadata;      /* DOM: borrowed from root; scan: built on first use (owned) */
    json_t *headers;       /* nc_msg_headers: built on first use from hdrs (owned) */
    const nc_header *hdrs; /* ordered headers: borrowed (stack events) or in own_extras */
    size_t nhdrs;
    const nc_ctx_item *ctx; /* transport context: borrowed or in own_extras */
    size_t nctx;
    char *own_extras;  /* one block: copies of hdrs, ctx and their bytes */
    nc_evctx *evctx;   /* an event's message while its handlers run, else NULL */
    const char *route; /* NUL-terminated; in `arena`, in the route cache (events), or own_route */
    const char *pattern_text;
    char *channel;
    const char *transport;
    const char *data_json; /* payload text: a span of the packet, or own_data_json */
    size_t data_json_len;
    const char *meta_json; /* scan path: metadata text, NULL when absent */
    size_t meta_json_len;
    char *own_route, *own_pattern, *own_data_json; /* freed with the message */
    char *arena;                                   /* scan path requests: copies of the texts above */
    unsigned is_event : 1;
    unsigned scanned : 1;      /* filled by the scan path */
    unsigned data_owned : 1;   /* `data` is ours to decref */
    unsigned data_compact : 1; /* data_json may be handed out as is */
    unsigned meta_done : 1;    /* `metadata` was computed */
    unsigned arena_heap : 1;   /* `arena` was malloc'd (not the request's inline bytes) */
    unsigned has_hdrs : 1;     /* the transport gave a header block (maybe empty) */
    unsigned headers_done : 1; /* `headers` was computed */
};

typedef struct nc_ts_reply nc_ts_reply;
typedef struct nc_req nc_req;

/* Bytes of packet text a pooled request holds without a malloc. */
#define NC_REQ_INLINE 192

/* A request. Handlers never see this struct: they get an nc_request * that holds `hid` (util/handle.h),
 * resolved by every public call, so a finished request's handle is refused (NC_ESTATE) rather than
 * reaching pooled or freed memory. */
struct nc_req {
    nc_msg msg;
    nc_server *srv;
    nc_hid hid;            /* the handle given to the handler; retired when the request finishes */
    nc_handle_slot *hslot; /* its slot, kept while the request is pooled (util/handle.h) */
    const char *id;        /* JSON text of the id (in the arena or own_id) */
    size_t id_len;
    char *own_id;
    void *peer;
    const nc_peer_ops *pops;
    json_t *held; /* a stream value waiting for the end of the iteration (coalescing) */
    int has_held;
    int peer_dead;
    int discard;    /* event routed to a request handler: replies go nowhere */
    int cancelled;  /* nc_request_is_cancelled: replies go nowhere */
    int cancel_due; /* cancelled, the callback runs at the next flush (request.c) */
    nc_cancel_fn cancel_fn;
    void *cancel_arg;
    nc_flushable fl;
    nc_delivery delivery;         /* settled once (settle.c) */
    struct nc_rstream *stream;    /* inbound stream (stream.c), NULL = none */
    struct nc_deadline *deadline; /* the caller's deadline timer, NULL = none */
    struct nc_rmeta *meta;        /* reply headers, status, trailers (stream.c), the writable watch
                                     (flow.c), NULL = none */
    unsigned settle_manual : 1;   /* the handler settles (nc_request_settle_manually) */
    unsigned settled : 1;
    unsigned replied : 1;    /* the reply stream ended; alive only until settled (manual settling) */
    unsigned first_sent : 1; /* a packet went: reply headers are too late */
    struct nc_hook_rec *hk;  /* the hooks' record of this message, NULL when no hook is installed */
    struct nc_req *prev, *next;
    char inline_arena[NC_REQ_INLINE];
};

struct nc_server {
    nc_ioctx io;
    nc_url url;
    nc_server_cfg cfg;
    nc_optset opts; /* transport options, level server: URL parameters and nc_server_opts.options */
    nc_logger log;
    const nc_server_transport *tp;
    void *tps;
    nc_map routes;
    nc_map route_cache;    /* raw pattern text -> nc_pattern_info (dispatch.c) */
    int route_cache_stale; /* a handler was added: drop the cache before the next lookup */
    void *last_pi;         /* the cache entry of the last pattern looked up, and its key */
    char last_key[64];
    size_t last_klen;
    nc_req *req_pool; /* finished requests kept for reuse */
    size_t npool;
    nc_req *inflight; /* list of unfinished requests */
    size_t ninflight;
    nc_evd *kept_events; /* kept, unsettled events (settle.c) */
    nc_buf scratch;      /* encoder scratch for reply values */
    uv_async_t async;
    uv_mutex_t ts_lock;
    nc_ts_reply *ts_head, *ts_tail;
    volatile int ts_close_requested;
    uv_timer_t grace; /* the shutdown deadline */
    uv_timer_t step;  /* runs the drain phase outside the callback that made it due */
    uv_signal_t sigint, sigterm;
    int signals_on;
    int listening, closing, transport_closed, handles_closed, freeing;
    int draining, hard_closing; /* shutdown phases 2 and 3 (server.c) started */
    int nclosing_handles;
    void (*close_done)(void *);
    void *close_user;
    nc_status_fn status_fn;
    void *status_user;
    struct nc_hook_table *hooks; /* installed hooks (hooks.c), NULL when none */
    /* workers.c: the primary's other workers, each a complete server on its own loop and thread */
    nc_server **workers;
    uv_thread_t *threads;
    int nworkers, nthreads;
    /* observability (src/obs, core/obs_support.c): the admin endpoint, and readiness from the statuses */
    struct nc_admin *admin;
    _Atomic int workers_closed; /* workers whose handles are closed (their threads count them) */
    int connected, ever_connected;
    uint64_t reconnects;
    struct nc_rflow *flows; /* requests whose handler watches for drain (flow.c) */
    int health_not_serving; /* nc_server_set_health("", not SERVING) accepted: /health/ready says not ready */
};

/* workers.c */
int nc_server__start_workers(nc_server *s);
/* Runs the server's loop until the server is closed (server.c; every worker's thread runs it too). */
void nc_server__run_loop(nc_server *s);
void nc_server__close_workers(nc_server *s);
void nc_server__join_workers(nc_server *s);

/* server.c: copies every handler of src into dst (same routes, same functions and user pointers). */
int nc_server__copy_handlers(nc_server *dst, const nc_server *src);

/* dispatch.c */
void nc_route_cache_free(nc_server *s);

/* request.c */
/* The handle of a live request, as handed to handlers. */
static inline nc_request *nc_req__handle(const nc_req *r) {
    return (nc_request *)nc_hid_to_ptr(r->hid);
}
nc_req *nc_request__new(nc_server *s);
/* Finishes r with the end of its stream (a value held is sent with isDisposed). */
void nc_request__end(nc_req *r);
void nc_request__pool_free(nc_server *s);
void nc_request__free_unfinished(nc_req *r);
void nc_msg__clear(nc_msg *m);
void nc_server__apply_ts_replies(nc_server *s);
/* Cancellation: mark_cancelled makes replies go nowhere and releases the peer (no callback);
 * run_cancel runs the cancel callback if one is set (it may finish r); cancel_later marks now and runs
 * the callback at the end of the loop iteration, for callers deep in a call that may involve r. */
void nc_request__mark_cancelled(nc_req *r);
void nc_request__run_cancel(nc_req *r);
void nc_request__cancel_later(nc_req *r);
/* A request left the in-flight list (graceful close may proceed). */
void nc_server__request_finished(nc_server *s);

/* msg_extras.c: copies the inbound headers and context into m->own_extras (requests, kept events). */
int nc_msg__copy_extras(nc_msg *m, const nc_header *h, size_t nh, int has_hdrs, const nc_ctx_item *c,
                        size_t nc);
/* A deep copy of an event's message that outlives the packet (nc_event_keep). */
int nc_msg__copy(nc_msg *dst, const nc_msg *src);

/* settle.c */
void nc_server__settle(nc_server *s, const nc_delivery *d, nc_settle how);
/* The request's auto-ack at its finish; the nack at its free when unsettled. */
void nc_request__settle(nc_req *r, nc_settle how);
/* The event's handlers returned: settle it now (ACK, or REJECT when unmatched) unless it was kept. */
void nc_event__handlers_done(nc_evctx *ec, int matched);
/* nc_server_free: every kept event still unsettled is nacked with requeue and its handles retired. */
void nc_event__free_all(nc_server *s);

/* stream.c: inbound streams, deadlines, reply metadata */
int nc_request__start_stream(nc_req *r);
int nc_request__start_deadline(nc_req *r, uint32_t ms);
void nc_request__stream_cancelled(nc_req *r);
void nc_request__free_extras(nc_req *r); /* stream, deadline timer, reply metadata */
/* Fills the metadata part of a reply packet (first packet: headers; last: status, trailers). */
void nc_request__fill_pkt(nc_req *r, nc_reply_pkt *pkt, int last);

/* flow.c: the writable watch of a request, hung on its reply metadata (nothing on requests that do not
 * stream); freed with it. */
void nc_request__flow_free(struct nc_rflow *f);
/* stream.c: the request behind a handle, unfinished, with its reply metadata allocated (else NULL and *err:
 * NC_ESTATE, NC_EINVAL, NC_ENOMEM); where the watch hangs on it. */
nc_req *nc_request__meta_req(nc_request *h, int *err);
struct nc_rflow **nc_request__flow_slot(nc_req *r);

/* Log fields (core/log.h): the trace id of a message (a W3C traceparent header or metadata key), and
 * that plus the request id of a request. */
void nc_msg__log_trace(const nc_msg *m, nc_log_ctx *lc);
void nc_request__log_ctx(const nc_req *r, nc_log_ctx *lc);

#endif
