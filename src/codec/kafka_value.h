/* Kafka record values, keys and headers as NestJS 12.1.1 (KafkaJS) writes and reads them (spec kafka.md
 * §3-§5, §8). Sans-I/O: no librdkafka here, only bytes and jansson values. Private.
 *
 * Kafka carries no JSON envelope: the value of a record is the payload itself and Nest's control fields
 * (correlation id, reply topic and partition, error, end of stream) travel in record headers. */
#ifndef NC_CODEC_KAFKA_VALUE_H
#define NC_CODEC_KAFKA_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/buf.h"

/* The header names Nest uses (KafkaHeaders enum, Spring Kafka compatible). */
#define NC_KAFKA_H_CORRELATION "kafka_correlationId"
#define NC_KAFKA_H_REPLY_TOPIC "kafka_replyTopic"
#define NC_KAFKA_H_REPLY_PARTITION "kafka_replyPartition"
#define NC_KAFKA_H_ERR "kafka_nest-err"
#define NC_KAFKA_H_DISPOSED "kafka_nest-is-disposed"
/* The reply topic of a route. */
#define NC_KAFKA_REPLY_SUFFIX ".reply"

/* One encoded field: bytes, or null (a Kafka null value/key: absent, not empty). */
typedef struct nc_kafka_bytes {
    char *p; /* owned, NUL-terminated for convenience (the bytes may hold NULs); NULL when null */
    size_t n;
} nc_kafka_bytes;

typedef struct nc_kafka_header {
    char *name; /* owned, NUL-terminated */
    nc_kafka_bytes value;
} nc_kafka_header;

/* A record to produce, as KafkaRequestSerializer makes it (§4). */
typedef struct nc_kafka_msg {
    nc_kafka_bytes value; /* p NULL: null value */
    nc_kafka_bytes key;   /* p NULL: no key */
    nc_kafka_header *headers;
    size_t nheaders;
    int has_partition; /* the ready-made message named a partition */
    int32_t partition;
    int has_timestamp;
    int64_t timestamp;
} nc_kafka_msg;

/* Encodes one JSON value as a Kafka value/key/header value (§4 rule 2): a string as its raw UTF-8 bytes
 * (not quoted), an object or array as JSON.stringify text, a number or boolean as its JavaScript string
 * form ("5", "0.1", "true"), null as a null field (out->p NULL). v NULL (JavaScript undefined) is null too.
 * Returns 0 or NC_ENOMEM / NC_EINVAL (nesting too deep). */
int nc_kafka_encode_value(const json_t *v, nc_kafka_bytes *out);

/* Builds the record for data sent by a client (request or event) or one reply value (§4 rule 1): an
 * object with a "key" or a "value" member is a ready-made message {key?, value, headers?, partition?,
 * timestamp?} whose fields are encoded one by one (header values too; a null header value is dropped, as
 * KafkaJS cannot write one); anything else becomes {value: data}. data NULL is undefined (null value).
 * On failure the message is left empty. Free with nc_kafka_msg_free. */
int nc_kafka_msg_from_json(const json_t *data, nc_kafka_msg *out);

/* Appends a header (copies name and value; value NULL with n 0 is an empty value). Returns 0/NC_ENOMEM. */
int nc_kafka_msg_add_header(nc_kafka_msg *m, const char *name, const void *value, size_t n);
/* The first header of that name, or NULL. */
const nc_kafka_header *nc_kafka_msg_header(const nc_kafka_msg *m, const char *name);
void nc_kafka_msg_free(nc_kafka_msg *m);

/* Adds Nest's request headers (§6): kafka_correlationId = id, kafka_replyTopic = reply_topic and, when
 * reply_partition >= 0, kafka_replyPartition as a decimal string. Headers of the ready-made message stay
 * first, as Nest merges them. Returns 0 or NC_ENOMEM. */
int nc_kafka_add_request_headers(nc_kafka_msg *m, const char *id, const char *reply_topic,
                                 int32_t reply_partition);

/* Builds one reply record (§8): value = encoded result (result NULL: null value, the terminal-only
 * message), headers kafka_correlationId = id, kafka_nest-err = err encoded (strings as is, objects as
 * JSON; err NULL: no error header), and kafka_nest-is-disposed = one zero byte when disposed. A result
 * shaped like a ready-made message is sent as that message, as Nest does (§8's caveat). */
int nc_kafka_reply_msg(const json_t *result, const json_t *err, int disposed, const char *id, size_t id_len,
                       nc_kafka_msg *out);

/* Decodes a received value, key or header value like Nest's KafkaParser (§5): NULL p (a null field) is
 * JSON null; bytes starting with 0x00 stay a Buffer, returned as what JSON.stringify makes of one,
 * {"type":"Buffer","data":[...]}; otherwise the bytes are read as UTF-8 (ill-formed sequences become
 * U+FFFD as Node's decoder does) and a text starting with '{' or '[' is parsed as JSON when it is JSON;
 * everything else is a string ("5" stays the string "5"). Returns a new reference, NULL only when out of
 * memory. */
json_t *nc_kafka_decode(const char *p, size_t n);

/* The same, written as JSON text into out (appended). Returns 0 or NC_ENOMEM. */
int nc_kafka_decode_text(const char *p, size_t n, nc_buf *out);

/* Parses a kafka_replyPartition header value: a decimal string (JavaScript Number() of it, leading and
 * trailing whitespace allowed) within 0..INT32_MAX. Returns the partition, or -1 when it is not one
 * (Nest would pass NaN to KafkaJS; nestc then lets the producer's partitioner choose). */
int32_t nc_kafka_parse_partition(const char *p, size_t n);

#endif
