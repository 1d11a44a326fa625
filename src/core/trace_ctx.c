/* W3C traceparent parsing and formatting (nestc/trace.h): in the core, so that the logger's trace id
 * (core/log.c) and the tracer (src/obs/trace.c) validate alike. */
#include <string.h>

#include "nestc/trace.h"

/* digit values of lowercase hex, 16 for anything else (uppercase is invalid in traceparent) */
static const uint8_t hexv[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16};

/* n bytes from 2n lowercase hex digits; returns 1 when some byte is not zero, 0 when all are, -1 when
 * a digit is not lowercase hex (the table holds value + 1, so 0 means "not a digit") */
static int unhex(const char *s, uint8_t *out, int n) {
    int nonzero = 0, bad = 0;
    for (int k = 0; k < n; k++) {
        int hi = hexv[(unsigned char)s[2 * k]], lo = hexv[(unsigned char)s[2 * k + 1]];
        bad |= !hi | !lo;
        out[k] = (uint8_t)(((hi - 1) & 15) << 4 | ((lo - 1) & 15));
        nonzero |= out[k];
    }
    return bad ? -1 : nonzero != 0;
}

int nc_trace_parse(const char *tp, size_t len, nc_trace_ctx *out) {
    if (!out) return NC_EINVAL;
    out->valid = 0;
    out->tracestate[0] = 0;
    /* version 00 has exactly 55 characters; a later version's extra fields are not ours to accept:
     * version 00 is all this implements */
    if (!tp || len != 55 || tp[0] != '0' || tp[1] != '0' || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return NC_EINVAL;
    uint8_t flags;
    if (unhex(tp + 3, out->trace_id, 16) != 1 || unhex(tp + 36, out->span_id, 8) != 1 ||
        unhex(tp + 53, &flags, 1) < 0)
        return NC_EINVAL;
    out->flags = flags;
    out->valid = 1;
    return 0;
}

static void tohex(const uint8_t *b, int n, char *out) {
    static const char d[] = "0123456789abcdef";
    for (int k = 0; k < n; k++) out[2 * k] = d[b[k] >> 4], out[2 * k + 1] = d[b[k] & 15];
    out[2 * n] = 0;
}

void nc_trace_format(const nc_trace_ctx *c, char out[56]) {
    memcpy(out, "00-", 3);
    tohex(c->trace_id, 16, out + 3);
    out[35] = '-';
    tohex(c->span_id, 8, out + 36);
    out[52] = '-';
    tohex(&c->flags, 1, out + 53);
}

void nc_trace_id_hex(const nc_trace_ctx *c, char out[33]) {
    tohex(c->trace_id, 16, out);
}

void nc_trace_span_hex(const nc_trace_ctx *c, char out[17]) {
    tohex(c->span_id, 8, out);
}
