/* The Kafka transport (kafka://host:port[,host:port]…, spec kafka.md) over librdkafka: ops tables, the
 * option table, and one librdkafka handle whose events reach the nestc loop. Private.
 *
 * Loop integration: librdkafka runs its own threads. Each handle's event queue (the main queue of a
 * producer, the consumer queue of a consumer, with logs forwarded to it) is told to write a byte into a
 * pipe when it becomes non-empty (rd_kafka_queue_io_event_enable); the loop watches the pipe's read end
 * and, when readable, serves the queue with a zero timeout. Delivery reports, rebalances, errors, logs and
 * messages are therefore all handled on the loop thread: librdkafka's threads never run nestc or user
 * code. */
#ifndef NC_TRANSPORT_KAFKA_H
#define NC_TRANSPORT_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "core/log.h"
#include "core/options.h"
#include "core/url.h"
#include "io/post.h"
#include "io/wire.h"
#include "nestc/tls.h"
#include "util/buf.h"
#include "transport/transport.h"

extern const nc_server_transport nc_kafka_server_transport;
extern const nc_client_transport nc_kafka_client_transport;

/* The options of kafka:// (NestJS KafkaOptions names, flattened), shared by server and client. */
extern const nc_option_spec nc_kafka_options[];

/* One librdkafka handle and its wake-up pipe on the loop. */
typedef struct nc_kafka_handle {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q; /* the queue served on wake-up */
    int fds[2];          /* the pipe librdkafka writes to; fds[0] watched */
    nc_poll *poll;
    void (*on_wake)(void *arg); /* serve the queue (loop thread) */
    void *arg;
} nc_kafka_handle;

/* Which handle a configuration is for. */
enum { NC_KAFKA_PRODUCER = 0, NC_KAFKA_CONSUMER = 1 };

/* Builds a librdkafka configuration from the URL and the options: bootstrap.servers, client.id and
 * group.id (with postfixId: "-server" or "-client" by default), the session, heartbeat, offset reset,
 * acks and compression options, TLS and SASL (the ssl and sasl* options, tls: the nc_tls_opts of the
 * server or client, or NULL), then every kafka.<property> option verbatim. side_postfix: "-server" or
 * "-client". Logs go through the handle's queue (served on the loop). Returns NULL with the reason in
 * err. */
rd_kafka_conf_t *nc_kafka_conf(const nc_url *url, const nc_optset *opts, const nc_tls_opts *tls, int kind,
                               const char *side_postfix, char *err, size_t errlen);

/* A handle that is not open (no pipe: fds -1); nc_kafka_handle_close is a no-op on it. */
void nc_kafka_handle_init(nc_kafka_handle *h);

/* Creates the handle (conf is consumed, also on failure) and starts watching its queue on loop; on_wake
 * runs on the loop whenever the queue may hold events. A consumer's main queue is forwarded to its
 * consumer queue (rd_kafka_poll_set_consumer). Returns 0 or an nc_err with the reason in err. */
int nc_kafka_handle_open(nc_kafka_handle *h, uv_loop_t *loop, rd_kafka_conf_t *conf, int kind,
                         void (*on_wake)(void *arg), void *arg, char *err, size_t errlen);
/* Stops watching and destroys the librdkafka handle (its threads are joined: no callback runs after);
 * destroy_flags as rd_kafka_destroy_flags (RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE: no blocking group
 * leave). Safe on a zeroed, half-opened or closed handle. */
void nc_kafka_handle_close(nc_kafka_handle *h, int destroy_flags);

/* librdkafka's log callback, delivered on the loop through the handle's queue: opaque is the logger. */
void nc_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* 1 when name is a legal Kafka topic name (1-249 of [a-zA-Z0-9._-], not "." or ".."). */
int nc_kafka_topic_ok(const char *name);

/* The most record headers read from one record; more are ignored. */
#define NC_KAFKA_MAX_HEADERS 64
/* A record's headers as an nc_header list (spans into the record, valid while it lives), at most cap.
 * Returns the count. */
size_t nc_kafka_record_headers(rd_kafka_message_t *msg, nc_header *out, size_t cap);
/* The last header called name (KafkaJS keeps the last of repeated names), or NULL. */
const nc_header *nc_kafka_find_header(const nc_header *h, size_t n, const char *name);

/* Appends bytes as JSON.stringify shows a Buffer, {"type":"Buffer","data":[1,2,…]} (keepBinary). Returns 0
 * or NC_ENOMEM. */
int nc_kafka_buffer_json(const void *p, size_t n, nc_buf *out);

/* The reply topic of a route (malloc'd), NULL when out of memory. */
char *nc_kafka_reply_topic(const char *route);

/* ---- connections and wire bytes of librdkafka's sockets (kafka_wire.c) ---- */
/* Sets the conf's connect and close-socket callbacks, which count the sockets of the handle for the owner
 * that registered the conf's opaque (nc_kafka_wire_register); any other opaque: not counted. */
void nc_kafka_wire_conf(rd_kafka_conf_t *c);
/* Counts the sockets of handles whose opaque is `owner` into b (the server's or client's block, io/wire.h;
 * borrowed, it outlives the owner). Returns 0 or NC_ENOMEM. */
int nc_kafka_wire_register(const void *owner, nc_wire_block *b);
/* Stops counting for `owner` (its figures stay in the block). A handle that outlives its owner (a Kafka
 * client's consumer a look-up thread still holds) is not counted from then on, and its callbacks never
 * reach the owner's memory: the owner is only a key. */
void nc_kafka_wire_unregister(const void *owner);

#endif
