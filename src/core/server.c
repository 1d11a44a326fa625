/* The server core: handler table, dispatch by NestJS's rules, lifecycle and graceful shutdown. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "codec/envelope.h"
#include "codec/json_write.h"
#include "util/abi.h"
#include "util/last_error.h"
#include "core/fail.h"
#include "core/hooks_internal.h"
#include "core/route.h"
#include "core/server_internal.h"
#include "io/tls.h"
#include "nestc/error.h"
#include "obs/admin.h"

#define DEFAULT_LIMIT 134217728LL

static long long limit_or(long long v, long long def) {
    return v == 0 ? def : v < 0 ? 0 : v;
}

static int cfg_init(nc_server_cfg *c, const nc_server_opts *o) {
    memset(c, 0, sizeof *c);
    c->max_buffer_size = limit_or(o->max_buffer_size, DEFAULT_LIMIT);
    c->max_send_buffer_size = limit_or(o->max_send_buffer_size, DEFAULT_LIMIT);
    c->incomplete_timeout_ms = (int)limit_or(o->incomplete_message_timeout_ms, 30000);
    c->shutdown_timeout_ms = (int)limit_or(o->shutdown_timeout_ms, 10000);
    c->handshake_timeout_ms = (int)limit_or(o->handshake_timeout_ms, 10000);
    c->retry_attempts = o->retry_attempts > 0 ? o->retry_attempts : 0;
    c->retry_delay_ms = o->retry_delay_ms > 0 ? o->retry_delay_ms : 0;
    if (o->tls) {
        nc_tls_opts t;
        if (nc_abi_copy_in(&t, sizeof t, o->tls, o->tls->struct_size, NC_TLS_OPTS_BASE)) return NC_EINVAL;
        t.struct_size = 0; /* our own layout from here on */
        c->has_tls = 1;
        nc_tls_opts_copy(&c->tls, &t);
    }
    if (o->codec) {
        c->has_codec = 1;
        c->codec = *o->codec;
    }
    c->workers = o->workers > 1 ? o->workers : 1;
    c->reuseport = c->workers > 1;
    return 0;
}

static void cfg_free(nc_server_cfg *c) {
    nc_tls_opts_free(&c->tls);
}

static void on_async(uv_async_t *h) {
    nc_server *s = h->data;
    nc_server__apply_ts_replies(s);
    if (s->ts_close_requested) {
        s->ts_close_requested = 0;
        nc_server_close(s, NULL, NULL);
    }
}

