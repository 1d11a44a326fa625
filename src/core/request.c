/* Requests: the message context handed to handlers, and the reply stream written back (spec README §4:
 * values, errors, the isDisposed end marker and its coalescing with the last value). */
#include <stdlib.h>
#include <string.h>

#include "codec/envelope.h"
#include "codec/frame.h"
#include "codec/json_build.h"
#include "codec/json_scan.h"
#include "codec/json_write.h"
#include "core/hooks_internal.h"
#include "core/server_internal.h"
#include "nestc/error.h"
#include "util/utf8.h"

struct nc_ts_reply {
    nc_ts_reply *next;
    nc_hid req; /* re-resolved on the loop: the request may have finished meanwhile */
    nc_reply_kind kind;
    json_t *value;
};

static void flush_held(nc_flushable *f);

/* Finished requests go back to a small per-server pool: the hot path allocates nothing per request. */
#define POOL_MAX 256

nc_req *nc_request__new(nc_server *s) {
    nc_req *r = s->req_pool;
    if (r) {
        /* a pooled request keeps its handle slot: the same object, the same server, a new generation */
        s->req_pool = r->next;
        s->npool--;
        nc_hid hid = r->hid;
        nc_handle_slot *hs = r->hslot;
        memset(r, 0, offsetof(nc_req, inline_arena));
        r->hslot = hs;
        r->hid = nc_handle_revive_slot(hs, hid);
    } else if (!(r = malloc(sizeof *r))) {
        return NULL;
    } else {
        memset(r, 0, offsetof(nc_req, inline_arena));
    }
    if (!r->hid) { /* a new request: a slot of its own, kept while it is pooled */
        if (nc_handle_alloc(r, s, &r->hid)) {
            free(r);
            return NULL;
        }
        r->hslot = nc_handle_slot_of(r->hid);
    }
    r->srv = s;
    r->fl.flush = flush_held;
    r->next = s->inflight;
    if (s->inflight) s->inflight->prev = r;
    s->inflight = r;
    s->ninflight++;
    return r;
}

void nc_request__pool_free(nc_server *s) {
    while (s->req_pool) {
        nc_req *r = s->req_pool;
        s->req_pool = r->next;
        nc_handle_release(r->hid);
        free(r);
    }
    s->npool = 0;
}

/* Frees what the message owns; leaves the struct as is (nc_request__new zeroes a pooled request). */
static void msg_release(nc_msg *m) {
    /* values read from peer text: freed without recursion on their depth */
    /* most of these are NULL on the hot path: test before calling */
    if (m->root) nc_json_free(m->root);
    if (m->data_owned) nc_json_free(m->data);
    if (m->scanned && m->meta_done && m->metadata) nc_json_free(m->metadata);
    if (m->headers) json_decref(m->headers);
    if (m->own_extras) free(m->own_extras);
    if (m->own_route) free(m->own_route);
    if (m->own_pattern) free(m->own_pattern);
    if (m->own_data_json) free(m->own_data_json);
    if (m->channel) free(m->channel);
    if (m->arena_heap) free(m->arena);
}

void nc_msg__clear(nc_msg *m) {
    msg_release(m);
    memset(m, 0, sizeof *m);
}

void nc_request__free_unfinished(nc_req *r) {
    nc_server *s = r->srv;
    if (r->prev)
        r->prev->next = r->next;
    else
        s->inflight = r->next;
    if (r->next) r->next->prev = r->prev;
    s->ninflight--;
    /* freed before it was settled (server close, or a failed dispatch): the broker delivers it again */
    if (!r->settled && r->delivery.set) nc_request__settle(r, NC_SETTLE_NACK_REQUEUE);
    if (r->hk) nc_hooks__finish(r->hk, r->cancelled ? NC_ECANCELED : s->freeing ? NC_ECLOSED : 0);
    if (r->stream || r->deadline || r->meta) nc_request__free_extras(r);
    nc_handle_retire_slot(r->hslot); /* from here on the handler's handle is refused; the slot stays */
    nc_ioctx_unmark(&s->io, &r->fl);
    if (r->has_held) json_decref(r->held);
    if (r->peer) r->pops->release(r->peer);
    msg_release(&r->msg);
    if (r->own_id) free(r->own_id);
    if (s->npool < POOL_MAX && !s->freeing) {
        r->next = s->req_pool;
        s->req_pool = r;
        s->npool++;
    } else {
        nc_handle_release(r->hid);
        free(r);
    }
    if (!s->freeing) nc_server__request_finished(s);
}

