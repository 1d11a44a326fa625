/* Connection settings of an MQTT URL and the options, shared by the server and the client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/fail.h"
#include "nestc/error.h"
#include "transport/mqtt/mqtt.h"

static const char *const versions[] = {"4", "5", NULL};

/* The options of mqtt:// and mqtts:// (nestc/options.h): NestJS MqttOptions / mqtt.js names where they
 * exist; subscribeOptions, MqttRecord options and properties, and the will flattened to one name each
 * (qos, nl, rap, rh, retain, dup, contentType ..., willTopic ...). */
const nc_option_spec nc_mqtt_options[] = {
    {.name = "protocolVersion",
     .type = NC_OPT_ENUM,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "MQTT protocol level: 4 (MQTT 3.1.1, mqtt.js's default) or 5",
     .def = "4",
     .choices = versions},
    {.name = "clientId",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "client identifier (default: nestc_ and 8 random hex digits, as mqtt.js's mqttjs_...)"},
    {.name = "username",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "user name of CONNECT (also from the URL's user@)"},
    {.name = "password",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "password of CONNECT (also from the URL's user:password@)"},
    {.name = "clean",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "clean session (3.1.1) / clean start (5); false keeps the broker's session across reconnections",
     .def = "true"},
    {.name = "keepalive",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "keep-alive in seconds: PINGREQ every period, the connection is lost when a period passes "
             "without an answer; 0 = off",
     .def = "60",
     .min = 0,
     .max = 65535},
    {.name = "connectTimeout",
     .type = NC_OPT_DURATION,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "ms to wait for the CONNACK, TCP and TLS included (mqtt.js's default 30,000; a client "
             "without it uses its connect_timeout_ms)"},
    {.name = "qos",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_HANDLER | NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "server and handler: QoS of the subscriptions (NestJS subscribeOptions.qos / extras.qos); "
             "client (every call's default) and call: QoS of the request or event PUBLISH (MqttRecord "
             "setQoS). Replies are always QoS 0, as NestJS's",
     .def = "0",
     .min = 0,
     .max = 2},
    {.name = "nl",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_HANDLER,
     .help = "MQTT 5 No Local subscription option (subscribeOptions.nl)",
     .def = "false"},
    {.name = "rap",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_HANDLER,
     .help = "MQTT 5 Retain As Published subscription option (subscribeOptions.rap)",
     .def = "false"},
    {.name = "rh",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_HANDLER,
     .help = "MQTT 5 Retain Handling subscription option (subscribeOptions.rh): 0, 1 or 2",
     .def = "0",
     .min = 0,
     .max = 2},
    {.name = "retain",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "retain flag of the request or event PUBLISH (MqttRecord setRetain; client: every call's "
             "default)",
     .def = "false"},
    {.name = "share",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_HANDLER,
     .help = "shared subscription group: handlers subscribe $share/<group>/<route>, so the servers of a "
             "group compete for its messages (NestJS: a $share/<group>/ handler pattern)"},
    {.name = "receiveMaximum",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "MQTT 5 Receive Maximum of CONNECT: QoS 1 and 2 messages the broker may send before earlier "
             "ones are acknowledged (a server acknowledges a message once its handler settled it, so this "
             "bounds unsettled messages, like a prefetch); 0 = not announced (65,535). MQTT 3.1.1: the "
             "broker's own in-flight limit applies",
     .def = "0",
     .min = 0,
     .max = 65535},
    {.name = "dup",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_CALL,
     .help = "DUP flag of the request or event PUBLISH (MqttRecord setDup); at QoS 0 it is not sent (the "
             "protocol forbids it there)",
     .def = "false"},
    {.name = "contentType",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "MQTT 5 Content Type of the request or event PUBLISH (MqttRecord properties.contentType; "
             "client: every call's default); ignored on MQTT 3.1.1, as mqtt.js does"},
    {.name = "messageExpiryInterval",
     .type = NC_OPT_INT,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "MQTT 5 Message Expiry Interval in seconds of the request or event PUBLISH: the broker drops "
             "it when not delivered by then (MqttRecord properties.messageExpiryInterval; client: every "
             "call's default); ignored on MQTT 3.1.1",
     .min = 0,
     .max = 4294967295LL},
    {.name = "payloadFormatIndicator",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_CLIENT | NC_OPT_CALL,
     .help = "MQTT 5 Payload Format Indicator of the request or event PUBLISH: true = UTF-8, false = bytes "
             "(MqttRecord properties.payloadFormatIndicator; client: every call's default); ignored on MQTT "
             "3.1.1"},
    {.name = "willTopic",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "topic of the will message the broker publishes when the connection ends without DISCONNECT "
             "(NestJS will.topic)"},
    {.name = "willPayload",
     .type = NC_OPT_STRING,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "payload of the will message (will.payload), sent as given (default: empty)"},
    {.name = "willQos",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "QoS of the will message (will.qos)",
     .def = "0",
     .min = 0,
     .max = 2},
    {.name = "willRetain",
     .type = NC_OPT_BOOL,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "retain flag of the will message (will.retain)",
     .def = "false"},
    {.name = "sessionExpiryInterval",
     .type = NC_OPT_INT,
     .levels = NC_OPT_SERVER | NC_OPT_CLIENT,
     .help = "MQTT 5 Session Expiry Interval of CONNECT in seconds (properties.sessionExpiryInterval): how "
             "long the broker keeps the session after the connection ends; without it clean=false keeps it "
             "while away (4294967295) and clean=true does not keep it. Ignored on MQTT 3.1.1",
     .min = 0,
     .max = 4294967295LL},
    {.name = NULL},
};

