/* The Kafka client (spec kafka.md §6, §9, §10): one producer for requests and events, one consumer for the
 * reply topics (none with producerOnlyMode).
 *
 * Reply topics need no subscribeToResponseOf: before the first request on a route the client looks up
 * <route>.reply (its partitions and their end offsets, on a libuv worker thread since librdkafka's
 * metadata and offset queries block), then assigns itself every partition of it from those end offsets
 * and only then publishes the route's queued requests. Reading all partitions is spec §10's second way:
 * the client takes no part in a consumer group (librdkafka has no custom assignor to speak Nest's
 * NestReplyPartitionAssigner), so any number of nestc clients each see their replies wherever a server
 * puts them; requests name the lowest partition, 0, in kafka_replyPartition. Starting from the end
 * offsets looked up before the first request leaves no window where a reply could be skipped. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_scan.h"
#include "codec/json_write.h"
#include "codec/kafka_value.h"
#include "core/client_internal.h"
#include "core/fail.h"
#include "nestc/error.h"
#include "transport/kafka/kafka.h"

#define LOOKUP_TIMEOUT_MS 10000
#define LOOKUP_TRIES 3

/* A request waiting for its route's reply topic. */
typedef struct kpending {
    struct kpending *next;
    char *id;
    nc_kafka_msg msg;
} kpending;

enum { R_NEW = 0, R_LOOKUP, R_READY };

typedef struct kroute {
    struct kroute *next;
    struct kclient *kc;
    char *route, *reply_topic;
    int state;
    int npart; /* once R_READY */
    kpending *head, **tail;
} kroute;

/* The consumer handle as the look-up threads share it. A look-up blocks in librdkafka for up to
 * LOOKUP_TIMEOUT_MS per query (an unreachable cluster), so the client does not wait for it when it
 * closes: it lets go of its reference and the last one to let go — the client, or a thread still in a
 * look-up — destroys the handle. Results reach the loop through async while the client holds it. */
typedef struct kshared {
    pthread_mutex_t mu;
    int refs;
    rd_kafka_t *rk;
    uv_async_t *async;    /* NULL once the client let go: results are dropped */
    struct klookup *done; /* finished look-ups not yet taken by the loop */
} kshared;

/* One look-up of a reply topic on its own thread: partitions and their end offsets, or the error. */
typedef struct klookup {
    struct klookup *next;
    kshared *sh;
    kroute *r; /* touched on the loop only */
    char *topic;
    int npart;
    int64_t *high;
    char err[200];
} klookup;

/* A record waiting for its delivery report: an event (accepted/refused, arg) or a request (id: a
 * delivery that failed ends the call with the broker's words instead of leaving it to its timeout). */
typedef struct kevent {
    struct kevent *prev, *next;
    void (*accepted)(void *arg, int err);
    void (*refused)(void *arg, int err, const char *msg);
    void *arg;
    char *id;
} kevent;

typedef struct kclient {
    const nc_logger *log; /* first: librdkafka's opaque (nc_kafka_log_cb) */
    nc_client *cli;
    nc_url url;
    int producer_only;
    int keep_binary; /* keepBinary: reply values handed over as Buffers */
    nc_kafka_handle prod, cons;
    kroute *routes;
    kevent events; /* list head */
    kshared *sh;   /* the consumer handle shared with look-up threads, NULL without a consumer */
    uv_async_t *async;
    int open, closing;
    uv_timer_t closer;
    int timer_open;
} kclient;

/* ---- events and delivery reports -------------------------------------------------------------------- */

/* The nc_err of a delivery that failed: what the caller can tell apart. */
static int dr_err(rd_kafka_resp_err_t e) {
    switch (e) {
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
        return NC_ECLOSED;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
        return NC_ETIMEDOUT;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return NC_ETOOBIG;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        return NC_EAUTH;
    default:
        return NC_EIO;
    }
}

/* Unlinks and frees the record's entry, then ends what waited for it: an event completes (or fails with
 * the broker's words), a request that was not delivered fails (a delivered one waits for its reply). */
