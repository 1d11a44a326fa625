/* The reply packet the core hands a transport, in the codec layer so that the envelope writer needs
 * nothing above it. Private. */
#ifndef NC_CODEC_REPLY_PKT_H
#define NC_CODEC_REPLY_PKT_H

#include <stddef.h>

#include "util/header.h"

/* One response packet, already in JSON text pieces so each transport can lay it out its own way (the
 * envelope for TCP/Redis/NATS/MQTT, AMQP properties for RMQ, headers for Kafka). */
typedef struct nc_reply_pkt {
    const char *response; /* JSON text of the value, or NULL (undefined: no `response` key) */
    size_t response_len;
    const char *err; /* JSON text of the error value, or NULL */
    size_t err_len;
    int disposed;   /* isDisposed: true */
    int no_handler; /* the "no matching message handler" packet (err is its string) */
    const char *id; /* JSON text of the request id, echoed untouched */
    size_t id_len;
    /* Reply metadata (nc_reply_header), on the first packet of the stream only; NULL/0 when none. */
    const nc_header *headers;
    size_t nheaders;
    /* The final status (nc_reply_status) and trailers (nc_reply_trailer), on the last packet only (the
     * disposed one or the error). A transport ignores what its wire cannot carry (TCP, TLS, Redis: all of
     * it; NATS: status and trailers). */
    int has_status;
    int status;
    const char *status_msg; /* NUL-terminated, or NULL */
    const nc_header *trailers;
    size_t ntrailers;
} nc_reply_pkt;

#endif
