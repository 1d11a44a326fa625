/* The transport conformance suite: every case is written once against a "transport fixture" and runs
 * on every transport of the table in transports.c (one line each; CMake registers one ctest test per
 * line, conformance.<name>). A case gets a real nc_server and nc_client on one loop, against a real
 * broker where the transport has one (started by this program on a free loopback port, stopped and
 * restarted by PID). What differs between transports is said by the fixture's flags, never by the
 * transport's name. */
#ifndef NESTC_CONFORMANCE_SUITE_H
#define NESTC_CONFORMANCE_SUITE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <uv.h>

#include "../common/broker.h" /* the broker process: kind is a conf_broker_kind */
#include "nestc/nestc.h"

typedef enum conf_broker_kind {
    CONF_NO_BROKER,
    CONF_REDIS,
    CONF_NATS,
    CONF_MQTT,
    CONF_RABBIT,
    CONF_KAFKA /* librdkafka's mock cluster (tests/kafka/kafka-mock): three brokers, ephemeral ports */
} conf_broker_kind;

/* What a transport does where transports legitimately differ. */
enum {
    CONF_TLS = 1 << 0,       /* TLS towards the peer (server and broker), with test certificates */
    CONF_HEADERS = 1 << 1,   /* call headers reach nc_msg_headers (NATS message headers) */
    CONF_CONNECTED = 1 << 2, /* the caller holds a connection to the server (tcp, tls): the server sees
                              * unknown patterns and learns when the caller is gone */
    /* a request nobody subscribed to: */
    CONF_NO_RESPONDERS = 1 << 3, /* fails at once with NC_ENOHANDLER (NATS no-responders status) */
    /* (neither CONF_CONNECTED nor CONF_NO_RESPONDERS: nobody receives it, the call times out (Redis)) */
    CONF_SUBJECT_CTX = 1 << 4, /* fills NC_CTX_SUBJECT (and NC_CTX_REPLY_TO for requests) */
    /* settles deliveries at the broker (RabbitMQ, Kafka ...): a requeued message is delivered again.
     * Without it, settling calls succeed and do nothing (TCP, TLS, Redis pub/sub, core NATS). */
    CONF_SETTLES = 1 << 5,
    /* a request nobody subscribed to is lost and the call times out (MQTT: a broker does not say that
     * nobody received a PUBLISH; NestJS's client waits as well) */
    CONF_UNKNOWN_TIMES_OUT = 1 << 6,
    /* a delivery's channel (nc_msg_channel) is the queue it came from, not the pattern (RabbitMQ: every
     * pattern goes to the server's one queue; the routing key is the queue's name) */
    CONF_CHANNEL_IS_QUEUE = 1 << 7,
    /* the server receives messages for patterns it does not know, as on a connection: a request gets its
     * no-handler reply, an event is logged once (RabbitMQ: every pattern reaches the server's queue) */
    CONF_SERVER_SEES_UNKNOWN = 1 << 8,
    /* servers of one address share its deliveries (a work queue): an event reaches one of them, not each
     * (RabbitMQ: two consumers of one queue) */
    CONF_WORK_QUEUE = 1 << 9,
    /* a request pending when the broker goes fails at once with NC_ECONNLOST (RabbitMQ: its reply would come
     * on the direct reply-to pseudo-queue, which ends with the connection) */
    CONF_PENDING_LOST = 1 << 10,
    /* headers travel as a table (a map), not a list: a name given twice keeps its last value, at its first
     * place (RabbitMQ's AMQP headers table) */
    CONF_HEADER_TABLE = 1 << 11,
    /* fills NC_CTX_REPLY_TO for requests (where the reply goes) but not NC_CTX_SUBJECT (RabbitMQ: the
     * reply-to property, e.g. amq.rabbitmq.reply-to.<opaque>) */
    CONF_REPLY_TO_CTX = 1 << 12,
};

