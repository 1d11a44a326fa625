/* The kafka:// option table, the librdkafka configuration built from it, and the wake-up pipe that brings
 * a handle's events to the loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nestc/error.h"
#include "transport/kafka/kafka.h"

static const char *const compressions[] = {"none", "gzip", "snappy", "lz4", "zstd", NULL};
/* KafkaJS's sasl.mechanism names (client.sasl) that librdkafka speaks without a callback of nestc's */
static const char *const sasl_mechanisms[] = {"none", "plain", "scram-sha-256", "scram-sha-512", NULL};

/* NestJS KafkaOptions names: client.clientId, consumer.groupId/sessionTimeout/heartbeatInterval,
 * subscribe.fromBeginning, send.acks/compression, postfixId, producerOnlyMode; everything else of
 * librdkafka as kafka.<property>. */
const nc_option_spec nc_kafka_options[] = {
    {.name = "clientId",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "client id before postfixId (NestJS client.clientId)",
     .def = "nestjs-consumer"},
    {.name = "groupId",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "consumer group before postfixId (NestJS consumer.groupId)",
     .def = "nestjs-group"},
    {.name = "postfixId",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "suffix of the client id and group id (NestJS default: -server on a server, -client on a "
             "client)",
     .def = NULL},
    {.name = "sessionTimeout",
     .type = NC_OPT_DURATION,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "consumer group session timeout in ms (consumer.sessionTimeout)",
     .def = "30000",
     .min = 1,
     .max = 3600000},
    {.name = "heartbeatInterval",
     .type = NC_OPT_DURATION,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "consumer group heartbeat interval in ms (consumer.heartbeatInterval)",
     .def = "3000",
     .min = 1,
     .max = 3600000},
    {.name = "fromBeginning",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "a group without committed offsets starts at the earliest record, else at the end "
             "(subscribe.fromBeginning)",
     .def = "false"},
    {.name = "acks",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "produce acknowledgements: -1 all in-sync replicas, 0 none, 1 the leader (send.acks)",
     .def = "-1",
     .min = -1,
     .max = 1},
    {.name = "compression",
     .type = NC_OPT_ENUM,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "produce compression (send.compression)",
     .def = "none",
     .choices = compressions},
    {.name = "producerOnlyMode",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_CLIENT,
     .help = "no reply consumer: events only, requests fail (NestJS producerOnlyMode)",
     .def = "false"},
    {.name = "deadLetterTopic",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER,
     .help = "server: a record rejected, or failed maxAttempts times, is produced to this topic (key, "
             "value and headers kept) and its offset committed; empty: such a record is skipped",
     .def = ""},
    {.name = "maxAttempts",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help = "server: deliveries of a record settled with requeue before it goes to deadLetterTopic (0 = "
             "redeliver without limit)",
     .def = "0",
     .min = 0,
     .max = 1000000},
    /* nestc's: delivery order within a partition (NestJS has no such option: one record at a time) */
    {.name = "partitionConcurrency",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help = "server: records of one partition handled at once (1 = in order: the next is dispatched when "
             "the previous event is settled, or the previous request has replied or is settled)",
     .def = "1",
     .min = 1,
     .max = 1000},
    /* KafkaJS's consumer.run autoCommitInterval / autoCommitThreshold. Left unset there (NestJS's default),
     * KafkaJS commits after each fetched batch is handled; nestc commits the stored offsets in the
     * background (librdkafka's auto.commit.interval.ms, 5 s by default) every autoCommitInterval instead,
     * which sends nothing while no offset moved */
    {.name = "autoCommitInterval",
     .type = NC_OPT_DURATION,
     .levels = NC_OPT_SERVER,
     .help = "server: the settled records' offsets are committed this often in ms (run.autoCommitInterval; "
             "KafkaJS's default commits after each batch)",
     .def = "100",
     .min = 10,
     .max = 86400000},
    {.name = "autoCommitThreshold",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER,
     .help = "server: also commit as soon as this many records were settled since the last commit "
             "(run.autoCommitThreshold; 0 = no threshold)",
     .def = "0",
     .min = 0,
     .max = 1000000},
    /* NestJS client.ssl and client.sasl (KafkaJS); the certificates come from nc_tls_opts (see nc_kafka_conf)
     */
    {.name = "ssl",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "TLS to the brokers, verified against the system CA store (client.ssl: true); on too when TLS "
             "options (CA, certificate, key) are given",
     .def = "false"},
    {.name = "saslMechanism",
     .type = NC_OPT_ENUM,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "SASL authentication to the brokers (client.sasl.mechanism): none, plain, scram-sha-256, "
             "scram-sha-512",
     .def = "none",
     .choices = sasl_mechanisms},
    {.name = "saslUsername",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "SASL user name (client.sasl.username)",
     .def = NULL},
    {.name = "saslPassword",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "SASL password (client.sasl.password)",
     .def = NULL},
    /* NestJS's parser.keepBinary (KafkaParser): record values are not decoded */
    {.name = "keepBinary",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "hand record values over as the bytes received, a Buffer as JSON.stringify shows one "
             "({\"type\":\"Buffer\",\"data\":[...]}): a server's request and event data, a client's reply "
             "values (parser.keepBinary)",
     .def = "false"},
    {.name = "kafka.",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "kafka.<property>=value: any librdkafka property, passed through (SASL, SSL, timeouts, …)",
     .def = NULL},
    {0},
};

