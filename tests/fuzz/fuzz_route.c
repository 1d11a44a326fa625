/* libFuzzer target: the route normaliser (NestJS transformPatternToRoute) on pattern text and on parsed
 * pattern values: no crash, no leak, and a route computed twice is the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec/frame.h"
#include "codec/json_write.h"
#include "core/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *t = (const char *)data;
    if (nc_utf8_validate(t, size, NULL) != 0) return 0;
    char *a = NULL, *b = NULL;
    int ra = nc_route_from_text(t, size, &a), rb = nc_route_from_text(t, size, &b);
    if (ra != rb || (ra == 0 && strcmp(a, b) != 0)) abort();
    free(a);
    free(b);
    json_t *v = NULL;
    char why[64];
    if (nc_json_parse(t, size, &v, why, sizeof why) == 0) {
        char *r = NULL;
        if (nc_route_from_value(v, &r) == 0) free(r);
        json_decref(v);
    }
    char *z = malloc(size + 1);
    if (!z) return 0;
    memcpy(z, data, size);
    z[size] = '\0';
    json_t *p = nc_pattern_from_text(z);
    char *r = NULL;
    if (p && nc_route_from_value(p, &r) == 0) free(r);
    json_decref(p);
    free(z);
    return 0;
}