int nc_server_new(nc_server **out, const char *url, const nc_server_opts *user_opts) {
    if (!out) return nc_set_last_error(NC_EINVAL, "nc_server_new: out is NULL");
    *out = NULL;
    unsigned mark = nc_last_error_mark();
    nc_server_opts own = {0};
    const nc_server_opts *opts = &own;
    if (user_opts &&
        nc_abi_copy_in(&own, sizeof own, user_opts, user_opts->struct_size, NC_SERVER_OPTS_BASE)) {
        nc_logger lg;
        nc_logger_init(&lg, user_opts->log, user_opts->log_user, user_opts->log_level);
        return nc_fail(&lg, "Server", NC_EINVAL,
                       "nc_server_opts.struct_size %zu: not a layout this library knows",
                       user_opts->struct_size);
    }
    nc_server *s = calloc(1, sizeof *s);
    if (!s) return nc_set_last_error(NC_ENOMEM, "out of memory");
    nc_logger_init(&s->log, opts->log, opts->log_user, opts->log_level);
    char err[256];
    int r = nc_url_parse(&s->url, url, err, sizeof err);
    if (r) {
        nc_fail(&s->log, "Server", r, "%s", err);
        free(s);
        return r;
    }
    s->tp = nc_server_transport_find(s->url.scheme);
    if (!s->tp) {
        nc_fail(&s->log, "Server", NC_EUNSUPPORTED, "unsupported transport \"%s\" in %s", s->url.scheme, url);
        nc_url_free(&s->url);
        free(s);
        return NC_EUNSUPPORTED;
    }
    const nc_optctx cx = {NC_OPT_SERVER, s->url.scheme, &s->log, "Server"};
    if ((r = nc_optset_build(&s->opts, s->tp->options, &cx, &s->url, opts->options, opts->noptions))) {
        nc_url_free(&s->url);
        free(s);
        return r;
    }
    if ((r = cfg_init(&s->cfg, opts))) {
        nc_fail(&s->log, "Server", r, "nc_tls_opts.struct_size %zu: not a layout this library knows",
                opts->tls->struct_size);
        goto fail_cfg;
    }
    if (s->cfg.workers > 1 && (opts->loop || !s->tp->supports_workers)) {
        r = nc_fail(&s->log, "Server", NC_EINVAL, "workers need %s",
                    opts->loop ? "the server's own loop (loop NULL)" : "a listening transport (tcp, tls)");
        goto fail_cfg;
    }
    if ((r = nc_ioctx_init(&s->io, opts->loop))) goto fail_cfg;
    /* wire counters (io/wire.h): one slot per loop, workers count in the primary's block */
    if ((r = nc_ioctx_count_wire(&s->io, s->cfg.workers))) goto fail_io;
    if ((r = s->tp->create(s, &s->url, &s->tps))) goto fail_io;
    uv_mutex_init(&s->ts_lock);
    uv_async_init(s->io.loop, &s->async, on_async);
    s->async.data = s;
    uv_unref((uv_handle_t *)&s->async);
    uv_timer_init(s->io.loop, &s->grace);
    s->grace.data = s;
    uv_timer_init(s->io.loop, &s->step);
    s->step.data = s;
    /* the admin endpoint (src/obs): its metrics hook set goes in now, so workers get a copy of it */
    if (opts->admin && *opts->admin && (r = nc_admin_new(&s->admin, s, opts->admin))) {
        nc_set_last_error_since(mark, r, "cannot create the server for %s: %s", s->url.text, nc_strerror(r));
        nc_server_free(s);
        return r;
    }
    *out = s;
    return 0;
fail_io:
    nc_ioctx_finish(&s->io);
fail_cfg:
    nc_set_last_error_since(mark, r, "cannot create the server for %s: %s", s->url.text, nc_strerror(r));
    cfg_free(&s->cfg);
    nc_optset_free(&s->opts);
    nc_url_free(&s->url);
    free(s);
    return r;
}

/* ---- handler registration ------------------------------------------------------------------------ */

/* A handler's options as a set whose parent is the server's, or *out NULL when it gives none. */
static int handler_opts(nc_server *s, const nc_handler_opts *user_o, nc_optset **out) {
    *out = NULL;
    if (!user_o) return 0;
    nc_handler_opts o;
    if (nc_abi_copy_in(&o, sizeof o, user_o, user_o->struct_size, NC_HANDLER_OPTS_BASE)) {
        return nc_fail(&s->log, "Server", NC_EINVAL,
                       "nc_handler_opts.struct_size %zu: not a layout this library knows",
                       user_o->struct_size);
    }
    /* the deprecated field names the option of the same name, where the transport has it at this level
     * (elsewhere it was always ignored, so it still is) */
    const nc_option_spec *legacy = o.queue && *o.queue ? nc_opts_spec(s->tp->options, "queue") : NULL;
    if (legacy && !(legacy->levels & NC_OPT_HANDLER)) legacy = NULL;
    if (!legacy && !o.noptions) return 0;
    nc_optset *set = calloc(1, sizeof *set);
    if (!set) return NC_ENOMEM;
    const nc_optctx cx = {NC_OPT_HANDLER, s->url.scheme, &s->log, "Server"};
    int r = nc_optset_build(set, s->tp->options, &cx, NULL, NULL, 0);
    if (!r && legacy) r = nc_optset_set(set, &cx, legacy->name, o.queue, 0);
    if (!r && o.noptions && !o.options) {
        r = nc_fail(&s->log, "Server", NC_EINVAL, "nc_handler_opts.noptions is %zu but options is NULL",
                    o.noptions);
    }
    for (size_t i = 0; !r && i < o.noptions; i++)
        r = nc_optset_set(set, &cx, o.options[i].name, o.options[i].value, 0);
    if (r) {
        nc_optset_free(set);
        free(set);
        return r;
    }
    set->parent = &s->opts;
    *out = set;
    return 0;
}

