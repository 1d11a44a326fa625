/* libFuzzer: what the tracer reads from a peer (docs/observability.md "Trace context"):
 *   - the metadata scanner (obs/trace_meta.c) against jansson: on text jansson parses as an object, a key
 *     the scanner reports absent is not a top-level string member, and a value it reports found is that
 *     member's string exactly;
 *   - traceparent validation (core/trace_ctx.c): a value it accepts formats back to the same 55 bytes;
 *   - the exporter's status-line parser (obs/http_status.c): a code in 100..599, 0 or -1, and a complete
 *     line parses the same with more bytes after it;
 *   - its Retry-After parser (obs/http_status.c): -2, -1 or 0..NC_HTTP_RETRY_AFTER_MAX, and once it has
 *     an answer (the head is complete) more bytes after it change nothing;
 *   - OTEL_EXPORTER_OTLP_HEADERS (obs/otlp_headers.c): what it accepts is header lines "token: value\r\n"
 *     only (no CR, LF or other control character inside a line: no injection), never past the buffer. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/trace.h"
#include "obs/http_status.h"
#include "obs/otlp_headers.h"
#include "obs/trace_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    json_t *o = json_loadb(buf, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (json_is_object(o)) {
        nc_trace_found f[2];
        nc_trace_meta_scan(buf, size, f);
        for (int k = 0; k < 2; k++) {
            json_t *v = json_object_get(o, nc_trace_keys[k]);
            if (f[k].r == 0 && json_is_string(v)) abort();
            if (f[k].r == 1 && (!json_is_string(v) || json_string_length(v) != f[k].vl ||
                                memcmp(json_string_value(v), f[k].v, f[k].vl)))
                abort();
        }
    }
    json_decref(o);

    nc_trace_ctx c;
    if (nc_trace_parse(buf, size, &c) == 0) {
        char out[56];
        nc_trace_format(&c, out);
        if (size != 55 || memcmp(out, buf, 55) || !c.valid) abort();
    }

    int r = nc_http_status_parse(buf, size);
    if (r != 0 && r != -1 && (r < 100 || r > 599)) abort();
    if (r > 0) {
        char *more = malloc(size + 1);
        memcpy(more, buf, size);
        more[size] = 'x';
        if (nc_http_status_parse(more, size + 1) != r) abort();
        free(more);
    }

    int ra = nc_http_retry_after(buf, size);
    if (ra < -2 || ra > NC_HTTP_RETRY_AFTER_MAX) abort();
    if (ra != -2) {
        char *more = malloc(size + 2);
        memcpy(more, buf, size);
        memcpy(more + size, "\n\n", 2);
        if (nc_http_retry_after(more, size + 2) != ra) abort();
        free(more);
    }

    char lines[256];
    int hr = nc_otlp_headers_parse(buf, size, lines, sizeof lines);
    size_t ll = strlen(lines);
    if (hr && ll) abort();
    for (size_t i = 0; i < ll;) { /* each line: a token, ": ", a value without controls but tab, CRLF */
        size_t k = i;
        while (k < ll && lines[k] != ':') {
            unsigned char ch = (unsigned char)lines[k++];
            if (ch <= ' ' || ch >= 0x7f || strchr("\"(),/;<=>?@[\\]{}", ch)) abort();
        }
        if (k == i || k + 1 >= ll || lines[k + 1] != ' ') abort();
        for (k += 2; k < ll && lines[k] != '\r'; k++)
            if (((unsigned char)lines[k] < 0x20 && lines[k] != '\t') || lines[k] == 0x7f) abort();
        if (k + 1 >= ll || lines[k + 1] != '\n') abort();
        i = k + 2;
    }
    return 0;
}
