/* The Kafka server (spec kafka.md §7, §8): one consumer subscribed to every handler route, one producer
 * for the replies. Each partition keeps its records in a FIFO. By default (partitionConcurrency 1) a
 * partition's next record is dispatched only when the one before is done as KafkaJS's eachMessage is
 * under NestJS: an event once settled (its handlers returned, a kept one settled), a request once its
 * first reply (value, error or end) is produced or it is settled; partitions do not wait for each other.
 * partitionConcurrency N lets up to N records of a partition run at once. A record stays in its FIFO until
 * settled; an offset is stored only when every earlier record of its partition is settled, and
 * librdkafka commits stored offsets in the background and on close: at-least-once. */
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_write.h"
#include "codec/kafka_value.h"
#include "core/fail.h"
#include "core/server_transport.h"
#include "nestc/error.h"
#include "transport/kafka/kafka.h"

/* Records dispatched and not yet settled: past this the consumer is not polled until some are. */
#define MAX_INFLIGHT 1000
/* Records of one partition read and not yet settled: past this the partition is paused (fetched no more; what
 * librdkafka already fetched is dropped by the pause and fetched again on resume), and resumed once they are
 * down to half, so a partition whose handler is slow does not fill MAX_INFLIGHT and stop the others. */
#define PART_MAX_WAITING 100
/* The start-offset look-up of an assignment (worker thread): all of it within this. */
#define LOOKUP_TIMEOUT_MS 10000

struct kpart;

/* One record from its dispatch until it is settled and every earlier one of its partition too. */
typedef struct krec {
    struct krec *next;
    struct kpart *part;
    rd_kafka_message_t *msg;
    uint64_t tag;            /* of the latest dispatch */
    int attempts;            /* deliveries that ended with a requeue */
    int done;                /* settled for good (acked, dead-lettered or given up) */
    int redo;                /* requeued: dispatched again before any later record of its partition */
    int dispatched, running; /* running: dispatched and not yet done in eachMessage's sense */
} krec;

typedef struct kpart {
    struct kpart *next;
    char *topic;
    int32_t partition;
    krec *head, **tail;
    int running; /* records of this partition running (at most partitionConcurrency) */
    int count;   /* records in the FIFO */
    int paused;  /* paused by us: count reached PART_MAX_WAITING */
} kpart;

/* A regex route (spec §2: a NestJS handler pattern that is a RegExp): subscribed as a librdkafka regex
 * subscription, and the route of a record whose topic has no exact route and matches it. */
typedef struct krx {
    char *route;
    regex_t re;
} krx;

typedef struct kserver {
    const nc_logger *log; /* first: librdkafka's opaque (nc_kafka_log_cb) */
    nc_server *srv;
    nc_url url; /* a copy for the configuration at listen() */
    nc_kafka_handle prod, cons;
    char **routes; /* subscribed: topic names, and regexes (starting with ^) */
    size_t nroutes;
    struct krx *rx; /* the regex routes, in the order added */
    size_t nrx;
    char *dlt;        /* deadLetterTopic, NULL = none */
    int max_attempts; /* 0 = unlimited */
    int conc;         /* partitionConcurrency */
    int listening, subscribed, stopping, closing, reported, closed;
    kpart *parts;
    size_t inflight;
    uint64_t next_tag;
    uint64_t dispatching; /* the tag inside nc_server__dispatch: its settle only records the outcome */
    int held_how;         /* -1 none */
    uv_timer_t pump;      /* redeliveries and polling again after a settle, on a fresh loop turn */
    uv_timer_t closer;    /* polls the consumer close and the producer's queue while closing */
    int timers_open;
    int consumer_closing; /* set before the close worker starts: the callbacks on it only let go */
    uv_work_t close_work; /* the consumer's close and destroy, off the loop */
    int close_busy;       /* the worker has the consumer handle */
    int finish_after_close;
    int in_pump, pump_again; /* a release inside pump_next runs more in the same turn */
    int from_beginning;
    unsigned revokes;           /* revocations so far: a look-up made before the last one is dropped */
    struct klookup *lookup;     /* the assignment's start offsets being looked up, or NULL */
    int finish_after_lookup;    /* closing waits for the look-up: the worker uses the consumer handle */
    int close_after_lookup;     /* the graceful consumer close, likewise */
    int report_if_idle;         /* listening without a route yet: connected unless one comes at once */
    int keep_binary;            /* keepBinary: values handed over as Buffers */
    long long commit_threshold; /* autoCommitThreshold, 0 = none */
    long long settled_since;    /* records whose offsets were stored since the last threshold commit */
    char **primed;              /* reply topics whose metadata the producer was asked for (prime_topic) */
    size_t nprimed;
} kserver;

/* An assignment whose partitions have no committed offset and read from "latest": the worker looks up
 * where "latest" is (committed offsets, then the end offsets of the others) and the loop assigns the
 * partitions at those offsets. Only then is "connected" reported: a record produced after it is read.
 * (Assigned as they come, librdkafka resolves "latest" asynchronously after the assignment, and a record
 * produced in between was skipped.) */
typedef struct klookup {
    uv_work_t work;
    kserver *ks;
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *parts;
    unsigned revokes;
    atomic_int cancel; /* set by the loop when closing: the worker gives up */
} klookup;

/* The reply sink of one request: where replies go and the correlation id to echo. */
typedef struct ksink {
    kserver *ks;
    int refs;
    int replied;       /* a first reply was produced: the record no longer holds its partition */
    uint64_t tag;      /* the record's dispatch */
    int32_t partition; /* -1: the producer's partitioner chooses */
    char *corr;
    size_t corr_len;
    char topic[];
} ksink;

static void pump_next(kserver *ks);
static void release_tag(kserver *ks, uint64_t tag);
static void pump_cb(uv_timer_t *t) {
    pump_next(t->data);
}

/* ---- replies ------------------------------------------------------------------------------------- */

static void sink_retain(void *peer) {
    ((ksink *)peer)->refs++;
}

static void sink_release(void *peer) {
    ksink *k = peer;
    if (--k->refs == 0) {
        free(k->corr);
        free(k);
    }
}

