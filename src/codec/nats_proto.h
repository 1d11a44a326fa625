/* The NATS client protocol, sans-I/O: a parser for what a nats-server sends (INFO, MSG, HMSG, PING, PONG,
 * +OK, -ERR), a header-block parser, and writers for what a client sends. Fed bytes, returns messages,
 * holds caps; no sockets here, so it is unit-tested and fuzzed. Private. */
#ifndef NC_CODEC_NATS_PROTO_H
#define NC_CODEC_NATS_PROTO_H

#include <jansson.h>

#include "util/header.h"
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum { NC_NATS_INFO, NC_NATS_MSG, NC_NATS_PING, NC_NATS_PONG, NC_NATS_OK, NC_NATS_ERR };

/* One operation. Pointers point into the parser's buffer: valid during the callback only. */
typedef struct nc_nats_op {
    int kind;
    const char *arg; /* INFO: the JSON text; -ERR: the message (quotes removed) */
    size_t arg_len;
    /* MSG / HMSG */
    const char *subject;
    size_t subject_len;
    const char *reply; /* NULL when the message has no reply subject */
    size_t reply_len;
    uint64_t sid;
    const char *hdr; /* HMSG: the header block (from "NATS/1.0" to the blank line), else NULL */
    size_t hdr_len;
    const char *payload;
    size_t payload_len;
} nc_nats_op;

typedef struct nc_nats_parser {
    nc_buf buf;
    size_t pos;         /* parsed up to here */
    size_t max_control; /* longest control line accepted (default 4096) */
    size_t max_payload; /* largest message accepted, headers included (0 = no limit) */
} nc_nats_parser;

/* Return nonzero to stop (the rest stays buffered for the next feed). */
typedef int (*nc_nats_op_fn)(void *user, const nc_nats_op *op);

void nc_nats_parser_init(nc_nats_parser *p, size_t max_payload);
void nc_nats_parser_free(nc_nats_parser *p);
/* Feeds bytes and reports every complete operation. Returns 0, NC_EPROTO (malformed; `why` says why; the
 * connection cannot continue), NC_ETOOBIG (a message or control line over its cap) or NC_ENOMEM. */
int nc_nats_feed(nc_nats_parser *p, const char *data, size_t len, nc_nats_op_fn fn, void *user, char *why,
                 size_t whylen);
/* Bytes buffered and not yet parsed. */
size_t nc_nats_pending(const nc_nats_parser *p);

/* A header block "NATS/1.0[ <status>[ <description>]]\r\n(Name: value\r\n)*\r\n": *status gets the status
 * code or 0; *headers (may be NULL) gets an object name → value (a repeated name keeps its first value;
 * names as sent). Returns 0 or NC_EPROTO. */
int nc_nats_headers_parse(const char *hdr, size_t len, int *status, json_t **headers);

/* The header block's fields one at a time, in wire order, repeated names included, as views into the
 * block (no allocation; values trimmed of spaces and tabs as nats.js does). *at starts at 0 (the status
 * line is skipped). Returns 1 with the next field, 0 at the end of the block (or on a block that is not
 * one). */
int nc_nats_header_next(const char *hdr, size_t len, size_t *at, const char **name, size_t *name_len,
                        const char **value, size_t *value_len);
/* The same block as an ordered list of spans into hdr (names as sent, values trimmed of spaces and tabs,
 * repeated names kept): up to `cap` go to out, *n gets the number in the block (call again with a larger
 * array when *n > cap). Allocates nothing. Returns 0 or NC_EPROTO. */
int nc_nats_headers_list(const char *hdr, size_t len, int *status, nc_header *out, size_t cap, size_t *n);

/* Writers (append to out). */
int nc_nats_write_pub(nc_buf *out, const char *subject, size_t slen, const char *reply, const json_t *headers,
                      const char *payload, size_t plen);
/* The same with the headers as an ordered list (names and values as bytes, a name may repeat, order
 * kept); nh 0: a PUB without headers. */
int nc_nats_write_pub_list(nc_buf *out, const char *subject, size_t slen, const char *reply,
                           const nc_header *h, size_t nh, const char *payload, size_t plen);
int nc_nats_write_sub(nc_buf *out, const char *subject, const char *queue, uint64_t sid);
int nc_nats_write_unsub(nc_buf *out, uint64_t sid);
/* A subject a client may publish to: non-empty, no whitespace, no empty tokens. */
int nc_nats_subject_ok(const char *s, size_t len);

#endif
