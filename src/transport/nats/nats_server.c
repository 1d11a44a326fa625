/* The NATS server transport (spec nats.md §6): one connection; `SUB <route> [queue] <sid>` for every
 * handler's route (NATS wildcards `*` and `>` work: messages are dispatched on the subscription they came
 * through), replies published to each request's reply subject, headers handed to handlers. After a lost
 * connection it reconnects (at once, then after retry_delay_ms, default 2,000 ms as nats.js, doubling up
 * to a cap, with jitter: util/backoff.h; retry_attempts > 0 caps it) and subscribes again. Subscriptions the
 * broker's permissions refuse are logged in one line once the PING after them is answered; with all refused
 * the status is "disconnected" (NC_EAUTH), not "connected". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/envelope.h"
#include "core/fail.h"
#include "core/server_transport.h"
#include "transport/common/reconnect.h"
#include "transport/nats/nats.h"

typedef struct nats_server nats_server;

/* The reply subject of one request, held by the core while the request is unfinished. */
typedef struct nsink {
    nats_server *ns;
    int refs;
    size_t len;
    char subject[];
} nsink;

struct nats_server {
    nc_server *srv;
    const nc_server_cfg *cfg; /* nc_server__cfg(srv), kept: read per reply */
    nc_nats_target t;
    nc_nats_conn *conn;
    char **routes; /* sid = index + 1 */
    char **
        queues; /* each route's queue group (the option `queue`: its handlers', else the server's), or NULL */
    size_t nroutes, caproutes;
    int reported, stopping, closing, nopen, closed_reported;
    nc_backoff retry; /* the reconnect policy */
    nc_buf out, enc;
    /* subscriptions refused (-ERR Permissions Violation) since the last summary, and since connected */
    size_t nrefused, refused_total;
    char refused_names[160];
    char refusal[200];
    int refused_reported; /* status "disconnected" reported for a refusal; cleared once connected */
    unsigned long reply_refusals;
};

static const nc_nats_conn_cbs conn_cbs;

static const nc_logger *LOG(nats_server *ns) {
    return nc_server__log(ns->srv);
}

/* ---- replies -------------------------------------------------------------------------------------- */

static void sink_retain(void *peer) {
    ((nsink *)peer)->refs++;
}

static void sink_release(void *peer) {
    nsink *k = peer;
    if (--k->refs == 0) free(k);
}

/* Reply headers (nc_reply_header) travel as the first reply message's NATS headers, in order, a repeated
 * name repeated, values as bytes (a name or value that would break the header block is left out). NATS
 * has no status or trailers: those are not sent. */
static int publish(nats_server *ns, const char *subject, size_t slen, const nc_reply_pkt *pkt,
                   const char *body, size_t len) {
    ns->out.len = 0;
    if (nc_nats_write_pub_list(&ns->out, subject, slen, NULL, pkt->headers, pkt->nheaders, body, len))
        return NC_ENOMEM;
    return nc_nats_conn_write(ns->conn, ns->out.data, ns->out.len);
}

static int sink_reply(void *peer, const nc_reply_pkt *pkt) {
    nsink *k = peer;
    nats_server *ns = k->ns;
    if (!ns || ns->closing || !ns->conn) return NC_ECLOSED;
    const nc_server_cfg *cfg = ns->cfg;
    ns->enc.len = 0;
    int r = nc_envelope_write_reply(&ns->enc, pkt, cfg->has_codec ? &cfg->codec : NULL);
    if (r) return r;
    size_t max = nc_nats_conn_max_payload(ns->conn);
    if (max && ns->enc.len > max) {
        /* NATS would refuse it: answer with an error instead of leaving the caller to time out */
        char text[200];
        snprintf(text, sizeof text, "\"the reply of %zu bytes exceeds the NATS server's max_payload (%zu)\"",
                 ns->enc.len, max);
        nc_logf(LOG(ns), NC_LOG_ERROR, "Server", "%.*s", (int)strlen(text) - 2, text + 1);
        nc_reply_pkt e = {
            .err = text, .err_len = strlen(text), .disposed = 1, .id = pkt->id, .id_len = pkt->id_len};
        ns->enc.len = 0;
        if ((r = nc_envelope_write_reply(&ns->enc, &e, NULL))) return r;
    }
    r = publish(ns, k->subject, k->len, pkt, ns->enc.data, ns->enc.len);
    if (r == NC_ESTALLED)
        nc_logf(LOG(ns), NC_LOG_ERROR, "Server",
                "reply to %s dropped: more than max_send_buffer_size bytes wait for the NATS connection",
                k->subject);
    return r;
}

/* the peer is the broker: no address; always writable (the replies go to the broker connection, whose
 * buffer the transport bounds itself), so no pending bytes to report */