/* The opaque of reply records, for their delivery reports: a reply the broker refused is followed by an
 * error reply naming the broker's error (REPLY_FALLBACK), so that the caller does not wait for its
 * timeout; if that one fails too, it is only logged. */
static char REPLY, REPLY_FALLBACK;

/* Produces one record (copied: librdkafka owns its copy). Returns 0 or an nc_err. */
static int produce(kserver *ks, const char *topic, int32_t partition, const nc_kafka_msg *m, void *opaque) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(m->nheaders);
    for (size_t i = 0; i < m->nheaders; i++)
        rd_kafka_header_add(h, m->headers[i].name, -1, m->headers[i].value.p, (ssize_t)m->headers[i].value.n);
    rd_kafka_resp_err_t e =
        rd_kafka_producev(ks->prod.rk, RD_KAFKA_V_TOPIC(topic),
                          RD_KAFKA_V_PARTITION(partition >= 0 ? partition : RD_KAFKA_PARTITION_UA),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(m->value.p, m->value.n),
                          RD_KAFKA_V_KEY(m->key.p, m->key.p ? m->key.n : 0), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        nc_logf(ks->log, NC_LOG_ERROR, "Server", "produce to %s failed: %s", topic, rd_kafka_err2str(e));
        return e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? NC_ESTALLED : NC_EIO;
    }
    return 0;
}

static json_t *parse_or_null(const char *text, size_t len) {
    json_t *v = NULL;
    if (text && nc_json_parse(text, len, &v, NULL, 0)) v = NULL;
    return v;
}

static int sink_reply(void *peer, const nc_reply_pkt *pkt) {
    ksink *k = peer;
    kserver *ks = k->ks;
    if (ks->closed || !ks->prod.rk) return NC_ECLOSED;
    json_t *value = parse_or_null(pkt->response, pkt->response_len);
    json_t *err = parse_or_null(pkt->err, pkt->err_len);
    if (pkt->err && !err) err = json_stringn(pkt->err, pkt->err_len);
    nc_kafka_msg m;
    /* the no-handler reply: value null, the error, no disposed header (spec §7.5) */
    int rc = nc_kafka_reply_msg(value, err, pkt->disposed && !pkt->no_handler, k->corr, k->corr_len, &m);
    for (size_t i = 0; !rc && i < pkt->nheaders; i++) {
        char name[256];
        size_t n = pkt->headers[i].name_len < 255 ? pkt->headers[i].name_len : 255;
        memcpy(name, pkt->headers[i].name, n);
        name[n] = '\0';
        rc = nc_kafka_msg_add_header(&m, name, pkt->headers[i].value, pkt->headers[i].value_len);
    }
    json_decref(value);
    json_decref(err);
    if (rc) {
        nc_kafka_msg_free(&m);
        return rc;
    }
    rc = produce(ks, k->topic, k->partition, &m, &REPLY);
    nc_kafka_msg_free(&m);
    if (!k->replied) { /* NestJS: eachMessage resolves at the first reply */
        k->replied = 1;
        release_tag(ks, k->tag);
    }
    return rc;
}

/* the peer is the broker: no address; always writable (the replies go to the broker connection, whose
 * buffer the transport bounds itself), so no pending bytes to report */
static const nc_peer_ops sink_ops = {sink_reply, sink_retain, sink_release, NULL, NULL, NULL};

/* The most reply topics remembered as primed; past it a new one is not primed (its first reply then waits
 * for librdkafka's topic scan, as before). */
#define MAX_PRIMED 256

/* The producer is asked for a reply topic's metadata when a request first names it, while its handler runs:
 * a record produced to a topic the producer does not know yet waits for librdkafka's 1 s topic scan
 * (rd_kafka_producev does not ask for an unknown topic's metadata; rd_kafka_topic_new does, asynchronously),
 * which made each route's first call take 1 s longer on this side. */
static void prime_topic(kserver *ks, const char *topic) {
    for (size_t i = 0; i < ks->nprimed; i++)
        if (!strcmp(ks->primed[i], topic)) return;
    if (ks->nprimed >= MAX_PRIMED || !ks->prod.rk) return;
    char **p = realloc(ks->primed, (ks->nprimed + 1) * sizeof *p);
    if (!p) return;
    ks->primed = p;
    if (!(p[ks->nprimed] = strdup(topic))) return;
    ks->nprimed++;
    rd_kafka_topic_t *t = rd_kafka_topic_new(ks->prod.rk, topic, NULL);
    if (t) rd_kafka_topic_destroy(t); /* the producer keeps what it learns (its metadata cache) */
}

/* ---- settling -------------------------------------------------------------------------------------- */

static void store_offset(kserver *ks, const char *topic, int32_t partition, int64_t next) {
    if (!ks->cons.rk || ks->consumer_closing) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(ks->cons.rk, l);
    if (!e) e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) /* a partition revoked meanwhile: its new owner handles the record again (at-least-once) */
        nc_logf(ks->log, NC_LOG_DEBUG, "Server", "offset %lld of %s[%d] not stored: %s", (long long)next,
                topic, (int)partition, rd_kafka_err2str(e));
}

