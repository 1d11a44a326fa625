/* nestc — serializer / deserializer hooks (NestJS `serializer` and `deserializer` options).
 * They change the body only: framing, addressing and id assignment stay NestJS's. */
#ifndef NESTC_CODEC_H
#define NESTC_CODEC_H

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Unlike the option structs (nestc/server.h, "Structs that grow"), nc_codec has no struct_size: it is
 * NestJS's fixed serializer/deserializer pair, written positionally by callers ({ser, deser, user}), and
 * is not meant to grow; further hooks around messages belong to their own API. */
typedef struct nc_codec {
    /* Outgoing packet (request/event on a client, response on a server) → what is written. `packet` is
     * borrowed; return a NEW reference (json_incref(packet) to pass it through), or NULL to drop the
     * packet (the request fails with NC_EINVAL). Loop thread. */
    json_t *(*serialize)(void *user, json_t *packet);
    /* Incoming decoded JSON → the packet the core reads (`pattern`/`data`/`id`, or `response`/`err`/
     * `isDisposed`/`id`). Same ownership rules; NULL drops the message with a log line. */
    json_t *(*deserialize)(void *user, json_t *packet);
    void *user;
} nc_codec;

#ifdef __cplusplus
}
#endif
#endif
