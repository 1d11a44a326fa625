/* Dispatch: from one packet's text to its handlers, by NestJS's rules (handleMessage / handleEvent).
 *
 * Two paths with the same outcome. The scan path (the common case) validates and scans the packet once,
 * finds the route through a cache keyed by the pattern's raw text, and keeps the payload as text until a
 * handler asks for a jansson value; events allocate nothing and requests come from a pool with their
 * texts in inline bytes. The DOM path decodes the packet with jansson: it serves codecs, foreign
 * messages, and anything the scanner leaves to it (see json_scan.h), and it words every parse error. */
#include <stdlib.h>
#include <string.h>

#include "codec/envelope.h"
#include "codec/frame.h"
#include "codec/json_build.h"
#include "codec/json_scan.h"
#include "codec/json_write.h"
#include "core/hooks_internal.h"
#include "core/route.h"
#include "core/server_internal.h"
#include "nestc/error.h"
#include "util/utf8.h"

static void run_events(nc_server *s, nc_route_entry *e, const nc_msg *m) {
    /* Handlers may register more handlers (realloc): iterate by index over the count at entry. */
    size_t n = e->nevents;
    for (size_t i = 0; i < n && i < e->nevents; i++) e->events[i].fn(m, e->events[i].user);
}

static void log_no_event_handler(nc_server *s, const nc_msg *m) {
    nc_log_ctx lc = {0};
    nc_msg__log_trace(m, &lc);
    nc_logf_ctx(&s->log, NC_LOG_ERROR, "Server", &lc,
                "There is no matching event handler defined in the remote service. Event pattern: %s",
                m->pattern_text ? m->pattern_text : "undefined");
}

/* The hooks see a request (or an event for a message handler) begin: 0 to run its handler, or the
 * refusal, with which the request is then finished. */
static int hooks_begin(nc_server *s, nc_req *req, const nc_route_entry *e, int has_handler) {
    req->hk = nc_hooks__dispatch(s->hooks, s, &req->msg, nc_req__handle(req), req->id, req->id_len,
                                 has_handler ? e->id : 0);
    int err = req->hk && has_handler ? nc_hooks__before_handler(req->hk) : 0;
    if (err && req->msg.is_event) nc_request__settle(req, NC_SETTLE_NACK); /* a request fails (acked) */
    if (err) nc_reply_error_msg(nc_req__handle(req), nc_strerror(err));
    return err;
}

/* Runs a request handler, bracketed by the hooks. */
static void call_handler(nc_req *req, nc_route_entry *e) {
    nc_hook_rec *hk = req->hk; /* req may be finished and reused before the handler returns */
    if (hk) nc_hooks__handler_start(hk);
    e->req_fn(nc_req__handle(req), &req->msg, e->req_user);
    if (hk) nc_hooks__handler_return(hk);
}

/* Answers a request (its message filled and its id set) or runs an event routed to a message handler. */
static void run_request(nc_server *s, nc_req *req, nc_route_entry *e, const nc_inbound *in,
                        nc_dispatch_outcome *oc) {
    nc_msg *m = &req->msg;
    req->delivery = in->delivery;
    *oc = NC_DISPATCH_HANDLED;
    if (m->is_event) {
        /* NestJS runs a message handler for an event and discards its result. */
        req->discard = 1;
        if (s->hooks && hooks_begin(s, req, e, 1)) return;
        call_handler(req, e);
        return;
    }
    if ((in->stream_in | in->deadline_ms) && e && (e->req_fn || e->nevents)) {
        /* what a caller may add to its request: a stream of values, a deadline */
        if (in->stream_in && nc_request__start_stream(req) == 0 && in->stream_token)
            *in->stream_token = req->hid;
        if (in->deadline_ms && nc_request__start_deadline(req, in->deadline_ms))
            nc_logf(&s->log, NC_LOG_WARN, "Server", "out of memory: deadline of a request ignored");
    }
    req->peer = in->peer;
    req->pops = in->peer_ops;
    if (req->peer) req->pops->retain(req->peer);
    if (s->hooks && hooks_begin(s, req, e, e && (e->req_fn || e->nevents))) return;
    if (e && e->req_fn) {
        call_handler(req, e);
    } else if (e && e->nevents) {
        /* Only event handlers: NestJS runs the chain and answers; we answer with completion. */
        nc_hook_rec *hk = req->hk;
        if (hk) nc_hooks__handler_start(hk);
        run_events(s, e, m);
        nc_request__end(req);
        if (hk) nc_hooks__handler_return(hk);
    } else {
        *oc = NC_DISPATCH_NO_HANDLER;
        nc_reply_pkt pkt = {.no_handler = 1, .id = req->id, .id_len = req->id_len};
        if (req->peer && req->pops->reply(req->peer, &pkt)) req->peer_dead = 1;
        nc_request__settle(req, NC_SETTLE_REJECT);
        nc_request__free_unfinished(req);
    }
}