/* Writes one packet of the reply stream. value == NULL: `undefined` (no response key). */
/* Writes one packet of the reply stream from the JSON text of its value (NULL: `undefined`, no key). */
static void emit_text(nc_req *r, const char *text, size_t len, int is_err, int disposed) {
    if (r->discard || !r->peer || r->peer_dead) return;
    if (r->hk)
        nc_hooks__reply(r->hk,
                        is_err ? NC_HOOK_REPLY_ERROR
                        : text ? NC_HOOK_REPLY_VALUE
                               : NC_HOOK_REPLY_END,
                        text, len, disposed);
    nc_reply_pkt pkt = {.disposed = disposed, .id = r->id, .id_len = r->id_len};
    if (r->meta) nc_request__fill_pkt(r, &pkt, disposed || is_err);
    r->first_sent = 1;
    if (text && is_err) {
        pkt.err = text;
        pkt.err_len = len;
    } else if (text) {
        pkt.response = text;
        pkt.response_len = len;
    }
    if (r->pops->reply(r->peer, &pkt)) r->peer_dead = 1;
}

/* The same from a jansson value (NULL: `undefined`). */
static int emit(nc_req *r, json_t *value, int is_err, int disposed) {
    if (r->discard || !r->peer || r->peer_dead) return 0;
    nc_buf *b = &r->srv->scratch;
    nc_buf_reset(b);
    if (value && nc_json_write(b, value)) return NC_ENOMEM;
    emit_text(r, value ? b->data : NULL, b->len, is_err, disposed);
    return 0;
}

/* The request behind a handle, or NULL when the handle is NULL, finished or never issued. */
static nc_req *resolve_any(const nc_request *h) {
    return h ? nc_handle_get(nc_hid_from_ptr(h)) : NULL;
}
/* The same, for calls on the reply stream: NULL also once the stream ended (a request waiting to be
 * settled by its handler). */
static nc_req *resolve(const nc_request *h) {
    nc_req *r = resolve_any(h);
    return r && !r->replied ? r : NULL;
}
static int refused(const nc_request *h) {
    return h ? NC_ESTATE : NC_EINVAL;
}

static void take_held(nc_req *r, int disposed) {
    json_t *v = r->held;
    r->has_held = 0;
    r->held = NULL;
    emit(r, v, 0, disposed);
    json_decref(v);
}

static void flush_held(nc_flushable *f) {
    nc_req *r = (nc_req *)((char *)f - offsetof(nc_req, fl));
    if (r->has_held) take_held(r, 0);
    if (r->cancel_due) nc_request__run_cancel(r);
}

/* The reply stream ended. Auto-settled requests go at once; one the handler settles lives on, without
 * its peer, until it is settled (settle.c). */
static inline void finish(nc_req *r) {
    if (!r->settle_manual) {
        if (r->delivery.set)
            nc_request__settle(r, NC_SETTLE_ACK);
        else
            r->settled = 1; /* nothing to settle */
    }
    if (r->settled) {
        nc_request__free_unfinished(r);
        return;
    }
    r->replied = 1;
    r->cancel_fn = NULL;
    if (r->stream || r->deadline || r->meta) nc_request__free_extras(r);
    if (r->peer) {
        void *peer = r->peer;
        r->peer = NULL;
        r->pops->release(peer);
    }
}

int nc_reply_next(nc_request *h, json_t *value) {
    nc_req *r = resolve(h);
    if (!r) {
        json_decref(value); /* stolen even when refused */
        return refused(h);
    }
    if (r->has_held) take_held(r, 0);
    /* Hold the value until the end of this loop iteration: if the stream ends before then, the value
     * carries isDisposed (NestJS's coalescing). */
    r->held = value;
    r->has_held = 1;
    nc_ioctx_mark(&r->srv->io, &r->fl);
    return 0;
}

void nc_request__end(nc_req *r) {
    if (r->has_held)
        take_held(r, 1);
    else
        emit(r, NULL, 0, 1);
    finish(r);
}

int nc_reply_end(nc_request *h) {
    nc_req *r = resolve(h);
    if (!r) return refused(h);
    nc_request__end(r);
    return 0;
}

int nc_reply(nc_request *h, json_t *value) {
    nc_req *r = resolve(h);
    if (!r) {
        json_decref(value);
        return refused(h);
    }
    if (r->has_held) take_held(r, 0);
    emit(r, value, 0, 1);
    json_decref(value);
    finish(r);
    return 0;
}

static int reply_error(nc_req *r, json_t *err) {
    if (!err) err = json_pack("{s:s,s:s}", "status", "error", "message", "Internal server error");
    if (r->has_held) take_held(r, 0);
    emit(r, err, 1, 1);
    json_decref(err);
    finish(r);
    return 0;
}

