/* The Prometheus text exposition (format 0.0.4) of a metrics registry: one HELP and TYPE per family, then
 * its samples, every series of the family together (the format requires a family's lines to be
 * contiguous). Names follow Prometheus conventions: counters end in _total, durations are in seconds,
 * histograms have cumulative _bucket{le} lines ending in le="+Inf", then _sum and _count. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/trace.h"
#include "obs/metrics_internal.h"

typedef struct snaps {
    nc_metrics_series *v;
    size_t n, cap;
} snaps;

static int collect(void *user, const nc_metrics_series *s) {
    snaps *a = user;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        nc_metrics_series *v = realloc(a->v, cap * sizeof *v);
        if (!v) return NC_ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *s;
    return 0;
}

int nc_prom_label_value(nc_buf *b, const char *s) {
    int r = 0;
    for (; *s && !r; s++) {
        if (*s == '\\')
            r = nc_buf_append(b, "\\\\", 2);
        else if (*s == '"')
            r = nc_buf_append(b, "\\\"", 2);
        else if (*s == '\n')
            r = nc_buf_append(b, "\\n", 2);
        else
            r = nc_buf_append_char(b, *s);
    }
    return r;
}

static int head(nc_buf *b, const char *name, const char *type, const char *help) {
    return nc_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{transport="...",route="..."[,extra] */
static int labels(nc_buf *b, const char *name, const char *suffix, const nc_metrics_series *s) {
    int r = nc_buf_appendf(b, "%s%s{transport=\"", name, suffix);
    r = r ? r : nc_prom_label_value(b, s->transport);
    r = r ? r : nc_buf_append_str(b, "\",route=\"");
    r = r ? r : nc_prom_label_value(b, s->route);
    return r ? r : nc_buf_append_char(b, '"');
}

enum field { F_REQ, F_EVT, F_INFL, F_RVAL, F_RERR, F_BIN, F_BOUT, F_RETRY };

static long long field(const nc_metrics_series *s, enum field f) {
    switch (f) {
    case F_REQ:
        return (long long)s->requests;
    case F_EVT:
        return (long long)s->events;
    case F_INFL:
        return (long long)s->in_flight;
    case F_RVAL:
        return (long long)s->reply_values;
    case F_RERR:
        return (long long)s->reply_errors;
    case F_BIN:
        return (long long)s->bytes_in;
    case F_BOUT:
        return (long long)s->bytes_out;
    case F_RETRY:
        return (long long)s->retries;
    }
    return 0;
}

static int simple(nc_buf *b, const snaps *a, nc_hook_side side, const char *name, const char *type,
                  const char *help, enum field f) {
    int any = 0, r = 0;
    for (size_t i = 0; i < a->n && !r; i++) {
        if (a->v[i].side != side) continue;
        if (!any++) r = head(b, name, type, help);
        r = r ? r : labels(b, name, "", &a->v[i]);
        r = r ? r : nc_buf_appendf(b, "} %lld\n", field(&a->v[i], f));
    }
    return r;
}

static int outcomes(nc_buf *b, const snaps *a, nc_hook_side side, const char *name, const char *help) {
    int any = 0, r = 0;
    for (size_t i = 0; i < a->n && !r; i++) {
        if (a->v[i].side != side) continue;
        if (!any++) r = head(b, name, "counter", help);
        for (int o = 0; o < NC_OUTCOME_COUNT && !r; o++) {
            r = labels(b, name, "", &a->v[i]);
            r = r ? r
                  : nc_buf_appendf(b, ",outcome=\"%s\"} %" PRIu64 "\n", nc_metrics_outcome_name(o),
                                   a->v[i].outcomes[o]);
        }
    }
    return r;
}

