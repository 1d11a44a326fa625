/* What a request may carry beyond request/reply: an inbound stream of values from the caller, the
 * caller's deadline, and reply metadata (headers, a final status, trailers). Each is allocated only for
 * the requests that use it, so plain request/reply pays nothing. */
#include <stdlib.h>
#include <string.h>

#include "core/server_internal.h"
#include "nestc/error.h"

/* ---- inbound streams ------------------------------------------------------------------------------ */

#define STREAM_MAX_VALUES 64
#define STREAM_MAX_BYTES (1024 * 1024)

typedef struct sval {
    size_t len;
    char text[];
} sval;

struct nc_rstream {
    nc_stream_value_fn on_value;
    nc_stream_end_fn on_end;
    void *arg;
    int subscribed;
    int ended; /* the end was fed (or forced): end_err is its error */
    int end_err;
    int end_told; /* on_end ran */
    sval *buf[STREAM_MAX_VALUES];
    size_t nbuf, bytes;
};

int nc_request__start_stream(nc_req *r) {
    r->stream = calloc(1, sizeof *r->stream);
    return r->stream ? 0 : NC_ENOMEM;
}

static void stream_drop_buffer(struct nc_rstream *st) {
    for (size_t i = 0; i < st->nbuf; i++) free(st->buf[i]);
    st->nbuf = st->bytes = 0;
}

/* Tells the end to the subscriber, once. on_end may finish the request: nothing touches r after. */
static void tell_end(nc_req *r) {
    struct nc_rstream *st = r->stream;
    if (!st->subscribed || !st->ended || st->end_told) return;
    st->end_told = 1;
    if (st->on_end) st->on_end(nc_req__handle(r), st->end_err, st->arg);
}

int nc_request_on_stream(nc_request *h, nc_stream_value_fn on_value, nc_stream_end_fn on_end, void *arg) {
    nc_req *r = h ? nc_handle_get(nc_hid_from_ptr(h)) : NULL;
    if (!r || r->replied) return h ? NC_ESTATE : NC_EINVAL;
    struct nc_rstream *st = r->stream;
    if (!st) return NC_EUNSUPPORTED;
    if (st->subscribed) return NC_ESTATE;
    st->subscribed = 1;
    st->on_value = on_value;
    st->on_end = on_end;
    st->arg = arg;
    nc_hid id = r->hid;
    /* a callback may finish the request: look it up again after each */
    for (size_t i = 0; i < st->nbuf; i++) {
        sval *v = st->buf[i];
        st->buf[i] = NULL;
        if (on_value) on_value(h, v->text, v->len, arg);
        free(v);
        if (nc_handle_get(id) != r || r->replied) {
            for (size_t j = i + 1; j < st->nbuf; j++) free(st->buf[j]);
            st->nbuf = 0;
            return 0;
        }
    }
    st->nbuf = st->bytes = 0;
    tell_end(r);
    return 0;
}

static nc_req *fed(nc_server *s, uint64_t token) {
    nc_req *r = nc_handle_get((nc_hid)token);
    return r && r->srv == s && !r->replied && r->stream && !r->stream->ended ? r : NULL;
}

int nc_server__stream_value(nc_server *s, uint64_t token, const char *json, size_t len) {
    nc_req *r = fed(s, token);
    if (!r) return NC_ESTATE; /* finished, or ended: dropped */
    struct nc_rstream *st = r->stream;
    if (st->subscribed) {
        if (st->on_value) st->on_value(nc_req__handle(r), json, len, st->arg);
        return 0;
    }
    if (st->nbuf == STREAM_MAX_VALUES || st->bytes + len > STREAM_MAX_BYTES) {
        /* the handler does not read: end the stream rather than buffer without bound */
        stream_drop_buffer(st);
        st->ended = 1;
        st->end_err = NC_ETOOBIG;
        return NC_ETOOBIG;
    }
    sval *v = malloc(sizeof *v + len + 1);
    if (!v) return NC_ENOMEM;
    v->len = len;
    memcpy(v->text, json, len);
    v->text[len] = '\0';
    st->buf[st->nbuf++] = v;
    st->bytes += len;
    return 0;
}

int nc_server__stream_end(nc_server *s, uint64_t token, int err) {
    nc_req *r = fed(s, token);
    if (!r) return NC_ESTATE;
    r->stream->ended = 1;
    r->stream->end_err = err;
    tell_end(r);
    return 0;
}

void nc_request__stream_cancelled(nc_req *r) {
    struct nc_rstream *st = r->stream;
    if (!st || st->ended) return;
    st->ended = 1;
    st->end_err = NC_ECANCELED;
    tell_end(r);
}

/* ---- deadlines ------------------------------------------------------------------------------------ */

struct nc_deadline {
    uv_timer_t timer;
    nc_hid req; /* looked up when it fires: the request may be gone */
};