static void optset_drop(nc_optset *set) {
    if (!set) return;
    nc_optset_free(set);
    free(set);
}

/* The options the transport sees for a route: its handlers', else the server's. */
static const nc_optset *route_opts(const nc_server *s, const nc_route_entry *e) {
    return e->opts ? e->opts : &s->opts;
}

/* The route's entry, created (and announced to the transport) on first use. `opts` (owned, may be NULL):
 * the handler's options; the first set given for a route is kept, since the transport subscribes once
 * per route. */
static int entry_for(nc_server *s, const char *route, nc_optset *opts, nc_route_entry **out) {
    size_t n = strlen(route);
    nc_route_entry *e = nc_map_get(&s->routes, route, n);
    if (!e) {
        if (!(e = calloc(1, sizeof *e))) {
            optset_drop(opts);
            return NC_ENOMEM;
        }
        static _Atomic uint64_t next_route_id = 1;
        e->id = atomic_fetch_add_explicit(&next_route_id, 1, memory_order_relaxed);
        e->opts = opts;
        if (nc_map_put(&s->routes, route, n, e, &e->route)) {
            optset_drop(e->opts);
            free(e);
            return NC_ENOMEM;
        }
        s->route_cache_stale = 1; /* cached misses for this route are wrong now */
        if (s->listening && s->tp->route_added) s->tp->route_added(s->tps, e->route, route_opts(s, e));
    } else if (opts && !e->opts) {
        e->opts = opts;
        if (s->listening)
            nc_logf(&s->log, NC_LOG_WARN, "Server", "the options for %s apply from the next (re)subscription",
                    route);
    } else if (opts) {
        nc_logf(&s->log, NC_LOG_WARN, "Server",
                "%s already has handler options (from its first registration); these are ignored", route);
        optset_drop(opts);
    }
    *out = e;
    return 0;
}

static int route_of_user(nc_server *s, const char *pattern, const json_t *jpattern, char **route) {
    int r = jpattern ? nc_route_from_value(jpattern, route) : nc_route_from_user(pattern, route);
    if (r) nc_fail(&s->log, "Server", r, "invalid pattern %s", pattern ? pattern : "(json)");
    return r;
}

/* Workers copy the handler table when they start: later changes could not reach them. */
static int frozen(const nc_server *s) {
    return s->cfg.workers > 1 && s->listening ? NC_ESTATE : 0;
}

static int add_message(nc_server *s, const char *pattern, const json_t *jp, const nc_handler_opts *o,
                       nc_request_fn fn, void *user) {
    if (!s || (!pattern && !jp) || !fn) return NC_EINVAL;
    if (frozen(s)) return NC_ESTATE;
    nc_optset *hopts;
    int r = handler_opts(s, o, &hopts);
    if (r) return r;
    char *route;
    if ((r = route_of_user(s, pattern, jp, &route))) {
        optset_drop(hopts);
        return r;
    }
    nc_route_entry *e;
    r = entry_for(s, route, hopts, &e);
    free(route);
    if (r) return r;
    e->req_fn = fn;
    e->req_user = user;
    return 0;
}

static int add_event(nc_server *s, const char *pattern, const json_t *jp, const nc_handler_opts *o,
                     nc_event_fn fn, void *user) {
    if (!s || (!pattern && !jp) || !fn) return NC_EINVAL;
    if (frozen(s)) return NC_ESTATE;
    nc_optset *hopts;
    int r = handler_opts(s, o, &hopts);
    if (r) return r;
    char *route;
    if ((r = route_of_user(s, pattern, jp, &route))) {
        optset_drop(hopts);
        return r;
    }
    nc_route_entry *e;
    r = entry_for(s, route, hopts, &e);
    free(route);
    if (r) return r;
    nc_event_handler *ev = realloc(e->events, (e->nevents + 1) * sizeof *ev);
    if (!ev) return NC_ENOMEM;
    e->events = ev;
    e->events[e->nevents++] = (nc_event_handler){fn, user};
    return 0;
}