/* Where Kafka differs (its records, topics and consumer groups): */
enum {
    /* routes are topic names: an object pattern (`{"cmd":"sum"}`) or a non-ASCII one cannot be one, so
     * those calls use plain routes instead */
    CONF_TOPIC_ROUTES = 1 << 13,
    /* scalar data and replies arrive as text (Kafka: numbers and booleans are sent as their string form and
     * only text starting with { or [ is parsed back): 5 arrives as "5" */
    CONF_SCALARS_AS_TEXT = 1 << 14,
    /* a server's first readiness costs seconds (Kafka: joining a consumer group, 3 s in the mock cluster):
     * one server (and its client) serves consecutive cases, which reset its counters, instead of one each */
    CONF_SHARED_SERVER = 1 << 15,
    /* a reply stream's end that follows its last value by a loop turn or more, and a reply without a
     * value, arrive as a final null value (Kafka: the terminal-only record has a null value, which the NestJS
     * client emits as null too) */
    CONF_END_AS_NULL = 1 << 16,
    /* a delivery's context fills NC_CTX_PARTITION (Kafka) */
    CONF_PARTITION_CTX = 1 << 17,
    /* a delivery's context fills NC_CTX_REDELIVERED (RabbitMQ's redelivered flag) */
    CONF_REDELIVERED_CTX = 1 << 18,
    /* the broker has no passwords here (the mock cluster has no SASL): the credentials case is skipped */
    CONF_NO_BROKER_AUTH = 1 << 19,
    /* call metadata (nc_call_opts.metadata) is not carried: the handler sees none (Kafka: a record has no
     * place for it, and NestJS's Kafka client sends none) */
    CONF_NO_METADATA = 1 << 20,
    /* the handler's headers (and the call's reply headers) also hold the transport's own, named with the
     * prefix fx_transport_header_prefix() gives (Kafka: kafka_correlationId, kafka_replyTopic, ...) */
    CONF_TRANSPORT_HEADERS = 1 << 21,
    /* while its brokers are down the client reports no status and fails no call: the records wait in
     * librdkafka's queue and go once the brokers are back (Kafka) */
    CONF_QUEUES_WHILE_DOWN = 1 << 22,
    /* a known issue, not a difference: the shutdown case uses its route once before (Kafka: a server's
     * first reply to a route, given while the server closes, is lost; docs/kafka.md "Not done yet") */
    CONF_WARM_ROUTES = 1 << 23,
};

/* Where gRPC differs (typed methods, statuses, no events): */
enum {
    /* patterns are methods and data travels in typed messages (gRPC): a pattern is a method of suite.proto's
     * service (fx_route), data and reply values are JSON text in its Json message (fx_wrap / fx_unwrap) */
    CONF_TYPED_MESSAGES = 1 << 24,
    /* no events (gRPC): emitting is refused (NC_EUNSUPPORTED); the event cases are skipped */
    CONF_NO_EVENTS = 1 << 25,
    /* an error value arrives as the status, {"code":N,"details":"..."} (gRPC, grpc-js's ServiceError):
     * code 2 UNKNOWN with the value's message (or the string itself, or a scalar's JSON text) */
    CONF_STATUS_ERRORS = 1 << 26,
    /* the caller's deadline cancels the server's request (gRPC: the client resets the stream at its
     * timeout, so the handler's cancel callback runs; NestJS's gRPC server cancels as well) */
    CONF_TIMEOUT_CANCELS = 1 << 27,
    /* the call object takes request messages only on methods with a request stream: nc_call_write on a
     * call whose request was the whole stream is NC_ESTATE, not NC_EUNSUPPORTED (gRPC) */
    CONF_WRITE_STATE = 1 << 28,
};

typedef struct conf_transport {
    const char *name;   /* the ctest suffix: conformance.<name> */
    const char *scheme; /* the URL scheme */
    conf_broker_kind broker;
    unsigned flags;
} conf_transport;

