/* libFuzzer target: the request/event envelope decoder. The one-pass scanner must only accept what the
 * DOM parser (nc_json_parse: JSON.parse's accept rule, not jansson's, which refuses lone surrogates, deep
 * nesting and 1e400 that NestJS answers) accepts, and read it the same way: every span it reports must
 * equal the member of the parsed object, and the value builder must rebuild exactly the parsed value.
 * The pull reader must walk any text without reading past it. Whether the DOM parser's rule is NestJS's
 * is fuzz_nest_oracle's business. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec/frame.h"
#include "codec/json_build.h"
#include "codec/json_scan.h"
#include "codec/json_write.h"
#include "nestc/json_reader.h"

static void check_span(const json_t *root, const char *key, const nc_span *sp) {
    json_t *m = json_object_get(root, key);
    if (!sp->p) {
        if (m) abort();
        return;
    }
    json_t *v = nc_json_build(sp->p, sp->len);
    if (!m || !v || !json_equal(m, v)) abort();
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *t = (const char *)data;
    nc_json_reader r;
    nc_json_reader_init(&r, t, size);
    for (int i = 0; i < 100000 && nc_json_next(&r) > NC_JSON_ERROR; i++) {
    }
    if (nc_utf8_validate(t, size, NULL) != 0) return 0; /* the scanner's input is validated UTF-8 */
    json_t *root = NULL;
    char why[128];
    int parsed = nc_json_parse(t, size, &root, why, sizeof why) == 0;
    nc_span sp;
    if (nc_json_scan_value(t, size, &sp) == NC_SCAN_OK) {
        if (!parsed) abort();
        json_t *v = nc_json_build(sp.p, sp.len);
        if (!v || !json_equal(v, root) || json_typeof(v) != json_typeof(root)) abort();
        nc_json_free(v);
    }
    nc_env env;
    if (nc_env_scan(t, size, &env) == NC_SCAN_OK) {
        if (!parsed || !json_is_object(root)) abort();
        check_span(root, "pattern", &env.pattern);
        check_span(root, "data", &env.data);
        check_span(root, "id", &env.id);
        check_span(root, "metadata", &env.metadata);
    }
    nc_json_free(root);
    return 0;
}