int nc_mqtt_target_init(nc_mqtt_target *t, const nc_url *url, const nc_optset *opts, const nc_tls_opts *tls,
                        const nc_logger *log, const char *component) {
    memset(t, 0, sizeof *t);
    int tls_on = !strcmp(url->scheme, "mqtts");
    int r = nc_broker_target_init(&t->b, url, tls_on ? 8883 : 1883);
    if (r) return r;
    t->version = nc_opts_int(opts, "protocolVersion") == 1 ? NC_MQTT_V5 : NC_MQTT_V311;
    t->clean = nc_opts_bool(opts, "clean");
    t->keepalive_s = (int)nc_opts_int(opts, "keepalive");
    t->receive_max = (uint16_t)nc_opts_int(opts, "receiveMaximum");
    if (nc_opts_find(opts, "sessionExpiryInterval")) {
        t->has_session_expiry = 1;
        t->session_expiry = (uint32_t)nc_opts_int(opts, "sessionExpiryInterval");
    }
    t->will_qos = (uint8_t)nc_opts_int(opts, "willQos");
    t->will_retain = nc_opts_bool(opts, "willRetain");
    const char *s;
    if ((s = nc_opts_str(opts, "willTopic"))) {
        if (!nc_mqtt_topic_ok(s, strlen(s))) {
            nc_mqtt_target_free(t);
            return nc_fail(log, component, NC_EINVAL, "willTopic %.150s is not a valid MQTT topic name", s);
        }
        if (!(t->will_topic = strdup(s))) goto nomem;
        s = nc_opts_str(opts, "willPayload");
        if (!(t->will_payload = strdup(s ? s : ""))) goto nomem;
        if (strlen(t->will_payload) > 65535) {
            nc_mqtt_target_free(t);
            return nc_fail(log, component, NC_EINVAL, "willPayload is over 65,535 bytes");
        }
    } else if (nc_opts_find(opts, "willPayload") || nc_opts_find(opts, "willQos") ||
               nc_opts_find(opts, "willRetain")) {
        nc_mqtt_target_free(t);
        return nc_fail(log, component, NC_EINVAL, "willPayload, willQos and willRetain need willTopic");
    }
    if ((s = nc_opts_str(opts, "username"))) {
        free(t->b.user);
        if (!(t->b.user = strdup(s))) goto nomem;
    }
    if ((s = nc_opts_str(opts, "password"))) {
        free(t->b.password);
        if (!(t->b.password = strdup(s))) goto nomem;
    }
    if (t->b.password && !t->b.user && t->version == NC_MQTT_V311) {
        nc_mqtt_target_free(t);
        return nc_fail(log, component, NC_EINVAL, "MQTT 3.1.1 needs a user name with a password");
    }
    if ((s = nc_opts_str(opts, "clientId")) && *s) {
        if (!(t->client_id = strdup(s))) goto nomem;
    } else {
        /* random, as mqtt.js's mqttjs_ + 8 hex digits: two nestc processes must not take each other's id
         * (the broker would disconnect the first one) */
        uint64_t seed = uv_hrtime() ^ (uint64_t)(uintptr_t)t ^ ((uint64_t)uv_os_getpid() << 32);
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        char id[32];
        snprintf(id, sizeof id, "nestc_%08x", (unsigned)(seed >> 32));
        if (!(t->client_id = strdup(id))) goto nomem;
    }
    if (tls_on && (r = nc_broker_target_tls(&t->b, tls, log, component))) {
        nc_mqtt_target_free(t);
        return r;
    }
    return 0;
nomem:
    nc_mqtt_target_free(t);
    return NC_ENOMEM;
}

void nc_mqtt_target_free(nc_mqtt_target *t) {
    nc_broker_target_free(&t->b);
    free(t->client_id);
    free(t->will_topic);
    free(t->will_payload);
    memset(t, 0, sizeof *t);
}

char *nc_mqtt_reply_topic(const char *topic, size_t len) {
    char *s = malloc(len + 7);
    if (!s) return NULL;
    memcpy(s, topic, len);
    memcpy(s + len, "/reply", 7);
    return s;
}
