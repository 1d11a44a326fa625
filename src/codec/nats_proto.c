#include "codec/nats_proto.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "codec/json_build.h"
#include "nestc/error.h"

#define DEFAULT_MAX_CONTROL 4096

void nc_nats_parser_init(nc_nats_parser *p, size_t max_payload) {
    memset(p, 0, sizeof *p);
    p->max_control = DEFAULT_MAX_CONTROL;
    p->max_payload = max_payload;
}

void nc_nats_parser_free(nc_nats_parser *p) {
    nc_buf_free(&p->buf);
    memset(p, 0, sizeof *p);
}

size_t nc_nats_pending(const nc_nats_parser *p) {
    return p->buf.len - p->pos;
}

static int fail(char *why, size_t whylen, const char *fmt, const char *detail) {
    snprintf(why, whylen, fmt, detail);
    return NC_EPROTO;
}

/* Splits a control line's arguments on spaces/tabs; returns the count (at most max). */
static int split(const char *s, size_t n, const char **tok, size_t *tlen, int max) {
    int k = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i == n) break;
        if (k == max) return max + 1;
        tok[k] = s + i;
        while (i < n && s[i] != ' ' && s[i] != '\t') i++;
        tlen[k] = (size_t)(s + i - tok[k]);
        k++;
    }
    return k;
}

static int number(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 19) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int word_is(const char *s, size_t n, const char *w) {
    size_t wl = strlen(w);
    if (n != wl) return 0;
    for (size_t i = 0; i < n; i++)
        if (toupper((unsigned char)s[i]) != w[i]) return 0;
    return 1;
}

int nc_nats_feed(nc_nats_parser *p, const char *data, size_t len, nc_nats_op_fn fn, void *user, char *why,
                 size_t whylen) {
    if (len && nc_buf_append(&p->buf, data, len)) return NC_ENOMEM;
    int r = 0;
    for (;;) {
        const char *b = p->buf.data + p->pos;
        size_t avail = p->buf.len - p->pos;
        if (!avail) break;
        const char *nl = memchr(b, '\n', avail);
        if (!nl) {
            if (avail > p->max_control) {
                snprintf(why, whylen, "a control line longer than %zu bytes", p->max_control);
                r = NC_ETOOBIG;
            }
            break;
        }
        size_t line = (size_t)(nl - b); /* without \n */
        size_t cl = line && b[line - 1] == '\r' ? line - 1 : line;
        if (cl > p->max_control) {
            snprintf(why, whylen, "a control line longer than %zu bytes", p->max_control);
            r = NC_ETOOBIG;
            break;
        }
        size_t wl = 0;
        while (wl < cl && b[wl] != ' ' && b[wl] != '\t') wl++;
        const char *rest = b + wl;
        size_t restn = cl - wl;
        nc_nats_op op;
        memset(&op, 0, sizeof op);
        size_t consumed = line + 1;
        if (word_is(b, wl, "MSG") || word_is(b, wl, "HMSG")) {
            int hmsg = wl == 4;
            const char *t[5];
            size_t tl[5];
            int k = split(rest, restn, t, tl, 5);
            int want = hmsg ? 4 : 3;
            if (k != want && k != want + 1) {
                r = fail(why, whylen, "malformed %s line", hmsg ? "HMSG" : "MSG");
                break;
            }
            uint64_t hsize = 0, total;
            op.kind = NC_NATS_MSG;
            op.subject = t[0];
            op.subject_len = tl[0];
            if (number(t[1], tl[1], &op.sid)) {
                r = fail(why, whylen, "malformed %s sid", hmsg ? "HMSG" : "MSG");
                break;
            }
            if (k == want + 1) {
                op.reply = t[2];
                op.reply_len = tl[2];
            }
            if (hmsg && number(t[k - 2], tl[k - 2], &hsize)) {
                r = fail(why, whylen, "malformed %s header size", "HMSG");
                break;
            }
            if (number(t[k - 1], tl[k - 1], &total) || hsize > total) {
                r = fail(why, whylen, "malformed %s size", hmsg ? "HMSG" : "MSG");
                break;
            }
            if (p->max_payload && total > p->max_payload) {
                snprintf(why, whylen, "a message of %llu bytes (limit %zu)", (unsigned long long)total,
                         p->max_payload);
                r = NC_ETOOBIG;
                break;
            }
            if (avail - consumed < total + 2) break; /* wait for the payload */
            const char *body = b + consumed;
            if (body[total] != '\r' || body[total + 1] != '\n') {
                r = fail(why, whylen, "%s payload not followed by CRLF", hmsg ? "HMSG" : "MSG");
                break;
            }
            if (hmsg) {
                op.hdr = body;
                op.hdr_len = hsize;
            }
            op.payload = body + hsize;
            op.payload_len = total - hsize;
            consumed += total + 2;
        } else if (word_is(b, wl, "PING")) {
            op.kind = NC_NATS_PING;
        } else if (word_is(b, wl, "PONG")) {
            op.kind = NC_NATS_PONG;
        } else if (word_is(b, wl, "+OK")) {
            op.kind = NC_NATS_OK;
        } else if (word_is(b, wl, "INFO")) {
            op.kind = NC_NATS_INFO;
            while (restn && (*rest == ' ' || *rest == '\t')) rest++, restn--;
            op.arg = rest;
            op.arg_len = restn;
        } else if (word_is(b, wl, "-ERR")) {
            op.kind = NC_NATS_ERR;
            while (restn && (*rest == ' ' || *rest == '\t')) rest++, restn--;
            if (restn >= 2 && rest[0] == '\'' && rest[restn - 1] == '\'') rest++, restn -= 2;
            op.arg = rest;
            op.arg_len = restn;
        } else if (cl == 0) {
            p->pos += consumed; /* a stray empty line: tolerated */
            continue;
        } else {
            char w[24];
            snprintf(w, sizeof w, "%.*s", (int)(wl < 16 ? wl : 16), b);
            r = fail(why, whylen, "unknown operation \"%s\"", w);
            break;
        }
        p->pos += consumed;
        if (fn(user, &op)) break;
    }
    /* compact: keep only what is not parsed yet */
    if (p->pos == p->buf.len) {
        p->buf.len = p->pos = 0;
    } else if (p->pos > 65536 || p->pos * 2 > p->buf.len) {
        memmove(p->buf.data, p->buf.data + p->pos, p->buf.len - p->pos);
        p->buf.len -= p->pos;
        p->pos = 0;
    }
    return r;
}

