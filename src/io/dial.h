/* One outgoing connection attempt and the life of its handles, for connections that own themselves (the
 * broker transports' per-connection objects): an optional start delay, name resolution, the connect
 * timeout (TLS handshake and protocol greeting included, until the owner says it is connected), the
 * stream, closing in whatever phase it is, and freeing once every handle is closed. The owner embeds an
 * nc_dial, gives its own stream callbacks (whose on_close must be nc_dial_stream_closed) and two hooks.
 *
 * An owner whose stream lives elsewhere (the TCP client's framed connection, which the TCP server shares)
 * gives ops->stream instead: once the name is resolved the dial connects the stream it returns; the
 * dial's timer is then that connection's one connect timer, and the owner's stream on_end calls
 * nc_dial_end (nc_dial_reason first). The dial's own st is unused then, and the dial frees itself once
 * ended (nc_dial_end, also right after nc_dial_connected when the owner no longer needs it). Private. */
#ifndef NC_IO_DIAL_H
#define NC_IO_DIAL_H

#include "io/stream.h"

typedef struct nc_dial nc_dial;

typedef struct nc_dial_ops {
    /* The connection ended (nc_dial_end): the owner reports it. Called once. */
    void (*ended)(nc_dial *d, int err, const char *msg);
    /* Every handle is closed: the owner frees itself (the nc_dial with it). */
    void (*free)(nc_dial *d);
    /* Optional: the owner's stream to connect, initialised (NULL: out of memory). Called once the name
     * is resolved. The owner closes it its own way (nc_dial_close_early returns 0 from then on). */
    nc_stream *(*stream)(nc_dial *d);
} nc_dial_ops;

struct nc_dial {
    nc_stream st; /* first: nc_dial_stream_closed finds the dial from its stream */
    nc_stream *s; /* the stream connected: &st, or the owner's (ops->stream) */
    nc_ioctx *io;
    const nc_stream_cbs *scbs;
    const nc_dial_ops *ops;
    const char *host;
    int port;
    SSL_CTX *ssl; /* TLS from the first byte, or NULL (plain, or TLS started later by the owner) */
    const char *verify_host;
    int timeout_ms;
    uv_getaddrinfo_t gai;
    uv_timer_t timer; /* the start delay, then the connect timeout */
    int phase;
    int handles_open, resolving, cancel_resolve, ended;
    int end_err; /* why we ended it ourselves (reported instead of the stream's own reason) */
    char end_msg[200];
};

/* Starts connecting to host:port after delay_ms (0 = now). The strings must outlive the dial. scbs, ssl and
 * verify_host are for the dial's own stream (unused with ops->stream). */
void nc_dial_start(nc_dial *d, nc_ioctx *io, const char *host, int port, SSL_CTX *ssl,
                   const char *verify_host, int timeout_ms, int delay_ms, const nc_stream_cbs *scbs,
                   const nc_dial_ops *ops);
/* The connection is usable: the connect timeout stops. */
void nc_dial_connected(nc_dial *d);
/* Ends the connection once: stops the timer and calls ops->ended. The owner's stream on_end calls it
 * (with nc_dial_reason applied). */
void nc_dial_end(nc_dial *d, int err, const char *msg);
/* The reason to report for a stream's end: ours if we closed it (nc_dial_fail), else the stream's. */
void nc_dial_reason(const nc_dial *d, int *err, const char **msg);
/* Closes the stream for a reason of ours; returns 0 if the dial had already ended or failed. */
int nc_dial_fail(nc_dial *d, int err, const char *msg);
/* Closes a connection that has no stream yet (waiting, resolving) and returns 1; returns 0 when the
 * stream exists (the owner closes it its own way). */
int nc_dial_close_early(nc_dial *d);
/* The stream callbacks' on_close. */
void nc_dial_stream_closed(nc_stream *s);

#endif
