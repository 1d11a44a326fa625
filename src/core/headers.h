/* Transport headers as the wire has them: ordered, byte values, names that may repeat (NATS message
 * headers, AMQP properties, Kafka record headers, gRPC metadata). Views into a transport's buffer:
 * borrowed, valid only for the call they are passed to. Shared by the server and client contracts.
 * Private. */
#ifndef NC_CORE_HEADERS_H
#define NC_CORE_HEADERS_H

#include <stddef.h>

typedef struct nc_header {
    const char *name; /* not NUL-terminated */
    size_t name_len;
    const char *value; /* bytes, not NUL-terminated, may hold NULs */
    size_t value_len;
} nc_header;

#endif
