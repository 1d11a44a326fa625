#include "codec/envelope.h"

#include <string.h>

#include "codec/json_write.h"
#include "nestc/error.h"

#define APPEND_LIT(b, s) nc_buf_append((b), (s), sizeof(s) - 1)

int nc_json_truthy(const json_t *v) {
    if (!v) return 0;
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    default:
        return 1;
    }
}

static json_t *load(const char *text, size_t len) {
    json_t *v = NULL;
    char err[8];
    nc_json_parse(text, len, &v, err, sizeof err);
    return v;
}

static int write_via_codec(nc_buf *out, json_t *pkt, const nc_codec *codec) {
    if (!pkt) return NC_ENOMEM;
    json_t *x = codec->serialize(codec->user, pkt);
    json_decref(pkt);
    if (!x) return NC_EINVAL;
    int r = nc_json_write(out, x);
    json_decref(x);
    return r;
}

int nc_envelope_write_reply(nc_buf *out, const nc_reply_pkt *p, const nc_codec *codec) {
    if (codec && codec->serialize) {
        json_t *o = json_object();
        if (!o) return NC_ENOMEM;
        if (p->no_handler) {
            json_object_set_new(o, "id", load(p->id, p->id_len));
            json_object_set_new(o, "status", json_string("error"));
            json_object_set_new(o, "err", json_string(NC_NO_HANDLER_MSG));
        } else {
            if (p->response) json_object_set_new(o, "response", load(p->response, p->response_len));
            if (p->err) json_object_set_new(o, "err", load(p->err, p->err_len));
            if (p->disposed) json_object_set_new(o, "isDisposed", json_true());
            json_object_set_new(o, "id", load(p->id, p->id_len));
        }
        return write_via_codec(out, o, codec);
    }
    int r = 0;
    if (p->no_handler) {
        r |= APPEND_LIT(out, "{\"id\":");
        r |= nc_buf_append(out, p->id, p->id_len);
        r |= APPEND_LIT(out, ",\"status\":\"error\",\"err\":\"" NC_NO_HANDLER_MSG "\"}");
        return r ? NC_ENOMEM : 0;
    }
    if (nc_buf_reserve(out, p->response_len + p->err_len + p->id_len + 40)) return NC_ENOMEM;
    r |= nc_buf_append_char(out, '{');
    if (p->response) {
        r |= APPEND_LIT(out, "\"response\":");
        r |= nc_buf_append(out, p->response, p->response_len);
        r |= nc_buf_append_char(out, ',');
    } else if (p->err) {
        r |= APPEND_LIT(out, "\"err\":");
        r |= nc_buf_append(out, p->err, p->err_len);
        r |= nc_buf_append_char(out, ',');
    }
    if (p->disposed) r |= APPEND_LIT(out, "\"isDisposed\":true,");
    r |= APPEND_LIT(out, "\"id\":");
    r |= nc_buf_append(out, p->id, p->id_len);
    r |= nc_buf_append_char(out, '}');
    return r ? NC_ENOMEM : 0;
}

/* `,"data":…,"metadata":…,"id":"…"}`: everything after the pattern. */
static int write_request_tail(nc_buf *out, const json_t *data, const json_t *metadata, const char *id) {
    int r = APPEND_LIT(out, ",\"data\":");
    r |= nc_json_write(out, data);
    if (metadata) {
        r |= APPEND_LIT(out, ",\"metadata\":");
        r |= nc_json_write(out, metadata);
    }
    if (id) {
        r |= APPEND_LIT(out, ",\"id\":\"");
        r |= nc_buf_append_str(out, id); /* our ids are hex: nothing to escape */
        r |= nc_buf_append_char(out, '"');
    }
    r |= nc_buf_append_char(out, '}');
    return r ? NC_ENOMEM : 0;
}

int nc_envelope_write_request(nc_buf *out, const json_t *pattern, const json_t *data, const json_t *metadata,
                              const char *id, const nc_codec *codec) {
    if (codec && codec->serialize) {
        json_t *o = json_object();
        if (!o) return NC_ENOMEM;
        json_object_set(o, "pattern", (json_t *)pattern);
        json_object_set(o, "data", (json_t *)data);
        if (metadata) json_object_set(o, "metadata", (json_t *)metadata);
        if (id) json_object_set_new(o, "id", json_string(id));
        return write_via_codec(out, o, codec);
    }
    if (APPEND_LIT(out, "{\"pattern\":") || nc_json_write(out, pattern)) return NC_ENOMEM;
    return write_request_tail(out, data, metadata, id);
}

int nc_envelope_write_request_text(nc_buf *out, const char *pattern, size_t plen, const json_t *data,
                                   const json_t *metadata, const char *id) {
    if (APPEND_LIT(out, "{\"pattern\":") || nc_buf_append(out, pattern, plen)) return NC_ENOMEM;
    return write_request_tail(out, data, metadata, id);
}

void nc_envelope_read_response(json_t *root, nc_response *r) {
    memset(r, 0, sizeof *r);
    int foreign = !json_is_object(root) || json_object_size(root) == 0;
    if (!foreign) {
        const char *k;
        json_t *v;
        json_object_foreach(root, k, v) {
            if (strcmp(k, "id") && strcmp(k, "err") && strcmp(k, "response") && strcmp(k, "isDisposed") &&
                strcmp(k, "status")) {
                foreign = 1;
                break;
            }
        }
    }
    if (foreign) {
        r->id = json_is_object(root) ? json_object_get(root, "id") : NULL;
        r->response = root;
        r->final = 1;
        return;
    }
    r->id = json_object_get(root, "id");
    r->response = json_object_get(root, "response");
    json_t *err = json_object_get(root, "err");
    r->err = nc_json_truthy(err) ? err : NULL;
    r->final = nc_json_truthy(json_object_get(root, "isDisposed")) || r->err;
}