/* The fixture: what a case needs to make servers and clients of the transport under test. */
typedef struct conf_fx {
    const conf_transport *t;
    broker broker;  /* the broker process, when the transport has one */
    char certs[64]; /* a directory with gen-certs.sh's certificates (TLS transports), else "" */
    char cert[128], key[128], ca[128];
    nc_tls_opts server_tls, client_tls;
    char queue[64];     /* the queue of this run (brokers with queues: the URL's queue parameter), else "" */
    char external[200]; /* a shared broker's URL (NESTC_RMQ_URL / NESTC_RMQS_URL): nothing started here */
} conf_fx;

extern conf_fx FX;
extern uv_loop_t loop;

/* ---- harness.c -------------------------------------------------------------------------------------- */

/* NESTC_TEST_TIMEOUT_FACTOR (default 1): every time limit below is multiplied by it. */
int time_factor(void);
/* Runs the loop until *flag >= want or ms × the time factor passed; returns whether it got there. */
int run_until(const int *flag, int want, int ms);
/* Milliseconds on the loop's clock (updated). */
uint64_t now_ms(void);

int fx_setup(const conf_transport *t);
/* Returns nonzero when the loop still had handles (a leak). */
int fx_teardown(void);
/* (Re)starts FX's broker on its port; returns once it accepts connections. broker_stop() stops it. */
void fx_broker_start(void);
/* Whether FX's broker is a shared one (not started here: it cannot be restarted nor given a password). */
int fx_broker_external(void);
/* What every URL of the transport ends with ("?queue=..." for RabbitMQ, "?groupId=...&fromBeginning=true"
 * for Kafka, else ""). */
const char *fx_url_params(void);
/* Which servers the next fx_server_new / fx_client_new serve and call (the URL parameters above):
 * FX_MAIN the run's (RabbitMQ: the run's queue; Kafka: the run's consumer group); FX_OTHER_GROUP a second
 * server that is not a member of the first's group (Kafka: a consumer group of its own, so it sees every
 * event; elsewhere as FX_MAIN); FX_SETTLING servers that settle at the broker and their clients, on a
 * destination of their own (RabbitMQ: the run's queue + "_settle", a quorum queue, noAck=false; Kafka: a
 * consumer group of its own). */
typedef enum fx_variant { FX_MAIN, FX_OTHER_GROUP, FX_SETTLING } fx_variant;
void fx_use(fx_variant v);
/* Makes a route ready before a server subscribes to it (Kafka: creates its topic, 4 partitions, so that a
 * server's first group join assigns it: topics that the subscription itself creates are assigned only by a
 * second rebalance, seconds after the server reported "connected"). Nothing elsewhere. */
void fx_route_ready(const char *route);
/* Stops the broker (by PID; Kafka: takes every broker of the cluster down, since the mock cannot restart
 * on its ports) and whether it runs; fx_broker_start() starts it again (Kafka: brings them up). */
void fx_broker_stop(void);
int fx_broker_running(void);
/* The prefix of the transport's own header names (CONF_TRANSPORT_HEADERS), else "". */
const char *fx_transport_header_prefix(void);
/* Typed messages (CONF_TYPED_MESSAGES; elsewhere the identity): the method a pattern is (server: the
 * handler's key, client: the call's path; a static buffer, valid until the next call), data as the message
 * (steals v; NULL stays NULL: no data) and back (a new reference). */
const char *fx_route(const char *pattern, int server);
json_t *fx_wrap(json_t *v);
json_t *fx_unwrap(const json_t *m);
/* What the broker says to a wrong password (in the failed call's error). */
const char *fx_broker_auth_words(void);

/* A server for the transport under test (on `loop`, logging to log/log_user when given), not yet
 * listening; and its client URL once it listens. */
nc_server *fx_server_new(nc_log_fn log, void *log_user, int shutdown_timeout_ms);
void fx_client_url(nc_server *srv, char *url, size_t n);
nc_client *fx_client_new(nc_server *srv, int retry_attempts, const json_t *headers);

/* ---- suite.c ---------------------------------------------------------------------------------------- */

/* Runs every case on FX's transport; returns the number of failures. */
int conf_run(void);

#endif
