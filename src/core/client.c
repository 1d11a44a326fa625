/* The client core: lazy connection, request ids and correlation, reply streams (spec README §4.3),
 * timeouts, connection retries, and failing what is pending when the connection goes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/envelope.h"
#include "codec/json_write.h"
#include "core/client_internal.h"
#include "core/route.h"
#include "io/tls.h"
#include "nestc/error.h"
#include "util/buf.h"

enum { DISCONNECTED = 0, CONNECTING, CONNECTED };

typedef struct nc_call {
    struct nc_call *qnext; /* waiting for the connection */
    char id[24];           /* "" for events */
    uint64_t serial;
    char *route;
    char *body;
    size_t len;
    int queued, sent;
    nc_value_fn on_value;
    nc_done_fn on_done;
    void *user;
    nc_client *cli;
} nc_call;

typedef struct deadline {
    uint64_t at;
    uint64_t serial; /* the call is looked up by id: it may have finished already */
} deadline;

struct nc_client {
    nc_ioctx io;
    nc_url url;
    nc_client_cfg cfg;
    nc_logger log;
    const nc_client_transport *tp;
    void *tps;
    int state;
    int tp_open; /* the transport has a connection (or attempt) to close */
    int attempts;
    uv_timer_t connect_timer, retry_timer, deadline_timer;
    nc_map pending; /* id → nc_call (requests awaiting replies) */
    nc_call *qhead, *qtail;
    size_t nevents; /* events not yet accepted */
    deadline *heap;
    size_t nheap, capheap;
    uint64_t next_serial;
    char id_prefix[9];
    nc_buf enc;
    nc_done_fn connect_done;
    void *connect_user;
    nc_status_fn status_fn;
    void *status_user;
    nc_error_fn error_fn;
    void *error_user;
    const char *last_status;
    int freeing;
    int open_timers;
};

const nc_client_cfg *nc_client__cfg(nc_client *c) {
    return &c->cfg;
}
nc_ioctx *nc_client__io(nc_client *c) {
    return &c->io;
}
const nc_logger *nc_client__log(nc_client *c) {
    return &c->log;
}

/* ---- deadlines: one libuv timer for all requests, a binary heap of expiry times ----------------- */

static void heap_swap(deadline *a, deadline *b) {
    deadline t = *a;
    *a = *b;
    *b = t;
}

static int heap_push(nc_client *c, deadline d) {
    if (c->nheap == c->capheap) {
        size_t cap = c->capheap ? c->capheap * 2 : 64;
        deadline *h = realloc(c->heap, cap * sizeof *h);
        if (!h) return NC_ENOMEM;
        c->heap = h;
        c->capheap = cap;
    }
    size_t i = c->nheap++;
    c->heap[i] = d;
    while (i && c->heap[(i - 1) / 2].at > c->heap[i].at) {
        heap_swap(&c->heap[(i - 1) / 2], &c->heap[i]);
        i = (i - 1) / 2;
    }
    return 0;
}

static void heap_pop(nc_client *c) {
    c->heap[0] = c->heap[--c->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->nheap && c->heap[l].at < c->heap[m].at) m = l;
        if (r < c->nheap && c->heap[r].at < c->heap[m].at) m = r;
        if (m == i) break;
        heap_swap(&c->heap[i], &c->heap[m]);
        i = m;
    }
}

static void on_deadline(uv_timer_t *t);

static void arm_deadline_timer(nc_client *c) {
    if (!c->nheap) {
        uv_timer_stop(&c->deadline_timer);
        return;
    }
    uint64_t now = uv_now(c->io.loop);
    uint64_t at = c->heap[0].at;
    uv_timer_start(&c->deadline_timer, on_deadline, at > now ? at - now : 0, 0);
}

/* ---- call lifecycle ------------------------------------------------------------------------------- */

static void call_free(nc_call *k) {
    free(k->route);
    free(k->body);
    free(k);
}