static const nc_peer_ops sink_ops = {sink_reply, sink_retain, sink_release, NULL, NULL, NULL};

/* ---- incoming messages ------------------------------------------------------------------------------ */

static void on_msg(nats_server *ns, const nc_nats_op *op) {
    if (ns->stopping || op->sid == 0 || op->sid > ns->nroutes) return;
    const char *route = ns->routes[op->sid - 1];
    char small[256];
    char *subject = op->subject_len < sizeof small ? small : malloc(op->subject_len + 1);
    if (!subject) return;
    memcpy(subject, op->subject, op->subject_len);
    subject[op->subject_len] = '\0';
    /* headers as spans into the message: nothing allocated unless there are many */
    nc_header small_hdrs[16], *hdrs = NULL;
    size_t nhdrs = 0;
    if (op->hdr) {
        int status;
        hdrs = small_hdrs;
        if (nc_nats_headers_list(op->hdr, op->hdr_len, &status, hdrs, 16, &nhdrs)) {
            nc_logf(LOG(ns), NC_LOG_WARN, "Server", "malformed headers on %s ignored", subject);
            hdrs = NULL;
            nhdrs = 0;
        } else if (nhdrs > 16 && (hdrs = malloc(nhdrs * sizeof *hdrs)) != NULL) {
            nc_nats_headers_list(op->hdr, op->hdr_len, &status, hdrs, nhdrs, &nhdrs);
        } else if (nhdrs > 16) {
            hdrs = small_hdrs; /* out of memory: the first 16 */
            nhdrs = 16;
        }
    }
    nsink *k = NULL;
    if (op->reply && op->reply_len) {
        k = malloc(sizeof *k + op->reply_len + 1);
        if (k) {
            k->ns = ns;
            k->refs = 1; /* held across the dispatch */
            k->len = op->reply_len;
            memcpy(k->subject, op->reply, op->reply_len);
            k->subject[op->reply_len] = '\0';
        }
    }
    nc_inbound in = {0};
    in.channel = subject;
    in.route = route;
    in.headers = hdrs;
    in.nheaders = nhdrs;
    nc_ctx_item ctx[2] = {{NC_CTX_SUBJECT, subject, op->subject_len, 0},
                          {NC_CTX_REPLY_TO, op->reply, op->reply_len, 0}};
    in.ctx = ctx;
    in.nctx = op->reply && op->reply_len ? 2 : 1;
    in.peer = k;
    in.peer_ops = k ? &sink_ops : NULL;
    /* NestJS: msg.json() decodes like Node, then JSON.parse; a body still not JSON is dropped */
    in.flags = NC_IN_JSON_NODE_DECODED;
    char why[200];
    why[0] = '\0';
    if (nc_server__dispatch(ns->srv, op->payload, op->payload_len, &in, why, sizeof why) == NC_EPROTO)
        nc_logf(LOG(ns), NC_LOG_ERROR, "Server", "message on %s is not JSON (%s); ignored", subject, why);
    if (k) sink_release(k);
    if (hdrs && hdrs != small_hdrs) free(hdrs);
    if (subject != small) free(subject);
}

/* ---- subscriptions and connection ------------------------------------------------------------------- */

static void subscribe(nats_server *ns, size_t i) {
    ns->out.len = 0;
    if (nc_nats_write_sub(&ns->out, ns->routes[i], ns->queues[i], (uint64_t)i + 1) == 0)
        nc_nats_conn_write(ns->conn, ns->out.data, ns->out.len);
}

static void conn_ready(nc_nats_conn *c) {
    nats_server *ns = c->owner;
    ns->nrefused = ns->refused_total = 0;
    ns->refused_names[0] = '\0';
    for (size_t i = 0; i < ns->nroutes; i++) subscribe(ns, i);
    /* NATS processes a connection's commands in order: once this PING is answered every SUB is in place,
     * and only then is the server "connected" (a request sent earlier would meet no responders). */
    nc_nats_conn_ping(c);
}

/* A refusal the server cannot get past by itself (every subscription refused, a wrong password): status
 * "disconnected" with the error, once until it is connected again. It keeps its connection or retrying. */
static void report_refused(nats_server *ns, int err) {
    if (ns->refused_reported || ns->stopping) return;
    ns->refused_reported = 1;
    ns->reported = 0;
    nc_server__status(ns->srv, "disconnected", err);
}

/* A -ERR after the handshake: a refused SUB is counted for the summary; a refused reply is logged with a
 * count (once, then at 10, 100, ...), not once per reply. */