/* ---- route cache: raw pattern text -> route, handler entry, pattern text --------------------------- */

#define CACHE_MAX_ENTRIES 1024
#define CACHE_MAX_KEY 512

typedef struct pattern_info {
    nc_route_entry *entry; /* NULL: no handler for the route */
    char *route;
    size_t route_len;
    char *pattern; /* NestJS getPattern(): the string, or the value's JSON text; NULL when absent */
    size_t pattern_len;
} pattern_info;

static void info_free(pattern_info *pi) {
    free(pi->route);
    free(pi->pattern);
}

static void remember(nc_server *s, const char *key, size_t klen, pattern_info *pi) {
    if (klen > sizeof s->last_key) return;
    memcpy(s->last_key, key, klen);
    s->last_klen = klen;
    s->last_pi = pi;
}

void nc_route_cache_free(nc_server *s) {
    s->last_pi = NULL;
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&s->route_cache, &it, &k, &v)) {
        info_free(v);
        free(v);
    }
    nc_map_free(&s->route_cache);
}

static char *pattern_text(json_t *pattern) {
    if (json_is_string(pattern)) return strndup(json_string_value(pattern), json_string_length(pattern));
    nc_buf b = NC_BUF_INIT;
    if (nc_json_write(&b, pattern)) {
        nc_buf_free(&b);
        return NULL;
    }
    return nc_buf_steal(&b, NULL);
}

/* Route and pattern text of a decoded pattern (NULL: none), as NestJS computes them. Returns 0/ENOMEM. */
static int compute_info(nc_server *s, json_t *pattern, pattern_info *pi) {
    memset(pi, 0, sizeof *pi);
    if (pattern) {
        if (!(pi->pattern = pattern_text(pattern))) return NC_ENOMEM;
        pi->pattern_len = strlen(pi->pattern);
        int r = json_is_string(pattern) ? nc_route_from_text(pi->pattern, pi->pattern_len, &pi->route)
                                        : nc_route_from_value(pattern, &pi->route);
        if (r == NC_ENOMEM) {
            info_free(pi);
            return r;
        }
        if (!r) pi->entry = nc_map_get(&s->routes, pi->route, strlen(pi->route));
    }
    if (!pi->route && !(pi->route = strdup(pi->pattern ? pi->pattern : ""))) {
        info_free(pi);
        return NC_ENOMEM;
    }
    pi->route_len = strlen(pi->route);
    return 0;
}

/* The info for a scanned pattern span: from the cache, or computed (into *tmp when it is not cached; the
 * caller frees *tmp when the result is tmp). NULL on ENOMEM. */
static pattern_info *lookup(nc_server *s, const nc_span *p, pattern_info *tmp) {
    if (s->route_cache_stale) {
        nc_route_cache_free(s);
        s->route_cache_stale = 0;
    }
    const char *key = p->p ? p->p : "";
    size_t klen = p->p ? p->len : 0;
    /* most packets repeat the previous pattern: check it before hashing */
    if (s->last_pi && s->last_klen == klen && memcmp(s->last_key, key, klen) == 0) return s->last_pi;
    pattern_info *pi = nc_map_get(&s->route_cache, key, klen);
    if (pi) {
        remember(s, key, klen, pi);
        return pi;
    }
    json_t *pattern = NULL;
    if (p->p) {
        char why[8];
        if (nc_json_parse(p->p, p->len, &pattern, why, sizeof why)) return NULL;
    }
    int r = compute_info(s, pattern, tmp);
    nc_json_free(pattern);
    if (r) return NULL;
    if (klen > CACHE_MAX_KEY) return tmp;
    if (s->route_cache.len >= CACHE_MAX_ENTRIES) nc_route_cache_free(s); /* bounded: start over */
    pi = malloc(sizeof *pi);
    if (!pi) return tmp;
    *pi = *tmp;
    if (nc_map_put(&s->route_cache, key, klen, pi, NULL)) {
        free(pi);
        return tmp;
    }
    remember(s, key, klen, pi);
    return pi;
}