int nc_server__copy_handlers(nc_server *dst, const nc_server *src) {
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&src->routes, &it, &k, &v)) {
        const nc_route_entry *from = v;
        nc_route_entry *e;
        nc_optset *opts = NULL;
        if (from->opts) {
            if (!(opts = malloc(sizeof *opts))) return NC_ENOMEM;
            if (nc_optset_copy(opts, from->opts, &dst->opts)) {
                free(opts);
                return NC_ENOMEM;
            }
        }
        int r = entry_for(dst, k, opts, &e);
        if (r) return r;
        e->req_fn = from->req_fn;
        e->req_user = from->req_user;
        for (size_t i = 0; i < from->nevents; i++) {
            nc_event_handler *ev = realloc(e->events, (e->nevents + 1) * sizeof *ev);
            if (!ev) return NC_ENOMEM;
            e->events = ev;
            e->events[e->nevents++] = from->events[i];
        }
    }
    return nc_hooks__copy(&dst->hooks, src->hooks);
}

int nc_server_message(nc_server *s, const char *p, nc_request_fn fn, void *u) {
    return add_message(s, p, NULL, NULL, fn, u);
}
int nc_server_event(nc_server *s, const char *p, nc_event_fn fn, void *u) {
    return add_event(s, p, NULL, NULL, fn, u);
}
int nc_server_message_json(nc_server *s, const json_t *p, nc_request_fn fn, void *u) {
    return p ? add_message(s, NULL, p, NULL, fn, u) : NC_EINVAL;
}
int nc_server_event_json(nc_server *s, const json_t *p, nc_event_fn fn, void *u) {
    return p ? add_event(s, NULL, p, NULL, fn, u) : NC_EINVAL;
}
int nc_server_message_opts(nc_server *s, const char *p, const nc_handler_opts *o, nc_request_fn fn, void *u) {
    return add_message(s, p, NULL, o, fn, u);
}
int nc_server_event_opts(nc_server *s, const char *p, const nc_handler_opts *o, nc_event_fn fn, void *u) {
    return add_event(s, p, NULL, o, fn, u);
}

/* ---- accessors for transports (core/server_transport.h) ------------------------------------------- */

const nc_server_cfg *nc_server__cfg(nc_server *s) {
    return &s->cfg;
}
nc_ioctx *nc_server__io(nc_server *s) {
    return &s->io;
}
const nc_logger *nc_server__log(nc_server *s) {
    return &s->log;
}
const nc_optset *nc_server__opts(nc_server *s) {
    return &s->opts;
}
const char *nc_server__scheme(nc_server *s) {
    return s->url.scheme;
}

/* ---- lifecycle ----------------------------------------------------------------------------------- */

void nc_server__status(nc_server *s, const char *status, int err) {
    /* readiness (nc_server_health_get): "connected" is the transport's word for listening / subscribed */
    if (!strcmp(status, "connected")) {
        if (s->ever_connected && !s->connected) s->reconnects++;
        s->connected = s->ever_connected = 1;
    } else if (!strcmp(status, "disconnected") || !strcmp(status, "reconnecting")) {
        s->connected = 0;
    }
    if (s->status_fn) s->status_fn(s->status_user, status, err);
}

void nc_server_on_status(nc_server *s, nc_status_fn fn, void *user) {
    s->status_fn = fn;
    s->status_user = user;
}

uv_loop_t *nc_server_loop(nc_server *s) {
    return s->io.loop;
}

