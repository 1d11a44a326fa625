/* libFuzzer target: the client's reply decoder. The scanned reading of a reply packet (id, response, err,
 * isDisposed, status, foreign keys) must agree with the DOM reading used for everything else (nc_json_parse,
 * JSON.parse's accept rule: lone surrogates, deep nesting and 1e400 are replies NestJS sends). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec/envelope.h"
#include "codec/frame.h"
#include "codec/json_build.h"
#include "codec/json_scan.h"
#include "codec/json_write.h"

static void same(const nc_span *sp, const json_t *v) {
    if (!sp->p) {
        if (v) abort();
        return;
    }
    json_t *b = nc_json_build(sp->p, sp->len);
    if (!v || !b || !json_equal(b, v)) abort();
    json_decref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *t = (const char *)data;
    if (nc_utf8_validate(t, size, NULL) != 0) return 0;
    json_t *root = NULL;
    char why[128];
    int parsed = nc_json_parse(t, size, &root, why, sizeof why) == 0;
    nc_response dom;
    if (parsed) nc_envelope_read_response(root, &dom);
    nc_reply_env e;
    if (nc_reply_env_scan(t, size, &e) == NC_SCAN_OK) {
        if (!parsed || !json_is_object(root)) abort();
        if (!e.other_keys && e.nkeys > 0) {
            /* the client takes the scanned path only here: it must read what the DOM path reads */
            same(&e.id, dom.id);
            if (nc_span_truthy(&e.err) != (dom.err != NULL)) abort();
            if (dom.err) same(&e.err, dom.err);
            int final = nc_span_truthy(&e.err) || nc_span_truthy(&e.disposed);
            if (final != dom.final) abort();
            if (!dom.err) same(&e.response, dom.response);
        }
    }
    nc_json_free(root);
    return 0;
}