static void unqueue(nc_client *c, nc_call *k) {
    nc_call *prev = NULL;
    for (nc_call *it = c->qhead; it; prev = it, it = it->qnext) {
        if (it != k) continue;
        if (prev)
            prev->qnext = it->qnext;
        else
            c->qhead = it->qnext;
        if (c->qtail == it) c->qtail = prev;
        break;
    }
    k->queued = 0;
}

/* Completes a call: removes it from every table, then tells the application. */
static void call_done(nc_call *k, int err, json_t *error) {
    nc_client *c = k->cli;
    if (k->queued) unqueue(c, k);
    if (k->id[0]) {
        nc_map_del(&c->pending, k->id, strlen(k->id));
        if (c->tp->forget && k->sent) c->tp->forget(c->tps, k->route, k->id);
    } else {
        c->nevents--;
    }
    if (k->on_done) k->on_done(k->user, err, error);
    call_free(k);
}

static void call_fail(nc_call *k, int err, const char *msg) {
    json_t *e = json_string(msg ? msg : nc_strerror(err));
    call_done(k, err, e);
    json_decref(e);
}

static void on_deadline(uv_timer_t *t) {
    nc_client *c = t->data;
    uint64_t now = uv_now(c->io.loop);
    while (c->nheap && c->heap[0].at <= now) {
        deadline d = c->heap[0];
        heap_pop(c);
        char id[24];
        snprintf(id, sizeof id, "%s%013llx", c->id_prefix, (unsigned long long)d.serial);
        nc_call *k = nc_map_get(&c->pending, id, strlen(id));
        if (k && k->serial == d.serial) {
            call_fail(k, NC_ETIMEDOUT, "Timeout has occurred (no reply within the request timeout)");
        }
    }
    arm_deadline_timer(c);
}

/* Fails every call: queued ones and, when `pending_too`, those awaiting replies. */
static void fail_all(nc_client *c, int err, const char *msg, int pending_too) {
    while (c->qhead) call_fail(c->qhead, err, msg);
    if (!pending_too) return;
    nc_call **list = NULL;
    size_t n = 0, it = 0;
    void *v;
    if (c->pending.len) {
        list = malloc(c->pending.len * sizeof *list);
        if (!list) return;
        while (nc_map_next(&c->pending, &it, NULL, &v)) list[n++] = v;
    }
    for (size_t i = 0; i < n; i++) call_fail(list[i], err, msg);
    free(list);
}

/* ---- status ------------------------------------------------------------------------------------- */

static void set_status(nc_client *c, const char *status, int err) {
    if (c->last_status && strcmp(c->last_status, status) == 0) return;
    c->last_status = status;
    if (c->status_fn) c->status_fn(c->status_user, status, err);
}

void nc_client_on_status(nc_client *c, nc_status_fn fn, void *user) {
    c->status_fn = fn;
    c->status_user = user;
}

void nc_client_on_error(nc_client *c, nc_error_fn fn, void *user) {
    c->error_fn = fn;
    c->error_user = user;
}

void nc_client__error(nc_client *c, int err, const char *msg) {
    if (c->error_fn) c->error_fn(c->error_user, err, msg);
}

/* ---- connection --------------------------------------------------------------------------------- */

static void on_connect_timeout(uv_timer_t *t) {
    nc_client *c = t->data;
    if (c->state != CONNECTING) return;
    nc_logf(&c->log, NC_LOG_WARN, "Client", "connecting to %s timed out after %d ms", c->url.text,
            c->cfg.connect_timeout_ms);
    c->tp->close(c->tps); /* disconnected(NC_ETIMEDOUT) follows */
    c->attempts = c->cfg.retry_attempts + 1;
}