static void on_err(nats_server *ns, const nc_nats_op *op) {
    char subject[512];
    int kind = nc_nats_denied(op->arg, op->arg_len, subject, sizeof subject);
    if (kind == NC_NATS_DENIED_NONE) return; /* nats_conn logged it */
    int len = (int)(op->arg_len < 190 ? op->arg_len : 190);
    const char *text = op->arg;
    if (len >= 2 && text[0] == '\'') text++, len -= 2; /* without the quotes */
    if (kind == NC_NATS_DENIED_SUB) {
        if (!ns->nrefused++) snprintf(ns->refusal, sizeof ns->refusal, "%.*s", len, text);
        ns->refused_total++;
        size_t n = strlen(ns->refused_names), room = sizeof ns->refused_names - n;
        if (room > 5) snprintf(ns->refused_names + n, room, "%s%s", n ? ", " : "", subject);
        if (strlen(ns->refused_names) == sizeof ns->refused_names - 1) /* cut: say so */
            memcpy(ns->refused_names + sizeof ns->refused_names - 4, "...", 4);
        return;
    }
    unsigned long k = ++ns->reply_refusals;
    int loud = k == 1 || k == 10 || k == 100 || k == 1000 || k % 10000 == 0;
    nc_logf(LOG(ns), loud ? NC_LOG_ERROR : NC_LOG_DEBUG, "Server",
            "NATS refused a reply (%lu so far; the caller times out): %.*s", k, len, text);
}

/* The PING after a batch of SUBs is answered: every refusal among them has arrived. */
static void on_pong(nats_server *ns) {
    if (ns->nrefused) {
        nc_logf(LOG(ns), NC_LOG_ERROR, "Server",
                "NATS refused %zu of %zu subscription(s): %s; their handlers get no messages: %s",
                ns->nrefused, ns->nroutes, ns->refusal, ns->refused_names);
        ns->nrefused = 0;
        ns->refused_names[0] = '\0';
    }
    if (ns->reported || ns->stopping) return;
    if (ns->nroutes && ns->refused_total >= ns->nroutes) {
        report_refused(ns, NC_EAUTH);
        return;
    }
    ns->reported = 1;
    nc_backoff_reset(&ns->retry);
    ns->refused_reported = 0;
    nc_server__status(ns->srv, "connected", 0);
}

static void conn_op(nc_nats_conn *c, const nc_nats_op *op) {
    nats_server *ns = c->owner;
    if (op->kind == NC_NATS_MSG)
        on_msg(ns, op);
    else if (op->kind == NC_NATS_ERR)
        on_err(ns, op);
    else if (op->kind == NC_NATS_PONG)
        on_pong(ns);
}

static void maybe_closed(nats_server *ns) {
    if (!ns->closing || ns->nopen || ns->closed_reported) return;
    ns->closed_reported = 1;
    nc_server__closed(ns->srv);
}

static nc_nats_conn *open_conn(nats_server *ns, int delay) {
    nc_nats_conn *c =
        nc_nats_conn_new(nc_server__io(ns->srv), &ns->t, delay, &conn_cbs, LOG(ns), "Server", ns);
    if (c) ns->nopen++;
    return c;
}

static void conn_end(nc_nats_conn *c, int err, const char *msg) {
    nats_server *ns = c->owner;
    ns->nopen--;
    ns->conn = NULL;
    if (ns->closing || ns->stopping) {
        maybe_closed(ns);
        return;
    }
    nc_log_level level = NC_LOG_ERROR;
    char note[64];
    int delay =
        nc_reconnect_next(&ns->retry, nc_server__io(ns->srv)->loop, NC_LOG_ERROR, &level, note, sizeof note);
    if (delay < 0) {
        nc_logf(LOG(ns), NC_LOG_ERROR, "Server",
                "NATS connection to %s:%d lost (%s); giving up after %d attempts", ns->t.b.host, ns->t.b.port,
                msg ? msg : "closed", ns->retry.cfg.limit);
        if (ns->reported) nc_server__status(ns->srv, "disconnected", err ? err : NC_ECONNCLOSED);
        ns->reported = 0;
        return;
    }
    nc_logf(LOG(ns), level, "Server", "NATS connection to %s:%d lost (%s); reconnecting in %d ms%s",
            ns->t.b.host, ns->t.b.port, msg ? msg : "closed", delay, note);
    if (ns->reported) nc_server__status(ns->srv, "reconnecting", err);
    ns->reported = 0;
    ns->conn = open_conn(ns, delay);
    /* a wrong password will not right itself: say so (the CLI then gives up), and keep trying */
    if (err == NC_EAUTH) report_refused(ns, err);
}

static const nc_nats_conn_cbs conn_cbs = {conn_ready, conn_op, conn_end};

/* ---- ops --------------------------------------------------------------------------------------------- */