int nc_kafka_topic_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > 249 || !strcmp(name, ".") || !strcmp(name, "..")) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

char *nc_kafka_reply_topic(const char *route) {
    size_t n = strlen(route);
    char *t = malloc(n + sizeof ".reply");
    if (!t) return NULL;
    memcpy(t, route, n);
    memcpy(t + n, ".reply", sizeof ".reply");
    return t;
}

void nc_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const nc_logger *lg = rd_kafka_opaque(rk) ? *(const nc_logger *const *)rd_kafka_opaque(rk) : NULL;
    if (!lg) return;
    nc_log_level lv = level <= 3 ? NC_LOG_ERROR : level == 4 ? NC_LOG_WARN : NC_LOG_DEBUG;
    nc_logf(lg, lv, "Kafka", "%s: %s", fac, buf);
}

/* The largest record value nestc produces and fetches: the default max_buffer_size of the other
 * transports (128 MiB); a fetch response carries it plus the protocol overhead. */
#define NC_KAFKA_MAX_MESSAGE "134217728"
#define NC_KAFKA_MAX_RECEIVE "135266304"

/* The partition of a record without an explicit one, as KafkaJS's DefaultPartitioner chooses it: a key's
 * murmur2 hash (Java's and KafkaJS's, so a key lands where a NestJS producer puts it), records without a key
 * round-robin from a random start. librdkafka's default instead keeps unkeyed records on one partition for
 * a while (sticky partitioning): concurrent requests then queue behind each other at a NestJS server, which
 * handles one record of a partition at a time until its first reply value. Called from librdkafka's
 * threads: the counter is atomic. */
static _Atomic unsigned rr_next;

static int32_t partition_cb(const rd_kafka_topic_t *rkt, const void *key, size_t keylen, int32_t cnt,
                            void *rkt_opaque, void *msg_opaque) {
    if (key) return rd_kafka_msg_partitioner_murmur2(rkt, key, keylen, cnt, rkt_opaque, msg_opaque);
    (void)rkt, (void)rkt_opaque, (void)msg_opaque;
    return (int32_t)(atomic_fetch_add(&rr_next, 1u) % (unsigned)cnt);
}

static int user_sets(const nc_optset *opts, const char *name) {
    for (const nc_optset *s = opts; s; s = s->parent)
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(nc_optval_name(&s->v[i]), name) == 0) return 1;
    return 0;
}

static int set(rd_kafka_conf_t *c, const char *k, const char *v, char *err, size_t errlen) {
    char e[256];
    if (rd_kafka_conf_set(c, k, v, e, sizeof e) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka option %s=%s: %s", k, v, e);
        return -1;
    }
    return 0;
}