static int start_connect(nc_client *c) {
    c->state = CONNECTING;
    c->tp_open = 1;
    int r = c->tp->connect(c->tps);
    if (r) {
        c->state = DISCONNECTED;
        c->tp_open = 0;
        return r;
    }
    if (c->cfg.connect_timeout_ms > 0)
        uv_timer_start(&c->connect_timer, on_connect_timeout, (uint64_t)c->cfg.connect_timeout_ms, 0);
    return 0;
}

static void send_call(nc_client *c, nc_call *k);

void nc_client__connected(nc_client *c) {
    uv_timer_stop(&c->connect_timer);
    c->state = CONNECTED;
    c->attempts = 0;
    set_status(c, "connected", 0);
    if (c->connect_done) {
        nc_done_fn fn = c->connect_done;
        c->connect_done = NULL;
        fn(c->connect_user, 0, NULL);
    }
    while (c->qhead && c->state == CONNECTED) {
        nc_call *k = c->qhead;
        unqueue(c, k);
        send_call(c, k);
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
    uv_timer_stop(&c->connect_timer);
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
            json_t *e = json_string(text);
            fn(c->connect_user, err, e);
            json_decref(e);
        }
        fail_all(c, err, text, 1);
        return;
    }
    if (err && err != NC_ECLOSED) nc_client__error(c, err, text);
    /* NestJS: every pending request fails with "Connection closed"; the next call reconnects. */
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

int nc_client__on_body(nc_client *c, const char *body, size_t len, char *why, size_t whylen) {
    json_t *root = NULL;
    if (nc_json_parse(body, len, &root, why, whylen)) return NC_EPROTO;
    if (c->cfg.has_codec && c->cfg.codec.deserialize) {
        json_t *x = c->cfg.codec.deserialize(c->cfg.codec.user, root);
        json_decref(root);
        if (!x) return 0;
        root = x;
    }
    nc_response r;
    nc_envelope_read_response(root, &r);
    const char *id = json_is_string(r.id) ? json_string_value(r.id) : NULL;
    nc_call *k = id ? nc_map_get(&c->pending, id, strlen(id)) : NULL;
    if (!k) {
        /* Unknown (finished, timed out, or someone else's): dropped, as NestJS does. */
        nc_logf(&c->log, NC_LOG_DEBUG, "Client", "reply for an unknown request id dropped");
        json_decref(root);
        return 0;
    }
    if (r.err) {
        call_done(k, NC_EREMOTE, r.err);
    } else if (r.final) {
        if (r.response && k->on_value) k->on_value(k->user, r.response);
        /* on_value may have closed the client, which completes the call */
        if (nc_map_get(&c->pending, id, strlen(id)) == k) call_done(k, 0, NULL);
    } else if (k->on_value) {
        json_t *v = r.response ? r.response : json_null();
        k->on_value(k->user, v);
    }
    json_decref(root);
    return 0;
}

/* ---- send / emit -------------------------------------------------------------------------------- */

static void event_accepted(void *arg, int err) {
    nc_call *k = arg;
    if (err)
        call_fail(k, err, "the event could not be written");
    else
        call_done(k, 0, NULL);
}

static void send_call(nc_client *c, nc_call *k) {
    nc_outbound out = {.route = k->route, .body = k->body, .len = k->len, .id = k->id[0] ? k->id : NULL};
    if (!k->id[0]) {
        out.accepted = event_accepted;
        out.arg = k;
    }
    k->sent = 1;
    int r = c->tp->send(c->tps, &out);
    /* the body is not needed any more */
    free(k->body);
    k->body = NULL;
    if (r) call_fail(k, r, "Connection closed");
}

/* NestJS patterns given as text: a JSON object or number if the text parses as one, else the string. */
static json_t *pattern_value(const char *p) {
    json_t *v = NULL;
    char err[8];
    if (nc_json_parse(p, strlen(p), &v, err, sizeof err) == 0) {
        if (json_is_object(v) || json_is_number(v)) return v;
        json_decref(v);
    }
    return json_string(p);
}

