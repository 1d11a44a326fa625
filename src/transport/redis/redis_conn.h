/* One Redis connection (RESP over TCP or TLS), shared by the Redis server and client: name resolution,
 * the nc_stream (TLS included), the AUTH/SELECT handshake, commands with their reply callbacks in order,
 * and pub/sub pushes. hiredis's sans-I/O reader parses the replies; commands are written straight into the
 * stream buffer (a RESP array is a few length prefixes, and a 1 MB payload is then copied once, not three
 * times). Reconnecting is the owner's job: a connection object lives for one connection. Private. */
#ifndef NC_REDIS_CONN_H
#define NC_REDIS_CONN_H

#include <hiredis/hiredis.h>

#include "core/log.h"
#include "io/dial.h"
#include "transport/common/broker_target.h"

typedef struct nc_redis_conn nc_redis_conn;

/* A command's reply; r is NULL when the connection ended before the reply came. r is freed after. */
typedef void (*nc_redis_reply_fn)(void *arg, redisReply *r);

/* Where and how to connect. Owned by the transport; must outlive its connections. */
typedef struct nc_redis_target {
    /* AUTH when b.password is set (with b.user: AUTH user password, Redis 6 ACL); b.ssl for rediss:// */
    nc_broker_target b;
    int db;              /* SELECT when > 0 */
    long long max_reply; /* bytes one reply may buffer before it is complete (0 = off) */
} nc_redis_target;

typedef struct nc_redis_conn_cbs {
    /* Connected, authenticated, database selected: queued commands are on their way. */
    void (*on_ready)(nc_redis_conn *c);
    /* A pub/sub message (message, pmessage) on a subscriber connection, or the answer of a command sent
     * with no callback when it is an error or a (p)(un)subscribe confirmation. */
    void (*on_push)(nc_redis_conn *c, redisReply *r);
    /* The connection failed or closed (err 0 = closed on request). Called once; the commands still
     * waiting got their callbacks with NULL before. The object frees itself afterwards. */
    void (*on_end)(nc_redis_conn *c, int err, const char *msg);
} nc_redis_conn_cbs;

struct nc_redis_conn {
    nc_dial d; /* first: the connection attempt, the stream and the handles' life */
    const nc_redis_target *t;
    const nc_redis_conn_cbs *cbs;
    const nc_logger *log;
    const char *component; /* "Server" / "Client", for log lines */
    const char *role;      /* "pub" / "sub" */
    void *owner;
    int subscriber; /* pub/sub replies are pushes (on_push), not command replies */
    redisReader *rd;
    int state;
    nc_buf queue; /* commands written before the connection was ready */
    struct {
        nc_redis_reply_fn cb;
        void *arg;
    } * fifo; /* one slot per command sent, in order (a ring); cb may be NULL */
    size_t fhead, flen, fcap;
    size_t handshake_left; /* replies of AUTH/SELECT still expected */
};

/* Starts connecting after delay_ms (0 = now). Returns NULL when out of memory. */
nc_redis_conn *nc_redis_conn_new(nc_ioctx *io, const nc_redis_target *t, int subscriber, int delay_ms,
                                 const nc_redis_conn_cbs *cbs, const nc_logger *log, const char *component,
                                 const char *role, void *owner);
/* Sends one command (queued until ready). Every command keeps its place in the reply queue, so cb gets
 * this command's own answer: its reply, its error (a refused SUBSCRIBE or PUBLISH: NOPERM, NOAUTH), or
 * on a subscriber connection the (p)(un)subscribe confirmation; NULL with the connection ended. With cb
 * NULL errors and confirmations go to on_push, other replies are dropped. Send one channel per
 * (UN)SUBSCRIBE: each confirmation answers one command. Returns 0, NC_ECLOSED (ended), NC_ENOMEM or
 * NC_ESTALLED (more than max_queue bytes waiting). */
int nc_redis_conn_cmd(nc_redis_conn *c, nc_redis_reply_fn cb, void *arg, int argc, const char *const *argv,
                      const size_t *lens);
int nc_redis_conn_ready(const nc_redis_conn *c);
/* Closes: graceful = QUIT after what is queued, then FIN; else at once. on_end(0) follows (now or later). */
void nc_redis_conn_close(nc_redis_conn *c, int graceful);

#endif
