/* The NATS client transport (spec nats.md §7): one connection; per request a fresh reply inbox
 * (`SUB _INBOX.<22 characters> <sid>`, then `PUB`/`HPUB <route> <inbox>`), `UNSUB` when the request ends.
 * An empty reply (nats-server's 503 "no responders") fails the request at once with NestJS's words.
 * A lost connection is re-established as nats.js does (at once, then after retry_delay_ms, default 2,000 ms,
 * doubling up to a cap, with jitter: util/backoff.h; retry_attempts attempts, default 10): pending requests
 * keep waiting (their inboxes are subscribed again), calls made meanwhile fail with NC_ECONNLOST; when the
 * attempts run out the client disconnects and pending calls fail with "Connection closed". A permission the
 * broker denies (its -ERR 'Permissions Violation ...') fails the requests it concerns at once with NC_EAUTH:
 * the reply inbox's subscription, the publish to the route, the reply subject. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client_internal.h"
#include "core/fail.h"
#include "transport/common/reconnect.h"
#include "transport/nats/nats.h"
#include "util/map.h"
#include "util/u64map.h"

enum { C_IDLE, C_CONNECTING, C_CONNECTED, C_RECONNECTING, C_CLOSING };

#define INBOX_LEN 29         /* "_INBOX." + 22 */
#define MAX_REPLY_HEADERS 64 /* reply headers passed to the call; more are left out */

/* One request's inbox. */
typedef struct ninbox {
    uint64_t sid;
    char inbox[INBOX_LEN + 1];
    char *route;
    char id[32];
} ninbox;

typedef struct nats_client {
    nc_client *cli;
    nc_nats_target t;
    nc_nats_conn *conn;
    int state, nopen;
    nc_backoff retry; /* the reconnect policy */
    int end_err;
    char end_msg[320];
    uint64_t next_sid;
    char nuid_prefix[13]; /* random per client; the rest of each inbox counts up */
    uint64_t nuid_seq;
    nc_u64map by_sid; /* sid -> ninbox */
    nc_map by_id;     /* request id -> ninbox */
    nc_buf out;
    char last_denied[300]; /* the last refused event subject's error: a new one is logged once */
} nats_client;

static const nc_nats_conn_cbs conn_cbs;
static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const nc_logger *LOG(nats_client *nc) {
    return nc_client__log(nc->cli);
}

static void new_inbox(nats_client *nc, char *out) {
    memcpy(out, "_INBOX.", 7);
    memcpy(out + 7, nc->nuid_prefix, 12);
    uint64_t v = ++nc->nuid_seq;
    for (int i = 21 + 7 - 1; i >= 7 + 12; i--) {
        out[i] = B62[v % 62];
        v /= 62;
    }
    out[INBOX_LEN] = '\0';
}

static void inbox_free(nats_client *nc, ninbox *b) {
    nc_u64map_del(&nc->by_sid, b->sid);
    nc_map_del(&nc->by_id, b->id, strlen(b->id));
    free(b->route);
    free(b);
}

static int write_sub(nats_client *nc, ninbox *b) {
    nc->out.len = 0;
    if (nc_nats_write_sub(&nc->out, b->inbox, NULL, b->sid)) return NC_ENOMEM;
    return nc_nats_conn_write(nc->conn, nc->out.data, nc->out.len);
}

/* ---- replies ---------------------------------------------------------------------------------------- */

static void on_msg(nats_client *nc, const nc_nats_op *op) {
    ninbox *b = nc_u64map_get(&nc->by_sid, op->sid);
    if (!b) return; /* a late reply to an inbox already dropped */
    if (op->payload_len == 0) {
        /* nats-server's "503 no responders" (or any empty reply: NestJS ends the request the same way) */
        char msg[300];
        snprintf(msg, sizeof msg,
                 "Empty response. There are no subscribers listening to that message (\"%s\")", b->route);
        nc_client__fail_call(nc->cli, b->id, NC_ENOHANDLER, msg);
        return;
    }
    /* the message's headers are the reply's (views into the parser's buffer: nothing copied) */
    nc_header hs[MAX_REPLY_HEADERS];
    nc_reply_in extra = {.headers = hs};
    size_t at = 0;
    while (op->hdr && extra.nheaders < MAX_REPLY_HEADERS) {
        nc_header *h = &hs[extra.nheaders];
        if (!nc_nats_header_next(op->hdr, op->hdr_len, &at, &h->name, &h->name_len, &h->value, &h->value_len))
            break;
        extra.nheaders++;
    }
    char why[200];
    if (nc_client__on_body_ex(nc->cli, op->payload, op->payload_len, extra.nheaders ? &extra : NULL, why,
                              sizeof why) == NC_EPROTO)
        nc_logf(LOG(nc), NC_LOG_ERROR, "Client", "a reply on %s is not JSON (%s); ignored", b->inbox, why);
}