static void event_done(kclient *kc, kevent *ev, int err, const char *msg) {
    ev->prev->next = ev->next;
    ev->next->prev = ev->prev;
    void (*cb)(void *, int) = ev->accepted;
    void (*refused)(void *, int, const char *) = ev->refused;
    void *arg = ev->arg;
    char *id = ev->id;
    free(ev);
    if (id) { /* purged by a close (NC_ECLOSED): the core ends the call as on every transport */
        if (err && err != NC_ECLOSED) nc_client__fail_call(kc->cli, id, err, msg ? msg : nc_strerror(err));
        free(id);
    } else if (err && msg && refused) {
        refused(arg, err, msg);
    } else if (cb) {
        cb(arg, err);
    }
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    kclient *kc = opaque;
    char msg[300];
    msg[0] = '\0';
    if (m->err) {
        /* the broker's words and the error's name (MSG_SIZE_TOO_LARGE, TOPIC_AUTHORIZATION_FAILED …):
         * librdkafka already retried what is retriable (NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT …) */
        snprintf(msg, sizeof msg, "the %s to %s was not delivered: %s (%s)",
                 m->_private && ((kevent *)m->_private)->id ? "request" : "record",
                 rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err), rd_kafka_err2name(m->err));
        if (dr_err(m->err) != NC_ECLOSED) nc_logf(kc->log, NC_LOG_ERROR, "Client", "%s", msg);
    }
    if (m->_private) /* an event completes on its delivery report; a request fails on a failed one */
        event_done(kc, m->_private, m->err ? dr_err(m->err) : 0,
                   m->err && dr_err(m->err) != NC_ECLOSED ? msg : NULL);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    kclient *kc = opaque;
    nc_logf(kc->log, err == RD_KAFKA_RESP_ERR__FATAL ? NC_LOG_ERROR : NC_LOG_WARN, "Client", "%s: %s",
            rd_kafka_err2name(err), reason);
}

/* Produces one record; ev (an event's or a request's entry, or NULL) is linked to wait for its delivery
 * report when the record was taken. */
static int produce(kclient *kc, const char *topic, const nc_kafka_msg *m, kevent *ev) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(m->nheaders);
    for (size_t i = 0; i < m->nheaders; i++)
        rd_kafka_header_add(h, m->headers[i].name, -1, m->headers[i].value.p, (ssize_t)m->headers[i].value.n);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        kc->prod.rk, RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_PARTITION(m->has_partition ? m->partition : RD_KAFKA_PARTITION_UA),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(m->value.p, m->value.n),
        RD_KAFKA_V_KEY(m->key.p, m->key.p ? m->key.n : 0), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_TIMESTAMP(m->has_timestamp ? m->timestamp : 0), RD_KAFKA_V_OPAQUE(ev), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        nc_logf(kc->log, NC_LOG_ERROR, "Client", "produce to %s failed: %s", topic, rd_kafka_err2str(e));
        return e == RD_KAFKA_RESP_ERR__QUEUE_FULL          ? NC_ESTALLED
               : e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? NC_ETOOBIG
                                                           : NC_EIO;
    }
    if (ev) {
        ev->next = &kc->events;
        ev->prev = kc->events.prev;
        ev->prev->next = ev;
        kc->events.prev = ev;
    }
    return 0;
}

/* ---- replies ---------------------------------------------------------------------------------------- */

static void on_reply_record(kclient *kc, rd_kafka_message_t *msg) {
    nc_header hdrs[NC_KAFKA_MAX_HEADERS];
    size_t nh = nc_kafka_record_headers(msg, hdrs, NC_KAFKA_MAX_HEADERS);
    const nc_header *corr = nc_kafka_find_header(hdrs, nh, NC_KAFKA_H_CORRELATION);
    if (!corr) return; /* spec §9: ignored */
    const nc_header *err = nc_kafka_find_header(hdrs, nh, NC_KAFKA_H_ERR);
    nc_buf value = NC_BUF_INIT, etext = NC_BUF_INIT;
    int rc = err                               ? nc_kafka_decode_text(err->value, err->value_len, &etext)
             : kc->keep_binary && msg->payload ? nc_kafka_buffer_json(msg->payload, msg->len, &value)
                                               : nc_kafka_decode_text(msg->payload, msg->len, &value);
    if (rc) {
        nc_logf(kc->log, NC_LOG_ERROR, "Client", "out of memory: a reply dropped");
    } else {
        nc_reply_in r = {0};
        r.id = corr->value;
        r.id_len = corr->value_len;
        r.id_is_json = 0;
        if (err) {
            r.err = etext.data;
            r.err_len = etext.len;
            r.final = 1;
        } else {
            r.value = value.data;
            r.value_len = value.len;
            r.final = nc_kafka_find_header(hdrs, nh, NC_KAFKA_H_DISPOSED) != NULL;
        }
        r.headers = nh ? hdrs : NULL;
        r.nheaders = nh;
        nc_client__on_reply(kc->cli, &r);
    }
    nc_buf_free(&value);
    nc_buf_free(&etext);
}