/* ---- scan path ----------------------------------------------------------------------------------- */

static char *put(char **at, const char *p, size_t n, int nul) {
    char *start = *at;
    memcpy(start, p, n);
    *at += n;
    if (nul) *(*at)++ = '\0';
    return start;
}

/* The id's JSON text as NestJS would echo it: a plain string as received, anything else re-encoded as
 * JSON.stringify would (numbers, escapes). *own receives an allocation to free, if any. */
static int id_text(const nc_span *id, const char **text, size_t *len, char **own) {
    *own = NULL;
    if (id->p[0] == '"' && !(id->flags & NC_SPAN_ESC)) {
        *text = id->p;
        *len = id->len;
        return 0;
    }
    json_t *v = NULL;
    char why[8];
    if (nc_json_parse(id->p, id->len, &v, why, sizeof why)) return NC_ENOMEM;
    nc_buf b = NC_BUF_INIT;
    int r = nc_json_write(&b, v);
    nc_json_free(v);
    if (r || !(*own = nc_buf_steal(&b, len))) {
        nc_buf_free(&b);
        return NC_ENOMEM;
    }
    *text = *own;
    return 0;
}

static void fill_common(nc_server *s, nc_msg *m, const nc_env *env, const nc_inbound *in) {
    m->scanned = 1;
    m->transport = s->url.scheme;
    m->data_json = env->data.p;
    m->data_json_len = env->data.len;
    /* escapes are written back as JSON.stringify writes them ("\u00e9" as é, "\uD83D" as "\ud83d"):
     * only text without whitespace or escapes is already in that form */
    m->data_compact = !(env->data.flags & (NC_SPAN_WS | NC_SPAN_ESC));
    m->meta_json = env->metadata.p;
    m->meta_json_len = env->metadata.len;
    m->is_event = env->id.p == NULL;
}

/* The hooks see an event begin; 1 when an interceptor refused it (it is then nacked, its handlers do not
 * run). */
static int hooks_event(nc_server *s, nc_evctx *ec, nc_msg *m, const nc_route_entry *e, int matched) {
    ec->hk = nc_hooks__dispatch(s->hooks, s, m, NULL, NULL, 0, matched ? e->id : 0);
    if (!ec->hk || !matched || !nc_hooks__before_handler(ec->hk)) return 0;
    nc_logf(&s->log, NC_LOG_DEBUG, "Server", "event refused by a hook: %s", m->route);
    if (ec->in->delivery.set) {
        nc_server__settle(s, &ec->in->delivery, NC_SETTLE_NACK);
        nc_hooks__settle(ec->hk, NC_SETTLE_NACK);
    }
    nc_hooks__finish(ec->hk, 0);
    return 1;
}

/* Runs an event's handlers on m (or logs that there are none), then settles it unless a handler kept
 * it (nc_event_keep copies the message then). */
static inline void event_handlers(nc_server *s, nc_route_entry *e, nc_msg *m, const nc_inbound *in,
                                  nc_dispatch_outcome *oc) {
    nc_evctx ec = {s, in, NULL, NULL};
    int matched = e && e->nevents;
    if (s->hooks && hooks_event(s, &ec, m, e, matched)) { /* refused: answered, as a failed handler is */
        *oc = NC_DISPATCH_HANDLED;
        return;
    }
    nc_hook_rec *hk = ec.hk; /* nc_event_keep takes ec.hk over */
    m->evctx = &ec;
    if (hk && matched) nc_hooks__handler_start(hk);
    if (matched)
        run_events(s, e, m);
    else
        log_no_event_handler(s, m);
    if (hk && matched) nc_hooks__handler_return(hk);
    m->evctx = NULL;
    *oc = matched ? NC_DISPATCH_HANDLED : NC_DISPATCH_NO_HANDLER;
    if (in->delivery.set || ec.kept) nc_event__handlers_done(&ec, matched);
    if (ec.hk) nc_hooks__event_done(ec.hk, in->delivery.set, matched); /* not kept: done now */
}