/* The start-up line: what is served where (no credentials: the URL's parts, not its text). */
static void log_started(nc_server *s) {
    const nc_url *u = &s->url;
    int port = nc_server_port(s);
    char where[400];
    if (port > 0)
        snprintf(where, sizeof where, "listening on %s://%s:%d", u->scheme,
                 u->host[0] ? u->host : "localhost", port);
    else if (u->hosts)
        snprintf(where, sizeof where, "serving through %s://%s", u->scheme, u->hosts);
    else if (u->port >= 0)
        snprintf(where, sizeof where, "serving through %s://%s:%d", u->scheme, u->host, u->port);
    else
        snprintf(where, sizeof where, "serving through %s://%s", u->scheme, u->host);
    int w = s->cfg.workers > 1 ? s->cfg.workers : 1;
    nc_logf(&s->log, NC_LOG_INFO, "Server", "%s (transport %s, %zu route%s, %d worker%s)", where, u->scheme,
            s->routes.len, s->routes.len == 1 ? "" : "s", w, w == 1 ? "" : "s");
}

int nc_server_listen(nc_server *s) {
    if (!s) return nc_set_last_error(NC_EINVAL, "nc_server_listen: server is NULL");
    if (s->closing) return nc_set_last_error(NC_ECLOSED, "the server is closing");
    if (s->listening) return 0;
    unsigned mark = nc_last_error_mark();
    if (s->cfg.workers > 1 && !s->log.worker) s->log.worker = 1; /* the primary: its lines say worker 0 */
    int r = s->admin ? nc_admin_listen(s->admin) : 0;            /* first: nothing to undo when it fails */
    if (r) {
        nc_set_last_error_since(mark, r, "cannot listen on the admin address: %s", nc_strerror(r));
        return r;
    }
    r = s->tp->listen(s->tps);
    if (r) {
        nc_set_last_error_since(mark, r, "cannot listen on %s: %s", s->url.text, nc_strerror(r));
        nc_server__status(s, "disconnected", r);
        return r;
    }
    s->listening = 1;
    if (s->cfg.workers > 1 && (r = nc_server__start_workers(s))) {
        nc_set_last_error_since(mark, r, "cannot start the workers of %s: %s", s->url.text, nc_strerror(r));
        nc_server__status(s, "disconnected", r);
        return r;
    }
    if (s->tp->route_added) {
        const char *k;
        size_t it = 0;
        void *v;
        while (nc_map_next(&s->routes, &it, &k, &v)) s->tp->route_added(s->tps, k, route_opts(s, v));
    }
    if (!s->tp->reports_connected) nc_server__status(s, "connected", 0);
    if (s->log.worker <= 1) log_started(s); /* once per server, not per worker */
    return 0;
}

int nc_server_port(const nc_server *s) {
    return s && s->tp->port ? s->tp->port(s->tps) : 0;
}

/* Forwarded to the transport: the core knows no health service, and never which transport has one. */
int nc_server_set_health(nc_server *s, const char *service, nc_health status) {
    if (!s || !service || status < NC_HEALTH_SERVING || status > NC_HEALTH_SERVICE_UNKNOWN) return NC_EINVAL;
    if (!s->tp->set_health || s->cfg.workers > 1) return NC_EUNSUPPORTED;
    int r = s->tp->set_health(s->tps, service, (int)status);
    if (!r && !*service) s->health_not_serving = status != NC_HEALTH_SERVING; /* the admin's /health/ready */
    return r;
}

/* Not uv_run(UV_RUN_DEFAULT): a timer or socket a handler left open (a cancelled request's work) would keep
 * that running after the server closed. UV_RUN_ONCE returns 0 when nothing is left to wait for. */
void nc_server__run_loop(nc_server *s) {
    while (!s->handles_closed && nc_loop_run(s->io.loop, UV_RUN_ONCE)) {
    }
}

int nc_server_run(nc_server *s) {
    if (!s) return NC_EINVAL;
    /* a server already closing still needs its loop run to finish closing */
    int r = s->closing ? 0 : nc_server_listen(s);
    if (r) return r;
    nc_server__run_loop(s);
    nc_server__join_workers(s);
    return 0;
}