static void cons_wake(void *arg) {
    kclient *kc = arg;
    rd_kafka_message_t *msg;
    while (kc->cons.rk && (msg = rd_kafka_consumer_poll(kc->cons.rk, 0))) {
        if (!msg->err)
            on_reply_record(kc, msg);
        else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            nc_logf(kc->log, NC_LOG_WARN, "Client", "reply consumer: %s", rd_kafka_message_errstr(msg));
        rd_kafka_message_destroy(msg);
    }
}

static void prod_wake(void *arg) {
    kclient *kc = arg;
    if (kc->prod.rk) rd_kafka_poll(kc->prod.rk, 0);
}

/* ---- reply topics ------------------------------------------------------------------------------------ */

static void lookup_free(klookup *l) {
    free(l->topic);
    free(l->high);
    free(l);
}

/* Last reference gone: nobody else uses the handle (its own threads are joined here). */
static void shared_free(kshared *sh) {
    if (sh->rk) rd_kafka_destroy_flags(sh->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    while (sh->done) {
        klookup *l = sh->done;
        sh->done = l->next;
        lookup_free(l);
    }
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

/* Look-up thread: librdkafka calls only (they block on the network); no nestc state is touched. The
 * result goes to the loop, or is dropped when the client has let go meanwhile. */
static void *lookup_thread(void *arg) {
    klookup *l = arg;
    kshared *sh = l->sh;
    rd_kafka_t *rk = sh->rk;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, l->topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t e = t ? rd_kafka_metadata(rk, 0, t, &md, LOOKUP_TIMEOUT_MS) : RD_KAFKA_RESP_ERR__FAIL;
    /* a connection that dropped under the request (a broker going down or just back) is asked again */
    for (int tries = 1; e == RD_KAFKA_RESP_ERR__TRANSPORT && tries < LOOKUP_TRIES; tries++) {
        uv_sleep(100);
        e = rd_kafka_metadata(rk, 0, t, &md, LOOKUP_TIMEOUT_MS);
    }
    if (!e && md->topic_cnt == 1 && md->topics[0].err) e = md->topics[0].err;
    if (!e && (md->topic_cnt != 1 || md->topics[0].partition_cnt <= 0)) e = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (!e) {
        l->npart = md->topics[0].partition_cnt;
        l->high = calloc((size_t)l->npart, sizeof *l->high);
        if (!l->high) e = RD_KAFKA_RESP_ERR__FAIL;
        for (int i = 0; !e && i < l->npart; i++) {
            int64_t lo, hi;
            e = rd_kafka_query_watermark_offsets(rk, l->topic, md->topics[0].partitions[i].id, &lo, &hi,
                                                 LOOKUP_TIMEOUT_MS);
            l->high[i] = hi;
        }
    }
    if (e) snprintf(l->err, sizeof l->err, "%s", rd_kafka_err2str(e));
    if (md) rd_kafka_metadata_destroy(md);
    if (t) rd_kafka_topic_destroy(t);
    pthread_mutex_lock(&sh->mu);
    int keep = sh->async != NULL;
    if (keep) {
        l->next = sh->done;
        sh->done = l;
        uv_async_send(sh->async);
    }
    int last = --sh->refs == 0;
    pthread_mutex_unlock(&sh->mu);
    if (!keep) lookup_free(l);
    if (last) shared_free(sh);
    return NULL;
}

/* Starts the look-up of r's reply topic on a thread of its own (detached: the client never waits for
 * it). Returns 0 or NC_ENOMEM / NC_EIO. */
static int lookup_start(kclient *kc, kroute *r) {
    kshared *sh = kc->sh;
    klookup *l = sh ? calloc(1, sizeof *l) : NULL;
    if (!l || !(l->topic = strdup(r->reply_topic))) {
        free(l);
        return sh ? NC_ENOMEM : NC_ECLOSED;
    }
    l->sh = sh;
    l->r = r;
    pthread_mutex_lock(&sh->mu);
    sh->refs++;
    pthread_mutex_unlock(&sh->mu);
    pthread_attr_t at;
    pthread_t th;
    int rc = pthread_attr_init(&at);
    if (!rc) {
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&th, &at, lookup_thread, l);
        pthread_attr_destroy(&at);
    }
    if (rc) {
        pthread_mutex_lock(&sh->mu);
        sh->refs--; /* the client still holds one */
        pthread_mutex_unlock(&sh->mu);
        lookup_free(l);
        return NC_EIO;
    }
    return 0;
}

/* The client lets go of the shared consumer handle: finished look-ups are dropped, running ones finish
 * on their own and the last reference destroys the handle. */
static void shared_release(kclient *kc) {
    kshared *sh = kc->sh;
    if (!sh) return;
    kc->sh = NULL;
    pthread_mutex_lock(&sh->mu);
    sh->async = NULL;
    klookup *done = sh->done;
    sh->done = NULL;
    int last = --sh->refs == 0;
    pthread_mutex_unlock(&sh->mu);
    while (done) {
        klookup *n = done->next;
        lookup_free(done);
        done = n;
    }
    if (last) shared_free(sh);
}

static void on_lookups(uv_async_t *a);

/* The consumer handle becomes shared with look-up threads; async brings their results to the loop. */
static int shared_open(kclient *kc, uv_loop_t *loop) {
    kshared *sh = calloc(1, sizeof *sh);
    uv_async_t *a = sh ? malloc(sizeof *a) : NULL;
    if (!a || pthread_mutex_init(&sh->mu, NULL)) {
        free(a);
        free(sh);
        return NC_ENOMEM;
    }
    if (uv_async_init(loop, a, on_lookups)) {
        pthread_mutex_destroy(&sh->mu);
        free(a);
        free(sh);
        return NC_EIO;
    }
    a->data = kc;
    sh->refs = 1;
    sh->rk = kc->cons.rk;
    sh->async = a;
    kc->sh = sh;
    kc->async = a;
    return 0;
}

static void async_closed(uv_handle_t *h) {
    free(h);
}

/* The consumer goes: no longer watched on the loop, and its handle destroyed by whoever lets go last. */
static void consumer_release(kclient *kc) {
    if (kc->sh) kc->cons.rk = NULL; /* the handle belongs to the shared reference now */
    nc_kafka_handle_close(&kc->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    shared_release(kc);
    if (kc->async) {
        uv_close((uv_handle_t *)kc->async, async_closed);
        kc->async = NULL;
    }
}

static void fail_pending(kroute *r, int err, const char *msg) {
    kpending *p = r->head;
    r->head = NULL;
    r->tail = &r->head;
    while (p) {
        kpending *n = p->next;
        nc_client__fail_call(r->kc->cli, p->id, err, msg);
        nc_kafka_msg_free(&p->msg);
        free(p->id);
        free(p);
        p = n;
    }
}

static void flush_pending(kroute *r) {
    kpending *p = r->head;
    r->head = NULL;
    r->tail = &r->head;
    while (p) {
        kpending *n = p->next;
        /* the request's delivery report fails the call when the record cannot be delivered */
        kevent *ev = calloc(1, sizeof *ev);
        int rc = ev ? nc_kafka_add_request_headers(&p->msg, p->id, r->reply_topic, 0) : NC_ENOMEM;
        if (!rc) {
            ev->id = p->id;
            rc = produce(r->kc, r->route, &p->msg, ev);
        }
        if (rc) {
            free(ev);
            nc_client__fail_call(r->kc->cli, p->id, rc, "the request could not be produced");
            free(p->id);
        }
        nc_kafka_msg_free(&p->msg);
        free(p);
        p = n;
    }
}

static void maybe_closed(kclient *kc);

static void lookup_done(kclient *kc, klookup *lk) {
    kroute *r = lk->r;
    if (kc->closing) {
        fail_pending(r, NC_ECONNCLOSED, "Connection closed");
        r->state = R_NEW;
        return;
    }
    if (lk->err[0]) {
        char msg[300];
        snprintf(msg, sizeof msg, "the reply topic %s cannot be read: %s", r->reply_topic, lk->err);
        nc_logf(kc->log, NC_LOG_ERROR, "Client", "%s", msg);
        fail_pending(r, NC_EIO, msg);
        r->state = R_NEW; /* looked up again on the next request */
        return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(lk->npart);
    for (int i = 0; i < lk->npart; i++)
        rd_kafka_topic_partition_list_add(l, r->reply_topic, i)->offset = lk->high[i];
    rd_kafka_error_t *e = rd_kafka_incremental_assign(kc->cons.rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot consume %s: %s", r->reply_topic, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        nc_logf(kc->log, NC_LOG_ERROR, "Client", "%s", msg);
        fail_pending(r, NC_EIO, msg);
        r->state = R_NEW;
        return;
    }
    r->state = R_READY;
    r->npart = lk->npart;
    nc_logf(kc->log, NC_LOG_INFO, "Client", "subscribed to %s (%d partition%s) for the replies of %s",
            r->reply_topic, r->npart, r->npart == 1 ? "" : "s", r->route);
    flush_pending(r);
}

/* Loop: the look-ups that finished. */
static void on_lookups(uv_async_t *a) {
    kclient *kc = a->data;
    if (!kc->sh) return;
    pthread_mutex_lock(&kc->sh->mu);
    klookup *l = kc->sh->done;
    kc->sh->done = NULL;
    pthread_mutex_unlock(&kc->sh->mu);
    while (l) {
        klookup *n = l->next;
        lookup_done(kc, l);
        lookup_free(l);
        l = n;
    }
}

static kroute *route_of(kclient *kc, const char *route) {
    for (kroute *r = kc->routes; r; r = r->next)
        if (!strcmp(r->route, route)) return r;
    kroute *r = calloc(1, sizeof *r);
    if (!r || !(r->route = strdup(route)) || !(r->reply_topic = nc_kafka_reply_topic(route))) {
        if (r) free(r->route);
        free(r);
        return NULL;
    }
    r->kc = kc;
    r->tail = &r->head;
    r->next = kc->routes;
    kc->routes = r;
    /* the producer is asked for the route's metadata now: rd_kafka_producev does not ask for an unknown
     * topic's (rd_kafka_topic_new does, asynchronously, or when its broker connection comes up), and the
     * first record to the route then waited for librdkafka's 1 s topic scan */
    if (kc->prod.rk) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(kc->prod.rk, route, NULL);
        if (t) rd_kafka_topic_destroy(t); /* the producer keeps what it learns (its metadata cache) */
    }
    return r;
}

/* The client's nc_tls_opts (TLS to the brokers), or NULL. */
static const nc_tls_opts *tls_of(nc_client *cli) {
    const nc_client_cfg *cfg = nc_client__cfg(cli);
    return cfg->has_tls ? &cfg->tls : NULL;
}

/* ---- ops --------------------------------------------------------------------------------------------- */

static int kc_create(nc_client *cli, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_HOSTS | NC_URL_CLIENT, why, sizeof why))
        return nc_fail(nc_client__log(cli), "Client", NC_EINVAL, "%s", why);
    kclient *kc = calloc(1, sizeof *kc);
    if (!kc) return NC_ENOMEM;
    kc->cli = cli;
    kc->log = nc_client__log(cli);
    nc_kafka_handle_init(&kc->prod);
    nc_kafka_handle_init(&kc->cons);
    kc->events.next = kc->events.prev = &kc->events;
    const nc_optset *opts = nc_client__opts(cli);
    kc->producer_only = nc_opts_bool(opts, "producerOnlyMode");
    kc->keep_binary = nc_opts_bool(opts, "keepBinary");
    if (nc_url_parse(&kc->url, url->text, why, sizeof why)) {
        free(kc);
        return NC_ENOMEM;
    }
    rd_kafka_conf_t *c = nc_kafka_conf(url, opts, tls_of(cli), NC_KAFKA_CONSUMER, "-client", why, sizeof why);
    rd_kafka_conf_t *p =
        c ? nc_kafka_conf(url, opts, tls_of(cli), NC_KAFKA_PRODUCER, "-client", why, sizeof why) : NULL;
    if (c) rd_kafka_conf_destroy(c);
    if (!p) {
        nc_url_free(&kc->url);
        free(kc);
        return nc_fail(nc_client__log(cli), "Client", NC_EINVAL, "%s", why);
    }
    rd_kafka_conf_destroy(p);
    if (nc_kafka_wire_register(kc, nc_client__io(cli)->wire_block)) {
        nc_url_free(&kc->url);
        free(kc);
        return NC_ENOMEM;
    }
    *state = kc;
    return 0;
}

