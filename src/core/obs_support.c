/* The core's side of the observability layer (core/obs_support.h, nestc/metrics.h): readiness, the admin
 * endpoint's registry and port, and the cheap figures the metrics hooks read from a message. */
#include "core/obs_support.h"
#include "core/client_internal.h"
#include "core/server_internal.h"
#include "nestc/error.h"
#include "nestc/metrics.h"
#include "obs/admin.h"

size_t nc_msg__data_len(const nc_msg *m) {
    return m && m->data_json ? m->data_json_len : 0;
}

const char *nc_msg__meta_text(const nc_msg *m, size_t *len) {
    if (!m || !m->scanned || m->meta_done || !m->meta_json) return NULL;
    *len = m->meta_json_len;
    return m->meta_json;
}

struct nc_wire_block *nc_server__wire(nc_server *s) {
    return s ? s->io.wire_block : NULL;
}

struct nc_wire_block *nc_client__wire(nc_client *c) {
    return c ? nc_client__io(c)->wire_block : NULL;
}

const nc_logger *nc_server__logger(const nc_server *s) {
    return &s->log;
}

int nc_server_health_get(nc_server *s, nc_server_health *out) {
    if (!s || !out) return NC_EINVAL;
    out->listening = s->listening && !s->transport_closed;
    out->connected = s->connected;
    out->draining = s->closing;
    out->ready = out->listening && out->connected && !out->draining && !s->health_not_serving;
    out->reconnects = s->reconnects;
    out->workers = s->cfg.workers;
    return 0;
}

nc_metrics *nc_server_metrics(nc_server *s) {
    return s ? nc_admin_metrics(s->admin) : NULL;
}

int nc_server_admin_port(const nc_server *s) {
    return s ? nc_admin_port(s->admin) : 0;
}