/* An event for event handlers: the message lives on the stack, its texts borrowed from the packet. */
static int scan_event(nc_server *s, const nc_env *env, const pattern_info *pi, const nc_inbound *in,
                      nc_dispatch_outcome *oc) {
    nc_msg m;
    memset(&m, 0, sizeof m);
    fill_common(s, &m, env, in);
    m.route = pi->route;
    m.pattern_text = pi->pattern;
    m.channel = (char *)in->channel; /* borrowed: cleared below before nc_msg__clear */
    m.hdrs = in->headers;            /* borrowed too */
    m.nhdrs = in->nheaders;
    m.has_hdrs = in->headers != NULL;
    m.ctx = in->ctx;
    m.nctx = in->nctx;
    event_handlers(s, pi->entry, &m, in, oc);
    /* what handlers may have built on first use; the rest is borrowed (nc_msg__clear would try ten
     * frees of NULL on this hot path) */
    if (m.data_owned) nc_json_free(m.data);
    if (m.meta_done) nc_json_free(m.metadata);
    if (m.headers) json_decref(m.headers);
    if (m.own_data_json) free(m.own_data_json);
    return 0;
}

/* A request (or an event for a message handler): copies what outlives the packet into the request. */
/* Inlined: with the parts path there are two callers, and the call would cost the hot path. */
static inline __attribute__((always_inline)) int scan_request(nc_server *s, const nc_env *env,
                                                              const pattern_info *pi, const nc_inbound *in,
                                                              nc_dispatch_outcome *oc) {
    const char *id = NULL;
    size_t id_len = 0;
    char *own_id = NULL;
    if (env->id.p && id_text(&env->id, &id, &id_len, &own_id)) return NC_ENOMEM;
    nc_req *req = nc_request__new(s);
    if (!req) {
        free(own_id);
        return NC_ENOMEM;
    }
    nc_msg *m = &req->msg;
    fill_common(s, m, env, in);
    size_t need = pi->route_len + 1 + (pi->pattern ? pi->pattern_len + 1 : 0) + (own_id ? 0 : id_len) +
                  env->data.len + env->metadata.len;
    char *a = req->inline_arena;
    if (need > NC_REQ_INLINE) {
        if (!(a = malloc(need))) goto nomem;
        m->arena_heap = 1;
    }
    m->arena = a;
    m->route = put(&a, pi->route, pi->route_len, 1);
    if (pi->pattern) m->pattern_text = put(&a, pi->pattern, pi->pattern_len, 1);
    if (own_id) {
        req->own_id = own_id;
        req->id = own_id;
    } else if (id) {
        req->id = put(&a, id, id_len, 0);
    }
    req->id_len = id_len;
    if (env->data.p) m->data_json = put(&a, env->data.p, env->data.len, 0);
    if (env->metadata.p) m->meta_json = put(&a, env->metadata.p, env->metadata.len, 0);
    if (in->channel && !(m->channel = strdup(in->channel))) goto nomem;
    if ((in->headers || in->nctx) &&
        nc_msg__copy_extras(m, in->headers, in->nheaders, in->headers != NULL, in->ctx, in->nctx))
        goto nomem;
    run_request(s, req, pi->entry, in, oc);
    return 0;
nomem:
    if (own_id && !req->own_id) free(own_id);
    nc_request__free_unfinished(req);
    return NC_ENOMEM;
}

/* Brokers dispatch on the subscription (in->route), not on the packet's pattern: borrowed texts. */
static pattern_info *by_route(nc_server *s, const char *route, pattern_info *tmp) {
    tmp->route_len = strlen(route);
    tmp->entry = nc_map_get(&s->routes, route, tmp->route_len);
    tmp->route = tmp->pattern = (char *)route;
    tmp->pattern_len = tmp->route_len;
    return tmp;
}