static int kc_connect(void *state) {
    kclient *kc = state;
    char why[300];
    uv_loop_t *loop = nc_client__io(kc->cli)->loop;
    const nc_optset *opts = nc_client__opts(kc->cli);
    if (kc->open) return 0;
    kc->closing = 0;
    rd_kafka_conf_t *pc =
        nc_kafka_conf(&kc->url, opts, tls_of(kc->cli), NC_KAFKA_PRODUCER, "-client", why, sizeof why);
    if (!pc) return nc_fail(kc->log, "Client", NC_EINVAL, "%s", why);
    rd_kafka_conf_set_opaque(pc, kc);
    nc_kafka_wire_conf(pc); /* connections and wire bytes (kafka_wire.c) */
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    rd_kafka_conf_set_error_cb(pc, error_cb);
    int rc = nc_kafka_handle_open(&kc->prod, loop, pc, NC_KAFKA_PRODUCER, prod_wake, kc, why, sizeof why);
    if (rc) return nc_fail(kc->log, "Client", rc, "Kafka producer: %s", why);
    if (!kc->producer_only) {
        rd_kafka_conf_t *cc =
            nc_kafka_conf(&kc->url, opts, tls_of(kc->cli), NC_KAFKA_CONSUMER, "-client", why, sizeof why);
        if (!cc) return nc_fail(kc->log, "Client", NC_EINVAL, "%s", why);
        rd_kafka_conf_set_opaque(cc, kc);
        nc_kafka_wire_conf(cc);
        rd_kafka_conf_set_error_cb(cc, error_cb);
        /* no group membership (see the top): nothing to commit */
        char e[200];
        rd_kafka_conf_set(cc, "enable.auto.commit", "false", e, sizeof e);
        rc = nc_kafka_handle_open(&kc->cons, loop, cc, NC_KAFKA_CONSUMER, cons_wake, kc, why, sizeof why);
        if (!rc) rc = shared_open(kc, loop);
        if (rc) {
            consumer_release(kc);
            nc_kafka_handle_close(&kc->prod, 0);
            return nc_fail(kc->log, "Client", rc, "Kafka consumer: %s", why);
        }
    }
    uv_timer_init(loop, &kc->closer);
    kc->closer.data = kc;
    kc->timer_open = 1;
    kc->open = 1;
    /* the producer connects on its own and keeps trying: the client is usable now */
    nc_client__connected(kc->cli);
    return 0;
}

