/* The MQTT client's outgoing QoS 1/2 state (MQTT 3.1.1 and 5 §4.3, §4.4, §4.9), sans-I/O: each PUBLISH
 * of QoS 1 or 2 is kept, encoded, by packet identifier and in send order until the broker completed it
 * (PUBACK for QoS 1; PUBREC then PUBCOMP for QoS 2, the state becoming "PUBREL sent" in between), written
 * at most Receive Maximum at a time, and after a reconnection written again in the original order: the
 * PUBLISH with DUP set when the broker kept the session (without when it did not: a new publish in the new
 * session, same identifier), a PUBREL for one that had its PUBREC. Packet identifiers are allocated here,
 * skipping every identifier in use (kept PUBLISHes, and what the caller reports busy: its SUBSCRIBEs).
 * The caller does the I/O (a write callback) and owns what `user` points to. Private. */
#ifndef NC_TRANSPORT_MQTT_OUTBOX_H
#define NC_TRANSPORT_MQTT_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "util/u64map.h"

enum {
    NC_MQTT_OB_PUBLISH, /* the PUBLISH is due or written, no acknowledgement yet */
    NC_MQTT_OB_PUBREL   /* QoS 2: PUBREC came, PUBREL written or due, PUBCOMP awaited */
};

typedef struct nc_mqtt_ob_entry {
    struct nc_mqtt_ob_entry *prev, *next;
    void *user;
    size_t len;
    uint16_t id;
    uint8_t qos, state;
    uint8_t sent; /* written on the current connection (counts against the window) */
    uint8_t ever; /* written on some connection (a resend carries DUP if the session was kept) */
    char pkt[];   /* the encoded PUBLISH */
} nc_mqtt_ob_entry;

typedef struct nc_mqtt_outbox {
    nc_mqtt_ob_entry *head, *tail;
    nc_mqtt_ob_entry *due; /* the first entry not written on the current connection; all after it too */
    nc_u64map byid;        /* packet id -> entry */
    size_t count, bytes;
    size_t cap_bytes; /* 0 = no cap */
    size_t inflight;  /* entries written on the current connection and not completed */
    uint16_t window;  /* Receive Maximum; 0 = no limit (MQTT 3.1.1) */
    uint16_t next_id; /* the last identifier handed out */
} nc_mqtt_outbox;

/* Says whether the caller uses id for something else (a SUBSCRIBE awaiting its SUBACK). */
typedef int (*nc_mqtt_ob_busy)(void *arg, uint16_t id);
/* Writes one packet; nonzero: not written (it stays due and is tried again at the next pump). */
typedef int (*nc_mqtt_ob_write)(void *arg, const char *p, size_t n);

/* cap_bytes bounds the bytes kept (0 = unbounded); first_id: identifiers start after it. */
void nc_mqtt_outbox_init(nc_mqtt_outbox *ob, size_t cap_bytes, uint16_t first_id);
/* Frees every entry (the users are the caller's: take them first with nc_mqtt_outbox_pop). */
void nc_mqtt_outbox_free(nc_mqtt_outbox *ob);

/* A free packet identifier (not kept here, not busy), or 0 when all 65,535 are in use. */
uint16_t nc_mqtt_outbox_next_id(nc_mqtt_outbox *ob, nc_mqtt_ob_busy busy, void *arg);

/* Keeps a copy of an encoded PUBLISH of QoS 1 or 2 (any nonzero id: it is given a free one, *id) at the
 * end of the send order. Returns 0; NC_ESTALLED when the copy would take the kept bytes over the cap or
 * no identifier is free; NC_EINVAL when the bytes are not such a PUBLISH; NC_ENOMEM. */
int nc_mqtt_outbox_add(nc_mqtt_outbox *ob, const char *pkt, size_t n, void *user, nc_mqtt_ob_busy busy,
                       void *arg, uint16_t *id);

/* Writes what is due, in order, while fewer than the window are unacknowledged; stops at the first write
 * that fails. Returns how many packets were written. */
size_t nc_mqtt_outbox_pump(nc_mqtt_outbox *ob, nc_mqtt_ob_write write, void *arg);

/* A PUBACK, PUBREC or PUBCOMP from the broker (type NC_MQTT_PUB*, its reason code). Returns the entry's
 * user, or NULL when no written entry expects that packet (ignored). *done: 1 when the entry is completed
 * and removed (PUBACK; PUBCOMP; a PUBREC with a reason >= 0x80, which ends a QoS 2 exchange on MQTT 5),
 * 0 when it moved on to "PUBREL sent" (the connection wrote the PUBREL). */
void *nc_mqtt_outbox_ack(nc_mqtt_outbox *ob, int type, uint16_t id, uint8_t reason, int *done);

/* A new connection was accepted (CONNACK): everything is due again, in the original order; PUBLISHes
 * already written carry DUP if session_present; window is the broker's Receive Maximum (0 = none). */
void nc_mqtt_outbox_reconnect(nc_mqtt_outbox *ob, int session_present, uint16_t window);

/* Removes the first entry and returns its user (NULL when empty): to fail or free everything. */
void *nc_mqtt_outbox_pop(nc_mqtt_outbox *ob);

#endif
