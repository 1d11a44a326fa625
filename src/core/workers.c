/* Workers (nc_server_opts.workers): one server spread over N loops on N threads.
 *
 * The server the user holds is worker 0 and runs on the thread that calls nc_server_run. When it starts
 * listening it creates N-1 more complete servers — own loop, own listener on the same port
 * (SO_REUSEPORT: the kernel spreads connections over the listeners), own connections, request pool and
 * route cache — with a copy of its handler table, and runs each on a thread of its own. Nothing on the
 * hot path is shared between threads and nothing takes a lock; a connection lives and dies on one loop.
 * Closing worker 0 closes the others (thread-safe close), and nc_server_run/nc_server_free join them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/server_internal.h"
#include "nestc/error.h"

/* Options that rebuild a worker's config from worker 0's (limits: 0 in the config means "off"). */
static long long limit_back(long long v) {
    return v == 0 ? NC_LIMIT_OFF : v;
}

static void worker_opts(const nc_server *s, nc_server_opts *o) {
    memset(o, 0, sizeof *o);
    const nc_server_cfg *c = &s->cfg;
    o->tls = c->has_tls ? &c->tls : NULL;
    o->codec = c->has_codec ? &c->codec : NULL;
    o->max_buffer_size = limit_back(c->max_buffer_size);
    o->max_send_buffer_size = limit_back(c->max_send_buffer_size);
    o->incomplete_message_timeout_ms = (int)limit_back(c->incomplete_timeout_ms);
    o->shutdown_timeout_ms = (int)limit_back(c->shutdown_timeout_ms);
    o->handshake_timeout_ms = (int)limit_back(c->handshake_timeout_ms);
    o->log = s->log.fn;
    o->log_user = s->log.user;
    o->log_level = s->log.min;
}

/* A worker's handles are closed (its thread): the primary's admin endpoint waits for every one. */
static void worker_closed(void *primary) {
    atomic_fetch_add(&((nc_server *)primary)->workers_closed, 1);
}

static void worker_main(void *arg) {
    nc_server__run_loop(arg);
}

int nc_server__start_workers(nc_server *s) {
    int n = s->cfg.workers - 1;
    if (n <= 0 || s->workers) return 0;
    char url[600];
    snprintf(url, sizeof url, "%s://%s:%d", s->url.scheme, s->url.host[0] ? s->url.host : "localhost",
             nc_server_port(s));
    nc_server_opts o;
    worker_opts(s, &o);
    /* the URL above has no query: the primary's validated options (URL parameters included) go along */
    nc_option *list;
    if (nc_optset_list(&s->opts, &list, &o.noptions)) return NC_ENOMEM;
    o.options = list;
    if (!(s->workers = calloc((size_t)n, sizeof *s->workers)) ||
        !(s->threads = calloc((size_t)n, sizeof *s->threads))) {
        free(list);
        return NC_ENOMEM;
    }
    int r = 0;
    for (int i = 0; i < n && !r; i++) {
        nc_server *w;
        if ((r = nc_server_new(&w, url, &o))) break;
        s->workers[s->nworkers++] = w;
        nc_ioctx_share_wire(&w->io, s->io.wire_block, s->nworkers); /* its connections add up with ours */
        w->close_done = worker_closed;
        w->close_user = s;
        w->log.worker = s->nworkers + 1; /* its lines say "worker N" (the primary is worker 0) */
        w->cfg.reuseport = 1;
        if ((r = nc_server__copy_handlers(w, s)) || (r = nc_server_listen(w))) break;
        if (uv_thread_create(&s->threads[s->nthreads], worker_main, w)) {
            r = NC_EIO;
            break;
        }
        s->nthreads++;
    }
    free(list);
    if (r) {
        nc_logf(&s->log, NC_LOG_ERROR, "Server", "starting worker %d of %d failed: %s", s->nworkers + 1,
                s->cfg.workers, nc_strerror(r));
        nc_server__close_workers(s);
        nc_server__join_workers(s);
        return r;
    }
    nc_logf(&s->log, NC_LOG_DEBUG, "Server", "%d workers listening on port %d", s->cfg.workers,
            nc_server_port(s));
    return 0;
}

void nc_server__close_workers(nc_server *s) {
    for (int i = 0; i < s->nworkers; i++) nc_server_close_threadsafe(s->workers[i]);
}

void nc_server__join_workers(nc_server *s) {
    for (int i = 0; i < s->nthreads; i++) uv_thread_join(&s->threads[i]);
    s->nthreads = 0;
    /* A worker whose thread never started still needs its loop run to close (nc_server_free does). */
    for (int i = 0; i < s->nworkers; i++) nc_server_free(s->workers[i]);
    s->nworkers = 0;
    free(s->workers);
    free(s->threads);
    s->workers = NULL;
    s->threads = NULL;
}