/* The broker list: the URL's host list, else host:port (port 9092 by default). */
static int brokers(const nc_url *url, char *out, size_t len) {
    if (url->hosts) return snprintf(out, len, "%s", url->hosts) >= (int)len ? -1 : 0;
    const char *h = url->host && *url->host ? url->host : "localhost";
    int port = url->port > 0 ? url->port : 9092;
    int n = strchr(h, ':') ? snprintf(out, len, "[%s]:%d", h, port) : snprintf(out, len, "%s:%d", h, port);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* client.ssl and client.sasl as librdkafka properties: security.protocol from whether TLS and SASL are on,
 * nc_tls_opts' files as ssl.* locations, KafkaJS's mechanism names in librdkafka's spelling. */
static int security(rd_kafka_conf_t *c, const nc_optset *opts, const nc_tls_opts *tls, char *err,
                    size_t errlen) {
    const char *mech = nc_opts_str(opts, "saslMechanism");
    int sasl = mech && *mech && strcmp(mech, "none");
    int ssl = nc_opts_bool(opts, "ssl") || tls;
    if (ssl || sasl) {
        const char *proto = ssl && sasl ? "sasl_ssl" : ssl ? "ssl" : "sasl_plaintext";
        if (set(c, "security.protocol", proto, err, errlen)) return -1;
    }
    if (sasl) {
        char up[32];
        size_t i = 0;
        for (; mech[i] && i < sizeof up - 1; i++)
            up[i] = (char)(mech[i] >= 'a' && mech[i] <= 'z' ? mech[i] - 32 : mech[i]);
        up[i] = '\0';
        if (set(c, "sasl.mechanism", up, err, errlen)) return -1;
        const char *user = nc_opts_str(opts, "saslUsername"), *pass = nc_opts_str(opts, "saslPassword");
        if (user && set(c, "sasl.username", user, err, errlen)) return -1;
        if (pass && set(c, "sasl.password", pass, err, errlen)) return -1;
    }
    if (!tls) return 0;
    /* a Kafka server and client are both clients of the brokers: ca_file trusts the brokers' CA, cert_file
     * and key_file are this side's certificate for brokers that ask for one (mutual TLS) */
    if (tls->ca_file && set(c, "ssl.ca.location", tls->ca_file, err, errlen)) return -1;
    if (tls->cert_file && set(c, "ssl.certificate.location", tls->cert_file, err, errlen)) return -1;
    if (tls->key_file && set(c, "ssl.key.location", tls->key_file, err, errlen)) return -1;
    if (tls->insecure_skip_verify) { /* Node's rejectUnauthorized: false: neither the chain nor the name */
        if (set(c, "enable.ssl.certificate.verification", "false", err, errlen)) return -1;
        if (set(c, "ssl.endpoint.identification.algorithm", "none", err, errlen)) return -1;
    } else if (set(c, "ssl.endpoint.identification.algorithm", "https", err, errlen)) { /* as Node checks */
        return -1;
    }
    return 0;
}

rd_kafka_conf_t *nc_kafka_conf(const nc_url *url, const nc_optset *opts, const nc_tls_opts *tls, int kind,
                               const char *side_postfix, char *err, size_t errlen) {
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char buf[1024];
    const char *postfix = nc_opts_str(opts, "postfixId");
    if (!postfix) postfix = side_postfix;
    if (brokers(url, buf, sizeof buf)) {
        snprintf(err, errlen, "broker list too long");
        goto fail;
    }
    if (set(c, "bootstrap.servers", buf, err, errlen)) goto fail;
    snprintf(buf, sizeof buf, "%s%s", nc_opts_str(opts, "clientId"), postfix);
    if (set(c, "client.id", buf, err, errlen)) goto fail;
    /* logs are served with the handle's queue (on the loop), not from librdkafka's threads */
    if (set(c, "log.queue", "true", err, errlen)) goto fail;
    if (kind == NC_KAFKA_CONSUMER) {
        snprintf(buf, sizeof buf, "%s%s", nc_opts_str(opts, "groupId"), postfix);
        if (set(c, "group.id", buf, err, errlen)) goto fail;
        snprintf(buf, sizeof buf, "%lld", nc_opts_int(opts, "sessionTimeout"));
        if (set(c, "session.timeout.ms", buf, err, errlen)) goto fail;
        snprintf(buf, sizeof buf, "%lld", nc_opts_int(opts, "heartbeatInterval"));
        if (set(c, "heartbeat.interval.ms", buf, err, errlen)) goto fail;
        if (set(c, "auto.offset.reset", nc_opts_bool(opts, "fromBeginning") ? "earliest" : "latest", err,
                errlen))
            goto fail;
        /* at-least-once: an offset is stored only once its record was settled (handler and reply stream
         * finished); the stored offsets are committed in the background and on close */
        if (set(c, "enable.auto.offset.store", "false", err, errlen)) goto fail;
        snprintf(buf, sizeof buf, "%lld", nc_opts_int(opts, "autoCommitInterval"));
        if (set(c, "auto.commit.interval.ms", buf, err, errlen)) goto fail;
        /* the group protocol a NestJS member can speak too: KafkaJS's RoundRobinAssigner under librdkafka's
         * name "roundrobin" (docs/kafka.md "Server groups with NestJS members"); the members' first choices
         * must agree (the mock cluster takes the leader's first; brokers vote), so roundrobin leads and
         * range stays for members that offer only librdkafka's or Java's default */
        if (set(c, "partition.assignment.strategy", "roundrobin,range", err, errlen)) goto fail;
        /* the topics of a subscription are created when they do not exist yet, as KafkaJS's consumer does
         * (allowAutoTopicCreation, on by default): librdkafka's consumer leaves them out of the assignment
         * instead and notices them only at its next metadata refresh (5 minutes by default), so a server
         * started before anyone produced to its routes missed their records until then */
        if (set(c, "allow.auto.create.topics", "true", err, errlen)) goto fail;
        /* a record up to the producer's limit below must come through whole (librdkafka's default caps a
         * fetch response at 100 MB; KafkaJS has no client-side cap) */
        if (set(c, "receive.message.max.bytes", NC_KAFKA_MAX_RECEIVE, err, errlen)) goto fail;
    } else {
        /* librdkafka refuses records over 1000000 bytes by default; KafkaJS has no such cap, so what a
         * NestJS peer sends and takes (a 1.5 MB echo) must pass here too: nestc's own message limit */
        if (set(c, "message.max.bytes", NC_KAFKA_MAX_MESSAGE, err, errlen)) goto fail;
        if (!user_sets(opts, "kafka.partitioner")) {
            /* acks and compression.codec above live in the default topic configuration already */
            rd_kafka_topic_conf_t *tc = rd_kafka_conf_get_default_topic_conf(c);
            if (tc) {
                rd_kafka_topic_conf_set_partitioner_cb(tc, partition_cb);
            } else {
                if (!(tc = rd_kafka_topic_conf_new())) {
                    snprintf(err, errlen, "out of memory");
                    goto fail;
                }
                rd_kafka_topic_conf_set_partitioner_cb(tc, partition_cb);
                rd_kafka_conf_set_default_topic_conf(c, tc);
            }
            if (set(c, "sticky.partitioning.linger.ms", "0", err, errlen)) goto fail;
            if (atomic_load(&rr_next) == 0) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                atomic_store(&rr_next, (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 8) ^ 1u);
            }
        }
        snprintf(buf, sizeof buf, "%lld", nc_opts_int(opts, "acks"));
        if (set(c, "acks", buf, err, errlen)) goto fail;
        if (set(c, "compression.codec", nc_opts_str(opts, "compression"), err, errlen)) goto fail;
    }
    if (security(c, opts, tls, err, errlen)) goto fail;
    /* kafka.<property>: verbatim, last (they override what nestc set), from every level of the set */
    for (const nc_optset *s = opts; s; s = s->parent)
        for (size_t i = 0; i < s->n; i++) {
            const char *name = nc_optval_name(&s->v[i]);
            if (strncmp(name, "kafka.", 6) || !name[6]) continue;
            /* a property for the other kind of handle is not an error here: one option list feeds both */
            char e[256];
            rd_kafka_conf_res_t r = rd_kafka_conf_set(c, name + 6, s->v[i].text, e, sizeof e);
            if (r == RD_KAFKA_CONF_INVALID || r == RD_KAFKA_CONF_UNKNOWN) {
                snprintf(err, errlen, "option %s: %s", name, e);
                goto fail;
            }
        }
    rd_kafka_conf_set_log_cb(c, nc_kafka_log_cb);
    return c;
fail:
    rd_kafka_conf_destroy(c);
    return NULL;
}