/* The data of the envelope the core encoded: the record is built from it (§4). */
static int msg_of(const nc_outbound *out, nc_kafka_msg *m) {
    nc_env env;
    json_t *data = NULL;
    if (nc_env_scan(out->body, out->len, &env) == NC_SCAN_OK) {
        if (env.data.p && nc_json_parse(env.data.p, env.data.len, &data, NULL, 0)) return NC_EPROTO;
    } else {
        json_t *root = NULL;
        if (nc_json_parse(out->body, out->len, &root, NULL, 0)) return NC_EPROTO;
        data = json_incref(json_object_get(root, "data"));
        json_decref(root);
    }
    int rc = nc_kafka_msg_from_json(data, m);
    json_decref(data);
    if (rc) return rc;
    /* the call's transport headers (nc_call_opts headers) ride as record headers too */
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)out->headers, name, v) {
        if (json_is_string(v) &&
            (rc = nc_kafka_msg_add_header(m, name, json_string_value(v), json_string_length(v))))
            break;
    }
    if (rc) nc_kafka_msg_free(m);
    return rc;
}

static int kc_send(void *state, nc_outbound *out) {
    kclient *kc = state;
    if (!kc->open || kc->closing) return NC_ECLOSED;
    nc_kafka_msg m;
    int rc = msg_of(out, &m);
    if (rc) {
        snprintf(out->why, sizeof out->why, "the data cannot be encoded as a Kafka record");
        return rc;
    }
    if (!out->id) {               /* an event: complete on the delivery report */
        route_of(kc, out->route); /* its first emit: the route's metadata asked for (the record waits less) */
        kevent *ev = calloc(1, sizeof *ev);
        if (!ev) {
            nc_kafka_msg_free(&m);
            return NC_ENOMEM;
        }
        ev->accepted = out->accepted;
        ev->refused = out->refused;
        ev->arg = out->arg;
        rc = produce(kc, out->route, &m, ev);
        nc_kafka_msg_free(&m);
        if (rc) free(ev);
        return rc;
    }
    if (kc->producer_only) {
        nc_kafka_msg_free(&m);
        snprintf(out->why, sizeof out->why,
                 "producerOnlyMode: the client reads no replies, send() is not possible");
        return NC_ESTATE;
    }
    kroute *r = route_of(kc, out->route);
    kpending *p = r ? calloc(1, sizeof *p) : NULL;
    if (!p || !(p->id = strdup(out->id))) {
        free(p);
        nc_kafka_msg_free(&m);
        return NC_ENOMEM;
    }
    p->msg = m;
    if (r->state == R_READY) {
        r->head = p;
        r->tail = &p->next;
        flush_pending(r);
        return 0;
    }
    *r->tail = p;
    r->tail = &p->next;
    if (r->state == R_NEW) {
        r->state = R_LOOKUP;
        if (lookup_start(kc, r)) {
            r->state = R_NEW;
            r->head = NULL;
            r->tail = &r->head;
            nc_kafka_msg_free(&p->msg);
            free(p->id);
            free(p);
            return NC_EIO;
        }
    }
    return 0;
}