/* The dead-letter copy: key, value and headers kept. */
static void dead_letter(kserver *ks, rd_kafka_message_t *msg) {
    rd_kafka_headers_t *src = NULL, *h = NULL;
    if (rd_kafka_message_headers(msg, &src) == RD_KAFKA_RESP_ERR_NO_ERROR) h = rd_kafka_headers_copy(src);
    rd_kafka_resp_err_t e =
        rd_kafka_producev(ks->prod.rk, RD_KAFKA_V_TOPIC(ks->dlt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE(msg->payload, msg->len), RD_KAFKA_V_KEY(msg->key, msg->key_len),
                          RD_KAFKA_V_HEADERS(h ? h : rd_kafka_headers_new(0)), RD_KAFKA_V_END);
    if (e)
        nc_logf(ks->log, NC_LOG_ERROR, "Server", "dead-lettering a record of %s to %s failed: %s",
                rd_kafka_topic_name(msg->rkt), ks->dlt, rd_kafka_err2str(e));
    else
        nc_logf(ks->log, NC_LOG_WARN, "Server", "a record of %s[%d]@%lld was dead-lettered to %s",
                rd_kafka_topic_name(msg->rkt), (int)msg->partition, (long long)msg->offset, ks->dlt);
}

static kpart *part_of(kserver *ks, const char *topic, int32_t partition) {
    for (kpart *p = ks->parts; p; p = p->next)
        if (p->partition == partition && !strcmp(p->topic, topic)) return p;
    kpart *p = calloc(1, sizeof *p);
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->tail = &p->head;
    p->next = ks->parts;
    ks->parts = p;
    return p;
}

static krec *rec_of(kserver *ks, uint64_t tag) {
    for (kpart *p = ks->parts; p; p = p->next)
        for (krec *r = p->head; r; r = r->next)
            if (r->tag == tag) return r;
    return NULL;
}

/* Pauses or resumes the fetching of one partition (backpressure, PART_MAX_WAITING). */
static void part_pause(kserver *ks, kpart *p, int pause) {
    if (!ks->cons.rk || ks->consumer_closing || p->paused == pause) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    rd_kafka_resp_err_t e =
        pause ? rd_kafka_pause_partitions(ks->cons.rk, l) : rd_kafka_resume_partitions(ks->cons.rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    p->paused = pause;
    nc_logf(ks->log, NC_LOG_DEBUG, "Server", "%s[%d] %s (%d records waiting)%s%s", p->topic,
            (int)p->partition, pause ? "paused" : "resumed", p->count, e ? ": " : "",
            e ? rd_kafka_err2str(e) : "");
}

/* Frees the settled records at the head of a partition and stores the offset after the last of them. */
static void advance(kserver *ks, kpart *p) {
    int64_t last = -1;
    krec *r;
    while ((r = p->head) && r->done) {
        p->head = r->next;
        if (!p->head) p->tail = &p->head;
        last = r->msg->offset;
        rd_kafka_message_destroy(r->msg);
        free(r);
        ks->inflight--;
        ks->settled_since++;
        p->count--;
    }
    if (last < 0) return;
    if (p->paused && p->count <= PART_MAX_WAITING / 2) part_pause(ks, p, 0);
    store_offset(ks, p->topic, p->partition, last + 1);
    if (ks->commit_threshold && ks->settled_since >= ks->commit_threshold && ks->cons.rk &&
        !ks->consumer_closing) { /* autoCommitThreshold: the stored offsets now, asynchronously */
        ks->settled_since = 0;
        rd_kafka_resp_err_t e = rd_kafka_commit(ks->cons.rk, NULL, 1);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            nc_logf(ks->log, NC_LOG_DEBUG, "Server", "commit: %s", rd_kafka_err2str(e));
    }
}

/* Runs the records that became ready: at once inside pump_next (its loop goes round again), else on
 * a fresh loop turn (never from inside a handler's reply or settle call). */
static void schedule_pump(kserver *ks) {
    if (ks->in_pump)
        ks->pump_again = 1;
    else if (ks->timers_open && !ks->closed)
        uv_timer_start(&ks->pump, pump_cb, 0, 0);
}

/* A record no longer holds its partition's turn. */
static void release(kserver *ks, krec *r) {
    if (!r->running) return;
    r->running = 0;
    r->part->running--;
    schedule_pump(ks);
}

static void release_tag(kserver *ks, uint64_t tag) {
    if (ks->closed) return;
    krec *r = rec_of(ks, tag);
    if (r && r->tag == tag) release(ks, r);
}

/* A record's outcome: done (stored once the records before it are), dead-lettered, or delivered again. */
static void settle_rec(kserver *ks, krec *r, int how) {
    if (how == NC_SETTLE_NACK_REQUEUE) {
        if (ks->closing) return; /* left unstored: the group delivers it again after us */
        r->attempts++;
        if (!ks->max_attempts || r->attempts < ks->max_attempts) {
            r->redo = 1; /* dispatched again, before any later record of its partition that waits */
            release(ks, r);
            schedule_pump(ks);
            return;
        }
        how = NC_SETTLE_REJECT; /* maxAttempts reached */
    }
    release(ks, r);
    if (how != NC_SETTLE_ACK && ks->dlt && ks->prod.rk) dead_letter(ks, r->msg);
    r->done = 1;
    advance(ks, r->part);
}

static void ks_settle(void *state, const nc_delivery *d, nc_settle how) {
    kserver *ks = state;
    if (ks->closed) return;
    if (ks->dispatching && d->tag == ks->dispatching) {
        ks->held_how = (int)how;
        return;
    }
    krec *r = rec_of(ks, d->tag);
    if (!r || r->done) return;
    settle_rec(ks, r, (int)how);
    if (ks->inflight < MAX_INFLIGHT) schedule_pump(ks); /* polling may have stopped at the limit */
}

/* ---- incoming records ------------------------------------------------------------------------------- */

/* The data of a record with a null value: the decoded message itself (KafkaRequestDeserializer). */
static int null_value_data(const rd_kafka_message_t *msg, const nc_header *h, size_t nh, nc_buf *out) {
    json_t *o = json_object(), *hs = json_object();
    if (!o || !hs) {
        json_decref(o);
        json_decref(hs);
        return NC_ENOMEM;
    }
    json_object_set_new(o, "key", nc_kafka_decode(msg->key, msg->key_len));
    json_object_set_new(o, "value", json_null());
    for (size_t i = 0; i < nh; i++) {
        char name[256];
        size_t n = h[i].name_len < 255 ? h[i].name_len : 255;
        memcpy(name, h[i].name, n);
        name[n] = '\0';
        json_object_set_new(hs, name, nc_kafka_decode(h[i].value, h[i].value_len));
    }
    json_object_set_new(o, "headers", hs);
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)msg->offset);
    json_object_set_new(o, "offset", json_string(num));
    rd_kafka_timestamp_type_t tt;
    snprintf(num, sizeof num, "%lld", (long long)rd_kafka_message_timestamp(msg, &tt));
    json_object_set_new(o, "timestamp", json_string(num));
    json_object_set_new(o, "topic", json_string(rd_kafka_topic_name(msg->rkt)));
    json_object_set_new(o, "partition", json_integer(msg->partition));
    int rc = nc_json_write(out, o);
    json_decref(o);
    return rc;
}