static inline int dispatch_env(nc_server *s, const nc_env *env, const pattern_info *pi, const nc_inbound *in,
                               nc_dispatch_outcome *oc) {
    nc_route_entry *e = pi->entry;
    return env->id.p == NULL && !(e && !e->nevents && e->req_fn) ? scan_event(s, env, pi, in, oc)
                                                                 : scan_request(s, env, pi, in, oc);
}

static int scan_dispatch(nc_server *s, const nc_env *env, const nc_inbound *in, nc_dispatch_outcome *oc) {
    pattern_info tmp, *pi = in->route ? by_route(s, in->route, &tmp) : lookup(s, &env->pattern, &tmp);
    if (!pi) return NC_ENOMEM;
    int r = dispatch_env(s, env, pi, in, oc);
    if (pi == &tmp && !in->route) info_free(&tmp);
    return r;
}

/* ---- parts path: a message handed as parts (nc_inbound_parts) ---------------------------------------- */

/* The span of one part as JSON text: JSON text as given (checked), or raw bytes as a JSON string (as Node
 * decodes them), written to b. Returns 0, NC_EPROTO (not JSON), NC_ENOMEM. */
static int part_span(const char *p, size_t n, int is_json, nc_buf *b, nc_span *out) {
    if (is_json) {
        if (nc_utf8_validate(p, n, NULL) == 0 && nc_json_scan_value(p, n, out) == NC_SCAN_OK) return 0;
        json_t *v = NULL;
        char why[8];
        if (nc_json_parse(p, n, &v, why, sizeof why)) return NC_EPROTO;
        int r = nc_json_write(b, v);
        nc_json_free(v);
        if (r) return NC_ENOMEM;
        /* the scanner may still refuse this text (an exponent, an escaped key, a lone surrogate): it is
         * JSON the DOM parser took, so it is the span, marked as not compact */
        *out = (nc_span){b->data, b->len, NC_SPAN_ESC};
        return 0;
    } else {
        json_t *v = nc_json_string_js(p, n, 0);
        int r = !v || nc_json_write(b, v);
        json_decref(v);
        if (r) return NC_ENOMEM;
    }
    return nc_json_scan_value(b->data, b->len, out) == NC_SCAN_OK ? 0 : NC_EPROTO;
}

static __attribute__((cold, noinline)) int parts_dispatch(nc_server *s, const nc_inbound *in,
                                                          nc_dispatch_outcome *oc) {
    const nc_inbound_parts *p = in->parts;
    nc_env env;
    memset(&env, 0, sizeof env);
    nc_buf idb = NC_BUF_INIT, datab = NC_BUF_INIT;
    int r = 0;
    if (p->id && !p->is_event) r = part_span(p->id, p->id_len, p->id_is_json, &idb, &env.id);
    if (!r && p->data) {
        r = part_span(p->data, p->data_len, p->data_is_json, &datab, &env.data);
        if (r == NC_EPROTO && (in->flags & NC_IN_JSON_OR_STRING)) {
            nc_buf_reset(&datab);
            r = part_span(p->data, p->data_len, 0, &datab, &env.data);
        }
    }
    if (!r) {
        const char *route = in->route ? in->route : p->pattern ? p->pattern : "";
        pattern_info pi;
        by_route(s, route, &pi);
        if (p->pattern) {
            pi.pattern = (char *)p->pattern;
            pi.pattern_len = strlen(p->pattern);
        }
        r = dispatch_env(s, &env, &pi, in, oc);
    }
    nc_buf_free(&idb);
    nc_buf_free(&datab);
    return r;
}

/* ---- DOM path ------------------------------------------------------------------------------------ */

