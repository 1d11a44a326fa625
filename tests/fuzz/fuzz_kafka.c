/* libFuzzer: the Kafka value codec (codec/kafka_value.c). The input is decoded as a record value the way
 * Nest's KafkaParser reads it; whatever comes out, encoding it (as a reply or request value) must succeed,
 * and a decoded JSON object or array must encode to text that decodes to the same value again (decode is
 * idempotent on what encode writes). The input is also tried as a kafka_replyPartition header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_write.h"
#include "codec/kafka_value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    int32_t part = nc_kafka_parse_partition(p, size);
    if (part < -1) abort();
    json_t *v = nc_kafka_decode(p, size);
    if (!v) return 0; /* out of memory only */
    nc_kafka_msg m;
    if (nc_kafka_reply_msg(v, NULL, 1, "id", 2, &m) == 0) {
        if (!nc_kafka_msg_header(&m, "kafka_nest-is-disposed")) abort();
        nc_kafka_msg_free(&m);
    }
    nc_kafka_bytes b;
    if (nc_kafka_encode_value(v, &b) == 0) {
        if (json_is_string(v) && (b.n != json_string_length(v) || memcmp(b.p, json_string_value(v), b.n)))
            abort(); /* strings go raw */
        if (b.p && (json_is_object(v) || json_is_array(v))) {
            json_t *again = nc_kafka_decode(b.p, b.n);
            if (again) {
                nc_buf x = NC_BUF_INIT, y = NC_BUF_INIT;
                if (nc_json_write(&x, v) == 0 && nc_json_write(&y, again) == 0 &&
                    (x.len != y.len || memcmp(x.data, y.data, x.len)))
                    abort();
                nc_buf_free(&x);
                nc_buf_free(&y);
                nc_json_free(again);
            }
        }
        free(b.p);
    }
    nc_json_free(v);
    return 0;
}