static void deadline_closed(uv_handle_t *h) {
    free(h->data);
}

static void deadline_fired(uv_timer_t *t) {
    struct nc_deadline *d = t->data;
    nc_req *r = nc_handle_get(d->req);
    if (!r || r->deadline != d) return;
    if (!r->cancelled) {
        nc_request__mark_cancelled(r);
        nc_request__run_cancel(r); /* a timer callback: no nestc call of r is under way */
    }
}

int nc_request__start_deadline(nc_req *r, uint32_t ms) {
    struct nc_deadline *d = malloc(sizeof *d);
    if (!d) return NC_ENOMEM;
    d->req = r->hid;
    uv_timer_init(r->srv->io.loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, deadline_fired, ms, 0);
    r->deadline = d;
    return 0;
}

/* ---- reply metadata ------------------------------------------------------------------------------- */

typedef struct hlist {
    nc_header *v;
    size_t n, cap;
} hlist;

struct nc_rmeta {
    hlist headers, trailers;
    int has_status, status;
    char *status_msg;
    struct nc_rflow *flow; /* the handler's writable watch (flow.c), NULL = none */
};

static void hlist_free(hlist *l) {
    for (size_t i = 0; i < l->n; i++) free((char *)l->v[i].name); /* one block: name then value */
    free(l->v);
}

static int hlist_add(hlist *l, const char *name, const char *value, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        nc_header *v = realloc(l->v, cap * sizeof *v);
        if (!v) return NC_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    size_t nl = strlen(name);
    char *b = malloc(nl + len + 2);
    if (!b) return NC_ENOMEM;
    memcpy(b, name, nl + 1);
    if (len) memcpy(b + nl + 1, value, len);
    b[nl + 1 + len] = '\0';
    l->v[l->n++] = (nc_header){b, nl, b + nl + 1, len};
    return 0;
}

void nc_request__free_extras(nc_req *r) {
    if (r->stream) {
        stream_drop_buffer(r->stream);
        free(r->stream);
        r->stream = NULL;
    }
    if (r->deadline) {
        uv_timer_stop(&r->deadline->timer);
        uv_close((uv_handle_t *)&r->deadline->timer, deadline_closed);
        r->deadline = NULL;
    }
    if (r->meta) {
        hlist_free(&r->meta->headers);
        hlist_free(&r->meta->trailers);
        free(r->meta->status_msg);
        if (r->meta->flow) nc_request__flow_free(r->meta->flow);
        free(r->meta);
        r->meta = NULL;
    }
}

void nc_request__fill_pkt(nc_req *r, nc_reply_pkt *pkt, int last) {
    struct nc_rmeta *m = r->meta;
    if (!r->first_sent) {
        r->first_sent = 1;
        if (m) {
            pkt->headers = m->headers.v;
            pkt->nheaders = m->headers.n;
        }
    }
    if (last && m) {
        pkt->has_status = m->has_status;
        pkt->status = m->status;
        pkt->status_msg = m->status_msg;
        pkt->trailers = m->trailers.v;
        pkt->ntrailers = m->trailers.n;
    }
}

nc_req *nc_request__meta_req(nc_request *h, int *err) {
    nc_req *r = h ? nc_handle_get(nc_hid_from_ptr(h)) : NULL;
    *err = 0;
    if (!r || r->replied) {
        *err = h ? NC_ESTATE : NC_EINVAL;
        return NULL;
    }
    if (!r->meta && !(r->meta = calloc(1, sizeof *r->meta))) {
        *err = NC_ENOMEM;
        return NULL;
    }
    return r;
}

struct nc_rflow **nc_request__flow_slot(nc_req *r) {
    return &r->meta->flow;
}

int nc_reply_header(nc_request *h, const char *name, const char *value, size_t len) {
    int err;
    if (!name || (!value && len)) return NC_EINVAL;
    nc_req *r = nc_request__meta_req(h, &err);
    if (!r) return err;
    if (r->first_sent) return NC_ESTATE;
    return hlist_add(&r->meta->headers, name, value, len);
}

int nc_reply_trailer(nc_request *h, const char *name, const char *value, size_t len) {
    int err;
    if (!name || (!value && len)) return NC_EINVAL;
    nc_req *r = nc_request__meta_req(h, &err);
    if (!r) return err;
    return hlist_add(&r->meta->trailers, name, value, len);
}

int nc_reply_status(nc_request *h, int code, const char *message) {
    int err;
    nc_req *r = nc_request__meta_req(h, &err);
    if (!r) return err;
    char *m = message ? strdup(message) : NULL;
    if (message && !m) return NC_ENOMEM;
    free(r->meta->status_msg);
    r->meta->status_msg = m;
    r->meta->has_status = 1;
    r->meta->status = code;
    return 0;
}