/* The topic is the route (spec §2); a topic without an exact route goes to the first regex route that
 * matches it (none: the topic itself, which finds no handler: NestJS's no-handler reply, §7.5). */
static const char *route_of(kserver *ks, const char *topic) {
    if (!ks->nrx) return topic;
    for (size_t i = 0; i < ks->nroutes; i++)
        if (ks->routes[i][0] != '^' && !strcmp(ks->routes[i], topic)) return topic;
    for (size_t i = 0; i < ks->nrx; i++)
        if (!regexec(&ks->rx[i].re, topic, 0, NULL, 0)) return ks->rx[i].route;
    return topic;
}

static void on_record(kserver *ks, krec *rec) {
    rd_kafka_message_t *msg = rec->msg;
    const char *topic = rd_kafka_topic_name(msg->rkt);
    nc_header hdrs[NC_KAFKA_MAX_HEADERS];
    size_t nh = nc_kafka_record_headers(msg, hdrs, NC_KAFKA_MAX_HEADERS);
    const nc_header *corr = nc_kafka_find_header(hdrs, nh, NC_KAFKA_H_CORRELATION);
    const nc_header *rtopic = nc_kafka_find_header(hdrs, nh, NC_KAFKA_H_REPLY_TOPIC);
    const nc_header *rpart = nc_kafka_find_header(hdrs, nh, NC_KAFKA_H_REPLY_PARTITION);
    int is_event = !corr || !rtopic || !rtopic->value_len; /* spec §7.3 */
    nc_buf data = NC_BUF_INIT;
    int rc = !msg->payload     ? null_value_data(msg, hdrs, nh, &data)
             : ks->keep_binary ? nc_kafka_buffer_json(msg->payload, msg->len, &data)
                               : nc_kafka_decode_text(msg->payload, msg->len, &data);
    if (rc) {
        nc_logf(ks->log, NC_LOG_ERROR, "Server", "out of memory: a record of %s skipped", topic);
        nc_buf_free(&data);
        settle_rec(ks, rec, NC_SETTLE_ACK);
        return;
    }
    ksink *k = NULL;
    if (!is_event) {
        k = malloc(sizeof *k + rtopic->value_len + 1);
        if (k) {
            k->ks = ks;
            k->refs = 1; /* held across the dispatch */
            k->replied = 0;
            memcpy(k->topic, rtopic->value, rtopic->value_len);
            k->topic[rtopic->value_len] = '\0';
            k->partition = rpart ? nc_kafka_parse_partition(rpart->value, rpart->value_len) : -1;
            k->corr_len = corr->value_len;
            k->corr = malloc(corr->value_len + 1);
            if (k->corr) {
                memcpy(k->corr, corr->value, corr->value_len);
                k->corr[corr->value_len] = '\0';
            } else {
                free(k);
                k = NULL;
            }
        }
        if (!k)
            is_event = 1;
        else
            prime_topic(ks, k->topic);
    }
    nc_ctx_item ctx[8];
    size_t nctx = 0;
    ctx[nctx++] = (nc_ctx_item){NC_CTX_PARTITION, NULL, 0, msg->partition};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_OFFSET, NULL, 0, msg->offset};
    if (msg->key) ctx[nctx++] = (nc_ctx_item){NC_CTX_KEY, msg->key, msg->key_len, 0};
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(msg, &tt);
    if (ts >= 0) ctx[nctx++] = (nc_ctx_item){NC_CTX_TIMESTAMP_MS, NULL, 0, ts};
    if (rtopic) ctx[nctx++] = (nc_ctx_item){NC_CTX_REPLY_TO, rtopic->value, rtopic->value_len, 0};
    if (corr) ctx[nctx++] = (nc_ctx_item){NC_CTX_CORRELATION_ID, corr->value, corr->value_len, 0};
    ctx[nctx++] = (nc_ctx_item){NC_CTX_DELIVERY_COUNT, NULL, 0, rec->attempts + 1};
    nc_inbound_parts parts = {0};
    parts.pattern = topic;
    parts.id = is_event ? NULL : k->corr;
    parts.id_len = is_event ? 0 : k->corr_len;
    parts.data = data.data ? data.data : "null";
    parts.data_len = data.data ? data.len : 4;
    parts.data_is_json = 1;
    parts.reply_to = rtopic ? rtopic->value : NULL;
    parts.reply_to_len = rtopic ? rtopic->value_len : 0;
    parts.is_event = is_event;
    nc_inbound in = {0};
    in.channel = topic;
    in.route = route_of(ks, topic);
    in.headers = hdrs;
    in.nheaders = nh;
    in.ctx = ctx;
    in.nctx = nctx;
    in.parts = &parts;
    in.peer = k;
    in.peer_ops = k ? &sink_ops : NULL;
    rec->tag = ++ks->next_tag;
    if (k) k->tag = rec->tag;
    in.delivery = (nc_delivery){.tag = rec->tag, .conn = 1, .set = 1};
    ks->dispatching = rec->tag;
    ks->held_how = -1;
    char why[200];
    why[0] = '\0';
    if (nc_server__dispatch(ks->srv, NULL, 0, &in, why, sizeof why))
        nc_logf(ks->log, NC_LOG_ERROR, "Server", "record of %s ignored: %s", topic, why);
    ks->dispatching = 0;
    int held = ks->held_how;
    ks->held_how = -1;
    nc_buf_free(&data);
    if (k) sink_release(k);
    if (held >= 0) settle_rec(ks, rec, held); /* last: it may free the record */
}

/* Dispatches the records of a partition whose turn came: requeued ones first (they are older), then new
 * ones in offset order, while fewer than partitionConcurrency run. */
static void part_run(kserver *ks, kpart *p) {
    while (p->running < ks->conc && !ks->stopping && !ks->closing) {
        krec *r = p->head;
        while (r && (r->done || r->running || (r->dispatched && !r->redo))) r = r->next;
        if (!r) return;
        r->redo = 0;
        r->dispatched = r->running = 1;
        p->running++;
        on_record(ks, r); /* may free r (settled at once) */
    }
}

