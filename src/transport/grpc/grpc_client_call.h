/* One call of the gRPC client (grpc_client.c): its request messages waiting for nghttp2, its response
 * reader, the response headers, trailers and status as they arrive, and the request HEADERS it opens
 * with. Knows HTTP/2 header names and gRPC's framing, not the core. Private. */
#ifndef NC_GRPC_CLIENT_CALL_H
#define NC_GRPC_CLIENT_CALL_H

#include <stdint.h>

#include <jansson.h>
#include <nghttp2/nghttp2.h>

#include "codec/grpc_wire.h"
#include "codec/proto_parse.h"
#include "util/buf.h"
#include "util/header.h"

/* Response headers (and trailers) handed to the core per call; more are left out. */
#define NC_GCALL_MAX_HEADERS 64

typedef struct gcall gcall;
struct gcall {
    char id[48];  /* the core's request id */
    char tmo[16]; /* the grpc-timeout text of the request HEADERS */
    int refs;     /* the client's id map, the HTTP/2 stream, and whoever is inside a callback */
    int32_t sid;  /* HTTP/2 stream id, 0 when none (not opened, or closed) */
    const nc_pb_method *m;
    nc_buf out; /* framed request messages not yet taken by nghttp2 */
    size_t out_off;
    int half_closed; /* no more request messages: END_STREAM after out */
    int deferred;    /* the data source waits (nghttp2_session_resume_data) */
    int done;        /* the final reply went to the core, or the core let go: nothing more is delivered */
    int got_headers; /* the response HEADERS arrived (a later HEADERS block holds the trailers) */
    int headers_given;
    int http_status;
    int status;        /* grpc-status, -1 until received */
    nc_buf status_msg; /* grpc-message, percent-decoded */
    char *encoding;    /* grpc-encoding of the response, NULL = identity */
    nc_grpc_reader rd;
    nc_buf hdr, trl; /* response metadata and trailers: [u32 len][name][u32 len][value]... */
    size_t nhdr, ntrl;
    /* The request HEADERS, kept until the call ends: a call waiting for a connection is opened later, and
     * a stream the server refused (GOAWAY, REFUSED_STREAM) is opened again on another connection. */
    nc_buf hb;      /* the metadata texts nv points into */
    nghttp2_nv *nv; /* NULL until the headers are built */
    size_t nnv;
    int replay;               /* the request is complete in `out` (not writable): read without discarding */
    int taken;                /* nghttp2 took request bytes that are no longer in `out` */
    int retries;              /* transparent retries so far */
    int waiting;              /* in the client's list of calls waiting for a connection */
    const char *encoding_out; /* grpc-encoding of the request messages, NULL = identity */
    gcall *prev, *next;       /* the connection's calls with a stream open, or the calls waiting for one */
};

/* A call with one reference (the caller's). NULL when out of memory. */
gcall *nc_gcall_new(const char *id, const nc_pb_method *m, uint32_t max_message);
void nc_gcall_unref(gcall *k);
void nc_gcall_link(gcall **head, gcall *k);
void nc_gcall_unlink(gcall **head, gcall *k);

/* One response header (trailer when `trailer`): :status, grpc-status, grpc-message and grpc-encoding are
 * taken for the call; the rest is metadata (-bin values decoded; reserved names left out, as grpc-js does).
 * Returns 0 or NC_ENOMEM. */
int nc_gcall_on_header(gcall *k, int trailer, const char *n, size_t nl, const char *v, size_t vl);

/* The pairs of a metadata buffer into out[0..max); returns the count. */
size_t nc_gcall_pairs(const nc_buf *b, nc_header *out, size_t max);

/* The request HEADERS of the call into nv (*n of them, at most NC_GCALL_MAX_HEADERS + 10), their texts
 * kept in hb: :method POST, :scheme, :path, :authority, te trailers, content-type application/grpc,
 * grpc-accept-encoding, user-agent, grpc-timeout when timeout_ms > 0, then the metadata of `headers` (an
 * object of strings; names lowercased; reserved names refused). Returns 0, or NC_EINVAL with why. */
int nc_gcall_request_headers(gcall *k, const char *path, const char *scheme, const char *authority,
                             int timeout_ms, const json_t *headers, nc_buf *hb, nghttp2_nv *nv, size_t *n,
                             char *why, size_t whylen);

#endif
