/* W3C trace context as a hook set (nestc/trace.h, docs/observability.md "Trace context").
 *
 * Server: on_dispatch reads the incoming context and opens the message's SERVER span (same trace, a new
 * span id, parent = the incoming span), on_handler_start/on_handler_return make it the thread's current
 * span around the handler's synchronous part, on_finish ends it. Client: on_submit makes a CLIENT span,
 * child of the thread's current span (or a new trace), and writes its traceparent into the call's headers
 * and metadata; on_call_end ends it. Spans live in *i->state; the ones of server requests in flight are
 * also on a per-thread list, so nc_request_trace finds a request's span for async work. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uv.h>

#include "core/obs_support.h"
#include "nestc/hooks.h"
#include "nestc/trace.h"
#include "obs/otlp.h"
#include "util/last_error.h"
#include "obs/trace_meta.h"

/* traceparent and tracestate: each from a header, else from the metadata object */
static void fields(const nc_msg *m, nc_trace_found f[2]) {
    int need = 0;
    for (int k = 0; k < 2; k++) {
        f[k].v = nc_msg_header(m, nc_trace_keys[k], &f[k].vl);
        f[k].r = f[k].v != NULL;
        need |= !f[k].r;
    }
    if (!need) return;
    nc_trace_found mf[2];
    size_t tl;
    const char *text = nc_msg__meta_text(m, &tl);
    if (text) nc_trace_meta_scan(text, tl, mf);
    json_t *md = NULL;
    for (int k = 0; k < 2; k++) {
        if (f[k].r) continue;
        if (text && mf[k].r >= 0) {
            f[k] = mf[k];
            continue;
        }
        if (!md && !(md = nc_msg_metadata(m))) return;
        json_t *j = json_object_get(md, nc_trace_keys[k]);
        if (json_is_string(j)) f[k] = (nc_trace_found){json_string_value(j), json_string_length(j), 1};
    }
}

int nc_msg_trace(const nc_msg *m, nc_trace_ctx *out) {
    if (!m || !out) return NC_EINVAL;
    nc_trace_found f[2];
    fields(m, f);
    if (!f[0].r) {
        out->valid = 0;
        out->tracestate[0] = 0;
        return NC_ENOENT;
    }
    if (nc_trace_parse(f[0].v, f[0].vl, out)) return NC_EINVAL;
    /* tracestate rides along only with a valid traceparent; one too long is dropped whole */
    if (f[1].r && f[1].vl <= NC_TRACESTATE_MAX && !memchr(f[1].v, 0, f[1].vl)) {
        memcpy(out->tracestate, f[1].v, f[1].vl);
        out->tracestate[f[1].vl] = 0;
    }
    return 0;
}

/* ---- ids ----------------------------------------------------------------------------------------------- */

/* splitmix64 per thread, seeded from the kernel: ids need to be unique, not secret */
static _Thread_local uint64_t rng_state;
static _Thread_local int rng_seeded;