static int submit(nc_client *c, const json_t *pattern, const json_t *data, const nc_call_opts *o,
                  int is_event, nc_value_fn on_value, nc_done_fn on_done, void *user) {
    if (!c || !pattern || c->freeing) return c && c->freeing ? NC_ECLOSED : NC_EINVAL;
    if (json_is_null(pattern) || json_is_boolean(pattern)) {
        nc_logf(&c->log, NC_LOG_ERROR, "Client", "The invalid data or message pattern (undefined/null)");
        return NC_EINVAL;
    }
    nc_call *k = calloc(1, sizeof *k);
    if (!k) return NC_ENOMEM;
    k->cli = c;
    k->on_value = on_value;
    k->on_done = on_done;
    k->user = user;
    int r = nc_route_from_value(pattern, &k->route);
    if (r) {
        free(k);
        return r;
    }
    json_t *null = json_null();
    if (!data) data = null;
    if (!is_event) {
        k->serial = ++c->next_serial;
        snprintf(k->id, sizeof k->id, "%s%013llx", c->id_prefix, (unsigned long long)k->serial);
    }
    json_t *route_str = NULL;
    const json_t *wire_pattern = pattern;
    if (is_event && c->tp->event_pattern_is_route) wire_pattern = route_str = json_string(k->route);
    nc_buf_reset(&c->enc);
    r = nc_envelope_write_request(&c->enc, wire_pattern, data, o ? o->metadata : NULL,
                                  is_event ? NULL : k->id, c->cfg.has_codec ? &c->cfg.codec : NULL);
    json_decref(route_str);
    if (r || !(k->body = malloc(c->enc.len ? c->enc.len : 1))) {
        free(k->route);
        free(k);
        return r ? r : NC_ENOMEM;
    }
    memcpy(k->body, c->enc.data, c->enc.len);
    k->len = c->enc.len;
    if (is_event) {
        c->nevents++;
    } else {
        if (nc_map_put(&c->pending, k->id, strlen(k->id), k, NULL)) {
            call_free(k);
            return NC_ENOMEM;
        }
        int tmo = o && o->timeout_ms ? (o->timeout_ms < 0 ? 0 : o->timeout_ms) : c->cfg.timeout_ms;
        if (tmo > 0) {
            uint64_t at = uv_now(c->io.loop) + (uint64_t)tmo;
            int first = !c->nheap || at < c->heap[0].at;
            heap_push(c, (deadline){at, k->serial});
            if (first) arm_deadline_timer(c);
        }
    }
    if (c->state == CONNECTED) {
        send_call(c, k);
        return 0;
    }
    k->queued = 1;
    if (c->qtail)
        c->qtail->qnext = k;
    else
        c->qhead = k;
    c->qtail = k;
    if (c->state == DISCONNECTED && !uv_is_active((uv_handle_t *)&c->retry_timer)) {
        c->attempts = 0;
        r = start_connect(c);
        if (r) {
            /* could not even start: fail this call through its callback, as NestJS errors the Observable */
            char msg[128];
            snprintf(msg, sizeof msg, "cannot connect to %s: %s", c->url.text, nc_strerror(r));
            call_fail(k, r, msg);
        }
    }
    return 0;
}

int nc_client_send_json(nc_client *c, const json_t *pattern, const json_t *data, const nc_call_opts *o,
                        nc_value_fn on_value, nc_done_fn on_done, void *user) {
    return submit(c, pattern, data, o, 0, on_value, on_done, user);
}

int nc_client_emit_json(nc_client *c, const json_t *pattern, const json_t *data, const nc_call_opts *o,
                        nc_done_fn on_done, void *user) {
    return submit(c, pattern, data, o, 1, NULL, on_done, user);
}

int nc_client_send(nc_client *c, const char *pattern, const json_t *data, const nc_call_opts *o,
                   nc_value_fn on_value, nc_done_fn on_done, void *user) {
    if (!pattern) return NC_EINVAL;
    json_t *p = pattern_value(pattern);
    if (!p) return NC_ENOMEM;
    int r = submit(c, p, data, o, 0, on_value, on_done, user);
    json_decref(p);
    return r;
}

