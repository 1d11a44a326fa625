/* One call of the gRPC client: request framing state, response headers and status (grpc_client_call.h). */
#include "transport/grpc/grpc_client_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"

gcall *nc_gcall_new(const char *id, const nc_pb_method *m, uint32_t max_message) {
    gcall *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    snprintf(k->id, sizeof k->id, "%s", id);
    k->refs = 1;
    k->m = m;
    k->status = -1;
    nc_grpc_reader_init(&k->rd, max_message);
    return k;
}

void nc_gcall_unref(gcall *k) {
    if (--k->refs) return;
    nc_buf_free(&k->out);
    nc_buf_free(&k->status_msg);
    nc_buf_free(&k->hdr);
    nc_buf_free(&k->trl);
    nc_buf_free(&k->hb);
    free(k->nv);
    nc_grpc_reader_free(&k->rd);
    free(k->encoding);
    free(k);
}

void nc_gcall_link(gcall **head, gcall *k) {
    k->prev = NULL;
    k->next = *head;
    if (*head) (*head)->prev = k;
    *head = k;
}

void nc_gcall_unlink(gcall **head, gcall *k) {
    if (k->prev)
        k->prev->next = k->next;
    else if (*head == k)
        *head = k->next;
    else
        return; /* not linked */
    if (k->next) k->next->prev = k->prev;
    k->prev = k->next = NULL;
}

static int put_pair(nc_buf *b, const char *n, size_t nl, const char *v, size_t vl) {
    uint32_t a = (uint32_t)nl, c = (uint32_t)vl;
    if (nc_buf_append(b, &a, 4) || nc_buf_append(b, n, nl) || nc_buf_append(b, &c, 4) ||
        nc_buf_append(b, v, vl))
        return NC_ENOMEM;
    return 0;
}

size_t nc_gcall_pairs(const nc_buf *b, nc_header *out, size_t max) {
    size_t off = 0, n = 0;
    while (n < max && off < b->len) {
        uint32_t l;
        memcpy(&l, b->data + off, 4);
        out[n].name = b->data + off + 4;
        out[n].name_len = l;
        off += 4 + l;
        memcpy(&l, b->data + off, 4);
        out[n].value = b->data + off + 4;
        out[n].value_len = l;
        off += 4 + l;
        n++;
    }
    return n;
}

#define IS(lit) (nl == sizeof lit - 1 && !memcmp(n, lit, nl))

int nc_gcall_on_header(gcall *k, int trailer, const char *n, size_t nl, const char *v, size_t vl) {
    if (IS(":status")) {
        k->http_status = 0;
        for (size_t i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++)
            k->http_status = k->http_status * 10 + v[i] - '0';
        return 0;
    }
    if (IS("grpc-status")) {
        int s = 0;
        for (size_t i = 0; i < vl && i < 6; i++) {
            if (v[i] < '0' || v[i] > '9') {
                s = 2; /* not a number: UNKNOWN, as grpc-js reads it */
                break;
            }
            s = s * 10 + v[i] - '0';
        }
        k->status = s;
        return 0;
    }
    if (IS("grpc-message")) {
        nc_buf_reset(&k->status_msg);
        return nc_grpc_percent_decode(&k->status_msg, v, vl);
    }
    if (IS("grpc-encoding")) {
        free(k->encoding);
        k->encoding = strndup(v, vl);
        return k->encoding ? 0 : NC_ENOMEM;
    }
    /* not metadata, as grpc-js leaves them out of a call's Metadata */
    if ((nl && n[0] == ':') || IS("content-type") || IS("grpc-accept-encoding") || IS("te")) return 0;
    nc_buf *b = trailer ? &k->trl : &k->hdr;
    int r;
    if (nc_grpc_is_bin(n, nl)) {
        nc_buf d = NC_BUF_INIT;
        r = nc_grpc_bin_decode(&d, v, vl);
        if (r == NC_EPROTO)
            r = put_pair(b, n, nl, v, vl); /* not base64: kept as received */
        else if (!r)
            r = put_pair(b, n, nl, d.data ? d.data : "", d.len);
        nc_buf_free(&d);
    } else {
        r = put_pair(b, n, nl, v, vl);
    }
    if (r) return r;
    if (trailer)
        k->ntrl++;
    else
        k->nhdr++;
    return 0;
}