static void timer_closed(uv_handle_t *h) {
    kclient *kc = h->data;
    kc->timer_open = 0;
    nc_client__disconnected(kc->cli, 0, NULL);
}

/* The handles go (events still waiting fail with NC_ECLOSED; a look-up still running keeps the consumer
 * handle until it returns, without the client waiting for it), then the client hears it is
 * disconnected. */
static void maybe_closed(kclient *kc) {
    if (!kc->closing || !kc->open) return;
    kc->open = 0;
    if (kc->prod.rk) {
        rd_kafka_purge(kc->prod.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(kc->prod.rk, 0); /* the purged events' delivery reports */
    }
    consumer_release(kc);
    nc_kafka_handle_close(&kc->prod, 0);
    while (kc->events.next != &kc->events) event_done(kc, kc->events.next, NC_ECLOSED, NULL);
    for (kroute *r = kc->routes; r; r = r->next) {
        fail_pending(r, NC_ECONNCLOSED, "Connection closed");
        r->state = R_NEW;
    }
    uv_timer_stop(&kc->closer);
    uv_close((uv_handle_t *)&kc->closer, timer_closed);
}

static void closer_cb(uv_timer_t *t) {
    maybe_closed(t->data);
}

static void kc_close(void *state) {
    kclient *kc = state;
    if (!kc->open || kc->closing) return;
    kc->closing = 1;
    /* on a fresh loop turn: the core does not expect disconnected() from inside close() */
    uv_timer_start(&kc->closer, closer_cb, 0, 10);
}

static void kc_destroy(void *state) {
    kclient *kc = state;
    consumer_release(kc);
    nc_kafka_handle_close(&kc->prod, 0);
    while (kc->events.next && kc->events.next != &kc->events)
        event_done(kc, kc->events.next, NC_ECLOSED, NULL);
    kroute *r = kc->routes;
    while (r) {
        kroute *n = r->next;
        fail_pending(r, NC_ECONNCLOSED, "Connection closed");
        free(r->route);
        free(r->reply_topic);
        free(r);
        r = n;
    }
    nc_url_free(&kc->url);
    nc_kafka_wire_unregister(kc); /* a consumer a look-up thread still holds is not counted from now on */
    free(kc);
}

static void *kc_unwrap(void *state) {
    return ((kclient *)state)->prod.rk;
}

static const char *const schemes[] = {"kafka", NULL};

const nc_client_transport nc_kafka_client_transport = {
    .schemes = schemes,
    .options = nc_kafka_options,
    .event_pattern_is_route = 0,
    .create = kc_create,
    .connect = kc_connect,
    .send = kc_send,
    .forget = NULL,
    .write = NULL,
    .end = NULL,
    .cancel = NULL,
    .close = kc_close,
    .unwrap = kc_unwrap,
    .destroy = kc_destroy,
};
