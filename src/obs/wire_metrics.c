/* Connections and wire bytes of the servers and clients a registry watches (nestc/metrics.h,
 * docs/observability.md). The counting is the io layer's (io/wire.h: per-loop slots, no locked
 * instruction); a registry keeps a reference to each watched block and sums it when read. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "io/wire.h"
#include "nestc/error.h"
#include "obs/metrics_internal.h"

typedef struct wsrc {
    nc_hook_side side;
    char *transport;
    nc_wire_block *b;
} wsrc;

struct nc_obs_wire {
    uv_mutex_t lock; /* guards the list (watching adds, reading walks) */
    wsrc *v;
    size_t n, cap;
};

nc_obs_wire *nc_obs_wire_new(void) {
    nc_obs_wire *w = calloc(1, sizeof *w);
    if (w) uv_mutex_init(&w->lock);
    return w;
}

void nc_obs_wire_free(nc_obs_wire *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        nc_wire_block_unref(w->v[i].b);
        free(w->v[i].transport);
    }
    free(w->v);
    uv_mutex_destroy(&w->lock);
    free(w);
}

int nc_obs_wire_add(nc_obs_wire *w, nc_hook_side side, const char *transport, nc_wire_block *b) {
    if (!w || !b) return 0;
    int r = 0;
    uv_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n; i++)
        if (w->v[i].b == b) goto out; /* watched twice: counted once */
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4;
        wsrc *v = realloc(w->v, cap * sizeof *v);
        if (!v) {
            r = NC_ENOMEM;
            goto out;
        }
        w->v = v;
        w->cap = cap;
    }
    char *tp = strdup(transport ? transport : "");
    if (!tp) {
        r = NC_ENOMEM;
        goto out;
    }
    nc_wire_block_ref(b);
    w->v[w->n++] = (wsrc){side, tp, b};
out:
    uv_mutex_unlock(&w->lock);
    return r;
}

static void add_counts(nc_metrics_wire *o, const nc_wire_counts *c) {
    /* closed is read before opened in each slot, so opened >= closed; clamp anyway (a probe) */
    uint64_t open = c->opened > c->closed ? c->opened - c->closed : 0;
    o->connections += (int64_t)open;
    o->opened += c->opened;
    o->closed += c->closed;
    o->closed_error += c->closed_err;
    o->bytes_in += c->in;
    o->bytes_out += c->out;
}

int nc_metrics_wire_foreach(nc_metrics *m, int (*fn)(void *user, const nc_metrics_wire *w), void *user) {
    nc_obs_wire *w = m ? nc_metrics__wire(m) : NULL;
    if (!w || !fn) return NC_EINVAL;
    uv_mutex_lock(&w->lock);
    /* one entry per (side, transport), in the order first watched */
    nc_metrics_wire *agg = w->n ? calloc(w->n, sizeof *agg) : NULL;
    size_t na = 0;
    if (w->n && !agg) {
        uv_mutex_unlock(&w->lock);
        return NC_ENOMEM;
    }
    for (size_t i = 0; i < w->n; i++) {
        size_t k = 0;
        while (k < na && !(agg[k].side == w->v[i].side && !strcmp(agg[k].transport, w->v[i].transport))) k++;
        if (k == na) {
            agg[na].side = w->v[i].side;
            agg[na++].transport = w->v[i].transport;
        }
        nc_wire_counts c;
        nc_wire_block_read(w->v[i].b, &c);
        add_counts(&agg[k], &c);
    }
    uv_mutex_unlock(&w->lock); /* the transport strings live as long as the registry */
    int r = 0;
    for (size_t k = 0; k < na && !r; k++) r = fn(user, &agg[k]);
    free(agg);
    return r;
}

typedef struct totals_ctx {
    nc_hook_side side;
    nc_metrics_wire *out;
} totals_ctx;

static int totals_add(void *user, const nc_metrics_wire *w) {
    totals_ctx *t = user;
    if (w->side != t->side) return 0;
    t->out->connections += w->connections;
    t->out->opened += w->opened;
    t->out->closed += w->closed;
    t->out->closed_error += w->closed_error;
    t->out->bytes_in += w->bytes_in;
    t->out->bytes_out += w->bytes_out;
    return 0;
}

int nc_metrics_wire_totals(nc_metrics *m, nc_hook_side side, nc_metrics_wire *out) {
    if (!m || !out) return NC_EINVAL;
    memset(out, 0, sizeof *out);
    out->side = side;
    out->transport = "";
    totals_ctx t = {side, out};
    return nc_metrics_wire_foreach(m, totals_add, &t);
}