/* Serves the consumer queue (callbacks: rebalances, errors, logs; and records) and the records whose
 * turn came. */
static void pump_next(kserver *ks) {
    if (!ks->cons.rk || ks->closed || ks->in_pump || ks->consumer_closing) return;
    if (ks->report_if_idle) {
        ks->report_if_idle = 0;
        if (!ks->nroutes && !ks->reported) { /* nothing to subscribe: nothing to wait for */
            ks->reported = 1;
            nc_server__status(ks->srv, "connected", 0);
        }
    }
    ks->in_pump = 1;
    do {
        ks->pump_again = 0;
        for (kpart *p = ks->parts; p && !ks->closing; p = p->next) part_run(ks, p);
        while (ks->inflight < MAX_INFLIGHT && !ks->closed && ks->cons.rk && !ks->consumer_closing) {
            rd_kafka_message_t *msg = rd_kafka_consumer_poll(ks->cons.rk, 0);
            if (!msg) break;
            if (msg->err) {
                if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    nc_logf(ks->log, NC_LOG_WARN, "Server", "consumer: %s", rd_kafka_message_errstr(msg));
                rd_kafka_message_destroy(msg);
                continue;
            }
            kpart *p = ks->stopping ? NULL : part_of(ks, rd_kafka_topic_name(msg->rkt), msg->partition);
            krec *r = p ? calloc(1, sizeof *r) : NULL;
            if (!r) { /* stopping (or out of memory): not handled, the group delivers it again after us */
                rd_kafka_message_destroy(msg);
                continue;
            }
            r->part = p;
            r->msg = msg;
            *p->tail = r;
            p->tail = &r->next;
            ks->inflight++;
            if (++p->count >= PART_MAX_WAITING && !p->paused) part_pause(ks, p, 1);
            part_run(ks, p);
        }
    } while (ks->pump_again && !ks->closed && !ks->closing);
    ks->in_pump = 0;
}

static void cons_wake(void *arg) {
    pump_next(arg);
}

static void prod_wake(void *arg) {
    kserver *ks = arg;
    if (ks->prod.rk) rd_kafka_poll(ks->prod.rk, 0);
}

/* A reply the broker refused (librdkafka retried what is retriable): the caller gets an error reply
 * with the broker's error instead (same topic, partition and correlation id), so it does not wait for
 * its timeout. */
static void reply_refused(kserver *ks, const rd_kafka_message_t *m) {
    nc_header hdrs[NC_KAFKA_MAX_HEADERS];
    size_t nh = nc_kafka_record_headers((rd_kafka_message_t *)m, hdrs, NC_KAFKA_MAX_HEADERS);
    const nc_header *corr = nc_kafka_find_header(hdrs, nh, NC_KAFKA_H_CORRELATION);
    if (!corr || ks->closed || !ks->prod.rk) return;
    char text[300];
    snprintf(text, sizeof text, "the reply could not be produced: %s (%s)", rd_kafka_err2str(m->err),
             rd_kafka_err2name(m->err));
    json_t *err = json_pack("{s:s,s:s}", "status", "error", "message", text);
    nc_kafka_msg r;
    if (err && !nc_kafka_reply_msg(NULL, err, 1, corr->value, corr->value_len, &r)) {
        produce(ks, rd_kafka_topic_name(m->rkt), m->partition, &r, &REPLY_FALLBACK);
        nc_kafka_msg_free(&r);
    }
    json_decref(err);
}

/* Delivery reports: a failure is logged; a refused reply is answered with an error reply. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    kserver *ks = opaque;
    if (!m->err) return;
    nc_logf(ks->log, NC_LOG_ERROR, "Server", "a record to %s was not delivered: %s (%s)",
            rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err), rd_kafka_err2name(m->err));
    if (m->_private == &REPLY && m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
        m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        reply_refused(ks, m);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    kserver *ks = opaque;
    if (ks->consumer_closing && rk != ks->prod.rk) return; /* on the close worker: nestc's logger is not */
    nc_logf(ks->log, err == RD_KAFKA_RESP_ERR__FATAL ? NC_LOG_ERROR : NC_LOG_WARN, "Server", "%s: %s",
            rd_kafka_err2name(err), reason);
}

/* The records of revoked partitions that were never dispatched are let go (their new owner reads them
 * from the committed offset). Records are dispatched in FIFO order, so these are the FIFO's tail. */
static void drop_waiting(kserver *ks, const rd_kafka_topic_partition_list_t *revoked) {
    for (int i = 0; revoked && i < revoked->cnt; i++)
        for (kpart *p = ks->parts; p; p = p->next) {
            if (p->partition != revoked->elems[i].partition || strcmp(p->topic, revoked->elems[i].topic))
                continue;
            krec **pp = &p->head;
            while (*pp && (*pp)->dispatched) pp = &(*pp)->next;
            p->tail = pp;
            while (*pp) {
                krec *r = *pp;
                *pp = r->next;
                rd_kafka_message_destroy(r->msg);
                free(r);
                ks->inflight--;
                p->count--;
            }
            /* resumed: the partition may come back in the next assignment, and must be fetched then */
            if (p->paused) part_pause(ks, p, 0);
        }
}

/* Worker thread: librdkafka calls only (they block on the network); no nestc state is touched. */
static void lookup_work(uv_work_t *w) {
    klookup *l = w->data;
    uint64_t end = uv_hrtime() / 1000000 + LOOKUP_TIMEOUT_MS;
    int left = LOOKUP_TIMEOUT_MS;
    for (int tries = 0; !atomic_load(&l->cancel); tries++) { /* committed offsets: kept where there are */
        rd_kafka_resp_err_t e = rd_kafka_committed(l->rk, l->parts, left);
        left = (int)(end - uv_hrtime() / 1000000);
        if (!e || left <= 0) break;
        uv_sleep(100);
    }
    for (int i = 0; i < l->parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &l->parts->elems[i];
        if (p->offset >= 0) continue;
        p->offset = RD_KAFKA_OFFSET_INVALID; /* committed, or librdkafka's own reset when not found here */
        while (!atomic_load(&l->cancel) && (left = (int)(end - uv_hrtime() / 1000000)) > 0) {
            int64_t lo, hi;
            if (!rd_kafka_query_watermark_offsets(l->rk, p->topic, p->partition, &lo, &hi, left)) {
                p->offset = hi;
                break;
            }
            uv_sleep(100); /* a leader moving, a topic just created: asked again */
        }
    }
}