/* ---- permissions -------------------------------------------------------------------------------------- */

/* Fails the requests a permission error concerns: the one whose inbox it names (SUB, publish with that
 * reply subject), or every request published to the subject (NATS names no command: permissions are per
 * subject, so each of them was refused alike). Ids first, then the calls: failing one frees its inbox. */
static void on_denied(nats_client *nc, const nc_nats_op *op) {
    char subject[512];
    int kind = nc_nats_denied(op->arg, op->arg_len, subject, sizeof subject);
    if (kind == NC_NATS_DENIED_NONE) return; /* another error: nats_conn logged it */
    int len = (int)(op->arg_len < 250 ? op->arg_len : 250);
    const char *text = op->arg;
    if (len >= 2 && text[0] == '\'') text++, len -= 2; /* without its quotes */
    char msg[300];
    snprintf(msg, sizeof msg, "the NATS server refused: %.*s", len, text);
    size_t n = 0, cap = 0;
    char(*ids)[32] = NULL;
    void *v;
    size_t it = 0;
    while (nc_u64map_next(&nc->by_sid, &it, &v)) {
        ninbox *b = v;
        int hit = kind == NC_NATS_DENIED_PUB ? !strcmp(b->route, subject) : !strcmp(b->inbox, subject);
        if (!hit) continue;
        if (n == cap) {
            size_t nc2 = cap ? cap * 2 : 8;
            void *p = realloc(ids, nc2 * sizeof *ids);
            if (!p) break;
            ids = p;
            cap = nc2;
        }
        memcpy(ids[n++], b->id, sizeof b->id);
    }
    for (size_t i = 0; i < n; i++) nc_client__fail_call(nc->cli, ids[i], NC_EAUTH, msg);
    free(ids);
    /* the calls carry the words; what failed nothing (an event, already accepted as nats.js's publish()
     * returns at once) is logged once per reason */
    int fresh = !n && strcmp(nc->last_denied, msg);
    snprintf(nc->last_denied, sizeof nc->last_denied, "%s", msg);
    nc_logf(LOG(nc), fresh ? NC_LOG_ERROR : NC_LOG_DEBUG, "Client", "%s (%zu request(s) failed)%s", msg, n,
            fresh ? "; the same refusal again is logged at debug level" : "");
}

/* ---- connection -------------------------------------------------------------------------------------- */

static void conn_ready(nc_nats_conn *c) {
    nats_client *nc = c->owner;
    nc_backoff_reset(&nc->retry);
    if (nc->state == C_CONNECTING) {
        nc->state = C_CONNECTED;
        nc_client__connected(nc->cli);
        return;
    }
    if (nc->state == C_RECONNECTING) {
        /* the inboxes of the requests still waiting */
        void *v;
        size_t it = 0;
        while (nc_u64map_next(&nc->by_sid, &it, &v)) write_sub(nc, v);
        nc->state = C_CONNECTED;
        nc_logf(LOG(nc), NC_LOG_INFO, "Client", "reconnected to NATS at %s:%d", nc->t.b.host, nc->t.b.port);
        nc_client__status(nc->cli, "connected", 0);
    }
}

static void conn_op(nc_nats_conn *c, const nc_nats_op *op) {
    if (op->kind == NC_NATS_MSG)
        on_msg(c->owner, op);
    else if (op->kind == NC_NATS_ERR)
        on_denied(c->owner, op);
}

static nc_nats_conn *open_conn(nats_client *nc, int delay) {
    nc_nats_conn *c =
        nc_nats_conn_new(nc_client__io(nc->cli), &nc->t, delay, &conn_cbs, LOG(nc), "Client", nc);
    if (c) nc->nopen++;
    return c;
}

