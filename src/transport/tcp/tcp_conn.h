/* One framed TCP/TLS connection, shared by the TCP server and client: the stream, the `<len>#<json>`
 * parser, the incomplete-message timer and the send-buffer bounds of tcp.md §3. Private. */
#ifndef NC_TCP_CONN_H
#define NC_TCP_CONN_H

#include "codec/frame.h"
#include "core/log.h"
#include "io/stream.h"

typedef struct nc_tcp_conn nc_tcp_conn;

typedef struct nc_tcp_conn_cbs {
    /* A complete frame. Return 0, or NC_EPROTO with `why` filled to close the connection. */
    int (*on_frame)(nc_tcp_conn *c, const char *json, size_t len, char *why, size_t whylen);
    /* The stream is open (TLS handshake done) or failed to open. */
    void (*on_open)(nc_tcp_conn *c, int err, const char *msg);
    /* The connection is closing (err 0 = the peer ended it). Sent once. */
    void (*on_end)(nc_tcp_conn *c, int err, const char *msg);
    /* Everything is closed and the last reference dropped: free the owner's parts; the conn is freed after.
     */
    void (*on_free)(nc_tcp_conn *c);
    /* While watched (nwatch > 0): the socket took written bytes, the unsent bytes went down. Optional. */
    void (*on_writable)(nc_tcp_conn *c);
} nc_tcp_conn_cbs;

typedef struct nc_tcp_limits {
    long long max_buffer; /* UTF-16 units, 0 = off */
    long long max_send;   /* bytes, 0 = off */
    int incomplete_ms;    /* 0 = off */
    int handshake_ms;     /* accepted TLS connections: time to complete the handshake, 0 = off */
} nc_tcp_limits;

struct nc_tcp_conn {
    nc_stream st;
    nc_framer fr;
    uv_timer_t stall;
    const nc_tcp_conn_cbs *cbs;
    const nc_logger *log;
    const char *component; /* "Server" / "Client" for log lines */
    nc_tcp_limits lim;
    void *owner;
    int refs;
    int handles_open;
    int ending;       /* framing error: no more frames are read */
    int backpressure; /* reading paused because the peer does not read */
    int bad_json;
    int nwatch;        /* requests whose handler watches the write queue (on_writable) */
    int end_err;       /* why we ended the connection gracefully (reported by on_end), 0 if we did not */
    char end_why[272]; /* "invalid JSON: " and a reason of up to 255 bytes */
    nc_tcp_conn *prev, *next;
    char peer[64];
    /* The first bytes received, kept until a frame completes: if the peer hangs up before sending a
     * whole packet, they tell a peer that is no NestJS service (an HTTP server) from a cut packet. */
    int framed; /* a frame completed */
    unsigned char nfirst;
    char first[48];
};

/* Allocates and initialises a connection (refs = 1, the owner's). Returns NULL on failure. */
nc_tcp_conn *nc_tcp_conn_new(nc_ioctx *io, SSL_CTX *ssl, int is_server, const char *host,
                             const nc_tcp_limits *lim, const nc_tcp_conn_cbs *cbs, const nc_logger *log,
                             const char *component, void *owner);
/* Server: accepts the connection from `listener`, records the peer's address and, for TLS, starts the
 * handshake timeout. Returns 0 or an error (the caller closes the connection). */
int nc_tcp_conn_accept(nc_tcp_conn *c, uv_stream_t *listener);
/* Queues one frame (prefix + json). Applies the send-buffer bounds. Returns 0 or an error if the
 * connection is gone or was just closed for not reading. */
int nc_tcp_conn_send(nc_tcp_conn *c, const char *json, size_t len);
void nc_tcp_conn_retain(nc_tcp_conn *c);
void nc_tcp_conn_release(nc_tcp_conn *c);
/* Closes at once (graceful = 0) or after flushing with FIN (graceful = 1). */
void nc_tcp_conn_close(nc_tcp_conn *c, int graceful, int err, const char *why);
int nc_tcp_conn_is_open(const nc_tcp_conn *c);
/* Server shutdown: ends the connection after everything queued is written (FIN; TLS: close_notify
 * first), reading and dropping whatever the peer still sends until then. */
void nc_tcp_conn_drain(nc_tcp_conn *c);

#endif
