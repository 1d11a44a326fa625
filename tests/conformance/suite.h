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
    CONF_RABBIT
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
/* What every URL of the transport ends with ("?queue=..." for RabbitMQ, else ""). */
const char *fx_url_params(void);
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