static void one_closed(nc_server *s) {
    if (--s->nclosing_handles > 0) return;
    s->handles_closed = 1;
    nc_server__status(s, "disconnected", 0);
    if (s->close_done) {
        void (*fn)(void *) = s->close_done;
        s->close_done = NULL;
        fn(s->close_user);
    }
}

static void handle_closed(uv_handle_t *h) {
    one_closed(h->data);
}

static void admin_closed(void *s) {
    one_closed(s);
}

void nc_server__closed(nc_server *s) {
    s->transport_closed = 1;
    /* Our own handles go last, so the loop can end once the server is closed. */
    s->nclosing_handles = 3;
    uv_close((uv_handle_t *)&s->async, handle_closed);
    uv_close((uv_handle_t *)&s->grace, handle_closed);
    uv_close((uv_handle_t *)&s->step, handle_closed);
    if (s->signals_on) {
        s->nclosing_handles += 2;
        uv_close((uv_handle_t *)&s->sigint, handle_closed);
        uv_close((uv_handle_t *)&s->sigterm, handle_closed);
    }
    if (s->admin) {
        s->nclosing_handles++;
        /* with workers the endpoint stays until the last of them has drained too */
        nc_admin_close_after(s->admin, &s->workers_closed, s->nthreads, admin_closed, s);
    }
    nc_ioctx_close(&s->io);
}

/* ---- graceful shutdown ----------------------------------------------------------------------------
 * 1. nc_server_close: stop taking new work (listener, subscriptions) and start the deadline
 *    (shutdown_timeout_ms). Requests in flight go on; so do connections.
 * 2. Drain, once no request is in flight: every reply produced reaches the socket, then each connection
 *    ends after its last byte (TCP FIN, TLS close_notify; brokers: unsubscribe, publish the queued
 *    replies, QUIT). The transport reports closed when all are gone.
 * 3. At the deadline, if not closed yet: the unfinished requests are cancelled (their cancel callbacks
 *    run), and every connection is closed at once.
 * nc_server_run returns once the server's own handles are closed, whatever handlers left on the loop. */

static void cancel_all(nc_server *s) {
    for (nc_req *r = s->inflight; r; r = r->next) nc_request__mark_cancelled(r);
    /* a callback may finish any request, its own or others: look again from the head after each */
    for (;;) {
        nc_req *r = s->inflight;
        while (r && !r->cancel_fn) r = r->next;
        if (!r) return;
        nc_request__run_cancel(r);
    }
}

void nc_server__peer_gone(nc_server *s, void *peer) {
    if (s->freeing) return;
    /* no callback runs here (cancel_later), so the list does not change under us */
    for (nc_req *r = s->inflight; r; r = r->next)
        if (r->peer == peer) nc_request__cancel_later(r);
}

static void hard_close(nc_server *s) {
    if (s->hard_closing || s->transport_closed) return;
    s->hard_closing = 1;
    uv_timer_stop(&s->grace);
    uv_timer_stop(&s->step);
    nc_server__apply_ts_replies(s);
    if (s->ninflight) {
        nc_logf(&s->log, NC_LOG_WARN, "Server",
                "closing with %zu request(s) still unfinished; cancelling them", s->ninflight);
        cancel_all(s);
    }
    nc_ioctx_flush(&s->io);
    s->tp->close(s->tps);
}

static void drain(nc_server *s) {
    if (s->draining || s->hard_closing || s->transport_closed) return;
    s->draining = 1;
    nc_server__apply_ts_replies(s);
    nc_ioctx_flush(&s->io);
    if (s->tp->drain)
        s->tp->drain(s->tps);
    else
        s->tp->close(s->tps);
}

static void on_grace(uv_timer_t *t) {
    hard_close(t->data);
}

static void on_step(uv_timer_t *t) {
    nc_server *s = t->data;
    /* a request that came in on a live connection since: wait for it too (request_finished) */
    if (s->ninflight == 0) drain(s);
}

