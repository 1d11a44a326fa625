/* libFuzzer target: nestc accepts exactly what NestJS accepts. The oracle is NestJS's rule (JSON.parse's
 * grammar, nest_oracle.h, checked against vectors recorded from Node.js by test_json_oracle), not jansson,
 * which refuses lone surrogates, deep nesting and 1e400 that NestJS answers. For valid UTF-8 input:
 * - nc_json_parse accepts iff the oracle does, except nesting deeper than NC_JSON_MAX_DEPTH, which it
 *   refuses saying JSON.parse would accept (the documented bound);
 * - what nc_json_write writes for an accepted value is UTF-8, accepted by the oracle, and a fixed point
 *   (parsing and writing it again gives the same bytes), as JSON.stringify(JSON.parse(x)) is;
 * - a top-level string is written exactly as JSON.stringify writes it, computed over UTF-16 units;
 * - the scanner accepts only accepted text, and the pull reader walks accepted text to its end.
 * Ill-formed UTF-8 is the framer's business (refused there; NestJS decodes it to U+FFFD). For any input:
 * - the input's bytes as a handler-built string are written as UTF-8 JSON the oracle accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec/frame.h"
#include "codec/json_build.h"
#include "codec/json_scan.h"
#include "codec/json_write.h"
#include "nest_oracle.h"
#include "nestc/json_reader.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *t = (const char *)data;
    /* Any bytes in a string a handler built (json_stringn_nocheck): still written as UTF-8 JSON that
     * JSON.parse accepts (ill-formed bytes as U+FFFD), so a frame never breaks for the peer. */
    json_t *any = json_stringn_nocheck(t, size);
    nc_buf ab = NC_BUF_INIT;
    if (any && (nc_json_write(&ab, any) || nc_utf8_validate(ab.data, ab.len, NULL) != 0 ||
                !oracle_accepts(ab.data, ab.len, NULL)))
        abort();
    json_decref(any);
    nc_buf_free(&ab);
    if (nc_utf8_validate(t, size, NULL) != 0) return 0;
    size_t depth = 0;
    int js = oracle_accepts(t, size, &depth);
    json_t *v = NULL;
    int js_accepts = 0;
    int rc = nc_json_parse_js(t, size, &v, NULL, 0, &js_accepts);
    if (rc == NC_ENOMEM) return 0;
    int ours = rc == 0;
    if (js && depth > NC_JSON_MAX_DEPTH) {
        if (ours || !js_accepts) abort(); /* beyond the bound: refused, saying JSON.parse would take it */
        return 0;
    }
    if (ours != js || js_accepts) abort();
    nc_span sp;
    if (nc_json_scan_value(t, size, &sp) == NC_SCAN_OK && !ours) abort();
    if (!ours) return 0;

    nc_json_reader r;
    nc_json_reader_init(&r, t, size);
    nc_json_tok tok;
    while ((tok = nc_json_next(&r)) != NC_JSON_END)
        if (tok == NC_JSON_ERROR) abort();

    nc_buf out = NC_BUF_INIT, again = NC_BUF_INIT;
    if (nc_json_write(&out, v)) abort();
    if (nc_utf8_validate(out.data, out.len, NULL) != 0) abort(); /* frames carry UTF-8 only */
    if (!oracle_accepts(out.data, out.len, NULL)) abort();
    json_t *w = NULL;
    if (nc_json_parse(out.data, out.len, &w, NULL, 0) || nc_json_write(&again, w)) abort();
    if (again.len != out.len || memcmp(again.data, out.data, out.len) != 0) abort();
    if (json_is_string(v)) {
        size_t n;
        char *want = oracle_stringify_string(t, size, &n);
        if (n != out.len || memcmp(want, out.data, n) != 0) abort();
        free(want);
    }
    nc_json_free(w);
    nc_json_free(v);
    nc_buf_free(&out);
    nc_buf_free(&again);
    return 0;
}
