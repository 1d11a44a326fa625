/* The MQTT client's outgoing QoS 1/2 state (mqtt_outbox.h): a list in send order plus a map by packet
 * identifier. Everything before `due` was written on the current connection; a reconnection moves `due`
 * back to the head, so the resend keeps the original order. Private. */
#include "transport/mqtt/mqtt_outbox.h"

#include <stdlib.h>
#include <string.h>

#include "codec/mqtt_proto.h"
#include "nestc/error.h"

void nc_mqtt_outbox_init(nc_mqtt_outbox *ob, size_t cap_bytes, uint16_t first_id) {
    memset(ob, 0, sizeof *ob);
    ob->cap_bytes = cap_bytes;
    ob->next_id = first_id;
}

static void unlink_entry(nc_mqtt_outbox *ob, nc_mqtt_ob_entry *e) {
    if (ob->due == e) ob->due = e->next;
    if (e->prev)
        e->prev->next = e->next;
    else
        ob->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        ob->tail = e->prev;
    nc_u64map_del(&ob->byid, e->id);
    if (e->sent) ob->inflight--;
    ob->count--;
    ob->bytes -= e->len;
}

void *nc_mqtt_outbox_pop(nc_mqtt_outbox *ob) {
    nc_mqtt_ob_entry *e = ob->head;
    if (!e) return NULL;
    unlink_entry(ob, e);
    void *user = e->user;
    free(e);
    return user;
}

void nc_mqtt_outbox_free(nc_mqtt_outbox *ob) {
    while (ob->head) nc_mqtt_outbox_pop(ob);
    nc_u64map_free(&ob->byid);
    memset(&ob->byid, 0, sizeof ob->byid);
}

uint16_t nc_mqtt_outbox_next_id(nc_mqtt_outbox *ob, nc_mqtt_ob_busy busy, void *arg) {
    for (unsigned tries = 0; tries < 65535; tries++) {
        if (++ob->next_id == 0) ob->next_id = 1;
        uint16_t id = ob->next_id;
        if (nc_u64map_get(&ob->byid, id)) continue;
        if (busy && busy(arg, id)) continue;
        return id;
    }
    return 0;
}

int nc_mqtt_outbox_add(nc_mqtt_outbox *ob, const char *pkt, size_t n, void *user, nc_mqtt_ob_busy busy,
                       void *arg, uint16_t *id) {
    if (n < 2 || ((unsigned char)pkt[0] >> 4) != NC_MQTT_PUBLISH) return NC_EINVAL;
    uint8_t qos = (uint8_t)(((unsigned char)pkt[0] >> 1) & 3);
    if (qos != 1 && qos != 2) return NC_EINVAL;
    if (ob->cap_bytes && (n > ob->cap_bytes || ob->bytes > ob->cap_bytes - n)) return NC_ESTALLED;
    uint16_t pid = nc_mqtt_outbox_next_id(ob, busy, arg);
    if (!pid) return NC_ESTALLED;
    nc_mqtt_ob_entry *e = malloc(sizeof *e + n);
    if (!e) return NC_ENOMEM;
    memset(e, 0, sizeof *e);
    memcpy(e->pkt, pkt, n);
    if (nc_mqtt_publish_patch(e->pkt, n, pid, 0)) {
        free(e);
        return NC_EINVAL;
    }
    if (nc_u64map_put(&ob->byid, pid, e)) {
        free(e);
        return NC_ENOMEM;
    }
    e->user = user;
    e->len = n;
    e->id = pid;
    e->qos = qos;
    e->state = NC_MQTT_OB_PUBLISH;
    e->prev = ob->tail;
    if (ob->tail)
        ob->tail->next = e;
    else
        ob->head = e;
    ob->tail = e;
    if (!ob->due) ob->due = e;
    ob->count++;
    ob->bytes += n;
    if (id) *id = pid;
    return 0;
}

size_t nc_mqtt_outbox_pump(nc_mqtt_outbox *ob, nc_mqtt_ob_write write, void *arg) {
    size_t n = 0;
    while (ob->due && (!ob->window || ob->inflight < ob->window)) {
        nc_mqtt_ob_entry *e = ob->due;
        if (e->state == NC_MQTT_OB_PUBREL) {
            /* the same four bytes on MQTT 3.1.1 and 5 (reason 0 is left out) */
            char rel[4] = {(char)(NC_MQTT_PUBREL << 4 | 2), 2, (char)(e->id >> 8), (char)(e->id & 0xff)};
            if (write(arg, rel, sizeof rel)) break;
        } else if (write(arg, e->pkt, e->len)) {
            break;
        }
        e->sent = 1;
        e->ever = 1;
        ob->inflight++;
        ob->due = e->next;
        n++;
    }
    return n;
}

void *nc_mqtt_outbox_ack(nc_mqtt_outbox *ob, int type, uint16_t id, uint8_t reason, int *done) {
    *done = 0;
    nc_mqtt_ob_entry *e = nc_u64map_get(&ob->byid, id);
    if (!e || !e->sent) return NULL;
    int complete;
    if (type == NC_MQTT_PUBACK && e->qos == 1)
        complete = 1;
    else if (type == NC_MQTT_PUBREC && e->qos == 2 && e->state == NC_MQTT_OB_PUBLISH)
        complete = reason >= 0x80;
    else if (type == NC_MQTT_PUBCOMP && e->qos == 2 && e->state == NC_MQTT_OB_PUBREL)
        complete = 1;
    else
        return NULL;
    void *user = e->user;
    if (!complete) {
        e->state = NC_MQTT_OB_PUBREL;
        return user;
    }
    unlink_entry(ob, e);
    free(e);
    *done = 1;
    return user;
}

void nc_mqtt_outbox_reconnect(nc_mqtt_outbox *ob, int session_present, uint16_t window) {
    ob->window = window;
    ob->inflight = 0;
    ob->due = ob->head;
    for (nc_mqtt_ob_entry *e = ob->head; e; e = e->next) {
        e->sent = 0;
        if (e->state == NC_MQTT_OB_PUBLISH)
            nc_mqtt_publish_patch(e->pkt, e->len, e->id, session_present && e->ever);
    }
}