static void all_closed(nats_client *nc) {
    void *v;
    size_t it = 0;
    while (nc_u64map_next(&nc->by_sid, &it, &v)) {
        inbox_free(nc, v);
        it = 0;
    }
    int err = nc->end_err;
    nc->state = C_IDLE;
    nc->end_err = 0;
    nc_client__disconnected(nc->cli, err, nc->end_msg);
}

static void conn_end(nc_nats_conn *c, int err, const char *msg) {
    nats_client *nc = c->owner;
    nc->nopen--;
    nc->conn = NULL;
    if (nc->state == C_CLOSING || nc->state == C_CONNECTING) {
        if (nc->state == C_CONNECTING && !nc->end_err) {
            nc->end_err = err ? err : NC_ECONNCLOSED;
            snprintf(nc->end_msg, sizeof nc->end_msg, "%s", msg && *msg ? msg : "Connection closed");
        }
        all_closed(nc);
        return;
    }
    char text[300];
    snprintf(text, sizeof text, "NATS connection to %s:%d lost: %s", nc->t.b.host, nc->t.b.port,
             msg && *msg ? msg : "closed");
    nc_log_level level = NC_LOG_WARN;
    char note[64];
    int delay =
        nc_reconnect_next(&nc->retry, nc_client__io(nc->cli)->loop, NC_LOG_WARN, &level, note, sizeof note);
    if (delay < 0) {
        nc_logf(LOG(nc), NC_LOG_ERROR, "Client", "%s; reconnection attempts exhausted", text);
        nc_client__error(nc->cli, err ? err : NC_ECONNCLOSED, text);
        /* a reason that says what to fix fails the calls with it; a lost connection as NestJS does */
        int telling = err == NC_EPROTO || err == NC_ETLS || err == NC_EAUTH || err == NC_ETOOBIG;
        nc->end_err = telling ? err : NC_ECONNCLOSED;
        snprintf(nc->end_msg, sizeof nc->end_msg, "%s", telling ? text : "Connection closed");
        all_closed(nc);
        return;
    }
    nc_logf(LOG(nc), level, "Client", "%s; reconnecting in %d ms (attempt %d of %d)%s", text, delay,
            nc->retry.attempts, nc->retry.cfg.limit, note);
    if (nc->state != C_RECONNECTING) {
        nc->state = C_RECONNECTING;
        nc_client__status(nc->cli, "reconnecting", err);
    }
    nc->conn = open_conn(nc, delay);
    if (!nc->conn) {
        nc->end_err = NC_ENOMEM;
        snprintf(nc->end_msg, sizeof nc->end_msg, "out of memory");
        all_closed(nc);
    }
}

static const nc_nats_conn_cbs conn_cbs = {conn_ready, conn_op, conn_end};

/* ---- ops ------------------------------------------------------------------------------------------------
 */

static int nc_create(nc_client *cli, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_USERINFO | NC_URL_CLIENT, why, sizeof why))
        return nc_fail(nc_client__log(cli), "Client", NC_EINVAL, "%s", why);
    nats_client *nc = calloc(1, sizeof *nc);
    if (!nc) return NC_ENOMEM;
    nc->cli = cli;
    const nc_client_cfg *cfg = nc_client__cfg(cli);
    int r = nc_nats_target_init(&nc->t, url, nc_client__opts(cli), cfg->has_tls ? &cfg->tls : NULL,
                                nc_client__log(cli), "Client");
    if (r) {
        free(nc);
        return r;
    }
    nc->t.max_msg = cfg->max_buffer_size > 0 ? (size_t)cfg->max_buffer_size : 0;
    nc->t.b.max_queue = cfg->max_send_buffer_size;
    nc->t.b.connect_timeout_ms = cfg->connect_timeout_ms;
    nc_reconnect_init(&nc->retry, cfg->retry_delay_ms, 2000,
                      cfg->retry_attempts > 0 ? cfg->retry_attempts : 10, nc);
    uint64_t seed = uv_hrtime() ^ (uint64_t)(uintptr_t)nc;
    for (int i = 0; i < 12; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        nc->nuid_prefix[i] = B62[(seed >> 33) % 62];
    }
    *state = nc;
    return 0;
}