int nc_reply_json(nc_request *h, const char *json, size_t len) {
    nc_req *r = resolve(h);
    if (!r) return refused(h);
    /* the peer frames by UTF-16 length: the text must be UTF-8 and one JSON value */
    nc_span sp;
    int bad = !json || nc_utf8_validate(json, len, NULL) != 0;
    if (!bad && nc_json_scan_value(json, len, &sp) != NC_SCAN_OK) {
        json_t *probe = NULL;
        char why[8];
        bad = nc_json_parse(json, len, &probe, why, sizeof why) != 0;
        nc_json_free(probe);
    }
    if (bad) {
        nc_log_ctx lc;
        nc_request__log_ctx(r, &lc);
        nc_logf_ctx(&r->srv->log, NC_LOG_ERROR, "Server", &lc, "nc_reply_json: the reply is not JSON text");
        reply_error(r, NULL);
        return NC_EINVAL;
    }
    if (r->has_held) take_held(r, 0);
    emit_text(r, json, len, 0, 1);
    finish(r);
    return 0;
}

int nc_reply_error(nc_request *h, json_t *err) {
    nc_req *r = resolve(h);
    if (!r) {
        json_decref(err);
        return refused(h);
    }
    return reply_error(r, err);
}

int nc_reply_error_msg(nc_request *h, const char *msg) {
    if (!resolve(h)) return refused(h);
    /* msg may quote peer text (a WTF-8 lone surrogate), which json_pack's "s" refuses */
    json_t *m = nc_json_string_js(msg ? msg : "", msg ? strlen(msg) : 0, 1);
    return nc_reply_error(h, m ? json_pack("{s:s,s:o}", "status", "error", "message", m) : NULL);
}

/* ---- thread-safe replies ------------------------------------------------------------------------- */

int nc_reply_threadsafe(nc_request *h, nc_reply_kind kind, json_t *value) {
    nc_hid id = nc_hid_from_ptr(h);
    /* only the owner is read here: the request itself belongs to its loop and may finish meanwhile */
    nc_server *s = id ? nc_handle_owner(id) : NULL;
    if (!s) {
        json_decref(value);
        return refused(h);
    }
    nc_ts_reply *t = malloc(sizeof *t);
    if (!t) {
        json_decref(value);
        return NC_ENOMEM;
    }
    *t = (nc_ts_reply){NULL, id, kind, value};
    uv_mutex_lock(&s->ts_lock);
    if (s->ts_tail)
        s->ts_tail->next = t;
    else
        s->ts_head = t;
    s->ts_tail = t;
    uv_mutex_unlock(&s->ts_lock);
    uv_async_send(&s->async);
    return 0;
}

void nc_server__apply_ts_replies(nc_server *s) {
    uv_mutex_lock(&s->ts_lock);
    nc_ts_reply *t = s->ts_head;
    s->ts_head = s->ts_tail = NULL;
    uv_mutex_unlock(&s->ts_lock);
    while (t) {
        nc_ts_reply *next = t->next;
        nc_request *h = nc_hid_to_ptr(t->req);
        if (s->freeing || !resolve(h)) {
            json_decref(t->value); /* the request finished before the reply arrived: dropped */
        } else {
            switch (t->kind) {
            case NC_REPLY_VALUE:
                nc_reply(h, t->value);
                break;
            case NC_REPLY_NEXT:
                nc_reply_next(h, t->value);
                break;
            case NC_REPLY_END:
                json_decref(t->value);
                nc_reply_end(h);
                break;
            case NC_REPLY_ERROR:
                nc_reply_error(h, t->value);
                break;
            default:
                json_decref(t->value);
                break;
            }
        }
        free(t);
        t = next;
    }
}

/* ---- log fields ---------------------------------------------------------------------------------- */

void nc_msg__log_trace(const nc_msg *m, nc_log_ctx *lc) {
    size_t len = 0;
    const char *tp = nc_msg_header(m, "traceparent", &len);
    if (!tp) {
        json_t *md = nc_msg_metadata(m);
        json_t *v = md ? json_object_get(md, "traceparent") : NULL;
        tp = json_string_value(v);
        len = tp ? json_string_length(v) : 0;
    }
    if ((lc->trace_id = nc_log_traceparent_id(tp, len))) lc->trace_id_len = 32;
}

void nc_request__log_ctx(const nc_req *r, nc_log_ctx *lc) {
    memset(lc, 0, sizeof *lc);
    nc_msg__log_trace(&r->msg, lc);
    if (!r->id || !r->id_len) return;
    /* the id's JSON text: a string's quotes are not part of it (escapes inside are kept as sent) */
    int quoted = r->id_len >= 2 && r->id[0] == '"' && r->id[r->id_len - 1] == '"';
    lc->request_id = r->id + quoted;
    lc->request_id_len = r->id_len - 2 * (size_t)quoted;
}

