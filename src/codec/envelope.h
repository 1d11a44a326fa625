/* The NestJS JSON envelope (spec README §2): request, event and response packets. Private. */
#ifndef NC_CODEC_ENVELOPE_H
#define NC_CODEC_ENVELOPE_H

#include <jansson.h>

#include "codec/reply_pkt.h"
#include "nestc/codec.h"
#include "util/buf.h"

#define NC_NO_HANDLER_MSG "There is no matching message handler defined in the remote service."

/* Appends a response packet: `{"response":…,"isDisposed":true,"id":…}` in NestJS's key order, or the
 * no-handler packet `{"id":…,"status":"error","err":"There is no …"}`. With a serializer the packet is
 * built as a JSON object and passed through it. Returns 0, NC_ENOMEM, NC_EINVAL (serializer refused). */
int nc_envelope_write_reply(nc_buf *out, const nc_reply_pkt *p, const nc_codec *codec);

/* Appends a request (id != NULL) or event packet `{"pattern":…,"data":…[,"metadata":…][,"id":"…"]}`.
 * All values borrowed. */
int nc_envelope_write_request(nc_buf *out, const json_t *pattern, const json_t *data, const json_t *metadata,
                              const char *id, const nc_codec *codec);

/* A decoded response packet (client side), values borrowed from the root. */
typedef struct nc_response {
    json_t *id;       /* NULL when absent */
    json_t *response; /* NULL = undefined */
    json_t *err;      /* NULL unless truthy */
    int final;        /* isDisposed or err truthy */
} nc_response;

/* Reads a response the way NestJS's IncomingResponseDeserializer does (spec §9.2): anything that is not a
 * non-empty object made only of id/err/response/isDisposed/status is a foreign reply whose whole value is
 * the response, final. */
/* The same without a codec, the pattern given as its JSON text (precomputed by the client). */
int nc_envelope_write_request_text(nc_buf *out, const char *pattern, size_t plen, const json_t *data,
                                   const json_t *metadata, const char *id);
void nc_envelope_read_response(json_t *root, nc_response *r);

/* JavaScript truthiness of a JSON value (NULL = undefined = false). */
int nc_json_truthy(const json_t *v);

#endif
