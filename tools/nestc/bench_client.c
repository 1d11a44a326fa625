/* nestc bench, client engine: the load is produced through the nestc client library itself.
 *
 * Exists to measure our own client (how many responses one nestc client process drives) and because it is
 * the only engine that speaks TLS. One nc_client per connection, all on one libuv loop; each keeps
 * --inflight calls pending, and every completion immediately sends the next call (preceded by --events
 * emits). Latency is measured from nc_client_send_json to on_done. Bytes are the kernel's per-socket
 * counters (bench_tcpinfo.c), so for tls:// they include the TLS overhead. As in the raw engine (see
 * bench_raw.c for why), PRIME opens at most MAX_OPENING connections at once, each with one probe
 * request, and the warmup, with the full load, starts once every connection has been answered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "args.h"
#include "bench.h"
#include "bench_tcpinfo.h"

#define DRAIN_MS 5000   /* as the raw engine: a request not answered 5 s after the window is an error */
#define RETRY_MS 10     /* a call that failed locally is sent again after this */
#define PRIME_MS 10000  /* PRIME gives up after this long without progress */
#define MAX_OPENING 128 /* connections connecting or awaiting their first reply, at once */

enum { PRIME, WARMUP, WINDOW, DRAIN, DONE };
enum { C_IDLE, C_CONNECTING, C_OPENING, C_OPEN }; /* C_OPENING: connected, not answered yet */

struct ceng;

typedef struct cslot {
    struct cconn *c;
    uint64_t sent;
    struct cslot *next_retry;
    int busy;   /* a call is pending */
    int queued; /* on the retry list */
} cslot;

typedef struct cconn {
    struct ceng *E;
    nc_client *cli;
    cslot *slots;
    uint64_t out0, in0; /* kernel byte counters at the window's opening */
    int have0;
    int state; /* C_* */
} cconn;

typedef struct ceng {
    const bench_cfg *cfg;
    bench_stats *st;
    uv_loop_t loop;
    cconn *c;
    int n;
    int phase;
    uint64_t outstanding;
    int next_idle;  /* the next connection to start */
    int starting;   /* connections C_CONNECTING or C_OPENING */
    int unanswered; /* connections not C_OPEN */
    int throttle;   /* at most MAX_OPENING starting at once (off once PRIME gave up) */
    int fatal;      /* a connection could not be made during PRIME */
    uv_timer_t phase_timer, retry_timer;
    cslot *retry_head;
    int depth; /* > 0 while inside nc_client_* calls: completions then must not send again directly */
    nc_call_opts call;
    char first_error[160];
} ceng;

static void issue(ceng *E, cslot *s);
static void on_retry(uv_timer_t *t);
static void start_warmup(ceng *E);
static void start_more(ceng *E);
static void on_phase(uv_timer_t *t);

/* ---- completions ----------------------------------------------------------------------------------- */

static void defer(ceng *E, cslot *s) {
    s->next_retry = E->retry_head;
    s->queued = 1;
    E->retry_head = s;
    if (!uv_is_active((uv_handle_t *)&E->retry_timer)) uv_timer_start(&E->retry_timer, on_retry, RETRY_MS, 0);
}

static void on_retry(uv_timer_t *t) {
    ceng *E = t->data;
    cslot *s = E->retry_head;
    E->retry_head = NULL;
    while (s) {
        cslot *next = s->next_retry;
        s->queued = 0;
        issue(E, s);
        s = next;
    }
}

static void note_error(ceng *E, int err, const json_t *error) {
    if (E->first_error[0]) return;
    const char *msg = json_is_string(error) ? json_string_value(error) : nc_strerror(err);
    snprintf(E->first_error, sizeof E->first_error, "%s: %s", nc_err_name(err), msg);
}

static void on_done(void *user, int err, json_t *error) {
    cslot *s = user;
    ceng *E = s->c->E;
    bench_stats *st = E->st;
    uint64_t now = bench_now_ns();
    s->busy = 0;
    E->outstanding--;
    if (st->counting && (err == 0 || err == NC_EREMOTE)) {
        st->requests++;
        st->events += (uint64_t)E->cfg->events;
        bench_hist_add(&st->hist, now > s->sent ? now - s->sent : 0);
    }
    if ((err == 0 || err == NC_EREMOTE) && s->c->state == C_OPENING) {
        s->c->state = C_OPEN;
        E->starting--;
        E->unanswered--;
        if (E->phase == PRIME) {
            uv_timer_start(&E->phase_timer, on_phase, PRIME_MS, 0); /* progress: restart the watchdog */
            start_more(E);
            if (!E->unanswered) start_warmup(E);
        }
    }
    if (err == NC_EREMOTE) {
        if (st->counting) st->errors++;
    } else if (err) {
        st->failures++; /* failed locally (timeout, connection lost): counted in every phase */
        note_error(E, err, error);
    }
    if (E->phase >= DRAIN) {
        if (E->phase == DRAIN && !E->outstanding) uv_stop(&E->loop);
        return;
    }
    if (s->busy || s->queued) return; /* start_warmup() above sent it again already */
    if ((err && err != NC_EREMOTE) || E->depth)
        defer(E, s);
    else if (E->phase != PRIME) /* a probe that got its answer waits for the warmup */
        issue(E, s);
}

