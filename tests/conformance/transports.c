/* The transports the conformance suite runs on: one line each. CMake reads the TRANSPORT lines of this
 * file and registers one test per line, conformance.<name>, running `conformance <name>`.
 *
 * TRANSPORT(name, URL scheme, broker, flags) — flags in suite.h: what the transport does where
 * transports legitimately differ. A transport whose broker is not installed is skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suite.h"

#define TRANSPORT(name, scheme, broker, flags) {name, scheme, broker, flags},
static const conf_transport TRANSPORTS[] = {
    /* clang-format off */
    TRANSPORT("tcp",      "tcp",    CONF_NO_BROKER, CONF_CONNECTED)
    TRANSPORT("tls",      "tls",    CONF_NO_BROKER, CONF_CONNECTED | CONF_TLS)
    TRANSPORT("redis",    "redis",  CONF_REDIS,     0)
    TRANSPORT("rediss",   "rediss", CONF_REDIS,     CONF_TLS)
    TRANSPORT("nats",     "nats",   CONF_NATS,      CONF_HEADERS | CONF_NO_RESPONDERS | CONF_SUBJECT_CTX)
    TRANSPORT("nats_tls", "nats",   CONF_NATS,      CONF_HEADERS | CONF_NO_RESPONDERS | CONF_SUBJECT_CTX | CONF_TLS)
    TRANSPORT("mqtt",     "mqtt",   CONF_MQTT,      CONF_SUBJECT_CTX | CONF_UNKNOWN_TIMES_OUT)
    TRANSPORT("mqtts",    "mqtts",  CONF_MQTT,      CONF_SUBJECT_CTX | CONF_UNKNOWN_TIMES_OUT | CONF_TLS)
    TRANSPORT("amqp",     "amqp",   CONF_RABBIT,    CONF_HEADERS | CONF_HEADER_TABLE | CONF_CHANNEL_IS_QUEUE | CONF_SERVER_SEES_UNKNOWN | CONF_WORK_QUEUE | CONF_PENDING_LOST | CONF_REPLY_TO_CTX | CONF_SETTLES | CONF_REDELIVERED_CTX)
    TRANSPORT("amqps",    "amqps",  CONF_RABBIT,    CONF_HEADERS | CONF_HEADER_TABLE | CONF_CHANNEL_IS_QUEUE | CONF_SERVER_SEES_UNKNOWN | CONF_WORK_QUEUE | CONF_PENDING_LOST | CONF_REPLY_TO_CTX | CONF_SETTLES | CONF_REDELIVERED_CTX | CONF_TLS)
    TRANSPORT("kafka",    "kafka",  CONF_KAFKA,     CONF_HEADERS | CONF_TRANSPORT_HEADERS | CONF_TOPIC_ROUTES | CONF_SCALARS_AS_TEXT | CONF_SHARED_SERVER | CONF_END_AS_NULL | CONF_UNKNOWN_TIMES_OUT | CONF_REPLY_TO_CTX | CONF_PARTITION_CTX | CONF_NO_METADATA | CONF_NO_BROKER_AUTH | CONF_QUEUES_WHILE_DOWN | CONF_WARM_ROUTES | CONF_SETTLES)
    /* gRPC: patterns are suite.proto's methods, data JSON text in its messages (CONF_TYPED_MESSAGES) */
    TRANSPORT("grpc",     "grpc",   CONF_NO_BROKER, CONF_CONNECTED | CONF_HEADERS | CONF_TRANSPORT_HEADERS | CONF_TYPED_MESSAGES | CONF_NO_EVENTS | CONF_STATUS_ERRORS | CONF_TIMEOUT_CANCELS | CONF_WRITE_STATE | CONF_NO_METADATA)
    TRANSPORT("grpcs",    "grpc",   CONF_NO_BROKER, CONF_CONNECTED | CONF_HEADERS | CONF_TRANSPORT_HEADERS | CONF_TYPED_MESSAGES | CONF_NO_EVENTS | CONF_STATUS_ERRORS | CONF_TIMEOUT_CANCELS | CONF_WRITE_STATE | CONF_NO_METADATA | CONF_TLS)
    /* clang-format on */
};

static const char *broker_program(conf_broker_kind k) {
    return k == CONF_REDIS    ? "redis-server"
           : k == CONF_NATS   ? "nats-server"
           : k == CONF_MQTT   ? "mosquitto"
           : k == CONF_RABBIT ? "rabbitmq-server"
                              : NULL;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--list")) { /* the names, one a line (scripts/test.sh) */
        for (size_t i = 0; i < sizeof TRANSPORTS / sizeof *TRANSPORTS; i++)
            printf("%s\n", TRANSPORTS[i].name);
        return 0;
    }
    const conf_transport *t = NULL;
    for (size_t i = 0; argc == 2 && i < sizeof TRANSPORTS / sizeof *TRANSPORTS; i++)
        if (!strcmp(argv[1], TRANSPORTS[i].name)) t = &TRANSPORTS[i];
    if (!t) {
        fprintf(stderr, "usage: conformance TRANSPORT | --list (transports:");
        for (size_t i = 0; i < sizeof TRANSPORTS / sizeof *TRANSPORTS; i++)
            fprintf(stderr, " %s", TRANSPORTS[i].name);
        fprintf(stderr, ")\n");
        return 2;
    }
    if (t->broker == CONF_KAFKA) {
#ifdef NESTC_KAFKA_MOCK
        if (access(NESTC_KAFKA_MOCK, X_OK) != 0) {
            printf("conformance.%s: %s not built, skipped\n", t->name, NESTC_KAFKA_MOCK);
            return 0;
        }
#else
        printf("conformance.%s: built without Kafka (librdkafka), skipped\n", t->name);
        return 0;
#endif
    }
    const char *prog = broker_program(t->broker);
    if (prog && !(t->broker == CONF_RABBIT && getenv("NESTC_RMQ_URL"))) { /* a shared broker needs none */
        char cmd[160];
        /* mosquitto is installed in sbin, which a user's PATH may lack; RabbitMQ's own script is in lib */
        snprintf(cmd, sizeof cmd,
                 "command -v %s >/dev/null 2>&1 || test -x /usr/sbin/%s || test -x /usr/lib/rabbitmq/bin/%s",
                 prog, prog, prog);
        if (system(cmd) != 0) {
            printf("conformance.%s: %s not installed, skipped\n", t->name, prog);
            return 0;
        }
    }
    /* SIGPIPE keeps its default action: no write of the library may raise it (brokers get killed here) */
    nc_log_set_default(NULL, NULL, NC_LOG_OFF);
    if (fx_setup(t)) {
        fprintf(stderr, "conformance.%s: the fixture could not be set up\n", t->name);
        return 1;
    }
    int failed = conf_run();
    failed |= fx_teardown();
    return failed ? 1 : 0;
}