/* Fills the message context from a decoded packet (spec README §9.1 for foreign messages). */
static int msg_fill(nc_server *s, nc_msg *m, json_t *root, const nc_inbound *in, json_t **pattern,
                    json_t **id) {
    m->root = root;
    m->transport = s->url.scheme;
    m->meta_done = 1;
    if (in->channel && !(m->channel = strdup(in->channel))) return NC_ENOMEM;
    if ((in->headers || in->nctx) &&
        nc_msg__copy_extras(m, in->headers, in->nheaders, in->headers != NULL, in->ctx, in->nctx))
        return NC_ENOMEM;
    *pattern = *id = NULL;
    json_t *p = json_is_object(root) ? json_object_get(root, "pattern") : NULL;
    json_t *d = json_is_object(root) ? json_object_get(root, "data") : NULL;
    if (json_is_object(root) && (p || d)) {
        *pattern = p;
        *id = json_object_get(root, "id");
        m->data = d;
        m->metadata = json_object_get(root, "metadata");
        if (m->metadata && !json_is_object(m->metadata)) m->metadata = NULL;
    } else {
        /* Not a NestJS packet: an event for the channel it came on, the whole message as data. */
        m->data = root;
        /* the channel is UTF-8 here (nc_server__dispatch) */
        if (in->channel && !(*pattern = json_string(in->channel))) return NC_ENOMEM; /* caller frees */
    }
    if (!m->data) m->data = json_null();
    return 0;
}

static int dom_dispatch(nc_server *s, const char *body, size_t len, const nc_inbound *in, char *why,
                        size_t whylen, nc_dispatch_outcome *oc) {
    json_t *root = NULL;
    int js_accepts = 0;
    int pr = nc_json_parse_js(body, len, &root, why, whylen, &js_accepts);
    if (pr && js_accepts) {
        /* JSON to NestJS, but deeper than we hold (json_build.h): drop the message, keep the connection
         * and the other calls on it */
        nc_logf(&s->log, NC_LOG_ERROR, "Server", "message dropped: nested deeper than %d levels",
                NC_JSON_MAX_DEPTH);
        return 0;
    }
    if (pr) return NC_EPROTO;
    if (s->cfg.has_codec && s->cfg.codec.deserialize) {
        json_t *x = s->cfg.codec.deserialize(s->cfg.codec.user, root);
        nc_json_free(root);
        if (!x) {
            nc_logf(&s->log, NC_LOG_WARN, "Server", "the deserializer dropped a message");
            return 0;
        }
        root = x;
    }
    if (!(in->flags & (NC_IN_JSON_OR_STRING | NC_IN_JSON_NODE_DECODED)) && !nc_json_truthy(root)) {
        /* NestJS's TCP (JsonSocket) replaces a falsy body by {}; its MQTT, Redis and NATS servers pass it on
         * as the data of an event (spec README §9.1) */
        nc_json_free(root);
        root = json_object();
        if (!root) return NC_ENOMEM;
    }
    nc_req *req = nc_request__new(s);
    if (!req) {
        nc_json_free(root);
        return NC_ENOMEM;
    }
    nc_msg *m = &req->msg;
    json_t *pattern = NULL, *id = NULL;
    int r = msg_fill(s, m, root, in, &pattern, &id);
    json_t *owned_pattern = pattern && pattern != json_object_get(root, "pattern") ? pattern : NULL;
    if (r) goto fail;
    m->is_event = id == NULL;
    pattern_info pi;
    r = compute_info(s, pattern, &pi);
    json_decref(owned_pattern);
    owned_pattern = NULL;
    if (r) goto fail;
    if (in->route) { /* the subscription decides (brokers) */
        info_free(&pi);
        pattern_info b;
        by_route(s, in->route, &b);
        memset(&pi, 0, sizeof pi);
        pi.entry = b.entry;
        if (!(pi.route = strdup(in->route)) || !(pi.pattern = strdup(in->route))) {
            info_free(&pi);
            r = NC_ENOMEM;
            goto fail;
        }
    }
    m->route = m->own_route = pi.route;
    m->pattern_text = m->own_pattern = pi.pattern;
    nc_route_entry *e = pi.entry;
    if (m->is_event && !(e && !e->nevents && e->req_fn)) {
        event_handlers(s, e, m, in, oc); /* req only hosts the message: it has no delivery to settle */
        nc_request__free_unfinished(req);
        return 0;
    }
    if (!m->is_event) {
        nc_buf idb = NC_BUF_INIT;
        if (nc_json_write(&idb, id) || !(req->own_id = nc_buf_steal(&idb, &req->id_len))) {
            nc_buf_free(&idb);
            r = NC_ENOMEM;
            goto fail;
        }
        req->id = req->own_id;
    }
    run_request(s, req, e, in, oc);
    return 0;
fail:
    json_decref(owned_pattern);
    nc_request__free_unfinished(req);
    return r;
}