static void issue(ceng *E, cslot *s) {
    if (E->phase >= DRAIN) return;
    const bench_cfg *cfg = E->cfg;
    nc_client *cli = s->c->cli;
    E->depth++;
    for (int k = 0; E->phase != PRIME && k < cfg->events; k++)
        nc_client_emit_json(cli, cfg->event_pattern, cfg->event_data, &E->call, NULL, NULL);
    s->busy = 1;
    s->sent = bench_now_ns();
    E->outstanding++;
    int r = nc_client_send_json(cli, cfg->pattern, cfg->data, &E->call, NULL, on_done, s);
    E->depth--;
    if (r) { /* the callbacks will not run */
        s->busy = 0;
        E->outstanding--;
        E->st->failures++;
        note_error(E, r, NULL);
        defer(E, s);
    }
}

/* ---- the window ------------------------------------------------------------------------------------ */

static int conn_fd(cconn *c) {
    uv_os_fd_t fd;
    void *h = nc_client_unwrap(c->cli);
    if (!h || uv_fileno((uv_handle_t *)h, &fd)) return -1;
    return fd;
}

static void bytes_open(ceng *E) {
    for (int i = 0; i < E->n; i++) {
        cconn *c = &E->c[i];
        int fd = conn_fd(c);
        c->have0 = fd >= 0 && bench_tcp_bytes(fd, &c->out0, &c->in0) == 0;
    }
}

static void bytes_close(ceng *E) {
    for (int i = 0; i < E->n; i++) {
        cconn *c = &E->c[i];
        uint64_t out, in;
        int fd = conn_fd(c);
        if (fd < 0 || bench_tcp_bytes(fd, &out, &in)) continue;
        /* a reconnected socket counts from zero */
        E->st->bytes_out += c->have0 && out >= c->out0 ? out - c->out0 : out;
        E->st->bytes_in += c->have0 && in >= c->in0 ? in - c->in0 : in;
    }
}

static uint64_t ms_of(double s) {
    return (uint64_t)(s * 1000.0 + 0.5);
}

static void on_phase(uv_timer_t *t) {
    ceng *E = t->data;
    uint64_t now = bench_now_ns();
    if (E->phase == PRIME) { /* no progress for PRIME_MS */
        int connecting = 0;
        for (int i = 0; i < E->n; i++) connecting += E->c[i].state == C_CONNECTING;
        if (connecting && E->unanswered == E->n) { /* nothing connected and answered at all */
            E->fatal = NC_ETIMEDOUT;
            note_error(E, NC_ETIMEDOUT, NULL);
            uv_stop(&E->loop);
            return;
        }
        fprintf(stderr, "nestc bench: %d connection(s) not answered after %d s, starting anyway\n",
                E->unanswered, PRIME_MS / 1000);
        E->throttle = 0;
        start_more(E);
        start_warmup(E);
    } else if (E->phase == WARMUP) {
        bench_window_open(E->st, now);
        bytes_open(E);
        E->phase = WINDOW;
        uv_timer_start(t, on_phase, ms_of(E->cfg->duration_s), 0);
    } else if (E->phase == WINDOW) {
        bench_window_close(E->st, now);
        bytes_close(E);
        E->phase = DRAIN;
        if (!E->outstanding)
            uv_stop(&E->loop);
        else
            uv_timer_start(t, on_phase, DRAIN_MS, 0);
    } else {
        uv_stop(&E->loop);
    }
}

/* PRIME is over: every connection has answered its probe (or PRIME gave up); the full load starts. */
static void start_warmup(ceng *E) {
    E->phase = WARMUP;
    for (int i = 0; i < E->n; i++) {
        cconn *c = &E->c[i];
        if (c->state == C_IDLE || c->state == C_CONNECTING) continue; /* on_connect will send */
        for (int k = 0; k < E->cfg->inflight; k++)
            if (!c->slots[k].busy && !c->slots[k].queued) issue(E, &c->slots[k]);
    }
    if (E->cfg->warmup_s > 0)
        uv_timer_start(&E->phase_timer, on_phase, ms_of(E->cfg->warmup_s), 0);
    else
        on_phase(&E->phase_timer); /* opens the window now and arms its end */
}

/* ---- setup and teardown ---------------------------------------------------------------------------- */