static uint64_t rnd64(void) {
    if (!rng_seeded) {
        if (getrandom(&rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state)
            rng_state = uv_hrtime() ^ (uint64_t)(uintptr_t)&rng_state;
        rng_seeded = 1;
    }
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* n (8 or 16) random bytes, not all zero (an all-zero id is invalid) */
static void rnd_bytes(uint8_t *b, int n) {
    uint64_t r[2];
    do {
        r[0] = rnd64();
        r[1] = n > 8 ? rnd64() : 0;
    } while (!(r[0] | r[1]));
    memcpy(b, r, (size_t)n);
}

void nc_trace_new_trace(nc_trace_ctx *out) {
    nc_trace_new_root(out);
    memset(out->span_id, 0, sizeof out->span_id);
}

void nc_trace_new_root(nc_trace_ctx *out) {
    rnd_bytes(out->trace_id, 16);
    rnd_bytes(out->span_id, 8);
    out->flags = NC_TRACE_SAMPLED;
    out->valid = 1;
    out->tracestate[0] = 0;
}

/* ---- the current span -------------------------------------------------------------------------------- */

/* The current span: a pointer (a handler's span, set and restored by the server hooks without copying
 * the context), or the copy nc_trace_set_current keeps. */
static _Thread_local const nc_trace_ctx *current;
static _Thread_local nc_trace_ctx explicit_ctx;

int nc_trace_current(nc_trace_ctx *out) {
    if (!out) return NC_EINVAL;
    if (!current) {
        out->valid = 0;
        out->tracestate[0] = 0;
        return NC_ENOENT;
    }
    *out = *current;
    return 0;
}

nc_trace_ctx nc_trace_set_current(const nc_trace_ctx *c) {
    nc_trace_ctx prev;
    nc_trace_current(&prev);
    if (c && c->valid) {
        explicit_ctx = *c;
        current = &explicit_ctx;
    } else {
        current = NULL;
    }
    return prev;
}

/* ---- spans --------------------------------------------------------------------------------------------- */

typedef struct tracer {
    nc_trace_opts o;
    nc_otlp *x;       /* the exporter, when a collector is configured */
    const char *host; /* client: its URL's host (the client's, which outlives the set), else NULL */
    int port;         /* and port, or -1 */
    int sampler;      /* SAMPLE_ON (the default: every decision "sampled"), SAMPLE_OFF, SAMPLE_RATIO */
    int parent_based; /* a span with a parent keeps its parent's decision */
    uint64_t bound;   /* SAMPLE_RATIO: sampled when the trace id's last 8 bytes are below it */
} tracer;

enum { SAMPLE_ON, SAMPLE_OFF, SAMPLE_RATIO };

/* the sampler's decision for a trace id, as the sampled flag */
static uint8_t sample(const tracer *t, const uint8_t id[16]) {
    if (t->sampler != SAMPLE_RATIO) return t->sampler == SAMPLE_ON ? NC_TRACE_SAMPLED : 0;
    uint64_t v = 0;
    for (int k = 8; k < 16; k++) v = v << 8 | id[k];
    return v < t->bound ? NC_TRACE_SAMPLED : 0;
}

typedef struct span {
    nc_span s;
    uint64_t start_mono;
    const nc_request *req;     /* server requests: the key of nc_request_trace */
    struct span *prev, *next;  /* the thread's list of server requests in flight */
    const nc_trace_ctx *saved; /* the current span the handler replaced */
    char peer[64];             /* server: the client's address, when recorded */
} span;

static _Thread_local span *inflight;

static uint64_t unix_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* "ip:port" (IPv6 unbracketed: the last colon) into the span's address and port */
static void set_peer(span *sp, const char *a) {
    const char *colon = a ? strrchr(a, ':') : NULL;
    size_t n = colon ? (size_t)(colon - a) : 0;
    if (!n || n >= sizeof sp->peer) return;
    memcpy(sp->peer, a, n);
    sp->peer[n] = 0;
    sp->s.peer_address = sp->peer;
    sp->s.peer_port = atoi(colon + 1);
}

/* Ended spans kept per thread for reuse. A span is about 700 bytes: with many messages in flight the
 * allocator's per-thread cache of that size runs out and every free takes its slow path, which cost
 * more than the rest of a span. A span begins and ends on one loop thread; the cache is freed when its
 * thread exits. */
#define SPAN_CACHE_MAX 256
static _Thread_local span *span_cache;
static _Thread_local int span_ncache, span_cache_keyed;
static pthread_key_t span_cache_key;
static pthread_once_t span_cache_once = PTHREAD_ONCE_INIT;

static void span_cache_drop(void *unused) {
    (void)unused;
    while (span_cache) {
        span *sp = span_cache;
        span_cache = sp->next;
        free(sp);
    }
    span_ncache = 0;
}

static void span_cache_key_make(void) {
    pthread_key_create(&span_cache_key, span_cache_drop);
}

static span *span_alloc(void) {
    span *sp = span_cache;
    if (!sp) return malloc(sizeof *sp);
    span_cache = sp->next;
    span_ncache--;
    return sp;
}

static void span_free(span *sp) {
    if (span_ncache >= SPAN_CACHE_MAX) {
        free(sp);
        return;
    }
    if (!span_cache_keyed) { /* once per thread: the key's destructor frees the cache at thread exit */
        pthread_once(&span_cache_once, span_cache_key_make);
        pthread_setspecific(span_cache_key, (void *)1);
        span_cache_keyed = 1;
    }
    sp->next = span_cache;
    span_cache = sp;
    span_ncache++;
}

/* a span child of parent (valid) or a root */
static span *span_new(const tracer *t, const nc_trace_ctx *parent, nc_span_kind kind, const nc_hook_info *i) {
    /* not calloc: most of the struct is the tracestate buffer, which only needs its first byte set */
    span *sp = span_alloc();
    if (!sp) return NULL;
    memset(&sp->s.parent_id, 0, offsetof(span, peer) - offsetof(span, s.parent_id)); /* peer: when used */
    if (parent && parent->valid) {
        sp->s.ctx = *parent;
        memcpy(sp->s.parent_id, parent->span_id, 8);
        /* a zero span id names a trace without a span (nc_trace_new_trace): this span is its root */
        static const uint8_t zero[8];
        sp->s.has_parent = memcmp(parent->span_id, zero, 8) != 0;
        rnd_bytes(sp->s.ctx.span_id, 8);
        if (!t->parent_based)
            sp->s.ctx.flags =
                (uint8_t)((sp->s.ctx.flags & ~NC_TRACE_SAMPLED) | sample(t, sp->s.ctx.trace_id));
    } else {
        nc_trace_new_root(&sp->s.ctx);
        if (t->sampler != SAMPLE_ON) sp->s.ctx.flags = sample(t, sp->s.ctx.trace_id);
    }
    sp->s.kind = kind;
    sp->s.name = i->route && *i->route ? i->route : i->pattern ? i->pattern : "";
    sp->s.transport = i->transport ? i->transport : "";
    sp->s.is_event = i->is_event;
    /* wall-clock time and the peer only when the span is recorded: propagation alone needs neither */
    if (t->o.on_span || t->x) {
        sp->s.start_unix_ns = unix_ns();
        if (kind == NC_SPAN_CLIENT) {
            sp->s.peer_address = t->host && *t->host ? t->host : NULL;
            sp->s.peer_port = t->port > 0 ? t->port : 0;
        } else if (i->request) {
            set_peer(sp, nc_request_peer(i->request));
        }
    }
    return sp;
}

static void span_end(tracer *t, span *sp, int outcome) {
    /* only sampled spans go to the collector (the W3C flag is the sampling decision of the trace) */
    int exp = t->x && (sp->s.ctx.flags & NC_TRACE_SAMPLED);
    if (t->o.on_span || exp) {
        sp->s.outcome = outcome;
        sp->s.end_unix_ns = unix_ns();
        if (t->o.on_span) t->o.on_span(t->o.user, &sp->s);
        if (exp) nc_otlp_push(t->x, &sp->s);
    }
    span_free(sp);
}

static void release(void *user) {
    tracer *t = user;
    nc_otlp_close(t->x);
    free(t);
}

/* server */

static void srv_dispatch(void *u, nc_hook_info *i) {
    (void)u;
    nc_trace_ctx in;
    nc_msg_trace(i->msg, &in);
    span *sp = span_new(u, &in, NC_SPAN_SERVER, i);
    if (!sp) return;
    if (i->request) { /* a request: findable by nc_request_trace until it finishes */
        sp->req = i->request;
        sp->next = inflight;
        if (inflight) inflight->prev = sp;
        inflight = sp;
    }
    *i->state = sp;
}

static void srv_start(void *u, nc_hook_info *i) {
    (void)u;
    span *sp = *i->state;
    if (sp) {
        sp->saved = current;
        current = &sp->s.ctx;
    }
}

static void srv_return(void *u, nc_hook_info *i) {
    (void)u;
    span *sp = *i->state;
    if (sp) current = sp->saved;
}

static void srv_finish(void *u, nc_hook_info *i, int outcome) {
    span *sp = *i->state;
    if (!sp) return;
    if (sp->req) {
        if (sp->prev)
            sp->prev->next = sp->next;
        else
            inflight = sp->next;
        if (sp->next) sp->next->prev = sp->prev;
    }
    *i->state = NULL;
    span_end(u, sp, outcome);
}

int nc_request_trace(const nc_request *req, nc_trace_ctx *out) {
    if (!req || !out) return NC_EINVAL;
    for (span *sp = inflight; sp; sp = sp->next)
        if (sp->req == req) {
            *out = sp->s.ctx;
            return 0;
        }
    out->valid = 0;
    out->tracestate[0] = 0;
    return NC_ENOENT;
}

/* client */

static int cli_submit(void *u, nc_hook_info *i) {
    (void)u;
    span *sp = span_new(u, current, NC_SPAN_CLIENT, i);
    if (!sp) return 0; /* out of memory: the call goes untraced rather than failing */
    char tp[56];
    nc_trace_format(&sp->s.ctx, tp);
    nc_hook_set_header(i, "traceparent", tp);
    nc_hook_set_metadata(i, "traceparent", json_string(tp));
    if (sp->s.ctx.tracestate[0]) {
        nc_hook_set_header(i, "tracestate", sp->s.ctx.tracestate);
        nc_hook_set_metadata(i, "tracestate", json_string(sp->s.ctx.tracestate));
    }
    *i->state = sp;
    return 0;
}

static void cli_end(void *u, nc_hook_info *i, int err) {
    span *sp = *i->state;
    if (!sp) return;
    *i->state = NULL;
    span_end(u, sp, err);
}

/* an environment variable of the OpenTelemetry SDKs: the traces-specific one first */
static const char *otel_env(const char *traces, const char *all) {
    const char *v = getenv(traces);
    return v && *v ? v : all ? getenv(all) : NULL;
}

/* a millisecond setting (OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_EXPORT_TIMEOUT...), def when unset or not > 0 */
static int env_ms(const char *name, int def) {
    const char *v = getenv(name);
    int ms = v ? atoi(v) : 0;
    return ms > 0 ? ms : def;
}

/* OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, as the OpenTelemetry SDKs read them (an unknown sampler
 * or a ratio out of [0, 1] is the default) */
static void sampler_init(tracer *t) {
    const char *name = t->o.sampler ? t->o.sampler : getenv("OTEL_TRACES_SAMPLER");
    const char *arg = t->o.sampler_arg ? t->o.sampler_arg : getenv("OTEL_TRACES_SAMPLER_ARG");
    t->sampler = SAMPLE_ON;
    t->parent_based = 1;
    if (!name) return;
    const char *base = name;
    int pb = !strncmp(name, "parentbased_", 12);
    if (pb) base += 12;
    int kind = !strcmp(base, "always_on")      ? SAMPLE_ON
               : !strcmp(base, "always_off")   ? SAMPLE_OFF
               : !strcmp(base, "traceidratio") ? SAMPLE_RATIO
                                               : -1;
    if (kind < 0) return;
    t->sampler = kind;
    t->parent_based = pb;
    if (kind != SAMPLE_RATIO) return;
    char *end = NULL;
    double r = arg && *arg ? strtod(arg, &end) : 1.0;
    if (end && (*end || !(r >= 0 && r <= 1))) r = 1.0;
    if (r >= 1.0)
        t->sampler = SAMPLE_ON;
    else
        t->bound = (uint64_t)(r * 18446744073709551616.0); /* r × 2^64, below 2^64 since r < 1 */
}

static int tracer_new(tracer **out, const nc_trace_opts *o, uv_loop_t *loop) {
    tracer *t = calloc(1, sizeof *t);
    if (!(*out = t)) return NC_ENOMEM;
    if (o) {
        size_t n = o->struct_size && o->struct_size < sizeof t->o ? o->struct_size : sizeof t->o;
        memcpy(&t->o, o, n);
    }
    sampler_init(t);
    char buf[1024];
    const char *ep = nc_otlp_endpoint(t->o.otlp_endpoint, buf, sizeof buf);
    if (!ep) return 0; /* propagation only */
    nc_otlp_cfg c = {
        .endpoint = ep,
        .service = t->o.service_name ? t->o.service_name : getenv("OTEL_SERVICE_NAME"),
        .queue_max = t->o.otlp_queue_max,
        .batch_ms = env_ms("OTEL_BSP_SCHEDULE_DELAY", 1000),
        .exchange_timeout_ms =
            env_ms("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", env_ms("OTEL_EXPORTER_OTLP_TIMEOUT", 5000)),
        .flush_timeout_ms =
            t->o.otlp_flush_timeout_ms ? t->o.otlp_flush_timeout_ms : env_ms("OTEL_BSP_EXPORT_TIMEOUT", 2000),
        .headers = t->o.otlp_headers
                       ? t->o.otlp_headers
                       : otel_env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"),
        .ca_file = t->o.otlp_ca_file
                       ? t->o.otlp_ca_file
                       : otel_env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"),
        .cert_file = t->o.otlp_cert_file ? t->o.otlp_cert_file
                                         : otel_env("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                                                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        .key_file = t->o.otlp_key_file
                        ? t->o.otlp_key_file
                        : otel_env("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        .protocol = t->o.otlp_protocol
                        ? t->o.otlp_protocol
                        : otel_env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
        .compression = t->o.otlp_compression ? t->o.otlp_compression
                                             : otel_env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                                                        "OTEL_EXPORTER_OTLP_COMPRESSION"),
    };
    char why[256];
    int r = loop ? nc_otlp_new(&t->x, loop, &c, why, sizeof why) : NC_ESTATE;
    if (r) {
        if (loop) nc_set_last_error(r, "tracing: %s", why);
        free(t);
        *out = NULL;
    }
    return r;
}

int nc_trace_enable_server(nc_server *srv, const nc_trace_opts *o) {
    if (!srv) return NC_EINVAL;
    tracer *t;
    int r = tracer_new(&t, o, nc_server_loop(srv));
    if (r) return r;
    nc_server_hooks h = {.struct_size = sizeof h,
                         .on_dispatch = srv_dispatch,
                         .on_handler_start = srv_start,
                         .on_handler_return = srv_return,
                         .on_finish = srv_finish,
                         .release = release};
    int id = nc_server_add_hooks(srv, &h, t);
    if (id < 0) release(t);
    return id;
}

int nc_trace_enable_client(nc_client *cli, const nc_trace_opts *o) {
    if (!cli) return NC_EINVAL;
    tracer *t;
    int r = tracer_new(&t, o, nc_client_loop(cli));
    if (r) return r;
    t->host = nc_client__url_host(cli, &t->port);
    nc_client_hooks h = {
        .struct_size = sizeof h, .on_submit = cli_submit, .on_call_end = cli_end, .release = release};
    int id = nc_client_add_hooks(cli, &h, t);
    if (id < 0) release(t);
    return id;
}
