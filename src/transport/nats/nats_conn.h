/* One NATS connection on nestc's own stream: INFO, the TLS upgrade NATS does after it, CONNECT (headers and
 * no_responders on, as nats.js), the PING/PONG that confirms the handshake, server PINGs answered, and the
 * sans-I/O parser (codec/nats_proto.h) for everything that arrives. Commands written before the handshake
 * is done are queued. Reconnecting is the owner's job: one object per connection. Private. */
#ifndef NC_NATS_CONN_H
#define NC_NATS_CONN_H

#include "codec/nats_proto.h"
#include "core/log.h"
#include "io/dial.h"
#include "transport/common/broker_target.h"

typedef struct nc_nats_conn nc_nats_conn;

/* Where and how to connect; owned by the transport, outlives its connections. */
typedef struct nc_nats_target {
    /* b.user and b.password: CONNECT's user and pass; b.ssl: TLS options given (or built on demand when
     * the server requires TLS) */
    nc_broker_target b;
    char *token, *name;
    int tls_required; /* the client insists on TLS (?tls=true or TLS options) */
    size_t max_msg;   /* largest message we accept (0 = the server's max_payload) */
} nc_nats_target;

typedef struct nc_nats_conn_cbs {
    void (*on_ready)(nc_nats_conn *c);
    /* MSG / HMSG (NC_NATS_MSG), the PONG of nc_nats_conn_ping (NC_NATS_PONG), or -ERR after the handshake
     * (NC_NATS_ERR). */
    void (*on_op)(nc_nats_conn *c, const nc_nats_op *op);
    /* Failed or closed (err 0 = on request). Once; the object frees itself afterwards. */
    void (*on_end)(nc_nats_conn *c, int err, const char *msg);
} nc_nats_conn_cbs;

struct nc_nats_conn {
    nc_dial d; /* first: the connection attempt, the stream and the handles' life */
    nc_nats_target *t;
    const nc_nats_conn_cbs *cbs;
    const nc_logger *log;
    const char *component;
    void *owner;
    nc_nats_parser parser;
    int state;
    size_t server_max_payload; /* from INFO */
    nc_buf queue;              /* written before the handshake completed */
    int pings;                 /* our PINGs not answered yet (their PONGs go to on_op) */
};

nc_nats_conn *nc_nats_conn_new(nc_ioctx *io, nc_nats_target *t, int delay_ms, const nc_nats_conn_cbs *cbs,
                               const nc_logger *log, const char *component, void *owner);
/* Protocol bytes (SUB, PUB, ...). Returns 0, NC_ECLOSED or NC_ESTALLED (max_queue bytes waiting). */
int nc_nats_conn_write(nc_nats_conn *c, const char *p, size_t n);
int nc_nats_conn_ready(const nc_nats_conn *c);
/* A round trip: on_op gets NC_NATS_PONG once the server processed everything written before it. */
int nc_nats_conn_ping(nc_nats_conn *c);
/* The server's max_payload (0 until INFO arrived). */
size_t nc_nats_conn_max_payload(const nc_nats_conn *c);
/* What a permission error of nats-server refused (the connection stays open; the error names the subject
 * but not the command, so owners match it by subject). */
enum { NC_NATS_DENIED_NONE, NC_NATS_DENIED_SUB, NC_NATS_DENIED_PUB, NC_NATS_DENIED_REPLY };
/* Parses the text of a -ERR: 'Permissions Violation for Subscription to "S"[ using queue "Q"]',
 * '... for Publish to "S"', '... for Publish with Reply of "S"'. Writes S (unquoted, Go's \" and \\
 * escapes undone) to out, NUL-terminated, and returns its kind; NC_NATS_DENIED_NONE for other errors or
 * a subject longer than outlen - 1. out NULL: the kind only. */
int nc_nats_denied(const char *arg, size_t len, char *out, size_t outlen);
/* graceful: flush what is queued, then FIN. on_end(0) follows. */
void nc_nats_conn_close(nc_nats_conn *c, int graceful);

#endif
