/* A byte stream over a libuv TCP handle, plain or TLS (OpenSSL with memory BIOs, so TLS runs on the same
 * loop with no extra threads). Writes are buffered and leave once per loop iteration (see ioctx.h).
 * Every byte leaves through send(2) with MSG_NOSIGNAL (SO_NOSIGPIPE where that flag is missing), never
 * through uv_write, so no write ever raises SIGPIPE, whatever the embedding program's signal setup.
 * A peer that ends its side (FIN, TLS close_notify) gets what is queued, then FIN, as Node does.
 * The nc_stream is embedded in its owner's struct; the owner may free it once on_close has run. Private. */
#ifndef NC_IO_STREAM_H
#define NC_IO_STREAM_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <uv.h>

#include "io/ioctx.h"
#include "util/buf.h"

typedef struct nc_stream nc_stream;

/* Default nc_stream.end_wait_ms. */
#define NC_STREAM_END_WAIT_MS 5000

typedef struct nc_stream_cbs {
    /* The stream is ready for data (connected and, for TLS, handshake done), or failed to get there. */
    void (*on_open)(nc_stream *s, int err, const char *msg);
    /* Bytes arrived (plaintext). Valid during the call only. */
    void (*on_data)(nc_stream *s, const char *data, size_t len);
    /* A write completed (unsent bytes went down); optional. */
    void (*on_drain)(nc_stream *s);
    /* The stream is closing: the peer closed, an error happened, or nc_stream_close was called (err 0 =
     * orderly end). Always called once (after on_open(err) when opening failed); on_close follows. */
    void (*on_end)(nc_stream *s, int err, const char *msg);
    /* The handle is closed; the owner may free the memory now. */
    void (*on_close)(nc_stream *s);
    /* TLS: wire bytes arrived and were processed (after any on_data they produced); optional. Lets the
     * owner see a peer that stalls in the middle of a record (nc_stream_partial_record). */
    void (*on_wire)(nc_stream *s);
} nc_stream_cbs;

typedef struct nc_write_note {
    uint64_t at; /* fires when written_bytes >= at */
    void (*cb)(void *arg, int err);
    void *arg;
} nc_write_note;

struct nc_stream {
    uv_tcp_t tcp;
    nc_ioctx *io;
    nc_flushable fl;
    const nc_stream_cbs *cbs;
    void *data; /* the owner's */
    uv_connect_t connect_req;
    uv_shutdown_t sreq;
    /* Writability watch while a send would block. libuv allows one watcher per descriptor and the TCP
     * handle already has one, so this one watches a dup() of the socket (wfd, -1 until needed). */
    uv_poll_t wpoll;
    int wfd;
    int open_handles; /* tcp, wpoll, linger: on_close runs once all are closed */
    /* After our FIN (linger_ms > 0): reading and discarding until the peer's EOF or linger_ms, since
     * closing with the peer's bytes unread makes the kernel send a reset, which can destroy the tail of
     * our reply the peer has not read yet. 0 = close at once after FIN. */
    uv_timer_t linger;
    int linger_ms;
    /* An orderly end waits for what is queued to be written, but not forever: a peer that reads nothing
     * for end_wait_ms (NC_STREAM_END_WAIT_MS unless the owner sets it; the time restarts whenever bytes
     * leave) gets the connection cut with the rest unsent. Without it a peer that never reads would hold
     * the descriptor, the buffers and anyone waiting for the close (nc_client_free) forever. The linger
     * timer measures it; 0 = wait forever. */
    int end_wait_ms;
    uint64_t end_wait_mark; /* written bytes when the wait was last started */
    nc_buf out;             /* plaintext not yet handed to TLS / the socket */
    nc_buf pend;            /* wire bytes ready to write */
    nc_buf wire;            /* wire bytes being sent (wire_off of them already are) */
    size_t wire_off;
    uint64_t pend_plain, wire_plain;
    uint64_t queued_bytes, written_bytes; /* plaintext totals */
    nc_write_note *notes;
    size_t nnotes, capnotes;
    SSL *ssl;
    unsigned state : 3; /* see stream.c */
    unsigned writing : 1;
    unsigned reading : 1;
    unsigned paused : 1;
    unsigned tls_done : 1;
    unsigned want_end : 1;
    unsigned ended : 1;
    unsigned notify_sent : 1;
    unsigned peer_eof : 1; /* the peer ended its side: no more reading */
    unsigned lingering : 1;
    unsigned linger_init : 1;
    unsigned wire_open : 1; /* counted as opened in io->wire: its close is counted too */
    int close_err;
    char addr[64]; /* client: "ip:port" being connected to, for the reasons of a failed connect */
};

/* Prepares a stream on `io`. ctx: NULL for plain TCP, else TLS with that context (client when
 * !is_server, verifying `host` when it is not NULL). Returns 0 or NC_ENOMEM/NC_ETLS. */
int nc_stream_init(nc_stream *s, nc_ioctx *io, const nc_stream_cbs *cbs, SSL_CTX *ctx, int is_server,
                   const char *host);
/* Client: connect to addr. on_open reports the outcome. */
int nc_stream_connect(nc_stream *s, const struct sockaddr *addr);
/* Client, on an open plaintext stream: starts TLS now (protocols that upgrade after a greeting, as NATS
 * does after INFO). Nothing must be queued for writing. on_open runs again once the handshake is done
 * (or fails). Returns 0, NC_ESTATE, NC_ETLS or NC_ENOMEM. */
int nc_stream_start_tls(nc_stream *s, SSL_CTX *ctx, const char *host);
/* Server: accept from a listening handle; on_open follows (at once for plain TCP, after the handshake
 * for TLS). */
int nc_stream_accept(nc_stream *s, uv_stream_t *listener);
/* Queues plaintext for writing. Returns 0 or NC_ENOMEM / NC_ECLOSED. */
int nc_stream_write(nc_stream *s, const void *p, size_t n);
/* cb(arg, 0) once everything queued so far is written, cb(arg, err) if the stream closes first. */
int nc_stream_notify_written(nc_stream *s, void (*cb)(void *, int), void *arg);
/* Bytes queued and not yet confirmed written. */
uint64_t nc_stream_unsent(const nc_stream *s);
void nc_stream_pause(nc_stream *s);
void nc_stream_resume(nc_stream *s);
/* Orderly end: flush what is queued, send FIN (TLS: close_notify first), then close (after lingering,
 * when linger_ms is set: what the peer still sends is read and dropped until its EOF or linger_ms). A
 * flush that makes no progress for end_wait_ms is abandoned: the stream closes with NC_ESTALLED. */
void nc_stream_end(nc_stream *s);
/* Immediate close (pending writes dropped). Idempotent. on_end(err,msg) then on_close follow. */
void nc_stream_close(nc_stream *s, int err, const char *msg);
int nc_stream_is_open(const nc_stream *s);
/* TLS: 1 when part of a record was received and the rest has not (no plaintext comes from it yet). */
int nc_stream_partial_record(const nc_stream *s);
/* Peer address as text "ip:port" into buf. */
void nc_stream_peer(const nc_stream *s, char *buf, size_t len);

#endif