int nc_client_emit(nc_client *c, const char *pattern, const json_t *data, const nc_call_opts *o,
                   nc_done_fn on_done, void *user) {
    if (!pattern) return NC_EINVAL;
    json_t *p = pattern_value(pattern);
    if (!p) return NC_ENOMEM;
    int r = submit(c, p, data, o, 1, NULL, on_done, user);
    json_decref(p);
    return r;
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

int nc_client_new(nc_client **out, const char *url, const nc_client_opts *o) {
    static const nc_client_opts defaults = {0};
    if (!out) return NC_EINVAL;
    *out = NULL;
    if (!o) o = &defaults;
    nc_client *c = calloc(1, sizeof *c);
    if (!c) return NC_ENOMEM;
    nc_logger_init(&c->log, o->log, o->log_user, o->log_level);
    char err[256];
    int r = nc_url_parse(&c->url, url, err, sizeof err);
    if (r) {
        nc_logf(&c->log, NC_LOG_ERROR, "Client", "%s", err);
        free(c);
        return r;
    }
    c->tp = nc_client_transport_find(c->url.scheme);
    if (!c->tp) {
        nc_logf(&c->log, NC_LOG_ERROR, "Client", "unsupported transport \"%s\" in %s", c->url.scheme, url);
        nc_url_free(&c->url);
        free(c);
        return NC_EUNSUPPORTED;
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
        g->has_tls = 1;
        nc_tls_opts_copy(&g->tls, o->tls);
    }
    if (o->codec) {
        g->has_codec = 1;
        g->codec = *o->codec;
    }
    random_prefix(c->id_prefix);
    if ((r = nc_ioctx_init(&c->io, o->loop))) goto fail;
    if ((r = c->tp->create(c, &c->url, &c->tps))) {
        nc_ioctx_finish(&c->io);
        goto fail;
    }
    uv_timer_init(c->io.loop, &c->connect_timer);
    uv_timer_init(c->io.loop, &c->retry_timer);
    uv_timer_init(c->io.loop, &c->deadline_timer);
    c->connect_timer.data = c->retry_timer.data = c->deadline_timer.data = c;
    *out = c;
    return 0;
fail:
    nc_tls_opts_free(&g->tls);
    nc_url_free(&c->url);
    free(c);
    return r;
}

void nc_client_close(nc_client *c) {
    if (!c) return;
    uv_timer_stop(&c->retry_timer);
    uv_timer_stop(&c->connect_timer);
    fail_all(c, NC_ECLOSED, "Connection closed", 1);
    if (c->tp_open) c->tp->close(c->tps);
}

size_t nc_client_pending(const nc_client *c) {
    return c ? c->pending.len + c->nevents : 0;
}

int nc_client_run(nc_client *c) {
    if (!c) return NC_EINVAL;
    while (nc_client_pending(c) > 0 && uv_run(c->io.loop, UV_RUN_ONCE)) {
    }
    /* let completed writes and close callbacks land */
    uv_run(c->io.loop, UV_RUN_NOWAIT);
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
    while (c->tp_open && uv_run(c->io.loop, UV_RUN_ONCE)) {
    }
    c->tp->destroy(c->tps);
    c->open_timers = 3;
    uv_close((uv_handle_t *)&c->connect_timer, timer_closed);
    uv_close((uv_handle_t *)&c->retry_timer, timer_closed);
    uv_close((uv_handle_t *)&c->deadline_timer, timer_closed);
    nc_ioctx_wait_closed(c->io.loop, &c->open_timers);
    nc_ioctx_finish(&c->io);
    nc_map_free(&c->pending);
    free(c->heap);
    nc_buf_free(&c->enc);
    nc_tls_opts_free(&c->cfg.tls);
    nc_url_free(&c->url);
    free(c);
}