static int histogram(nc_buf *b, const snaps *a, nc_hook_side side, const char *name, const char *help) {
    const double *le = nc_metrics_bucket_bounds();
    int any = 0, r = 0;
    for (size_t i = 0; i < a->n && !r; i++) {
        const nc_metrics_series *s = &a->v[i];
        if (s->side != side) continue;
        if (!any++) r = head(b, name, "histogram", help);
        uint64_t cum = 0;
        for (int k = 0; k < NC_METRICS_BUCKETS && !r; k++) {
            cum += s->duration_buckets[k];
            r = labels(b, name, "_bucket", s);
            if (r) break;
            if (k < NC_METRICS_BUCKETS - 1)
                r = nc_buf_appendf(b, ",le=\"%g\"} %" PRIu64 "\n", le[k], cum);
            else
                r = nc_buf_appendf(b, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
        r = r ? r : labels(b, name, "_sum", s);
        r = r ? r : nc_buf_appendf(b, "} %.9f\n", (double)s->duration_sum_ns / 1e9);
        r = r ? r : labels(b, name, "_count", s);
        r = r ? r : nc_buf_appendf(b, "} %" PRIu64 "\n", s->duration_count);
    }
    return r;
}

static int gauge1(nc_buf *b, const char *name, const char *type, const char *help, long long v) {
    int r = head(b, name, type, help);
    return r ? r : nc_buf_appendf(b, "%s %lld\n", name, v);
}

static int health(nc_buf *b, const nc_server_health *h) {
    int r = gauge1(b, "nestc_up", "gauge", "1 while the process serves its admin endpoint", 1);
    r = r ? r
          : gauge1(b, "nestc_ready", "gauge",
                   "1 when listening, connected to its broker and not draining (/health/ready)", h->ready);
    r = r ? r : gauge1(b, "nestc_listening", "gauge", "1 while the server listens", h->listening);
    r = r ? r
          : gauge1(b, "nestc_connected", "gauge",
                   "1 when the transport last reported connected (brokers: subscriptions confirmed)",
                   h->connected);
    r = r ? r : gauge1(b, "nestc_draining", "gauge", "1 once graceful shutdown began", h->draining);
    r = r ? r
          : gauge1(b, "nestc_broker_reconnects_total", "counter",
                   "broker connections re-established after the first", (long long)h->reconnects);
    return r ? r : gauge1(b, "nestc_workers", "gauge", "loops serving the server", h->workers);
}

/* ---- connections and wire bytes (wire_metrics.c), one series per side and transport ---------------- */

typedef struct wsnaps {
    nc_metrics_wire *v;
    size_t n, cap;
} wsnaps;

static int wcollect(void *user, const nc_metrics_wire *w) {
    wsnaps *a = user;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        nc_metrics_wire *v = realloc(a->v, cap * sizeof *v);
        if (!v) return NC_ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *w;
    return 0;
}

enum wfield { W_CONN, W_OPENED, W_IN, W_OUT, W_CLOSED };

static int wsimple(nc_buf *b, const wsnaps *a, nc_hook_side side, const char *name, const char *type,
                   const char *help, enum wfield f) {
    int any = 0, r = 0;
    for (size_t i = 0; i < a->n && !r; i++) {
        const nc_metrics_wire *w = &a->v[i];
        if (w->side != side) continue;
        if (!any++) r = head(b, name, type, help);
        r = r ? r : nc_buf_appendf(b, "%s{transport=\"", name);
        r = r ? r : nc_prom_label_value(b, w->transport);
        if (r) break;
        switch (f) {
        case W_CONN:
            r = nc_buf_appendf(b, "\"} %lld\n", (long long)w->connections);
            break;
        case W_OPENED:
            r = nc_buf_appendf(b, "\"} %" PRIu64 "\n", w->opened);
            break;
        case W_IN:
            r = nc_buf_appendf(b, "\"} %" PRIu64 "\n", w->bytes_in);
            break;
        case W_OUT:
            r = nc_buf_appendf(b, "\"} %" PRIu64 "\n", w->bytes_out);
            break;
        case W_CLOSED: /* two samples: reason="ok" and reason="error" */
            r = nc_buf_appendf(b, "\",reason=\"ok\"} %" PRIu64 "\n", w->closed - w->closed_error);
            r = r ? r : nc_buf_appendf(b, "%s{transport=\"", name);
            r = r ? r : nc_prom_label_value(b, w->transport);
            r = r ? r : nc_buf_appendf(b, "\",reason=\"error\"} %" PRIu64 "\n", w->closed_error);
            break;
        }
    }
    return r;
}

static int wire_families(nc_buf *b, nc_metrics *m) {
    wsnaps a = {0};
    int r = nc_metrics_wire_foreach(m, wcollect, &a);
    static const struct {
        const char *side_name;
        nc_hook_side side;
        const char *what;
    } sides[2] = {{"server", NC_HOOK_SERVER, "accepted, or made to the broker"},
                  {"client", NC_HOOK_CLIENT, "made"}};
    for (int k = 0; k < 2 && !r; k++) {
        char name[64], help[128];
        const char *sn = sides[k].side_name;
        nc_hook_side sd = sides[k].side;
        snprintf(name, sizeof name, "nestc_%s_connections", sn);
        snprintf(help, sizeof help, "connections open (%s)", sides[k].what);
        r = wsimple(b, &a, sd, name, "gauge", help, W_CONN);
        snprintf(name, sizeof name, "nestc_%s_connections_opened_total", sn);
        snprintf(help, sizeof help, "connections opened (%s)", sides[k].what);
        r = r ? r : wsimple(b, &a, sd, name, "counter", help, W_OPENED);
        snprintf(name, sizeof name, "nestc_%s_connections_closed_total", sn);
        r = r ? r
              : wsimple(b, &a, sd, name, "counter",
                        "connections closed, by reason (ok: an orderly end; error: reset, failure, timeout)",
                        W_CLOSED);
        snprintf(name, sizeof name, "nestc_%s_wire_received_bytes_total", sn);
        r = r ? r
              : wsimple(b, &a, sd, name, "counter",
                        "bytes read from the sockets (framing, TLS and broker protocol included)", W_IN);
        snprintf(name, sizeof name, "nestc_%s_wire_sent_bytes_total", sn);
        r = r ? r
              : wsimple(b, &a, sd, name, "counter",
                        "bytes written to the sockets (framing, TLS and broker protocol included)", W_OUT);
    }
    free(a.v);
    return r;
}

/* The span exporters of the process (nestc/trace.h nc_trace_export_counters; zero without tracing). */
static int trace_export(nc_buf *b) {
    nc_trace_counters t;
    nc_trace_export_counters(&t);
    int r = gauge1(b, "nestc_trace_spans_exported_total", "counter",
                   "spans the OTLP collector accepted (2xx)", (long long)t.exported);
    r = r ? r
          : gauge1(b, "nestc_trace_spans_dropped_total", "counter",
                   "spans never sent: the export queue was full, or still queued when the exporter closed",
                   (long long)t.dropped);
    return r ? r
             : gauge1(b, "nestc_trace_spans_failed_total", "counter",
                      "spans sent in an export request that failed (refused, timed out, not 2xx)",
                      (long long)t.failed);
}

int nc_prom_write(nc_buf *b, nc_metrics *m, const nc_server_health *h) {
    snaps a = {0};
    int r = nc_metrics_foreach(m, collect, &a);
    if (!r && h) r = health(b, h);
    const nc_hook_side S = NC_HOOK_SERVER, C = NC_HOOK_CLIENT;
    /* server: traffic, errors, latency, saturation, then the rest */
    r = r ? r : simple(b, &a, S, "nestc_server_requests_total", "counter", "requests dispatched", F_REQ);
    r = r ? r : simple(b, &a, S, "nestc_server_events_total", "counter", "events dispatched", F_EVT);
    r = r ? r
          : outcomes(b, &a, S, "nestc_server_handled_total",
                     "messages finished, by outcome (errors: outcome!=\"ok\")");
    r = r ? r
          : histogram(b, &a, S, "nestc_server_handler_duration_seconds",
                      "from dispatch to the end of the reply stream (events: their handlers)");
    r = r ? r
          : simple(b, &a, S, "nestc_server_in_flight", "gauge", "messages dispatched and not finished",
                   F_INFL);
    r = r ? r
          : simple(b, &a, S, "nestc_server_reply_values_total", "counter",
                   "reply values written (stream values included)", F_RVAL);
    r = r ? r
          : simple(b, &a, S, "nestc_server_reply_errors_total", "counter", "error replies written", F_RERR);
    r = r ? r
          : simple(b, &a, S, "nestc_server_received_bytes_total", "counter",
                   "payload (data) JSON bytes received, where the packet was scanned", F_BIN);
    r = r ? r
          : simple(b, &a, S, "nestc_server_sent_bytes_total", "counter", "reply value JSON bytes written",
                   F_BOUT);
    r = r ? r : simple(b, &a, C, "nestc_client_requests_total", "counter", "requests made", F_REQ);
    r = r ? r : simple(b, &a, C, "nestc_client_events_total", "counter", "events emitted", F_EVT);
    r = r ? r : outcomes(b, &a, C, "nestc_client_calls_total", "calls ended, by outcome");
    r = r ? r
          : histogram(b, &a, C, "nestc_client_call_duration_seconds",
                      "from the call to its end (retries included)");
    r = r ? r : simple(b, &a, C, "nestc_client_in_flight", "gauge", "calls made and not ended", F_INFL);
    r = r ? r
          : simple(b, &a, C, "nestc_client_reply_values_total", "counter", "reply values received", F_RVAL);
    r = r ? r : simple(b, &a, C, "nestc_client_retries_total", "counter", "sends past the first", F_RETRY);
    r = r ? r
          : gauge1(b, "nestc_metrics_routes_overflowed_total", "counter",
                   "messages whose route arrived past the route cap (counted as route=\"(other)\")",
                   (long long)nc_metrics_routes_overflowed(m));
    r = r ? r : wire_families(b, m);
    if (!r && h) r = trace_export(b); /* the span exporters' counters: admin endpoint only */
    free(a.v);
    return r ? NC_ENOMEM : 0;
}
