/* traceparent and tracestate in a metadata object's JSON text (trace_meta.h). */
#include <string.h>

#include "obs/trace_meta.h"

const char *const nc_trace_keys[2] = {"traceparent", "tracestate"};

/* The string values of the top-level keys traceparent and tracestate in the JSON object text t[0..n), in
 * one pass, without building the object (a message's metadata: building it costs more than the rest of
 * the tracing of a message). A key present with escapes in its value, or with a value that is not a
 * string, is left to the DOM (-1). The text is well-formed JSON: the packet parsed. */
void nc_trace_meta_scan(const char *t, size_t n, nc_trace_found f[2]) {
    f[0].r = f[1].r = 0;
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == '"') {
            size_t s = ++i;
            int esc = 0;
            for (;;) { /* to the closing quote: memchr, then count the backslashes before it */
                const char *q = memchr(t + i, '"', n - i);
                if (!q) goto undecided;
                i = (size_t)(q - t);
                size_t bs = 0;
                while (i - bs > s && t[i - bs - 1] == '\\') bs++;
                esc |= bs > 0;
                if (!(bs & 1)) break;
                i++;
            }
            size_t e = i, kl = e - s;
            int which = depth != 1 || esc                                  ? -1
                        : kl == 11 && !memcmp(t + s, nc_trace_keys[0], 11) ? 0
                        : kl == 10 && !memcmp(t + s, nc_trace_keys[1], 10) ? 1
                                                                           : -1;
            if (which < 0) continue;
            size_t k = e + 1;
            while (k < n && (t[k] == ' ' || t[k] == '\t' || t[k] == '\n' || t[k] == '\r')) k++;
            if (k >= n || t[k] != ':') continue; /* a value that reads like the key */
            k++;
            while (k < n && (t[k] == ' ' || t[k] == '\t' || t[k] == '\n' || t[k] == '\r')) k++;
            if (k >= n || t[k] != '"') {
                f[which].r = -1;
                continue;
            }
            const char *q = memchr(t + k + 1, '"', n - k - 1);
            if (!q) goto undecided;
            const char *v = t + k + 1;
            f[which].v = v;
            f[which].vl = (size_t)(q - v);
            f[which].r = memchr(v, '\\', f[which].vl) ? -1 : 1;
            i = (size_t)(q - t);
            /* an escape in the value: the quote found may be an escaped one, so the rest of the text
             * cannot be read this way: what was not found yet is left to the DOM too */
            if (f[which].r < 0) goto undecided;
        }
    }
    return;
undecided:
    for (int k = 0; k < 2; k++)
        if (!f[k].r) f[k].r = -1;
}
