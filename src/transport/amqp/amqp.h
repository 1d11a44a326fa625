/* The RabbitMQ transport (amqp://, amqps://, spec rmq.md, default mode): ops tables, the connection settings
 * read from the URL and options, and one AMQP 0-9-1 connection with one channel on nestc's own stream (the
 * sans-I/O codec of codec/amqp_proto.h). Private. */
#ifndef NC_TRANSPORT_AMQP_H
#define NC_TRANSPORT_AMQP_H

#include "codec/amqp_proto.h"
#include "core/log.h"
#include "core/options.h"
#include "core/url.h"
#include "io/dial.h"
#include "nestc/tls.h"
#include "transport/common/broker_target.h"
#include "transport/transport.h"

extern const nc_server_transport nc_amqp_server_transport;
extern const nc_client_transport nc_amqp_client_transport;

/* The options of amqp:// and amqps:// (NestJS RmqOptions names, queueOptions flattened), shared by the
 * server and client tables. */
extern const nc_option_spec nc_amqp_options[];

/* The channel every connection opens and uses. */
#define NC_AMQP_CHANNEL 1
/* The direct reply-to pseudo-queue (RabbitMQ). */
#define NC_AMQP_REPLY_TO "amq.rabbitmq.reply-to"

/* Where and how to connect, and the topology; owned by the transport, outlives its connections. */
typedef struct nc_amqp_target {
    nc_broker_target b; /* b.user / b.password: PLAIN credentials (guest/guest by default) */
    char *vhost;        /* decoded from the URL's path; "/" by default */
    char *queue;        /* the work queue ("" = server-named on a server) */
    int durable, exclusive, auto_delete, no_assert;
    int prefetch_count, global_prefetch;
    int no_ack;
    char *consumer_tag; /* NULL = the broker's */
    char *reply_queue;  /* client: NC_AMQP_REPLY_TO or a real queue */
    int persistent;
    int wildcards;       /* topic exchange mode (spec rmq.md §2.2) */
    char *exchange;      /* with wildcards: the exchange (default the queue's name) */
    char *exchange_type; /* with wildcards: "topic" by default */
    char *routing_key;   /* server, with wildcards: one more binding key; NULL = none */
    int heartbeat_s;     /* asked for; the connection uses what Tune negotiated */
    uint32_t frame_max;
    int max_attempts; /* maxConnectionAttempts, -1 = unlimited */
    /* Several brokers (amqp://u:p@h1:5672,h2:5673/vh): tried in turn, each connection to the next one,
     * round robin as amqp-connection-manager; b.host/b.port name the one of the latest connection. */
    char **hosts; /* NULL with one broker */
    int *ports;
    int nhosts, next_host;
    int round_failed; /* client: attempts of its first connection that failed (a round tries each once) */
    int own_name;     /* no TLS server_name given: verify each broker's own host name */
    int external;     /* authMechanism=EXTERNAL: SASL EXTERNAL, the TLS client certificate names the user */
    /* topology options (amqplib's assertQueue / assertExchange arguments) */
    json_t *queue_args;    /* queue.declare's arguments table, as amqplib builds it; NULL = empty */
    json_t *exchange_args; /* exchange.declare's (exchangeArguments); NULL = empty */
    int exchange_given;    /* `exchange` was set: a server declares it and binds (NestJS) */
    int fanout;            /* exchangeType fanout (spec rmq.md §2.3) */
    int max_deliveries;    /* server: maxDeliveries, 0 = no limit */
} nc_amqp_target;

/* Fills t from amqp[s]://[user[:pass]@]host[:port][,host[:port]...][/vhost] (port 5672, amqps 5671; %xx
 * decoded in the vhost) and the options. Returns 0 or an nc_err (logged). */
int nc_amqp_target_init(nc_amqp_target *t, const nc_url *url, const nc_optset *opts, const nc_tls_opts *tls,
                        const nc_logger *log, const char *component);
void nc_amqp_target_free(nc_amqp_target *t);
/* With several brokers: makes b.host/b.port the next broker's (for the owner's log lines); returns its
 * place in the list (0 with one broker). Each nc_amqp_conn_new calls it. */
int nc_amqp_target_next(nc_amqp_target *t);

/* ---- one connection ---- */

typedef struct nc_amqp_conn nc_amqp_conn;

typedef struct nc_amqp_conn_cbs {
    /* The connection, its channel (and confirm mode when asked) are open. */
    void (*on_ready)(nc_amqp_conn *c);
    /* A method or message on the channel after on_ready, and connection.blocked/unblocked. */
    void (*on_event)(nc_amqp_conn *c, const nc_amqp_event *ev);
    /* Failed or closed (err 0 = on request). Once; the object frees itself afterwards. */
    void (*on_end)(nc_amqp_conn *c, int err, const char *msg);
} nc_amqp_conn_cbs;

struct nc_amqp_conn {
    nc_dial d; /* first: the connection attempt, the stream and the handles' life */
    nc_amqp_target *t;
    const nc_amqp_conn_cbs *cbs;
    const nc_logger *log;
    const char *component;
    void *owner;
    nc_amqp_parser parser;
    const char *host; /* the broker of this connection (a string of the target's) */
    int port, host_index;
    int state;
    int confirm;        /* put the channel in publisher-confirm mode */
    uint32_t frame_max; /* negotiated */
    int heartbeat_s;    /* negotiated, 0 = none */
    uint64_t last_in, last_out;
    uint64_t pub_seq; /* publishes on the channel so far (publisher-confirm delivery tags) */
    nc_buf out;
};

nc_amqp_conn *nc_amqp_conn_new(nc_ioctx *io, nc_amqp_target *t, int delay_ms, int confirm,
                               const nc_amqp_conn_cbs *cbs, const nc_logger *log, const char *component,
                               void *owner);
int nc_amqp_conn_ready(const nc_amqp_conn *c);
/* A method on the channel (m->channel is set here). Returns 0, NC_ECLOSED, NC_ESTALLED (max_queue bytes
 * waiting; never for acknowledgements) or a writer error. */
int nc_amqp_conn_method(nc_amqp_conn *c, nc_amqp_method *m);
/* basic.publish on the channel; *seq (may be NULL) gets its publisher-confirm delivery tag. */
int nc_amqp_conn_publish(nc_amqp_conn *c, const char *exchange, const char *routing_key,
                         const nc_amqp_props *props, const char *body, size_t len, uint64_t *seq);
/* graceful: connection.close, then the stream ends on close-ok (or a short while after). on_end(0)
 * follows. */
void nc_amqp_conn_close(nc_amqp_conn *c, int graceful);

/* A connection that ended after at least this long since it was ready starts the reconnect policy over;
 * one that ended sooner counts as a failed attempt (a queue declared with other arguments must not make
 * a reconnect loop). */
#define NC_AMQP_HEALTHY_MS 5000

/* Headers (a JSON object from a field table) as an nc_header list: strings raw, other values as JSON
 * text in `store` (freed by the caller with free). Returns the count (at most cap). */
size_t nc_amqp_headers(const json_t *obj, nc_header *out, size_t cap, char **store);

#endif