/* ---- message accessors --------------------------------------------------------------------------- */

json_t *nc_msg_data(const nc_msg *m) {
    nc_msg *mm = (nc_msg *)m; /* built on first use */
    if (!mm->data && mm->data_json) {
        /* scanned text: built without jansson's parser */
        mm->data = nc_json_build(mm->data_json, mm->data_json_len);
        mm->data_owned = mm->data != NULL;
    }
    return mm->data ? mm->data : json_null();
}

const char *nc_msg_data_json(const nc_msg *m, size_t *len) {
    nc_msg *mm = (nc_msg *)m; /* lazily cached */
    if (mm->data_json && mm->data_compact) {
        if (len) *len = mm->data_json_len;
        return mm->data_json;
    }
    if (!mm->own_data_json) {
        nc_buf b = NC_BUF_INIT;
        if (nc_json_write(&b, nc_msg_data(m))) {
            nc_buf_free(&b);
            if (len) *len = 0;
            return NULL;
        }
        mm->own_data_json = nc_buf_steal(&b, &mm->data_json_len);
        mm->data_json = mm->own_data_json;
        mm->data_compact = 1;
    }
    if (len) *len = mm->data_json_len;
    return mm->data_json;
}

const char *nc_msg_route(const nc_msg *m) {
    return m->route;
}
const char *nc_msg_pattern(const nc_msg *m) {
    return m->pattern_text;
}
const char *nc_msg_transport(const nc_msg *m) {
    return m->transport;
}
const char *nc_msg_channel(const nc_msg *m) {
    return m->channel;
}
json_t *nc_msg_metadata(const nc_msg *m) {
    nc_msg *mm = (nc_msg *)m;
    if (mm->scanned && !mm->meta_done) {
        mm->meta_done = 1;
        json_t *v = NULL;
        char why[8];
        if (mm->meta_json && nc_json_parse(mm->meta_json, mm->meta_json_len, &v, why, sizeof why) == 0) {
            if (json_is_object(v))
                mm->metadata = v;
            else
                json_decref(v);
        }
    }
    return mm->metadata;
}
int nc_msg_is_event(const nc_msg *m) {
    return m->is_event;
}
const nc_msg *nc_request_msg(const nc_request *h) {
    nc_req *r = resolve_any(h);
    return r ? &r->msg : NULL;
}

const char *nc_request_peer(const nc_request *h) {
    nc_req *r = resolve_any(h);
    return r && r->peer && r->pops->addr ? r->pops->addr(r->peer) : NULL;
}

struct uv_loop_s *nc_request_loop(const nc_request *h) {
    nc_req *r = resolve_any(h);
    return r ? r->srv->io.loop : NULL;
}

/* ---- cancellation -------------------------------------------------------------------------------- */

void nc_request__mark_cancelled(nc_req *r) {
    if (r->cancelled) return;
    r->cancelled = 1;
    /* nobody can receive the rest: drop what is held and let the peer go now (its connection is
     * closing or the server is), rather than when a handler that ignores cancellation finishes */
    if (r->has_held) {
        json_decref(r->held);
        r->held = NULL;
        r->has_held = 0;
    }
    r->peer_dead = 1;
    if (r->peer) {
        void *peer = r->peer;
        r->peer = NULL;
        r->pops->release(peer);
    }
}

void nc_request__run_cancel(nc_req *r) {
    if (r->stream) {
        /* the inbound stream ends first; its callback may finish r */
        nc_hid id = r->hid;
        nc_request__stream_cancelled(r);
        if (nc_handle_get(id) != r || r->replied) return;
    }
    nc_cancel_fn fn = r->cancel_fn;
    r->cancel_fn = NULL;
    r->cancel_due = 0;
    if (fn) fn(nc_req__handle(r), r->cancel_arg); /* may finish r */
}

void nc_request__cancel_later(nc_req *r) {
    if (r->cancelled) return;
    nc_request__mark_cancelled(r);
    /* the callback runs at the end of this loop iteration (flush_held), outside whatever call noticed
     * the peer leaving, which may be a reply of this very request */
    r->cancel_due = 1;
    nc_ioctx_mark(&r->srv->io, &r->fl);
}

int nc_request_on_cancel(nc_request *h, nc_cancel_fn fn, void *arg) {
    nc_req *r = resolve(h);
    if (!r) return refused(h);
    if (r->cancelled) {
        r->cancel_fn = NULL; /* a deferred run has nothing left to call */
        if (fn) fn(h, arg);
        return 0;
    }
    r->cancel_fn = fn;
    r->cancel_arg = arg;
    return 0;
}

bool nc_request_is_cancelled(const nc_request *h) {
    nc_req *r = resolve(h);
    return r && r->cancelled;
}