/* NestJS's fallback for a body that is not JSON: the raw string is the message (a foreign event). NestJS
 * decodes the bytes before JSON.parse (U+FFFD for ill-formed UTF-8), so a body that was refused only for
 * such bytes is first tried again decoded: JSON with them inside a string is still that JSON (an object
 * event, or a request that gets its reply). NC_IN_JSON_NODE_DECODED alone (NATS) stops there: a body that is
 * still not JSON is refused, as NestJS's msg.json() throws. */
static __attribute__((cold, noinline)) int dispatch_as_string(nc_server *s, const char *body, size_t len,
                                                              const nc_inbound *in, char *why, size_t whylen,
                                                              nc_dispatch_outcome *oc) {
    int ill_formed = nc_utf8_validate(body, len, NULL) != 0;
    if (!ill_formed && !(in->flags & NC_IN_JSON_OR_STRING)) return NC_EPROTO; /* `why` says why already */
    json_t *str = nc_json_string_js(body, len, 0);
    nc_buf b = NC_BUF_INIT;
    int r = NC_EPROTO;
    if (str && ill_formed)
        r = dom_dispatch(s, json_string_value(str), json_string_length(str), in, why, whylen, oc);
    if (r == NC_EPROTO && (in->flags & NC_IN_JSON_OR_STRING))
        r = !str || nc_json_write(&b, str) ? NC_ENOMEM : dom_dispatch(s, b.data, b.len, in, why, whylen, oc);
    else if (!str)
        r = NC_ENOMEM;
    json_decref(str);
    nc_buf_free(&b);
    return r;
}

static int dispatch_body(nc_server *s, const char *body, size_t len, const nc_inbound *in, char *why,
                         size_t whylen, nc_dispatch_outcome *oc) {
    if (in->parts) return parts_dispatch(s, in, oc);
    if (!s->cfg.has_codec && (in->utf8_valid || nc_utf8_validate(body, len, NULL) == 0)) {
        nc_env env;
        if (nc_env_scan(body, len, &env) == NC_SCAN_OK && (env.pattern.p || env.data.p))
            return scan_dispatch(s, &env, in, oc);
    }
    int r = dom_dispatch(s, body, len, in, why, whylen, oc);
    if (r == NC_EPROTO && (in->flags & (NC_IN_JSON_OR_STRING | NC_IN_JSON_NODE_DECODED)))
        r = dispatch_as_string(s, body, len, in, why, whylen, oc);
    return r;
}

int nc_server__dispatch(nc_server *s, const char *body, size_t len, const nc_inbound *in, char *why,
                        size_t whylen) {
    if (in->channel && nc_utf8_validate(in->channel, strlen(in->channel), NULL)) {
        /* A channel is bytes (Redis allows any): Node decodes it as UTF-8, U+FFFD for ill-formed bytes,
         * and so do we, so the handler, the pattern and the log lines see what NestJS would. */
        json_t *ch = nc_json_string_js(in->channel, strlen(in->channel), 0);
        if (!ch) return NC_ENOMEM;
        nc_inbound fixed = *in;
        fixed.channel = json_string_value(ch);
        int r = nc_server__dispatch(s, body, len, &fixed, why, whylen);
        json_decref(ch);
        return r;
    }
    nc_dispatch_outcome oc = NC_DISPATCH_FAILED;
    int r = dispatch_body(s, body, len, in, why, whylen, &oc);
    /* a message that reached no handler at all (not JSON, dropped, out of memory) is settled here */
    if (oc == NC_DISPATCH_FAILED && in->delivery.set) nc_server__settle(s, &in->delivery, NC_SETTLE_REJECT);
    if (in->outcome) *in->outcome = oc;
    return r;
}