/* The status line of a header block: 0 with *status set (the 3-digit code, or 0), or NC_EPROTO when the
 * block does not start with "NATS/1.0" or has no line end. The fields are read by nc_nats_header_next. */
static int block_status(const char *hdr, size_t len, int *status) {
    *status = 0;
    if (len < 8 || memcmp(hdr, "NATS/1.0", 8) != 0) return NC_EPROTO;
    const char *nl = memchr(hdr, '\n', len);
    if (!nl) return NC_EPROTO;
    const char *s = hdr + 8;
    while (s < nl && *s == ' ') s++;
    int code = 0, digits = 0;
    while (s < nl && *s >= '0' && *s <= '9' && digits < 4) code = code * 10 + (*s++ - '0'), digits++;
    *status = digits == 3 ? code : 0;
    return 0;
}

int nc_nats_headers_parse(const char *hdr, size_t len, int *status, json_t **headers) {
    if (headers) *headers = NULL;
    int r = block_status(hdr, len, status);
    if (r || !headers) return r;
    json_t *obj = json_object();
    if (!obj) return NC_ENOMEM;
    const char *n, *v;
    size_t nl, vl, at = 0;
    while (nc_nats_header_next(hdr, len, &at, &n, &nl, &v, &vl)) {
        char *name = strndup(n, nl);
        if (!name) {
            json_decref(obj);
            return NC_ENOMEM;
        }
        if (!json_object_get(obj, name)) {
            /* nats.js decodes headers as UTF-8, U+FFFD for ill-formed bytes; a name that is not UTF-8 is
             * left out (jansson refuses such keys) */
            json_t *val = nc_json_string_js(v, vl, 0);
            if (val) json_object_set_new(obj, name, val);
        }
        free(name);
    }
    *headers = obj;
    return 0;
}

int nc_nats_headers_list(const char *hdr, size_t len, int *status, nc_header *out, size_t cap, size_t *n) {
    *n = 0;
    int r = block_status(hdr, len, status);
    if (r) return r;
    nc_header h;
    size_t at = 0;
    while (nc_nats_header_next(hdr, len, &at, &h.name, &h.name_len, &h.value, &h.value_len)) {
        if (*n < cap) out[*n] = h;
        (*n)++;
    }
    return 0;
}

int nc_nats_subject_ok(const char *s, size_t len) {
    if (!len) return 0;
    size_t tok = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f) return 0;
        if (c == '.') {
            if (!tok) return 0;
            tok = 0;
        } else {
            tok++;
        }
    }
    return tok > 0;
}

static int append_num(nc_buf *out, uint64_t v) {
    return nc_buf_appendf(out, "%llu", (unsigned long long)v);
}

/* PUB, or HPUB with the header block hb (NULL: none), then the payload. */
static int write_pub(nc_buf *out, const char *subject, size_t slen, const char *reply, const nc_buf *hb,
                     const char *payload, size_t plen) {
    size_t hlen = hb ? hb->len : 0;
    if (nc_buf_append_str(out, hb ? "HPUB " : "PUB ") || nc_buf_append(out, subject, slen) ||
        nc_buf_append_char(out, ' '))
        return NC_ENOMEM;
    if (reply && (nc_buf_append_str(out, reply) || nc_buf_append_char(out, ' '))) return NC_ENOMEM;
    if (hb && (append_num(out, hlen) || nc_buf_append_char(out, ' '))) return NC_ENOMEM;
    if (append_num(out, hlen + plen) || nc_buf_append(out, "\r\n", 2)) return NC_ENOMEM;
    if (hb && nc_buf_append(out, hb->data, hlen)) return NC_ENOMEM;
    if (nc_buf_append(out, payload, plen) || nc_buf_append(out, "\r\n", 2)) return NC_ENOMEM;
    return 0;
}

