/* Transport headers as the wire has them: ordered, byte values, names that may repeat (NATS message
 * headers, AMQP properties, Kafka record headers, gRPC metadata). The type lives in util/header.h so the
 * codecs that parse header blocks can use it; this name is kept for the client contract. Private. */
#ifndef NC_CORE_HEADERS_H
#define NC_CORE_HEADERS_H

#include "util/header.h"

#endif