static nghttp2_nv mk(const char *n, size_t nl, const char *v, size_t vl) {
    return (nghttp2_nv){(uint8_t *)n, (uint8_t *)v, nl, vl, NGHTTP2_NV_FLAG_NONE};
}
#define LIT(n, v) mk(n, sizeof n - 1, v, sizeof v - 1)

/* Names the request sets itself (or HTTP/2 forbids): metadata may not override them. */
static int reserved(const char *n, size_t nl) {
    static const char *const names[] = {"te",
                                        "content-type",
                                        "grpc-timeout",
                                        "grpc-encoding",
                                        "grpc-accept-encoding",
                                        "user-agent",
                                        "connection",
                                        "host",
                                        "transfer-encoding",
                                        "keep-alive",
                                        "upgrade",
                                        NULL};
    if (nl && n[0] == ':') return 1;
    for (size_t i = 0; names[i]; i++)
        if (strlen(names[i]) == nl && !memcmp(names[i], n, nl)) return 1;
    return 0;
}

int nc_gcall_request_headers(gcall *k, const char *path, const char *scheme, const char *authority,
                             int timeout_ms, const json_t *headers, nc_buf *hb, nghttp2_nv *nv, size_t *n,
                             char *why, size_t whylen) {
    size_t c = 0;
    nv[c++] = LIT(":method", "POST");
    nv[c++] = mk(":scheme", 7, scheme, strlen(scheme));
    nv[c++] = mk(":path", 5, path, strlen(path));
    nv[c++] = mk(":authority", 10, authority, strlen(authority));
    nv[c++] = LIT("te", "trailers");
    nv[c++] = LIT("content-type", "application/grpc");
    nv[c++] = LIT("grpc-accept-encoding", "identity,gzip");
    nv[c++] = LIT("user-agent", "nestc/" NESTC_VERSION);
    if (k->encoding_out) nv[c++] = mk("grpc-encoding", 13, k->encoding_out, strlen(k->encoding_out));
    if (timeout_ms > 0) {
        size_t tl = nc_grpc_timeout_format(timeout_ms, k->tmo); /* in the call: nv points to it */
        nv[c++] = mk("grpc-timeout", 12, k->tmo, tl);
    }
    /* the metadata texts first (lowercased names), then the pairs point into the final buffer */
    const char *name;
    json_t *v;
    size_t first = c, nmeta = 0;
    json_object_foreach((json_t *)headers, name, v) {
        if (!json_is_string(v)) continue;
        size_t nl = strlen(name);
        if (nmeta == NC_GCALL_MAX_HEADERS) break;
        char low[256];
        if (!nl || nl >= sizeof low) {
            snprintf(why, whylen, "metadata name of %zu bytes (1 to 255)", nl);
            return NC_EINVAL;
        }
        for (size_t i = 0; i < nl; i++)
            low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
        if (reserved(low, nl)) {
            snprintf(why, whylen, "metadata name %s is reserved", low);
            return NC_EINVAL;
        }
        if (put_pair(hb, low, nl, json_string_value(v), json_string_length(v))) return NC_ENOMEM;
        nmeta++;
    }
    nc_header hs[NC_GCALL_MAX_HEADERS];
    size_t got = nc_gcall_pairs(hb, hs, NC_GCALL_MAX_HEADERS);
    for (size_t i = 0; i < got; i++)
        nv[first + i] = mk(hs[i].name, hs[i].name_len, hs[i].value, hs[i].value_len);
    *n = first + got;
    return 0;
}
