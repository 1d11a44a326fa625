/* libFuzzer target: the CLI's argument parsing (flags anywhere, numbers, k=v pairs), URL parsing and
 * pattern/data parsing. The input is split into argv words at NUL bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "core/route.h"
#include "core/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[64];
    int argc = 0;
    argv[argc++] = "nestc";
    for (size_t i = 0; i <= size && argc < 63;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    cli_args a;
    if (cli_parse(&a, argc, argv, 1) == 0) cli_args_free(&a);
    nc_url u;
    char err[256];
    if (nc_url_parse(&u, argv[1], err, sizeof err) == 0) nc_url_free(&u);
    json_t *p = nc_pattern_from_text(argv[argc - 1]);
    json_decref(p);
    free(buf);
    return 0;
}