static void on_connect(void *user, int err, json_t *error) {
    cconn *c = user;
    ceng *E = c->E;
    if (c->state != C_CONNECTING) return;
    if (err && E->phase == PRIME) {
        if (!E->fatal) {
            E->fatal = err;
            note_error(E, err, error);
        }
        uv_stop(&E->loop);
        return;
    }
    c->state = C_OPENING; /* after PRIME a failed connect is retried by the calls themselves */
    if (E->phase == PRIME) {
        uv_timer_start(&E->phase_timer, on_phase, PRIME_MS, 0); /* progress */
        issue(E, &c->slots[0]);                                 /* one probe request, no events */
        return;
    }
    for (int k = 0; k < E->cfg->inflight; k++) issue(E, &c->slots[k]);
}

/* Starts connections while fewer than MAX_OPENING are starting (all the rest once throttling is off). */
static void start_more(ceng *E) {
    while (!E->fatal && E->next_idle < E->n && (!E->throttle || E->starting < MAX_OPENING)) {
        cconn *c = &E->c[E->next_idle++];
        c->state = C_CONNECTING;
        E->starting++;
        int r = nc_client_connect(c->cli, on_connect, c);
        if (r) on_connect(c, r, NULL);
    }
}

static void teardown(ceng *E) {
    E->phase = DONE;
    uv_timer_stop(&E->phase_timer);
    uv_timer_stop(&E->retry_timer);
    for (int i = 0; E->c && i < E->n; i++) {
        nc_client_free(E->c[i].cli); /* fails what is pending: on_done counts those as errors */
        free(E->c[i].slots);
    }
    free(E->c);
    uv_close((uv_handle_t *)&E->phase_timer, NULL);
    uv_close((uv_handle_t *)&E->retry_timer, NULL);
    uv_run(&E->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&E->loop)) fprintf(stderr, "nestc bench: the loop still had handles open\n");
}

int bench_run_client(const bench_cfg *cfg, bench_stats *st) {
    ceng E;
    memset(&E, 0, sizeof E);
    E.cfg = cfg;
    E.st = st;
    E.n = cfg->connections;
    if (uv_loop_init(&E.loop)) {
        fprintf(stderr, "nestc bench: cannot create the event loop\n");
        return 2;
    }
    uv_timer_init(&E.loop, &E.phase_timer);
    uv_timer_init(&E.loop, &E.retry_timer);
    E.phase_timer.data = E.retry_timer.data = &E;
    E.call.metadata = cfg->metadata;
    E.call.options = cfg->call_options;
    E.call.noptions = cfg->ncall_options;
    E.c = calloc((size_t)E.n, sizeof *E.c);
    if (!E.c) {
        fprintf(stderr, "nestc bench: out of memory\n");
        teardown(&E);
        return 2;
    }
    nc_client_opts co = {0};
    co.loop = &E.loop;
    co.tls = cfg->tls;
    co.timeout_ms = cfg->timeout_ms == 0 ? NC_LIMIT_OFF : cfg->timeout_ms;
    co.connect_timeout_ms = cfg->connect_timeout_ms; /* 0: the library's default (5000) */
    co.log_level = cfg->verbose ? NC_LOG_DEBUG : NC_LOG_OFF;
    co.options = cfg->options;
    co.noptions = cfg->noptions;
    for (int i = 0; i < E.n; i++) {
        cconn *c = &E.c[i];
        c->E = &E;
        c->slots = calloc((size_t)cfg->inflight, sizeof *c->slots);
        int r = c->slots ? nc_client_new(&c->cli, cfg->url, &co) : NC_ENOMEM;
        if (r) {
            fprintf(stderr, "nestc bench: cannot use %s: %s\n", cfg->url, cli_reason(r));
            teardown(&E);
            return 2;
        }
        for (int k = 0; k < cfg->inflight; k++) c->slots[k].c = c;
    }
    /* open the connections (PRIME); the warmup starts once all have been answered */
    E.unanswered = E.n;
    E.throttle = 1;
    uv_timer_start(&E.phase_timer, on_phase, PRIME_MS, 0);
    start_more(&E);
    if (!E.fatal) uv_run(&E.loop, UV_RUN_DEFAULT);
    if (E.fatal) {
        fprintf(stderr, "nestc bench: cannot connect to %s: %s\n", cfg->url, E.first_error);
        teardown(&E);
        return 2;
    }
    if (!st->closed) bench_window_close(st, bench_now_ns()); /* the loop ran dry early */
    uint64_t left = E.outstanding;
    teardown(&E);
    if (left)
        fprintf(stderr, "nestc bench: %llu request(s) unanswered %d s after the window\n",
                (unsigned long long)left, DRAIN_MS / 1000);
    if (E.first_error[0]) fprintf(stderr, "nestc bench: first failure: %s\n", E.first_error);
    return 0;
}