static int nc_connect(void *state) {
    nats_client *nc = state;
    nc->state = C_CONNECTING;
    nc->end_err = 0;
    nc_backoff_reset(&nc->retry);
    nc->conn = open_conn(nc, 0);
    return nc->conn ? 0 : NC_ENOMEM;
}

static int nc_send(void *state, nc_outbound *out) {
    nats_client *nc = state;
    if (nc->state == C_RECONNECTING) return NC_ECONNLOST;
    if (nc->state != C_CONNECTED || !nc->conn) return NC_ECONNCLOSED;
    size_t rlen = strlen(out->route);
    if (!nc_nats_subject_ok(out->route, rlen)) {
        snprintf(out->why, sizeof out->why, "pattern %.150s is not a valid NATS subject", out->route);
        return NC_EINVAL;
    }
    size_t max = nc_nats_conn_max_payload(nc->conn);
    if (max && out->len > max) {
        snprintf(out->why, sizeof out->why,
                 "a message of %zu bytes exceeds the NATS server's max_payload (%zu)", out->len, max);
        return NC_ETOOBIG;
    }
    ninbox *b = NULL;
    if (out->id) {
        if (!(b = calloc(1, sizeof *b)) || !(b->route = strdup(out->route))) {
            free(b);
            return NC_ENOMEM;
        }
        b->sid = ++nc->next_sid;
        new_inbox(nc, b->inbox);
        snprintf(b->id, sizeof b->id, "%s", out->id);
        if (nc_u64map_put(&nc->by_sid, b->sid, b)) {
            free(b->route);
            free(b);
            return NC_ENOMEM;
        }
        if (nc_map_put(&nc->by_id, b->id, strlen(b->id), b, NULL)) {
            nc_u64map_del(&nc->by_sid, b->sid);
            free(b->route);
            free(b);
            return NC_ENOMEM;
        }
    }
    nc->out.len = 0;
    int r = 0;
    if (b && (r = nc_nats_write_sub(&nc->out, b->inbox, NULL, b->sid))) goto fail;
    if ((r = nc_nats_write_pub(&nc->out, out->route, rlen, b ? b->inbox : NULL, out->headers, out->body,
                               out->len)))
        goto fail;
    if ((r = nc_nats_conn_write(nc->conn, nc->out.data, nc->out.len))) goto fail;
    /* an event is accepted once it is on its way (nats.js publish() returns at once) */
    if (!b && out->accepted) out->accepted(out->arg, 0);
    return 0;
fail:
    if (b) inbox_free(nc, b);
    return r;
}

static void nc_forget(void *state, const char *route, const char *id) {
    nats_client *nc = state;
    ninbox *b = nc_map_get(&nc->by_id, id, strlen(id));
    if (!b) return;
    if (nc->conn && nc->state == C_CONNECTED) {
        nc->out.len = 0;
        if (!nc_nats_write_unsub(&nc->out, b->sid)) nc_nats_conn_write(nc->conn, nc->out.data, nc->out.len);
    }
    inbox_free(nc, b);
}

static void nc_close(void *state) {
    nats_client *nc = state;
    if (nc->state == C_IDLE) return;
    nc->end_err = NC_ECLOSED;
    snprintf(nc->end_msg, sizeof nc->end_msg, "Connection closed");
    nc->state = C_CLOSING;
    if (nc->conn)
        nc_nats_conn_close(nc->conn, 1);
    else if (nc->nopen == 0)
        all_closed(nc);
}

static void nc_destroy(void *state) {
    nats_client *nc = state;
    void *v;
    size_t it = 0;
    while (nc_u64map_next(&nc->by_sid, &it, &v)) {
        inbox_free(nc, v);
        it = 0;
    }
    nc_u64map_free(&nc->by_sid);
    nc_map_free(&nc->by_id);
    nc_buf_free(&nc->out);
    nc_nats_target_free(&nc->t);
    free(nc);
}

static const char *const schemes[] = {"nats", NULL};

const nc_client_transport nc_nats_client_transport = {
    .schemes = schemes,
    .options = nc_nats_options,
    .event_pattern_is_route = 0,
    .create = nc_create,
    .connect = nc_connect,
    .send = nc_send,
    .forget = nc_forget,
    .close = nc_close,
    .unwrap = NULL,
    .destroy = nc_destroy,
};