int nc_nats_write_pub(nc_buf *out, const char *subject, size_t slen, const char *reply, const json_t *headers,
                      const char *payload, size_t plen) {
    nc_buf hb = NC_BUF_INIT;
    int with_headers = headers && json_object_size(headers) > 0;
    if (with_headers) {
        const char *k;
        json_t *v;
        if (nc_buf_append_str(&hb, "NATS/1.0\r\n")) goto nomem;
        json_object_foreach((json_t *)headers, k, v) {
            /* a name or value that would break the header block (CR, LF, ':' in names) is left out */
            if (!json_is_string(v) || !*k || strpbrk(k, "\r\n: \t") || strpbrk(json_string_value(v), "\r\n"))
                continue;
            if (nc_buf_appendf(&hb, "%s: %s\r\n", k, json_string_value(v))) goto nomem;
        }
        if (nc_buf_append_str(&hb, "\r\n")) goto nomem;
    }
    int r = write_pub(out, subject, slen, reply, with_headers ? &hb : NULL, payload, plen);
    nc_buf_free(&hb);
    return r;
nomem:
    nc_buf_free(&hb);
    return NC_ENOMEM;
}

static int span_has(const char *s, size_t n, const char *set) {
    size_t k = strlen(set);
    for (size_t i = 0; i < n; i++)
        if (memchr(set, s[i], k)) return 1;
    return 0;
}

int nc_nats_write_pub_list(nc_buf *out, const char *subject, size_t slen, const char *reply,
                           const nc_header *h, size_t nh, const char *payload, size_t plen) {
    if (!nh) return write_pub(out, subject, slen, reply, NULL, payload, plen);
    nc_buf hb = NC_BUF_INIT;
    int r = nc_buf_append_str(&hb, "NATS/1.0\r\n") ? NC_ENOMEM : 0;
    for (size_t i = 0; !r && i < nh; i++) {
        /* a name or value that would break the header block (CR, LF, NUL; ':' or blanks in names) is
         * left out */
        if (!h[i].name_len || span_has(h[i].name, h[i].name_len, "\r\n: \t") ||
            memchr(h[i].name, 0, h[i].name_len) || span_has(h[i].value, h[i].value_len, "\r\n"))
            continue;
        if (nc_buf_append(&hb, h[i].name, h[i].name_len) || nc_buf_append(&hb, ": ", 2) ||
            nc_buf_append(&hb, h[i].value, h[i].value_len) || nc_buf_append(&hb, "\r\n", 2))
            r = NC_ENOMEM;
    }
    if (!r && nc_buf_append(&hb, "\r\n", 2)) r = NC_ENOMEM;
    if (!r) r = write_pub(out, subject, slen, reply, &hb, payload, plen);
    nc_buf_free(&hb);
    return r;
}

int nc_nats_write_sub(nc_buf *out, const char *subject, const char *queue, uint64_t sid) {
    if (queue && *queue)
        return nc_buf_appendf(out, "SUB %s %s %llu\r\n", subject, queue, (unsigned long long)sid);
    return nc_buf_appendf(out, "SUB %s %llu\r\n", subject, (unsigned long long)sid);
}

int nc_nats_write_unsub(nc_buf *out, uint64_t sid) {
    return nc_buf_appendf(out, "UNSUB %llu\r\n", (unsigned long long)sid);
}

int nc_nats_header_next(const char *hdr, size_t len, size_t *at, const char **name, size_t *name_len,
                        const char **value, size_t *value_len) {
    if (*at == 0) {
        const char *nl = len >= 8 && memcmp(hdr, "NATS/1.0", 8) == 0 ? memchr(hdr, '\n', len) : NULL;
        if (!nl) return 0;
        *at = (size_t)(nl - hdr) + 1;
    }
    while (*at < len) {
        const char *line = hdr + *at;
        const char *e = memchr(line, '\n', len - *at);
        size_t n = e ? (size_t)(e - line) : len - *at;
        *at += n + 1;
        if (n && line[n - 1] == '\r') n--;
        if (n == 0) {
            *at = len; /* the blank line ends the block */
            return 0;
        }
        const char *colon = memchr(line, ':', n);
        if (!colon || colon == line) continue; /* not a field: skipped */
        const char *v = colon + 1, *ve = line + n;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        *name = line;
        *name_len = (size_t)(colon - line);
        *value = v;
        *value_len = (size_t)(ve - v);
        return 1;
    }
    return 0;
}