static int ns_create(nc_server *srv, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_USERINFO, why, sizeof why))
        return nc_fail(nc_server__log(srv), "Server", NC_EINVAL, "%s", why);
    nats_server *ns = calloc(1, sizeof *ns);
    if (!ns) return NC_ENOMEM;
    ns->srv = srv;
    ns->cfg = nc_server__cfg(srv);
    const nc_server_cfg *cfg = nc_server__cfg(srv);
    int r = nc_nats_target_init(&ns->t, url, nc_server__opts(srv), cfg->has_tls ? &cfg->tls : NULL,
                                nc_server__log(srv), "Server");
    if (r) {
        free(ns);
        return r;
    }
    ns->t.max_msg = cfg->max_buffer_size > 0 ? (size_t)cfg->max_buffer_size : 0;
    ns->t.b.max_queue = cfg->max_send_buffer_size;
    ns->t.b.connect_timeout_ms = 5000;
    nc_reconnect_init(&ns->retry, cfg->retry_delay_ms, 2000,
                      cfg->retry_attempts > 0 ? cfg->retry_attempts : 0, ns);
    *state = ns;
    return 0;
}

static int ns_listen(void *state) {
    nats_server *ns = state;
    ns->conn = open_conn(ns, 0);
    return ns->conn ? 0 : NC_ENOMEM;
}

static int ns_route_added(void *state, const char *route, const nc_optset *opts) {
    nats_server *ns = state;
    for (size_t i = 0; i < ns->nroutes; i++)
        if (!strcmp(ns->routes[i], route)) return 0;
    if (!nc_nats_subject_ok(route, strlen(route))) {
        /* NATS cannot carry it (spaces, empty tokens): NestJS's subscribe would fail the same way */
        nc_logf(LOG(ns), NC_LOG_ERROR, "Server", "pattern %s is not a valid NATS subject; not subscribed",
                route);
        return NC_EINVAL;
    }
    if (ns->nroutes == ns->caproutes) {
        size_t n = ns->caproutes ? ns->caproutes * 2 : 16;
        char **p = realloc(ns->routes, n * sizeof *p);
        if (!p) return NC_ENOMEM;
        ns->routes = p;
        char **q = realloc(ns->queues, n * sizeof *q);
        if (!q) return NC_ENOMEM;
        ns->queues = q;
        ns->caproutes = n;
    }
    ns->queues[ns->nroutes] = NULL;
    if (!(ns->routes[ns->nroutes] = strdup(route))) return NC_ENOMEM;
    const char *queue = nc_opts_str(opts, "queue"); /* the handlers', else the server's (parent) */
    if (queue && *queue && !(ns->queues[ns->nroutes] = strdup(queue))) {
        free(ns->routes[ns->nroutes]);
        return NC_ENOMEM;
    }
    ns->nroutes++;
    if (nc_nats_conn_ready(ns->conn)) {
        subscribe(ns, ns->nroutes - 1);
        nc_nats_conn_ping(ns->conn); /* its answer sums up a refusal of this SUB */
    }
    return 0;
}

static void ns_stop_accepting(void *state) {
    nats_server *ns = state;
    ns->stopping = 1;
    /* no new messages; in-flight requests may still answer on the same connection */
    if (nc_nats_conn_ready(ns->conn))
        for (size_t i = 0; i < ns->nroutes; i++) {
            ns->out.len = 0;
            if (!nc_nats_write_unsub(&ns->out, (uint64_t)i + 1))
                nc_nats_conn_write(ns->conn, ns->out.data, ns->out.len);
        }
}

static void ns_drain(void *state) {
    nats_server *ns = state;
    ns->closing = 1;
    /* the UNSUBs of stop_accepting and the queued replies leave before the FIN */
    if (ns->conn) nc_nats_conn_close(ns->conn, 1);
    maybe_closed(ns);
}

static void ns_close(void *state) {
    nats_server *ns = state;
    ns->closing = 1; /* the deadline passed: a broker that does not take our replies is not waited for */
    if (ns->conn) nc_nats_conn_close(ns->conn, 0);
    maybe_closed(ns);
}

static void ns_destroy(void *state) {
    nats_server *ns = state;
    for (size_t i = 0; i < ns->nroutes; i++) {
        free(ns->routes[i]);
        free(ns->queues[i]);
    }
    free(ns->routes);
    free(ns->queues);
    nc_buf_free(&ns->out);
    nc_buf_free(&ns->enc);
    nc_nats_target_free(&ns->t);
    free(ns);
}

static const char *const schemes[] = {"nats", NULL};

const nc_server_transport nc_nats_server_transport = {
    .schemes = schemes,
    .options = nc_nats_options,
    .supports_workers = 0,
    .reports_connected = 1,
    .create = ns_create,
    .listen = ns_listen,
    .route_added = ns_route_added,
    .stop_accepting = ns_stop_accepting,
    .close = ns_close,
    .destroy = ns_destroy,
    .port = NULL,
    .drain = ns_drain,
};