static void on_readable(nc_poll *p, int status, int events, void *arg) {
    nc_kafka_handle *h = arg;
    (void)p;
    (void)events;
    char drain[256];
    while (read(h->fds[0], drain, sizeof drain) > 0) {
    }
    if (status == 0 && h->on_wake) h->on_wake(h->arg);
}

void nc_kafka_handle_init(nc_kafka_handle *h) {
    memset(h, 0, sizeof *h);
    h->fds[0] = h->fds[1] = -1;
}

int nc_kafka_handle_open(nc_kafka_handle *h, uv_loop_t *loop, rd_kafka_conf_t *conf, int kind,
                         void (*on_wake)(void *arg), void *arg, char *err, size_t errlen) {
    nc_kafka_handle_init(h);
    h->on_wake = on_wake;
    h->arg = arg;
    if (pipe(h->fds)) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return NC_EIO;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(h->fds[i], F_SETFL, fcntl(h->fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(h->fds[i], F_SETFD, FD_CLOEXEC);
    }
    char e[512];
    h->rk =
        rd_kafka_new(kind == NC_KAFKA_CONSUMER ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!h->rk) { /* conf is still ours on failure */
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "%s", e);
        nc_kafka_handle_close(h, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return NC_EINVAL;
    }
    if (kind == NC_KAFKA_CONSUMER) {
        rd_kafka_poll_set_consumer(h->rk);
        h->q = rd_kafka_queue_get_consumer(h->rk);
    } else {
        h->q = rd_kafka_queue_get_main(h->rk);
    }
    rd_kafka_set_log_queue(h->rk, NULL); /* the main queue, forwarded to the consumer queue */
    if (!h->q || nc_poll_new(&h->poll, loop, h->fds[0], on_readable, h) ||
        nc_poll_want(h->poll, UV_READABLE)) {
        snprintf(err, errlen, "cannot watch the librdkafka queue");
        nc_kafka_handle_close(h, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return NC_EIO;
    }
    rd_kafka_queue_io_event_enable(h->q, h->fds[1], "1", 1);
    /* librdkafka writes the wake-up byte only when the queue goes from empty to one event; what rd_kafka_new
     * already queued (its logs: a CONFWARN for a consumer-only kafka.<property> on a producer, kafka.debug
     * output) would keep it from ever doing so, and the loop would never serve the handle (delivery reports,
     * rebalances): serve it once now */
    if (write(h->fds[1], "1", 1) < 0) { /* the pipe is empty and non-blocking: cannot fail */
    }
    return 0;
}

void nc_kafka_handle_close(nc_kafka_handle *h, int destroy_flags) {
    if (h->poll) nc_poll_free(h->poll);
    h->poll = NULL;
    if (h->q) {
        rd_kafka_queue_io_event_enable(h->q, -1, NULL, 0);
        rd_kafka_queue_destroy(h->q);
    }
    h->q = NULL;
    if (h->rk) rd_kafka_destroy_flags(h->rk, destroy_flags);
    h->rk = NULL;
    for (int i = 0; i < 2; i++)
        if (h->fds[i] >= 0) close(h->fds[i]);
    h->fds[0] = h->fds[1] = -1;
}

size_t nc_kafka_record_headers(rd_kafka_message_t *msg, nc_header *out, size_t cap) {
    rd_kafka_headers_t *rh = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(msg, &rh) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    const char *name;
    const void *val;
    size_t size;
    while (n < cap && rd_kafka_header_get_all(rh, n, &name, &val, &size) == 0) {
        out[n] = (nc_header){name, strlen(name), val ? val : "", size};
        n++;
    }
    return n;
}

const nc_header *nc_kafka_find_header(const nc_header *h, size_t n, const char *name) {
    const nc_header *found = NULL;
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (h[i].name_len == len && !memcmp(h[i].name, name, len)) found = &h[i];
    return found;
}

int nc_kafka_buffer_json(const void *p, size_t n, nc_buf *out) {
    static const char head[] = "{\"type\":\"Buffer\",\"data\":[";
    if (nc_buf_reserve(out, sizeof head + n * 4 + 2)) return NC_ENOMEM;
    memcpy(out->data + out->len, head, sizeof head - 1);
    out->len += sizeof head - 1;
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (i) out->data[out->len++] = ',';
        unsigned v = b[i];
        if (v >= 100) out->data[out->len++] = (char)('0' + v / 100);
        if (v >= 10) out->data[out->len++] = (char)('0' + v / 10 % 10);
        out->data[out->len++] = (char)('0' + v % 10);
    }
    out->data[out->len++] = ']';
    out->data[out->len++] = '}';
    return 0;
}
