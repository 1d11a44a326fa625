/* The MQTT transport (mqtt://, mqtts://, spec mqtt.md): ops tables, the connection settings read from the
 * URL and options, and one MQTT connection on nestc's own stream. Private. */
#ifndef NC_TRANSPORT_MQTT_H
#define NC_TRANSPORT_MQTT_H

#include "codec/mqtt_proto.h"
#include "core/log.h"
#include "core/options.h"
#include "core/url.h"
#include "io/dial.h"
#include "nestc/tls.h"
#include "transport/common/broker_target.h"
#include "transport/transport.h"

extern const nc_server_transport nc_mqtt_server_transport;
extern const nc_client_transport nc_mqtt_client_transport;

/* The options of mqtt:// and mqtts:// (NestJS MqttOptions names), shared by the server and client tables. */
extern const nc_option_spec nc_mqtt_options[];

/* Where and how to connect; owned by the transport, outlives its connections. */
typedef struct nc_mqtt_target {
    nc_broker_target b; /* b.user / b.password: CONNECT's user name and password; b.ssl for mqtts:// */
    int version;        /* NC_MQTT_V311 or NC_MQTT_V5 */
    char *client_id;    /* given, or random (nestc_ + 8 hex digits), kept across reconnections */
    int clean;
    int keepalive_s;      /* 0 = no keep-alive */
    uint32_t max_packet;  /* the largest packet we accept (0 = the protocol's maximum) */
    uint32_t broker_max;  /* the broker's Maximum Packet Size (v5 CONNACK), 0 = none */
    uint8_t broker_qos;   /* the broker's Maximum QoS (v5 CONNACK; 2 when it gives none) */
    uint8_t retain_ok;    /* the broker's Retain Available (v5 CONNACK; 1 when it gives none) */
    uint16_t receive_max; /* receiveMaximum: announced in a v5 CONNECT; 0 = none (the protocol's 65,535) */
    /* v5 CONNECT's Session Expiry Interval (sessionExpiryInterval; without it clean=false asks for
     * 0xFFFFFFFF, kept while away, and clean=true for none) */
    int has_session_expiry;
    uint32_t session_expiry;
    /* the will (willTopic ...): published by the broker when the connection ends without DISCONNECT */
    char *will_topic; /* NULL: no will */
    char *will_payload;
    uint8_t will_qos;
    int will_retain;
} nc_mqtt_target;

/* Fills t from mqtt[s]://[user[:pass]@]host[:port] (port 1883, mqtts 8883) and the options
 * (protocolVersion, clientId, username, password, clean, keepalive, the will, sessionExpiryInterval). Returns
 * 0 or an nc_err (logged). */
int nc_mqtt_target_init(nc_mqtt_target *t, const nc_url *url, const nc_optset *opts, const nc_tls_opts *tls,
                        const nc_logger *log, const char *component);
void nc_mqtt_target_free(nc_mqtt_target *t);

/* ---- one connection ---- */

typedef struct nc_mqtt_conn nc_mqtt_conn;

typedef struct nc_mqtt_conn_cbs {
    /* CONNACK accepted. */
    void (*on_ready)(nc_mqtt_conn *c, int session_present);
    /* PUBLISH (acknowledged by the connection after this returns 0; nonzero: not acknowledged now: the
     * owner acknowledges it later with nc_mqtt_conn_ack, or never, so a broker keeping the session
     * delivers it again on a later connection), SUBACK, UNSUBACK, PUBACK, PUBREL (its PUBCOMP is sent),
     * PUBREC (its PUBREL is sent, unless the reason is a failure), PUBCOMP, and the accepted CONNACK just
     * before on_ready (Receive Maximum). An owner ignores the types it has no use for. */
    int (*on_pkt)(nc_mqtt_conn *c, const nc_mqtt_pkt *pkt);
    /* Failed or closed (err 0 = on request). Once; the object frees itself afterwards. */
    void (*on_end)(nc_mqtt_conn *c, int err, const char *msg);
} nc_mqtt_conn_cbs;

struct nc_mqtt_conn {
    nc_dial d; /* first: the connection attempt, the stream and the handles' life */
    nc_mqtt_target *t;
    const nc_mqtt_conn_cbs *cbs;
    const nc_logger *log;
    const char *component;
    void *owner;
    nc_mqtt_parser parser;
    int state;
    int ping_out, heard; /* keep-alive: a PINGREQ unanswered; anything received since it was sent */
    uint16_t next_id;
    nc_buf out;
};

nc_mqtt_conn *nc_mqtt_conn_new(nc_ioctx *io, nc_mqtt_target *t, int delay_ms, const nc_mqtt_conn_cbs *cbs,
                               const nc_logger *log, const char *component, void *owner);
int nc_mqtt_conn_ready(const nc_mqtt_conn *c);
/* Packet bytes. Returns 0, NC_ECLOSED or NC_ESTALLED (max_queue bytes waiting). */
int nc_mqtt_conn_write(nc_mqtt_conn *c, const char *p, size_t n);
/* A packet identifier for SUBSCRIBE, UNSUBSCRIBE or a QoS > 0 PUBLISH (never 0). */
uint16_t nc_mqtt_conn_next_id(nc_mqtt_conn *c);
/* Writes one PUBLISH (refused with NC_ETOOBIG over the broker's Maximum Packet Size). */
int nc_mqtt_conn_publish(nc_mqtt_conn *c, const nc_mqtt_publish *m);
/* PUBACK or PUBREC of an incoming PUBLISH whose on_pkt returned nonzero (reason: v5 only, 0 = success).
 * Nothing when the connection is not ready (ended, or replaced). */
void nc_mqtt_conn_ack(nc_mqtt_conn *c, int type, uint16_t id, uint8_t reason);
/* graceful: DISCONNECT after what is queued, then FIN. on_end(0) follows. */
void nc_mqtt_conn_close(nc_mqtt_conn *c, int graceful);

/* A connection that ended after at least this long since its CONNACK starts the reconnect policy over;
 * one that ended sooner counts as a failed attempt, so a broker that accepts and then breaks every
 * connection (garbage, a refused subscription, an oversized packet) is not reconnected to in a loop. */
#define NC_MQTT_HEALTHY_MS 5000

/* Reply topic of a topic: "<topic>/reply" into a malloc'd string (NULL: out of memory). */
char *nc_mqtt_reply_topic(const char *topic, size_t len);

#endif