void nc_server__request_finished(nc_server *s) {
    /* leave the current callback before ending connections */
    if (s->closing && s->ninflight == 0 && !s->draining && !s->hard_closing && !s->transport_closed)
        uv_timer_start(&s->step, on_step, 0, 0);
}

void nc_server_close(nc_server *s, void (*done)(void *), void *user) {
    if (!s) return;
    if (done) {
        s->close_done = done;
        s->close_user = user;
    }
    if (s->closing) return;
    s->closing = 1;
    nc_server__close_workers(s);
    if (s->signals_on) {
        uv_signal_stop(&s->sigint);
        uv_signal_stop(&s->sigterm);
    }
    s->tp->stop_accepting(s->tps);
    if (s->cfg.shutdown_timeout_ms == 0) {
        uv_timer_start(&s->grace, on_grace, 0, 0); /* no grace period: cancel and close at once */
        return;
    }
    /* the deadline covers both the requests and the flushing of their replies */
    uv_timer_start(&s->grace, on_grace, (uint64_t)s->cfg.shutdown_timeout_ms, 0);
    if (s->ninflight == 0) {
        uv_timer_start(&s->step, on_step, 0, 0);
    } else {
        nc_logf(&s->log, NC_LOG_INFO, "Server", "closing: waiting up to %d ms for %zu request(s)",
                s->cfg.shutdown_timeout_ms, s->ninflight);
    }
}

void nc_server_close_threadsafe(nc_server *s) {
    s->ts_close_requested = 1;
    uv_async_send(&s->async);
}

static void on_signal(uv_signal_t *h, int signum) {
    nc_server *s = h->data;
    nc_logf(&s->log, NC_LOG_INFO, "Server", "received %s, shutting down",
            signum == SIGINT ? "SIGINT" : "SIGTERM");
    nc_server_close(s, NULL, NULL);
}

int nc_server_handle_signals(nc_server *s) {
    if (s->signals_on || s->closing) return s->closing ? NC_ECLOSED : 0;
    uv_signal_init(s->io.loop, &s->sigint);
    uv_signal_init(s->io.loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    /* Signal watchers alone must not keep the loop running. */
    uv_unref((uv_handle_t *)&s->sigint);
    uv_unref((uv_handle_t *)&s->sigterm);
    s->signals_on = 1;
    return 0;
}

void nc_server_free(nc_server *s) {
    if (!s) return;
    if (!s->closing) {
        s->cfg.shutdown_timeout_ms = 0;
        nc_server_close(s, NULL, NULL);
    }
    while (!s->handles_closed) {
        if (!uv_run(s->io.loop, UV_RUN_ONCE) && !s->handles_closed) {
            /* Nothing active yet not closed: the close was never started (e.g. timer unreachable). */
            if (!s->transport_closed && !s->hard_closing)
                hard_close(s);
            else
                break;
        }
    }
    nc_server__join_workers(s);
    nc_admin_free(s->admin);
    s->admin = NULL;
    s->freeing = 1;
    while (s->inflight) nc_request__free_unfinished(s->inflight); /* unsettled: nacked with requeue */
    nc_event__free_all(s);
    nc_hooks__drop(&s->hooks);
    s->tp->destroy(s->tps);
    const char *k;
    void *v;
    size_t it = 0;
    while (nc_map_next(&s->routes, &it, &k, &v)) {
        nc_route_entry *e = v;
        free(e->events);
        optset_drop(e->opts);
        free(e);
    }
    nc_map_free(&s->routes);
    nc_route_cache_free(s);
    nc_request__pool_free(s);
    nc_server__apply_ts_replies(s); /* frees queued values of requests already gone */
    uv_mutex_destroy(&s->ts_lock);
    nc_buf_free(&s->scratch);
    int left = nc_ioctx_finish(&s->io);
    if (left)
        nc_logf(&s->log, NC_LOG_DEBUG, "Server",
                "closed %d handle(s) handlers left open on the server's loop", left);
    cfg_free(&s->cfg);
    nc_optset_free(&s->opts);
    nc_url_free(&s->url);
    free(s);
}
