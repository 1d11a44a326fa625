/* One HTTP/2 connection of a gRPC server: nghttp2's session driven over an nc_stream (plain or TLS), and
 * its calls (one per HTTP/2 stream): request headers and length-prefixed messages in, response headers,
 * messages and the status trailers out. Knows HTTP/2 and gRPC's framing, not protobuf nor the core: the
 * owner is told through nc_grpc_conn_cbs. Private. */
#ifndef NC_GRPC_CONN_H
#define NC_GRPC_CONN_H

#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "codec/grpc_wire.h"
#include "core/log.h"
#include "io/stream.h"
#include "util/buf.h"
#include "util/header.h"

typedef struct nc_grpc_conn nc_grpc_conn;
typedef struct nc_grpc_call nc_grpc_call;

/* Keepalive and idle rules of a connection (NestJS's keepalive options and grpc.max_connection_idle_ms).
 * Every 0 turns its rule off. */
typedef struct nc_grpc_keepalive {
    int time_ms;              /* keepaliveTimeMs: a PING after this long (from the last ACK) */
    int timeout_ms;           /* keepaliveTimeoutMs: no ACK within it and the connection is closed */
    int permit_without_calls; /* keepalivePermitWithoutCalls: client PINGs without calls are policed by
                                 min_ping_ms, not by two hours */
    int min_ping_ms;          /* http2MinPingIntervalWithoutDataMs: client PINGs sooner than this (with no
                                 response HEADERS or DATA sent since) are strikes */
    int max_strikes;          /* http2MaxPingStrikes: more strikes and GOAWAY ENHANCE_YOUR_CALM
                                 "too_many_pings", then the connection ends */
    int idle_ms;              /* maxConnectionIdleMs: no call for this long and GOAWAY NO_ERROR */
    int age_ms;               /* maxConnectionAgeMs: GOAWAY NO_ERROR this long (±10 %) after accept */
    int age_grace_ms;         /* maxConnectionAgeGraceMs: after that GOAWAY, calls still open this long are
                                 cut (the connection closed); 0: they finish */
} nc_grpc_keepalive;

/* One call. Its memory lives while referenced: by its HTTP/2 stream until the stream closes, and by the
 * owner (the core holds it as a request's reply sink) through nc_grpc_call_retain/release. */
struct nc_grpc_call {
    nc_grpc_conn *conn; /* NULL once the connection is gone */
    const struct nc_grpc_conn_cbs *cbs;
    int32_t id; /* HTTP/2 stream id */
    int refs;
    nc_buf path;
    nc_buf hdr; /* the request metadata: [u32 name len][name][u32 value len][value]... */
    size_t nhdr;
    size_t meta_bytes;   /* request header bytes seen, against max_metadata */
    int bad_request;     /* not a gRPC request (method, content type): answered at the end of headers */
    int64_t timeout_ms;  /* grpc-timeout, -1 = none */
    char *encoding;      /* grpc-encoding, NULL = identity */
    unsigned accept_enc; /* 1 << algorithm for each one grpc-accept-encoding lists (grpc_gzip.h numbers) */
    int enc_out;         /* the responses' algorithm, 0 = identity (decided with the response headers) */
    nc_grpc_reader rd;
    int half_closed; /* the client ended its side */
    int finished;    /* the status was submitted: nothing more is sent */
    int closed;      /* the HTTP/2 stream is closed */
    int started;     /* the response HEADERS were submitted */
    int deferred;    /* the data source waits for more (nghttp2_session_resume_data) */
    int watched;     /* the owner wants on_writable (nc_grpc_call_watch: a count) */
    nc_buf out;      /* framed messages not yet taken by nghttp2 */
    size_t out_off;
    nc_buf resp_hdr; /* response metadata, as in hdr */
    size_t nresp_hdr;
    nc_buf trailers; /* status trailers waiting for the data to drain, as in hdr */
    size_t ntrailers;
    void *user;                        /* the owner's */
    struct nc_grpc_deadline *deadline; /* the grpc-timeout timer, or NULL */
    nc_grpc_call *prev, *next;         /* the connection's calls with an open stream */
};

struct nc_grpc_conn_cbs {
    /* The request headers of a call are complete (path, metadata, timeout known). */
    void (*on_call)(nc_grpc_call *call);
    /* One whole request message (compressed as received when flagged). */
    void (*on_message)(nc_grpc_call *call, const char *data, size_t len, int compressed);
    /* The client half-closed its side (after its last message). */
    void (*on_half_close)(nc_grpc_call *call);
    /* The stream closed before the call finished (the client cancelled, reset, or the connection went), or
     * its deadline passed (the client was then sent status 4 DEADLINE_EXCEEDED). */
    void (*on_cancel)(nc_grpc_call *call);
    /* The call's memory is about to be freed: the owner drops what it attached (call->user). */
    void (*on_call_free)(nc_grpc_call *call);
    /* The connection is closing (err 0: orderly). Once. */
    void (*on_end)(nc_grpc_conn *c, int err, const char *msg);
    /* The connection's memory is about to be freed. */
    void (*on_free)(nc_grpc_conn *c);
    /* A watched call's pending bytes (nc_grpc_call_pending) may have gone down: the client's WINDOW_UPDATE
     * let nghttp2 take more, or the socket took written bytes. From a read or write callback, never from
     * inside nc_grpc_call_send. Optional. */
    void (*on_writable)(nc_grpc_call *call);
};
typedef struct nc_grpc_conn_cbs nc_grpc_conn_cbs;