static void finish_close(kserver *ks);
static void close_consumer(kserver *ks);

static void lookup_done(uv_work_t *w, int status) {
    klookup *l = w->data;
    kserver *ks = l->ks;
    ks->lookup = NULL;
    if (ks->finish_after_lookup || ks->close_after_lookup) {
        rd_kafka_topic_partition_list_destroy(l->parts);
        free(l);
        if (ks->finish_after_lookup)
            finish_close(ks);
        else
            close_consumer(ks);
        ks->finish_after_lookup = ks->close_after_lookup = 0;
        return;
    }
    if (!status && !ks->closing && ks->cons.rk && l->revokes == ks->revokes) {
        rd_kafka_error_t *e = NULL;
        if (!strcmp(rd_kafka_rebalance_protocol(ks->cons.rk), "COOPERATIVE"))
            e = rd_kafka_incremental_assign(ks->cons.rk, l->parts);
        else
            rd_kafka_assign(ks->cons.rk, l->parts);
        if (e) {
            nc_logf(ks->log, NC_LOG_ERROR, "Server", "assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        if (!ks->reported && !ks->stopping) {
            ks->reported = 1;
            nc_server__status(ks->srv, "connected", 0);
        }
        schedule_pump(ks);
    }
    rd_kafka_topic_partition_list_destroy(l->parts);
    free(l);
}

/* Returns 1 when the look-up runs (the partitions are assigned when it ends), 0 to assign them now. */
static int start_lookup(kserver *ks, const rd_kafka_topic_partition_list_t *parts) {
    if (ks->lookup || !parts->cnt) return 0;
    klookup *l = calloc(1, sizeof *l);
    if (!l || !(l->parts = rd_kafka_topic_partition_list_copy(parts))) {
        free(l);
        return 0;
    }
    l->ks = ks;
    l->rk = ks->cons.rk;
    l->revokes = ks->revokes;
    atomic_init(&l->cancel, 0);
    l->work.data = l;
    if (uv_queue_work(nc_server__io(ks->srv)->loop, &l->work, lookup_work, lookup_done)) {
        rd_kafka_topic_partition_list_destroy(l->parts);
        free(l);
        return 0;
    }
    ks->lookup = l;
    return 1;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    kserver *ks = opaque;
    int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rd_kafka_error_t *e = NULL;
    if (ks->consumer_closing) { /* the close's own revoke, on the close worker: let go, touch nothing else */
        if (coop)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
        if (e) rd_kafka_error_destroy(e);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (!ks->from_beginning && !ks->stopping && start_lookup(ks, parts)) return; /* assigned when known */
        if (coop)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        /* as KafkaJS's "Consumer has joined the group": which member, how many partitions, by which
         * protocol (a group shared with NestJS members is checked this way) */
        char *member = rd_kafka_memberid(rk);
        const char *proto = rd_kafka_rebalance_protocol(rk);
        nc_logf(ks->log, NC_LOG_INFO, "Server", "group joined as %s: %d partitions assigned (%s)",
                member ? member : "?", parts->cnt, proto ? proto : "NONE");
        if (member) rd_kafka_mem_free(rk, member);
        if (!ks->reported && !ks->stopping) {
            ks->reported = 1;
            nc_server__status(ks->srv, "connected", 0);
        }
    } else {
        ks->revokes++; /* a look-up under way is for partitions that may be gone: dropped */
        drop_waiting(ks, parts);
        if (coop)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    }
    if (e) {
        nc_logf(ks->log, NC_LOG_ERROR, "Server", "rebalance: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

/* The server's nc_tls_opts (TLS to the brokers), or NULL. */
static const nc_tls_opts *tls_of(nc_server *srv) {
    const nc_server_cfg *cfg = nc_server__cfg(srv);
    return cfg->has_tls ? &cfg->tls : NULL;
}

/* ---- ops --------------------------------------------------------------------------------------------- */

static int ks_create(nc_server *srv, const nc_url *url, void **state) {
    char why[300];
    if (nc_url_check(url, NC_URL_HOSTS, why, sizeof why))
        return nc_fail(nc_server__log(srv), "Server", NC_EINVAL, "%s", why);
    kserver *ks = calloc(1, sizeof *ks);
    if (!ks) return NC_ENOMEM;
    ks->srv = srv;
    ks->log = nc_server__log(srv);
    nc_kafka_handle_init(&ks->prod);
    nc_kafka_handle_init(&ks->cons);
    ks->held_how = -1;
    const nc_optset *opts = nc_server__opts(srv);
    const char *dlt = nc_opts_str(opts, "deadLetterTopic");
    ks->max_attempts = (int)nc_opts_int(opts, "maxAttempts");
    ks->conc = (int)nc_opts_int(opts, "partitionConcurrency");
    ks->from_beginning = nc_opts_bool(opts, "fromBeginning");
    ks->commit_threshold = nc_opts_int(opts, "autoCommitThreshold");
    ks->keep_binary = nc_opts_bool(opts, "keepBinary");
    if (ks->conc < 1) ks->conc = 1;
    if (nc_url_parse(&ks->url, url->text, why, sizeof why) || (dlt && *dlt && !(ks->dlt = strdup(dlt)))) {
        nc_url_free(&ks->url);
        free(ks);
        return NC_ENOMEM;
    }
    /* the configuration is checked now, so a bad kafka.<property> fails nc_server_new */
    rd_kafka_conf_t *c = nc_kafka_conf(url, opts, tls_of(srv), NC_KAFKA_CONSUMER, "-server", why, sizeof why);
    rd_kafka_conf_t *p =
        c ? nc_kafka_conf(url, opts, tls_of(srv), NC_KAFKA_PRODUCER, "-server", why, sizeof why) : NULL;
    if (c) rd_kafka_conf_destroy(c);
    if (!p) {
        nc_url_free(&ks->url);
        free(ks->dlt);
        free(ks);
        return nc_fail(nc_server__log(srv), "Server", NC_EINVAL, "%s", why);
    }
    rd_kafka_conf_destroy(p);
    if (nc_kafka_wire_register(ks, nc_server__io(srv)->wire_block)) {
        nc_url_free(&ks->url);
        free(ks->dlt);
        free(ks);
        return NC_ENOMEM;
    }
    *state = ks;
    return 0;
}

static int ks_route_added(void *state, const char *route, const nc_optset *opts) {
    kserver *ks = state;
    (void)opts;
    if (route[0] == '^') { /* a regex subscription: librdkafka takes topic names starting with ^ as such */
        krx *x = realloc(ks->rx, (ks->nrx + 1) * sizeof *x);
        if (!x) return NC_ENOMEM;
        ks->rx = x;
        int rc = regcomp(&x[ks->nrx].re, route, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char why[200];
            regerror(rc, &x[ks->nrx].re, why, sizeof why);
            return nc_fail(ks->log, "Server", NC_EINVAL, "the route %s is not a regular expression: %s",
                           route, why);
        }
        if (!(x[ks->nrx].route = strdup(route))) {
            regfree(&x[ks->nrx].re);
            return NC_ENOMEM;
        }
        ks->nrx++;
    } else if (!nc_kafka_topic_ok(route)) { /* an object pattern or a wildcard: no record can carry it */
        nc_logf(ks->log, NC_LOG_DEBUG, "Server",
                "the route %s is not a legal Kafka topic name: not subscribed", route);
        return 0;
    }
    char **r = realloc(ks->routes, (ks->nroutes + 1) * sizeof *r);
    if (!r) return NC_ENOMEM;
    ks->routes = r;
    if (!(r[ks->nroutes] = strdup(route))) return NC_ENOMEM;
    ks->nroutes++;
    if (!ks->listening || !ks->cons.rk || ks->consumer_closing) return 0;
    /* a handler added while serving: the subscription is replaced by the whole list */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ks->nroutes);
    for (size_t i = 0; i < ks->nroutes; i++)
        rd_kafka_topic_partition_list_add(l, ks->routes[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(ks->cons.rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? nc_fail(ks->log, "Server", NC_EINVAL, "subscribe: %s", rd_kafka_err2str(e)) : 0;
}

static int ks_listen(void *state) {
    kserver *ks = state;
    char why[300];
    uv_loop_t *loop = nc_server__io(ks->srv)->loop;
    const nc_optset *opts = nc_server__opts(ks->srv);
    rd_kafka_conf_t *pc =
        nc_kafka_conf(&ks->url, opts, tls_of(ks->srv), NC_KAFKA_PRODUCER, "-server", why, sizeof why);
    if (!pc) return nc_fail(ks->log, "Server", NC_EINVAL, "%s", why);
    rd_kafka_conf_set_opaque(pc, ks);
    nc_kafka_wire_conf(pc); /* connections and wire bytes (kafka_wire.c) */
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    rd_kafka_conf_set_error_cb(pc, error_cb);
    int rc = nc_kafka_handle_open(&ks->prod, loop, pc, NC_KAFKA_PRODUCER, prod_wake, ks, why, sizeof why);
    if (rc) return nc_fail(ks->log, "Server", rc, "Kafka producer: %s", why);
    rd_kafka_conf_t *cc =
        nc_kafka_conf(&ks->url, opts, tls_of(ks->srv), NC_KAFKA_CONSUMER, "-server", why, sizeof why);
    if (!cc) return nc_fail(ks->log, "Server", NC_EINVAL, "%s", why);
    rd_kafka_conf_set_opaque(cc, ks);
    nc_kafka_wire_conf(cc);
    rd_kafka_conf_set_error_cb(cc, error_cb);
    rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
    rc = nc_kafka_handle_open(&ks->cons, loop, cc, NC_KAFKA_CONSUMER, cons_wake, ks, why, sizeof why);
    if (rc) return nc_fail(ks->log, "Server", rc, "Kafka consumer: %s", why);
    uv_timer_init(loop, &ks->pump);
    uv_timer_init(loop, &ks->closer);
    ks->pump.data = ks->closer.data = ks;
    ks->timers_open = 1;
    ks->listening = 1;
    if (ks->nroutes) {
        ks->nroutes--; /* ks_route_added adds it back and subscribes to the whole list */
        char *last = ks->routes[ks->nroutes];
        if (last[0] == '^' && ks->nrx) { /* its regex too */
            ks->nrx--;
            regfree(&ks->rx[ks->nrx].re);
            free(ks->rx[ks->nrx].route);
        }
        rc = ks_route_added(ks, last, NULL);
        free(last);
        if (rc) return rc;
    } else { /* the core adds the routes right after listen(): connected now only if none comes */
        ks->report_if_idle = 1;
        schedule_pump(ks);
    }
    return 0;
}

static void ks_stop_accepting(void *state) {
    kserver *ks = state;
    ks->stopping = 1;
}

/* Records not settled: not stored, so the group delivers them again. Before the consumer is closed:
 * librdkafka's messages must all be returned before its handle goes. */
static void drop_records(kserver *ks) {
    while (ks->parts) { /* records not settled: not stored, delivered again to the group */
        kpart *p = ks->parts;
        ks->parts = p->next;
        while (p->head) {
            krec *r = p->head;
            p->head = r->next;
            rd_kafka_message_destroy(r->msg);
            free(r);
        }
        free(p->topic);
        free(p);
    }
    ks->inflight = 0;
}

static void timer_closed(uv_handle_t *h) {
    kserver *ks = h->data;
    if (--ks->timers_open == 0) nc_server__closed(ks->srv);
}

/* Everything is closed: the handles are destroyed (their threads joined), then the timers. */
static void finish_close(kserver *ks) {
    if (ks->closed) return;
    if (ks->close_busy) { /* the close worker owns the consumer handle */
        ks->finish_after_close = 1;
        return;
    }
    if (ks->lookup) { /* the worker uses the consumer handle: destroyed once it is done */
        atomic_store(&ks->lookup->cancel, 1);
        ks->finish_after_lookup = 1;
        return;
    }
    ks->closed = 1;
    drop_records(ks);
    nc_kafka_handle_close(&ks->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE); /* closed before, if at all */
    nc_kafka_handle_close(&ks->prod, 0);
    if (ks->timers_open) {
        ks->timers_open = 2;
        uv_close((uv_handle_t *)&ks->pump, timer_closed);
        uv_close((uv_handle_t *)&ks->closer, timer_closed);
    } else {
        nc_server__closed(ks->srv);
    }
}

/* While closing: the consumer leaves its group (stored offsets committed) and the producer's queue
 * empties; checked on a short timer since both happen on librdkafka's threads. */
static void closer_cb(uv_timer_t *t) {
    kserver *ks = t->data;
    if (ks->prod.rk) rd_kafka_poll(ks->prod.rk, 0);
    int cons_done = !ks->cons.rk && !ks->close_busy && !ks->lookup;
    int prod_done = !ks->prod.rk || rd_kafka_outq_len(ks->prod.rk) == 0;
    if (cons_done && prod_done) {
        uv_timer_stop(t);
        finish_close(ks);
    }
}

/* Worker thread: the handle is the worker's alone (the loop no longer watches its queue). The close leaves
 * the group (the rebalance callback runs here and only lets go) and commits the stored offsets; then the
 * handle is destroyed, its threads joined. librdkafka 2.0's asynchronous close_queue was tried instead: a
 * destroy while that close was under way did not return (seen with the mock cluster). */
static void close_work(uv_work_t *w) {
    kserver *ks = w->data;
    rd_kafka_t *rk = ks->cons.rk;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

static void close_done(uv_work_t *w, int status) {
    kserver *ks = w->data;
    (void)status;
    ks->close_busy = 0;
    ks->cons.rk = NULL;                  /* destroyed by the worker */
    nc_kafka_handle_close(&ks->cons, 0); /* the pipe */
    if (ks->finish_after_close) finish_close(ks);
}

/* The graceful consumer close, off the loop: the loop stops watching the consumer's queue and hands the
 * handle to a worker thread. With an unreachable cluster it takes librdkafka's own timeouts, but the
 * loop keeps running meanwhile (a close at once waits for the worker too: it owns the handle). */
static void close_consumer(kserver *ks) {
    if (!ks->cons.rk || ks->close_busy) return;
    if (ks->cons.poll) nc_poll_free(ks->cons.poll);
    ks->cons.poll = NULL;
    if (ks->cons.q) {
        rd_kafka_queue_io_event_enable(ks->cons.q, -1, NULL, 0);
        rd_kafka_queue_destroy(ks->cons.q);
        ks->cons.q = NULL;
    }
    rd_kafka_set_log_level(ks->cons.rk, 0); /* its logs would be served on the worker */
    ks->consumer_closing = 1;
    ks->close_work.data = ks;
    if (uv_queue_work(nc_server__io(ks->srv)->loop, &ks->close_work, close_work, close_done)) {
        rd_kafka_resp_err_t e = rd_kafka_consumer_close(ks->cons.rk); /* no worker: on the loop */
        if (e) nc_logf(ks->log, NC_LOG_WARN, "Server", "consumer close: %s", rd_kafka_err2str(e));
        nc_kafka_handle_close(&ks->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return;
    }
    ks->close_busy = 1;
}

static void begin_close(kserver *ks) {
    if (ks->closing) return;
    ks->closing = 1;
    ks->stopping = 1;
    if (!ks->timers_open) {
        finish_close(ks);
        return;
    }
    drop_records(ks);
    if (ks->cons.rk && ks->lookup) { /* closed when the worker is done with the handle (it gives up now) */
        atomic_store(&ks->lookup->cancel, 1);
        ks->close_after_lookup = 1;
    } else {
        close_consumer(ks);
    }
    uv_timer_start(&ks->closer, closer_cb, 0, 5);
}

static void ks_drain(void *state) {
    begin_close(state);
}

static void ks_close(void *state) {
    kserver *ks = state;
    if (ks->closed) return;
    if (!ks->closing) begin_close(ks);
    if (ks->closed) return;
    /* at once: what the producer still holds is dropped, the consumer is not closed gracefully */
    if (ks->prod.rk) rd_kafka_purge(ks->prod.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    uv_timer_stop(&ks->closer);
    if (ks->lookup || ks->close_busy) { /* finished when the worker is done with the consumer handle */
        finish_close(ks);
        return;
    }
    ks->closed = 1;
    drop_records(ks);
    nc_kafka_handle_close(&ks->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    nc_kafka_handle_close(&ks->prod, 0);
    ks->timers_open = 2;
    uv_close((uv_handle_t *)&ks->pump, timer_closed);
    uv_close((uv_handle_t *)&ks->closer, timer_closed);
}

static void ks_destroy(void *state) {
    kserver *ks = state;
    drop_records(ks);
    nc_kafka_handle_close(&ks->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    nc_kafka_handle_close(&ks->prod, 0);
    for (size_t i = 0; i < ks->nroutes; i++) free(ks->routes[i]);
    free(ks->routes);
    for (size_t i = 0; i < ks->nrx; i++) {
        regfree(&ks->rx[i].re);
        free(ks->rx[i].route);
    }
    free(ks->rx);
    for (size_t i = 0; i < ks->nprimed; i++) free(ks->primed[i]);
    free(ks->primed);
    free(ks->dlt);
    drop_records(ks);
    nc_url_free(&ks->url);
    nc_kafka_wire_unregister(ks);
    free(ks);
}

static const char *const schemes[] = {"kafka", NULL};

const nc_server_transport nc_kafka_server_transport = {
    .schemes = schemes,
    .options = nc_kafka_options,
    .supports_workers = 0,
    .reports_connected = 1,
    .create = ks_create,
    .listen = ks_listen,
    .route_added = ks_route_added,
    .stop_accepting = ks_stop_accepting,
    .close = ks_close,
    .destroy = ks_destroy,
    .port = NULL,
    .drain = ks_drain,
    .settle = ks_settle,
};