struct nc_grpc_conn {
    nc_stream st;
    nghttp2_session *h2;
    const nc_grpc_conn_cbs *cbs;
    const nc_logger *log;
    uint32_t max_message;
    uint32_t max_metadata; /* bytes of request metadata (names + values) per call */
    long long max_send;    /* response bytes queued and unsent before the connection is closed; 0 = off */
    int compress;          /* the algorithm for responses to clients that accept it, 0 = identity
                              (defaultCompressionAlgorithm) */
    struct nc_grpc_deflater **deflater; /* the owner's, shared by its connections (one loop); NULL: none */
    nc_grpc_keepalive ka;               /* set before nc_grpc_conn_accept */
    uv_timer_t ka_timer;                /* the next keepalive PING, or the wait for its ACK */
    uv_timer_t idle_timer;              /* maxConnectionIdleMs */
    uv_timer_t age_timer;               /* maxConnectionAgeMs, then maxConnectionAgeGraceMs */
    int ka_open, idle_open, age_open;
    int aged;                /* the age GOAWAY was sent: the age timer now counts the grace */
    int ping_out;            /* a keepalive PING waits for its ACK */
    int have_ping;           /* a client PING was received since the last response HEADERS or DATA */
    uint64_t last_ping_recv; /* when (loop time) */
    int strikes;
    uint64_t idle_since; /* when the last call ended (loop time) */
    int goaway_close;    /* a GOAWAY of ours ends the connection once written */
    uint64_t queued;     /* response bytes in the calls' buffers, not yet taken by nghttp2 */
    int nwatch;          /* calls with `watched` set */
    uv_timer_t stall;    /* until the client's first frame (see nc_grpc_conn_accept) */
    int stall_open, got_frame;
    void *owner;
    int ended, draining;
    int in_recv; /* inside nghttp2_session_mem_recv: writing waits for its end */
    int refs;    /* the stream's (until on_close), and one per call that points here */
    nc_grpc_call *calls;
    nc_grpc_conn *prev, *next;
    char peer[64];
};

/* Allocates a server connection on io (ssl: TLS context or NULL). Set max_send after (0: no bound). NULL when
 * out of memory. */
nc_grpc_conn *nc_grpc_conn_new(nc_ioctx *io, SSL_CTX *ssl, uint32_t max_message, uint32_t max_metadata,
                               const nc_grpc_conn_cbs *cbs, const nc_logger *log, void *owner);
/* Accepts from the listener and sends the server preface (SETTINGS). A client whose first HTTP/2 frame
 * (TLS handshake, preface and SETTINGS) has not arrived within first_frame_ms (0: no limit) is closed, so a
 * connection that never speaks does not stay forever. Returns 0 or an error (the caller closes the
 * connection). */
int nc_grpc_conn_accept(nc_grpc_conn *c, uv_stream_t *listener, int first_frame_ms);
/* Bytes read from the client, as the stream hands them over: nghttp2 reads them, the calls' callbacks
 * run, and what nghttp2 answers is written to the stream. Public for the fuzzer, which feeds a connection
 * that never accepted a socket. */
void nc_grpc_conn_feed(nc_grpc_conn *c, const char *data, size_t len);
/* Closes now (pending writes dropped); on_end then on_free follow. */
void nc_grpc_conn_close(nc_grpc_conn *c, int err, const char *why);
/* Graceful end: GOAWAY, then the connection ends after its last queued byte. */
void nc_grpc_conn_drain(nc_grpc_conn *c);

void nc_grpc_call_retain(nc_grpc_call *call);
void nc_grpc_call_release(nc_grpc_call *call);
/* 1 while the call can still send (connection open, stream open, status not sent). */
int nc_grpc_call_live(const nc_grpc_call *call);
/* Response metadata, sent with the response HEADERS (before the first message); the name is lowercased.
 * Returns 0, NC_ESTATE (headers already sent), NC_EINVAL (empty name, or over 256 bytes), NC_ENOMEM. */
int nc_grpc_call_add_header(nc_grpc_call *call, const char *name, size_t nlen, const char *value,
                            size_t vlen);
/* Queues one response message (the prefix is added). Returns 0, NC_ECONNCLOSED, NC_ETOOBIG, NC_ENOMEM.
 * When the connection's unsent responses pass max_send (a client that does not read), the connection is
 * closed, as the TCP transport does, and NC_ECONNCLOSED returned. */
int nc_grpc_call_send(nc_grpc_call *call, const void *msg, size_t len);
/* The call's response bytes not yet written to the socket: its messages HTTP/2 flow control holds back
 * (the client's stream and connection windows) plus the connection's unsent bytes (shared by its calls).
 * 0 once the call cannot send. */
size_t nc_grpc_call_pending(const nc_grpc_call *call);
/* Counts the owner's interest in on_writable for this call (on 1, off 0; as many of each). */
void nc_grpc_call_watch(nc_grpc_call *call, int on);
/* Ends the call with a status: after the queued messages, the trailers (grpc-status, grpc-message
 * percent-encoded, then `trailers`), or a trailers-only response when nothing was sent. Returns 0 or
 * NC_ECONNCLOSED. */
int nc_grpc_call_finish(nc_grpc_call *call, int status, const char *message, const nc_header *trailers,
                        size_t ntrailers);
/* The request metadata (names lowercase as HTTP/2 carries them, -bin values decoded, reserved headers left
 * out) into out[0..max), borrowed from the call. Returns the count. */
size_t nc_grpc_call_headers(const nc_grpc_call *call, nc_header *out, size_t max);

#endif
